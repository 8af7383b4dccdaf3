/* pass_mask_facts.c — what the masks imply, used where they hold.
 * Requires: an IrFunc.  Produces: bias, score and weight roots (evaluated
 * only for kept elements) where abs(q - kv) and abs(kv - q) are replaced by
 * the signed difference when a top-level mask conjunct fixes its sign
 * (kv <= q, kv < q: causal and windows; q <= kv, q < kv: anti-causal).
 * This is what makes ALiBi under a causal mask separable in q and kv. */
#include "ir_passes.h"

typedef struct Facts {
    int kv_le_q, q_le_kv;
    IrRef q, kv;
} Facts;

static void gather(IrModule *m, IrRef r, Facts *fx) {
    if (r == IR_NONE) return; /* a module out of memory */
    const IrNode *n = ir_at(m, r);
    if (n->op == IR_AND) {
        gather(m, n->args[0], fx);
        gather(m, n->args[1], fx);
    } else if (n->op == IR_LE || n->op == IR_LT) {
        if (n->args[0] == fx->kv && n->args[1] == fx->q) fx->kv_le_q = 1;
        if (n->args[0] == fx->q && n->args[1] == fx->kv) fx->q_le_kv = 1;
    }
}

static IrRef use_facts(IrModule *m, IrRef old, const IrNode *n, const IrRef *a, void *ctx) {
    (void)old;
    const Facts *fx = ctx;
    if (n->op != IR_ABS || n->type != T_INT) return IR_NONE;
    const IrNode *d = ir_at(m, a[0]);
    if (d->op != IR_SUB) return IR_NONE;
    int q_minus_kv = d->args[0] == fx->q && d->args[1] == fx->kv;
    int kv_minus_q = d->args[0] == fx->kv && d->args[1] == fx->q;
    if (!q_minus_kv && !kv_minus_q) return IR_NONE;
    if (fx->kv_le_q) return ir_op2(m, IR_SUB, T_INT, fx->q, fx->kv);
    if (fx->q_le_kv) return ir_op2(m, IR_SUB, T_INT, fx->kv, fx->q);
    return IR_NONE;
}

int pass_mask_facts(IrModule *m, IrFunc *f) {
    Facts fx = {0};
    fx.q = ir_var(m, V_Q); /* separate statements: a fixed creation order keeps dumps stable */
    fx.kv = ir_var(m, V_KV);
    gather(m, f->keep, &fx);
    if (!fx.kv_le_q && !fx.q_le_kv) return 0;
    int changed = 0;
    IrRef *roots[] = {&f->bias, &f->score, &f->weight};
    for (int i = 0; i < 3; i++) {
        if (*roots[i] == IR_NONE) continue;
        IrRef r = ir_rewrite_root(m, *roots[i], use_facts, &fx);
        changed += r != *roots[i];
        *roots[i] = r;
    }
    return changed;
}
