/* api_internal.h — what tests and tools inside the project may see of a
 * kernel beyond the public header: its plan and compile-time params. */
#ifndef ATTNC_API_INTERNAL_H
#define ATTNC_API_INTERNAL_H
#include "attnc.h"
#include "call.h"
#include "launch.h"
#include "plan.h"

const Plan *attnc_kernel_plan(const attnc_kernel *k);
const FixedParams *attnc_kernel_fixed(const attnc_kernel *k);
/* The kernel's checked attention as written (its plan's may be a rewrite: dots of rows as tables). */
const Attention *attnc_kernel_attention(const attnc_kernel *k);

/* attnc_kernel_run_layout with a paged K and V (pages NULL: none), which
 * only a kernel whose attnc_kernel_page_tile(k, page_rows) is not 0 reads
 * (pages->kv_tile that tile), on `threads` threads (0: the kernel's own
 * count). */
attnc_status attnc_kernel_run_pages(const attnc_kernel *k, const attnc_args *args, const attnc_layouts *layouts,
                                    const LaunchPages *pages, int threads, attnc_error *err);

/* The threads a kernel's calls run on (its options' count; 0 there: every core). */
int attnc_kernel_threads(const attnc_kernel *k);
/* The keys per kv tile with which k reads pages of page_rows rows in place (api.c), or 0: they are gathered. */
int64_t attnc_kernel_page_tile(const attnc_kernel *k, int64_t page_rows);

#endif
