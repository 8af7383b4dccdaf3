/* rope_sink.c — `rotary` and `sink` (spec 9.3, 9.4) for the compiled
 * backends, around the kernel rather than inside it:
 *
 *  - rotary: every Q row and K row is rotated once per call, before the
 *    kernel runs, into float32 copies that the kernel then reads as its Q
 *    and K (a row is rotated once per call, never per (q, kv) pair:
 *    O((Lq + Lk) D) work beside the kernel's O(Lq Lk D)).  Kept cheap
 *    beside the kernel (issue 14: causal + rotary within 10% of causal):
 *    rows are read per element type without per-element dispatch and
 *    rotated by vectorisable loops; positions inside the angle table
 *    (default positions, and position ids in [0, rows of the table)) read
 *    their cos and sin from it; the table and the copies live in a
 *    RopeScratch that the kernel keeps across calls (no page faults, no
 *    table rebuilt while the shape, dims and base stay the same);
 *  - sink: the kernel's (O, LSE) of each row is merged with the sink's term,
 *    a partial result of value 0 and log-sum-exp `sink` (attnc_merge's rule):
 *    LSE' = log(exp(LSE) + exp(sink)), O' = O exp(LSE - LSE'); O(Dv) per row,
 *    nothing per element.
 *
 * Positions and sinks are evaluated by the interpreter's evaluator (they
 * are per row, so its speed does not matter much).  Accuracy of the angles:
 * pos * theta_i in float64 as the interpreter takes it, its cos and sin
 * rounded to float32, the rotation in float32 (the kernels' arithmetic).
 * The table's entries come from libm every ANGLE_SEED positions and from
 * the angle-addition recurrence (float64) between them, which follows the
 * exact angle where libm gets pos * theta_i rounded to float64: they differ
 * by about |pos * theta_i| 2^-53 plus ANGLE_SEED steps of ~1e-16 (at most
 * 1.5e-11 below position 131072), so the float32 values are the same but
 * for a double that close to a rounding tie, then one unit in the last
 * place apart (measured: 520 of 16.8 M values, positions < 131072, dims
 * 128, base 10000).  Positions outside the table (negative, or ids beyond
 * it) use libm directly.
 * Requires: a BoundCall whose attention has a rotary or a sink.
 * Produces: rope_rotate, the RopeScratch functions, sink_merge, and the backward's
 * rope_unrotate
 * (rope_sink.h). */
#include "rope_sink.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "interp.h"
#include "kept_buffers.h"
#include "tensor_io.h"
#include "threads.h"

/* libm re-seeds the angle table's recurrence every ANGLE_SEED positions */
#define ANGLE_SEED 32

/* A kernel's rotation buffers, kept from one call to the next. */
struct RopeScratch {
    Buffers rows;          /* ROPE_Q, ROPE_K: the rotated rows; ROPE_POS: position ids, one per row of Q, then of K */
    float *table;          /* positions 0 .. table_rows - 1: `half` cos, then `half` sin, each */
    int64_t table_rows, table_dims;
    double table_base;
    int64_t *pos;          /* rows.p[ROPE_POS] once reserved */
};
enum { ROPE_Q, ROPE_K, ROPE_POS };

void rope_scratch_free(RopeScratch *s) {
    if (!s) return;
    buffers_clear(&s->rows);
    free(s->table);
    free(s);
}

RopeScratch *rope_scratch_take(RopeScratch *_Atomic *slot) {
    RopeScratch *s = atomic_exchange(slot, NULL);
    return s ? s : calloc(1, sizeof *s);
}

void rope_scratch_keep(RopeScratch *_Atomic *slot, RopeScratch *s) {
    /* two calls at once: the one that ends last keeps its scratch */
    rope_scratch_free(atomic_exchange(slot, s));
}

/* cos and sin of pos * theta_i for i < half (the angle in float64, as the
 * interpreter takes it), into cs[i] and cs[half + i]. */
static void angles(const double *theta, int64_t half, int64_t pos, float *cs) {
    for (int64_t i = 0; i < half; i++) {
        double angle = (double)pos * theta[i];
        cs[i] = (float)cos(angle);
        cs[half + i] = (float)sin(angle);
    }
}

/* The angles of positions 0 .. rows - 1 into table (angles()' layout, 2 half
 * floats a position): libm at every ANGLE_SEED-th position, the recurrence
 * cos(a + t) = cos a cos t - sin a sin t, sin(a + t) = sin a cos t + cos a sin t
 * in float64 from there (independent across i: it vectorises).  work: 4 half
 * doubles. */
static void angle_table(const double *theta, int64_t half, int64_t rows, float *table, double *work) {
    double *c = work, *s = work + half, *step_c = work + 2 * half, *step_s = work + 3 * half;
    for (int64_t i = 0; i < half; i++) step_c[i] = cos(theta[i]), step_s[i] = sin(theta[i]);
    for (int64_t p = 0; p < rows; p++) {
        if (p % ANGLE_SEED == 0)
            for (int64_t i = 0; i < half; i++) c[i] = cos((double)p * theta[i]), s[i] = sin((double)p * theta[i]);
        float *row = table + p * 2 * half;
        for (int64_t i = 0; i < half; i++) {
            double cn = c[i] * step_c[i] - s[i] * step_s[i], sn = s[i] * step_c[i] + c[i] * step_s[i];
            row[i] = (float)c[i], row[half + i] = (float)s[i];
            c[i] = cn, s[i] = sn;
        }
    }
}

/* lo, hi rotated by (c, s) pairwise: the pairs (i, i + dims/2). */
static void rotate_halves(int64_t n, const float *restrict c, const float *restrict s, float *restrict lo,
                          float *restrict hi) {
    for (int64_t i = 0; i < n; i++) {
        float a = lo[i], b = hi[i];
        lo[i] = a * c[i] - b * s[i];
        hi[i] = b * c[i] + a * s[i];
    }
}

/* x (D values) rotated by the angles cs (of angles()): pairs (i, i + dims/2),
 * or (2i, 2i + 1) when interleaved. */
static void rotate_row(const BoundCall *bc, const float *cs, float *x) {
    int64_t half = bc->rope_dims / 2;
    const float *c = cs, *s = cs + half;
    if (!bc->rope_interleaved) {
        rotate_halves(half, c, s, x, x + half);
        return;
    }
    for (int64_t i = 0; i < half; i++) {
        float a = x[2 * i], b = x[2 * i + 1];
        x[2 * i] = a * c[i] - b * s[i];
        x[2 * i + 1] = b * c[i] + a * s[i];
    }
}

/* n elements of type e at `in` as float32 into o (exact: every type widens
 * exactly), one loop per type. */
static void load_row(const void *in, attnc_elem e, int64_t n, float *restrict o) {
    if (e == ATTNC_ELEM_F32) {
        memcpy(o, in, sizeof(float) * (size_t)n);
    } else if (e == ATTNC_ELEM_F16) {
        const uint16_t *w = in;
        for (int64_t d = 0; d < n; d++) o[d] = attnc_f16_to_f32(w[d]);
    } else {
        const uint16_t *w = in;
        for (int64_t d = 0; d < n; d++) o[d] = attnc_bf16_to_f32(w[d]);
    }
}

/* The rotation of one tensor (Q: heads H, positions qpos over q; K: heads
 * Hkv, kvpos over kv) from `in` at layout l into out, float32 contiguous,
 * one work item of the thread pool per (b, head). */
typedef struct Rotation {
    const BoundCall *bc;
    const double *theta;
    const float *table; /* the angles of positions 0 .. table_rows - 1 */
    int64_t table_rows;
    float *cs;          /* [threads][dims]: one position's angles (outside the table) */
    InterpEnv *env;     /* [threads]: evaluators of the positions */
    const void *in;
    const BoundLayout *l;
    int64_t heads, rows;
    const TExpr *pos_expr;
    int64_t *pos;       /* [items][rows]: pos_expr's values (NULL: row r is at position r) */
    int is_q;
    float *out;
    atomic_int fault;   /* a position raised a runtime error */
} Rotation;

/* Pass 1 with position ids: pos_expr of every row of item (b, head). */
static void position_item(void *ctx, int64_t item, int thread) {
    Rotation *t = ctx;
    const BoundCall *bc = t->bc;
    int64_t group = bc->sz.H / bc->sz.Hkv, b = item / t->heads, h = item % t->heads;
    InterpEnv *env = &t->env[thread];
    for (int64_t r = 0; r < t->rows; r++) {
        env->b = b, env->h = t->is_q ? h : h * group, env->hk = t->is_q ? h / group : h;
        env->q = t->is_q ? r : 0, env->kv = t->is_q ? 0 : r;
        t->pos[item * t->rows + r] = interp_eval(env, t->pos_expr).i;
        if (env->failed) {
            atomic_store(&t->fault, 1);
            return;
        }
    }
}

static void rotate_item(void *ctx, int64_t item, int thread) {
    Rotation *t = ctx;
    const BoundCall *bc = t->bc;
    int64_t half = bc->rope_dims / 2, D = bc->sz.D, b = item / t->heads, h = item % t->heads;
    size_t width = t->l->elem == ATTNC_ELEM_F32 ? 4 : 2;
    float *cs = t->cs + (int64_t)thread * 2 * half;
    for (int64_t r = 0; r < t->rows; r++) {
        int64_t at = b * t->l->stride[0] + h * t->l->stride[1] + r * t->l->stride[2];
        float *o = t->out + (item * t->rows + r) * D;
        load_row((const char *)t->in + (size_t)at * width, t->l->elem, D, o);
        int64_t pos = t->pos ? t->pos[item * t->rows + r] : r;
        if (pos < 0 || pos >= t->table_rows) /* a position id outside the table */
            angles(t->theta, half, pos, cs);
        rotate_row(bc, pos < 0 || pos >= t->table_rows ? cs : t->table + pos * 2 * half, o);
    }
}

/* s's table covering positions 0 .. rows - 1 for bc's dims and base (kept
 * when it does already). */
static attnc_status ensure_table(const BoundCall *bc, RopeScratch *s, const double *theta, int64_t rows,
                                 attnc_error *err) {
    int64_t half = bc->rope_dims / 2;
    if (s->table && s->table_rows >= rows && s->table_dims == bc->rope_dims && s->table_base == bc->rope_base)
        return ATTNC_OK;
    free(s->table);
    s->table = malloc(sizeof(float) * 2 * (size_t)half * (size_t)rows + 1);
    double *work = malloc(sizeof(double) * 4 * (size_t)half + 1);
    s->table_rows = s->table && work ? rows : 0;
    if (s->table_rows) angle_table(theta, half, rows, s->table, work);
    s->table_dims = bc->rope_dims, s->table_base = bc->rope_base;
    free(work);
    return s->table_rows || !rows ? ATTNC_OK : set_error(err, ATTNC_ERR_NOMEM, "out of memory rotating Q and K");
}

/* Evaluates the position ids of rq and rk into s->pos (pass 1) and returns
 * the rows the angle table covers: both lengths, and every id when they are
 * all >= 0 and the table over them has no more positions than there are
 * rows to rotate (so it costs less than libm per row would). -1: a fault. */
static int64_t positions(RopeScratch *s, Rotation *rq, Rotation *rk, int threads, int *nomem) {
    const attnc_sizes *sz = &rq->bc->sz;
    int64_t nq = sz->B * sz->H * sz->Lq, nk = sz->B * sz->Hkv * sz->Lk, most = sz->Lq > sz->Lk ? sz->Lq : sz->Lk;
    if (!rq->pos_expr && !rk->pos_expr) return most;
    *nomem = !(s->pos = buffers_reserve(&s->rows, ROPE_POS, sizeof(int64_t) * (size_t)(nq + nk)));
    if (*nomem) return -1;
    if (rq->pos_expr) rq->pos = s->pos, pool_run(threads, sz->B * sz->H, position_item, rq);
    if (rk->pos_expr && !atomic_load(&rq->fault))
        rk->pos = s->pos + nq, pool_run(threads, sz->B * sz->Hkv, position_item, rk);
    if (atomic_load(&rq->fault) || atomic_load(&rk->fault)) return -1;
    int64_t lo = 0, hi = most - 1;
    for (int64_t i = 0; i < nq; i++)
        if (rq->pos) lo = s->pos[i] < lo ? s->pos[i] : lo, hi = s->pos[i] > hi ? s->pos[i] : hi;
    for (int64_t i = nq; i < nq + nk; i++)
        if (rk->pos) lo = s->pos[i] < lo ? s->pos[i] : lo, hi = s->pos[i] > hi ? s->pos[i] : hi;
    return lo >= 0 && hi < nq + nk ? hi + 1 : most;
}

attnc_status rope_rotate(const BoundCall *bc, const void *q, const void *k, int threads, RopeScratch *s,
                         const float **q_rot, const float **k_rot, int *fault, attnc_error *err) {
    const attnc_sizes *sz = &bc->sz;
    const Rotary *r = bc->attn->rotary;
    *q_rot = *k_rot = NULL;
    *fault = 0;
    if (threads < 1) threads = 1;
    size_t nq = (size_t)(sz->B * sz->H * sz->Lq * sz->D), nk = (size_t)(sz->B * sz->Hkv * sz->Lk * sz->D);
    int64_t half = bc->rope_dims / 2;
    int nomem = 0;
    double *theta = malloc(sizeof(double) * (size_t)half + 1);
    float *cs = malloc(sizeof(float) * 2 * (size_t)half * (size_t)threads + 1);
    InterpEnv *env = calloc((size_t)threads, sizeof *env);
    char *msg = calloc((size_t)threads, 400);
    attnc_status st = ATTNC_OK;
    float *q_rows = buffers_reserve(&s->rows, ROPE_Q, sizeof(float) * nq);
    float *k_rows = buffers_reserve(&s->rows, ROPE_K, sizeof(float) * nk);
    if (!theta || !cs || !env || !msg || !q_rows || !k_rows) {
        st = set_error(err, ATTNC_ERR_NOMEM, "out of memory rotating Q and K");
    } else {
        for (int64_t i = 0; i < half; i++) theta[i] = pow(bc->rope_base, -2.0 * (double)i / (double)bc->rope_dims);
        for (int t = 0; t < threads; t++) env[t].bc = bc, env[t].msg = msg + 400 * t, env[t].msgsize = 400;
        Rotation rq = {bc, theta, NULL, 0, cs, env, q, &bc->layout[BT_Q], sz->H, sz->Lq, r->qpos, NULL, 1, q_rows, 0};
        Rotation rk = {bc, theta, NULL, 0, cs, env, k, &bc->layout[BT_K], sz->Hkv, sz->Lk, r->kvpos, NULL, 0, k_rows, 0};
        int64_t rows = positions(s, &rq, &rk, threads, &nomem);
        *fault = rows < 0 && !nomem;
        if (nomem) st = set_error(err, ATTNC_ERR_NOMEM, "out of memory rotating Q and K");
        if (rows >= 0) st = ensure_table(bc, s, theta, rows, err);
        if (rows >= 0 && !st) {
            rq.table = rk.table = s->table;
            rq.table_rows = rk.table_rows = s->table_rows;
            pool_run(threads, sz->B * sz->H, rotate_item, &rq);
            pool_run(threads, sz->B * sz->Hkv, rotate_item, &rk);
        }
    }
    free(theta);
    free(cs);
    free(env);
    free(msg);
    if (st || *fault) return st;
    *q_rot = q_rows;
    *k_rot = k_rows;
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
