/* interp.c — reference interpreter.
 * Requires: a checked Attention and a BoundCall (bind.c has validated sizes,
 * params and tensor shapes).
 * Produces: O and LSE in float64 arithmetic on Q, K and V read exactly in
 * their element types and strides (bc->layout); O rounded once to its element
 * type at the end, LSE to float32, each written at its strides;
 * runtime errors (int division by zero, tensor index out of range) reported
 * with the spec position and the element, never undefined behaviour.
 * Evaluation is lazy exactly as spec 5.3 says: masks in order up to the first
 * false one, bias/score/weight only where every mask holds, &&, || and ?:
 * evaluate only the deciding operand.
 *
 * The int semantics below (wrapping, floor division, saturation) are written
 * out again in middle/ir_eval.c on purpose: the interpreter is the oracle
 * the compiled path is tested against, so it shares no evaluation code with
 * the IR it checks. */
#include "interp.h"
#include "interp_grad.h"
#include "registry.h"
#include "tensor_io.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static Const cint(int64_t i) { return (Const){.i = i}; }
static Const cflt(double f) { return (Const){.f = f}; }
static Const cbool(int b) {
    Const c = {.i = 0}; /* every byte defined: values may be compared or hashed bytewise */
    c.b = b;
    return c;
}

/* Record the first runtime error, with its spec position and element. */
static Const interp_fail(InterpEnv *env, const TExpr *e, const char *what) {
    if (!env->failed && env->call_level) {
        snprintf(env->msg, env->msgsize, "%s:%d:%d: %s (evaluating sizes and params)",
                 e->span.src ? e->span.src->name : "<spec>", e->span.first_line, e->span.first_col, what);
    } else if (!env->failed) {
        snprintf(env->msg, env->msgsize, "%s:%d:%d: %s (at b=%lld h=%lld q=%lld kv=%lld)",
                 e->span.src ? e->span.src->name : "<spec>", e->span.first_line, e->span.first_col, what,
                 (long long)env->b, (long long)env->h, (long long)env->q, (long long)env->kv);
    }
    env->failed = 1;
    return cint(0);
}

/* Wrapping int arithmetic: the language defines overflow as modulo 2^64. */
static int64_t wrap_add(int64_t a, int64_t b) { return (int64_t)((uint64_t)a + (uint64_t)b); }
static int64_t wrap_sub(int64_t a, int64_t b) { return (int64_t)((uint64_t)a - (uint64_t)b); }
static int64_t wrap_mul(int64_t a, int64_t b) { return (int64_t)((uint64_t)a * (uint64_t)b); }
static int64_t wrap_neg(int64_t a) { return (int64_t)(0 - (uint64_t)a); }

static int64_t floor_div(int64_t a, int64_t b) {
    if (b == -1) return wrap_neg(a); /* INT64_MIN / -1 would trap in C */
    int64_t q = a / b;
    if (a % b != 0 && ((a < 0) != (b < 0))) q--;
    return q;
}

static int64_t floor_mod(int64_t a, int64_t b) {
    if (b == -1) return 0;
    int64_t r = a % b;
    if (r != 0 && ((r < 0) != (b < 0))) r += b;
    return r;
}

static double float_mod(double a, double b) {
    double r = fmod(a, b);
    if (r != 0 && ((r < 0) != (b < 0))) r += b;
    return r;
}

static int64_t saturating_int(double x) {
    if (isnan(x)) return 0;
    if (x >= 9223372036854775808.0) return INT64_MAX;
    if (x < -9223372036854775808.0) return INT64_MIN;
    return (int64_t)x;
}

static double sign_of(double x) { return x > 0 ? 1.0 : x < 0 ? -1.0 : x; }

static Const eval_call(InterpEnv *env, const TExpr *e) {
    Const a[3];
    for (int i = 0; i < e->nargs; i++) {
        a[i] = interp_eval(env, e->args[i]);
        if (env->failed) return cint(0);
    }
    int is_int = e->type == T_INT;
    switch (e->fn) {
    case FN_ABS: return is_int ? cint(a[0].i < 0 ? wrap_neg(a[0].i) : a[0].i) : cflt(fabs(a[0].f));
    case FN_MIN: return is_int ? cint(a[0].i < a[1].i ? a[0].i : a[1].i) : cflt(a[0].f < a[1].f ? a[0].f : a[1].f);
    case FN_MAX: return is_int ? cint(a[0].i > a[1].i ? a[0].i : a[1].i) : cflt(a[0].f > a[1].f ? a[0].f : a[1].f);
    case FN_CLAMP:
        /* clamp(x, lo, hi) = min(max(x, lo), hi) */
        if (is_int) {
            int64_t x = a[0].i > a[1].i ? a[0].i : a[1].i;
            return cint(x < a[2].i ? x : a[2].i);
        } else {
            double x = a[0].f > a[1].f ? a[0].f : a[1].f;
            return cflt(x < a[2].f ? x : a[2].f);
        }
    case FN_EXP: return cflt(exp(a[0].f));
    case FN_EXP2: return cflt(exp2(a[0].f));
    case FN_LOG: return cflt(log(a[0].f));
    case FN_LOG2: return cflt(log2(a[0].f));
    case FN_SQRT: return cflt(sqrt(a[0].f));
    case FN_TANH: return cflt(tanh(a[0].f));
    case FN_SIGMOID: return cflt(1.0 / (1.0 + exp(-a[0].f)));
    case FN_ERF: return cflt(erf(a[0].f));
    case FN_POW: return cflt(pow(a[0].f, a[1].f));
    case FN_FLOOR: return cflt(floor(a[0].f));
    case FN_CEIL: return cflt(ceil(a[0].f));
    case FN_FLOAT: return e->args[0]->type == T_INT ? cflt((double)a[0].i) : a[0];
    case FN_INT: return e->args[0]->type == T_INT ? a[0] : cint(saturating_int(a[0].f));
    case FN_SIGN: return cflt(sign_of(a[0].f));
    case FN_SIN: return cflt(sin(a[0].f));
    case FN_COS: return cflt(cos(a[0].f));
    case FN_COUNT: break;
    }
    return cint(0);
}

int interp_tensor_offset(InterpEnv *env, const TExpr *e, int64_t *offset) {
    const Decl *d = decl_canon(e->decl);
    const attnc_tensor *t = env->bc->tensors[d->index];
    *offset = 0;
    for (int i = 0; i < e->nargs; i++) {
        Const ix = interp_eval(env, e->args[i]);
        if (env->failed) return 0;
        int64_t n = t->shape[i];
        if (ix.i < 0 || ix.i >= n) {
            char what[256];
            snprintf(what, sizeof what, "index %lld is out of range [0, %lld) in dimension %d of tensor '%s'",
                     (long long)ix.i, (long long)n, i, d->name);
            interp_fail(env, e->args[i], what);
            return 0;
        }
        *offset = *offset * n + ix.i;
    }
    return 1;
}

static Const eval_index(InterpEnv *env, const TExpr *e) {
    const attnc_tensor *t = env->bc->tensors[decl_canon(e->decl)->index];
    int64_t offset;
    if (!interp_tensor_offset(env, e, &offset)) return cint(0);
    if (t->dtype == ATTNC_I32) return cint(((const int32_t *)t->data)[offset]);
    return cflt(((const float *)t->data)[offset]);
}

static Const eval_binary(InterpEnv *env, const TExpr *e) {
    Const a = interp_eval(env, e->args[0]);
    if (env->failed) return a;
    /* lazy operators decide on the first operand */
    if (e->kind == X_AND && !a.b) return cbool(0);
    if (e->kind == X_OR && a.b) return cbool(1);
    Const b = interp_eval(env, e->args[1]);
    if (env->failed) return b;
    Type t = e->args[0]->type;
    switch (e->kind) {
    case X_AND:
    case X_OR: return cbool(b.b);
    case X_ADD: return t == T_INT ? cint(wrap_add(a.i, b.i)) : cflt(a.f + b.f);
    case X_SUB: return t == T_INT ? cint(wrap_sub(a.i, b.i)) : cflt(a.f - b.f);
    case X_MUL: return t == T_INT ? cint(wrap_mul(a.i, b.i)) : cflt(a.f * b.f);
    case X_DIV:
        if (t != T_INT) return cflt(a.f / b.f);
        if (b.i == 0) return interp_fail(env, e, "integer division by zero");
        return cint(floor_div(a.i, b.i));
    case X_MOD:
        if (t != T_INT) return cflt(float_mod(a.f, b.f));
        if (b.i == 0) return interp_fail(env, e, "integer modulo by zero");
        return cint(floor_mod(a.i, b.i));
    case X_LT: return cbool(t == T_INT ? a.i < b.i : a.f < b.f);
    case X_LE: return cbool(t == T_INT ? a.i <= b.i : a.f <= b.f);
    case X_GT: return cbool(t == T_INT ? a.i > b.i : a.f > b.f);
    case X_GE: return cbool(t == T_INT ? a.i >= b.i : a.f >= b.f);
    case X_EQ: return cbool(t == T_INT ? a.i == b.i : t == T_FLOAT ? a.f == b.f : a.b == b.b);
    case X_NE: return cbool(t == T_INT ? a.i != b.i : t == T_FLOAT ? a.f != b.f : a.b != b.b);
    default: return cint(0);
    }
}

static Const eval_sum(InterpEnv *env, const TExpr *e) {
    Const n = interp_eval(env, e->args[0]);
    if (env->failed) return n;
    if (env->call_level && n.i > 0) {
        if (n.i > env->sums_left) {
            char what[160];
            snprintf(what, sizeof what, "sum of %lld iterations is over the limit of %d for sizes and params",
                     (long long)n.i, INT32_MAX);
            return interp_fail(env, e, what);
        }
        env->sums_left -= n.i;
    }
    int slot = env->sum_base + e->level;
    int saved_top = env->sum_top;
    env->sum_top = slot + 1;
    Const acc = e->type == T_INT ? cint(0) : cflt(0);
    for (int64_t r = 0; r < n.i && !env->failed; r++) {
        env->sums[slot] = r;
        Const v = interp_eval(env, e->args[1]);
        if (e->type == T_INT)
            acc.i = wrap_add(acc.i, v.i);
        else
            acc.f += v.f;
    }
    env->sum_top = saved_top;
    return acc;
}

static Const eval_var(const InterpEnv *env, int var) {
    const attnc_sizes *sz = &env->bc->sz;
    switch (var) {
    case V_B: return cint(env->b);
    case V_H: return cint(env->h);
    case V_Q: return cint(env->q);
    case V_KV: return cint(env->kv);
    case V_HK: return cint(env->hk);
    case V_SIZE_B: return cint(sz->B);
    case V_SIZE_H: return cint(sz->H);
    case V_SIZE_HKV: return cint(sz->Hkv);
    case V_SIZE_LQ: return cint(sz->Lq);
    case V_SIZE_LK: return cint(sz->Lk);
    case V_SIZE_D: return cint(sz->D);
    default: return cint(sz->Dv);
    }
}

/* ---- rows, rotary and dot (spec 9.2, 9.3) ---------------------------- */

/* One of Q, K, V as the call lays it out. */
typedef struct View {
    const void *p;
    const BoundLayout *l;
} View;

/* The offset of row (b, h, l) of a view. */
static int64_t row_at(const View *t, int64_t b, int64_t h, int64_t l) {
    return b * t->l->stride[0] + h * t->l->stride[1] + l * t->l->stride[2];
}

/* The Q row of the element being evaluated and the K rows of its (b, hk),
 * after rotary, each computed when first used (positions are evaluated
 * lazily, like everything else: spec 5.3). */
struct InterpRows {
    View q, k;
    double *qrow;
    int qready;
    double *krows; /* [Lk][D] */
    char *kready;  /* [Lk] */
    int64_t kb, khk; /* whose K rows krows holds; -1: none yet */
};

/* e evaluated as an expression of its own (qpos, kvpos, sink): its sums get a fresh frame. */
static Const eval_nested(InterpEnv *env, const TExpr *e) {
    int base = env->sum_base, top = env->sum_top;
    env->sum_base = env->sum_top;
    Const v = interp_eval(env, e);
    env->sum_base = base;
    env->sum_top = top;
    return v;
}

/* x (length D) rotated as a row at position pos: theta_i = base^(-2i/dims),
 * pairs (i, i + dims/2), or (2i, 2i + 1) when interleaved. */
void interp_rotate(const BoundCall *bc, double *x, int64_t pos) {
    int64_t half = bc->rope_dims / 2;
    for (int64_t i = 0; i < half; i++) {
        double angle = (double)pos * pow(bc->rope_base, -2.0 * (double)i / (double)bc->rope_dims);
        double c = cos(angle), sn = sin(angle);
        int64_t j = bc->rope_interleaved ? 2 * i : i, k = bc->rope_interleaved ? 2 * i + 1 : i + half;
        double xj = x[j], xk = x[k];
        x[j] = xj * c - xk * sn;
        x[k] = xk * c + xj * sn;
    }
}

/* Row `at` of view v into x (D values), rotated to the position pos_expr gives (or `pos`). */
static int load_row(InterpEnv *env, const View *v, int64_t at, const TExpr *pos_expr, int64_t pos, double *x) {
    const BoundCall *bc = env->bc;
    for (int64_t d = 0; d < bc->sz.D; d++) x[d] = tensor_load(v->p, v->l->elem, at + d);
    if (!bc->attn->rotary) return 1;
    if (pos_expr) pos = eval_nested(env, pos_expr).i;
    if (env->failed) return 0;
    interp_rotate(bc, x, pos);
    return 1;
}

/* The Q row of env's (b, h, q), or NULL after a runtime error. */
const double *interp_q_row(InterpEnv *env) {
    InterpRows *r = env->rows;
    const Rotary *rot = env->bc->attn->rotary;
    if (!r->qready &&
        !load_row(env, &r->q, row_at(&r->q, env->b, env->h, env->q), rot ? rot->qpos : NULL, env->q, r->qrow))
        return NULL;
    r->qready = 1;
    return r->qrow;
}

/* The K row of env's (b, hk, kv), or NULL after a runtime error. */
const double *interp_k_row(InterpEnv *env) {
    InterpRows *r = env->rows;
    const Rotary *rot = env->bc->attn->rotary;
    int64_t D = env->bc->sz.D;
    if (r->kb != env->b || r->khk != env->hk) {
        memset(r->kready, 0, (size_t)env->bc->sz.Lk);
        r->kb = env->b, r->khk = env->hk;
    }
    double *x = r->krows + env->kv * D;
    if (!r->kready[env->kv] &&
        !load_row(env, &r->k, row_at(&r->k, env->b, env->hk, env->kv), rot ? rot->kvpos : NULL, env->kv, x))
        return NULL;
    r->kready[env->kv] = 1;
    return x;
}

InterpRows *interp_rows_new(const BoundCall *bc, const void *q, const void *k) {
    InterpRows *rows = calloc(1, sizeof *rows);
    if (!rows) return NULL;
    rows->q = (View){q, &bc->layout[BT_Q]}, rows->k = (View){k, &bc->layout[BT_K]}, rows->kb = -1, rows->khk = -1;
    rows->qrow = malloc(sizeof(double) * (size_t)bc->sz.D + 1);
    rows->krows = malloc(sizeof(double) * (size_t)bc->sz.D * (size_t)bc->sz.Lk + 1);
    rows->kready = malloc((size_t)bc->sz.Lk + 1);
    if (!rows->qrow || !rows->krows || !rows->kready) {
        interp_rows_free(rows);
        return NULL;
    }
    return rows;
}

void interp_rows_free(InterpRows *rows) {
    if (!rows) return;
    free(rows->qrow);
    free(rows->krows);
    free(rows->kready);
    free(rows);
}

void interp_rows_next_query(InterpRows *rows) { rows->qready = 0; }

/* A row argument of dot: float64 values (Q, K) or float32 ones (a tensor row), and its length. */
typedef struct RowRef {
    const double *d;
    const float *f;
    int64_t n;
} RowRef;

static int row_ref(InterpEnv *env, const TExpr *e, RowRef *out) {
    memset(out, 0, sizeof *out);
    if (e->kind == X_ROW_Q || e->kind == X_ROW_K) {
        out->d = e->kind == X_ROW_Q ? interp_q_row(env) : interp_k_row(env);
        out->n = env->bc->sz.D;
        return out->d != NULL;
    }
    const attnc_tensor *t = env->bc->tensors[decl_canon(e->decl)->index];
    int64_t offset;
    if (!interp_tensor_offset(env, e, &offset)) return 0;
    out->n = t->shape[e->nargs];
    out->f = (const float *)t->data + offset * out->n;
    return 1;
}

/* dot(X, Y) := sum_i X[i] * Y[i]; rows of different lengths are an error of the call. */
static Const eval_dot(InterpEnv *env, const TExpr *e) {
    RowRef x, y;
    if (!row_ref(env, e->args[0], &x) || !row_ref(env, e->args[1], &y)) return cint(0);
    if (x.n != y.n) {
        char what[160];
        snprintf(what, sizeof what, "dot of rows of different lengths (%lld and %lld)", (long long)x.n,
                 (long long)y.n);
        return interp_fail(env, e, what);
    }
    double acc = 0;
    for (int64_t i = 0; i < x.n; i++) acc += (x.d ? x.d[i] : (double)x.f[i]) * (y.d ? y.d[i] : (double)y.f[i]);
    return cflt(acc);
}

Const interp_eval(InterpEnv *env, const TExpr *e) {
    if (env->failed) return cint(0);
    switch (e->kind) {
    case X_CONST: return e->c;
    case X_VAR: return eval_var(env, e->var);
    case X_SCORE: return cflt(env->score);
    case X_PARAM: return env->bc->params[decl_canon(e->decl)->index];
    case X_LET: {
        /* a let's sums number their levels from 0: give them a fresh frame */
        int base = env->sum_base, top = env->sum_top;
        env->sum_base = env->sum_top;
        Const v = interp_eval(env, e->decl->init);
        env->sum_base = base;
        env->sum_top = top;
        return v;
    }
    case X_SUMVAR: return cint(env->sums[env->sum_base + e->level]);
    case X_TOFLOAT: {
        Const a = interp_eval(env, e->args[0]);
        return cflt((double)a.i);
    }
    case X_NEG: {
        Const a = interp_eval(env, e->args[0]);
        return e->type == T_INT ? cint(wrap_neg(a.i)) : cflt(-a.f);
    }
    case X_NOT: return cbool(!interp_eval(env, e->args[0]).b);
    case X_COND: {
        Const c = interp_eval(env, e->args[0]);
        if (env->failed) return c;
        return interp_eval(env, e->args[c.b ? 1 : 2]);
    }
    case X_CALL: return eval_call(env, e);
    case X_INDEX: return eval_index(env, e);
    case X_SUM: return eval_sum(env, e);
    case X_DOT: return eval_dot(env, e);
    case X_ROW_Q: case X_ROW_K: case X_ROW: return cint(0); /* only dot reads rows (sema) */
    default: return eval_binary(env, e);
    }
}

/* ---- the attention itself --------------------------------------------- */



/* Mask clauses in order, stopping at the first false one (spec 5.3). */
static int kept(InterpEnv *env, const Attention *a) {
    for (int i = 0; i < a->nmasks; i++) {
        Const m = interp_eval(env, a->masks[i]);
        if (env->failed || !m.b) return 0;
    }
    return 1;
}


int interp_masks_at(const BoundCall *bc, int64_t b, int64_t h, int64_t q, int64_t kv, attnc_error *err) {
    char msg[400] = "";
    InterpEnv *env = calloc(1, sizeof *env); /* large (sum stack): not on the caller's stack */
    if (!env) {
        set_error(err, ATTNC_ERR_NOMEM, "out of memory in the interpreter");
        return -1;
    }
    env->bc = bc, env->msg = msg, env->msgsize = sizeof msg;
    env->b = b, env->h = h, env->hk = h / (bc->sz.H / bc->sz.Hkv), env->q = q, env->kv = kv;
    int k = kept(env, bc->attn);
    if (env->failed) {
        set_error(err, ATTNC_ERR_RUNTIME, "%s", msg);
        k = -1;
    }
    free(env);
    return k;
}

/* The score of a kept pair after biases and score clauses. */
static double score_of(InterpEnv *env, const Attention *a, const View *q, int64_t qrow, const View *k, int64_t krow,
                       int64_t D) {
    double dot = 0;
    if (a->rotary) { /* the rotated rows */
        const double *x = interp_q_row(env), *y = x ? interp_k_row(env) : NULL;
        if (!y) return 0;
        for (int64_t d = 0; d < D; d++) dot += x[d] * y[d];
    } else {
        for (int64_t d = 0; d < D; d++)
            dot += tensor_load(q->p, q->l->elem, qrow + d) * tensor_load(k->p, k->l->elem, krow + d);
    }
    double s = env->bc->scale * dot;
    for (int i = 0; i < a->nbiases && !env->failed; i++) s += interp_eval(env, a->biases[i]).f;
    for (int i = 0; i < a->nscores && !env->failed; i++) {
        env->score = s;
        s = interp_eval(env, a->scores[i]).f;
    }
    return s;
}

/* One query row (env's b, h, q): p[kv] for kept pairs, then O and LSE. */
static void run_row(InterpEnv *env, const View *q, const View *k, const View *v, double *p, char *keep, double *orow,
                    double *lse) {
    const Attention *a = env->bc->attn;
    const attnc_sizes *sz = &env->bc->sz;
    int64_t qrow = row_at(q, env->b, env->h, env->q);
    int any = 0;
    double m = -INFINITY, sink = -INFINITY;
    if (env->rows) interp_rows_next_query(env->rows);
    if (a->sink) { /* read per row, whatever the masks keep (spec 9.4) */
        env->kv = 0;
        sink = eval_nested(env, a->sink).f;
    }
    for (int64_t kv = 0; kv < sz->Lk && !env->failed; kv++) {
        env->kv = kv;
        keep[kv] = (char)kept(env, a);
        if (!keep[kv]) continue;
        double s = score_of(env, a, q, qrow, k, row_at(k, env->b, env->hk, kv), sz->D);
        if (a->weight) {
            env->score = s;
            s = interp_eval(env, a->weight).f;
        }
        p[kv] = s;
        any = 1;
        if (s > m) m = s;
    }
    for (int64_t d = 0; d < sz->Dv; d++) orow[d] = 0;
    if (env->failed) return;
    /* softmax: a row with nothing kept, or only -inf scores, is fully masked:
     * O = 0 and LSE = the sink (-inf without one) */
    if (!any || (!a->weight && m == -INFINITY)) {
        *lse = sink;
        return;
    }
    /* a sink is one more kept term of score `sink` and value 0 (+inf: it takes every weight) */
    if (sink == INFINITY) {
        *lse = sink;
        return;
    }
    if (sink > m) m = sink;
    double l = a->sink ? exp(sink - m) : 0;
    for (int64_t kv = 0; kv < sz->Lk; kv++) {
        if (!keep[kv]) continue;
        double w = a->weight ? p[kv] : exp(p[kv] - m);
        int64_t vrow = row_at(v, env->b, env->hk, kv);
        l += w;
        for (int64_t d = 0; d < sz->Dv; d++) orow[d] += w * tensor_load(v->p, v->l->elem, vrow + d);
    }
    if (a->weight) {
        *lse = log(l);
    } else {
        for (int64_t d = 0; d < sz->Dv; d++) orow[d] /= l;
        *lse = m + log(l);
    }
}

/* The results, computed in [B, H, Lq] row order, to O and LSE at their
 * layouts: O rounded once to its element type. */
static void store_results(const BoundCall *bc, const double *out, const double *lse_out, void *o, float *lse) {
    const attnc_sizes *sz = &bc->sz;
    const BoundLayout *lo = &bc->layout[BT_O], *ll = &bc->layout[BT_LSE];
    for (int64_t b = 0; b < sz->B; b++)
        for (int64_t h = 0; h < sz->H; h++)
            for (int64_t qi = 0; qi < sz->Lq; qi++) {
                size_t row = (size_t)((b * sz->H + h) * sz->Lq + qi);
                int64_t at = b * lo->stride[0] + h * lo->stride[1] + qi * lo->stride[2];
                for (int64_t d = 0; d < sz->Dv; d++) tensor_store(o, lo->elem, at + d, out[row * (size_t)sz->Dv + (size_t)d]);
                if (lse) lse[b * ll->stride[0] + h * ll->stride[1] + qi * ll->stride[2]] = (float)lse_out[row];
            }
}

/* Every row into out ([B, H, Lq, Dv]) and lse_out ([B, H, Lq]), float64,
 * contiguous; ATTNC_ERR_RUNTIME with the first runtime error's message. */
static attnc_status run_rows(const BoundCall *bc, const void *q, const void *k, const void *v, double *out,
                             double *lse_out, attnc_error *err) {
    const attnc_sizes *sz = &bc->sz;
    double *p = malloc(sizeof(double) * (size_t)sz->Lk + 1);
    char *keep = malloc((size_t)sz->Lk + 1);
    InterpEnv *env = calloc(1, sizeof *env);
    InterpRows *rows = NULL;
    char msg[400] = "";
    attnc_status st = ATTNC_OK;
    if (!p || !keep || !env) {
        st = set_error(err, ATTNC_ERR_NOMEM, "out of memory in the interpreter");
        goto done;
    }
    env->bc = bc;
    env->msg = msg;
    env->msgsize = sizeof msg;
    View vq = {q, &bc->layout[BT_Q]}, vk = {k, &bc->layout[BT_K]}, vv = {v, &bc->layout[BT_V]};
    if (attention_reads_rows(bc->attn)) {
        if (!(rows = interp_rows_new(bc, q, k))) {
            st = set_error(err, ATTNC_ERR_NOMEM, "out of memory in the interpreter");
            goto done;
        }
        env->rows = rows;
    }
    int64_t group = sz->H / sz->Hkv;
    for (int64_t b = 0; b < sz->B && !env->failed; b++)
        for (int64_t h = 0; h < sz->H && !env->failed; h++)
            for (int64_t qi = 0; qi < sz->Lq && !env->failed; qi++) {
                size_t row = (size_t)((b * sz->H + h) * sz->Lq + qi);
                env->b = b, env->h = h, env->hk = h / group, env->q = qi, env->kv = 0;
                run_row(env, &vq, &vk, &vv, p, keep, out + row * (size_t)sz->Dv, &lse_out[row]);
            }
    if (env->failed) st = set_error(err, ATTNC_ERR_RUNTIME, "%s", msg);
done:
    interp_rows_free(rows);
    free(p);
    free(keep);
    free(env);
    return st;
}

attnc_status interp_run(const BoundCall *bc, const void *q, const void *k, const void *v, void *o, float *lse,
                        attnc_error *err) {
    const attnc_sizes *sz = &bc->sz;
    size_t rows = (size_t)(sz->B * sz->H * sz->Lq);
    /* results go to a private buffer first: on an error nothing is written */
    double *out = malloc(sizeof(double) * (rows * (size_t)sz->Dv + rows) + 1);
    if (!out) return set_error(err, ATTNC_ERR_NOMEM, "out of memory in the interpreter");
    double *lse_out = out + rows * (size_t)sz->Dv;
    attnc_status st = run_rows(bc, q, k, v, out, lse_out, err);
    if (!st && o) store_results(bc, out, lse_out, o, lse);
    free(out);
    return st;
}

attnc_status interp_run_f64(const BoundCall *bc, const void *q, const void *k, const void *v, double *o,
                            double *lse, attnc_error *err) {
    return run_rows(bc, q, k, v, o, lse, err);
}

/* ---- the interpreter as a backend: nothing to compile, its own runner ---- */

static attnc_status interp_compile(const Plan *p, const attnc_options *opts, CompiledKernel *ck, void **state,
                                   attnc_error *err) {
    (void)p, (void)opts, (void)ck, (void)state, (void)err;
    return ATTNC_OK;
}

static void interp_release(void *state) { (void)state; }

static attnc_status interp_backend_run(const Plan *p, const CompiledKernel *ck, const BoundCall *bc,
                                       const attnc_args *args, int threads, attnc_error *err) {
    (void)p, (void)ck, (void)threads;
    return interp_run(bc, args->q, args->k, args->v, args->o, args->lse, err);
}

const BackendImpl backend_interp = {
    .id = ATTNC_BACKEND_INTERP,
    .can_run = 1,
    .compile = interp_compile,
    .release = interp_release,
    .emit = backend_emit_nothing,
    .run = interp_backend_run,
    .backward = interp_backward,
    .layouts = 1,
};
