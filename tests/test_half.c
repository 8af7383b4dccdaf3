/* test_half.c — base/half.h's conversions against independent references.
 *
 * f16: every binary16 value survives f16 -> f32 -> f16 (NaN stays NaN);
 * float32 -> f16 for every float32 whose low 13 bits (the ones rounding
 * drops) are one of 8 patterns (exact, just below/at/above a tie, ...) and
 * whose top 19 bits take every value: 4.2 M values, compared with the
 * nearest binary16 found by binary search in the table of all binary16
 * values (ties to the even one), computed in double.  bf16: every float32
 * whose low 16 bits are one of 7 patterns, compared with the nearer of the
 * two bfloat16 neighbours in double (ties to even, overflow to infinity).
 * runtime/tensor_io.h's tensor_widen (F16C's 8 lanes where the host has
 * them) and tensor_widen_portable (4 lanes), each then a tail, against the
 * scalar widening, bit for bit (but a signalling NaN's quiet bit), on
 * every f16 and bf16 value at every offset into a group of 8. */
#include <math.h>
#include <stdio.h>

#include "half.h"
#include "tensor_io.h"

static double f16val[65536];
static long bad, checked;

static void fail(const char *what, uint32_t u, unsigned got, unsigned want) {
    if (bad++ < 10) printf("FAIL %s %08x: %04x, want %04x\n", what, u, got, want);
}

static int is_f16_nan(uint16_t h) { return (h & 0x7c00) == 0x7c00 && (h & 0x3ff); }
static int is_bf16_nan(uint16_t b) { return (b & 0x7f80) == 0x7f80 && (b & 0x7f); }

/* The nearest binary16 of f, ties to even, from the table (f not NaN). */
static uint16_t ref_f16(float f) {
    uint16_t sign = (attnc_f32_bits(f) >> 16) & 0x8000;
    double x = fabs((double)f);
    if (x >= 65520.0) return sign | 0x7c00; /* 65504 + half an ulp and up */
    int lo = 0, hi = 0x7bff;                /* the finite positives, increasing */
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (f16val[mid] <= x) lo = mid;
        else hi = mid - 1;
    }
    if (lo < 0x7bff) {
        double below = x - f16val[lo], above = f16val[lo + 1] - x;
        if (above < below || (above == below && (lo & 1))) lo++;
    }
    return sign | (uint16_t)lo;
}

/* The nearer bfloat16 neighbour of u's value, ties to even (u not NaN). */
static uint16_t ref_bf16(uint32_t u) {
    double x = attnc_f32_from_bits(u);
    uint32_t lo = u & 0xffff0000u, up = lo + 0x10000u;
    /* the neighbour past the largest float is infinity, which rounds like 2^128 */
    double vup = (up & 0x7fffffffu) >= 0x7f800000u ? (x < 0 ? -0x1p128 : 0x1p128) : (double)attnc_f32_from_bits(up);
    double dlo = fabs(x - (double)attnc_f32_from_bits(lo)), dup = fabs(vup - x);
    return (uint16_t)((dup < dlo || (dup == dlo && ((lo >> 16) & 1))) ? up >> 16 : lo >> 16);
}

int main(void) {
    for (int i = 0; i < 65536; i++) f16val[i] = attnc_f16_to_f32((uint16_t)i);
    for (uint32_t i = 0; i < 65536; i++) {
        float f = attnc_f16_to_f32((uint16_t)i);
        uint16_t back = attnc_f32_to_f16(f);
        checked++;
        if (isnan(f) ? !is_f16_nan(back) : back != i) fail("f16 round trip", i, back, i);
    }
    static const uint32_t f16_low[] = {0, 1, 0x7ff, 0x800, 0xfff, 0x1000, 0x1001, 0x1fff};
    for (uint32_t top = 0; top < (1u << 19); top++)
        for (int k = 0; k < 8; k++) {
            uint32_t u = top << 13 | f16_low[k];
            float f = attnc_f32_from_bits(u);
            uint16_t h = attnc_f32_to_f16(f);
            checked++;
            if (isnan(f) ? !is_f16_nan(h) : h != ref_f16(f)) fail("f32 -> f16", u, h, isnan(f) ? 0x7e00 : ref_f16(f));
        }
    static const uint32_t bf16_low[] = {0, 1, 0x4000, 0x7fff, 0x8000, 0x8001, 0xffff};
    for (uint32_t top = 0; top < 65536; top++)
        for (int k = 0; k < 7; k++) {
            uint32_t u = top << 16 | bf16_low[k];
            float f = attnc_f32_from_bits(u);
            uint16_t b = attnc_f32_to_bf16(f);
            checked++;
            if (isnan(f) ? !is_bf16_nan(b) : b != ref_bf16(u)) fail("f32 -> bf16", u, b, isnan(f) ? 0x7fc0 : ref_bf16(u));
            if (!isnan(f) && (top & 0x7f80) != 0x7f80 && attnc_f32_bits(attnc_bf16_to_f32((uint16_t)top)) != top << 16)
                fail("bf16 -> f32", top, attnc_f32_bits(attnc_bf16_to_f32((uint16_t)top)) >> 16, top);
        }
    static uint16_t all[65536 + 8];
    static float wide[65536 + 8];
    for (int portable = 0; portable < 2; portable++)
    for (int e = ATTNC_ELEM_F16; e <= ATTNC_ELEM_BF16; e++)
        for (int shift = 0; shift < 8; shift++) { /* value i at position i + shift: each value in each lane and the tail */
            for (int i = 0; i < 65536 + 8; i++) all[i] = (uint16_t)(i - shift);
            (portable ? tensor_widen_portable : tensor_widen)(wide, all, 65536 + shift, (attnc_elem)e);
            for (int i = 0; i < 65536 + shift; i++) {
                float want = e == ATTNC_ELEM_F16 ? attnc_f16_to_f32(all[i]) : attnc_bf16_to_f32(all[i]);
                checked++;
                /* a signalling NaN may come out quiet (vcvtph2ps quiets it, as the LLVM kernels' conversions do) */
                uint32_t quiet = isnan(want) ? 0x00400000u : 0;
                if ((attnc_f32_bits(wide[i]) | quiet) != (attnc_f32_bits(want) | quiet))
                    fail(e == ATTNC_ELEM_F16 ? (portable ? "tensor_widen_portable f16" : "tensor_widen f16")
                                             : (portable ? "tensor_widen_portable bf16" : "tensor_widen bf16"),
                         all[i],
                         attnc_f32_bits(wide[i]) >> 16, attnc_f32_bits(want) >> 16);
            }
        }
    /* named edge cases, for a reader of a failure */
    struct { float f; uint16_t h, b; } edge[] = {
        {65504.0f, 0x7bff, 0x4780}, {65519.99f, 0x7bff, 0x4780}, {65520.0f, 0x7c00, 0x4780},
        {0x1p-24f, 0x0001, 0x3380}, {0x1p-25f, 0x0000, 0x3300}, {0x1.000002p-25f, 0x0001, 0x3300},
        {0x1p-14f, 0x0400, 0x3880}, {-0.0f, 0x8000, 0x8000}, {INFINITY, 0x7c00, 0x7f80}, {-INFINITY, 0xfc00, 0xff80},
        {1.0009765625f, 0x3c01, 0x3f80}, {1.00048828125f, 0x3c00, 0x3f80}, {1.00146484375f, 0x3c02, 0x3f80},
        {0x1p-149f, 0x0000, 0x0000}, {0x1.fffffep127f, 0x7c00, 0x7f80}};
    for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++) {
        checked++;
        if (attnc_f32_to_f16(edge[i].f) != edge[i].h) fail("edge f16", attnc_f32_bits(edge[i].f), attnc_f32_to_f16(edge[i].f), edge[i].h);
        if (attnc_f32_to_bf16(edge[i].f) != edge[i].b) fail("edge bf16", attnc_f32_bits(edge[i].f), attnc_f32_to_bf16(edge[i].f), edge[i].b);
    }
    printf("%ld conversions checked, %ld wrong\n", checked, bad);
    return bad != 0;
}
