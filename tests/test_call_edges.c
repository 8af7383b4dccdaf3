/* test_call_edges.c — the edges of one call, through the public API, on
 * every backend this build has (issue 8):
 *   zero sizes: every one of B, H, Hkv, Lq, Lk, D, Dv may be 0, empty arrays
 *     may be NULL, and O and LSE are what the math says (bugs 5, 11);
 *   param values: text that is not exactly an int, a float or true/false,
 *     and attnc_param structs with a bad type or no name, are refused (bug 7);
 *   work: a sum that would run for hours is refused before the call starts,
 *     naming the sum (bug 8);
 *   long flat chains `a + b + ...` and `m1 && m2 && ...` compile and run on
 *     every backend and match the interpreter (bug 9).
 * Registered to run with an 8 MiB stack (tests/interp.cmake): the chains
 * near the depth limit show that every walker's recursion fits in it. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

static int fails, passes;

static void check(int ok, const char *fmt, ...) {
    char what[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (ok) passes++;
    else fails++;
    printf("%s %s\n", ok ? "ok" : "FAIL", what);
}

static const attnc_backend backends[] = {ATTNC_BACKEND_INTERP, ATTNC_BACKEND_REFPLAN, ATTNC_BACKEND_LLVM,
                                         ATTNC_BACKEND_TCC, ATTNC_BACKEND_CUDA_EMU};
enum { NBACKENDS = sizeof backends / sizeof backends[0] };

/* Compile the only attention of `text` for backend b, with -D defines; NULL with err filled on failure. */
static attnc_kernel *compile(const char *text, attnc_backend b, const attnc_define *defs, int ndefs,
                             attnc_error *err) {
    attnc_spec *s = NULL;
    attnc_kernel *k = NULL;
    attnc_options opts = {b, 2, defs, ndefs, 0, 0, 0};
    if (attnc_spec_from_string("edge.attn", text, strlen(text), &s, err) == ATTNC_OK)
        attnc_compile(s, NULL, &opts, &k, err);
    else if (s)
        snprintf(err->message, sizeof err->message, "%.500s", attnc_spec_diagnostics(s));
    attnc_spec_free(s);
    return k;
}

/* ---- zero sizes ------------------------------------------------------- */

typedef struct Call {
    attnc_sizes sz;
    float *q, *k, *v, *o, *lse;
    size_t no, rows;
} Call;

/* Random Q, K, V for sz (NULL where empty), O and LSE filled with NaN. */
static Call make_call(attnc_sizes sz, uint64_t seed) {
    Call c = {sz, NULL, NULL, NULL, NULL, NULL, 0, 0};
    size_t nq = (size_t)(sz.B * sz.H * sz.Lq * sz.D), nk = (size_t)(sz.B * sz.Hkv * sz.Lk * sz.D);
    size_t nv = (size_t)(sz.B * sz.Hkv * sz.Lk * sz.Dv);
    c.rows = (size_t)(sz.B * sz.H * sz.Lq);
    c.no = c.rows * (size_t)sz.Dv;
    rng_seed(seed);
    if (nq) c.q = random_floats(nq);
    if (nk) c.k = random_floats(nk);
    if (nv) c.v = random_floats(nv);
    if (c.no) c.o = malloc(sizeof(float) * c.no);
    if (c.rows) c.lse = malloc(sizeof(float) * c.rows);
    for (size_t i = 0; i < c.no; i++) c.o[i] = NAN;
    for (size_t i = 0; i < c.rows; i++) c.lse[i] = NAN;
    return c;
}

static void free_call(Call *c) {
    free(c->q);
    free(c->k);
    free(c->v);
    free(c->o);
    free(c->lse);
}

static attnc_status run(const attnc_kernel *k, Call *c, const attnc_param *params, int np, attnc_error *err) {
    attnc_args args = {c->sz, c->q, c->k, c->v, c->o, c->lse, params, np, NULL, 0};
    return attnc_kernel_run(k, &args, err);
}

static const char *const zero_specs[] = {
    /* softmax, with a finite scale so that D = 0 means something */
    "attention a { scale 0.5; mask kv <= q + 3; bias -0.25 * float(q - kv) + float(h) * 0.1; }",
    /* weight: no softmax, LSE = log(sum of weights) */
    "attention w { scale 0.5; mask kv <= q + 3; weight exp(score) * 0.5; }",
    /* a tile map per batch and head */
    "attention v { scale 0.5; mask kv + b <= q + h; }",
};

/* Each zero size runs on backend b and gives what the math says. */
static void zero_sizes_on(attnc_backend b, const char *spec) {
    attnc_error err = {0};
    attnc_kernel *k = compile(spec, b, NULL, 0, &err);
    const char *bn = attnc_backend_name(b);
    if (!k) {
        check(0, "%s: compile: %s", bn, err.message);
        return;
    }
    const attnc_sizes base = {2, 4, 2, 5, 7, 3, 2};
    const char *names[] = {"B", "H", "Hkv (and H)", "Lq"};
    for (int z = 0; z < 4; z++) { /* no output rows at all */
        attnc_sizes sz = base;
        if (z == 0) sz.B = 0;
        if (z == 1) sz.H = 0;
        if (z == 2) sz.H = sz.Hkv = 0;
        if (z == 3) sz.Lq = 0;
        Call c = make_call(sz, 1);
        attnc_status st = run(k, &c, NULL, 0, &err);
        check(st == ATTNC_OK, "%s %s: %s = 0 gives empty O and LSE: %s", bn, attnc_kernel_variant(k), names[z],
              err.message);
        attnc_args args = {c.sz, c.q, c.k, c.v, c.o, c.lse, NULL, 0, NULL, 0};
        int64_t kept = -1;
        char *text = NULL;
        st = attnc_kernel_kept_pairs(k, &args, &kept, &err);
        if (!st) st = attnc_kernel_emit(k, "ir", &args, 0, &text, &err);
        check(st == ATTNC_OK && kept == 0, "%s: %s = 0: no kept pairs, and the tile map can be printed: %s", bn,
              names[z], err.message);
        attnc_free(text);
        free_call(&c);
    }
    /* Lk = 0: every row is fully masked */
    attnc_sizes sz = base;
    sz.Lk = 0;
    Call c = make_call(sz, 2);
    attnc_status st = run(k, &c, NULL, 0, &err);
    int masked = st == ATTNC_OK;
    for (size_t i = 0; masked && i < c.no; i++) masked = c.o[i] == 0;
    for (size_t i = 0; masked && i < c.rows; i++) masked = c.lse[i] == -INFINITY;
    check(masked, "%s %s: Lk = 0 gives O = 0 and LSE = -inf: %s", bn, attnc_kernel_variant(k), err.message);
    free_call(&c);
    /* Dv = 0: O is empty, LSE is the same as with Dv = 2 */
    Call full = make_call(base, 3);
    sz = base;
    sz.Dv = 0;
    c = make_call(sz, 3); /* the same Q and K: V comes last */
    attnc_status st_full = run(k, &full, NULL, 0, &err);
    st = run(k, &c, NULL, 0, &err);
    int same = st == ATTNC_OK && st_full == ATTNC_OK;
    for (size_t i = 0; same && i < c.rows; i++) same = close_enough(c.lse[i], full.lse[i], 1e-6);
    check(same, "%s %s: Dv = 0 gives the LSE of Dv = 2: %s", bn, attnc_kernel_variant(k), err.message);
    free_call(&c);
    free_call(&full);
    /* Hkv = 0 with query heads is an error */
    sz = base;
    sz.Hkv = 0;
    c = make_call(sz, 4);
    st = run(k, &c, NULL, 0, &err);
    check(st == ATTNC_ERR_RUNTIME && strstr(err.message, "Hkv = 0"), "%s: Hkv = 0 with H = 4 is refused: %s", bn,
          err.message);
    free_call(&c);
    attnc_kernel_free(k);
}

/* D = 0: the dot product is 0, so scores are the biases alone: the same as
 * D = 3 with scale 0.  And the default scale 1/sqrt(D) is refused. */
static void zero_d_on(attnc_backend b) {
    const char *bn = attnc_backend_name(b);
    attnc_error err = {0};
    attnc_kernel *k = compile("attention a { param s : float; scale s; mask kv <= q + 1; bias -0.5 * float(q - kv); }",
                              b, NULL, 0, &err);
    attnc_kernel *kd = compile("attention d { mask kv <= q + 1; }", b, NULL, 0, &err);
    if (!k || !kd) {
        check(0, "%s: compile: %s", bn, err.message);
        attnc_kernel_free(k);
        attnc_kernel_free(kd);
        return;
    }
    attnc_sizes sz0 = {2, 4, 2, 5, 7, 0, 2}, sz3 = sz0;
    sz3.D = 3;
    Call c0 = make_call(sz0, 5), c3 = make_call(sz3, 5);
    free(c3.v);
    c3.v = malloc(sizeof(float) * (size_t)(2 * 2 * 7 * 2));
    memcpy(c3.v, c0.v, sizeof(float) * (size_t)(2 * 2 * 7 * 2)); /* the same V */
    attnc_param half = {"s", ATTNC_FLOAT, 0, 0.5, 0}, zero = {"s", ATTNC_FLOAT, 0, 0.0, 0};
    attnc_status st0 = run(k, &c0, &half, 1, &err), st3 = run(k, &c3, &zero, 1, &err);
    char buf[300];
    double worst;
    const char *diff = st0 || st3 ? err.message
                                  : compare_outputs(c0.o, c0.lse, c3.o, c3.lse, c0.no, c0.rows, 1e-5, &worst, buf,
                                                    sizeof buf);
    check(!diff, "%s: D = 0 gives the biases alone (D = 3 with scale 0): %s", bn, diff ? diff : "");
    attnc_status st = run(kd, &c0, NULL, 0, &err);
    check(st == ATTNC_ERR_RUNTIME && strstr(err.message, "D = 0"), "%s: D = 0 with the default scale is refused: %s",
          bn, err.message);
    free_call(&c0);
    free_call(&c3);
    attnc_kernel_free(k);
    attnc_kernel_free(kd);
}

/* ---- param values ------------------------------------------------------ */

static void param_values(void) {
    attnc_error err = {0};
    const char *spec = "attention p { param c : float = 1.0; param f : bool = true; param i : int = 0;"
                       " mask f; bias c * 0.0 + float(i) * 0.0; }";
    attnc_kernel *k = compile(spec, ATTNC_BACKEND_INTERP, NULL, 0, &err);
    if (!k) {
        check(0, "compile: %s", err.message);
        return;
    }
    static const struct {
        const char *name, *text;
        int ok;
    } cases[] = {
        {"c", "0.5", 1},     {"c", "-2e3", 1},  {"c", "inf", 1},    {"c", "-inf", 1},  {"c", "1e-400", 1},
        {"c", "1e999", 0},   {"c", "-1e999", 0}, {"c", "1e39", 0},  {"c", "nan", 0},   {"c", "NaN", 0},
        {"c", "", 0},        {"c", " 1", 0},    {"c", "1 ", 0},     {"c", "1.5x", 0},  {"c", "0x1p3", 1},
        {"i", "42", 1},      {"i", "-0x10", 1}, {"i", "9223372036854775807", 1},       {"i", "-9223372036854775808", 1},
        {"i", "9223372036854775808", 0},        {"i", "-9223372036854775809", 0},      {"i", "99999999999999999999", 0},
        {"i", "0x", 0},      {"i", "", 0},      {"i", "12abc", 0},  {"i", " 3", 0},    {"i", "3 ", 0},
        {"i", "1.0", 0},     {"i", "--1", 0},   {"i", "+-1", 0},
        {"f", "true", 1},    {"f", "false", 1}, {"f", "1", 0},      {"f", "0", 0},     {"f", "TRUE", 0},
        {"f", "", 0},        {"f", "yes", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        attnc_param p;
        attnc_status st = attnc_kernel_param_from_text(k, cases[i].name, cases[i].text, &p, &err);
        check(cases[i].ok ? st == ATTNC_OK : st == ATTNC_ERR_USAGE && err.message[0], "--param %s='%s' is %s: %s",
              cases[i].name, cases[i].text, cases[i].ok ? "accepted" : "refused", cases[i].ok ? "" : err.message);
    }
    attnc_param p;
    check(attnc_kernel_param_from_text(k, "i", "010", &p, &err) == ATTNC_OK && p.i == 10, "'010' is decimal 10, not octal");
    /* the same text, fixed at compile time with -D */
    attnc_define bad[] = {{"c", "1e999"}, {"f", "1"}, {"i", "0x"}, {"i", NULL}, {NULL, "1"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        attnc_kernel *kk = compile(spec, ATTNC_BACKEND_INTERP, &bad[i], 1, &err);
        check(!kk && err.status == ATTNC_ERR_USAGE, "-D %s=%s is refused: %s", bad[i].name ? bad[i].name : "(null)",
              bad[i].value ? bad[i].value : "(null)", err.message);
        attnc_kernel_free(kk);
    }
    attnc_define good = {"c", "-inf"};
    attnc_kernel *kk = compile(spec, ATTNC_BACKEND_INTERP, &good, 1, &err);
    check(kk != NULL, "-D c=-inf is accepted: %s", err.message);
    attnc_kernel_free(kk);
    /* attnc_param structs */
    Call c = make_call((attnc_sizes){1, 1, 1, 2, 3, 2, 2}, 6);
    attnc_param bad_type = {"c", (attnc_type)77, 0, 0.5, 0};
    attnc_status st = run(k, &c, &bad_type, 1, &err);
    check(st == ATTNC_ERR_RUNTIME && strstr(err.message, "invalid type 77"), "attnc_param.type = 77 is refused: %s",
          err.message);
    attnc_param neg_type = {"i", (attnc_type)-1, 3, 0, 0};
    st = run(k, &c, &neg_type, 1, &err);
    check(st == ATTNC_ERR_RUNTIME && strstr(err.message, "invalid type"), "attnc_param.type = -1 is refused: %s",
          err.message);
    attnc_param no_name = {NULL, ATTNC_INT, 3, 0, 0};
    st = run(k, &c, &no_name, 1, &err);
    check(st == ATTNC_ERR_RUNTIME && strstr(err.message, "no name"), "attnc_param.name = NULL is refused: %s",
          err.message);
    free_call(&c);
    attnc_kernel_free(k);
}

/* ---- work -------------------------------------------------------------- */

static void sum_work_on(attnc_backend b) {
    const char *bn = attnc_backend_name(b);
    attnc_error err = {0};
    const char *specs[] = {"attention s { param n : int; bias sum(r < n) 0.001 * float(r % 3); }",
                           "attention t { param m : int; bias sum(r < m * m - 3 * m) 0.001; }",
                           "attention d { param n : int = sum(r < Lk * 1000000000) 1; bias float(n) * 0.0; }"};
    attnc_kernel *ks[3];
    int compiled = 1;
    for (int i = 0; i < 3; i++) {
        ks[i] = compile(specs[i], b, NULL, 0, &err);
        if (!ks[i]) check(0, "%s: compile %s: %s", bn, specs[i], err.message);
        compiled &= ks[i] != NULL;
    }
    attnc_kernel *k = ks[0], *kt = ks[1], *kd = ks[2];
    if (compiled) {
        Call c = make_call((attnc_sizes){1, 2, 2, 3, 5, 4, 2}, 7);
        attnc_param n = {"n", ATTNC_INT, (int64_t)1 << 40, 0, 0};
        attnc_status st = run(k, &c, &n, 1, &err);
        check(st == ATTNC_ERR_RUNTIME && strstr(err.message, "sum(r < n) with n = 1099511627776"),
              "%s: sum(r < n) with n = 2^40 is refused before running: %s", bn, err.message);
        n.i = 100;
        st = run(k, &c, &n, 1, &err);
        check(st == ATTNC_OK, "%s: sum(r < n) with n = 100 runs: %s", bn, err.message);
        /* each sum under the limit, but 2^20 pairs x (2^31 - 1) iterations is not */
        Call big = make_call((attnc_sizes){1, 1, 1, 1024, 1024, 1, 1}, 9);
        n.i = INT32_MAX;
        st = run(k, &big, &n, 1, &err);
        check(st == ATTNC_ERR_RUNTIME && strstr(err.message, "the limit is 2^50"),
              "%s: 2^20 pairs x 2^31 - 1 iterations are refused before running: %s", bn, err.message);
        free_call(&big);
        attnc_param m = {"m", ATTNC_INT, 1 << 20, 0, 0};
        st = run(kt, &c, &m, 1, &err);
        check(st == ATTNC_ERR_RUNTIME && strstr(err.message, "a sum whose bound can reach 1099508482048"),
              "%s: sum(r < m * m - 3 * m) with m = 2^20 is refused, naming its bound: %s", bn, err.message);
        m.i = 40;
        st = run(kt, &c, &m, 1, &err);
        check(st == ATTNC_OK, "%s: sum(r < m * m - 3 * m) with m = 40 runs: %s", bn, err.message);
        attnc_args args = {c.sz, c.q, c.k, c.v, c.o, c.lse, NULL, 0, NULL, 0};
        st = attnc_kernel_run(kd, &args, &err);
        check(st == ATTNC_ERR_RUNTIME && strstr(err.message, "5000000000 iterations"),
              "%s: a param default summing 5e9 times is refused: %s", bn, err.message);
        free_call(&c);
    }
    attnc_kernel_free(k);
    attnc_kernel_free(kt);
    attnc_kernel_free(kd);
}

/* ---- long flat chains --------------------------------------------------- */

/* `bias t0 + t1 + ... ;` and `mask m0 && m1 && ...;` with n terms each. */
static char *chain_spec(int n, int mask) {
    size_t cap = (size_t)n * 48 + 200, len = 0;
    char *s = malloc(cap);
    len += (size_t)snprintf(s + len, cap - len, "attention chain {\n  %s ", mask ? "mask" : "bias");
    for (int i = 0; i < n; i++) {
        const char *op = i ? (mask ? " && " : " + ") : "";
        if (mask)
            len += (size_t)snprintf(s + len, cap - len, "%s%s", op,
                                    i % 97 == 5 ? "q + kv != 6" : i % 2 ? "kv != q + 40" : "q * 2 != kv + 50");
        else
            len += (size_t)snprintf(s + len, cap - len, "%sfloat((kv * %d + q) %% 7) * 0.001", op, i % 13 + 1);
    }
    snprintf(s + len, cap - len, ";\n}\n");
    return s;
}

static void chains(void) {
    const int lengths[] = {300, 1000};
    for (int mask = 0; mask < 2; mask++)
        for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
            char *spec = chain_spec(lengths[li], mask);
            attnc_sizes sz = {1, 2, 1, 9, 11, 4, 3};
            Call ref = make_call(sz, 8);
            attnc_error err = {0};
            attnc_kernel *k = compile(spec, ATTNC_BACKEND_INTERP, NULL, 0, &err);
            attnc_status st = k ? run(k, &ref, NULL, 0, &err) : ATTNC_ERR_SPEC;
            check(st == ATTNC_OK, "a chain of %d '%s' terms checks and runs on interp: %.300s", lengths[li],
                  mask ? "&&" : "+", err.message);
            attnc_kernel_free(k);
            for (int b = 1; st == ATTNC_OK && b < NBACKENDS; b++) {
                if (!attnc_backend_available(backends[b])) continue;
                Call c = make_call(sz, 8);
                k = compile(spec, backends[b], NULL, 0, &err);
                attnc_status sb = k ? run(k, &c, NULL, 0, &err) : ATTNC_ERR_SPEC;
                char buf[300];
                double worst;
                const char *diff = sb ? err.message
                                      : compare_outputs(c.o, c.lse, ref.o, ref.lse, c.no, c.rows, 1e-4, &worst, buf,
                                                        sizeof buf);
                check(!diff, "a chain of %d '%s' terms on %s matches the interpreter: %.300s", lengths[li],
                      mask ? "&&" : "+", attnc_backend_name(backends[b]), diff ? diff : "");
                attnc_kernel_free(k);
                free_call(&c);
            }
            free_call(&ref);
            free(spec);
        }
}

/* Past the limit, a chain gets the clean error, not a crash. */
static void too_long_chain(void) {
    char *spec = chain_spec(1100, 0);
    attnc_spec *s = NULL;
    attnc_error err = {0};
    attnc_status st = attnc_spec_from_string("chain.attn", spec, strlen(spec), &s, &err);
    check(st == ATTNC_ERR_SPEC && s && strstr(attnc_spec_diagnostics(s), "nested too deeply (1105 levels; the limit is 1024)"),
          "a chain of 1100 terms is refused as too deep: %.200s", s ? attnc_spec_diagnostics(s) : err.message);
    attnc_spec_free(s);
    free(spec);
}

/* With an argument, only that part: zero, params, work or chains. */
int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *only = argc > 1 ? argv[1] : NULL;
#define PART(name) (!only || strcmp(only, name) == 0)
    for (int b = 0; b < NBACKENDS; b++) {
        if (!attnc_backend_available(backends[b])) {
            printf("skip %s: not in this build\n", attnc_backend_name(backends[b]));
            continue;
        }
        for (size_t s = 0; PART("zero") && s < sizeof zero_specs / sizeof zero_specs[0]; s++)
            zero_sizes_on(backends[b], zero_specs[s]);
        if (PART("zero")) zero_d_on(backends[b]);
        if (PART("work")) sum_work_on(backends[b]);
    }
    if (PART("params")) param_values();
    if (PART("chains")) {
        chains();
        too_long_chain();
    }
    printf("%d passed, %d failed\n", passes, fails);
    return fails != 0;
}
