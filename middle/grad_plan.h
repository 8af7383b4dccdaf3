/* grad_plan.h — the backward plan: the per-element derivatives every
 * backward pass translates (issue 12; the math is spec 9.5).
 *
 * For one element (b, h, q, kv) that the masks keep, the backward knows the
 * seed g = dL/d value (value: the score for softmax, the weight clause
 * otherwise; see docs/gradients-ir.md for g) and needs
 *
 *   gpre = g * dvalue_dpre                      -> dQ, dK through pre
 *   for every term t, at t's element T[i] of its float tensor:
 *     dT[i] += g * dvalue + gpre * dbias         (no enclosing sum)
 *
 * where pre = scale * dot + bias with the WHOLE bias: the plan is built by
 * its own pipeline (build, specialize, fold, mask-facts, fold), without the
 * forward's softmax-invariant and low-rank rewrites, which move bias terms
 * out of `bias` (their tensors still have gradients).
 *
 * A term whose load reads sum variables (a low-rank factor U[b, h, q, r]
 * inside sum(r < R) ...) is scattered once per iteration of the sums that
 * bind them, given as a chain sums[0..nsums) (outermost first):
 *
 *   c0 = g * dvalue + gpre * dbias                  d root / d sums[0]
 *   for r0 < bound(sums[0]):  c1 = c0 * inner[0]    (inner[0] reads r0)
 *     for r1 < bound(sums[1]):  c2 = c1 * inner[1]  (reads r0, r1)
 *       ...   dT[indices of load at (r0, r1, ...)] += c_nsums
 *
 * inner[i] is d body(sums[i]) / d sums[i+1], and for the last level
 * d body / d load.  IR_SUMVAR of level ir_at(sums[i])->aux is the loop
 * variable ri; a bound reads the variables of the enclosing levels only.
 * Loads that read no sum variable have nsums == 0 (their dvalue/dbias
 * already include every path through sums, as a SUM node of derivatives).
 * A tensor may have several terms (several loads, or one load in several
 * sums); their contributions add.  Coefficients that are 0 for an element
 * contribute nothing (the load on the branch a select did not take may be
 * out of range: a backward must skip it, not index with it).
 * grad_eval.c is the scalar evaluator of all this. */
#ifndef ATTNC_GRAD_PLAN_H
#define ATTNC_GRAD_PLAN_H
#include "ir_passes.h"
#include "status.h"
#include "strbuf.h"

enum { GRAD_MAX_CHAIN = 8 }; /* sums nested around one tensor read */

typedef struct GradTerm {
    int tensor;          /* index in the attention's tensors (a float tensor) */
    IrRef load;          /* its IR_LOAD node: the args are the indices to scatter to */
    IrRef dvalue, dbias; /* coefficients of g and gpre: d value and d bias by sums[0] (or load); read no sum variable */
    int nsums;
    IrRef sums[GRAD_MAX_CHAIN];  /* the IR_SUM nodes, outermost first */
    IrRef inner[GRAD_MAX_CHAIN]; /* inner[i]: d body(sums[i]) / d sums[i + 1], the last: / d load */
} GradTerm;

typedef struct GradPlan {
    IrModule *ir;      /* its own module, the nodes of everything below */
    IrFunc *f;         /* keep, scale, bias (every bias clause), score, weight, fault; no lse_offset, no low-rank */
    IrRef value;       /* f->weight, or f->score for softmax */
    IrRef dvalue_dpre; /* d value / d IR_PRE */
    int nterms;
    GradTerm *terms;   /* in node order of their loads */
    /* A sink (spec 9.4): its row's seed is gs = dL/dsink = P_sink (dLSE - Delta);
     * each term scatters gs * dvalue (d sink / d load; dbias is 0) like the
     * terms above.  None without a sink or when the sink reads no float tensor.
     * Only code that runs the sink's backward itself needs them (ahead-of-time
     * C; the library asks its interpreter): when they cannot be built,
     * sink_error says why and the rest of the plan stands. */
    int nsink_terms;
    GradTerm *sink_terms;
    const char *sink_error;
} GradPlan;

/* Build the backward plan of a checked attention; params fixed at compile
 * time (is_fixed/fixed by param index, or NULL) are constants.  A root the
 * derivation cannot handle fails with ATTNC_ERR_INTERNAL and a message. */
attnc_status grad_plan_build(Arena *arena, const Attention *a, const int *is_fixed, const Const *fixed,
                             GradPlan **out, attnc_error *err);

/* The "backward:" section of `emit --target ir`. */
void grad_plan_print(const GradPlan *gp, StrBuf *out);

/* grad_eval.c: one element's tensor gradients.  ev: an evaluator of gp->ir
 * set to the element (b, h, hk, q, kv, sizes, params, tensors, dims, and
 * pre = scale * dot + bias), reset for it.  Adds every term's contribution
 * for seeds g and gpre into grad[t] (double, tensor t's elements row-major;
 * NULL: not wanted), looping over the sums of the chains. */
void grad_eval_scatter(const GradPlan *gp, IrEval *ev, double g, double gpre, double *const *grad);
/* The same into float32 buffers (each contribution rounded once as it is added). */
void grad_eval_scatter_f32(const GradPlan *gp, IrEval *ev, double g, double gpre, float *const *grad);

#endif
