/* rows_table.c — rewrite an attention's dot products of rows into reads of
 * per-call tables (rows_table.h says why that is exact).
 * Requires: a checked Attention.
 * Produces: a new Attention (from the arena) sharing every subtree without a
 * dot; lets that contain one are copied with their values rewritten. */
#include "rows_table.h"

#include <string.h>

typedef struct Rewrite {
    Arena *arena;
    const Attention *a;
    PtrVec tables; /* RowTable* */
    PtrVec lets_from, lets_to; /* Decl*: lets copied so far */
    const char *why;
} Rewrite;

static TExpr *rewrite(Rewrite *rw, TExpr *e);

/* A copy of e's node with operands args (deps, depth and size from them). */
static TExpr *with_args(Rewrite *rw, const TExpr *e, TExpr **args) {
    TExpr *t = arena_alloc(rw->arena, sizeof *t);
    TExpr **a = arena_alloc(rw->arena, sizeof(TExpr *) * (size_t)(e->nargs ? e->nargs : 1));
    if (!t || !a) return NULL;
    *t = *e;
    t->args = a;
    t->deps = e->kind == X_INDEX ? DEP_TENSOR : 0;
    t->depth = 1;
    t->size = 1;
    for (int i = 0; i < e->nargs; i++) {
        a[i] = args[i];
        t->deps |= args[i]->deps;
        if (args[i]->depth + 1 > t->depth) t->depth = args[i]->depth + 1;
        t->size += args[i]->size;
    }
    return t;
}

static TExpr *var(Rewrite *rw, int v, int deps) {
    TExpr *t = arena_alloc(rw->arena, sizeof *t);
    if (!t) return NULL;
    t->kind = X_VAR;
    t->type = T_INT;
    t->var = v;
    t->deps = deps;
    t->depth = t->size = 1;
    return t;
}

/* The table of (is_k, E), added on first use. */
static RowTable *table_of(Rewrite *rw, int is_k, const Decl *E) {
    for (int i = 0; i < rw->tables.len; i++) {
        RowTable *t = rw->tables.items[i];
        if (t->is_k == is_k && t->tensor == E) return t;
    }
    RowTable *t = arena_alloc(rw->arena, sizeof *t);
    Decl *d = arena_alloc(rw->arena, sizeof *d);
    int lead = E->ndims - 1;
    TExpr **dims = arena_alloc(rw->arena, sizeof(TExpr *) * (size_t)(3 + lead));
    char *name = arena_alloc(rw->arena, strlen(E->name) + 16);
    if (!t || !d || !dims || !name || !ptrvec_push(rw->arena, &rw->tables, t)) return NULL;
    strcpy(name, is_k ? "dot(K, " : "dot(Q, "); /* not a name a spec can declare */
    strcat(name, E->name);
    strcat(name, ")");
    dims[0] = var(rw, V_SIZE_B, DEP_SIZE);
    dims[1] = var(rw, is_k ? V_SIZE_HKV : V_SIZE_H, DEP_SIZE);
    dims[2] = var(rw, is_k ? V_SIZE_LK : V_SIZE_LQ, DEP_SIZE);
    for (int i = 0; i < lead; i++) dims[3 + i] = E->dims[i];
    d->kind = D_TENSOR;
    d->name = name;
    d->span = E->span;
    d->type = T_FLOAT;
    d->dims = dims;
    d->ndims = 3 + lead;
    d->index = rw->a->ntensors + rw->tables.len - 1;
    t->is_k = is_k;
    t->tensor = E;
    t->decl = d;
    return t;
}

/* dot(X, Y) as a read of the table of its Q or K row against its tensor row. */
static TExpr *rewrite_dot(Rewrite *rw, TExpr *e) {
    TExpr *x = e->args[0], *y = e->args[1];
    if (x->kind == X_ROW) {
        TExpr *s = x;
        x = y;
        y = s;
    }
    if (x->kind == X_ROW || y->kind != X_ROW) {
        rw->why = x->kind == X_ROW ? "dot of two tensor rows" : "dot(Q, K)";
        return NULL;
    }
    int is_k = x->kind == X_ROW_K;
    RowTable *t = table_of(rw, is_k, decl_canon(y->decl));
    int lead = y->nargs;
    TExpr **args = arena_alloc(rw->arena, sizeof(TExpr *) * (size_t)(3 + lead));
    if (!t || !args) return NULL;
    args[0] = var(rw, V_B, DEP_B);
    args[1] = var(rw, is_k ? V_HK : V_H, DEP_H);
    args[2] = var(rw, is_k ? V_KV : V_Q, is_k ? DEP_KV : DEP_Q);
    for (int i = 0; i < lead; i++)
        if (!(args[3 + i] = rewrite(rw, y->args[i]))) return NULL;
    TExpr node = *e;
    node.kind = X_INDEX;
    node.type = T_FLOAT;
    node.decl = t->decl;
    node.nargs = 3 + lead;
    return with_args(rw, &node, args);
}

/* A let whose value has a dot, copied with its value rewritten (once). */
static TExpr *rewrite_let(Rewrite *rw, TExpr *e) {
    Decl *from = e->decl, *to = NULL;
    for (int i = 0; i < rw->lets_from.len && !to; i++)
        if (rw->lets_from.items[i] == from) to = rw->lets_to.items[i];
    if (!to) {
        to = arena_alloc(rw->arena, sizeof *to);
        if (!to) return NULL;
        *to = *from;
        to->canon = NULL;
        if (!(to->init = rewrite(rw, decl_canon(from)->init))) return NULL;
        if (!ptrvec_push(rw->arena, &rw->lets_from, from) || !ptrvec_push(rw->arena, &rw->lets_to, to)) return NULL;
    }
    TExpr *t = arena_alloc(rw->arena, sizeof *t);
    if (!t) return NULL;
    *t = *e;
    t->decl = to;
    t->deps = to->init->deps;
    t->depth = to->init->depth + 1;
    t->size = to->init->size;
    return t;
}

static TExpr *rewrite(Rewrite *rw, TExpr *e) {
    if (!e || !(e->deps & DEP_ROW)) return e;
    if (e->kind == X_DOT) return rewrite_dot(rw, e);
    if (e->kind == X_LET) return rewrite_let(rw, e);
    TExpr *args[8], **big = NULL, **a = args;
    if (e->nargs > 8 && !(a = big = arena_alloc(rw->arena, sizeof(TExpr *) * (size_t)e->nargs))) return NULL;
    for (int i = 0; i < e->nargs; i++)
        if (!(a[i] = rewrite(rw, e->args[i]))) return NULL;
    return with_args(rw, e, a);
}

static int rewrite_all(Rewrite *rw, TExpr **list, int n, TExpr ***out) {
    *out = arena_alloc(rw->arena, sizeof(TExpr *) * (size_t)(n ? n : 1));
    if (!*out) return 0;
    for (int i = 0; i < n; i++)
        if (!((*out)[i] = rewrite(rw, list[i]))) return 0;
    return 1;
}

RowsRewrite *rows_rewrite(Arena *arena, const Attention *a, const char **why) {
    Rewrite rw = {arena, a, {0}, {0}, {0}, NULL};
    RowsRewrite *out = arena_alloc(arena, sizeof *out);
    Attention *na = arena_alloc(arena, sizeof *na);
    *why = "out of memory";
    if (!out || !na) return NULL;
    *na = *a;
    if (!rewrite_all(&rw, a->biases, a->nbiases, &na->biases) || !rewrite_all(&rw, a->scores, a->nscores, &na->scores) ||
        (a->weight && !(na->weight = rewrite(&rw, a->weight)))) {
        if (rw.why) *why = rw.why;
        return NULL;
    }
    Decl **tensors = arena_alloc(arena, sizeof(Decl *) * (size_t)(a->ntensors + rw.tables.len + 1));
    RowTable *tables = arena_alloc(arena, sizeof(RowTable) * (size_t)(rw.tables.len + 1));
    if (!tensors || !tables) return NULL;
    for (int i = 0; i < a->ntensors; i++) tensors[i] = a->tensors[i];
    for (int i = 0; i < rw.tables.len; i++) {
        tables[i] = *(RowTable *)rw.tables.items[i];
        tensors[a->ntensors + i] = tables[i].decl;
    }
    na->tensors = tensors;
    na->ntensors = a->ntensors + rw.tables.len;
    out->attn = na;
    out->ntensors_before = a->ntensors;
    out->tables = tables;
    out->ntables = rw.tables.len;
    return out;
}
