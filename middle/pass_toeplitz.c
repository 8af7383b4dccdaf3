/* pass_toeplitz.c — Toeplitz hoisting: values of an element that depend on
 * (q, kv) only through the distance kv - q are computed once per distance;
 * and on a grid (pass_grid.c), values that depend on them only through the
 * offsets between their grid cells once per offset of a pair of tiles.
 *
 * Requires: an IrFunc after the other passes (pipeline.c runs it last, and
 * only for backends that translate the diag block: PlanOptions.toeplitz, TABLES_DISTANCE).
 * Produces: bias, score, weight and fault roots in which each maximal float
 * or bool subexpression that reads q and kv only inside `kv - q` or `q - kv`
 * (besides values of the item: b, h, hk, sizes, params, tensors read at such
 * indices; no sum, no pre) and costs enough per element is wrapped in an
 * IR_DIAG node.  The schedule (schedule.c) then computes its body in the
 * diag block, per row block and kv tile, once for each distance the tile's
 * elements can meet (BQ + BK - 1 of them), and every element reads it from
 * that table (schedule.h, SB_DIAG).  T5's buckets (a log, divisions, a
 * gather) become one table read; cheap terms (ALiBi's slope * distance) are
 * left alone: a table read costs about as much as they do.
 *
 * Runtime errors: every IR operation is total, so filling a table at
 * distances no kept element meets raises nothing.  The `fault` root reads
 * its part that is a function of kv - q (T5's "bucket out of range") from a
 * table of bools, per distance, but is still evaluated per element, masks
 * and laziness included: an error is found exactly where the interpreter
 * raises one (kept elements), never at a distance only masked elements
 * meet.  `keep` is not rewritten (masks: the tile analysis reads them).
 *
 * pass_toeplitz_grid: the same over a row-major grid W wide, for the plan
 * over rows in block order (run by pass_grid on the original rows, before
 * its substitution): a node is then a function of the offsets when it reads
 * q and kv only inside `kv / W - q / W`, `kv % W - q % W` (the row and
 * column offsets, either order) or `kv - q`; it becomes IR_DIAG with aux
 * DIAG_GRID, which the schedule computes per pair of tiles at the offsets
 * their cells meet (schedule.h, SB_DIAG; docs/toeplitz.md). */
#include <stdlib.h>

#include "ir_passes.h"

/* Per-element cost below which a table read is not cheaper than the value:
 * a distance's table is read by a contiguous load, a grid's by a gather. */
enum { TOEPLITZ_MIN_COST = 6, TOEPLITZ_GRID_MIN_COST = 8 };

typedef struct Toe {
    unsigned char *ok; /* per node (< n0): a function of kv - q (grid: of the offsets) and item values */
    int *stamp;        /* per node: cost walk visit mark */
    int n0, gen;
    IrRef q, kv;
    IrRef w; /* the grid's width (pass_toeplitz_grid), else IR_NONE */
} Toe;

static int reads_qkv(const IrNode *n) { return (n->deps & (DEP_Q | DEP_KV)) != 0; }

/* Whether a and b are `op(kv, w)` and `op(q, w)` in either order (op: the grid's `/` or `%`). */
static int axis_pair(const IrModule *m, const Toe *t, IrRef a, IrRef b, IrOp op) {
    const IrNode *x = ir_at(m, a), *y = ir_at(m, b);
    if (x->op != op || y->op != op || x->nargs != 2 || y->nargs != 2 || x->args[1] != t->w || y->args[1] != t->w)
        return 0;
    return (x->args[0] == t->kv && y->args[0] == t->q) || (x->args[0] == t->q && y->args[0] == t->kv);
}

/* Whether node r (whose operands are classified) is a function of kv - q
 * (grid: of the row and column offsets). */
static int classify(const IrModule *m, const Toe *t, IrRef r) {
    const IrNode *n = ir_at(m, r);
    if (n->deps & (DEP_PRE | DEP_SUMVAR)) return 0;
    /* a distance's table of the 1-D plan is a function of the offsets too: kv - q = dy * W + dx */
    if (n->op == IR_DIAG && t->w != IR_NONE && n->aux == DIAG_DISTANCE) return t->ok[n->args[0]];
    if (n->op == IR_SUM || n->op == IR_ANY || n->op == IR_PRE || n->op == IR_SUMVAR || n->op == IR_DIAG) return 0;
    if (!reads_qkv(n)) return 1;
    if (n->op == IR_VAR) return 0; /* q or kv alone */
    if (n->op == IR_SUB && n->type == T_INT &&
        ((n->args[0] == t->kv && n->args[1] == t->q) || (n->args[0] == t->q && n->args[1] == t->kv)))
        return 1;
    if (n->op == IR_SUB && n->type == T_INT && t->w != IR_NONE &&
        (axis_pair(m, t, n->args[0], n->args[1], IR_DIV) || axis_pair(m, t, n->args[0], n->args[1], IR_MOD)))
        return 1;
    for (int i = 0; i < n->nargs; i++)
        if (!t->ok[n->args[i]]) return 0;
    return 1;
}

static int op_cost(const IrNode *n) {
    switch (n->op) {
    case IR_LOAD: return 4; /* a gather in vector lanes */
    case IR_INBOUNDS: return 2 * n->nargs; /* two compares per index */
    case IR_CALL: return 8; /* log, exp, tanh ...: a polynomial */
    case IR_DIV:
    case IR_MOD: return 4;
    case IR_VAR: return 0; /* q and kv themselves */
    default: return 1;
    }
}

/* What node r costs per element: its operations that read q or kv, each
 * once (grid: those that read both; the others are the block-order plan's
 * row and column values, computed per row and per key). */
static int cost(const IrModule *m, Toe *t, IrRef r) {
    const IrNode *n = ir_at(m, r);
    if (!reads_qkv(n) || t->stamp[r] == t->gen) return 0;
    t->stamp[r] = t->gen;
    int both = (n->deps & DEP_Q) && (n->deps & DEP_KV);
    int c = t->w == IR_NONE || both ? op_cost(n) : 0;
    for (int i = 0; i < n->nargs && c < 1000; i++) c += cost(m, t, n->args[i]);
    return c;
}

/* Whether operand a (an old node) is read from a diagonal table. */
static int hoist(IrModule *m, Toe *t, IrRef a) {
    if (a < 0 || a >= t->n0 || !t->ok[a]) return 0;
    const IrNode *n = ir_at(m, a);
    if ((n->type != T_FLOAT && n->type != T_BOOL) || !reads_qkv(n)) return 0;
    t->gen++;
    return cost(m, t, a) >= (t->w == IR_NONE ? TOEPLITZ_MIN_COST : TOEPLITZ_GRID_MIN_COST);
}

static IrRef wrap(IrModule *m, Toe *t, IrRef a) {
    if (!hoist(m, t, a)) return IR_NONE;
    int aux = t->w == IR_NONE ? DIAG_DISTANCE : DIAG_GRID;
    return ir_node(m, IR_DIAG, ir_at(m, a)->type, aux, (Const){0}, 1, &a);
}

/* A node that is not a function of kv - q reads its hoisted operands from tables. */
static IrRef use_tables(IrModule *m, IrRef old, const IrNode *n, const IrRef *new_args, void *ctx) {
    Toe *t = ctx;
    if (old >= t->n0 || t->ok[old]) return IR_NONE;
    IrRef args[16];
    if (n->nargs > 16) return IR_NONE;
    int changed = 0;
    for (int i = 0; i < n->nargs; i++) {
        IrRef w = wrap(m, t, n->args[i]);
        args[i] = w != IR_NONE ? w : new_args[i];
        changed |= w != IR_NONE;
    }
    return changed ? ir_rebuild(m, n, args) : IR_NONE;
}

static int toeplitz(IrModule *m, IrFunc *f, IrRef w) {
    Toe t = {0};
    t.q = ir_var(m, V_Q); /* separate statements: a fixed creation order keeps dumps stable */
    t.kv = ir_var(m, V_KV);
    t.w = w;
    t.n0 = m->n;
    if (m->failed) return 0;
    t.ok = calloc((size_t)t.n0 + 1, 1);
    t.stamp = calloc((size_t)t.n0 + 1, sizeof(int));
    if (!t.ok || !t.stamp) {
        free(t.ok);
        free(t.stamp);
        m->failed = 1;
        return 0;
    }
    for (IrRef r = 0; r < t.n0; r++) t.ok[r] = (unsigned char)classify(m, &t, r);
    int changed = 0;
    IrRef *roots[] = {&f->bias, &f->score, &f->weight, &f->fault};
    for (int i = 0; i < 4 && !m->failed; i++) {
        IrRef old = *roots[i];
        if (old == IR_NONE) continue;
        IrRef w = wrap(m, &t, old);
        IrRef r = w != IR_NONE ? w : ir_rewrite_root(m, old, use_tables, &t);
        changed += r != old;
        *roots[i] = r;
    }
    free(t.ok);
    free(t.stamp);
    return changed;
}

int pass_toeplitz(IrModule *m, IrFunc *f) { return toeplitz(m, f, IR_NONE); }

int pass_toeplitz_grid(IrModule *m, IrFunc *f, IrRef width) { return toeplitz(m, f, width); }
