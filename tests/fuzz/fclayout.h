/* fclayout.h — a fuzz case's call with its element type and layout
 * (fclayout.c). */
#ifndef ATTNC_FCLAYOUT_H
#define ATTNC_FCLAYOUT_H
#include "fuzzcase.h"

typedef struct FcLayoutCall {
    void *q, *k, *v, *fused; /* fused: the one buffer of layout 2 (q, k, v point into it) */
    void *o;
    float *lse;
    size_t obytes, lbytes;
    attnc_layouts lay;
    /* layout 3: K and V in pages (attnc_kernel_run_batch with this batch) */
    attnc_batch batch;
    int32_t *table;
    int64_t kv_len;
    /* layout 4 (fcbatch.c): a ragged batch; lq, lk, q_start, k_start are one allocation at lq */
    int64_t *lq, *lk, *q_start, *k_start;
    int64_t ostride_row, ostride_head, lstride_head; /* O [rows, H, Dv] and LSE [H, rows], gaps or not */
} FcLayoutCall;

/* Layout 4 (fcbatch.c): whether case c can run as a batch (every size positive). */
int fcb_applies(const FuzzCase *c);

/* Sequence b's query and key counts (B entries each), drawn from the case's data seed. */
void fcb_lengths(const FuzzCase *c, int64_t *lq, int64_t *lk);

/* The reference of layout 4: interpreter kernel k on each sequence as a call of its own (dense: the case's
 * contiguous float32 call), into the dense O and LSE (NULL: none); rows a sequence lacks are 0. */
attnc_status fcb_reference(const attnc_kernel *k, const FuzzCase *c, const attnc_args *dense, float *o, float *lse,
                           attnc_error *err);

/* fcl_prepare's and fcl_extract's layout 4 (L zeroed by the caller; O and LSE into dense arrays, absent rows 0). */
int fcb_prepare(const FuzzCase *c, const float *q, const float *k, const float *v, int with_lse, FcLayoutCall *L);
void fcb_extract(const FuzzCase *c, FcLayoutCall *L, float *o, float *lse);

enum { FCL_FILL = 0xA5 }; /* what O and LSE's buffers hold before the call, gaps included */

/* Bytes of one element of type elem (0 float32, 1 f16, 2 bf16). */
size_t fcl_elem_bytes(int elem);

/* Element `at` of a buffer of type elem (0 float32, 1 f16, 2 bf16): written rounded, read widened. */
void fcl_put(void *base, int elem, int64_t at, float x);
float fcl_get(const void *base, int elem, int64_t at);

/* Round n floats to elem (1 f16, 2 bf16; 0: as they are), in place. */
void fcl_round(int elem, float *x, size_t n);

/* The layout case c runs with: its own, or the one it falls back to when
 * its shape does not allow it (2: Lq != Lk or D != Dv; 3: B != 1, Lk = 0 or no heads; 4: any size 0). */
int fcl_layout(const FuzzCase *c);

/* Pack the contiguous float32 Q, K, V of case c into its layout; O and LSE
 * (with_lse) buffers filled with a marker.  0, or -1 out of memory. */
int fcl_prepare(const FuzzCase *c, const float *q, const float *k, const float *v, int with_lse, FcLayoutCall *L);

/* Whether O and LSE's buffers still hold only the marker (a failed call). */
int fcl_untouched(const FcLayoutCall *L);

/* O (widened) and LSE back into contiguous float32; 1 when the call wrote
 * outside their elements (a gap), else 0. */
int fcl_extract(const FuzzCase *c, FcLayoutCall *L, float *o, float *lse);

void fcl_free(FcLayoutCall *L);

/* The backward call of case c in its element type and layout (0, 1 or 2; the batch layouts' backward is the
 * contiguous one): Q, K and V as fcl_prepare packs them, O (float32 at O's strides) and LSE holding o and lse,
 * dO (float32 at O's strides) holding dout, and float32 dQ, dK and dV at Q's, K's and V's strides, filled with
 * NaN.  dLSE stays contiguous. */
typedef struct FcGradCall {
    FcLayoutCall f;  /* the forward's tensors and layouts */
    float *o, *lse, *dout, *dq, *dk, *dv;
    attnc_grad grad; /* its dout, dq, dk, dv and their layouts; the caller adds dlse and tensor gradients */
} FcGradCall;
int fcl_grad_prepare(const FuzzCase *c, const float *q, const float *k, const float *v, const float *o,
                     const float *lse, const float *dout, FcGradCall *G);

/* dQ, dK and dV of G back into contiguous float32 arrays. */
void fcl_grad_extract(const FuzzCase *c, const FcGradCall *G, float *dq, float *dk, float *dv);

void fcl_grad_free(FcGradCall *G);

#endif
