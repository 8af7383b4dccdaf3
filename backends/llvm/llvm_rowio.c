/* llvm_rowio.c — the LLVM kernel's reads of Q and writes of O and LSE, per
 * row vector: Q transposed and scaled into Qt, O from the transposed
 * accumulator OT or (a row block of one vector) from O rows.
 * Requires: the lowering state inside the tile function, a row vector
 * entered (llvm_rows.c: L->valid, its rows' offsets), the tile state
 * (llvm_tile.h).  Produces: blocks of W dims as W runs of each row's
 * contiguous elements, transposed in registers (lower_transpose_regs):
 * a gather or scatter per dim costs several times more on some CPUs (AMD
 * Zen: ~3 cycles an element), and on a band mask, whose work items visit
 * few tiles, that was a quarter of the time.  A run is a plain load or
 * store at an address chosen per row - the row's, or the tile state's
 * spare vector when the row is not the item's - since AVX2's masked stores
 * (vmaskmovps) are microcoded on AMD Zen: they were a fifth of a 2-D
 * neighbourhood's kernel time.  The dims past the last whole block are
 * gathered and scattered. */
#include <math.h>

#include "llvm_math.h"
#include "llvm_tensor.h"
#include "llvm_tile.h"

/* p (a pointer to a vector of type vt) when ok (i1), else spare. */
static LLVMValueRef row_or_spare(Lower *L, LLVMValueRef ok, LLVMValueRef p, LLVMValueRef spare, LLVMTypeRef vt) {
    return LLVMBuildSelect(L->bd, ok, as_ptr(L, p, vt), as_ptr(L, spare, vt), "");
}

/* Row i's W elements of `elem` from element `at` (i64) of the i8 pointer
 * base, as floats; 0 when `ok` (i1) is false (the spare zeros are read then). */
static LLVMValueRef load_row_run(Lower *L, const Tile *T, LLVMValueRef base, LLVMValueRef at, LLVMValueRef ok,
                                 int elem) {
    if (elem == ELEM_F32)
        return load(L, L->vf32, row_or_spare(L, ok, gep(L, L->f32, base, at), T->spare_in, L->vf32), 4);
    LLVMTypeRef i16 = LLVMInt16TypeInContext(L->ctx), vt = LLVMVectorType(i16, (unsigned)L->W);
    return lower_widen(L, load(L, vt, row_or_spare(L, ok, gep(L, i16, base, at), T->spare_in, vt), 2), elem);
}

/* Qt[d][col + lane] = scale * Q[b, h, q, d] for the row vector's rows, Q's
 * elements being of type `elem` (one version per type, lower_elem_switch).
 * Blocks of W dims are read as W runs of each row's contiguous elements and
 * transposed in registers: a gather per dim costs several times more on
 * some CPUs (AMD Zen: ~3 cycles an element), and on a band mask, whose work
 * items visit few tiles, that was a quarter of the time.  The dims past the
 * last whole block are gathered. */
void lower_pack_q(Lower *L, void *ctx, int elem) {
    const PackQ *pq = ctx;
    Tile *T = pq->T;
    LLVMBuilderRef b = L->bd;
    LLVMValueRef D = L->var[V_SIZE_D];
    LLVMTypeRef i16 = LLVMInt16TypeInContext(L->ctx);
    LLVMValueRef qrow = rows_offset(L, &T->rows, T->qs, 'q');
    LLVMValueRef vscale = splat(L, T->scale);
    LLVMValueRef Dw = LLVMBuildAnd(b, D, ci64(L, -(int64_t)L->W), "");
    LLVMValueRef row[MAX_LANES], ok[MAX_LANES];
    for (int i = 0; i < L->W; i++) {
        row[i] = LLVMBuildExtractElement(b, qrow, ci32(L, i), "");
        ok[i] = LLVMBuildExtractElement(b, L->valid, ci32(L, i), "");
    }
    Loop lb;
    LLVMValueRef d0 = loop_begin(L, &lb, ci64(L, 0), Dw, ci64(L, L->W), "packq.block");
    LLVMValueRef v[MAX_LANES];
    for (int i = 0; i < L->W; i++) v[i] = load_row_run(L, T, T->qbh, LLVMBuildAdd(b, row[i], d0, ""), ok[i], elem);
    lower_transpose_regs(L, v);
    for (int j = 0; j < L->W; j++) {
        LLVMValueRef d = LLVMBuildAdd(b, d0, ci64(L, j), "");
        /* the first tile's K and V rows, which no earlier tile prefetched (decode only: first_tile_prefetch) */
        if (T->first_k.base) {
            LLVMValueRef line = LLVMBuildAdd(b, LLVMBuildMul(b, pq->c, D, ""), d, "");
            lower_prefetch_line(L, &T->first_k, line);
            lower_prefetch_line(L, &T->first_v, line);
        }
        store_fvec(L, LLVMBuildFMul(b, v[j], vscale, ""), T->rg.qt,
                   LLVMBuildAdd(b, LLVMBuildMul(b, d, ci64(L, L->QB), ""), pq->col, ""));
    }
    loop_end(L, &lb);
    Loop ld;
    LLVMValueRef d = loop_begin(L, &ld, Dw, D, ci64(L, 1), "packq");
    if (T->first_k.base) {
        LLVMValueRef line = LLVMBuildAdd(b, LLVMBuildMul(b, pq->c, D, ""), d, "");
        lower_prefetch_line(L, &T->first_k, line);
        lower_prefetch_line(L, &T->first_v, line);
    }
    LLVMValueRef at = LLVMBuildAdd(b, qrow, splat(L, d), "");
    LLVMValueRef x = elem == ELEM_F32
                         ? gather(L, L->vf32, gep(L, L->f32, T->qbh, at), L->valid)
                         : lower_widen(L, gather_aligned(L, LLVMVectorType(i16, (unsigned)L->W), gep(L, i16, T->qbh, at),
                                                         L->valid, 2),
                                       elem);
    store_fvec(L, LLVMBuildFMul(b, x, vscale, ""), T->rg.qt,
               LLVMBuildAdd(b, LLVMBuildMul(b, d, ci64(L, L->QB), ""), pq->col, ""));
    loop_end(L, &ld);
}

/* lower_store_o from O rows (L->orow: one row vector, Dv a multiple of W):
 * each row's vectors scaled by its lane of inv (0 where its lane of zero
 * is set) and stored as the row's run (the spare vector for a row not of
 * the item), no transpose. */
static void store_o_rows(Lower *L, const StoreO *so, int elem, const LLVMValueRef *row, const LLVMValueRef *ok) {
    const Tile *T = so->T;
    LLVMBuilderRef b = L->bd;
    LLVMTypeRef i16 = LLVMInt16TypeInContext(L->ctx), vt16 = LLVMVectorType(i16, (unsigned)L->W);
    LLVMValueRef Dv = L->var[V_SIZE_DV];
    for (int i = 0; i < L->W; i++) {
        LLVMValueRef lane = ci32(L, i);
        LLVMValueRef inv = so->inv ? splat(L, LLVMBuildExtractElement(b, so->inv, lane, "")) : NULL;
        LLVMValueRef zero = LLVMBuildExtractElement(b, so->zero, lane, "");
        Loop ld;
        LLVMValueRef d = loop_begin(L, &ld, ci64(L, 0), Dv, ci64(L, L->W), "store.o.row");
        LLVMValueRef x = load_fvec(L, T->rg.ot, LLVMBuildAdd(b, LLVMBuildMul(b, ci64(L, i), Dv, ""), d, ""));
        if (inv) x = LLVMBuildFMul(b, x, inv, "");
        x = LLVMBuildSelect(b, zero, LLVMConstNull(L->vf32), x, "");
        LLVMValueRef at = LLVMBuildAdd(b, row[i], d, "");
        if (elem == ELEM_F32)
            store(L, x, row_or_spare(L, ok[i], gep(L, L->f32, T->obh, at), T->spare_out, L->vf32), 4);
        else
            store(L, lower_narrow(L, x, elem), row_or_spare(L, ok[i], gep(L, i16, T->obh, at), T->spare_out, vt16), 2);
        loop_end(L, &ld);
    }
}

/* O[b, h, q, dv] of the row vector's rows from OT (or O rows: L->orow,
 * store_o_rows), rounded once to O's element type `elem` (one version per
 * type, lower_elem_switch).  Blocks of
 * W dims are transposed in registers and stored as each row's contiguous
 * run (rows not of the item into the spare vector), like pack_q's reads; the dims
 * past the last whole block are scattered. */
void lower_store_o(Lower *L, void *ctx, int elem) {
    const StoreO *so = ctx;
    const Tile *T = so->T;
    LLVMBuilderRef b = L->bd;
    LLVMTypeRef i16 = LLVMInt16TypeInContext(L->ctx);
    LLVMValueRef orow = rows_offset(L, &T->rows, T->os, 'o');
    LLVMValueRef Dv = L->var[V_SIZE_DV];
    LLVMValueRef Dw = LLVMBuildAnd(b, Dv, ci64(L, -(int64_t)L->W), "");
    LLVMValueRef row[MAX_LANES], ok[MAX_LANES];
    for (int i = 0; i < L->W; i++) {
        row[i] = LLVMBuildExtractElement(b, orow, ci32(L, i), "");
        ok[i] = LLVMBuildExtractElement(b, L->valid, ci32(L, i), "");
    }
    LLVMBasicBlockRef ot = NULL, done = NULL;
    if (L->orow) { /* the accumulator as O rows: their own store; else OT's, below */
        LLVMBasicBlockRef rows = block(L, "store.o.rows");
        ot = block(L, "store.o.ot"), done = block(L, "store.o.done");
        LLVMBuildCondBr(b, L->orow, rows, ot);
        LLVMPositionBuilderAtEnd(b, rows);
        store_o_rows(L, so, elem, row, ok);
        LLVMBuildBr(b, done);
        LLVMPositionBuilderAtEnd(b, ot);
    }
    Loop lb;
    LLVMValueRef d0 = loop_begin(L, &lb, ci64(L, 0), Dw, ci64(L, L->W), "store.o.block");
    LLVMValueRef v[MAX_LANES];
    for (int j = 0; j < L->W; j++) {
        LLVMValueRef dv = LLVMBuildAdd(b, d0, ci64(L, j), "");
        LLVMValueRef x = load_fvec(L, T->rg.ot, LLVMBuildAdd(b, LLVMBuildMul(b, dv, ci64(L, L->QB), ""), so->col, ""));
        if (so->inv) x = LLVMBuildFMul(b, x, so->inv, "");
        v[j] = fsel(L, so->zero, LLVMConstNull(L->vf32), x);
    }
    lower_transpose_regs(L, v);
    for (int i = 0; i < L->W; i++) {
        LLVMValueRef at = LLVMBuildAdd(b, row[i], d0, "");
        if (elem == ELEM_F32) {
            store(L, v[i], row_or_spare(L, ok[i], gep(L, L->f32, T->obh, at), T->spare_out, L->vf32), 4);
        } else {
            LLVMTypeRef vt = LLVMVectorType(i16, (unsigned)L->W);
            store(L, lower_narrow(L, v[i], elem), row_or_spare(L, ok[i], gep(L, i16, T->obh, at), T->spare_out, vt), 2);
        }
    }
    loop_end(L, &lb);
    Loop ld;
    LLVMValueRef dv = loop_begin(L, &ld, Dw, Dv, ci64(L, 1), "store.o");
    LLVMValueRef x = load_fvec(L, T->rg.ot, LLVMBuildAdd(b, LLVMBuildMul(b, dv, ci64(L, L->QB), ""), so->col, ""));
    if (so->inv) x = LLVMBuildFMul(b, x, so->inv, "");
    x = fsel(L, so->zero, LLVMConstNull(L->vf32), x);
    LLVMValueRef at = LLVMBuildAdd(b, orow, splat(L, dv), "");
    if (elem == ELEM_F32)
        scatter(L, x, gep(L, L->f32, T->obh, at), L->valid);
    else
        scatter_aligned(L, lower_narrow(L, x, elem), gep(L, i16, T->obh, at), L->valid, 2);
    loop_end(L, &ld);
    if (done) {
        LLVMBuildBr(b, done);
        LLVMPositionBuilderAtEnd(b, done);
    }
}

/* O and LSE of the row block's valid rows, by the schedule's empty-row
 * rule (sched_row_is_empty).  With softmax, a row that kept nothing has
 * m = -inf (its masked scores are -inf), so testing m covers `!any` there. */
void lower_write_rows(Lower *L, Tile *T) {
    LLVMBuilderRef b = L->bd;
    const Schedule *sc = L->s;
    Loop lc;
    LLVMValueRef c = loop_begin(L, &lc, ci64(L, 0), L->nvec, ci64(L, 1), "finish");
    scope_push(L);
    rows_enter(L, &T->rows, T->qb0, c);
    LLVMValueRef col = L->lane0;
    LLVMValueRef m = load_fvec(L, T->rg.m, col), l = load_fvec(L, T->rg.l, col), any = load_fvec(L, T->rg.any, col);
    LLVMValueRef zero = sc->softmax ? fcmp(L, LLVMRealOEQ, m, splat(L, cf32(L, -INFINITY)))
                                    : fcmp(L, LLVMRealOEQ, any, LLVMConstNull(L->vf32));
    LLVMValueRef offset = NULL;
    if (sc->lse_offset) {
        offset = load_fvec(L, T->rg.lse_off, col);
        LLVMValueRef bad = LLVMBuildOr(b, fcmp(L, LLVMRealUNO, offset, offset),
                                       fcmp(L, LLVMRealOEQ, offset, splat(L, cf32(L, -INFINITY))), "");
        zero = LLVMBuildOr(b, zero, bad, "");
    }
    StoreO so = {T, col, sc->softmax ? LLVMBuildFDiv(b, splat(L, cf32(L, 1.0)), l, "") : NULL, zero};
    lower_elem_switch(L, T->o_elem, lower_store_o, &so);
    LLVMValueRef lse;
    if (sc->softmax) {
        lse = fmuladd(L, m, splat(L, cf32(L, 0.69314718055994530942)), lower_log(L, l, 0));
        if (offset) lse = LLVMBuildFAdd(b, lse, offset, "");
    } else {
        lse = lower_log(L, l, 0);
    }
    lse = fsel(L, zero, splat(L, cf32(L, -INFINITY)), lse);
    LLVMBasicBlockRef after = if_begin(L, T->has_lse, "store.lse");
    scatter(L, lse, gep(L, L->f32, T->lse_row, rows_offset(L, &T->rows, T->ls, 'l')), L->valid);
    if_end(L, after);
    rows_leave(L, &T->rows);
    scope_pop(L);
    loop_end(L, &lc);
}
