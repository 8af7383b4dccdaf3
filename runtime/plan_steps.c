/* plan_steps.c — a schedule's steps executed in float64 (plan_steps.h).
 *
 * Each STEP_VALUE computes its node from its operands' values with
 * ir_eval_node (middle/ir_eval.c, the evaluator's own definition of each
 * operation, loads included); a sum is a loop over its steps between
 * STEP_SUM_OPEN and STEP_SUM_CLOSE, as the C kernel's `for` is.  Every value
 * carries the scope instance that computed it (a work item, a row, a kv, an
 * element, one iteration of a loop), and is read only while that instance is
 * open: what the C kernel's compiler would reject as an undeclared name, or
 * what would silently read another iteration's value, is caught here. */
#include "plan_steps.h"

#include <string.h>

/* ---- scopes and values ---------------------------------------------------- */

void steps_open(StepRun *R) {
    if (R->nscopes == STEPS_MAX_SCOPES) {
        R->bad = 1;
        return;
    }
    R->scopes[R->nscopes++] = ++R->next_scope;
}

void steps_close(StepRun *R) {
    if (R->nscopes > 0) R->nscopes--;
}

/* Whether scope instance id is open (the innermost are read most). */
static int live(const StepRun *R, uint64_t id) {
    for (int k = R->nscopes - 1; k >= 0; k--)
        if (R->scopes[k] == id) return 1;
    return 0;
}

static void set(StepRun *R, IrRef r, Const v) {
    R->val[r] = v;
    R->stamp[r] = R->nscopes ? R->scopes[R->nscopes - 1] : 0;
}

static Const bad_read(StepRun *R) {
    R->bad = 1;
    return (Const){0};
}

Const steps_read(StepRun *R, SchedBlockId b, IrRef r) {
    const Schedule *s = R->s;
    const IrNode *n = ir_at(s->m, r);
    if (sched_is_leaf(n)) {
        if (n->op == IR_SUMVAR && (n->aux < 0 || n->aux > 63 || !(R->levels >> n->aux & 1))) return bad_read(R);
        return ir_eval_node(&R->ev, r, NULL);
    }
    int k = s->slot_of[r];
    switch (sched_home(s, b, r)) {
    case SH_ROW_SLOT: {
        if (k < 0 || k >= s->nrow_slots || R->row_ok[(int64_t)k * R->bq + R->i] != 1) return bad_read(R);
        return R->row_slot[(int64_t)k * R->bq + R->i];
    }
    case SH_COL_SLOT: {
        if (k < 0 || k >= s->ncol_slots || R->col_ok[(int64_t)k * R->bk + R->j] != R->tile_id) return bad_read(R);
        return R->col_slot[(int64_t)k * R->bk + R->j];
    }
    default: return R->stamp[r] && live(R, R->stamp[r]) ? R->val[r] : bad_read(R);
    }
}

/* An IR_DIAG node in an element: its table at the element's kv - q (grid:
 * at the corner and row of the same offsets), which the diag block must
 * have stored for this tile. */
static void diag_read(StepRun *R, SchedBlockId b, IrRef r) {
    const Schedule *s = R->s;
    int k = s->slot_of[r];
    int64_t e = s->diag_grid[0] ? sched_grid_entry(s, R->diag_cap / 4, R->ev.q - R->diag_q0, R->ev.kv - R->diag_k0)
                                : R->ev.kv - R->ev.q - R->diag_d0;
    if (s->block[b].loop != SL_ELEM || k < 0 || k >= s->ndiag || e < 0 || e >= R->diag_n ||
        R->diag_ok[(int64_t)k * R->diag_cap + e] != R->tile_id) {
        R->bad = 1;
        return;
    }
    set(R, r, R->diag[(int64_t)k * R->diag_cap + e]);
}

static void value(StepRun *R, SchedBlockId b, IrRef r) {
    const IrNode *n = ir_at(R->s->m, r);
    Const a[ATTNC_MAX_RANK];
    if (n->op == IR_DIAG) {
        diag_read(R, b, r);
        return;
    }
    if (n->nargs > ATTNC_MAX_RANK || n->op == IR_SUM || n->op == IR_ANY) {
        R->bad = 1;
        return;
    }
    for (int k = 0; k < n->nargs; k++) a[k] = steps_read(R, b, n->args[k]);
    set(R, r, ir_eval_node(&R->ev, r, a));
}

/* ---- loops ----------------------------------------------------------------- */

typedef struct Loop {
    int open;        /* the step index of its open */
    IrRef node;      /* the sum (IR_NONE: a low-rank group's columns) */
    int level;       /* its sum variable */
    int64_t bound, it, saved;
    uint64_t levels; /* the open levels outside it */
    Const acc;
} Loop;

/* The index of the close that matches the open at pc (a zero-trip loop jumps there). */
static int matching_close(StepRun *R, const SchedBlock *blk, int pc) {
    StepOp open = blk->steps[pc].op, close = open == STEP_SUM_OPEN ? STEP_SUM_CLOSE : STEP_LOWRANK_CLOSE;
    int depth = 0;
    for (int k = pc + 1; k < blk->nsteps; k++) {
        StepOp op = blk->steps[k].op;
        if (op == open) depth++;
        else if (op == close && depth-- == 0) {
            if (blk->steps[k].node != blk->steps[pc].node || blk->steps[k].aux != blk->steps[pc].aux) break;
            return k;
        }
    }
    R->bad = 1;
    return blk->nsteps;
}

/* Enter a loop of sum variable `level` over [0, bound) (bound > 0). */
static int loop_enter(StepRun *R, Loop *loops, int *nloops, int pc, IrRef node, int level, int64_t bound) {
    if (*nloops == STEPS_MAX_SCOPES || level < 0 || level > 63) {
        R->bad = 1;
        return 0;
    }
    loops[(*nloops)++] = (Loop){pc, node, level, bound, 0, R->ev.sumvar[level], R->levels, {0}};
    R->ev.sumvar[level] = 0;
    R->levels |= (uint64_t)1 << level;
    steps_open(R);
    return 1;
}

/* The end of one iteration: the step to go on from (the open, to iterate again). */
static int loop_next(StepRun *R, Loop *loops, int *nloops, int pc, int stop) {
    Loop *L = &loops[*nloops - 1];
    steps_close(R); /* this iteration's values */
    if (!stop && ++L->it < L->bound) {
        R->ev.sumvar[L->level] = L->it;
        steps_open(R);
        return L->open;
    }
    R->ev.sumvar[L->level] = L->saved;
    R->levels = L->levels;
    (*nloops)--;
    return pc;
}

static void sum_add(const IrNode *n, Const *acc, Const v) {
    if (n->op == IR_ANY) acc->b = acc->b || v.b;
    else if (n->type == T_INT) acc->i = (int64_t)((uint64_t)acc->i + (uint64_t)v.i);
    else acc->f += v.f;
}

/* ---- low-rank columns ------------------------------------------------------- */

static void lowrank_count(StepRun *R, SchedBlockId b, const SchedStep *st) {
    const int64_t over = (int64_t)SCHED_MAX_LOWRANK_COLS + 1; /* counts saturate here: no overflow */
    if (st->aux < 0 || st->aux >= R->s->nlowrank) {
        R->bad = 1;
        return;
    }
    int64_t n = steps_read(R, b, st->node).i;
    n = n < 0 ? 0 : n > over ? over : n;
    R->lr_n[st->aux] = n;
    R->lr_at[st->aux] = R->cols;
    R->cols = R->cols + n > over ? over : R->cols + n;
}

static void lowrank_store(StepRun *R, SchedBlockId b, const SchedStep *st, const Loop *L) {
    double v = steps_read(R, b, st->node).f;
    int64_t col = R->lr_at[st->aux] + L->it;
    if (col >= R->cols_cap) {
        R->bad = 1;
        return;
    }
    if (R->s->block[b].loop == SL_ROW) R->qcol[R->i * R->cols_cap + col] = v;
    else R->kcol[R->j * R->cols_cap + col] = v;
}

/* ---- a block ---------------------------------------------------------------- */

static void export_slot(StepRun *R, SchedBlockId b, const SchedStep *st) {
    const Schedule *s = R->s;
    Const v = steps_read(R, b, st->node);
    if (s->block[b].loop == SL_ROW && st->aux >= 0 && st->aux < s->nrow_slots) {
        R->row_slot[(int64_t)st->aux * R->bq + R->i] = v;
        R->row_ok[(int64_t)st->aux * R->bq + R->i] = 1;
    } else if (s->block[b].loop == SL_COL && st->aux >= 0 && st->aux < s->ncol_slots) {
        R->col_slot[(int64_t)st->aux * R->bk + R->j] = v;
        R->col_ok[(int64_t)st->aux * R->bk + R->j] = R->tile_id;
    } else {
        R->bad = 1;
    }
}

int steps_run(StepRun *R, SchedBlockId b) {
    const SchedBlock *blk = &R->s->block[b];
    const IrModule *m = R->s->m;
    Loop loops[STEPS_MAX_SCOPES];
    int nloops = 0;
    for (int pc = 0; pc < blk->nsteps && !R->bad; pc++) {
        const SchedStep *st = &blk->steps[pc];
        switch (st->op) {
        case STEP_VALUE: value(R, b, st->node); break;
        case STEP_SUM_OPEN: {
            const IrNode *n = ir_at(m, st->node);
            int64_t bound = steps_read(R, b, n->args[0]).i;
            if (bound > 0) {
                loop_enter(R, loops, &nloops, pc, st->node, n->aux, bound);
            } else { /* a zero-trip sum: 0, or false */
                pc = matching_close(R, blk, pc);
                set(R, st->node, (Const){0});
            }
            break;
        }
        case STEP_SUM_CLOSE: {
            const IrNode *n = ir_at(m, st->node);
            if (nloops == 0 || loops[nloops - 1].node != st->node) {
                R->bad = 1;
                break;
            }
            Loop *L = &loops[nloops - 1];
            sum_add(n, &L->acc, steps_read(R, b, n->args[1]));
            Const acc = L->acc;
            int next = loop_next(R, loops, &nloops, pc, n->op == IR_ANY && acc.b);
            if (next == pc) set(R, st->node, acc); /* the loop is over: its value, in the enclosing scope */
            else pc = next;
            break;
        }
        case STEP_EXPORT: export_slot(R, b, st); break;
        case STEP_LOWRANK_COUNT: lowrank_count(R, b, st); break;
        case STEP_LOWRANK_LIMIT:
            if (R->cols > SCHED_MAX_LOWRANK_COLS) return 1;
            break;
        case STEP_LOWRANK_OPEN:
            if (st->aux < 0 || st->aux >= R->s->nlowrank) R->bad = 1;
            else if (R->lr_n[st->aux] > 0) loop_enter(R, loops, &nloops, pc, IR_NONE, 0, R->lr_n[st->aux]);
            else pc = matching_close(R, blk, pc);
            break;
        case STEP_LOWRANK_STORE:
            if (nloops == 0 || loops[nloops - 1].node != IR_NONE) R->bad = 1;
            else lowrank_store(R, b, st, &loops[nloops - 1]);
            break;
        case STEP_LOWRANK_CLOSE: {
            if (nloops == 0 || loops[nloops - 1].node != IR_NONE) {
                R->bad = 1;
                break;
            }
            int next = loop_next(R, loops, &nloops, pc, 0);
            if (next != pc) pc = next;
            break;
        }
        case STEP_LSE_OFFSET: R->lse_off[R->i] = steps_read(R, b, st->node).f; break;
        case STEP_DIAG_STORE:
            if (b != SB_DIAG || st->aux < 0 || st->aux >= R->s->ndiag || R->diag_e < 0 || R->diag_e >= R->diag_n) {
                R->bad = 1;
                break;
            }
            R->diag[(int64_t)st->aux * R->diag_cap + R->diag_e] = steps_read(R, b, st->node);
            R->diag_ok[(int64_t)st->aux * R->diag_cap + R->diag_e] = R->tile_id;
            break;
        }
    }
    if (nloops > 0) R->bad = 1; /* a loop the block never closed */
    return R->bad;
}
