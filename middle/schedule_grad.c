/* schedule_grad.c — the backward kernel's schedule (schedule_grad.h): the
 * forward's builder (schedule_build.h: placement, hoisting, slots) run over
 * the backward plan's roots in the backward nest's scope order.
 *
 * Requires: a GradPlan (grad_plan.h) and the forward's Schedule (for its
 * rules: softmax, tile sizes, the tile group).  Produces: a GradSchedule in
 * the arena, verified (sched_verify_grad).
 *
 * Scope order of the element blocks, the one the kernels follow:
 *   pre                     scale, bias (the element scope)
 *     fault                 its own nested scope, calls that check faults only
 *     keep                  its own nested scope, PARTIAL tiles only
 *   value                   value, dvalue_dpre (element scope)
 *   term t: coef            element scope: what reads no chain variable
 *     level 0 .. nsums-1    nested loops of the chain's variables
 *       index               the load's indices
 * Terms follow one another in one element scope, so a coefficient two
 * terms share is computed once. */
#include "schedule_grad.h"

#include <stdio.h>
#include <string.h>

#include "schedule_build.h"

/* The element scope, reset, with pre available (PRE recorded when record). */
static void grad_pre(Builder *B, const GradPlan *gp, int record) {
    Scope *E = &B->elem;
    sched_scope_reset(E, B->m->n);
    E->out = record ? &B->s->block[SB_PRE] : NULL;
    sched_need(B, E, gp->f->scale);
    sched_need(B, E, gp->f->bias);
    E->pre_ready = 1;
}

/* The steps of node r in a nested scope of its own, into blk. */
static void nested(Builder *B, SchedBlock *blk, IrRef r) {
    Scope *E = &B->elem;
    E->out = blk;
    int mark = sched_open_scope(E);
    sched_need(B, E, r);
    sched_close_scope(E, mark);
}

/* One term: its coefficients, chain loops and indices, in scope E. */
static void term_blocks(Builder *B, Scope *E, const GradTerm *t, GradTermSched *ts) {
    const IrNode *load = ir_at(B->m, t->load);
    E->out = &ts->coef;
    /* hoisting: everything these read without a chain variable, at the element scope */
    sched_need(B, E, t->dvalue);
    sched_need(B, E, t->dbias);
    for (int i = 0; i < t->nsums; i++) {
        sched_need(B, E, ir_at(B->m, t->sums[i])->args[0]);
        sched_need(B, E, t->inner[i]);
    }
    for (int k = 0; k < load->nargs; k++) sched_need(B, E, load->args[k]);
    int marks[GRAD_MAX_CHAIN];
    for (int i = 0; i < t->nsums; i++) {
        int level = ir_at(B->m, t->sums[i])->aux;
        if (level < 0 || level > MAX_SUM_LEVEL) {
            sched_fail(B, "a sum chain nested more than 31 deep", "");
            return;
        }
        marks[i] = sched_open_scope(E);
        E->open |= 1u << level;
        E->out = &ts->level[i];
        sched_need(B, E, t->inner[i]);
        if (i + 1 < t->nsums) sched_need(B, E, ir_at(B->m, t->sums[i + 1])->args[0]);
    }
    E->out = &ts->index;
    for (int k = 0; k < load->nargs; k++) sched_need(B, E, load->args[k]);
    for (int i = t->nsums - 1; i >= 0; i--) {
        E->open &= ~(1u << ir_at(B->m, t->sums[i])->aux);
        sched_close_scope(E, marks[i]);
    }
}

/* The sink's terms, in one standalone scope of their own (a row's code). */
static void sink_blocks(Builder *B, GradSchedule *gs) {
    Scope S;
    if (!sched_scope_init(&S, SL_CALL, NULL, B->m->n)) {
        B->nomem = 1;
        sched_scope_free(&S);
        return;
    }
    S.standalone = 1;
    for (int i = 0; i < gs->gp->nsink_terms && !sched_failed(B); i++)
        term_blocks(B, &S, &gs->gp->sink_terms[i], &gs->sink_terms[i]);
    sched_scope_free(&S);
}

static void grad_blocks(Builder *B, GradSchedule *gs) {
    const GradPlan *gp = gs->gp;
    Schedule *s = B->s;
    Scope *E = &B->elem;
    grad_pre(B, gp, 1);
    if (s->needs_mask) nested(B, &s->block[SB_KEEP], gp->f->keep);
    E->out = &s->block[SB_VALUE_FULL];
    sched_need(B, E, gp->value);
    sched_need(B, E, gp->dvalue_dpre);
    for (int i = 0; i < gp->nterms && !sched_failed(B); i++) term_blocks(B, E, &gp->terms[i], &gs->terms[i]);
    sink_blocks(B, gs);
    if (s->needs_fault) { /* last: the row and kv values only it reads go to row.fault and col.fault */
        B->row.out = &s->block[SB_ROW_FAULT];
        B->col.out = &s->block[SB_COL_FAULT];
        grad_pre(B, gp, 0);
        nested(B, &s->block[SB_FAULT], gp->f->fault);
    }
    s->block[SB_PRE].result = gp->f->bias;
    s->block[SB_KEEP].result = s->needs_mask ? gp->f->keep : IR_NONE;
    s->block[SB_FAULT].result = s->needs_fault ? gp->f->fault : IR_NONE;
    s->block[SB_VALUE_FULL].result = gp->value;
}

/* The Schedule part: its tables and the forward's rules. */
static int base_init(Arena *arena, Schedule *s, const GradPlan *gp, const Schedule *fwd) {
    if (!sched_init_tables(arena, s, gp->ir)) return 0;
    s->softmax = fwd->softmax;
    s->needs_mask = !ir_is_bool(gp->ir, gp->f->keep, 1);
    s->needs_fault = !ir_is_bool(gp->ir, gp->f->fault, 0);
    s->group_by_b = fwd->group_by_b;
    s->group_by_h = fwd->group_by_h;
    s->vec_width = fwd->vec_width;
    s->bq = fwd->bq;
    s->bk = fwd->bk;
    return 1;
}

static void term_block_loops(GradTermSched *ts) {
    ts->coef.loop = ts->index.loop = SL_ELEM;
    ts->coef.result = ts->index.result = IR_NONE;
    for (int i = 0; i < GRAD_MAX_CHAIN; i++) {
        ts->level[i].loop = SL_ELEM;
        ts->level[i].result = IR_NONE;
    }
}

GradSchedule *sched_grad_build(Arena *arena, const GradPlan *gp, const Schedule *fwd) {
    GradSchedule *gs = arena_alloc(arena, sizeof *gs);
    if (!gs) return NULL;
    memset(gs, 0, sizeof *gs);
    gs->gp = gp;
    gs->value = gp->value;
    gs->dvalue_dpre = gp->dvalue_dpre;
    gs->terms = arena_alloc(arena, sizeof(GradTermSched) * (size_t)(gp->nterms + 1));
    gs->sink_terms = arena_alloc(arena, sizeof(GradTermSched) * (size_t)(gp->nsink_terms + 1));
    if (!gs->terms || !gs->sink_terms || !base_init(arena, &gs->base, gp, fwd)) return NULL;
    memset(gs->terms, 0, sizeof(GradTermSched) * (size_t)(gp->nterms + 1));
    memset(gs->sink_terms, 0, sizeof(GradTermSched) * (size_t)(gp->nsink_terms + 1));
    for (int i = 0; i < gp->nterms; i++) term_block_loops(&gs->terms[i]);
    for (int i = 0; i < gp->nsink_terms; i++) term_block_loops(&gs->sink_terms[i]);
    Schedule *s = &gs->base;
    int nodes = gp->ir->n;
    Builder B;
    memset(&B, 0, sizeof B);
    B.arena = arena;
    B.m = gp->ir;
    B.s = s;
    B.heads_in_rows = 1;    /* the head loop is inside the item: values of h are row values */
    B.kv_heads_in_elem = 1; /* ... and values of kv and h element values */
    B.why = s->why;
    B.why_len = sizeof s->why;
    if (!sched_scopes_init(&B, s, nodes)) B.nomem = 1;
    if (!sched_failed(&B)) grad_blocks(&B, gs);
    sched_scopes_free(&B);
    if (B.nomem) return NULL;
    if (!s->why[0]) {
        char broken[sizeof s->why - 40];
        int rc = sched_verify_grad(gs, broken, sizeof broken);
        if (rc < 0) return NULL;
        if (rc) snprintf(s->why, sizeof s->why, "internal error: %s", broken);
    }
    if (s->why[0]) { /* no partial steps: a backend must not translate half a schedule */
        for (int b = 0; b < SB_COUNT; b++) s->block[b].nsteps = 0;
        for (int i = 0; i < gp->nterms + gp->nsink_terms; i++) {
            GradTermSched *ts = i < gp->nterms ? &gs->terms[i] : &gs->sink_terms[i - gp->nterms];
            ts->coef.nsteps = ts->index.nsteps = 0;
            for (int k = 0; k < GRAD_MAX_CHAIN; k++) ts->level[k].nsteps = 0;
        }
        s->nrow_slots = s->ncol_slots = 0;
    }
    return gs;
}

void sched_grad_print(const GradSchedule *gs, StrBuf *out) {
    const Schedule *s = &gs->base;
    const IrModule *m = s->m;
    sb_printf(out, "schedule (backward):\n");
    if (s->why[0]) sb_printf(out, "  no kernel can compute this plan: %s\n", s->why);
    sb_printf(out, "  loops: item (b, hk, kv tile of %d) > col; head (h of hk's group) > q tile (from the transposed "
                   "tile map, of %d rows) > row > elem\n",
              s->bk, s->bq);
    sb_printf(out, "  seeds: %s; %d row slot%s, %d col slot%s\n",
              s->softmax ? "p = exp(value - LSE), g = p * (dP - delta)" : "p = value, g = dP - delta", s->nrow_slots,
              s->nrow_slots == 1 ? "" : "s", s->ncol_slots, s->ncol_slots == 1 ? "" : "s");
    static const SchedBlockId order[] = {SB_ITEM, SB_COL, SB_COL_FAULT, SB_ROW, SB_ROW_FAULT,
                                         SB_PRE,  SB_FAULT, SB_KEEP, SB_VALUE_FULL};
    static const char *const names[] = {"item", "col", "col.fault", "row", "row.fault", "pre", "fault", "keep", "value"};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        sched_print_block(m, &s->block[order[i]], names[i], out);
    sb_printf(out, "  gpre = g * %%%d\n", gs->dvalue_dpre);
    for (int i = 0; i < gs->gp->nterms; i++) {
        const GradTerm *t = &gs->gp->terms[i];
        const GradTermSched *ts = &gs->terms[i];
        sb_printf(out, "  term %d (tensor %d, load %%%d): c = g * %%%d + gpre * %%%d\n", i, t->tensor, t->load,
                  t->dvalue, t->dbias);
        sched_print_steps(m, &ts->coef, 2, out);
        int depth = 2;
        for (int k = 0; k < t->nsums; k++) {
            const IrNode *sum = ir_at(m, t->sums[k]);
            sb_printf(out, "%*sfor r%d < %%%d (sum %%%d): c *= %%%d\n", depth * 2, "", sum->aux, sum->args[0],
                      t->sums[k], t->inner[k]);
            sched_print_steps(m, &ts->level[k], ++depth, out);
        }
        sched_print_steps(m, &ts->index, depth, out);
        sb_printf(out, "%*sscatter c at the indices of %%%d\n", depth * 2, "", t->load);
    }
}
