/* ir_build.c — checked attention -> expression IR.
 * Requires: a checked Attention (sema.c) with no errors.
 * Produces: an IrFunc whose roots are `keep` (the AND of the masks),
 * `scale`, `bias` (the sum of the biases), `score` (the score clauses in
 * order, applied to IR_PRE = scale * dot + bias), `weight` and `fault`, and
 * version 2's rotary arguments, positions and sink with their faults.  Lets are inlined (hash-consing keeps them shared),
 * `use`s are already flat, `a > b` becomes `b < a`, clamp becomes min/max.
 * `fault` follows spec 5.3 exactly: masks in order up to the first false
 * one, then biases, score clauses and weight; &&, || and ?: only on the
 * deciding side; a sum's body for every r. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"
#include "ir_passes.h"

typedef struct Builder {
    IrModule *m;
    IrRef false_ref; /* made once, so no_fault() never creates a node inside an argument list */
    IrRef score;    /* what X_SCORE means here */
    int sum_base;   /* levels of enclosing sums outside the current let */
    int sum_depth;  /* levels open inside it */
} Builder;

/* A value and the condition under which evaluating it raises an error. */
typedef struct Val {
    IrRef v, fault;
} Val;

static IrRef no_fault(Builder *bd) { return bd->false_ref; }

/* A value and its fault, made in this order (a compound literal would leave the order to the compiler). */
static Val val(IrRef v, IrRef fault) { return (Val){v, fault}; }

static IrRef or2(Builder *bd, IrRef a, IrRef b) {
    if (ir_is_bool(bd->m, a, 0)) return b;
    if (ir_is_bool(bd->m, b, 0)) return a;
    return ir_op2(bd->m, IR_OR, T_BOOL, a, b);
}

static IrRef and2(Builder *bd, IrRef a, IrRef b) {
    if (ir_is_bool(bd->m, a, 0) || ir_is_bool(bd->m, b, 0)) return ir_bool(bd->m, 0);
    if (ir_is_bool(bd->m, a, 1)) return b;
    if (ir_is_bool(bd->m, b, 1)) return a;
    return ir_op2(bd->m, IR_AND, T_BOOL, a, b);
}

static Val build(Builder *bd, const TExpr *e);

static IrOp binary_op(XKind k) {
    switch (k) {
    case X_ADD: return IR_ADD;
    case X_SUB: return IR_SUB;
    case X_MUL: return IR_MUL;
    case X_DIV: return IR_DIV;
    case X_MOD: return IR_MOD;
    case X_LT: case X_GT: return IR_LT;
    case X_LE: case X_GE: return IR_LE;
    case X_EQ: return IR_EQ;
    default: return IR_NE;
    }
}

static Val build_binary(Builder *bd, const TExpr *e) {
    IrModule *m = bd->m;
    Val a = build(bd, e->args[0]), b = build(bd, e->args[1]);
    if (e->kind == X_AND) {
        IrRef v = and2(bd, a.v, b.v);
        IrRef guarded = and2(bd, a.v, b.fault);
        return val(v, or2(bd, a.fault, guarded));
    }
    if (e->kind == X_OR) {
        IrRef v = ir_is_bool(m, a.v, 1) || ir_is_bool(m, b.v, 1) ? ir_bool(m, 1)
                  : ir_is_bool(m, a.v, 0)                        ? b.v
                  : ir_is_bool(m, b.v, 0)                        ? a.v
                                                                 : ir_op2(m, IR_OR, T_BOOL, a.v, b.v);
        IrRef not_a = ir_op1(m, IR_NOT, T_BOOL, a.v);
        IrRef guarded = and2(bd, not_a, b.fault);
        return val(v, or2(bd, a.fault, guarded));
    }
    IrRef fault = or2(bd, a.fault, b.fault);
    Type t = e->args[0]->type;
    if ((e->kind == X_DIV || e->kind == X_MOD) && t == T_INT)
        fault = or2(bd, fault, ir_op2(m, IR_EQ, T_BOOL, b.v, ir_int(m, 0)));
    IrRef x = a.v, y = b.v;
    if (e->kind == X_GT || e->kind == X_GE) {
        x = b.v;
        y = a.v;
    }
    return (Val){ir_op2(m, binary_op(e->kind), e->type, x, y), fault};
}

static Val build_call(Builder *bd, const TExpr *e) {
    IrModule *m = bd->m;
    Val a[3];
    IrRef fault = no_fault(bd);
    for (int i = 0; i < e->nargs; i++) {
        a[i] = build(bd, e->args[i]);
        fault = or2(bd, fault, a[i].fault);
    }
    Type t = e->type;
    switch (e->fn) {
    case FN_ABS: return (Val){ir_op1(m, IR_ABS, t, a[0].v), fault};
    case FN_MIN: return (Val){ir_op2(m, IR_MIN, t, a[0].v, a[1].v), fault};
    case FN_MAX: return (Val){ir_op2(m, IR_MAX, t, a[0].v, a[1].v), fault};
    case FN_CLAMP: return (Val){ir_op2(m, IR_MIN, t, ir_op2(m, IR_MAX, t, a[0].v, a[1].v), a[2].v), fault};
    case FN_FLOAT: return (Val){e->args[0]->type == T_INT ? ir_op1(m, IR_TOFLOAT, T_FLOAT, a[0].v) : a[0].v, fault};
    case FN_INT:
        if (e->args[0]->type == T_INT) return (Val){a[0].v, fault};
        break;
    default: break;
    }
    IrRef args[2] = {a[0].v, e->nargs > 1 ? a[1].v : IR_NONE};
    return (Val){ir_node(m, IR_CALL, t, e->fn, (Const){0}, e->nargs, args), fault};
}

static Val build_index(Builder *bd, const TExpr *e) {
    IrModule *m = bd->m;
    IrRef idx[ATTNC_MAX_RANK];
    IrRef fault = no_fault(bd);
    for (int i = 0; i < e->nargs; i++) {
        Val v = build(bd, e->args[i]);
        idx[i] = v.v;
        fault = or2(bd, fault, v.fault);
    }
    int t = decl_canon(e->decl)->index;
    IrRef in = ir_node(m, IR_INBOUNDS, T_BOOL, t, (Const){0}, e->nargs, idx);
    IrRef load = ir_node(m, IR_LOAD, e->type, t, (Const){0}, e->nargs, idx);
    IrRef out = ir_op1(m, IR_NOT, T_BOOL, in);
    return val(load, or2(bd, fault, out));
}

static Val build_sum(Builder *bd, const TExpr *e) {
    IrModule *m = bd->m;
    Val n = build(bd, e->args[0]);
    int level = bd->sum_base + e->level;
    bd->sum_depth++;
    Val body = build(bd, e->args[1]);
    bd->sum_depth--;
    IrRef sum = ir_node(m, IR_SUM, e->type, level, (Const){0}, 2, (IrRef[]){n.v, body.v});
    IrRef fault = n.fault;
    if (!ir_is_bool(m, body.fault, 0))
        fault = or2(bd, fault, ir_node(m, IR_ANY, T_BOOL, level, (Const){0}, 2, (IrRef[]){n.v, body.fault}));
    return (Val){sum, fault};
}

static Val build(Builder *bd, const TExpr *e) {
    IrModule *m = bd->m;
    switch (e->kind) {
    case X_CONST: return (Val){ir_node(m, IR_CONST, e->type, 0, e->c, 0, NULL), no_fault(bd)};
    case X_VAR: return (Val){ir_var(m, e->var), no_fault(bd)};
    case X_SCORE: return (Val){bd->score, no_fault(bd)};
    case X_PARAM:
        return (Val){ir_node(m, IR_PARAM, e->type, decl_canon(e->decl)->index, (Const){0}, 0, NULL), no_fault(bd)};
    case X_LET: {
        /* a let's sums number their levels from 0: shift them past the open ones */
        int base = bd->sum_base, depth = bd->sum_depth;
        bd->sum_base += bd->sum_depth;
        bd->sum_depth = 0;
        Val v = build(bd, e->decl->init);
        bd->sum_base = base;
        bd->sum_depth = depth;
        return v;
    }
    case X_SUMVAR:
        return (Val){ir_node(m, IR_SUMVAR, T_INT, bd->sum_base + e->level, (Const){0}, 0, NULL), no_fault(bd)};
    case X_TOFLOAT: {
        Val a = build(bd, e->args[0]);
        return (Val){ir_op1(m, IR_TOFLOAT, T_FLOAT, a.v), a.fault};
    }
    case X_NEG:
    case X_NOT: {
        Val a = build(bd, e->args[0]);
        return (Val){ir_op1(m, e->kind == X_NEG ? IR_NEG : IR_NOT, e->type, a.v), a.fault};
    }
    case X_COND: {
        Val c = build(bd, e->args[0]), a = build(bd, e->args[1]), b = build(bd, e->args[2]);
        IrRef branch_fault = ir_is_bool(m, a.fault, 0) && ir_is_bool(m, b.fault, 0)
                                 ? no_fault(bd)
                                 : ir_op3(m, IR_SELECT, T_BOOL, c.v, a.fault, b.fault);
        IrRef v = ir_op3(m, IR_SELECT, e->type, c.v, a.v, b.v);
        return val(v, or2(bd, c.fault, branch_fault));
    }
    case X_CALL: return build_call(bd, e);
    case X_INDEX: return build_index(bd, e);
    case X_SUM: return build_sum(bd, e);
    default: return build_binary(bd, e);
    }
}

/* e (or, when NULL, its default `dflt`) as a root and its fault root. */
static void build_root(Builder *bd, const TExpr *e, IrRef dflt, IrRef *value, IrRef *fault) {
    Val v = e ? build(bd, e) : val(dflt, no_fault(bd));
    *value = v.v;
    *fault = v.fault;
}

/* The roots of version 2's rotary and sink (spec 9.3, 9.4), IR_NONE without them. */
static void build_v2(Builder *bd, const Attention *a, IrFunc *f) {
    IrModule *m = bd->m;
    f->rope_dims = f->rope_base = f->rope_interleaved = f->rope_fault = IR_NONE;
    f->qpos = f->qpos_fault = f->kvpos = f->kvpos_fault = f->sink = f->sink_fault = IR_NONE;
    const Rotary *r = a->rotary;
    if (r) {
        IrRef dims_fault, base_fault, inter_fault;
        build_root(bd, r->dims, ir_var(m, V_SIZE_D), &f->rope_dims, &dims_fault);
        build_root(bd, r->base, ir_float(m, 10000.0), &f->rope_base, &base_fault);
        build_root(bd, r->interleaved, ir_bool(m, 0), &f->rope_interleaved, &inter_fault);
        f->rope_fault = or2(bd, dims_fault, or2(bd, base_fault, inter_fault));
        build_root(bd, r->qpos, ir_var(m, V_Q), &f->qpos, &f->qpos_fault);
        build_root(bd, r->kvpos, ir_var(m, V_KV), &f->kvpos, &f->kvpos_fault);
    }
    if (a->sink) build_root(bd, a->sink, IR_NONE, &f->sink, &f->sink_fault);
}

/* Build the roots of `a`; NULL when out of memory. */
IrFunc *ir_build(IrModule *m, const Attention *a) {
    IrFunc *f = arena_alloc(m->arena, sizeof *f);
    if (!f) return NULL;
    Builder bd = {m, ir_bool(m, 0), IR_NONE, 0, 0};
    f->weight = f->lse_offset = IR_NONE;

    /* masks in order, each evaluated only while the previous ones hold */
    IrRef keep = ir_bool(m, 1), fault = ir_bool(m, 0);
    for (int i = 0; i < a->nmasks; i++) {
        Val v = build(&bd, a->masks[i]);
        fault = or2(&bd, fault, and2(&bd, keep, v.fault));
        keep = and2(&bd, keep, v.v);
    }
    IrRef kept_fault = ir_bool(m, 0);

    IrRef scale = a->scale ? build(&bd, a->scale).v : IR_NONE;
    if (scale == IR_NONE) {
        /* one node per statement: argument evaluation order would make the numbering compiler-specific */
        IrRef d = ir_op1(m, IR_TOFLOAT, T_FLOAT, ir_var(m, V_SIZE_D));
        IrRef one = ir_float(m, 1.0);
        IrRef root = ir_node(m, IR_CALL, T_FLOAT, FN_SQRT, (Const){0}, 1, &d);
        scale = ir_op2(m, IR_DIV, T_FLOAT, one, root);
    }
    IrRef bias = ir_float(m, 0.0);
    for (int i = 0; i < a->nbiases; i++) {
        Val v = build(&bd, a->biases[i]);
        kept_fault = or2(&bd, kept_fault, v.fault);
        bias = i == 0 ? v.v : ir_op2(m, IR_ADD, T_FLOAT, bias, v.v);
    }
    IrRef s = ir_node(m, IR_PRE, T_FLOAT, 0, (Const){0}, 0, NULL);
    for (int i = 0; i < a->nscores; i++) {
        bd.score = s;
        Val v = build(&bd, a->scores[i]);
        kept_fault = or2(&bd, kept_fault, v.fault);
        s = v.v;
    }
    if (a->weight) {
        bd.score = s;
        Val v = build(&bd, a->weight);
        kept_fault = or2(&bd, kept_fault, v.fault);
        f->weight = v.v;
    }
    f->keep = keep;
    f->scale = scale;
    f->bias = bias;
    f->score = s;
    f->fault = or2(&bd, fault, and2(&bd, keep, kept_fault));
    build_v2(&bd, a, f);
    return m->failed ? NULL : f;
}
