/* test_merge.c — merging partial results (issue 11, item 5): attnc_merge
 * and runtime/merge.h's merge_row.
 *
 * For several examples (causal top-left and bottom-right, the latter also
 * with Lq > Lk so that some rows are fully masked, ALiBi, softcap, sliding
 * window, softplus; ReLU and Mega's Laplace and relu^2 `weight` attentions)
 * the example file is extended with
 *     attention merge_part { use VARIANT; param lo : int; param hi : int;
 *                            mask kv >= lo && kv < hi; }
 * (a part must keep the masks' absolute kv, so it runs over all of K and V
 * with the keys outside [lo, hi) masked).  [0, s) and [s, Lk) are run for
 * several s, 0 and Lk included (an empty part), merged, and compared with one
 * call of VARIANT over all keys on the same backend (tightly) and on the
 * interpreter (within float32 tolerance); the merge is also done in place
 * (o == o1 and o == o2) and must give the same bits.  Then merge_row's edge
 * cases (NaN, +-inf LSEs, empty parts holding NaN, many parts) against
 * values worked out by hand, and attnc_merge's refusals of hostile
 * arguments, each leaving the outputs untouched.
 *
 * Usage: test_merge EXAMPLES_DIR */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attnc.h"
#include "check.h"
#include "merge.h"
#include "support.h"

typedef struct Case {
    const char *file, *variant;
    attnc_sizes sz;
    const char *params; /* "name=value,..." or "" */
} Case;

static const Case CASES[] = {
    {"causal.attn", "causal_top_left", {2, 4, 2, 40, 56, 16, 8}, ""},
    {"causal.attn", "causal_bottom_right_aligned", {1, 4, 1, 13, 50, 16, 8}, ""},
    {"causal.attn", "causal_bottom_right_aligned", {1, 2, 1, 50, 13, 16, 8}, ""}, /* rows q < 37 fully masked */
    {"alibi.attn", "alibi_causal", {2, 8, 2, 48, 48, 16, 8}, ""},
    {"alibi.attn", "alibi_bidirectional", {1, 4, 4, 37, 53, 16, 8}, "alibi_max=4.0"},
    {"softcap.attn", "softcap_causal", {2, 4, 2, 48, 48, 16, 8}, "cap=1.5"},
    {"sliding_window.attn", "sliding_window_causal", {2, 4, 2, 53, 53, 16, 8}, "window=9"},
    {"nonsoftmax.attn", "softplus_attention", {1, 4, 2, 48, 48, 16, 8}, ""},
    {"nonsoftmax.attn", "relu_attention", {2, 4, 2, 40, 48, 16, 8}, ""},
    {"nonsoftmax.attn", "mega_laplace", {1, 4, 4, 45, 45, 16, 8}, ""},
    {"nonsoftmax.attn", "mega_relu2", {1, 4, 1, 32, 50, 16, 8}, ""},
};
enum { NCASES = sizeof CASES / sizeof CASES[0], MAXP = 8 };

/* ---- one call ----------------------------------------------------------------- */

typedef struct Call {
    attnc_kernel *full, *part; /* VARIANT, and merge_part over [lo, hi) */
    const float *q, *k, *v;
    attnc_sizes sz;
    size_t no, rows;
    attnc_param params[MAXP];
    int np;
} Call;

static attnc_kernel *compile(const char *name, const char *text, const char *variant, attnc_backend b) {
    attnc_spec *s = NULL;
    attnc_kernel *k = NULL;
    attnc_error err = {0};
    attnc_options opts = {.backend = b, .threads = 2};
    if (attnc_spec_from_string(name, text, strlen(text), &s, &err) == ATTNC_OK)
        attnc_compile(s, variant, &opts, &k, &err);
    CHECK(k != NULL, "%s/%s on %s: %s", name, variant, attnc_backend_name(b), err.message);
    attnc_spec_free(s);
    return k;
}

/* The case's params ("name=value,...") for kernel k, then lo and hi. */
static int bind_params(const attnc_kernel *k, const char *text, attnc_param *p) {
    char buf[200];
    int n = 0;
    snprintf(buf, sizeof buf, "%s", text);
    for (char *item = strtok(buf, ","); item && n < MAXP - 2; item = strtok(NULL, ",")) {
        char *eq = strchr(item, '=');
        *eq = 0;
        attnc_error err = {0};
        CHECK(attnc_kernel_param_from_text(k, item, eq + 1, &p[n++], &err) == ATTNC_OK, "param %s: %s", item,
              err.message);
    }
    return n;
}

/* Run `k` over keys [lo, hi) (the full kernel: all keys, lo and hi unused). */
static void run(const Call *c, const attnc_kernel *k, int64_t lo, int64_t hi, float *o, float *lse) {
    attnc_param p[MAXP];
    memcpy(p, c->params, sizeof p);
    int np = c->np;
    if (k == c->part) {
        p[np++] = (attnc_param){.name = "lo", .type = ATTNC_INT, .i = lo};
        p[np++] = (attnc_param){.name = "hi", .type = ATTNC_INT, .i = hi};
    }
    attnc_args a = {c->sz, c->q, c->k, c->v, o, lse, p, np, NULL, 0};
    attnc_error err = {0};
    CHECK(attnc_kernel_run(k, &a, &err) == ATTNC_OK, "run %s [%lld, %lld): %s", attnc_kernel_variant(k),
          (long long)lo, (long long)hi, err.message);
}

static void compare(const char *what, const float *o, const float *lse, const float *ref_o, const float *ref_lse,
                    size_t no, size_t rows, double tol) {
    char buf[300];
    double worst;
    const char *bad = compare_outputs(o, lse, ref_o, ref_lse, no, rows, tol, &worst, buf, sizeof buf);
    CHECK(!bad, "%s: %s", what, bad);
}

/* [0, s) and [s, Lk) merged (also in place, into either part) against `full`
 * (same backend, tol) and `ref` (the interpreter, float32 tolerance). */
static void check_split(const Call *c, const char *name, int64_t s, const float *full_o, const float *full_lse,
                        const float *ref_o, const float *ref_lse, double tol) {
    size_t no = c->no, rows = c->rows;
    float *o1 = malloc(4 * (no + 1)), *o2 = malloc(4 * (no + 1)), *o = malloc(4 * (no + 1));
    float *l1 = malloc(4 * (rows + 1)), *l2 = malloc(4 * (rows + 1)), *l = malloc(4 * (rows + 1));
    run(c, c->part, 0, s, o1, l1);
    run(c, c->part, s, c->sz.Lk, o2, l2);
    attnc_merge_kind kind = attnc_kernel_is_softmax(c->full) ? ATTNC_MERGE_SOFTMAX : ATTNC_MERGE_WEIGHT;
    attnc_error err = {0};
    CHECK(attnc_merge(kind, (int64_t)rows, c->sz.Dv, o1, l1, o2, l2, o, l, &err) == ATTNC_OK, "%s: %s", name,
          err.message);
    char what[400];
    snprintf(what, sizeof what, "%s split at %lld vs one call", name, (long long)s);
    compare(what, o, l, full_o, full_lse, no, rows, tol);
    snprintf(what, sizeof what, "%s split at %lld vs the interpreter", name, (long long)s);
    compare(what, o, l, ref_o, ref_lse, no, rows, 2e-3);
    for (size_t r = 0; r < rows; r++) /* a fully masked row: exactly O = 0, LSE = -inf */
        if (kind == ATTNC_MERGE_SOFTMAX && ref_lse[r] == -INFINITY)
            for (int64_t d = 0; d <= c->sz.Dv; d++)
                CHECK(d < c->sz.Dv ? o[r * c->sz.Dv + d] == 0 : l[r] == -INFINITY, "%s: masked row %zu", what, r);
    /* in place: into part 1, then (from fresh parts) into part 2; the same bits */
    float *o2c = malloc(4 * (no + 1)), *l2c = malloc(4 * (rows + 1));
    memcpy(o2c, o2, 4 * no), memcpy(l2c, l2, 4 * rows);
    CHECK(attnc_merge(kind, (int64_t)rows, c->sz.Dv, o1, l1, o2, l2, o1, l1, &err) == ATTNC_OK, "%s", err.message);
    CHECK(!memcmp(o1, o, 4 * no) && !memcmp(l1, l, 4 * rows), "%s: in place into part 1 differs", what);
    run(c, c->part, 0, s, o1, l1);
    CHECK(attnc_merge(kind, (int64_t)rows, c->sz.Dv, o1, l1, o2c, l2c, o2c, l2c, &err) == ATTNC_OK, "%s",
          err.message);
    CHECK(!memcmp(o2c, o, 4 * no) && !memcmp(l2c, l, 4 * rows), "%s: in place into part 2 differs", what);
    free(o1), free(o2), free(o), free(l1), free(l2), free(l), free(o2c), free(l2c);
}

static void check_case(const char *dir, const Case *cs, attnc_backend b, const float *ref_o, const float *ref_lse,
                       const float *q, const float *k, const float *v) {
    char path[600], name[300];
    snprintf(path, sizeof path, "%s/%s", dir, cs->file);
    snprintf(name, sizeof name, "%s/%s on %s", cs->file, cs->variant, attnc_backend_name(b));
    size_t len = 0;
    char *text = read_file(path, &len), *spec = malloc(len + 300);
    CHECK(text != NULL, "cannot read %s", path);
    if (!text) return;
    snprintf(spec, len + 300,
             "%s\nattention merge_part { use %s; param lo : int; param hi : int; mask kv >= lo && kv < hi; }\n", text,
             cs->variant);
    Call c = {.q = q, .k = k, .v = v, .sz = cs->sz};
    c.full = compile(path, spec, cs->variant, b);
    c.part = compile(path, spec, "merge_part", b);
    if (c.full && c.part) {
        c.np = bind_params(c.full, cs->params, c.params);
        c.rows = (size_t)(c.sz.B * c.sz.H * c.sz.Lq), c.no = c.rows * (size_t)c.sz.Dv;
        float *o = malloc(4 * c.no), *lse = malloc(4 * c.rows);
        run(&c, c.full, 0, 0, o, lse);
        compare(name, o, lse, ref_o, ref_lse, c.no, c.rows, 2e-3);
        int64_t Lk = c.sz.Lk, splits[] = {0, 1, Lk / 3, Lk / 2, Lk - 1, Lk};
        double tol = b == ATTNC_BACKEND_INTERP ? 1e-5 : 1e-4;
        for (size_t i = 0; i < sizeof splits / sizeof splits[0]; i++)
            check_split(&c, name, splits[i], o, lse, ref_o, ref_lse, tol);
        free(o), free(lse);
    }
    attnc_kernel_free(c.full), attnc_kernel_free(c.part);
    free(text), free(spec);
}

/* Every case on the interpreter and on the fastest compiled backend the build has. */
static void check_examples(const char *dir) {
    attnc_backend compiled = attnc_backend_available(ATTNC_BACKEND_LLVM)  ? ATTNC_BACKEND_LLVM
                             : attnc_backend_available(ATTNC_BACKEND_TCC) ? ATTNC_BACKEND_TCC
                                                                          : ATTNC_BACKEND_INTERP;
    for (int i = 0; i < NCASES; i++) {
        const attnc_sizes *s = &CASES[i].sz;
        rng_seed(1000 + (uint64_t)i);
        float *q = random_floats((size_t)(s->B * s->H * s->Lq * s->D));
        float *k = random_floats((size_t)(s->B * s->Hkv * s->Lk * s->D));
        float *v = random_floats((size_t)(s->B * s->Hkv * s->Lk * s->Dv));
        size_t rows = (size_t)(s->B * s->H * s->Lq);
        float *ref_o = malloc(4 * rows * (size_t)s->Dv), *ref_lse = malloc(4 * rows);
        /* the interpreter's one call over all keys: the reference for both backends */
        char path[600];
        snprintf(path, sizeof path, "%s/%s", dir, CASES[i].file);
        size_t len;
        char *text = read_file(path, &len);
        attnc_kernel *ref = text ? compile(path, text, CASES[i].variant, ATTNC_BACKEND_INTERP) : NULL;
        if (ref) {
            Call c = {.full = ref, .q = q, .k = k, .v = v, .sz = *s};
            c.np = bind_params(ref, CASES[i].params, c.params);
            run(&c, ref, 0, 0, ref_o, ref_lse);
            check_case(dir, &CASES[i], ATTNC_BACKEND_INTERP, ref_o, ref_lse, q, k, v);
            if (compiled != ATTNC_BACKEND_INTERP) check_case(dir, &CASES[i], compiled, ref_o, ref_lse, q, k, v);
        }
        printf("%s/%s: %s\n", CASES[i].file, CASES[i].variant, failures ? "failures so far" : "ok");
        attnc_kernel_free(ref);
        free(text), free(q), free(k), free(v), free(ref_o), free(ref_lse);
    }
}

/* ---- merge_row's edge cases, against values worked out by hand ---------------- */

static int same(float got, double want) { return isnan(want) ? isnan(got) : got == (float)want; }

/* Two parts of one column: O1, O2 and LSE1, LSE2 -> O, LSE. */
static void row2(int softmax, float o1, float o2, float l1, float l2, double want_o, double want_lse) {
    const float o[2] = {o1, o2}, lse[2] = {l1, l2};
    float out = -7, out_lse = -7;
    merge_row(softmax, 2, o, 1, lse, 1, 1, &out, &out_lse);
    CHECK(same(out, want_o) && same(out_lse, want_lse),
          "%s merge of (%g, %g) with LSE (%g, %g): got (%.9g, %.9g), want (%.9g, %.9g)", softmax ? "softmax" : "weight",
          o1, o2, l1, l2, out, out_lse, want_o, want_lse);
}

static void check_merge_row(void) {
    const double inf = INFINITY, nan = NAN;
    row2(1, 1, 3, 0, 0, 2, log(2.0));                             /* equal weights: the mean */
    row2(1, 4, 8, 0, (float)log(3.0), 7, log(4.0));               /* weights 1 and 3 */
    row2(1, 1, 3, 1000, 1000, 2, 1000 + log(2.0));                /* no overflow */
    row2(1, nan, 5, -inf, 0.5f, 5, 0.5);                          /* an empty part's O is not read */
    row2(1, nan, nan, -inf, -inf, 0, -inf);                       /* all empty: the masked row */
    row2(1, 1, 3, nan, 0, nan, nan);                              /* NaN poisons */
    row2(1, 2, 100, inf, 0, 2, inf);                              /* degenerate: +inf takes all */
    row2(0, 1.5f, -2.25f, 1000, 999, -0.75, 1000 + log1p(exp(-1.0)));
    row2(0, 1, 2, -inf, 0, 3, 0);                                 /* weights summing to 0 still move O */
    row2(0, 1, 2, -inf, -inf, 3, -inf);
    row2(0, 1, 2, nan, 0, 3, nan);
    row2(0, 1, 2, inf, 0, 3, inf);
    { /* three parts at +inf and not: the +inf ones averaged */
        const float o[3] = {2, 100, 4}, lse[3] = {(float)inf, 0, (float)inf};
        float out, out_lse;
        merge_row(1, 3, o, 1, lse, 1, 1, &out, &out_lse);
        CHECK(out == 3 && out_lse == (float)inf, "+inf parts: %g, %g", out, out_lse);
    }
    { /* O summed in double, rounded once: 1 + 2^-24 + 2^-24 is 1 in float steps */
        const float o[3] = {1, 0x1p-24f, 0x1p-24f};
        float out;
        merge_row(0, 3, o, 1, NULL, 0, 1, &out, NULL);
        CHECK(out == 1 + 0x1p-23f, "weight sum rounded once: %.9g", out);
    }
    { /* 70 parts (past the kept weights), strided, in place into part 0; n = 0 */
        float o[70 * 3], lse[70 * 2];
        for (int i = 0; i < 70; i++) o[3 * i] = (float)i, o[3 * i + 1] = (float)(2 * i), lse[2 * i] = 0.75f;
        merge_row(1, 70, o, 3, lse, 2, 2, o, lse);
        CHECK(o[0] == 34.5f && o[1] == 69.0f && lse[0] == (float)(0.75 + log(70.0)), "70 parts: %g %g %g", o[0], o[1],
              lse[0]);
        float out = -7, out_lse = -7;
        merge_row(1, 0, o, 3, lse, 2, 1, &out, &out_lse);
        CHECK(out == 0 && out_lse == -INFINITY, "no parts: %g %g", out, out_lse);
    }
}

/* ---- attnc_merge's refusals ---------------------------------------------------- */

static void refused(const char *what, attnc_status st, const attnc_error *err, const float *buf, int n, float fill) {
    CHECK(st == ATTNC_ERR_USAGE && err->status == ATTNC_ERR_USAGE, "%s: status %d", what, (int)st);
    CHECK(err->message[0] && !strchr(err->message, '\n'), "%s: message '%s'", what, err->message);
    for (int i = 0; i < n; i++) CHECK(buf[i] == fill, "%s: wrote element %d", what, i);
    if (getenv("VERBOSE")) printf("  %s: %s\n", what, err->message);
}

static void check_hostile(void) {
    enum { N = 64 };
    float a[N], o1[8] = {1, 2, 3, 4, 5, 6, 7, 8}, o2[8] = {8, 7, 6, 5, 4, 3, 2, 1}, l1[4] = {0}, l2[4] = {1, 1, 1, 1};
    attnc_error err;
    const attnc_merge_kind S = ATTNC_MERGE_SOFTMAX, W = ATTNC_MERGE_WEIGHT;
#define REFUSED(what, call)                                                                                            \
    do {                                                                                                               \
        for (int i = 0; i < N; i++) a[i] = 42;                                                                         \
        memset(&err, 0, sizeof err);                                                                                   \
        refused(what, call, &err, a, N, 42);                                                                           \
    } while (0)
    REFUSED("negative rows", attnc_merge(S, -1, 2, o1, l1, o2, l2, a, a + 16, &err));
    REFUSED("negative dv", attnc_merge(S, 4, -2, o1, l1, o2, l2, a, a + 16, &err));
    REFUSED("unknown kind", attnc_merge((attnc_merge_kind)7, 4, 2, o1, l1, o2, l2, a, a + 16, &err));
    REFUSED("o1 NULL", attnc_merge(S, 4, 2, NULL, l1, o2, l2, a, a + 16, &err));
    REFUSED("o2 NULL", attnc_merge(W, 4, 2, o1, NULL, NULL, NULL, a, NULL, &err));
    REFUSED("softmax without lse", attnc_merge(S, 4, 2, o1, l1, o2, l2, a, NULL, &err));
    REFUSED("softmax without lse1", attnc_merge(S, 4, 2, o1, NULL, o2, l2, a, a + 16, &err));
    REFUSED("weight with lse1 only", attnc_merge(W, 4, 2, o1, l1, o2, NULL, a, a + 16, &err));
    REFUSED("rows * dv overflows", attnc_merge(S, INT64_MAX / 2, 3, o1, l1, o2, l2, a, a + 16, &err));
    REFUSED("o overlaps lse", attnc_merge(S, 4, 2, o1, l1, o2, l2, a, a + 7, &err));
    /* inputs inside a[] too: an output overlapping one, other than exactly in place */
    memcpy(a + 32, o1, sizeof o1);
    REFUSED("o shifted over o1", attnc_merge(S, 4, 2, a + 32, l1, o2, l2, a + 31, a + 16, &err));
    REFUSED("lse inside o1", attnc_merge(S, 4, 2, a + 32, l1, o2, l2, a, a + 34, &err));
    REFUSED("o on lse1 (dv 1)", attnc_merge(S, 4, 1, o1, a + 32, o2, l2, a + 32, a + 16, &err));
    REFUSED("lse on o2 (dv 1)", attnc_merge(S, 4, 1, o1, l1, a + 32, l2, a, a + 32, &err));
#undef REFUSED
    /* no err: the status alone; accepted calls clear err */
    CHECK(attnc_merge(S, -1, 2, o1, l1, o2, l2, a, a + 16, NULL) == ATTNC_ERR_USAGE, "refused without err");
    err.status = ATTNC_ERR_USAGE;
    CHECK(attnc_merge(W, 4, 2, o1, NULL, o2, NULL, a, NULL, &err) == ATTNC_OK && err.status == ATTNC_OK,
          "weight without LSEs: %s", err.message);
    for (int i = 0; i < 8; i++) CHECK(a[i] == 9, "weight O only: a[%d] = %g", i, a[i]);
    CHECK(attnc_merge(S, 0, 2, o1, l1, o2, l2, a, a + 16, &err) == ATTNC_OK, "no rows: %s", err.message);
    CHECK(attnc_merge(S, 4, 0, o1, l1, o2, l2, a, a + 16, &err) == ATTNC_OK && a[16] == (float)(1 + log1p(exp(-1.0))),
          "dv 0 still merges the LSE: %g", a[16]);
}

/* Rows longer than attnc_merge's column chunk, in place too: the bits merge_row gives on the parts side by side. */
static void check_long_rows(void) {
    enum { ROWS = 3, DV = 600 };
    rng_seed(7);
    float *parts = random_floats(2 * ROWS * DV), *o = malloc(sizeof(float) * ROWS * DV);
    float lse[2 * ROWS] = {0.5f, -1, -INFINITY, 3, 2, -INFINITY}, out_lse[ROWS], want[DV], want_lse;
    for (int kind = 0; kind < 2; kind++) {
        attnc_error err;
        CHECK(attnc_merge((attnc_merge_kind)kind, ROWS, DV, parts, lse, parts + ROWS * DV, lse + ROWS, o, out_lse,
                          &err) == ATTNC_OK, "long rows: %s", err.message);
        for (int r = 0; r < ROWS; r++) {
            const float two[2] = {lse[r], lse[ROWS + r]};
            merge_row(kind == 0, 2, parts + r * DV, ROWS * DV, two, 1, DV, want, &want_lse);
            CHECK(!memcmp(want, o + r * DV, sizeof want) && same(out_lse[r], want_lse), "long rows: row %d, kind %d",
                  r, kind);
        }
    }
    free(parts), free(o);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_merge EXAMPLES_DIR\n");
        return 2;
    }
    check_merge_row();
    check_hostile();
    check_long_rows();
    check_examples(argv[1]);
    printf("%s\n", failures ? "FAILED" : "all passed");
    return failures != 0;
}
