/* plan_steps.h — the steps of a schedule (middle/schedule.h) executed in
 * float64, one block at a time: refplan's interpreter of the schedule.
 *
 * It executes exactly what the schedule says, so that refplan tests it: a
 * value is read where the schedule says it lives (sched_home: a slot, or a
 * value computed in a scope still open), and a read of a value that no step
 * computed in an open scope — a step missing, misplaced, or hoisted out of
 * the loop it needs — marks the run `bad` (the work item then fails, and the
 * runtime reports that the kernel flagged an error the interpreter does not
 * see).  The caller (plan_run.c) owns the loop nest and the memory. */
#ifndef ATTNC_PLAN_STEPS_H
#define ATTNC_PLAN_STEPS_H
#include <stdint.h>

#include "ir_passes.h"
#include "schedule.h"

enum { STEPS_MAX_SCOPES = 64 }; /* item, elem, fault, 31 sums, a low-rank loop: far fewer */

typedef struct StepRun {
    const Schedule *s;
    IrEval ev;          /* what leaves and loads read: sizes, params, tensors, b, h, q, kv, hk, pre, sum variables */
    Const *val;         /* per node: its value in the scope that computed it */
    uint64_t *stamp;    /* per node: the scope instance that computed it; 0 none (cleared per work item) */
    uint64_t scopes[STEPS_MAX_SCOPES]; /* the scope instances open, outermost first */
    int nscopes;
    uint64_t next_scope;
    uint64_t levels;    /* the sum variables whose loops are open (bit per level) */
    int64_t bq, bk;     /* the tile sizes of the slots */
    int64_t i, j;       /* the row (col) of the tile that row (col) blocks compute, and elements read */
    Const *row_slot;    /* [nrow_slots][bq] */
    Const *col_slot;    /* [ncol_slots][bk] */
    uint64_t *row_ok;   /* per row slot entry: 1 once exported in this work item */
    uint64_t *col_ok;   /* per col slot entry: the tile_id of the tile that exported it */
    uint64_t tile_id;
    double *lse_off;    /* [bq]: STEP_LSE_OFFSET of each row */
    /* low-rank columns: group g is columns [lr_at[g], lr_at[g] + lr_n[g]) of cols */
    int64_t *lr_n, *lr_at;
    int64_t cols, cols_cap; /* columns counted; columns the arrays below hold per row (kv) */
    double *qcol, *kcol;    /* [bq][cols_cap], [bk][cols_cap] */
    /* diagonal tables (SB_DIAG): table k at distance d is diag[k * diag_cap + d - diag_d0],
     * stored for the tile diag_ok names; diag_e: the entry the diag block stores now.  Grid
     * tables (Schedule.diag_grid): element (q, kv) reads entry sched_grid_entry(s, bq, q - diag_q0,
     * kv - diag_k0) */
    Const *diag;
    uint64_t *diag_ok;
    int64_t diag_cap, diag_d0, diag_n, diag_e, diag_q0, diag_k0;
    int bad;            /* the schedule read what it had not computed there */
} StepRun;

/* Run block b's steps once at the current row (i), col (j) or element;
 * returns 0, or 1 when the work item must fail: the low-rank columns exceed
 * SCHED_MAX_LOWRANK_COLS (what every kernel does), or the run went bad. */
int steps_run(StepRun *R, SchedBlockId b);

/* Node r as block b reads it (a leaf, a slot, or a value of an open scope). */
Const steps_read(StepRun *R, SchedBlockId b, IrRef r);

/* Scope instances: values computed after an open are forgotten at its close. */
void steps_open(StepRun *R);
void steps_close(StepRun *R);

#endif
