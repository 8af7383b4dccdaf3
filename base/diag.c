/* diag.c — diagnostic sink.
 * Requires: spans produced by the lexer/parser over a Source.
 * Produces: rendered text in the spec's section 8 format, capped at
 * DIAG_MAX_ERRORS, with exact repeats dropped (a `use`d attention is checked
 * once per use and would otherwise repeat its own errors). */
#include "diag.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void diag_init(Diag *d, Arena *arena) {
    memset(d, 0, sizeof *d);
    d->arena = arena;
}

void diag_fini(Diag *d) {
    free(d->text);
    d->text = NULL;
    d->len = d->cap = 0;
}

const char *diag_text(const Diag *d) { return d->text ? d->text : ""; }

static void append(Diag *d, const char *s, size_t n) {
    if (d->len + n + 1 > d->cap) {
        size_t cap = d->cap ? d->cap : 256;
        while (cap < d->len + n + 1) cap *= 2;
        char *t = realloc(d->text, cap);
        if (!t) {
            d->failed = 1;
            return;
        }
        d->text = t;
        d->cap = cap;
    }
    memcpy(d->text + d->len, s, n);
    d->len += n;
    d->text[d->len] = 0;
}

static void append_str(Diag *d, const char *s) { append(d, s, strlen(s)); }

/* Find line `line` (1-based) of src; returns its start and length. */
static const char *find_line(const Source *src, int line, size_t *len) {
    const char *p = src->text, *end = src->text + src->len;
    for (int l = 1; l < line && p < end; l++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) return NULL;
        p = nl + 1;
    }
    const char *e = p;
    while (e < end && *e != '\n' && *e != '\r') e++;
    *len = (size_t)(e - p);
    return p;
}

/* The source line, with bytes a terminal would mangle shown as '?', and the
 * caret line under [first_col, last_col), tabs copied so columns line up. */
static void append_excerpt(Diag *d, Span sp) {
    size_t n;
    const char *line = sp.src ? find_line(sp.src, sp.first_line, &n) : NULL;
    if (!line) return;
    size_t first = sp.first_col > 0 ? (size_t)sp.first_col - 1 : 0;
    /* a span running onto later lines is underlined to the end of its first line */
    size_t last = sp.last_line != sp.first_line ? n : sp.last_col > sp.first_col ? (size_t)sp.last_col - 1 : first + 1;
    if (first > n) first = n;
    if (last > n) last = n;
    /* a very long line is shown as a window around the error, marked with "..." */
    enum { WINDOW = 160 };
    size_t from = first > WINDOW / 2 ? first - WINDOW / 2 : 0;
    size_t to = from + WINDOW * 2 < n ? from + WINDOW * 2 : n;
    const char *lead = from > 0 ? "..." : "";
    char *shown = malloc(to - from + 8), *caret = malloc(to - from + 16);
    if (!shown || !caret) {
        d->failed = 1;
        free(shown);
        free(caret);
        return;
    }
    size_t k = 0;
    for (size_t i = from; i < to; i++) {
        unsigned char c = (unsigned char)line[i];
        shown[k++] = (c == '\t' || (c >= 32 && c < 127)) ? (char)c : '?';
    }
    shown[k] = 0;
    if (to < n) strcpy(shown + k, "...");
    if (last > to) last = to;
    if (last <= first) last = first + 1;
    k = 0;
    for (size_t i = 0; i < strlen(lead); i++) caret[k++] = ' ';
    for (size_t i = from; i < first; i++) caret[k++] = line[i] == '\t' ? '\t' : ' ';
    caret[k++] = '^';
    for (size_t i = first + 1; i < last; i++) caret[k++] = '~';
    caret[k] = 0;
    append_str(d, "    ");
    append_str(d, lead);
    append_str(d, shown);
    append_str(d, "\n    ");
    append_str(d, caret);
    append_str(d, "\n");
    free(shown);
    free(caret);
}

typedef struct Entry {
    Span span;
    int seq;
    char *text;
} Entry;

/* Order: by position in the file, then by the order they were found. */
static int entry_cmp(const void *pa, const void *pb) {
    const Entry *a = *(const Entry *const *)pa, *b = *(const Entry *const *)pb;
    if (a->span.first_line != b->span.first_line) return a->span.first_line < b->span.first_line ? -1 : 1;
    if (a->span.first_col != b->span.first_col) return a->span.first_col < b->span.first_col ? -1 : 1;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

void diag_render(Diag *d) {
    d->len = 0;
    if (d->text) d->text[0] = 0;
    if (d->entries.len > 1) qsort(d->entries.items, (size_t)d->entries.len, sizeof(void *), entry_cmp);
    for (int i = 0; i < d->entries.len; i++) append_str(d, ((Entry *)d->entries.items[i])->text);
    if (d->stopped) append_str(d, "attnc: too many errors; stopping\n");
}

void diag_error(Diag *d, Span sp, const char *fmt, ...) {
    if (d->stopped) return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char head[768];
    snprintf(head, sizeof head, "%s:%d:%d: error: %s\n", sp.src ? sp.src->name : "<input>", sp.first_line,
             sp.first_col, msg);
    for (int i = 0; i < d->seen.len; i++)
        if (strcmp(d->seen.items[i], head) == 0) return;
    char *copy = arena_strdup(d->arena, head);
    if (!copy || !ptrvec_push(d->arena, &d->seen, copy)) d->failed = 1;
    if (d->errors == DIAG_MAX_ERRORS) {
        d->stopped = 1;
        return;
    }
    /* render this one alone, then keep it as an entry to sort later */
    char *saved = d->text;
    size_t saved_len = d->len, saved_cap = d->cap;
    d->text = NULL;
    d->len = d->cap = 0;
    append_str(d, head);
    append_excerpt(d, sp);
    Entry *e = arena_alloc(d->arena, sizeof *e);
    if (e && d->text) {
        e->span = sp;
        e->seq = d->errors;
        e->text = arena_strdup(d->arena, d->text);
        if (!e->text || !ptrvec_push(d->arena, &d->entries, e)) d->failed = 1;
    } else {
        d->failed = 1;
    }
    free(d->text);
    d->text = saved;
    d->len = saved_len;
    d->cap = saved_cap;
    d->errors++;
}
