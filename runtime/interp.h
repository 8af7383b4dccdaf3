/* interp.h — the reference interpreter: evaluates a checked attention
 * exactly as the spec's sections 1 and 5 say, in float64, one (q, kv) pair at
 * a time.  It is the oracle every backend is tested against, so it stays
 * simple: no tiling, no reordering, no cleverness. */
#ifndef ATTNC_INTERP_H
#define ATTNC_INTERP_H
#include "call.h"
#include "status.h"

typedef struct InterpRows InterpRows; /* interp.c: Q and K rows after rotary (version 2) */

/* Where an expression is evaluated: the element and its score. */
typedef struct InterpEnv {
    const BoundCall *bc;
    int64_t b, h, q, kv, hk;
    double score;
    int64_t sums[SEMA_MAX_EVAL_DEPTH + 64]; /* sum variables: deeper nesting is refused by sema */
    int sum_base, sum_top;
    /* Set for expressions of sizes and params only (defaults, dimensions,
     * scale): errors name no element, and since they are evaluated before
     * tile_check_work can bound them, their sums get a budget of iterations. */
    int call_level;
    int64_t sums_left;
    int failed;
    char *msg;
    size_t msgsize;
    InterpRows *rows; /* for dot(Q, ...) / dot(K, ...): NULL outside an element of the forward */
} InterpEnv;

/* Evaluate e in env; on a runtime error sets env->failed and env->msg. */
Const interp_eval(InterpEnv *env, const TExpr *e);

/* The flat offset of the float or int tensor element e (an X_INDEX) reads,
 * its indices evaluated in env and checked: 0 with env->failed set (the
 * message naming the index, as the forward reports it) when one is out of
 * range.  The reference backward (interp_grad.c) reads tensors through it. */
int interp_tensor_offset(InterpEnv *env, const TExpr *e, int64_t *offset);

/* Q and K rows after rotary (spec 9.2, 9.3), computed when first used, for
 * an evaluation that reads them (env->rows): the reference backward
 * (interp_grad.c) reads the rows the forward reads through these.  NULL when
 * out of memory. */
InterpRows *interp_rows_new(const BoundCall *bc, const void *q, const void *k);
void interp_rows_free(InterpRows *rows); /* NULL: nothing */
void interp_rows_next_query(InterpRows *rows); /* env's (b, h, q) changed */
/* The (rotated) Q row of env's (b, h, q), the K row of its (b, hk, kv), in
 * float64 (D values); NULL after a runtime error of a position. */
const double *interp_q_row(InterpEnv *env);
const double *interp_k_row(InterpEnv *env);
/* x (D values) rotated as a row at position pos (-pos: the inverse rotation). */
void interp_rotate(const BoundCall *bc, double *x, int64_t pos);

/* The masks of element (b, h, q, kv) evaluated as a run evaluates them (in
 * order, lazily; they read no Q or K): 1 kept, 0 not, -1 when one raises a
 * runtime error (err gets the message a run would give). */
int interp_masks_at(const BoundCall *bc, int64_t b, int64_t h, int64_t q, int64_t kv, attnc_error *err);

/* Run the attention on bound inputs, writing O (and LSE when not NULL) only
 * on success.  Q, K, V, O and LSE are laid out as bc->layout says (element
 * types and strides; the pointers at element [0, 0, 0, 0]).  O NULL: only
 * look for the runtime error (the launcher's fault path wants the message). */
attnc_status interp_run(const BoundCall *bc, const void *q, const void *k, const void *v, void *o, float *lse,
                        attnc_error *err);

/* The same, O ([B, H, Lq, Dv]) and LSE ([B, H, Lq]) written contiguous in
 * float64 without rounding (both required; partly written on an error): the
 * finite-difference test of the backward differentiates this. */
attnc_status interp_run_f64(const BoundCall *bc, const void *q, const void *k, const void *v, double *o,
                            double *lse, attnc_error *err);

#endif
