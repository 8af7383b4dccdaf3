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
} FcLayoutCall;

/* Round n floats to elem (1 f16, 2 bf16; 0: as they are), in place. */
void fcl_round(int elem, float *x, size_t n);

/* The layout case c runs with: its own, or the one it falls back to when
 * its shape does not allow it (2: Lq != Lk or D != Dv; 3: B != 1, Lk = 0 or no heads). */
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

#endif
