/* test_hostile.c — specs no person would write, through the library: each
 * must give a clear error (or a correct result) and never a crash, a hang or
 * undefined behaviour.  Run under ASan/UBSan in CI. */
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attnc.h"

static int fails, passes;

static void check(int ok, const char *what, const char *detail) {
    if (ok) {
        passes++;
        printf("ok %s\n", what);
    } else {
        fails++;
        printf("FAIL %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    }
}

/* A growable string. */
typedef struct Buf {
    char *p;
    size_t len, cap;
} Buf;

static void put(Buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (b->len + (size_t)n + 1 > b->cap) {
        b->cap = (b->len + (size_t)n + 1) * 2;
        b->p = realloc(b->p, b->cap);
    }
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* Check `text`; expect an error whose diagnostics contain `want` (NULL: expect success). */
static void expect_spec(const char *what, const char *text, size_t len, const char *want) {
    attnc_spec *s = NULL;
    attnc_error err = {0};
    attnc_status st = attnc_spec_from_string("h.attn", text, len, &s, &err);
    const char *diags = s ? attnc_spec_diagnostics(s) : err.message;
    if (!want)
        check(st == ATTNC_OK, what, diags);
    else
        check(st == ATTNC_ERR_SPEC && strstr(diags, want) != NULL, what, diags);
    attnc_spec_free(s);
}

static uint64_t rng = 12345;
static uint64_t next(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void random_bytes(void) {
    int bad = 0;
    for (int i = 0; i < 3000; i++) {
        size_t n = next() % 400;
        char *buf = malloc(n + 1);
        for (size_t j = 0; j < n; j++) buf[j] = (char)(next() & 0xff);
        attnc_spec *s = NULL;
        attnc_status st = attnc_spec_from_string("r.attn", buf, n, &s, NULL);
        /* random bytes are almost never a valid spec; every error is rendered in the spec's form */
        if (st == ATTNC_ERR_SPEC && (!s || strncmp(attnc_spec_diagnostics(s), "r.attn:", 7) != 0)) bad++;
        attnc_spec_free(s);
        free(buf);
    }
    check(bad == 0, "3000 random byte strings give rendered diagnostics", NULL);
}

/* Random soup of the language's own tokens reaches the parser and checker deeper than bytes do. */
static void token_soup(void) {
    static const char *const toks[] = {"attention", "x", "{", "}", "(", ")", "[", "]", ";", ",", "=", ":", "mask",
                                       "bias", "score", "scale", "weight", "let", "param", "tensor", "use", "sum",
                                       "int", "float", "bool", "q", "kv", "h", "b", "1", "2.5", "0x10", "<", "<=",
                                       "==", "&&", "||", "!", "-", "+", "*", "/", "%", "?", "causal", "t", "abs",
                                       "min", "clamp", "true", "Lq", "r"};
    int n = (int)(sizeof toks / sizeof toks[0]);
    for (int i = 0; i < 3000; i++) {
        Buf b = {0};
        put(&b, "attention a { ");
        int len = (int)(next() % 40);
        for (int j = 0; j < len; j++) put(&b, "%s ", toks[next() % (uint64_t)n]);
        put(&b, "}");
        attnc_spec *s = NULL;
        attnc_spec_from_string("soup.attn", b.p, b.len, &s, NULL);
        attnc_spec_free(s);
        free(b.p);
    }
    check(1, "3000 token soups parse and check without a crash", NULL);
}

static void deep_nesting(void) {
    Buf b = {0};
    put(&b, "attention a { mask ");
    for (int i = 0; i < 5000; i++) put(&b, "(");
    put(&b, "kv <= q");
    for (int i = 0; i < 5000; i++) put(&b, ")");
    put(&b, "; }");
    expect_spec("5000 nested parentheses are fine", b.p, b.len, NULL);
    b.len = 0;
    put(&b, "attention a { mask ");
    for (int i = 0; i < 100000; i++) put(&b, "(");
    put(&b, "kv <= q; }");
    expect_spec("100000 unclosed parentheses: a syntax error", b.p, b.len, "unexpected ';'");
    b.len = 0;
    put(&b, "attention a { bias ");
    for (int i = 0; i < 5000; i++) put(&b, "-(");
    put(&b, "1.0");
    for (int i = 0; i < 5000; i++) put(&b, ")");
    put(&b, "; }");
    expect_spec("5000 nested negations: nested too deeply", b.p, b.len, "nested too deeply");
    b.len = 0;
    put(&b, "attention a { bias ");
    for (int i = 0; i < 1100; i++) put(&b, "-(");
    put(&b, "1.0");
    for (int i = 0; i < 1100; i++) put(&b, ")");
    put(&b, "; }");
    expect_spec("1100 nested negations: just past the limit of 1024", b.p, b.len, "the limit is 1024");
    b.len = 0;
    put(&b, "attention a {\nlet a0 = q;\n");
    for (int i = 1; i < 3000; i++) put(&b, "let a%d = a%d + 1;\n", i, i - 1);
    put(&b, "bias float(a2999); }");
    expect_spec("a chain of 3000 lets: nested too deeply once expanded", b.p, b.len, "once its lets are expanded");
    b.len = 0;
    put(&b, "attention a {\nlet a0 = kv;\n");
    for (int i = 1; i < 60; i++) put(&b, "let a%d = a%d + a%d;\n", i, i - 1, i - 1);
    put(&b, "bias float(a59); }");
    expect_spec("lets doubling 60 times: too large once expanded", b.p, b.len, "too large once its lets");
    free(b.p);
}

static void big_inputs(void) {
    size_t n = (16u << 20) + 10;
    char *big = malloc(n);
    memset(big, ' ', n);
    attnc_spec *s = NULL;
    attnc_error err = {0};
    attnc_status st = attnc_spec_from_string("big.attn", big, n, &s, &err);
    check(st == ATTNC_ERR_SPEC && !s && strstr(err.message, "too large"), "a 16 MiB spec is refused", err.message);
    free(big);

    Buf b = {0};
    put(&b, "attention a { let ");
    for (int i = 0; i < 200000; i++) put(&b, "x");
    put(&b, " = 1; mask q < 1 }");
    expect_spec("a 200000-character identifier and a missing ';'", b.p, b.len, "unexpected '}', expected ';'");
    b.len = 0;
    put(&b, "attention a {\n");
    for (int i = 0; i < 500; i++) put(&b, "mask q + %d;\n", i);
    put(&b, "}");
    expect_spec("500 errors stop at the cap", b.p, b.len, "too many errors");
    free(b.p);
    expect_spec("empty file", "", 0, "unexpected end of file, expected 'attention'");
    expect_spec("NUL bytes", "attention a {\0}", 15, "unexpected byte 0x00");
    expect_spec("unterminated comment", "attention a { /* mask q < kv; }", 31, "unterminated comment");
    expect_spec("huge int literal", "attention a { bias 99999999999999999999; }", 42, "out of range");
    expect_spec("huge float literal", "attention a { bias 1e999; }", 27, "out of range");
}

/* Run a one-attention spec on a small shape; returns the status, O in o. */
static attnc_status run_spec(const char *text, float *o, float *lse, char *msg) {
    attnc_spec *s = NULL;
    attnc_kernel *k = NULL;
    attnc_error err = {0};
    attnc_status st = attnc_spec_from_string("rt.attn", text, strlen(text), &s, &err);
    if (!st) st = attnc_compile(s, NULL, NULL, &k, &err);
    if (!st) {
        float q[2 * 3 * 4], kk[2 * 5 * 4], v[2 * 5 * 2];
        for (int i = 0; i < 24; i++) q[i] = (float)(i % 7) * 0.1f;
        for (int i = 0; i < 40; i++) kk[i] = (float)(i % 5) * 0.1f;
        for (int i = 0; i < 20; i++) v[i] = (float)i;
        attnc_args args = {{1, 2, 2, 3, 5, 4, 2}, q, kk, v, o, lse, NULL, 0, NULL, 0};
        st = attnc_kernel_run(k, &args, &err);
    }
    snprintf(msg, 512, "%s%s", err.message, s ? attnc_spec_diagnostics(s) : "");
    attnc_kernel_free(k);
    attnc_spec_free(s);
    return st;
}

static void runtime_edges(void) {
    float o[12], lse[6];
    char msg[512];
    /* int arithmetic wraps (spec 5.1): INT64_MIN / -1, INT64_MIN % -1, abs(INT64_MIN), overflowing + */
    const char *wrap =
        "attention a { let m = -9223372036854775807 - 1;\n"
        "  mask m / (q - q - 1) == m && m % -1 == 0 && abs(m) == m && m - 1 == 9223372036854775807;\n"
        "  mask (9223372036854775807 + q) / 2 != 0; }";
    check(run_spec(wrap, o, lse, msg) == ATTNC_OK && isfinite(lse[0]), "int64 overflow wraps, no UB", msg);
    const char *sat = "attention a { mask int(exp(800.0)) == 9223372036854775807 && int(-exp(800.0)) == -9223372036854775807 - 1 && int(1e30) == 9223372036854775807"
                      " && int(log(-1.0)) == 0 && int(-2.7) == -2; }";
    check(run_spec(sat, o, lse, msg) == ATTNC_OK && isfinite(lse[0]), "int() truncates and saturates, NaN -> 0", msg);
    const char *floordiv = "attention a { mask -3 / 2 == -2 && -3 % 2 == 1 && 3 % -2 == -1 && 7 / -2 == -4; }";
    check(run_spec(floordiv, o, lse, msg) == ATTNC_OK && isfinite(lse[0]), "floor division and modulo", msg);
    check(run_spec("attention a { bias float(1 / (kv - 2)); }", o, lse, msg) == ATTNC_ERR_RUNTIME &&
              strstr(msg, "integer division by zero"),
          "int division by zero at a kept position", msg);
    check(run_spec("attention a { mask kv != 2; bias float(1 / (kv - 2)); }", o, lse, msg) == ATTNC_OK,
          "division by zero only at a masked position is no error", msg);
    check(run_spec("attention a { mask false; }", o, lse, msg) == ATTNC_OK && lse[0] == -INFINITY && o[0] == 0 &&
              !isnan(o[1]),
          "everything masked: O = 0, LSE = -inf", msg);
    check(run_spec("attention a { bias -1.0 / 0.0; }", o, lse, msg) == ATTNC_OK && lse[0] == -INFINITY && o[0] == 0,
          "every score -inf: treated as fully masked", msg);
    check(run_spec("attention a { tensor t : float[Lk - 10]; bias t[0]; }", o, lse, msg) == ATTNC_ERR_RUNTIME,
          "negative tensor dimension is a runtime error", msg);
}

/* ---- version 2 (spec 9) calls through the C API ---------------------------- */

/* The v2 calls' shape: B=1, H=4, Hkv=2, Lq=6, Lk=7, D=8, Dv=4. */
#define V2_ROWS (1 * 4 * 6)
#define V2_SENTINEL 12345.0f

/* A v2 call: spec text, backend, tensors; O and LSE start as the sentinel. */
typedef struct V2Call {
    const char *spec;
    attnc_backend backend;
    attnc_sizes sz;
    const attnc_tensor *t;
    int nt;
    float o[V2_ROWS * 4], lse[V2_ROWS];
    char msg[512];
} V2Call;

static float v2_value(int i, int salt) { return (float)((i * 37 + salt * 11) % 23 - 11) * 0.09f; }

static attnc_status v2_run_kernel(attnc_kernel *k, V2Call *c) {
    const attnc_sizes *z = &c->sz;
    int64_t nq = z->B * z->H * z->Lq * z->D, nk = z->B * z->Hkv * z->Lk * z->D, nv = z->B * z->Hkv * z->Lk * z->Dv;
    float *q = malloc(sizeof(float) * (size_t)(nq + nk + nv));
    for (int64_t i = 0; i < nq + nk + nv; i++) q[i] = v2_value((int)i, 1);
    for (int i = 0; i < V2_ROWS * 4; i++) c->o[i] = V2_SENTINEL;
    for (int i = 0; i < V2_ROWS; i++) c->lse[i] = V2_SENTINEL;
    attnc_error err = {0};
    attnc_args args = {*z, q, q + nq, q + nq + nk, c->o, c->lse, NULL, 0, c->t, c->nt};
    attnc_status st = attnc_kernel_run(k, &args, &err);
    snprintf(c->msg, sizeof c->msg, "%s", err.message);
    free(q);
    return st;
}

static attnc_status v2_run(V2Call *c) {
    attnc_spec *s = NULL;
    attnc_kernel *k = NULL;
    attnc_error err = {0};
    attnc_options opts = {0};
    opts.backend = c->backend;
    if (c->sz.B == 0) c->sz = (attnc_sizes){1, 4, 2, 6, 7, 8, 4};
    attnc_status st = attnc_spec_from_string("v2.attn", c->spec, strlen(c->spec), &s, &err);
    if (!st) st = attnc_compile(s, NULL, &opts, &k, &err);
    snprintf(c->msg, sizeof c->msg, "%s%s", err.message, s ? attnc_spec_diagnostics(s) : "");
    if (!st) st = v2_run_kernel(k, c);
    attnc_kernel_free(k);
    attnc_spec_free(s);
    return st;
}

/* Nothing written to O or LSE (a failed call). */
static int v2_untouched(const V2Call *c) {
    for (int i = 0; i < V2_ROWS * 4; i++)
        if (c->o[i] != V2_SENTINEL) return 0;
    for (int i = 0; i < V2_ROWS; i++)
        if (c->lse[i] != V2_SENTINEL) return 0;
    return 1;
}

/* The call fails with `want`, a one-line message containing `text`, and writes nothing. */
static void v2_expect_error(const char *what, V2Call *c, attnc_status want, const char *text) {
    attnc_status st = v2_run(c);
    int ok = st == want && strstr(c->msg, text) && !strchr(c->msg, '\n') && v2_untouched(c);
    check(ok, what, c->msg);
}

/* The compiled backend's O and LSE against the interpreter's: the largest relative difference (inf: a status
 * differs, or a value is NaN on one side only). */
static double v2_vs_interp(V2Call *c) {
    V2Call ref = *c;
    ref.backend = ATTNC_BACKEND_INTERP;
    attnc_status a = v2_run(c), b = v2_run(&ref);
    if (a || b) return INFINITY;
    double worst = 0;
    for (int i = 0; i < V2_ROWS * 5; i++) {
        double x = i < V2_ROWS * 4 ? c->o[i] : c->lse[i - V2_ROWS * 4];
        double y = i < V2_ROWS * 4 ? ref.o[i] : ref.lse[i - V2_ROWS * 4];
        double e = x == y || (isnan(x) && isnan(y)) ? 0 : fabs(x - y) / (1 + fabs(y));
        if (!(e <= worst)) worst = e;
    }
    return worst;
}

/* A compiled backend of this build (the interpreter when there is none). */
static attnc_backend v2_compiled(void) {
    static const attnc_backend order[] = {ATTNC_BACKEND_LLVM, ATTNC_BACKEND_TCC, ATTNC_BACKEND_REFPLAN};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        if (attnc_backend_available(order[i])) return order[i];
    return ATTNC_BACKEND_INTERP;
}

/* The call of spec on backend be with tensors t[0 .. nt - 1]. */
static V2Call v2_call(const char *spec, attnc_backend be, const attnc_tensor *t, int nt) {
    V2Call c = {.spec = spec, .backend = be, .t = t, .nt = nt};
    return c;
}

static void v2_bad_calls(void) {
    attnc_backend be = v2_compiled();
    V2Call c = v2_call("attention a { param r : int = 5; rotary(dims = r); }", be, NULL, 0);
    v2_expect_error("v2: rotary with odd dims at run time", &c, ATTNC_ERR_RUNTIME, "rotary's dims is 5");
    c = v2_call("attention a { param r : int = 10; rotary(dims = r); }", be, NULL, 0);
    v2_expect_error("v2: rotary dims over D at run time", &c, ATTNC_ERR_RUNTIME, "between 0 and D = 8");
    const char *ids = "attention a { tensor pq : int[Lq]; rotary(qpos = pq[q]); }";
    int32_t pq3[3] = {0, 1, 2};
    attnc_tensor t3 = {"pq", ATTNC_I32, 1, {3}, pq3}, tnull = {"pq", ATTNC_I32, 1, {6}, NULL};
    c = v2_call(ids, be, &t3, 1);
    v2_expect_error("v2: a position-id tensor of the wrong extent", &c, ATTNC_ERR_RUNTIME,
                    "tensor 'pq' has shape [3] but the spec needs [6]");
    c = v2_call("attention a { tensor pq : int[3]; rotary(qpos = pq[q]); }", be, &t3, 1);
    v2_expect_error("v2: a position id's index out of range", &c, ATTNC_ERR_RUNTIME, "out of range");
    c = v2_call(ids, be, &tnull, 1);
    v2_expect_error("v2: a NULL position-id tensor", &c, ATTNC_ERR_RUNTIME, "has no data (NULL)");
    const char *rows = "attention a { tensor E : float[7, D]; bias dot(Q, E[clamp(kv - q, -3, 3) + 3]); }";
    float e[7 * 9] = {0};
    attnc_tensor te = {"E", ATTNC_F32, 2, {7, 9}, e}, enull = {"E", ATTNC_F32, 2, {7, 8}, NULL};
    c = v2_call(rows, be, &te, 1);
    v2_expect_error("v2: a rows tensor with the wrong last extent", &c, ATTNC_ERR_RUNTIME,
                    "tensor 'E' has shape [7, 9] but the spec needs [7, 8]");
    c = v2_call(rows, be, &enull, 1);
    v2_expect_error("v2: a NULL rows tensor", &c, ATTNC_ERR_RUNTIME, "has no data (NULL)");
    float s2[2] = {0, 0};
    attnc_tensor snull = {"S", ATTNC_F32, 1, {4}, NULL}, ts2 = {"S", ATTNC_F32, 1, {2}, s2};
    c = v2_call("attention a { tensor S : float[H]; sink S[h]; }", be, &snull, 1);
    v2_expect_error("v2: a NULL sink tensor", &c, ATTNC_ERR_RUNTIME, "has no data (NULL)");
    c = v2_call("attention a { tensor S : float[2]; sink S[h]; }", be, &ts2, 1);
    v2_expect_error("v2: a sink's index out of range", &c, ATTNC_ERR_RUNTIME, "out of range");
}

/* Position ids negative, huge and at the int32 limits rotate like any other (angles in float64); a sink of
 * NaN or infinity gives the documented rows (docs/language-choices.md). */
static void v2_edge_values(void) {
    attnc_backend be = v2_compiled();
    /* ids beyond the lengths but few enough for an angle table over them, then extreme ones (outside it) */
    int32_t pq[6] = {0, 30, 12, 7, 20, 1}, pk[7] = {33, 2, 9, 25, 6, 14, 0};
    int32_t xq[6] = {-7, 2147483647, -2147483647 - 1, 0, 5, 1000000007}, xk[7] = {3, -1, 2147483646, 4, 4, 0, 65536};
    attnc_tensor tp[2] = {{"pq", ATTNC_I32, 1, {6}, pq}, {"pk", ATTNC_I32, 1, {7}, pk}};
    const char *specs[] = {"attention a { tensor pq : int[Lq]; tensor pk : int[Lk]; use causal;\n"
                           "  rotary(base = 500000.0, qpos = pq[q], kvpos = pk[kv]); }",
                           "attention a { tensor pq : int[Lq]; tensor pk : int[Lk];\n"
                           "  rotary(interleaved = true, qpos = pq[q], kvpos = pk[kv]); }"};
    const char *what[] = {"v2: position ids beyond the lengths agree with the interpreter",
                          "v2: negative, huge and int32-limit position ids agree with the interpreter"};
    char buf[64];
    for (int x = 0; x < 2; x++)
        for (int i = 0; i < 2; i++) {
            if (x) tp[0].data = xq, tp[1].data = xk;
            V2Call c = v2_call(specs[i], be, tp, 2);
            double worst = v2_vs_interp(&c);
            snprintf(buf, sizeof buf, "%s max difference %.2g", i ? "interleaved," : "", worst);
            check(worst <= 1e-5, what[x], buf);
        }

    /* heads: NaN, +inf, -inf, a finite sink */
    float sinks[4] = {NAN, INFINITY, -INFINITY, 0.5f};
    attnc_tensor ts = {"S", ATTNC_F32, 1, {4}, sinks};
    V2Call with = v2_call("attention a { tensor S : float[H]; use causal; sink S[h]; }", be, &ts, 1);
    V2Call without = v2_call("attention a { use causal; }", be, NULL, 0);
    double worst = v2_vs_interp(&with);
    int ok = worst == 0 || worst <= 1e-5;
    ok = ok && v2_run(&with) == ATTNC_OK && v2_run(&without) == ATTNC_OK;
    for (int q = 0; q < 6; q++) {
        for (int d = 0; d < 4; d++) {
            ok = ok && isnan(with.o[(0 * 6 + q) * 4 + d]);                          /* NaN: NaN */
            ok = ok && with.o[(1 * 6 + q) * 4 + d] == 0;                             /* +inf: all the weight */
            ok = ok && with.o[(2 * 6 + q) * 4 + d] == without.o[(2 * 6 + q) * 4 + d]; /* -inf: nothing changes */
        }
        ok = ok && isnan(with.lse[0 * 6 + q]) && with.lse[1 * 6 + q] == INFINITY &&
             with.lse[2 * 6 + q] == without.lse[2 * 6 + q] && with.lse[3 * 6 + q] > without.lse[3 * 6 + q];
    }
    check(ok, "v2: sinks of NaN, +inf and -inf give NaN rows, (O = 0, LSE = +inf) and the rows without a sink",
          with.msg);
}

/* One kernel, many calls: what it keeps between calls (rotary's copies and angle table) must follow each
 * call's shape, dims and base, and calls on two threads at once must not share it. */
typedef struct V2Thread {
    attnc_kernel *k;
    int salt, bad;
} V2Thread;

static const char v2_reuse_spec[] =
    "attention a { param base : float = 10000.0; param r : int = 8; use causal; rotary(base = base, dims = r); }";

/* The kernel's call with params (base, r) and Lq = Lk = L against the interpreter's result of the same. */
static int v2_reuse_call(attnc_kernel *k, double base, int64_t r, int64_t L) {
    attnc_param p[2] = {{"base", ATTNC_FLOAT, 0, base, 0}, {"r", ATTNC_INT, r, 0, 0}};
    attnc_error err = {0};
    V2Call c = {.backend = ATTNC_BACKEND_INTERP, .sz = {1, 4, 2, L, L, 8, 4}};
    /* the reference: the same spec with the params fixed, on the interpreter */
    char spec[256];
    snprintf(spec, sizeof spec, "attention a { use causal; rotary(base = %.17g, dims = %lld); }", base, (long long)r);
    c.spec = spec;
    if (v2_run(&c)) return 0;
    const attnc_sizes *z = &c.sz;
    int64_t nq = z->B * z->H * z->Lq * z->D, nk = z->B * z->Hkv * z->Lk * z->D, nv = z->B * z->Hkv * z->Lk * z->Dv;
    float *q = malloc(sizeof(float) * (size_t)(nq + nk + nv)), o[V2_ROWS * 4], lse[V2_ROWS];
    for (int64_t i = 0; i < nq + nk + nv; i++) q[i] = v2_value((int)i, 1);
    attnc_args args = {*z, q, q + nq, q + nq + nk, o, lse, p, 2, NULL, 0};
    int ok = !attnc_kernel_run(k, &args, &err);
    for (int64_t i = 0; ok && i < z->B * z->H * z->Lq; i++) {
        ok = fabsf(lse[i] - c.lse[i]) <= 1e-5f * (1 + fabsf(c.lse[i]));
        for (int64_t d = 0; d < z->Dv; d++) {
            float want = c.o[i * z->Dv + d];
            ok = ok && fabsf(o[i * z->Dv + d] - want) <= 1e-5f * (1 + fabsf(want));
        }
    }
    free(q);
    return ok;
}

static void *v2_reuse_thread(void *arg) {
    V2Thread *t = arg;
    for (int i = 0; i < 6; i++)
        t->bad += !v2_reuse_call(t->k, t->salt ? 500000.0 : 100.0, 2 + 2 * ((i + t->salt) % 4), 2 + (i + t->salt) % 5);
    return NULL;
}

static void v2_kernel_reuse(void) {
    attnc_spec *s = NULL;
    attnc_kernel *k = NULL;
    attnc_options opts = {0};
    opts.backend = v2_compiled();
    attnc_status st = attnc_spec_from_string("v2.attn", v2_reuse_spec, strlen(v2_reuse_spec), &s, NULL);
    if (!st) st = attnc_compile(s, NULL, &opts, &k, NULL);
    /* each change of base, dims or length from the call before */
    int ok = !st && v2_reuse_call(k, 10000.0, 8, 6) && v2_reuse_call(k, 500000.0, 8, 6) &&
             v2_reuse_call(k, 500000.0, 4, 3) && v2_reuse_call(k, 500000.0, 4, 6) &&
             v2_reuse_call(k, 500000.0, 4, 2) && v2_reuse_call(k, 500000.0, 8, 6);
    check(ok, "v2: one rotary kernel called with other base, dims and lengths in turn", NULL);
    V2Thread t[2] = {{k, 0, 0}, {k, 1, 0}};
    pthread_t id[2];
    int started = 0;
    for (int i = 0; i < 2 && !st; i++) started += pthread_create(&id[i], NULL, v2_reuse_thread, &t[i]) == 0;
    for (int i = 0; i < started; i++) pthread_join(id[i], NULL);
    check(!st && started == 2 && t[0].bad + t[1].bad == 0, "v2: one rotary kernel called from two threads at once",
          NULL);
    attnc_kernel_free(k);
    attnc_spec_free(s);
}

/* ---- pictures (attnc_kernel_picture) of calls that fail ---------------------- */

/* A mask whose evaluation fails, or sizes the picture cannot have: the status
 * and one line naming the problem, and the caller's pixels left as they were. */
static void picture_edges(void) {
    const char *spec = "attention a { tensor d : int[4]; mask d[kv] == d[q % 4]; }";
    attnc_spec *s = NULL;
    attnc_kernel *k = NULL;
    attnc_error err = {0};
    attnc_options opts = {0};
    if (attnc_spec_from_string("picture.attn", spec, strlen(spec), &s, &err) || attnc_compile(s, "a", &opts, &k, &err)) {
        check(0, "picture spec compiles", err.message);
        attnc_spec_free(s);
        return;
    }
    int32_t ids[4] = {0, 1, 1, 0};
    attnc_tensor t = {"d", ATTNC_I32, 1, {4}, ids};
    attnc_args call = {{1, 1, 1, 4, 9, 4, 4}, NULL, NULL, NULL, NULL, NULL, NULL, 0, &t, 1};
    float kept[36];
    uint8_t tiles[36];
    for (int i = 0; i < 36; i++) kept[i] = V2_SENTINEL, tiles[i] = 77;
    attnc_status st = attnc_kernel_picture(k, &call, 0, 0, 4, 9, kept, tiles, &err);
    int untouched = 1;
    for (int i = 0; i < 36; i++) untouched &= kept[i] == V2_SENTINEL && tiles[i] == 77;
    check(st == ATTNC_ERR_RUNTIME && strstr(err.message, "d") && untouched,
          "picture: a mask reading d[kv] past its end fails, pixels untouched", st ? err.message : "status 0");
    /* a bias's error is the run's to report: the masks themselves are well defined */
    attnc_kernel *kb = NULL;
    const char *bias = "attention b { tensor d : int[4]; mask kv != 1; bias float(d[kv]); }";
    attnc_spec *sb = NULL;
    if (!attnc_spec_from_string("picture.attn", bias, strlen(bias), &sb, &err) && !attnc_compile(sb, "b", &opts, &kb, &err)) {
        st = attnc_kernel_picture(kb, &call, 0, 0, 4, 9, kept, tiles, &err);
        check(st == ATTNC_OK && kept[0] == 1.0f && kept[1] == 0.0f && kept[8] == 1.0f,
              "picture: a bias reading d[kv] past its end does not stop the mask's picture", st ? err.message : "");
    }
    attnc_kernel_free(kb);
    attnc_spec_free(sb);
    call.sizes.Lk = 4;
    call.sizes.Lq = -3;
    st = attnc_kernel_picture(k, &call, 0, 0, 1, 1, kept, tiles, &err);
    check(st != ATTNC_OK && strstr(err.message, "Lq"), "picture: negative Lq refused", err.message);
    call.sizes.Lq = 0;
    st = attnc_kernel_picture(k, &call, 0, 0, 1, 1, kept, tiles, &err);
    check(st == ATTNC_ERR_USAGE, "picture: Lq = 0 has no pixel", err.message);
    attnc_kernel_free(k);
    attnc_spec_free(s);
}

int main(void) {
    random_bytes();
    token_soup();
    deep_nesting();
    big_inputs();
    runtime_edges();
    v2_bad_calls();
    v2_edge_values();
    v2_kernel_reuse();
    picture_edges();
    printf("%d passed, %d failed\n", passes, fails);
    return fails != 0;
}
