/* backend.h — the interface every backend implements (backends/llvm,
 * backends/c, backends/cuda, and the interpreter and refplan in runtime/).
 * The runtime's registry (runtime/registry.c) finds the implementation of an
 * attnc_backend, and runs its result through runtime/launch.c (or the
 * backend's own `run`: the interpreter); a backend only turns a Plan into an
 * AttnTileFn (and, for `attnc emit`, into text).  Backends see the middle end
 * and below, never the runtime. */
#ifndef ATTNC_BACKEND_H
#define ATTNC_BACKEND_H
#include "attnc.h"
#include "call.h"
#include "kernel_abi.h"
#include "plan.h"

/* A version-2 attention's kernels around the attention kernel (spec
 * 9.2-9.4) when the backend has its own (cuda-emu: the CUDA text's,
 * backends/cuda/cuda_emit_v2.c; api/api_cuda_v2.c runs them): each computes
 * every index of call c, the attention's call as the caller made it (Q, K,
 * O and LSE in the caller's layouts; tensor_data and tensor_shape with the
 * tables of dot products after the attention's tensors).  rows: Q's (is_k
 * 0) or K's rows as float32 [B][heads][L][D], rotated with a rotary; table:
 * table t of those rows x; sinks: [B][H][Lq]; merge: the kernel's float32
 * o32 [B][H][Lq][Dv] and lse32 with the sinks into c's O and LSE.  *fault
 * is ORed with 1 on a runtime error of the spec. */
typedef struct V2Kernels {
    void (*rows)(const AttnCall *c, int is_k, float *out, int *fault);
    void (*table)(const AttnCall *c, int t, const float *x, float *table);
    void (*sinks)(const AttnCall *c, float *sinks, int *fault);
    void (*merge)(const AttnCall *c, const float *o32, const float *lse32, const float *sinks);
} V2Kernels;

typedef struct CompiledKernel {
    AttnTileFn tile;
    AttnScratchFn scratch_bytes;
    const void *kernel_data; /* passed to the kernel as call->kernel_data */
    int packs; /* 1: the kernel computes work items of packed heads (AttnCall.pack > 1) */
    int pages; /* 1: the kernel reads a paged K and V in place (AttnCall.kv_page) */
    /* 1: the kernel takes kv tiles of AttnCall.bk keys, fewer than the plan's bk, so that pages shorter than the
     * plan's kv tile are read in place a page (or part of one) per tile (runtime/launch.h: LaunchPages.kv_tile) */
    int short_kv_tiles;
    /* 1: the kernel widens 16-bit K and V into float32 tile by tile, at every visit of a tile, and computes the
     * same with float32 K and V of the same values: the launcher may widen a kv head's rows once instead
     * (runtime/launch.c, pack_head) */
    int widens;
    /* 1: the kernel reads Q and writes O and LSE through AttnCall.q_rows (runtime/launch.c: launch_grid then reads
     * and writes the caller's rows in place, and copies only K and V into block order) */
    int maps_rows;
    /* 1: the kernel reads float32 K and V through AttnCall.kv_rows (launch_grid then copies nothing) */
    int maps_kv_rows;
    /* the backward pass (kernel_abi.h, AttnGradCall), run by runtime/launch_grad.c; NULL: none */
    AttnGradTileFn grad_tile;
    AttnScratchFn grad_scratch_bytes;
    /* NULL, or run once per launch before scratch_bytes, on the launch's
     * first AttnCall: a backend that builds code on first use (llvm) builds
     * what the call needs here, so that a failure is the call's error */
    attnc_status (*prepare)(const AttnCall *call, attnc_error *err);
    /* the same for the backward pass (runtime/launch_grad.c), instead of
     * prepare when not NULL: llvm builds its backward kernel on the first
     * backward call, and a forward-only user never pays for it */
    attnc_status (*grad_prepare)(const AttnCall *call, attnc_error *err);
    /* NULL, or a version-2 attention's own kernels around this one (V2Kernels) */
    const V2Kernels *v2;
    /* NULL, or the kernel of the plan's multi-dimensional tiles (Plan.grid's
     * plan), compiled by the library for the backends run by runtime/launch.c */
    const struct CompiledKernel *grid;
    /* NULL, or the kernel's last tile map for the next call of the same shape (runtime/map_cache.h; made and
     * freed by the library, used by runtime/launch.c) */
    struct MapCache *maps;
    /* NULL, or the buffers of the rows in block order kept for the next call (runtime/kept_buffers.h; made and
     * freed by the library when grid is set, used by runtime/launch.c) */
    struct KeptBuffers *grid_rows;
    /* NULL, or the buffers of one kv head's K and V rows copied back to back kept for the next call
     * (runtime/launch.c: pack_head; made and freed by the library) */
    struct KeptBuffers *packed_rows;
    /* NULL, or the backward pass's buffers (dO, dQ, dK, dV, packed Q, K, V, scratch) kept for the next backward
     * call (runtime/launch_grad.c; made and freed by the library) */
    struct KeptBuffers *grad_rows;
} CompiledKernel;

/* A backend whose kernels run on a device (the `cuda` backend): device
 * memory, copies, and one launch.  runtime/launch_device.c runs a call
 * through these (copies in and out for host pointers; none for device
 * pointers) and names a fault with the interpreter.  Each returns ATTNC_OK
 * or a status with err's one line. */
typedef struct DeviceOps {
    /* n bytes of device memory (256-byte aligned); free: NULL is ignored */
    attnc_status (*alloc)(size_t n, void **out, attnc_error *err);
    void (*free)(void *p);
    /* n bytes to the device (to_device) or from it, ordered on `stream`
     * (NULL: the default stream); returns when the copy is done */
    attnc_status (*copy)(void *dst, const void *src, size_t n, int to_device, void *stream, attnc_error *err);
    /* Run the kernel over `call` on `stream`, returning when it finished:
     * every pointer of call is device memory but params, tensor_data and
     * tensor_shape, which are host arrays (tensor_data's entries device
     * pointers); scratch: 64 bytes of device memory.  *faulted: whether an
     * element raised a runtime error (then O and LSE are unspecified). */
    attnc_status (*launch)(const CompiledKernel *ck, const AttnCall *call, void *stream, void *scratch, int *faulted,
                           attnc_error *err);
    /* NULL, or queue one of a version-2 attention's kernels on `stream` (V2Kernels' meaning, device memory but
     * call's params, tensor_data and tensor_shape): which 0 rows (arg is_k; p0 out, p1 fault), 1 table (arg t;
     * p0 x, p1 table), 2 sinks (p0 sinks, p1 fault), 3 merge (p0 o32, p1 lse32, p2 sinks); fault a device int */
    attnc_status (*v2_launch)(const CompiledKernel *ck, int which, const AttnCall *call, int arg, void *p0, void *p1,
                              void *p2, void *stream, attnc_error *err);
} DeviceOps;

typedef struct BackendImpl {
    attnc_backend id;
    /* NULL, or whether this machine can run the backend (a driver, a
     * device): ATTNC_OK, or the one line saying why not (err may be NULL) */
    attnc_status (*probe)(attnc_error *err);
    /* NULL, or the device the kernels run on (then compile's CompiledKernel
     * has no tile function, and calls go through runtime/launch_device.c) */
    const DeviceOps *device;
    int can_run; /* 0: this build can emit its text but not compile kernels (libattnc.so without libtcc) */
    /* Compile p into ck; *state is the backend's (freed by release), and
     * ck->kernel_data may point into it.  The plan outlives the state. */
    attnc_status (*compile)(const Plan *p, const attnc_options *opts, CompiledKernel *ck, void **state,
                            attnc_error *err);
    void (*release)(void *state);
    /* Text of the compiled form for `target` ("c", "llvm-ir", "asm", ...):
     * ATTNC_ERR_USAGE when the target is not this backend's. */
    attnc_status (*emit)(const Plan *p, const attnc_options *opts, const char *target, StrBuf *out,
                         attnc_error *err);
    /* Run ck over one bound call (the args' empty arrays replaced by a dummy)
     * instead of the tiled launcher, runtime/launch.c: the interpreter's way.
     * NULL for every backend whose kernel follows kernel_abi.h. */
    attnc_status (*run)(const Plan *p, const CompiledKernel *ck, const BoundCall *bc, const attnc_args *args,
                        int threads, attnc_error *err);
    /* The backward pass of one bound call (version 2; middle/call.h's
     * BoundGrad) instead of runtime/launch_grad.c's, the interpreter's way:
     * the gradients bg asks for, written only on success.  NULL for a
     * backend whose kernels follow kernel_abi.h (CompiledKernel.grad_tile,
     * which may be NULL too: then the kernel has no backward pass). */
    attnc_status (*backward)(const Plan *p, const CompiledKernel *ck, const BoundCall *bc, const attnc_args *args,
                             const BoundGrad *bg, int threads, attnc_error *err);
    /* 1: the kernel reads and writes every layout bind_call_layout accepts
     * (element types and strides, BoundCall.layout); 0: float32, contiguous only */
    int layouts;
    /* The float lanes of the vectors the backend's kernels use (the plan's
     * and schedule's vec_width); NULL: the plan's default. */
    int (*vec_width)(void);
    /* The diagonal tables (plan.h: TABLES_*) the kernel translates in the
     * schedule's diag block (SB_DIAG), so the middle end makes them for it
     * (PlanOptions.toeplitz); 0: none */
    int toeplitz;
} BackendImpl;

/* s[i * ld + j] = sum over d < depth of a[i * lda + d] * bt[d * ld + j], for
 * i < nr and j < ld: templates/dense.c's product, the copy best for this CPU
 * (backends/c/jit_dense.c), for the library's own small products (the tables
 * of runtime/rows_fill.c). */
typedef void (*DenseProductFn)(const float *a, int64_t lda, int64_t nr, int64_t depth, const float *bt, int64_t ld,
                               float *s);
DenseProductFn backend_dense_product(void);

#endif
