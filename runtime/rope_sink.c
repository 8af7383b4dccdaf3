/* rope_sink.c — `rotary` and `sink` (spec 9.3, 9.4) for the compiled
 * backends, around the kernel rather than inside it:
 *
 *  - rotary: every Q row and K row is rotated once, before the kernel runs,
 *    into float32 copies that the kernel then reads as its Q and K (a row is
 *    rotated once per call, never per (q, kv) pair: O((Lq + Lk) D) work
 *    beside the kernel's O(Lq Lk D));
 *  - sink: the kernel's (O, LSE) of each row is merged with the sink's term,
 *    a partial result of value 0 and log-sum-exp `sink` (attnc_merge's rule):
 *    LSE' = log(exp(LSE) + exp(sink)), O' = O exp(LSE - LSE'); O(Dv) per row,
 *    nothing per element.
 *
 * Positions and sinks are evaluated by the interpreter's evaluator (they
 * are per row, so its speed does not matter); angles in float64, their cos
 * and sin rounded to float32 and the rotation in float32 (the kernels'
 * arithmetic).
 * Requires: a BoundCall whose attention has a rotary or a sink.
 * Produces: rope_rotate, sink_merge, and the backward's rope_unrotate
 * (rope_sink.h). */
#include "rope_sink.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "interp.h"
#include "tensor_io.h"
#include "threads.h"

/* cos and sin of pos * theta_i for i < half (the angle in float64, as the
 * interpreter takes it), into cs[2i], cs[2i + 1]. */
static void angles(const double *theta, int64_t half, int64_t pos, float *cs) {
    for (int64_t i = 0; i < half; i++) {
        double angle = (double)pos * theta[i];
        cs[2 * i] = (float)cos(angle);
        cs[2 * i + 1] = (float)sin(angle);
    }
}

/* x (D values) rotated by the angles cs (of angles()): pairs (i, i + dims/2),
 * or (2i, 2i + 1) when interleaved. */
static void rotate_row(const BoundCall *bc, const float *cs, float *x) {
    int64_t half = bc->rope_dims / 2;
    for (int64_t i = 0; i < half; i++) {
        float c = cs[2 * i], sn = cs[2 * i + 1];
        int64_t j = bc->rope_interleaved ? 2 * i : i, k = bc->rope_interleaved ? 2 * i + 1 : i + half;
        float xj = x[j], xk = x[k];
        x[j] = xj * c - xk * sn;
        x[k] = xk * c + xj * sn;
    }
}

/* The rotation of one tensor (Q: heads H, positions qpos over q; K: heads
 * Hkv, kvpos over kv) from `in` at layout l into out, float32 contiguous,
 * one work item of the thread pool per (b, head). */
typedef struct Rotation {
    const BoundCall *bc;
    const double *theta;
    const float *table; /* the angles of positions 0 .. rows - 1 (used without pos_expr) */
    float *cs;          /* [threads][dims]: one position's angles */
    InterpEnv *env;     /* [threads]: evaluators of the positions */
    const void *in;
    const BoundLayout *l;
    int64_t heads, rows;
    const TExpr *pos_expr;
    int is_q;
    float *out;
    atomic_int fault;   /* a position raised a runtime error */
} Rotation;

static void rotate_item(void *ctx, int64_t item, int thread) {
    Rotation *t = ctx;
    const BoundCall *bc = t->bc;
    int64_t half = bc->rope_dims / 2, D = bc->sz.D, group = bc->sz.H / bc->sz.Hkv;
    int64_t b = item / t->heads, h = item % t->heads;
    InterpEnv *env = &t->env[thread];
    float *cs = t->cs + (int64_t)thread * 2 * half;
    for (int64_t r = 0; r < t->rows && !atomic_load_explicit(&t->fault, memory_order_relaxed); r++) {
        int64_t at = b * t->l->stride[0] + h * t->l->stride[1] + r * t->l->stride[2];
        float *o = t->out + (item * t->rows + r) * D;
        for (int64_t d = 0; d < D; d++) o[d] = (float)tensor_load(t->in, t->l->elem, at + d);
        const float *a = t->table + r * 2 * half;
        if (t->pos_expr) { /* position ids: this row's own angles */
            env->b = b, env->h = t->is_q ? h : h * group, env->hk = t->is_q ? h / group : h;
            env->q = t->is_q ? r : 0, env->kv = t->is_q ? 0 : r;
            int64_t pos = interp_eval(env, t->pos_expr).i;
            if (env->failed) {
                atomic_store(&t->fault, 1);
                return;
            }
            angles(t->theta, half, pos, cs);
            a = cs;
        }
        rotate_row(bc, a, o);
    }
}

attnc_status rope_rotate(const BoundCall *bc, const void *q, const void *k, int threads, float **q_rot,
                         float **k_rot, int *fault, attnc_error *err) {
    const attnc_sizes *sz = &bc->sz;
    const Rotary *r = bc->attn->rotary;
    *q_rot = *k_rot = NULL;
    *fault = 0;
    if (threads < 1) threads = 1;
    size_t nq = (size_t)(sz->B * sz->H * sz->Lq * sz->D), nk = (size_t)(sz->B * sz->Hkv * sz->Lk * sz->D);
    float *qr = malloc(sizeof(float) * nq + 1), *kr = malloc(sizeof(float) * nk + 1);
    int64_t half = bc->rope_dims / 2, most = sz->Lq > sz->Lk ? sz->Lq : sz->Lk;
    double *theta = malloc(sizeof(double) * (size_t)half + 1);
    float *cs = malloc(sizeof(float) * 2 * (size_t)half * (size_t)threads + 1);
    /* the default positions' angles once per call, shared by every head and by Q and K */
    float *table = malloc(sizeof(float) * 2 * (size_t)half * (size_t)most + 1);
    InterpEnv *env = calloc((size_t)threads, sizeof *env);
    char *msg = calloc((size_t)threads, 400);
    attnc_status st = ATTNC_OK;
    if (!qr || !kr || !theta || !cs || !table || !env || !msg) {
        st = set_error(err, ATTNC_ERR_NOMEM, "out of memory rotating Q and K");
    } else {
        for (int64_t i = 0; i < half; i++) theta[i] = pow(bc->rope_base, -2.0 * (double)i / (double)bc->rope_dims);
        for (int64_t p = 0; p < most; p++) angles(theta, half, p, table + p * 2 * half);
        for (int t = 0; t < threads; t++) env[t].bc = bc, env[t].msg = msg + 400 * t, env[t].msgsize = 400;
        Rotation rq = {bc, theta, table, cs, env, q, &bc->layout[BT_Q], sz->H, sz->Lq, r->qpos, 1, qr, 0};
        Rotation rk = {bc, theta, table, cs, env, k, &bc->layout[BT_K], sz->Hkv, sz->Lk, r->kvpos, 0, kr, 0};
        pool_run(threads, sz->B * sz->H, rotate_item, &rq);
        if (!atomic_load(&rq.fault)) pool_run(threads, sz->B * sz->Hkv, rotate_item, &rk);
        *fault = atomic_load(&rq.fault) || atomic_load(&rk.fault);
    }
    free(theta);
    free(cs);
    free(table);
    free(env);
    free(msg);
    if (st || *fault) {
        free(qr);
        free(kr);
        return st;
    }
    *q_rot = qr;
    *k_rot = kr;
    return ATTNC_OK;
}

attnc_status sink_merge(const BoundCall *bc, const BoundLayout *o_layout, const BoundLayout *lse_layout,
                        const float *o32, const float *lse32, void *o, float *lse, attnc_error *err) {
    const attnc_sizes *sz = &bc->sz;
    InterpEnv *env = calloc(1, sizeof *env);
    char msg[400] = "";
    if (!env) return set_error(err, ATTNC_ERR_NOMEM, "out of memory");
    env->bc = bc, env->msg = msg, env->msgsize = sizeof msg;
    int64_t group = sz->H / sz->Hkv;
    /* the sinks first: a runtime error in one must leave the outputs unwritten */
    double *sinks = malloc(sizeof(double) * (size_t)(sz->B * sz->H * sz->Lq) + 1);
    for (int64_t b = 0; sinks && b < sz->B; b++)
        for (int64_t h = 0; h < sz->H; h++)
            for (int64_t q = 0; q < sz->Lq && !env->failed; q++) {
                env->b = b, env->h = h, env->hk = h / group, env->q = q, env->kv = 0;
                sinks[(b * sz->H + h) * sz->Lq + q] = interp_eval(env, bc->attn->sink).f;
            }
    attnc_status st = !sinks ? set_error(err, ATTNC_ERR_NOMEM, "out of memory")
                      : env->failed ? set_error(err, ATTNC_ERR_RUNTIME, "%s", msg) : ATTNC_OK;
    for (int64_t b = 0; !st && b < sz->B; b++)
        for (int64_t h = 0; h < sz->H; h++)
            for (int64_t q = 0; q < sz->Lq; q++) {
                int64_t row = (b * sz->H + h) * sz->Lq + q;
                double l = lse32[row], s = sinks[row];
                /* log(exp(l) + exp(s)) without overflow; a row with nothing kept has l = -inf */
                double m = l > s ? l : s;
                double total = m == -INFINITY ? -INFINITY : s == INFINITY ? INFINITY : m + log(exp(l - m) + exp(s - m));
                double scale = total == -INFINITY || total == INFINITY ? 0.0 : exp(l - total);
                int64_t at = b * o_layout->stride[0] + h * o_layout->stride[1] + q * o_layout->stride[2];
                for (int64_t d = 0; d < sz->Dv; d++)
                    tensor_store(o, o_layout->elem, at + d, (double)o32[row * sz->Dv + d] * scale);
                if (lse) lse[b * lse_layout->stride[0] + h * lse_layout->stride[1] + q * lse_layout->stride[2]] = (float)total;
            }
    free(sinks);
    free(env);
    return st;
}

/* ---- the backward's inverse rotation (spec 9.5; apart from the forward's loops) ---- */

/* The gradients of one tensor's rotated rows (float32, contiguous) turned
 * back into its own at layout l: dX = R^T dX_rot, which is the rotation by
 * minus the position (cos even, sin odd: the same float32 cos and the negated
 * sin as the forward's R).  One work item per (b, head). */
typedef struct Unrotation {
    const BoundCall *bc;
    const double *theta;
    float *cs;      /* [threads][dims] */
    float *x;       /* [threads][D] */
    InterpEnv *env; /* [threads] */
    const float *src;
    void *dst;
    const BoundLayout *l;
    int64_t heads, rows;
    const TExpr *pos_expr;
    int is_q;
} Unrotation;

static void unrotate_item(void *ctx, int64_t item, int thread) {
    Unrotation *t = ctx;
    const BoundCall *bc = t->bc;
    int64_t half = bc->rope_dims / 2, D = bc->sz.D, group = bc->sz.H / bc->sz.Hkv;
    int64_t b = item / t->heads, h = item % t->heads;
    InterpEnv *env = &t->env[thread];
    float *cs = t->cs + (int64_t)thread * 2 * half, *x = t->x + (int64_t)thread * D;
    for (int64_t r = 0; r < t->rows; r++) {
        int64_t pos = r;
        if (t->pos_expr) { /* evaluated without error by rope_rotate on the same call */
            env->b = b, env->h = t->is_q ? h : h * group, env->hk = t->is_q ? h / group : h;
            env->q = t->is_q ? r : 0, env->kv = t->is_q ? 0 : r;
            pos = interp_eval(env, t->pos_expr).i;
        }
        angles(t->theta, half, -pos, cs);
        memcpy(x, t->src + (item * t->rows + r) * D, sizeof(float) * (size_t)D);
        rotate_row(bc, cs, x);
        int64_t at = b * t->l->stride[0] + h * t->l->stride[1] + r * t->l->stride[2];
        for (int64_t d = 0; d < D; d++) tensor_store(t->dst, t->l->elem, at + d, x[d]);
    }
}

attnc_status rope_unrotate(const BoundCall *bc, const float *dq_rot, const float *dk_rot, int threads, void *dq,
                           const BoundLayout *lq, void *dk, const BoundLayout *lk, attnc_error *err) {
    const attnc_sizes *sz = &bc->sz;
    const Rotary *r = bc->attn->rotary;
    if (threads < 1) threads = 1;
    int64_t half = bc->rope_dims / 2;
    double *theta = malloc(sizeof(double) * (size_t)half + 1);
    float *cs = malloc(sizeof(float) * 2 * (size_t)half * (size_t)threads + 1);
    float *x = malloc(sizeof(float) * (size_t)sz->D * (size_t)threads + 1);
    InterpEnv *env = calloc((size_t)threads, sizeof *env);
    char *msg = calloc((size_t)threads, 400);
    attnc_status st = ATTNC_OK;
    if (!theta || !cs || !x || !env || !msg) {
        st = set_error(err, ATTNC_ERR_NOMEM, "out of memory rotating the gradients of Q and K back");
    } else {
        for (int64_t i = 0; i < half; i++) theta[i] = pow(bc->rope_base, -2.0 * (double)i / (double)bc->rope_dims);
        for (int t = 0; t < threads; t++) env[t].bc = bc, env[t].msg = msg + 400 * t, env[t].msgsize = 400;
        Unrotation uq = {bc, theta, cs, x, env, dq_rot, dq, lq, sz->H, sz->Lq, r->qpos, 1};
        Unrotation uk = {bc, theta, cs, x, env, dk_rot, dk, lk, sz->Hkv, sz->Lk, r->kvpos, 0};
        if (dq_rot && dq) pool_run(threads, sz->B * sz->H, unrotate_item, &uq);
        if (dk_rot && dk) pool_run(threads, sz->B * sz->Hkv, unrotate_item, &uk);
    }
    free(theta);
    free(cs);
    free(x);
    free(env);
    free(msg);
    return st;
}
