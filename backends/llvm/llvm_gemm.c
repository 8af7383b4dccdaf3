/* llvm_gemm.c — the micro-kernels of the LLVM kernel: the QK and PV
 * products (and the low-rank columns' product) over one tile, with vector
 * lanes along q.
 * Requires: the lowering state (llvm_build.h) with W, C, CQ, R and QB set,
 * and for lower_gemm the vectors to run over (gemm_cols); the builder inside
 * the tile function.  Produces: loops that keep an R x CQ block of vector
 * accumulators in registers (R rows of A against CQ vectors of Bm's row), a
 * tail loop of single rows, and prefetches of the next region spread
 * through the inner loop; and the versions of them a row block picks from at
 * run time (lower_gemm_versions: wide or narrow blocks, dense or strided
 * prefetching); and the backward kernel's W x W block transposes. */
#include "llvm_gemm.h"

#include "llvm_tensor.h"

enum { MAX_R = LLVM_MAX_R, MAX_CQ = LLVM_MAX_CQ };

Prefetch lower_prefetch_rows(Lower *L, LLVMValueRef base, LLVMValueRef nrows, LLVMValueRef row, LLVMValueRef stride,
                             LLVMValueRef esz, int dense) {
    LLVMBuilderRef b = L->bd;
    LLVMValueRef row_bytes = LLVMBuildMul(b, row, esz, "");
    Prefetch pf = {base, LLVMBuildMul(b, nrows, row_bytes, ""), NULL, NULL, NULL, NULL, NULL};
    if (dense) return pf;
    pf.stride = LLVMBuildMul(b, stride, esz, "");
    /* lines per row, and the next power of two as a shift: ceil(log2(lines)) */
    LLVMValueRef lines = smax(L, LLVMBuildUDiv(b, LLVMBuildAdd(b, row_bytes, ci64(L, 63), ""), ci64(L, 64), ""), ci64(L, 1));
    LLVMValueRef ctlz_args[2] = {LLVMBuildSub(b, lines, ci64(L, 1), ""), cbool(L, 0)};
    LLVMValueRef lz = intrinsic(L, "llvm.ctlz", &L->i64, 1, ctlz_args, 2);
    pf.shift = LLVMBuildSub(b, ci64(L, 64), lz, "");
    pf.mask = LLVMBuildSub(b, LLVMBuildShl(b, ci64(L, 1), pf.shift, ""), ci64(L, 1), "");
    LLVMValueRef last_row = LLVMBuildSub(b, nrows, ci64(L, 1), "");
    pf.last = smax(L, LLVMBuildOr(b, LLVMBuildShl(b, last_row, pf.shift, ""), LLVMBuildSub(b, lines, ci64(L, 1), ""), ""),
                   ci64(L, 0));
    return pf;
}

/* Prefetch line `line` of the region (its last line once past its end). */
void lower_prefetch_line(Lower *L, const Prefetch *pf, LLVMValueRef line) {
    LLVMBuilderRef b = L->bd;
    LLVMValueRef byte;
    if (!pf->stride) {
        byte = smin(L, LLVMBuildMul(b, line, ci64(L, 64), ""), LLVMBuildSub(b, pf->bytes, ci64(L, 64), ""));
        byte = smax(L, byte, ci64(L, 0)); /* an empty region: its first byte */
    } else { /* rows apart: line and last are >= 0, so byte is */
        LLVMValueRef l = smin(L, line, pf->last);
        LLVMValueRef row = LLVMBuildLShr(b, l, pf->shift, "");
        if (pf->map) row = load(L, L->i64, gep(L, L->i64, pf->map, row), 8);
        byte = LLVMBuildAdd(b, LLVMBuildMul(b, row, pf->stride, ""),
                            LLVMBuildMul(b, LLVMBuildAnd(b, l, pf->mask, ""), ci64(L, 64), ""), "");
    }
    LLVMTypeRef pt = ptr_to(L->i8);
    /* rw 0 (read), locality 2 (prefetcht1: L2, leaving L1 to the micro-kernel), data */
    LLVMValueRef args[4] = {gep(L, L->i8, pf->base, byte), ci32(L, 0), ci32(L, 2), ci32(L, 1)};
    intrinsic(L, "llvm.prefetch", &pt, 1, args, 4);
}

/* Where index j of A's rows (k 0: times ars) or of k (1: times aks) starts, in elements from A: j times the
 * stride, or L->amap[j] where A's rows or k go through the map (offsets already in elements). */
static LLVMValueRef a_offset(Lower *L, int k, LLVMValueRef j, LLVMValueRef stride) {
    if (!L->amap || L->amap_k != k) return LLVMBuildMul(L->bd, j, stride, "");
    return load(L, L->i64, gep(L, L->i64, L->amap, j), 8);
}

/* One step k of gemm_rows: acc[i][j] += A[(i0 + i)*ars + k*aks] * Bm[k*ldb + col0 + j*W] (A's row or k
 * through L->amap: one offset loaded per row block, or per step k). */
static void gemm_step(Lower *L, int R, LLVMValueRef (*acc)[MAX_CQ], LLVMValueRef k, LLVMValueRef i0, LLVMValueRef A,
                      LLVMValueRef ars, LLVMValueRef aks, LLVMValueRef Bm, LLVMValueRef ldb, LLVMValueRef col0) {
    LLVMBuilderRef b = L->bd;
    LLVMValueRef bk = L->bmap ? load(L, L->i64, gep(L, L->i64, L->bmap, k), 8) : LLVMBuildMul(b, k, ldb, "");
    LLVMValueRef brow = LLVMBuildAdd(b, bk, col0, "");
    LLVMValueRef bv[MAX_CQ];
    for (int j = 0; j < L->CQ; j++) bv[j] = load_fvec(L, Bm, LLVMBuildAdd(b, brow, ci64(L, (int64_t)j * L->W), ""));
    LLVMValueRef kofs = ci64(L, 0);
    int mapped_k = L->amap && L->amap_k;
    /* k through the map: row i0 of A's row k first, then each row i from it (one pointer per step, the rows at
     * constant displacements: with the offset added to each row's index LLVM kept an index register per row
     * and spilled) */
    if (mapped_k) A = gep(L, L->f32, gep(L, L->f32, A, LLVMBuildMul(b, i0, ars, "")), a_offset(L, 1, k, aks));
    else kofs = LLVMBuildMul(b, k, aks, "");
    for (int i = 0; i < R; i++) {
        LLVMValueRef ai = mapped_k ? LLVMBuildMul(b, ci64(L, i), ars, "")
                                   : LLVMBuildAdd(b, a_offset(L, 0, LLVMBuildAdd(b, i0, ci64(L, i), ""), ars), kofs, "");
        LLVMValueRef as = splat(L, load(L, L->f32, gep(L, L->f32, A, ai), 4));
        for (int j = 0; j < L->CQ; j++) set(L, acc[i][j], fmuladd(L, as, bv[j], get(L, L->vf32, acc[i][j])));
    }
}

/* Out[row*ldo + 0..W*gemm_cols) (=|+=) sum over k < depth of A[row*ars + k*aks] * Bm[k*ldb + 0..W*gemm_cols),
 * rows 0..nrows: R rows x CQ vectors of accumulators per block. */
static void gemm_rows(Lower *L, int R, LLVMValueRef i0, LLVMValueRef A, LLVMValueRef ars, LLVMValueRef aks,
                      LLVMValueRef Bm, LLVMValueRef ldb, LLVMValueRef depth, LLVMValueRef Out, LLVMValueRef ldo,
                      int accumulate, const Prefetch *pf) {
    LLVMBuilderRef b = L->bd;
    LLVMValueRef acc[MAX_R][MAX_CQ];
    for (int i = 0; i < R; i++)
        for (int j = 0; j < L->CQ; j++) acc[i][j] = local(L, L->vf32, NULL);
    Loop lc;
    LLVMValueRef c0 = loop_begin(L, &lc, ci64(L, 0), L->gemm_cols, ci64(L, L->CQ), "gemm.c");
    LLVMValueRef col0 = LLVMBuildMul(b, c0, ci64(L, L->W), "");
    for (int i = 0; i < R; i++) {
        LLVMValueRef row = LLVMBuildMul(b, LLVMBuildAdd(b, i0, ci64(L, i), ""), ldo, "");
        /* P.V into O rows: each row times its correction as it is loaded (no pass of its own) */
        LLVMValueRef corr = NULL;
        if (accumulate && L->out_scale)
            corr = splat(L, load(L, L->f32, gep(L, L->f32, L->out_scale, LLVMBuildAdd(b, i0, ci64(L, i), "")), 4));
        for (int j = 0; j < L->CQ; j++) {
            LLVMValueRef at = LLVMBuildAdd(b, row, LLVMBuildAdd(b, col0, ci64(L, (int64_t)j * L->W), ""), "");
            LLVMValueRef o = accumulate ? load_fvec(L, Out, at) : LLVMConstNull(L->vf32);
            set(L, acc[i][j], corr ? LLVMBuildFMul(b, o, corr, "") : o);
        }
    }
    if (pf) {
        /* two steps of k per iteration and one prefetch (line block * (depth / 2) + k / 2, which still
         * covers the region: it has at most rows * depth / 16 lines): the prefetch's address arithmetic
         * and the loop's own were as many instructions as the FMAs at R x CQ = 4 x 2 (AVX2), so the loop
         * was bound by instruction issue, not by the FMA units */
        LLVMValueRef half = LLVMBuildSDiv(b, depth, ci64(L, 2), "");
        Loop lk;
        LLVMValueRef k2 = loop_begin(L, &lk, ci64(L, 0), half, ci64(L, 1), "gemm.k2");
        LLVMValueRef k = LLVMBuildMul(b, k2, ci64(L, 2), "");
        LLVMValueRef line = LLVMBuildAdd(b, LLVMBuildMul(b, LLVMBuildSDiv(b, i0, ci64(L, R), ""), half, ""), k2, "");
        if (L->pf_cols) { /* P.V into O rows: the region's lines are rows x depth x cols / 16, two a step */
            LLVMValueRef blocks = LLVMBuildSDiv(b, L->gemm_cols, ci64(L, L->CQ), "");
            line = LLVMBuildAdd(b, LLVMBuildMul(b, line, blocks, ""), LLVMBuildSDiv(b, c0, ci64(L, L->CQ), ""), "");
            line = LLVMBuildMul(b, line, ci64(L, 2), "");
            lower_prefetch_line(L, pf, LLVMBuildAdd(b, line, ci64(L, 1), ""));
        }
        lower_prefetch_line(L, pf, line);
        gemm_step(L, R, acc, k, i0, A, ars, aks, Bm, ldb, col0);
        gemm_step(L, R, acc, LLVMBuildAdd(b, k, ci64(L, 1), ""), i0, A, ars, aks, Bm, ldb, col0);
        loop_end(L, &lk);
        LLVMBasicBlockRef after = if_begin(L, LLVMBuildICmp(b, LLVMIntSLT, LLVMBuildMul(b, half, ci64(L, 2), ""), depth, ""),
                                           "gemm.k.odd");
        gemm_step(L, R, acc, LLVMBuildSub(b, depth, ci64(L, 1), ""), i0, A, ars, aks, Bm, ldb, col0);
        if_end(L, after);
    } else {
        Loop lk;
        LLVMValueRef k = loop_begin(L, &lk, ci64(L, 0), depth, ci64(L, 1), "gemm.k");
        gemm_step(L, R, acc, k, i0, A, ars, aks, Bm, ldb, col0);
        loop_end(L, &lk);
    }
    for (int i = 0; i < R; i++) {
        LLVMValueRef row = LLVMBuildMul(b, LLVMBuildAdd(b, i0, ci64(L, i), ""), ldo, "");
        for (int j = 0; j < L->CQ; j++) {
            LLVMValueRef at = LLVMBuildAdd(b, row, LLVMBuildAdd(b, col0, ci64(L, (int64_t)j * L->W), ""), "");
            store_fvec(L, get(L, L->vf32, acc[i][j]), Out, at);
        }
    }
    loop_end(L, &lc);
}

/* Out = (not +=) gemm_rows' product for one block of R rows at i0, without prefetching, its steps of k
 * alternating between two sets of accumulators summed at the end: 2 x R x CQ in flight where R x CQ alone
 * would wait on the FMA latency (half a block of keys on one row vector). */
static void gemm_rows_split(Lower *L, int R, LLVMValueRef i0, LLVMValueRef A, LLVMValueRef ars, LLVMValueRef aks,
                            LLVMValueRef Bm, LLVMValueRef ldb, LLVMValueRef depth, LLVMValueRef Out, LLVMValueRef ldo) {
    LLVMBuilderRef b = L->bd;
    LLVMValueRef acc[2][MAX_R][MAX_CQ];
    for (int s = 0; s < 2; s++)
        for (int i = 0; i < R; i++)
            for (int j = 0; j < L->CQ; j++) acc[s][i][j] = local(L, L->vf32, NULL);
    Loop lc;
    LLVMValueRef c0 = loop_begin(L, &lc, ci64(L, 0), L->gemm_cols, ci64(L, L->CQ), "gemm.split.c");
    LLVMValueRef col0 = LLVMBuildMul(b, c0, ci64(L, L->W), "");
    for (int s = 0; s < 2; s++)
        for (int i = 0; i < R; i++)
            for (int j = 0; j < L->CQ; j++) set(L, acc[s][i][j], LLVMConstNull(L->vf32));
    LLVMValueRef half = LLVMBuildSDiv(b, depth, ci64(L, 2), "");
    Loop lk;
    LLVMValueRef k = LLVMBuildMul(b, loop_begin(L, &lk, ci64(L, 0), half, ci64(L, 1), "gemm.split.k"), ci64(L, 2), "");
    gemm_step(L, R, acc[0], k, i0, A, ars, aks, Bm, ldb, col0);
    gemm_step(L, R, acc[1], LLVMBuildAdd(b, k, ci64(L, 1), ""), i0, A, ars, aks, Bm, ldb, col0);
    loop_end(L, &lk);
    LLVMBasicBlockRef after =
        if_begin(L, LLVMBuildICmp(b, LLVMIntSLT, LLVMBuildMul(b, half, ci64(L, 2), ""), depth, ""), "gemm.split.odd");
    gemm_step(L, R, acc[0], LLVMBuildSub(b, depth, ci64(L, 1), ""), i0, A, ars, aks, Bm, ldb, col0);
    if_end(L, after);
    for (int i = 0; i < R; i++) {
        LLVMValueRef row = LLVMBuildMul(b, LLVMBuildAdd(b, i0, ci64(L, i), ""), ldo, "");
        for (int j = 0; j < L->CQ; j++) {
            LLVMValueRef at = LLVMBuildAdd(b, row, LLVMBuildAdd(b, col0, ci64(L, (int64_t)j * L->W), ""), "");
            LLVMValueRef sum = LLVMBuildFAdd(b, get(L, L->vf32, acc[0][i][j]), get(L, L->vf32, acc[1][i][j]), "");
            store_fvec(L, sum, Out, at);
        }
    }
    loop_end(L, &lc);
}

/* Rows from 0 in blocks of R while a whole block fits; returns the first row left (i64). */
static LLVMValueRef gemm_blocks(Lower *L, LLVMValueRef A, LLVMValueRef ars, LLVMValueRef aks, LLVMValueRef nrows,
                                LLVMValueRef Bm, LLVMValueRef ldb, LLVMValueRef depth, LLVMValueRef Out,
                                LLVMValueRef ldo, int accumulate, const Prefetch *pf) {
    Loop lb;
    LLVMValueRef full_end = LLVMBuildSub(L->bd, nrows, ci64(L, L->R - 1), "");
    LLVMValueRef i0 = loop_begin(L, &lb, ci64(L, 0), full_end, ci64(L, L->R), "gemm.rows");
    gemm_rows(L, L->R, i0, A, ars, aks, Bm, ldb, depth, Out, ldo, accumulate, pf);
    loop_end(L, &lb);
    return lb.i;
}

/* Rows from..nrows one by one (without prefetching: at most R - 1 of them). */
static void gemm_tail(Lower *L, LLVMValueRef from, LLVMValueRef A, LLVMValueRef ars, LLVMValueRef aks,
                      LLVMValueRef nrows, LLVMValueRef Bm, LLVMValueRef ldb, LLVMValueRef depth, LLVMValueRef Out,
                      LLVMValueRef ldo, int accumulate) {
    Loop lt;
    LLVMValueRef i = loop_begin(L, &lt, from, nrows, ci64(L, 1), "gemm.tail");
    gemm_rows(L, 1, i, A, ars, aks, Bm, ldb, depth, Out, ldo, accumulate, NULL);
    loop_end(L, &lt);
}

/* All rows 0..nrows: blocks of R rows, then the remaining rows one by one. */
void lower_gemm_ld(Lower *L, LLVMValueRef A, LLVMValueRef ars, LLVMValueRef aks, LLVMValueRef nrows, LLVMValueRef Bm,
                   LLVMValueRef ldb, LLVMValueRef depth, LLVMValueRef Out, LLVMValueRef ldo, int accumulate,
                   const Prefetch *pf) {
    LLVMBuilderRef b = L->bd;
    LLVMValueRef from = gemm_blocks(L, A, ars, aks, nrows, Bm, ldb, depth, Out, ldo, accumulate, pf);
    int h = L->R / 2;
    if (L->half_block && !accumulate && h >= 2) {
        /* one block of R / 2 rows (with split accumulators when R / 2 x CQ are fewer than 8) when that many
         * are left: QK over a range of keys padded to half blocks (lower_pad_keys) */
        LLVMValueRef next = LLVMBuildAdd(b, from, ci64(L, h), "");
        LLVMValueRef fits = LLVMBuildICmp(b, LLVMIntSLE, next, nrows, "");
        LLVMBasicBlockRef after = if_begin(L, fits, "gemm.half");
        if (h * L->CQ < 8) gemm_rows_split(L, h, from, A, ars, aks, Bm, ldb, depth, Out, ldo);
        else gemm_rows(L, h, from, A, ars, aks, Bm, ldb, depth, Out, ldo, 0, NULL);
        if_end(L, after);
        from = LLVMBuildSelect(b, fits, next, from, "");
    }
    gemm_tail(L, from, A, ars, aks, nrows, Bm, ldb, depth, Out, ldo, accumulate);
}

void lower_gemm(Lower *L, LLVMValueRef A, LLVMValueRef ars, LLVMValueRef aks, LLVMValueRef nrows, LLVMValueRef Bm,
                LLVMValueRef depth, LLVMValueRef Out, int accumulate, const Prefetch *pf) {
    LLVMValueRef qb = ci64(L, L->QB);
    lower_gemm_ld(L, A, ars, aks, nrows, Bm, qb, depth, Out, qb, accumulate, pf);
}

/* lower_gemm prefetching the next tile's rows as one block (`dense`, rows
 * back to back: pf[1]) or row by row (pf[0]), or not prefetching (pf
 * NULL).  One copy of the micro-kernel for both: the block is described as
 * rows apart - row 0 (shift and stride 0) of all its lines (mask all
 * ones) - by selects made once here, not per line.  Two copies (one with
 * the block's shorter address arithmetic) cost ~15% of every compile; since
 * the micro-kernel prefetches once per two steps of k the longer arithmetic
 * no longer shows. */
static void gemm_prefetching(Lower *L, LLVMValueRef dense, const Prefetch *pf, LLVMValueRef A, LLVMValueRef ars,
                             LLVMValueRef aks, LLVMValueRef nrows, LLVMValueRef Bm, LLVMValueRef depth,
                             LLVMValueRef Out, int accumulate) {
    if (!pf) {
        lower_gemm(L, A, ars, aks, nrows, Bm, depth, Out, accumulate, NULL);
        return;
    }
    LLVMBuilderRef b = L->bd;
    LLVMValueRef zero = ci64(L, 0);
    LLVMValueRef block_last = smax(L, LLVMBuildSub(b, LLVMBuildSDiv(b, pf[1].bytes, ci64(L, 64), ""), ci64(L, 1), ""), zero);
    Prefetch m = {LLVMBuildSelect(b, dense, pf[1].base, pf[0].base, ""), NULL,
                  LLVMBuildSelect(b, dense, zero, pf[0].stride, ""),
                  LLVMBuildSelect(b, dense, zero, pf[0].shift, ""),
                  LLVMBuildSelect(b, dense, ci64(L, -1), pf[0].mask, ""),
                  LLVMBuildSelect(b, dense, block_last, pf[0].last, ""), pf[0].map};
    lower_gemm(L, A, ars, aks, nrows, Bm, depth, Out, accumulate, &m);
}

/* Quad micro-kernels: a narrow block of at most 4 rows (decode: the P
 * packed heads of one query row) as G = W/4 groups of 4 lanes, so that one
 * FMA does G elements of K or V for the 4 rows, not one element for W lanes
 * of which 4 are used.  Lane 4*g + r is row r of group g.  They read K and
 * V where the call holds them, f16 and bf16 too (no conversion pass): W
 * elements at a time where they can (one load, one vcvtph2ps per register,
 * then one in-lane shuffle per FMA), G at a time in the tails (a load, a
 * shuffle and a conversion per FMA: 16-bit decode took 0.88 of float32's
 * time for half the bytes). */

/* A shuffle of a and c (both of n lanes or c NULL) by idx. */
static LLVMValueRef shuffle(Lower *L, LLVMValueRef a, LLVMValueRef c, const int *idx, int n) {
    LLVMValueRef m[128];
    for (int i = 0; i < n; i++) m[i] = ci32(L, idx[i]);
    return LLVMBuildShuffleVector(L->bd, a, c ? c : LLVMGetUndef(LLVMTypeOf(a)), LLVMConstVector(m, (unsigned)n), "");
}

/* The n floats at p[at] as a vector of their bits (n x i32: the kernel's
 * float vectors are W lanes wide, the plan's width, but for the G halves
 * spread widens; tests/test_llvm_schedule.c looks for others). */
static LLVMValueRef load_n(Lower *L, LLVMValueRef p, LLVMValueRef at, int n) {
    return load(L, LLVMVectorType(L->i32, (unsigned)n), gep(L, L->i32, p, at), 4);
}

/* A W-lane vector of float bits as floats. */
static LLVMValueRef as_floats(Lower *L, LLVMValueRef v) { return LLVMBuildBitCast(L->bd, v, L->vf32, ""); }

/* What a quad micro-kernel multiplies: A (an i8 pointer to elements of type
 * elem, rows lda elements apart) by Bm (floats, rows QB apart) into Out. */
typedef struct Quad {
    int elem, along_k, accumulate;
    LLVMValueRef A, lda, Bm, depth, Out;
    const Prefetch *pf;
} Quad;

/* A[at .. at+G) as floats, each repeated over the 4 lanes of its group:
 * one load and one shuffle (bf16: the shuffle also puts zeros into the
 * floats' low halves; f16: widened after the shuffle). */
static LLVMValueRef spread(Lower *L, const Quad *q, LLVMValueRef at) {
    int G = L->W / 4, idx[128];
    for (int l = 0; l < L->W; l++) idx[l] = l / 4;
    if (q->elem == ELEM_F32) return as_floats(L, shuffle(L, load_n(L, q->A, at, G), NULL, idx, L->W));
    LLVMTypeRef i16 = LLVMInt16TypeInContext(L->ctx);
    LLVMValueRef h = load(L, LLVMVectorType(i16, (unsigned)G), gep(L, i16, q->A, at), 2);
    if (q->elem == ELEM_F16) /* the shuffle of the 16-bit lanes, then one W-lane vcvtph2ps: widening G lanes
                              * first made LLVM convert G = 2 (AVX2) halves lane by lane, extracts and inserts */
        return lower_widen(L, shuffle(L, h, NULL, idx, L->W), ELEM_F16);
    for (int l = 0; l < L->W; l++) idx[2 * l] = G, idx[2 * l + 1] = l / 4; /* low half 0, high half bf16 */
    return as_floats(L, shuffle(L, h, LLVMConstNull(LLVMTypeOf(h)), idx, 2 * L->W));
}

/* Group g of v (its 4 lanes) into lanes 0..3, zeros in the others. */
static LLVMValueRef group_lanes(Lower *L, LLVMValueRef v, int g) {
    int idx[64];
    for (int l = 0; l < L->W; l++) idx[l] = l < 4 ? 4 * g + l : L->W;
    return shuffle(L, v, LLVMConstNull(L->vf32), idx, L->W);
}

/* A[at .. at+W) as W floats: one load and, for 16-bit elements, one
 * conversion of the whole vector (vcvtph2ps per register). */
static LLVMValueRef wide(Lower *L, const Quad *q, LLVMValueRef at) { return lower_load_floats(L, q->elem, q->A, at); }

/* Element 4g + s of v over the 4 lanes of each group g: a shuffle within
 * 128-bit lanes (one vpermilps), where spread's cross-lane one needed a
 * load, a shuffle and a conversion per FMA. */
static LLVMValueRef splat_groups(Lower *L, LLVMValueRef v, int s) {
    int idx[64];
    for (int l = 0; l < L->W; l++) idx[l] = 4 * (l / 4) + s;
    return shuffle(L, v, NULL, idx, L->W);
}

/* Out[row][0..W) (=|+=) v: the rows' lanes 0..3, zeros in the others. */
static void store_quad(Lower *L, const Quad *q, LLVMValueRef v, LLVMValueRef row) {
    LLVMValueRef at = LLVMBuildMul(L->bd, row, ci64(L, L->QB), "");
    if (q->accumulate) v = LLVMBuildFAdd(L->bd, v, load_fvec(L, q->Out, at), "");
    store_fvec(L, v, q->Out, at);
}

/* The prefetches of inner iteration `it`, which reads `elems` elements of A:
 * lines it*n .. it*n + n - 1 with n = their bytes / 64 (at least 1). */
static void quad_prefetch(Lower *L, const Quad *q, int elems, LLVMValueRef it) {
    int n = elems * (q->elem == ELEM_F32 ? 4 : 2) / 64;
    if (n < 1) n = 1;
    for (int i = 0; i < n; i++)
        lower_prefetch_line(L, q->pf, LLVMBuildAdd(L->bd, LLVMBuildMul(L->bd, it, ci64(L, n), ""), ci64(L, i), ""));
}

/* Bm's rows k + first + g*gap for g < G (lanes 0..3 of each, the 4 rows of
 * the block) as one W-lane vector: lanes 4g + r. */
static LLVMValueRef bm_group_rows(Lower *L, const Quad *q, LLVMValueRef k, int first, int gap) {
    LLVMBuilderRef b = L->bd;
    int idx[64];
    LLVMValueRef part[16];
    for (int g = 0; g < L->W / 4; g++)
        part[g] = load_n(L, q->Bm, LLVMBuildMul(b, LLVMBuildAdd(b, k, ci64(L, first + g * gap), ""), ci64(L, L->QB), ""), 4);
    for (int n = 4; n < L->W; n *= 2) /* concatenate pairwise: 4-lane parts into one W-lane vector */
        for (int g = 0; g < L->W / (2 * n); g++) {
            for (int l = 0; l < 2 * n; l++) idx[l] = l;
            part[g] = shuffle(L, part[2 * g], part[2 * g + 1], idx, 2 * n);
        }
    return as_floats(L, part[0]);
}

/* The index of the prefetch iteration at k of the block `block`, whose
 * inner loop steps k by `step` over depth (the last step may be short). */
static LLVMValueRef quad_iteration(Lower *L, const Quad *q, LLVMValueRef block, LLVMValueRef k, int step) {
    LLVMBuilderRef b = L->bd;
    LLVMValueRef per_block = LLVMBuildSDiv(b, LLVMBuildAdd(b, q->depth, ci64(L, step - 1), ""), ci64(L, step), "");
    return LLVMBuildAdd(b, LLVMBuildMul(b, block, per_block, ""), LLVMBuildSDiv(b, k, ci64(L, step), ""), "");
}

/* Along k (K: A's rows contiguous; G divides depth): acc[i] lanes 4g + r
 * += A[row i][k'] * Bm[k'][r] for G values k' of k per FMA; then the groups
 * are summed into lanes 0..3, log2(G) shuffle-adds per row.  While W values
 * of k remain, each row's W elements are loaded (and converted) once and
 * split into 4 FMAs, the group g of FMA s taking k + 4g + s; then G at a
 * time (spread). */
static void quad_rows_k(Lower *L, const Quad *q, int R, LLVMValueRef i0, int prefetch) {
    LLVMBuilderRef b = L->bd;
    int G = L->W / 4, idx[64];
    LLVMValueRef acc[MAX_R];
    for (int i = 0; i < R; i++) acc[i] = local(L, L->vf32, LLVMConstNull(L->vf32));
    LLVMValueRef wide_end = LLVMBuildSub(b, q->depth, LLVMBuildSRem(b, q->depth, ci64(L, L->W), ""), "quad.kw.end");
    Loop lw;
    LLVMValueRef kw = loop_begin(L, &lw, ci64(L, 0), wide_end, ci64(L, L->W), "quad.kw");
    /* the 4 vectors of Q first, then row by row: 8 accumulators, 4 of Q and the row in registers (all rows
     * first spilled on AVX2's 16) */
    LLVMValueRef bq4[4];
    for (int s4 = 0; s4 < 4; s4++) bq4[s4] = bm_group_rows(L, q, kw, s4, 4);
    if (prefetch && q->pf) /* R*W elements an iteration: one call (each costs ~10 instructions of address) */
        quad_prefetch(L, q, R * L->W, quad_iteration(L, q, LLVMBuildSDiv(b, i0, ci64(L, R), ""), kw, L->W));
    for (int i = 0; i < R; i++) {
        LLVMValueRef row = wide(L, q, LLVMBuildAdd(b, LLVMBuildMul(b, LLVMBuildAdd(b, i0, ci64(L, i), ""), q->lda, ""), kw, ""));
        for (int s4 = 0; s4 < 4; s4++) set(L, acc[i], fmuladd(L, splat_groups(L, row, s4), bq4[s4], get(L, L->vf32, acc[i])));
    }
    loop_end(L, &lw);
    Loop lk;
    LLVMValueRef k = loop_begin(L, &lk, wide_end, q->depth, ci64(L, G), "quad.k");
    LLVMValueRef bq = bm_group_rows(L, q, k, 0, 1);
    if (prefetch && q->pf) quad_prefetch(L, q, R * G, quad_iteration(L, q, LLVMBuildSDiv(b, i0, ci64(L, R), ""), k, G));
    for (int i = 0; i < R; i++) {
        LLVMValueRef at = LLVMBuildAdd(b, LLVMBuildMul(b, LLVMBuildAdd(b, i0, ci64(L, i), ""), q->lda, ""), k, "");
        set(L, acc[i], fmuladd(L, spread(L, q, at), bq, get(L, L->vf32, acc[i])));
    }
    loop_end(L, &lk);
    for (int i = 0; i < R; i++) {
        LLVMValueRef v = get(L, L->vf32, acc[i]);
        for (int n = L->W / 2; n >= 4; n /= 2) {
            for (int l = 0; l < L->W; l++) idx[l] = (l + n) % L->W;
            v = LLVMBuildFAdd(b, v, shuffle(L, v, NULL, idx, L->W), "");
        }
        store_quad(L, q, group_lanes(L, v, 0), LLVMBuildAdd(b, i0, ci64(L, i), ""));
    }
}

/* One k of quad_rows_r: acc (=) += A's row k from i0 times Bm[k][0..3]. */
static void quad_kv_step(Lower *L, const Quad *q, int R, LLVMValueRef i0, LLVMValueRef k, LLVMValueRef *acc) {
    LLVMBuilderRef b = L->bd;
    int G = L->W / 4, idx[64];
    for (int l = 0; l < L->W; l++) idx[l] = l % 4;
    LLVMValueRef row = load_n(L, q->Bm, LLVMBuildMul(b, k, ci64(L, L->QB), ""), 4);
    LLVMValueRef bq = as_floats(L, shuffle(L, row, NULL, idx, L->W));
    LLVMValueRef kofs = LLVMBuildMul(b, k, q->lda, "");
    if (R % 4 == 0)
        for (int u = 0; u < R / 4; u++) {
            LLVMValueRef v = wide(L, q, LLVMBuildAdd(b, LLVMBuildAdd(b, i0, ci64(L, (int64_t)u * L->W), ""), kofs, ""));
            for (int s4 = 0; s4 < 4; s4++)
                set(L, acc[4 * u + s4], fmuladd(L, splat_groups(L, v, s4), bq, get(L, L->vf32, acc[4 * u + s4])));
        }
    else
        for (int i = 0; i < R; i++) {
            LLVMValueRef at = LLVMBuildAdd(b, LLVMBuildAdd(b, i0, ci64(L, i * G), ""), kofs, "");
            set(L, acc[i], fmuladd(L, spread(L, q, at), bq, get(L, L->vf32, acc[i])));
        }
}

/* Along rows (V: A's rows adjacent; G divides the rows): for every k, the
 * R*G rows from i0 of A's row k times Bm[k][r].  With R a multiple of 4,
 * the rows are W-lane vectors loaded (and converted) once each and split
 * into 4 FMAs: acc[4u + s] lanes 4g + r hold row i0 + u*W + 4g + s.  Else
 * (the tail, R = 1) acc[i] group g holds row i0 + i*G + g (spread). */
static void quad_rows_r(Lower *L, const Quad *q, int R, LLVMValueRef i0, int prefetch) {
    LLVMBuilderRef b = L->bd;
    int G = L->W / 4, whole = R % 4 == 0;
    LLVMValueRef acc[MAX_R];
    for (int i = 0; i < R; i++) acc[i] = local(L, L->vf32, LLVMConstNull(L->vf32));
    /* two values of k an iteration, one prefetch call for both (its address costs ~10 instructions, a quarter
     * of the 16-bit loop's), then the last k alone */
    LLVMValueRef pairs_end = LLVMBuildAnd(b, q->depth, ci64(L, -2), "quad.kv2.end");
    Loop l2;
    LLVMValueRef k = loop_begin(L, &l2, ci64(L, 0), pairs_end, ci64(L, 2), "quad.kv2");
    if (prefetch && q->pf)
        quad_prefetch(L, q, 2 * R * G, quad_iteration(L, q, LLVMBuildSDiv(b, i0, ci64(L, R * G), ""), k, 2));
    quad_kv_step(L, q, R, i0, k, acc);
    quad_kv_step(L, q, R, i0, LLVMBuildAdd(b, k, ci64(L, 1), ""), acc);
    loop_end(L, &l2);
    Loop l1;
    k = loop_begin(L, &l1, pairs_end, q->depth, ci64(L, 1), "quad.kv");
    quad_kv_step(L, q, R, i0, k, acc);
    loop_end(L, &l1);
    for (int i = 0; i < R; i++)
        for (int g = 0; g < G; g++) {
            int64_t r = whole ? (int64_t)(i / 4) * L->W + 4 * g + i % 4 : (int64_t)i * G + g;
            store_quad(L, q, group_lanes(L, get(L, L->vf32, acc[i]), g), LLVMBuildAdd(b, i0, ci64(L, r), ""));
        }
}

/* All nrows rows: blocks of 8 rows (along k) or 8 groups of G rows (along
 * rows), then the rest one row or group at a time. */
static void quad_gemm(Lower *L, void *ctx, int elem) {
    enum { QR = 8 };
    Quad q = *(const Quad *)ctx;
    q.elem = elem;
    int step = q.along_k ? 1 : L->W / 4;
    void (*rows)(Lower *, const Quad *, int, LLVMValueRef, int) = q.along_k ? quad_rows_k : quad_rows_r;
    LLVMValueRef nrows = L->gemm_cols; /* (set by lower_kv_product) */
    Loop lb;
    LLVMValueRef full_end = LLVMBuildSub(L->bd, nrows, ci64(L, QR * step - 1), "");
    LLVMValueRef i0 = loop_begin(L, &lb, ci64(L, 0), full_end, ci64(L, QR * step), "quad.rows");
    rows(L, &q, QR, i0, 1);
    loop_end(L, &lb);
    Loop lt;
    LLVMValueRef i = loop_begin(L, &lt, lb.i, nrows, ci64(L, step), "quad.tail");
    rows(L, &q, 1, i, 0);
    loop_end(L, &lt);
}

/* The narrow version's blocks of at most 4 rows where G divides the
 * contiguous dimension: the quad micro-kernel, one version per element
 * type; else (and when the vectors have fewer than 8 lanes) convert
 * f16/bf16 rows into scratch and run lower_gemm_versions. */
/* The tile's rows as float32 (*rows, *lda): in place, or converted into
 * kv->scratch first when the version's element type is not f32. */
static void kv_rows_f32(Lower *L, const KvRows *kv, int which, LLVMValueRef *rows, LLVMValueRef *lda) {
    LLVMBuilderRef b = L->bd;
    *rows = as_ptr(L, kv->src, L->f32), *lda = kv->stride;
    if (kv->map) { /* rows through AttnCall.kv_rows (float32 only): read in place through L->amap */
        L->amap = kv->map, L->amap_k = which;
    } else if (!LLVMIsAConstantInt(kv->f32) || !LLVMConstIntGetZExtValue(kv->f32)) { /* not a float32 version */
        LLVMBasicBlockRef after = if_begin(L, LLVMBuildNot(b, kv->f32, ""), which ? "cvt.v" : "cvt.k");
        lower_convert_rows(L, kv->elem, kv->src, kv->stride, kv->nk, kv->n, kv->scratch);
        if_end(L, after);
        *rows = LLVMBuildSelect(b, kv->f32, *rows, kv->scratch, "");
        *lda = LLVMBuildSelect(b, kv->f32, kv->stride, kv->n, "");
    } else if (which && !(L->variant & LLVM_VARIANT_NARROW)) {
        /* float32 V rows apart (a [B, L, H, D] layout, pages, views) are copied into Vc, back to back: P.V
         * walks a column of the tile (one element of each row) once per register block, and rows a multiple
         * of 4 KiB apart all fall into one set of L1's 64 (8 ways for the tile's 64 rows), so its loads
         * missed L1.  blhd prefill: 0.93 of the time (7 pairs); copying K too changed nothing measurable
         * (QK reads 4 rows at a time) */
        LLVMValueRef apart = LLVMBuildICmp(b, LLVMIntNE, kv->stride, kv->n, "v.apart");
        LLVMBasicBlockRef after = if_begin(L, apart, "copy.v");
        lower_copy_rows_f32(L, kv->src, kv->stride, kv->nk, kv->n, kv->scratch);
        if_end(L, after);
        *rows = LLVMBuildSelect(b, apart, kv->scratch, *rows, "");
        *lda = LLVMBuildSelect(b, apart, kv->n, kv->stride, "");
    }
}

void lower_pad_keys(Lower *L, int m, LLVMValueRef nk, LLVMValueRef *r0, LLVMValueRef *r1) {
    LLVMBuilderRef b = L->bd;
    LLVMValueRef M = ci64(L, m);
    LLVMValueRef whole =
        LLVMBuildMul(b, LLVMBuildUDiv(b, LLVMBuildAdd(b, LLVMBuildSub(b, *r1, *r0, ""), ci64(L, m - 1), ""), M, ""), M, "");
    LLVMValueRef some = LLVMBuildICmp(b, LLVMIntSLT, *r0, *r1, "");
    LLVMValueRef end = smin(L, LLVMBuildAdd(b, *r0, whole, ""), nk);
    *r0 = LLVMBuildSelect(b, some, smax(L, LLVMBuildSub(b, end, whole, ""), ci64(L, 0)), *r0, "");
    *r1 = LLVMBuildSelect(b, some, end, *r1, "");
}

/* Out = A Bm over rows 0..nrows (banded S: rows are keys), with a half block (lower_gemm_ld). */
static void gemm_keys(Lower *L, LLVMValueRef A, LLVMValueRef ars, LLVMValueRef aks, LLVMValueRef nrows,
                      LLVMValueRef Bm, LLVMValueRef ldb, LLVMValueRef depth, LLVMValueRef Out, LLVMValueRef ldo) {
    int half = L->half_block;
    L->half_block = 1;
    lower_gemm_ld(L, A, ars, aks, nrows, Bm, ldb, depth, Out, ldo, 0, NULL);
    L->half_block = half;
}

/* One banded product of the pair of row vectors whose first lane is col
 * (cw of them), over the keys [r0, r1) of the tile. */
static void banded_pair(Lower *L, int which, const KvRows *kv, LLVMValueRef rows, LLVMValueRef lda, LLVMValueRef Bm,
                        LLVMValueRef Out, LLVMValueRef r0, LLVMValueRef r1, LLVMValueRef col, int cw) {
    LLVMBuilderRef b = L->bd;
    LLVMValueRef qb = ci64(L, L->QB), one = ci64(L, 1);
    /* accumulators as in the other micro-kernels: 16 of AVX-512's 32 registers, 8 of AVX2's 16 (8 x 2 there
     * spilled four of them and shuffled the rest every step: a fifth of window-256's kernel time) */
    int acc = L->W == 16 ? 16 : 8;
    L->CQ = cw, L->R = acc / cw < MAX_R ? acc / cw : MAX_R, L->gemm_cols = ci64(L, cw);
    if (!which && L->R >= 4) lower_pad_keys(L, L->R / 2, kv->nk, &r0, &r1);
    LLVMValueRef n = LLVMBuildSub(b, r1, r0, "band.keys");
    LLVMValueRef a = gep(L, L->f32, rows, LLVMBuildMul(b, r0, lda, ""));
    if (kv->map) a = rows, L->amap = gep(L, L->i64, kv->map, r0); /* the keys from r0 through the map */
    LLVMValueRef kq = LLVMBuildMul(b, r0, qb, ""); /* the first key's row of S (P) */
    if (!which) /* S[r0..r1)[pair] = K[r0..r1) . Qt[.][pair] */
        gemm_keys(L, a, lda, one, n, gep(L, L->f32, Bm, col), qb, kv->n, gep(L, L->f32, Out, LLVMBuildAdd(b, kq, col, "")),
                  qb);
    else /* OT[.][pair] += V[r0..r1)^T . P[r0..r1)[pair] */
        lower_gemm_ld(L, a, one, lda, kv->n, gep(L, L->f32, Bm, LLVMBuildAdd(b, kq, col, "")), qb, n,
                      gep(L, L->f32, Out, col), qb, 1, NULL);
}

/* banded_pair over n ranges (col[k]: the first lane of its cw row vectors, keys [r0[k], r1[k])) in a loop:
 * one copy of the micro-kernel, not one per range (they differ only in the columns and keys, and each copy
 * was ~10% of the kernel's compile time). */
static void banded_ranges(Lower *L, int which, const KvRows *kv, LLVMValueRef rows, LLVMValueRef lda, LLVMValueRef Bm,
                          LLVMValueRef Out, int n, const LLVMValueRef *col, const LLVMValueRef *r0,
                          const LLVMValueRef *r1, int cw) {
    if (n == 0) return;
    LLVMTypeRef at = LLVMArrayType(L->i64, (unsigned)n);
    LLVMValueRef cs = LLVMBuildAlloca(L->alloca_bd, at, "band.col"), lo = LLVMBuildAlloca(L->alloca_bd, at, "band.r0"),
                 hi = LLVMBuildAlloca(L->alloca_bd, at, "band.r1");
    for (int k = 0; k < n; k++) {
        store(L, col[k], gep(L, L->i64, cs, ci64(L, k)), 8);
        store(L, r0[k], gep(L, L->i64, lo, ci64(L, k)), 8);
        store(L, smax(L, r0[k], r1[k]), gep(L, L->i64, hi, ci64(L, k)), 8); /* an empty range: [r0, r0) */
    }
    Loop lp;
    LLVMValueRef k = loop_begin(L, &lp, ci64(L, 0), ci64(L, n), ci64(L, 1), "band.range");
    banded_pair(L, which, kv, rows, lda, Bm, Out, load(L, L->i64, gep(L, L->i64, lo, k), 8),
                load(L, L->i64, gep(L, L->i64, hi, k), 8), load(L, L->i64, gep(L, L->i64, cs, k), 8), cw);
    loop_end(L, &lp);
}

void lower_kv_product_banded(Lower *L, int which, const KvRows *kv, LLVMValueRef Bm, LLVMValueRef Out,
                             const LLVMValueRef *va, const LLVMValueRef *vz) {
    LLVMValueRef rows, lda;
    kv_rows_f32(L, kv, which, &rows, &lda);
    int CQ = L->CQ, R = L->R, pairs = L->C / 2, n1 = 0;
    LLVMValueRef cols = L->gemm_cols;
    /* per pair of row vectors the keys both reach, in the pair's product; the others of each vector (before
     * and after those) alone: a band moves along the keys from one vector to the next, so the union of a pair's
     * bands holds a triangle's worth of keys only one vector needs (a 64 x 64 diagonal tile: 0.75 of its pairs
     * computed as pairs of vectors, 0.625 so) */
    LLVMValueRef pc[MAX_LANES], pa[MAX_LANES], pz[MAX_LANES], sc[2 * MAX_LANES + 1], sa[2 * MAX_LANES + 1],
        sz[2 * MAX_LANES + 1];
    for (int p = 0; p < pairs; p++) {
        LLVMValueRef a = smax(L, va[2 * p], va[2 * p + 1]), z = smax(L, smin(L, vz[2 * p], vz[2 * p + 1]), a);
        pc[p] = ci64(L, (int64_t)2 * p * L->W), pa[p] = a, pz[p] = z;
        for (int c = 2 * p; c < 2 * p + 2; c++) {
            sc[n1] = ci64(L, (int64_t)c * L->W), sa[n1] = va[c], sz[n1++] = smin(L, vz[c], a);
            sc[n1] = ci64(L, (int64_t)c * L->W), sa[n1] = smax(L, va[c], z), sz[n1++] = vz[c];
        }
    }
    if (L->C % 2) /* the last row vector alone */
        sc[n1] = ci64(L, (int64_t)(L->C - 1) * L->W), sa[n1] = va[L->C - 1], sz[n1++] = vz[L->C - 1];
    banded_ranges(L, which, kv, rows, lda, Bm, Out, pairs, pc, pa, pz, 2);
    banded_ranges(L, which, kv, rows, lda, Bm, Out, n1, sc, sa, sz, 1);
    L->CQ = CQ, L->R = R, L->gemm_cols = cols, L->amap = NULL;
}

/* O[q][dv] += sum over the tile's keys k of P[k][q] V[k][dv], for an item
 * that holds its accumulator as O rows (L->orow: one row vector, Dv a
 * multiple of W).  V's rows (rows, lda; or through L->amap as kv_rows_f32
 * left it) are the vectors, P's values the broadcasts: R = 4 rows of q by
 * CQ = 4 vectors of dv, 8 loads per 16 FMAs, where OT's product for a
 * one-vector row block loads a broadcast of V per FMA (load-bound: ~0.75
 * of the FMA rate; a C micro-benchmark of one 16 x 16 x 128 block: 1.35x;
 * natten2d 0.954 of the time), and O's rows take the running max's
 * correction as they are loaded (L->orow_corr as out_scale).  Dv's vectors
 * after the last whole block of 4 run one at a time. */
static void pv_into_rows(Lower *L, const Prefetch *pf, LLVMValueRef rows, LLVMValueRef lda, const KvRows *kv,
                         LLVMValueRef P, LLVMValueRef O) {
    LLVMBuilderRef b = L->bd;
    int CQ = L->CQ, R = L->R;
    LLVMValueRef cols = L->gemm_cols, amap = L->amap;
    LLVMValueRef Dv = kv->n, qb = ci64(L, L->QB);
    LLVMValueRef nvec = LLVMBuildUDiv(b, Dv, ci64(L, L->W), ""), whole = LLVMBuildAnd(b, nvec, ci64(L, -4), "");
    L->bmap = amap, L->amap = NULL; /* V's keys are Bm's rows here */
    L->out_scale = L->orow_corr;
    L->CQ = 4, L->R = 4, L->gemm_cols = whole, L->pf_cols = 1;
    lower_gemm_ld(L, P, ci64(L, 1), qb, qb, rows, lda, kv->nk, O, Dv, 1, pf);
    L->CQ = 1, L->R = 8, L->gemm_cols = LLVMBuildSub(b, nvec, whole, ""), L->pf_cols = 0;
    LLVMValueRef at = LLVMBuildMul(b, whole, ci64(L, L->W), "");
    lower_gemm_ld(L, P, ci64(L, 1), qb, qb, gep(L, L->f32, rows, at), lda, kv->nk, gep(L, L->f32, O, at), Dv, 1, NULL);
    L->bmap = NULL, L->out_scale = NULL, L->amap = amap, L->CQ = CQ, L->R = R, L->gemm_cols = cols;
}

void lower_kv_product(Lower *L, int which, LLVMValueRef dense, const Prefetch *pf, const KvRows *kv, LLVMValueRef Bm,
                      LLVMValueRef Out) {
    LLVMBuilderRef b = L->bd;
    LLVMValueRef nrows = which ? kv->n : kv->nk, depth = which ? kv->nk : kv->n;
    LLVMBasicBlockRef join = NULL;
    if (L->variant & LLVM_VARIANT_NARROW && L->W % 4 == 0 && L->W >= 8 && L->W <= 64 && !kv->map) {
        LLVMValueRef fits =
            LLVMBuildAnd(b, LLVMBuildICmp(b, LLVMIntULE, L->nblock, ci64(L, 4), ""),
                         LLVMBuildICmp(b, LLVMIntEQ, LLVMBuildSRem(b, kv->n, ci64(L, L->W / 4), ""), ci64(L, 0), ""),
                         "quad");
        LLVMBasicBlockRef quad = block(L, "kv.quad"), other = block(L, "kv.gemm");
        join = block(L, "kv.done");
        LLVMBuildCondBr(b, fits, quad, other);
        LLVMPositionBuilderAtEnd(b, quad);
        Quad q = {ELEM_F32, !which, which, kv->src, kv->stride, Bm, depth, Out, pf ? &pf[0] : NULL};
        L->gemm_cols = nrows;
        lower_elem_switch(L, kv->elem, quad_gemm, &q);
        LLVMBuildBr(b, join);
        LLVMPositionBuilderAtEnd(b, other);
    }
    LLVMValueRef rows, lda;
    kv_rows_f32(L, kv, which, &rows, &lda);
    LLVMValueRef one = ci64(L, 1);
    LLVMBasicBlockRef orow_done = NULL;
    if (which && L->orow) { /* the item holds O rows: P.V with V's rows as vectors */
        LLVMBasicBlockRef yes = block(L, "pv.orow"), no = block(L, "pv.ot");
        orow_done = block(L, "pv.done");
        LLVMBuildCondBr(b, L->orow, yes, no);
        LLVMPositionBuilderAtEnd(b, yes);
        pv_into_rows(L, pf, rows, lda, kv, Bm, Out);
        LLVMBuildBr(b, orow_done);
        LLVMPositionBuilderAtEnd(b, no);
    }
    lower_gemm_versions(L, dense, pf, rows, which ? one : lda, which ? lda : one, nrows, Bm, depth, Out, which);
    if (orow_done) {
        LLVMBuildBr(b, orow_done);
        LLVMPositionBuilderAtEnd(b, orow_done);
    }
    L->amap = NULL;
    if (join) {
        LLVMBuildBr(b, join);
        LLVMPositionBuilderAtEnd(b, join);
    }
}

/* The micro-kernel over the row block's vectors.  The wide version: all C
 * of them with CQ-wide register blocks.  The narrow version (decode: fewer
 * than C vectors hold rows of the item): L->nvec vectors one at a time,
 * with R = 8 rows of A per register block so that 8 accumulators stay in
 * flight (4 run at half the speed).  A narrow block streams K and V with
 * little arithmetic, so its prefetches matter most (without them decode
 * runs 4x slower); it has one copy, prefetching row by row, which covers
 * dense rows too: a second, dense copy is ~10% faster there but costs
 * compile time. */
void lower_gemm_versions(Lower *L, LLVMValueRef dense, const Prefetch *pf, LLVMValueRef A, LLVMValueRef ars,
                         LLVMValueRef aks, LLVMValueRef nrows, LLVMValueRef Bm, LLVMValueRef depth, LLVMValueRef Out,
                         int accumulate) {
    if (!(L->variant & LLVM_VARIANT_NARROW)) {
        L->gemm_cols = ci64(L, L->C);
        gemm_prefetching(L, dense, pf, A, ars, aks, nrows, Bm, depth, Out, accumulate);
        return;
    }
    int CQ = L->CQ, R = L->R;
    L->CQ = 1, L->R = 8, L->gemm_cols = L->nvec;
    lower_gemm(L, A, ars, aks, nrows, Bm, depth, Out, accumulate, pf ? &pf[0] : NULL);
    L->CQ = CQ, L->R = R;
}

/* ---- block transposes (the backward kernel's K, V, dK and dV tiles) ---- */

/* v[c][r] = v[r][c] for W vectors of W lanes, in registers: log2(W) rounds
 * of W two-vector shuffles.  The round of `bit` swaps that bit between the
 * row and the column index of every element, so after all of them (r, c) is
 * at (c, r). */
void lower_transpose_regs(Lower *L, LLVMValueRef *v) {
    int lo[MAX_LANES], hi[MAX_LANES];
    for (int bit = L->W / 2; bit >= 1; bit /= 2) {
        for (int c = 0; c < L->W; c++) {
            lo[c] = c & bit ? L->W + c - bit : c; /* row i: (i, c) from (i + bit, c - bit) */
            hi[c] = c & bit ? L->W + c : c + bit; /* row i + bit: (i + bit, c) from (i, c + bit) */
        }
        for (int i = 0; i < L->W; i++)
            if (!(i & bit)) {
                LLVMValueRef x = shuffle(L, v[i], v[i + bit], lo, L->W), y = shuffle(L, v[i], v[i + bit], hi, L->W);
                v[i] = x, v[i + bit] = y;
            }
    }
}

/* dst[c*ds + r] = src[r*ss + c] for a W x W block (strides in floats): W
 * loads, the transpose in registers, W stores. */
static void transpose_block(Lower *L, LLVMValueRef src, LLVMValueRef ss, LLVMValueRef dst, LLVMValueRef ds) {
    LLVMBuilderRef b = L->bd;
    LLVMValueRef v[MAX_LANES];
    for (int r = 0; r < L->W; r++) v[r] = load_fvec(L, src, LLVMBuildMul(b, ci64(L, r), ss, ""));
    lower_transpose_regs(L, v);
    for (int r = 0; r < L->W; r++) store_fvec(L, v[r], dst, LLVMBuildMul(b, ci64(L, r), ds, ""));
}

/* dst[c][r] = src[r][c] for r < rows, c < cols (both multiples of W), rows
 * of src ss floats apart, of dst ds apart. */
void lower_transpose(Lower *L, LLVMValueRef src, LLVMValueRef ss, LLVMValueRef rows, LLVMValueRef cols,
                     LLVMValueRef dst, LLVMValueRef ds) {
    LLVMBuilderRef b = L->bd;
    Loop lr, lc;
    LLVMValueRef r = loop_begin(L, &lr, ci64(L, 0), rows, ci64(L, L->W), "transpose.r");
    LLVMValueRef c = loop_begin(L, &lc, ci64(L, 0), cols, ci64(L, L->W), "transpose.c");
    transpose_block(L, gep(L, L->f32, src, LLVMBuildAdd(b, LLVMBuildMul(b, r, ss, ""), c, "")), ss,
                    gep(L, L->f32, dst, LLVMBuildAdd(b, LLVMBuildMul(b, c, ds, ""), r, "")), ds);
    loop_end(L, &lc);
    loop_end(L, &lr);
}
