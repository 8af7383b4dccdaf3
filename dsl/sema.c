/* sema.c — declarations, clause rules, `use` and the entry point (spec sections 3–6).
 * Requires: AstFiles for the spec and the prelude; sema_expr.c checks each
 * expression (sema_check_root).
 * Produces: one checked Attention per attention of the file: typed trees
 * with explicit int->float promotions, `use`s flattened in place with their
 * bound params turned into lets, equal declarations merged (Decl.canon).
 * Every error found is reported; checking goes on after one. */
#include <string.h>

#include "sema_internal.h"

enum { MAX_TENSOR_RANK = 8 };

/* What d is called in messages: a param bound by `use` is still a param to its reader. */
static const char *decl_kind_name(const Decl *d) {
    return d->kind == D_PARAM || d->bound ? "param" : d->kind == D_TENSOR ? "tensor" : "let";
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
    case X_ROW:
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
    Entry *old = sema_lookup(sc, d->name);
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
    if (sema_is_builtin_name(it->name)) {
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
    return type == T_FLOAT ? sema_to_float(s, v) : v;
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
        TExpr *def = sema_coerce(s, sema_check_root(s, sc, it->expr, 0), d->type, "the default");
        if (def && (!sema_no_dot(s, def, "a param default") ||
                    !sema_check_deps(s, def, DEP_SIZE | DEP_PARAM, "a param default")))
            def = NULL;
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
        TExpr *t = sema_coerce(s, sema_check_root(s, sc, it->dims[i], 0), T_INT, "a tensor dimension");
        if (t && (!sema_no_dot(s, t, "a tensor dimension") ||
                  !sema_check_deps(s, t, DEP_SIZE | DEP_PARAM, "a tensor dimension")))
            t = NULL;
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
    d->init = sema_check_root(s, sc, it->expr, 1);
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

/* As set_single for items that `use` merges when identical (rotary, sink: spec 9.3, 9.4). */
static void set_merged(Sema *s, TExpr **slot, Span *slot_at, TExpr *e, Span at, const char *what, const char *via) {
    if (*slot && via && texpr_equal(*slot, e)) return;
    set_single(s, slot, slot_at, e, at, what, via);
}

static int rotary_equal(const Rotary *a, const Rotary *b) {
    return texpr_equal(a->base, b->base) && texpr_equal(a->dims, b->dims) && texpr_equal(a->qpos, b->qpos) &&
           texpr_equal(a->kvpos, b->kvpos) && texpr_equal(a->interleaved, b->interleaved);
}

static void set_rotary(Sema *s, Scope *sc, Rotary *r, Span at, const char *via) {
    if (sc->rotary && via && rotary_equal(sc->rotary, r)) return;
    if (sc->rotary) {
        if (via)
            diag_error(s->diag, at, "'use %s' brings a second 'rotary' (the first is at line %d)", via,
                       sc->rotary_at.first_line);
        else
            diag_error(s->diag, at, "more than one 'rotary' (the first is at line %d)", sc->rotary_at.first_line);
        return;
    }
    sc->rotary = r;
    sc->rotary_at = at;
}

/* One argument of rotary(...) checked: its type and what it may read (spec 9.3). */
static TExpr *rotary_arg(Sema *s, Scope *sc, AstBinding *b, Rotary *r) {
    static const char *const sizes = "sizes and params";
    static const char *const qside = "b, h, q, sizes, params and tensors";
    static const char *const kside = "b, hk, kv, sizes, params and tensors";
    TExpr *e = sema_check_root(s, sc, b->value, 0);
    const char *n = b->name;
    if (strcmp(n, "base") == 0) {
        e = sema_coerce(s, e, T_FLOAT, "rotary's base");
        return e && sema_check_deps_on(s, e, DEP_SIZE | DEP_PARAM, "rotary's base", sizes) ? (r->base = e) : NULL;
    }
    if (strcmp(n, "dims") == 0) {
        e = sema_coerce(s, e, T_INT, "rotary's dims");
        if (!e || !sema_check_deps_on(s, e, DEP_SIZE | DEP_PARAM, "rotary's dims", sizes)) return NULL;
        if (e->kind == X_CONST && (e->c.i < 0 || e->c.i % 2 != 0)) {
            diag_error(s->diag, e->span, "rotary's dims must be even and between 0 and D, found %lld",
                       (long long)e->c.i);
            return NULL;
        }
        return r->dims = e;
    }
    if (strcmp(n, "qpos") == 0) {
        e = sema_coerce(s, e, T_INT, "rotary's qpos");
        return e && sema_check_deps_on(s, e, DEP_B | DEP_H | DEP_Q | DEP_TENSOR | DEP_SIZE | DEP_PARAM,
                                       "rotary's qpos", qside) ? (r->qpos = e) : NULL;
    }
    if (strcmp(n, "kvpos") == 0) {
        e = sema_coerce(s, e, T_INT, "rotary's kvpos");
        if (!e || !sema_check_deps_on(s, e, DEP_B | DEP_H | DEP_KV | DEP_TENSOR | DEP_SIZE | DEP_PARAM,
                                      "rotary's kvpos", kside))
            return NULL;
        return sema_no_var(s, e, V_H, "rotary's kvpos", "a key's position may depend on its kv head hk, not on h")
                   ? (r->kvpos = e) : NULL;
    }
    if (strcmp(n, "interleaved") == 0) {
        e = sema_coerce(s, e, T_BOOL, "rotary's interleaved");
        return e && sema_check_deps_on(s, e, DEP_SIZE | DEP_PARAM, "rotary's interleaved", sizes)
                   ? (r->interleaved = e) : NULL;
    }
    diag_error(s->diag, b->name_span, "rotary has no argument '%s' (its arguments: base, dims, qpos, kvpos, "
               "interleaved)", n);
    return NULL;
}

/* rotary(...) := rotate Q and K rows by their positions (spec 9.3). */
static void check_rotary(Sema *s, Scope *sc, AstItem *it) {
    Rotary *r = arena_alloc(s->arena, sizeof *r);
    if (!r) return;
    r->span = it->span;
    int ok = 1;
    for (int i = 0; i < it->nbinds; i++) {
        for (int j = 0; j < i; j++)
            if (strcmp(it->binds[j].name, it->binds[i].name) == 0) {
                diag_error(s->diag, it->binds[i].name_span, "rotary's argument '%s' is given twice",
                           it->binds[i].name);
                ok = 0;
            }
        ok &= rotary_arg(s, sc, &it->binds[i], r) != NULL;
    }
    if (ok) set_rotary(s, sc, r, it->span, NULL);
}

static void check_clause(Sema *s, Scope *sc, AstItem *it) {
    TExpr *e;
    switch (it->kind) {
    case ITEM_MASK:
        e = sema_check_root(s, sc, it->expr, 0);
        if (e && e->type != T_BOOL) {
            diag_error(s->diag, e->span, "a mask must be bool, found %s", type_name(e->type));
            e = NULL;
        }
        if (e && !sema_no_dot(s, e, "a mask")) e = NULL;
        if (e) ptrvec_push(s->arena, &sc->masks, e);
        break;
    case ITEM_BIAS:
        if ((e = sema_coerce(s, sema_check_root(s, sc, it->expr, 0), T_FLOAT, "a bias"))) ptrvec_push(s->arena, &sc->biases, e);
        break;
    case ITEM_SCORE:
        if ((e = sema_coerce(s, sema_check_root(s, sc, it->expr, 1), T_FLOAT, "a score clause")))
            ptrvec_push(s->arena, &sc->scores, e);
        break;
    case ITEM_WEIGHT:
        if ((e = sema_coerce(s, sema_check_root(s, sc, it->expr, 1), T_FLOAT, "a weight clause")))
            set_single(s, &sc->weight, &sc->weight_at, e, it->span, "weight", NULL);
        break;
    case ITEM_SCALE:
        e = sema_coerce(s, sema_check_root(s, sc, it->expr, 0), T_FLOAT, "a scale");
        if (e && sema_no_dot(s, e, "a scale") && sema_check_deps(s, e, DEP_SIZE | DEP_PARAM, "a scale"))
            set_single(s, &sc->scale, &sc->scale_at, e, it->span, "scale", NULL);
        break;
    case ITEM_SINK:
        e = sema_coerce(s, sema_check_root(s, sc, it->expr, 0), T_FLOAT, "a sink");
        if (e && sema_check_deps_on(s, e, DEP_B | DEP_H | DEP_Q | DEP_TENSOR | DEP_SIZE | DEP_PARAM, "a sink",
                                    "b, h, q, sizes, params and tensors"))
            set_merged(s, &sc->sink, &sc->sink_at, e, it->span, "sink", NULL);
        break;
    case ITEM_ROTARY: check_rotary(s, sc, it); break;
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
        TExpr *v = sema_check_root(s, sc, ab->value, 0);
        if (v && !sema_check_deps(s, v, DEP_SIZE | DEP_PARAM, "a value bound to a param")) v = NULL;
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
    if (sub->sink) set_merged(s, &sc->sink, &sc->sink_at, sub->sink, it->span, "sink", it->name);
    if (sub->rotary) set_rotary(s, sc, sub->rotary, it->span, it->name);
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
    if (sc->sink && sc->weight) {
        diag_error(s->diag, sc->sink_at, "a 'sink' applies to softmax attention only; this attention has a 'weight' "
                   "clause (line %d)", sc->weight_at.first_line);
        return NULL;
    }
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
    a->sink = sc->sink;
    a->rotary = sc->rotary;
    return a;
}

/* What the clauses that may read rows (bias, score, weight) depend on. */
static int row_clause_deps(const Attention *a) {
    int deps = 0;
    for (int i = 0; i < a->nbiases; i++) deps |= a->biases[i]->deps;
    for (int i = 0; i < a->nscores; i++) deps |= a->scores[i]->deps;
    if (a->weight) deps |= a->weight->deps;
    return deps;
}

int attention_reads_rows(const Attention *a) { return a->rotary != NULL || (row_clause_deps(a) & DEP_ROW) != 0; }

const char *attention_interp_only(const Attention *a) { return row_clause_deps(a) & DEP_ROW ? "dot" : NULL; }

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
