/* plan_grad.c — refplan's backward kernel: the backward plan (grad_plan.h)
 * evaluated by the scalar IR evaluator in float64, as a kernel of the
 * backward ABI (kernel_abi.h's AttnGradCall), run by launch_grad.c like
 * every compiled backward.
 * Requires: call->f.kernel_data is the Plan, with its GradPlan.
 * Produces: one kv tile's contributions: its rows of dK and dV, dQ and the
 * tensor gradients, visiting exactly the tiles the transposed tile map lists
 * (FULL tiles without the mask) and skipping the rows the forward left
 * empty.  Its purpose is to test the middle end's derivatives, the tile
 * map's use and the driver: any difference from the interpreter's backward
 * (which shares none of this) is a bug in one of them. */
#include <math.h>
#include <string.h>

#include "grad_plan.h"
#include "plan.h"
#include "plan_run.h"
#include "tensor_io.h"

/* A work item's scratch: the evaluator's memo and the tile's accumulators. */
typedef struct GradParts {
    Const *memo, *params;
    unsigned *stamp;
    attnc_tensor *tens;
    const attnc_tensor **tptr;
    double *dk, *dv, *dq; /* [bk][D], [bk][Dv], [D] */
} GradParts;

/* Lay out the scratch at base (NULL: only count); returns the bytes. */
static int64_t grad_layout(const AttnGradCall *c, const Plan *p, char *base, GradParts *P) {
    const GradPlan *gp = p->grad;
    int64_t off = 0, n = gp->ir->n + 1, nt = p->attn->ntensors + 1, np = p->attn->nparams + 1;
#define TAKE(field, count)                                                  \
    do {                                                                    \
        P->field = base ? (void *)(base + off) : NULL;                      \
        off += ((int64_t)sizeof *P->field * (count) + 15) / 16 * 16;        \
    } while (0)
    TAKE(memo, n);
    TAKE(params, np);
    TAKE(stamp, n);
    TAKE(tens, nt);
    TAKE(tptr, nt);
    TAKE(dk, c->f.bk * c->f.D + 1);
    TAKE(dv, c->f.bk * c->f.Dv + 1);
    TAKE(dq, c->f.D + 1);
#undef TAKE
    return off;
}

int64_t refplan_grad_scratch_bytes(const AttnCall *c) {
    GradParts P;
    AttnGradCall g = {.f = *c};
    return grad_layout(&g, c->kernel_data, NULL, &P);
}

/* The evaluator of the backward plan over the call's params and tensors. */
static void grad_bind(const AttnGradCall *c, const Plan *p, GradParts *P, IrEval *ev) {
    const Attention *a = p->attn;
    memset(ev, 0, sizeof *ev);
    ev->m = p->grad->ir;
    ev->sz = (attnc_sizes){c->f.B, c->f.H, c->f.Hkv, c->f.Lq, c->f.Lk, c->f.D, c->f.Dv};
    for (int i = 0; i < a->nparams; i++) {
        Type t = a->params[i]->type;
        if (t == T_FLOAT) P->params[i] = (Const){.f = c->f.params[i].f};
        else if (t == T_BOOL) P->params[i] = (Const){.i = 0}, P->params[i].b = c->f.params[i].i != 0;
        else P->params[i] = (Const){.i = c->f.params[i].i};
    }
    for (int i = 0; i < a->ntensors; i++) {
        const Decl *d = a->tensors[i];
        P->tens[i] = (attnc_tensor){.name = d->name, .dtype = d->type == T_INT ? ATTNC_I32 : ATTNC_F32,
                                    .rank = d->ndims, .data = c->f.tensor_data[i]};
        memcpy(P->tens[i].shape, c->f.tensor_shape[i], sizeof P->tens[i].shape);
        P->tptr[i] = &P->tens[i];
    }
    ev->params = P->params;
    ev->tensors = P->tptr;
    ev->dims = (const int64_t(*)[ATTNC_MAX_RANK])c->f.tensor_shape;
    ev->memo = P->memo;
    ev->stamp = P->stamp;
    memset(P->stamp, 0, sizeof(unsigned) * (size_t)(p->grad->ir->n + 1));
    ev->gen = 1;
}

/* Element d of row l of head h of a Q/K/V-like tensor. */
static double at(const void *base, int32_t elem, const int64_t *st, int64_t b, int64_t h, int64_t l, int64_t d) {
    return tensor_load(base, (attnc_elem)elem, b * st[0] + h * st[1] + l * st[2] + d * st[3]);
}

/* Row q of head h against the kv rows [kv0, kv1) of the tile; 1 on a fault. */
static int grad_row(const AttnGradCall *c, const Plan *p, GradParts *P, IrEval *ev, int64_t b, int64_t h,
                    int64_t hk, int64_t q, int64_t kv0, int64_t kv1, int partial, float *const *dtensor) {
    const AttnCall *f = &c->f;
    const GradPlan *gp = p->grad;
    const IrFunc *fn = gp->f;
    double lse = f->lse[b * f->lse_stride[0] + h * f->lse_stride[1] + q * f->lse_stride[2]];
    if (p->softmax && lse == -INFINITY) return 0; /* an empty row: no gradient */
    int64_t row = (b * f->H + h) * f->Lq + q;
    const float *dout = c->dout + row * f->Dv;
    double delta = c->delta[row];
    ev->b = b, ev->h = h, ev->hk = hk, ev->q = q;
    ir_eval_reset(ev);
    double scale = ir_eval(ev, fn->scale).f;
    memset(P->dq, 0, sizeof(double) * (size_t)f->D);
    for (int64_t kv = kv0; kv < kv1; kv++) {
        ev->kv = kv;
        ir_eval_reset(ev);
        /* pre first: the fault check may read the score (a bias reads no tensor out of bounds: such loads give 0) */
        double dot = 0, dp = 0;
        for (int64_t d = 0; d < f->D; d++)
            dot += at(f->q, f->q_elem, f->q_stride, b, h, q, d) * at(f->k, f->k_elem, f->k_stride, b, hk, kv, d);
        ev->pre = scale * dot + ir_eval(ev, fn->bias).f;
        if (f->check_faults && ir_eval(ev, fn->fault).b) return 1;
        if (partial && !ir_eval(ev, fn->keep).b) continue;
        for (int64_t d = 0; d < f->Dv; d++) dp += dout[d] * at(f->v, f->v_elem, f->v_stride, b, hk, kv, d);
        double value = ir_eval(ev, gp->value).f;
        double pr = p->softmax ? exp(value - lse) : value;
        double g = p->softmax ? pr * (dp - delta) : dp - delta;
        double k = ir_eval(ev, gp->dvalue_dpre).f, gpre = k != 0 ? g * k : 0.0;
        double *dk = P->dk + (kv - kv0) * f->D, *dv = P->dv + (kv - kv0) * f->Dv;
        for (int64_t d = 0; d < f->Dv; d++) dv[d] += pr * dout[d];
        for (int64_t d = 0; d < f->D; d++) {
            dk[d] += gpre * scale * at(f->q, f->q_elem, f->q_stride, b, h, q, d);
            P->dq[d] += gpre * scale * at(f->k, f->k_elem, f->k_stride, b, hk, kv, d);
        }
        grad_eval_scatter_f32(gp, ev, g, gpre, dtensor);
    }
    float *dq = c->dq + row * f->D;
    for (int64_t d = 0; d < f->D; d++) dq[d] += (float)P->dq[d];
    return 0;
}

int refplan_grad_tile(const AttnGradCall *c, int64_t b, int64_t hk, int64_t kt, float *const *dtensor,
                      void *scratch) {
    const AttnCall *f = &c->f;
    const Plan *p = f->kernel_data;
    GradParts P;
    IrEval ev;
    grad_layout(c, p, scratch, &P);
    grad_bind(c, p, &P, &ev);
    int64_t kv0 = kt * f->bk, kv1 = kv0 + f->bk < f->Lk ? kv0 + f->bk : f->Lk, group = f->H / f->Hkv;
    memset(P.dk, 0, sizeof(double) * (size_t)(f->bk * f->D));
    memset(P.dv, 0, sizeof(double) * (size_t)(f->bk * f->Dv));
    for (int64_t h = hk * group; h < (hk + 1) * group; h++) {
        int64_t g = b * f->group_stride_b + h * f->group_stride_h;
        for (int64_t e = f->row_start[g * f->nkt + kt]; e < f->row_start[g * f->nkt + kt + 1]; e++) {
            int64_t qt = f->tile_kv[e], q1 = (qt + 1) * f->bq < f->Lq ? (qt + 1) * f->bq : f->Lq;
            for (int64_t q = qt * f->bq; q < q1; q++)
                if (grad_row(c, p, &P, &ev, b, h, hk, q, kv0, kv1, f->tile_mode[e] == TILE_PARTIAL, dtensor)) return 1;
        }
    }
    for (int64_t kv = kv0; kv < kv1; kv++) {
        float *dk = c->dk + ((b * f->Hkv + hk) * f->Lk + kv) * f->D, *dv = c->dv + ((b * f->Hkv + hk) * f->Lk + kv) * f->Dv;
        for (int64_t d = 0; d < f->D; d++) dk[d] += (float)P.dk[(kv - kv0) * f->D + d];
        for (int64_t d = 0; d < f->Dv; d++) dv[d] += (float)P.dv[(kv - kv0) * f->Dv + d];
    }
    return 0;
}
