/* test_llvm_math.c — the LLVM kernel's inline math (backends/llvm/llvm_math.c)
 * against double-precision libm, element by element.
 *
 * Each function F runs as `tensor x : float[Lq]; weight F(x[q])` with one
 * key whose V is 1, so O[q] is F(x[q]) exactly as the kernel computed it.
 * The inputs are float32 values spread over the whole range (every
 * STRIDE-th bit pattern, both signs) plus the special values; each result
 * must be within the function's documented relative error of the double
 * result (absolute, times FLT_MIN, below FLT_MIN), or 0 where that is below
 * 2^-125 (the kernels flush there), and
 * NaN, the infinities and zeros come out as libm's.  The bounds are the
 * documented ones (llvm_math.c); the printed maxima are the measured ones. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attnc.h"

enum { STRIDE = 4093 }; /* a prime: every exponent, varied mantissas (~2^20 values per function) */

typedef struct Fn {
    const char *call;  /* the .attn expression of x */
    double (*want)(double);
    double lo;         /* the inputs: sampled floats of both signs that are >= lo */
    double rel;        /* documented relative error */
} Fn;

static double sigmoid_ref(double x) { return 1.0 / (1.0 + exp(-x)); }

static const Fn FNS[] = {
    {"tanh(x[q])", tanh, -INFINITY, 3.5e-7},
    {"exp(x[q])", exp, -INFINITY, 2.5e-7},
    {"exp2(x[q])", exp2, -INFINITY, 2.5e-7},
    {"log(x[q])", log, 0.0, 2.5e-7},
    {"log2(x[q])", log2, 0.0, 2.5e-7},
    {"sigmoid(x[q])", sigmoid_ref, -INFINITY, 3.5e-7},
    {"erf(x[q])", erf, -INFINITY, 3.5e-7},
};

static int failures;

static float from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static unsigned bits_of(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* The inputs of fn: sampled finite values of its domain and the specials. */
static float *inputs(const Fn *fn, int64_t *n) {
    size_t cap = 2 * (0x7f800000u / STRIDE + 2) + 16, k = 0;
    float *x = malloc(cap * sizeof *x);
    if (!x) return NULL;
    for (uint32_t u = 0; u < 0x7f800000u; u += STRIDE)
        for (int s = 0; s < 2; s++) {
            float f = s ? -from_bits(u) : from_bits(u);
            if (f >= fn->lo) x[k++] = f;
        }
    const float specials[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, FLT_MIN, FLT_MAX, -FLT_MAX, 1.0f, -1.0f};
    for (size_t i = 0; i < sizeof specials / sizeof specials[0]; i++) x[k++] = specials[i];
    *n = (int64_t)k;
    return x;
}

static void check_fn(const Fn *fn) {
    char text[160];
    snprintf(text, sizeof text, "attention f { tensor x : float[Lq]; weight %s; }", fn->call);
    attnc_spec *spec = NULL;
    attnc_kernel *k = NULL;
    attnc_error err = {0};
    attnc_options o = {.backend = ATTNC_BACKEND_LLVM, .threads = 2};
    if (attnc_spec_from_string("math.attn", text, strlen(text), &spec, &err) || attnc_compile(spec, NULL, &o, &k, &err)) {
        printf("FAIL %s: %s\n", fn->call, err.message);
        failures++;
        attnc_spec_free(spec);
        return;
    }
    int64_t n = 0;
    float *x = inputs(fn, &n), *out = x ? malloc((size_t)n * sizeof *out) : NULL;
    float qk = 0.0f, v = 1.0f, *q = x ? calloc((size_t)n, sizeof *q) : NULL;
    if (!x || !out || !q) {
        printf("FAIL %s: out of memory\n", fn->call);
        failures++;
    } else {
        attnc_tensor t = {"x", ATTNC_F32, 1, {n}, x};
        attnc_args a = {{1, 1, 1, n, 1, 1, 1}, q, &qk, &v, out, NULL, NULL, 0, &t, 1};
        if (attnc_kernel_run(k, &a, &err)) {
            printf("FAIL %s: %s\n", fn->call, err.message);
            failures++;
        } else {
            double worst = 0.0;
            float worst_x = 0.0f;
            int bad = 0;
            for (int64_t i = 0; i < n; i++) {
                double want = fn->want((double)x[i]), got = out[i];
                int ok;
                if (isnan(want) || isinf(want) || want == 0.0) /* libm's exact answers: NaN, +-inf, 0 */
                    ok = isnan(want) ? isnan(got) : got == want; /* (O sums from +0: -0 reads as +0) */
                else {
                    /* relative, or absolute below FLT_MIN where float32 itself holds fewer bits */
                    double err_rel = fabs(got - want) / fmax(fabs(want), FLT_MIN);
                    /* results below 2^-125 may flush to 0 (llvm_math.c: scale_pow2, exp_specials); a
                     * result past FLT_MAX overflows to inf */
                    int flushed = fabs(want) < 0x1p-125 && got == 0.0;
                    ok = err_rel <= fn->rel || flushed || (fabs(want) > FLT_MAX && isinf(got) && (got > 0) == (want > 0));
                    if (err_rel > worst && !flushed && !isinf(got)) worst = err_rel, worst_x = x[i];
                }
                if (!ok && bad++ < 5)
                    printf("FAIL %s at x = %.9g (bits %08x): %.9g, want %.9g\n", fn->call, x[i],
                           bits_of(x[i]), got, want);
            }
            failures += bad;
            printf("%-14s %8lld inputs, max relative error %.3g (at %.9g), bound %.3g%s\n", fn->call, (long long)n,
                   worst, worst_x, fn->rel, bad ? "  FAILED" : "");
        }
    }
    free(x), free(out), free(q);
    attnc_kernel_free(k);
    attnc_spec_free(spec);
}

int main(void) {
    if (!attnc_backend_available(ATTNC_BACKEND_LLVM)) {
        printf("SKIP: no LLVM backend\n");
        return 77;
    }
    for (size_t i = 0; i < sizeof FNS / sizeof FNS[0]; i++) check_fn(&FNS[i]);
    if (failures) printf("%d failures\n", failures);
    return failures ? 1 : 0;
}
