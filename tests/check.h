/* check.h — CHECK(cond, fmt, ...): a test's assertion that counts and
 * prints a failure (file and line, then the message) and goes on; the test
 * exits non-zero when `failures` is not 0.  For the tests that call the
 * library's internals directly (test_llvm*.c, test_layouts_llvm.c). */
#ifndef ATTNC_TEST_CHECK_H
#define ATTNC_TEST_CHECK_H
#include <stdio.h>

static int failures;

#define CHECK(cond, ...)                                                                                               \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            failures++;                                                                                                \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                                                \
            printf(__VA_ARGS__);                                                                                       \
            printf("\n");                                                                                              \
        }                                                                                                              \
    } while (0)

#endif
