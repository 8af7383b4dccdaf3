/* pass_band.c — each query row's band of keys: the interval [lo(q), hi(q)]
 * outside which the masks keep nothing.
 * Requires: an IrFunc after the other passes (its keep root final).
 * Produces: two int nodes of the row loop (they read no kv, no pre, no sum
 * variable), lo and hi, such that for every element keep(q, kv) implies
 * lo(q) <= kv <= hi(q); both IR_NONE when no top-level mask conjunct bounds
 * kv.  The masks are not changed: a backend that skips the keys outside the
 * band still evaluates keep inside it (docs/band-masks.md).
 *
 * Which conjuncts bound kv.  A top-level conjunct of keep (masks are ANDed,
 * and `a && b` splits) that compares two int expressions linear in kv with
 * coefficient +1 or -1 through `+`, `-` and unary `-`, every other term free
 * of kv (a row value: q, sizes, params, tensors read at q, b or h):
 *   A <= B, A < B, A == B  with  A - B = c * kv + sum_i s_i * t_i
 * gives kv <= hi (c = 1) or kv >= lo (c = -1), and both for `==`; and
 * abs(A) <= R (or <) with R free of kv, as A <= R and -R <= A.  This covers
 * causal (kv <= q), windows (q - kv < w), symmetric and dilated windows
 * (abs(q - kv) <= w), diagonals and per-head windows (w a tensor read at h).
 *
 * Why the clamps.  Int arithmetic wraps (spec 5.1), so `q - kv < w` is
 * `kv > q - w` only where nothing wraps.  Keys are below 2^40 (bind's size
 * limit); when every term t_i lies in [-2^52, 2^52] (the row's `ok`), at
 * most 16 terms and kv sum to less than 2^57 in magnitude, so neither the
 * mask nor the bound wraps and the bound is exact; where a term lies
 * outside, the row's bound is neutral (lo = 0, hi = 2^41: no key is
 * excluded).  Bounds are clamped to [-1, 2^41], which no key lies beyond,
 * so that lo - 1 and hi + 1 never wrap in a backend. */
#include "ir_passes.h"

enum { MAX_TERMS = 16 };

/* Nodes built through the fold pass's rules (0 + q is q; constants fold). */
static IrRef op2(IrModule *m, IrOp op, Type t, IrRef a, IrRef b) {
    IrRef args[2] = {a, b};
    return ir_fold(m, op, t, 0, 2, args);
}
static IrRef op3(IrModule *m, IrOp op, Type t, IrRef a, IrRef b, IrRef c) {
    IrRef args[3] = {a, b, c};
    return ir_fold(m, op, t, 0, 3, args);
}
#define BAND_TERM_LIMIT ((int64_t)1 << 52)
#define BAND_KEY_LIMIT ((int64_t)1 << 41)

typedef struct Lin {
    int c;                /* the coefficient of kv */
    int n;                /* terms */
    IrRef t[MAX_TERMS];   /* kv-free int terms */
    int s[MAX_TERMS];     /* their signs */
} Lin;

/* r * sign added to lin; 0 when r is not linear in kv as described above. */
static int linear(const IrModule *m, IrRef r, int sign, IrRef kv, Lin *lin) {
    const IrNode *n = ir_at(m, r);
    if (n->type != T_INT || n->sumvars != 0 || (n->deps & (DEP_PRE | DEP_SUMVAR))) return 0;
    if (r == kv) {
        lin->c += sign;
        return 1;
    }
    if (!(n->deps & DEP_KV)) {
        if (lin->n == MAX_TERMS) return 0;
        lin->t[lin->n] = r;
        lin->s[lin->n++] = sign;
        return 1;
    }
    switch (n->op) {
    case IR_ADD: return linear(m, n->args[0], sign, kv, lin) && linear(m, n->args[1], sign, kv, lin);
    case IR_SUB: return linear(m, n->args[0], sign, kv, lin) && linear(m, n->args[1], -sign, kv, lin);
    case IR_NEG: return linear(m, n->args[0], -sign, kv, lin);
    default: return 0;
    }
}

typedef struct Band {
    IrModule *m;
    IrRef kv;
    IrRef lo, hi; /* IR_NONE until a conjunct bounds that side */
} Band;

/* sum_i sign * s_i * t_i + add, and (in *ok) whether every t_i is in range. */
static IrRef bound_of(Band *B, const Lin *lin, int sign, int64_t add, IrRef *ok) {
    IrModule *m = B->m;
    IrRef v = ir_int(m, add);
    *ok = ir_bool(m, 1);
    for (int i = 0; i < lin->n; i++) {
        IrRef t = lin->t[i];
        v = op2(m, sign * lin->s[i] > 0 ? IR_ADD : IR_SUB, T_INT, v, t);
        if (ir_at(m, t)->op == IR_VAR) continue; /* b, h, q, sizes: in [0, 2^40] by bind */
        /* one node per statement: argument order is unspecified in C, and the
         * IR's numbering (goldens) must not depend on the compiler */
        IrRef lo_limit = ir_int(m, -BAND_TERM_LIMIT);
        IrRef above = op2(m, IR_LE, T_BOOL, lo_limit, t);
        IrRef hi_limit = ir_int(m, BAND_TERM_LIMIT);
        IrRef in = op2(m, IR_AND, T_BOOL, above, op2(m, IR_LE, T_BOOL, t, hi_limit));
        *ok = op2(m, IR_AND, T_BOOL, *ok, in); /* true && in folds to in */
    }
    /* clamped into [-1, 2^41]; the neutral bound where a term is out of range */
    IrRef minus_one = ir_int(m, -1);
    v = op2(m, IR_MAX, T_INT, v, minus_one);
    IrRef key_limit = ir_int(m, BAND_KEY_LIMIT);
    v = op2(m, IR_MIN, T_INT, v, key_limit);
    return v;
}

/* The conjunct a (op) b, op one of LE, LT, EQ: tighten the band. */
static void conjunct(Band *B, IrOp op, IrRef a, IrRef b) {
    Lin lin = {0};
    if (a == IR_NONE || b == IR_NONE) return; /* a module out of memory */
    if (!linear(B->m, a, 1, B->kv, &lin) || !linear(B->m, b, -1, B->kv, &lin)) return;
    if (lin.c != 1 && lin.c != -1) return;
    IrModule *m = B->m;
    /* c*kv + S op 0 with S = sum s_i t_i: kv op' -c*S (c = 1: upper bound; c = -1: lower bound) */
    int upper = lin.c == 1;
    for (int side = 0; side < 2; side++) {
        int is_hi = side == 0 ? upper : !upper;
        if (side == 1 && op != IR_EQ) break;
        int64_t strict = op == IR_LT ? 1 : 0;
        IrRef ok;
        /* c = 1: kv <= -S - strict; c = -1: kv >= S + strict; for ==, both sides are that one value */
        IrRef v = bound_of(B, &lin, upper ? -1 : 1, upper ? -strict : strict, &ok);
        v = op3(m, IR_SELECT, T_INT, ok, v, ir_int(m, is_hi ? BAND_KEY_LIMIT : 0));
        IrRef *dst = is_hi ? &B->hi : &B->lo;
        *dst = *dst == IR_NONE ? v : op2(m, is_hi ? IR_MIN : IR_MAX, T_INT, *dst, v);
    }
}

/* The conjuncts of r, down to a depth that no written mask reaches (a longer
 * chain keeps its deeper conjuncts out of the band: still sound). */
static void walk(Band *B, IrRef r, int depth) {
    const IrNode *n = ir_at(B->m, r);
    if (depth > 256) return;
    if (n->op == IR_AND) {
        IrRef a = n->args[0], b = n->args[1]; /* the module may grow: read the operands first */
        walk(B, a, depth + 1);
        walk(B, b, depth + 1);
    } else if (n->op == IR_LE || n->op == IR_LT || n->op == IR_EQ) {
        IrOp op = n->op;
        IrRef a = n->args[0], b = n->args[1];
        if (ir_at(B->m, a)->type != T_INT || !(n->deps & DEP_KV)) return;
        const IrNode *na = ir_at(B->m, a);
        if (op != IR_EQ && na->op == IR_ABS && !(ir_at(B->m, b)->deps & DEP_KV)) {
            /* abs(x) <= r: x <= r and -r <= x (-r a term of its own, range-checked) */
            IrRef x = na->args[0], neg = ir_fold(B->m, IR_NEG, T_INT, 0, 1, &b);
            conjunct(B, op, x, b);
            conjunct(B, op, neg, x);
            return;
        }
        conjunct(B, op, a, b);
    }
}

int pass_band(IrModule *m, const IrFunc *f, IrRef *lo, IrRef *hi) {
    *lo = *hi = IR_NONE;
    if (f->keep == IR_NONE || ir_is_const(m, f->keep)) return 0;
    Band B = {m, ir_var(m, V_KV), IR_NONE, IR_NONE};
    walk(&B, f->keep, 0);
    if (m->failed || (B.lo == IR_NONE && B.hi == IR_NONE)) return 0;
    /* both sides, the missing one neutral: a backend reads two values */
    *lo = B.lo != IR_NONE ? B.lo : ir_int(m, 0);
    *hi = B.hi != IR_NONE ? B.hi : ir_int(m, BAND_KEY_LIMIT);
    return 1;
}
