/* llvm_lower.c — the kernel plan as LLVM IR, built with the LLVM C API (no
 * textual IR, no C++).
 * Requires: a Plan and a module carrying the target's triple and data layout.
 * Produces: in that module, the AttnTileFn and AttnScratchFn of the kernel ABI
 * (runtime/kernel_abi.h), computing what runtime/plan_run.c's refplan_tile
 * computes, in float32: the same tile-map walk, the mask only on PARTIAL
 * tiles, the fault root when the call asks for it, online softmax in the log2
 * domain, O = 0 and LSE = -inf for rows that keep nothing, lse_offset per row,
 * the weight clause without division.
 *
 * How the work is laid out.  Vector lanes run along q: one vector holds W
 * consecutive query rows, and a row block of QB = C*W rows is the unit the
 * tile loop works on (one q tile of bq rows is one or more row blocks).
 * Along q rather than along kv because then
 *   - Q is transposed into scratch once per row block (Qt[d][q]), and K and V
 *     are read in place: the QK micro-kernel broadcasts K[kv][d] against Qt
 *     rows, the PV micro-kernel broadcasts V[kv][dv] against P rows; D and Dv
 *     are plain scalar loops, so no size needs padding or masked loads;
 *   - the online softmax statistics (row max, row sum) are per lane: no
 *     horizontal reductions in the tile loop.
 * The micro-kernels keep an R x CQ block of vector accumulators in registers
 * (R rows of K or V against CQ vectors of rows of Q), and spread prefetches
 * of the next tile's K and V through their inner loops.
 *
 * Per kv tile: QK micro-kernel into S; when the call can fault (its
 * check_faults), a pass over the fault root that returns 1 at once; the
 * element pass (two versions: with the mask for PARTIAL tiles, without for
 * FULL ones); for softmax the normalising pass (P = 2^(t - m), rescaling of
 * l and of the accumulator when the running max moved); the PV micro-kernel.
 *
 * Where IR values are computed.  Each node is placed by what it varies with:
 *   OUTER (call, head) - scalars, once per work item, in the prologue;
 *   ROW (q)            - vectors, once per row block; those the per-element
 *                        code reads (the "frontier") go to scratch and are
 *                        reloaded in the element loop;
 *   COL (kv)           - scalars, per kv in the element loop;
 *   ELEM (q and kv)    - vectors, per element vector.
 * A sum is a loop where its place puts it; before the loop goes every node of
 * its body that reads no sum variable but those of the loops already open
 * (L->open), so the loop recomputes only what varies with its variable or
 * with that of a sum nested in it (as c_emit.c's need() does).
 * Every IR operation is total (ir.h), so all of it is evaluated eagerly in
 * lanes: loads are masked gathers (an out-of-range lane reads nothing and
 * gives 0), int x/0 gives 0, no instruction can produce poison (no nsw/nuw,
 * divisors are replaced before the division, fptosi only sees in-range
 * values).  exp/exp2/log/tanh/sigmoid are inline polynomials; erf, pow and
 * float % call libm per lane (they are rare and only in per-element code).
 */
#include "llvm_lower.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel_abi.h"

enum { MAX_LANES = 16, MAX_SUM_LEVELS = 64, MAX_SCOPES = 512, MAX_R = 8, MAX_CQ = 4 };

/* Where a node's value is computed (see the header comment). */
typedef enum Place { PL_OUTER = 0, PL_ROW = 1, PL_COL = 2, PL_ELEM = 3 } Place;

/* Scratch regions of one work item, as pointers (tile function) or byte sizes. */
typedef struct Regions {
    LLVMValueRef qt;              /* Qt[D][QB]: Q rows of the block, transposed, times scale */
    LLVMValueRef qx;              /* Qx[Rt][QB]: low-rank q-side columns */
    LLVMValueRef kx;              /* Kx[BK][Rt]: low-rank k-side columns of the tile */
    LLVMValueRef s;               /* S[BK][QB]: scores, then log2-domain scores, then P */
    LLVMValueRef ot;              /* OT[Dv][QB]: the output accumulator, transposed */
    LLVMValueRef m, l, any, tmax; /* [QB] each: running max, sum, kept-anything, tile max */
    LLVMValueRef rows;            /* [frontier][QB] 8-byte lanes: ROW values the element loop reads */
} Regions;

typedef struct Lower {
    LLVMContextRef ctx;
    LLVMModuleRef mod;
    LLVMBuilderRef bd;        /* code */
    LLVMBuilderRef alloca_bd; /* the entry block, which holds only allocas */
    const Plan *p;
    const IrModule *ir;
    const IrFunc *f;
    const LlvmTarget *target;
    int W, C, CQ, R; /* lanes; vectors per row block; micro-kernel block: CQ vectors x R rows */
    int QB, BK;      /* rows per row block (C * W); keys per kv tile */
    LLVMTypeRef i1, i8, i32, i64, f32, f64;
    LLVMTypeRef vi1, vi8, vi32, vi64, vf32, vf64;
    LLVMValueRef fn;
    /* emitted IR nodes, each valid while the scope that emitted it is open */
    LLVMValueRef *memo;
    int *stack, nstack;
    int marks[MAX_SCOPES], depth;
    unsigned *visit, visit_gen;
    /* what the IR's leaves read */
    LLVMValueRef call;
    LLVMValueRef var[V_COUNT]; /* b, h, hk and sizes (scalars) */
    LLVMValueRef q_vec, kv, pre, valid;
    LLVMValueRef sumvar[MAX_SUM_LEVELS];
    unsigned open; /* IrNode.sumvars bits of the sum loops open here (levels 0..30) */
    LLVMValueRef *param;
    LLVMValueRef *tdata;
    LLVMValueRef (*tdim)[ATTNC_ABI_MAX_RANK];
    /* ROW values the element loop reads, each with its slot in Regions.rows */
    IrRef *frontier;
    int nfrontier;
    int failed;
    char why[300];
} Lower;

static void fail(Lower *L, const char *why) {
    if (!L->failed) snprintf(L->why, sizeof L->why, "%s", why);
    L->failed = 1;
}

/* ---- short builder helpers ------------------------------------------------ */

static LLVMValueRef ci64(Lower *L, int64_t v) { return LLVMConstInt(L->i64, (unsigned long long)v, 1); }
static LLVMValueRef ci32(Lower *L, int32_t v) { return LLVMConstInt(L->i32, (unsigned long long)(int64_t)v, 1); }
static LLVMValueRef cf32(Lower *L, double v) { return LLVMConstReal(L->f32, v); }
static LLVMValueRef cbool(Lower *L, int v) { return LLVMConstInt(L->i1, v != 0, 0); }

static int is_vec(LLVMValueRef v) { return LLVMGetTypeKind(LLVMTypeOf(v)) == LLVMVectorTypeKind; }

/* s repeated in every lane (v itself when already a vector). */
static LLVMValueRef splat(Lower *L, LLVMValueRef s) {
    if (is_vec(s)) return s;
    LLVMTypeRef vt = LLVMVectorType(LLVMTypeOf(s), (unsigned)L->W);
    if (LLVMIsConstant(s)) {
        LLVMValueRef e[MAX_LANES];
        for (int i = 0; i < L->W; i++) e[i] = s;
        return LLVMConstVector(e, (unsigned)L->W);
    }
    LLVMValueRef one = LLVMBuildInsertElement(L->bd, LLVMGetUndef(vt), s, ci32(L, 0), "");
    return LLVMBuildShuffleVector(L->bd, one, LLVMGetUndef(vt), LLVMConstNull(L->vi32), "");
}

/* A float constant shaped like `like` (scalar or vector). */
static LLVMValueRef fconst(Lower *L, LLVMValueRef like, double v) {
    return is_vec(like) ? splat(L, cf32(L, v)) : cf32(L, v);
}
static LLVMValueRef iconst_like(Lower *L, LLVMValueRef like, LLVMTypeRef scalar, int64_t v) {
    LLVMValueRef c = LLVMConstInt(scalar, (unsigned long long)v, 1);
    return is_vec(like) ? splat(L, c) : c;
}

/* <0, 1, ..., W-1> as int64. */
static LLVMValueRef iota(Lower *L) {
    LLVMValueRef e[MAX_LANES];
    for (int i = 0; i < L->W; i++) e[i] = ci64(L, i);
    return LLVMConstVector(e, (unsigned)L->W);
}

static LLVMTypeRef ptr_to(LLVMTypeRef t) { return LLVMPointerType(t, 0); }

/* p as a pointer to `elem` (a no-op with opaque pointers; a cast with typed ones). */
static LLVMValueRef as_ptr(Lower *L, LLVMValueRef p, LLVMTypeRef elem) {
    LLVMTypeRef pt = ptr_to(elem);
    return LLVMTypeOf(p) == pt ? p : LLVMBuildPointerCast(L->bd, p, pt, "");
}

/* &p[i] for an array of `elem` (i: int64 scalar, or a vector for gathers). */
static LLVMValueRef gep(Lower *L, LLVMTypeRef elem, LLVMValueRef p, LLVMValueRef i) {
    return LLVMBuildGEP2(L->bd, elem, as_ptr(L, p, elem), &i, 1, "");
}

static LLVMValueRef load(Lower *L, LLVMTypeRef t, LLVMValueRef p, unsigned align) {
    LLVMValueRef v = LLVMBuildLoad2(L->bd, t, as_ptr(L, p, t), "");
    LLVMSetAlignment(v, align);
    return v;
}

static void store(Lower *L, LLVMValueRef v, LLVMValueRef p, unsigned align) {
    LLVMValueRef s = LLVMBuildStore(L->bd, v, as_ptr(L, p, LLVMTypeOf(v)));
    LLVMSetAlignment(s, align);
}

/* A float vector at element i of float array p. */
static LLVMValueRef load_fvec(Lower *L, LLVMValueRef p, LLVMValueRef i) {
    return load(L, L->vf32, gep(L, L->f32, p, i), 4);
}
static void store_fvec(Lower *L, LLVMValueRef v, LLVMValueRef p, LLVMValueRef i) {
    store(L, v, gep(L, L->f32, p, i), 4);
}

/* A mutable local (promoted to SSA by mem2reg): allocated in the entry block,
 * initialised here. */
static LLVMValueRef local(Lower *L, LLVMTypeRef t, LLVMValueRef init) {
    LLVMValueRef a = LLVMBuildAlloca(L->alloca_bd, t, "");
    if (init) LLVMBuildStore(L->bd, init, a);
    return a;
}
static LLVMValueRef get(Lower *L, LLVMTypeRef t, LLVMValueRef a) { return LLVMBuildLoad2(L->bd, t, a, ""); }
static void set(Lower *L, LLVMValueRef a, LLVMValueRef v) { LLVMBuildStore(L->bd, v, a); }

/* Field of the AttnCall at byte offset `off`. */
static LLVMValueRef call_field(Lower *L, size_t off, LLVMTypeRef t) {
    return load(L, t, gep(L, L->i8, L->call, ci64(L, (int64_t)off)), 8);
}

static LLVMValueRef intrinsic(Lower *L, const char *name, LLVMTypeRef *over, int nover, LLVMValueRef *args, int nargs) {
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    if (!id) {
        fail(L, "an LLVM intrinsic is missing");
        return LLVMGetUndef(LLVMTypeOf(args[0]));
    }
    LLVMValueRef fn = LLVMGetIntrinsicDeclaration(L->mod, id, over, (size_t)nover);
    LLVMTypeRef ft = LLVMIntrinsicGetType(L->ctx, id, over, (size_t)nover);
    return LLVMBuildCall2(L->bd, ft, fn, args, (unsigned)nargs, "");
}

/* An intrinsic overloaded on its one argument's type (llvm.floor, llvm.fabs, ...). */
static LLVMValueRef intrinsic1(Lower *L, const char *name, LLVMValueRef x) {
    LLVMTypeRef t = LLVMTypeOf(x);
    return intrinsic(L, name, &t, 1, &x, 1);
}

static LLVMValueRef fmuladd(Lower *L, LLVMValueRef a, LLVMValueRef b, LLVMValueRef c) {
    LLVMTypeRef t = LLVMTypeOf(a);
    LLVMValueRef args[3] = {a, b, c};
    return intrinsic(L, "llvm.fmuladd", &t, 1, args, 3);
}

/* Lanes of ptrs where mask holds; 0 elsewhere (nothing is read there). */
static LLVMValueRef gather(Lower *L, LLVMTypeRef vt, LLVMValueRef ptrs, LLVMValueRef mask) {
    LLVMTypeRef over[2] = {vt, LLVMTypeOf(ptrs)};
    LLVMValueRef args[4] = {ptrs, ci32(L, 4), mask, LLVMConstNull(vt)};
    return intrinsic(L, "llvm.masked.gather", over, 2, args, 4);
}

static void scatter(Lower *L, LLVMValueRef v, LLVMValueRef ptrs, LLVMValueRef mask) {
    LLVMTypeRef over[2] = {LLVMTypeOf(v), LLVMTypeOf(ptrs)};
    LLVMValueRef args[4] = {v, ptrs, ci32(L, 4), mask};
    intrinsic(L, "llvm.masked.scatter", over, 2, args, 4);
}

static void masked_store(Lower *L, LLVMValueRef v, LLVMValueRef p, LLVMValueRef mask) {
    p = as_ptr(L, p, LLVMTypeOf(v));
    LLVMTypeRef over[2] = {LLVMTypeOf(v), LLVMTypeOf(p)};
    LLVMValueRef args[4] = {v, p, ci32(L, 4), mask};
    intrinsic(L, "llvm.masked.store", over, 2, args, 4);
}

/* Whether any lane of a bool vector is true (a scalar bool is returned as is). */
static LLVMValueRef any_lane(Lower *L, LLVMValueRef v) {
    if (!is_vec(v)) return v;
    LLVMValueRef bits = LLVMBuildBitCast(L->bd, v, LLVMIntTypeInContext(L->ctx, (unsigned)L->W), "");
    return LLVMBuildICmp(L->bd, LLVMIntNE, bits, LLVMConstNull(LLVMTypeOf(bits)), "");
}
static LLVMValueRef all_lanes(Lower *L, LLVMValueRef v) {
    if (!is_vec(v)) return v;
    LLVMValueRef bits = LLVMBuildBitCast(L->bd, v, LLVMIntTypeInContext(L->ctx, (unsigned)L->W), "");
    return LLVMBuildICmp(L->bd, LLVMIntEQ, bits, LLVMConstAllOnes(LLVMTypeOf(bits)), "");
}

static LLVMValueRef smin(Lower *L, LLVMValueRef a, LLVMValueRef b) {
    return LLVMBuildSelect(L->bd, LLVMBuildICmp(L->bd, LLVMIntSLT, a, b, ""), a, b, "");
}
static LLVMValueRef smax(Lower *L, LLVMValueRef a, LLVMValueRef b) {
    return LLVMBuildSelect(L->bd, LLVMBuildICmp(L->bd, LLVMIntSGT, a, b, ""), a, b, "");
}

static LLVMBasicBlockRef block(Lower *L, const char *name) {
    return LLVMAppendBasicBlockInContext(L->ctx, L->fn, name);
}

/* for (i = start; i < end; i += step): loop_begin returns i and leaves the
 * builder in the body; loop_end closes it and leaves the builder after the
 * loop, where lp->i holds the first i that failed the test. */
typedef struct Loop {
    LLVMBasicBlockRef header, exit;
    LLVMValueRef i, step;
} Loop;

static LLVMValueRef loop_begin(Lower *L, Loop *lp, LLVMValueRef start, LLVMValueRef end, LLVMValueRef step,
                               const char *name) {
    LLVMBasicBlockRef pre = LLVMGetInsertBlock(L->bd);
    lp->header = block(L, name);
    LLVMBasicBlockRef body = block(L, name);
    lp->exit = block(L, name);
    lp->step = step;
    LLVMBuildBr(L->bd, lp->header);
    LLVMPositionBuilderAtEnd(L->bd, lp->header);
    lp->i = LLVMBuildPhi(L->bd, L->i64, name);
    LLVMAddIncoming(lp->i, &start, &pre, 1);
    LLVMBuildCondBr(L->bd, LLVMBuildICmp(L->bd, LLVMIntSLT, lp->i, end, ""), body, lp->exit);
    LLVMPositionBuilderAtEnd(L->bd, body);
    return lp->i;
}

static void loop_end(Lower *L, Loop *lp) {
    LLVMValueRef next = LLVMBuildAdd(L->bd, lp->i, lp->step, "");
    LLVMBasicBlockRef latch = LLVMGetInsertBlock(L->bd);
    LLVMBuildBr(L->bd, lp->header);
    LLVMAddIncoming(lp->i, &next, &latch, 1);
    LLVMPositionBuilderAtEnd(L->bd, lp->exit);
}

/* if (cond) { ... }: returns the block after; the builder is in the then-block. */
static LLVMBasicBlockRef if_begin(Lower *L, LLVMValueRef cond, const char *name) {
    LLVMBasicBlockRef then = block(L, name), after = block(L, name);
    LLVMBuildCondBr(L->bd, cond, then, after);
    LLVMPositionBuilderAtEnd(L->bd, then);
    return after;
}
static void if_end(Lower *L, LLVMBasicBlockRef after) {
    LLVMBuildBr(L->bd, after);
    LLVMPositionBuilderAtEnd(L->bd, after);
}

/* ---- vector math ------------------------------------------------------------ */

/* Horner's rule: c[0] + x*(c[1] + x*(c[2] + ...)). */
static LLVMValueRef poly(Lower *L, LLVMValueRef x, const double *c, int n) {
    LLVMValueRef r = fconst(L, x, c[n - 1]);
    for (int i = n - 2; i >= 0; i--) r = fmuladd(L, r, x, fconst(L, x, c[i]));
    return r;
}

static LLVMValueRef fcmp(Lower *L, LLVMRealPredicate pred, LLVMValueRef a, LLVMValueRef b) {
    return LLVMBuildFCmp(L->bd, pred, a, b, "");
}
static LLVMValueRef fsel(Lower *L, LLVMValueRef c, LLVMValueRef a, LLVMValueRef b) {
    return LLVMBuildSelect(L->bd, c, a, b, "");
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
static LLVMValueRef fast_exp2(Lower *L, LLVMValueRef x) {
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
static LLVMValueRef fast_log(Lower *L, LLVMValueRef x, int base2) {
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

/* tanh: an odd polynomial below 0.625 (Cephes tanhf), 1 - 2/(e^2|x| + 1) above. */
static LLVMValueRef fast_tanh(Lower *L, LLVMValueRef x) {
    static const double c[5] = {-3.33332819422E-1, 1.33314422036E-1, -5.37397155531E-2, 2.06390887954E-2,
                                -5.70498872745E-3};
    LLVMBuilderRef b = L->bd;
    LLVMValueRef ax = intrinsic1(L, "llvm.fabs", x);
    LLVMValueRef z = LLVMBuildFMul(b, x, x, "");
    LLVMValueRef small = fmuladd(L, LLVMBuildFMul(b, x, z, ""), poly(L, z, c, 5), x);
    LLVMValueRef e = fast_exp(L, LLVMBuildFMul(b, ax, fconst(L, x, 2.0), ""));
    LLVMValueRef large = LLVMBuildFSub(
        b, fconst(L, x, 1.0), LLVMBuildFDiv(b, fconst(L, x, 2.0), LLVMBuildFAdd(b, e, fconst(L, x, 1.0), ""), ""), "");
    large = fsel(L, fcmp(L, LLVMRealOLT, x, fconst(L, x, 0.0)), LLVMBuildFNeg(b, large, ""), large);
    return fsel(L, fcmp(L, LLVMRealOLT, ax, fconst(L, x, 0.625)), small, large);
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

/* ---- IR nodes --------------------------------------------------------------- */

static Place place_of(const IrNode *n) {
    int q = (n->deps & (DEP_Q | DEP_PRE)) != 0, kv = (n->deps & (DEP_KV | DEP_PRE)) != 0;
    return q && kv ? PL_ELEM : q ? PL_ROW : kv ? PL_COL : PL_OUTER;
}

static LLVMTypeRef type_of(Lower *L, Type t, int vec) {
    if (t == T_INT) return vec ? L->vi64 : L->i64;
    if (t == T_FLOAT) return vec ? L->vf32 : L->f32;
    return vec ? L->vi1 : L->i1;
}

static void scope_push(Lower *L) {
    if (L->depth >= MAX_SCOPES) {
        fail(L, "sums are nested too deeply for the LLVM backend");
        return;
    }
    L->marks[L->depth++] = L->nstack;
}

static void scope_pop(Lower *L) {
    if (L->depth == 0) return;
    int mark = L->marks[--L->depth];
    while (L->nstack > mark) L->memo[L->stack[--L->nstack]] = NULL;
}

static void remember(Lower *L, IrRef r, LLVMValueRef v) {
    L->memo[r] = v;
    L->stack[L->nstack++] = r;
}

static LLVMValueRef emit(Lower *L, IrRef r);

/* floor division or modulo with the IR's total semantics (ir_eval.c):
 * x/0 = x%0 = 0, x/-1 = -x (wrapping), x%-1 = 0.  The divisor is replaced by
 * 1 where it is 0 or -1 before any division, so nothing can trap.  Vectors
 * take a float64 path when every lane is below 2^52 in magnitude (then
 * floor(a / b) rounded is exact), since LLVM scalarises int64 vector division. */
static LLVMValueRef int_divmod(Lower *L, LLVMValueRef a, LLVMValueRef d, int want_mod) {
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
static LLVMValueRef float_mod(Lower *L, LLVMValueRef a, LLVMValueRef d) {
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

static LLVMValueRef emit_call(Lower *L, Fn fn, LLVMValueRef *a, int nargs, const Type *at) {
    LLVMBuilderRef b = L->bd;
    LLVMValueRef x = a[0];
    switch (fn) {
    case FN_INT: return at[0] == T_INT ? x : float_to_int(L, x);
    case FN_EXP: return fast_exp(L, x);
    case FN_EXP2: return fast_exp2(L, x);
    case FN_LOG: return fast_log(L, x, 0);
    case FN_LOG2: return fast_log(L, x, 1);
    case FN_SQRT: return intrinsic1(L, "llvm.sqrt", x);
    case FN_TANH: return fast_tanh(L, x);
    case FN_SIGMOID:
        return LLVMBuildFDiv(b, fconst(L, x, 1.0),
                             LLVMBuildFAdd(b, fconst(L, x, 1.0), fast_exp(L, LLVMBuildFNeg(b, x, "")), ""), "");
    case FN_ERF: return libm_call(L, "erff", a, 1);
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

static LLVMValueRef emit_op(Lower *L, const IrNode *n, LLVMValueRef *a, const Type *at) {
    LLVMBuilderRef b = L->bd;
    int vec = 0;
    for (int i = 0; i < n->nargs; i++) vec |= is_vec(a[i]);
    if (vec)
        for (int i = 0; i < n->nargs; i++) a[i] = splat(L, a[i]);
    int ints = n->type == T_INT, arg_int = at[0] == T_INT, arg_bool = at[0] == T_BOOL;
    switch (n->op) {
    case IR_TOFLOAT: return LLVMBuildSIToFP(b, a[0], type_of(L, T_FLOAT, vec), "");
    case IR_NEG: return ints ? LLVMBuildSub(b, LLVMConstNull(LLVMTypeOf(a[0])), a[0], "") : LLVMBuildFNeg(b, a[0], "");
    case IR_NOT: return LLVMBuildNot(b, a[0], "");
    case IR_ADD: return ints ? LLVMBuildAdd(b, a[0], a[1], "") : LLVMBuildFAdd(b, a[0], a[1], "");
    case IR_SUB: return ints ? LLVMBuildSub(b, a[0], a[1], "") : LLVMBuildFSub(b, a[0], a[1], "");
    case IR_MUL: return ints ? LLVMBuildMul(b, a[0], a[1], "") : LLVMBuildFMul(b, a[0], a[1], "");
    case IR_DIV: return ints ? int_divmod(L, a[0], a[1], 0) : LLVMBuildFDiv(b, a[0], a[1], "");
    case IR_MOD: return ints ? int_divmod(L, a[0], a[1], 1) : float_mod(L, a[0], a[1]);
    case IR_LT: return arg_int ? LLVMBuildICmp(b, LLVMIntSLT, a[0], a[1], "") : fcmp(L, LLVMRealOLT, a[0], a[1]);
    case IR_LE: return arg_int ? LLVMBuildICmp(b, LLVMIntSLE, a[0], a[1], "") : fcmp(L, LLVMRealOLE, a[0], a[1]);
    case IR_EQ:
        return arg_int || arg_bool ? LLVMBuildICmp(b, LLVMIntEQ, a[0], a[1], "") : fcmp(L, LLVMRealOEQ, a[0], a[1]);
    case IR_NE:
        return arg_int || arg_bool ? LLVMBuildICmp(b, LLVMIntNE, a[0], a[1], "") : fcmp(L, LLVMRealUNE, a[0], a[1]);
    case IR_AND: return LLVMBuildAnd(b, a[0], a[1], "");
    case IR_OR: return LLVMBuildOr(b, a[0], a[1], "");
    case IR_SELECT: return LLVMBuildSelect(b, a[0], a[1], a[2], "");
    case IR_ABS:
        if (!ints) return intrinsic1(L, "llvm.fabs", a[0]);
        return LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntSLT, a[0], LLVMConstNull(LLVMTypeOf(a[0])), ""),
                               LLVMBuildSub(b, LLVMConstNull(LLVMTypeOf(a[0])), a[0], ""), a[0], "");
    case IR_MIN: return ints ? smin(L, a[0], a[1]) : fsel(L, fcmp(L, LLVMRealOLT, a[0], a[1]), a[0], a[1]);
    case IR_MAX: return ints ? smax(L, a[0], a[1]) : fsel(L, fcmp(L, LLVMRealOGT, a[0], a[1]), a[0], a[1]);
    case IR_CALL: return emit_call(L, (Fn)n->aux, a, n->nargs, at);
    default: break;
    }
    fail(L, "an IR operation the LLVM backend does not know");
    return LLVMGetUndef(type_of(L, n->type, vec));
}

/* t[i0, i1, ...]: in range -> the element, else 0; or the in-range test itself. */
static LLVMValueRef emit_load(Lower *L, const IrNode *n) {
    int t = n->aux;
    if (n->nargs > ATTNC_ABI_MAX_RANK || t < 0 || t >= L->p->attn->ntensors) {
        fail(L, "a tensor access the LLVM backend cannot express");
        return LLVMGetUndef(type_of(L, n->type, 0));
    }
    LLVMBuilderRef b = L->bd;
    LLVMValueRef idx[ATTNC_ABI_MAX_RANK];
    int vec = 0;
    for (int i = 0; i < n->nargs; i++) {
        idx[i] = emit(L, n->args[i]);
        vec |= is_vec(idx[i]);
    }
    LLVMValueRef inb = vec ? splat(L, cbool(L, 1)) : cbool(L, 1), off = vec ? splat(L, ci64(L, 0)) : ci64(L, 0);
    for (int i = 0; i < n->nargs; i++) {
        LLVMValueRef x = vec ? splat(L, idx[i]) : idx[i], dim = vec ? splat(L, L->tdim[t][i]) : L->tdim[t][i];
        /* dims are never negative (bind checks), so unsigned < is 0 <= x < dim */
        inb = LLVMBuildAnd(b, inb, LLVMBuildICmp(b, LLVMIntULT, x, dim, ""), "");
        off = LLVMBuildAdd(b, LLVMBuildMul(b, off, dim, ""), x, "");
    }
    if (n->op == IR_INBOUNDS) return inb;
    int elem_int = L->p->attn->tensors[t]->type == T_INT;
    LLVMTypeRef et = elem_int ? L->i32 : L->f32;
    LLVMValueRef v;
    if (vec) {
        LLVMValueRef ptrs = gep(L, et, L->tdata[t], off);
        v = gather(L, elem_int ? L->vi32 : L->vf32, ptrs, inb);
    } else {
        /* a branch, not a clamped index: an empty tensor has no element 0 */
        LLVMBasicBlockRef from = LLVMGetInsertBlock(b), yes = block(L, "load"), join = block(L, "loaded");
        LLVMBuildCondBr(b, inb, yes, join);
        LLVMPositionBuilderAtEnd(b, yes);
        LLVMValueRef x = load(L, et, gep(L, et, L->tdata[t], off), 4);
        LLVMBuildBr(b, join);
        LLVMPositionBuilderAtEnd(b, join);
        v = LLVMBuildPhi(b, et, "");
        LLVMValueRef vals[2] = {LLVMConstNull(et), x};
        LLVMBasicBlockRef bbs[2] = {from, yes};
        LLVMAddIncoming(v, vals, bbs, 2);
    }
    return elem_int ? LLVMBuildSExt(b, v, vec ? L->vi64 : L->i64, "") : v;
}

/* Bind sum level `level` to i inside the loop just opened; returns what
 * close_sum restores. */
static LLVMValueRef open_sum(Lower *L, int level, LLVMValueRef i) {
    LLVMValueRef saved = L->sumvar[level];
    scope_push(L);
    L->sumvar[level] = i;
    if (level < 31) L->open |= 1u << level; /* bit 31 (deeper levels) is never open: never hoisted */
    return saved;
}

static void close_sum(Lower *L, int level, LLVMValueRef saved) {
    L->sumvar[level] = saved;
    if (level < 31 && !saved) L->open &= ~(1u << level); /* open exactly while the level is bound */
    scope_pop(L);
}

/* Emit, at the current position, every node below r that reads no sum
 * variable but those of the loops open here (so a sum's loop only recomputes
 * what varies with it).  A node that reads the variable of a sum nested in
 * r's body cannot be computed here: only its operands are looked at. */
static void hoist_invariant(Lower *L, IrRef r, unsigned gen) {
    if (L->memo[r] || L->failed) return;
    const IrNode *n = &L->ir->nodes[r];
    if ((n->sumvars & ~L->open) == 0) {
        emit(L, r);
        return;
    }
    if (L->visit[r] == gen) return;
    L->visit[r] = gen;
    for (int i = 0; i < n->nargs; i++) hoist_invariant(L, n->args[i], gen);
}

static LLVMValueRef emit_sum(Lower *L, IrRef r, const IrNode *n) {
    (void)r;
    int level = n->aux;
    if (level < 0 || level >= MAX_SUM_LEVELS) {
        fail(L, "sums are nested too deeply for the LLVM backend");
        return LLVMGetUndef(type_of(L, n->op == IR_ANY ? T_BOOL : n->type, 0));
    }
    LLVMValueRef bound = emit(L, n->args[0]);
    if (is_vec(bound)) {
        fail(L, "a sum bound that varies with q");
        return LLVMGetUndef(type_of(L, n->op == IR_ANY ? T_BOOL : n->type, 0));
    }
    hoist_invariant(L, n->args[1], ++L->visit_gen);
    int vec = (n->deps & (DEP_Q | DEP_PRE)) != 0;
    LLVMTypeRef t = type_of(L, n->op == IR_ANY ? T_BOOL : n->type, vec);
    LLVMValueRef acc = local(L, t, LLVMConstNull(t));
    Loop lp;
    LLVMValueRef i = loop_begin(L, &lp, ci64(L, 0), bound, ci64(L, 1), "sum");
    LLVMValueRef saved = open_sum(L, level, i);
    LLVMValueRef v = emit(L, n->args[1]);
    if (vec) v = splat(L, v);
    LLVMValueRef cur = get(L, t, acc);
    LLVMValueRef next = n->op == IR_ANY    ? LLVMBuildOr(L->bd, cur, v, "")
                        : n->type == T_INT ? LLVMBuildAdd(L->bd, cur, v, "")
                                           : LLVMBuildFAdd(L->bd, cur, v, "");
    set(L, acc, next);
    close_sum(L, level, saved);
    loop_end(L, &lp);
    return get(L, t, acc);
}

static LLVMValueRef leaf_missing(Lower *L, const IrNode *n, const char *what) {
    char msg[120];
    snprintf(msg, sizeof msg, "%s is read where the kernel does not have it", what);
    fail(L, msg);
    return LLVMGetUndef(type_of(L, n->type, 0));
}

/* The value of node r here (memoised while its scope is open). */
static LLVMValueRef emit(Lower *L, IrRef r) {
    if (L->memo[r]) return L->memo[r];
    const IrNode *n = &L->ir->nodes[r];
    if (L->failed) return LLVMGetUndef(type_of(L, n->type, 0));
    LLVMValueRef v;
    switch (n->op) {
    case IR_CONST:
        if (n->type == T_INT) return ci64(L, n->c.i);
        if (n->type == T_FLOAT) return cf32(L, n->c.f);
        return cbool(L, n->c.b);
    case IR_VAR:
        v = n->aux == V_Q ? L->q_vec : n->aux == V_KV ? L->kv : L->var[n->aux];
        return v ? v : leaf_missing(L, n, builtin_var_name(n->aux));
    case IR_PARAM: return L->param[n->aux];
    case IR_PRE: return L->pre ? L->pre : leaf_missing(L, n, "the score");
    case IR_SUMVAR:
        v = n->aux >= 0 && n->aux < MAX_SUM_LEVELS ? L->sumvar[n->aux] : NULL;
        return v ? v : leaf_missing(L, n, "a sum variable");
    case IR_SUM:
    case IR_ANY: v = emit_sum(L, r, n); break;
    case IR_LOAD:
    case IR_INBOUNDS: v = emit_load(L, n); break;
    default: {
        LLVMValueRef a[3];
        Type at[3] = {T_INT, T_INT, T_INT};
        if (n->nargs > 3) {
            fail(L, "an IR node with too many operands");
            return LLVMGetUndef(type_of(L, n->type, 0));
        }
        for (int i = 0; i < n->nargs; i++) {
            a[i] = emit(L, n->args[i]);
            at[i] = L->ir->nodes[n->args[i]].type;
        }
        v = emit_op(L, n, a, at);
    }
    }
    remember(L, r, v);
    return v;
}

/* Emit, here, every node below r that is placed at `place` or coarser and
 * reads no sum variable: what the loops inside will read. */
static void hoist_place(Lower *L, IrRef r, Place place, unsigned gen) {
    if (r == IR_NONE || L->memo[r] || L->failed) return;
    const IrNode *n = &L->ir->nodes[r];
    if (place_of(n) <= place && n->sumvars == 0) {
        emit(L, r);
        return;
    }
    if (L->visit[r] == gen) return;
    L->visit[r] = gen;
    for (int i = 0; i < n->nargs; i++) hoist_place(L, n->args[i], place, gen);
}

/* ---- the ROW values the element loop reads ---------------------------------- */

static int in_element_loop(const IrNode *n) { return place_of(n) >= PL_COL || n->sumvars != 0; }

static void add_frontier(Lower *L, IrRef r, char *mark) {
    const IrNode *n = &L->ir->nodes[r];
    if (mark[r] == 2 || n->op == IR_VAR || n->op == IR_CONST || place_of(n) != PL_ROW || n->sumvars) return;
    mark[r] = 2;
    L->frontier[L->nfrontier++] = r;
}

static void find_frontier(Lower *L, IrRef r, char *mark) {
    if (r == IR_NONE || mark[r]) return;
    const IrNode *n = &L->ir->nodes[r];
    if (!in_element_loop(n)) {
        add_frontier(L, r, mark);
        return;
    }
    mark[r] = 1;
    for (int i = 0; i < n->nargs; i++) find_frontier(L, n->args[i], mark);
}

/* ---- the kernel ------------------------------------------------------------- */

/* A region to pull into L2 while a micro-kernel runs, one 64-byte line per
 * iteration of its inner loop.  Work items arrive heaviest first, which
 * interleaves heads, so K and V usually come from memory; prefetches spread
 * through the FMAs hide that, where a burst of them would stall on the
 * line-fill buffers. */
typedef struct Prefetch {
    LLVMValueRef base; /* float* */
    LLVMValueRef bytes;
} Prefetch;

/* Prefetch line `line` of the region (its last line once past its end). */
static void prefetch_line(Lower *L, const Prefetch *pf, LLVMValueRef line) {
    LLVMBuilderRef b = L->bd;
    LLVMValueRef byte = smin(L, LLVMBuildMul(b, line, ci64(L, 64), ""), LLVMBuildSub(b, pf->bytes, ci64(L, 64), ""));
    LLVMTypeRef pt = ptr_to(L->i8);
    /* rw 0 (read), locality 2 (prefetcht1: L2, leaving L1 to the micro-kernel), data */
    LLVMValueRef args[4] = {gep(L, L->i8, pf->base, smax(L, byte, ci64(L, 0))), ci32(L, 0), ci32(L, 2), ci32(L, 1)};
    intrinsic(L, "llvm.prefetch", &pt, 1, args, 4);
}

static LLVMValueRef round64(Lower *L, LLVMValueRef bytes) {
    return LLVMBuildAnd(L->bd, LLVMBuildAdd(L->bd, bytes, ci64(L, 63), ""), ci64(L, -64), "");
}

/* Carve the scratch regions (base != NULL) or just size them; returns the
 * bytes needed, 64 of slack for aligning the base included. */
static LLVMValueRef layout(Lower *L, LLVMValueRef D, LLVMValueRef Dv, LLVMValueRef Rt, LLVMValueRef base, Regions *rg) {
    LLVMBuilderRef b = L->bd;
    LLVMValueRef qb4 = ci64(L, (int64_t)L->QB * 4);
    LLVMValueRef sizes[6] = {
        LLVMBuildMul(b, D, qb4, ""),                                         /* qt */
        LLVMBuildMul(b, Rt, qb4, ""),                                        /* qx */
        LLVMBuildMul(b, Rt, ci64(L, (int64_t)L->BK * 4), ""),                /* kx */
        ci64(L, (int64_t)L->BK * L->QB * 4),                                 /* s */
        LLVMBuildMul(b, Dv, qb4, ""),                                        /* ot */
        ci64(L, (int64_t)L->QB * 4 * 4 + (int64_t)L->nfrontier * L->QB * 8), /* stats, rows */
    };
    LLVMValueRef off = ci64(L, 0);
    LLVMValueRef at[6];
    for (int i = 0; i < 6; i++) {
        at[i] = off;
        off = LLVMBuildAdd(b, off, round64(L, sizes[i]), "");
    }
    if (base) {
        LLVMValueRef *dst[5] = {&rg->qt, &rg->qx, &rg->kx, &rg->s, &rg->ot};
        for (int i = 0; i < 5; i++) *dst[i] = gep(L, L->i8, base, at[i]);
        LLVMValueRef stats = gep(L, L->i8, base, at[5]);
        rg->m = stats;
        rg->l = gep(L, L->i8, stats, ci64(L, (int64_t)L->QB * 4));
        rg->any = gep(L, L->i8, stats, ci64(L, (int64_t)L->QB * 8));
        rg->tmax = gep(L, L->i8, stats, ci64(L, (int64_t)L->QB * 12));
        rg->rows = gep(L, L->i8, stats, ci64(L, (int64_t)L->QB * 16));
    }
    return LLVMBuildAdd(b, off, ci64(L, 64), "");
}

/* Sizes, params and tensors from the AttnCall. */
static void load_inputs(Lower *L) {
    static const size_t size_off[7] = {offsetof(AttnCall, B),  offsetof(AttnCall, H),  offsetof(AttnCall, Hkv),
                                       offsetof(AttnCall, Lq), offsetof(AttnCall, Lk), offsetof(AttnCall, D),
                                       offsetof(AttnCall, Dv)};
    for (int i = 0; i < 7; i++) L->var[V_SIZE_B + i] = call_field(L, size_off[i], L->i64);
    const Attention *a = L->p->attn;
    LLVMValueRef params = call_field(L, offsetof(AttnCall, params), ptr_to(L->i64));
    for (int i = 0; i < a->nparams; i++) {
        LLVMValueRef at = gep(L, L->i64, params, ci64(L, i));
        Type t = a->params[i]->type;
        if (t == T_FLOAT)
            L->param[i] = LLVMBuildFPTrunc(L->bd, load(L, L->f64, at, 8), L->f32, "");
        else if (t == T_BOOL)
            L->param[i] = LLVMBuildICmp(L->bd, LLVMIntNE, load(L, L->i64, at, 8), ci64(L, 0), "");
        else
            L->param[i] = load(L, L->i64, at, 8);
    }
    LLVMValueRef data = call_field(L, offsetof(AttnCall, tensor_data), ptr_to(ptr_to(L->i8)));
    LLVMValueRef shape = call_field(L, offsetof(AttnCall, tensor_shape), ptr_to(L->i64));
    for (int t = 0; t < a->ntensors; t++) {
        L->tdata[t] = load(L, ptr_to(L->i8), gep(L, ptr_to(L->i8), data, ci64(L, t)), 8);
        for (int d = 0; d < a->tensors[t]->ndims && d < ATTNC_ABI_MAX_RANK; d++)
            L->tdim[t][d] = load(L, L->i64, gep(L, L->i64, shape, ci64(L, (int64_t)t * ATTNC_ABI_MAX_RANK + d)), 8);
    }
}

/* Low-rank column counts (clamped at 0), their offsets, and their total. */
static LLVMValueRef lowrank_columns(Lower *L, LLVMValueRef *count, LLVMValueRef *start) {
    LLVMValueRef total = ci64(L, 0);
    for (int g = 0; g < L->f->nlowrank; g++) {
        count[g] = smax(L, emit(L, L->f->lowrank_count[g]), ci64(L, 0));
        start[g] = total;
        total = LLVMBuildAdd(L->bd, total, count[g], "");
    }
    return total;
}

/* Out[row][0..QB) (=|+=) sum over k < depth of A[row*ars + k*aks] * Bm[k][0..QB),
 * rows 0..nrows: R rows x CQ vectors of accumulators per block. */
static void gemm_rows(Lower *L, int R, LLVMValueRef i0, LLVMValueRef A, LLVMValueRef ars, LLVMValueRef aks,
                      LLVMValueRef Bm, LLVMValueRef depth, LLVMValueRef Out, int accumulate, const Prefetch *pf) {
    LLVMBuilderRef b = L->bd;
    LLVMValueRef acc[MAX_R][MAX_CQ];
    for (int i = 0; i < R; i++)
        for (int j = 0; j < L->CQ; j++) acc[i][j] = local(L, L->vf32, NULL);
    Loop lc;
    LLVMValueRef c0 = loop_begin(L, &lc, ci64(L, 0), ci64(L, L->C), ci64(L, L->CQ), "gemm.c");
    LLVMValueRef col0 = LLVMBuildMul(b, c0, ci64(L, L->W), "");
    for (int i = 0; i < R; i++) {
        LLVMValueRef row = LLVMBuildMul(b, LLVMBuildAdd(b, i0, ci64(L, i), ""), ci64(L, L->QB), "");
        for (int j = 0; j < L->CQ; j++) {
            LLVMValueRef at = LLVMBuildAdd(b, row, LLVMBuildAdd(b, col0, ci64(L, (int64_t)j * L->W), ""), "");
            set(L, acc[i][j], accumulate ? load_fvec(L, Out, at) : LLVMConstNull(L->vf32));
        }
    }
    Loop lk;
    LLVMValueRef k = loop_begin(L, &lk, ci64(L, 0), depth, ci64(L, 1), "gemm.k");
    LLVMValueRef brow = LLVMBuildAdd(b, LLVMBuildMul(b, k, ci64(L, L->QB), ""), col0, "");
    LLVMValueRef bv[MAX_CQ];
    for (int j = 0; j < L->CQ; j++) bv[j] = load_fvec(L, Bm, LLVMBuildAdd(b, brow, ci64(L, (int64_t)j * L->W), ""));
    if (pf) /* line (block * depth + k) */
        prefetch_line(L, pf, LLVMBuildAdd(b, LLVMBuildMul(b, LLVMBuildSDiv(b, i0, ci64(L, R), ""), depth, ""), k, ""));
    LLVMValueRef kofs = LLVMBuildMul(b, k, aks, "");
    for (int i = 0; i < R; i++) {
        LLVMValueRef ai = LLVMBuildAdd(b, LLVMBuildMul(b, LLVMBuildAdd(b, i0, ci64(L, i), ""), ars, ""), kofs, "");
        LLVMValueRef as = splat(L, load(L, L->f32, gep(L, L->f32, A, ai), 4));
        for (int j = 0; j < L->CQ; j++) set(L, acc[i][j], fmuladd(L, as, bv[j], get(L, L->vf32, acc[i][j])));
    }
    loop_end(L, &lk);
    for (int i = 0; i < R; i++) {
        LLVMValueRef row = LLVMBuildMul(b, LLVMBuildAdd(b, i0, ci64(L, i), ""), ci64(L, L->QB), "");
        for (int j = 0; j < L->CQ; j++) {
            LLVMValueRef at = LLVMBuildAdd(b, row, LLVMBuildAdd(b, col0, ci64(L, (int64_t)j * L->W), ""), "");
            store_fvec(L, get(L, L->vf32, acc[i][j]), Out, at);
        }
    }
    loop_end(L, &lc);
}

static void gemm(Lower *L, LLVMValueRef A, LLVMValueRef ars, LLVMValueRef aks, LLVMValueRef nrows, LLVMValueRef Bm,
                 LLVMValueRef depth, LLVMValueRef Out, int accumulate, const Prefetch *pf) {
    Loop lb;
    LLVMValueRef full_end = LLVMBuildSub(L->bd, nrows, ci64(L, L->R - 1), "");
    LLVMValueRef i0 = loop_begin(L, &lb, ci64(L, 0), full_end, ci64(L, L->R), "gemm.rows");
    gemm_rows(L, L->R, i0, A, ars, aks, Bm, depth, Out, accumulate, pf);
    loop_end(L, &lb);
    Loop lt;
    LLVMValueRef i = loop_begin(L, &lt, lb.i, nrows, ci64(L, 1), "gemm.tail");
    gemm_rows(L, 1, i, A, ars, aks, Bm, depth, Out, accumulate, NULL);
    loop_end(L, &lt);
}

/* What the tile loop shares. */
typedef struct Tile {
    Regions rg;
    LLVMValueRef qbh, kbh, vbh, obh, lse_row; /* Q, K, V, O of (b, h); &LSE[b, h, 0] */
    LLVMValueRef has_lse;                     /* i1: the call passed an LSE buffer */
    LLVMValueRef scale, rt, count[64], start[64];
    LLVMValueRef qb0, q1;      /* the row block and the end of the work item's rows */
    LLVMValueRef k0, k1;       /* the kv tile */
    LLVMValueRef fault;        /* local i1: an element raised a runtime error */
    Prefetch first_k, first_v; /* K and V rows of the row block's first tile */
} Tile;

/* The lanes of row vector c: q = qb0 + c*W + lane, and which are rows of the item. */
static void enter_row_vector(Lower *L, Tile *T, LLVMValueRef c) {
    LLVMValueRef first = LLVMBuildAdd(L->bd, T->qb0, LLVMBuildMul(L->bd, c, ci64(L, L->W), ""), "");
    L->q_vec = LLVMBuildAdd(L->bd, splat(L, first), iota(L), "q");
    L->valid = LLVMBuildICmp(L->bd, LLVMIntSLT, L->q_vec, splat(L, T->q1), "valid");
}

static LLVMValueRef frontier_slot(Lower *L, Tile *T, int slot, LLVMValueRef c) {
    LLVMValueRef byte = LLVMBuildAdd(L->bd, ci64(L, (int64_t)slot * L->QB * 8),
                                     LLVMBuildMul(L->bd, c, ci64(L, (int64_t)L->W * 8), ""), "");
    return gep(L, L->i8, T->rg.rows, byte);
}

static void store_frontier(Lower *L, Tile *T, int slot, LLVMValueRef c, LLVMValueRef v) {
    v = splat(L, v);
    if (LLVMTypeOf(v) == L->vi1) v = LLVMBuildZExt(L->bd, v, L->vi8, "");
    store(L, v, frontier_slot(L, T, slot, c), 8);
}

static LLVMValueRef load_frontier(Lower *L, Tile *T, int slot, LLVMValueRef c) {
    Type t = L->ir->nodes[L->frontier[slot]].type;
    LLVMValueRef p = frontier_slot(L, T, slot, c);
    if (t == T_BOOL) return LLVMBuildTrunc(L->bd, load(L, L->vi8, p, 8), L->vi1, "");
    return load(L, type_of(L, t, 1), p, 8);
}

/* Per row block: Q transposed and scaled, low-rank q columns, the frontier
 * ROW values, fresh softmax statistics and a zero output accumulator. */
static void row_prologue(Lower *L, Tile *T) {
    LLVMBuilderRef b = L->bd;
    Loop lc;
    LLVMValueRef c = loop_begin(L, &lc, ci64(L, 0), ci64(L, L->C), ci64(L, 1), "rows");
    scope_push(L);
    enter_row_vector(L, T, c);
    LLVMValueRef col = LLVMBuildMul(b, c, ci64(L, L->W), "");
    LLVMValueRef D = L->var[V_SIZE_D], Dv = L->var[V_SIZE_DV];
    LLVMValueRef qrow = LLVMBuildMul(b, L->q_vec, splat(L, D), "");
    LLVMValueRef vscale = splat(L, T->scale);
    Loop ld;
    LLVMValueRef d = loop_begin(L, &ld, ci64(L, 0), D, ci64(L, 1), "packq");
    /* the first tile's K and V rows, which no earlier tile prefetched */
    LLVMValueRef line = LLVMBuildAdd(b, LLVMBuildMul(b, c, D, ""), d, "");
    prefetch_line(L, &T->first_k, line);
    prefetch_line(L, &T->first_v, line);
    LLVMValueRef x = gather(L, L->vf32, gep(L, L->f32, T->qbh, LLVMBuildAdd(b, qrow, splat(L, d), "")), L->valid);
    store_fvec(L, LLVMBuildFMul(b, x, vscale, ""), T->rg.qt,
               LLVMBuildAdd(b, LLVMBuildMul(b, d, ci64(L, L->QB), ""), col, ""));
    loop_end(L, &ld);
    for (int g = 0; g < L->f->nlowrank; g++) {
        hoist_invariant(L, L->f->lowrank_q[g], ++L->visit_gen);
        Loop lr;
        LLVMValueRef r = loop_begin(L, &lr, ci64(L, 0), T->count[g], ci64(L, 1), "lowrank.q");
        LLVMValueRef saved = open_sum(L, 0, r);
        LLVMValueRef v = splat(L, emit(L, L->f->lowrank_q[g]));
        LLVMValueRef at =
            LLVMBuildAdd(b, LLVMBuildMul(b, LLVMBuildAdd(b, T->start[g], r, ""), ci64(L, L->QB), ""), col, "");
        store_fvec(L, v, T->rg.qx, at);
        close_sum(L, 0, saved);
        loop_end(L, &lr);
    }
    for (int s = 0; s < L->nfrontier; s++) store_frontier(L, T, s, c, emit(L, L->frontier[s]));
    store_fvec(L, splat(L, cf32(L, -INFINITY)), T->rg.m, col);
    store_fvec(L, LLVMConstNull(L->vf32), T->rg.l, col);
    store_fvec(L, LLVMConstNull(L->vf32), T->rg.any, col);
    Loop lz;
    LLVMValueRef dv = loop_begin(L, &lz, ci64(L, 0), Dv, ci64(L, 1), "zeroo");
    store_fvec(L, LLVMConstNull(L->vf32), T->rg.ot, LLVMBuildAdd(b, LLVMBuildMul(b, dv, ci64(L, L->QB), ""), col, ""));
    loop_end(L, &lz);
    scope_pop(L);
    loop_end(L, &lc);
}

/* Low-rank k columns of the tile: Kx[kv - k0][start_g + r] = lowrank_k[g](kv, r). */
static void lowrank_k_columns(Lower *L, Tile *T) {
    LLVMBuilderRef b = L->bd;
    Loop lk;
    LLVMValueRef kv = loop_begin(L, &lk, T->k0, T->k1, ci64(L, 1), "lowrank.kv");
    scope_push(L);
    L->kv = kv;
    LLVMValueRef rowofs = LLVMBuildMul(b, LLVMBuildSub(b, kv, T->k0, ""), T->rt, "");
    for (int g = 0; g < L->f->nlowrank; g++) {
        hoist_invariant(L, L->f->lowrank_k[g], ++L->visit_gen);
        Loop lr;
        LLVMValueRef r = loop_begin(L, &lr, ci64(L, 0), T->count[g], ci64(L, 1), "lowrank.k");
        LLVMValueRef saved = open_sum(L, 0, r);
        LLVMValueRef v = emit(L, L->f->lowrank_k[g]);
        if (is_vec(v))
            fail(L, "a low-rank k column that varies with q");
        else
            store(L, v, gep(L, L->f32, T->rg.kx, LLVMBuildAdd(b, rowofs, LLVMBuildAdd(b, T->start[g], r, ""), "")), 4);
        close_sum(L, 0, saved);
        loop_end(L, &lr);
    }
    L->kv = NULL;
    scope_pop(L);
    loop_end(L, &lk);
}

/* The per-element code over the tile's scores S[kv][q]: bias, mask (PARTIAL
 * tiles), score clauses; then either the log2-domain score (softmax: masked
 * -> -inf, the tile max per lane) or the weight (masked -> 0, summed straight
 * into l). */
static void elementwise(Lower *L, Tile *T, int partial) {
    LLVMBuilderRef b = L->bd;
    const IrFunc *f = L->f;
    int softmax = L->p->softmax;
    Loop lc;
    LLVMValueRef c = loop_begin(L, &lc, ci64(L, 0), ci64(L, L->C), ci64(L, 1), partial ? "elem.partial" : "elem.full");
    scope_push(L);
    enter_row_vector(L, T, c);
    LLVMValueRef col = LLVMBuildMul(b, c, ci64(L, L->W), "");
    for (int s = 0; s < L->nfrontier; s++) remember(L, L->frontier[s], load_frontier(L, T, s, c));
    LLVMValueRef tmax = local(L, L->vf32, splat(L, cf32(L, -INFINITY)));
    LLVMValueRef lsum = softmax ? NULL : local(L, L->vf32, LLVMConstNull(L->vf32));
    LLVMValueRef kept = softmax ? NULL : local(L, L->vi1, LLVMConstNull(L->vi1));
    Loop lk;
    LLVMValueRef kv = loop_begin(L, &lk, T->k0, T->k1, ci64(L, 1), "elem.kv");
    scope_push(L);
    L->kv = kv;
    LLVMValueRef at = LLVMBuildAdd(b, LLVMBuildMul(b, LLVMBuildSub(b, kv, T->k0, ""), ci64(L, L->QB), ""), col, "");
    LLVMValueRef s = load_fvec(L, T->rg.s, at);
    /* pre = scale * Q.K + low-rank columns (in S) + bias; a constant 0 bias costs nothing */
    L->pre = ir_is_const(L->ir, f->bias) && L->ir->nodes[f->bias].c.f == 0.0
                 ? s
                 : LLVMBuildFAdd(b, s, splat(L, emit(L, f->bias)), "pre");
    LLVMValueRef keep = partial ? splat(L, emit(L, f->keep)) : NULL;
    if (softmax) {
        LLVMValueRef t = LLVMBuildFMul(b, splat(L, emit(L, f->score)), splat(L, cf32(L, 1.44269504088896340736)), "");
        if (keep) t = fsel(L, keep, t, splat(L, cf32(L, -INFINITY)));
        store_fvec(L, t, T->rg.s, at);
        LLVMValueRef m = get(L, L->vf32, tmax);
        set(L, tmax, fsel(L, fcmp(L, LLVMRealOGT, t, m), t, m));
    } else {
        LLVMValueRef w = splat(L, emit(L, f->weight));
        if (keep) w = fsel(L, keep, w, LLVMConstNull(L->vf32));
        store_fvec(L, w, T->rg.s, at);
        set(L, lsum, LLVMBuildFAdd(b, get(L, L->vf32, lsum), w, ""));
        set(L, kept, LLVMBuildOr(b, get(L, L->vi1, kept), keep ? keep : splat(L, cbool(L, 1)), ""));
    }
    L->pre = NULL;
    L->kv = NULL;
    scope_pop(L);
    loop_end(L, &lk);
    if (softmax) {
        store_fvec(L, get(L, L->vf32, tmax), T->rg.tmax, col);
    } else {
        store_fvec(L, LLVMBuildFAdd(b, load_fvec(L, T->rg.l, col), get(L, L->vf32, lsum), ""), T->rg.l, col);
        LLVMValueRef any = fsel(L, get(L, L->vi1, kept), splat(L, cf32(L, 1.0)), load_fvec(L, T->rg.any, col));
        store_fvec(L, any, T->rg.any, col);
    }
    scope_pop(L);
    loop_end(L, &lc);
}

/* The plan's fault root over the tile's elements (rows of the item only):
 * whether lazy evaluation would raise a runtime error anywhere in it. */
static void fault_pass(Lower *L, Tile *T) {
    LLVMBuilderRef b = L->bd;
    Loop lc;
    LLVMValueRef c = loop_begin(L, &lc, ci64(L, 0), ci64(L, L->C), ci64(L, 1), "fault.c");
    scope_push(L);
    enter_row_vector(L, T, c);
    for (int s = 0; s < L->nfrontier; s++) remember(L, L->frontier[s], load_frontier(L, T, s, c));
    LLVMValueRef fault = local(L, L->vi1, LLVMConstNull(L->vi1));
    Loop lk;
    LLVMValueRef kv = loop_begin(L, &lk, T->k0, T->k1, ci64(L, 1), "fault.kv");
    scope_push(L);
    L->kv = kv;
    L->pre = load_fvec(L, T->rg.s,
                       LLVMBuildAdd(b, LLVMBuildMul(b, LLVMBuildSub(b, kv, T->k0, ""), ci64(L, L->QB), ""),
                                    LLVMBuildMul(b, c, ci64(L, L->W), ""), ""));
    if (!(ir_is_const(L->ir, L->f->bias) && L->ir->nodes[L->f->bias].c.f == 0.0))
        L->pre = LLVMBuildFAdd(b, L->pre, splat(L, emit(L, L->f->bias)), "pre");
    LLVMValueRef fv = LLVMBuildAnd(b, splat(L, emit(L, L->f->fault)), L->valid, "");
    set(L, fault, LLVMBuildOr(b, get(L, L->vi1, fault), fv, ""));
    L->pre = NULL;
    L->kv = NULL;
    scope_pop(L);
    loop_end(L, &lk);
    LLVMBasicBlockRef after = if_begin(L, any_lane(L, get(L, L->vi1, fault)), "fault");
    set(L, T->fault, cbool(L, 1));
    if_end(L, after);
    scope_pop(L);
    loop_end(L, &lc);
}

/* Softmax after the element pass: the new running max, P = 2^(t - m) in place
 * of the scores, l and the output accumulator rescaled by 2^(m_old - m). */
static void normalise(Lower *L, Tile *T) {
    LLVMBuilderRef b = L->bd;
    Loop lc;
    LLVMValueRef c = loop_begin(L, &lc, ci64(L, 0), ci64(L, L->C), ci64(L, 1), "softmax");
    LLVMValueRef col = LLVMBuildMul(b, c, ci64(L, L->W), "");
    LLVMValueRef m_old = load_fvec(L, T->rg.m, col), m_tile = load_fvec(L, T->rg.tmax, col);
    LLVMValueRef m_new = fsel(L, fcmp(L, LLVMRealOGT, m_tile, m_old), m_tile, m_old);
    /* a lane that has kept nothing stays at -inf: subtract 0 there, not -inf */
    LLVMValueRef m_sub =
        fsel(L, fcmp(L, LLVMRealOEQ, m_new, splat(L, cf32(L, -INFINITY))), LLVMConstNull(L->vf32), m_new);
    LLVMValueRef corr = fast_exp2(L, LLVMBuildFSub(b, m_old, m_sub, ""));
    LLVMValueRef sum = local(L, L->vf32, LLVMConstNull(L->vf32));
    Loop lk;
    LLVMValueRef kv = loop_begin(L, &lk, T->k0, T->k1, ci64(L, 1), "softmax.kv");
    LLVMValueRef at = LLVMBuildAdd(b, LLVMBuildMul(b, LLVMBuildSub(b, kv, T->k0, ""), ci64(L, L->QB), ""), col, "");
    LLVMValueRef p = fast_exp2(L, LLVMBuildFSub(b, load_fvec(L, T->rg.s, at), m_sub, ""));
    store_fvec(L, p, T->rg.s, at);
    set(L, sum, LLVMBuildFAdd(b, get(L, L->vf32, sum), p, ""));
    loop_end(L, &lk);
    LLVMValueRef l = fmuladd(L, load_fvec(L, T->rg.l, col), corr, get(L, L->vf32, sum));
    store_fvec(L, l, T->rg.l, col);
    store_fvec(L, m_new, T->rg.m, col);
    LLVMBasicBlockRef after = if_begin(L, any_lane(L, fcmp(L, LLVMRealUNE, corr, splat(L, cf32(L, 1.0)))), "rescale");
    Loop ld;
    LLVMValueRef dv = loop_begin(L, &ld, ci64(L, 0), L->var[V_SIZE_DV], ci64(L, 1), "rescale.dv");
    LLVMValueRef o = LLVMBuildAdd(b, LLVMBuildMul(b, dv, ci64(L, L->QB), ""), col, "");
    store_fvec(L, LLVMBuildFMul(b, load_fvec(L, T->rg.ot, o), corr, ""), T->rg.ot, o);
    loop_end(L, &ld);
    if_end(L, after);
    loop_end(L, &lc);
}

/* O and LSE of the row block's valid rows. */
static void finish(Lower *L, Tile *T) {
    LLVMBuilderRef b = L->bd;
    const IrFunc *f = L->f;
    Loop lc;
    LLVMValueRef c = loop_begin(L, &lc, ci64(L, 0), ci64(L, L->C), ci64(L, 1), "finish");
    scope_push(L);
    enter_row_vector(L, T, c);
    LLVMValueRef col = LLVMBuildMul(b, c, ci64(L, L->W), "");
    for (int s = 0; s < L->nfrontier; s++)
        if (L->frontier[s] == f->lse_offset) remember(L, L->frontier[s], load_frontier(L, T, s, c));
    LLVMValueRef m = load_fvec(L, T->rg.m, col), l = load_fvec(L, T->rg.l, col), any = load_fvec(L, T->rg.any, col);
    LLVMValueRef zero = L->p->softmax ? fcmp(L, LLVMRealOEQ, m, splat(L, cf32(L, -INFINITY)))
                                      : fcmp(L, LLVMRealOEQ, any, LLVMConstNull(L->vf32));
    LLVMValueRef offset = NULL;
    if (f->lse_offset != IR_NONE) {
        offset = splat(L, emit(L, f->lse_offset));
        LLVMValueRef bad = LLVMBuildOr(b, fcmp(L, LLVMRealUNO, offset, offset),
                                       fcmp(L, LLVMRealOEQ, offset, splat(L, cf32(L, -INFINITY))), "");
        zero = LLVMBuildOr(b, zero, bad, "");
    }
    LLVMValueRef inv = L->p->softmax ? LLVMBuildFDiv(b, splat(L, cf32(L, 1.0)), l, "") : NULL;
    LLVMValueRef orow = LLVMBuildMul(b, L->q_vec, splat(L, L->var[V_SIZE_DV]), "");
    Loop ld;
    LLVMValueRef dv = loop_begin(L, &ld, ci64(L, 0), L->var[V_SIZE_DV], ci64(L, 1), "store.o");
    LLVMValueRef x = load_fvec(L, T->rg.ot, LLVMBuildAdd(b, LLVMBuildMul(b, dv, ci64(L, L->QB), ""), col, ""));
    if (inv) x = LLVMBuildFMul(b, x, inv, "");
    x = fsel(L, zero, LLVMConstNull(L->vf32), x);
    scatter(L, x, gep(L, L->f32, T->obh, LLVMBuildAdd(b, orow, splat(L, dv), "")), L->valid);
    loop_end(L, &ld);
    LLVMValueRef lse;
    if (L->p->softmax) {
        lse = fmuladd(L, m, splat(L, cf32(L, 0.69314718055994530942)), fast_log(L, l, 0));
        if (offset) lse = LLVMBuildFAdd(b, lse, offset, "");
    } else {
        lse = fast_log(L, l, 0);
    }
    lse = fsel(L, zero, splat(L, cf32(L, -INFINITY)), lse);
    LLVMBasicBlockRef after = if_begin(L, T->has_lse, "store.lse");
    masked_store(L, lse, gep(L, L->f32, T->lse_row, LLVMBuildAdd(b, T->qb0, col, "")), L->valid);
    if_end(L, after);
    scope_pop(L);
    loop_end(L, &lc);
}

static void set_function_attributes(Lower *L, LLVMValueRef fn) {
    char width[16];
    snprintf(width, sizeof width, "%d", L->W * 32);
    /* without these, x86 splits 512-bit vectors in two on CPUs that prefer 256 */
    LLVMAddTargetDependentFunctionAttr(fn, "min-legal-vector-width", width);
    LLVMAddTargetDependentFunctionAttr(fn, "prefer-vector-width", width);
    if (L->target->cpu) LLVMAddTargetDependentFunctionAttr(fn, "target-cpu", L->target->cpu);
    if (L->target->features) LLVMAddTargetDependentFunctionAttr(fn, "target-features", L->target->features);
    unsigned nounwind = LLVMGetEnumAttributeKindForName("nounwind", 8);
    if (nounwind) LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(L->ctx, nounwind, 0));
}

/* A function whose entry block holds the allocas and falls through to `start`. */
static LLVMBasicBlockRef open_function(Lower *L, const char *name, LLVMTypeRef fty) {
    L->fn = LLVMAddFunction(L->mod, name, fty);
    set_function_attributes(L, L->fn);
    LLVMBasicBlockRef entry = block(L, "entry");
    LLVMBasicBlockRef start = block(L, "start");
    LLVMPositionBuilderAtEnd(L->alloca_bd, entry);
    LLVMPositionBuilderAtEnd(L->bd, start);
    return entry;
}

static void close_function(Lower *L, LLVMBasicBlockRef entry) {
    LLVMPositionBuilderAtEnd(L->alloca_bd, entry);
    LLVMBuildBr(L->alloca_bd, LLVMGetNextBasicBlock(entry));
}

static void reset_values(Lower *L) {
    while (L->depth > 0) scope_pop(L);
    while (L->nstack > 0) L->memo[L->stack[--L->nstack]] = NULL;
    memset(L->var, 0, sizeof L->var);
    memset(L->sumvar, 0, sizeof L->sumvar);
    L->open = 0;
    L->q_vec = L->kv = L->pre = L->valid = NULL;
}

/* The element pass for this tile's mode, after the fault check when the call
 * asks for one (a fault returns 1 at once: O is discarded anyway). */
static void element_pass(Lower *L, Tile *T, LLVMValueRef mode, LLVMValueRef check_faults) {
    LLVMBuilderRef b = L->bd;
    if (L->p->needs_fault) {
        LLVMBasicBlockRef after = if_begin(L, LLVMBuildICmp(b, LLVMIntNE, check_faults, ci32(L, 0), ""), "check");
        fault_pass(L, T);
        LLVMBasicBlockRef ok = if_begin(L, get(L, L->i1, T->fault), "fault.return");
        LLVMBuildRet(b, ci32(L, 1));
        LLVMPositionBuilderAtEnd(b, ok);
        if_end(L, after);
    }
    if (!L->p->needs_mask) {
        elementwise(L, T, 0);
        return;
    }
    LLVMBasicBlockRef partial = block(L, "elem.partial"), full = block(L, "elem.full"), join = block(L, "elem.done");
    LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntEQ, mode, LLVMConstInt(L->i8, TILE_PARTIAL, 0), ""), partial, full);
    LLVMPositionBuilderAtEnd(b, partial);
    elementwise(L, T, 1);
    LLVMBuildBr(b, join);
    LLVMPositionBuilderAtEnd(b, full);
    elementwise(L, T, 0);
    LLVMBuildBr(b, join);
    LLVMPositionBuilderAtEnd(b, join);
}

static void gen_tile(Lower *L, const char *name) {
    LLVMBuilderRef b = L->bd;
    const IrFunc *f = L->f;
    LLVMTypeRef args[5] = {ptr_to(L->i8), L->i64, L->i64, L->i64, ptr_to(L->i8)};
    LLVMBasicBlockRef entry = open_function(L, name, LLVMFunctionType(L->i32, args, 5, 0));
    static const char *const names[5] = {"call", "b", "h", "qt", "scratch"};
    for (unsigned i = 0; i < 5; i++) LLVMSetValueName2(LLVMGetParam(L->fn, i), names[i], strlen(names[i]));
    L->call = LLVMGetParam(L->fn, 0);
    LLVMValueRef bi = LLVMGetParam(L->fn, 1), hi = LLVMGetParam(L->fn, 2), qt = LLVMGetParam(L->fn, 3);
    LLVMValueRef scratch = LLVMGetParam(L->fn, 4);
    load_inputs(L);
    LLVMValueRef H = L->var[V_SIZE_H], Hkv = L->var[V_SIZE_HKV], Lq = L->var[V_SIZE_LQ], Lk = L->var[V_SIZE_LK];
    LLVMValueRef D = L->var[V_SIZE_D], Dv = L->var[V_SIZE_DV];
    L->var[V_B] = bi;
    L->var[V_H] = hi;
    /* bind guarantees Hkv > 0 and H % Hkv == 0; the selects keep it UB-free regardless */
    LLVMValueRef group = LLVMBuildSDiv(b, H, smax(L, Hkv, ci64(L, 1)), "");
    LLVMValueRef hk = LLVMBuildSDiv(b, hi, smax(L, group, ci64(L, 1)), "");
    L->var[V_HK] = hk;
    Tile T;
    memset(&T, 0, sizeof T);
    LLVMValueRef qp = call_field(L, offsetof(AttnCall, q), ptr_to(L->f32));
    LLVMValueRef kp = call_field(L, offsetof(AttnCall, k), ptr_to(L->f32));
    LLVMValueRef vp = call_field(L, offsetof(AttnCall, v), ptr_to(L->f32));
    LLVMValueRef op = call_field(L, offsetof(AttnCall, o), ptr_to(L->f32));
    LLVMValueRef lp = call_field(L, offsetof(AttnCall, lse), ptr_to(L->f32));
    LLVMValueRef bq = call_field(L, offsetof(AttnCall, bq), L->i64);
    LLVMValueRef bk = call_field(L, offsetof(AttnCall, bk), L->i64);
    LLVMValueRef nqt = call_field(L, offsetof(AttnCall, nqt), L->i64);
    LLVMValueRef row_start = call_field(L, offsetof(AttnCall, row_start), ptr_to(L->i64));
    LLVMValueRef tile_kv = call_field(L, offsetof(AttnCall, tile_kv), ptr_to(L->i32));
    LLVMValueRef tile_mode = call_field(L, offsetof(AttnCall, tile_mode), ptr_to(L->i8));
    LLVMValueRef mvb =
        LLVMBuildICmp(b, LLVMIntNE, call_field(L, offsetof(AttnCall, mask_varies_b), L->i32), ci32(L, 0), "");
    LLVMValueRef mvh =
        LLVMBuildICmp(b, LLVMIntNE, call_field(L, offsetof(AttnCall, mask_varies_h), L->i32), ci32(L, 0), "");
    LLVMValueRef check_faults = call_field(L, offsetof(AttnCall, check_faults), L->i32);
    LLVMValueRef grp = LLVMBuildAdd(
        b, LLVMBuildMul(b, LLVMBuildSelect(b, mvb, bi, ci64(L, 0), ""), LLVMBuildSelect(b, mvh, H, ci64(L, 1), ""), ""),
        LLVMBuildSelect(b, mvh, hi, ci64(L, 0), ""), "");
    LLVMValueRef t = LLVMBuildAdd(b, LLVMBuildMul(b, grp, nqt, ""), qt, "");
    LLVMValueRef e0 = load(L, L->i64, gep(L, L->i64, row_start, t), 8);
    LLVMValueRef e1 = load(L, L->i64, gep(L, L->i64, row_start, LLVMBuildAdd(b, t, ci64(L, 1), "")), 8);
    LLVMValueRef q0 = LLVMBuildMul(b, qt, bq, "");
    T.q1 = smin(L, LLVMBuildAdd(b, q0, bq, ""), Lq);
    LLVMValueRef bh = LLVMBuildAdd(b, LLVMBuildMul(b, bi, H, ""), hi, "");
    LLVMValueRef bhk = LLVMBuildAdd(b, LLVMBuildMul(b, bi, Hkv, ""), hk, "");
    T.qbh = gep(L, L->f32, qp, LLVMBuildMul(b, LLVMBuildMul(b, bh, Lq, ""), D, ""));
    T.kbh = gep(L, L->f32, kp, LLVMBuildMul(b, LLVMBuildMul(b, bhk, Lk, ""), D, ""));
    T.vbh = gep(L, L->f32, vp, LLVMBuildMul(b, LLVMBuildMul(b, bhk, Lk, ""), Dv, ""));
    T.obh = gep(L, L->f32, op, LLVMBuildMul(b, LLVMBuildMul(b, bh, Lq, ""), Dv, ""));
    T.lse_row = gep(L, L->f32, lp, LLVMBuildMul(b, bh, Lq, ""));
    /* LSE is optional: test the call's pointer, not &LSE[b, h, 0] (NULL + an offset is not NULL) */
    T.has_lse = LLVMBuildICmp(b, LLVMIntNE, LLVMBuildPtrToInt(b, lp, L->i64, ""), ci64(L, 0), "has_lse");
    T.fault = local(L, L->i1, cbool(L, 0));

    /* per work item: everything of level call and head */
    IrRef roots[7 + 3 * 64];
    int nroots = 0;
    IrRef main_roots[7] = {f->scale, f->keep, f->bias, f->score, f->weight, f->fault, f->lse_offset};
    for (int i = 0; i < 7; i++) roots[nroots++] = main_roots[i];
    for (int g = 0; g < f->nlowrank; g++) {
        roots[nroots++] = f->lowrank_count[g];
        roots[nroots++] = f->lowrank_q[g];
        roots[nroots++] = f->lowrank_k[g];
    }
    unsigned gen = ++L->visit_gen;
    for (int i = 0; i < nroots; i++) hoist_place(L, roots[i], PL_OUTER, gen);
    T.scale = emit(L, f->scale);
    T.rt = lowrank_columns(L, T.count, T.start);
    /* the scratch base, aligned to 64 bytes */
    LLVMValueRef mis =
        LLVMBuildAnd(b, LLVMBuildSub(b, ci64(L, 0), LLVMBuildPtrToInt(b, scratch, L->i64, ""), ""), ci64(L, 63), "");
    layout(L, D, Dv, T.rt, gep(L, L->i8, scratch, mis), &T.rg);

    /* no tiles: tile_kv[e0] may not exist, so read a local 0 instead, and
     * prefetch an empty region (prefetches never fault) */
    LLVMValueRef has_tiles = LLVMBuildICmp(b, LLVMIntSLT, e0, e1, "");
    LLVMValueRef zero_kv = local(L, L->i32, ci32(L, 0));
    LLVMValueRef first_kv = LLVMBuildSelect(b, has_tiles, as_ptr(L, gep(L, L->i32, tile_kv, e0), L->i32), zero_kv, "");
    LLVMValueRef fk0 = LLVMBuildMul(b, LLVMBuildSExt(b, load(L, L->i32, first_kv, 4), L->i64, ""), bk, "");
    LLVMValueRef frows = LLVMBuildSub(b, smin(L, LLVMBuildAdd(b, fk0, smin(L, bk, ci64(L, L->BK)), ""), Lk), fk0, "");
    frows = LLVMBuildSelect(b, has_tiles, frows, ci64(L, 0), "");
    T.first_k = (Prefetch){gep(L, L->f32, T.kbh, LLVMBuildMul(b, fk0, D, "")),
                           LLVMBuildMul(b, LLVMBuildMul(b, frows, D, ""), ci64(L, 4), "")};
    T.first_v = (Prefetch){gep(L, L->f32, T.vbh, LLVMBuildMul(b, fk0, Dv, "")),
                           LLVMBuildMul(b, LLVMBuildMul(b, frows, Dv, ""), ci64(L, 4), "")};
    Loop lrb;
    T.qb0 = loop_begin(L, &lrb, q0, T.q1, ci64(L, L->QB), "rowblock");
    row_prologue(L, &T);
    Loop le;
    LLVMValueRef e = loop_begin(L, &le, e0, e1, ci64(L, 1), "tile");
    LLVMValueRef kt = LLVMBuildSExt(b, load(L, L->i32, gep(L, L->i32, tile_kv, e), 4), L->i64, "");
    LLVMValueRef mode = load(L, L->i8, gep(L, L->i8, tile_mode, e), 1);
    T.k0 = LLVMBuildMul(b, kt, bk, "");
    T.k1 = smin(L, LLVMBuildAdd(b, T.k0, smin(L, bk, ci64(L, L->BK)), ""), Lk);
    LLVMValueRef nk = LLVMBuildSub(b, T.k1, T.k0, "");
    /* the next tile of this row block (this one again after the last): its K
     * rows are prefetched during this tile's QK product, its V rows during P.V */
    LLVMValueRef next = smin(L, LLVMBuildAdd(b, e, ci64(L, 1), ""), LLVMBuildSub(b, e1, ci64(L, 1), ""));
    LLVMValueRef nk0 =
        LLVMBuildMul(b, LLVMBuildSExt(b, load(L, L->i32, gep(L, L->i32, tile_kv, next), 4), L->i64, ""), bk, "");
    LLVMValueRef nrows = LLVMBuildSub(b, smin(L, LLVMBuildAdd(b, nk0, smin(L, bk, ci64(L, L->BK)), ""), Lk), nk0, "");
    Prefetch pk = {gep(L, L->f32, T.kbh, LLVMBuildMul(b, nk0, D, "")),
                   LLVMBuildMul(b, LLVMBuildMul(b, nrows, D, ""), ci64(L, 4), "")};
    Prefetch pv = {gep(L, L->f32, T.vbh, LLVMBuildMul(b, nk0, Dv, "")),
                   LLVMBuildMul(b, LLVMBuildMul(b, nrows, Dv, ""), ci64(L, 4), "")};
    if (f->nlowrank) lowrank_k_columns(L, &T);
    /* S[kv][q] = sum_d K[kv][d] * Qt[d][q] (+ low-rank columns) */
    gemm(L, gep(L, L->f32, T.kbh, LLVMBuildMul(b, T.k0, D, "")), D, ci64(L, 1), nk, T.rg.qt, D, T.rg.s, 0, &pk);
    if (f->nlowrank) gemm(L, T.rg.kx, T.rt, ci64(L, 1), nk, T.rg.qx, T.rt, T.rg.s, 1, NULL);
    element_pass(L, &T, mode, check_faults);
    if (L->p->softmax) normalise(L, &T);
    /* OT[dv][q] += sum_kv V[kv][dv] * P[kv][q] */
    gemm(L, gep(L, L->f32, T.vbh, LLVMBuildMul(b, T.k0, Dv, "")), ci64(L, 1), Dv, Dv, T.rg.s, nk, T.rg.ot, 1, &pv);
    loop_end(L, &le);
    finish(L, &T);
    loop_end(L, &lrb);
    LLVMBuildRet(b, ci32(L, 0));
    close_function(L, entry);
}

/* Scratch bytes: the same layout() as the tile function, sized from the call. */
static void gen_scratch(Lower *L, const char *name) {
    LLVMTypeRef args[1] = {ptr_to(L->i8)};
    LLVMBasicBlockRef entry = open_function(L, name, LLVMFunctionType(L->i64, args, 1, 0));
    L->call = LLVMGetParam(L->fn, 0);
    LLVMSetValueName2(L->call, "call", 4);
    load_inputs(L);
    LLVMValueRef count[64], start[64];
    unsigned gen = ++L->visit_gen;
    for (int g = 0; g < L->f->nlowrank; g++) hoist_place(L, L->f->lowrank_count[g], PL_OUTER, gen);
    LLVMValueRef rt = lowrank_columns(L, count, start);
    LLVMValueRef bytes = layout(L, L->var[V_SIZE_D], L->var[V_SIZE_DV], rt, NULL, NULL);
    /* absurd ranks or sizes: ask for more than any machine has, without overflow */
    LLVMBuilderRef b = L->bd;
    LLVMValueRef limit = ci64(L, (int64_t)1 << 30);
    LLVMValueRef huge = LLVMBuildOr(b, LLVMBuildICmp(b, LLVMIntUGT, rt, ci64(L, 1 << 24), ""),
                                    LLVMBuildICmp(b, LLVMIntUGT, bytes, ci64(L, (int64_t)1 << 40), ""), "");
    huge = LLVMBuildOr(b, huge, LLVMBuildICmp(b, LLVMIntUGT, L->var[V_SIZE_D], limit, ""), "");
    huge = LLVMBuildOr(b, huge, LLVMBuildICmp(b, LLVMIntUGT, L->var[V_SIZE_DV], limit, ""), "");
    LLVMBuildRet(L->bd, LLVMBuildSelect(L->bd, huge, ci64(L, (int64_t)1 << 40), bytes, ""));
    close_function(L, entry);
}

/* The largest divisor of c that is at most max. */
static int divisor_at_most(int c, int max) {
    for (int d = max; d > 1; d--)
        if (c % d == 0) return d;
    return 1;
}

attnc_status llvm_lower_plan(const Plan *p, const LlvmTarget *target, LLVMModuleRef mod, const char *tile_name,
                             const char *scratch_name, attnc_error *err) {
    const IrFunc *f = p->f;
    if (target->vec_width != 4 && target->vec_width != 8 && target->vec_width != 16)
        return set_error(err, ATTNC_ERR_INTERNAL, "LLVM backend: vector width %d is not 4, 8 or 16", target->vec_width);
    if (f->nlowrank > 64) return set_error(err, ATTNC_ERR_INTERNAL, "LLVM backend: more than 64 low-rank bias groups");
    Lower L;
    memset(&L, 0, sizeof L);
    L.ctx = LLVMGetModuleContext(mod);
    L.mod = mod;
    L.p = p;
    L.ir = p->ir;
    L.f = f;
    L.target = target;
    L.W = target->vec_width;
    /* row blocks of 64 rows (fewer when the q tile is smaller) */
    int want = (p->bq + L.W - 1) / L.W;
    L.C = 64 / L.W < want ? 64 / L.W : want;
    if (L.C < 1) L.C = 1;
    /* accumulators: R x CQ vectors, 16 of the 32 registers of AVX-512, 8 of AVX2's 16 */
    L.CQ = divisor_at_most(L.C, L.W == 16 ? 4 : 2);
    L.R = 4;
    L.QB = L.C * L.W;
    L.BK = p->bk;
    L.i1 = LLVMInt1TypeInContext(L.ctx);
    L.i8 = LLVMInt8TypeInContext(L.ctx);
    L.i32 = LLVMInt32TypeInContext(L.ctx);
    L.i64 = LLVMInt64TypeInContext(L.ctx);
    L.f32 = LLVMFloatTypeInContext(L.ctx);
    L.f64 = LLVMDoubleTypeInContext(L.ctx);
    unsigned w = (unsigned)L.W;
    L.vi1 = LLVMVectorType(L.i1, w);
    L.vi8 = LLVMVectorType(L.i8, w);
    L.vi32 = LLVMVectorType(L.i32, w);
    L.vi64 = LLVMVectorType(L.i64, w);
    L.vf32 = LLVMVectorType(L.f32, w);
    L.vf64 = LLVMVectorType(L.f64, w);
    size_t n = (size_t)p->ir->n + 1;
    const Attention *a = p->attn;
    L.memo = calloc(n, sizeof *L.memo);
    L.stack = calloc(n, sizeof *L.stack);
    L.visit = calloc(n, sizeof *L.visit);
    L.frontier = calloc(n, sizeof *L.frontier);
    L.param = calloc((size_t)a->nparams + 1, sizeof *L.param);
    L.tdata = calloc((size_t)a->ntensors + 1, sizeof *L.tdata);
    L.tdim = calloc((size_t)a->ntensors + 1, sizeof *L.tdim);
    char *mark = calloc(n, 1);
    attnc_status st = ATTNC_OK;
    if (!L.memo || !L.stack || !L.visit || !L.frontier || !L.param || !L.tdata || !L.tdim || !mark) {
        st = set_error(err, ATTNC_ERR_NOMEM, "out of memory in the LLVM backend");
    } else {
        /* the ROW values the per-element code reads, and the per-row lse_offset */
        IrRef element_roots[5] = {p->needs_mask ? f->keep : IR_NONE, f->bias, p->softmax ? f->score : f->weight,
                                  p->needs_fault ? f->fault : IR_NONE, IR_NONE};
        for (int i = 0; i < 5; i++) find_frontier(&L, element_roots[i], mark);
        if (f->lse_offset != IR_NONE) add_frontier(&L, f->lse_offset, mark);
        L.bd = LLVMCreateBuilderInContext(L.ctx);
        L.alloca_bd = LLVMCreateBuilderInContext(L.ctx);
        gen_tile(&L, tile_name);
        reset_values(&L);
        gen_scratch(&L, scratch_name);
        LLVMDisposeBuilder(L.bd);
        LLVMDisposeBuilder(L.alloca_bd);
        if (L.failed) st = set_error(err, ATTNC_ERR_INTERNAL, "LLVM backend: %s", L.why);
    }
    free(L.memo);
    free(L.stack);
    free(L.visit);
    free(L.frontier);
    free(L.param);
    free(L.tdata);
    free(L.tdim);
    free(mark);
    return st;
}
