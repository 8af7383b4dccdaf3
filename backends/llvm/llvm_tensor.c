/* llvm_tensor.c — the tensors of the call as it holds them: f32, f16 or
 * bf16, strided (kernel ABI 3).
 * Requires: the lowering state (llvm_build.h) inside the tile function.
 * Produces: exact widening and RNE narrowing between float32 and the 16-bit
 * types, scalar or per vector; a switch that builds one version of a loop
 * per element type, so that the branch on a call's types is taken once per
 * tile or row block, never per element; and the conversion of a kv tile's
 * K or V rows into float32 scratch, after which the micro-kernels run
 * unchanged; and where a kv tile's rows are in a paged K and V.
 *
 * f16 goes through LLVM's `half`: fpext and fptrunc are exact widening and
 * round-to-nearest-even narrowing, which x86 lowers to vcvtph2ps/vcvtps2ph
 * with F16C (the target features are the host's, llvm_backend.c); on a host
 * without F16C (or AVX-512F, which implies it), or with ATTNC_LLVM_SOFT_F16=1,
 * the same conversions in integer lanes (llvm_soft_f16).  bf16 is
 * integer work: widening is a shift, narrowing the RNE of base/half.h's
 * attnc_f32_to_bf16, with NaN kept quiet. */
#include "llvm_tensor.h"

LLVMValueRef lower_elem_bytes(Lower *L, LLVMValueRef elem) {
    LLVMValueRef f32 = LLVMBuildICmp(L->bd, LLVMIntEQ, elem, ci32(L, ELEM_F32), "");
    return LLVMBuildSelect(L->bd, f32, ci64(L, 4), ci64(L, 2), "");
}

/* t (scalar) as a vector type when `like` is a vector. */
static LLVMTypeRef shaped(LLVMValueRef like, LLVMTypeRef t) {
    LLVMTypeRef lt = LLVMTypeOf(like);
    return LLVMGetTypeKind(lt) == LLVMVectorTypeKind ? LLVMVectorType(t, LLVMGetVectorSize(lt)) : t;
}

/* The constant c in every lane of a value shaped like `like` (any lane count:
 * spread() in llvm_gemm.c widens W / 4 lanes). */
static LLVMValueRef const_like(LLVMValueRef like, LLVMValueRef c) {
    LLVMTypeRef lt = LLVMTypeOf(like);
    if (LLVMGetTypeKind(lt) != LLVMVectorTypeKind) return c;
    LLVMValueRef e[64];
    unsigned n = LLVMGetVectorSize(lt);
    for (unsigned i = 0; i < n && i < 64; i++) e[i] = c;
    return LLVMConstVector(e, n);
}

#define K32(v) const_like(u, LLVMConstInt(L->i32, (unsigned long long)(v), 0))

/* f16 bits to float32 in integer lanes, for a host without F16C: base/half.h's
 * attnc_f16_to_f32 (inf and NaN payloads kept; subnormals as man * 2^-24,
 * an exact int-to-float conversion and product). */
static LLVMValueRef widen_f16_soft(Lower *L, LLVMValueRef x) {
    LLVMBuilderRef b = L->bd;
    LLVMValueRef u = LLVMBuildZExt(b, x, shaped(x, L->i32), "");
    LLVMValueRef sign = LLVMBuildShl(b, LLVMBuildAnd(b, u, K32(0x8000), ""), K32(16), "");
    LLVMValueRef exp = LLVMBuildAnd(b, LLVMBuildLShr(b, u, K32(10), ""), K32(0x1f), "");
    LLVMValueRef man = LLVMBuildAnd(b, u, K32(0x3ff), "");
    LLVMValueRef normal = LLVMBuildAdd(b, LLVMBuildShl(b, LLVMBuildAnd(b, u, K32(0x7fff), ""), K32(13), ""),
                                       K32(112u << 23), "");
    LLVMValueRef special = LLVMBuildOr(b, LLVMBuildShl(b, man, K32(13), ""), K32(0x7f800000), "");
    LLVMValueRef tiny = LLVMBuildFMul(b, LLVMBuildUIToFP(b, man, shaped(x, L->f32), ""),
                                      const_like(u, LLVMConstReal(L->f32, 5.9604644775390625e-08)), "");
    LLVMValueRef sub = LLVMBuildBitCast(b, tiny, shaped(x, L->i32), "");
    LLVMValueRef r = LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntEQ, exp, K32(0), ""), sub, normal, "");
    r = LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntEQ, exp, K32(0x1f), ""), special, r, "");
    return LLVMBuildBitCast(b, LLVMBuildOr(b, r, sign, ""), shaped(x, L->f32), "f16.soft");
}

/* float32 to f16 bits, round to nearest even, in integer lanes: base/half.h's
 * attnc_f32_to_f16 (NaN stays a quiet NaN, overflow to inf, subnormals
 * rounded at 2^-24); every case computed, one selected per lane. */
static LLVMValueRef narrow_f16_soft(Lower *L, LLVMValueRef x) {
    LLVMBuilderRef b = L->bd;
    LLVMValueRef u = LLVMBuildBitCast(b, x, shaped(x, L->i32), "");
    LLVMValueRef sign = LLVMBuildAnd(b, LLVMBuildLShr(b, u, K32(16), ""), K32(0x8000), "");
    LLVMValueRef a = LLVMBuildAnd(b, u, K32(0x7fffffff), "");
#define AT_LEAST(v) LLVMBuildICmp(b, LLVMIntUGE, a, K32(v), "")
    LLVMValueRef payload = LLVMBuildOr(b, LLVMBuildAnd(b, LLVMBuildLShr(b, a, K32(13), ""), K32(0x3ff), ""), K32(0x200), "");
    LLVMValueRef nan = LLVMBuildICmp(b, LLVMIntUGT, a, K32(0x7f800000), "");
    LLVMValueRef special = LLVMBuildOr(b, LLVMBuildSelect(b, nan, payload, K32(0), ""), K32(0x7c00), "");
    LLVMValueRef odd = LLVMBuildAnd(b, LLVMBuildLShr(b, a, K32(13), ""), K32(1), "");
    LLVMValueRef rounded = LLVMBuildAdd(b, LLVMBuildAdd(b, a, K32(0xfff), ""), odd, "");
    LLVMValueRef normal = LLVMBuildAnd(b, LLVMBuildSub(b, LLVMBuildLShr(b, rounded, K32(13), ""), K32(112u << 10), ""),
                                       K32(0x7fff), "");
    /* a subnormal: man * 2^(exp - 150) in units of 2^-24, shift = 126 - exp in [14, 24] where it is chosen
     * (clamped elsewhere so that no lane shifts by 32 or more) */
    LLVMValueRef man = LLVMBuildOr(b, LLVMBuildAnd(b, a, K32(0x7fffff), ""), K32(0x800000), "");
    LLVMValueRef shift = LLVMBuildSub(b, K32(126), LLVMBuildLShr(b, a, K32(23), ""), "");
    shift = LLVMBuildSelect(b, AT_LEAST(0x33000000), shift, K32(24), "");
    shift = LLVMBuildSelect(b, AT_LEAST(0x38800000), K32(14), shift, "");
    LLVMValueRef q = LLVMBuildLShr(b, man, shift, "");
    LLVMValueRef half = LLVMBuildShl(b, K32(1), LLVMBuildSub(b, shift, K32(1), ""), "");
    LLVMValueRef rest = LLVMBuildAnd(b, man, LLVMBuildSub(b, LLVMBuildShl(b, K32(1), shift, ""), K32(1), ""), "");
    LLVMValueRef up = LLVMBuildOr(b, LLVMBuildICmp(b, LLVMIntUGT, rest, half, ""),
                                  LLVMBuildAnd(b, LLVMBuildICmp(b, LLVMIntEQ, rest, half, ""),
                                               LLVMBuildICmp(b, LLVMIntNE, LLVMBuildAnd(b, q, K32(1), ""), K32(0), ""), ""),
                                  "");
    LLVMValueRef sub = LLVMBuildAdd(b, q, LLVMBuildZExt(b, up, shaped(x, L->i32), ""), "");
    LLVMValueRef r = LLVMBuildSelect(b, AT_LEAST(0x33000000), sub, K32(0), "");
    r = LLVMBuildSelect(b, AT_LEAST(0x38800000), normal, r, "");
    r = LLVMBuildSelect(b, AT_LEAST(0x477ff000), K32(0x7c00), r, "");
    r = LLVMBuildSelect(b, AT_LEAST(0x7f800000), special, r, "");
#undef AT_LEAST
    return LLVMBuildTrunc(b, LLVMBuildOr(b, r, sign, ""), shaped(x, LLVMInt16TypeInContext(L->ctx)), "f16.soft");
}
#undef K32

LLVMValueRef lower_widen(Lower *L, LLVMValueRef x, int elem) {
    LLVMBuilderRef b = L->bd;
    if (elem == ELEM_F16 && llvm_soft_f16()) return widen_f16_soft(L, x);
    if (elem == ELEM_F16) {
        LLVMValueRef h = LLVMBuildBitCast(b, x, shaped(x, LLVMHalfTypeInContext(L->ctx)), "");
        return LLVMBuildFPExt(b, h, shaped(x, L->f32), "");
    }
    LLVMValueRef u = LLVMBuildZExt(b, x, shaped(x, L->i32), "");
    u = LLVMBuildShl(b, u, iconst_like(L, u, L->i32, 16), "");
    return LLVMBuildBitCast(b, u, shaped(x, L->f32), "");
}

LLVMValueRef lower_narrow(Lower *L, LLVMValueRef x, int elem) {
    LLVMBuilderRef b = L->bd;
    LLVMTypeRef i16 = shaped(x, LLVMInt16TypeInContext(L->ctx));
    if (elem == ELEM_F16 && llvm_soft_f16()) return narrow_f16_soft(L, x);
    if (elem == ELEM_F16) {
        LLVMValueRef h = LLVMBuildFPTrunc(b, x, shaped(x, LLVMHalfTypeInContext(L->ctx)), "");
        return LLVMBuildBitCast(b, h, i16, "");
    }
    LLVMValueRef u = LLVMBuildBitCast(b, x, shaped(x, L->i32), "");
#define K32(v) iconst_like(L, u, L->i32, (int64_t)(v))
    LLVMValueRef nan = LLVMBuildICmp(b, LLVMIntUGT, LLVMBuildAnd(b, u, K32(0x7fffffff), ""), K32(0x7f800000), "");
    LLVMValueRef odd = LLVMBuildAnd(b, LLVMBuildLShr(b, u, K32(16), ""), K32(1), "");
    LLVMValueRef rne = LLVMBuildLShr(b, LLVMBuildAdd(b, LLVMBuildAdd(b, u, K32(0x7fff), ""), odd, ""), K32(16), "");
    LLVMValueRef quiet = LLVMBuildOr(b, LLVMBuildLShr(b, u, K32(16), ""), K32(0x40), "");
#undef K32
    return LLVMBuildTrunc(b, LLVMBuildSelect(b, nan, quiet, rne, ""), i16, "");
}

void lower_elem_switch(Lower *L, LLVMValueRef elem, void (*body)(Lower *, void *, int), void *ctx) {
    if (LLVMIsAConstantInt(elem)) { /* the version's element type (llvm_lower.h): one loop */
        long long e = LLVMConstIntGetSExtValue(elem);
        body(L, ctx, e > ELEM_F32 && e < ELEM_COUNT ? (int)e : ELEM_F32);
        return;
    }
    LLVMBasicBlockRef version[ELEM_COUNT], join;
    static const char *const names[ELEM_COUNT] = {"elem.f32", "elem.f16", "elem.bf16"};
    for (int e = 0; e < ELEM_COUNT; e++) version[e] = block(L, names[e]);
    join = block(L, "elem.join");
    LLVMValueRef sw = LLVMBuildSwitch(L->bd, elem, version[ELEM_F32], ELEM_COUNT - 1);
    LLVMAddCase(sw, ci32(L, ELEM_F16), version[ELEM_F16]);
    LLVMAddCase(sw, ci32(L, ELEM_BF16), version[ELEM_BF16]);
    for (int e = 0; e < ELEM_COUNT; e++) {
        LLVMPositionBuilderAtEnd(L->bd, version[e]);
        body(L, ctx, e);
        LLVMBuildBr(L->bd, join);
    }
    LLVMPositionBuilderAtEnd(L->bd, join);
}

LLVMValueRef lower_load_floats(Lower *L, int elem, LLVMValueRef p, LLVMValueRef at) {
    LLVMTypeRef t = elem == ELEM_F32 ? L->f32 : LLVMInt16TypeInContext(L->ctx);
    LLVMValueRef v = load(L, LLVMVectorType(t, (unsigned)L->W), gep(L, t, p, at), elem == ELEM_F32 ? 4 : 2);
    return elem == ELEM_F32 ? v : lower_widen(L, v, elem);
}

/* One row of n elements of `elem` at `from` into n floats at `to` (widened
 * unless float32): whole vectors, then the rest one by one. */
static void convert_row(Lower *L, int elem, LLVMValueRef from, LLVMValueRef n, LLVMValueRef to) {
    LLVMBuilderRef b = L->bd;
    LLVMTypeRef t = elem == ELEM_F32 ? L->f32 : LLVMInt16TypeInContext(L->ctx);
    unsigned align = elem == ELEM_F32 ? 4 : 2;
    Loop lv;
    LLVMValueRef i = loop_begin(L, &lv, ci64(L, 0), LLVMBuildSub(b, n, ci64(L, L->W - 1), ""), ci64(L, L->W), "cvt.vec");
    store_fvec(L, lower_load_floats(L, elem, from, i), to, i);
    loop_end(L, &lv);
    Loop ls;
    LLVMValueRef j = loop_begin(L, &ls, lv.i, n, ci64(L, 1), "cvt.tail");
    LLVMValueRef x = load(L, t, gep(L, t, from, j), align);
    store(L, elem == ELEM_F32 ? x : lower_widen(L, x, elem), gep(L, L->f32, to, j), 4);
    loop_end(L, &ls);
}

typedef struct ConvertRows {
    LLVMValueRef src, stride, rows, n, dst;
} ConvertRows;

/* dst row j = convert_row(src row j), rows `stride` elements of `elem` apart. */
static void rows_as_floats(Lower *L, const ConvertRows *c, int elem) {
    LLVMBuilderRef b = L->bd;
    LLVMTypeRef t = elem == ELEM_F32 ? L->f32 : LLVMInt16TypeInContext(L->ctx);
    Loop lr;
    LLVMValueRef j = loop_begin(L, &lr, ci64(L, 0), c->rows, ci64(L, 1), "cvt.rows");
    convert_row(L, elem, gep(L, t, c->src, LLVMBuildMul(b, j, c->stride, "")), c->n,
                gep(L, L->f32, c->dst, LLVMBuildMul(b, j, c->n, "")));
    loop_end(L, &lr);
}

static void convert_rows_of(Lower *L, void *ctx, int elem) {
    if (elem == ELEM_F32) return; /* read in place by the caller */
    rows_as_floats(L, ctx, elem);
}

void lower_convert_rows(Lower *L, LLVMValueRef elem, LLVMValueRef src, LLVMValueRef stride, LLVMValueRef rows,
                        LLVMValueRef n, LLVMValueRef dst) {
    ConvertRows c = {src, stride, rows, n, dst};
    lower_elem_switch(L, elem, convert_rows_of, &c);
}

void lower_copy_rows_f32(Lower *L, LLVMValueRef src, LLVMValueRef stride, LLVMValueRef rows, LLVMValueRef n,
                         LLVMValueRef dst) {
    ConvertRows c = {src, stride, rows, n, dst};
    rows_as_floats(L, &c, ELEM_F32);
}

LLVMValueRef lower_page_offset(Lower *L, LLVMValueRef kv_page, LLVMValueRef page_rows, LLVMValueRef page_stride,
                               LLVMValueRef row_stride, LLVMValueRef k0) {
    LLVMBuilderRef b = L->bd;
    LLVMValueRef off = local(L, L->i64, LLVMBuildMul(b, k0, row_stride, ""));
    LLVMBasicBlockRef after = if_begin(L, LLVMBuildICmp(b, LLVMIntSGT, page_rows, ci64(L, 0), ""), "paged");
    LLVMValueRef page = load(L, L->i32, gep(L, L->i32, kv_page, LLVMBuildSDiv(b, k0, page_rows, "")), 4);
    LLVMValueRef first = LLVMBuildMul(b, LLVMBuildSExt(b, page, L->i64, ""), page_stride, "");
    LLVMValueRef in_page = LLVMBuildMul(b, LLVMBuildSRem(b, k0, page_rows, ""), row_stride, "");
    set(L, off, LLVMBuildAdd(b, first, in_page, "page.off"));
    if_end(L, after);
    return get(L, L->i64, off);
}
