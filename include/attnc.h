/* attnc.h — the one public header of libattnc.
 *
 * A program parses and checks a `.attn` spec (attnc_spec), compiles one of
 * its attentions for a backend (attnc_kernel), and calls the kernel with
 * Q, K, V, O, sizes, params and captured tensors.  Every object is an opaque
 * handle freed by its own *_free function.  The library never prints and
 * never exits: each call returns an attnc_status and, where it can fail at
 * run time, fills a caller-owned attnc_error with one line of text.
 *
 * By default tensors are float32, row-major, contiguous:
 *   Q[B,H,Lq,D]  K[B,Hkv,Lk,D]  V[B,Hkv,Lk,Dv]  O[B,H,Lq,Dv]  LSE[B,H,Lq]
 * and each of Q, K, V, O may instead be f16 or bf16 and strided (attnc_layout:
 * [B, L, H, D] views, slices of a fused QKV buffer) without a copy.
 */
#ifndef ATTNC_H
#define ATTNC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum attnc_status {
    ATTNC_OK = 0,
    ATTNC_ERR_SPEC = 1,     /* the spec has errors: see attnc_spec_diagnostics */
    ATTNC_ERR_USAGE = 2,    /* a bad argument: unknown variant, backend, option */
    ATTNC_ERR_RUNTIME = 3,  /* a call failed: shapes, params, tensors, indices */
    ATTNC_ERR_NOMEM = 5,    /* out of memory */
    ATTNC_ERR_INTERNAL = 6  /* a bug in attnc: please report it */
} attnc_status;

/* One line describing why a call failed; filled by every call that takes one. */
typedef struct attnc_error {
    attnc_status status;
    char message[512];
} attnc_error;

typedef enum attnc_type { ATTNC_INT = 0, ATTNC_FLOAT = 1, ATTNC_BOOL = 2 } attnc_type;

typedef enum attnc_backend {
    ATTNC_BACKEND_DEFAULT = 0, /* the fastest backend this build has */
    ATTNC_BACKEND_INTERP = 1,  /* the reference interpreter (float64, no tiling) */
    ATTNC_BACKEND_LLVM = 2,
    ATTNC_BACKEND_TCC = 3,
    ATTNC_BACKEND_CUDA_EMU = 4,
    ATTNC_BACKEND_REFPLAN = 5, /* the kernel plan run by a scalar float64 reference: tests the middle end */
    /* (version 0.4) compiled at run time by NVRTC for the first CUDA device
     * and run there; the driver and NVRTC are loaded when first needed
     * (docs/cuda.md "The cuda backend") */
    ATTNC_BACKEND_CUDA = 6
} attnc_backend;

/* ---- specs ------------------------------------------------------------ */

typedef struct attnc_spec attnc_spec;

/* Parse and check the file at `path`.  Returns ATTNC_OK, ATTNC_ERR_SPEC (the
 * spec is returned with its diagnostics), ATTNC_ERR_RUNTIME (unreadable file,
 * message in err) or ATTNC_ERR_NOMEM.  *out is set unless the file could not
 * be read. */
attnc_status attnc_spec_from_file(const char *path, attnc_spec **out, attnc_error *err);

/* Parse and check `len` bytes of spec text; `filename` only names it in
 * diagnostics.  The text may contain any bytes, NULs included. */
attnc_status attnc_spec_from_string(const char *filename, const char *text, size_t len,
                                    attnc_spec **out, attnc_error *err);

/* Number of errors found; 0 means the spec can be compiled. */
int attnc_spec_error_count(const attnc_spec *spec);

/* All diagnostics, rendered as `FILE:LINE:COL: error: MSG`, the source line
 * and a caret underline; "" when there are none.  Owned by the spec. */
const char *attnc_spec_diagnostics(const attnc_spec *spec);

/* The attentions defined in the file (not the prelude), in file order. */
int attnc_spec_variant_count(const attnc_spec *spec);
const char *attnc_spec_variant_name(const attnc_spec *spec, int i);

/* Free a spec; kernels compiled from it stay valid. NULL is ignored. */
void attnc_spec_free(attnc_spec *spec);

/* ---- compiling -------------------------------------------------------- */

typedef struct attnc_define {
    const char *name;  /* a param of the variant */
    const char *value; /* its value as text: "8", "0.5", "true" */
} attnc_define;

typedef struct attnc_options {
    attnc_backend backend;
    int threads;                 /* worker threads per call; 0 = all cores */
    const attnc_define *defines; /* params fixed at compile time (-D) */
    int n_defines;
    int tile_q, tile_k;          /* tile sizes in rows of Q and K; 0 = the backend's choice */
    int flags;                   /* ATTNC_OPT_* */
} attnc_options;

enum {
    /* Move biases a * (x(q) - y(kv)) (ALiBi under a causal mask, decay) into
     * the QK product as rank-1 columns.  Costs float32 accuracy at long
     * contexts; see docs/middle-end.md. */
    ATTNC_OPT_SEPARABLE_BIAS = 1,
    /* Calls with few query rows (decode: Lq < the q tile) put the query
     * heads that share a kv head into one work item, so K and V are read
     * once for all of them; this flag keeps one head per item (version 2). */
    ATTNC_OPT_NO_PACK_HEADS = 2,
    /* Calls with fewer work items than threads split the keys of each item
     * across threads and merge the partial results exactly (split-KV: the
     * result then depends on the thread count, by rounding only); decode
     * calls whose K or V interleave the rows of several kv heads ([B, Lk,
     * Hkv, D], vLLM's pages) split the keys into chunks of about 8 MiB the
     * same way (docs/decode.md); this flag keeps every item whole
     * (version 2). */
    ATTNC_OPT_NO_KV_SPLIT = 4,
    /* The GPU backends (cuda-emu) multiply float32 Q, K and V on tensor cores
     * through TF32 (10-bit mantissas, as FlexAttention and Triton do by
     * default; docs/cuda.md gives the error); this flag computes them in
     * exact float32 on the scaffold kernel instead, at its speed. */
    ATTNC_OPT_EXACT_F32 = 8,
    /* Attentions whose masks read q and kv as coordinates of a grid (q % W,
     * q / W) run, when the grid divides into tiles, on rows in block order
     * so that a tile is a 2-D block (docs/multidim-tiles.md); this flag
     * keeps the 1-D tiles of consecutive rows. */
    ATTNC_OPT_NO_GRID_TILES = 16
};

typedef struct attnc_kernel attnc_kernel;

/* Compile attention `variant` (NULL: the file's only attention) of a checked
 * spec.  `opts` may be NULL for defaults. */
attnc_status attnc_compile(const attnc_spec *spec, const char *variant, const attnc_options *opts,
                           attnc_kernel **out, attnc_error *err);

/* The name of the attention a kernel computes. */
const char *attnc_kernel_variant(const attnc_kernel *kernel);

/* The backend a kernel was compiled for (never ATTNC_BACKEND_DEFAULT). */
attnc_backend attnc_kernel_backend(const attnc_kernel *kernel);

/* 1 if the kernel normalises with softmax (O is a convex combination of V
 * rows); 0 if the attention has a `weight` clause. */
int attnc_kernel_is_softmax(const attnc_kernel *kernel);

/* Free a kernel. NULL is ignored. */
void attnc_kernel_free(attnc_kernel *kernel);

/* ---- what a kernel needs from the caller ------------------------------ */

typedef struct attnc_sizes {
    int64_t B, H, Hkv, Lq, Lk, D, Dv;
} attnc_sizes;

typedef struct attnc_param {
    const char *name;
    attnc_type type; /* ATTNC_FLOAT accepts an int param's value only if integral */
    int64_t i;       /* used when type == ATTNC_INT */
    double f;        /* used when type == ATTNC_FLOAT */
    int b;           /* used when type == ATTNC_BOOL */
} attnc_param;

typedef enum attnc_dtype { ATTNC_I32 = 0, ATTNC_F32 = 1 } attnc_dtype;

#define ATTNC_MAX_RANK 8

typedef struct attnc_tensor {
    const char *name;
    attnc_dtype dtype;
    int rank;
    int64_t shape[ATTNC_MAX_RANK];
    const void *data; /* int32_t or float, row-major, contiguous */
} attnc_tensor;

/* Params (unbound ones, with their defaults) and tensors a kernel reads. */
int attnc_kernel_param_count(const attnc_kernel *kernel);
/* Name, type and whether it has a default (then *def holds it, may be NULL). */
const char *attnc_kernel_param_info(const attnc_kernel *kernel, int i, attnc_type *type,
                                    int *has_default, attnc_param *def);
/* Convert a param value written as text ("8", "-0.5", "true") to an
 * attnc_param for param `name`; out->name points into the kernel. */
attnc_status attnc_kernel_param_from_text(const attnc_kernel *kernel, const char *name, const char *text,
                                          attnc_param *out, attnc_error *err);
int attnc_kernel_tensor_count(const attnc_kernel *kernel);
const char *attnc_kernel_tensor_info(const attnc_kernel *kernel, int i, attnc_dtype *dtype, int *rank);

/* The shape tensor `i` must have for these sizes and params. */
attnc_status attnc_kernel_tensor_shape(const attnc_kernel *kernel, int i, const attnc_sizes *sizes,
                                       const attnc_param *params, int n_params, int64_t *shape,
                                       attnc_error *err);

/* A range of values for int tensor `i` that keeps the spec's indexing in
 * bounds where the spec uses the tensor's elements directly as indices of
 * another tensor: [*lo, *hi).  Elsewhere [0, 4).  For making test inputs. */
attnc_status attnc_kernel_tensor_value_range(const attnc_kernel *kernel, int i, const attnc_sizes *sizes,
                                             const attnc_param *params, int n_params, int64_t *lo, int64_t *hi,
                                             attnc_error *err);

/* ---- calling ---------------------------------------------------------- */

/* The element type of Q, K, V or O (version 2).  Kernels convert on load and
 * compute in float32; O is rounded once, on store (round to nearest even).
 * f16 is IEEE binary16, bf16 bfloat16; both are passed as 16-bit words. */
typedef enum attnc_elem { ATTNC_ELEM_F32 = 0, ATTNC_ELEM_F16 = 1, ATTNC_ELEM_BF16 = 2 } attnc_elem;

/* How Q, K, V, O or LSE is stored (version 2).  All zero (the default of a
 * zero-initialised attnc_args): float32, contiguous [B, H, L, D] — exactly
 * version 1.  The tensor's pointer in attnc_args points at element
 * [0, 0, 0, 0] (cast f16 and bf16 data to the pointer's type). */
typedef struct attnc_layout {
    attnc_elem elem;   /* LSE: ATTNC_ELEM_F32 only */
    /* elements between neighbours along [B, H (Hkv for K, V), L, D]; all 0:
     * contiguous.  No stride may be negative; stride[3] must be 1 (rows are
     * contiguous) unless D (Dv) is 1 or less.  LSE: [B, H, Lq], stride[3]
     * unused.  O's and LSE's strides must not make two elements share memory,
     * and O and LSE must not overlap Q, K or V. */
    int64_t stride[4];
    /* elements the buffer holds from the pointer on; the strides must stay
     * inside it.  0: not given (the caller vouches for the strides). */
    int64_t extent;
} attnc_layout;

typedef struct attnc_args {
    attnc_sizes sizes;
    const float *q, *k, *v;
    float *o;   /* written on success only */
    float *lse; /* optional (NULL); written on success only */
    const attnc_param *params;
    int n_params;
    const attnc_tensor *tensors;
    int n_tensors;
} attnc_args;

/* The layouts of one call (version 2); all zero: version 1's. */
typedef struct attnc_layouts {
    attnc_layout q, k, v, o, lse;
} attnc_layouts;

/* Run the kernel once.  Thread-safe: one kernel may be run from several
 * threads at once.  On any error nothing is written to O or LSE. */
attnc_status attnc_kernel_run(const attnc_kernel *kernel, const attnc_args *args, attnc_error *err);

/* The same with element types and strides for Q, K, V, O and LSE (version
 * 2; `layouts` NULL: attnc_kernel_run).  A bad layout is ATTNC_ERR_USAGE. */
attnc_status attnc_kernel_run_layout(const attnc_kernel *kernel, const attnc_args *args,
                                     const attnc_layouts *layouts, attnc_error *err);

/* A batch of sequences of different lengths packed without padding, and/or
 * K and V in a paged cache (version 2; docs/decode.md).  Each sequence is
 * computed as a call of its own: the spec sees B = 1 (b = 0) and that
 * sequence's Lq and Lk; params and captured tensors are shared by every
 * sequence and checked against each sequence's sizes (a tensor shaped by Lq
 * or Lk fits only sequences of that length: the others fail).
 *
 * args.sizes.B is the number of sequences (H and Hkv must be positive).  The L dimension of a tensor
 * holds every sequence's rows one after another; zero strides mean
 * [rows, heads, D] ("THD", FlashAttention's varlen layout) for Q, K, V and
 * O, and [H, rows] for LSE.  On any error nothing is written. */
typedef struct attnc_batch {
    /* Sequence b's query rows are rows [q_start[b], q_start[b + 1]) of Q, O
     * and LSE (B + 1 entries, non-decreasing, q_start[B] <= sizes.Lq, the
     * rows the buffers hold).  NULL: sizes.Lq rows each, one after another. */
    const int64_t *q_start;
    /* Its keys are rows [k_start[b], k_start[b + 1]) of K and V (likewise,
     * k_start[B] <= sizes.Lk).  NULL: sizes.Lk each, or kv_len with pages. */
    const int64_t *k_start;
    /* A paged KV cache (page_size > 0): K and V hold num_pages pages of
     * page_size rows, page p's row r being row p * page_size + r of K's and
     * V's L dimension (zero strides: [num_pages, page_size, Hkv, D]);
     * key kv of sequence b is row kv % page_size of page
     * block_table[b * pages_per_seq + kv / page_size].  A page id outside
     * [0, num_pages) among the pages a sequence uses is a runtime error. */
    int64_t page_size, num_pages, pages_per_seq;
    const int32_t *block_table;
    /* keys of each sequence (paged), at most pages_per_seq * page_size;
     * NULL: sizes.Lk each */
    const int64_t *kv_len;
    /* (version 0.3) Elements from page p of K (of V) to page p + 1; 0: what
     * page_size says above, page_size * stride[2].  Given, page p's row r of
     * kv head h is element p * k_page_stride + h * stride[1] + r * stride[2]
     * (+ d) of K, whose layout's strides then describe ONE page (stride[0]
     * is not used).  Head-major pages ("HND", [num_pages, Hkv, page_size, D],
     * which decode reads about 3x faster than [num_pages, page_size, Hkv, D]):
     * strides {0, page_size * D, D, 1}, k_page_stride Hkv * page_size * D
     * (V: Dv).  Pages must not share memory, and with an extent the last one
     * must end inside it (else ATTNC_ERR_USAGE).  docs/decode.md. */
    int64_t k_page_stride, v_page_stride;
} attnc_batch;

/* Run the kernel over a ragged and/or paged batch (version 2).  A bad batch
 * or layout is ATTNC_ERR_USAGE; a bad page id, or a sequence's call
 * failing, ATTNC_ERR_RUNTIME (the message names the sequence). */
attnc_status attnc_kernel_run_batch(const attnc_kernel *kernel, const attnc_args *args, const attnc_layouts *layouts,
                                    const attnc_batch *batch, attnc_error *err);

/* ---- gradients (version 2) -------------------------------------------- */

/* Where the gradient of one float tensor of the kernel goes: float32,
 * row-major, contiguous, with the tensor's shape (attnc_kernel_tensor_shape). */
typedef struct attnc_tensor_grad {
    const char *name;
    float *data;
} attnc_tensor_grad;

/* A backward call: the gradients of the scalar sum(O * dO) + sum(LSE * dLSE)
 * (attn-language.md 9.5).  Outputs are overwritten, not accumulated into,
 * and written on success only; a NULL output is not computed. */
typedef struct attnc_grad {
    const void *dout;  /* dO, with O's dims [B, H, Lq, Dv]; NULL: zero */
    const float *dlse; /* dLSE, with LSE's dims [B, H, Lq]; NULL: zero */
    void *dq, *dk, *dv; /* outputs with Q's, K's and V's dims; GQA: dK, dV sum over each group's query heads */
    const attnc_tensor_grad *dtensors; /* float tensors only, each named at most once */
    int n_dtensors;
    /* element types and strides as attnc_layout says; all zero: float32,
     * contiguous.  dlse: float32 only.  Outputs must not overlap anything. */
    attnc_layout dout_layout, dlse_layout, dq_layout, dk_layout, dv_layout;
} attnc_grad;

/* The backward pass of one forward call (version 2).  `args` and `layouts`
 * are the forward call's: Q, K, V, params and tensors as it had them, and
 * its outputs O and LSE (both required), which are read here.  Writes the
 * gradients `grad` asks for.  ATTNC_ERR_USAGE for bad arguments or a
 * backend without a backward pass; runtime errors as the forward's. */
attnc_status attnc_kernel_backward(const attnc_kernel *kernel, const attnc_args *args, const attnc_layouts *layouts,
                                   const attnc_grad *grad, attnc_error *err);

/* 1 if the kernel's backend has a backward pass (version 2). */
int attnc_kernel_has_backward(const attnc_kernel *kernel);

/* ---- the cuda backend (version 0.4; docs/cuda.md) ------------------------ */

/* Run a kernel of backend ATTNC_BACKEND_CUDA on DEVICE memory: Q, K, V, O
 * and LSE in `args` are device pointers of the first CUDA device (layouts as
 * attnc_kernel_run_layout; NULL: float32, contiguous); params and captured
 * tensors stay in host memory (the tile analysis reads the tensors; they
 * are copied to the device per call).  `stream` is a CUstream /
 * cudaStream_t (NULL: the default stream); the call is ordered on it and
 * returns when the kernel has finished.  Errors as attnc_kernel_run; after a
 * runtime error of an element O and LSE are unspecified (the message names
 * the element: Q, K and V are copied back for the interpreter). */
attnc_status attnc_kernel_run_cuda(const attnc_kernel *kernel, const attnc_args *args, const attnc_layouts *layouts,
                                   void *stream, attnc_error *err);

/* Device memory of the cuda backend's device, for callers that do not link
 * CUDA themselves (version 0.4): attnc_cuda_alloc gives n bytes (256-byte
 * aligned) in *out; attnc_cuda_free frees them (NULL ignored);
 * attnc_cuda_copy copies n bytes host -> device (to_device 1) or device ->
 * host (0) and returns when done.  Without a driver or device: the status
 * and one line, as attnc_compile gives. */
attnc_status attnc_cuda_alloc(size_t n, void **out, attnc_error *err);
void attnc_cuda_free(void *p);
attnc_status attnc_cuda_copy(void *dst, const void *src, size_t n, int to_device, attnc_error *err);

/* ---- generated code as text ------------------------------------------ */

enum {
    ATTNC_EMIT_PASSES = 1 /* with target "ir": the IR after every pass of the middle end */
};

/* The kernel's compiled form as text; target "ir" gives the expression IR
 * and the kernel plan.  When `call` is not NULL its sizes, params and
 * tensors are bound and the tile map of that call is summarised too.
 * *out is malloc'd: free it with attnc_free. */
attnc_status attnc_kernel_emit(const attnc_kernel *kernel, const char *target, const attnc_args *call, int flags,
                               char **out, attnc_error *err);
void attnc_free(void *p);

/* How many (b, h, q, kv) elements the masks keep in this call (the FLOP
 * count of a masked attention): exact, evaluated on partial tiles only.
 * Q, K, V and O in `call` are not read (NULL is fine).  A mask that raises
 * a runtime error at a pair it evaluates: ATTNC_ERR_RUNTIME with the
 * message a run gives (errors of biases and scores are the run's). */
attnc_status attnc_kernel_kept_pairs(const attnc_kernel *kernel, const attnc_args *call, int64_t *kept,
                                     attnc_error *err);

/* What the masks keep for query head h of batch b in a call, as a picture
 * of rows x cols pixels over its Lq x Lk pairs (version 0.5; `attnc show`):
 * 1 <= rows <= Lq, 1 <= cols <= Lk, and pixel (r, c) holds the pairs with
 * q * rows / Lq == r and kv * cols / Lk == c.  kept[r * cols + c] is the
 * fraction of its pairs the masks keep (exact); tiles (NULL: not wanted)
 * the kernel's tile map there: 0 no tile visited (EMPTY), 1 FULL (no mask
 * evaluated), 2 PARTIAL, the highest among the tiles the pixel touches.
 * Q, K, V and O in `call` are not read (NULL is fine); mask errors as
 * attnc_kernel_kept_pairs, with kept and tiles left as they were. */
attnc_status attnc_kernel_picture(const attnc_kernel *kernel, const attnc_args *call, int64_t b, int64_t h, int rows,
                                  int cols, float *kept, uint8_t *tiles, attnc_error *err);

/* ---- merging partial results ------------------------------------------ */

/* How attnc_merge combines: ATTNC_MERGE_SOFTMAX for a softmax attention,
 * ATTNC_MERGE_WEIGHT for one with a `weight` clause (attnc_kernel_is_softmax
 * says which). */
typedef enum attnc_merge_kind { ATTNC_MERGE_SOFTMAX = 0, ATTNC_MERGE_WEIGHT = 1 } attnc_merge_kind;

/* Merge (O1, LSE1) over one set of keys and (O2, LSE2) over a disjoint set
 * into (O, LSE) over both: what one call over all keys gives (cascade /
 * shared-prefix attention, callers that split the keys themselves).
 * float32, contiguous: O* are [rows, dv], LSE* [rows].  o, lse may be o1,
 * lse1 or o2, lse2 (in place); no other overlap of an output with anything.
 * SOFTMAX: the LSE-weighted mean (every pointer required); a part with
 * LSE = -inf is empty (its O is not read); NaN in an LSE makes the row NaN.
 * WEIGHT: O = O1 + O2, LSE = log(exp(LSE1) + exp(LSE2)) (meaningful when each
 * part's sum of weights is >= 0); lse1, lse2, lse may all be NULL (O only).
 * Bad arguments are ATTNC_ERR_USAGE, nothing written; docs/merge.md. */
attnc_status attnc_merge(attnc_merge_kind kind, int64_t rows, int64_t dv, const float *o1, const float *lse1,
                         const float *o2, const float *lse2, float *o, float *lse, attnc_error *err);

/* ---- misc ------------------------------------------------------------- */

const char *attnc_backend_name(attnc_backend backend);
/* Parse "llvm", "tcc", "interp", "cuda-emu", "refplan", "cuda"; returns 0 if unknown. */
int attnc_backend_parse(const char *name, attnc_backend *out);
/* Whether this build has the backend and this machine can run it (cuda: the
 * driver and NVRTC load and a device exists; attnc_compile says why not). */
int attnc_backend_available(attnc_backend backend);

/* The version of this header: 0.1 was the version 1 API; 0.2 adds version
 * 2's element types and strides, ragged batches and paged KV caches,
 * attnc_merge and gradients; 0.3 page strides (attnc_batch.k_page_stride,
 * v_page_stride: head-major pages); 0.4 the cuda backend (ATTNC_BACKEND_CUDA,
 * attnc_kernel_run_cuda, attnc_cuda_alloc / free / copy); 0.5 attnc_kernel_picture.  (CMakeLists.txt
 * reads these lines.) */
#define ATTNC_VERSION_MAJOR 0
#define ATTNC_VERSION_MINOR 5
#define ATTNC_VERSION_PATCH 0

/* The version of the library, "MAJOR.MINOR.PATCH": a program built against
 * a header of minor version m may check at run time that the library it
 * loaded has at least that minor version (what it calls exists). */
const char *attnc_version(void);

#ifdef __cplusplus
}
#endif
#endif
