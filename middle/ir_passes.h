/* ir_passes.h — the middle end's passes, in the order pipeline.c runs them,
 * and the scalar evaluator they share. */
#ifndef ATTNC_IR_PASSES_H
#define ATTNC_IR_PASSES_H
#include "attnc.h"
#include "ir.h"

/* ir_build.c: the roots of a checked attention. */
IrFunc *ir_build(IrModule *m, const Attention *a);

/* pass_specialize.c: params fixed at compile time become constants.
 * is_fixed/value are indexed by param index; returns roots changed. */
int pass_specialize(IrModule *m, IrFunc *f, const int *is_fixed, const Const *value);

/* pass_fold.c: constant folding and algebraic simplification. */
int pass_fold(IrModule *m, IrFunc *f);
/* The node (op, type, aux, args) simplified by the same rules, built only when
 * no simpler equivalent exists (derive.c builds its derivatives through it). */
IrRef ir_fold(IrModule *m, IrOp op, Type type, int aux, int nargs, const IrRef *args);

/* pass_mask_facts.c: inside kept elements, what the masks imply
 * (kv <= q makes abs(q - kv) = q - kv). */
int pass_mask_facts(IrModule *m, IrFunc *f);

/* pass_softmax.c: bias terms constant along kv leave softmax unchanged:
 * move them to lse_offset (only when no score clause or weight follows). */
int pass_softmax_invariant(IrModule *m, IrFunc *f);

/* pass_lowrank.c: sum(r < R) f(q, r) * g(kv, r) becomes extra Q/K columns
 * (FlashBias); with `separable`, so does a * float(x(q) - y(kv)). */
int pass_lowrank(IrModule *m, IrFunc *f, int separable);

/* pass_recip.c: a float division by a value of a coarser loop (or a
 * constant) becomes a multiplication by its reciprocal. */
int pass_reciprocal(IrModule *m, IrFunc *f);

/* pass_band.c: each query row's band of keys, [*lo, *hi] (int nodes of the
 * row loop), outside which keep is false; 1 when the masks bound kv, else 0
 * with both IR_NONE.  Changes no root. */
int pass_band(IrModule *m, const IrFunc *f, IrRef *lo, IrRef *hi);

/* pass_toeplitz.c: bias/score/weight subexpressions that depend on (q, kv)
 * only through kv - q (and cost enough) become IR_DIAG nodes, computed once
 * per distance by the schedule's diag block. */
int pass_toeplitz(IrModule *m, IrFunc *f);
/* The same over a grid `width` wide (an int node of the call): subexpressions
 * that depend on (q, kv) only through their cells' row and column offsets
 * become IR_DIAG nodes of aux DIAG_GRID, for the block-order plan
 * (pass_grid.c runs it on the original rows, before its substitution). */
int pass_toeplitz_grid(IrModule *m, IrFunc *f, IrRef width);

/* derive.c: *out = d root / d var, as nodes of m (spec 9.5's rules, see
 * there), simplified as built.  var: IR_PRE, a float IR_LOAD, or an IR_SUM
 * taken as an independent value; a sum whose body reads var must not bind a
 * variable var reads.  An operation without a rule fails (ATTNC_ERR_INTERNAL,
 * naming it); out of memory gives ATTNC_ERR_NOMEM. */
attnc_status ir_derive(IrModule *m, IrRef root, IrRef var, IrRef *out, attnc_error *err);

/* ---- ir_eval.c ---------------------------------------------------------- */

/* The one definition of each operation on constants, shared by folding, the
 * IR evaluator and interval analysis (for singletons).  Total: int x/0 = 0. */
Const ir_apply(IrOp op, Type type, int aux, const Const *a, const Type *arg_types);

/* Scalar evaluation of IR nodes for one element, in float64 like the
 * reference interpreter. */
typedef struct IrEval {
    const IrModule *m;
    attnc_sizes sz;
    const Const *params;
    const attnc_tensor *const *tensors;
    const int64_t (*dims)[ATTNC_MAX_RANK]; /* tensor shapes */
    int64_t b, h, q, kv, hk;
    double pre; /* what IR_PRE reads: the caller computes scale * dot + bias + low-rank terms */
    int64_t sumvar[64];
    Const *memo;        /* per node, valid where stamp == gen */
    unsigned *stamp;
    unsigned gen;
} IrEval;

/* Prepare an evaluator (memo arrays malloc'd); 0 when out of memory. */
int ir_eval_init(IrEval *ev, const IrModule *m);
void ir_eval_free(IrEval *ev);
/* Start a new element: forget memoised values. */
void ir_eval_reset(IrEval *ev);
Const ir_eval(IrEval *ev, IrRef r);
/* The value of node r (not IR_SUM / IR_ANY) from its operands' values a[0..nargs), leaves and loads reading ev's context (memo unused). */
Const ir_eval_node(const IrEval *ev, IrRef r, const Const *a);

#endif
