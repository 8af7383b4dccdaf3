/* derive.c — symbolic differentiation on the IR (spec 9.5).
 * Requires: an IrModule, a float root and the node to differentiate by (the
 * leaf IR_PRE, a float IR_LOAD, or an IR_SUM taken as an independent value).
 * Produces: the derivative as new nodes of the same module, each built
 * through ir_fold (pass_fold.c's rules), by reverse mode (sweep, below): one
 * adjoint per node, so a shared subexpression is visited once, and the
 * interpreter's reverse mode (runtime/interp_grad.c) is what it computes.
 *
 * The rules at points without a derivative are the spec's: floor, ceil, int,
 * sign and comparisons give 0, abs gives 0 at 0, min and max follow the
 * operand they choose with ties to the first (clamp is built as min(max(x,
 * lo), hi), so a tie goes to x); everywhere else PyTorch autograd's formulas
 * (pow's exponent derivative is 0 where base == 0 and exponent >= 0; its base
 * derivative 0 where exponent == 0).  A zero derivative is the constant 0.0
 * and is a strong zero (0 * inf is 0): like autograd, a term that does not
 * depend on the variable contributes nothing, whatever its value.
 * An operation without a rule fails the derivation with a message; it never
 * gives a silent 0. */
#include <stdlib.h>

#include "ir_passes.h"
#include "status.h"

/* ln 2 and 2 / sqrt(pi), to double precision */
#define LN2 0.69314718055994530942
#define TWO_OVER_SQRT_PI 1.12837916709551257390

typedef struct Deriv {
    IrModule *m;
    IrRef var;
    char *reads;  /* reads[i]: node i reads var (i <= root) */
    IrRef zero, one;
    attnc_status st;
    attnc_error *err;
} Deriv;

static int is_zero(const Deriv *dv, IrRef r) { return r == dv->zero; }

static IrRef op2(Deriv *dv, IrOp op, Type t, IrRef a, IrRef b) {
    IrRef args[2] = {a, b};
    return ir_fold(dv->m, op, t, 0, 2, args);
}
static IrRef op1(Deriv *dv, IrOp op, IrRef a) { return ir_fold(dv->m, op, T_FLOAT, 0, 1, &a); }
static IrRef call1(Deriv *dv, Fn fn, IrRef a) { return ir_fold(dv->m, IR_CALL, T_FLOAT, fn, 1, &a); }

/* Products and sums of derivatives, with the zero derivative absorbing. */
static IrRef dmul(Deriv *dv, IrRef a, IrRef b) {
    if (is_zero(dv, a) || is_zero(dv, b)) return dv->zero;
    return op2(dv, IR_MUL, T_FLOAT, a, b);
}
static IrRef dadd(Deriv *dv, IrRef a, IrRef b) {
    if (is_zero(dv, a)) return b;
    if (is_zero(dv, b)) return a;
    return op2(dv, IR_ADD, T_FLOAT, a, b);
}
static IrRef dneg(Deriv *dv, IrRef a) { return is_zero(dv, a) ? a : op1(dv, IR_NEG, a); }
static IrRef ddiv(Deriv *dv, IrRef a, IrRef b) { return is_zero(dv, a) ? a : op2(dv, IR_DIV, T_FLOAT, a, b); }

static IrRef fail(Deriv *dv, const char *what, IrRef r) {
    if (!dv->st)
        dv->st = set_error(dv->err, ATTNC_ERR_INTERNAL, "no derivative rule for %s (node %%%d); the backward cannot be built",
                           what, r);
    return IR_NONE;
}

/* Reverse mode: adj[i] is d root / d node i times the seed, accumulated from
 * node i's users (which are numbered above it) before node i is visited;
 * visiting it adds its operands' shares.  `?:`, min and max pass the whole
 * adjoint to the operand they chose, the other gets nothing (not adjoint
 * times 0, which is NaN for an infinite adjoint: spec 9.5 and PyTorch's
 * where); a sum's body gets the sum's adjoint in every iteration, so an
 * empty sum passes nothing on.  Before 2026-12-03 this was forward mode,
 * which multiplied sqrt's infinite derivative at 0 by a non-chosen branch's
 * or an empty sum's zero (tests/fuzz/findings/item12-grad-sqrt-*). */
typedef struct Sweep {
    IrRef *adj; /* [var .. top]: IR_NONE where nothing has flowed yet */
} Sweep;

static IrRef sweep(Deriv *dv, IrRef top, IrRef seed);

/* Whether operand x reads var, so that its share is worth building (a share built for nothing would be a dead
 * node of the module). */
static int wants(const Deriv *dv, IrRef x) {
    return !dv->st && x != IR_NONE && x >= dv->var && dv->reads[x] && ir_at(dv->m, x)->type == T_FLOAT;
}

/* Add c to operand x's adjoint, when x reads var. */
static void give(Deriv *dv, Sweep *sw, IrRef x, IrRef c) {
    if (c == IR_NONE || is_zero(dv, c) || !wants(dv, x)) return;
    IrRef *a = &sw->adj[x - dv->var];
    *a = *a == IR_NONE ? c : dadd(dv, *a, c);
}

static IrRef select3(Deriv *dv, IrRef c, IrRef t, IrRef e) {
    return ir_fold(dv->m, IR_SELECT, T_FLOAT, 0, 3, (IrRef[]){c, t, e});
}

/* The chosen operand of a `?:`, min or max (cond: the first is chosen) gets g, the other nothing. */
static void give_chosen(Deriv *dv, Sweep *sw, IrRef cond, IrRef first, IrRef second, IrRef g) {
    if (wants(dv, first)) give(dv, sw, first, select3(dv, cond, g, dv->zero));
    if (wants(dv, second)) give(dv, sw, second, select3(dv, cond, dv->zero, g));
}

/* pow(a, b) = r: d/da = b * pow(a, b - 1), 0 where b == 0; d/db = r * log(a), 0 where a == 0 and b >= 0. */
static void g_pow(Deriv *dv, Sweep *sw, IrRef r, IrRef a, IrRef b, IrRef g) {
    if (wants(dv, a)) {
        IrRef bm1 = op2(dv, IR_SUB, T_FLOAT, b, dv->one);
        IrRef args[2] = {a, bm1};
        IrRef p = ir_fold(dv->m, IR_CALL, T_FLOAT, FN_POW, 2, args);
        IrRef k = op2(dv, IR_MUL, T_FLOAT, b, p);
        IrRef b0 = op2(dv, IR_EQ, T_BOOL, b, dv->zero);
        give(dv, sw, a, dmul(dv, g, select3(dv, b0, dv->zero, k)));
    }
    if (wants(dv, b)) {
        IrRef l = call1(dv, FN_LOG, a);
        IrRef k = op2(dv, IR_MUL, T_FLOAT, r, l);
        IrRef a0 = op2(dv, IR_EQ, T_BOOL, a, dv->zero);
        IrRef bpos = op2(dv, IR_LE, T_BOOL, dv->zero, b);
        IrRef both = op2(dv, IR_AND, T_BOOL, a0, bpos);
        give(dv, sw, b, dmul(dv, g, select3(dv, both, dv->zero, k)));
    }
}

static int smooth_fn(int fn) {
    return fn == FN_EXP || fn == FN_EXP2 || fn == FN_LOG || fn == FN_LOG2 || fn == FN_SQRT || fn == FN_TANH ||
           fn == FN_SIGMOID || fn == FN_ERF || fn == FN_SIN || fn == FN_COS;
}

static void g_call(Deriv *dv, Sweep *sw, IrRef r, int fn, IrRef a, IrRef b, IrRef g) {
    if (fn == FN_FLOOR || fn == FN_CEIL || fn == FN_SIGN || fn == FN_INT) return;
    if (fn == FN_POW) {
        g_pow(dv, sw, r, a, b, g);
        return;
    }
    if (!smooth_fn(fn)) {
        fail(dv, fn_name((Fn)fn), r);
        return;
    }
    switch (fn) {
    case FN_EXP: give(dv, sw, a, dmul(dv, g, r)); break;
    case FN_EXP2: give(dv, sw, a, dmul(dv, g, op2(dv, IR_MUL, T_FLOAT, r, ir_float(dv->m, LN2)))); break;
    case FN_LOG: give(dv, sw, a, ddiv(dv, g, a)); break;
    case FN_LOG2: give(dv, sw, a, ddiv(dv, g, op2(dv, IR_MUL, T_FLOAT, a, ir_float(dv->m, LN2)))); break;
    case FN_SQRT: /* torch: grad / (2 * result) */
        give(dv, sw, a, ddiv(dv, g, op2(dv, IR_MUL, T_FLOAT, ir_float(dv->m, 2.0), r)));
        break;
    case FN_TANH: { /* 1 - tanh^2 */
        IrRef sq = op2(dv, IR_MUL, T_FLOAT, r, r);
        give(dv, sw, a, dmul(dv, g, op2(dv, IR_SUB, T_FLOAT, dv->one, sq)));
        break;
    }
    case FN_SIN: give(dv, sw, a, dmul(dv, g, call1(dv, FN_COS, a))); break;
    case FN_COS: give(dv, sw, a, dmul(dv, g, op1(dv, IR_NEG, call1(dv, FN_SIN, a)))); break;
    case FN_SIGMOID: { /* s * (1 - s) */
        IrRef c = op2(dv, IR_SUB, T_FLOAT, dv->one, r);
        give(dv, sw, a, dmul(dv, g, op2(dv, IR_MUL, T_FLOAT, r, c)));
        break;
    }
    default: { /* FN_ERF: 2 / sqrt(pi) * exp(-a^2) */
        IrRef sq = op2(dv, IR_MUL, T_FLOAT, a, a);
        IrRef e = call1(dv, FN_EXP, op1(dv, IR_NEG, sq));
        give(dv, sw, a, dmul(dv, g, op2(dv, IR_MUL, T_FLOAT, ir_float(dv->m, TWO_OVER_SQRT_PI), e)));
        break;
    }
    }
}

/* A sum over r of body: the sum over r of the body's derivative seeded by g,
 * when var is one value for every r (it does not read r); an empty sum
 * gives nothing. */
static IrRef g_sum(Deriv *dv, IrRef r, const IrNode *n, IrRef g) {
    unsigned own = 1u << (n->aux < 31 ? n->aux : 31);
    if (ir_at(dv->m, dv->var)->sumvars & own) {
        if (!dv->st)
            dv->st = set_error(dv->err, ATTNC_ERR_INTERNAL,
                               "node %%%d reads the variable of sum %%%d: its derivative is per iteration, not one node",
                               dv->var, r);
        return IR_NONE;
    }
    IrRef db = sweep(dv, n->args[1], g);
    if (db == IR_NONE || is_zero(dv, db)) return db;
    return ir_fold(dv->m, IR_SUM, T_FLOAT, n->aux, 2, (IrRef[]){n->args[0], db});
}

/* Node r's operands' shares of its adjoint g (a copy of the node: building moves the array); a sum passes its
 * share straight to var, which its body reaches per iteration. */
static void g_rule(Deriv *dv, Sweep *sw, IrRef r, IrNode n, IrRef g) {
    const IrRef *a = n.args;
    switch (n.op) {
    case IR_NEG: give(dv, sw, a[0], dneg(dv, g)); break;
    case IR_ADD: give(dv, sw, a[0], g), give(dv, sw, a[1], g); break;
    case IR_SUB:
        give(dv, sw, a[0], g);
        if (wants(dv, a[1])) give(dv, sw, a[1], dneg(dv, g));
        break;
    case IR_MUL:
        if (wants(dv, a[0])) give(dv, sw, a[0], dmul(dv, g, a[1]));
        if (wants(dv, a[1])) give(dv, sw, a[1], dmul(dv, g, a[0]));
        break;
    case IR_DIV: /* da / b - db * a / (b * b); g times 1 / b, which folds or is a row or call value when b is */
        if (wants(dv, a[0])) give(dv, sw, a[0], dmul(dv, g, op2(dv, IR_DIV, T_FLOAT, dv->one, a[1])));
        if (wants(dv, a[1])) {
            IrRef bb = op2(dv, IR_MUL, T_FLOAT, a[1], a[1]);
            give(dv, sw, a[1], dneg(dv, dmul(dv, g, op2(dv, IR_DIV, T_FLOAT, a[0], bb))));
        }
        break;
    case IR_MOD: /* floor mod, torch.remainder: da - db * floor(a / b) */
        give(dv, sw, a[0], g);
        if (wants(dv, a[1])) {
            IrRef k = call1(dv, FN_FLOOR, op2(dv, IR_DIV, T_FLOAT, a[0], a[1]));
            give(dv, sw, a[1], dneg(dv, dmul(dv, g, k)));
        }
        break;
    case IR_SELECT: give_chosen(dv, sw, a[0], a[1], a[2], g); break;
    case IR_ABS: give(dv, sw, a[0], dmul(dv, g, call1(dv, FN_SIGN, a[0]))); break; /* sign(a): 0 at 0 */
    case IR_MIN:
    case IR_MAX: /* the chosen operand, ties to the first */
        if (a[0] == a[1]) give(dv, sw, a[0], g);
        else
            give_chosen(dv, sw, n.op == IR_MIN ? op2(dv, IR_LE, T_BOOL, a[0], a[1]) : op2(dv, IR_LE, T_BOOL, a[1], a[0]),
                        a[0], a[1], g);
        break;
    case IR_CALL: g_call(dv, sw, r, n.aux, a[0], n.nargs > 1 ? a[1] : IR_NONE, g); break;
    case IR_SUM: give(dv, sw, dv->var, g_sum(dv, r, &n, g)); break;
    /* leaves other than var, and what only reads var through an int */
    case IR_CONST:
    case IR_PARAM:
    case IR_PRE:
    case IR_LOAD:
    case IR_TOFLOAT: break;
    default: fail(dv, ir_op_name(n.op), r);
    }
}

/* d top / d var times seed: the adjoints of the nodes top reaches, from top down to var. */
static IrRef sweep(Deriv *dv, IrRef top, IrRef seed) {
    if (dv->st) return IR_NONE;
    if (top < dv->var || !dv->reads[top] || ir_at(dv->m, top)->type != T_FLOAT || is_zero(dv, seed)) return dv->zero;
    Sweep sw = {malloc(sizeof(IrRef) * (size_t)(top - dv->var + 1))};
    if (!sw.adj) {
        dv->st = set_error(dv->err, ATTNC_ERR_NOMEM, "out of memory while differentiating");
        return IR_NONE;
    }
    for (IrRef i = dv->var; i <= top; i++) sw.adj[i - dv->var] = IR_NONE;
    sw.adj[top - dv->var] = seed;
    for (IrRef i = top; i > dv->var && !dv->st; i--) {
        IrRef g = sw.adj[i - dv->var];
        if (g == IR_NONE) continue;
        g_rule(dv, &sw, i, dv->m->nodes[i], g);
        if (dv->m->failed && !dv->st) dv->st = set_error(dv->err, ATTNC_ERR_NOMEM, "out of memory while differentiating");
    }
    IrRef out = sw.adj[0] == IR_NONE ? dv->zero : sw.adj[0];
    free(sw.adj);
    return dv->st ? IR_NONE : out;
}

attnc_status ir_derive(IrModule *m, IrRef root, IrRef var, IrRef *out, attnc_error *err) {
    *out = IR_NONE;
    if (root == IR_NONE || var == IR_NONE || ir_at(m, root)->type != T_FLOAT)
        return set_error(err, ATTNC_ERR_INTERNAL, "ir_derive: the root must be a float node");
    Deriv dv = {m, var, NULL, IR_NONE, IR_NONE, ATTNC_OK, err};
    dv.zero = ir_float(m, 0.0);
    dv.one = ir_float(m, 1.0);
    if (root < var) { /* operands are numbered below their users: root cannot read var */
        *out = dv.zero;
        return m->failed ? set_error(err, ATTNC_ERR_NOMEM, "out of memory while differentiating") : ATTNC_OK;
    }
    size_t n = (size_t)root + 1;
    dv.reads = calloc(n, 1);
    if (!dv.reads) return set_error(err, ATTNC_ERR_NOMEM, "out of memory while differentiating");
    /* which nodes read var: one upward sweep, operands first */
    for (IrRef i = var; i <= root; i++) {
        const IrNode *nd = ir_at(m, i);
        dv.reads[i] = i == var;
        for (int k = 0; k < nd->nargs && !dv.reads[i]; k++) dv.reads[i] = nd->args[k] >= var && dv.reads[nd->args[k]];
    }
    IrRef r = sweep(&dv, root, dv.one);
    if (!dv.st && m->failed) dv.st = set_error(err, ATTNC_ERR_NOMEM, "out of memory while differentiating");
    free(dv.reads);
    if (!dv.st) *out = r;
    return dv.st;
}
