/* fuzz_spec.c — libFuzzer target for the front end and the interpreter:
 * any bytes go through parse + check; a spec that checks is compiled for the
 * interpreter and run on tiny random inputs with every tensor it declares.
 * Crashes, leaks, sanitizer reports and timeouts are the failures. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attnc.h"

enum { MAX_TENSOR_ELEMS = 1 << 16 };

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
        attnc_kernel_run(k, &args, NULL);
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
