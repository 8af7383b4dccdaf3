/* schedule_grad.h — the backward kernel's schedule (issue 12): where the
 * backward pass computes every value of the backward plan (grad_plan.h),
 * as blocks of the forward's step kinds (schedule.h), built once from the
 * GradPlan by middle/schedule_grad.c.  docs/gradients-kernel.md.
 *
 * The backward kernel's loop nest (FlashAttention-2's order; kernel_abi.h,
 * AttnGradCall):
 *
 *   item  (b, hk, kv tile)          values of the call and of (b, hk)     [item]
 *     col   (kv of the tile)        kv values                             [col; col.fault]
 *     head  (h of hk's GQA group)
 *       qtile (the q tiles the transposed tile map lists for the kv tile)
 *         row   (q of the q tile)   row values (of q and of h)            [row; row.fault]
 *         elem  (q, kv)             pre = scale * dot + bias              [pre]
 *                                   fault (calls that check faults)       [fault]
 *                                   keep (PARTIAL tiles only)             [keep]
 *                                   value, dvalue_dpre; then p, g, gpre   [value]
 *                                   per tensor term: coefficients, the
 *                                   loops of its sum chain, its indices   [term t: coef, level i, index]
 *
 * A value of kv and of the query head h is an element value here (the col
 * loop runs outside the head loop), a value of h alone a row value.  The
 * fault and keep blocks are scopes of their own (each nested in pre's), so
 * value and the terms read the same values on FULL and PARTIAL tiles. */
#ifndef ATTNC_SCHEDULE_GRAD_H
#define ATTNC_SCHEDULE_GRAD_H
#include "grad_plan.h"
#include "schedule.h"

/* One tensor term's steps (GradTerm): in `coef`, at the element scope,
 * everything that reads none of the chain's variables (dvalue, dbias, the
 * first bound, and what the inner coefficients and indices read without
 * them: hoisted); in level[i], inside the loop of sums[i]'s variable, what
 * reads it: inner[i] and the bound of level i + 1; in `index`, innermost,
 * the load's indices. */
typedef struct GradTermSched {
    SchedBlock coef;
    SchedBlock level[GRAD_MAX_CHAIN];
    SchedBlock index;
} GradTermSched;

typedef struct GradSchedule {
    /* the blocks item, row, col, row.fault, col.fault, pre, keep, fault and
     * value.full (the value block: results value and dvalue_dpre), the
     * slots and each node's loop, over the GradPlan's module (base.m);
     * base.softmax, needs_mask, needs_fault, group_by_b/h, bq, bk are the
     * forward's */
    Schedule base;
    const GradPlan *gp;
    IrRef value, dvalue_dpre;
    GradTermSched *terms; /* gp->nterms, in the plan's order */
    /* gp->nsink_terms: the sink's terms, standalone (computing every value
     * they read themselves, like schedule.h's SB_SINK), for code that runs
     * per query row (b, h, q) apart from the kernel */
    GradTermSched *sink_terms;
} GradSchedule;

/* The backward schedule of a plan whose GradPlan was built (fwd: the
 * forward's schedule, for the rules and tile sizes); NULL when out of memory.
 * base.why says why when no kernel can compute it (the steps are then empty). */
GradSchedule *sched_grad_build(Arena *arena, const GradPlan *gp, const Schedule *fwd);

/* Check gs against the rules of sched_verify (schedule_verify.c), in the
 * backward nest's scope order: 0 when it holds, 1 with why, -1 out of memory. */
int sched_verify_grad(const GradSchedule *gs, char *why, size_t why_len);

/* The "schedule (backward):" section of `emit --target ir`. */
void sched_grad_print(const GradSchedule *gs, StrBuf *out);

#endif
