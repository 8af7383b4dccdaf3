/* pass_toeplitz.c — Toeplitz hoisting: values of an element that depend on
 * (q, kv) only through the distance kv - q are computed once per distance.
 *
 * Requires: an IrFunc after the other passes (pipeline.c runs it last, and
 * only for backends that translate the diag block: PlanOptions.toeplitz).
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
 * meet.  `keep` is not rewritten (masks: the tile analysis reads them). */
#include <stdlib.h>

#include "ir_passes.h"

/* Per-element cost below which a table read is not cheaper than the value. */
enum { TOEPLITZ_MIN_COST = 6 };

typedef struct Toe {
    unsigned char *ok; /* per node (< n0): a function of kv - q and item values */
    int *stamp;        /* per node: cost walk visit mark */
    int n0, gen;
    IrRef q, kv;
} Toe;

static int reads_qkv(const IrNode *n) { return (n->deps & (DEP_Q | DEP_KV)) != 0; }

/* Whether node r (whose operands are classified) is a function of kv - q. */
static int classify(const IrModule *m, const Toe *t, IrRef r) {
    const IrNode *n = ir_at(m, r);
    if (n->deps & (DEP_PRE | DEP_SUMVAR)) return 0;
    if (n->op == IR_SUM || n->op == IR_ANY || n->op == IR_PRE || n->op == IR_SUMVAR || n->op == IR_DIAG) return 0;
    if (!reads_qkv(n)) return 1;
    if (n->op == IR_VAR) return 0; /* q or kv alone */
    if (n->op == IR_SUB && n->type == T_INT &&
        ((n->args[0] == t->kv && n->args[1] == t->q) || (n->args[0] == t->q && n->args[1] == t->kv)))
        return 1;
    for (int i = 0; i < n->nargs; i++)
        if (!t->ok[n->args[i]]) return 0;
    return 1;
}

static int op_cost(const IrNode *n) {
    switch (n->op) {
    case IR_LOAD: return 4; /* a gather in vector lanes */
    case IR_CALL: return 8; /* log, exp, tanh ...: a polynomial */
    case IR_DIV:
    case IR_MOD: return 4;
    case IR_VAR: return 0; /* q and kv themselves */
    default: return 1;
    }
}

/* What node r costs per element: its operations that read q or kv, each once. */
static int cost(const IrModule *m, Toe *t, IrRef r) {
    const IrNode *n = ir_at(m, r);
    if (!reads_qkv(n) || t->stamp[r] == t->gen) return 0;
    t->stamp[r] = t->gen;
    int c = op_cost(n);
    for (int i = 0; i < n->nargs && c < 1000; i++) c += cost(m, t, n->args[i]);
    return c;
}

/* Whether operand a (an old node) is read from a diagonal table. */
static int hoist(IrModule *m, Toe *t, IrRef a) {
    if (a < 0 || a >= t->n0 || !t->ok[a]) return 0;
    const IrNode *n = ir_at(m, a);
    if ((n->type != T_FLOAT && n->type != T_BOOL) || !reads_qkv(n)) return 0;
    t->gen++;
    return cost(m, t, a) >= TOEPLITZ_MIN_COST;
}

static IrRef wrap(IrModule *m, Toe *t, IrRef a) {
    return hoist(m, t, a) ? ir_op1(m, IR_DIAG, ir_at(m, a)->type, a) : IR_NONE;
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

int pass_toeplitz(IrModule *m, IrFunc *f) {
    Toe t = {0};
    t.q = ir_var(m, V_Q); /* separate statements: a fixed creation order keeps dumps stable */
    t.kv = ir_var(m, V_KV);
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
