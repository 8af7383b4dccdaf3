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
 * are per row, so its speed does not matter), in float64 like the rotation.
 * Requires: a BoundCall whose attention has a rotary or a sink.
 * Produces: rope_rotate, sink_merge (rope_sink.h). */
#include "rope_sink.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "interp.h"
#include "tensor_io.h"

/* x (D values) rotated as a row at position pos: theta_i = base^(-2i/dims),
 * pairs (i, i + dims/2), or (2i, 2i + 1) when interleaved. */
static void rotate_row(const BoundCall *bc, const double *theta, double *x, int64_t pos) {
    int64_t half = bc->rope_dims / 2;
    for (int64_t i = 0; i < half; i++) {
        double angle = (double)pos * theta[i];
        double c = cos(angle), sn = sin(angle);
        int64_t j = bc->rope_interleaved ? 2 * i : i, k = bc->rope_interleaved ? 2 * i + 1 : i + half;
        double xj = x[j], xk = x[k];
        x[j] = xj * c - xk * sn;
        x[k] = xk * c + xj * sn;
    }
}

/* Rotate the rows of one tensor (Q: heads H, positions qpos over q; K: heads
 * Hkv, kvpos over kv) from `in` at layout l into out, float32 contiguous. */
static int rotate_all(const BoundCall *bc, InterpEnv *env, const double *theta, const void *in, const BoundLayout *l,
                      int64_t heads, int64_t rows, const TExpr *pos_expr, int is_q, float *out, double *x) {
    const attnc_sizes *sz = &bc->sz;
    int64_t D = sz->D, group = sz->H / sz->Hkv;
    for (int64_t b = 0; b < sz->B; b++)
        for (int64_t h = 0; h < heads; h++)
            for (int64_t r = 0; r < rows; r++) {
                int64_t at = b * l->stride[0] + h * l->stride[1] + r * l->stride[2];
                for (int64_t d = 0; d < D; d++) x[d] = tensor_load(in, l->elem, at + d);
                int64_t pos = r;
                if (pos_expr) {
                    env->b = b, env->h = is_q ? h : h * group, env->hk = is_q ? h / group : h;
                    env->q = is_q ? r : 0, env->kv = is_q ? 0 : r;
                    pos = interp_eval(env, pos_expr).i;
                    if (env->failed) return 0;
                }
                rotate_row(bc, theta, x, pos);
                float *o = out + ((b * heads + h) * rows + r) * D;
                for (int64_t d = 0; d < D; d++) o[d] = (float)x[d];
            }
    return 1;
}

attnc_status rope_rotate(const BoundCall *bc, const void *q, const void *k, float **q_rot, float **k_rot, int *fault,
                         attnc_error *err) {
    const attnc_sizes *sz = &bc->sz;
    const Rotary *r = bc->attn->rotary;
    *q_rot = *k_rot = NULL;
    *fault = 0;
    size_t nq = (size_t)(sz->B * sz->H * sz->Lq * sz->D), nk = (size_t)(sz->B * sz->Hkv * sz->Lk * sz->D);
    float *qr = malloc(sizeof(float) * nq + 1), *kr = malloc(sizeof(float) * nk + 1);
    double *x = malloc(sizeof(double) * (size_t)sz->D + 1), *theta = malloc(sizeof(double) * (size_t)sz->D + 1);
    InterpEnv *env = calloc(1, sizeof *env);
    char msg[400] = "";
    attnc_status st = ATTNC_OK;
    if (!qr || !kr || !x || !theta || !env) {
        st = set_error(err, ATTNC_ERR_NOMEM, "out of memory rotating Q and K");
    } else {
        for (int64_t i = 0; i < bc->rope_dims / 2; i++)
            theta[i] = pow(bc->rope_base, -2.0 * (double)i / (double)bc->rope_dims);
        env->bc = bc, env->msg = msg, env->msgsize = sizeof msg;
        *fault = !rotate_all(bc, env, theta, q, &bc->layout[BT_Q], sz->H, sz->Lq, r->qpos, 1, qr, x) ||
                 !rotate_all(bc, env, theta, k, &bc->layout[BT_K], sz->Hkv, sz->Lk, r->kvpos, 0, kr, x);
    }
    free(x);
    free(theta);
    free(env);
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
