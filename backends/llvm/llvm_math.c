/* llvm_math.c — the IR's arithmetic that takes more than one LLVM
 * instruction, on float32/int64 scalars or vectors alike.
 * Requires: the lowering state and builder helpers (llvm_build.h).
 * Produces: at the builder's position, exp/exp2/log/tanh/sigmoid as inline
 * polynomials (Cephes), erf as a series and a Chebyshev fit (one division per
 * vector), sin/cos/pow as libm calls per lane (they are rare and
 * only in per-element code), and the total integer division and modulo,
 * float modulo and float -> int conversion of ir_eval.c: no instruction can
 * produce poison (no nsw/nuw, divisors are replaced before the division,
 * fptosi only sees in-range values). */
#include "llvm_math.h"

#include <math.h>
#include <stdint.h>

/* ---- vector math ------------------------------------------------------------ */

/* Horner's rule: c[0] + x*(c[1] + x*(c[2] + ...)). */
static LLVMValueRef poly(Lower *L, LLVMValueRef x, const double *c, int n) {
    LLVMValueRef r = fconst(L, x, c[n - 1]);
    for (int i = n - 2; i >= 0; i--) r = fmuladd(L, r, x, fconst(L, x, c[i]));
    return r;
}

/* p * 2^k for integral float k in [-126, 128]: through the exponent bits of
 * 2^(k-1) (finite even for k = 128), times 2.  fptosi only sees that range. */
static LLVMValueRef scale_pow2(Lower *L, LLVMValueRef p, LLVMValueRef k) {
    LLVMBuilderRef b = L->bd;
    LLVMTypeRef it = is_vec(p) ? L->vi32 : L->i32;
    LLVMValueRef ki = LLVMBuildFPToSI(b, k, it, "");
    LLVMValueRef bits =
        LLVMBuildShl(b, LLVMBuildAdd(b, ki, iconst_like(L, p, L->i32, 126), ""), iconst_like(L, p, L->i32, 23), "");
    LLVMValueRef scale = LLVMBuildBitCast(b, bits, LLVMTypeOf(p), "");
    return LLVMBuildFMul(b, LLVMBuildFMul(b, p, scale, ""), fconst(L, p, 2.0), "");
}

/* x clamped to [lo, hi], NaN -> lo (so that later integer conversions are defined). */
static LLVMValueRef clamp_for_int(Lower *L, LLVMValueRef x, double lo, double hi) {
    LLVMValueRef vlo = fconst(L, x, lo), vhi = fconst(L, x, hi);
    LLVMValueRef xc = fsel(L, fcmp(L, LLVMRealOGE, x, vlo), x, vlo);
    return fsel(L, fcmp(L, LLVMRealOLE, xc, vhi), xc, vhi);
}

/* The result r of an exponential of x, with the special cases: 0 below `under`
 * (where the result would be subnormal; -inf included), NaN stays NaN.
 * Overflow needs no case: the clamped argument already gives inf. */
static LLVMValueRef exp_specials(Lower *L, LLVMValueRef x, LLVMValueRef r, double under) {
    r = fsel(L, fcmp(L, LLVMRealOLT, x, fconst(L, x, under)), fconst(L, x, 0.0), r);
    return fsel(L, fcmp(L, LLVMRealUNO, x, x), x, r);
}

/* 2^x, relative error about 2e-7: x = k + f with k integral and |f| <= 1/2,
 * 2^f by a degree-6 polynomial (Cephes exp2f), 2^k through the exponent bits. */
LLVMValueRef lower_exp2(Lower *L, LLVMValueRef x) {
    static const double c[7] = {1.0,
                                6.931472028550421E-001,
                                2.402264791363012E-001,
                                5.550332471162809E-002,
                                9.618437357674640E-003,
                                1.339887440266574E-003,
                                1.535336188319500E-004};
    LLVMValueRef xc = clamp_for_int(L, x, -126.0, 128.0);
    LLVMValueRef k = intrinsic1(L, "llvm.rint", xc);
    LLVMValueRef p = poly(L, LLVMBuildFSub(L->bd, xc, k, ""), c, 7);
    return exp_specials(L, x, scale_pow2(L, p, k), -125.5);
}

/* e^x, relative error about 2e-7: x = k ln2 + r with |r| <= ln2/2 (ln2 split
 * in two, Cody-Waite, so r is exact), e^r by the Cephes expf polynomial. */
static LLVMValueRef fast_exp(Lower *L, LLVMValueRef x) {
    static const double c[6] = {5.0000001201E-1, 1.6666665459E-1, 4.1665795894E-2,
                                8.3334519073E-3, 1.3981999507E-3, 1.9875691500E-4};
    LLVMBuilderRef b = L->bd;
    LLVMValueRef xc = clamp_for_int(L, x, -87.5, 88.8);
    LLVMValueRef k = intrinsic1(L, "llvm.rint", LLVMBuildFMul(b, xc, fconst(L, x, 1.44269504088896340736), ""));
    LLVMValueRef r = fmuladd(L, k, fconst(L, x, -0.693359375), xc);
    r = fmuladd(L, k, fconst(L, x, 2.12194440e-4), r);
    LLVMValueRef r2 = LLVMBuildFMul(b, r, r, "");
    LLVMValueRef p = fmuladd(L, poly(L, r, c, 6), r2, LLVMBuildFAdd(b, r, fconst(L, x, 1.0), ""));
    return exp_specials(L, x, scale_pow2(L, p, k), -87.33);
}

/* log(x) (or log2(x) when base2), relative error about 1e-7 (Cephes logf):
 * x = 2^e * m with m in [sqrt(1/2), sqrt(2)), log(m) by a polynomial in m - 1;
 * log2 adds e exactly, so powers of two give exact results like libm's.
 * Subnormals are scaled first; 0 -> -inf, negative or NaN -> NaN, inf -> inf. */
LLVMValueRef lower_log(Lower *L, LLVMValueRef x, int base2) {
    static const double c[9] = {3.3333331174E-1,  -2.4999993993E-1, 2.0000714765E-1,  -1.6668057665E-1, 1.4249322787E-1,
                                -1.2420140846E-1, 1.1676998740E-1,  -1.1514610310E-1, 7.0376836292E-2};
    LLVMBuilderRef b = L->bd;
    LLVMTypeRef it = is_vec(x) ? L->vi32 : L->i32;
    LLVMValueRef tiny = fcmp(L, LLVMRealOLT, x, fconst(L, x, 1.17549435e-38));
    LLVMValueRef xs = fsel(L, tiny, LLVMBuildFMul(b, x, fconst(L, x, 8388608.0), ""), x);
    /* |x|: a negative x gives NaN at the end anyway */
    LLVMValueRef bits = LLVMBuildAnd(b, LLVMBuildBitCast(b, xs, it, ""), iconst_like(L, x, L->i32, 0x7fffffff), "");
    LLVMValueRef e =
        LLVMBuildSub(b, LLVMBuildLShr(b, bits, iconst_like(L, x, L->i32, 23), ""), iconst_like(L, x, L->i32, 127), "");
    e = LLVMBuildSub(b, e, LLVMBuildSelect(b, tiny, iconst_like(L, x, L->i32, 23), iconst_like(L, x, L->i32, 0), ""),
                     "");
    LLVMValueRef mbits = LLVMBuildOr(b, LLVMBuildAnd(b, bits, iconst_like(L, x, L->i32, 0x007fffff), ""),
                                     iconst_like(L, x, L->i32, 0x3f800000), "");
    LLVMValueRef m = LLVMBuildBitCast(b, mbits, LLVMTypeOf(x), "");
    LLVMValueRef big = fcmp(L, LLVMRealOGT, m, fconst(L, x, 1.41421356237309504880));
    m = fsel(L, big, LLVMBuildFMul(b, m, fconst(L, x, 0.5), ""), m);
    e = LLVMBuildAdd(b, e, LLVMBuildZExt(b, big, it, ""), "");
    LLVMValueRef ef = LLVMBuildSIToFP(b, e, LLVMTypeOf(x), "");
    LLVMValueRef f = LLVMBuildFSub(b, m, fconst(L, x, 1.0), "");
    LLVMValueRef z = LLVMBuildFMul(b, f, f, "");
    LLVMValueRef y = LLVMBuildFMul(b, LLVMBuildFMul(b, f, z, ""), poly(L, f, c, 9), "");
    LLVMValueRef r;
    if (base2) {
        LLVMValueRef lm = LLVMBuildFAdd(b, f, fmuladd(L, z, fconst(L, x, -0.5), y), ""); /* log(m) */
        r = fmuladd(L, lm, fconst(L, x, 1.44269504088896340736), ef);
    } else {
        /* e * ln2 in two parts, the small one first (Cephes) */
        y = fmuladd(L, ef, fconst(L, x, -2.12194440e-4), y);
        y = fmuladd(L, z, fconst(L, x, -0.5), y);
        r = fmuladd(L, ef, fconst(L, x, 0.693359375), LLVMBuildFAdd(b, f, y, ""));
    }
    r = fsel(L, fcmp(L, LLVMRealOEQ, x, fconst(L, x, INFINITY)), x, r);
    r = fsel(L, fcmp(L, LLVMRealOEQ, x, fconst(L, x, 0.0)), fconst(L, x, -INFINITY), r);
    return fsel(L, fcmp(L, LLVMRealULT, x, fconst(L, x, 0.0)), fconst(L, x, NAN), r); /* x < 0 or NaN */
}

/* tanh, relative error below 3e-7 (4.5 ulp; a sweep of every 61st float, tests/test_llvm_math.c) and
 * one division per vector: x * P(x^2) / Q(x^2), the 13/6-degree rational interpolant Eigen publishes
 * for float (its coefficients).  It was 1 - 2/(e^2|x| + 1) above |x| = 0.625: an exp, a division and a
 * polynomial per lane, twice the instructions of softcap's whole score step.  x is clamped to
 * +-7.90531110763549805, where the interpolant reaches +-1 (it never exceeds 1 then); the compares
 * keep NaN (minnum/maxnum would drop it); x times P/Q, not (x P)/Q, keeps subnormal x exact. */
static LLVMValueRef fast_tanh(Lower *L, LLVMValueRef x) {
    static const double num[7] = {4.89352455891786e-03,  6.37261928875436e-04, 1.48572235717979e-05,
                                  5.12229709037114e-08,  -8.60467152213735e-11, 2.00018790482477e-13,
                                  -2.76076847742355e-16};
    static const double den[4] = {4.89352518554385e-03, 2.26843463243900e-03, 1.18534705686654e-04,
                                  1.19825839466702e-06};
    LLVMBuilderRef b = L->bd;
    LLVMValueRef hi = fconst(L, x, 7.90531110763549805), lo = fconst(L, x, -7.90531110763549805);
    LLVMValueRef xc = fsel(L, fcmp(L, LLVMRealOGT, x, hi), hi, x);
    xc = fsel(L, fcmp(L, LLVMRealOLT, xc, lo), lo, xc);
    LLVMValueRef z = LLVMBuildFMul(b, xc, xc, "");
    return LLVMBuildFMul(b, xc, LLVMBuildFDiv(b, poly(L, z, num, 7), poly(L, z, den, 4), ""), "");
}

/* erf, relative error about 3e-7 and one division per vector (it was libm's erff once per lane):
 * below |x| = 1/2 the Maclaurin series x * sum_n (2/sqrt(pi)) (-1)^n z^n / (n! (2n + 1)), z = x^2,
 * to n = 6 (truncation below 1e-9); above, 1 - erfc(|x|) with sign(x), erfc by the Chebyshev fit
 * t exp(-x^2 + P(t)), t = 1/(1 + |x|/2), of Numerical Recipes (section 6.2; fractional error below
 * 1.2e-7 for every x >= 0).  inf gives exactly +-1 (exp underflows to 0), NaN stays NaN. */
static LLVMValueRef fast_erf(Lower *L, LLVMValueRef x) {
    static const double series[7] = {1.1283791670955126,     -0.37612638903183754,  0.11283791670955126,
                                     -0.026866170645131252,  0.005223977625442188,  -0.0008548327023450852,
                                     0.00012055332981789664};
    static const double cheb[10] = {-1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806,
                                    0.27886807,  -1.13520398, 1.48851587, -0.82215223, 0.17087277};
    LLVMBuilderRef b = L->bd;
    LLVMValueRef ax = intrinsic1(L, "llvm.fabs", x);
    LLVMValueRef z = LLVMBuildFMul(b, x, x, "");
    LLVMValueRef small = LLVMBuildFMul(b, x, poly(L, z, series, 7), "");
    LLVMValueRef t = LLVMBuildFDiv(
        b, fconst(L, x, 1.0), fmuladd(L, ax, fconst(L, x, 0.5), fconst(L, x, 1.0)), "");
    LLVMValueRef erfc = LLVMBuildFMul(b, t, fast_exp(L, LLVMBuildFSub(b, poly(L, t, cheb, 10), z, "")), "");
    LLVMValueRef large = LLVMBuildFSub(b, fconst(L, x, 1.0), erfc, "");
    large = fsel(L, fcmp(L, LLVMRealOLT, x, fconst(L, x, 0.0)), LLVMBuildFNeg(b, large, ""), large);
    return fsel(L, fcmp(L, LLVMRealOLT, ax, fconst(L, x, 0.5)), small, large);
}

/* A libm function of float arguments, called once per lane. */
static LLVMValueRef libm_call(Lower *L, const char *name, LLVMValueRef *args, int nargs) {
    LLVMTypeRef params[2] = {L->f32, L->f32};
    LLVMTypeRef ft = LLVMFunctionType(L->f32, params, (unsigned)nargs, 0);
    LLVMValueRef fn = LLVMGetNamedFunction(L->mod, name);
    if (!fn) fn = LLVMAddFunction(L->mod, name, ft);
    int vec = 0;
    for (int i = 0; i < nargs; i++) vec |= is_vec(args[i]);
    if (!vec) return LLVMBuildCall2(L->bd, ft, fn, args, (unsigned)nargs, "");
    LLVMValueRef r = LLVMGetUndef(L->vf32);
    for (int lane = 0; lane < L->W; lane++) {
        LLVMValueRef a[2];
        for (int i = 0; i < nargs; i++) a[i] = LLVMBuildExtractElement(L->bd, splat(L, args[i]), ci32(L, lane), "");
        LLVMValueRef y = LLVMBuildCall2(L->bd, ft, fn, a, (unsigned)nargs, "");
        r = LLVMBuildInsertElement(L->bd, r, y, ci32(L, lane), "");
    }
    return r;
}

/* floor division or modulo with the IR's total semantics (ir_eval.c):
 * x/0 = x%0 = 0, x/-1 = -x (wrapping), x%-1 = 0.  The divisor is replaced by
 * 1 where it is 0 or -1 before any division, so nothing can trap.  Vectors
 * take a float64 path when every lane is below 2^52 in magnitude (then
 * floor(a / b) rounded is exact), since LLVM scalarises int64 vector division. */
LLVMValueRef lower_int_divmod(Lower *L, LLVMValueRef a, LLVMValueRef d, int want_mod) {
    LLVMBuilderRef b = L->bd;
    LLVMValueRef zero = iconst_like(L, a, L->i64, 0), one = iconst_like(L, a, L->i64, 1);
    LLVMValueRef by0 = LLVMBuildICmp(b, LLVMIntEQ, d, zero, "");
    LLVMValueRef bym1 = LLVMBuildICmp(b, LLVMIntEQ, d, iconst_like(L, a, L->i64, -1), "");
    LLVMValueRef bad = LLVMBuildOr(b, by0, bym1, "");
    LLVMValueRef ds = LLVMBuildSelect(b, bad, one, d, "");
    LLVMValueRef q;
    if (is_vec(a) && !LLVMIsConstant(d)) {
        LLVMValueRef lim = iconst_like(L, a, L->i64, (int64_t)1 << 52);
        LLVMValueRef lim2 = iconst_like(L, a, L->i64, (int64_t)1 << 53);
        LLVMValueRef small = LLVMBuildAnd(b, LLVMBuildICmp(b, LLVMIntULT, LLVMBuildAdd(b, a, lim, ""), lim2, ""),
                                          LLVMBuildICmp(b, LLVMIntULT, LLVMBuildAdd(b, ds, lim, ""), lim2, ""), "");
        LLVMBasicBlockRef fast = block(L, "divfast"), slow = block(L, "divslow"), join = block(L, "divjoin");
        LLVMBuildCondBr(b, all_lanes(L, small), fast, slow);
        LLVMPositionBuilderAtEnd(b, fast);
        LLVMValueRef qf =
            intrinsic1(L, "llvm.floor",
                       LLVMBuildFDiv(b, LLVMBuildSIToFP(b, a, L->vf64, ""), LLVMBuildSIToFP(b, ds, L->vf64, ""), ""));
        LLVMValueRef q1 = LLVMBuildFPToSI(b, qf, L->vi64, "");
        LLVMBasicBlockRef fast_end = LLVMGetInsertBlock(b);
        LLVMBuildBr(b, join);
        LLVMPositionBuilderAtEnd(b, slow);
        LLVMValueRef t = LLVMBuildSDiv(b, a, ds, ""), rem = LLVMBuildSRem(b, a, ds, "");
        LLVMValueRef adj = LLVMBuildAnd(b, LLVMBuildICmp(b, LLVMIntNE, rem, zero, ""),
                                        LLVMBuildICmp(b, LLVMIntSLT, LLVMBuildXor(b, rem, ds, ""), zero, ""), "");
        LLVMValueRef q2 = LLVMBuildAdd(b, t, LLVMBuildSExt(b, adj, L->vi64, ""), "");
        LLVMBasicBlockRef slow_end = LLVMGetInsertBlock(b);
        LLVMBuildBr(b, join);
        LLVMPositionBuilderAtEnd(b, join);
        q = LLVMBuildPhi(b, L->vi64, "");
        LLVMValueRef vals[2] = {q1, q2};
        LLVMBasicBlockRef from[2] = {fast_end, slow_end};
        LLVMAddIncoming(q, vals, from, 2);
    } else {
        LLVMValueRef t = LLVMBuildSDiv(b, a, ds, ""), rem = LLVMBuildSRem(b, a, ds, "");
        LLVMValueRef adj = LLVMBuildAnd(b, LLVMBuildICmp(b, LLVMIntNE, rem, zero, ""),
                                        LLVMBuildICmp(b, LLVMIntSLT, LLVMBuildXor(b, rem, ds, ""), zero, ""), "");
        q = LLVMBuildAdd(b, t, LLVMBuildSExt(b, adj, LLVMTypeOf(a), ""), "");
    }
    if (want_mod) {
        LLVMValueRef r = LLVMBuildSub(b, a, LLVMBuildMul(b, q, ds, ""), "");
        return LLVMBuildSelect(b, bad, zero, r, "");
    }
    LLVMValueRef r = LLVMBuildSelect(b, bym1, LLVMBuildSub(b, zero, a, ""), q, "");
    return LLVMBuildSelect(b, by0, zero, r, "");
}

/* Python-style float modulo: fmod, then moved into the divisor's sign. */
LLVMValueRef lower_float_mod(Lower *L, LLVMValueRef a, LLVMValueRef d) {
    LLVMBuilderRef b = L->bd;
    LLVMValueRef r = LLVMBuildFRem(b, a, d, "");
    LLVMValueRef zero = fconst(L, a, 0.0);
    LLVMValueRef fix =
        LLVMBuildAnd(b, fcmp(L, LLVMRealUNE, r, zero),
                     LLVMBuildXor(b, fcmp(L, LLVMRealOLT, r, zero), fcmp(L, LLVMRealOLT, d, zero), ""), "");
    return fsel(L, fix, LLVMBuildFAdd(b, r, d, ""), r);
}

/* int(x) of a float: truncation, saturating at the int64 range, NaN -> 0. */
static LLVMValueRef float_to_int(Lower *L, LLVMValueRef x) {
    LLVMBuilderRef b = L->bd;
    LLVMValueRef lo = fconst(L, x, -9223372036854775808.0), hi = fconst(L, x, 9223372036854775808.0);
    LLVMValueRef ge_lo = fcmp(L, LLVMRealOGE, x, lo), lt_hi = fcmp(L, LLVMRealOLT, x, hi);
    LLVMValueRef xs = fsel(L, LLVMBuildAnd(b, ge_lo, lt_hi, ""), x, fconst(L, x, 0.0));
    LLVMValueRef i = LLVMBuildFPToSI(b, xs, is_vec(x) ? L->vi64 : L->i64, "");
    i = LLVMBuildSelect(b, fcmp(L, LLVMRealOGE, x, hi), iconst_like(L, x, L->i64, INT64_MAX), i, "");
    return LLVMBuildSelect(b, fcmp(L, LLVMRealOLT, x, lo), iconst_like(L, x, L->i64, INT64_MIN), i, "");
}

/* Built-in function fn of a (nargs of them, of IR types at). */
LLVMValueRef lower_call(Lower *L, Fn fn, LLVMValueRef *a, int nargs, const Type *at) {
    LLVMBuilderRef b = L->bd;
    LLVMValueRef x = a[0];
    switch (fn) {
    case FN_INT: return at[0] == T_INT ? x : float_to_int(L, x);
    case FN_EXP: return fast_exp(L, x);
    case FN_EXP2: return lower_exp2(L, x);
    case FN_LOG: return lower_log(L, x, 0);
    case FN_LOG2: return lower_log(L, x, 1);
    case FN_SQRT: return intrinsic1(L, "llvm.sqrt", x);
    case FN_TANH: return fast_tanh(L, x);
    case FN_SIGMOID:
        return LLVMBuildFDiv(b, fconst(L, x, 1.0),
                             LLVMBuildFAdd(b, fconst(L, x, 1.0), fast_exp(L, LLVMBuildFNeg(b, x, "")), ""), "");
    case FN_ERF: return fast_erf(L, x);
    case FN_SIN: return libm_call(L, "sinf", a, 1);
    case FN_COS: return libm_call(L, "cosf", a, 1);
    case FN_POW:
        if (nargs < 2) break;
        return libm_call(L, "powf", a, 2);
    case FN_FLOOR: return intrinsic1(L, "llvm.floor", x);
    case FN_CEIL: return intrinsic1(L, "llvm.ceil", x);
    case FN_SIGN: {
        LLVMValueRef zero = fconst(L, x, 0.0);
        LLVMValueRef r = fsel(L, fcmp(L, LLVMRealOLT, x, zero), fconst(L, x, -1.0), x);
        return fsel(L, fcmp(L, LLVMRealOGT, x, zero), fconst(L, x, 1.0), r);
    }
    default: break;
    }
    fail(L, "a built-in function the LLVM backend does not know");
    return LLVMGetUndef(LLVMTypeOf(x));
}
