/* npyclose — whether two float32 .npy files hold the same shape and values
 * within a tolerance, so that shell tests (tests/merge_cli.sh) can compare
 * results computed two ways without Python.
 *
 *   npyclose GOT.npy WANT.npy TOL
 *
 * Close: |got - want| <= TOL * (1 + |want|); NaN matches only NaN and an
 * infinity only itself (as tests/support.c's close_enough).
 * Exit status: 0 close, 1 different (the first difference printed), 2 bad
 * arguments or an unreadable file. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npy.h"

static int close_enough(float got, float want, double tol) {
    if (isnan(want) || isnan(got)) return isnan(want) && isnan(got);
    if (isinf(want) || isinf(got)) return got == want;
    return fabs((double)got - (double)want) <= tol * (1.0 + fabs((double)want));
}

int main(int argc, char **argv) {
    char *end = NULL;
    double tol = argc == 4 ? strtod(argv[3], &end) : -1;
    if (argc != 4 || *end || !(tol >= 0)) {
        fprintf(stderr, "usage: npyclose GOT.npy WANT.npy TOL\n");
        return 2;
    }
    npy_array a[2];
    char msg[600];
    for (int i = 0; i < 2; i++)
        if (npy_read(argv[1 + i], &a[i], msg, sizeof msg) || a[i].dtype != ATTNC_F32) {
            fprintf(stderr, "npyclose: %s\n", msg[0] ? msg : "need float32 ('<f4') arrays");
            return 2;
        }
    int rc = 0;
    if (a[0].rank != a[1].rank || memcmp(a[0].shape, a[1].shape, sizeof a[0].shape)) {
        printf("npyclose: %s and %s have different shapes\n", argv[1], argv[2]);
        rc = 1;
    }
    const float *got = a[0].data, *want = a[1].data;
    for (size_t i = 0; !rc && i < a[0].count; i++)
        if (!close_enough(got[i], want[i], tol)) {
            printf("npyclose: element %zu: %s has %.9g, %s %.9g\n", i, argv[1], got[i], argv[2], want[i]);
            rc = 1;
        }
    npy_free(&a[0]);
    npy_free(&a[1]);
    return rc;
}
