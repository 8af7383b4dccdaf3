/* pass_recip.c — a float division by a value of a coarser loop becomes a
 * multiplication by its reciprocal, which the schedule then computes once
 * in that loop: `score / cap` (softcap), `x / float(exact)` (T5's buckets),
 * `bias / sqrt(float(D))` divide once per call instead of once per element.
 *
 * Accuracy (docs/middle-end.md): x * (1/y) rounds twice where x / y rounds
 * once, so it may differ from the division by one unit in the last place;
 * zeros, infinities and NaN come out as the division's (1/±0 = ±inf,
 * x * ±inf = x / ±0 for x != 0, 0 * inf = NaN = 0 / 0), except where 1/y
 * overflows (|y| < 2^-128, a subnormal divisor), which the interpreter,
 * the reference, computes in float64 anyway.  Int division is left alone,
 * and so is a division whose value reaches floor, ceil, int, sign, a float
 * mod or a comparison: a step function would turn its ulp into a whole step
 * (ceil(21 * (1/7)) = 4 where ceil(21 / 7) = 3).
 * Requires: an IrFunc after folding.  Produces: the roots with such
 * divisions rewritten (a later fold folds the reciprocal of a constant). */
#include <stdlib.h>

#include "ir_passes.h"

/* How deep in the kernel's loop nest a value varies: 0 per call, 1 per
 * work item (b, h, tensors), 2 per row or per kv, 3 per element. */
static int depth(int deps) {
    if ((deps & DEP_PRE) || ((deps & DEP_Q) && (deps & DEP_KV))) return 3;
    if (deps & (DEP_Q | DEP_KV)) return 2;
    if (deps & (DEP_B | DEP_H | DEP_HK | DEP_TENSOR)) return 1;
    return 0;
}

/* Whether y is computed in a loop outside the row, kv or element loop that
 * computes n (or outside a sum n sits in). */
static int coarser(int y_deps, int n_deps) {
    int d = depth(y_deps), nd = depth(n_deps);
    /* a row value and a kv value divide per element: the row value is coarser.
     * Divisions once per work item or call are left exact: they cost nothing. */
    return (nd >= 2 && d < nd) || ((n_deps & DEP_SUMVAR) && !(y_deps & DEP_SUMVAR));
}

/* Whether node u's result jumps where its operand moves by an ulp: then
 * x * (1/y) for x / y could move it by a whole step (ceil(21 * (1/7)) = 4). */
static int discontinuous(const IrNode *u) {
    if (u->op == IR_CALL) return u->aux == FN_FLOOR || u->aux == FN_CEIL || u->aux == FN_INT || u->aux == FN_SIGN;
    return u->op == IR_MOD || u->op == IR_LT || u->op == IR_LE || u->op == IR_EQ || u->op == IR_NE;
}

/* Per node: its value reaches a discontinuous operation (or a select's
 * condition); operands are numbered below their users, so one downward
 * sweep marks every such path.  NULL when out of memory. */
static char *feeds_steps(const IrModule *m) {
    char *mark = calloc((size_t)m->n + 1, 1);
    for (int u = m->n - 1; mark && u >= 0; u--) {
        const IrNode *n = ir_at(m, u);
        if (n->op == IR_SELECT) mark[n->args[0]] = 1;
        if (!mark[u] && !discontinuous(n)) continue;
        for (int a = 0; a < n->nargs; a++) mark[n->args[a]] = 1;
    }
    return mark;
}

static IrRef to_reciprocal(IrModule *m, IrRef r, const IrNode *n, const IrRef *args, void *ctx) {
    const char *steps = ctx;
    if (n->op != IR_DIV || n->type != T_FLOAT || steps[r]) return IR_NONE;
    const IrNode *y = ir_at(m, args[1]);
    if (!coarser(y->deps, ir_at(m, args[0])->deps | y->deps)) return IR_NONE; /* a constant too: 1/c folds */
    IrRef recip = ir_op2(m, IR_DIV, T_FLOAT, ir_float(m, 1.0), args[1]);
    return ir_op2(m, IR_MUL, T_FLOAT, args[0], recip);
}

int pass_reciprocal(IrModule *m, IrFunc *f) {
    char *steps = feeds_steps(m);
    if (!steps) {
        m->failed = 1;
        return 0;
    }
    int changed = ir_rewrite(m, f, to_reciprocal, steps);
    free(steps);
    return changed;
}
