/* tensor_io.h — how the float64 references (the interpreter, refplan) read
 * Q, K, V and write O through a call's element types and strides: a load is
 * exact (f16, bf16 and f32 all widen exactly to double); a store rounds the
 * double ONCE to O's type, round to nearest even.  Rounding a double to
 * float32 first and then to a 16-bit type would round twice, and could be
 * one unit off on a tie of the 16-bit type; rounding to float32 "to odd"
 * first (truncate, and set the last bit when anything was dropped) keeps
 * the information the second rounding needs, since float32 has more than
 * two bits more than either 16-bit type (the classic round-to-odd rule). */
#ifndef ATTNC_TENSOR_IO_H
#define ATTNC_TENSOR_IO_H
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "attnc.h"
#include "half.h"

/* Element `off` of a tensor of element type e, exactly. */
static inline double tensor_load(const void *base, attnc_elem e, int64_t off) {
    if (e == ATTNC_ELEM_F32) return ((const float *)base)[off];
    uint16_t w = ((const uint16_t *)base)[off];
    return e == ATTNC_ELEM_F16 ? attnc_f16_to_f32(w) : attnc_bf16_to_f32(w);
}

/* x rounded to float32 to odd: exact values, NaN and infinities as they
 * are; otherwise the float32 toward zero from x with its last bit set. */
static inline float tensor_round_to_odd(double x) {
    float f = (float)x;
    if (isnan(x) || (double)f == x) return f;
    if (fabs((double)f) > fabs(x)) f = nextafterf(f, 0.0f); /* also turns an overflow to inf into FLT_MAX */
    return attnc_f32_from_bits(attnc_f32_bits(f) | 1u);
}

/* x rounded once (nearest even) to e, stored at element `off`. */
static inline void tensor_store(void *base, attnc_elem e, int64_t off, double x) {
    if (e == ATTNC_ELEM_F32) {
        ((float *)base)[off] = (float)x;
        return;
    }
    float odd = tensor_round_to_odd(x);
    ((uint16_t *)base)[off] = e == ATTNC_ELEM_F16 ? attnc_f32_to_f16(odd) : attnc_f32_to_bf16(odd);
}

/* n rows of row_bytes bytes from src, src_stride bytes apart, to dst back to
 * back: Q, K and V rows that lie apart packed (launch.c, launch_grad.c). */
static inline void tensor_copy_rows(char *dst, const char *src, int64_t n, int64_t src_stride, size_t row_bytes) {
    for (int64_t i = 0; i < n; i++) memcpy(dst + i * (int64_t)row_bytes, src + i * src_stride, row_bytes);
}

/* cols 16-bit elements (f16 or bf16: e) widened exactly into float32, as
 * attnc_f16_to_f32 and attnc_bf16_to_f32 do, many at a time
 * (runtime/tensor_widen.c).  A kv head's rows are widened once per call
 * for prefill (launch.c, pack_head). */
void tensor_widen(float *dst, const uint16_t *src, int64_t cols, attnc_elem e);
/* The same without F16C (what hosts without it run; tests/test_half.c
 * checks both on every host). */
void tensor_widen_portable(float *dst, const uint16_t *src, int64_t cols, attnc_elem e);

#endif
