/* grad_eval.c — the scalar evaluator of a backward plan's tensor terms
 * (grad_plan.h): one element's contributions scatter-added into double
 * gradient buffers, looping over the sums of each term's chain.
 * Requires: a GradPlan and an IrEval of its module set to the element.
 * Produces: additions into the caller's buffers; nothing else changes
 * (the sum variables it sets are restored). */
#include "grad_plan.h"

/* Where the contributions go: double or float32 buffers. */
typedef struct Sink {
    double *d;
    float *f;
} Sink;

/* dT[indices of t's load at the current sum variables] += c, when they are in range. */
static void scatter(const GradTerm *t, IrEval *ev, double c, Sink grad) {
    const IrNode *load = ir_at(ev->m, t->load);
    const int64_t *dims = ev->dims[t->tensor];
    int64_t off = 0;
    for (int k = 0; k < load->nargs; k++) {
        int64_t i = ir_eval(ev, load->args[k]).i;
        if (i < 0 || i >= dims[k]) return; /* a load out of range reads 0 and has no element to blame */
        off = off * dims[k] + i;
    }
    if (grad.d) grad.d[off] += c;
    else grad.f[off] += (float)c;
}

/* Level `depth` of t's chain with the product c of the coefficients outside it. */
static void chain(const GradTerm *t, IrEval *ev, int depth, double c, Sink grad) {
    if (depth == t->nsums) {
        scatter(t, ev, c, grad);
        return;
    }
    const IrNode *s = ir_at(ev->m, t->sums[depth]);
    int64_t bound = ir_eval(ev, s->args[0]).i;
    int64_t saved = ev->sumvar[s->aux];
    for (int64_t r = 0; r < bound; r++) {
        ev->sumvar[s->aux] = r;
        double k = ir_eval(ev, t->inner[depth]).f;
        if (k != 0) chain(t, ev, depth + 1, c * k, grad);
    }
    ev->sumvar[s->aux] = saved;
}

static void scatter_all(const GradPlan *gp, IrEval *ev, double g, double gpre, double *const *dgrad,
                        float *const *fgrad) {
    for (int i = 0; i < gp->nterms; i++) {
        const GradTerm *t = &gp->terms[i];
        Sink sink = {dgrad ? dgrad[t->tensor] : NULL, fgrad ? fgrad[t->tensor] : NULL};
        if (!sink.d && !sink.f) continue;
        /* a zero coefficient contributes nothing, even against an infinite seed (autograd's where()) */
        double kv = ir_eval(ev, t->dvalue).f, kb = ir_eval(ev, t->dbias).f;
        double c = (kv != 0 ? g * kv : 0.0) + (kb != 0 ? gpre * kb : 0.0);
        if (c != 0) chain(t, ev, 0, c, sink);
    }
}

void grad_eval_scatter(const GradPlan *gp, IrEval *ev, double g, double gpre, double *const *grad) {
    scatter_all(gp, ev, g, gpre, grad, NULL);
}

void grad_eval_scatter_f32(const GradPlan *gp, IrEval *ev, double g, double gpre, float *const *grad) {
    scatter_all(gp, ev, g, gpre, NULL, grad);
}
