/* pass_lowrank.c — low-rank bias terms become extra Q/K columns (FlashBias).
 * Requires: an IrFunc after folding.
 * Produces: bias terms of the form
 *     sum(r < R) f(q, r) * g(kv, r)      (R over sizes and params)
 * where f does not read kv and g does not read q, removed from `bias` and
 * recorded as low-rank groups (count R, q-side f, k-side g, with r as
 * IR_SUMVAR level 0).  The kernel appends R columns f to each Q row and g
 * to each K row, so the term rides inside the QK product.  Products of one
 * per-row and one per-kv factor without a sum are left as they are: they
 * cost a multiply per element, and folding large position values into the
 * product would cost float32 accuracy. */
#include "ir_passes.h"

enum { MAX_TERMS = 64 };

static int per_row(const IrNode *n) { return !(n->deps & (DEP_KV | DEP_PRE)); }
static int per_col(const IrNode *n) { return !(n->deps & (DEP_Q | DEP_PRE)); }

/* A sum at level 0 whose body is f * g split along q and kv. */
static int split_sum(IrModule *m, IrRef t, IrRef *count, IrRef *fq, IrRef *gk) {
    const IrNode *s = ir_at(m, t);
    if (s->op != IR_SUM || s->type != T_FLOAT || s->aux != 0) return 0;
    const IrNode *body = ir_at(m, s->args[1]);
    if (body->op != IR_MUL) return 0;
    const IrNode *x = ir_at(m, body->args[0]), *y = ir_at(m, body->args[1]);
    /* the sum variable may only be level 0: nothing else inside reads an outer one */
    if ((x->sumvars | y->sumvars) & ~1u) return 0;
    if (per_row(x) && per_col(y)) {
        *fq = body->args[0];
        *gk = body->args[1];
    } else if (per_row(y) && per_col(x)) {
        *fq = body->args[1];
        *gk = body->args[0];
    } else {
        return 0;
    }
    *count = s->args[0];
    return 1;
}

int pass_lowrank(IrModule *m, IrFunc *f) {
    IrRef terms[MAX_TERMS];
    int n = ir_terms(m, f->bias, terms, MAX_TERMS);
    if (n <= 0) return 0;
    IrRef rest = IR_NONE;
    int found = 0;
    for (int i = 0; i < n; i++) {
        IrRef count, fq, gk, t = terms[i];
        int negated = ir_at(m, t)->op == IR_NEG;
        if (split_sum(m, negated ? ir_at(m, t)->args[0] : t, &count, &fq, &gk)) {
            IrRef *c = arena_alloc(m->arena, sizeof(IrRef) * (size_t)(f->nlowrank + 1) * 3);
            if (!c) return 0;
            for (int g = 0; g < f->nlowrank; g++) {
                c[3 * g] = f->lowrank_count[g];
                c[3 * g + 1] = f->lowrank_q[g];
                c[3 * g + 2] = f->lowrank_k[g];
            }
            c[3 * f->nlowrank] = count;
            c[3 * f->nlowrank + 1] = negated ? ir_op1(m, IR_NEG, T_FLOAT, fq) : fq;
            c[3 * f->nlowrank + 2] = gk;
            f->nlowrank++;
            /* three parallel arrays, views into one allocation */
            IrRef *counts = arena_alloc(m->arena, sizeof(IrRef) * (size_t)f->nlowrank * 3);
            if (!counts) return 0;
            for (int g = 0; g < f->nlowrank; g++) {
                counts[g] = c[3 * g];
                counts[f->nlowrank + g] = c[3 * g + 1];
                counts[2 * f->nlowrank + g] = c[3 * g + 2];
            }
            f->lowrank_count = counts;
            f->lowrank_q = counts + f->nlowrank;
            f->lowrank_k = counts + 2 * f->nlowrank;
            found++;
            continue;
        }
        rest = rest == IR_NONE ? t : ir_op2(m, IR_ADD, T_FLOAT, rest, t);
    }
    if (!found) return 0;
    f->bias = rest == IR_NONE ? ir_float(m, 0.0) : rest;
    return found;
}
