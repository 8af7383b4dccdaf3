/* parse_state.h — what the lexer and the parser share while one source is
 * being parsed (the scanner's "extra" data and the parser's parameter). */
#ifndef ATTNC_PARSE_STATE_H
#define ATTNC_PARSE_STATE_H
#include <setjmp.h>

#include "ast.h"

typedef struct ParseState {
    const Source *src;
    Arena *arena;
    Diag *diag;
    AstFile *file;
    int line, col;          /* where the next token starts */
    const char *last_text;  /* text of the token last returned, for syntax errors */
    int end_line, end_col;  /* just after the last token: where "unexpected end of file" points */
    int input_cut;          /* the lexer stopped early (unterminated comment): EOF is no news */
    jmp_buf fatal;          /* flex's fatal errors (out of memory) land here */
    void *scan_blocks;      /* what flex allocated and has not freed (lexer.l) */
    int nomem;              /* the parser's stack could not grow */
} ParseState;

/* Free what flex left allocated after a fatal error (after yylex_destroy). */
void scan_blocks_free(ParseState *ps);

/* Report a lexical or syntax error at span. */
void parse_error(ParseState *ps, Span span, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

#endif
