/* parse.c — runs the Flex scanner and the Bison parser over one source.
 * Requires: a Source and an arena.  Produces: an AstFile (possibly partial
 * when there were syntax errors, which are in the Diag). */
#include <stdarg.h>
#include <stdio.h>

#include "parse_state.h"
#include "parser.h"
#define YYSTYPE ATTN_YYSTYPE
#define YYLTYPE Span
#include "lexer.h"

void parse_error(ParseState *ps, Span span, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    diag_error(ps->diag, span, "%s", msg);
}

AstFile *parse_source(const Source *src, Arena *arena, Diag *diag) {
    ParseState ps = {0};
    ps.src = src;
    ps.arena = arena;
    ps.diag = diag;
    ps.line = ps.col = 1;
    ps.end_line = ps.end_col = 0;
    ps.file = arena_alloc(arena, sizeof *ps.file);
    if (!ps.file) return NULL;
    ps.file->src = src;
    yyscan_t scanner;
    if (attn_yylex_init_extra(&ps, &scanner)) return NULL;
    /* volatile: read again after a longjmp from flex's fatal-error hook */
    volatile int ok = 1;
    if (setjmp(ps.fatal) == 0) {
        YY_BUFFER_STATE buf = attn_yy_scan_bytes(src->text, (int)src->len, scanner);
        if (buf) {
            attn_yyparse(scanner, &ps);
            attn_yy_delete_buffer(buf, scanner);
        } else {
            ok = 0;
        }
    } else {
        ok = 0;
    }
    attn_yylex_destroy(scanner);
    scan_blocks_free(&ps);
    return ok && !ps.nomem && !arena_failed(arena) ? ps.file : NULL;
}
