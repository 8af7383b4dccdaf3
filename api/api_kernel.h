/* api_kernel.h — the kernel handle's insides, shared by the files of api/
 * (api.c makes kernels; api_batch.c, api_grad.c run them).  Nothing outside
 * api/ includes it. */
#ifndef ATTNC_API_KERNEL_H
#define ATTNC_API_KERNEL_H
#include "attnc.h"
#include "backend.h"
#include "call.h"
#include "diag.h"
#include "kept_buffers.h"
#include "launch.h"
#include "plan.h"
#include "rope_sink.h"
#include "rows_items.h"
#include "rows_table.h"
#include "sema.h"

/* A parsed and checked file, with the prelude it was checked against. */
typedef struct Compiled {
    Arena *arena;
    Diag diag;
    Source src, prelude_src;
    Program *prog;
} Compiled;

/* A compiled kernel: its own copy of the attention, its plan, the backend's result. */
struct attnc_kernel {
    Compiled c;
    char *text, *name; /* own copies: the kernel outlives its spec */
    const Attention *attn;
    attnc_backend backend;
    int threads;
    FixedParams fixed;
    int *unbound; /* indexes of params the caller may pass */
    int nunbound;
    Plan *plan;   /* the middle end's description of the kernel (of rows->attn when rows is set) */
    RowsRewrite *rows; /* its dot products as per-call tables (middle/rows_table.h), or NULL */
    const BackendImpl *impl; /* how it was compiled and is run */
    CompiledKernel ck;
    void *state;
    /* the kernel of plan->grid's plan (multi-dimensional tiles), ck.grid points at it; gstate its backend state */
    CompiledKernel gck;
    void *gstate;
    attnc_options opts; /* as compiled (defines dropped: see fixed) */
    RopeScratch *_Atomic rope; /* api_rope_sink.c: the last call's rotation buffers (runtime/rope_sink.h) */
    /* api_batch.c: the last batch's buffer of a sequence's K and V rows gathered from its pages, kept for the next
     * (a fresh buffer faulted in every call took most of a gathered call's time) */
    KeptBuffers *gathered;
};

/* The caller's args with a valid pointer (dummy) for every empty array,
 * which the API allows to be NULL: backends may then offset Q, K, V and O
 * freely.  Nothing is read or written through them. */
attnc_args api_with_empty_arrays(const attnc_args *args, float *dummy);

/* Whether the call's layouts are version 1's: float32, contiguous. */
int api_plain_layouts(const BoundCall *bc);

/* A call of a kernel with k->rows as its plan sees it: bc with the tables
 * appended to its tensors (computed from Q and K, or zeros when q is NULL:
 * for the tile map only).  q_items: the tables of Q rows are made per work
 * item by `items` (rows_items.h; NULL when there are none), for
 * launch_run_items, their data NULL in bc. */
typedef struct RowsCall {
    BoundCall bc;
    Attention attn;
    attnc_tensor *tables;
    const attnc_tensor **all;
    int n;
    RowsItems *items;
} RowsCall;

attnc_status api_rows_bind(const attnc_kernel *k, const BoundCall *bc, const void *q, const void *kk, int threads,
                           int q_items, RowsCall *rc, attnc_error *err);
void api_rows_release(RowsCall *rc);

/* The layout of a float32, contiguous [B, heads, rows, n] tensor. */
BoundLayout api_contiguous_f32(int64_t heads, int64_t rows, int64_t n);

/* A call of a version-2 attention through the CUDA text's own kernels
 * around the attention kernel (api_cuda_v2.c): ops NULL, cuda-emu's
 * (k->ck.v2) on host memory; else the device's (ops->v2_launch) on device
 * pointers and `stream`. */
attnc_status api_run_v2_kernels(const attnc_kernel *k, BoundCall *bc, const attnc_args *args, int threads,
                                const LaunchPages *pages, const DeviceOps *ops, void *stream, attnc_error *err);

/* How api.c runs a bound call on a compiled kernel. */
typedef attnc_status (*ApiRunFn)(const attnc_kernel *k, BoundCall *bc, const attnc_args *args, int threads,
                                 const LaunchPages *pages, attnc_error *err);

/* run, with the attention's rotary applied to Q and K before it and its
 * sinks merged into O and LSE after it (api_rope_sink.c). */
attnc_status api_run_rope_sink(const attnc_kernel *k, BoundCall *bc, const attnc_args *args, int threads,
                               const LaunchPages *pages, ApiRunFn run, attnc_error *err);

/* The backward pass of a compiled kernel whose attention has a rotary, a
 * sink or dots of rows, around the kernel's own (api_grad_v2.c): the
 * gradients bg asks for of the forward call bc (args: its Q, K, V and the
 * merged O and LSE), written only on success.  bc is restored on return. */
attnc_status api_backward_v2(const attnc_kernel *k, BoundCall *bc, const attnc_args *args, const BoundGrad *bg,
                             int threads, attnc_error *err);

#endif
