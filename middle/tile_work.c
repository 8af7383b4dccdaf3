/* tile_work.c — the bound on the work one call can take, checked before
 * any backend starts it (tile_check_work in plan.h).
 * Requires: a Plan and the call's BoundCall.  Produces: ATTNC_OK, or
 * ATTNC_ERR_RUNTIME naming the sum whose iterations, or the total of sum-body
 * evaluations, bounded by the interval analysis of tiles.c (tile_ival.h)
 * over the whole call, is beyond the limits below. */
#include <stdio.h>
#include <stdlib.h>

#include "plan.h"
#include "tile_ival.h"

/* ---- the work a call can take ------------------------------------------ */

/* A sum may run at most this many iterations per evaluation, and one call
 * at most CALL_WORK_LIMIT evaluations of sum bodies in all (upper bounds
 * from the intervals over the whole call): beyond either the call would run
 * for hours or days, so it is refused before it starts.  Why these values:
 * docs/language-choices.md. */
static const int64_t SUM_TRIP_LIMIT = INT32_MAX;
static const int64_t CALL_WORK_LIMIT = (int64_t)1 << 50;

typedef struct Work {
    Analysis *an;
    int64_t *memo;     /* work of nodes that read no unbound sum variable; -1: not yet */
    const char *clause; /* the root being walked, for the message */
    IrRef worst;       /* the sum with the most iterations, its count and clause */
    int64_t worst_trips;
    const char *worst_clause;
} Work;

static int64_t sat_add(int64_t a, int64_t b) { return a > INT64_MAX - b ? INT64_MAX : a + b; }
static int64_t sat_mul(int64_t a, int64_t b) { return a && b > INT64_MAX / a ? INT64_MAX : a * b; }

/* Sum-body evaluations one evaluation of r can cost, with the sum variables'
 * ranges in an->sumvar; lazy operators count only a branch that can run. */
static int64_t node_work(Work *w, IrRef r) {
    const IrNode *n = ir_at(w->an->p->ir, r);
    int memo = !(n->deps & DEP_SUMVAR);
    if (memo && w->memo[r] >= 0) return w->memo[r];
    int64_t total = 0;
    if (n->op == IR_SUM || n->op == IR_ANY) {
        Ival bound = ival_eval(w->an, n->args[0]);
        int64_t trips = bound.hi > 0 ? bound.hi : 0;
        if (trips > w->worst_trips) w->worst = r, w->worst_trips = trips, w->worst_clause = w->clause;
        total = node_work(w, n->args[0]);
        if (trips > 0) {
            Ival saved = n->aux < 64 ? w->an->sumvar[n->aux] : ival_int(0, 0);
            if (n->aux < 64) w->an->sumvar[n->aux] = ival_int(0, trips - 1);
            total = sat_add(total, sat_mul(trips, sat_add(1, node_work(w, n->args[1]))));
            if (n->aux < 64) w->an->sumvar[n->aux] = saved;
        }
    } else if (n->op == IR_SELECT || n->op == IR_AND || n->op == IR_OR) {
        Ival c = ival_eval(w->an, n->args[0]);
        total = node_work(w, n->args[0]);
        int first = n->op == IR_SELECT ? c.hi != 0 : n->op == IR_AND ? c.hi != 0 : c.lo != 1;
        int second = n->op == IR_SELECT ? c.lo != 1 : 0;
        if (n->op == IR_SELECT) {
            if (first) total = sat_add(total, node_work(w, n->args[1]));
            if (second) total = sat_add(total, node_work(w, n->args[2]));
        } else if (first) {
            total = sat_add(total, node_work(w, n->args[1]));
        }
    } else {
        for (int i = 0; i < n->nargs; i++) total = sat_add(total, node_work(w, n->args[i]));
    }
    if (memo) w->memo[r] = total;
    return total;
}

static const char *var_names_of(int v) {
    static const char *const names[V_COUNT] = {"b", "h", "q", "kv", "hk", "B", "H", "Hkv", "Lq", "Lk", "D", "Dv"};
    return v >= 0 && v < V_COUNT ? names[v] : "?";
}

/* "sum(r < n) with n = 5" or "a sum whose bound can reach 5", for messages. */
static void describe_sum(const Work *w, char *buf, size_t size) {
    const IrModule *m = w->an->p->ir;
    const IrNode *b = ir_at(m, ir_at(m, w->worst)->args[0]);
    long long n = (long long)w->worst_trips;
    if (b->op == IR_PARAM)
        snprintf(buf, size, "sum(r < %s) with %s = %lld", m->attn->params[b->aux]->name,
                 m->attn->params[b->aux]->name, n);
    else if (b->op == IR_VAR)
        snprintf(buf, size, "sum(r < %s) with %s = %lld", var_names_of(b->aux), var_names_of(b->aux), n);
    else
        snprintf(buf, size, "a sum whose bound can reach %lld", n);
}

/* Refuse a call whose sums could run too long (plan.h says the limits). */
attnc_status tile_check_work(const Plan *p, const BoundCall *bc, attnc_error *err) {
    const attnc_sizes *sz = &bc->sz;
    const IrFunc *f = p->f;
    int sums = f->nlowrank > 0;
    for (IrRef r = 0; r < p->ir->n && !sums; r++) sums = p->ir->nodes[r].op == IR_SUM || p->ir->nodes[r].op == IR_ANY;
    if (!sums) return ATTNC_OK; /* no work beyond the pairs themselves, and no tensor to scan */
    Analysis an;
    int ok = ival_analysis_init(&an, p, bc);
    Work w = {&an, malloc(sizeof(int64_t) * (size_t)p->ir->n + 1), NULL, IR_NONE, 0, NULL};
    ok = ok && w.memo;
    int64_t total = 0, rows = sz->B * sz->H * sz->Lq;
    if (ok && rows > 0) {
        for (IrRef r = 0; r < p->ir->n; r++) w.memo[r] = -1;
        /* every element of the call at once */
        an.vars[V_B] = ival_int(0, sz->B - 1);
        an.vars[V_H] = ival_int(0, sz->H - 1);
        an.vars[V_HK] = ival_int(0, sz->Hkv - 1);
        an.vars[V_Q] = ival_int(0, sz->Lq - 1);
        an.vars[V_KV] = ival_int(0, sz->Lk > 0 ? sz->Lk - 1 : 0);
        const struct {
            const char *clause;
            IrRef r;
        } roots[] = {{"scale", f->scale}, {"masks", f->keep}, {"biases", f->bias}, {"score clauses", f->score},
                     {"weight", f->weight}, {"biases or score clauses", f->lse_offset}, {"runtime checks", f->fault}};
        for (size_t i = 0; i < sizeof roots / sizeof roots[0]; i++) {
            if (roots[i].r == IR_NONE) continue;
            w.clause = roots[i].clause;
            total = sat_add(total, node_work(&w, roots[i].r));
        }
        w.clause = "biases";
        for (int g = 0; g < f->nlowrank; g++) {
            /* the low-rank groups are sums too: r < count of q-term times k-term */
            Ival count = ival_eval(&an, f->lowrank_count[g]);
            int64_t trips = count.hi > 0 ? count.hi : 0;
            if (trips > w.worst_trips) w.worst = IR_NONE, w.worst_trips = trips, w.worst_clause = "biases";
            an.sumvar[0] = ival_int(0, trips > 0 ? trips - 1 : 0);
            int64_t body = sat_add(1, sat_add(node_work(&w, f->lowrank_q[g]), node_work(&w, f->lowrank_k[g])));
            total = sat_add(total, sat_add(node_work(&w, f->lowrank_count[g]), sat_mul(trips, body)));
        }
        total = sat_mul(total, sat_mul(rows, sz->Lk > 0 ? sz->Lk : 1));
    }
    ival_analysis_free(&an);
    char what[200];
    if (ok && w.worst_trips > SUM_TRIP_LIMIT) {
        if (w.worst != IR_NONE) describe_sum(&w, what, sizeof what);
        else snprintf(what, sizeof what, "a low-rank sum whose bound can reach %lld", (long long)w.worst_trips);
    }
    free(w.memo);
    if (!ok) return set_error(err, ATTNC_ERR_NOMEM, "out of memory while bounding the work of the call");
    if (w.worst_trips > SUM_TRIP_LIMIT)
        return set_error(err, ATTNC_ERR_RUNTIME, "%s (in the %s) would run more than %lld iterations per evaluation; "
                         "refused before running", what, w.worst_clause, (long long)SUM_TRIP_LIMIT);
    if (total > CALL_WORK_LIMIT)
        return set_error(err, ATTNC_ERR_RUNTIME, "the sums of this call would evaluate their bodies up to %lld times "
                         "(sizes x iterations); the limit is 2^50: refused before running", (long long)total);
    return ATTNC_OK;
}
