/* half.h — float32 <-> IEEE binary16 (f16) and bfloat16 (bf16), exact:
 * widening is exact, narrowing rounds to nearest, ties to even; NaN stays
 * NaN (quiet, sign and the payload's top bits kept), infinities stay
 * infinities, subnormals of both formats are handled, overflow gives
 * infinity.
 *
 * One copy for the library (the interpreter, refplan, the .npy reader,
 * the C kernels' dense loops) and for generated code: the C and CUDA
 * emitters embed this file's functions in their output
 * (cmake/embed.cmake), so it must stay self-contained C99 with no includes
 * beyond <stdint.h> and no static data.  Functions are `static inline`
 * (the CUDA emitter turns that into host + device functions). */
#ifndef ATTNC_HALF_H
#define ATTNC_HALF_H
#include <stdint.h>

/* The bits of a float and back (a union: defined behaviour in C99, no memcpy). */
static inline uint32_t attnc_f32_bits(float f) {
    union {
        float f;
        uint32_t u;
    } x;
    x.f = f;
    return x.u;
}
static inline float attnc_f32_from_bits(uint32_t u) {
    union {
        float f;
        uint32_t u;
    } x;
    x.u = u;
    return x.f;
}

/* binary16 -> float32, exact. */
static inline float attnc_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    if (exp == 0x1fu) return attnc_f32_from_bits(sign | 0x7f800000u | (man << 13)); /* inf, NaN (payload kept) */
    if (exp == 0) {
        if (man == 0) return attnc_f32_from_bits(sign); /* +-0 */
        /* subnormal: man * 2^-24, exact in float32 */
        float v = (float)man * 5.9604644775390625e-08f;
        return sign ? -v : v;
    }
    return attnc_f32_from_bits(sign | ((exp + 112u) << 23) | (man << 13));
}

/* float32 -> binary16, round to nearest even. */
static inline uint16_t attnc_f32_to_f16(float f) {
    uint32_t u = attnc_f32_bits(f);
    uint32_t sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
    if (a >= 0x7f800000u) /* inf or NaN: a NaN stays a (quiet) NaN */
        return (uint16_t)(sign | 0x7c00u | (a > 0x7f800000u ? 0x200u | ((a >> 13) & 0x3ffu) : 0));
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds to beyond 65504: inf */
    if (a < 0x38800000u) {                                   /* below 2^-14: a subnormal (or 0) */
        if (a < 0x33000000u) return (uint16_t)sign;          /* below half the smallest subnormal: 0 */
        uint32_t exp = a >> 23, man = (a & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126u - exp;                         /* man * 2^(exp-150) in units of 2^-24 */
        uint32_t q = man >> shift, rest = man & ((1u << shift) - 1u), half = 1u << (shift - 1u);
        q += rest > half || (rest == half && (q & 1u));
        return (uint16_t)(sign | q); /* q = 0x400 carries into the smallest normal, as it should */
    }
    uint32_t r = a + 0xfffu + ((a >> 13) & 1u); /* round the 13 dropped bits to even */
    return (uint16_t)(sign | (((r >> 13) - (112u << 10)) & 0x7fffu));
}

/* bfloat16 -> float32, exact. */
static inline float attnc_bf16_to_f32(uint16_t b) { return attnc_f32_from_bits((uint32_t)b << 16); }

/* float32 -> bfloat16, round to nearest even (float32 subnormals round like any other value). */
static inline uint16_t attnc_f32_to_bf16(float f) {
    uint32_t u = attnc_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u); /* NaN: stays a quiet NaN */
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16); /* overflow carries into inf, as it should */
}

#endif
