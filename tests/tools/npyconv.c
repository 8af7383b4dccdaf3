/* npyconv — copy a float .npy file, changing its element type or swapping
 * dimensions 1 and 2 of a rank-4 array ([B, H, L, D] <-> [B, L, H, D]), so
 * that the shell tests of --dtype and --layout (tests/layouts_cli.sh) can
 * make their inputs and compare outputs without Python.
 *
 *   npyconv IN.npy OUT.npy [--f2 | --bf16] [--swap12]
 *
 * IN is '<f4' or '<f2'.  OUT is '<f4' (values widened exactly), or with
 * --f2 '<f2' (rounded to f16, nearest even), or with --bf16 '<f4' holding
 * the values rounded to bf16.  Rounding uses base/half.h, the library's own
 * conversions, so a test comparing the command line's rounding with these
 * files checks the command line's copy of them.
 * Exit status: 0 written, 1 could not read or write, 2 bad arguments. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "half.h"
#include "npy.h"

/* A '<f2' file: numpy's version 1.0 header, padded so that data starts at a multiple of 64. */
static int write_f2(const char *path, const npy_array *a, const float *x) {
    char dict[256];
    int n = snprintf(dict, sizeof dict, "{'descr': '<f2', 'fortran_order': False, 'shape': (");
    for (int i = 0; i < a->rank; i++) n += snprintf(dict + n, sizeof dict - (size_t)n, "%lld, ", (long long)a->shape[i]);
    n += snprintf(dict + n, sizeof dict - (size_t)n, "), }");
    int total = (10 + n + 1 + 63) / 64 * 64; /* preamble, dict, '\n' */
    FILE *f = fopen(path, "wb");
    if (!f) return 1;
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)((total - 10) & 0xff),
                             (unsigned char)((total - 10) >> 8)};
    fwrite(pre, 1, 10, f);
    fwrite(dict, 1, (size_t)n, f);
    for (int i = 10 + n; i < total - 1; i++) fputc(' ', f);
    fputc('\n', f);
    for (size_t i = 0; i < a->count; i++) {
        uint16_t w = attnc_f32_to_f16(x[i]);
        fwrite(&w, 2, 1, f);
    }
    return fclose(f) != 0;
}

int main(int argc, char **argv) {
    int f2 = 0, bf16 = 0, swap = 0;
    for (int i = 3; i < argc; i++) {
        if (!strcmp(argv[i], "--f2")) f2 = 1;
        else if (!strcmp(argv[i], "--bf16")) bf16 = 1;
        else if (!strcmp(argv[i], "--swap12")) swap = 1;
        else argc = 0;
    }
    if (argc < 3 || (f2 && bf16)) {
        fprintf(stderr, "usage: npyconv IN.npy OUT.npy [--f2 | --bf16] [--swap12]\n");
        return 2;
    }
    npy_array a;
    char msg[600];
    if (npy_read_f16(argv[1], &a, msg, sizeof msg) || a.dtype != ATTNC_F32 || (swap && a.rank != 4)) {
        fprintf(stderr, "npyconv: %s\n", msg[0] ? msg : "need a float array (of rank 4 with --swap12)");
        return 1;
    }
    float *x = malloc(sizeof(float) * (a.count + 1)), *y = malloc(sizeof(float) * (a.count + 1));
    for (size_t i = 0; i < a.count; i++) {
        float v = a.f16 ? attnc_f16_to_f32(((const uint16_t *)a.data)[i]) : ((const float *)a.data)[i];
        x[i] = bf16 ? attnc_bf16_to_f32(attnc_f32_to_bf16(v)) : v;
    }
    if (swap) {
        int64_t B = a.shape[0], P = a.shape[1], Q = a.shape[2], R = a.shape[3];
        for (int64_t b = 0; b < B; b++)
            for (int64_t p = 0; p < P; p++)
                for (int64_t q = 0; q < Q; q++)
                    memcpy(y + ((b * Q + q) * P + p) * R, x + ((b * P + p) * Q + q) * R, sizeof(float) * (size_t)R);
        a.shape[1] = Q, a.shape[2] = P;
        memcpy(x, y, sizeof(float) * a.count);
    }
    int rc = f2 ? write_f2(argv[2], &a, x) : npy_write(argv[2], ATTNC_F32, a.rank, a.shape, x, msg, sizeof msg);
    if (rc) fprintf(stderr, "npyconv: cannot write %s\n", argv[2]);
    free(x);
    free(y);
    npy_free(&a);
    return rc ? 1 : 0;
}
