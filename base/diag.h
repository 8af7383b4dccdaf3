/* diag.h — collects spec diagnostics and renders them in the spec's form:
 *   FILE:LINE:COL: error: MESSAGE
 *       the source line
 *       ^~~~
 * Never prints: the rendered text is handed to the caller. */
#ifndef ATTNC_DIAG_H
#define ATTNC_DIAG_H
#include "arena.h"

/* A spec source: its name in messages and its bytes (any bytes). */
typedef struct Source {
    const char *name;
    const char *text;
    size_t len;
} Source;

/* A region of a source; lines and columns count from 1, last_col is exclusive. */
typedef struct Span {
    const Source *src;
    int first_line, first_col, last_line, last_col;
} Span;

enum { DIAG_MAX_ERRORS = 20 };

typedef struct Diag {
    Arena *arena;
    int errors;       /* distinct errors reported, not counting dropped ones */
    int stopped;      /* the cap was reached: callers should stop early */
    int failed;       /* out of memory: the text is incomplete */
    char *text;       /* rendered diagnostics, malloc'd */
    size_t len, cap;
    PtrVec seen;      /* rendered first lines, to drop exact repeats */
    PtrVec entries;   /* one rendered error each, in the order found */
} Diag;

/* Start an empty sink whose bookkeeping lives in `arena`. */
void diag_init(Diag *d, Arena *arena);
/* Free what diag_init and diag_error allocated outside the arena. */
void diag_fini(Diag *d);
/* Report an error at `span`; repeats of an identical error are dropped. */
void diag_error(Diag *d, Span span, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* Render every error, sorted by position, into the text diag_text returns. */
void diag_render(Diag *d);
/* The text of the last diag_render ("" if none). */
const char *diag_text(const Diag *d);

#endif
