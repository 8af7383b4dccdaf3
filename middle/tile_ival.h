/* tile_ival.h — the interval analysis of the IR for one call, shared by
 * tile classification (middle/tiles.c, which defines it), the call's
 * work bound (middle/tile_work.c) and the columns of the tables of Q rows
 * a work item reads (middle/tile_table.c).
 * Requires: a Plan and the call's BoundCall (plan.h); a tensor whose data
 * is NULL has unknown values (a table made per work item, rows_table.h).
 * Produces: an interval of the values node r can take when the variables
 * lie in an->vars and the sum variables in an->sumvar.  Internal to middle/tile*.c. */
#ifndef ATTNC_TILE_IVAL_H
#define ATTNC_TILE_IVAL_H
#include "ir_passes.h"
#include "plan.h"

/* An interval of ints, floats or bools (bools as 0..1). */
typedef struct Ival {
    int64_t lo, hi; /* ints and bools */
    double flo, fhi; /* floats; NaN possible when nan */
    int nan;
} Ival;

static inline Ival ival_int(int64_t lo, int64_t hi) { return (Ival){lo, hi, 0, 0, 0}; }

/* Range min/max of a 1-D int tensor in O(1) per query. */
typedef struct SparseTable {
    int levels;
    int64_t n;
    int32_t **mn, **mx;
} SparseTable;

typedef struct TensorSummary {
    int64_t dims[ATTNC_MAX_RANK];
    int rank;
    double gmin, gmax; /* over the whole tensor (0, 0 when empty) */
    SparseTable st;    /* 1-D int tensors */
} TensorSummary;

typedef struct Analysis {
    const Plan *p;
    const BoundCall *bc;
    TensorSummary *ts;
    Ival *memo;
    unsigned *stamp, gen;
    Ival vars[V_COUNT];
    Ival sumvar[64];
    int64_t evaluations;
} Analysis;

/* The interval of node r under an's variables (memoised per generation for
 * nodes that read no sum variable). */
Ival ival_eval(Analysis *an, IrRef r);

/* Forget the memoised intervals: call it after changing an->vars. */
void ival_new_generation(Analysis *an);

/* Start an analysis of p for the call bc: the summaries of its tensors, an
 * empty memo, the size variables set; the other variables are the caller's
 * to set.  0 when out of memory; ival_analysis_free it whatever the result. */
int ival_analysis_init(Analysis *an, const Plan *p, const BoundCall *bc);

/* Free what ival_analysis_init allocated. */
void ival_analysis_free(Analysis *an);

/* b, h and hk of the analysis: exact for the map's group of (b, h) where the
 * masks vary with them (Plan.mask_varies_b/h), else over every value. */
void ival_set_element_vars(Analysis *an, int64_t b, int64_t h);

/* An evaluator of p's IR for the call bc (sizes, params, tensors and their
 * shapes in *dims, which the caller frees after ir_eval_free); the element's
 * variables are the caller's to set.  0 when out of memory. */
int tile_mask_eval_init(const Plan *p, const BoundCall *bc, IrEval *ev, int64_t (**dims)[ATTNC_MAX_RANK]);

/* Whether the masks keep the element ev is at (its b, h, q, kv set): the
 * plan's `keep`, or where `fault` is true the hook's answer; -1 when the
 * hook reports a mask's runtime error. */
int tile_element_kept(const Plan *p, const TileMap *tm, IrEval *ev, const TileFaultHook *hook);

#endif
