/* ir_eval.c — the semantics of each IR operation on constants, and a scalar
 * evaluator of IR nodes.  Requires: an IrModule.  Produces: values in
 * float64 (like the reference interpreter), with the IR's total semantics:
 * int x/0 and x%0 give 0, an out-of-range load gives 0. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ir_passes.h"

static int64_t wrap(uint64_t x) { return (int64_t)x; }

static int64_t floor_div(int64_t a, int64_t b) {
    if (b == 0) return 0;
    if (b == -1) return wrap(0 - (uint64_t)a);
    int64_t q = a / b;
    if (a % b != 0 && ((a < 0) != (b < 0))) q--;
    return q;
}

static int64_t floor_mod(int64_t a, int64_t b) {
    if (b == 0 || b == -1) return 0;
    int64_t r = a % b;
    if (r != 0 && ((r < 0) != (b < 0))) r += b;
    return r;
}

static int64_t saturate(double x) {
    if (isnan(x)) return 0;
    if (x >= 9223372036854775808.0) return INT64_MAX;
    if (x < -9223372036854775808.0) return INT64_MIN;
    return (int64_t)x;
}

static double call_float(Fn fn, double x, double y) {
    switch (fn) {
    case FN_EXP: return exp(x);
    case FN_EXP2: return exp2(x);
    case FN_LOG: return log(x);
    case FN_LOG2: return log2(x);
    case FN_SQRT: return sqrt(x);
    case FN_TANH: return tanh(x);
    case FN_SIGMOID: return 1.0 / (1.0 + exp(-x));
    case FN_ERF: return erf(x);
    case FN_POW: return pow(x, y);
    case FN_FLOOR: return floor(x);
    case FN_CEIL: return ceil(x);
    case FN_SIGN: return x > 0 ? 1.0 : x < 0 ? -1.0 : x;
    case FN_SIN: return sin(x);
    case FN_COS: return cos(x);
    default: return NAN;
    }
}

Const ir_apply(IrOp op, Type t, int aux, const Const *a, const Type *at) {
    Const r = {0};
    int ints = at && at[0] == T_INT;
    switch (op) {
    case IR_TOFLOAT: r.f = (double)a[0].i; break;
    case IR_NEG:
        if (t == T_INT) r.i = wrap(0 - (uint64_t)a[0].i);
        else r.f = -a[0].f;
        break;
    case IR_NOT: r.b = !a[0].b; break;
    case IR_DIAG: r = a[0]; break;
    case IR_ADD:
        if (t == T_INT) r.i = wrap((uint64_t)a[0].i + (uint64_t)a[1].i);
        else r.f = a[0].f + a[1].f;
        break;
    case IR_SUB:
        if (t == T_INT) r.i = wrap((uint64_t)a[0].i - (uint64_t)a[1].i);
        else r.f = a[0].f - a[1].f;
        break;
    case IR_MUL:
        if (t == T_INT) r.i = wrap((uint64_t)a[0].i * (uint64_t)a[1].i);
        else r.f = a[0].f * a[1].f;
        break;
    case IR_DIV:
        if (t == T_INT) r.i = floor_div(a[0].i, a[1].i);
        else r.f = a[0].f / a[1].f;
        break;
    case IR_MOD:
        if (t == T_INT) {
            r.i = floor_mod(a[0].i, a[1].i);
        } else {
            r.f = fmod(a[0].f, a[1].f);
            if (r.f != 0 && ((r.f < 0) != (a[1].f < 0))) r.f += a[1].f;
        }
        break;
    case IR_LT: r.b = ints ? a[0].i < a[1].i : a[0].f < a[1].f; break;
    case IR_LE: r.b = ints ? a[0].i <= a[1].i : a[0].f <= a[1].f; break;
    case IR_EQ: r.b = ints ? a[0].i == a[1].i : at && at[0] == T_BOOL ? a[0].b == a[1].b : a[0].f == a[1].f; break;
    case IR_NE: r.b = ints ? a[0].i != a[1].i : at && at[0] == T_BOOL ? a[0].b != a[1].b : a[0].f != a[1].f; break;
    case IR_AND: r.b = a[0].b && a[1].b; break;
    case IR_OR: r.b = a[0].b || a[1].b; break;
    case IR_SELECT: r = a[0].b ? a[1] : a[2]; break;
    case IR_ABS:
        if (t == T_INT) r.i = a[0].i < 0 ? wrap(0 - (uint64_t)a[0].i) : a[0].i;
        else r.f = fabs(a[0].f);
        break;
    case IR_MIN:
        if (t == T_INT) r.i = a[0].i < a[1].i ? a[0].i : a[1].i;
        else r.f = a[0].f < a[1].f ? a[0].f : a[1].f;
        break;
    case IR_MAX:
        if (t == T_INT) r.i = a[0].i > a[1].i ? a[0].i : a[1].i;
        else r.f = a[0].f > a[1].f ? a[0].f : a[1].f;
        break;
    case IR_CALL:
        if (aux == FN_INT) r.i = ints ? a[0].i : saturate(a[0].f);
        else r.f = call_float((Fn)aux, a[0].f, aux == FN_POW ? a[1].f : 0.0); /* only pow has two */
        break;
    default: break;
    }
    return r;
}

int ir_eval_init(IrEval *ev, const IrModule *m) {
    memset(ev, 0, sizeof *ev);
    ev->m = m;
    ev->memo = malloc(sizeof(Const) * (size_t)(m->n + 1));
    ev->stamp = calloc((size_t)m->n + 1, sizeof(unsigned));
    ev->gen = 1;
    if (ev->memo && ev->stamp) return 1;
    ir_eval_free(ev); /* one of the two may have been made */
    return 0;
}

void ir_eval_free(IrEval *ev) {
    free(ev->memo);
    free(ev->stamp);
    ev->memo = NULL;
    ev->stamp = NULL;
}

void ir_eval_reset(IrEval *ev) {
    if (++ev->gen == 0) {
        memset(ev->stamp, 0, sizeof(unsigned) * (size_t)(ev->m->n + 1));
        ev->gen = 1;
    }
}

static Const var_value(const IrEval *ev, int var) {
    const attnc_sizes *s = &ev->sz;
    int64_t v[V_COUNT] = {ev->b, ev->h, ev->q, ev->kv, ev->hk, s->B, s->H, s->Hkv, s->Lq, s->Lk, s->D, s->Dv};
    return (Const){.i = v[var]};
}

/* In-bounds check and row-major offset of a load's indices (the offset only when in bounds). */
static int64_t flat_index(const IrEval *ev, const IrNode *n, const Const *idx, int *inb) {
    const int64_t *dims = ev->dims[n->aux];
    int64_t off = 0;
    *inb = 1;
    for (int i = 0; i < n->nargs; i++)
        if (idx[i].i < 0 || idx[i].i >= dims[i]) *inb = 0;
    if (*inb)
        for (int i = 0; i < n->nargs; i++) off = off * dims[i] + idx[i].i;
    return off;
}

Const ir_eval_node(const IrEval *ev, IrRef r, const Const *a) {
    const IrNode *n = &ev->m->nodes[r];
    Const out = {0};
    switch (n->op) {
    case IR_CONST: return n->c;
    case IR_VAR: return var_value(ev, n->aux);
    case IR_PARAM: return ev->params[n->aux];
    case IR_PRE: out.f = ev->pre; return out;
    case IR_SUMVAR: out.i = ev->sumvar[n->aux]; return out;
    case IR_SUM:
    case IR_ANY: return out; /* loops: the caller's */
    case IR_LOAD:
    case IR_INBOUNDS: {
        int inb;
        int64_t off = flat_index(ev, n, a, &inb);
        if (n->op == IR_INBOUNDS) {
            out.b = inb;
        } else if (inb) {
            const attnc_tensor *t = ev->tensors[n->aux];
            if (t->dtype == ATTNC_I32) out.i = ((const int32_t *)t->data)[off];
            else out.f = ((const float *)t->data)[off];
        }
        return out;
    }
    default: {
        Type at[3] = {T_INT, T_INT, T_INT};
        for (int i = 0; i < n->nargs && i < 3; i++) at[i] = ev->m->nodes[n->args[i]].type;
        return ir_apply(n->op, n->type, n->aux, a, at);
    }
    }
}

Const ir_eval(IrEval *ev, IrRef r) {
    const IrNode *n = &ev->m->nodes[r];
    int memo_ok = !(n->deps & DEP_SUMVAR);
    if (memo_ok && ev->stamp[r] == ev->gen) return ev->memo[r];
    Const out = {0}, a[ATTNC_MAX_RANK];
    switch (n->op) {
    case IR_SUM:
    case IR_ANY: {
        int64_t bound = ir_eval(ev, n->args[0]).i;
        int64_t saved = ev->sumvar[n->aux];
        double acc_f = 0;
        int64_t acc_i = 0;
        int any = 0;
        for (int64_t i = 0; i < bound && !(n->op == IR_ANY && any); i++) {
            ev->sumvar[n->aux] = i;
            Const v = ir_eval(ev, n->args[1]);
            if (n->op == IR_ANY) any |= v.b;
            else if (n->type == T_INT) acc_i = wrap((uint64_t)acc_i + (uint64_t)v.i);
            else acc_f += v.f;
        }
        ev->sumvar[n->aux] = saved;
        if (n->op == IR_ANY) out.b = any;
        else if (n->type == T_INT) out.i = acc_i;
        else out.f = acc_f;
        break;
    }
    case IR_AND:
    case IR_OR: {
        /* short-circuit: the other side may read what only this side guards */
        Const x = ir_eval(ev, n->args[0]);
        if (n->op == IR_AND ? !x.b : x.b) out.b = x.b;
        else out.b = ir_eval(ev, n->args[1]).b;
        break;
    }
    case IR_SELECT: out = ir_eval(ev, n->args[ir_eval(ev, n->args[0]).b ? 1 : 2]); break;
    default:
        for (int i = 0; i < n->nargs && i < ATTNC_MAX_RANK; i++) a[i] = ir_eval(ev, n->args[i]);
        out = ir_eval_node(ev, r, a);
    }
    if (memo_ok) {
        ev->memo[r] = out;
        ev->stamp[r] = ev->gen;
    }
    return out;
}
