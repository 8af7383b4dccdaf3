/* specgen.c — the random spec generator of the differential fuzzer (see
 * specgen.h).  Expressions are typed trees built bottom-up by gen_int,
 * gen_float and gen_bool in one of three contexts: CONST (sizes and params:
 * scale, sum bounds), POINT (+ b, h, hk, q, kv, tensors, sum variables:
 * masks, biases) and SCORE (+ score: score and weight clauses).  A let
 * records the highest context it used, so that it is only read where the
 * checker allows it. */
#include "specgen.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { CONST = 0, POINT = 1, SCORE = 2 };

typedef struct Name {
    char name[24];
    SgType ty;
    int level;
} Name;

typedef struct Tensor {
    char name[24];
    SgType ty;
    int rank;
    char dim[3][40];
} Tensor;

typedef struct Gen {
    GenSpec *g;
    uint64_t s;
    int a;         /* the attention being written */
    Name names[48]; /* params and lets in scope */
    int nnames;
    Tensor tens[8];
    int ntens;
    char sumvar[4][16], sumbound[4][40];
    int nsum, nsums;
    int used;      /* highest context read by the expression being built */
    int lets, params;
    unsigned prelude_used;     /* bit i: case i of gen_prelude_use (a second use could bind its params differently) */
    int helper_scale[SG_MAX_ATTS]; /* the helper has a `scale`: at most one may reach the compiled attention */
    int scale_used, own_causal;
    int reads; /* tensor reads being built, one inside another's index */
    int no_tensors; /* the compiled attention declares no tensor (gen_body): its kernel keeps its tile map */
} Gen;

static int pick(Gen *G, int n) { return (int)(sg_next(&G->s) % (uint64_t)n); }
static int chance(Gen *G, int percent) { return pick(G, 100) < percent; }
static int64_t range(Gen *G, int64_t lo, int64_t hi) { return lo + (int64_t)(sg_next(&G->s) % (uint64_t)(hi - lo + 1)); }

/* ---- nodes -------------------------------------------------------------- */

static int node(Gen *G, SgType ty, int prec, const char *tmpl, int nk, int k0, int k1, int k2) {
    GenSpec *g = G->g;
    if (g->nnodes == SG_MAX_NODES) return 0; /* node 0 is the literal 0, made first */
    SgNode *n = &g->nodes[g->nnodes];
    memset(n, 0, sizeof *n);
    n->ty = (char)ty;
    n->prec = (char)prec;
    n->tmpl = tmpl;
    n->nk = (char)nk;
    n->kid[0] = k0, n->kid[1] = k1, n->kid[2] = k2;
    return g->nnodes++;
}

static int leaf(Gen *G, SgType ty, int prec, const char *fmt, ...) {
    int i = node(G, ty, prec, NULL, 0, 0, 0, 0);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(G->g->nodes[i].text, sizeof G->g->nodes[i].text, fmt, ap);
    va_end(ap);
    return i;
}

static int bin(Gen *G, SgType ty, int prec, const char *op, int l, int r) {
    int i = node(G, ty, prec, op, 2, l, r, 0);
    G->g->nodes[i].op = 'b';
    return i;
}
static int un(Gen *G, SgType ty, const char *op, int k) {
    int i = node(G, ty, P_UNARY, op, 1, k, 0, 0);
    G->g->nodes[i].op = 'u';
    return i;
}
static int tern(Gen *G, SgType ty, int c, int x, int y) {
    int i = node(G, ty, P_TERN, NULL, 3, c, x, y);
    G->g->nodes[i].op = '?';
    return i;
}
static int call(Gen *G, SgType ty, const char *tmpl, int nk, int k0, int k1, int k2) {
    return node(G, ty, P_PRIMARY, tmpl, nk, k0, k1, k2);
}
/* A call whose template names something held in the node's text (%t). */
static int named(Gen *G, SgType ty, const char *tmpl, const char *text, int nk, int k0, int k1, int k2) {
    int i = call(G, ty, tmpl, nk, k0, k1, k2);
    snprintf(G->g->nodes[i].text, sizeof G->g->nodes[i].text, "%s", text);
    return i;
}

/* ---- literals in every form the lexer takes ------------------------------ */

static int int_lit(Gen *G, int64_t v) {
    if (v < 0) return leaf(G, SG_INT, P_UNARY, "-%lld", (long long)-v);
    if (chance(G, 15)) return leaf(G, SG_INT, P_PRIMARY, pick(G, 2) ? "0x%llX" : "0x%llx", (long long)v);
    return leaf(G, SG_INT, P_PRIMARY, "%lld", (long long)v);
}

/* v is k/8 (exact in binary32): written as 1.5, 1.50, 1.5f, 15e-1, .5, 2., 2e0, 0.2E+1 ... */
static int float_lit(Gen *G, double v) {
    double a = v < 0 ? -v : v;
    char t[32];
    long long k = (long long)(a * 1000 + 0.5); /* a = k / 1000 exactly for multiples of 1/8 */
    int form = pick(G, 8);
    if (form == 0) snprintf(t, sizeof t, "%llde-3", k);
    else if (form == 1) snprintf(t, sizeof t, "%.4gE+1", a / 10);
    else if (form == 2 && a < 1 && a > 0) snprintf(t, sizeof t, ".%03lld", k);
    else if (form == 3 && k % 1000 == 0) snprintf(t, sizeof t, "%lld.", k / 1000);
    else if (form == 4 && k % 1000 == 0) snprintf(t, sizeof t, "%llde0", k / 1000);
    else if (form == 5) snprintf(t, sizeof t, "%.3f%s", a, pick(G, 2) ? "f" : "F");
    else snprintf(t, sizeof t, "%.3f", a);
    return v < 0 ? leaf(G, SG_FLOAT, P_UNARY, "-%s", t) : leaf(G, SG_FLOAT, P_PRIMARY, "%s", t);
}

static double eighths(Gen *G, int lo, int hi) { return (double)range(G, lo, hi) / 8.0; }

/* ---- expressions --------------------------------------------------------- */

static int gen_int(Gen *G, int ctx, int depth);
static int gen_float(Gen *G, int ctx, int depth);
static int gen_bool(Gen *G, int ctx, int depth);

static void use_level(Gen *G, int level) { G->used = level > G->used ? level : G->used; }

/* A param or let of type ty readable in ctx, or -1. */
static int pick_name(Gen *G, SgType ty, int ctx) {
    int idx[48], n = 0;
    for (int i = 0; i < G->nnames; i++)
        if (G->names[i].ty == ty && G->names[i].level <= ctx) idx[n++] = i;
    if (!n) return -1;
    Name *nm = &G->names[idx[pick(G, n)]];
    use_level(G, nm->level);
    return leaf(G, ty, P_PRIMARY, "%s", nm->name);
}

static const char *const sizes[] = {"B", "H", "Hkv", "Lq", "Lk", "D", "Dv"};
static const char *const points[] = {"b", "h", "hk", "q", "kv"};

/* The text of a tensor dimension as a leaf: simple names bind tightly, compound ones are parenthesised. */
static int dim_leaf(Gen *G, const char *dim) {
    return leaf(G, SG_INT, strpbrk(dim, " ") ? P_ADD - 1 : P_PRIMARY, "%s", dim);
}

/* An index for a dimension `dim`: natural, reduced with % or clamp, or raw (rarely: may be out of range). */
static int gen_index(Gen *G, int ctx, const char *dim, int *guard) {
    for (int i = 0; i < G->nsum; i++)
        if (!strcmp(G->sumbound[i], dim) && chance(G, 70)) return leaf(G, SG_INT, P_PRIMARY, "%s", G->sumvar[i]);
    const char *nat[] = {"B", "b", "H", "h", "Hkv", "hk", "Lq", "q", "Lk", "kv"};
    for (int i = 0; i < 10; i += 2)
        if (!strcmp(dim, nat[i]) && chance(G, 60)) return leaf(G, SG_INT, P_PRIMARY, "%s", nat[i + 1]);
    int e = gen_int(G, ctx, 1);
    int how = pick(G, 100);
    if (how < 45) return bin(G, SG_INT, P_MUL, "%", e, dim_leaf(G, dim));
    if (how < 80) return call(G, SG_INT, "clamp(%0, 0, (%1) - 1)", 2, e, dim_leaf(G, dim), 0);
    if (how < 97 && guard) {
        /* lazily guarded: the caller wraps the access in `0 <= e && e < dim ? t[...] : 0` */
        int lo = bin(G, SG_BOOL, P_REL, ">=", e, int_lit(G, 0));
        int hi = bin(G, SG_BOOL, P_REL, "<", e, dim_leaf(G, dim));
        int c = bin(G, SG_BOOL, P_AND, "&&", lo, hi);
        *guard = *guard >= 0 ? bin(G, SG_BOOL, P_AND, "&&", *guard, c) : c;
        return e;
    }
    return e;
}

static int tensor_read(Gen *G, int ctx, SgType ty) {
    int idx[8], n = 0;
    for (int i = 0; i < G->ntens; i++)
        if (G->tens[i].ty == ty) idx[n++] = i;
    if (!n || ctx < POINT || G->reads == 2) return -1;
    Tensor *t = &G->tens[idx[pick(G, n)]];
    use_level(G, POINT);
    int guard = -1, k[3] = {0, 0, 0};
    G->reads++;
    for (int d = 0; d < t->rank; d++) k[d] = gen_index(G, ctx, t->dim[d], &guard);
    G->reads--;
    static const char *const tm[] = {"%t[%0]", "%t[%0, %1]", "%t[%0, %1, %2]"};
    int acc = named(G, ty, tm[t->rank - 1], t->name, t->rank, k[0], k[1], k[2]);
    if (guard < 0) return acc;
    return tern(G, ty, guard, acc, ty == SG_INT ? int_lit(G, 0) : float_lit(G, 0));
}

/* sum(r < R) body, R over sizes and params; the body sees r. */
static int gen_sum(Gen *G, int ctx, int depth, SgType ty) {
    if (G->nsum == 4 || ctx < POINT) return -1;
    static const char *const bounds[] = {"3", "Lq % 3", "Hkv", "2"};
    int saved = G->used, R;
    char btext[40];
    G->used = CONST;
    if (chance(G, 50)) {
        R = pick_name(G, SG_INT, CONST);
        if (R < 0) R = leaf(G, SG_INT, P_MUL, "%s", bounds[pick(G, 4)]);
    } else {
        R = leaf(G, SG_INT, P_MUL, "%s", bounds[pick(G, 4)]);
    }
    G->used = saved;
    snprintf(btext, sizeof btext, "%s", G->g->nodes[R].text);
    int s = G->nsum++;
    snprintf(G->sumvar[s], sizeof G->sumvar[s], "x%dr%d", G->a, G->nsums++);
    snprintf(G->sumbound[s], sizeof G->sumbound[s], "%s", btext);
    int body = ty == SG_INT ? gen_int(G, ctx, depth - 1) : gen_float(G, ctx, depth - 1);
    G->nsum--;
    /* R may be a param whose value is negative: then the sum is empty, which is fine */
    return named(G, ty, "(sum(%t < %0) (%1))", G->sumvar[s], 2, R, body, 0);
}

static int int_leaf(Gen *G, int ctx) {
    for (int tries = 0; tries < 4; tries++) {
        int c = pick(G, 100), n = -1;
        if (c < 20) n = int_lit(G, range(G, -3, 9));
        else if (c < 35) n = leaf(G, SG_INT, P_PRIMARY, "%s", sizes[pick(G, 7)]);
        else if (c < 50) n = pick_name(G, SG_INT, ctx);
        else if (c < 80 && ctx >= POINT) n = (use_level(G, POINT), leaf(G, SG_INT, P_PRIMARY, "%s", points[pick(G, 5)]));
        else if (c < 90 && ctx >= POINT && G->nsum) n = leaf(G, SG_INT, P_PRIMARY, "%s", G->sumvar[pick(G, G->nsum)]);
        else if (ctx >= POINT) n = tensor_read(G, ctx, SG_INT);
        if (n >= 0) return n;
    }
    return int_lit(G, range(G, 0, 5));
}

/* A divisor: mostly nonzero by construction, sometimes a param or size that may be 0 or negative. */
static int divisor(Gen *G, int ctx, int depth) {
    int c = pick(G, 100);
    if (c < 35) return int_lit(G, chance(G, 30) ? -range(G, 1, 5) : range(G, 1, 7));
    if (c < 60) {
        int n = pick_name(G, SG_INT, ctx);
        if (n >= 0) return n;
    }
    if (c < 70) return leaf(G, SG_INT, P_PRIMARY, "%s", sizes[pick(G, 7)]);
    if (c < 90) return call(G, SG_INT, "max(%0, 1)", 1, gen_int(G, ctx, depth - 1), 0, 0);
    return gen_int(G, ctx, depth - 1); /* may be zero where evaluated: the oracle decides */
}

static int gen_int(Gen *G, int ctx, int depth) {
    if (depth <= 0 || chance(G, 30)) return int_leaf(G, ctx);
    int c = pick(G, 100);
    if (c < 25) return bin(G, SG_INT, P_ADD, pick(G, 2) ? "+" : "-", gen_int(G, ctx, depth - 1), gen_int(G, ctx, depth - 1));
    if (c < 33) return bin(G, SG_INT, P_MUL, "*", gen_int(G, ctx, depth - 1), int_leaf(G, ctx));
    if (c < 50) return bin(G, SG_INT, P_MUL, pick(G, 2) ? "/" : "%", gen_int(G, ctx, depth - 1), divisor(G, ctx, depth));
    if (c < 54) return un(G, SG_INT, "-", gen_int(G, ctx, depth - 1));
    if (c < 60) return call(G, SG_INT, "abs(%0)", 1, gen_int(G, ctx, depth - 1), 0, 0);
    if (c < 66) return call(G, SG_INT, pick(G, 2) ? "min(%0, %1)" : "max(%0, %1)", 2, gen_int(G, ctx, depth - 1),
                            gen_int(G, ctx, depth - 1), 0);
    if (c < 70) return call(G, SG_INT, "clamp(%0, %1, %2)", 3, gen_int(G, ctx, depth - 1), int_lit(G, range(G, -4, 0)),
                            int_lit(G, range(G, 0, 6)));
    if (c < 78) return call(G, SG_INT, "int(%0)", 1, gen_float(G, ctx > POINT ? POINT : ctx, depth - 1), 0, 0); /* see builtin() */
    if (c < 88) return tern(G, SG_INT, gen_bool(G, ctx, depth - 1), gen_int(G, ctx, depth - 1), gen_int(G, ctx, depth - 1));
    if (c < 92) {
        int s = gen_sum(G, ctx, depth, SG_INT);
        if (s >= 0) return s;
    }
    int t = tensor_read(G, ctx, SG_INT);
    return t >= 0 ? t : int_leaf(G, ctx);
}

static int float_leaf(Gen *G, int ctx) {
    for (int tries = 0; tries < 4; tries++) {
        int c = pick(G, 100), n = -1;
        if (c < 25) n = float_lit(G, eighths(G, -24, 24));
        else if (c < 40) n = pick_name(G, SG_FLOAT, ctx);
        else if (c < 60 && ctx >= SCORE) n = (use_level(G, SCORE), leaf(G, SG_FLOAT, P_PRIMARY, "score"));
        else if (c < 80) n = call(G, SG_FLOAT, "float(%0)", 1, int_leaf(G, ctx), 0, 0);
        else n = tensor_read(G, ctx, SG_FLOAT);
        if (n >= 0) return n;
    }
    return float_lit(G, eighths(G, -8, 8));
}

/* Built-ins, each fed so that its result stays finite and moderate. */
static int builtin(Gen *G, int ctx, int depth) {
    static const char *const one[] = {
        "exp(clamp(%0, -4.0, 4.0))", "exp2(3.0 * tanh(%0))", "log(abs(%0) + 0.5)", "log2(1.5 + %0 * %0)",
        "sqrt(abs(%0))", "tanh(clamp(%0, -4.0, 4.0))", "sigmoid(clamp(%0, -8.0, 8.0))", "erf(clamp(%0, -3.0, 3.0))",
        "floor(%0)", "ceil(%0)", "sign(%0)", "abs(%0)", "clamp(%0, -2.0, 2.5)", "float(int(%0))",
        "sin(clamp(%0, -8.0, 8.0))", "cos(clamp(%0, -8.0, 8.0))"};
    int c = pick(G, 20);
    if (c >= 18) return call(G, SG_FLOAT, one[c - 4], 1, gen_float(G, ctx, depth - 1), 0, 0); /* sin, cos */
    /* floor, ceil, sign and int() jump at points where float32 and the
     * interpreter's float64 round differently; fed the score they would
     * flip systematically (tanh saturates to exactly the cap in float32),
     * which no tolerance covers: below the score only.  tanh, sigmoid and
     * erf get arguments where float32 still rounds them below 1: beyond,
     * float32 gives exactly 1 where float64 does not, and floor(), int() or
     * `< 1.0` of it flips (attnc-fuzz seeds 2062, 2239, 2598).  log2(1.5 +
     * x * x), not 1.0 +: for a small x float32 keeps few digits of 1 + x * x
     * - 1, and a `weight` of it near 0 has an LSE far off (seed 15611) */
    int jumps = c == 8 || c == 9 || c == 10 || c == 13;
    int x = gen_float(G, jumps && ctx > POINT ? POINT : ctx, depth - 1);
    if (c < 14) return call(G, SG_FLOAT, one[c], 1, x, 0, 0);
    int y = gen_float(G, ctx, depth - 1);
    if (c == 14) return call(G, SG_FLOAT, "pow(abs(%0) + 0.5, clamp(%1, -2.0, 2.0))", 2, x, y, 0);
    if (c == 15) return call(G, SG_FLOAT, "min(%0, %1)", 2, x, y, 0);
    if (c == 16) return call(G, SG_FLOAT, "max(%0, %1)", 2, x, y, 0);
    return call(G, SG_FLOAT, "clamp(%0, %1, %2)", 3, x, float_lit(G, eighths(G, -20, -1)), float_lit(G, eighths(G, 0, 20)));
}

static int gen_float(Gen *G, int ctx, int depth) {
    if (depth <= 0 || chance(G, 25)) return float_leaf(G, ctx);
    int c = pick(G, 100);
    if (c < 22) return bin(G, SG_FLOAT, P_ADD, pick(G, 2) ? "+" : "-", gen_float(G, ctx, depth - 1), gen_float(G, ctx, depth - 1));
    if (c < 32) return bin(G, SG_FLOAT, P_MUL, "*", gen_float(G, ctx, depth - 1), float_leaf(G, ctx));
    if (c < 38) return bin(G, SG_FLOAT, P_MUL, "/", gen_float(G, ctx, depth - 1),
                           call(G, SG_FLOAT, "(0.25 + abs(%0))", 1, gen_float(G, ctx, depth - 1), 0, 0));
    if (c < 41) return un(G, SG_FLOAT, "-", gen_float(G, ctx, depth - 1));
    if (c < 45) /* mixed int and float arithmetic promotes */
        return bin(G, SG_FLOAT, P_ADD, "+", gen_int(G, ctx, depth - 1), gen_float(G, ctx, depth - 1));
    if (c < 68) return builtin(G, ctx, depth);
    if (c < 78) return call(G, SG_FLOAT, "float(%0)", 1, gen_int(G, ctx, depth - 1), 0, 0);
    if (c < 90) return tern(G, SG_FLOAT, gen_bool(G, ctx, depth - 1), gen_float(G, ctx, depth - 1), gen_float(G, ctx, depth - 1));
    int s = gen_sum(G, ctx, depth, SG_FLOAT);
    return s >= 0 ? s : float_leaf(G, ctx);
}

static int gen_bool(Gen *G, int ctx, int depth) {
    static const char *const rel[] = {"<", "<=", ">", ">=", "==", "!="};
    int c = depth <= 0 ? pick(G, 50) : pick(G, 100);
    if (c < 30) {
        int r = pick(G, 6);
        return bin(G, SG_BOOL, r < 4 ? P_REL : P_EQ, rel[r], gen_int(G, ctx, depth - 1), gen_int(G, ctx, depth - 1));
    }
    if (c < 42) /* float comparisons against literals: thresholds rarely straddled by rounding */
        return bin(G, SG_BOOL, P_REL, rel[pick(G, 4)], gen_float(G, ctx, depth - 1), float_lit(G, eighths(G, -8, 8)));
    if (c < 46) return leaf(G, SG_BOOL, P_PRIMARY, pick(G, 4) ? "true" : "false");
    if (c < 50) {
        int n = pick_name(G, SG_BOOL, ctx);
        if (n >= 0) return n;
        return bin(G, SG_BOOL, P_REL, "<", int_leaf(G, ctx), int_leaf(G, ctx));
    }
    if (c < 65) return bin(G, SG_BOOL, P_AND, "&&", gen_bool(G, ctx, depth - 1), gen_bool(G, ctx, depth - 1));
    if (c < 80) return bin(G, SG_BOOL, P_OR, "||", gen_bool(G, ctx, depth - 1), gen_bool(G, ctx, depth - 1));
    if (c < 88) return un(G, SG_BOOL, "!", gen_bool(G, ctx, depth - 1));
    if (c < 94) return bin(G, SG_BOOL, P_EQ, pick(G, 2) ? "==" : "!=", gen_bool(G, ctx, depth - 1), gen_bool(G, ctx, depth - 1));
    return tern(G, SG_BOOL, gen_bool(G, ctx, depth - 1), gen_bool(G, ctx, depth - 1), gen_bool(G, ctx, depth - 1));
}

/* ---- items --------------------------------------------------------------- */

static SgItem *item(Gen *G, int expr, const char *fmt, ...) {
    SgAtt *at = &G->g->atts[G->a];
    if (at->nitems == SG_MAX_ITEMS) return NULL;
    SgItem *it = &at->items[at->nitems++];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(it->head, sizeof it->head, fmt, ap);
    va_end(ap);
    it->expr = expr;
    it->deleted = 0;
    return it;
}

static SgDomain *domain(GenSpec *g, const char *name, SgType ty, int64_t lo, int64_t hi, int zero) {
    static SgDomain spare; /* when full: the param gets the driver's default domain */
    SgDomain *d = g->ndomains == SG_MAX_DOMAINS ? &spare : &g->domains[g->ndomains++];
    memset(d, 0, sizeof *d);
    snprintf(d->name, sizeof d->name, "%s", name);
    d->ty = ty, d->lo = lo, d->hi = hi, d->zero_percent = zero;
    return d;
}

static void add_name(Gen *G, const char *name, SgType ty, int level) {
    if (G->nnames == 48) return;
    Name *n = &G->names[G->nnames++];
    snprintf(n->name, sizeof n->name, "%s", name);
    n->ty = ty, n->level = level;
}

/* A param: "dim" ints (0..5, for dimensions and sum bounds) are named x<a>n<i>; others x<a>p<i>. */
static void gen_param(Gen *G, int dimlike) {
    static const char *const tn[] = {"int", "float", "bool"};
    char name[24];
    int c = pick(G, 100);
    SgType ty = dimlike || c < 55 ? SG_INT : c < 82 ? SG_FLOAT : SG_BOOL;
    snprintf(name, sizeof name, "x%d%c%d", G->a, dimlike ? 'n' : 'p', G->params++);
    if (dimlike) domain(G->g, name, ty, 0, 5, 30);
    else if (ty == SG_INT) domain(G->g, name, ty, -6, 6, 6);
    else domain(G->g, name, ty, -24, 24, 0); /* floats: eighths */
    int dflt = -1;
    if (chance(G, 50)) {
        if (ty == SG_INT) dflt = int_lit(G, dimlike ? range(G, 0, 5) : range(G, -6, 6));
        else if (ty == SG_FLOAT) dflt = float_lit(G, eighths(G, -24, 24));
        else dflt = leaf(G, SG_BOOL, P_PRIMARY, pick(G, 2) ? "true" : "false");
    }
    item(G, dflt, "param %s : %s%s", name, tn[ty], dflt >= 0 ? " = " : "");
    add_name(G, name, ty, CONST);
}

static void gen_tensor(Gen *G) {
    if (G->ntens == 8) return;
    Tensor *t = &G->tens[G->ntens];
    const char *pool[] = {"B", "H", "Hkv", "Lq", "Lk", "D", "Dv", "3", "1", "Lk + 2", "2 * H", "Lq % 3 + 1"};
    snprintf(t->name, sizeof t->name, "x%dt%d", G->a, G->ntens);
    t->ty = chance(G, 35) ? SG_INT : SG_FLOAT;
    t->rank = 1 + pick(G, 3);
    char decl[SG_TEXT];
    int len = snprintf(decl, sizeof decl, "tensor %s : %s[", t->name, t->ty == SG_INT ? "int" : "float");
    for (int d = 0; d < t->rank; d++) {
        int dp = -1;
        for (int i = 0; i < G->nnames && dp < 0; i++)
            if (G->names[i].name[2] == 'n' && chance(G, 30)) dp = i;
        snprintf(t->dim[d], sizeof t->dim[d], "%s", dp >= 0 ? G->names[dp].name : pool[pick(G, 12)]);
        len += snprintf(decl + len, sizeof decl - (size_t)len, "%s%s", d ? ", " : "", t->dim[d]);
    }
    snprintf(decl + len, sizeof decl - (size_t)len, "]");
    item(G, -1, "%s", decl);
    if (t->ty == SG_INT) domain(G->g, t->name, SG_INT, -4, 9, 0)->is_tensor = 1;
    G->ntens++;
}

/* FlashBias: bias sum(r < R) U[h, q, r] * W[h, kv, r] with R a param that is often 0, or Lq % 3. */
static void gen_low_rank(Gen *G) {
    char R[24], r[16], u[24], w[24];
    if (chance(G, 70)) {
        snprintf(R, sizeof R, "x%dn%d", G->a, G->params++);
        domain(G->g, R, SG_INT, 0, 4, 35);
        int dflt = chance(G, 50) ? int_lit(G, range(G, 0, 3)) : -1;
        item(G, dflt, "param %s : int%s", R, dflt >= 0 ? " = " : "");
        add_name(G, R, SG_INT, CONST);
    } else {
        snprintf(R, sizeof R, "Lq %% 3");
    }
    snprintf(u, sizeof u, "x%du%d", G->a, G->nsums);
    snprintf(w, sizeof w, "x%dw%d", G->a, G->nsums);
    snprintf(r, sizeof r, "x%dr%d", G->a, G->nsums++);
    int batched = chance(G, 40);
    item(G, -1, "tensor %s : float[%sH, Lq, %s]", u, batched ? "B, " : "", R);
    item(G, -1, "tensor %s : float[%sH, Lk, %s]", w, batched ? "B, " : "", R);
    char tu[64], tw[64];
    snprintf(tu, sizeof tu, "%s[%sh, q, %s]", u, batched ? "b, " : "", r);
    snprintf(tw, sizeof tw, "%s[%sh, kv, %s]", w, batched ? "b, " : "", r);
    int prod = bin(G, SG_FLOAT, P_MUL, "*", leaf(G, SG_FLOAT, P_PRIMARY, "%s", tu), leaf(G, SG_FLOAT, P_PRIMARY, "%s", tw));
    int bound = leaf(G, SG_INT, strchr(R, ' ') ? P_MUL : P_PRIMARY, "%s", R);
    int s = node(G, SG_FLOAT, 0, "sum(%t < %0) %B1", 2, bound, prod, 0); /* the body extends to the right */
    snprintf(G->g->nodes[s].text, sizeof G->g->nodes[s].text, "%s", r);
    item(G, s, "bias ");
}

/* Version 2 (spec 9): a rotary with some of its arguments, or a relative
 * embedding dot(Q|K, E[clamp(kv - q, -M, M) + M]) as a bias. */

/* Position ids: an int tensor [B, L] read at [b, q] (or [b, kv]), its values
 * in a random range (within the lengths, beyond them, negative, near 2^30). */
static void gen_position_ids(Gen *G, const char *len, const char *index, char *arg, size_t n) {
    static const int64_t ranges[][2] = {{0, 8}, {0, 100}, {-40, 40}, {0, 4096}, {1 << 30, (1 << 30) + 64}};
    char ids[24];
    snprintf(ids, sizeof ids, "x%di%d", G->a, G->nsums++);
    item(G, -1, "tensor %s : int[B, %s]", ids, len);
    const int64_t *r = ranges[pick(G, 5)];
    domain(G->g, ids, SG_INT, r[0], r[1], 0)->is_tensor = 1;
    snprintf(arg, n, "%spos = %s[b, %s]", index, ids, index);
}

static void gen_rotary(Gen *G) {
    static const char *const opts[][3] = {{"", "base = 500.0", "base = 10000.0"},
                                          {"", "dims = D - D % 2", "dims = 2 * (D / 4)"},
                                          {"", "interleaved = true", "interleaved = false"},
                                          {"", "qpos = q + Lk - Lq", "qpos = 2 * q + h"},
                                          {"", "kvpos = kv + 1", "kvpos = kv + hk"}};
    char args[SG_TEXT] = "", ids[48];
    size_t len = 0;
    for (int i = 0; i < 5; i++) {
        const char *o = opts[i][pick(G, 3)];
        if (i >= 3 && chance(G, 30)) /* position ids from a tensor */
            gen_position_ids(G, i == 3 ? "Lq" : "Lk", i == 3 ? "q" : "kv", ids, sizeof ids), o = ids;
        if (*o) len += (size_t)snprintf(args + len, sizeof args - len, "%s%s", len ? ", " : "", o);
    }
    if (len) item(G, -1, "rotary(%s)", args);
    else item(G, -1, "rotary");
}

static void gen_relative_embedding(Gen *G) {
    char e[24], at[96];
    int M = 1 + pick(G, 4);
    snprintf(e, sizeof e, "x%de%d", G->a, G->nsums++);
    item(G, -1, "tensor %s : float[%d, D]", e, 2 * M + 1);
    snprintf(at, sizeof at, "dot(%s, %s[clamp(kv - q, -%d, %d) + %d])", pick(G, 2) ? "Q" : "K", e, M, M, M);
    item(G, bin(G, SG_FLOAT, P_MUL, "*", leaf(G, SG_FLOAT, P_PRIMARY, "%s", at), float_lit(G, eighths(G, 1, 4))), "bias ");
}

/* A dot no table expresses (compiled as a sum, middle/rows_table.h): dot(Q, K)
 * (or dot(K, Q)), two tensor rows one per query and one per key (low-rank
 * columns), or two rows read per element; as a bias, or in a score clause. */
static void gen_row_dots(Gen *G) {
    char a[24], c[24], at[128];
    snprintf(a, sizeof a, "x%da%d", G->a, G->nsums++);
    snprintf(c, sizeof c, "x%dc%d", G->a, G->nsums++);
    int R = 1 + pick(G, 5), M = 1 + pick(G, 3);
    switch (pick(G, 3)) {
    case 0: snprintf(at, sizeof at, pick(G, 2) ? "dot(Q, K)" : "dot(K, Q)"); break;
    case 1:
        item(G, -1, "tensor %s : float[Lq, %d]", a, R);
        item(G, -1, "tensor %s : float[B, Lk, %d]", c, R);
        snprintf(at, sizeof at, "dot(%s[q], %s[b, kv])", a, c);
        break;
    default:
        item(G, -1, "tensor %s : float[%d, D]", a, 2 * M + 1);
        item(G, -1, "tensor %s : float[H, D]", c);
        snprintf(at, sizeof at, "dot(%s[clamp(q-kv,-%d,%d)+%d],%s[h])", a, M, M, M, c); /* a leaf holds 39 */
    }
    int term = bin(G, SG_FLOAT, P_MUL, "*", leaf(G, SG_FLOAT, P_PRIMARY, "%s", at), float_lit(G, eighths(G, 1, 4)));
    if (chance(G, 70)) item(G, term, "bias ");
    else item(G, bin(G, SG_FLOAT, P_ADD, "+", leaf(G, SG_FLOAT, P_PRIMARY, "score"), term), "score ");
}

/* `use` of the prelude, with its params bound, left to the call, or defaulted. */
static void gen_prelude_use(Gen *G) {
    GenSpec *g = G->g;
    int c = pick(G, 8);
    unsigned bit = c == 7 ? 1u : 1u << c; /* case 7 is causal twice */
    if (G->prelude_used & bit) return;
    G->prelude_used |= bit;
    if ((c == 0 || c == 7) && G->own_causal) { /* the file's causal: its clauses (a scale too) must come in once */
        if (G->helper_scale[0] && G->scale_used) return;
        G->scale_used |= G->helper_scale[0];
    }
    switch (c) {
    case 0: item(G, -1, "use causal"); break;
    case 1: item(G, -1, "use causal_bottom_right"); break;
    case 2:
        if (chance(G, 50)) item(G, -1, "use sliding_window(window = %s)", pick(G, 2) ? "1 + Lk / 3" : "5");
        else item(G, -1, "use sliding_window"), domain(g, "window", SG_INT, -1, 40, 5);
        break;
    case 3:
        if (chance(G, 50)) item(G, -1, "use alibi(alibi_max = %s)", pick(G, 2) ? "4.0" : "0x2");
        else item(G, -1, "use alibi"), domain(g, "alibi_max", SG_FLOAT, 0, 64, 0);
        break;
    case 4:
        if (chance(G, 50)) item(G, -1, "use softcap(cap = %s)", pick(G, 2) ? "5.0" : "2.5e0");
        else item(G, -1, "use softcap"), domain(g, "cap", SG_FLOAT, 8, 200, 0);
        break;
    case 5:
        item(G, -1, "use document");
        domain(g, "doc", SG_INT, 0, 3, 0)->is_tensor = 1;
        g->square = 1;
        break;
    case 6:
        if (chance(G, 50)) item(G, -1, "use prefix_lm(prefix = %s)", pick(G, 2) ? "Lk / 4" : "3");
        else item(G, -1, "use prefix_lm"), domain(g, "prefix", SG_INT, 0, 40, 0);
        break;
    default: item(G, -1, "use causal");
        if (!G->own_causal) item(G, -1, "use causal"); /* the same params and mask again: they merge */
    }
}

static int gen_score_clause(Gen *G, int depth) {
    if (chance(G, 45)) /* score cond(score) ? e : score — the shape of issue 8 item 1 */
        return tern(G, SG_FLOAT, bin(G, SG_BOOL, P_REL, "<", leaf(G, SG_FLOAT, P_PRIMARY, "score"), float_lit(G, eighths(G, -4, 8))),
                    gen_float(G, SCORE, depth), leaf(G, SG_FLOAT, P_PRIMARY, "score"));
    return gen_float(G, SCORE, depth);
}

/* A weight that is >= 0, so that LSE = log(sum p) is defined. */
static int gen_weight(Gen *G) {
    static const char *const forms[] = {"sigmoid(%0)", "max(%0, 0.0) / float(Lk)", "exp(clamp(%0, -4.0, 4.0))",
                                        "%0 * %0", "abs(%0)"};
    int c = pick(G, 5);
    return node(G, SG_FLOAT, c >= 3 ? P_MUL : P_PRIMARY, forms[c], 1, gen_float(G, SCORE, 2), 0, 0);
}

/* ---- long flat chains ------------------------------------------------------ */

/* A term of a bias chain: mostly exact in float32 (eighths, small ints), so that the 50..400-term sum
 * rounds alike on every backend; now and then any small float expression. */
static int chain_term(Gen *G) {
    int c = pick(G, 100);
    if (c < 40) return float_lit(G, eighths(G, -8, 8));
    if (c < 85) return call(G, SG_FLOAT, "float(%0)", 1, int_leaf(G, POINT), 0, 0);
    return gen_float(G, POINT, 1);
}

/* A term of an && chain, mostly true (`kv != 7`), or of an || chain, mostly false (`q == 7`); now and then any. */
static int chain_cond(Gen *G, int and) {
    static const char *const pt[] = {"q", "kv", "q - kv", "h + 3 * b"};
    int c = pick(G, 100);
    if (c < 85)
        return bin(G, SG_BOOL, P_EQ, and ? "!=" : "==", leaf(G, SG_INT, c % 4 < 2 ? P_PRIMARY : P_ADD, "%s", pt[c % 4]),
                   int_lit(G, range(G, -20, 90)));
    if (c < 95) return bin(G, SG_BOOL, P_REL, and ? "<" : ">", int_leaf(G, POINT), int_lit(G, range(G, 60, 200)));
    return gen_bool(G, POINT, 1);
}

/* A flat left-associated chain of 50..400 terms (issue 8 item 9: a chain is not nesting; the depth limit is
 * 1024): a bias of + and -, or a mask of && or ||.  Rare: the driver shrinks the calls of such specs. */
static void gen_chain(Gen *G) {
    int kind = pick(G, 3), n = 50 + pick(G, 351), e = -1, terms = 0;
    for (; terms < n && G->g->nnodes + 1000 < SG_MAX_NODES; terms++) { /* room left for the other items */
        int t = kind == 0 ? chain_term(G) : chain_cond(G, kind == 1);
        if (e < 0) e = t;
        else if (kind == 0) e = bin(G, SG_FLOAT, P_ADD, pick(G, 4) ? "+" : "-", e, t);
        else e = bin(G, SG_BOOL, kind == 1 ? P_AND : P_OR, kind == 1 ? "&&" : "||", e, t);
    }
    if (e < 0) return;
    item(G, e, kind ? "mask " : "bias ");
    G->g->chain_terms = terms;
}

/* The body of attention G->a: params, tensors, lets and clauses; helpers are small. */
static void gen_body(Gen *G, int helper) {
    int np = helper ? pick(G, 2) : pick(G, 4);
    for (int i = 0; i < np; i++) gen_param(G, chance(G, 35));
    int full = !helper && !G->no_tensors; /* what may declare tensors */
    int nt = full ? pick(G, 4) : 0;
    for (int i = 0; i < nt; i++) gen_tensor(G);
    if (full && chance(G, 20)) gen_low_rank(G);
    if (full && chance(G, 12)) gen_rotary(G);
    if (full && chance(G, 12)) gen_relative_embedding(G);
    if (full && chance(G, 10)) gen_row_dots(G);
    if (G->no_tensors) G->prelude_used |= 1u << 5; /* `document` reads a tensor */
    if (!helper)
        for (int i = 0; i < 2 + G->no_tensors && chance(G, 35 + 30 * G->no_tensors); i++) gen_prelude_use(G);
    if (!helper)
        for (int h = 0; h < G->a; h++)
            if (chance(G, 80)) {
                SgAtt *ha = &G->g->atts[h];
                if (h == 0 && G->own_causal && (G->prelude_used & 1)) continue;
                if (G->helper_scale[h] && G->scale_used) continue;
                G->scale_used |= G->helper_scale[h];
                if (h == 0 && G->own_causal) G->prelude_used |= 1;
                const char *pn = NULL;
                for (int i = 0; i < ha->nitems; i++)
                    if (!strncmp(ha->items[i].head, "param ", 6)) pn = ha->items[i].head + 6;
                char p[24] = "";
                if (pn) sscanf(pn, "%23s", p);
                if (pn && chance(G, 60)) {
                    const char *v = strstr(pn, ": int") ? "Lk % 4 - 1" : strstr(pn, ": float") ? "0.5" : "true";
                    item(G, -1, "use %s(%s = %s)", ha->name, p, v);
                } else {
                    item(G, -1, "use %s", ha->name);
                }
            }
    if (!helper && chance(G, 3)) gen_chain(G);
    int n = helper ? 1 + pick(G, 2) : 1 + pick(G, 6);
    int has_scale = G->scale_used, has_weight = 0;
    for (int i = 0; i < n; i++) {
        int c = pick(G, 100);
        int depth = 1 + pick(G, 3);
        if (c < 30 && !helper) {
            char name[24];
            int ctx = pick(G, 3);
            snprintf(name, sizeof name, "x%dl%d", G->a, G->lets++);
            G->used = CONST;
            int e = pick(G, 3) == 0 ? gen_int(G, ctx, depth) : pick(G, 2) ? gen_float(G, ctx, depth) : gen_bool(G, ctx, depth);
            item(G, e, "let %s = ", name);
            add_name(G, name, (SgType)G->g->nodes[e].ty, G->used);
        } else if (c < 50) {
            item(G, gen_bool(G, POINT, depth), "mask ");
        } else if (c < 72) {
            item(G, gen_float(G, POINT, depth), "bias ");
        } else if (c < 88) {
            item(G, gen_score_clause(G, depth), "score ");
        } else if (c < 94 && !has_scale) {
            has_scale = 1;
            G->helper_scale[G->a] = 1;
            item(G, chance(G, 50) ? float_lit(G, eighths(G, 1, 12)) : gen_float(G, CONST, 2), "scale ");
        } else if (!has_weight && !helper) {
            has_weight = 1;
            item(G, gen_weight(G), "weight ");
        }
    }
    if (G->no_tensors && !helper) item(G, gen_bool(G, POINT, 2), "mask "); /* what the kept map holds */
    if (!helper && !has_weight && chance(G, 12)) { /* a sink (spec 9.4): per row, softmax only */
        static const char *const sinks[] = {"0.0", "1.5", "float(h) * 0.5 - 1.0", "float(q % 3) - 0.5"};
        int which = pick(G, 6);
        if (which < 4) {
            item(G, leaf(G, SG_FLOAT, P_ADD, "%s", sinks[which]), "sink ");
        } else if (!G->no_tensors) { /* learned sinks (gpt-oss): a float tensor, whose gradient the backward pass gives */
            char t[24];
            snprintf(t, sizeof t, "x%ds%d", G->a, G->nsums++);
            item(G, -1, "tensor %s : float[H%s]", t, which == 5 ? ", Lq" : "");
            item(G, leaf(G, SG_FLOAT, P_ADD, which == 5 ? "%s[h, q] - 0.5" : "%s[h]", t), "sink ");
        }
    }
    if (!helper) G->g->has_scale = has_scale;
}

/* Now and then (a stream of its own, so that the other specs stay as they were) a mask in the coordinates of a
 * W-wide grid, W = 8 or 16, that multi-dimensional tiles recognise: a 2-D neighbourhood, non-overlapping
 * windows, or axial rows and columns; the driver then draws calls whose grid divides into blocks. */
static void gen_grid_mask(Gen *G, uint64_t seed) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 0x6A09E667ull;
    if (sg_next(&s) % 6) return;
    int W = sg_next(&s) % 2 ? 8 : 16, form = (int)(sg_next(&s) % 3), e;
    if (form == 0) {
        int r = 1 + (int)(sg_next(&s) % 3);
        int x = leaf(G, SG_INT, P_PRIMARY, "abs(q %% %d - kv %% %d)", W, W);
        int y = leaf(G, SG_INT, P_PRIMARY, "abs(q / %d - kv / %d)", W, W);
        e = bin(G, SG_BOOL, P_AND, "&&", bin(G, SG_BOOL, P_REL, "<=", x, leaf(G, SG_INT, P_PRIMARY, "%d", r)),
                bin(G, SG_BOOL, P_REL, "<=", y, leaf(G, SG_INT, P_PRIMARY, "%d", r)));
    } else if (form == 1) {
        int w = sg_next(&s) % 2 ? 2 : 4;
        int xq = leaf(G, SG_INT, P_MUL, "q %% %d / %d", W, w), xk = leaf(G, SG_INT, P_MUL, "kv %% %d / %d", W, w);
        int yq = leaf(G, SG_INT, P_MUL, "q / %d / %d", W, w), yk = leaf(G, SG_INT, P_MUL, "kv / %d / %d", W, w);
        e = bin(G, SG_BOOL, P_AND, "&&", bin(G, SG_BOOL, P_EQ, "==", xq, xk), bin(G, SG_BOOL, P_EQ, "==", yq, yk));
    } else {
        int xq = leaf(G, SG_INT, P_MUL, "q %% %d", W), xk = leaf(G, SG_INT, P_MUL, "kv %% %d", W);
        int yq = leaf(G, SG_INT, P_MUL, "q / %d", W), yk = leaf(G, SG_INT, P_MUL, "kv / %d", W);
        e = bin(G, SG_BOOL, P_OR, "||", bin(G, SG_BOOL, P_EQ, "==", xq, xk), bin(G, SG_BOOL, P_EQ, "==", yq, yk));
    }
    if (!item(G, e, "mask ")) return;
    G->g->grid_w = W;
    /* half the time a bias of the cells' offsets (or of kv - q), which the block-order plan reads from grid
     * tables (docs/toeplitz.md, "Grid tables") */
    int b = (int)(sg_next(&s) % 6);
    if (b > 2) return;
    int dx = leaf(G, SG_INT, P_PRIMARY, "abs(kv %% %d - q %% %d)", W, W);
    int dy = leaf(G, SG_INT, P_PRIMARY, b == 1 ? "(q / %d - kv / %d)" : "abs(kv / %d - q / %d)", W, W);
    int dy2 = leaf(G, SG_INT, P_PRIMARY, "(q / %d - kv / %d)", W, W); /* a node of its own: the tree stays a tree */
    int d = b == 2 ? leaf(G, SG_INT, P_PRIMARY, "abs(kv - q)")
          : b == 1 ? bin(G, SG_INT, P_ADD, "+", bin(G, SG_INT, P_MUL, "*", dy, dy2),
                         bin(G, SG_INT, P_MUL, "*", leaf(G, SG_INT, P_PRIMARY, "3"), dx))
                   : bin(G, SG_INT, P_ADD, "+", dx, bin(G, SG_INT, P_MUL, "*", leaf(G, SG_INT, P_PRIMARY, "2"), dy));
    int f = call(G, SG_FLOAT, b == 1 ? "sqrt(float(%0))" : "log(1.0 + float(%0))", 1, d, 0, 0);
    int k = leaf(G, SG_FLOAT, P_PRIMARY, b == 2 ? "0.0625 * float(h + 1)" : "0.125");
    item(G, bin(G, SG_FLOAT, P_MUL, "*", k, f), "bias ");
}

/* 1 in 5 specs without a grid mask (a stream of its own, so that the other specs stay as they were): a bias of
 * kv - q costly enough for tables of distances (pass_toeplitz.c; every compiled backend's diag block), one
 * form reading h. */
static void gen_distance_bias(Gen *G, uint64_t seed) {
    uint64_t s = seed * 0xBF58476D1CE4E5B9ull + 0x94D049BBull;
    if (G->g->grid_w || sg_next(&s) % 5) return;
    int form = (int)(sg_next(&s) % 3), f;
    if (form == 0) {
        f = call(G, SG_FLOAT, "log(1.0 + float(%0))", 1, leaf(G, SG_INT, P_PRIMARY, "abs(kv - q)"), 0, 0);
    } else if (form == 1) {
        int d = leaf(G, SG_INT, P_PRIMARY, "(kv - q)");
        int sq = call(G, SG_FLOAT, "sqrt(float(abs(%0)))", 1, d, 0, 0);
        f = bin(G, SG_FLOAT, P_MUL, "*", leaf(G, SG_FLOAT, P_PRIMARY, "0.0625 * float(h + 1)"), sq);
    } else {
        int d = leaf(G, SG_INT, P_PRIMARY, "(kv - q)");
        f = tern(G, SG_FLOAT, bin(G, SG_BOOL, P_REL, ">", d, leaf(G, SG_INT, P_PRIMARY, "0")),
                 call(G, SG_FLOAT, "log(2.0 + float(%0))", 1, leaf(G, SG_INT, P_PRIMARY, "kv - q"), 0, 0),
                 call(G, SG_FLOAT, "-log(2.0 + float(%0))", 1, leaf(G, SG_INT, P_PRIMARY, "q - kv"), 0, 0));
    }
    item(G, bin(G, SG_FLOAT, P_MUL, "*", leaf(G, SG_FLOAT, P_PRIMARY, "0.125"), f), "bias ");
}

void specgen_generate(GenSpec *g, uint64_t seed) {
    static Gen G;
    memset(g, 0, sizeof *g);
    memset(&G, 0, sizeof G);
    G.g = g;
    G.s = seed * 0x2545F4914F6CDD1Dull + 1;
    /* 1 in 4 (a stream of its own, so that the other specs stay as they were): the compiled attention has no
     * tensor and more masks, so its kernel keeps its tile map between calls (runtime/map_cache.h) and the
     * driver's second call runs on the kept copy */
    uint64_t nt_stream = seed * 0xD1B54A32D192ED03ull + 0x3C6EF372ull;
    int no_tensors = sg_next(&nt_stream) % 4 == 0;
    leaf(&G, SG_INT, P_PRIMARY, "0"); /* node 0, what node() gives when the array is full: a leaf, never a cycle */
    g->crlf = chance(&G, 10);
    g->style_seed = sg_next(&G.s);
    g->natts = 1 + pick(&G, 3);
    for (int a = 0; a < g->natts; a++) {
        G.a = a;
        G.nnames = G.ntens = G.lets = G.params = 0;
        int main_att = a == g->natts - 1;
        G.no_tensors = main_att && no_tensors;
        /* a helper may be called `causal`: the file's own attention wins over the prelude's */
        G.own_causal |= a == 0 && !main_att && chance(&G, 12);
        if (a == 0 && G.own_causal) snprintf(g->atts[a].name, sizeof g->atts[a].name, "causal");
        else if (!main_att) snprintf(g->atts[a].name, sizeof g->atts[a].name, "helper%d", a);
        else snprintf(g->atts[a].name, sizeof g->atts[a].name, "fuzz%llu", (unsigned long long)(seed % 1000000));
        gen_body(&G, !main_att);
        if (main_att) gen_grid_mask(&G, seed);
        if (main_att) gen_distance_bias(&G, seed);
    }
}
