/* pass_lowrank.c — low-rank bias terms become extra Q/K columns (FlashBias).
 * Requires: an IrFunc after folding (and mask-facts, for the separable form).
 * Produces: bias terms of the form
 *     sum(r < R) f(q, r) * g(kv, r)      (R over sizes and params)
 * where f does not read kv and g does not read q, removed from `bias` and
 * recorded as low-rank groups (count R, q-side f, k-side g, with r as
 * IR_SUMVAR level 0); also such a sum times or divided by a factor per
 * head, the factor moved into f.  The kernel appends R columns f to each Q row and g
 * to each K row, so the term rides inside the QK product.
 *
 * With `separable` (off by default), also terms  a * float(x - y)  with a
 * per head or call, x per row and y per kv — ALiBi, decay and KERPLE-style
 * biases once mask-facts removed their abs() — become two rank-1 groups,
 * [a * float(x)] . [1] and [a] . [-float(y)].  Off by default because in
 * float32 each part grows with the position (a * 16384 at long contexts)
 * while their sum near the diagonal is small: scores would lose about three
 * digits.  Products without a sum are otherwise left alone: they cost one
 * multiply per element. */
#include "ir_passes.h"

enum { MAX_TERMS = 64 };

static int per_row(const IrNode *n) { return !(n->deps & (DEP_KV | DEP_PRE)); }
static int per_col(const IrNode *n) { return !(n->deps & (DEP_Q | DEP_PRE)); }
static int per_head(const IrNode *n) { return !(n->deps & (DEP_Q | DEP_KV | DEP_PRE | DEP_SUMVAR)); }
/* A column count is a value of the work item: it may vary with the kv head,
 * not with the query head (a packed work item's rows are of several heads). */
static int per_item(const IrNode *n) { return per_head(n) && !(n->deps & DEP_H); }

/* Append group (count, fq, gk); 0 when out of memory. */
static int add_group(IrModule *m, IrFunc *f, IrRef count, IrRef fq, IrRef gk) {
    int n = f->nlowrank + 1;
    IrRef *arrays = arena_alloc(m->arena, sizeof(IrRef) * (size_t)n * 3);
    if (!arrays) return 0;
    for (int g = 0; g < f->nlowrank; g++) {
        arrays[g] = f->lowrank_count[g];
        arrays[n + g] = f->lowrank_q[g];
        arrays[2 * n + g] = f->lowrank_k[g];
    }
    arrays[n - 1] = count;
    arrays[2 * n - 1] = fq;
    arrays[3 * n - 1] = gk;
    f->lowrank_count = arrays;
    f->lowrank_q = arrays + n;
    f->lowrank_k = arrays + 2 * n;
    f->nlowrank = n;
    return 1;
}

/* A sum at level 0 whose body is f * g split along q and kv. */
static int split_sum(IrModule *m, IrRef t, IrRef *count, IrRef *fq, IrRef *gk) {
    const IrNode *s = ir_at(m, t);
    if (s->op != IR_SUM || s->type != T_FLOAT || s->aux != 0) return 0;
    const IrNode *body = ir_at(m, s->args[1]);
    if (body->op != IR_MUL) return 0;
    const IrNode *x = ir_at(m, body->args[0]), *y = ir_at(m, body->args[1]);
    /* the sum variable may only be level 0: nothing else inside reads an outer one */
    if ((x->sumvars | y->sumvars) & ~1u) return 0;
    if (!per_item(ir_at(m, s->args[0]))) return 0;
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

/* c * s, s * c or s / c with s a sum split_sum takes and c per head: the
 * group of s with c folded into its q side (dot(Q, K) / sqrt(D), 0.5 *
 * dot(A[q], B[kv]): spec 9.2's dots become such sums, rows_table.c). */
static int split_scaled_sum(IrModule *m, IrRef t, IrRef *count, IrRef *fq, IrRef *gk) {
    const IrNode *n = ir_at(m, t);
    if ((n->op != IR_MUL && n->op != IR_DIV) || n->type != T_FLOAT) return 0;
    for (int side = 0; side < (n->op == IR_MUL ? 2 : 1); side++) {
        IrRef s = n->args[side], c = n->args[1 - side];
        if (!per_head(ir_at(m, c)) || !split_sum(m, s, count, fq, gk)) continue;
        *fq = ir_op2(m, n->op, T_FLOAT, n->op == IR_MUL ? c : *fq, n->op == IR_MUL ? *fq : c);
        return 1;
    }
    return 0;
}

/* a * float(x - y) with a per head, x per row, y per kv (either factor order). */
static int split_separable(IrModule *m, IrRef t, IrRef *a, IrRef *x, IrRef *y) {
    const IrNode *mul = ir_at(m, t);
    if (mul->op != IR_MUL || mul->type != T_FLOAT) return 0;
    for (int side = 0; side < 2; side++) {
        const IrNode *coef = ir_at(m, mul->args[side]), *conv = ir_at(m, mul->args[1 - side]);
        if (!per_head(coef) || conv->op != IR_TOFLOAT) continue;
        const IrNode *diff = ir_at(m, conv->args[0]);
        if (diff->op != IR_SUB) continue;
        const IrNode *l = ir_at(m, diff->args[0]), *r = ir_at(m, diff->args[1]);
        if ((l->deps & DEP_SUMVAR) || (r->deps & DEP_SUMVAR)) continue;
        if (per_row(l) && per_col(r)) {
            *a = mul->args[side];
            *x = diff->args[0];
            *y = diff->args[1];
            return 1;
        }
    }
    return 0;
}

int pass_lowrank(IrModule *m, IrFunc *f, int separable) {
    IrRef terms[MAX_TERMS];
    int n = ir_terms(m, f->bias, terms, MAX_TERMS);
    if (n <= 0) return 0;
    IrRef rest = IR_NONE;
    int found = 0;
    for (int i = 0; i < n; i++) {
        IrRef count, fq, gk, a, x, y, t = terms[i];
        int negated = ir_at(m, t)->op == IR_NEG;
        IrRef inner = negated ? ir_at(m, t)->args[0] : t;
        if (split_sum(m, inner, &count, &fq, &gk) || split_scaled_sum(m, inner, &count, &fq, &gk)) {
            if (negated) fq = ir_op1(m, IR_NEG, T_FLOAT, fq);
            if (!add_group(m, f, count, fq, gk)) return 0;
            found++;
            continue;
        }
        if (separable && split_separable(m, inner, &a, &x, &y)) {
            /* a * (x - y) = [a * x] . [1] + [a] . [-y]; a negated term negates a */
            if (negated) a = ir_op1(m, IR_NEG, T_FLOAT, a);
            IrRef one = ir_int(m, 1);
            IrRef fx = ir_op1(m, IR_TOFLOAT, T_FLOAT, x);
            IrRef ax = ir_op2(m, IR_MUL, T_FLOAT, a, fx);
            IrRef fy = ir_op1(m, IR_TOFLOAT, T_FLOAT, y);
            IrRef minus_y = ir_op1(m, IR_NEG, T_FLOAT, fy);
            if (f->weight == IR_NONE && ir_at(m, f->score)->op == IR_PRE) {
                /* plain softmax: the per-row part only shifts LSE */
                f->lse_offset = f->lse_offset == IR_NONE ? ax : ir_op2(m, IR_ADD, T_FLOAT, f->lse_offset, ax);
            } else {
                IrRef unit = ir_float(m, 1.0);
                if (!add_group(m, f, one, ax, unit)) return 0;
            }
            if (!add_group(m, f, one, a, minus_y)) return 0;
            found++;
            continue;
        }
        rest = rest == IR_NONE ? t : ir_op2(m, IR_ADD, T_FLOAT, rest, t);
    }
    if (!found) return 0;
    f->bias = rest == IR_NONE ? ir_float(m, 0.0) : rest;
    return found;
}
