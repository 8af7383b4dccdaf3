/* status.c — the library's one way of reporting an error (status.h). */
#include "status.h"

#include <stdarg.h>
#include <stdio.h>

attnc_status set_error(attnc_error *err, attnc_status st, const char *fmt, ...) {
    if (err) {
        err->status = st;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return st;
}
