/* schedule.c — the schedule of a plan: for each block of the kernel's loop
 * nest, the ordered steps that compute what it needs (schedule.h).
 *
 * Requires: a Plan whose IR has been through the passes (plan.h).
 * Produces: a Schedule in the plan's arena.
 *
 * Placement.  A node that reads no sum variable lives in the loop of what it
 * varies with (its base level): the call and (b, h) in the item loop, q in
 * the row loop, kv in the col loop, both (or pre) in the element loop.  A
 * node that reads a sum variable lives where its sum's loop is.  A value is
 * computed once per iteration of its loop, when first needed there, and an
 * element block reads a row or kv value from a slot its loop stores.
 *
 * Hoisting.  A sum's loop recomputes only what reads its variable (or that
 * of a sum nested in it): every other node of its body is computed before
 * the loop, in the scope where the sum is (`(sumvars & ~open) == 0`).
 *
 * The walk is iterative (an explicit stack, then the nodes in index order,
 * which is topological), so long chains of masks do not recurse here. */
#include "schedule.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan.h"
#include "schedule_build.h"

int sched_failed(const Builder *B) { return B->nomem || (B->why && B->why[0]); }

void sched_fail(Builder *B, const char *what, const char *detail) {
    if (B->why && !B->why[0]) snprintf(B->why, B->why_len, "%s%s", what, detail);
}

/* ---- steps ------------------------------------------------------------------ */

/* Append a step to blk (NULL: a walk that only rebuilds availability). */
void sched_push_step(Builder *B, SchedBlock *blk, StepOp op, IrRef node, int aux) {
    if (B->nomem || !blk) return;
    if (blk->nsteps == blk->cap) {
        int cap = blk->cap ? blk->cap * 2 : 32;
        SchedStep *st = arena_alloc(B->arena, sizeof(SchedStep) * (size_t)cap);
        if (!st) {
            B->nomem = 1;
            return;
        }
        if (blk->nsteps) memcpy(st, blk->steps, sizeof(SchedStep) * (size_t)blk->nsteps);
        blk->steps = st;
        blk->cap = cap;
    }
    blk->steps[blk->nsteps++] = (SchedStep){op, node, aux};
}

/* ---- placement -------------------------------------------------------------- */

int sched_is_leaf(const IrNode *n) {
    return n->op == IR_CONST || n->op == IR_VAR || n->op == IR_SUMVAR || n->op == IR_PRE;
}

/* The loop a node lives in by what it varies with, ignoring the sums it sits
 * in (those put it where the sum's loop is).  With heads in rows, a value of
 * the query head h (and not of kv) is a row value: the rows of a packed work
 * item belong to several heads. */
static SchedLoop base_loop(const Builder *B, const IrNode *n) {
    int d = n->deps & ~DEP_SUMVAR;
    int q = (d & DEP_Q) != 0, kv = (d & DEP_KV) != 0;
    if ((d & DEP_PRE) || (q && kv)) return SL_ELEM;
    if (kv && (d & DEP_H) && B->kv_heads_in_elem) return SL_ELEM;
    if (q) return SL_ROW;
    if (kv) return SL_COL;
    if ((d & DEP_H) && B->heads_in_rows) return SL_ROW;
    if (d & (DEP_B | DEP_H | DEP_HK | DEP_TENSOR)) return SL_ITEM;
    return SL_CALL;
}

/* Append r to the growing list *list (*n used of *cap); 0 when out of memory (the list is kept). */
static int push_ref(IrRef **list, int *n, int *cap, IrRef r) {
    if (*n == *cap) {
        IrRef *l = realloc(*list, sizeof(IrRef) * (size_t)(*cap * 2));
        if (!l) return 0;
        *list = l, *cap *= 2;
    }
    (*list)[(*n)++] = r;
    return 1;
}

/* The scope that computes node n when scope S reads it, or NULL. */
static Scope *owner(Builder *B, Scope *S, const IrNode *n) {
    if (n->sumvars || S->standalone) return S; /* a sum's body: computed inside the sum's loop */
    SchedLoop lv = base_loop(B, n);
    if (S->loop == SL_CALL) return lv == SL_CALL ? S : NULL;
    if (lv <= SL_ITEM) return &B->item;
    /* the diag block: a distance's body never reads q or kv alone; a grid table's reads the cells of both, which
     * it computes itself (with q and kv bound to the pair of the entry it fills) */
    if (S->loop == SL_TILE) return lv == SL_ELEM || (B->s->diag_grid[0] && lv >= SL_ROW) ? S : NULL;
    Scope *o = lv == SL_ROW ? &B->row : lv == SL_COL ? &B->col : &B->elem;
    if (o != S && S->loop != SL_ELEM) return NULL; /* e.g. a kv value in the row loop */
    return o;
}

int sched_scope_init(Scope *S, SchedLoop loop, SchedBlock *out, int nodes) {
    memset(S, 0, sizeof *S);
    S->loop = loop;
    S->out = out;
    S->avail = calloc((size_t)nodes + 1, sizeof(int));
    S->seen = calloc((size_t)nodes + 1, sizeof(unsigned));
    return S->avail && S->seen;
}

void sched_scope_free(Scope *S) {
    free(S->avail);
    free(S->seen);
    free(S->locals);
}

static void add_local(Builder *B, Scope *S, IrRef r) {
    if (S->nlocals == S->cap) {
        int cap = S->cap ? S->cap * 2 : 64;
        IrRef *l = realloc(S->locals, sizeof(IrRef) * (size_t)cap);
        if (!l) {
            B->nomem = 1;
            return;
        }
        S->locals = l;
        S->cap = cap;
    }
    S->locals[S->nlocals++] = r;
    S->avail[r] = S->depth + 1;
}

int sched_open_scope(Scope *S) {
    S->depth++;
    return S->nlocals;
}

void sched_close_scope(Scope *S, int mark) {
    while (S->nlocals > mark) S->avail[S->locals[--S->nlocals]] = 0;
    S->depth--;
}

/* Forget everything of an element scope (built once per tile mode). */
void sched_scope_reset(Scope *S, int nodes) {
    memset(S->avail, 0, sizeof(int) * (size_t)(nodes + 1));
    S->nlocals = 0;
    S->depth = 0;
    S->open = 0;
    S->pre_ready = 0;
}


/* A row or kv value read by an element block goes through a slot. */
static void export_to_slot(Builder *B, Scope *from, IrRef r) {
    Schedule *s = B->s;
    if (s->slot_of[r] >= 0) return;
    int k = from->loop == SL_ROW ? s->nrow_slots++ : s->ncol_slots++;
    s->slot_of[r] = k;
    (from->loop == SL_ROW ? s->row_slots : s->col_slots)[k] = r;
    sched_push_step(B, from->out, STEP_EXPORT, r, k);
}

/* IR_DIAG node r read by an element block: its table, the body computed
 * and stored by the diag block (once, however many blocks read it). */
static void diag_table(Builder *B, IrRef r) {
    Schedule *s = B->s;
    if (s->slot_of[r] >= 0) return;
    int k = s->ndiag++;
    s->slot_of[r] = k;
    s->diag_nodes[k] = r;
    IrRef body = ir_at(B->m, r)->args[0];
    sched_need(B, &B->diag, body);
    sched_push_step(B, B->diag.out, STEP_DIAG_STORE, body, k);
}

/* One node whose operands are available: its steps. */
static void compute(Builder *B, Scope *S, IrRef r) {
    const IrNode *n = ir_at(B->m, r);
    if (n->op == IR_SUM || n->op == IR_ANY) {
        if (n->aux < 0 || n->aux > MAX_SUM_LEVEL) {
            sched_fail(B, "sums nested more than 31 deep", "");
            return;
        }
        sched_need(B, S, n->args[0]);
        sched_push_step(B, S->out, STEP_SUM_OPEN, r, n->aux);
        int mark = sched_open_scope(S);
        S->open |= 1u << n->aux;
        sched_need(B, S, n->args[1]);
        sched_push_step(B, S->out, STEP_SUM_CLOSE, r, n->aux);
        S->open &= ~(1u << n->aux);
        sched_close_scope(S, mark);
    } else {
        sched_push_step(B, S->out, STEP_VALUE, r, 0);
    }
    /* a grid table's body computes row and kv values for itself: their loop stays theirs (the element blocks
     * read them from slots) */
    if (n->sumvars == 0 && !S->standalone && !(S->loop == SL_TILE && base_loop(B, n) != SL_ELEM))
        B->s->loop_of[r] = S->loop;
    add_local(B, S, r);
}

static int cmp_ref(const void *a, const void *b) { return *(const IrRef *)a - *(const IrRef *)b; }

/* Make node `root` available in scope S where it is now: add, in topological
 * order, the steps of every node it depends on that S computes here (and,
 * through the scopes that own them, of the outer values it reads). */
void sched_need(Builder *B, Scope *S, IrRef root) {
    if (sched_failed(B) || root == IR_NONE) return;
    int cap = 64, nstack = 0, nlist = 0, lcap = 64;
    IrRef *stack = malloc(sizeof(IrRef) * (size_t)cap), *list = malloc(sizeof(IrRef) * (size_t)lcap);
    if (!stack || !list) {
        free(stack);
        free(list);
        B->nomem = 1;
        return;
    }
    if (++S->stamp == 0) { /* wrapped: clear the stamps */
        memset(S->seen, 0, sizeof(unsigned) * (size_t)(B->m->n + 1));
        S->stamp = 1;
    }
    stack[nstack++] = root;
    while (nstack > 0 && !sched_failed(B)) {
        IrRef r = stack[--nstack];
        if (S->seen[r] == S->stamp) continue;
        S->seen[r] = S->stamp;
        const IrNode *n = ir_at(B->m, r);
        if (n->op == IR_PRE && !(S == &B->elem && S->pre_ready)) {
            sched_fail(B, "the score is read before it is computed", "");
            break;
        }
        if (sched_is_leaf(n) || S->avail[r]) continue;
        Scope *o = owner(B, S, n);
        if (!o) {
            static const char *const lv[] = {"call", "head", "row", "tile", "col", "elem", "finish"};
            char detail[80];
            snprintf(detail, sizeof detail, " (a %s value in the %s loop)", lv[base_loop(B, n)], lv[S->loop]);
            sched_fail(B, "a value is needed where the kernel cannot compute it", detail);
            break;
        }
        if (n->op == IR_DIAG && S->loop == SL_ELEM) { /* read from its table: the body is the diag block's */
            diag_table(B, r);
            if (!push_ref(&list, &nlist, &lcap, r)) {
                B->nomem = 1;
                break;
            }
            continue;
        }
        if (o != S) { /* an outer loop's value */
            sched_need(B, o, r);
            if (o == &B->row || o == &B->col) export_to_slot(B, o, r);
            continue;
        }
        if ((n->sumvars & ~S->open) == 0) { /* computable at this scope */
            if (!push_ref(&list, &nlist, &lcap, r)) {
                B->nomem = 1;
                break;
            }
        }
        /* operands (a sum's body too: what it reads outside its loop is hoisted here) */
        if (nstack + n->nargs > cap) {
            cap = (nstack + n->nargs) * 2;
            IrRef *st = realloc(stack, sizeof(IrRef) * (size_t)cap);
            if (!st) {
                B->nomem = 1;
                break;
            }
            stack = st;
        }
        for (int i = 0; i < n->nargs; i++) stack[nstack++] = n->args[i];
    }
    if (nstack > 0 && !sched_failed(B)) B->nomem = 1;
    qsort(list, (size_t)nlist, sizeof(IrRef), cmp_ref);
    for (int i = 0; i < nlist && !sched_failed(B); i++)
        if (!S->avail[list[i]]) compute(B, S, list[i]);
    free(stack);
    free(list);
}

/* ---- the blocks of the forward kernel ---------------------------------------- */

static void lowrank_counts(Builder *B, Scope *S) {
    const IrFunc *f = B->p->f;
    for (int g = 0; g < f->nlowrank; g++) {
        sched_need(B, S, f->lowrank_count[g]);
        sched_push_step(B, S->out, STEP_LOWRANK_COUNT, f->lowrank_count[g], g);
    }
    if (f->nlowrank) sched_push_step(B, S->out, STEP_LOWRANK_LIMIT, IR_NONE, 0);
}

/* Low-rank columns of one row (Q side) or one kv (K side). */
static void lowrank_columns(Builder *B, Scope *S, int q_side) {
    const IrFunc *f = B->p->f;
    for (int g = 0; g < f->nlowrank; g++) {
        IrRef col = q_side ? f->lowrank_q[g] : f->lowrank_k[g];
        sched_need(B, S, col); /* at the row (or kv) scope: everything that does not read r */
        sched_push_step(B, S->out, STEP_LOWRANK_OPEN, IR_NONE, g);
        int mark = sched_open_scope(S);
        S->open |= 1u;
        sched_need(B, S, col);
        sched_push_step(B, S->out, STEP_LOWRANK_STORE, col, g);
        S->open &= ~1u;
        sched_close_scope(S, mark);
        sched_push_step(B, S->out, STEP_LOWRANK_CLOSE, IR_NONE, g);
    }
}

/* The element scope, reset, then PRE (recorded, or only made available again). */
static void element_pre(Builder *B, int record) {
    const IrFunc *f = B->p->f;
    Scope *E = &B->elem;
    sched_scope_reset(E, B->m->n);
    E->out = record ? &B->s->block[SB_PRE] : NULL;
    sched_need(B, E, f->scale);
    sched_need(B, E, f->bias);
    E->pre_ready = 1;
}

/* The element blocks of one tile mode. */
static void element_blocks(Builder *B, int partial) {
    const Plan *p = B->p;
    const IrFunc *f = p->f;
    Schedule *s = B->s;
    Scope *E = &B->elem;
    element_pre(B, partial); /* the same for both modes: recorded once */
    if (partial && p->needs_mask) {
        E->out = &s->block[SB_KEEP];
        sched_need(B, E, f->keep);
    }
    E->out = &s->block[partial ? SB_VALUE_PARTIAL : SB_VALUE_FULL];
    sched_need(B, E, p->softmax ? f->score : f->weight);
}

/* The fault checks, last, each in its own scope: after PRE, and after PRE
 * and KEEP; the row and kv values that only they read go to ROW_FAULT and
 * COL_FAULT (what the other element blocks read is in ROW and COL already). */
static void fault_blocks(Builder *B) {
    Schedule *s = B->s;
    B->row.out = &s->block[SB_ROW_FAULT];
    B->col.out = &s->block[SB_COL_FAULT];
    for (int partial = 0; partial <= 1; partial++) {
        element_pre(B, 0);
        if (partial && B->p->needs_mask) {
            B->elem.out = NULL; /* KEEP is recorded: only what it makes available */
            sched_need(B, &B->elem, B->p->f->keep);
        }
        B->elem.out = &s->block[partial ? SB_FAULT_PARTIAL : SB_FAULT];
        int mark = sched_open_scope(&B->elem);
        sched_need(B, &B->elem, B->p->f->fault);
        sched_close_scope(&B->elem, mark);
    }
}

/* One standalone block: the steps of its roots (schedule.h, SB_ROPE ...). */
static void standalone_block(Builder *B, SchedBlockId id, const IrRef *roots, int nroots) {
    Scope S;
    if (!sched_scope_init(&S, SL_CALL, &B->s->block[id], B->m->n)) {
        B->nomem = 1;
        sched_scope_free(&S);
        return;
    }
    S.standalone = 1;
    for (int i = 0; i < nroots; i++) sched_need(B, &S, roots[i]);
    B->s->block[id].result = roots[0];
    sched_scope_free(&S);
}

/* The blocks of version 2's rotary and sink, when the attention has them. */
static void v2_blocks(Builder *B) {
    const IrFunc *f = B->p->f;
    if (f->qpos != IR_NONE) {
        IrRef rope[] = {f->rope_fault, f->rope_dims, f->rope_base, f->rope_interleaved};
        IrRef qpos[] = {f->qpos, f->qpos_fault}, kvpos[] = {f->kvpos, f->kvpos_fault};
        standalone_block(B, SB_ROPE, rope, 4);
        standalone_block(B, SB_QPOS, qpos, 2);
        standalone_block(B, SB_KVPOS, kvpos, 2);
    }
    if (f->sink != IR_NONE) {
        IrRef sink[] = {f->sink, f->sink_fault};
        standalone_block(B, SB_SINK, sink, 2);
    }
}

static void build_blocks(Builder *B) {
    const IrFunc *f = B->p->f;
    Schedule *s = B->s;
    lowrank_counts(B, &B->scratch);
    lowrank_counts(B, &B->item);
    lowrank_columns(B, &B->row, 1);
    if (f->lse_offset != IR_NONE) {
        sched_need(B, &B->row, f->lse_offset);
        sched_push_step(B, B->row.out, STEP_LSE_OFFSET, f->lse_offset, 0);
    }
    /* the band (pass_band.c): values of the row, in slots for the element loop */
    for (int i = 0; i < 2; i++) {
        IrRef r = i ? s->band_hi : s->band_lo;
        if (r == IR_NONE || sched_is_leaf(ir_at(B->m, r))) continue;
        sched_need(B, &B->row, r);
        if (s->loop_of[r] == SL_ROW) export_to_slot(B, &B->row, r);
    }
    lowrank_columns(B, &B->col, 0);
    /* the element blocks go last: they add the row and kv values they read */
    element_blocks(B, 1);
    element_blocks(B, 0);
    if (B->p->needs_fault) fault_blocks(B);
    v2_blocks(B);
    s->block[SB_PRE].result = f->bias;
    s->block[SB_FAULT].result = s->block[SB_FAULT_PARTIAL].result = B->p->needs_fault ? f->fault : IR_NONE;
    s->block[SB_KEEP].result = B->p->needs_mask ? f->keep : IR_NONE;
    s->block[SB_VALUE_PARTIAL].result = s->block[SB_VALUE_FULL].result = B->p->softmax ? f->score : f->weight;
}

int sched_init_tables(Arena *arena, Schedule *s, const IrModule *m) {
    int nodes = m->n;
    memset(s, 0, sizeof *s);
    s->m = m;
    s->slot_of = arena_alloc(arena, sizeof(int) * (size_t)(nodes + 1));
    s->loop_of = arena_alloc(arena, sizeof(SchedLoop) * (size_t)(nodes + 1));
    s->diag_nodes = arena_alloc(arena, sizeof(IrRef) * (size_t)(nodes + 1));
    s->row_slots = arena_alloc(arena, sizeof(IrRef) * (size_t)(nodes + 1));
    s->col_slots = arena_alloc(arena, sizeof(IrRef) * (size_t)(nodes + 1));
    if (!s->slot_of || !s->loop_of || !s->diag_nodes || !s->row_slots || !s->col_slots) return 0;
    for (int i = 0; i <= nodes; i++) {
        s->slot_of[i] = -1;
        s->loop_of[i] = SL_ELEM;
    }
    static const SchedLoop loops[SB_COUNT] = {SL_CALL, SL_ITEM, SL_ROW,  SL_COL,  SL_ELEM, SL_ELEM,
                                              SL_ELEM, SL_ELEM, SL_ELEM, SL_ROW,  SL_COL,  SL_ELEM,
                                              SL_TILE, SL_CALL, SL_CALL, SL_CALL, SL_CALL};
    for (int b = 0; b < SB_COUNT; b++) {
        s->block[b].loop = loops[b];
        s->block[b].result = IR_NONE;
    }
    return 1;
}

int sched_scopes_init(Builder *B, Schedule *s, int nodes) {
    return sched_scope_init(&B->scratch, SL_CALL, &s->block[SB_SCRATCH], nodes) &&
           sched_scope_init(&B->item, SL_ITEM, &s->block[SB_ITEM], nodes) &&
           sched_scope_init(&B->row, SL_ROW, &s->block[SB_ROW], nodes) &&
           sched_scope_init(&B->col, SL_COL, &s->block[SB_COL], nodes) &&
           sched_scope_init(&B->elem, SL_ELEM, &s->block[SB_PRE], nodes) &&
           sched_scope_init(&B->diag, SL_TILE, &s->block[SB_DIAG], nodes);
}

void sched_scopes_free(Builder *B) {
    sched_scope_free(&B->scratch);
    sched_scope_free(&B->item);
    sched_scope_free(&B->row);
    sched_scope_free(&B->col);
    sched_scope_free(&B->elem);
    sched_scope_free(&B->diag);
}

static Schedule *build_attempt(Arena *arena, const Plan *p, int heads_in_rows) {
    int nodes = p->ir->n;
    Schedule *s = arena_alloc(arena, sizeof *s);
    if (!s || !sched_init_tables(arena, s, p->ir)) return NULL;
    s->nlowrank = p->f->nlowrank;
    s->softmax = p->softmax;
    for (int i = 0; i < 4; i++) s->diag_grid[i] = p->diag_grid[i];
    s->lse_offset = p->f->lse_offset != IR_NONE;
    s->needs_mask = p->needs_mask;
    s->needs_fault = p->needs_fault;
    s->group_by_b = p->mask_varies_b;
    s->group_by_h = p->mask_varies_h;
    s->vec_width = p->vec_width;
    s->bq = p->bq;
    s->bk = p->bk;
    s->band_lo = p->needs_mask ? p->band_lo : IR_NONE;
    s->band_hi = p->needs_mask ? p->band_hi : IR_NONE;

    Builder B;
    memset(&B, 0, sizeof B);
    B.arena = arena;
    B.p = p;
    B.m = p->ir;
    B.s = s;
    B.heads_in_rows = heads_in_rows;
    B.why = s->why;
    B.why_len = sizeof s->why;
    if (!sched_scopes_init(&B, s, nodes)) B.nomem = 1;
    if (!sched_failed(&B)) build_blocks(&B);
    sched_scopes_free(&B);
    if (B.nomem) return NULL;
    if (!s->why[0]) {
        char broken[sizeof s->why - 40];
        int rc = sched_verify(s, p->f, broken, sizeof broken);
        if (rc < 0) return NULL;
        if (rc) snprintf(s->why, sizeof s->why, "internal error: %s", broken);
    }
    if (s->why[0]) { /* no partial steps: a backend must not translate half a schedule */
        for (int b = 0; b < SB_COUNT; b++) s->block[b].nsteps = 0;
        s->nrow_slots = s->ncol_slots = 0;
    }
    return s;
}

/* Whether a step of a loop other than row and elem computes a value of the
 * query head h (the kv values of a head, its low-rank K columns). */
static int heads_outside_rows(const Schedule *s) {
    for (int b = 0; b < SB_COUNT; b++) {
        if (s->block[b].loop == SL_ROW || s->block[b].loop == SL_ELEM || sched_block_standalone((SchedBlockId)b)) continue;
        for (int i = 0; i < s->block[b].nsteps; i++) {
            IrRef r = s->block[b].steps[i].node;
            if (r != IR_NONE && (ir_at(s->m, r)->deps & DEP_H)) return 1;
        }
    }
    return 0;
}

/* The values of h in the row loop when that works, so that a work item may
 * hold several query heads; else (h read by kv values) in the item loop. */
Schedule *sched_build(Arena *arena, const Plan *p) {
    Schedule *s = build_attempt(arena, p, 1);
    if (!s) return NULL;
    if (!s->why[0] && !heads_outside_rows(s) && s->ndiag == 0) {
        s->pack_heads = !s->group_by_h;
        return s;
    }
    return build_attempt(arena, p, 0);
}

/* ---- reading the schedule ------------------------------------------------------ */

SchedHome sched_home(const Schedule *s, SchedBlockId b, IrRef r) {
    const IrNode *n = ir_at(s->m, r);
    if (sched_is_leaf(n)) return SH_LEAF;
    if (n->sumvars || s->block[b].loop != SL_ELEM) return SH_LOCAL;
    SchedLoop lv = s->loop_of[r];
    if (lv == SL_ROW) return SH_ROW_SLOT;
    if (lv == SL_COL) return SH_COL_SLOT;
    return SH_LOCAL;
}

void sched_group_strides(const Schedule *s, int64_t H, int64_t *sb, int64_t *sh) {
    *sh = s->group_by_h ? 1 : 0;
    *sb = s->group_by_b ? (s->group_by_h ? H : 1) : 0;
}

const char *sched_loop_name(SchedLoop l) {
    static const char *const names[SL_COUNT] = {"call", "item", "row", "tile", "col", "elem", "finish"};
    return l >= 0 && l < SL_COUNT ? names[l] : "?";
}

const char *sched_block_name(SchedBlockId b) {
    static const char *const names[SB_COUNT] = {"scratch", "item", "row",           "col",        "pre",      "fault",
                                                "keep",    "value.partial", "value.full", "row.fault", "col.fault",
                                                "fault.partial", "diag", "rotary", "qpos", "kvpos", "sink"};
    return b >= 0 && b < SB_COUNT ? names[b] : "?";
}

/* ---- printing --------------------------------------------------------------------- */

/* Whether body is the body of a grid table (IR_DIAG aux DIAG_GRID): for the dump only. */
static int stores_grid(const IrModule *m, IrRef body) {
    for (IrRef r = 0; r < m->n; r++)
        if (m->nodes[r].op == IR_DIAG && m->nodes[r].aux == DIAG_GRID && m->nodes[r].args[0] == body) return 1;
    return 0;
}

void sched_print_block(const IrModule *m, const SchedBlock *blk, const char *name, StrBuf *out) {
    if (blk->nsteps == 0 && blk->result == IR_NONE) return;
    sb_printf(out, "  %s (loop %s):", name, sched_loop_name(blk->loop));
    if (blk->result != IR_NONE) sb_printf(out, " result %%%d", blk->result);
    sb_printf(out, "\n");
    sched_print_steps(m, blk, 2, out);
}

void sched_print_steps(const IrModule *m, const SchedBlock *blk, int depth, StrBuf *out) {
    for (int i = 0; i < blk->nsteps; i++) {
        const SchedStep *st = &blk->steps[i];
        if (st->op == STEP_SUM_CLOSE || st->op == STEP_LOWRANK_CLOSE) depth--;
        sb_printf(out, "%*s", depth * 2, "");
        switch (st->op) {
        case STEP_VALUE:
            if (ir_at(m, st->node)->op == IR_DIAG)
                sb_printf(out, "%%%d = diag table at %s\n", st->node,
                          ir_at(m, st->node)->aux == DIAG_GRID ? "the cells' offsets" : "kv - q");
            else
                sb_printf(out, "%%%d = %s\n", st->node, ir_op_name(ir_at(m, st->node)->op));
            break;
        case STEP_SUM_OPEN:
            sb_printf(out, "open %s %%%d: r%d < %%%d\n", ir_at(m, st->node)->op == IR_ANY ? "any" : "sum", st->node,
                      st->aux, ir_at(m, st->node)->args[0]);
            break;
        case STEP_SUM_CLOSE:
            sb_printf(out, "close %%%d %s %%%d\n", st->node, ir_at(m, st->node)->op == IR_ANY ? "|=" : "+=",
                      ir_at(m, st->node)->args[1]);
            break;
        case STEP_EXPORT:
            sb_printf(out, "%s slot %d = %%%d\n", sched_loop_name(blk->loop), st->aux, st->node);
            break;
        case STEP_LOWRANK_COUNT: sb_printf(out, "low-rank group %d: %%%d columns\n", st->aux, st->node); break;
        case STEP_LOWRANK_LIMIT: sb_printf(out, "low-rank columns at most %d\n", SCHED_MAX_LOWRANK_COLS); break;
        case STEP_LOWRANK_OPEN: sb_printf(out, "open low-rank group %d: r0 < its columns\n", st->aux); break;
        case STEP_LOWRANK_STORE: sb_printf(out, "column %d + r0 = %%%d\n", st->aux, st->node); break;
        case STEP_LOWRANK_CLOSE: sb_printf(out, "close low-rank group %d\n", st->aux); break;
        case STEP_LSE_OFFSET: sb_printf(out, "lse offset = %%%d\n", st->node); break;
        case STEP_DIAG_STORE:
            sb_printf(out, "diag table %d at %s = %%%d\n", st->aux, stores_grid(m, st->node) ? "this corner and row" : "kv - q",
                      st->node);
            break;
        }
        if (st->op == STEP_SUM_OPEN || st->op == STEP_LOWRANK_OPEN) depth++;
    }
}

void sched_print(const Schedule *s, StrBuf *out) {
    sb_printf(out, "schedule (forward):\n");
    if (s->why[0]) sb_printf(out, "  no kernel can compute this plan: %s\n", s->why);
    sb_printf(out, "  loops: item (b, h, q tile of %d) > row > tile (of %d kv, from the tile map) > col, elem; finish per row\n",
              s->bq, s->bk);
    sb_printf(out, "  tile group of (b, h): %s\n",
              s->group_by_b ? (s->group_by_h ? "b * H + h" : "b") : (s->group_by_h ? "h" : "0"));
    sb_printf(out, "  heads per item: %s\n",
              s->pack_heads ? "several of one kv head may be packed as rows (h is a row value)" : "one");
    sb_printf(out, "  normalise: %s\n",
              s->softmax ? "online softmax in the log2 domain, O = acc / l, LSE = m ln 2 + log l" : "weight clause: O = acc, LSE = log l");
    sb_printf(out, "  empty row (O = 0, LSE = -inf): nothing kept%s%s\n", s->softmax ? ", or the running max is -inf" : "",
              s->lse_offset ? ", or the LSE offset is NaN or -inf" : "");
    sb_printf(out, "  vectors of %d floats; %d row slot%s, %d col slot%s\n", s->vec_width, s->nrow_slots,
              s->nrow_slots == 1 ? "" : "s", s->ncol_slots, s->ncol_slots == 1 ? "" : "s");
    if (s->band_lo != IR_NONE)
        sb_printf(out, "  band of keys per row: %%%d <= kv <= %%%d (PARTIAL tiles may skip the keys outside)\n",
                  s->band_lo, s->band_hi);
    if (s->ndiag && s->diag_grid[0])
        sb_printf(out, "  grid tables: %d, filled per row block and kv tile over the row and column offsets of its cells "
                  "(q tile %d x %d, kv tile %d x %d)\n", s->ndiag, s->diag_grid[0], s->diag_grid[1], s->diag_grid[2],
                  s->diag_grid[3]);
    else if (s->ndiag)
        sb_printf(out, "  diagonal tables: %d, filled per row block and kv tile over its distances kv - q\n", s->ndiag);
    for (int b = 0; b < SB_COUNT; b++) sched_print_block(s->m, &s->block[b], sched_block_name((SchedBlockId)b), out);
}
