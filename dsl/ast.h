/* ast.h — the syntax tree the parser builds, with a source span on every
 * node.  Nothing here is checked: names are strings, types are unknown.
 * All nodes live in the compile's arena. */
#ifndef ATTNC_AST_H
#define ATTNC_AST_H
#include <stdint.h>

#include "arena.h"
#include "diag.h"

typedef enum AstExprKind {
    AST_INT,
    AST_FLOAT,
    AST_BOOL,
    AST_NAME,
    AST_UNARY,  /* op: '-' or '!' */
    AST_BINARY, /* op: a Tok* value or a character */
    AST_COND,   /* args: cond, then, else */
    AST_CALL,   /* name(args) */
    AST_INDEX,  /* name[args] */
    AST_SUM     /* sum(name < args[0]) args[1] */
} AstExprKind;

/* Binary operators that are not single characters. */
enum { OP_EQ = 256, OP_NE, OP_LE, OP_GE, OP_AND, OP_OR };

typedef struct AstExpr {
    AstExprKind kind;
    Span span;
    int op;
    int depth; /* 1 + the deepest operand: lets the checker refuse absurd nesting before recursing */
    int64_t ival;
    double fval;
    int bval;
    const char *name;
    Span name_span;
    struct AstExpr **args;
    int nargs;
} AstExpr;

typedef enum AstItemKind {
    ITEM_PARAM,
    ITEM_TENSOR,
    ITEM_LET,
    ITEM_MASK,
    ITEM_BIAS,
    ITEM_SCORE,
    ITEM_SCALE,
    ITEM_WEIGHT,
    ITEM_USE,
    ITEM_ROTARY, /* binds: its named arguments (version 2) */
    ITEM_SINK    /* expr (version 2) */
} AstItemKind;

typedef enum AstType { TYPE_INT = 0, TYPE_FLOAT = 1, TYPE_BOOL = 2 } AstType;

typedef struct AstBinding {
    const char *name;
    Span name_span;
    AstExpr *value;
} AstBinding;

typedef struct AstItem {
    AstItemKind kind;
    Span span;
    const char *name; /* param/tensor/let name, or the used attention */
    Span name_span;
    AstType type;     /* param type or tensor element type */
    AstExpr *expr;    /* clause expression, let value or param default (may be NULL) */
    AstExpr **dims;   /* tensor dimensions */
    int ndims;
    AstBinding *binds; /* use bindings, or rotary's arguments */
    int nbinds;
    struct AstItem *next;
} AstItem;

typedef struct AstAttention {
    const char *name;
    Span name_span;
    Span span;
    AstItem *items;
    struct AstAttention *next;
} AstAttention;

typedef struct AstFile {
    const Source *src;
    AstAttention *attentions;
} AstFile;

/* Parse `src` into a file; errors go to `diag`.  Returns NULL only when out
 * of memory; a file with syntax errors returns what could be recovered. */
AstFile *parse_source(const Source *src, Arena *arena, Diag *diag);

#endif
