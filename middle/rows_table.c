/* rows_table.c — rewrite an attention's dot products of rows into reads of
 * per-call tables, or into sums (rows_table.h says why that is exact).
 * Requires: a checked Attention.
 * Produces: a new Attention (from the arena) sharing every subtree without a
 * dot; lets that contain one are copied with their values rewritten. */
#include "rows_table.h"

#include <string.h>

#include "attnc.h"

typedef struct Rewrite {
    Arena *arena;
    const Attention *a;
    PtrVec tables; /* RowTable* */
    PtrVec lets_from, lets_to; /* Decl*: lets copied so far */
    Decl *rows[2];  /* Q's and K's rows as tensors (dots rewritten into sums), made on first use */
    int level;      /* sums open around the node being rewritten, in its tree (a let starts its own) */
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

/* Q's rows (is_k 0: [B, H, Lq, D]) or K's (is_k 1: [B, Hkv, Lk, D]) as a
 * float tensor of the rewritten attention, added on first use; its index is
 * set when every table is known (rows_rewrite). */
static Decl *rows_of(Rewrite *rw, int is_k, Span span) {
    if (rw->rows[is_k]) return rw->rows[is_k];
    Decl *d = arena_alloc(rw->arena, sizeof *d);
    TExpr **dims = arena_alloc(rw->arena, sizeof(TExpr *) * 4);
    if (!d || !dims) return NULL;
    dims[0] = var(rw, V_SIZE_B, DEP_SIZE);
    dims[1] = var(rw, is_k ? V_SIZE_HKV : V_SIZE_H, DEP_SIZE);
    dims[2] = var(rw, is_k ? V_SIZE_LK : V_SIZE_LQ, DEP_SIZE);
    dims[3] = var(rw, V_SIZE_D, DEP_SIZE);
    d->kind = D_TENSOR;
    d->name = is_k ? "rows(K)" : "rows(Q)"; /* not a name a spec can declare */
    d->span = span;
    d->type = T_FLOAT;
    d->dims = dims;
    d->ndims = 4;
    return rw->rows[is_k] = d;
}

/* e with every sum at level `from` or deeper (and their variables) one level
 * deeper: e moves inside a new sum of level `from`.  Lets keep their own
 * levels (they start from 0 wherever they are used). */
static TExpr *deeper(Rewrite *rw, TExpr *e, int from) {
    if (e->kind == X_SUMVAR && e->level >= from) {
        TExpr *t = arena_alloc(rw->arena, sizeof *t);
        if (!t) return NULL;
        *t = *e;
        t->level++;
        return t;
    }
    if (e->kind == X_LET || e->nargs == 0) return e;
    TExpr *args[8], **big = NULL, **a = args;
    if (e->nargs > 8 && !(a = big = arena_alloc(rw->arena, sizeof(TExpr *) * (size_t)e->nargs))) return NULL;
    int changed = e->kind == X_SUM && e->level >= from;
    for (int i = 0; i < e->nargs; i++) {
        if (!(a[i] = deeper(rw, e->args[i], from))) return NULL;
        changed |= a[i] != e->args[i];
    }
    if (!changed) return e;
    TExpr *t = with_args(rw, e, a);
    if (t && e->kind == X_SUM && e->level >= from) t->level++;
    return t;
}

/* Element r (a sum variable) of row x: Q[b, h, q, r], K[b, hk, kv, r] (as
 * tensors) or E[i..., r]; x's indices already rewritten and made deeper. */
static TExpr *element(Rewrite *rw, const TExpr *x, TExpr **lead, TExpr *r) {
    TExpr *args[ATTNC_MAX_RANK + 1];
    TExpr node = *x;
    node.kind = X_INDEX;
    node.type = T_FLOAT;
    if (x->kind == X_ROW) {
        for (int i = 0; i < x->nargs; i++) args[i] = lead[i];
        node.nargs = x->nargs + 1;
    } else {
        int is_k = x->kind == X_ROW_K;
        if (!(node.decl = rows_of(rw, is_k, x->span))) return NULL;
        args[0] = var(rw, V_B, DEP_B);
        args[1] = var(rw, is_k ? V_HK : V_H, DEP_H);
        args[2] = var(rw, is_k ? V_KV : V_Q, is_k ? DEP_KV : DEP_Q);
        if (!args[0] || !args[1] || !args[2]) return NULL;
        node.nargs = 4;
    }
    args[node.nargs - 1] = r;
    return with_args(rw, &node, args);
}

/* The length of a row: D, or the tensor's last extent. */
static TExpr *length_of(Rewrite *rw, const TExpr *x) {
    if (x->kind != X_ROW) return var(rw, V_SIZE_D, DEP_SIZE);
    const Decl *d = decl_canon(x->decl);
    return d->dims[d->ndims - 1];
}

/* A node of kind `kind` (type `type`, `level` for a sum) over a and b, at e's span. */
static TExpr *binary(Rewrite *rw, const TExpr *e, XKind kind, Type type, int level, TExpr *a, TExpr *b) {
    TExpr node = *e;
    node.kind = kind;
    node.type = type;
    node.level = level;
    node.nargs = 2;
    return with_args(rw, &node, (TExpr *[]){a, b});
}

/* The bound of the sum of dot(x, y): the longer row's length.  The library
 * checks per call that both are equal (bind.c), before anything runs; code
 * that does not (ahead-of-time C) then still reads the shorter row past its
 * end, which is an index error where the dot is evaluated, never a silently
 * shorter sum. */
static TExpr *row_length(Rewrite *rw, const TExpr *e, const TExpr *x, const TExpr *y) {
    TExpr *a = length_of(rw, x), *b = length_of(rw, y);
    if (!a || !b || a == b || (a->kind == X_VAR && b->kind == X_VAR && a->var == b->var)) return a && b ? a : NULL;
    TExpr *max = binary(rw, e, X_CALL, T_INT, 0, a, b);
    if (max) max->fn = FN_MAX;
    return max;
}

/* dot(X, Y) that no table expresses (dot(Q, K), two tensor rows, ...) as
 *     sum(r < n) X[.., r] * Y[.., r]
 * with Q's and K's rows read as tensors, n the rows' length (row_length).
 * The sum is the IR's own form: pass_lowrank.c moves such a bias term whose
 * X is per query row and Y per key into extra Q/K columns of the QK
 * product, anything else is computed per element like any sum, and the
 * backward differentiates it as one (a sum chain over the tensors' loads). */
static TExpr *dot_as_sum(Rewrite *rw, TExpr *e) {
    TExpr *rows[2] = {e->args[0], e->args[1]}, *lead[2][ATTNC_MAX_RANK];
    int level = rw->level;
    for (int s = 0; s < 2; s++)
        for (int i = 0; rows[s]->kind == X_ROW && i < rows[s]->nargs; i++) {
            TExpr *ix = rewrite(rw, rows[s]->args[i]);
            if (!ix || !(lead[s][i] = deeper(rw, ix, level))) return NULL;
        }
    TExpr *n = row_length(rw, e, rows[0], rows[1]), *r = arena_alloc(rw->arena, sizeof *r);
    if (!n || !r) return NULL;
    *r = (TExpr){.kind = X_SUMVAR, .type = T_INT, .span = e->span, .level = level, .depth = 1, .size = 1};
    TExpr *x = element(rw, rows[0], lead[0], r), *y = element(rw, rows[1], lead[1], r);
    TExpr *body = x && y ? binary(rw, e, X_MUL, T_FLOAT, 0, x, y) : NULL;
    return body ? binary(rw, e, X_SUM, T_FLOAT, level, n, body) : NULL;
}

/* dot(X, Y) as a read of the table of its Q or K row against its tensor
 * row, or (any other pair of rows) as a sum. */
static TExpr *rewrite_dot(Rewrite *rw, TExpr *e) {
    TExpr *x = e->args[0], *y = e->args[1];
    if (x->kind == X_ROW) {
        TExpr *s = x;
        x = y;
        y = s;
    }
    if (x->kind == X_ROW || y->kind != X_ROW) return dot_as_sum(rw, e);
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
        int level = rw->level;
        rw->level = 0; /* a let's sums number their levels from 0 */
        to->init = rewrite(rw, decl_canon(from)->init);
        rw->level = level;
        if (!to->init) return NULL;
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
    for (int i = 0; i < e->nargs; i++) {
        int body = e->kind == X_SUM && i == 1; /* a sum's body is one level deeper than its bound */
        rw->level += body;
        a[i] = rewrite(rw, e->args[i]);
        rw->level -= body;
        if (!a[i]) return NULL;
    }
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
    Rewrite rw = {arena, a, {0}, {0}, {0}, {NULL, NULL}, 0};
    RowsRewrite *out = arena_alloc(arena, sizeof *out);
    Attention *na = arena_alloc(arena, sizeof *na);
    *why = "out of memory";
    if (!out || !na) return NULL;
    *na = *a;
    if (!rewrite_all(&rw, a->biases, a->nbiases, &na->biases) || !rewrite_all(&rw, a->scores, a->nscores, &na->scores) ||
        (a->weight && !(na->weight = rewrite(&rw, a->weight))))
        return NULL;
    int n = a->ntensors + rw.tables.len;
    Decl **tensors = arena_alloc(arena, sizeof(Decl *) * (size_t)(n + 3));
    RowTable *tables = arena_alloc(arena, sizeof(RowTable) * (size_t)(rw.tables.len + 1));
    if (!tensors || !tables) return NULL;
    for (int i = 0; i < a->ntensors; i++) tensors[i] = a->tensors[i];
    for (int i = 0; i < rw.tables.len; i++) {
        tables[i] = *(RowTable *)rw.tables.items[i];
        tensors[a->ntensors + i] = tables[i].decl;
    }
    for (int is_k = 0; is_k < 2; is_k++) { /* after the tables: their indexes are fixed as they are made */
        out->row_tensor[is_k] = rw.rows[is_k] ? n : -1;
        if (rw.rows[is_k]) (tensors[n] = rw.rows[is_k])->index = n, n++;
    }
    na->tensors = tensors;
    na->ntensors = n;
    out->attn = na;
    out->ntensors_before = a->ntensors;
    out->tables = tables;
    out->ntables = rw.tables.len;
    return out;
}

void rows_needed(const RowsRewrite *rw, int rotary, int *need_q, int *need_k) {
    *need_q = *need_k = rotary != 0;
    if (!rw) return;
    for (int t = 0; t < rw->ntables; t++) *(rw->tables[t].is_k ? need_k : need_q) = 1;
    if (rw->row_tensor[0] >= 0) *need_q = 1;
    if (rw->row_tensor[1] >= 0) *need_k = 1;
}

int rows_read_k(const RowsRewrite *rw) {
    for (int t = 0; t < rw->ntables; t++)
        if (rw->tables[t].is_k) return 1;
    return rw->row_tensor[1] >= 0;
}
