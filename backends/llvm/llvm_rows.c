/* llvm_rows.c — which query row of which head each lane of a row vector
 * holds, in the LLVM kernel, and how wide a call's row blocks are.
 * Requires: the lowering state (llvm_build.h) inside the tile function, the
 * schedule's pack_heads.  Produces: the lanes' query rows (q_vec), whether
 * they are rows of the item (valid), their heads, and their rows' offsets in
 * Q, O and LSE.
 *
 * Without packing (the schedule's pack_heads is 0: h is a value of the
 * item) lane i of the row vector at row r holds query row r + i of head h,
 * exactly the kernel before kernel ABI 4.  With pack_heads the runtime may
 * pack P heads into one work item (AttnCall.pack): packed row r is query row
 * r / P of head h + r % P, so the leaf h is a row value, a vector of lanes
 * like q.  The divisions by P are done once per row vector in the row
 * prologue (and skipped when P is 1) into a map in scratch, which the
 * element, fault and finish passes read back: no per-element cost. */
#include "llvm_rows.h"

#include <stddef.h>

/* The row blocks of a kernel and of a call (llvm_lower.h): what picks a
 * call's prefill or decode version. */

/* Row blocks of 64 rows (fewer when the q tile is smaller). */
int llvm_row_vectors(const Plan *p, int W) {
    int want = (p->bq + W - 1) / W;
    int C = 64 / W < want ? 64 / W : want;
    return C < 1 ? 1 : C;
}

int llvm_call_variant(int C, int W, const AttnCall *c) {
    int32_t e[4] = {c->q_elem, c->k_elem, c->v_elem, c->o_elem};
    int v = 0;
    for (int t = 3; t >= 0; t--) v = v * 3 + (e[t] > 0 && e[t] < 3 ? e[t] : 0); /* bind refuses others */
    v *= 2;
    /* a q tile's first row block is its largest (min(bq, rows, QB) rows,
     * packed rows when pack > 1), and the first tile's is the call's */
    int64_t rows = c->Lq * (c->pack > 1 ? c->pack : 1), first = c->bq < rows ? c->bq : rows;
    if (first > (int64_t)C * W) first = (int64_t)C * W;
    if (C > 1 && first > 0 && (first + W - 1) / W < C) v |= LLVM_VARIANT_NARROW;
    if (c->kv_rows) v += LLVM_VARIANT_KV_ROWS;
    return v;
}

int64_t rows_map_bytes(const Lower *L) { return L->s->pack_heads ? (int64_t)L->QB * 16 : 0; }

void rows_bind(Lower *L, RowMap *rm, LLVMValueRef h0, LLVMValueRef qt, LLVMValueRef bq) {
    LLVMBuilderRef b = L->bd;
    memset(rm, 0, sizeof *rm);
    rm->packed = L->s->pack_heads;
    rm->h0 = h0;
    rm->q_rows = call_field(L, offsetof(AttnCall, q_rows), ptr_to(L->i64));
    LLVMValueRef rows = L->var[V_SIZE_LQ];
    if (rm->packed) {
        /* 0 means one head, like 1 */
        rm->pack = smax(L, call_field(L, offsetof(AttnCall, pack), L->i64), ci64(L, 1));
        rows = LLVMBuildMul(b, rows, rm->pack, "packed_rows");
        rm->qh = call_field(L, offsetof(AttnCall, q_stride) + sizeof(int64_t), L->i64);
        rm->oh = call_field(L, offsetof(AttnCall, o_stride) + sizeof(int64_t), L->i64);
        rm->lh = call_field(L, offsetof(AttnCall, lse_stride) + sizeof(int64_t), L->i64);
    }
    rm->r0 = LLVMBuildMul(b, qt, bq, "");
    rm->r1 = smin(L, LLVMBuildAdd(b, rm->r0, bq, ""), rows);
}

void rows_set_map(RowMap *rm, LLVMValueRef map) { rm->map = map; }

/* &map[half][lane0]: half 0 the query rows, 1 the heads. */
static LLVMValueRef map_at(Lower *L, const RowMap *rm, int half, LLVMValueRef lane0) {
    LLVMValueRef i = LLVMBuildAdd(L->bd, lane0, ci64(L, (int64_t)half * L->QB), "");
    return gep(L, L->i64, rm->map, i);
}

/* The packed rows of the row vector: qb0 + c*W + lane. */
static LLVMValueRef packed_rows(Lower *L, LLVMValueRef qb0, LLVMValueRef lane0) {
    return LLVMBuildAdd(L->bd, splat(L, LLVMBuildAdd(L->bd, qb0, lane0, "")), iota(L), "r");
}

void rows_compute(Lower *L, RowMap *rm, LLVMValueRef qb0, LLVMValueRef c) {
    if (!rm->packed) return;
    LLVMBuilderRef b = L->bd;
    LLVMValueRef lane0 = LLVMBuildMul(b, c, ci64(L, L->W), "");
    LLVMValueRef r = packed_rows(L, qb0, lane0);
    LLVMValueRef q = local(L, L->vi64, r), hoff = local(L, L->vi64, LLVMConstNull(L->vi64));
    LLVMBasicBlockRef after = if_begin(L, LLVMBuildICmp(b, LLVMIntNE, rm->pack, ci64(L, 1), ""), "unpack");
    /* rows and P are >= 0 and P >= 1: unsigned division is exact */
    set(L, q, LLVMBuildUDiv(b, r, splat(L, rm->pack), ""));
    set(L, hoff, LLVMBuildURem(b, r, splat(L, rm->pack), ""));
    if_end(L, after);
    store(L, get(L, L->vi64, q), map_at(L, rm, 0, lane0), 8);
    store(L, get(L, L->vi64, hoff), map_at(L, rm, 1, lane0), 8);
}

void rows_enter(Lower *L, RowMap *rm, LLVMValueRef qb0, LLVMValueRef c) {
    L->lane0 = LLVMBuildMul(L->bd, c, ci64(L, L->W), "");
    LLVMValueRef r = packed_rows(L, qb0, L->lane0);
    L->valid = LLVMBuildICmp(L->bd, LLVMIntSLT, r, splat(L, rm->r1), "valid");
    if (!rm->packed) {
        L->q_vec = r;
        return;
    }
    L->q_vec = load(L, L->vi64, map_at(L, rm, 0, L->lane0), 8);
    rm->hoff = load(L, L->vi64, map_at(L, rm, 1, L->lane0), 8);
    L->var[V_H] = LLVMBuildAdd(L->bd, splat(L, rm->h0), rm->hoff, "h");
}

void rows_leave(Lower *L, RowMap *rm) {
    L->q_vec = L->valid = L->lane0 = NULL;
    if (!rm->packed) return;
    L->var[V_H] = rm->h0;
    rm->hoff = NULL;
}

/* The lanes' rows of Q, O and LSE: q_vec, or q_rows[q_vec] (a gather of the
 * item's lanes only; nothing read when the call has no q_rows). */
static LLVMValueRef mapped_rows(Lower *L, const RowMap *rm) {
    LLVMBuilderRef b = L->bd;
    LLVMValueRef has = LLVMBuildIsNotNull(b, rm->q_rows, "has_q_rows");
    LLVMValueRef mask = LLVMBuildAnd(b, L->valid, splat(L, has), "");
    LLVMValueRef at = gather_aligned(L, L->vi64, gep(L, L->i64, rm->q_rows, L->q_vec), mask, 8);
    return LLVMBuildSelect(b, has, at, L->q_vec, "q_row");
}

LLVMValueRef rows_offset(Lower *L, const RowMap *rm, LLVMValueRef row_stride, char which) {
    LLVMBuilderRef b = L->bd;
    LLVMValueRef off = LLVMBuildMul(b, mapped_rows(L, rm), splat(L, row_stride), "");
    if (!rm->packed) return off;
    LLVMValueRef hs = which == 'q' ? rm->qh : which == 'o' ? rm->oh : rm->lh;
    return LLVMBuildAdd(b, off, LLVMBuildMul(b, rm->hoff, splat(L, hs), ""), "");
}
