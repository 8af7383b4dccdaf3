/* tensor_widen.c — 16-bit rows widened into float32, exactly (tensor_io.h:
 * tensor_widen), fast enough that widening a kv head's K and V once per
 * call costs little beside its products (launch.c, pack_head).
 * Requires: nothing beyond base/half.h.  Produces: bits equal to
 * attnc_f16_to_f32 / attnc_bf16_to_f32 on every input, but that a
 * signalling f16 NaN may come out quiet, as from the LLVM kernels' own
 * conversions (tests/test_half.c checks all 65536 of each in every lane).
 *
 * f16 on x86-64 with F16C (checked at run time): vcvtph2ps, 8 a time,
 * which converts subnormals exactly whatever the caller's MXCSR says.
 * Else, and for bf16 (a shift), GCC's and Clang's vector extension, 4
 * lanes (one SSE2 register: GCC splits wider vectors and then compares
 * lane by lane): no branches, subnormals through an exact integer
 * conversion whose float is normal, so no flush-to-zero mode of the
 * caller's changes them.  Lane by lane with branches (base/half.h) the
 * pass took ~5% of a causal prefill's time; with the 4-lane f16 code a
 * call with few reads per kv tile still lost (docs/layouts.md). */
#include <string.h>

#include "tensor_io.h"

#if defined(__GNUC__) && defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#include <stdatomic.h>
#define HAVE_F16C_PATH 1

/* Whether this CPU has F16C and AVX and the OS saves the YMM registers
 * (cpuid and xgetbv: Clang's __builtin_cpu_supports knows no "f16c"). */
static int probe_f16c(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    unsigned need = 1u << 27 | 1u << 28 | 1u << 29; /* OSXSAVE, AVX, F16C */
    if ((c & need) != need) return 0;
    unsigned lo, hi;
    __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    (void)hi;
    return (lo & 6) == 6; /* XMM and YMM state */
}

static int has_f16c(void) {
    static atomic_int known = -1; /* probed once; threads that race store the same answer */
    int k = atomic_load_explicit(&known, memory_order_relaxed);
    if (k < 0) atomic_store_explicit(&known, k = probe_f16c(), memory_order_relaxed);
    return k;
}

__attribute__((target("avx,f16c"))) static int64_t widen_f16c(float *dst, const uint16_t *src, int64_t cols) {
    int64_t j = 0;
    for (; j + 8 <= cols; j += 8) _mm256_storeu_ps(dst + j, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + j))));
    return j;
}
#endif

/* Elements [0, returned) of the row, 4 lanes at a time. */
static int64_t widen_lanes(float *dst, const uint16_t *src, int64_t cols, attnc_elem e) {
    int64_t j = 0;
#if defined(__GNUC__)
    typedef uint16_t u16x4 __attribute__((vector_size(8)));
    typedef uint32_t u32x4 __attribute__((vector_size(16)));
    typedef int32_t i32x4 __attribute__((vector_size(16)));
    typedef float f32x4 __attribute__((vector_size(16)));
    for (; j + 4 <= cols; j += 4) {
        u16x4 w;
        memcpy(&w, src + j, sizeof w);
        u32x4 h = __builtin_convertvector(w, u32x4), bits;
        if (e == ATTNC_ELEM_BF16) {
            bits = h << 16;
        } else {
            u32x4 sign = (h & 0x8000u) << 16, em = h & 0x7fffu, man = h & 0x3ffu;
            u32x4 normal = (em << 13) + 0x38000000u;   /* the exponent + 112 */
            u32x4 special = 0x7f800000u | (man << 13); /* inf, NaN (payload kept) */
            f32x4 tiny = __builtin_convertvector((i32x4)man, f32x4) * 5.9604644775390625e-08f; /* man * 2^-24 */
            /* signed compares (the values are below 2^15): SSE2 has no unsigned one */
            u32x4 is_special = (u32x4)((i32x4)em > 0x7bff), is_tiny = (u32x4)((i32x4)em < 0x400);
            bits = sign | (special & is_special) | ((u32x4)tiny & is_tiny) | (normal & ~(is_special | is_tiny));
        }
        memcpy(dst + j, &bits, sizeof bits);
    }
#else
    (void)dst, (void)src, (void)cols, (void)e;
#endif
    return j;
}

/* The tail of a row, element by element, from j on. */
static void widen_tail(float *dst, const uint16_t *src, int64_t j, int64_t cols, attnc_elem e) {
    for (; j < cols; j++) dst[j] = e == ATTNC_ELEM_BF16 ? attnc_bf16_to_f32(src[j]) : attnc_f16_to_f32(src[j]);
}

void tensor_widen_portable(float *dst, const uint16_t *src, int64_t cols, attnc_elem e) {
    widen_tail(dst, src, widen_lanes(dst, src, cols, e), cols, e);
}

void tensor_widen(float *dst, const uint16_t *src, int64_t cols, attnc_elem e) {
#ifdef HAVE_F16C_PATH
    if (e == ATTNC_ELEM_F16 && has_f16c()) {
        widen_tail(dst, src, widen_f16c(dst, src, cols), cols, e);
        return;
    }
#endif
    tensor_widen_portable(dst, src, cols, e);
}
