/* grad_plan.c — the backward plan (grad_plan.h): its own straight pipeline
 * over the checked attention, d value / d pre, and one term per float
 * tensor read with its chain of enclosing sums.
 * Requires: a checked Attention.  Produces: a GradPlan in the arena.
 *
 * The terms are found level by level.  At the top (no sum open), every
 * float load and every float sum that reads no sum variable is a candidate:
 * a load gets a term with d value / d load and d bias / d load (ir_derive
 * follows paths through sums that do not bind what the load reads); a sum
 * whose body reads float loads of its own variable opens a level, with
 * d root / d sum as the outer coefficient.  Inside a level (the body of the
 * chain's last sum), the candidates are the loads and sums that read the
 * newest variable and only variables of the chain: anything reading fewer
 * was already counted one level up, through a derivative that sums over
 * this level's iterations. */
#include <stdlib.h>
#include <string.h>

#include "grad_plan.h"

typedef struct Collect {
    IrModule *m;
    int n0;              /* nodes before any derivative: candidates are among them */
    unsigned *floadvars; /* per node < n0: the sum variables of the float loads it reads */
    IrRef value, bias;
    GradTerm cur;        /* the chain being explored */
    GradTerm *terms;
    int nterms, cap;
    attnc_status st;
    attnc_error *err;
} Collect;

static unsigned level_bit(int level) { return 1u << (level < 31 ? level : 31); }

static int is_float_load(const IrNode *n) { return n->op == IR_LOAD && n->type == T_FLOAT; }

/* Loads and sums reachable from roots[0..n) that this level owns (see the file's comment), in node order. */
static IrRef *candidates(Collect *c, const IrRef *roots, int nroots, unsigned bound, int newest, int *count) {
    int top = 0;
    for (int i = 0; i < nroots; i++) top = roots[i] > top ? roots[i] : top;
    char *live = calloc((size_t)top + 1, 1);
    IrRef *out = malloc(sizeof(IrRef) * ((size_t)top + 1));
    if (!live || !out) {
        free(live);
        free(out);
        return NULL;
    }
    for (int i = 0; i < nroots; i++) live[roots[i]] = 1;
    for (int i = top; i >= 0; i--)
        if (live[i])
            for (int k = 0; k < ir_at(c->m, i)->nargs; k++) live[ir_at(c->m, i)->args[k]] = 1;
    int n = 0;
    for (int i = 0; i <= top; i++) {
        const IrNode *nd = ir_at(c->m, i);
        if (!live[i] || nd->type != T_FLOAT) continue;
        if ((nd->sumvars & ~bound) || (newest >= 0 && !(nd->sumvars & level_bit(newest)))) continue;
        int opens = nd->op == IR_SUM && (c->floadvars[nd->args[1]] & level_bit(nd->aux));
        if (is_float_load(nd) || opens) out[n++] = i;
    }
    free(live);
    *count = n;
    return out;
}

static int is_zero(const IrModule *m, IrRef r) {
    const IrNode *n = ir_at(m, r);
    return n->op == IR_CONST && n->type == T_FLOAT && n->c.f == 0.0;
}

static void add_term(Collect *c, IrRef load) {
    if (c->nterms == c->cap) {
        int cap = c->cap ? c->cap * 2 : 8;
        GradTerm *t = realloc(c->terms, sizeof *t * (size_t)cap);
        if (!t) {
            c->st = set_error(c->err, ATTNC_ERR_NOMEM, "out of memory while building the backward plan");
            return;
        }
        c->terms = t;
        c->cap = cap;
    }
    GradTerm *t = &c->terms[c->nterms++];
    *t = c->cur;
    t->tensor = ir_at(c->m, load)->aux;
    t->load = load;
}

static void level(Collect *c, int depth, unsigned bound, int newest);

/* Candidate x of the current level, whose coefficient is already in c->cur. */
static void follow(Collect *c, IrRef x, int depth, unsigned bound) {
    const IrNode *n = ir_at(c->m, x);
    if (n->op == IR_LOAD) {
        add_term(c, x);
        return;
    }
    if (depth == GRAD_MAX_CHAIN) {
        c->st = set_error(c->err, ATTNC_ERR_INTERNAL,
                          "a float tensor is read inside more than %d nested sums: the backward cannot be built",
                          GRAD_MAX_CHAIN);
        return;
    }
    c->cur.sums[depth] = x;
    c->cur.nsums = depth + 1;
    level(c, depth + 1, bound | level_bit(n->aux), n->aux);
    c->cur.nsums = depth;
}

/* The candidates of one level: the roots at depth 0, else the body of the chain's last sum. */
static void level(Collect *c, int depth, unsigned bound, int newest) {
    IrRef roots[2] = {c->value, c->bias};
    int nroots = 2;
    if (depth > 0) {
        roots[0] = ir_at(c->m, c->cur.sums[depth - 1])->args[1];
        nroots = 1;
    }
    int n = 0;
    IrRef *cand = candidates(c, roots, nroots, bound, newest, &n);
    if (!cand) {
        c->st = set_error(c->err, ATTNC_ERR_NOMEM, "out of memory while building the backward plan");
        return;
    }
    for (int i = 0; i < n && !c->st; i++) {
        if (depth == 0) {
            IrRef dv, db;
            if ((c->st = ir_derive(c->m, c->value, cand[i], &dv, c->err))) break;
            if ((c->st = ir_derive(c->m, c->bias, cand[i], &db, c->err))) break;
            if (is_zero(c->m, dv) && is_zero(c->m, db)) continue;
            c->cur.dvalue = dv;
            c->cur.dbias = db;
        } else {
            IrRef di;
            if ((c->st = ir_derive(c->m, roots[0], cand[i], &di, c->err))) break;
            if (is_zero(c->m, di)) continue;
            c->cur.inner[depth - 1] = di;
        }
        follow(c, cand[i], depth, bound);
    }
    free(cand);
}

/* What a compiled backward evaluates must read only the variables of the loops around it. */
static attnc_status check_terms(const GradPlan *gp, const GradTerm *terms, int nterms, attnc_error *err) {
    const IrModule *m = gp->ir;
    if (ir_at(m, gp->dvalue_dpre)->sumvars)
        return set_error(err, ATTNC_ERR_INTERNAL, "d value / d pre reads a sum variable outside its sum");
    for (int i = 0; i < nterms; i++) {
        const GradTerm *t = &terms[i];
        unsigned open = 0;
        int bad = (ir_at(m, t->dvalue)->sumvars | ir_at(m, t->dbias)->sumvars) != 0;
        for (int k = 0; k < t->nsums; k++) {
            bad |= (ir_at(m, ir_at(m, t->sums[k])->args[0])->sumvars & ~open) != 0;
            open |= level_bit(ir_at(m, t->sums[k])->aux);
            bad |= (ir_at(m, t->inner[k])->sumvars & ~open) != 0;
        }
        bad |= (ir_at(m, t->load)->sumvars & ~open) != 0;
        if (bad)
            return set_error(err, ATTNC_ERR_INTERNAL,
                             "the gradient of tensor '%s' (node %%%d) reads a sum variable outside its loops",
                             m->attn->tensors[t->tensor]->name, t->load);
    }
    return ATTNC_OK;
}

/* The terms of root `value` (and `bias`) into *terms, *nterms (arena memory). */
static attnc_status collect_terms(Arena *arena, GradPlan *gp, IrRef value, IrRef bias, GradTerm **terms, int *nterms,
                                  attnc_error *err) {
    IrModule *m = gp->ir;
    Collect c = {m, m->n, NULL, value, bias, {0}, NULL, 0, 0, ATTNC_OK, err};
    c.floadvars = calloc((size_t)m->n + 1, sizeof(unsigned));
    if (!c.floadvars) return set_error(err, ATTNC_ERR_NOMEM, "out of memory while building the backward plan");
    for (int i = 0; i < m->n; i++) {
        const IrNode *n = ir_at(m, i);
        unsigned v = is_float_load(n) ? n->sumvars : 0;
        for (int k = 0; k < n->nargs; k++) v |= c.floadvars[n->args[k]];
        c.floadvars[i] = v;
    }
    level(&c, 0, 0, -1);
    free(c.floadvars);
    if (!c.st && c.nterms) {
        *terms = arena_alloc(arena, sizeof(GradTerm) * (size_t)c.nterms);
        if (*terms) memcpy(*terms, c.terms, sizeof(GradTerm) * (size_t)c.nterms);
        else c.st = set_error(err, ATTNC_ERR_NOMEM, "out of memory while building the backward plan");
        *nterms = *terms ? c.nterms : 0;
    }
    free(c.terms);
    return c.st;
}

/* The sink's terms: d sink / d load (a float 0 stands for the bias, whose
 * derivative is 0).  Only out of memory fails the plan (grad_plan.h). */
static attnc_status sink_terms(Arena *arena, GradPlan *gp, attnc_error *err) {
    attnc_error why = {0};
    attnc_status st = collect_terms(arena, gp, gp->f->sink, ir_float(gp->ir, 0.0), &gp->sink_terms,
                                    &gp->nsink_terms, &why);
    if (!st) st = check_terms(gp, gp->sink_terms, gp->nsink_terms, &why);
    if (st == ATTNC_ERR_NOMEM) return set_error(err, st, "%s", why.message);
    if (st) {
        gp->nsink_terms = 0;
        gp->sink_error = arena_strdup(arena, why.message);
        if (!gp->sink_error) return set_error(err, ATTNC_ERR_NOMEM, "out of memory while building the backward plan");
    }
    return ATTNC_OK;
}

attnc_status grad_plan_build(Arena *arena, const Attention *a, const int *is_fixed, const Const *fixed,
                             GradPlan **out, attnc_error *err) {
    *out = NULL;
    GradPlan *gp = arena_alloc(arena, sizeof *gp);
    if (!gp) return set_error(err, ATTNC_ERR_NOMEM, "out of memory while building the backward plan");
    memset(gp, 0, sizeof *gp);
    gp->ir = ir_new(arena, a);
    gp->f = gp->ir ? ir_build(gp->ir, a) : NULL;
    if (!gp->f) return set_error(err, ATTNC_ERR_NOMEM, "out of memory while building the backward plan");
    /* the forward's pipeline up to where it starts moving bias terms out of `bias` */
    /* a pass that ran out of memory may leave a root IR_NONE: the next must not run */
    pass_specialize(gp->ir, gp->f, is_fixed, fixed);
    if (!gp->ir->failed) pass_fold(gp->ir, gp->f);
    if (!gp->ir->failed && pass_mask_facts(gp->ir, gp->f) && !gp->ir->failed) pass_fold(gp->ir, gp->f);
    if (gp->ir->failed) return set_error(err, ATTNC_ERR_NOMEM, "out of memory while building the backward plan");
    gp->value = gp->f->weight != IR_NONE ? gp->f->weight : gp->f->score;
    IrRef pre = ir_node(gp->ir, IR_PRE, T_FLOAT, 0, (Const){0}, 0, NULL);
    attnc_status st = ir_derive(gp->ir, gp->value, pre, &gp->dvalue_dpre, err);
    if (!st) st = collect_terms(arena, gp, gp->value, gp->f->bias, &gp->terms, &gp->nterms, err);
    if (!st) st = check_terms(gp, gp->terms, gp->nterms, err);
    if (!st && gp->f->sink != IR_NONE) st = sink_terms(arena, gp, err);
    if (!st) *out = gp;
    return st;
}

/* ---- printing ---------------------------------------------------------- */

static void print_term(const GradPlan *gp, const GradTerm *t, const char *prefix, StrBuf *out) {
    const IrModule *m = gp->ir;
    const IrNode *load = ir_at(m, t->load);
    sb_printf(out, "  %sd %s[", prefix, m->attn->tensors[t->tensor]->name);
    for (int k = 0; k < load->nargs; k++) sb_printf(out, "%s%%%d", k ? ", " : "", load->args[k]);
    int both = !is_zero(m, t->dvalue) && !is_zero(m, t->dbias);
    sb_printf(out, "] += %s", both && t->nsums ? "(" : "");
    if (!is_zero(m, t->dvalue)) sb_printf(out, "g * %%%d", t->dvalue);
    if (both) sb_printf(out, " + ");
    if (!is_zero(m, t->dbias)) sb_printf(out, "gpre * %%%d", t->dbias);
    sb_printf(out, "%s", both && t->nsums ? ")" : "");
    for (int k = 0; k < t->nsums; k++) {
        const IrNode *s = ir_at(m, t->sums[k]);
        sb_printf(out, " * [for each r%d < %%%d of sum %%%d] %%%d", s->aux, s->args[0], t->sums[k], t->inner[k]);
    }
    sb_printf(out, "\n");
}

void grad_plan_print(const GradPlan *gp, StrBuf *out) {
    const IrFunc *f = gp->f;
    int n = 8 + (gp->nterms + gp->nsink_terms) * (3 + 2 * GRAD_MAX_CHAIN);
    IrRef *roots = malloc(sizeof(IrRef) * (size_t)n);
    if (!roots) {
        out->failed = 1;
        return;
    }
    int k = 0;
    IrRef rootv[] = {f->keep, f->scale, f->bias, f->score, f->weight, f->fault, gp->dvalue_dpre};
    for (size_t i = 0; i < sizeof rootv / sizeof rootv[0]; i++) roots[k++] = rootv[i];
    for (int i = 0; i < gp->nterms + gp->nsink_terms; i++) {
        const GradTerm *t = i < gp->nterms ? &gp->terms[i] : &gp->sink_terms[i - gp->nterms];
        roots[k++] = t->load;
        roots[k++] = t->dvalue;
        roots[k++] = t->dbias;
        for (int j = 0; j < t->nsums; j++) {
            roots[k++] = t->sums[j];
            roots[k++] = t->inner[j];
        }
    }
    sb_printf(out, "backward:\n");
    sb_printf(out, "  (its own IR: pre = scale * dot + the whole bias; g = dL/d%s, gpre = g * dvalue_dpre)\n",
              f->weight != IR_NONE ? "weight" : "score");
    ir_print_nodes(gp->ir, roots, k, out);
    free(roots);
    static const char *const names[] = {"keep", "scale", "bias", "score", "weight", "fault"};
    for (int i = 0; i < 6; i++)
        if (rootv[i] != IR_NONE) sb_printf(out, "  %s = %%%d\n", names[i], rootv[i]);
    sb_printf(out, "  dvalue_dpre = %%%d\n", gp->dvalue_dpre);
    for (int i = 0; i < gp->nterms; i++) print_term(gp, &gp->terms[i], "", out);
    /* the sink's: g here is the row's dL/dsink */
    for (int i = 0; i < gp->nsink_terms; i++) print_term(gp, &gp->sink_terms[i], "sink (g = dL/dsink): ", out);
    if (gp->sink_error) sb_printf(out, "  sink: no terms: %s\n", gp->sink_error);
}
