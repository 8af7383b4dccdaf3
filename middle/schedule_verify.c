/* schedule_verify.c — the schedule checked against its own rules
 * (schedule.h): every step's operands available where it stands, sums and
 * low-rank loops balanced, slots exported before an element block reads
 * them, each block's result available at its end.
 *
 * Requires: a Schedule whose steps were built (why empty).  Produces: 0, or
 * 1 with a one-line reason.  plan_compile runs it on every schedule it
 * builds (it is linear in the steps), so every test, every example and every
 * fuzz case checks the schedule builder, and a backend never translates a
 * schedule that breaks its contract. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schedule.h"
#include "schedule_grad.h"

typedef struct Check {
    const Schedule *s;
    const IrModule *m;
    const IrFunc *f;
    SchedBlockId blk;
    int *avail;      /* per node: 1 + depth of the scope that computed it, in the current scope chain */
    IrRef *locals;   /* in order, to close scopes */
    int nlocals, depth;
    unsigned char *item;     /* per node: computed by the item block */
    unsigned char *exported; /* per node: stored into its slot (2: only when the call checks faults) */
    unsigned open;           /* sum levels open (bit 31: deeper) */
    int pre_ready;
    uint64_t counted, item_counted; /* low-rank groups whose count this block (the item block) has */
    uint64_t stored;                /* low-rank groups whose column this block stores */
    int lse_stored;
    char *why;
    size_t why_len;
} Check;

static int bad(Check *C, const char *what, IrRef r) {
    if (!C->why[0])
        snprintf(C->why, C->why_len, "schedule block %s: %s %%%d", sched_block_name(C->blk), what, r);
    return 1;
}

static uint64_t bit(int g) { return (uint64_t)1 << g; }

static unsigned level_bit(int level) { return level >= 31 ? 1u << 31 : 1u << level; }

/* Whether node r can be read here. */
static int readable(Check *C, IrRef r) {
    const IrNode *n = ir_at(C->m, r);
    if (n->op == IR_SUMVAR) return (C->open & level_bit(n->aux)) != 0;
    if (n->op == IR_PRE) return C->pre_ready;
    if (sched_is_leaf(n)) return 1;
    switch (sched_home(C->s, C->blk, r)) {
    case SH_ROW_SLOT:
    case SH_COL_SLOT:
        return (C->exported[r] == 1 || (C->exported[r] == 2 && (C->blk == SB_FAULT || C->blk == SB_FAULT_PARTIAL))) &&
               C->s->slot_of[r] >= 0;
    default: return C->avail[r] || (C->s->block[C->blk].loop != SL_CALL && C->blk != SB_ITEM && C->item[r]);
    }
}

static void make_available(Check *C, IrRef r) {
    C->avail[r] = C->depth + 1;
    C->locals[C->nlocals++] = r;
    if (C->blk == SB_ITEM) C->item[r] = 1;
}

static void close_to(Check *C, int mark) {
    while (C->nlocals > mark) C->avail[C->locals[--C->nlocals]] = 0;
}

/* Walk one block's steps in the current scope, by the rules of block id
 * (blk: s->block[id], or a backward term's block with the element's rules);
 * 1 on a violation. */
static int walk_block(Check *C, SchedBlockId id, const SchedBlock *blk) {
    C->blk = id;
    int marks[64], nmarks = 0, open_lr = -1, open_group = -1;
    for (int i = 0; i < blk->nsteps; i++) {
        const SchedStep *st = &blk->steps[i];
        const IrNode *n = st->node != IR_NONE ? ir_at(C->m, st->node) : NULL;
        switch (st->op) {
        case STEP_VALUE:
            if (n->op == IR_DIAG) { /* read from its table, which the diag block stored */
                if (blk->loop != SL_ELEM || C->s->slot_of[st->node] < 0 || C->s->slot_of[st->node] >= C->s->ndiag ||
                    C->s->diag_nodes[C->s->slot_of[st->node]] != st->node || !C->exported[st->node])
                    return bad(C, "a diagonal table read that no diag step stored:", st->node);
                make_available(C, st->node);
                break;
            }
            for (int a = 0; a < n->nargs; a++)
                if (!readable(C, n->args[a])) return bad(C, "an operand is not available to", st->node);
            if (n->op == IR_SUM || n->op == IR_ANY) return bad(C, "a sum computed without its loop:", st->node);
            make_available(C, st->node);
            break;
        case STEP_SUM_OPEN:
            if ((n->op != IR_SUM && n->op != IR_ANY) || n->aux != st->aux) return bad(C, "not a sum:", st->node);
            if (!readable(C, n->args[0])) return bad(C, "the bound is not available to", st->node);
            if (nmarks == 64 || (C->open & level_bit(st->aux))) return bad(C, "sum loops nested wrongly at", st->node);
            marks[nmarks++] = C->nlocals;
            C->depth++;
            C->open |= level_bit(st->aux);
            break;
        case STEP_SUM_CLOSE:
            if (!nmarks || !(C->open & level_bit(st->aux))) return bad(C, "a sum closed that is not open:", st->node);
            if (!readable(C, n->args[1])) return bad(C, "the body is not available to", st->node);
            close_to(C, marks[--nmarks]);
            C->depth--;
            C->open &= ~level_bit(st->aux);
            make_available(C, st->node);
            break;
        case STEP_DIAG_STORE:
            if (id != SB_DIAG || st->aux < 0 || st->aux >= C->s->ndiag || !readable(C, st->node) || n->sumvars ||
                ir_at(C->m, C->s->diag_nodes[st->aux])->args[0] != st->node)
                return bad(C, "a diagonal table stored wrongly:", st->node);
            C->exported[C->s->diag_nodes[st->aux]] = 1;
            break;
        case STEP_EXPORT:
            if (blk->loop != SL_ROW && blk->loop != SL_COL) return bad(C, "an export outside the row and col loops:", st->node);
            if (!readable(C, st->node) || C->s->slot_of[st->node] != st->aux || n->sumvars)
                return bad(C, "a slot stored wrongly:", st->node);
            C->exported[st->node] = id == SB_ROW_FAULT || id == SB_COL_FAULT ? 2 : 1;
            break;
        case STEP_LOWRANK_COUNT:
            if (!readable(C, st->node) || st->aux < 0 || st->aux >= C->s->nlowrank || C->counted != bit(st->aux) - 1)
                return bad(C, "a low-rank count out of order or not available:", st->node);
            C->counted |= bit(st->aux);
            if (id == SB_ITEM) C->item_counted = C->counted;
            break;
        case STEP_LOWRANK_LIMIT:
            if (C->counted != bit(C->s->nlowrank) - 1) return bad(C, "the low-rank limit before the counts", IR_NONE);
            break;
        case STEP_LOWRANK_OPEN:
            if (st->aux < 0 || st->aux >= C->s->nlowrank || !((C->counted | C->item_counted) & bit(st->aux)))
                return bad(C, "a low-rank loop without its count: group", st->aux);
            if (open_lr >= 0 || (C->open & 1u)) return bad(C, "low-rank loops nested at group", st->aux);
            open_lr = C->nlocals;
            open_group = st->aux;
            C->depth++;
            C->open |= 1u;
            break;
        case STEP_LOWRANK_STORE: {
            const IrFunc *f = C->f;
            IrRef want = blk->loop == SL_ROW ? f->lowrank_q[st->aux] : f->lowrank_k[st->aux];
            if (open_lr < 0 || st->aux != open_group || st->node != want || (C->stored & bit(st->aux)) ||
                !readable(C, st->node))
                return bad(C, "a low-rank column stored wrongly or not available:", st->node);
            C->stored |= bit(st->aux);
            break;
        }
        case STEP_LOWRANK_CLOSE:
            if (open_lr < 0) return bad(C, "a low-rank loop closed that is not open: group", st->aux);
            close_to(C, open_lr);
            open_lr = -1;
            C->depth--;
            C->open &= ~1u;
            break;
        case STEP_LSE_OFFSET:
            if (blk->loop != SL_ROW || st->node != C->f->lse_offset || !readable(C, st->node))
                return bad(C, "the LSE offset not available:", st->node);
            C->lse_stored++;
            break;
        }
    }
    if (nmarks || open_lr >= 0) return bad(C, "loops left open at the end", IR_NONE);
    if ((id == SB_SCRATCH || id == SB_ITEM) && C->counted != bit(C->s->nlowrank) - 1)
        return bad(C, "low-rank counts missing", IR_NONE);
    if ((id == SB_ROW || id == SB_COL) && C->stored != bit(C->s->nlowrank) - 1)
        return bad(C, "low-rank columns missing", IR_NONE);
    if (id == SB_ROW && C->lse_stored != (C->s->lse_offset ? 1 : 0)) return bad(C, "the LSE offset stored", C->lse_stored);
    if (blk->result != IR_NONE && !readable(C, blk->result)) return bad(C, "the result is not available:", blk->result);
    return 0;
}

static int walk(Check *C, SchedBlockId id) { return walk_block(C, id, &C->s->block[id]); }

/* A fresh scope for one loop's blocks. */
static void reset_scope(Check *C) {
    close_to(C, 0);
    C->depth = 0;
    C->open = 0;
    C->pre_ready = 0;
    C->counted = 0;
    C->stored = 0;
}

/* The element blocks of one tile mode, in their scope order. */
static int walk_element(Check *C, const IrFunc *f, int partial) {
    reset_scope(C);
    if (walk(C, SB_PRE)) return 1;
    if (!readable(C, f->scale)) return bad(C, "the scale is not available to pre:", f->scale);
    C->pre_ready = 1;
    if (C->s->needs_fault) {
        int mark = C->nlocals;
        C->depth++;
        if (walk(C, SB_FAULT)) return 1;
        close_to(C, mark);
        C->depth--;
    }
    if (partial && C->s->needs_mask && walk(C, SB_KEEP)) return 1;
    /* the band (schedule.h): PARTIAL tiles read it with the masks */
    if (partial && C->s->needs_mask && C->s->band_lo != IR_NONE &&
        (!readable(C, C->s->band_lo) || !readable(C, C->s->band_hi)))
        return bad(C, "the band is not available to keep:", C->s->band_lo);
    if (partial && C->s->needs_fault) { /* FAULT_PARTIAL: after KEEP, its own scope */
        int mark = C->nlocals;
        C->depth++;
        if (walk(C, SB_FAULT_PARTIAL)) return 1;
        close_to(C, mark);
        C->depth--;
    }
    return walk(C, partial ? SB_VALUE_PARTIAL : SB_VALUE_FULL);
}

typedef int (*WalkOrder)(Check *C, const void *what);

/* The forward nest's blocks in its scope order. */
static int walk_forward(Check *C, const void *what) {
    (void)what;
    int rc = walk(C, SB_SCRATCH);
    reset_scope(C);
    rc = rc || walk(C, SB_ITEM);
    reset_scope(C);
    rc = rc || walk(C, SB_ROW) || walk(C, SB_ROW_FAULT); /* ROW_FAULT continues ROW's scope */
    reset_scope(C);
    rc = rc || walk(C, SB_COL) || walk(C, SB_COL_FAULT);
    reset_scope(C);
    rc = rc || walk(C, SB_DIAG); /* its own scope after the item's */
    rc = rc || walk_element(C, C->f, 1) || walk_element(C, C->f, 0);
    for (int b = SB_ROPE; b < SB_COUNT && !rc; b++) { /* standalone: each reads only its own steps */
        reset_scope(C);
        rc = walk(C, (SchedBlockId)b);
    }
    return rc;
}

/* A nested scope around walk(C, id). */
static int walk_nested(Check *C, SchedBlockId id) {
    int mark = C->nlocals;
    C->depth++;
    int rc = walk(C, id);
    close_to(C, mark);
    C->depth--;
    return rc;
}

/* One backward term: coef, its chain's levels (each with its variable open), index. */
static int walk_term(Check *C, const GradTerm *t, const GradTermSched *ts) {
    if (walk_block(C, SB_VALUE_FULL, &ts->coef)) return 1;
    int marks[GRAD_MAX_CHAIN];
    for (int i = 0; i < t->nsums; i++) {
        const IrNode *sum = ir_at(C->m, t->sums[i]);
        if (!readable(C, sum->args[0])) return bad(C, "a chain's bound is not available to", t->sums[i]);
        if (C->open & level_bit(sum->aux)) return bad(C, "a chain's loops nested wrongly at", t->sums[i]);
        marks[i] = C->nlocals;
        C->depth++;
        C->open |= level_bit(sum->aux);
        if (walk_block(C, SB_VALUE_FULL, &ts->level[i])) return 1;
        if (!readable(C, t->inner[i])) return bad(C, "a chain's coefficient is not available:", t->inner[i]);
    }
    if (walk_block(C, SB_VALUE_FULL, &ts->index)) return 1;
    const IrNode *load = ir_at(C->m, t->load);
    for (int k = 0; k < load->nargs; k++)
        if (!readable(C, load->args[k])) return bad(C, "a tensor term's index is not available:", load->args[k]);
    for (int i = t->nsums - 1; i >= 0; i--) {
        close_to(C, marks[i]);
        C->depth--;
        C->open &= ~level_bit(ir_at(C->m, t->sums[i])->aux);
    }
    return 0;
}

/* The backward nest's blocks in its scope order (schedule_grad.c). */
static int walk_backward(Check *C, const void *what) {
    const GradSchedule *gs = what;
    const GradPlan *gp = gs->gp;
    int rc = walk(C, SB_ITEM);
    reset_scope(C);
    rc = rc || walk(C, SB_ROW) || walk(C, SB_ROW_FAULT);
    reset_scope(C);
    rc = rc || walk(C, SB_COL) || walk(C, SB_COL_FAULT);
    reset_scope(C);
    if (rc || walk(C, SB_PRE)) return 1;
    if (!readable(C, gp->f->scale)) return bad(C, "the scale is not available to pre:", gp->f->scale);
    C->pre_ready = 1;
    if (C->s->needs_fault && walk_nested(C, SB_FAULT)) return 1;
    if (C->s->needs_mask && walk_nested(C, SB_KEEP)) return 1;
    if (walk(C, SB_VALUE_FULL)) return 1;
    if (!readable(C, gs->dvalue_dpre)) return bad(C, "dvalue_dpre is not available:", gs->dvalue_dpre);
    for (int i = 0; i < gp->nterms; i++) {
        const GradTerm *t = &gp->terms[i];
        if (walk_term(C, t, &gs->terms[i])) return 1;
        if (!readable(C, t->dvalue) || !readable(C, t->dbias))
            return bad(C, "a tensor term's coefficient is not available:", t->load);
    }
    return 0;
}

static size_t term_steps(const GradSchedule *gs) {
    size_t n = 0;
    for (int i = 0; gs && i < gs->gp->nterms; i++) {
        n += (size_t)gs->terms[i].coef.nsteps + (size_t)gs->terms[i].index.nsteps;
        for (int k = 0; k < GRAD_MAX_CHAIN; k++) n += (size_t)gs->terms[i].level[k].nsteps;
    }
    return n;
}

static int verify(const Schedule *s, const IrFunc *f, WalkOrder order, const GradSchedule *gs, char *why,
                  size_t why_len) {
    if (s->nlowrank > 63) {
        snprintf(why, why_len, "more low-rank groups than the verifier tracks (%d)", s->nlowrank);
        return 1;
    }
    size_t n = (size_t)s->m->n + 1;
    Check C;
    memset(&C, 0, sizeof C);
    C.s = s;
    C.m = s->m;
    C.f = f;
    C.why = why;
    C.why_len = why_len;
    why[0] = 0;
    C.avail = calloc(n, sizeof(int));
    size_t steps = 8 + term_steps(gs);
    for (int b = 0; b < SB_COUNT; b++) steps += (size_t)s->block[b].nsteps;
    C.locals = calloc(steps, sizeof(IrRef)); /* each step makes at most one node available */
    C.item = calloc(n, 1);
    C.exported = calloc(n, 1);
    int rc = -1;
    if (C.avail && C.locals && C.item && C.exported) rc = order(&C, gs);
    free(C.avail);
    free(C.locals);
    free(C.item);
    free(C.exported);
    return rc;
}

int sched_verify(const Schedule *s, const IrFunc *f, char *why, size_t why_len) {
    return verify(s, f, walk_forward, NULL, why, why_len);
}

int sched_verify_grad(const GradSchedule *gs, char *why, size_t why_len) {
    return verify(&gs->base, gs->gp->f, walk_backward, gs, why, why_len);
}
