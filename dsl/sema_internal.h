/* sema_internal.h — what the two halves of the checker share: sema.c
 * (declarations, clauses, `use`, the entry point) and sema_expr.c (names,
 * typing and checking one expression).  Not part of the front end's
 * interface; only dsl/sema*.c include it. */
#ifndef ATTNC_SEMA_INTERNAL_H
#define ATTNC_SEMA_INTERNAL_H
#include "sema.h"

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
    TExpr *scale, *weight, *sink;
    Span scale_at, weight_at, sink_at;
    Rotary *rotary;
    Span rotary_at;
    Binding *binds;
    int nbinds;
    /* while checking one expression: */
    SumBinder *sums;
    int sum_level;
    int score_ok;
} Scope;

/* ---- from sema_expr.c ------------------------------------------------- */

/* 1 if name is a built-in variable or function (it cannot be redeclared). */
int sema_is_builtin_name(const char *name);

/* The entry of sc that declares name, or NULL. */
Entry *sema_lookup(Scope *sc, const char *name);

/* e with an int->float promotion on top if it is int; NULL stays NULL. */
TExpr *sema_to_float(Sema *s, TExpr *e);

/* e converted to `want` (int promotes to float); NULL with an error naming `what` otherwise. */
TExpr *sema_coerce(Sema *s, TExpr *e, Type want, const char *what);

/* 1 if e depends only on `allowed`; else reports the first offending use, as `what`, and returns 0. */
int sema_check_deps(Sema *s, TExpr *e, int allowed, const char *what);

/* The same, saying what is allowed in words ("b, h, q, sizes, params and tensors"). */
int sema_check_deps_on(Sema *s, TExpr *e, int allowed, const char *what, const char *allowed_text);

/* 1 if e has no dot(...) (through lets too); else reports it as not allowed in `what` and returns 0. */
int sema_no_dot(Sema *s, TExpr *e, const char *what);

/* 1 if e does not read built-in variable `var`; else reports it (`what` may not read it: `why`) and returns 0. */
int sema_no_var(Sema *s, TExpr *e, int var, const char *what, const char *why);

/* The typed tree of one top-level expression of an item (score readable iff score_ok),
 * or NULL with its errors reported; refuses absurd depths and sizes. */
TExpr *sema_check_root(Sema *s, Scope *sc, AstExpr *e, int score_ok);

#endif
