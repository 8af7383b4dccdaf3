/* strbuf.h — a growable string, for dumps and emitted text.  An allocation
 * failure sets `failed` and drops later output, so a writer checks once at
 * the end instead of after every piece. */
#ifndef ATTNC_STRBUF_H
#define ATTNC_STRBUF_H
#include <stddef.h>

typedef struct StrBuf {
    char *p;
    size_t len, cap;
    int failed;
} StrBuf;
void sb_printf(StrBuf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
void sb_free(StrBuf *b);

#endif
