/* llvm_steps.c — the schedule's steps (middle/schedule.h) as LLVM IR: the
 * one place where the LLVM backend turns the schedule's placement into code,
 * as backends/c/c_holes.c prints it as C.
 *
 * Requires: the lowering state (llvm_build.h) with the leaves of the block's
 * loop bound (L->var, q_vec, kv, pre), the regions the steps store into
 * (L->row_slots, col_slots, qx, kx, lse_off) and where in them this iteration
 * is (L->lane0 for a row vector, L->col_j for a kv of the tile).
 * Produces: at the builder's position, each step's value in the memo, sum
 * and low-rank loops, and the stores of STEP_EXPORT, STEP_LOWRANK_STORE and
 * STEP_LSE_OFFSET.
 *
 * It decides nothing about where a value lives: a step's operands are
 * leaves, values of earlier steps of this block or of an enclosing one, or
 * slot values loaded into the memo (lower_load_*_slots); anything else is an
 * internal error (llvm_node.c's lower_node).  Values of the row and element
 * loops that vary with q are vectors of W rows (lanes along q), values of
 * the col loop scalars of one kv.  A slot holds 8 bytes per row or kv (a
 * bool as one byte), like templates/tile.c's. */
#include "llvm_steps.h"

#include "llvm_node.h"

/* A loop the steps opened: a sum's, or a low-rank group's (node IR_NONE). */
typedef struct OpenLoop {
    Loop lp;
    IrRef node;
    int level;          /* the sum variable it binds */
    LLVMValueRef saved; /* that variable's binding outside the loop */
    LLVMValueRef acc;   /* a sum's accumulator (a local) */
    LLVMTypeRef t;      /* its type */
} OpenLoop;

/* for (level = 0; level < bound; level++) with sum variable `level` bound
 * and a memo scope for the loop's values. */
static void loop_open(Lower *L, OpenLoop *o, int level, LLVMValueRef bound, const char *name) {
    o->level = level;
    LLVMValueRef i = loop_begin(L, &o->lp, ci64(L, 0), bound, ci64(L, 1), name);
    scope_push(L);
    o->saved = L->sumvar[level];
    L->sumvar[level] = i;
}

static void loop_close(Lower *L, OpenLoop *o) {
    L->sumvar[o->level] = o->saved;
    scope_pop(L);
    loop_end(L, &o->lp);
}

/* STEP_SUM_OPEN: the accumulator = 0, then the loop over [0, bound). */
static int sum_open(Lower *L, OpenLoop *o, IrRef r) {
    const IrNode *n = &L->ir->nodes[r];
    if (n->aux < 0 || n->aux >= MAX_SUM_LEVELS) {
        fail(L, "sums are nested too deeply for the LLVM backend");
        return 0;
    }
    LLVMValueRef bound = lower_node(L, n->args[0]);
    if (is_vec(bound)) {
        fail(L, "a sum bound that varies with q");
        return 0;
    }
    /* a vector of rows when the sum varies with q (or the score): a row or
     * element value; or with h where h is a vector (packed rows, llvm_rows.c) */
    int vec = L->kv_lanes      ? (n->deps & (DEP_KV | DEP_PRE)) != 0
              : L->scalar_rows ? 0
                               : (n->deps & (DEP_Q | DEP_PRE)) != 0 ||
                                     ((n->deps & DEP_H) && L->var[V_H] && is_vec(L->var[V_H]));
    o->node = r;
    o->t = type_of(L, n->op == IR_ANY ? T_BOOL : n->type, vec);
    o->acc = local(L, o->t, LLVMConstNull(o->t));
    loop_open(L, o, n->aux, bound, "sum");
    return 1;
}

/* STEP_SUM_CLOSE: accumulator += body; end of the loop; the sum available.
 * An `any` ORs its body over every r: every IR operation is total, so the
 * result is that of stopping at the first true one. */
static void sum_close(Lower *L, OpenLoop *o) {
    const IrNode *n = &L->ir->nodes[o->node];
    LLVMValueRef v = lower_node(L, n->args[1]);
    if (is_vec(v) && LLVMGetTypeKind(o->t) != LLVMVectorTypeKind) {
        fail(L, "a sum whose body varies with q where the sum does not");
        return;
    }
    if (LLVMGetTypeKind(o->t) == LLVMVectorTypeKind) v = splat(L, v);
    LLVMValueRef cur = get(L, o->t, o->acc);
    LLVMValueRef next = n->op == IR_ANY    ? LLVMBuildOr(L->bd, cur, v, "")
                        : n->type == T_INT ? LLVMBuildAdd(L->bd, cur, v, "")
                                           : LLVMBuildFAdd(L->bd, cur, v, "");
    set(L, o->acc, next);
    loop_close(L, o);
    remember(L, o->node, get(L, o->t, o->acc));
}

/* Byte address of slot k at the current row vector (row) or kv (col). */
static LLVMValueRef slot_at(Lower *L, int row, int k) {
    LLVMBuilderRef b = L->bd;
    if (row)
        return gep(L, L->i8, L->row_slots,
                   LLVMBuildAdd(b, ci64(L, (int64_t)k * L->QB * 8), LLVMBuildMul(b, L->lane0, ci64(L, 8), ""), ""));
    return gep(L, L->i8, L->col_slots,
               LLVMBuildMul(b, LLVMBuildAdd(b, ci64(L, (int64_t)k * L->BK), L->col_j, ""), ci64(L, 8), ""));
}

/* STEP_EXPORT: store node r into slot k of this block's loop. */
static void export_slot(Lower *L, int row, int k, IrRef r) {
    LLVMValueRef v = lower_node(L, r);
    if (row && !L->scalar_rows) {
        v = splat(L, v);
    } else if (is_vec(v)) {
        fail(L, "a kv value that varies with q");
        return;
    }
    LLVMTypeRef t = LLVMTypeOf(v);
    if (t == L->vi1 || t == L->i1) v = LLVMBuildZExt(L->bd, v, t == L->vi1 ? L->vi8 : L->i8, "");
    store(L, v, slot_at(L, row, k), 8);
}

static LLVMValueRef load_slot(Lower *L, int row, int k, IrRef r) {
    Type t = L->ir->nodes[r].type;
    LLVMValueRef p = slot_at(L, row, k);
    int vec = row && !L->scalar_rows;
    if (!row && L->kv_lanes) { /* W consecutive kv's 8-byte cells: the value in each one's low bytes */
        LLVMValueRef cells = load(L, L->vi64, p, 8);
        if (t == T_INT) return cells;
        if (t == T_BOOL) return LLVMBuildTrunc(L->bd, cells, L->vi1, "");
        return LLVMBuildBitCast(L->bd, LLVMBuildTrunc(L->bd, cells, L->vi32, ""), L->vf32, "");
    }
    if (t == T_BOOL) return LLVMBuildTrunc(L->bd, load(L, vec ? L->vi8 : L->i8, p, 8), vec ? L->vi1 : L->i1, "");
    return load(L, type_of(L, t, vec), p, 8);
}

void lower_load_row_slots(Lower *L) {
    for (int k = 0; k < L->s->nrow_slots; k++) remember(L, L->s->row_slots[k], load_slot(L, 1, k, L->s->row_slots[k]));
}

void lower_load_col_slots(Lower *L) {
    for (int k = 0; k < L->s->ncol_slots; k++) remember(L, L->s->col_slots[k], load_slot(L, 0, k, L->s->col_slots[k]));
}

/* STEP_LOWRANK_COUNT: n_g = max(count, 0) columns from column lr_cols on. */
static void lowrank_count(Lower *L, int g, IrRef count) {
    if (g < 0 || g >= MAX_LOWRANK) {
        fail(L, "more than 64 low-rank bias groups");
        return;
    }
    L->lr_n[g] = smax(L, lower_node(L, count), ci64(L, 0));
    L->lr_at[g] = L->lr_cols;
    L->lr_cols = LLVMBuildAdd(L->bd, L->lr_cols, L->lr_n[g], "");
}

/* STEP_LOWRANK_STORE: Qx[at_g + r0][row] (the row loop) or Kx[j][at_g + r0] (col). */
static void lowrank_store(Lower *L, int row, int g, IrRef r) {
    LLVMBuilderRef b = L->bd;
    LLVMValueRef v = lower_node(L, r);
    LLVMValueRef c = LLVMBuildAdd(b, L->lr_at[g], L->sumvar[0], "");
    if (row) {
        store_fvec(L, splat(L, v), L->qx, LLVMBuildAdd(b, LLVMBuildMul(b, c, ci64(L, L->QB), ""), L->lane0, ""));
    } else if (is_vec(v)) {
        fail(L, "a low-rank k column that varies with q");
    } else {
        store(L, v, gep(L, L->f32, L->kx, LLVMBuildAdd(b, LLVMBuildMul(b, L->col_j, L->lr_cols, ""), c, "")), 4);
    }
}

/* STEP_LOWRANK_LIMIT: more columns than the limit fail the call.  The
 * scratch size function reports it in L->lr_over (it asks for an impossible
 * size); the tile function returns 1 (the runtime then asks the interpreter,
 * which gives the answer or the error), as templates/tile.c does. */
static void lowrank_limit(Lower *L, SchedBlockId id) {
    LLVMValueRef over = LLVMBuildICmp(L->bd, LLVMIntUGT, L->lr_cols, ci64(L, SCHED_MAX_LOWRANK_COLS), "");
    if (id == SB_SCRATCH) {
        L->lr_over = over;
        return;
    }
    LLVMBasicBlockRef fine = block(L, "lowrank.ok"), bad = block(L, "lowrank.over");
    LLVMBuildCondBr(L->bd, over, bad, fine);
    LLVMPositionBuilderAtEnd(L->bd, bad);
    LLVMBuildRet(L->bd, ci32(L, 1));
    LLVMPositionBuilderAtEnd(L->bd, fine);
}

void lower_steps(Lower *L, SchedBlockId id) { lower_block(L, id, &L->s->block[id]); }

void lower_block(Lower *L, SchedBlockId id, const SchedBlock *blk) {
    int row = blk->loop == SL_ROW;
    OpenLoop open[MAX_SUM_LEVELS];
    int nopen = 0;
    if (id == SB_SCRATCH || id == SB_ITEM) L->lr_cols = ci64(L, 0);
    for (int i = 0; i < blk->nsteps && !L->failed; i++) {
        const SchedStep *st = &blk->steps[i];
        int opens = st->op == STEP_SUM_OPEN || st->op == STEP_LOWRANK_OPEN;
        int closes = st->op == STEP_SUM_CLOSE || st->op == STEP_LOWRANK_CLOSE;
        if (opens && nopen == MAX_SUM_LEVELS) {
            fail(L, "sums are nested too deeply for the LLVM backend");
            return;
        }
        if (closes && nopen == 0) {
            fail(L, "the schedule closes a loop it did not open");
            return;
        }
        switch (st->op) {
        case STEP_VALUE: lower_value(L, st->node); break;
        case STEP_SUM_OPEN: nopen += sum_open(L, &open[nopen], st->node); break;
        case STEP_SUM_CLOSE:
            if (open[nopen - 1].node != st->node) {
                fail(L, "the schedule closes a sum it did not open");
                return;
            }
            sum_close(L, &open[--nopen]);
            break;
        case STEP_EXPORT: export_slot(L, row, st->aux, st->node); break;
        case STEP_LOWRANK_COUNT: lowrank_count(L, st->aux, st->node); break;
        case STEP_LOWRANK_LIMIT: lowrank_limit(L, id); break;
        case STEP_LOWRANK_OPEN:
            if (st->aux < 0 || st->aux >= MAX_LOWRANK || !L->lr_n[st->aux]) {
                fail(L, "low-rank columns before their count");
                return;
            }
            open[nopen].node = IR_NONE;
            loop_open(L, &open[nopen++], 0, L->lr_n[st->aux], "lowrank");
            break;
        case STEP_LOWRANK_STORE: lowrank_store(L, row, st->aux, st->node); break;
        case STEP_LOWRANK_CLOSE: loop_close(L, &open[--nopen]); break;
        case STEP_LSE_OFFSET: store_fvec(L, splat(L, lower_node(L, st->node)), L->lse_off, L->lane0); break;
        case STEP_DIAG_STORE: { /* W distances at once: lanes along the table */
            if (id != SB_DIAG || !L->diag || !L->diag_e) {
                fail(L, "a diagonal table stored outside the diag block");
                return;
            }
            LLVMValueRef v = splat(L, lower_node(L, st->node));
            if (LLVMTypeOf(v) == L->vi1) v = fsel(L, v, splat(L, cf32(L, 1.0)), LLVMConstNull(L->vf32)); /* bools as 0 / 1 */
            store_fvec(L, v, L->diag,
                       LLVMBuildAdd(L->bd, ci64(L, (int64_t)st->aux * diag_stride(L)), L->diag_e, ""));
            break;
        }
        }
    }
    if (nopen && !L->failed) fail(L, "the schedule leaves a loop open");
}

/* The grid tables of a pair of tiles: corner by corner, the q tile's rows in vectors. */
static void grid_fill(Lower *L, LLVMValueRef k0, LLVMValueRef r0) {
    LLVMBuilderRef b = L->bd;
    const Schedule *s = L->s;
    int64_t gs = diag_grid_stride(L);
    Loop ld;
    LLVMValueRef e0 = loop_begin(L, &ld, ci64(L, 0), ci64(L, 4 * gs), ci64(L, L->W), "grid");
    scope_push(L);
    LLVMValueRef c = LLVMBuildUDiv(b, e0, ci64(L, gs), ""), i0 = LLVMBuildURem(b, e0, ci64(L, gs), "");
    /* corner c's key: (c & 1 ? kbx - 1 : 0) + (c >> 1 ? (kby - 1) * kbx : 0) (sched_grid_corner) */
    LLVMValueRef jx = LLVMBuildMul(b, LLVMBuildAnd(b, c, ci64(L, 1), ""), ci64(L, sched_grid_corner(s, 1)), "");
    LLVMValueRef jy = LLVMBuildMul(b, LLVMBuildLShr(b, c, ci64(L, 1), ""), ci64(L, sched_grid_corner(s, 2)), "");
    L->kv = LLVMBuildAdd(b, k0, LLVMBuildAdd(b, jx, jy, ""), "");
    L->q_vec = LLVMBuildAdd(b, splat(L, LLVMBuildAdd(b, r0, i0, "")), iota(L), "");
    L->diag_e = e0;
    lower_steps(L, SB_DIAG);
    L->kv = L->q_vec = L->diag_e = NULL;
    scope_pop(L);
    loop_end(L, &ld);
}

void lower_diag_fill(Lower *L, LLVMValueRef k0, LLVMValueRef qb0, LLVMValueRef r0) {
    if (L->s->ndiag == 0) return;
    if (L->s->diag_grid[0]) {
        grid_fill(L, k0, r0);
        return;
    }
    LLVMBuilderRef b = L->bd;
    Loop ld;
    LLVMValueRef e0 = loop_begin(L, &ld, ci64(L, 0), ci64(L, L->QB + L->BK), ci64(L, L->W), "diag");
    scope_push(L);
    LLVMValueRef e = LLVMBuildAdd(b, splat(L, e0), iota(L), "");
    L->kv = k0;
    L->q_vec = LLVMBuildSub(b, splat(L, LLVMBuildAdd(b, qb0, ci64(L, L->QB - 1), "")), e, "");
    L->diag_e = e0;
    lower_steps(L, SB_DIAG);
    L->kv = L->q_vec = L->diag_e = NULL;
    scope_pop(L);
    loop_end(L, &ld);
}
