/* sema.c — name resolution, types and clause rules (spec sections 3–6).
 * Requires: AstFiles for the spec and the prelude.
 * Produces: one checked Attention per attention of the file: typed trees
 * with explicit int->float promotions, `use`s flattened in place with their
 * bound params turned into lets, equal declarations merged (Decl.canon).
 * Every error found is reported; checking goes on after one. */
#include "sema.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

enum {
    /* Every walker of expressions (this checker, IR building, the
     * interpreter, the IR evaluator, tile intervals, the C and LLVM
     * emitters) recurses once per level, and a left-associated chain
     * `a + b + c + ...` has as many levels as terms.  The limit lets
     * generated specs chain 1,000 terms and keeps the deepest walk well
     * inside the default 8 MiB stack in every build: 2,000-term chains on
     * every backend took under 3 MiB optimised but 5 to over 8 MiB in the
     * Debug ASan build (its frames are several times larger; CI overflowed
     * there), so the limit is half that.  tests/test_call_edges.c runs
     * 1,000-term chains under `ulimit -s 8192`. */
    MAX_AST_DEPTH = SEMA_MAX_EVAL_DEPTH,
    MAX_EVAL_DEPTH = SEMA_MAX_EVAL_DEPTH, /* with lets expanded: the same walkers */
    MAX_TENSOR_RANK = 8,
};
static const int64_t MAX_EXPANDED_SIZE = 1000000;

/* ---- names ------------------------------------------------------------ */

static const char *const var_names[V_COUNT] = {"b", "h", "q", "kv", "hk", "B", "H", "Hkv", "Lq", "Lk", "D", "Dv"};

typedef enum FnResult { R_LIKE_ARGS, R_FLOAT, R_INT } FnResult;
static const struct {
    const char *name;
    int arity;
    FnResult result;
} fns[FN_COUNT] = {
    [FN_ABS] = {"abs", 1, R_LIKE_ARGS},     [FN_MIN] = {"min", 2, R_LIKE_ARGS},
    [FN_MAX] = {"max", 2, R_LIKE_ARGS},     [FN_CLAMP] = {"clamp", 3, R_LIKE_ARGS},
    [FN_EXP] = {"exp", 1, R_FLOAT},         [FN_EXP2] = {"exp2", 1, R_FLOAT},
    [FN_LOG] = {"log", 1, R_FLOAT},         [FN_LOG2] = {"log2", 1, R_FLOAT},
    [FN_SQRT] = {"sqrt", 1, R_FLOAT},       [FN_TANH] = {"tanh", 1, R_FLOAT},
    [FN_SIGMOID] = {"sigmoid", 1, R_FLOAT}, [FN_ERF] = {"erf", 1, R_FLOAT},
    [FN_POW] = {"pow", 2, R_FLOAT},         [FN_FLOOR] = {"floor", 1, R_FLOAT},
    [FN_CEIL] = {"ceil", 1, R_FLOAT},       [FN_FLOAT] = {"float", 1, R_FLOAT},
    [FN_INT] = {"int", 1, R_INT},           [FN_SIGN] = {"sign", 1, R_FLOAT},
};

const char *type_name(Type t) { return t == T_INT ? "int" : t == T_FLOAT ? "float" : "bool"; }
const char *fn_name(Fn f) { return f < FN_COUNT ? fns[f].name : "?"; }
const char *builtin_var_name(int v) { return v >= 0 && v < V_COUNT ? var_names[v] : "?"; }

static int find_var(const char *name) {
    for (int v = 0; v < V_COUNT; v++)
        if (strcmp(var_names[v], name) == 0) return v;
    return -1;
}

static int find_fn(const char *name) {
    for (int f = 0; f < FN_COUNT; f++)
        if (strcmp(fns[f].name, name) == 0) return f;
    return -1;
}

static int is_builtin_name(const char *name) { return find_var(name) >= 0 || find_fn(name) >= 0; }

static const char *decl_kind_name(const Decl *d) {
    return d->kind == D_PARAM || d->bound ? "param" : d->kind == D_TENSOR ? "tensor" : "let";
}

/* ---- state ------------------------------------------------------------ */

typedef struct Sema {
    Arena *arena;
    Diag *diag;
    AstFile *file, *prelude;
    PtrVec in_progress; /* AstAttention* being checked: `use` cycles */
} Sema;

/* One name in an attention's scope. */
typedef struct Entry {
    Decl *decl;
    const char *via; /* NULL: declared here; else the attention whose `use` brought it */
} Entry;

typedef struct SumBinder {
    const char *name;
    int level;
    struct SumBinder *outer;
} SumBinder;

/* Bindings of a `use`, checked in the user's scope. */
typedef struct Binding {
    const char *name;
    Span span;
    TExpr *value;
    int used;
} Binding;

/* An attention being checked: its scope and the clauses gathered so far. */
typedef struct Scope {
    AstAttention *ast;
    PtrVec entries; /* Entry*, one per name */
    PtrVec masks, biases, scores;
    TExpr *scale, *weight;
    Span scale_at, weight_at;
    Binding *binds;
    int nbinds;
    /* while checking one expression: */
    SumBinder *sums;
    int sum_level;
    int score_ok;
} Scope;

/* ---- tree construction ------------------------------------------------ */

static TExpr *node(Sema *s, XKind kind, Type type, Span span, int nargs) {
    TExpr *e = arena_alloc(s->arena, sizeof *e);
    if (!e) return NULL;
    e->kind = kind;
    e->type = type;
    e->span = span;
    e->depth = 1;
    e->size = 1;
    if (nargs) {
        e->args = arena_alloc(s->arena, sizeof(TExpr *) * (size_t)nargs);
        if (!e->args) return NULL;
        e->nargs = nargs;
    }
    return e;
}

/* Fill deps, depth and size from the operands (call once they are set). */
static TExpr *texpr_finish(TExpr *e) {
    if (!e) return NULL;
    for (int i = 0; i < e->nargs; i++) {
        TExpr *a = e->args[i];
        e->deps |= a->deps;
        if (a->depth + 1 > e->depth) e->depth = a->depth + 1;
        e->size += a->size;
        if (e->size > MAX_EXPANDED_SIZE) e->size = MAX_EXPANDED_SIZE + 1;
    }
    return e;
}

static TExpr *unary(Sema *s, XKind kind, Type type, Span span, TExpr *a) {
    TExpr *e = node(s, kind, type, span, 1);
    if (!e) return NULL;
    e->args[0] = a;
    return texpr_finish(e);
}

static TExpr *to_float(Sema *s, TExpr *e) {
    if (!e || e->type == T_FLOAT) return e;
    return unary(s, X_TOFLOAT, T_FLOAT, e->span, e);
}

static int is_numeric(Type t) { return t == T_INT || t == T_FLOAT; }

/* e converted to `want` (int promotes to float); NULL with an error otherwise. */
static TExpr *coerce(Sema *s, TExpr *e, Type want, const char *what) {
    if (!e) return NULL;
    if (e->type == want) return e;
    if (e->type == T_INT && want == T_FLOAT) return to_float(s, e);
    diag_error(s->diag, e->span, "%s must be %s, found %s", what, type_name(want), type_name(e->type));
    return NULL;
}

/* ---- expressions ------------------------------------------------------ */

static TExpr *check_expr(Sema *s, Scope *sc, AstExpr *e);

static Entry *lookup(Scope *sc, const char *name) {
    for (int i = 0; i < sc->entries.len; i++) {
        Entry *en = sc->entries.items[i];
        if (strcmp(en->decl->name, name) == 0) return en;
    }
    return NULL;
}

/* A declaration of `name` later in the same attention, for a better message. */
static AstItem *declared_later(Scope *sc, const char *name) {
    for (AstItem *it = sc->ast->items; it; it = it->next)
        if ((it->kind == ITEM_PARAM || it->kind == ITEM_TENSOR || it->kind == ITEM_LET) && it->name &&
            strcmp(it->name, name) == 0)
            return it;
    return NULL;
}

static TExpr *check_name(Sema *s, Scope *sc, AstExpr *e) {
    const char *name = e->name;
    if (strcmp(name, "score") == 0) {
        if (!sc->score_ok) {
            diag_error(s->diag, e->span, "'score' is only available in score and weight clauses");
            return NULL;
        }
        TExpr *t = node(s, X_SCORE, T_FLOAT, e->span, 0);
        if (t) t->deps = DEP_SCORE;
        return t;
    }
    for (SumBinder *sb = sc->sums; sb; sb = sb->outer)
        if (strcmp(sb->name, name) == 0) {
            TExpr *t = node(s, X_SUMVAR, T_INT, e->span, 0);
            if (t) t->level = sb->level;
            return t;
        }
    int v = find_var(name);
    if (v >= 0) {
        TExpr *t = node(s, X_VAR, T_INT, e->span, 0);
        if (!t) return NULL;
        t->var = v;
        t->deps = v == V_B ? DEP_B : v == V_H || v == V_HK ? DEP_H : v == V_Q ? DEP_Q : v == V_KV ? DEP_KV : DEP_SIZE;
        return t;
    }
    Entry *en = lookup(sc, name);
    if (!en) {
        AstItem *later = declared_later(sc, name);
        if (later)
            diag_error(s->diag, e->span, "'%s' is used before its declaration at line %d", name,
                       later->name_span.first_line);
        else if (find_fn(name) >= 0)
            diag_error(s->diag, e->span, "'%s' is a function; call it as %s(...)", name, name);
        else
            diag_error(s->diag, e->span, "unknown name '%s'", name);
        return NULL;
    }
    Decl *d = en->decl;
    if (d->poisoned) return NULL; /* its own error was reported */
    if (d->kind == D_TENSOR) {
        diag_error(s->diag, e->span, "tensor '%s' must be indexed, as in %s[...]", name, name);
        return NULL;
    }
    if (d->kind == D_LET && (d->init->deps & DEP_SCORE) && !sc->score_ok) {
        diag_error(s->diag, e->span, "'%s' uses 'score', which is only available in score and weight clauses", name);
        return NULL;
    }
    TExpr *t = node(s, d->kind == D_PARAM ? X_PARAM : X_LET, d->type, e->span, 0);
    if (!t) return NULL;
    t->decl = d;
    if (d->kind == D_PARAM) {
        t->deps = DEP_PARAM;
    } else {
        t->deps = d->init->deps;
        t->depth = d->init->depth + 1;
        t->size = d->init->size;
    }
    return t;
}

static XKind binary_kind(int op) {
    switch (op) {
    case '+': return X_ADD;
    case '-': return X_SUB;
    case '*': return X_MUL;
    case '/': return X_DIV;
    case '%': return X_MOD;
    case '<': return X_LT;
    case '>': return X_GT;
    case OP_LE: return X_LE;
    case OP_GE: return X_GE;
    case OP_EQ: return X_EQ;
    case OP_NE: return X_NE;
    case OP_AND: return X_AND;
    default: return X_OR;
    }
}

static const char *op_text(int op) {
    static const char *const multi[] = {"==", "!=", "<=", ">=", "&&", "||"};
    static const char *const single = "+-*/%<>!";
    if (op >= OP_EQ && op <= OP_OR) return multi[op - OP_EQ];
    const char *p = strchr(single, op);
    static const char *const singles[] = {"+", "-", "*", "/", "%", "<", ">", "!"};
    return p ? singles[p - single] : "?";
}

static TExpr *check_binary(Sema *s, Scope *sc, AstExpr *e) {
    TExpr *a = check_expr(s, sc, e->args[0]);
    TExpr *b = check_expr(s, sc, e->args[1]);
    if (!a || !b) return NULL;
    XKind k = binary_kind(e->op);
    Type rt;
    if (k == X_AND || k == X_OR) {
        if (a->type != T_BOOL || b->type != T_BOOL) {
            TExpr *bad = a->type != T_BOOL ? a : b;
            diag_error(s->diag, bad->span, "operator '%s' needs bool operands, found %s", op_text(e->op),
                       type_name(bad->type));
            return NULL;
        }
        rt = T_BOOL;
    } else if ((k == X_EQ || k == X_NE) && a->type == T_BOOL && b->type == T_BOOL) {
        rt = T_BOOL;
    } else if ((k == X_EQ || k == X_NE) && (a->type == T_BOOL) != (b->type == T_BOOL)) {
        diag_error(s->diag, e->span, "operator '%s' cannot compare %s with %s", op_text(e->op), type_name(a->type),
                   type_name(b->type));
        return NULL;
    } else {
        if (!is_numeric(a->type) || !is_numeric(b->type)) {
            TExpr *bad = !is_numeric(a->type) ? a : b;
            diag_error(s->diag, bad->span, "operator '%s' needs int or float operands, found %s", op_text(e->op),
                       type_name(bad->type));
            return NULL;
        }
        if (a->type != b->type) {
            a = to_float(s, a);
            b = to_float(s, b);
        }
        rt = (k >= X_LT && k <= X_NE) ? T_BOOL : a->type;
    }
    TExpr *t = node(s, k, rt, e->span, 2);
    if (!t) return NULL;
    t->args[0] = a;
    t->args[1] = b;
    return texpr_finish(t);
}

static TExpr *check_cond(Sema *s, Scope *sc, AstExpr *e) {
    TExpr *c = check_expr(s, sc, e->args[0]);
    TExpr *a = check_expr(s, sc, e->args[1]);
    TExpr *b = check_expr(s, sc, e->args[2]);
    if (!c || !a || !b) return NULL;
    if (c->type != T_BOOL) {
        diag_error(s->diag, c->span, "condition of '?:' must be bool, found %s", type_name(c->type));
        return NULL;
    }
    if (a->type != b->type) {
        if (!is_numeric(a->type) || !is_numeric(b->type)) {
            diag_error(s->diag, e->span, "branches of '?:' have different types: %s and %s", type_name(a->type),
                       type_name(b->type));
            return NULL;
        }
        a = to_float(s, a);
        b = to_float(s, b);
    }
    TExpr *t = node(s, X_COND, a->type, e->span, 3);
    if (!t) return NULL;
    t->args[0] = c;
    t->args[1] = a;
    t->args[2] = b;
    return texpr_finish(t);
}

static TExpr *check_call(Sema *s, Scope *sc, AstExpr *e) {
    int f = find_fn(e->name);
    if (f < 0) {
        Entry *en = lookup(sc, e->name);
        if (en && en->decl->kind == D_TENSOR)
            diag_error(s->diag, e->name_span, "'%s' is a tensor; index it with %s[...]", e->name, e->name);
        else
            diag_error(s->diag, e->name_span, "unknown function '%s'", e->name);
        return NULL;
    }
    if (e->nargs != fns[f].arity) {
        diag_error(s->diag, e->span, "'%s' takes %d argument%s, %d given", e->name, fns[f].arity,
                   fns[f].arity == 1 ? "" : "s", e->nargs);
        return NULL;
    }
    TExpr *t = node(s, X_CALL, T_FLOAT, e->span, e->nargs);
    if (!t) return NULL;
    t->fn = (Fn)f;
    int all_int = 1, ok = 1;
    for (int i = 0; i < e->nargs; i++) {
        TExpr *a = check_expr(s, sc, e->args[i]);
        if (!a) {
            ok = 0;
            continue;
        }
        if (!is_numeric(a->type)) {
            diag_error(s->diag, a->span, "argument %d of '%s' must be int or float, found %s", i + 1, e->name,
                       type_name(a->type));
            ok = 0;
            continue;
        }
        all_int &= a->type == T_INT;
        t->args[i] = a;
    }
    if (!ok) return NULL;
    if (fns[f].result == R_INT) {
        t->type = T_INT;
    } else if (fns[f].result == R_LIKE_ARGS && all_int) {
        t->type = T_INT;
    } else {
        t->type = T_FLOAT;
        /* float() of an int is the promotion itself; other float functions take floats */
        for (int i = 0; i < t->nargs; i++) t->args[i] = to_float(s, t->args[i]);
        if (f == FN_FLOAT) {
            t->args[0]->span = e->span;
            return t->args[0];
        }
    }
    return texpr_finish(t);
}

static TExpr *check_index(Sema *s, Scope *sc, AstExpr *e) {
    Entry *en = lookup(sc, e->name);
    if (en && en->decl->poisoned) return NULL;
    if (!en || en->decl->kind != D_TENSOR) {
        if (!en && declared_later(sc, e->name))
            diag_error(s->diag, e->name_span, "'%s' is used before its declaration at line %d", e->name,
                       declared_later(sc, e->name)->name_span.first_line);
        else if (!en && find_var(e->name) < 0 && find_fn(e->name) < 0)
            diag_error(s->diag, e->name_span, "unknown tensor '%s'", e->name);
        else
            diag_error(s->diag, e->name_span, "'%s' is not a tensor and cannot be indexed", e->name);
        return NULL;
    }
    Decl *d = en->decl;
    if (d->poisoned) return NULL;
    if (e->nargs != d->ndims) {
        diag_error(s->diag, e->span, "tensor '%s' has %d dimension%s but is indexed with %d", e->name, d->ndims,
                   d->ndims == 1 ? "" : "s", e->nargs);
        return NULL;
    }
    TExpr *t = node(s, X_INDEX, d->type, e->span, e->nargs);
    if (!t) return NULL;
    t->decl = d;
    int ok = 1;
    for (int i = 0; i < e->nargs; i++) {
        TExpr *a = check_expr(s, sc, e->args[i]);
        if (a && a->type != T_INT) {
            diag_error(s->diag, a->span, "tensor index must be int, found %s%s", type_name(a->type),
                       a->type == T_FLOAT ? " (convert it with int(...))" : "");
            a = NULL;
        }
        if (!a) ok = 0;
        t->args[i] = a;
    }
    if (!ok) return NULL;
    texpr_finish(t);
    t->deps |= DEP_TENSOR;
    return t;
}

/* The node inside e (following lets) that brings in a dependency outside `allowed`. */
static const TExpr *offender(const TExpr *e, int allowed) {
    for (int i = 0; i < e->nargs; i++)
        if (e->args[i] && (e->args[i]->deps & ~allowed)) return offender(e->args[i], allowed);
    if (e->kind == X_LET) return offender(e->decl->init, allowed);
    return e;
}

static const char *offender_name(const TExpr *e) {
    return e->kind == X_VAR ? var_names[e->var] : e->decl ? e->decl->name : e->kind == X_SCORE ? "score" : "this";
}

/* Report the first use in e of something outside `allowed`, at its position in this tree. */
static int check_deps(Sema *s, TExpr *e, int allowed, const char *what) {
    if (!e || !(e->deps & ~allowed)) return 1;
    const TExpr *at = e;
    while (at->kind != X_LET) {
        const TExpr *next = NULL;
        for (int i = 0; i < at->nargs && !next; i++)
            if (at->args[i] && (at->args[i]->deps & ~allowed)) next = at->args[i];
        if (!next) break;
        at = next;
    }
    const TExpr *root = offender(at, allowed);
    if (at->kind == X_LET)
        diag_error(s->diag, at->span, "%s may depend only on sizes and params, not on '%s' (through the let '%s')",
                   what, offender_name(root), at->decl->name);
    else
        diag_error(s->diag, at->span, "%s may depend only on sizes and params, not on '%s'", what,
                   offender_name(root));
    return 0;
}

static TExpr *check_sum(Sema *s, Scope *sc, AstExpr *e) {
    const char *name = e->name;
    const char *clash = is_builtin_name(name) || strcmp(name, "score") == 0 ? "the built-in" : NULL;
    Entry *en = lookup(sc, name);
    if (en) clash = en->decl->kind == D_PARAM ? "the param" : en->decl->kind == D_TENSOR ? "the tensor" : "the let";
    for (SumBinder *sb = sc->sums; sb; sb = sb->outer)
        if (strcmp(sb->name, name) == 0) clash = "";
    if (clash && !*clash) {
        diag_error(s->diag, e->name_span, "sum variable '%s' shadows the variable of an enclosing sum", name);
        return NULL;
    }
    if (clash) {
        diag_error(s->diag, e->name_span, "sum variable '%s' shadows %s '%s'", name, clash, name);
        return NULL;
    }
    TExpr *bound = check_expr(s, sc, e->args[0]);
    bound = coerce(s, bound, T_INT, "the bound of a sum");
    if (bound && !check_deps(s, bound, DEP_SIZE | DEP_PARAM, "the bound of a sum")) bound = NULL;
    SumBinder sb = {name, sc->sum_level, sc->sums};
    sc->sums = &sb;
    sc->sum_level++;
    TExpr *body = check_expr(s, sc, e->args[1]);
    sc->sum_level--;
    sc->sums = sb.outer;
    if (body && !is_numeric(body->type)) {
        diag_error(s->diag, body->span, "the body of a sum must be int or float, found %s", type_name(body->type));
        body = NULL;
    }
    if (!bound || !body) return NULL;
    TExpr *t = node(s, X_SUM, body->type, e->span, 2);
    if (!t) return NULL;
    t->level = sb.level;
    t->args[0] = bound;
    t->args[1] = body;
    return texpr_finish(t);
}

static TExpr *check_expr(Sema *s, Scope *sc, AstExpr *e) {
    if (!e) return NULL;
    TExpr *t = NULL;
    switch (e->kind) {
    case AST_INT:
        if ((t = node(s, X_CONST, T_INT, e->span, 0))) t->c.i = e->ival;
        return t;
    case AST_FLOAT:
        if ((t = node(s, X_CONST, T_FLOAT, e->span, 0))) t->c.f = e->fval;
        return t;
    case AST_BOOL:
        if ((t = node(s, X_CONST, T_BOOL, e->span, 0))) t->c.b = e->bval;
        return t;
    case AST_NAME: return check_name(s, sc, e);
    case AST_UNARY: {
        TExpr *a = check_expr(s, sc, e->args[0]);
        if (!a) return NULL;
        if (e->op == '!') {
            if (a->type != T_BOOL) {
                diag_error(s->diag, a->span, "operator '!' needs a bool operand, found %s", type_name(a->type));
                return NULL;
            }
            return unary(s, X_NOT, T_BOOL, e->span, a);
        }
        if (!is_numeric(a->type)) {
            diag_error(s->diag, a->span, "operator '-' needs an int or float operand, found %s", type_name(a->type));
            return NULL;
        }
        return unary(s, X_NEG, a->type, e->span, a);
    }
    case AST_BINARY: return check_binary(s, sc, e);
    case AST_COND: return check_cond(s, sc, e);
    case AST_CALL: return check_call(s, sc, e);
    case AST_INDEX: return check_index(s, sc, e);
    case AST_SUM: return check_sum(s, sc, e);
    }
    return NULL;
}

/* Check one top-level expression of an item, refusing absurd sizes before recursing. */
static TExpr *check_root(Sema *s, Scope *sc, AstExpr *e, int score_ok) {
    if (!e) return NULL;
    if (e->depth > MAX_AST_DEPTH) {
        diag_error(s->diag, e->span, "expression is nested too deeply (%d levels; the limit is %d)", e->depth,
                   MAX_AST_DEPTH);
        return NULL;
    }
    sc->score_ok = score_ok;
    sc->sums = NULL;
    sc->sum_level = 0;
    TExpr *t = check_expr(s, sc, e);
    if (t && t->depth > MAX_EVAL_DEPTH) {
        diag_error(s->diag, e->span, "expression is nested too deeply once its lets are expanded (limit %d)",
                   MAX_EVAL_DEPTH);
        return NULL;
    }
    if (t && t->size > MAX_EXPANDED_SIZE) {
        diag_error(s->diag, e->span, "expression is too large once its lets are expanded (over %lld nodes)",
                   (long long)MAX_EXPANDED_SIZE);
        return NULL;
    }
    return t;
}

/* ---- structural equality, for merging what `use`s bring -------------- */

static int texpr_equal(const TExpr *a, const TExpr *b) {
    if (a == b) return 1;
    if (!a || !b || a->kind != b->kind || a->type != b->type || a->nargs != b->nargs) return 0;
    switch (a->kind) {
    case X_CONST:
        if (a->type == T_FLOAT ? memcmp(&a->c.f, &b->c.f, sizeof(double)) != 0
                               : a->type == T_INT ? a->c.i != b->c.i : a->c.b != b->c.b)
            return 0;
        break;
    case X_VAR:
        if (a->var != b->var) return 0;
        break;
    case X_CALL:
        if (a->fn != b->fn) return 0;
        break;
    case X_SUM:
    case X_SUMVAR:
        if (a->level != b->level) return 0;
        break;
    case X_PARAM:
    case X_LET:
    case X_INDEX:
        /* names are unique once merged; a clash of the names themselves is reported on its own */
        if (strcmp(a->decl->name, b->decl->name) != 0) return 0;
        break;
    default: break;
    }
    for (int i = 0; i < a->nargs; i++)
        if (!texpr_equal(a->args[i], b->args[i])) return 0;
    return 1;
}

static int decl_equal(Decl *a, Decl *b) {
    a = decl_canon(a);
    b = decl_canon(b);
    if (a == b) return 1;
    if (a->kind != b->kind || a->type != b->type || strcmp(a->name, b->name) != 0) return 0;
    if (a->kind == D_TENSOR) {
        if (a->ndims != b->ndims) return 0;
        for (int i = 0; i < a->ndims; i++)
            if (!texpr_equal(a->dims[i], b->dims[i])) return 0;
        return 1;
    }
    return texpr_equal(a->init, b->init);
}

/* ---- declarations ----------------------------------------------------- */

static void declare(Sema *s, Scope *sc, Decl *d, const char *via, Span at) {
    Entry *old = lookup(sc, d->name);
    if (!old) {
        Entry *en = arena_alloc(s->arena, sizeof *en);
        if (!en) return;
        en->decl = d;
        en->via = via;
        ptrvec_push(s->arena, &sc->entries, en);
        return;
    }
    if (decl_canon(old->decl) == decl_canon(d)) return;
    if (d->poisoned || old->decl->poisoned) return; /* one of them already has an error */
    if ((via || old->via) && decl_equal(old->decl, d)) {
        decl_canon(d)->canon = decl_canon(old->decl);
        return;
    }
    Span first = old->decl->span;
    if (!via && !old->via)
        diag_error(s->diag, at, "'%s' is already declared at line %d", d->name, first.first_line);
    else if (via && old->via)
        diag_error(s->diag, at, "'use %s' brings %s '%s', which differs from the one 'use %s' brought", via,
                   decl_kind_name(d), d->name, old->via);
    else if (via)
        diag_error(s->diag, at, "'use %s' brings %s '%s', which differs from the one declared at line %d", via,
                   decl_kind_name(d), d->name, first.first_line);
    else
        diag_error(s->diag, at, "'%s' differs from the %s that 'use %s' brought", d->name,
                   decl_kind_name(old->decl), old->via);
}

static Decl *new_decl(Sema *s, DeclKind kind, AstItem *it) {
    Decl *d = arena_alloc(s->arena, sizeof *d);
    if (!d) return NULL;
    d->kind = kind;
    d->name = it->name;
    d->span = it->name_span;
    return d;
}

static int check_new_name(Sema *s, AstItem *it) {
    if (is_builtin_name(it->name)) {
        diag_error(s->diag, it->name_span, "'%s' is a built-in name and cannot be redeclared", it->name);
        return 0;
    }
    return 1;
}

static Binding *find_binding(Scope *sc, const char *name) {
    for (int i = 0; i < sc->nbinds; i++)
        if (strcmp(sc->binds[i].name, name) == 0) return &sc->binds[i];
    return NULL;
}

/* Declare d; a declaration that had errors is still declared, poisoned, so
 * its uses do not cascade into "unknown name" errors. */
static void declare_checked(Sema *s, Scope *sc, Decl *d, int ok) {
    d->poisoned = !ok;
    declare(s, sc, d, NULL, d->span);
}

/* The value of a param bound by `use`, converted to the param's type. */
static TExpr *bound_value(Sema *s, Scope *sc, AstItem *it, Binding *bind, Type type) {
    bind->used = 1;
    TExpr *v = bind->value;
    if (!v) return NULL;
    if ((v->type == T_FLOAT && type == T_INT) || (v->type == T_BOOL) != (type == T_BOOL)) {
        diag_error(s->diag, bind->span, "param '%s' of '%s' is %s; it cannot be bound to a%s %s", it->name,
                   sc->ast->name, type_name(type), v->type == T_INT ? "n" : "", type_name(v->type));
        return NULL;
    }
    return type == T_FLOAT ? to_float(s, v) : v;
}

static void check_param(Sema *s, Scope *sc, AstItem *it) {
    if (!check_new_name(s, it)) return;
    Decl *d = new_decl(s, D_PARAM, it);
    if (!d) return;
    d->type = (Type)it->type;
    Binding *bind = find_binding(sc, it->name);
    if (bind) {
        /* a bound param is a let of the value the user of this attention gave */
        d->kind = D_LET;
        d->bound = 1;
        d->init = bound_value(s, sc, it, bind, d->type);
        declare_checked(s, sc, d, d->init != NULL);
        return;
    }
    if (it->expr) {
        TExpr *def = coerce(s, check_root(s, sc, it->expr, 0), d->type, "the default");
        if (def && !check_deps(s, def, DEP_SIZE | DEP_PARAM, "a param default")) def = NULL;
        d->init = def;
    }
    declare_checked(s, sc, d, !it->expr || d->init);
}

static void check_tensor(Sema *s, Scope *sc, AstItem *it) {
    if (!check_new_name(s, it)) return;
    Decl *d = new_decl(s, D_TENSOR, it);
    if (!d) return;
    d->type = (Type)it->type;
    if (it->ndims > MAX_TENSOR_RANK) {
        diag_error(s->diag, it->span, "tensor '%s' has %d dimensions; at most %d are supported", it->name, it->ndims,
                   MAX_TENSOR_RANK);
        declare_checked(s, sc, d, 0);
        return;
    }
    d->ndims = it->ndims;
    d->dims = arena_alloc(s->arena, sizeof(TExpr *) * (size_t)(it->ndims ? it->ndims : 1));
    if (!d->dims) return;
    int ok = 1;
    for (int i = 0; i < it->ndims; i++) {
        TExpr *t = coerce(s, check_root(s, sc, it->dims[i], 0), T_INT, "a tensor dimension");
        if (t && !check_deps(s, t, DEP_SIZE | DEP_PARAM, "a tensor dimension")) t = NULL;
        ok &= t != NULL;
        d->dims[i] = t;
    }
    declare_checked(s, sc, d, ok);
}

static void check_let(Sema *s, Scope *sc, AstItem *it) {
    if (!check_new_name(s, it)) return;
    Decl *d = new_decl(s, D_LET, it);
    if (!d) return;
    /* a let may use score; each use outside score/weight clauses is refused */
    d->init = check_root(s, sc, it->expr, 1);
    if (d->init) d->type = d->init->type;
    declare_checked(s, sc, d, d->init != NULL);
}

static void set_single(Sema *s, TExpr **slot, Span *slot_at, TExpr *e, Span at, const char *what,
                       const char *via) {
    if (*slot) {
        if (via)
            diag_error(s->diag, at, "'use %s' brings a second '%s' clause (the first is at line %d)", via, what,
                       slot_at->first_line);
        else
            diag_error(s->diag, at, "more than one '%s' clause (the first is at line %d)", what, slot_at->first_line);
        return;
    }
    *slot = e;
    *slot_at = at;
}

static void check_clause(Sema *s, Scope *sc, AstItem *it) {
    TExpr *e;
    switch (it->kind) {
    case ITEM_MASK:
        e = check_root(s, sc, it->expr, 0);
        if (e && e->type != T_BOOL) {
            diag_error(s->diag, e->span, "a mask must be bool, found %s", type_name(e->type));
            e = NULL;
        }
        if (e) ptrvec_push(s->arena, &sc->masks, e);
        break;
    case ITEM_BIAS:
        if ((e = coerce(s, check_root(s, sc, it->expr, 0), T_FLOAT, "a bias"))) ptrvec_push(s->arena, &sc->biases, e);
        break;
    case ITEM_SCORE:
        if ((e = coerce(s, check_root(s, sc, it->expr, 1), T_FLOAT, "a score clause")))
            ptrvec_push(s->arena, &sc->scores, e);
        break;
    case ITEM_WEIGHT:
        if ((e = coerce(s, check_root(s, sc, it->expr, 1), T_FLOAT, "a weight clause")))
            set_single(s, &sc->weight, &sc->weight_at, e, it->span, "weight", NULL);
        break;
    case ITEM_SCALE:
        e = coerce(s, check_root(s, sc, it->expr, 0), T_FLOAT, "a scale");
        if (e && check_deps(s, e, DEP_SIZE | DEP_PARAM, "a scale"))
            set_single(s, &sc->scale, &sc->scale_at, e, it->span, "scale", NULL);
        break;
    default: break;
    }
}

/* ---- attentions and `use` -------------------------------------------- */

static AstAttention *find_attention(AstFile *f, const char *name) {
    for (AstAttention *a = f ? f->attentions : NULL; a; a = a->next)
        if (a && a->name && strcmp(a->name, name) == 0) return a;
    return NULL;
}

static int has_param(AstAttention *a, const char *name) {
    for (AstItem *it = a->items; it; it = it->next)
        if (it->kind == ITEM_PARAM && strcmp(it->name, name) == 0) return 1;
    return 0;
}

static Scope *check_attention(Sema *s, AstAttention *ast, Binding *binds, int nbinds);

static void check_use(Sema *s, Scope *sc, AstItem *it) {
    AstAttention *target = find_attention(s->file, it->name);
    if (!target) target = find_attention(s->prelude, it->name);
    if (!target) {
        diag_error(s->diag, it->name_span, "unknown attention '%s'", it->name);
        return;
    }
    for (int i = 0; i < s->in_progress.len; i++)
        if (s->in_progress.items[i] == target) {
            diag_error(s->diag, it->name_span, "'use %s' forms a cycle: '%s' ends up using itself", it->name,
                       it->name);
            return;
        }
    Binding *binds = arena_alloc(s->arena, sizeof(Binding) * (size_t)(it->nbinds ? it->nbinds : 1));
    if (!binds) return;
    int ok = 1;
    for (int i = 0; i < it->nbinds; i++) {
        AstBinding *ab = &it->binds[i];
        binds[i].name = ab->name;
        binds[i].span = ab->name_span;
        for (int j = 0; j < i; j++)
            if (strcmp(binds[j].name, ab->name) == 0) {
                diag_error(s->diag, ab->name_span, "param '%s' is bound twice", ab->name);
                ok = 0;
            }
        if (!has_param(target, ab->name)) {
            diag_error(s->diag, ab->name_span, "attention '%s' has no param '%s'", it->name, ab->name);
            ok = 0;
            continue;
        }
        TExpr *v = check_root(s, sc, ab->value, 0);
        if (v && !check_deps(s, v, DEP_SIZE | DEP_PARAM, "a value bound to a param")) v = NULL;
        if (!v) ok = 0;
        binds[i].value = v;
    }
    if (!ok) return;
    Scope *sub = check_attention(s, target, binds, it->nbinds);
    if (!sub) return;
    for (int i = 0; i < sub->entries.len; i++) {
        Entry *en = sub->entries.items[i];
        declare(s, sc, en->decl, it->name, it->name_span);
    }
    for (int i = 0; i < sub->masks.len; i++) ptrvec_push(s->arena, &sc->masks, sub->masks.items[i]);
    for (int i = 0; i < sub->biases.len; i++) ptrvec_push(s->arena, &sc->biases, sub->biases.items[i]);
    for (int i = 0; i < sub->scores.len; i++) ptrvec_push(s->arena, &sc->scores, sub->scores.items[i]);
    if (sub->scale) set_single(s, &sc->scale, &sc->scale_at, sub->scale, it->span, "scale", it->name);
    if (sub->weight) set_single(s, &sc->weight, &sc->weight_at, sub->weight, it->span, "weight", it->name);
}

static Scope *check_attention(Sema *s, AstAttention *ast, Binding *binds, int nbinds) {
    Scope *sc = arena_alloc(s->arena, sizeof *sc);
    if (!sc || !ptrvec_push(s->arena, &s->in_progress, ast)) return NULL;
    sc->ast = ast;
    sc->binds = binds;
    sc->nbinds = nbinds;
    for (AstItem *it = ast->items; it && !s->diag->stopped; it = it->next) {
        switch (it->kind) {
        case ITEM_PARAM: check_param(s, sc, it); break;
        case ITEM_TENSOR: check_tensor(s, sc, it); break;
        case ITEM_LET: check_let(s, sc, it); break;
        case ITEM_USE: check_use(s, sc, it); break;
        default: check_clause(s, sc, it); break;
        }
    }
    s->in_progress.len--;
    return sc;
}

/* The public form: params and tensors numbered, clause lists as arrays. */
static Attention *finish_attention(Sema *s, AstAttention *ast, Scope *sc) {
    Attention *a = arena_alloc(s->arena, sizeof *a);
    if (!a) return NULL;
    a->name = ast->name;
    a->span = ast->name_span;
    PtrVec params = {0}, tensors = {0};
    for (int i = 0; i < sc->entries.len; i++) {
        Decl *d = ((Entry *)sc->entries.items[i])->decl;
        if (d->canon || d->poisoned) continue;
        if (d->kind == D_PARAM) {
            d->index = params.len;
            ptrvec_push(s->arena, &params, d);
        } else if (d->kind == D_TENSOR) {
            d->index = tensors.len;
            ptrvec_push(s->arena, &tensors, d);
        }
    }
    a->params = (Decl **)params.items;
    a->nparams = params.len;
    a->tensors = (Decl **)tensors.items;
    a->ntensors = tensors.len;
    a->masks = (TExpr **)sc->masks.items;
    a->nmasks = sc->masks.len;
    a->biases = (TExpr **)sc->biases.items;
    a->nbiases = sc->biases.len;
    a->scores = (TExpr **)sc->scores.items;
    a->nscores = sc->scores.len;
    a->scale = sc->scale;
    a->weight = sc->weight;
    return a;
}

Program *sema_check(AstFile *file, AstFile *prelude, Arena *arena, Diag *diag) {
    Sema s = {arena, diag, file, prelude, {0}};
    Program *p = arena_alloc(arena, sizeof *p);
    if (!p) return NULL;
    PtrVec out = {0};
    for (AstAttention *a = file->attentions; a && !diag->stopped; a = a->next) {
        AstAttention *first = find_attention(file, a->name);
        if (first != a) {
            diag_error(diag, a->name_span, "attention '%s' is defined twice (first at line %d)", a->name,
                       first->name_span.first_line);
            continue;
        }
        Scope *sc = check_attention(&s, a, NULL, 0);
        Attention *att = sc ? finish_attention(&s, a, sc) : NULL;
        if (att) ptrvec_push(arena, &out, att);
    }
    p->attns = (Attention **)out.items;
    p->nattns = out.len;
    return arena_failed(arena) ? NULL : p;
}
