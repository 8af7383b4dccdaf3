/* launch.h — running a compiled kernel (any backend that produces an
 * AttnTileFn) over one bound call: tile map, work items, threads, faults. */
#ifndef ATTNC_LAUNCH_H
#define ATTNC_LAUNCH_H
#include "backend.h"
#include "call.h"
#include "kernel_abi.h"
#include "plan.h"

/* A paged K and V, read in place by a kernel whose CompiledKernel.pages is
 * 1 (AttnCall.kv_page): the block table row of the one sequence, the page
 * size, the elements from one page of K (of V) to the next (> 0), and the
 * keys per kv tile (0: the plan's bk; else fewer, dividing page_rows, for a
 * kernel whose CompiledKernel.short_kv_tiles is 1).  page_rows is a
 * multiple of the kv tile. */
typedef struct LaunchPages {
    const int32_t *table;
    int64_t page_rows, k_page_stride, v_page_stride;
    int64_t kv_tile;
} LaunchPages;

/* Run `ck` for the call on `threads` threads (0: every core), `flags` the
 * kernel's ATTNC_OPT_* (packing heads, splitting keys), `pages` NULL or a
 * paged K and V: O and LSE are
 * written only on success; a fault found by the kernel is reported with the
 * interpreter's exact message, except in a paged call (the interpreter
 * reads K and V densely): ATTNC_ERR_RUNTIME, and the caller reruns the call
 * on gathered K and V for the message. */
attnc_status launch_run(const Plan *p, const CompiledKernel *ck, const BoundCall *bc, const attnc_args *args,
                        int threads, int flags, const LaunchPages *pages, attnc_error *err);

/* Tensors whose data is made per work item (the tables of Q rows,
 * runtime/rows_items.c).  begin runs once the call's tile maps are built
 * (tm[s] for kv split s of `splits`; q tiles of tm[0].bq rows of `pack`
 * heads; items numbered as tile_table.h says) and may fail the call; item
 * runs on the worker `thread` (< threads) right before work item `item` of
 * split `split` and sets the entries of tensor_data, that thread's own copy
 * of the call's, which the item reads. */
typedef struct LaunchItemTensors {
    void *ctx;
    attnc_status (*begin)(void *ctx, const Plan *p, const BoundCall *bc, const TileMap *tm, int splits, int64_t pack,
                          int threads, attnc_error *err);
    void (*item)(void *ctx, int thread, int split, int64_t item, const void **tensor_data);
} LaunchItemTensors;

/* launch_run with tensors made per work item (it NULL: launch_run).  A
 * fault is then ATTNC_ERR_RUNTIME without the element: bc's tensors are not
 * all there for the interpreter; the caller names it (api.c, run_kernel). */
attnc_status launch_run_items(const Plan *p, const CompiledKernel *ck, const BoundCall *bc, const attnc_args *args,
                              int threads, int flags, const LaunchPages *pages, const LaunchItemTensors *it,
                              attnc_error *err);

/* The call's params, tensor data and tensor shapes as kernel_abi.h wants
 * them (by index); 0 when out of memory.  launch_values_free either way. */
typedef struct LaunchValues {
    AttnValue *params;
    const void **tdata;
    int64_t (*tshape)[ATTNC_ABI_MAX_RANK];
} LaunchValues;
int launch_values(const BoundCall *bc, LaunchValues *v);
void launch_values_free(LaunchValues *v);

/* kv splits for `items` work items of `nkt` kv tiles on `threads` threads:
 * enough that every thread has an item, each split at least one kv tile,
 * at most `max`; 1 when the items already occupy every thread. */
int launch_split_count(int64_t items, int64_t nkt, int threads, int max);

/* Copy the [B, H, Lq, row] elements of a contiguous buffer into a strided
 * one of elements of elem_bytes (the private O or LSE of a call, once it
 * has not faulted). */
void launch_copy_out(const attnc_sizes *sz, int64_t row, int elem_bytes, const char *from, char *to,
                     const int64_t *stride);

/* The layouts of bc in c; `private_out`: O and LSE go to contiguous private
 * buffers (float32 O when `f32_out`: a split's partial). */
void launch_set_layouts(AttnCall *c, const BoundCall *bc, int private_out, int f32_out);

#endif
