/* test_grad_interp.c — the interpreter's backward pass (runtime/interp_grad.c,
 * through attnc_kernel_backward) against central finite differences of the
 * interpreter's own forward in float64 (interp_run_f64), for every attention
 * of an examples file or of the specs below that exercise every derivative
 * rule of spec 9.5.
 *
 *   test_grad_interp FILE.attn [--shape SIZES] [--samples N]
 *   test_grad_interp --rules [--samples N]
 *
 * The scalar is L = sum(O * dO) + sum(LSE * dLSE); each attention runs three
 * times: random dO and dLSE, dLSE alone (dO NULL), dO alone (dLSE NULL).  The
 * gradients checked are dQ, dK, dV and that of every float tensor, at up to N
 * elements of each (default 24, a third of that for the last two: the first,
 * the last and random ones; a bug
 * that touches every element — a lost factor, a sign, a chain-rule term, the
 * GQA sum over the query heads of a kv head — shows at any of them).
 *
 * Finite differences: every input is a multiple of 2^-11 in [-2, 2), so x ± h
 * for h = 2^-13 and 2^-15 is exact in float32 (the forward reads float32) and
 * the step is exactly what the quotient divides by.  The central difference
 * with h = 2^-15 has truncation error h^2/6 |f'''| ~ 2e-10 |f'''| and rounding
 * error ~ 1e-16 |L| / h ~ 1e-10: far below the tolerance
 *     |fd - analytic| <= 1e-6 * (1 + max |analytic| over that gradient),
 * which any missing factor or term exceeds by orders of magnitude.  Where the
 * function has a kink or jump within h (relu weights at a score of 0, a
 * floor, a mask reading a float tensor) the central differences of the two
 * step sizes disagree by more than half the tolerance; at a kink right at x
 * (a tie of min or max) the one-sided slopes differ by the same amount at
 * both steps, where smoothly they differ in proportion to h.  Such an element
 * is skipped and counted, and the test fails if all of a gradient's checked
 * elements are skipped, or more than a quarter of 8 or more.
 * Rows whose float64 LSE is not finite (nothing kept, weights summing to <= 0)
 * get dLSE = 0.  Softmax rows with LSE = -inf must have a dQ row of exact
 * zeros. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"
#include "bind.h"
#include "interp.h"
#include "support.h"

static const double TOL = 1e-6, H1 = 1.0 / 8192, H2 = 1.0 / 32768;

/* Specs covering each derivative rule: every built-in function, ?:, float %,
 * sums, lets, a float tensor read by a mask (no derivative) and by the score,
 * an int tensor element promoted to float,
 * a fully masked row, a weight, and pow's two operands; then version 2's
 * rows, rotary and sink. */
static const char RULES[] =
    "// example-args[rules_bias]: --shape B=2,H=4,Hkv=2,Lq=7,Lk=9,D=5,Dv=3\n"
    "attention rules_bias {\n"
    "  tensor t : float[H, Lk];\n"
    "  tensor u : float[Lq, 3];\n"
    "  mask q != 3;\n"
    "  bias 0.5 * abs(t[h, kv]) + min(t[h, kv], u[q, 0]) - max(u[q, 1], 0.25 * t[h, kv]);\n"
    "  bias clamp(u[q, 2], -0.5, 0.5) * exp2(t[h, kv]) / (1.5 + t[h, kv] * t[h, kv]);\n"
    "  bias clamp(-1.0, t[h, kv], u[q, 1] + 2.5) + clamp(t[h, kv], u[q, 0], 0.5);\n"
    "  bias 0.1 * floor(4.0 * t[h, kv]) + 0.1 * ceil(3.0 * u[q, 0]) + 0.2 * sign(t[h, kv]);\n"
    "}\n"
    "// example-args[rules_score]: --shape B=1,H=3,Hkv=1,Lq=8,Lk=6,D=4,Dv=5\n"
    "attention rules_score {\n"
    "  tensor t : float[H, Lk];\n"
    "  tensor e : float[Lk, 4];\n"
    "  let lin = sum(r < 4) e[kv, r] * float(r + 1);\n"
    "  mask t[h, kv] > -1.5;\n"
    "  bias 0.3 * lin;\n"
    "  score score * sigmoid(t[h, kv]) + tanh(score) - erf(0.5 * score);\n"
    "  score q % 2 == 0 ? score + log(2.5 + t[h, kv]) : score - log2(3.0 + score * score);\n"
    "  score score > 0.0 ? score : 0.25 * score;\n"
    "  score sqrt(score * score + 1.0 + t[h, kv] * t[h, kv]) + pow(1.5 + 0.25 * t[h, kv], score);\n"
    "  score pow(2.5 + tanh(score), 1.5) + (score + 3.0 * e[kv, 0]) % 1.75 + exp(0.5 * score) * float(kv % 3);\n"
    "}\n"
    "// example-args[rules_weight]: --shape B=2,H=2,Hkv=2,Lq=6,Lk=10,D=3,Dv=4\n"
    "attention rules_weight {\n"
    "  tensor t : float[H];\n"
    "  tensor z : float[Lk];\n"
    "  tensor n : int[Lk];\n"
    "  mask kv <= q + 2;\n"
    "  bias z[kv] * float(n[kv] + 1);\n"
    "  weight exp(score * t[h]) + 0.5 * sigmoid(score + z[kv]) + 2.0;\n"
    "}\n"
    /* version 2 (spec 9.2 - 9.4): every kind of dot (Q, K and tensor rows, dot(Q, K), two tensor rows), a
     * partial interleaved rotary with odd D, a sink reading tensors, a fully masked row (q = 2) with a sink */
    "// example-args[rules_rows]: --shape B=2,H=4,Hkv=2,Lq=7,Lk=9,D=5,Dv=3\n"
    "attention rules_rows {\n"
    "  tensor E : float[Lq + Lk, D];\n"
    "  tensor F : float[3, 2, D];\n"
    "  tensor w : float[H];\n"
    "  rotary(dims = 4, base = 100.0, interleaved = true);\n"
    "  mask q != 2;\n"
    "  mask kv <= q + 4;\n"
    "  bias w[h] * dot(Q, E[kv - q + Lq]) + tanh(dot(K, F[kv % 3, q % 2]));\n"
    "  score score + 0.25 * dot(Q, K) * dot(E[q], F[1, 0]);\n"
    "  sink 0.5 * w[h] + E[q, 0] * E[q, 1];\n"
    "}\n"
    "// example-args[rules_rope]: --shape B=1,H=2,Hkv=1,Lq=6,Lk=8,D=6,Dv=2\n"
    "attention rules_rope {\n"
    "  tensor E : float[Lk, D];\n"
    "  rotary(base = 50.0, qpos = q + 3, kvpos = 2 * kv - 1);\n"
    "  mask kv <= q + 2;\n"
    "  bias 0.5 * dot(K, E[kv]);\n"
    "  sink -1.0;\n"
    "}\n"
    "// example-args[rules_rows_weight]: --shape B=1,H=2,Hkv=2,Lq=5,Lk=7,D=4,Dv=3\n"
    "attention rules_rows_weight {\n"
    "  tensor E : float[Lk, D];\n"
    "  rotary(dims = 2);\n"
    "  weight exp(0.2 * score) * sigmoid(dot(Q, E[kv]));\n"
    "}\n";

/* One attention, its bound forward call and the buffers of the test. */
typedef struct Problem {
    const char *name;
    attnc_kernel *k;
    attnc_sizes sz;
    BoundCall bc;
    int bound, softmax;
    attnc_param params[MAX_ITEMS];
    attnc_tensor tensors[MAX_ITEMS];
    int np, nt;
    float *q, *kk, *v, *dout, *dlse;
    double *o, *lse; /* interp_run_f64's */
    size_t nq, nk, nv, no, rows;
} Problem;

/* Uniform in [-2, 2) on the grid of 2^-11 (see the header). */
static float grid_value(void) { return (float)(floor((double)rng_uniform() * 2048.0) / 1024.0); }

static float *grid_floats(size_t n) {
    float *p = malloc(sizeof(float) * (n + 1));
    for (size_t i = 0; p && i < n; i++) p[i] = grid_value();
    return p;
}

/* L at the current inputs, from the float64 forward; NaN when it fails. */
static double loss(Problem *P, const float *dout, const float *dlse) {
    attnc_error err = {0};
    if (interp_run_f64(&P->bc, P->q, P->kk, P->v, P->o, P->lse, &err)) return NAN;
    double L = 0;
    for (size_t i = 0; dout && i < P->no; i++)
        if (dout[i] != 0) L += P->o[i] * dout[i];
    for (size_t r = 0; dlse && r < P->rows; r++)
        if (dlse[r] != 0) L += P->lse[r] * dlse[r];
    return L;
}

/* A gradient to check: the input x (perturbed in place) and the analytic dx. */
typedef struct Target {
    const char *name;
    float *x;
    const float *an;
    size_t n;
} Target;

/* Central differences at up to `samples` elements of t; returns failures. */
static int check_target(Problem *P, const Target *t, const float *dout, const float *dlse, int samples,
                        const char *mode) {
    if (t->n == 0) return 0;
    double maxan = 0;
    for (size_t i = 0; i < t->n; i++) maxan = fmax(maxan, fabs((double)t->an[i]));
    double tol = TOL * (1 + maxan), worst = 0;
    size_t count = t->n < (size_t)samples ? t->n : (size_t)samples;
    int fails = 0, skipped = 0;
    for (size_t s = 0; s < count; s++) {
        size_t i = count == t->n ? s : s == 0 ? 0 : s == 1 ? t->n - 1 : (size_t)(rng_next() % t->n);
        float x0 = t->x[i];
        double L[5], hs[2] = {H1, H2};
        for (int j = 0; j < 5; j++) {
            t->x[i] = j == 4 ? x0 : (float)((double)x0 + (j % 2 ? -hs[j / 2] : hs[j / 2]));
            L[j] = loss(P, dout, dlse);
        }
        double c1 = (L[0] - L[1]) / (2 * H1), c2 = (L[2] - L[3]) / (2 * H2);
        /* one-sided slopes differ by h f'' where smooth, by the jump of f' at a kink
         * right at x (a tie of min or max), whatever h: compare both steps */
        double s1 = (L[0] - 2 * L[4] + L[1]) / H1, s2 = (L[2] - 2 * L[4] + L[3]) / H2;
        if (!isfinite(c1) || !isfinite(c2) || fabs(c1 - c2) > tol / 2 || fabs(s2 - s1 / 4) > tol / 2) {
            skipped++; /* a kink or jump within h: the difference means nothing here */
            continue;
        }
        double e = fabs(c2 - (double)t->an[i]);
        worst = fmax(worst, e / (1 + maxan));
        if (e > tol && fails++ < 3)
            printf("FAIL %s [%s] d%s[%zu]: finite difference %.10g, backward %.10g (tolerance %.3g)\n", P->name, mode,
                   t->name, i, c2, (double)t->an[i], tol);
    }
    if (skipped == (int)count || (count >= 8 && skipped * 4 > (int)count)) {
        printf("FAIL %s [%s] d%s: %d of %zu elements skipped as near a kink\n", P->name, mode, t->name, skipped,
               count);
        fails++;
    }
    printf("  %s [%s] d%s: %zu of %zu elements, %d skipped near a kink, max |fd - backward| / (1 + max|d|) %.3g\n",
           P->name, mode, t->name, count - (size_t)skipped, t->n, skipped, worst);
    return fails;
}

/* Softmax rows that keep nothing must have a zero dQ row. */
static int check_empty_rows(const Problem *P, const float *dq) {
    int fails = 0, empty = 0;
    for (size_t r = 0; P->softmax && r < P->rows; r++) {
        if (P->lse[r] != -INFINITY) continue;
        empty++;
        for (int64_t d = 0; d < P->sz.D; d++)
            if (dq[r * (size_t)P->sz.D + (size_t)d] != 0 && fails++ < 3)
                printf("FAIL %s: row %zu keeps nothing but dQ = %g there\n", P->name, r,
                       (double)dq[r * (size_t)P->sz.D + (size_t)d]);
    }
    if (empty) printf("  %s: %d fully masked rows, dQ exactly 0 on them\n", P->name, empty);
    return fails;
}

/* The analytic gradients through the public API, then the differences. */
static int check_mode(Problem *P, const float *dout, const float *dlse, int samples, const char *mode) {
    const attnc_sizes *sz = &P->sz;
    size_t nq = P->nq, nk = P->nk, nv = P->nv;
    float *o = malloc(sizeof(float) * (P->no + 1)), *lse = malloc(sizeof(float) * (P->rows + 1));
    float *dq = malloc(sizeof(float) * (nq + 1)), *dk = malloc(sizeof(float) * (nk + 1));
    float *dv = malloc(sizeof(float) * (nv + 1));
    attnc_tensor_grad dts[MAX_ITEMS];
    int ndt = 0, fails = 0;
    for (int i = 0; i < P->nt; i++) {
        if (P->tensors[i].dtype != ATTNC_F32) continue;
        size_t n = 1;
        for (int r = 0; r < P->tensors[i].rank; r++) n *= (size_t)P->tensors[i].shape[r];
        dts[ndt++] = (attnc_tensor_grad){P->tensors[i].name, malloc(sizeof(float) * (n + 1))};
    }
    attnc_args args = {*sz, P->q, P->kk, P->v, o, lse, P->params, P->np, P->tensors, P->nt};
    attnc_grad g = {.dout = dout, .dlse = dlse, .dq = dq, .dk = dk, .dv = dv, .dtensors = dts, .n_dtensors = ndt};
    attnc_error err = {0};
    if (attnc_kernel_run(P->k, &args, &err) || attnc_kernel_backward(P->k, &args, NULL, &g, &err)) {
        printf("FAIL %s [%s]: %s\n", P->name, mode, err.message);
        fails = 1;
    }
    if (!fails) {
        loss(P, dout, dlse); /* P->lse at the unperturbed point */
        Target ts[3 + MAX_ITEMS] = {{"Q", P->q, dq, nq}, {"K", P->kk, dk, nk}, {"V", P->v, dv, nv}};
        int n = 3;
        for (int i = 0, j = 0; i < P->nt; i++) {
            const attnc_tensor *t = &P->tensors[i];
            if (t->dtype != ATTNC_F32) continue;
            size_t count = 1;
            for (int r = 0; r < t->rank; r++) count *= (size_t)t->shape[r];
            ts[n++] = (Target){t->name, (float *)t->data, dts[j++].data, count};
        }
        fails += check_empty_rows(P, dq);
        for (int i = 0; i < n; i++) fails += check_target(P, &ts[i], dout, dlse, samples, mode);
    }
    for (int i = 0; i < ndt; i++) free(dts[i].data);
    free(o), free(lse), free(dq), free(dk), free(dv);
    return fails;
}

/* Set up P for attention `name` of the spec; 0 with a message on failure. */
static int setup(Problem *P, const attnc_spec *spec, const char *text, const char *name, int only_one,
                 const char *shape) {
    char line[1024], sizes[256];
    ExampleArgs ea;
    memset(P, 0, sizeof *P);
    P->name = name;
    if (!find_args_line(text, name, only_one, line, sizeof line) || !parse_args(line, &ea)) {
        printf("FAIL %s: no usable '// example-args' line\n", name);
        return 0;
    }
    snprintf(sizes, sizeof sizes, "%s", shape ? shape : "");
    if (shape && !parse_shape_into(sizes, &ea.sz)) {
        printf("FAIL %s: cannot parse --shape '%s'\n", name, shape);
        return 0;
    }
    attnc_options opts = {.backend = ATTNC_BACKEND_INTERP};
    attnc_error err = {0};
    const char *why = NULL;
    if (attnc_compile(spec, name, &opts, &P->k, &err)) {
        printf("FAIL %s: compile: %s\n", name, err.message);
        return 0;
    }
    if ((P->np = make_params(P->k, &ea, P->params, &why)) < 0 ||
        (P->nt = make_tensors(P->k, &ea, P->params, P->np, P->tensors, &why)) < 0) {
        printf("FAIL %s: %s\n", name, why);
        P->nt = 0;
        return 0;
    }
    P->sz = ea.sz;
    P->softmax = attnc_kernel_is_softmax(P->k);
    const attnc_sizes *sz = &P->sz;
    P->rows = (size_t)(sz->B * sz->H * sz->Lq);
    P->nq = P->rows * (size_t)sz->D, P->no = P->rows * (size_t)sz->Dv;
    P->nk = (size_t)(sz->B * sz->Hkv * sz->Lk * sz->D), P->nv = (size_t)(sz->B * sz->Hkv * sz->Lk * sz->Dv);
    for (int i = 0; i < P->nt; i++) {
        if (P->tensors[i].dtype != ATTNC_F32) continue;
        float *x = (float *)P->tensors[i].data;
        size_t n = 1;
        for (int r = 0; r < P->tensors[i].rank; r++) n *= (size_t)P->tensors[i].shape[r];
        for (size_t j = 0; j < n; j++) x[j] = grid_value();
    }
    P->q = grid_floats(P->nq), P->kk = grid_floats(P->nk), P->v = grid_floats(P->nv);
    P->dout = grid_floats(P->no), P->dlse = grid_floats(P->rows);
    P->o = malloc(sizeof(double) * (P->no + 1)), P->lse = malloc(sizeof(double) * (P->rows + 1));
    /* bind_call checks O is given: the float64 forward writes P->o instead */
    float o_unused[1];
    attnc_args args = {*sz, P->q, P->kk, P->v, o_unused, NULL, P->params, P->np, P->tensors, P->nt};
    if (bind_call(attnc_kernel_attention(P->k), attnc_kernel_fixed(P->k), &args, &P->bc, &err)) {
        printf("FAIL %s: bind: %s\n", name, err.message);
        return 0;
    }
    P->bound = 1;
    if (interp_run_f64(&P->bc, P->q, P->kk, P->v, P->o, P->lse, &err)) {
        printf("FAIL %s: the float64 forward: %s\n", name, err.message);
        return 0;
    }
    /* LSE = -inf (nothing kept) or NaN (weights summing below 0): no dLSE there */
    for (size_t r = 0; r < P->rows; r++)
        if (!isfinite(P->lse[r])) P->dlse[r] = 0;
    return 1;
}

static void teardown(Problem *P) {
    if (P->bound) bind_release(&P->bc);
    for (int i = 0; i < P->nt; i++) free((void *)P->tensors[i].data);
    free(P->q), free(P->kk), free(P->v), free(P->dout), free(P->dlse), free(P->o), free(P->lse);
    attnc_kernel_free(P->k);
}

static int run_one(const attnc_spec *spec, const char *text, const char *name, int only_one, const char *shape,
                   int samples) {
    Problem P;
    int fails = 0;
    if (!setup(&P, spec, text, name, only_one, shape)) {
        fails = 1;
    } else {
        const attnc_sizes *s = &P.sz;
        printf("%s: B=%lld H=%lld Hkv=%lld Lq=%lld Lk=%lld D=%lld Dv=%lld, %s\n", name, (long long)s->B,
               (long long)s->H, (long long)s->Hkv, (long long)s->Lq, (long long)s->Lk, (long long)s->D,
               (long long)s->Dv, P.softmax ? "softmax" : "weight");
        fails += check_mode(&P, P.dout, P.dlse, samples, "dO+dLSE");
        /* the NULL paths, on fewer elements: they change the seeds, not the chain */
        fails += check_mode(&P, NULL, P.dlse, (samples + 2) / 3, "dLSE alone");
        fails += check_mode(&P, P.dout, NULL, (samples + 2) / 3, "dO alone");
    }
    teardown(&P);
    printf("%s %s\n", fails ? "FAIL" : "ok", name);
    return fails != 0;
}

int main(int argc, char **argv) {
    const char *shape = NULL, *file = NULL;
    int samples = 24, rules = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--shape") && i + 1 < argc) shape = argv[++i];
        else if (!strcmp(argv[i], "--samples") && i + 1 < argc && (samples = atoi(argv[i + 1])) > 1) i++;
        else if (!strcmp(argv[i], "--rules")) rules = 1;
        else if (argv[i][0] != '-' && !file) file = argv[i];
        else file = NULL, rules = 0, argc = 0;
    }
    if (!file == !rules) {
        fprintf(stderr, "usage: test_grad_interp (FILE.attn | --rules) [--shape SIZES] [--samples N]\n");
        return 2;
    }
    size_t len = sizeof RULES - 1;
    char *text = rules ? NULL : read_file(file, &len);
    if (!rules && !text) {
        fprintf(stderr, "test_grad_interp: cannot read %s\n", file);
        return 2;
    }
    attnc_spec *spec = NULL;
    attnc_error err = {0};
    if (attnc_spec_from_string(rules ? "rules.attn" : file, rules ? RULES : text, len, &spec, &err)) {
        printf("FAIL: %s\n%s", err.message, spec ? attnc_spec_diagnostics(spec) : "");
        attnc_spec_free(spec);
        free(text);
        return 1;
    }
    int n = attnc_spec_variant_count(spec), fails = 0;
    for (int i = 0; i < n; i++)
        fails += run_one(spec, rules ? RULES : text, attnc_spec_variant_name(spec, i), n == 1, shape, samples);
    attnc_spec_free(spec);
    free(text);
    printf("%d passed, %d failed\n", n - fails, fails);
    return fails != 0;
}
