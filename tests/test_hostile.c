/* test_hostile.c — specs no person would write, through the library: each
 * must give a clear error (or a correct result) and never a crash, a hang or
 * undefined behaviour.  Run under ASan/UBSan in CI. */
#include <math.h>
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

int main(void) {
    random_bytes();
    token_soup();
    deep_nesting();
    big_inputs();
    runtime_edges();
    printf("%d passed, %d failed\n", passes, fails);
    return fails != 0;
}
