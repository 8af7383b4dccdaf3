/* tiles.c — tile classification by interval arithmetic on the IR.
 * Requires: a Plan and one call's BoundCall (sizes, params, tensors).
 * Produces: a TileMap: for each q tile the kv tiles to visit, each FULL
 * (every element kept: no mask code) or PARTIAL (evaluate the mask).
 *
 * Soundness: a tile is EMPTY only when `keep` is provably false and `fault`
 * provably false on all of it, FULL only when `keep` is provably true;
 * whatever the analysis cannot prove is PARTIAL.  Precision: regions are
 * classified top-down (a quad tree over tiles, so a band mask costs work
 * along the band only), and a PARTIAL tile is split further, down to single
 * elements if need be, until its parts agree or disagree.  Masks reading int
 * tensors use range min/max over the indices they can read (a sparse table
 * for 1-D tensors, exact scans of small boxes, whole-tensor bounds else). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir_passes.h"
#include "plan.h"
#include "tile_ival.h"

/* Intervals: ival_int is in tile_ival.h. */
static Ival ival_flt(double lo, double hi) {
    Ival v = {0, 0, lo, hi, 0};
    if (isnan(lo) || isnan(hi)) v = (Ival){0, 0, -INFINITY, INFINITY, 1};
    return v;
}
static Ival top_of(Type t) {
    if (t == T_FLOAT) return (Ival){0, 0, -INFINITY, INFINITY, 1};
    if (t == T_BOOL) return ival_int(0, 1);
    return ival_int(INT64_MIN, INT64_MAX);
}
static Ival hull(Ival a, Ival b) {
    return (Ival){a.lo < b.lo ? a.lo : b.lo, a.hi > b.hi ? a.hi : b.hi, a.flo < b.flo ? a.flo : b.flo,
                  a.fhi > b.fhi ? a.fhi : b.fhi, a.nan | b.nan};
}

/* ---- tensor summaries -------------------------------------------------- */

static double elem(const attnc_tensor *t, int64_t i) {
    return t->dtype == ATTNC_I32 ? (double)((const int32_t *)t->data)[i] : (double)((const float *)t->data)[i];
}

static int build_sparse(SparseTable *st, const int32_t *x, int64_t n) {
    st->n = n;
    st->levels = 1;
    while (((int64_t)1 << st->levels) <= n) st->levels++;
    st->mn = calloc((size_t)st->levels, sizeof(int32_t *));
    st->mx = calloc((size_t)st->levels, sizeof(int32_t *));
    if (!st->mn || !st->mx) return 0;
    for (int l = 0; l < st->levels; l++) {
        int64_t len = n - ((int64_t)1 << l) + 1;
        if (len <= 0) break;
        st->mn[l] = malloc(sizeof(int32_t) * (size_t)len);
        st->mx[l] = malloc(sizeof(int32_t) * (size_t)len);
        if (!st->mn[l] || !st->mx[l]) return 0;
        for (int64_t i = 0; i < len; i++) {
            if (l == 0) {
                st->mn[0][i] = st->mx[0][i] = x[i];
            } else {
                int64_t j = i + ((int64_t)1 << (l - 1));
                st->mn[l][i] = st->mn[l - 1][i] < st->mn[l - 1][j] ? st->mn[l - 1][i] : st->mn[l - 1][j];
                st->mx[l][i] = st->mx[l - 1][i] > st->mx[l - 1][j] ? st->mx[l - 1][i] : st->mx[l - 1][j];
            }
        }
    }
    return 1;
}

static void free_sparse(SparseTable *st) {
    for (int l = 0; l < st->levels; l++) {
        if (st->mn) free(st->mn[l]);
        if (st->mx) free(st->mx[l]);
    }
    free(st->mn);
    free(st->mx);
}

static void sparse_query(const SparseTable *st, int64_t lo, int64_t hi, double *mn, double *mx) {
    int l = 0;
    while (((int64_t)2 << l) <= hi - lo + 1) l++;
    int64_t j = hi - ((int64_t)1 << l) + 1;
    *mn = st->mn[l][lo] < st->mn[l][j] ? st->mn[l][lo] : st->mn[l][j];
    *mx = st->mx[l][lo] > st->mx[l][j] ? st->mx[l][lo] : st->mx[l][j];
}

static int summarize(TensorSummary *s, const attnc_tensor *t, int rank) {
    memset(s, 0, sizeof *s);
    s->rank = rank;
    int64_t count = 1;
    for (int i = 0; i < rank; i++) {
        s->dims[i] = t->shape[i];
        count *= t->shape[i];
    }
    if (!t->data && count > 0) { /* values made later (a table of Q rows per work item): any float */
        s->gmin = -INFINITY, s->gmax = INFINITY;
        return 1;
    }
    for (int64_t i = 0; i < count; i++) {
        double v = elem(t, i);
        if (i == 0 || v < s->gmin) s->gmin = v;
        if (i == 0 || v > s->gmax) s->gmax = v;
    }
    if (rank == 1 && t->dtype == ATTNC_I32 && count > 0) return build_sparse(&s->st, t->data, count);
    return 1;
}

int ival_analysis_init(Analysis *an, const Plan *p, const BoundCall *bc) {
    memset(an, 0, sizeof *an);
    an->p = p;
    an->bc = bc;
    an->gen = 1;
    const Attention *a = p->attn;
    an->ts = calloc((size_t)a->ntensors + 1, sizeof(TensorSummary));
    an->memo = malloc(sizeof(Ival) * (size_t)p->ir->n + 1);
    an->stamp = calloc((size_t)p->ir->n + 1, sizeof(unsigned));
    int ok = an->ts && an->memo && an->stamp;
    for (int i = 0; ok && i < a->ntensors; i++) ok = summarize(&an->ts[i], bc->tensors[i], a->tensors[i]->ndims);
    const attnc_sizes *sz = &bc->sz;
    int64_t vals[] = {sz->B, sz->H, sz->Hkv, sz->Lq, sz->Lk, sz->D, sz->Dv};
    for (int v = V_SIZE_B; v < V_COUNT; v++) an->vars[v] = ival_int(vals[v - V_SIZE_B], vals[v - V_SIZE_B]);
    return ok;
}

void ival_analysis_free(Analysis *an) {
    for (int i = 0; an->ts && i < an->p->attn->ntensors; i++) free_sparse(&an->ts[i].st);
    free(an->ts);
    free(an->memo);
    free(an->stamp);
}

/* ---- interval evaluation ----------------------------------------------- */

static int add_ovf(int64_t a, int64_t b, int64_t *r) { return __builtin_add_overflow(a, b, r); }
static int sub_ovf(int64_t a, int64_t b, int64_t *r) { return __builtin_sub_overflow(a, b, r); }
static int mul_ovf(int64_t a, int64_t b, int64_t *r) { return __builtin_mul_overflow(a, b, r); }

/* The hull of f over the four corners, or top on overflow. */
static Ival int_corners(Ival a, Ival b, int (*f)(int64_t, int64_t, int64_t *)) {
    int64_t c[4];
    if (f(a.lo, b.lo, &c[0]) || f(a.lo, b.hi, &c[1]) || f(a.hi, b.lo, &c[2]) || f(a.hi, b.hi, &c[3]))
        return top_of(T_INT);
    Ival v = ival_int(c[0], c[0]);
    for (int i = 1; i < 4; i++) {
        if (c[i] < v.lo) v.lo = c[i];
        if (c[i] > v.hi) v.hi = c[i];
    }
    return v;
}

static int64_t fdiv(int64_t a, int64_t b) {
    int64_t q = a / b;
    if (a % b != 0 && ((a < 0) != (b < 0))) q--;
    return q;
}

/* Floor division is monotone in each operand once the divisor's sign is fixed. */
static Ival int_div(Ival a, Ival b) {
    Ival out = {0, 0, 0, 0, 0};
    int any = 0;
    if (b.lo <= 0 && b.hi >= 0) { /* x / 0 is 0 in the IR */
        out = ival_int(0, 0);
        any = 1;
    }
    Ival parts[2] = {ival_int(b.lo, b.hi < -1 ? b.hi : -1), ival_int(b.lo > 1 ? b.lo : 1, b.hi)};
    for (int i = 0; i < 2; i++) {
        Ival d = parts[i];
        if (d.lo > d.hi) continue;
        if (d.lo == -1 || d.hi == -1 || a.lo == INT64_MIN) return top_of(T_INT); /* wrapping */
        int64_t c[4] = {fdiv(a.lo, d.lo), fdiv(a.lo, d.hi), fdiv(a.hi, d.lo), fdiv(a.hi, d.hi)};
        Ival v = ival_int(c[0], c[0]);
        for (int k = 1; k < 4; k++) {
            if (c[k] < v.lo) v.lo = c[k];
            if (c[k] > v.hi) v.hi = c[k];
        }
        out = any ? hull(out, v) : v;
        any = 1;
    }
    return out;
}

static Ival int_mod(Ival a, Ival b) {
    if (b.lo == b.hi && b.lo > 0) {
        int64_t d = b.lo;
        if (fdiv(a.lo, d) == fdiv(a.hi, d)) {
            int64_t lo = a.lo - fdiv(a.lo, d) * d;
            return ival_int(lo, lo + (a.hi - a.lo));
        }
        return ival_int(0, d - 1);
    }
    if (b.lo > 0) {
        if (a.lo >= 0 && a.hi < b.lo) return a;
        return ival_int(0, b.hi - 1);
    }
    if (b.hi < 0 && b.lo > INT64_MIN) return ival_int(b.lo + 1, 0);
    return top_of(T_INT);
}

static Ival flt_corners(Ival a, Ival b, IrOp op) {
    double c[4];
    double x[2] = {a.flo, a.fhi}, y[2] = {b.flo, b.fhi};
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++) {
            double v = op == IR_ADD ? x[i] + y[j] : op == IR_SUB ? x[i] - y[j] : op == IR_MUL ? x[i] * y[j] : x[i] / y[j];
            c[2 * i + j] = v;
        }
    Ival v = ival_flt(c[0], c[0]);
    for (int k = 1; k < 4; k++) v = hull(v, ival_flt(c[k], c[k]));
    v.nan |= a.nan || b.nan;
    if (op == IR_MUL && ((isinf(a.flo) || isinf(a.fhi)) || (isinf(b.flo) || isinf(b.fhi)))) v.nan = 1;
    if (op == IR_DIV && b.flo <= 0 && b.fhi >= 0) return top_of(T_FLOAT);
    if (v.nan) return top_of(T_FLOAT);
    return v;
}

static Ival tri(int known_true, int known_false) {
    return known_true ? ival_int(1, 1) : known_false ? ival_int(0, 0) : ival_int(0, 1);
}

/* Float comparisons keep a relative margin: kernels compute in float32. */
static int flt_below(double a, double b) {
    double scale = fabs(a) > fabs(b) ? fabs(a) : fabs(b);
    return a < b - 1e-6 * (scale > 1 ? scale : 1);
}

static Ival compare(IrOp op, Type t, Ival a, Ival b) {
    if (t == T_FLOAT) {
        if (a.nan || b.nan) return ival_int(0, 1);
        switch (op) {
        case IR_LT:
        case IR_LE: return tri(flt_below(a.fhi, b.flo), flt_below(b.fhi, a.flo));
        case IR_EQ: return tri(0, flt_below(a.fhi, b.flo) || flt_below(b.fhi, a.flo));
        default: return tri(flt_below(a.fhi, b.flo) || flt_below(b.fhi, a.flo), 0);
        }
    }
    switch (op) {
    case IR_LT: return tri(a.hi < b.lo, a.lo >= b.hi);
    case IR_LE: return tri(a.hi <= b.lo, a.lo > b.hi);
    case IR_EQ: return tri(a.lo == a.hi && b.lo == b.hi && a.lo == b.lo, a.hi < b.lo || b.hi < a.lo);
    default: return tri(a.hi < b.lo || b.hi < a.lo, a.lo == a.hi && b.lo == b.hi && a.lo == b.lo);
    }
}

/* Monotone non-decreasing functions map endpoints to endpoints. */
static Ival call_ival(Fn fn, Type t, Ival a, Ival b, int nargs) {
    if (fn == FN_INT) {
        if (a.nan) return top_of(T_INT);
        Const lo = ir_apply(IR_CALL, T_INT, FN_INT, &(Const){.f = a.flo}, (Type[]){T_FLOAT});
        Const hi = ir_apply(IR_CALL, T_INT, FN_INT, &(Const){.f = a.fhi}, (Type[]){T_FLOAT});
        return ival_int(lo.i, hi.i);
    }
    int monotone = fn == FN_EXP || fn == FN_EXP2 || fn == FN_TANH || fn == FN_SIGMOID || fn == FN_ERF ||
                   fn == FN_FLOOR || fn == FN_CEIL || fn == FN_SIGN ||
                   ((fn == FN_LOG || fn == FN_LOG2 || fn == FN_SQRT) && a.flo >= 0);
    if (nargs == 1 && monotone && !a.nan) {
        Const lo = ir_apply(IR_CALL, t, fn, &(Const){.f = a.flo}, (Type[]){T_FLOAT});
        Const hi = ir_apply(IR_CALL, t, fn, &(Const){.f = a.fhi}, (Type[]){T_FLOAT});
        return ival_flt(lo.f, hi.f);
    }
    if ((fn == FN_SIN || fn == FN_COS) && !a.nan && isfinite(a.flo) && isfinite(a.fhi)) return ival_flt(-1.0, 1.0);
    if (nargs == 2 && a.flo == a.fhi && b.flo == b.fhi && !a.nan && !b.nan) {
        Const args[2] = {{.f = a.flo}, {.f = b.flo}};
        Const v = ir_apply(IR_CALL, t, fn, args, (Type[]){T_FLOAT, T_FLOAT});
        return ival_flt(v.f, v.f);
    }
    return top_of(t);
}

static Ival load_ival(Analysis *an, const IrNode *n, const Ival *idx, int *in_bounds, int *out_bounds) {
    const TensorSummary *s = &an->ts[n->aux];
    *in_bounds = 1;
    *out_bounds = 0;
    int64_t lo[ATTNC_MAX_RANK], hi[ATTNC_MAX_RANK], volume = 1;
    for (int i = 0; i < n->nargs; i++) {
        if (idx[i].lo < 0 || idx[i].hi >= s->dims[i]) *in_bounds = 0;
        if (idx[i].hi < 0 || idx[i].lo >= s->dims[i]) *out_bounds = 1;
        lo[i] = idx[i].lo < 0 ? 0 : idx[i].lo;
        hi[i] = idx[i].hi >= s->dims[i] ? s->dims[i] - 1 : idx[i].hi;
        if (lo[i] > hi[i]) volume = 0;
        else if (volume > 0) volume = volume > (int64_t)1 << 30 ? volume : volume * (hi[i] - lo[i] + 1);
    }
    double mn = s->gmin, mx = s->gmax;
    const attnc_tensor *t = an->bc->tensors[n->aux];
    if (volume > 0 && n->nargs == 1 && s->st.mn) {
        sparse_query(&s->st, lo[0], hi[0], &mn, &mx);
    } else if (volume > 0 && volume <= 256 && t->data) {
        /* a small box: scan it exactly */
        int64_t at[ATTNC_MAX_RANK];
        for (int i = 0; i < n->nargs; i++) at[i] = lo[i];
        mn = INFINITY, mx = -INFINITY;
        for (;;) {
            int64_t off = 0;
            for (int i = 0; i < n->nargs; i++) off = off * s->dims[i] + at[i];
            double v = elem(t, off);
            mn = v < mn ? v : mn;
            mx = v > mx ? v : mx;
            int i = n->nargs - 1; /* odometer over the box */
            while (i >= 0 && at[i] == hi[i]) {
                at[i] = lo[i];
                i--;
            }
            if (i < 0) break;
            at[i]++;
        }
    } else if (volume == 0) {
        mn = mx = 0; /* every index out of range: the IR's load gives 0 */
    }
    if (!*in_bounds) { /* some lanes read out of range and get 0 */
        mn = mn < 0 ? mn : 0;
        mx = mx > 0 ? mx : 0;
    }
    if (n->type == T_INT) return ival_int((int64_t)mn, (int64_t)mx);
    return ival_flt(mn, mx);
}

/* The recursive walk keeps small frames: one level per operand, and a flat
 * chain `a && b && ...` of SEMA_MAX_EVAL_DEPTH terms must fit in the stack
 * (ASan build included), so each operator's own temporaries live in a
 * function that is not on the recursion path. */
static Ival eval_sum_node(Analysis *an, const IrNode *n) {
    Ival bound = ival_eval(an, n->args[0]);
    if (bound.hi <= 0) return n->op == IR_ANY ? ival_int(0, 0) : n->type == T_INT ? ival_int(0, 0) : ival_flt(0, 0);
    if (n->aux >= 64) return top_of(n->type);
    Ival saved = an->sumvar[n->aux];
    an->sumvar[n->aux] = ival_int(0, bound.hi - 1);
    Ival body = ival_eval(an, n->args[1]);
    an->sumvar[n->aux] = saved;
    if (n->op == IR_ANY) return tri(body.lo == 1 && bound.lo > 0, body.hi == 0);
    int64_t nlo = bound.lo > 0 ? bound.lo : 0, nhi = bound.hi;
    if (n->type == T_FLOAT) {
        if (body.nan) return top_of(T_FLOAT);
        Ival v = hull(ival_flt(nlo * body.flo, nlo * body.flo), ival_flt(nhi * body.flo, nhi * body.flo));
        v = hull(v, hull(ival_flt(nlo * body.fhi, nlo * body.fhi), ival_flt(nhi * body.fhi, nhi * body.fhi)));
        return v.nan ? top_of(T_FLOAT) : v;
    }
    return int_corners(ival_int(nlo, nhi), body, mul_ovf);
}

static Ival eval_load_node(Analysis *an, const IrNode *n) {
    Ival a[ATTNC_MAX_RANK];
    for (int i = 0; i < n->nargs; i++) a[i] = ival_eval(an, n->args[i]);
    int inb, outb;
    Ival v = load_ival(an, n, a, &inb, &outb);
    return n->op == IR_INBOUNDS ? tri(inb, outb) : v;
}

static Ival eval_lazy_node(Analysis *an, const IrNode *n) {
    switch (n->op) {
    case IR_AND: {
        Ival x = ival_eval(an, n->args[0]);
        if (x.hi == 0) return x;
        Ival y = ival_eval(an, n->args[1]);
        return tri(x.lo == 1 && y.lo == 1, y.hi == 0);
    }
    case IR_OR: {
        Ival x = ival_eval(an, n->args[0]);
        if (x.lo == 1) return x;
        Ival y = ival_eval(an, n->args[1]);
        return tri(y.lo == 1, x.hi == 0 && y.hi == 0);
    }
    case IR_SELECT: {
        Ival c = ival_eval(an, n->args[0]);
        if (c.lo == 1) return ival_eval(an, n->args[1]);
        if (c.hi == 0) return ival_eval(an, n->args[2]);
        return hull(ival_eval(an, n->args[1]), ival_eval(an, n->args[2]));
    }
    default: return top_of(n->type);
    }
}

/* An operator whose operands are already evaluated (not recursive). */
static Ival apply_node(const Analysis *an, const IrNode *n, const Ival *a) {
    Type at = n->nargs ? an->p->ir->nodes[n->args[0]].type : n->type;
    switch (n->op) {
    case IR_TOFLOAT:
        if (a[0].lo < -((int64_t)1 << 53) || a[0].hi > ((int64_t)1 << 53)) return top_of(T_FLOAT);
        return ival_flt((double)a[0].lo, (double)a[0].hi);
    case IR_NOT: return ival_int(1 - a[0].hi, 1 - a[0].lo);
    case IR_NEG:
        if (n->type == T_FLOAT) return (Ival){0, 0, -a[0].fhi, -a[0].flo, a[0].nan};
        return a[0].lo == INT64_MIN ? top_of(T_INT) : ival_int(-a[0].hi, -a[0].lo);
    case IR_ADD: return n->type == T_INT ? int_corners(a[0], a[1], add_ovf) : flt_corners(a[0], a[1], IR_ADD);
    case IR_SUB: return n->type == T_INT ? int_corners(a[0], a[1], sub_ovf) : flt_corners(a[0], a[1], IR_SUB);
    case IR_MUL: return n->type == T_INT ? int_corners(a[0], a[1], mul_ovf) : flt_corners(a[0], a[1], IR_MUL);
    case IR_DIV: return n->type == T_INT ? int_div(a[0], a[1]) : flt_corners(a[0], a[1], IR_DIV);
    case IR_MOD: return n->type == T_INT ? int_mod(a[0], a[1]) : top_of(T_FLOAT);
    case IR_LT:
    case IR_LE:
    case IR_EQ:
    case IR_NE:
        if (at == T_BOOL) {
            int eq = a[0].lo == a[0].hi && a[1].lo == a[1].hi;
            int same = eq && a[0].lo == a[1].lo;
            return n->op == IR_EQ ? tri(same, eq && !same) : tri(eq && !same, same);
        }
        return compare(n->op, at, a[0], a[1]);
    case IR_ABS:
        if (n->type == T_FLOAT) {
            if (a[0].flo >= 0) return a[0];
            if (a[0].fhi <= 0) return (Ival){0, 0, -a[0].fhi, -a[0].flo, a[0].nan};
            return (Ival){0, 0, 0, fmax(-a[0].flo, a[0].fhi), a[0].nan};
        }
        if (a[0].lo == INT64_MIN) return top_of(T_INT);
        if (a[0].lo >= 0) return a[0];
        if (a[0].hi <= 0) return ival_int(-a[0].hi, -a[0].lo);
        return ival_int(0, -a[0].lo > a[0].hi ? -a[0].lo : a[0].hi);
    case IR_MIN:
        if (n->type == T_FLOAT) return (Ival){0, 0, fmin(a[0].flo, a[1].flo), fmin(a[0].fhi, a[1].fhi), a[0].nan | a[1].nan};
        return ival_int(a[0].lo < a[1].lo ? a[0].lo : a[1].lo, a[0].hi < a[1].hi ? a[0].hi : a[1].hi);
    case IR_MAX:
        if (n->type == T_FLOAT) return (Ival){0, 0, fmax(a[0].flo, a[1].flo), fmax(a[0].fhi, a[1].fhi), a[0].nan | a[1].nan};
        return ival_int(a[0].lo > a[1].lo ? a[0].lo : a[1].lo, a[0].hi > a[1].hi ? a[0].hi : a[1].hi);
    case IR_CALL: return call_ival((Fn)n->aux, n->type, a[0], n->nargs > 1 ? a[1] : a[0], n->nargs);
    default: return top_of(n->type);
    }
}

static Ival eval_arith_node(Analysis *an, const IrNode *n) {
    Ival a[3] = {top_of(T_INT), top_of(T_INT), top_of(T_INT)};
    for (int i = 0; i < n->nargs && i < 3; i++) a[i] = ival_eval(an, n->args[i]);
    if (n->nargs > 3) return top_of(n->type);
    return apply_node(an, n, a);
}

/* Kept out of line on purpose: ival_eval is mostly a memo hit, and with this
 * switch inlined into it every hit paid the big function's prologue (the
 * tile map of a 2-D neighborhood call took 1.7x as long). */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
static Ival eval_node(Analysis *an, const IrNode *n) {
    switch (n->op) {
    case IR_CONST:
        if (n->type == T_FLOAT) return ival_flt(n->c.f, n->c.f);
        if (n->type == T_BOOL) return ival_int(n->c.b, n->c.b);
        return ival_int(n->c.i, n->c.i);
    case IR_VAR: return an->vars[n->aux];
    case IR_PARAM: {
        Const c = an->bc->params[n->aux];
        return n->type == T_FLOAT ? ival_flt(c.f, c.f) : n->type == T_BOOL ? ival_int(c.b, c.b) : ival_int(c.i, c.i);
    }
    case IR_PRE: return top_of(T_FLOAT);
    case IR_DIAG: return ival_eval(an, n->args[0]);
    case IR_SUMVAR: return n->aux < 64 ? an->sumvar[n->aux] : top_of(T_INT);
    case IR_SUM:
    case IR_ANY: return eval_sum_node(an, n);
    case IR_LOAD:
    case IR_INBOUNDS: return eval_load_node(an, n);
    case IR_AND:
    case IR_OR:
    case IR_SELECT: return eval_lazy_node(an, n);
    default: return eval_arith_node(an, n);
    }
}

/* The interval of node r, memoised per generation when it reads no sum variable. */
Ival ival_eval(Analysis *an, IrRef r) {
    const IrNode *n = &an->p->ir->nodes[r];
    int memo_ok = !(n->deps & DEP_SUMVAR);
    if (memo_ok && an->stamp[r] == an->gen) return an->memo[r];
    Ival v = eval_node(an, n);
    if (memo_ok) {
        an->memo[r] = v;
        an->stamp[r] = an->gen;
    }
    return v;
}

/* ---- classification ---------------------------------------------------- */

/* Forget memoised intervals: the region changed. */
void ival_new_generation(Analysis *an) {
    if (++an->gen == 0) {
        memset(an->stamp, 0, sizeof(unsigned) * (size_t)an->p->ir->n);
        an->gen = 1;
    }
}

static TileMode classify(Analysis *an, int64_t q0, int64_t q1, int64_t k0, int64_t k1) {
    an->evaluations++;
    ival_new_generation(an);
    an->vars[V_Q] = ival_int(q0, q1 - 1);
    an->vars[V_KV] = ival_int(k0, k1 - 1);
    const IrFunc *f = an->p->f;
    Ival keep = ival_eval(an, f->keep);
    Ival fault = an->p->needs_fault ? ival_eval(an, f->fault) : ival_int(0, 0);
    if (keep.hi == 0 && fault.hi == 0) return TILE_EMPTY;
    if (keep.lo == 1) return TILE_FULL;
    return TILE_PARTIAL;
}

/* Evaluations one tile's refinement may spend: keeps the whole map
 * proportional to the number of tiles even when intervals are weak. */
enum { REFINE_BUDGET = 256 };

/* Split a PARTIAL region until its parts agree (or down to one element, or
 * out of budget: then it stays PARTIAL, which is always sound). */
static TileMode refine(Analysis *an, int64_t q0, int64_t q1, int64_t k0, int64_t k1, int *budget) {
    if (--*budget < 0) return TILE_PARTIAL;
    TileMode m = classify(an, q0, q1, k0, k1);
    if (m != TILE_PARTIAL || (q1 - q0 <= 1 && k1 - k0 <= 1)) return m;
    int64_t qm = q1 - q0 > 1 ? q0 + (q1 - q0) / 2 : q1, km = k1 - k0 > 1 ? k0 + (k1 - k0) / 2 : k1;
    int64_t qs[3] = {q0, qm, q1}, ks[3] = {k0, km, k1};
    int seen_empty = 0, seen_full = 0;
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++) {
            if (qs[i] >= qs[i + 1] || ks[j] >= ks[j + 1]) continue;
            TileMode c = refine(an, qs[i], qs[i + 1], ks[j], ks[j + 1], budget);
            if (c == TILE_PARTIAL) return TILE_PARTIAL;
            seen_empty |= c == TILE_EMPTY;
            seen_full |= c == TILE_FULL;
            if (seen_empty && seen_full) return TILE_PARTIAL;
        }
    return seen_full ? TILE_FULL : TILE_EMPTY;
}

/* The keys [*lo, *hi) of the PARTIAL tile [q0, q1) x [k0, k1), counted from k0, outside which its elements are
 * proved EMPTY: the longest such prefix and suffix, each by a binary search (at most 2 log2(k1 - k0) + 2
 * evaluations; a longer prefix is only taken when it is proved EMPTY itself, so a weaker analysis only keeps more
 * keys).  A 2-D neighbourhood's key blocks have whole rows of keys no query of the block reaches. */
static void live_keys(Analysis *an, int64_t q0, int64_t q1, int64_t k0, int64_t k1, uint16_t *lo, uint16_t *hi) {
    int64_t n = k1 - k0, step = 1, a = 0, t = 0;
    while (step * 2 <= n) step *= 2;
    /* most PARTIAL tiles keep their first and last keys: one evaluation each tells */
    if (classify(an, q0, q1, k0, k0 + 1) == TILE_EMPTY)
        for (int64_t s = step; s > 0; s /= 2)
            if (a + s <= n && classify(an, q0, q1, k0, k0 + a + s) == TILE_EMPTY) a += s;
    if (a < n && classify(an, q0, q1, k1 - 1, k1) == TILE_EMPTY)
        for (int64_t s = step; s > 0; s /= 2)
            if (t + s <= n - a && classify(an, q0, q1, k1 - t - s, k1) == TILE_EMPTY) t += s;
    *lo = (uint16_t)a;
    *hi = (uint16_t)(n - t);
}

/* The keys of the PARTIAL tile [q0, q1) x [k0, k1) within its range [lo, hi) (live_keys) that the analysis cannot
 * prove EMPTY, one evaluation per key, as bits from k0 (TileMap.live; k1 - k0 <= TILE_LIVE_KEYS). */
static uint16_t live_set(Analysis *an, int64_t q0, int64_t q1, int64_t k0, uint16_t lo, uint16_t hi) {
    uint16_t bits = 0;
    for (int j = lo; j < hi; j++)
        if (classify(an, q0, q1, k0 + j, k0 + j + 1) != TILE_EMPTY) bits |= (uint16_t)(1u << j);
    return bits;
}

static int count_bits(uint16_t bits) {
    int n = 0;
    for (; bits; bits &= (uint16_t)(bits - 1)) n++;
    return n;
}

/* All keys of a tile of n keys (n <= TILE_LIVE_KEYS) as TileMap.live's bits. */
static uint16_t all_keys(int64_t n) { return (uint16_t)((1u << n) - 1u); }

typedef struct Grid {
    uint8_t *mode; /* nqt * nkt */
    int64_t nqt, nkt;
    int64_t bq;    /* query rows per q tile */
    int64_t bk;    /* keys per kv tile */
} Grid;

/* Quad tree over tile ranges [ti0, ti1) x [tj0, tj1). */
static void classify_tiles(Analysis *an, Grid *g, int64_t ti0, int64_t ti1, int64_t tj0, int64_t tj1) {
    const attnc_sizes *sz = &an->bc->sz;
    int64_t q0 = ti0 * g->bq, q1 = ti1 * g->bq < sz->Lq ? ti1 * g->bq : sz->Lq;
    int64_t k0 = tj0 * g->bk, k1 = tj1 * g->bk < sz->Lk ? tj1 * g->bk : sz->Lk;
    int budget = REFINE_BUDGET;
    TileMode m = (ti1 - ti0 == 1 && tj1 - tj0 == 1) ? refine(an, q0, q1, k0, k1, &budget) : classify(an, q0, q1, k0, k1);
    if (m != TILE_PARTIAL || (ti1 - ti0 == 1 && tj1 - tj0 == 1)) {
        for (int64_t i = ti0; i < ti1; i++) memset(g->mode + i * g->nkt + tj0, m, (size_t)(tj1 - tj0));
        return;
    }
    int64_t tim = ti1 - ti0 > 1 ? ti0 + (ti1 - ti0) / 2 : ti1, tjm = tj1 - tj0 > 1 ? tj0 + (tj1 - tj0) / 2 : tj1;
    int64_t is[3] = {ti0, tim, ti1}, js[3] = {tj0, tjm, tj1};
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++)
            if (is[i] < is[i + 1] && js[j] < js[j + 1]) classify_tiles(an, g, is[i], is[i + 1], js[j], js[j + 1]);
}

int64_t tile_group(const Plan *p, const TileMap *tm, int64_t b, int64_t h, int64_t H) {
    (void)tm;
    int64_t sb, sh;
    sched_group_strides(p->sched, H, &sb, &sh);
    return b * sb + h * sh;
}

/* Entry `at` of out: entry e of tm's mode, keys and live keys (its kv is the caller's). */
static void copy_entry(TileMap *out, int64_t at, const TileMap *tm, int64_t e) {
    out->mode[at] = tm->mode[e];
    out->keys[2 * at] = tm->keys[2 * e], out->keys[2 * at + 1] = tm->keys[2 * e + 1];
    if (tm->live) {
        out->live[at] = tm->live[e];
        out->live_cut += tm->keys[2 * e + 1] - tm->keys[2 * e] - count_bits(tm->live[e]);
    }
}

attnc_status tile_map_slice(const TileMap *tm, int64_t kt0, int64_t kt1, TileMap *out, attnc_error *err) {
    memset(out, 0, sizeof *out);
    int64_t rows = tm->ngroups * tm->nqt;
    out->row_start = calloc((size_t)rows + 1, sizeof(int64_t));
    out->kv = malloc(sizeof(int32_t) * (size_t)(tm->visited + 1));
    out->mode = malloc((size_t)tm->visited + 1);
    out->keys = malloc(sizeof(uint16_t) * 2 * (size_t)(tm->visited + 1));
    out->live = tm->live ? malloc(sizeof(uint16_t) * (size_t)(tm->visited + 1)) : NULL;
    if (!out->row_start || !out->kv || !out->mode || !out->keys || (tm->live && !out->live)) {
        tile_map_free(out);
        return set_error(err, ATTNC_ERR_NOMEM, "out of memory while splitting the tile map");
    }
    out->nqt = tm->nqt, out->nkt = tm->nkt, out->ngroups = tm->ngroups, out->bq = tm->bq;
    out->bk = tm->bk, out->lk = tm->lk;
    out->check_faults = tm->check_faults;
    int64_t used = 0;
    for (int64_t t = 0; t < rows; t++) {
        for (int64_t e = tm->row_start[t]; e < tm->row_start[t + 1]; e++) {
            if (tm->kv[e] < kt0 || tm->kv[e] >= kt1) continue;
            out->kv[used] = tm->kv[e];
            copy_entry(out, used, tm, e);
            out->full += tm->mode[e] == TILE_FULL;
            out->partial += tm->mode[e] == TILE_PARTIAL;
            used++;
        }
        out->row_start[t + 1] = used;
    }
    out->visited = used;
    out->total = tm->total;
    return ATTNC_OK;
}

attnc_status tile_map_transpose(const TileMap *tm, TileMap *out, attnc_error *err) {
    memset(out, 0, sizeof *out);
    int64_t cols = tm->ngroups * tm->nkt;
    out->row_start = calloc((size_t)cols + 2, sizeof(int64_t));
    out->kv = malloc(sizeof(int32_t) * (size_t)(tm->visited + 1));
    out->mode = malloc((size_t)tm->visited + 1);
    out->keys = malloc(sizeof(uint16_t) * 2 * (size_t)(tm->visited + 1));
    out->live = tm->live ? malloc(sizeof(uint16_t) * (size_t)(tm->visited + 1)) : NULL;
    if (!out->row_start || !out->kv || !out->mode || !out->keys || (tm->live && !out->live)) {
        tile_map_free(out);
        return set_error(err, ATTNC_ERR_NOMEM, "out of memory while transposing the tile map");
    }
    out->nqt = tm->nkt, out->nkt = tm->nqt, out->ngroups = tm->ngroups, out->bq = tm->bq;
    out->bk = tm->bk, out->lk = tm->lk;
    out->check_faults = tm->check_faults;
    out->total = tm->total, out->visited = tm->visited, out->full = tm->full, out->partial = tm->partial;
    out->evaluations = tm->evaluations;
    /* a counting sort by (group, kv tile), stable in q tile order */
    for (int64_t g = 0; g < tm->ngroups; g++)
        for (int64_t i = 0; i < tm->nqt; i++)
            for (int64_t e = tm->row_start[g * tm->nqt + i]; e < tm->row_start[g * tm->nqt + i + 1]; e++)
                out->row_start[g * tm->nkt + tm->kv[e] + 2]++;
    for (int64_t c = 2; c <= cols + 1; c++) out->row_start[c] += out->row_start[c - 1];
    for (int64_t g = 0; g < tm->ngroups; g++)
        for (int64_t i = 0; i < tm->nqt; i++)
            for (int64_t e = tm->row_start[g * tm->nqt + i]; e < tm->row_start[g * tm->nqt + i + 1]; e++) {
                int64_t at = out->row_start[g * tm->nkt + tm->kv[e] + 1]++;
                out->kv[at] = (int32_t)i;
                copy_entry(out, at, tm, e);
            }
    return ATTNC_OK;
}

void tile_map_keys_cut(const TileMap *tm, int64_t *narrowed, int64_t *cut) {
    *narrowed = *cut = 0;
    for (int64_t g = 0; tm->keys && g < tm->ngroups * tm->nqt; g++)
        for (int64_t e = tm->row_start[g]; e < tm->row_start[g + 1]; e++) {
            int64_t k0 = (int64_t)tm->kv[e] * tm->bk, n = k0 + tm->bk < tm->lk ? tm->bk : tm->lk - k0;
            int64_t kept = tm->live ? count_bits(tm->live[e]) : tm->keys[2 * e + 1] - tm->keys[2 * e];
            *narrowed += kept < n;
            *cut += n - kept;
        }
}

void tile_map_free(TileMap *tm) {
    free(tm->row_start);
    free(tm->kv);
    free(tm->mode);
    free(tm->keys);
    free(tm->live);
    memset(tm, 0, sizeof *tm);
}

void ival_set_element_vars(Analysis *an, int64_t b, int64_t h) {
    const Plan *p = an->p;
    const attnc_sizes *sz = &an->bc->sz;
    int64_t group = sz->Hkv && sz->H >= sz->Hkv ? sz->H / sz->Hkv : 1; /* H = 0 or Hkv = 0: no head is visited */
    an->vars[V_B] = p->mask_varies_b ? ival_int(b, b) : ival_int(0, sz->B - 1);
    an->vars[V_H] = p->mask_varies_h ? ival_int(h, h) : ival_int(0, sz->H - 1);
    an->vars[V_HK] = p->mask_varies_h ? ival_int(h / group, h / group) : ival_int(0, sz->Hkv - 1);
}

attnc_status tile_map_build(const Plan *p, const BoundCall *bc, TileMap *tm, attnc_error *err) {
    return tile_map_build_rows(p, bc, p->bq, tm, err);
}

attnc_status tile_map_build_rows(const Plan *p, const BoundCall *bc, int64_t bq, TileMap *tm, attnc_error *err) {
    return tile_map_build_tiles(p, bc, bq, p->bk, tm, err);
}

attnc_status tile_map_build_tiles(const Plan *p, const BoundCall *bc, int64_t bq, int64_t bk, TileMap *tm,
                                  attnc_error *err) {
    memset(tm, 0, sizeof *tm);
    const attnc_sizes *sz = &bc->sz;
    tm->bq = bq > 0 ? bq : 1;
    tm->bk = bk > 0 && bk < p->bk ? bk : p->bk, tm->lk = sz->Lk;
    tm->nqt = (sz->Lq + tm->bq - 1) / tm->bq;
    tm->nkt = (sz->Lk + tm->bk - 1) / tm->bk;
    int64_t nb = p->mask_varies_b ? sz->B : 1, nh = p->mask_varies_h ? sz->H : 1;
    tm->ngroups = nb * nh;
    Analysis an;
    int ok = ival_analysis_init(&an, p, bc);
    Grid g = {NULL, tm->nqt, tm->nkt, tm->bq, tm->bk};
    g.mode = malloc((size_t)(tm->nqt * tm->nkt) + 1);
    tm->row_start = calloc((size_t)(tm->ngroups * tm->nqt + 1), sizeof(int64_t));
    attnc_status st = ATTNC_OK;
    ok = ok && g.mode && tm->row_start;
    int64_t cap = 0, used = 0;
    int lists = tm->bk <= TILE_LIVE_KEYS; /* TileMap.live */
    for (int64_t grp = 0; ok && grp < tm->ngroups; grp++) {
        ival_set_element_vars(&an, p->mask_varies_b ? grp / nh : 0, p->mask_varies_h ? grp % nh : 0);
        if (p->needs_fault && !tm->check_faults && sz->Lq > 0 && sz->Lk > 0) {
            /* one look at the whole call: can any element fault at all? */
            an.vars[V_Q] = ival_int(0, sz->Lq - 1);
            an.vars[V_KV] = ival_int(0, sz->Lk - 1);
            ival_new_generation(&an);
            tm->check_faults = ival_eval(&an, p->f->fault).hi != 0;
        }
        if (tm->nqt && tm->nkt) classify_tiles(&an, &g, 0, tm->nqt, 0, tm->nkt);
        for (int64_t i = 0; ok && i < tm->nqt; i++) {
            for (int64_t j = 0; j < tm->nkt; j++) {
                uint8_t m = g.mode[i * tm->nkt + j];
                tm->total++;
                if (m == TILE_EMPTY) continue;
                if (used == cap) {
                    cap = cap ? cap * 2 : 1024;
                    int32_t *kv = realloc(tm->kv, sizeof(int32_t) * (size_t)cap);
                    uint8_t *md = kv ? realloc(tm->mode, (size_t)cap) : NULL;
                    uint16_t *ks = md ? realloc(tm->keys, sizeof(uint16_t) * 2 * (size_t)cap) : NULL;
                    uint16_t *lv = ks && lists ? realloc(tm->live, sizeof(uint16_t) * (size_t)cap) : NULL;
                    if (kv) tm->kv = kv;
                    if (md) tm->mode = md;
                    if (ks) tm->keys = ks;
                    if (lv) tm->live = lv;
                    if (!kv || !md || !ks || (lists && !lv)) {
                        ok = 0;
                        break;
                    }
                }
                tm->kv[used] = (int32_t)j;
                tm->mode[used] = m;
                int64_t k0 = j * tm->bk, k1 = k0 + tm->bk < sz->Lk ? k0 + tm->bk : sz->Lk;
                tm->keys[2 * used] = 0, tm->keys[2 * used + 1] = (uint16_t)(k1 - k0);
                if (lists) tm->live[used] = all_keys(k1 - k0);
                if (m == TILE_PARTIAL) {
                    int64_t q0 = i * tm->bq, q1 = q0 + tm->bq < sz->Lq ? q0 + tm->bq : sz->Lq;
                    live_keys(&an, q0, q1, k0, k1, &tm->keys[2 * used], &tm->keys[2 * used + 1]);
                    if (lists) {
                        tm->live[used] = live_set(&an, q0, q1, k0, tm->keys[2 * used], tm->keys[2 * used + 1]);
                        tm->live_cut += tm->keys[2 * used + 1] - tm->keys[2 * used] - count_bits(tm->live[used]);
                    }
                }
                used++;
                tm->visited++;
                tm->full += m == TILE_FULL;
                tm->partial += m == TILE_PARTIAL;
            }
            tm->row_start[grp * tm->nqt + i + 1] = used;
        }
    }
    tm->evaluations = an.evaluations;
    ival_analysis_free(&an);
    free(g.mode);
    if (!ok) {
        tile_map_free(tm);
        st = set_error(err, ATTNC_ERR_NOMEM, "out of memory while classifying tiles");
    }
    return st;
}

int tile_mask_eval_init(const Plan *p, const BoundCall *bc, IrEval *ev, int64_t (**dims)[ATTNC_MAX_RANK]) {
    *dims = calloc((size_t)p->attn->ntensors + 1, sizeof **dims);
    if (!ir_eval_init(ev, p->ir) || !*dims) {
        ir_eval_free(ev);
        free(*dims);
        *dims = NULL;
        return 0;
    }
    for (int t = 0; t < p->attn->ntensors; t++)
        for (int d = 0; d < bc->tensors[t]->rank; d++) (*dims)[t][d] = bc->tensors[t]->shape[d];
    ev->sz = bc->sz;
    ev->params = bc->params;
    ev->tensors = bc->tensors;
    ev->dims = (const int64_t(*)[ATTNC_MAX_RANK])(*dims);
    return 1;
}

int tile_element_kept(const Plan *p, const TileMap *tm, IrEval *ev, const TileFaultHook *hook) {
    ir_eval_reset(ev);
    if (tm->check_faults && hook && ir_eval(ev, p->f->fault).b) return hook->masks_at(hook->ctx, ev->b, ev->h, ev->q, ev->kv);
    return ir_eval(ev, p->f->keep).b;
}
