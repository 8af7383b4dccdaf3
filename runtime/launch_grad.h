/* launch_grad.h — running a compiled backward kernel (CompiledKernel.grad_tile,
 * kernel_abi.h's AttnGradCall) over one bound call: delta, the tile map by kv
 * tile, work items, partitions, reductions, faults (launch_grad.c). */
#ifndef ATTNC_LAUNCH_GRAD_H
#define ATTNC_LAUNCH_GRAD_H
#include "backend.h"
#include "call.h"
#include "plan.h"

/* The gradients bg asks for, of the forward call bc (args: its Q, K, V, O
 * and LSE), on `threads` threads (0: every core): written only on success,
 * the same bits on every run with the same thread count; a fault found by
 * the kernel is reported with the interpreter's exact message. */
attnc_status launch_grad_run(const Plan *p, const CompiledKernel *ck, const BoundCall *bc, const attnc_args *args,
                             const BoundGrad *bg, int threads, attnc_error *err);

#endif
