/* schedule_build.h — the schedule builder's machinery (middle/schedule.c),
 * shared by the forward schedule and the backward one
 * (middle/schedule_grad.c): scopes of availability per loop, the placement
 * rule, and `sched_need`, which adds the steps that make a node available
 * where a block needs it (hoisting what a sum's body reads without its
 * variable).  Private to the middle end: backends read schedule.h only. */
#ifndef ATTNC_SCHEDULE_BUILD_H
#define ATTNC_SCHEDULE_BUILD_H
#include "schedule.h"

struct Plan;

enum { MAX_SUM_LEVEL = 30 }; /* IrNode.sumvars tracks levels 0..30 (bit 31: deeper) */

/* The availability of values in one loop's scope while its steps are built. */
typedef struct Scope {
    SchedLoop loop;
    SchedBlock *out; /* where steps go now (NULL: only rebuild availability) */
    int depth;       /* sum loops (or nested scopes) open */
    unsigned open;   /* sum levels whose loops are open */
    int *avail;      /* per node: 1 + depth of the scope holding it; 0: none */
    IrRef *locals;   /* nodes available, in order (to close scopes) */
    int nlocals, cap;
    unsigned *seen;  /* per node: visit stamp */
    unsigned stamp;
    int pre_ready;   /* pre is available (element blocks after PRE) */
    int standalone;  /* computes everything it reads itself (schedule.h: SB_ROPE ...) */
} Scope;

typedef struct Builder {
    Arena *arena;
    const struct Plan *p; /* the forward's plan (NULL when building the backward schedule) */
    const IrModule *m;
    Schedule *s;          /* slots and loop_of are recorded here */
    Scope scratch, item, row, col, elem, diag; /* diag: SB_DIAG (schedule.h) */
    int nomem;
    int heads_in_rows; /* what varies with h (not kv) lives in the row loop: see pack_heads */
    /* the backward's nest: the item is (b, hk, kv tile) and the query heads
     * loop inside the col loop, so a value of kv and h is an element value */
    int kv_heads_in_elem;
    char *why; /* Schedule.why */
    size_t why_len;
} Builder;

/* s zeroed, with its per-node tables for module m (no slot, every node an
 * element value until placed) and each block's loop; 0 when out of memory. */
int sched_init_tables(Arena *arena, Schedule *s, const IrModule *m);
int sched_failed(const Builder *B);
void sched_fail(Builder *B, const char *what, const char *detail);
void sched_push_step(Builder *B, SchedBlock *blk, StepOp op, IrRef node, int aux);
int sched_scope_init(Scope *S, SchedLoop loop, SchedBlock *out, int nodes);
void sched_scope_free(Scope *S);
/* B's five scopes (scratch, item, row, col, element) over s's blocks; 0 when out of memory. */
int sched_scopes_init(Builder *B, Schedule *s, int nodes);
void sched_scopes_free(Builder *B);
int sched_open_scope(Scope *S);
void sched_close_scope(Scope *S, int mark);
void sched_scope_reset(Scope *S, int nodes);
/* Make node `root` available in scope S: add, in topological order, the
 * steps of what it depends on (through the scopes that own outer values,
 * exporting row and kv values to slots). */
void sched_need(Builder *B, Scope *S, IrRef root);

#endif
