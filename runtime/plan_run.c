/* plan_run.c — the kernel plan executed by a scalar reference in float64
 * (backend "refplan").  Requires: a Plan (call->kernel_data).
 * It is a kernel of the launch ABI (kernel_abi.h), run by launch.c like
 * every compiled backend, so it also exercises the driver and the threads.
 * Produces: O and LSE exactly as a compiled kernel must compute them —
 * visiting only the tiles the map lists, skipping the mask on FULL tiles,
 * low-rank columns riding with the dot product, online softmax in the log2
 * domain, lse_offset added per row — but without vectors or threads.  Its
 * purpose is to test the middle end: any difference from the interpreter is
 * a bug in a pass, in the tile analysis or in the plan. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ir_passes.h"
#include "plan.h"
#include "plan_run.h"
#include "registry.h"

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
static int element(IrEval *ev, const Plan *p, int mode, int check_faults, const float *qrow, const float *krow,
                   int64_t D, double scale, const int64_t *counts, double *score) {
    const IrFunc *f = p->f;
    /* the score first: the fault check may read it (a `?:` on the score
     * guarding a tensor read); every IR operation is total, so computing it
     * for an element that turns out masked or faulting is harmless */
    ir_eval_reset(ev);
    double dot = 0;
    for (int64_t d = 0; d < D; d++) dot += (double)qrow[d] * (double)krow[d];
    double bias = ir_eval(ev, f->bias).f;
    double low = f->nlowrank ? lowrank_term(ev, f, counts) : 0;
    ev->pre = scale * dot + bias + low;
    ir_eval_reset(ev);
    if (check_faults && ir_eval(ev, f->fault).b) return -1;
    if (mode == TILE_PARTIAL && !ir_eval(ev, f->keep).b) return 1;
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

/* Scratch: the row accumulator, low-rank counts, and the evaluator's memo. */
int64_t refplan_scratch_bytes(const AttnCall *c) {
    const Plan *p = c->kernel_data;
    return (int64_t)(sizeof(double) * (size_t)c->Dv + sizeof(int64_t) * (size_t)(p->f->nlowrank + 1) +
                     (sizeof(Const) + sizeof(unsigned)) * (size_t)(p->ir->n + 1) +
                     sizeof(Const) * (size_t)(p->attn->nparams + 1) +
                     (sizeof(attnc_tensor) + sizeof(void *)) * (size_t)(p->attn->ntensors + 1) + 64);
}

int refplan_tile(const AttnCall *c, int64_t b, int64_t h, int64_t qt, void *scratch) {
    const Plan *p = c->kernel_data;
    double *acc = scratch;
    int64_t *counts = (int64_t *)(acc + c->Dv);
    IrEval ev;
    memset(&ev, 0, sizeof ev);
    ev.m = p->ir;
    /* 8-byte items first, the 4-byte stamps last, so every part stays aligned */
    ev.memo = (Const *)(counts + p->f->nlowrank + 1);
    Const *params = ev.memo + p->ir->n + 1;
    attnc_tensor *tens = (attnc_tensor *)(params + p->attn->nparams + 1);
    const attnc_tensor **tptr = (const attnc_tensor **)(tens + p->attn->ntensors + 1);
    ev.stamp = (unsigned *)(tptr + p->attn->ntensors + 1);
    memset(ev.stamp, 0, sizeof(unsigned) * (size_t)(p->ir->n + 1));
    ev.gen = 1;
    ev.sz = (attnc_sizes){c->B, c->H, c->Hkv, c->Lq, c->Lk, c->D, c->Dv};
    /* params and tensors as the evaluator reads them */
    int np = p->attn->nparams, nt = p->attn->ntensors;
    for (int i = 0; i < np; i++) {
        Type t = p->attn->params[i]->type;
        if (t == T_FLOAT) params[i].f = c->params[i].f;
        else if (t == T_BOOL) params[i].b = (int)c->params[i].i;
        else params[i].i = c->params[i].i;
    }
    for (int i = 0; i < nt; i++) {
        memset(&tens[i], 0, sizeof tens[i]);
        tens[i].dtype = p->attn->tensors[i]->type == T_INT ? ATTNC_I32 : ATTNC_F32;
        tens[i].rank = p->attn->tensors[i]->ndims;
        tens[i].data = c->tensor_data[i];
        tptr[i] = &tens[i];
    }
    ev.params = params;
    ev.tensors = tptr;
    ev.dims = c->tensor_shape;
    for (int g = 0; g < p->f->nlowrank; g++) counts[g] = ir_eval(&ev, p->f->lowrank_count[g]).i;
    ir_eval_reset(&ev);
    double scale = ir_eval(&ev, p->f->scale).f;
    int64_t hk = h / (c->H / c->Hkv);
    int64_t grp = b * c->group_stride_b + h * c->group_stride_h;
    const float *kh = c->k + (b * c->Hkv + hk) * c->Lk * c->D;
    const float *vh = c->v + (b * c->Hkv + hk) * c->Lk * c->Dv;
    int64_t q0 = qt * c->bq, q1 = q0 + c->bq < c->Lq ? q0 + c->bq : c->Lq;
    int64_t t = grp * c->nqt + qt;
    for (int64_t qi = q0; qi < q1; qi++) {
        int64_t r = (b * c->H + h) * c->Lq + qi;
        Row row = {-INFINITY, 0, acc, 0};
        memset(acc, 0, sizeof(double) * (size_t)c->Dv);
        ev.b = b, ev.h = h, ev.hk = hk, ev.q = qi;
        for (int64_t e = c->row_start[t]; e < c->row_start[t + 1]; e++) {
            int64_t k0 = (int64_t)c->tile_kv[e] * c->bk, k1 = k0 + c->bk < c->Lk ? k0 + c->bk : c->Lk;
            for (int64_t kv = k0; kv < k1; kv++) {
                ev.kv = kv;
                double s;
                int rc = element(&ev, p, c->tile_mode[e], c->check_faults, c->q + r * c->D, kh + kv * c->D, c->D, scale, counts, &s);
                if (rc < 0) return 1;
                if (rc == 0) accumulate(p, &row, s, vh + kv * c->Dv, c->Dv);
            }
        }
        double offset = 0;
        if (p->f->lse_offset != IR_NONE) {
            ev.kv = 0;
            ir_eval_reset(&ev);
            offset = ir_eval(&ev, p->f->lse_offset).f;
        }
        double o[1024], lse;
        double *orow = c->Dv <= 1024 ? o : acc; /* finish_row reads acc before writing orow */
        finish_row(p, &row, offset, p->f->lse_offset != IR_NONE, c->Dv, orow, &lse);
        for (int64_t d = 0; d < c->Dv; d++) c->o[r * c->Dv + d] = (float)orow[d];
        if (c->lse) c->lse[r] = (float)lse;
    }
    return 0;
}

/* ---- refplan as a backend: the plan itself is the kernel's data ---- */

static attnc_status refplan_compile(const Plan *p, const attnc_options *opts, CompiledKernel *ck, void **state,
                                    attnc_error *err) {
    (void)opts, (void)state, (void)err;
    ck->tile = refplan_tile;
    ck->scratch_bytes = refplan_scratch_bytes;
    ck->kernel_data = p;
    return ATTNC_OK;
}

static void refplan_release(void *state) { (void)state; }

const BackendImpl backend_refplan = {
    .id = ATTNC_BACKEND_REFPLAN,
    .can_run = 1,
    .compile = refplan_compile,
    .release = refplan_release,
    .emit = backend_emit_nothing,
};
