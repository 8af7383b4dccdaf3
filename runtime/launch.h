/* launch.h — running a compiled kernel (any backend that produces an
 * AttnTileFn) over one bound call: tile map, work items, threads, faults. */
#ifndef ATTNC_LAUNCH_H
#define ATTNC_LAUNCH_H
#include "backend.h"
#include "call.h"
#include "kernel_abi.h"
#include "plan.h"

/* Run `ck` for the call on `threads` threads (0: every core), `flags` the
 * kernel's ATTNC_OPT_* (packing heads, splitting keys): O and LSE are
 * written only on success; a fault found by the kernel is reported with the
 * interpreter's exact message. */
attnc_status launch_run(const Plan *p, const CompiledKernel *ck, const BoundCall *bc, const attnc_args *args,
                        int threads, int flags, attnc_error *err);

#endif
