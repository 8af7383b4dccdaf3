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
 * prefetching). */
#include "llvm_gemm.h"

enum { MAX_R = 8, MAX_CQ = 4 };

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
    pf.last_line = LLVMBuildSub(b, lines, ci64(L, 1), "");
    pf.last_row = LLVMBuildSub(b, nrows, ci64(L, 1), "");
    return pf;
}

/* Prefetch line `line` of the region (its last line once past its end). */
void lower_prefetch_line(Lower *L, const Prefetch *pf, LLVMValueRef line) {
    LLVMBuilderRef b = L->bd;
    LLVMValueRef byte;
    if (!pf->stride) {
        byte = smin(L, LLVMBuildMul(b, line, ci64(L, 64), ""), LLVMBuildSub(b, pf->bytes, ci64(L, 64), ""));
    } else {
        LLVMValueRef row = smin(L, LLVMBuildLShr(b, line, pf->shift, ""), pf->last_row);
        LLVMValueRef col = smin(L, LLVMBuildAnd(b, line, pf->mask, ""), pf->last_line);
        byte = LLVMBuildAdd(b, LLVMBuildMul(b, row, pf->stride, ""), LLVMBuildMul(b, col, ci64(L, 64), ""), "");
    }
    LLVMTypeRef pt = ptr_to(L->i8);
    /* rw 0 (read), locality 2 (prefetcht1: L2, leaving L1 to the micro-kernel), data */
    LLVMValueRef args[4] = {gep(L, L->i8, pf->base, smax(L, byte, ci64(L, 0))), ci32(L, 0), ci32(L, 2), ci32(L, 1)};
    intrinsic(L, "llvm.prefetch", &pt, 1, args, 4);
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
    LLVMValueRef c0 = loop_begin(L, &lc, ci64(L, 0), L->gemm_cols, ci64(L, L->CQ), "gemm.c");
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
        lower_prefetch_line(L, pf,
                            LLVMBuildAdd(b, LLVMBuildMul(b, LLVMBuildSDiv(b, i0, ci64(L, R), ""), depth, ""), k, ""));
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

/* All rows 0..nrows: blocks of R rows, then the remaining rows one by one. */
void lower_gemm(Lower *L, LLVMValueRef A, LLVMValueRef ars, LLVMValueRef aks, LLVMValueRef nrows, LLVMValueRef Bm,
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

/* lower_gemm prefetching the next tile's rows as one block (`dense`, rows
 * back to back: pf[1]) or row by row (pf[0]), two copies of the
 * micro-kernel so that the common dense case keeps its short prefetch
 * arithmetic; or not prefetching (pf NULL). */
static void gemm_prefetching(Lower *L, LLVMValueRef dense, const Prefetch *pf, LLVMValueRef A, LLVMValueRef ars,
                             LLVMValueRef aks, LLVMValueRef nrows, LLVMValueRef Bm, LLVMValueRef depth,
                             LLVMValueRef Out, int accumulate) {
    if (!pf) {
        lower_gemm(L, A, ars, aks, nrows, Bm, depth, Out, accumulate, NULL);
        return;
    }
    LLVMBasicBlockRef rows = block(L, "gemm.rows_apart"), block_ = block(L, "gemm.dense"), join = block(L, "gemm.done");
    LLVMBuildCondBr(L->bd, dense, block_, rows);
    for (int d = 0; d < 2; d++) {
        LLVMPositionBuilderAtEnd(L->bd, d ? block_ : rows);
        lower_gemm(L, A, ars, aks, nrows, Bm, depth, Out, accumulate, &pf[d]);
        LLVMBuildBr(L->bd, join);
    }
    LLVMPositionBuilderAtEnd(L->bd, join);
}

/* The micro-kernel over the row block's vectors: all C of them with CQ-wide
 * register blocks; or, in a narrow block (narrow_block: fewer than C vectors
 * hold rows of the item, as in decode), L->nvec vectors one at a time, with
 * R = 8 rows of A per register block so that 8 accumulators stay in flight
 * (4 run at half the speed).  A narrow block streams K and V with little
 * arithmetic, so its prefetches matter most (without them decode runs 4x
 * slower); it has one copy, prefetching row by row, which covers dense rows
 * too: a second, dense copy is ~10% faster there but costs compile time. */
void lower_gemm_versions(Lower *L, LLVMValueRef narrow_block, LLVMValueRef dense, const Prefetch *pf, LLVMValueRef A,
                          LLVMValueRef ars, LLVMValueRef aks, LLVMValueRef nrows, LLVMValueRef Bm, LLVMValueRef depth,
                          LLVMValueRef Out, int accumulate) {
    L->gemm_cols = ci64(L, L->C);
    if (L->C == 1) {
        gemm_prefetching(L, dense, pf, A, ars, aks, nrows, Bm, depth, Out, accumulate);
        return;
    }
    LLVMBasicBlockRef narrow = block(L, "gemm.narrow"), wide = block(L, "gemm.wide"), join = block(L, "gemm.both");
    LLVMBuildCondBr(L->bd, narrow_block, narrow, wide);
    LLVMPositionBuilderAtEnd(L->bd, wide);
    gemm_prefetching(L, dense, pf, A, ars, aks, nrows, Bm, depth, Out, accumulate);
    LLVMBuildBr(L->bd, join);
    LLVMPositionBuilderAtEnd(L->bd, narrow);
    int CQ = L->CQ, R = L->R;
    L->CQ = 1, L->R = 8, L->gemm_cols = L->nvec;
    lower_gemm(L, A, ars, aks, nrows, Bm, depth, Out, accumulate, pf ? &pf[0] : NULL);
    L->CQ = CQ, L->R = R;
    LLVMBuildBr(L->bd, join);
    LLVMPositionBuilderAtEnd(L->bd, join);
}
