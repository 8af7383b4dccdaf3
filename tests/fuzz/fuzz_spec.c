/* fuzz_spec.c — libFuzzer target for the whole pipeline: any bytes go
 * through parse + check; a spec that checks is run on tiny inputs (with
 * every tensor it declares) by the interpreter, and by `refplan` and `tcc`
 * when this build has them.  Failures: crashes, leaks, sanitizer reports,
 * timeouts, and a backend that disagrees with the interpreter — on whether
 * the call fails, or (refplan, float64 like the interpreter) on the values. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attnc.h"

enum { MAX_TENSOR_ELEMS = 1 << 16 };

/* refplan computes in float64 like the interpreter: only summation order differs */
static int same_value(float a, float b) {
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
    if (isinf(a) || isinf(b)) return a == b;
    return fabs((double)a - (double)b) <= 1e-4 * (1.0 + fabs((double)b));
}

/* Run `backend` on the same call and compare with the interpreter's result. */
static void cross_check(const attnc_spec *spec, const char *name, attnc_backend backend, const attnc_args *args,
                        attnc_status ref_status, const float *ref_o, const float *ref_lse) {
    if (!attnc_backend_available(backend)) return;
    attnc_kernel *k = NULL;
    attnc_options opts = {.backend = backend, .threads = 1, .tile_q = 2, .tile_k = 3};
    attnc_error err;
    if (attnc_compile(spec, name, &opts, &k, &err)) {
        fprintf(stderr, "%s does not compile what the interpreter runs: %s\n", attnc_backend_name(backend), err.message);
        abort();
    }
    float o[12], lse[6];
    attnc_args a = *args;
    a.o = o;
    a.lse = lse;
    attnc_status st = attnc_kernel_run(k, &a, &err);
    if ((st == ATTNC_OK) != (ref_status == ATTNC_OK)) {
        fprintf(stderr, "%s status %d, interpreter %d: %s\n", attnc_backend_name(backend), st, ref_status, err.message);
        abort();
    }
    /* scores far from 1 make the result depend on rounding more than on
     * the math (a rewrite that moves a 1e38 bias to lse_offset is *more*
     * exact than the interpreter): compare values only for tame calls */
    int tame = 1;
    for (int i = 0; i < 6; i++) tame &= ref_lse[i] == -INFINITY || fabsf(ref_lse[i]) < 1e4f;
    for (int i = 0; st == ATTNC_OK && tame && backend == ATTNC_BACKEND_REFPLAN && i < 12; i++)
        if (!same_value(o[i], ref_o[i]) || (i < 6 && !same_value(lse[i], ref_lse[i]))) {
            fprintf(stderr, "refplan O[%d] = %g vs %g, LSE %g vs %g\n", i, o[i], ref_o[i], i < 6 ? lse[i] : 0.0,
                    i < 6 ? ref_lse[i] : 0.0);
            abort();
        }
    attnc_kernel_free(k);
}

static void run_variant(const attnc_spec *spec, const char *name) {
    attnc_kernel *k = NULL;
    attnc_options opts = {.backend = ATTNC_BACKEND_INTERP, .threads = 1};
    if (attnc_compile(spec, name, &opts, &k, NULL)) return;
    attnc_sizes sz = {1, 2, 1, 3, 4, 2, 2};
    float q[12], kk[8], v[8], o[12], lse[6];
    for (int i = 0; i < 12; i++) q[i] = (float)(i % 5) - 2.0f;
    for (int i = 0; i < 8; i++) kk[i] = v[i] = (float)(i % 3) - 1.0f;
    attnc_tensor tensors[8];
    int nt = attnc_kernel_tensor_count(k), ok = nt <= 8;
    memset(tensors, 0, sizeof tensors);
    for (int i = 0; ok && i < nt; i++) {
        attnc_tensor *t = &tensors[i];
        t->name = attnc_kernel_tensor_info(k, i, &t->dtype, &t->rank);
        if (attnc_kernel_tensor_shape(k, i, &sz, NULL, 0, t->shape, NULL)) {
            ok = 0;
            break;
        }
        int64_t count = 1;
        for (int d = 0; d < t->rank && ok; d++) {
            count *= t->shape[d] ? t->shape[d] : 1;
            ok = count <= MAX_TENSOR_ELEMS;
        }
        if (!ok) break;
        int32_t *data = calloc((size_t)count, sizeof(int32_t));
        for (int64_t j = 0; data && j < count; j++) data[j] = (int32_t)(j % 3);
        t->data = data;
    }
    if (ok) {
        attnc_args args = {sz, q, kk, v, o, lse, NULL, 0, tensors, nt};
        attnc_status st = attnc_kernel_run(k, &args, NULL);
        /* a missing param is the call's fault, not a backend's: compare the rest */
        if (st == ATTNC_OK || st == ATTNC_ERR_RUNTIME) {
            cross_check(spec, name, ATTNC_BACKEND_REFPLAN, &args, st, o, lse);
            cross_check(spec, name, ATTNC_BACKEND_TCC, &args, st, o, lse);
        }
    }
    for (int i = 0; i < nt && i < 8; i++) free((void *)tensors[i].data);
    attnc_kernel_free(k);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    attnc_spec *spec = NULL;
    attnc_spec_from_string("fuzz.attn", (const char *)data, size, &spec, NULL);
    /* a sum's bound is unbounded by design: running one could take forever */
    if (spec && attnc_spec_error_count(spec) == 0 && !memmem(data, size, "sum", 3))
        for (int i = 0; i < attnc_spec_variant_count(spec); i++) run_variant(spec, attnc_spec_variant_name(spec, i));
    attnc_spec_free(spec);
    return 0;
}
