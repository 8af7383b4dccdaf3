/* test_examples.c — runs every attention of an examples file (*.attn) through
 * a backend on small random inputs described by its `// example-args:` line
 * (`// example-args[NAME]:` when the file holds several attentions).
 *
 *   test_examples FILE.attn [--backend NAME] [--threads N] [--flags ATTNC_OPT_*] [--shape SIZES]
 *
 * --shape SIZES (e.g. H=8,Hkv=2,Lq=1): the example-args shape with these
 * sizes replaced, the rest of its line (params, int ranges) kept: decode
 * and GQA shapes of every example (tests/examples.cmake).
 *
 * Checks, per attention: the spec checks; the kernel runs without error;
 * O and LSE hold no NaN or inf except LSE = -inf on fully masked rows, whose
 * O is exactly 0 (and LSE = NaN for a `weight` whose values sum below 0); at least one row keeps something; for softmax attentions
 * each O element lies within the min/max of its V column over the head (a
 * convex combination; on cuda-emu, which multiplies float32 through TF32,
 * V and the weights carry 2^-11 relative roundings: within 2^-10 max|V| of
 * it).  For any backend but the interpreter, O and LSE must
 * also match the interpreter's within the backend's tolerance (NaN matching
 * NaN, -inf matching -inf).  Exit 0 when all pass. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attnc.h"
#include "support.h"

/* Tolerance per backend: refplan computes in float64 like the interpreter;
 * compiled float32 kernels get what float32 accumulation costs. */
static double tolerance(attnc_backend b) { return b == ATTNC_BACKEND_REFPLAN ? 1e-5 : 2e-3; }

/* Compare a backend's O and LSE with the interpreter's; NULL when they agree. */
static const char *compare_with_interp(const attnc_spec *spec, const char *name, const attnc_args *args,
                                       attnc_backend backend, char *buf, size_t n) {
    attnc_options opts = {.backend = ATTNC_BACKEND_INTERP};
    attnc_kernel *ref = NULL;
    attnc_error err = {0};
    const attnc_sizes *sz = &args->sizes;
    size_t rows = (size_t)(sz->B * sz->H * sz->Lq), no = rows * (size_t)sz->Dv;
    float *o = malloc(sizeof(float) * (no + 1)), *lse = malloc(sizeof(float) * (rows + 1));
    attnc_args ra = *args;
    ra.o = o;
    ra.lse = lse;
    const char *bad = NULL;
    if (attnc_compile(spec, name, &opts, &ref, &err) || attnc_kernel_run(ref, &ra, &err)) {
        snprintf(buf, n, "interpreter: %.200s", err.message);
        bad = buf;
    }
    double tol = tolerance(backend), worst = 0;
    if (!bad) bad = compare_outputs(args->o, args->lse, o, lse, no, rows, tol, &worst, buf, n);
    if (!bad) printf("  %s vs interpreter: max relative error %.3g (tolerance %.3g)\n", name, worst, tol);
    free(o);
    free(lse);
    attnc_kernel_free(ref);
    return bad;
}

/* Check O and LSE; returns a description of the first problem or NULL. */
static const char *check_outputs(const attnc_sizes *sz, const float *v, const float *o, const float *lse, int softmax,
                                 double slack, char *buf, size_t n, int *kept_rows) {
    int64_t group = sz->H / sz->Hkv;
    *kept_rows = 0;
    for (int64_t b = 0; b < sz->B; b++)
        for (int64_t h = 0; h < sz->H; h++)
            for (int64_t q = 0; q < sz->Lq; q++) {
                size_t row = (size_t)((b * sz->H + h) * sz->Lq + q);
                const float *orow = o + row * (size_t)sz->Dv;
                /* with a `weight` clause LSE = log(sum p) is NaN where the weights sum below 0 */
                if ((softmax && isnan(lse[row])) || lse[row] == INFINITY) {
                    snprintf(buf, n, "LSE[%lld,%lld,%lld] = %g", (long long)b, (long long)h, (long long)q, lse[row]);
                    return buf;
                }
                int masked = lse[row] == -INFINITY;
                *kept_rows += !masked;
                for (int64_t d = 0; d < sz->Dv; d++) {
                    if (!isfinite(orow[d]) || (masked && orow[d] != 0)) {
                        snprintf(buf, n, "O[%lld,%lld,%lld,%lld] = %g%s", (long long)b, (long long)h, (long long)q,
                                 (long long)d, orow[d], masked ? " on a fully masked row" : "");
                        return buf;
                    }
                    if (!softmax || masked) continue;
                    const float *vh = v + (size_t)((b * sz->Hkv + h / group) * sz->Lk * sz->Dv);
                    float lo = INFINITY, hi = -INFINITY;
                    for (int64_t kv = 0; kv < sz->Lk; kv++) {
                        float x = vh[kv * sz->Dv + d];
                        lo = x < lo ? x : lo;
                        hi = x > hi ? x : hi;
                    }
                    const float s = 1e-5f + (float)(slack * fmax(fabs(lo), fabs(hi)));
                    if (orow[d] < lo - s || orow[d] > hi + s) {
                        snprintf(buf, n, "O[%lld,%lld,%lld,%lld] = %g is outside V's range [%g, %g]", (long long)b,
                                 (long long)h, (long long)q, (long long)d, orow[d], lo, hi);
                        return buf;
                    }
                }
            }
    return NULL;
}

/* Whether compiling name with flags gives the plan it has without them (the middle end's separable-bias rewrite
 * found nothing to rewrite): the plans' text through refplan, which compiles without JIT code. */
static int same_plan_without(const attnc_spec *spec, const char *name, int flags) {
    char *text[2] = {NULL, NULL};
    for (int i = 0; i < 2; i++) {
        attnc_options opts = {.backend = ATTNC_BACKEND_REFPLAN, .threads = 1, .flags = i ? flags : 0};
        attnc_kernel *k = NULL;
        attnc_error err = {0};
        if (attnc_compile(spec, name, &opts, &k, &err) == ATTNC_OK) attnc_kernel_emit(k, "ir", NULL, 0, &text[i], &err);
        attnc_kernel_free(k);
    }
    int same = text[0] && text[1] && strcmp(text[0], text[1]) == 0;
    attnc_free(text[0]);
    attnc_free(text[1]);
    return same;
}

static int run_one(const attnc_spec *spec, const char *text, const char *name, int only_one, attnc_backend backend,
                   int threads, int flags, const char *shape) {
    /* an LLVM kernel is a function of its plan: where the flags leave the plan as it is, the run without them
     * (example/<name>/llvm) already checks this kernel, and its compile is most of the test's time */
    if (backend == ATTNC_BACKEND_LLVM && flags && same_plan_without(spec, name, flags)) {
        printf("ok %s (flags %d leave its plan as it is: the run without them checks its kernel)\n", name, flags);
        return 0;
    }
    char line[1024];
    ExampleArgs ea;
    if (!find_args_line(text, name, only_one, line, sizeof line)) {
        printf("FAIL %s: no '// example-args%s%s%s:' line\n", name, only_one ? "" : "[", only_one ? "" : name,
               only_one ? "" : "]");
        return 1;
    }
    if (!parse_args(line, &ea)) {
        printf("FAIL %s: cannot parse example-args '%s'\n", name, line);
        return 1;
    }
    if (shape) {
        char sizes[256];
        snprintf(sizes, sizeof sizes, "%s", shape);
        if (!parse_shape_into(sizes, &ea.sz)) {
            printf("FAIL %s: cannot parse --shape '%s'\n", name, shape);
            return 1;
        }
    }
    attnc_options opts = {.backend = backend, .threads = threads, .flags = flags};
    attnc_kernel *k = NULL;
    attnc_error err = {0};
    if (attnc_compile(spec, name, &opts, &k, &err)) {
        printf("FAIL %s: compile: %s\n", name, err.message);
        return 1;
    }
    attnc_param params[MAX_ITEMS];
    attnc_tensor tensors[MAX_ITEMS];
    memset(tensors, 0, sizeof tensors);
    int fails = 0, nt = 0;
    const char *why = NULL;
    if (make_params(k, &ea, params, &why) < 0) {
        printf("FAIL %s: %s\n", name, why);
        fails = 1;
    }
    if (!fails && (nt = make_tensors(k, &ea, params, ea.nparams, tensors, &why)) < 0) {
        printf("FAIL %s: %s\n", name, why);
        fails = 1;
        nt = 0;
    }
    const attnc_sizes *sz = &ea.sz;
    size_t nq = (size_t)(sz->B * sz->H * sz->Lq);
    float *q = random_floats(nq * (size_t)sz->D);
    float *kk = random_floats((size_t)(sz->B * sz->Hkv * sz->Lk * sz->D));
    float *v = random_floats((size_t)(sz->B * sz->Hkv * sz->Lk * sz->Dv));
    float *o = malloc(sizeof(float) * (nq * (size_t)sz->Dv + 1));
    float *lse = malloc(sizeof(float) * (nq + 1));
    if (!fails) {
        attnc_args args = {*sz, q, kk, v, o, lse, params, ea.nparams, tensors, nt};
        if (attnc_kernel_run(k, &args, &err)) {
            printf("FAIL %s: run: %s\n", name, err.message);
            fails = 1;
        }
    }
    if (!fails) {
        char buf[300];
        int kept_rows = 0;
        const double slack = backend == ATTNC_BACKEND_CUDA_EMU ? 1.0 / 1024 : 0; /* TF32 (see the top) */
        const char *bad = check_outputs(sz, v, o, lse, attnc_kernel_is_softmax(k), slack, buf, sizeof buf, &kept_rows);
        if (!bad && kept_rows == 0) bad = "every row is fully masked: the example exercises nothing";
        if (!bad && backend != ATTNC_BACKEND_INTERP) {
            attnc_args args = {*sz, q, kk, v, o, lse, params, ea.nparams, tensors, nt};
            bad = compare_with_interp(spec, name, &args, backend, buf, sizeof buf);
        }
        if (bad) {
            printf("FAIL %s: %s\n", name, bad);
            fails = 1;
        } else {
            printf("ok %s (%d of %zu rows keep something)\n", name, kept_rows, nq);
        }
    }
    for (int i = 0; i < nt; i++) free((void *)tensors[i].data);
    free(q);
    free(kk);
    free(v);
    free(o);
    free(lse);
    attnc_kernel_free(k);
    return fails;
}

int main(int argc, char **argv) {
    attnc_backend backend = ATTNC_BACKEND_INTERP;
    int threads = 1, flags = 0;
    const char *shape = NULL;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--shape")) {
            shape = argv[i + 1];
            continue;
        }
        if (!strcmp(argv[i], "--backend") && attnc_backend_parse(argv[i + 1], &backend)) continue;
        if (!strcmp(argv[i], "--threads") && (threads = atoi(argv[i + 1])) > 0) continue;
        if (!strcmp(argv[i], "--flags") && (flags = atoi(argv[i + 1])) >= 0) continue;
        argc = 0; /* anything else is a usage error */
    }
    if (argc < 2 || argc % 2 != 0) {
        fprintf(stderr, "usage: test_examples FILE.attn [--backend NAME] [--threads N] [--flags N] [--shape SIZES]\n");
        return 2;
    }
    size_t len;
    char *text = read_file(argv[1], &len);
    if (!text) {
        fprintf(stderr, "test_examples: cannot read %s\n", argv[1]);
        return 2;
    }
    attnc_spec *spec = NULL;
    attnc_error err = {0};
    if (attnc_spec_from_string(argv[1], text, len, &spec, &err)) {
        printf("FAIL %s: %s\n%s", argv[1], err.message, spec ? attnc_spec_diagnostics(spec) : "");
        attnc_spec_free(spec);
        free(text);
        return 1;
    }
    if (!strstr(text, "arXiv") && !strstr(text, "Paper") && !strstr(text, "paper")) {
        printf("FAIL %s: the example does not name its paper in a comment\n", argv[1]);
        attnc_spec_free(spec);
        free(text);
        return 1;
    }
    int n = attnc_spec_variant_count(spec), fails = 0;
    for (int i = 0; i < n; i++) fails += run_one(spec, text, attnc_spec_variant_name(spec, i), n == 1, backend, threads, flags, shape);
    attnc_spec_free(spec);
    free(text);
    printf("%d passed, %d failed\n", n - fails, fails);
    return fails != 0;
}
