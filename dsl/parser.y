/* parser.y — the grammar of the .attn language (spec section 3).
 * Requires: tokens from lexer.l.
 * Produces: an AstFile; syntax errors are reported through the Diag and
 * parsing recovers at the next ';' or '}' so that later errors are reported
 * in the same run. */
%define api.pure full
%define api.prefix {attn_yy}
%define api.location.type {Span}
%define parse.error custom
%locations
%expect 0

%code requires {
#include "ast.h"
#include "parse_state.h"
typedef void *yyscan_t;
/* The parser's stack grows on the heap, so only memory bounds nesting. */
#define YYMAXDEPTH 200000
#define YYLLOC_DEFAULT(Cur, Rhs, N)                                   \
    do {                                                              \
        if (N) {                                                      \
            (Cur) = YYRHSLOC(Rhs, 1);                                 \
            (Cur).last_line = YYRHSLOC(Rhs, N).last_line;             \
            (Cur).last_col = YYRHSLOC(Rhs, N).last_col;               \
        } else {                                                      \
            (Cur) = YYRHSLOC(Rhs, 0);                                 \
            (Cur).first_line = (Cur).last_line;                       \
            (Cur).first_col = (Cur).last_col;                         \
        }                                                             \
    } while (0)
}

%param {yyscan_t scanner}
%parse-param {ParseState *ps}

%code {
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int attn_yylex(ATTN_YYSTYPE *lval, Span *lloc, yyscan_t scanner);

/* Lists are built in reverse by the grammar and turned into arrays here. */
typedef struct ExprList { AstExpr *e; struct ExprList *next; } ExprList;

static void *alloc(ParseState *ps, size_t n) { return arena_alloc(ps->arena, n); }

static AstExpr *mk(ParseState *ps, AstExprKind kind, Span span) {
    AstExpr *e = alloc(ps, sizeof *e);
    if (!e) return NULL;
    e->kind = kind;
    e->span = span;
    e->depth = 1;
    return e;
}

static AstExpr *mk_ops(ParseState *ps, AstExprKind kind, Span span, int op, int n, AstExpr *a, AstExpr *b, AstExpr *c) {
    AstExpr *e = mk(ps, kind, span);
    AstExpr *ops[3] = {a, b, c};
    if (!e) return NULL;
    e->op = op;
    e->nargs = n;
    e->args = alloc(ps, sizeof(AstExpr *) * (size_t)n);
    if (!e->args) return NULL;
    for (int i = 0; i < n; i++) {
        if (!ops[i]) return NULL;
        e->args[i] = ops[i];
        if (ops[i]->depth + 1 > e->depth) e->depth = ops[i]->depth + 1;
    }
    return e;
}

static ExprList *cons(ParseState *ps, AstExpr *e, ExprList *rest) {
    ExprList *l = alloc(ps, sizeof *l);
    if (!l) return NULL;
    l->e = e;
    l->next = rest;
    return l;
}

/* Turn a reversed list into an array, updating e's depth when e is given;
 * 0 when out of memory or an element is missing after an earlier error. */
static int with_args(ParseState *ps, AstExpr *e, ExprList *rev, AstExpr ***args, int *nargs) {
    int n = 0;
    for (ExprList *l = rev; l; l = l->next) n++;
    AstExpr **a = alloc(ps, sizeof(AstExpr *) * (size_t)(n ? n : 1));
    if (!a) return 0;
    int i = n;
    for (ExprList *l = rev; l; l = l->next) {
        if (!l->e) return 0;
        a[--i] = l->e;
        if (e && l->e->depth + 1 > e->depth) e->depth = l->e->depth + 1;
    }
    *args = a;
    *nargs = n;
    return 1;
}

static AstExpr *mk_call(ParseState *ps, Span span, const char *name, Span name_span, ExprList *rev, AstExprKind kind) {
    AstExpr *e = mk(ps, kind, span);
    if (!e) return NULL;
    e->name = name;
    e->name_span = name_span;
    return with_args(ps, e, rev, &e->args, &e->nargs) ? e : NULL;
}

static AstItem *mk_item(ParseState *ps, AstItemKind kind, Span span, const char *name, Span name_span, AstExpr *expr) {
    AstItem *it = alloc(ps, sizeof *it);
    if (!it) return NULL;
    it->kind = kind;
    it->span = span;
    it->name = name;
    it->name_span = name_span;
    it->expr = expr;
    return it;
}

typedef struct BindList { AstBinding b; struct BindList *next; } BindList;

/* it with the (reversed) bindings as its array; NULL when out of memory. */
static AstItem *with_bindings(ParseState *ps, AstItem *it, BindList *rev) {
    if (!it) return NULL;
    int n = 0;
    for (BindList *l = rev; l; l = l->next) n++;
    it->nbinds = n;
    it->binds = alloc(ps, sizeof(AstBinding) * (size_t)(n ? n : 1));
    if (!it->binds) return NULL;
    for (BindList *l = rev; l; l = l->next) it->binds[--n] = l->b;
    return it;
}

static void attn_yyerror(Span *loc, yyscan_t scanner, ParseState *ps, const char *msg) {
    (void)scanner;
    if (ps->nomem) return; /* "memory exhausted": out of memory, not an error of the spec */
    parse_error(ps, *loc, "%s", msg);
}

/* The parser's stack grows with malloc past its first 200 levels; a failure
 * there is out of memory, which Bison alone would report as a syntax error. */
static void *parser_stack_alloc(ParseState *ps, size_t n) {
    void *p = malloc(n);
    if (!p) ps->nomem = 1;
    return p;
}
#define YYMALLOC(n) parser_stack_alloc(ps, n)
}

%union {
    int64_t ival;
    double fval;
    const char *str;
    AstExpr *expr;
    struct ExprList *list;
    AstItem *item;
    AstAttention *attn;
    int type;
    struct BindList *binds;
}

%token KW_ATTENTION "'attention'" KW_PARAM "'param'" KW_TENSOR "'tensor'" KW_LET "'let'"
%token KW_MASK "'mask'" KW_BIAS "'bias'" KW_SCORE "'score'" KW_SCALE "'scale'"
%token KW_WEIGHT "'weight'" KW_USE "'use'" KW_SUM "'sum'" KW_INT "'int'" KW_FLOAT "'float'"
%token KW_BOOL "'bool'" KW_ROTARY "'rotary'" KW_SINK "'sink'" KW_DOT "'dot'" KW_TRUE "'true'" KW_FALSE "'false'"
%token <str> IDENT "identifier"
%token <ival> INT_LIT "integer"
%token <fval> FLOAT_LIT "number"
%token EQ "'=='" NE "'!='" LE "'<='" GE "'>='" ANDAND "'&&'" OROR "'||'"

%type <expr> expr opt_default
%type <list> args opt_args
%type <item> item items
%type <attn> attention attentions attention_body
%type <type> type
%type <binds> bindings opt_bindings

%precedence SUM_BODY
%right '?' ':'
%left OROR
%left ANDAND
%left EQ NE
%left '<' LE '>' GE
%left '+' '-'
%left '*' '/' '%'
%precedence UNARY

%%

/* file := attention+ */
file
    : attentions                { AstAttention *rev = $1, *out = NULL;
                                  while (rev) { AstAttention *n = rev->next; rev->next = out; out = rev; rev = n; }
                                  ps->file->attentions = out; }
    ;

attentions
    : attention                 { $$ = $1; }
    | attentions attention      { if ($2) { $2->next = $1; $$ = $2; } else $$ = $1; }
    ;

/* attention := 'attention' NAME '{' item* '}' */
attention
    : attention_body            { $$ = $1; }
    | error attention_body      { $$ = $2; }   /* junk before an attention: skip to its keyword */
    | KW_ATTENTION IDENT '{' items error '}'  { $$ = NULL; yyerrok; }
    | error '}'                 { $$ = NULL; yyerrok; }
    ;

attention_body
    : KW_ATTENTION IDENT '{' items '}'
                                { AstItem *rev = $4, *out = NULL;
                                  while (rev) { AstItem *n = rev->next; rev->next = out; out = rev; rev = n; }
                                  $$ = alloc(ps, sizeof *$$);
                                  if ($$) { $$->name = $2; $$->name_span = @2; $$->span = @$; $$->items = out; } }
    ;

items
    : %empty                    { $$ = NULL; }
    | items item                { if ($2) { $2->next = $1; $$ = $2; } else $$ = $1; }
    ;

/* item := 'param' NAME ':' type ('=' expr)? ';' | 'tensor' NAME ':' elemtype '[' expr (',' expr)* ']' ';'
 *       | 'let' NAME '=' expr ';' | ('mask'|'bias'|'score'|'scale'|'weight') expr ';'
 *       | 'use' NAME ('(' NAME '=' expr (',' NAME '=' expr)* ')')? ';'
 *       | 'rotary' ('(' NAME '=' expr (',' NAME '=' expr)* ')')? ';' | 'sink' expr ';'   (version 2) */
item
    : KW_PARAM IDENT ':' type opt_default ';'
                                { $$ = mk_item(ps, ITEM_PARAM, @$, $2, @2, $5); if ($$) $$->type = $4; }
    | KW_TENSOR IDENT ':' type '[' args ']' ';'
                                { $$ = mk_item(ps, ITEM_TENSOR, @$, $2, @2, NULL);
                                  if ($$) { $$->type = $4;
                                            if ($4 == TYPE_BOOL) parse_error(ps, @4, "tensor elements must be int or float, not bool");
                                            if (!with_args(ps, NULL, $6, &$$->dims, &$$->ndims)) $$ = NULL; } }
    | KW_LET IDENT '=' expr ';'    { $$ = mk_item(ps, ITEM_LET, @$, $2, @2, $4); }
    | KW_MASK expr ';'             { $$ = mk_item(ps, ITEM_MASK, @$, NULL, @1, $2); }
    | KW_BIAS expr ';'             { $$ = mk_item(ps, ITEM_BIAS, @$, NULL, @1, $2); }
    | KW_SCORE expr ';'            { $$ = mk_item(ps, ITEM_SCORE, @$, NULL, @1, $2); }
    | KW_SCALE expr ';'            { $$ = mk_item(ps, ITEM_SCALE, @$, NULL, @1, $2); }
    | KW_WEIGHT expr ';'           { $$ = mk_item(ps, ITEM_WEIGHT, @$, NULL, @1, $2); }
    | KW_USE IDENT opt_bindings ';'
                                { $$ = with_bindings(ps, mk_item(ps, ITEM_USE, @$, $2, @2, NULL), $3); }
    | KW_ROTARY opt_bindings ';'   { $$ = with_bindings(ps, mk_item(ps, ITEM_ROTARY, @$, NULL, @1, NULL), $2); }
    | KW_SINK expr ';'             { $$ = mk_item(ps, ITEM_SINK, @$, NULL, @1, $2); }
    | error ';'                 { $$ = NULL; yyerrok; }
    ;

type
    : KW_INT                    { $$ = TYPE_INT; }
    | KW_FLOAT                  { $$ = TYPE_FLOAT; }
    | KW_BOOL                   { $$ = TYPE_BOOL; }
    ;

opt_default
    : %empty                    { $$ = NULL; }
    | '=' expr                  { $$ = $2; }
    ;

opt_bindings
    : %empty                    { $$ = NULL; }
    | '(' bindings ')'          { $$ = $2; }
    ;

bindings
    : IDENT '=' expr            { $$ = alloc(ps, sizeof *$$); if ($$) { $$->b.name = $1; $$->b.name_span = @1; $$->b.value = $3; } }
    | bindings ',' IDENT '=' expr
                                { $$ = alloc(ps, sizeof *$$);
                                  if ($$) { $$->b.name = $3; $$->b.name_span = @3; $$->b.value = $5; $$->next = $1; } }
    ;

args
    : expr                      { $$ = cons(ps, $1, NULL); }
    | args ',' expr             { $$ = $1 ? cons(ps, $3, $1) : NULL; }
    ;

opt_args
    : %empty                    { $$ = NULL; }
    | args                      { $$ = $1; }
    ;

/* expr := literal | NAME | NAME '(' args ')' | NAME '[' args ']' | '(' expr ')'
 *       | ('-'|'!') expr | expr OP expr | expr '?' expr ':' expr
 *       | 'sum' '(' NAME '<' expr ')' expr      (the body extends as far right as it can)
 *       | 'dot' '(' expr ',' expr ')'           (rows, version 2: checked by sema) */
expr
    : INT_LIT                   { $$ = mk(ps, AST_INT, @$); if ($$) $$->ival = $1; }
    | FLOAT_LIT                 { $$ = mk(ps, AST_FLOAT, @$); if ($$) $$->fval = $1; }
    | KW_TRUE                   { $$ = mk(ps, AST_BOOL, @$); if ($$) $$->bval = 1; }
    | KW_FALSE                  { $$ = mk(ps, AST_BOOL, @$); if ($$) $$->bval = 0; }
    | IDENT                     { $$ = mk(ps, AST_NAME, @$); if ($$) { $$->name = $1; $$->name_span = @1; } }
    | KW_SCORE                  { $$ = mk(ps, AST_NAME, @$); if ($$) { $$->name = "score"; $$->name_span = @1; } }
    | IDENT '(' opt_args ')'    { $$ = mk_call(ps, @$, $1, @1, $3, AST_CALL); }
    | type '(' opt_args ')'     { $$ = mk_call(ps, @$, $1 == TYPE_INT ? "int" : $1 == TYPE_FLOAT ? "float" : "bool", @1, $3, AST_CALL); }
    | IDENT '[' args ']'        { $$ = mk_call(ps, @$, $1, @1, $3, AST_INDEX); }
    | KW_DOT '(' opt_args ')'   { $$ = mk_call(ps, @$, "dot", @1, $3, AST_CALL); }
    | '(' expr ')'              { $$ = $2; }
    | '-' expr %prec UNARY      { $$ = mk_ops(ps, AST_UNARY, @$, '-', 1, $2, NULL, NULL); }
    | '!' expr %prec UNARY      { $$ = mk_ops(ps, AST_UNARY, @$, '!', 1, $2, NULL, NULL); }
    | expr '*' expr             { $$ = mk_ops(ps, AST_BINARY, @$, '*', 2, $1, $3, NULL); }
    | expr '/' expr             { $$ = mk_ops(ps, AST_BINARY, @$, '/', 2, $1, $3, NULL); }
    | expr '%' expr             { $$ = mk_ops(ps, AST_BINARY, @$, '%', 2, $1, $3, NULL); }
    | expr '+' expr             { $$ = mk_ops(ps, AST_BINARY, @$, '+', 2, $1, $3, NULL); }
    | expr '-' expr             { $$ = mk_ops(ps, AST_BINARY, @$, '-', 2, $1, $3, NULL); }
    | expr '<' expr             { $$ = mk_ops(ps, AST_BINARY, @$, '<', 2, $1, $3, NULL); }
    | expr '>' expr             { $$ = mk_ops(ps, AST_BINARY, @$, '>', 2, $1, $3, NULL); }
    | expr LE expr              { $$ = mk_ops(ps, AST_BINARY, @$, OP_LE, 2, $1, $3, NULL); }
    | expr GE expr              { $$ = mk_ops(ps, AST_BINARY, @$, OP_GE, 2, $1, $3, NULL); }
    | expr EQ expr              { $$ = mk_ops(ps, AST_BINARY, @$, OP_EQ, 2, $1, $3, NULL); }
    | expr NE expr              { $$ = mk_ops(ps, AST_BINARY, @$, OP_NE, 2, $1, $3, NULL); }
    | expr ANDAND expr          { $$ = mk_ops(ps, AST_BINARY, @$, OP_AND, 2, $1, $3, NULL); }
    | expr OROR expr            { $$ = mk_ops(ps, AST_BINARY, @$, OP_OR, 2, $1, $3, NULL); }
    | expr '?' expr ':' expr    { $$ = mk_ops(ps, AST_COND, @$, '?', 3, $1, $3, $5); }
    | KW_SUM '(' IDENT '<' expr ')' expr %prec SUM_BODY
                                { $$ = mk_ops(ps, AST_SUM, @$, 0, 2, $5, $7, NULL); if ($$) { $$->name = $3; $$->name_span = @3; } }
    ;

%%

/* Token names as users read them: strip bison's quotes around aliases. */
static const char *token_name(yysymbol_kind_t kind, char *buf, size_t n) {
    if (kind == YYSYMBOL_YYEOF) return "end of file";
    const char *s = yysymbol_name(kind);
    size_t len = strlen(s);
    if (len >= 2 && s[0] == '"' && s[len - 1] == '"') {
        snprintf(buf, n, "%.*s", (int)(len - 2), s + 1);
        return buf;
    }
    return s;
}

static int named(yysymbol_kind_t k, const char *const *names) {
    for (; *names; names++)
        if (strcmp(yysymbol_name(k), *names) == 0) return 1;
    return 0;
}

static int starts_expression(yysymbol_kind_t k) {
    static const char *const chars[] = {"'('", "'-'", "'!'", NULL};
    switch (k) {
    case YYSYMBOL_IDENT: case YYSYMBOL_INT_LIT: case YYSYMBOL_FLOAT_LIT: case YYSYMBOL_KW_TRUE:
    case YYSYMBOL_KW_FALSE: case YYSYMBOL_KW_SUM: case YYSYMBOL_KW_SCORE: case YYSYMBOL_KW_INT: case YYSYMBOL_KW_DOT:
    case YYSYMBOL_KW_FLOAT: case YYSYMBOL_KW_BOOL:
        return 1;
    default:
        return named(k, chars);
    }
}

static int starts_item(yysymbol_kind_t k) {
    switch (k) {
    case YYSYMBOL_KW_PARAM: case YYSYMBOL_KW_TENSOR: case YYSYMBOL_KW_LET: case YYSYMBOL_KW_MASK:
    case YYSYMBOL_KW_BIAS: case YYSYMBOL_KW_SCORE: case YYSYMBOL_KW_SCALE: case YYSYMBOL_KW_WEIGHT: case YYSYMBOL_KW_USE:
    case YYSYMBOL_KW_ROTARY: case YYSYMBOL_KW_SINK:
        return 1;
    default:
        return 0;
    }
}

static int is_operator(yysymbol_kind_t k) {
    static const char *const chars[] = {"'?'", "'<'", "'>'", "'+'", "'-'", "'*'", "'/'", "'%'", NULL};
    switch (k) {
    case YYSYMBOL_EQ: case YYSYMBOL_NE: case YYSYMBOL_LE: case YYSYMBOL_GE: case YYSYMBOL_ANDAND: case YYSYMBOL_OROR:
        return 1;
    default:
        return named(k, chars);
    }
}

/* "unexpected X, expected A, B or C": expression starters are folded into
 * "an expression", and long lists are left out as noise. */
static int yyreport_syntax_error(const yypcontext_t *ctx, yyscan_t scanner, ParseState *ps) {
    (void)scanner;
    enum { MAXEXP = 64 };
    yysymbol_kind_t exp[MAXEXP];
    int n = yypcontext_expected_tokens(ctx, exp, MAXEXP);
    yysymbol_kind_t got = yypcontext_token(ctx);
    if (got == YYSYMBOL_YYEOF && ps->input_cut) return 0;
    char unexpected[96], expected[256] = "", nb[64];
    if (got == YYSYMBOL_YYEOF)
        snprintf(unexpected, sizeof unexpected, "end of file");
    else if (ps->last_text)
        snprintf(unexpected, sizeof unexpected, "'%.40s'", ps->last_text);
    else
        snprintf(unexpected, sizeof unexpected, "%s", token_name(got, nb, sizeof nb));
    const char *names[MAXEXP];
    char bufs[MAXEXP][64];
    int m = 0, expr = 0, wants_expr = 0, wants_op = 0, wants_item = 0;
    for (int i = 0; i < n; i++) {
        wants_expr |= exp[i] == YYSYMBOL_INT_LIT;
        wants_op |= exp[i] == YYSYMBOL_OROR;
        wants_item |= exp[i] == YYSYMBOL_KW_MASK;
    }
    if (wants_item) names[m++] = "an item (mask, bias, let, ...)";
    for (int i = 0; i < n; i++) {
        if (wants_item && starts_item(exp[i])) {
            continue;
        } else if (wants_expr && starts_expression(exp[i])) {
            if (!expr) names[m++] = "an expression";
            expr = 1;
        } else if (wants_op && is_operator(exp[i])) {
            continue;
        } else if (exp[i] != YYSYMBOL_YYerror) {
            names[m] = token_name(exp[i], bufs[m], sizeof bufs[m]);
            m++;
        }
    }
    int wants_name = 0;
    for (int i = 0; i < n; i++) wants_name |= exp[i] == YYSYMBOL_IDENT;
    if (wants_name && !wants_expr && got >= YYSYMBOL_KW_ATTENTION && got <= YYSYMBOL_KW_FALSE) {
        parse_error(ps, *yypcontext_location(ctx), "%s is a keyword and cannot be used as a name", unexpected);
        return 0;
    }
    if (wants_op) names[m++] = "an operator";
    if (n > 0 && m > 0 && m <= 4) {
        size_t len = 0;
        for (int i = 0; i < m; i++) {
            const char *sep = i == 0 ? ", expected " : i == m - 1 ? " or " : ", ";
            len += (size_t)snprintf(expected + len, sizeof expected - len, "%s%s", sep, names[i]);
            if (len >= sizeof expected) break;
        }
    }
    parse_error(ps, *yypcontext_location(ctx), "unexpected %s%s", unexpected, expected);
    return 0;
}
