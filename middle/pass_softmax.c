/* pass_softmax.c — softmax-invariant bias terms.
 * Requires: an IrFunc after folding.
 * Produces: when the score is the plain pre-score (no score clause) and
 * there is no weight, bias terms that do not vary along kv are removed from
 * `bias` and added to `lse_offset`: softmax(s + c) = softmax(s) for a
 * per-row c, and LSE just shifts by c.  The kernel then skips them per
 * element and adds lse_offset once per row.  A non-finite offset makes the
 * row non-finite; backends handle it per row (see plan.h). */
#include "ir_passes.h"

enum { MAX_TERMS = 64 };

int pass_softmax_invariant(IrModule *m, IrFunc *f) {
    if (f->weight != IR_NONE || ir_at(m, f->score)->op != IR_PRE) return 0;
    IrRef terms[MAX_TERMS];
    int n = ir_terms(m, f->bias, terms, MAX_TERMS);
    if (n <= 0) return 0;
    IrRef keep = IR_NONE, moved = IR_NONE;
    for (int i = 0; i < n; i++) {
        const IrNode *t = ir_at(m, terms[i]);
        if (t->op == IR_CONST && t->c.f == 0.0) continue;
        int deps = t->deps;
        int row_constant = !(deps & (DEP_KV | DEP_PRE | DEP_SUMVAR));
        IrRef *acc = row_constant ? &moved : &keep;
        *acc = *acc == IR_NONE ? terms[i] : ir_op2(m, IR_ADD, T_FLOAT, *acc, terms[i]);
    }
    if (moved == IR_NONE) return 0;
    f->bias = keep == IR_NONE ? ir_float(m, 0.0) : keep;
    f->lse_offset = f->lse_offset == IR_NONE ? moved : ir_op2(m, IR_ADD, T_FLOAT, f->lse_offset, moved);
    return 1;
}
