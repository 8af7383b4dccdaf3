/* status.h — how every layer of the library reports an error: a status and
 * a one-line message in the caller's attnc_error (the library never prints),
 * and the version string generated code is stamped with. */
#ifndef ATTNC_STATUS_H
#define ATTNC_STATUS_H
#include "attnc.h"

/* attnc_version() returns it; emitters write it into generated code. */
#define ATTNC_VERSION_STR_(x) #x
#define ATTNC_VERSION_STR(x) ATTNC_VERSION_STR_(x)
#define ATTNC_VERSION_TEXT                                                                          \
    ATTNC_VERSION_STR(ATTNC_VERSION_MAJOR) "." ATTNC_VERSION_STR(ATTNC_VERSION_MINOR) "." ATTNC_VERSION_STR( \
        ATTNC_VERSION_PATCH)

/* Set err (if not NULL) and return its status. */
attnc_status set_error(attnc_error *err, attnc_status st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

#endif
