/* layouts.h — the storage layouts the tests run compiled kernels with
 * (attnc_layouts: f16 / bf16 elements, [B, L, H, D] views, slices of a
 * fused QKV buffer, strided O and LSE with gaps), the buffers that hold
 * them, and the comparison of a 16-bit O against the reference rounded to
 * its type.  Used by tests/test_cgen.c (--layout NAME). */
#ifndef ATTNC_TEST_LAYOUTS_H
#define ATTNC_TEST_LAYOUTS_H
#include <stddef.h>
#include <stdint.h>

#include "attnc.h"

enum { TL_Q, TL_K, TL_V, TL_O, TL_LSE, TL_COUNT };

/* One named layout for one call's sizes, and its buffers. */
typedef struct TestLayout {
    attnc_layouts L;    /* elem and resolved strides (never zero-for-contiguous), extents */
    int64_t n[TL_COUNT][4]; /* each tensor's sizes along [B, H, L, D] (LSE: [B, H, Lq, 1]) */
    int fused;          /* Q, K and V are slices of one buffer */
    void *buf[TL_COUNT]; /* the buffers (fused: buf[TL_Q] holds all three) */
    const void *at[TL_COUNT]; /* element [0,0,0,0] of each tensor */
} TestLayout;

/* The names layout_make knows, for messages. */
extern const char layout_names[];

/* Describe layout `name` for sz; 0 with why when the name is unknown or sz
 * does not fit it (a fused buffer needs Lq == Lk and D == Dv). */
int layout_make(const char *name, const attnc_sizes *sz, TestLayout *tl, char *why, size_t n);

/* Allocate the buffers, fill every byte with a sentinel, and store Q, K, V
 * (contiguous float32 [B,H,L,D]) in them, each rounded to its element type;
 * q, k and v are replaced by what was stored, widened back (the inputs the
 * reference must see).  0 when out of memory. */
int layout_store_inputs(TestLayout *tl, float *q, float *k, float *v);

/* O and LSE of the buffers as contiguous float32 (O widened) into o and
 * lse; NULL when every byte outside their elements still holds the
 * sentinel, else a description of the first one that does not. */
const char *layout_load_outputs(const TestLayout *tl, float *o, float *lse, char *why, size_t n);

/* O (no values, stored as elem) against the reference ref_o: each value
 * must be ref_o rounded to elem to nearest even, or, where ref_o lies within
 * float32 error of a rounding boundary, the value across it.  NULL when all
 * pass, else a description of the first failure.  *mismatches: how many
 * took the second rule. */
const char *layout_compare_o(int elem, const float *o, const float *ref_o, size_t no, size_t *mismatches, char *why,
                             size_t n);

void layout_free(TestLayout *tl);

#endif
