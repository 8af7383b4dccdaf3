/* plan_run.c — the kernel plan executed by a scalar reference in float64
 * (backend "refplan").  Requires: a Plan, a BoundCall, a TileMap.
 * Produces: O and LSE exactly as a compiled kernel must compute them —
 * visiting only the tiles the map lists, skipping the mask on FULL tiles,
 * low-rank columns riding with the dot product, online softmax in the log2
 * domain, lse_offset added per row — but without vectors or threads.  Its
 * purpose is to test the middle end: any difference from the interpreter is
 * a bug in a pass, in the tile analysis or in the plan. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "interp.h"
#include "ir_passes.h"
#include "plan.h"
#include "plan_run.h"

typedef struct Row {
    double m, l;   /* running max (log2 domain) and sum */
    double *acc;   /* Dv */
    int any;
} Row;

/* Low-rank contribution sum_g sum_r fq(q, r) * gk(kv, r) for one element. */
static double lowrank_term(IrEval *ev, const IrFunc *f, const int64_t *counts) {
    double t = 0;
    for (int g = 0; g < f->nlowrank; g++)
        for (int64_t r = 0; r < counts[g]; r++) {
            ev->sumvar[0] = r;
            ir_eval_reset(ev);
            t += ir_eval(ev, f->lowrank_q[g]).f * ir_eval(ev, f->lowrank_k[g]).f;
        }
    ir_eval_reset(ev);
    return t;
}

/* One element; returns 0 when kept, 1 when masked, -1 on a runtime error. */
static int element(IrEval *ev, const Plan *p, int mode, const float *qrow, const float *krow, int64_t D,
                   double scale, const int64_t *counts, double *score) {
    const IrFunc *f = p->f;
    ir_eval_reset(ev);
    if (p->needs_fault && ir_eval(ev, f->fault).b) return -1;
    if (mode == TILE_PARTIAL && !ir_eval(ev, f->keep).b) return 1;
    double dot = 0;
    for (int64_t d = 0; d < D; d++) dot += (double)qrow[d] * (double)krow[d];
    double bias = ir_eval(ev, f->bias).f;
    double low = f->nlowrank ? lowrank_term(ev, f, counts) : 0;
    ev->pre = scale * dot + bias + low;
    ir_eval_reset(ev);
    *score = p->softmax ? ir_eval(ev, f->score).f : ir_eval(ev, f->weight).f;
    return 0;
}

static void finish_row(const Plan *p, Row *row, double offset, int has_offset, int64_t Dv, double *o, double *lse) {
    const double ln2 = 0.69314718055994530942;
    if (!row->any || (p->softmax && row->m == -INFINITY) || (has_offset && (isnan(offset) || offset == -INFINITY))) {
        for (int64_t d = 0; d < Dv; d++) o[d] = 0;
        *lse = -INFINITY;
        return;
    }
    if (p->softmax) {
        for (int64_t d = 0; d < Dv; d++) o[d] = row->acc[d] / row->l;
        *lse = row->m * ln2 + log(row->l) + (has_offset ? offset : 0);
    } else {
        for (int64_t d = 0; d < Dv; d++) o[d] = row->acc[d];
        *lse = log(row->l);
    }
}

/* Online softmax in the log2 domain: m tracks max(s * log2 e). */
static void accumulate(const Plan *p, Row *row, double s, const float *vrow, int64_t Dv) {
    const double log2e = 1.44269504088896340736;
    row->any = 1;
    if (!p->softmax) {
        row->l += s;
        for (int64_t d = 0; d < Dv; d++) row->acc[d] += s * (double)vrow[d];
        return;
    }
    double t = s * log2e;
    if (t > row->m) {
        double c = row->m == -INFINITY ? 0 : exp2(row->m - t);
        row->l *= c;
        for (int64_t d = 0; d < Dv; d++) row->acc[d] *= c;
        row->m = t;
    }
    if (t == -INFINITY) return;
    double w = exp2(t - row->m);
    row->l += w;
    for (int64_t d = 0; d < Dv; d++) row->acc[d] += w * (double)vrow[d];
}

attnc_status plan_run(const Plan *p, const BoundCall *bc, const float *q, const float *k, const float *v, float *o,
                      float *lse, attnc_error *err) {
    const attnc_sizes *sz = &bc->sz;
    TileMap tm;
    attnc_status st = tile_map_build(p, bc, &tm, err);
    if (st) return st;
    size_t rows = (size_t)(sz->B * sz->H * sz->Lq);
    double *out = malloc(sizeof(double) * (rows * (size_t)sz->Dv + rows) + 1);
    double *acc = malloc(sizeof(double) * (size_t)sz->Dv + 1);
    int64_t *counts = calloc((size_t)p->f->nlowrank + 1, sizeof(int64_t));
    IrEval ev;
    int ev_ok = ir_eval_init(&ev, p->ir);
    if (!out || !acc || !counts || !ev_ok) {
        st = set_error(err, ATTNC_ERR_NOMEM, "out of memory in the plan reference");
        goto done;
    }
    ev.sz = *sz;
    ev.params = bc->params;
    ev.tensors = bc->tensors;
    int64_t(*dims)[ATTNC_MAX_RANK] = calloc((size_t)p->attn->ntensors + 1, sizeof *dims);
    if (!dims) {
        st = set_error(err, ATTNC_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int t = 0; t < p->attn->ntensors; t++)
        for (int d = 0; d < bc->tensors[t]->rank; d++) dims[t][d] = bc->tensors[t]->shape[d];
    ev.dims = (const int64_t(*)[ATTNC_MAX_RANK])dims;
    for (int g = 0; g < p->f->nlowrank; g++) counts[g] = ir_eval(&ev, p->f->lowrank_count[g]).i;
    int64_t group = sz->H / sz->Hkv;
    double *lse_out = out + rows * (size_t)sz->Dv;
    int failed = 0;
    for (int64_t b = 0; b < sz->B && !failed; b++)
        for (int64_t h = 0; h < sz->H && !failed; h++) {
            int64_t hk = h / group, grp = tile_group(p, &tm, b, h, sz->H);
            const float *kh = k + (b * sz->Hkv + hk) * sz->Lk * sz->D;
            const float *vh = v + (b * sz->Hkv + hk) * sz->Lk * sz->Dv;
            for (int64_t qi = 0; qi < sz->Lq && !failed; qi++) {
                size_t r = (size_t)((b * sz->H + h) * sz->Lq + qi);
                Row row = {-INFINITY, 0, acc, 0};
                memset(acc, 0, sizeof(double) * (size_t)sz->Dv);
                ev.b = b, ev.h = h, ev.hk = hk, ev.q = qi;
                int64_t t = grp * tm.nqt + qi / p->bq;
                for (int64_t e = tm.row_start[t]; e < tm.row_start[t + 1] && !failed; e++) {
                    int64_t k0 = (int64_t)tm.kv[e] * p->bk, k1 = k0 + p->bk < sz->Lk ? k0 + p->bk : sz->Lk;
                    for (int64_t kv = k0; kv < k1; kv++) {
                        ev.kv = kv;
                        double s;
                        int rc = element(&ev, p, tm.mode[e], q + r * (size_t)sz->D, kh + kv * sz->D, sz->D,
                                         bc->scale, counts, &s);
                        if (rc < 0) {
                            failed = 1;
                            break;
                        }
                        if (rc == 0) accumulate(p, &row, s, vh + kv * sz->Dv, sz->Dv);
                    }
                }
                double offset = 0;
                if (p->f->lse_offset != IR_NONE) {
                    ev.kv = 0;
                    ir_eval_reset(&ev);
                    offset = ir_eval(&ev, p->f->lse_offset).f;
                }
                finish_row(p, &row, offset, p->f->lse_offset != IR_NONE, sz->Dv, out + r * (size_t)sz->Dv,
                           &lse_out[r]);
            }
        }
    free(dims);
    if (failed) {
        /* the interpreter stops at the first error in the spec's order and names it */
        float *scratch_o = malloc(sizeof(float) * (rows * (size_t)sz->Dv + 1));
        st = scratch_o ? interp_run(bc, q, k, v, scratch_o, NULL, err) : ATTNC_ERR_NOMEM;
        free(scratch_o);
        if (st == ATTNC_OK) st = set_error(err, ATTNC_ERR_INTERNAL, "the plan found a runtime error the interpreter did not");
        goto done;
    }
    for (size_t i = 0; i < rows * (size_t)sz->Dv; i++) o[i] = (float)out[i];
    if (lse)
        for (size_t i = 0; i < rows; i++) lse[i] = (float)lse_out[i];
done:
    ir_eval_free(&ev);
    free(out);
    free(acc);
    free(counts);
    tile_map_free(&tm);
    return st;
}
