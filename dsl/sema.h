/* sema.h — the checked form of an attention: typed expression trees whose
 * names are resolved, `use`s flattened, int->float promotions explicit.
 * This is what the interpreter runs and what the IR is built from. */
#ifndef ATTNC_SEMA_H
#define ATTNC_SEMA_H
#include "ast.h"

/* T_ROW: a row of floats (Q, K or a tensor row, version 2); only the
 * arguments of dot have it. */
typedef enum Type { T_INT = 0, T_FLOAT = 1, T_BOOL = 2, T_ROW = 3 } Type;

/* The index variables and sizes every clause can read. */
typedef enum BuiltinVar {
    V_B, V_H, V_Q, V_KV, V_HK,                     /* per element */
    V_SIZE_B, V_SIZE_H, V_SIZE_HKV, V_SIZE_LQ, V_SIZE_LK, V_SIZE_D, V_SIZE_DV, /* per call */
    V_COUNT
} BuiltinVar;

typedef enum Fn {
    FN_ABS, FN_MIN, FN_MAX, FN_CLAMP, FN_EXP, FN_EXP2, FN_LOG, FN_LOG2, FN_SQRT, FN_TANH,
    FN_SIGMOID, FN_ERF, FN_POW, FN_FLOOR, FN_CEIL, FN_FLOAT, FN_INT, FN_SIGN,
    FN_SIN, FN_COS, /* version 2 */
    FN_COUNT
} Fn;

typedef enum XKind {
    X_CONST,  /* c */
    X_VAR,    /* var: a BuiltinVar */
    X_SCORE,
    X_PARAM,  /* decl */
    X_LET,    /* decl: evaluate decl->init here */
    X_SUMVAR, /* level: sums enclosing this one inside the same tree */
    X_TOFLOAT,/* args[0] int -> float */
    X_NEG, X_NOT,
    X_ADD, X_SUB, X_MUL, X_DIV, X_MOD,
    X_LT, X_LE, X_GT, X_GE, X_EQ, X_NE,
    X_AND, X_OR,
    X_COND,   /* args: cond, then, else */
    X_CALL,   /* fn, args */
    X_INDEX,  /* decl (a tensor), args: one per dimension */
    X_SUM,    /* args: bound, body; level: this sum's level */
    /* version 2: rows (type T_ROW) appear only as the arguments of X_DOT */
    X_ROW_Q,  /* Q[b, h, q, :] after rotary */
    X_ROW_K,  /* K[b, hk, kv, :] after rotary */
    X_ROW,    /* decl (a float tensor), args: every index but the last */
    X_DOT     /* args: two rows of the same length */
} XKind;

/* What an expression depends on, so clauses can be restricted (scale: sizes
 * and params only) and the middle end can hoist. */
/* The deepest expression accepted, lets expanded (see sema.c). */
#define SEMA_MAX_EVAL_DEPTH 1024

enum {
    DEP_B = 1 << 0, DEP_H = 1 << 1, DEP_Q = 1 << 2, DEP_KV = 1 << 3,
    DEP_SCORE = 1 << 4, DEP_TENSOR = 1 << 5, DEP_SIZE = 1 << 6, DEP_PARAM = 1 << 7,
    DEP_ROW = 1 << 8 /* reads a row of Q or K (dot): data no mask, scale or position may read */
};
#define DEP_ELEMENT (DEP_B | DEP_H | DEP_Q | DEP_KV | DEP_SCORE | DEP_TENSOR | DEP_ROW)

typedef union Const {
    int64_t i;
    double f;
    int b;
} Const;

typedef struct Decl Decl;

typedef struct TExpr {
    XKind kind;
    Type type;
    Span span;
    int deps;
    Const c;
    int var;   /* X_VAR */
    Fn fn;     /* X_CALL */
    int level; /* X_SUM, X_SUMVAR */
    int depth; /* evaluation depth with lets expanded: bounds recursion */
    int64_t size; /* node count with lets expanded (saturating) */
    Decl *decl;
    struct TExpr **args;
    int nargs;
} TExpr;

typedef enum DeclKind { D_PARAM, D_TENSOR, D_LET } DeclKind;

struct Decl {
    DeclKind kind;
    const char *name;
    Span span;
    Type type;     /* param or let type; tensor element type (T_INT or T_FLOAT) */
    TExpr *init;   /* let value, bound param value, or param default (NULL: none) */
    TExpr **dims;  /* tensors */
    int ndims;
    int index;     /* position in the attention's params or tensors */
    int bound;     /* a param bound by `use x(p = e)`: a let that messages still call a param */
    int poisoned;  /* its declaration had errors: uses are dropped silently, no cascade */
    Decl *canon;   /* the equal declaration this one was merged into, or NULL */
};

/* Follow merges to the declaration that stands for all equal ones. */
static inline Decl *decl_canon(Decl *d) {
    while (d->canon) d = d->canon;
    return d;
}

/* rotary(...) (version 2): each argument NULL where it takes its default
 * (base 10000.0, dims D, qpos q, kvpos kv, interleaved false). */
typedef struct Rotary {
    Span span;
    TExpr *base;        /* float over sizes and params */
    TExpr *dims;        /* int over sizes and params */
    TExpr *qpos;        /* int over b, h, q, sizes, params, tensors */
    TExpr *kvpos;       /* int over b, hk, kv, sizes, params, tensors */
    TExpr *interleaved; /* bool over sizes and params */
} Rotary;

typedef struct Attention {
    const char *name;
    Span span;
    Decl **params; /* unbound params, each with its index */
    int nparams;
    Decl **tensors;
    int ntensors;
    TExpr **masks, **biases, **scores;
    int nmasks, nbiases, nscores;
    TExpr *scale;  /* NULL: 1/sqrt(D) */
    TExpr *weight; /* NULL: softmax */
    Rotary *rotary; /* NULL: none (version 2) */
    TExpr *sink;    /* NULL: none; float over b, h, q, sizes, params, tensors (version 2) */
} Attention;

typedef struct Program {
    Attention **attns; /* the file's own attentions, in file order */
    int nattns;
} Program;

/* Check a parsed file against the prelude; errors go to diag.  Returns the
 * checked attentions (meaningful only when diag has no errors), or NULL when
 * out of memory. */
Program *sema_check(AstFile *file, AstFile *prelude, Arena *arena, Diag *diag);

/* 1 if a reads rows (dot) or rotates Q and K (version 2). */
int attention_reads_rows(const Attention *a);

/* The version-2 construct a uses that the compiled backends cannot run yet
 * ("dot"), or NULL: such attentions run on the interpreter only for now.
 * (rotary and sink run around compiled kernels: api/api_rope_sink.c.) */
const char *attention_interp_only(const Attention *a);

/* Names of things, for messages and dumps. */
const char *type_name(Type t);
const char *fn_name(Fn f);
const char *builtin_var_name(int v);

#endif
