/* interp_grad.c — the interpreter's backward pass: the reference every
 * compiled backward is tested against (docs/gradients.md, spec 9.5).
 * Requires: a bound call (bind.c) and its bound gradients (bind_grad.c).
 * Produces: dQ, dK, dV and the asked tensor gradients of
 * L = sum(O * dO) + sum(LSE * dLSE), accumulated in float64 and written once,
 * only on success.
 *
 * How: one query row (b, h, q) at a time, as the forward (interp.c) runs it.
 * Each kept element's chain — pre = scale * dot(Q, K) + biases, then the
 * score clauses, then the weight — is evaluated on a small tape (reverse
 * mode): float nodes record their operands and local derivatives; int and
 * bool subexpressions (masks, indices, conditions) are evaluated by the
 * forward's own interp_eval and carry no derivative.  A first pass over the
 * row gives the value roots (the score for softmax, the weight otherwise),
 * the row's LSE and O, recomputed here in float64 (the float32 O and LSE the
 * caller passes are not trusted, nor read); a second pass re-records each
 * element and sweeps its tape backwards from the seed dL/d(root), which
 * gives dL/dpre (for dQ and dK) and dL/d(every float tensor element read)
 * at once.  Laziness is the forward's: masks in order up to the first false,
 * only the taken side of ?: (&& and || are bool: no derivative).
 *
 * Version 2 (spec 9): the score's dot product and the Q / K rows of `dot`
 * read the rows after rotary (interp.c's interp_q_row / interp_k_row, the
 * forward's own); dQ and dK accumulate with respect to those rows and are
 * rotated back at the end (R^T: the rotation by minus the position).  A
 * `dot` is a leaf whose adjoint the sweep spreads over both rows (to dQ,
 * dK or the tensor's gradient).  A sink is one more softmax term of value
 * 0: it enters p and O, and its expression is recorded and swept once per
 * row with the seed P_sink (dLSE - Delta).
 *
 * It shares nothing with middle/ (the derivative IR): two independent
 * implementations check each other. */
#include "interp_grad.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "interp.h"
#include "tensor_io.h"

enum { LEAF_NONE = -1, LEAF_PRE = -2, LEAF_DOT = -3 }; /* Node.leaf: >= 0 is a tensor index */

/* One float value of the element's chain: up to three operands with the
 * local derivatives d(this)/d(operand). */
typedef struct Node {
    double val, adj;
    double d[3];
    int par[3], np;
    int leaf;    /* LEAF_PRE: the pre-bias score; LEAF_DOT: dot record `off`; >= 0: element `off` of that tensor */
    int reached; /* on a path from the root (PyTorch's graph: nothing else gets a gradient) */
    int64_t off;
} Node;

/* A float value and its tape node (-1: a constant, no derivative). */
typedef struct Val {
    double v;
    int at;
} Val;

/* One side of a dot of rows (spec 9.2): its values and where its gradient goes. */
typedef struct DotSide {
    const double *d; /* Q or K (after rotary) */
    const float *f;  /* a tensor row */
    double *grad;    /* the row's gradient accumulator (NULL: not wanted) */
    char *touched;   /* set when grad is added to (Q and K rows: they are rotated back at the end) */
} DotSide;

typedef struct DotRec {
    DotSide x, y;
    int64_t n;
} DotRec;

typedef struct Grad {
    const BoundCall *bc;
    const BoundGrad *bg;
    InterpEnv *env;
    Node *tape;
    int len, cap, nomem;
    DotRec *dots; /* the dots of the element being recorded (LEAF_DOT nodes) */
    int ndots, dots_cap;
    Val score; /* what `score` is in the clause being recorded */
    double **dt; /* tensor gradients by tensor index, float64 (NULL: not wanted) */
    double *dq, *dk; /* dQ, dK of the rows as the score reads them (after rotary); NULL: not wanted */
    char *qtouched, *ktouched; /* rows of dq, dk added to */
} Grad;

static Val konst(double v) { return (Val){v, -1}; }

/* A node with the operands of ops that are not constants; a constant when
 * all are. */
static Val node(Grad *g, double v, int n, const Val *ops, const double *d, int leaf, int64_t off) {
    Node x = {.val = v, .leaf = leaf, .off = off};
    for (int i = 0; i < n; i++)
        if (ops[i].at >= 0) x.par[x.np] = ops[i].at, x.d[x.np++] = d[i];
    if (x.np == 0 && leaf == LEAF_NONE) return konst(v);
    if (g->len == g->cap) {
        int cap = g->cap ? 2 * g->cap : 256;
        Node *t = g->cap < (1 << 28) ? realloc(g->tape, sizeof *t * (size_t)cap) : NULL;
        if (!t) {
            g->nomem = 1;
            g->env->failed = 1; /* stops the evaluation; reported as out of memory */
            return konst(v);
        }
        g->tape = t, g->cap = cap;
    }
    g->tape[g->len] = x;
    return (Val){v, g->len++};
}

static Val op1(Grad *g, double v, Val a, double da) { return node(g, v, 1, &a, &da, LEAF_NONE, 0); }

static Val op2(Grad *g, double v, Val a, double da, Val b, double db) {
    Val ops[2] = {a, b};
    double d[2] = {da, db};
    return node(g, v, 2, ops, d, LEAF_NONE, 0);
}

/* The operand min/max/clamp chose, carrying the value the forward computes
 * (spec 9.5: the derivative is the chosen operand's; ties: the first). */
static Val chosen(Grad *g, double v, Val pick) { return op1(g, v, pick, 1.0); }

static Val dval(Grad *g, const TExpr *e);

/* pow(a, b) as PyTorch differentiates it: d/da = b * a^(b-1) (0 where b == 0),
 * d/db = a^b * log(a) (0 where a == 0 and b >= 0). */
static Val dpow(Grad *g, Val a, Val b) {
    double v = pow(a.v, b.v);
    double da = b.v == 0 ? 0 : b.v * pow(a.v, b.v - 1);
    double db = a.v == 0 && b.v >= 0 ? 0 : v * log(a.v);
    return op2(g, v, a, da, b, db);
}

static Val dcall(Grad *g, const TExpr *e) {
    Val a[3];
    for (int i = 0; i < e->nargs; i++) {
        a[i] = dval(g, e->args[i]);
        if (g->env->failed) return konst(0);
    }
    double x = a[0].v, v;
    switch (e->fn) {
    case FN_ABS: return op1(g, fabs(x), a[0], x > 0 ? 1.0 : x < 0 ? -1.0 : 0.0);
    case FN_MIN: return chosen(g, x < a[1].v ? x : a[1].v, x <= a[1].v ? a[0] : a[1]);
    case FN_MAX: return chosen(g, x > a[1].v ? x : a[1].v, x >= a[1].v ? a[0] : a[1]);
    case FN_CLAMP: {
        /* clamp(x, lo, hi) = min(max(x, lo), hi), as the forward computes it */
        double y = x > a[1].v ? x : a[1].v;
        Val ymax = chosen(g, y, x >= a[1].v ? a[0] : a[1]);
        return chosen(g, y < a[2].v ? y : a[2].v, y <= a[2].v ? ymax : a[2]);
    }
    case FN_EXP: v = exp(x); return op1(g, v, a[0], v);
    case FN_EXP2: v = exp2(x); return op1(g, v, a[0], v * 0.69314718055994530942);
    case FN_LOG: return op1(g, log(x), a[0], 1.0 / x);
    case FN_LOG2: return op1(g, log2(x), a[0], 1.0 / (x * 0.69314718055994530942));
    case FN_SQRT: v = sqrt(x); return op1(g, v, a[0], 0.5 / v);
    case FN_TANH: v = tanh(x); return op1(g, v, a[0], 1.0 - v * v);
    case FN_SIGMOID: v = 1.0 / (1.0 + exp(-x)); return op1(g, v, a[0], v * (1.0 - v));
    case FN_ERF: return op1(g, erf(x), a[0], 1.1283791670955125739 * exp(-x * x));
    case FN_SIN: return op1(g, sin(x), a[0], cos(x));
    case FN_COS: return op1(g, cos(x), a[0], -sin(x));
    case FN_POW: return dpow(g, a[0], a[1]);
    case FN_FLOAT: return a[0]; /* of a float: the identity (of an int: a constant, see dval) */
    case FN_FLOOR: return konst(floor(x));
    case FN_CEIL: return konst(ceil(x));
    case FN_SIGN: return konst(x > 0 ? 1.0 : x < 0 ? -1.0 : x);
    default: return konst(0); /* FN_INT is int-typed: never here */
    }
}

/* Python's float modulo, as the forward computes it (interp.c's float_mod):
 * a - floor(a / b) * b, so d/da = 1 and d/db = -floor(a / b) (PyTorch's remainder). */
static Val dmod(Grad *g, Val a, Val b) {
    double r = fmod(a.v, b.v);
    if (r != 0 && ((r < 0) != (b.v < 0))) r += b.v;
    return op2(g, r, a, 1.0, b, -floor(a.v / b.v));
}

static Val dbinary(Grad *g, const TExpr *e) {
    Val a = dval(g, e->args[0]);
    if (g->env->failed) return a;
    Val b = dval(g, e->args[1]);
    if (g->env->failed) return b;
    switch (e->kind) {
    case X_ADD: return op2(g, a.v + b.v, a, 1.0, b, 1.0);
    case X_SUB: return op2(g, a.v - b.v, a, 1.0, b, -1.0);
    case X_MUL: return op2(g, a.v * b.v, a, b.v, b, a.v);
    case X_DIV: return op2(g, a.v / b.v, a, 1.0 / b.v, b, -a.v / (b.v * b.v));
    case X_MOD: return dmod(g, a, b);
    default: return konst(0); /* comparisons and logic are bool: never here */
    }
}

/* A float tensor element: a leaf (its gradient accumulates there). */
static Val dindex(Grad *g, const TExpr *e) {
    int64_t off;
    if (!interp_tensor_offset(g->env, e, &off)) return konst(0);
    int t = decl_canon(e->decl)->index;
    double v = ((const float *)g->bc->tensors[t]->data)[off];
    return node(g, v, 0, NULL, NULL, t, off);
}

/* sum(r < R) e of floats, with the sum frame the forward uses. */
static Val dsum(Grad *g, const TExpr *e) {
    InterpEnv *env = g->env;
    Const n = interp_eval(env, e->args[0]);
    if (env->failed) return konst(0);
    int slot = env->sum_base + e->level, saved_top = env->sum_top;
    env->sum_top = slot + 1;
    Val acc = konst(0);
    for (int64_t r = 0; r < n.i && !env->failed; r++) {
        env->sums[slot] = r;
        Val v = dval(g, e->args[1]);
        acc = op2(g, acc.v + v.v, acc, 1.0, v, 1.0);
    }
    env->sum_top = saved_top;
    return acc;
}

/* Row e of a dot (X_ROW_Q, X_ROW_K or a tensor row) into *side with its length; 0 after a runtime error. */
static int dot_side(Grad *g, const TExpr *e, DotSide *side, int64_t *n) {
    InterpEnv *env = g->env;
    const attnc_sizes *sz = &g->bc->sz;
    memset(side, 0, sizeof *side);
    if (e->kind == X_ROW_Q || e->kind == X_ROW_K) {
        int is_q = e->kind == X_ROW_Q;
        side->d = is_q ? interp_q_row(env) : interp_k_row(env);
        int64_t row = is_q ? (env->b * sz->H + env->h) * sz->Lq + env->q : (env->b * sz->Hkv + env->hk) * sz->Lk + env->kv;
        double *acc = is_q ? g->dq : g->dk;
        side->grad = acc ? acc + row * sz->D : NULL;
        side->touched = acc ? (is_q ? g->qtouched : g->ktouched) + row : NULL;
        *n = sz->D;
        return side->d != NULL;
    }
    const attnc_tensor *t = g->bc->tensors[decl_canon(e->decl)->index];
    int64_t off;
    if (!interp_tensor_offset(env, e, &off)) return 0;
    *n = t->shape[e->nargs];
    side->f = (const float *)t->data + off * *n;
    double *acc = g->dt[decl_canon(e->decl)->index];
    side->grad = acc ? acc + off * *n : NULL;
    return 1;
}

/* dot(X, Y): a leaf whose adjoint the sweep spreads over both rows (dot_adjoint). */
static Val ddot(Grad *g, const TExpr *e) {
    DotRec r;
    int64_t ny;
    if (!dot_side(g, e->args[0], &r.x, &r.n) || !dot_side(g, e->args[1], &r.y, &ny)) return konst(0);
    if (r.n != ny) return konst(interp_eval(g->env, e).f); /* the forward's error, worded as it words it */
    double v = 0;
    for (int64_t i = 0; i < r.n; i++) v += (r.x.d ? r.x.d[i] : r.x.f[i]) * (r.y.d ? r.y.d[i] : r.y.f[i]);
    if (g->ndots == g->dots_cap) {
        int cap = g->dots_cap ? 2 * g->dots_cap : 16;
        DotRec *d = g->dots_cap < (1 << 24) ? realloc(g->dots, sizeof *d * (size_t)cap) : NULL;
        if (!d) {
            g->nomem = 1;
            g->env->failed = 1;
            return konst(v);
        }
        g->dots = d, g->dots_cap = cap;
    }
    g->dots[g->ndots] = r;
    return node(g, v, 0, NULL, NULL, LEAF_DOT, g->ndots++);
}

/* dX += adj * Y on a side of a dot whose gradient is wanted. */
static void dot_side_adjoint(const DotSide *x, const DotSide *y, int64_t n, double adj) {
    if (!x->grad) return;
    for (int64_t i = 0; i < n; i++) x->grad[i] += adj * (y->d ? y->d[i] : y->f[i]);
    if (x->touched) *x->touched = 1;
}

static void dot_adjoint(const DotRec *r, double adj) {
    dot_side_adjoint(&r->x, &r->y, r->n, adj);
    dot_side_adjoint(&r->y, &r->x, r->n, adj);
}

/* Evaluate a float expression, recording what depends on the score or on a
 * float tensor.  Everything else (ints, bools, floats of sizes and params
 * only) goes through the forward's interp_eval: no derivative. */
static Val dval(Grad *g, const TExpr *e) {
    InterpEnv *env = g->env;
    if (env->failed) return konst(0);
    if (e->type == T_INT) return konst((double)interp_eval(env, e).i); /* sema promotes: not expected */
    if (!(e->deps & (DEP_SCORE | DEP_TENSOR | DEP_ROW))) return konst(interp_eval(env, e).f);
    switch (e->kind) {
    case X_SCORE: return g->score;
    case X_LET: {
        /* a let's sums number their levels from 0: a fresh frame, as interp_eval gives it */
        int base = env->sum_base, top = env->sum_top;
        env->sum_base = env->sum_top;
        Val v = dval(g, e->decl->init);
        env->sum_base = base;
        env->sum_top = top;
        return v;
    }
    case X_NEG: {
        Val a = dval(g, e->args[0]);
        return op1(g, -a.v, a, -1.0);
    }
    case X_COND: {
        Const c = interp_eval(env, e->args[0]);
        if (env->failed) return konst(0);
        return dval(g, e->args[c.b ? 1 : 2]);
    }
    case X_ADD:
    case X_SUB:
    case X_MUL:
    case X_DIV:
    case X_MOD: return dbinary(g, e);
    case X_CALL: return dcall(g, e);
    case X_INDEX: return dindex(g, e);
    case X_SUM: return dsum(g, e);
    case X_DOT: return ddot(g, e);
    default: return konst(interp_eval(env, e).f); /* X_TOFLOAT of an int tensor element: an int, no derivative */
    }
}

/* ---- one element, one row ---------------------------------------------- */

/* Q, K, V, dO or a gradient as laid out: element [b, h, l, 0]. */
static int64_t at(const BoundLayout *l, int64_t b, int64_t h, int64_t r) {
    return b * l->stride[0] + h * l->stride[1] + r * l->stride[2];
}

/* Record the kept element (env's b, h, q, kv) on a fresh tape: the value root
 * (the score after every clause, or the weight).  The leaf LEAF_PRE is
 * scale * dot(Q, K), so its adjoint is dL/dpre. */
static Val record(Grad *g) {
    const BoundCall *bc = g->bc;
    const Attention *a = bc->attn;
    InterpEnv *env = g->env;
    /* the rows the forward's dot product reads: after rotary, if any */
    const double *x = interp_q_row(env), *y = x ? interp_k_row(env) : NULL;
    if (!y) return konst(0);
    double dot = 0;
    for (int64_t d = 0; d < bc->sz.D; d++) dot += x[d] * y[d];
    g->len = 0;
    g->ndots = 0;
    Val s = node(g, bc->scale * dot, 0, NULL, NULL, LEAF_PRE, 0);
    for (int i = 0; i < a->nbiases && !env->failed; i++) {
        Val b = dval(g, a->biases[i]);
        s = op2(g, s.v + b.v, s, 1.0, b, 1.0);
    }
    int nchain = a->nscores + (a->weight != NULL);
    for (int i = 0; i < nchain && !env->failed; i++) {
        g->score = s;
        env->score = s.v;
        s = dval(g, i < a->nscores ? a->scores[i] : a->weight);
    }
    return s;
}

/* Sweep the tape back from root with adjoint seed: returns dL/dpre and adds
 * dL/dT to the wanted tensor gradients. */
static double sweep(Grad *g, Val root, double seed) {
    if (root.at < 0) return 0;
    for (int i = 0; i < g->len; i++) g->tape[i].adj = 0, g->tape[i].reached = 0;
    g->tape[root.at].adj = seed;
    g->tape[root.at].reached = 1;
    double gpre = 0;
    /* operands come before their users: a node's adjoint is complete when the sweep reaches it */
    for (int i = root.at; i >= 0; i--) {
        const Node *x = &g->tape[i];
        if (!x->reached) continue;
        for (int j = 0; j < x->np; j++) {
            g->tape[x->par[j]].adj += x->d[j] * x->adj;
            g->tape[x->par[j]].reached = 1;
        }
        if (x->leaf == LEAF_PRE) gpre += x->adj;
        if (x->leaf == LEAF_DOT) dot_adjoint(&g->dots[x->off], x->adj);
        if (x->leaf >= 0 && g->dt[x->leaf]) g->dt[x->leaf][x->off] += x->adj;
    }
    return gpre;
}

/* Per-call float64 accumulators (NULL: not wanted) and per-row scratch. */
typedef struct Acc {
    double *dv;
    double *root, *p, *o, *dout; /* [Lk], [Lk], [Dv], [Dv] */
    char *keep;
    int chain; /* dQ, dK or a tensor gradient wanted: sweep the tapes */
    double psink; /* the sink's probability in the row (spec 9.4) */
} Acc;

/* Mask clauses in order up to the first false one (spec 5.3). */
static int kept(InterpEnv *env, const Attention *a) {
    for (int i = 0; i < a->nmasks; i++) {
        Const m = interp_eval(env, a->masks[i]);
        if (env->failed || !m.b) return 0;
    }
    return 1;
}

/* The row's probabilities (into w->p), O (w->o) and sum of weights; 0 for a
 * row the forward calls empty (nothing kept; softmax: every score -inf),
 * whose gradient is zero. */
static int row_forward(Grad *g, const attnc_args *args, Acc *w, double *l) {
    const BoundCall *bc = g->bc;
    const Attention *a = bc->attn;
    InterpEnv *env = g->env;
    const attnc_sizes *sz = &bc->sz;
    int any = 0;
    double m = -INFINITY, sink = -INFINITY;
    interp_rows_next_query(env->rows);
    if (a->sink) { /* read per row, whatever the masks keep: as the forward */
        env->kv = 0;
        sink = dval(g, a->sink).v;
    }
    for (int64_t kv = 0; kv < sz->Lk && !env->failed; kv++) {
        env->kv = kv;
        w->keep[kv] = (char)kept(env, a);
        if (!w->keep[kv]) continue;
        w->root[kv] = record(g).v;
        any = 1;
        if (w->root[kv] > m) m = w->root[kv];
    }
    if (env->failed) return 0;
    if (!any || (!a->weight && m == -INFINITY) || sink == INFINITY) {
        /* nothing kept (or a sink of +inf takes every weight): O = 0, LSE = the
         * sink, whose gradient is dLSE; without a sink, no gradient at all */
        if (sink == -INFINITY) return 0;
        memset(w->keep, 0, (size_t)sz->Lk);
        memset(w->o, 0, sizeof(double) * (size_t)sz->Dv);
        w->psink = 1;
        return 1;
    }
    if (sink > m) m = sink;
    *l = a->sink ? exp(sink - m) : 0;
    for (int64_t kv = 0; kv < sz->Lk; kv++)
        if (w->keep[kv]) *l += w->p[kv] = a->weight ? w->root[kv] : exp(w->root[kv] - m);
    w->psink = a->sink ? exp(sink - m) / *l : 0;
    for (int64_t d = 0; d < sz->Dv; d++) w->o[d] = 0;
    const BoundLayout *lv = &bc->layout[BT_V];
    for (int64_t kv = 0; kv < sz->Lk; kv++) {
        if (!w->keep[kv]) continue;
        if (!a->weight) w->p[kv] /= *l;
        int64_t vrow = at(lv, env->b, env->hk, kv);
        for (int64_t d = 0; d < sz->Dv; d++) w->o[d] += w->p[kv] * tensor_load(args->v, lv->elem, vrow + d);
    }
    return 1;
}

/* The sink's term of env's row: dL/dsink = P_sink (dLSE - Delta) = seed,
 * through the sink's expression to the float tensors it reads. */
static void sink_sweep(Grad *g, double seed) {
    if (g->env->failed) return;
    g->env->kv = 0;
    g->len = 0;
    sweep(g, dval(g, g->bc->attn->sink), seed);
}

/* acc's row `row` (D values; acc NULL: not wanted) += c * x. */
static void add_row(double *acc, char *touched, size_t row, const double *x, double c, int64_t D) {
    if (!acc) return;
    for (int64_t d = 0; d < D; d++) acc[row * (size_t)D + (size_t)d] += c * x[d];
    touched[row] = 1;
}

/* One query row (env's b, h, q): seeds, then dV, dQ, dK and the tensor
 * gradients of its kept elements. */
static void grad_row(Grad *g, const attnc_args *args, Acc *w) {
    const BoundCall *bc = g->bc;
    const BoundGrad *bg = g->bg;
    InterpEnv *env = g->env;
    const attnc_sizes *sz = &bc->sz;
    int weight = bc->attn->weight != NULL;
    double l = 0;
    if (!row_forward(g, args, w, &l)) return;
    const BoundLayout *lo = &bg->layout[GT_DOUT], *ll = &bg->layout[GT_DLSE];
    int64_t orow = at(lo, env->b, env->h, env->q);
    for (int64_t d = 0; d < sz->Dv; d++) w->dout[d] = bg->dout ? tensor_load(bg->dout, lo->elem, orow + d) : 0;
    double dlse = bg->dlse ? bg->dlse[at(ll, env->b, env->h, env->q)] : 0;
    double delta = 0;
    for (int64_t d = 0; d < sz->Dv; d++) delta += w->dout[d] * w->o[d];
    const BoundLayout *lv = &bc->layout[BT_V];
    size_t qrow = (size_t)((env->b * sz->H + env->h) * sz->Lq + env->q);
    for (int64_t kv = 0; kv < sz->Lk && !env->failed; kv++) {
        if (!w->keep[kv]) continue;
        int64_t vrow = at(lv, env->b, env->hk, kv);
        size_t kvrow = (size_t)((env->b * sz->Hkv + env->hk) * sz->Lk + kv);
        double dp = 0;
        for (int64_t d = 0; d < sz->Dv; d++) dp += w->dout[d] * tensor_load(args->v, lv->elem, vrow + d);
        /* dL/d(root): softmax p (dP - Delta + dLSE); weight dP + dLSE / sum(p), the
         * dLSE term only where dLSE is not 0 (a row whose weights sum to 0 has LSE -inf) */
        double seed = weight ? dp + (dlse != 0 ? dlse / l : 0) : w->p[kv] * (dp - delta + dlse);
        if (w->dv)
            for (int64_t d = 0; d < sz->Dv; d++) w->dv[kvrow * (size_t)sz->Dv + (size_t)d] += w->p[kv] * w->dout[d];
        if (!w->chain) continue;
        env->kv = kv;
        Val root = record(g);
        double gpre = sweep(g, root, seed) * bc->scale;
        const double *x = interp_q_row(env), *y = interp_k_row(env); /* both cached by record */
        add_row(g->dq, g->qtouched, qrow, y, gpre, sz->D);
        add_row(g->dk, g->ktouched, kvrow, x, gpre, sz->D);
    }
    if (bc->attn->sink && w->chain) sink_sweep(g, w->psink * (dlse - delta));
}

/* A float64 [dims] accumulator to its output at layout l, rounded once. */
static void store(void *out, const BoundLayout *l, const int64_t dims[4], const double *acc) {
    if (!out) return;
    size_t i = 0;
    for (int64_t b = 0; b < dims[0]; b++)
        for (int64_t h = 0; h < dims[1]; h++)
            for (int64_t r = 0; r < dims[2]; r++)
                for (int64_t d = 0; d < dims[3]; d++) tensor_store(out, l->elem, at(l, b, h, r) + d, acc[i++]);
}

static int64_t tensor_count(const attnc_tensor *t) {
    int64_t n = 1;
    for (int r = 0; r < t->rank; r++) n *= t->shape[r];
    return n;
}

static double *zeros(int64_t n) { return calloc((size_t)n + 1, sizeof(double)); }

/* The gradients of the rotated rows turned into Q's and K's: dX = R^T dX_rot,
 * the rotation by minus the row's position (spec 9.3; positions are ints:
 * no derivative).  A row no kept element read has no gradient and its
 * position is not evaluated (lazily, as the forward: it may fail). */
static void rotate_back(Grad *g) {
    const BoundCall *bc = g->bc;
    const Rotary *r = bc->attn->rotary;
    const attnc_sizes *sz = &bc->sz;
    InterpEnv *env = g->env;
    int64_t group = sz->H / sz->Hkv, row = 0;
    for (int64_t b = 0; r && g->dq && b < sz->B; b++)
        for (int64_t h = 0; h < sz->H; h++)
            for (int64_t qi = 0; qi < sz->Lq; qi++, row++) {
                if (!g->qtouched[row]) continue;
                env->b = b, env->h = h, env->hk = h / group, env->q = qi, env->kv = 0;
                interp_rotate(bc, g->dq + row * sz->D, -(r->qpos ? interp_eval(env, r->qpos).i : qi));
            }
    row = 0;
    for (int64_t b = 0; r && g->dk && b < sz->B; b++)
        for (int64_t hk = 0; hk < sz->Hkv; hk++)
            for (int64_t kv = 0; kv < sz->Lk; kv++, row++) {
                if (!g->ktouched[row]) continue;
                env->b = b, env->h = hk * group, env->hk = hk, env->q = 0, env->kv = kv;
                interp_rotate(bc, g->dk + row * sz->D, -(r->kvpos ? interp_eval(env, r->kvpos).i : kv));
            }
}

/* Every row, into the accumulators; then, all being well, the outputs. */
static attnc_status run_backward(Grad *g, const attnc_args *args, Acc *w, attnc_error *err) {
    const BoundCall *bc = g->bc;
    const BoundGrad *bg = g->bg;
    const attnc_sizes *sz = &bc->sz;
    InterpEnv *env = g->env;
    int64_t group = sz->H / sz->Hkv;
    for (int64_t b = 0; b < sz->B && !env->failed; b++)
        for (int64_t h = 0; h < sz->H && !env->failed; h++)
            for (int64_t qi = 0; qi < sz->Lq && !env->failed; qi++) {
                env->b = b, env->h = h, env->hk = h / group, env->q = qi, env->kv = 0;
                grad_row(g, args, w);
            }
    if (g->nomem) return set_error(err, ATTNC_ERR_NOMEM, "out of memory in the interpreter's backward pass");
    if (!env->failed) rotate_back(g);
    if (env->failed) return set_error(err, ATTNC_ERR_RUNTIME, "%s", env->msg);
    void *out[3] = {bg->dq, bg->dk, bg->dv};
    const double *acc[3] = {g->dq, g->dk, w->dv};
    for (int t = 0; t < 3; t++) {
        int64_t dims[4] = {sz->B, t ? sz->Hkv : sz->H, t ? sz->Lk : sz->Lq, t == 2 ? sz->Dv : sz->D};
        store(out[t], &bg->layout[GT_DQ + t], dims, acc[t]);
    }
    for (int i = 0; i < bc->attn->ntensors; i++)
        for (int64_t j = 0; g->dt[i] && j < tensor_count(bc->tensors[i]); j++) bg->dtensor[i][j] = (float)g->dt[i][j];
    return ATTNC_OK;
}

attnc_status interp_backward(const Plan *p, const CompiledKernel *ck, const BoundCall *bc, const attnc_args *args,
                             const BoundGrad *bg, int threads, attnc_error *err) {
    (void)p, (void)ck, (void)threads; /* one thread: the reference stays simple */
    /* the forward's own run finds the first runtime error and words it as the forward does */
    attnc_status st = interp_run(bc, args->q, args->k, args->v, NULL, NULL, err);
    if (st) return st;
    const attnc_sizes *sz = &bc->sz;
    char msg[400] = "";
    InterpEnv *env = calloc(1, sizeof *env);
    Grad g = {.bc = bc, .bg = bg, .env = env, .dt = calloc((size_t)bc->attn->ntensors + 1, sizeof(double *))};
    Acc w = {.root = zeros(sz->Lk), .p = zeros(sz->Lk), .o = zeros(sz->Dv), .dout = zeros(sz->Dv),
             .keep = calloc((size_t)sz->Lk + 1, 1)};
    InterpRows *rows = interp_rows_new(bc, args->q, args->k);
    int nomem = !env || !g.dt || !w.root || !w.p || !w.o || !w.dout || !w.keep || !rows;
    int64_t nq = sz->B * sz->H * sz->Lq, nk = sz->B * sz->Hkv * sz->Lk;
    if (bg->dq) nomem |= !(g.dq = zeros(nq * sz->D)) || !(g.qtouched = calloc((size_t)nq + 1, 1));
    if (bg->dk) nomem |= !(g.dk = zeros(nk * sz->D)) || !(g.ktouched = calloc((size_t)nk + 1, 1));
    if (bg->dv) nomem |= !(w.dv = zeros(sz->B * sz->Hkv * sz->Lk * sz->Dv));
    w.chain = bg->dq || bg->dk;
    for (int i = 0; !nomem && i < bc->attn->ntensors; i++)
        if (bg->dtensor[i]) {
            nomem |= !(g.dt[i] = zeros(tensor_count(bc->tensors[i])));
            w.chain = 1;
        }
    if (nomem) {
        st = set_error(err, ATTNC_ERR_NOMEM, "out of memory in the interpreter's backward pass");
    } else {
        env->bc = bc, env->msg = msg, env->msgsize = sizeof msg, env->rows = rows;
        st = run_backward(&g, args, &w, err);
    }
    for (int i = 0; g.dt && i < bc->attn->ntensors; i++) free(g.dt[i]);
    free(g.dt);
    free(g.tape);
    free(g.dots);
    free(env);
    interp_rows_free(rows);
    free(g.dq), free(g.dk), free(g.qtouched), free(g.ktouched), free(w.dv), free(w.root), free(w.p), free(w.o), free(w.dout), free(w.keep);
    return st;
}

attnc_status interp_sink_backward(const BoundCall *bc, const attnc_args *args, const BoundGrad *bg, attnc_error *err) {
    const attnc_sizes *sz = &bc->sz;
    const Attention *a = bc->attn;
    char msg[400] = "";
    InterpEnv *env = calloc(1, sizeof *env);
    Grad g = {.bc = bc, .bg = bg, .env = env, .dt = calloc((size_t)a->ntensors + 1, sizeof(double *))};
    int nomem = !env || !g.dt, wanted = 0;
    for (int i = 0; !nomem && i < a->ntensors; i++)
        if (bg->dtensor[i] && (a->sink->deps & DEP_TENSOR)) {
            nomem |= !(g.dt[i] = zeros(tensor_count(bc->tensors[i])));
            wanted = 1;
        }
    attnc_status st = nomem ? set_error(err, ATTNC_ERR_NOMEM, "out of memory for the sink's gradient") : ATTNC_OK;
    const BoundLayout *lo = &bc->layout[BT_O], *ll = &bc->layout[BT_LSE];
    const BoundLayout *ldo = &bg->layout[GT_DOUT], *ldl = &bg->layout[GT_DLSE];
    int64_t group = sz->H / sz->Hkv;
    if (!st && wanted) env->bc = bc, env->msg = msg, env->msgsize = sizeof msg;
    for (int64_t b = 0; !st && wanted && b < sz->B && !env->failed; b++)
        for (int64_t h = 0; h < sz->H && !env->failed; h++)
            for (int64_t qi = 0; qi < sz->Lq && !env->failed; qi++) {
                env->b = b, env->h = h, env->hk = h / group, env->q = qi;
                int64_t o_at = at(lo, b, h, qi), d_at = at(ldo, b, h, qi);
                double delta = 0, lse = args->lse[at(ll, b, h, qi)];
                for (int64_t d = 0; bg->dout && d < sz->Dv; d++)
                    delta += tensor_load(bg->dout, ldo->elem, d_at + d) * tensor_load(args->o, lo->elem, o_at + d);
                double dlse = bg->dlse ? bg->dlse[at(ldl, b, h, qi)] : 0;
                env->kv = 0;
                double sink = interp_eval(env, a->sink).f;
                /* P_sink = exp(sink - LSE'); a sink of +inf takes the whole row */
                double psink = sink == INFINITY ? 1.0 : lse == -INFINITY ? 0.0 : exp(sink - lse);
                sink_sweep(&g, psink * (dlse - delta));
            }
    if (!st && g.nomem) st = set_error(err, ATTNC_ERR_NOMEM, "out of memory for the sink's gradient");
    else if (!st && env->failed) st = set_error(err, ATTNC_ERR_RUNTIME, "%s", msg);
    for (int i = 0; !st && i < a->ntensors; i++)
        for (int64_t j = 0; g.dt[i] && j < tensor_count(bc->tensors[i]); j++) bg->dtensor[i][j] += (float)g.dt[i][j];
    for (int i = 0; g.dt && i < a->ntensors; i++) free(g.dt[i]);
    free(g.dt);
    free(g.tape);
    free(g.dots);
    free(env);
    return st;
}
