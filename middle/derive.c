/* derive.c — symbolic differentiation on the IR (spec 9.5).
 * Requires: an IrModule, a float root and the node to differentiate by (the
 * leaf IR_PRE, a float IR_LOAD, or an IR_SUM taken as an independent value).
 * Produces: the derivative as new nodes of the same module, each built
 * through ir_fold (pass_fold.c's rules), memoised per call so a shared
 * subexpression is differentiated once.
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
    IrRef *memo;  /* derivative of node i, IR_NONE until computed */
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
static IrRef dsub(Deriv *dv, IrRef a, IrRef b) {
    if (is_zero(dv, b)) return a;
    if (is_zero(dv, a)) return dneg(dv, b);
    return op2(dv, IR_SUB, T_FLOAT, a, b);
}
static IrRef ddiv(Deriv *dv, IrRef a, IrRef b) { return is_zero(dv, a) ? a : op2(dv, IR_DIV, T_FLOAT, a, b); }

static IrRef fail(Deriv *dv, const char *what, IrRef r) {
    if (!dv->st)
        dv->st = set_error(dv->err, ATTNC_ERR_INTERNAL, "no derivative rule for %s (node %%%d); the backward cannot be built",
                           what, r);
    return IR_NONE;
}

static IrRef d(Deriv *dv, IrRef r);

/* pow(a, b) = r: d/da = b * pow(a, b - 1), 0 where b == 0; d/db = r * log(a), 0 where a == 0 and b >= 0. */
static IrRef d_pow(Deriv *dv, IrRef r, IrRef a, IrRef b) {
    IrRef da = d(dv, a);
    IrRef db = d(dv, b);
    IrRef by_a = dv->zero, by_b = dv->zero;
    if (!is_zero(dv, da)) {
        IrRef bm1 = op2(dv, IR_SUB, T_FLOAT, b, dv->one);
        IrRef args[2] = {a, bm1};
        IrRef p = ir_fold(dv->m, IR_CALL, T_FLOAT, FN_POW, 2, args);
        IrRef k = op2(dv, IR_MUL, T_FLOAT, b, p);
        IrRef b0 = op2(dv, IR_EQ, T_BOOL, b, dv->zero);
        IrRef sel = ir_fold(dv->m, IR_SELECT, T_FLOAT, 0, 3, (IrRef[]){b0, dv->zero, k});
        by_a = dmul(dv, da, sel);
    }
    if (!is_zero(dv, db)) {
        IrRef l = call1(dv, FN_LOG, a);
        IrRef k = op2(dv, IR_MUL, T_FLOAT, r, l);
        IrRef a0 = op2(dv, IR_EQ, T_BOOL, a, dv->zero);
        IrRef bpos = op2(dv, IR_LE, T_BOOL, dv->zero, b);
        IrRef both = op2(dv, IR_AND, T_BOOL, a0, bpos);
        IrRef sel = ir_fold(dv->m, IR_SELECT, T_FLOAT, 0, 3, (IrRef[]){both, dv->zero, k});
        by_b = dmul(dv, db, sel);
    }
    return dadd(dv, by_a, by_b);
}

static int smooth_fn(int fn) {
    return fn == FN_EXP || fn == FN_EXP2 || fn == FN_LOG || fn == FN_LOG2 || fn == FN_SQRT || fn == FN_TANH ||
           fn == FN_SIGMOID || fn == FN_ERF || fn == FN_SIN || fn == FN_COS;
}

static IrRef d_call(Deriv *dv, IrRef r, int fn, IrRef a, IrRef b) {
    if (fn == FN_FLOOR || fn == FN_CEIL || fn == FN_SIGN || fn == FN_INT) return dv->zero;
    if (fn == FN_POW) return d_pow(dv, r, a, b);
    if (!smooth_fn(fn)) return fail(dv, fn_name((Fn)fn), r);
    IrRef da = d(dv, a);
    if (is_zero(dv, da)) return da;
    switch (fn) {
    case FN_EXP: return dmul(dv, da, r);
    case FN_EXP2: {
        IrRef ln2 = ir_float(dv->m, LN2);
        IrRef k = op2(dv, IR_MUL, T_FLOAT, r, ln2);
        return dmul(dv, da, k);
    }
    case FN_LOG: return ddiv(dv, da, a);
    case FN_LOG2: {
        IrRef ln2 = ir_float(dv->m, LN2);
        IrRef k = op2(dv, IR_MUL, T_FLOAT, a, ln2);
        return ddiv(dv, da, k);
    }
    case FN_SQRT: { /* torch: grad / (2 * result) */
        IrRef two = ir_float(dv->m, 2.0);
        IrRef k = op2(dv, IR_MUL, T_FLOAT, two, r);
        return ddiv(dv, da, k);
    }
    case FN_TANH: { /* 1 - tanh^2 */
        IrRef sq = op2(dv, IR_MUL, T_FLOAT, r, r);
        IrRef k = op2(dv, IR_SUB, T_FLOAT, dv->one, sq);
        return dmul(dv, da, k);
    }
    case FN_SIN: return dmul(dv, da, call1(dv, FN_COS, a));
    case FN_COS: return dmul(dv, da, op1(dv, IR_NEG, call1(dv, FN_SIN, a)));
    case FN_SIGMOID: { /* s * (1 - s) */
        IrRef c = op2(dv, IR_SUB, T_FLOAT, dv->one, r);
        IrRef k = op2(dv, IR_MUL, T_FLOAT, r, c);
        return dmul(dv, da, k);
    }
    default: { /* FN_ERF: 2 / sqrt(pi) * exp(-a^2) */
        IrRef sq = op2(dv, IR_MUL, T_FLOAT, a, a);
        IrRef neg = op1(dv, IR_NEG, sq);
        IrRef e = call1(dv, FN_EXP, neg);
        IrRef c = ir_float(dv->m, TWO_OVER_SQRT_PI);
        IrRef k = op2(dv, IR_MUL, T_FLOAT, c, e);
        return dmul(dv, da, k);
    }
    }
}

/* min and max: the derivative of the operand chosen, ties to the first. */
static IrRef d_minmax(Deriv *dv, IrOp op, IrRef a, IrRef b) {
    IrRef da = d(dv, a);
    IrRef db = d(dv, b);
    if (da == db) return da;
    IrRef first = op == IR_MIN ? op2(dv, IR_LE, T_BOOL, a, b) : op2(dv, IR_LE, T_BOOL, b, a);
    return ir_fold(dv->m, IR_SELECT, T_FLOAT, 0, 3, (IrRef[]){first, da, db});
}

/* A sum over r of body: the sum of the body's derivatives, when var is one
 * value for every r (it does not read r). */
static IrRef d_sum(Deriv *dv, IrRef r, const IrNode *n) {
    unsigned own = 1u << (n->aux < 31 ? n->aux : 31);
    if (ir_at(dv->m, dv->var)->sumvars & own) {
        if (!dv->st)
            dv->st = set_error(dv->err, ATTNC_ERR_INTERNAL,
                               "node %%%d reads the variable of sum %%%d: its derivative is per iteration, not one node",
                               dv->var, r);
        return IR_NONE;
    }
    IrRef db = d(dv, n->args[1]);
    if (is_zero(dv, db)) return db;
    return ir_fold(dv->m, IR_SUM, T_FLOAT, n->aux, 2, (IrRef[]){n->args[0], db});
}

/* The derivative of a float node that reads var, from its operands' (a copy of the node: building moves the array). */
static IrRef d_rule(Deriv *dv, IrRef r, IrNode n) {
    const IrRef *a = n.args;
    switch (n.op) {
    case IR_NEG: return dneg(dv, d(dv, a[0]));
    case IR_ADD:
    case IR_SUB: {
        IrRef da = d(dv, a[0]);
        IrRef db = d(dv, a[1]);
        return n.op == IR_ADD ? dadd(dv, da, db) : dsub(dv, da, db);
    }
    case IR_MUL: {
        IrRef da = d(dv, a[0]);
        IrRef db = d(dv, a[1]);
        IrRef t1 = dmul(dv, da, a[1]);
        IrRef t2 = dmul(dv, a[0], db);
        return dadd(dv, t1, t2);
    }
    case IR_DIV: { /* da / b - db * a / (b * b) */
        IrRef da = d(dv, a[0]);
        IrRef db = d(dv, a[1]);
        IrRef t1 = ddiv(dv, da, a[1]);
        if (is_zero(dv, db)) return t1;
        IrRef bb = op2(dv, IR_MUL, T_FLOAT, a[1], a[1]);
        IrRef k = op2(dv, IR_DIV, T_FLOAT, a[0], bb);
        IrRef t2 = dmul(dv, db, k);
        return dsub(dv, t1, t2);
    }
    case IR_MOD: { /* floor mod, torch.remainder: da - db * floor(a / b) */
        IrRef da = d(dv, a[0]);
        IrRef db = d(dv, a[1]);
        if (is_zero(dv, db)) return da;
        IrRef ratio = op2(dv, IR_DIV, T_FLOAT, a[0], a[1]);
        IrRef k = call1(dv, FN_FLOOR, ratio);
        IrRef t2 = dmul(dv, db, k);
        return dsub(dv, da, t2);
    }
    case IR_SELECT: {
        IrRef dt = d(dv, a[1]);
        IrRef de = d(dv, a[2]);
        return ir_fold(dv->m, IR_SELECT, T_FLOAT, 0, 3, (IrRef[]){a[0], dt, de});
    }
    case IR_ABS: { /* sign(a), which is 0 at 0 */
        IrRef da = d(dv, a[0]);
        if (is_zero(dv, da)) return da;
        IrRef s = call1(dv, FN_SIGN, a[0]);
        return dmul(dv, da, s);
    }
    case IR_MIN:
    case IR_MAX: return d_minmax(dv, n.op, a[0], a[1]);
    case IR_CALL: return d_call(dv, r, n.aux, a[0], n.nargs > 1 ? a[1] : IR_NONE);
    case IR_SUM: return d_sum(dv, r, &n);
    /* leaves other than var, and what only reads var through an int */
    case IR_CONST:
    case IR_PARAM:
    case IR_PRE:
    case IR_LOAD:
    case IR_TOFLOAT: return dv->zero;
    default: return fail(dv, ir_op_name(n.op), r);
    }
}

static IrRef d(Deriv *dv, IrRef r) {
    if (dv->st || r == IR_NONE) return IR_NONE;
    if (r == dv->var) return dv->one;
    if (r > dv->var && dv->memo[r] != IR_NONE) return dv->memo[r];
    if (r < dv->var || !dv->reads[r] || ir_at(dv->m, r)->type != T_FLOAT) return dv->zero;
    IrRef out = d_rule(dv, r, dv->m->nodes[r]);
    if (dv->m->failed && !dv->st) dv->st = set_error(dv->err, ATTNC_ERR_NOMEM, "out of memory while differentiating");
    if (out == IR_NONE && !dv->st) dv->st = set_error(dv->err, ATTNC_ERR_INTERNAL, "derivative of node %%%d failed", r);
    dv->memo[r] = out;
    return out;
}

attnc_status ir_derive(IrModule *m, IrRef root, IrRef var, IrRef *out, attnc_error *err) {
    *out = IR_NONE;
    if (root == IR_NONE || var == IR_NONE || ir_at(m, root)->type != T_FLOAT)
        return set_error(err, ATTNC_ERR_INTERNAL, "ir_derive: the root must be a float node");
    Deriv dv = {m, var, NULL, NULL, IR_NONE, IR_NONE, ATTNC_OK, err};
    dv.zero = ir_float(m, 0.0);
    dv.one = ir_float(m, 1.0);
    if (root < var) { /* operands are numbered below their users: root cannot read var */
        *out = dv.zero;
        return m->failed ? set_error(err, ATTNC_ERR_NOMEM, "out of memory while differentiating") : ATTNC_OK;
    }
    size_t n = (size_t)root + 1;
    dv.reads = calloc(n, 1);
    dv.memo = malloc(sizeof(IrRef) * n);
    if (!dv.reads || !dv.memo) {
        free(dv.reads);
        free(dv.memo);
        return set_error(err, ATTNC_ERR_NOMEM, "out of memory while differentiating");
    }
    /* which nodes read var: one upward sweep, operands first */
    for (IrRef i = var; i <= root; i++) {
        const IrNode *nd = ir_at(m, i);
        dv.reads[i] = i == var;
        for (int k = 0; k < nd->nargs && !dv.reads[i]; k++) dv.reads[i] = nd->args[k] >= var && dv.reads[nd->args[k]];
        dv.memo[i] = IR_NONE;
    }
    IrRef r = d(&dv, root);
    if (!dv.st && m->failed) dv.st = set_error(err, ATTNC_ERR_NOMEM, "out of memory while differentiating");
    free(dv.reads);
    free(dv.memo);
    if (!dv.st) *out = r;
    return dv.st;
}
