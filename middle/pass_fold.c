/* pass_fold.c — constant folding and algebraic simplification.
 * Requires: an IrFunc.  Produces: equivalent roots where operations on
 * constants are computed (through ir_apply, the one definition of each
 * operation), identities removed (x+0, x*1, int x*0, !!x, true&&x,
 * select on a constant, select(c, x, x), x==x on ints), and the operands of
 * commutative operations put in a canonical order so that hash-consing
 * finds more common subexpressions; any(r < n) (a || b) is split so that a
 * per-row and a per-kv bounds check stop being per-element.  Float identities that would change
 * NaN, infinity or signed-zero results are left alone (x*0.0 stays). */
#include "ir_passes.h"

static int is_int(const IrModule *m, IrRef r, int64_t v) {
    const IrNode *n = ir_at(m, r);
    return n->op == IR_CONST && n->type == T_INT && n->c.i == v;
}

static int is_flt(const IrModule *m, IrRef r, double v) {
    const IrNode *n = ir_at(m, r);
    return n->op == IR_CONST && n->type == T_FLOAT && n->c.f == v;
}

static int is_zero(const IrModule *m, IrRef r) { return is_int(m, r, 0) || is_flt(m, r, 0.0); }
static int is_one(const IrModule *m, IrRef r) { return is_int(m, r, 1) || is_flt(m, r, 1.0); }

static int commutative(IrOp op) {
    return op == IR_ADD || op == IR_MUL || op == IR_EQ || op == IR_NE || op == IR_AND || op == IR_OR ||
           op == IR_MIN || op == IR_MAX;
}

static int foldable(IrOp op) {
    return op != IR_CONST && op != IR_VAR && op != IR_PARAM && op != IR_PRE && op != IR_SUMVAR && op != IR_LOAD &&
           op != IR_INBOUNDS && op != IR_SUM && op != IR_ANY;
}

static IrRef simplify(IrModule *m, IrRef old, const IrNode *n, const IrRef *a, void *ctx) {
    (void)old;
    (void)ctx;
    int all_const = n->nargs > 0;
    for (int i = 0; i < n->nargs; i++) all_const &= ir_is_const(m, a[i]);
    if (all_const && foldable(n->op)) {
        Const c[3];
        Type t[3];
        for (int i = 0; i < n->nargs; i++) {
            c[i] = ir_at(m, a[i])->c;
            t[i] = ir_at(m, a[i])->type;
        }
        return ir_node(m, IR_CONST, n->type, 0, ir_apply(n->op, n->type, n->aux, c, t), 0, NULL);
    }
    IrRef x = n->nargs > 0 ? a[0] : IR_NONE, y = n->nargs > 1 ? a[1] : IR_NONE;
    switch (n->op) {
    case IR_ADD:
        if (is_zero(m, x)) return y;
        if (is_zero(m, y)) return x;
        break;
    case IR_SUB:
        if (is_zero(m, y)) return x;
        if (x == y && n->type == T_INT) return ir_int(m, 0);
        break;
    case IR_MUL:
        if (is_one(m, x)) return y;
        if (is_one(m, y)) return x;
        if (n->type == T_INT && (is_int(m, x, 0) || is_int(m, y, 0))) return ir_int(m, 0);
        break;
    case IR_DIV:
        if (is_one(m, y)) return x;
        break;
    case IR_NEG:
        if (ir_at(m, x)->op == IR_NEG) return ir_at(m, x)->args[0];
        break;
    case IR_NOT:
        if (ir_at(m, x)->op == IR_NOT) return ir_at(m, x)->args[0];
        break;
    case IR_AND:
        if (ir_is_bool(m, x, 0) || ir_is_bool(m, y, 0)) return ir_bool(m, 0);
        if (ir_is_bool(m, x, 1)) return y;
        if (ir_is_bool(m, y, 1) || x == y) return x;
        /* x && (x && z) = x && z: `use causal; use sliding_window;` repeat kv <= q */
        if (ir_at(m, y)->op == IR_AND && (ir_at(m, y)->args[0] == x || ir_at(m, y)->args[1] == x)) return y;
        if (ir_at(m, x)->op == IR_AND && (ir_at(m, x)->args[0] == y || ir_at(m, x)->args[1] == y)) return x;
        break;
    case IR_OR:
        if (ir_is_bool(m, x, 1) || ir_is_bool(m, y, 1)) return ir_bool(m, 1);
        if (ir_is_bool(m, x, 0)) return y;
        if (ir_is_bool(m, y, 0) || x == y) return x;
        if (ir_at(m, y)->op == IR_OR && (ir_at(m, y)->args[0] == x || ir_at(m, y)->args[1] == x)) return y;
        if (ir_at(m, x)->op == IR_OR && (ir_at(m, x)->args[0] == y || ir_at(m, x)->args[1] == y)) return x;
        break;
    case IR_SELECT:
        if (ir_is_const(m, x)) return ir_at(m, x)->c.b ? a[1] : a[2];
        if (a[1] == a[2]) return a[1];
        if (n->type == T_BOOL && ir_is_bool(m, a[1], 1) && ir_is_bool(m, a[2], 0)) return x;
        if (n->type == T_BOOL && ir_is_bool(m, a[2], 0)) return ir_op2(m, IR_AND, T_BOOL, x, a[1]);
        break;
    case IR_EQ:
    case IR_LE:
        if (x == y && ir_at(m, x)->type != T_FLOAT) return ir_bool(m, 1);
        break;
    case IR_NE:
    case IR_LT:
        if (x == y && ir_at(m, x)->type != T_FLOAT) return ir_bool(m, 0);
        break;
    case IR_MIN:
    case IR_MAX:
        if (x == y) return x;
        break;
    case IR_ABS:
        if (ir_at(m, x)->op == IR_ABS) return x;
        break;
    case IR_SUM:
        if (ir_is_const(m, x) && ir_at(m, x)->c.i <= 0) return n->type == T_INT ? ir_int(m, 0) : ir_float(m, 0.0);
        break;
    case IR_ANY:
        if (ir_is_bool(m, y, 0) || (ir_is_const(m, x) && ir_at(m, x)->c.i <= 0)) return ir_bool(m, 0);
        if (ir_at(m, y)->op == IR_OR) {
            /* any(a || b) = any(a) || any(b): each side may then hoist to its own level */
            const IrNode *o = ir_at(m, y);
            IrRef l = ir_node(m, IR_ANY, T_BOOL, n->aux, n->c, 2, (IrRef[]){x, o->args[0]});
            IrRef r = ir_node(m, IR_ANY, T_BOOL, n->aux, n->c, 2, (IrRef[]){x, o->args[1]});
            return ir_op2(m, IR_OR, T_BOOL, l, r);
        }
        break;
    default: break;
    }
    if (commutative(n->op) && x > y) {
        IrRef swapped[2] = {y, x};
        return ir_rebuild(m, n, swapped);
    }
    return IR_NONE;
}

IrRef ir_fold(IrModule *m, IrOp op, Type type, int aux, int nargs, const IrRef *args) {
    for (int i = 0; i < nargs; i++)
        if (args[i] == IR_NONE) return IR_NONE;
    /* the node as it would be built, simplified before it is: no dead node is left behind */
    IrNode n = {.op = op, .type = type, .aux = aux, .nargs = nargs, .args = (IrRef *)args};
    IrRef r = simplify(m, IR_NONE, &n, args, NULL);
    return r != IR_NONE ? r : ir_node(m, op, type, aux, (Const){0}, nargs, args);
}

int pass_fold(IrModule *m, IrFunc *f) {
    /* one sweep folds bottom-up; a second catches what canonical order exposed */
    int changed = ir_rewrite(m, f, simplify, NULL);
    if (changed) changed += ir_rewrite(m, f, simplify, NULL);
    return changed;
}
