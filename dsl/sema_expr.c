/* sema_expr.c — names, typing and checking of one expression (spec sections 3–5).
 * Requires: the Scope of the attention being checked (sema_internal.h): the
 * names declared so far and the `use` bindings.
 * Produces: typed trees (TExpr) with explicit int->float promotions, sum
 * variables numbered by level, deps/depth/size filled in; every error is
 * reported and the tree is NULL.  The names of the built-in variables and
 * functions (type_name, fn_name, builtin_var_name) live here too. */
#include <string.h>

#include "sema_internal.h"

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
    [FN_SIN] = {"sin", 1, R_FLOAT},         [FN_COS] = {"cos", 1, R_FLOAT},
};

const char *type_name(Type t) { return t == T_INT ? "int" : t == T_FLOAT ? "float" : t == T_BOOL ? "bool" : "a row"; }
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

/* The rows Q and K (version 2): names in scope like q and kv. */
static int find_row(const char *name) {
    return strcmp(name, "Q") == 0 ? X_ROW_Q : strcmp(name, "K") == 0 ? X_ROW_K : -1;
}

/* 1 if name is a built-in variable, row or function (it cannot be redeclared). */
int sema_is_builtin_name(const char *name) {
    return find_var(name) >= 0 || find_fn(name) >= 0 || find_row(name) >= 0;
}

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

/* e with an int->float promotion on top if it is int; NULL stays NULL. */
TExpr *sema_to_float(Sema *s, TExpr *e) {
    if (!e || e->type == T_FLOAT) return e;
    return unary(s, X_TOFLOAT, T_FLOAT, e->span, e);
}

static int is_numeric(Type t) { return t == T_INT || t == T_FLOAT; }

/* e converted to `want` (int promotes to float); NULL with an error otherwise. */
TExpr *sema_coerce(Sema *s, TExpr *e, Type want, const char *what) {
    if (!e) return NULL;
    if (e->type == want) return e;
    if (e->type == T_INT && want == T_FLOAT) return sema_to_float(s, e);
    diag_error(s->diag, e->span, "%s must be %s, found %s", what, type_name(want), type_name(e->type));
    return NULL;
}

/* ---- expressions ------------------------------------------------------ */

static TExpr *check_expr(Sema *s, Scope *sc, AstExpr *e);
static TExpr *check_any(Sema *s, Scope *sc, AstExpr *e);

/* The entry of sc that declares name, or NULL. */
Entry *sema_lookup(Scope *sc, const char *name) {
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
    int row = find_row(name);
    if (row >= 0) {
        TExpr *t = node(s, (XKind)row, T_ROW, e->span, 0);
        if (t) t->deps = DEP_B | DEP_H | (row == X_ROW_Q ? DEP_Q : DEP_KV);
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
    Entry *en = sema_lookup(sc, name);
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
            a = sema_to_float(s, a);
            b = sema_to_float(s, b);
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
        a = sema_to_float(s, a);
        b = sema_to_float(s, b);
    }
    TExpr *t = node(s, X_COND, a->type, e->span, 3);
    if (!t) return NULL;
    t->args[0] = c;
    t->args[1] = a;
    t->args[2] = b;
    return texpr_finish(t);
}

/* The length of row r as a constant, or -1 when only the call knows it. */
static int64_t row_length(const TExpr *r) {
    const TExpr *n = r->kind == X_ROW ? r->decl->dims[r->decl->ndims - 1] : NULL;
    return n && n->kind == X_CONST ? n->c.i : -1;
}

/* dot(X, Y) := the sum of X[i] * Y[i] over two rows of the same length (spec 9.2). */
static TExpr *check_dot(Sema *s, Scope *sc, AstExpr *e) {
    if (e->nargs != 2) {
        diag_error(s->diag, e->span, "'dot' takes 2 arguments, %d given", e->nargs);
        return NULL;
    }
    TExpr *t = node(s, X_DOT, T_FLOAT, e->span, 2);
    if (!t) return NULL;
    int ok = 1;
    for (int i = 0; i < 2; i++) {
        TExpr *a = check_any(s, sc, e->args[i]);
        if (a && a->type != T_ROW) {
            diag_error(s->diag, a->span, "argument %d of 'dot' must be a row (Q, K, or a float tensor indexed with "
                       "all but its last index), found %s", i + 1, type_name(a->type));
            a = NULL;
        }
        ok &= a != NULL;
        t->args[i] = a;
    }
    if (!ok) return NULL;
    int64_t n0 = row_length(t->args[0]), n1 = row_length(t->args[1]);
    if (n0 >= 0 && n1 >= 0 && n0 != n1) {
        diag_error(s->diag, e->span, "'dot' of rows of different lengths (%lld and %lld)", (long long)n0,
                   (long long)n1);
        return NULL;
    }
    texpr_finish(t);
    t->deps |= DEP_ROW;
    return t;
}

static TExpr *check_call(Sema *s, Scope *sc, AstExpr *e) {
    if (strcmp(e->name, "dot") == 0) return check_dot(s, sc, e);
    int f = find_fn(e->name);
    if (f < 0) {
        Entry *en = sema_lookup(sc, e->name);
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
        for (int i = 0; i < t->nargs; i++) t->args[i] = sema_to_float(s, t->args[i]);
        if (f == FN_FLOAT) {
            t->args[0]->span = e->span;
            return t->args[0];
        }
    }
    return texpr_finish(t);
}

static TExpr *check_index(Sema *s, Scope *sc, AstExpr *e) {
    Entry *en = sema_lookup(sc, e->name);
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
    int row = e->nargs == d->ndims - 1; /* a row (version 2): every index but the last */
    if (row && d->type != T_FLOAT) {
        diag_error(s->diag, e->span, "'%s[...]' with %d of its %d indices would be a row, but tensor '%s' is int; "
                   "only float tensors have rows", e->name, e->nargs, d->ndims, e->name);
        return NULL;
    }
    if (e->nargs != d->ndims && !row) {
        diag_error(s->diag, e->span, "tensor '%s' has %d dimension%s but is indexed with %d", e->name, d->ndims,
                   d->ndims == 1 ? "" : "s", e->nargs);
        return NULL;
    }
    TExpr *t = node(s, row ? X_ROW : X_INDEX, row ? T_ROW : d->type, e->span, e->nargs);
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
    switch (e->kind) {
    case X_VAR: return var_names[e->var];
    case X_SCORE: return "score";
    case X_ROW_Q: return "Q";
    case X_ROW_K: return "K";
    case X_DOT: return "dot";
    default: return e->decl ? e->decl->name : "this";
    }
}

/* Report the first use in e of something outside `allowed`, at its position in this tree. */
int sema_check_deps(Sema *s, TExpr *e, int allowed, const char *what) {
    return sema_check_deps_on(s, e, allowed, what, "sizes and params");
}

int sema_check_deps_on(Sema *s, TExpr *e, int allowed, const char *what, const char *allowed_text) {
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
        diag_error(s->diag, at->span, "%s may depend only on %s, not on '%s' (through the let '%s')", what,
                   allowed_text, offender_name(root), at->decl->name);
    else
        diag_error(s->diag, at->span, "%s may depend only on %s, not on '%s'", what, allowed_text,
                   offender_name(root));
    return 0;
}

/* The first node of e (not following lets) that is `kind` (and reads variable
 * `var` when kind is X_VAR), or NULL; lets are searched through their
 * values, and *via names the let used at the top. */
static const TExpr *find_node(const TExpr *e, XKind kind, int var, const TExpr **via) {
    if (!e) return NULL;
    if (e->kind == kind && (kind != X_VAR || e->var == var)) return e;
    if (e->kind == X_LET) {
        const TExpr *hit = find_node(e->decl->init, kind, var, via);
        if (hit && !*via) *via = e;
        return hit;
    }
    for (int i = 0; i < e->nargs; i++) {
        const TExpr *hit = find_node(e->args[i], kind, var, via);
        if (hit) return hit;
    }
    return NULL;
}

int sema_no_dot(Sema *s, TExpr *e, const char *what) {
    const TExpr *via = NULL;
    const TExpr *hit = e && (e->deps & DEP_ROW) ? find_node(e, X_DOT, 0, &via) : NULL;
    if (!hit) return 1;
    if (via)
        diag_error(s->diag, via->span, "'dot' may not appear in %s (through the let '%s')", what, via->decl->name);
    else
        diag_error(s->diag, hit->span, "'dot' may not appear in %s", what);
    return 0;
}

int sema_no_var(Sema *s, TExpr *e, int var, const char *what, const char *why) {
    const TExpr *via = NULL;
    const TExpr *hit = e ? find_node(e, X_VAR, var, &via) : NULL;
    if (!hit) return 1;
    if (via)
        diag_error(s->diag, via->span, "%s may not read '%s' (through the let '%s'): %s", what, var_names[var],
                   via->decl->name, why);
    else
        diag_error(s->diag, hit->span, "%s may not read '%s': %s", what, var_names[var], why);
    return 0;
}

static TExpr *check_sum(Sema *s, Scope *sc, AstExpr *e) {
    const char *name = e->name;
    const char *clash = sema_is_builtin_name(name) || strcmp(name, "score") == 0 ? "the built-in" : NULL;
    Entry *en = sema_lookup(sc, name);
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
    bound = sema_coerce(s, bound, T_INT, "the bound of a sum");
    if (bound && !sema_check_deps(s, bound, DEP_SIZE | DEP_PARAM, "the bound of a sum")) bound = NULL;
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

/* An expression where a scalar is expected: rows only as the arguments of dot. */
static TExpr *check_expr(Sema *s, Scope *sc, AstExpr *e) {
    TExpr *t = check_any(s, sc, e);
    if (t && t->kind == X_ROW) {
        diag_error(s->diag, t->span, "tensor '%s' has %d dimensions but is indexed with %d (so it is a row, which "
                   "only dot(X, Y) takes)", t->decl->name, t->decl->ndims, t->nargs);
        return NULL;
    }
    if (t && t->type == T_ROW) {
        diag_error(s->diag, t->span, "a row (Q, K, or a tensor indexed with all but its last index) is used where a "
                   "scalar is expected; rows appear only as the arguments of dot(X, Y)");
        return NULL;
    }
    return t;
}

/* An expression of any type, rows included. */
static TExpr *check_any(Sema *s, Scope *sc, AstExpr *e) {
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
TExpr *sema_check_root(Sema *s, Scope *sc, AstExpr *e, int score_ok) {
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
