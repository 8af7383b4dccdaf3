/* test_interp_naive.c — the reference interpreter against a deliberately naive
 * attention written here.
 *
 * Every case is an .attn text compiled through the public API for
 * ATTNC_BACKEND_INTERP and run with random inputs from a fixed-seed PRNG.  The
 * test's own reference knows each variant's math directly in C (it shares no
 * code with attnc): for every (b, h, q) it materializes the whole score row in
 * double, keeps/masks it, applies softmax (or the weight function) and writes
 * O and LSE (spec section 1 and 5.2).  Comparison: |got - want| <= 1e-5 *
 * (1 + |want|) for O and LSE; fully masked rows must give O == 0 exactly and
 * LSE == -inf; no NaN anywhere.
 *
 * Negative checks run the interpreter on one spec and compare it against the
 * reference of a different one: they must report a mismatch, which proves the
 * comparison can fail.  Error checks exercise runtime errors (missing param,
 * wrong tensor shape, out-of-range index, int division by zero) and the lazy
 * evaluation rules of spec 5.3.
 *
 * Output: one line per case, `ok NAME maxerr=...` or `FAIL NAME ...`; the exit
 * status is nonzero if any case failed. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attnc.h"

#define TOL 1e-5
#define SENTINEL 12345.0f

static int g_failures = 0;
static int g_cases = 0;

/* ---- PRNG (splitmix64) --------------------------------------------------- */

static uint64_t g_rng;

static uint64_t rng_next(void) {
    uint64_t z = (g_rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [-1, 1). */
static float rng_unit(void) { return (float)((double)(rng_next() >> 11) * (2.0 / 9007199254740992.0) - 1.0); }

static int32_t rng_int(int32_t n) { return (int32_t)(rng_next() % (uint64_t)n); }

static float *rand_floats(int64_t n, float scale) {
    float *p = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    for (int64_t i = 0; i < n; i++) p[i] = rng_unit() * scale;
    return p;
}

static int32_t *rand_ints(int64_t n, int32_t range) {
    int32_t *p = malloc(sizeof(int32_t) * (size_t)(n > 0 ? n : 1));
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    for (int64_t i = 0; i < n; i++) p[i] = rng_int(range);
    return p;
}

/* ---- the naive reference ------------------------------------------------- */

/* What a reference function may look at: the sizes, a few params and the
 * captured tensors of the case (with the extents needed to index them). */
typedef struct RefCtx {
    attnc_sizes sz;
    double fp[4];
    int64_t ip[4];
    const float *ft[2];
    const int32_t *it[2];
} RefCtx;

typedef int (*KeepFn)(const RefCtx *, int64_t b, int64_t h, int64_t q, int64_t kv);
typedef double (*BiasFn)(const RefCtx *, int64_t b, int64_t h, int64_t q, int64_t kv);
typedef double (*ScoreFn)(const RefCtx *, double s);

typedef struct RefFns {
    KeepFn keep;     /* NULL: keep everything */
    BiasFn bias;     /* NULL: no bias; called only where keep holds */
    ScoreFn score;   /* NULL: identity; called only where keep holds */
    ScoreFn weight;  /* non-NULL: weight mode (no softmax) */
    double scale;    /* 0: 1/sqrt(D) */
} RefFns;

/* Computes O[B,H,Lq,Dv], LSE[B,H,Lq] in double; `dead` (per row) is set where
 * no kv is kept. */
static void naive_attention(const RefFns *f, const RefCtx *c, const float *Q, const float *K, const float *V,
                            double *O, double *LSE, unsigned char *dead) {
    const attnc_sizes *s = &c->sz;
    double scale = f->scale != 0.0 ? f->scale : 1.0 / sqrt((double)s->D);
    int64_t group = s->H / s->Hkv;
    double *row = malloc(sizeof(double) * (size_t)(s->Lk > 0 ? s->Lk : 1));
    unsigned char *kept = malloc((size_t)(s->Lk > 0 ? s->Lk : 1));
    if (!row || !kept) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    for (int64_t b = 0; b < s->B; b++) {
        for (int64_t h = 0; h < s->H; h++) {
            int64_t hk = h / group;
            for (int64_t q = 0; q < s->Lq; q++) {
                const float *qv = Q + ((b * s->H + h) * s->Lq + q) * s->D;
                double *o = O + ((b * s->H + h) * s->Lq + q) * s->Dv;
                int64_t rowi = (b * s->H + h) * s->Lq + q;
                int any = 0;
                double m = -INFINITY;
                for (int64_t kv = 0; kv < s->Lk; kv++) {
                    kept[kv] = (unsigned char)(f->keep ? f->keep(c, b, h, q, kv) : 1);
                    if (!kept[kv]) continue;
                    any = 1;
                    const float *kvec = K + ((b * s->Hkv + hk) * s->Lk + kv) * s->D;
                    double dot = 0.0;
                    for (int64_t d = 0; d < s->D; d++) dot += (double)qv[d] * (double)kvec[d];
                    double sc = scale * dot;
                    if (f->bias) sc += f->bias(c, b, h, q, kv);
                    if (f->score) sc = f->score(c, sc);
                    row[kv] = sc;
                    if (sc > m) m = sc;
                }
                for (int64_t d = 0; d < s->Dv; d++) o[d] = 0.0;
                dead[rowi] = (unsigned char)!any;
                if (!any) {
                    LSE[rowi] = -INFINITY;
                    continue;
                }
                double sum = 0.0;
                for (int64_t kv = 0; kv < s->Lk; kv++) {
                    if (!kept[kv]) continue;
                    double p = f->weight ? f->weight(c, row[kv]) : exp(row[kv] - m);
                    sum += p;
                    const float *vv = V + ((b * s->Hkv + hk) * s->Lk + kv) * s->Dv;
                    for (int64_t d = 0; d < s->Dv; d++) o[d] += p * (double)vv[d];
                }
                if (f->weight) {
                    LSE[rowi] = log(sum);
                } else {
                    for (int64_t d = 0; d < s->Dv; d++) o[d] /= sum;
                    LSE[rowi] = m + log(sum);
                }
            }
        }
    }
    free(row);
    free(kept);
}

/* ---- compiling and running ----------------------------------------------- */

/* Compile the only attention of `text` for the interpreter; NULL (and a FAIL
 * line) on error. */
static attnc_kernel *build_kernel_keep(const char *name, const char *text, attnc_spec **keep) {
    attnc_spec *spec = NULL;
    if (keep) *keep = NULL;
    attnc_error err;
    memset(&err, 0, sizeof err);
    attnc_status st = attnc_spec_from_string(name, text, strlen(text), &spec, &err);
    if (st != ATTNC_OK) {
        printf("FAIL %s spec status=%d: %s\n%s\n", name, (int)st, err.message,
               spec ? attnc_spec_diagnostics(spec) : "");
        attnc_spec_free(spec);
        return NULL;
    }
    attnc_options opts;
    memset(&opts, 0, sizeof opts);
    opts.backend = ATTNC_BACKEND_INTERP;
    opts.threads = 2;
    attnc_kernel *k = NULL;
    st = attnc_compile(spec, NULL, &opts, &k, &err);
    /* attnc.h: "kernels compiled from it stay valid", so the spec goes at once
     * unless the caller asks to keep it. */
    if (keep)
        *keep = spec;
    else
        attnc_spec_free(spec);
    if (st != ATTNC_OK) {
        printf("FAIL %s compile status=%d: %s\n", name, (int)st, err.message);
        attnc_kernel_free(k);
        if (keep) {
            attnc_spec_free(*keep);
            *keep = NULL;
        }
        return NULL;
    }
    if (attnc_kernel_backend(k) != ATTNC_BACKEND_INTERP) {
        printf("FAIL %s compiled for backend %d, not the interpreter\n", name, (int)attnc_kernel_backend(k));
        attnc_kernel_free(k);
        if (keep) {
            attnc_spec_free(*keep);
            *keep = NULL;
        }
        return NULL;
    }
    return k;
}

static attnc_kernel *build_kernel(const char *name, const char *text) { return build_kernel_keep(name, text, NULL); }

typedef struct Case {
    const char *name;
    const char *spec;
    attnc_sizes sz;
    const attnc_param *params;
    int n_params;
    const attnc_tensor *tensors;
    int n_tensors;
    RefFns ref;
    RefCtx ctx;      /* sz is filled in by run_case */
    float in_scale;  /* Q and K are drawn from [-in_scale, in_scale); 0 means 1 */
    int expect_mismatch;
    int no_lse;      /* also pass LSE = NULL in a second run and check O again */
} Case;

static int64_t n_q(const attnc_sizes *s) { return s->B * s->H * s->Lq * s->D; }
static int64_t n_k(const attnc_sizes *s) { return s->B * s->Hkv * s->Lk * s->D; }
static int64_t n_v(const attnc_sizes *s) { return s->B * s->Hkv * s->Lk * s->Dv; }
static int64_t n_o(const attnc_sizes *s) { return s->B * s->H * s->Lq * s->Dv; }
static int64_t n_l(const attnc_sizes *s) { return s->B * s->H * s->Lq; }

/* Relative error of one element; INFINITY for NaN or a wrong infinity. */
static double elem_err(double got, double want) {
    if (isnan(got) || isnan(want)) return INFINITY;
    if (isinf(want) || isinf(got)) return (got == want) ? 0.0 : INFINITY;
    return fabs(got - want) / (1.0 + fabs(want));
}

typedef struct Cmp {
    double max_o, max_lse;
    int64_t nan_count;      /* NaNs in the interpreter's output */
    int64_t dead_rows;      /* fully masked rows */
    int64_t dead_bad;       /* fully masked rows with O != 0 or LSE != -inf */
    int64_t worst_row;      /* row index of the worst element */
    double worst_got, worst_want;
} Cmp;

static void compare(const attnc_sizes *s, const float *O, const float *L, const double *wO, const double *wL,
                    const unsigned char *dead, Cmp *c) {
    memset(c, 0, sizeof *c);
    c->worst_row = -1;
    double worst = -1.0;
    for (int64_t r = 0; r < n_l(s); r++) {
        if (dead[r]) c->dead_rows++;
        int bad_dead = 0;
        for (int64_t d = 0; d < s->Dv; d++) {
            double got = O[r * s->Dv + d], want = wO[r * s->Dv + d];
            if (isnan(got)) c->nan_count++;
            if (dead[r] && got != 0.0) bad_dead = 1;
            double e = elem_err(got, want);
            if (e > c->max_o) c->max_o = e;
            if (e > worst) {
                worst = e;
                c->worst_row = r;
                c->worst_got = got;
                c->worst_want = want;
            }
        }
        if (L) {
            double got = L[r], want = wL[r];
            if (isnan(got)) c->nan_count++;
            if (dead[r] && !(isinf(got) && got < 0)) bad_dead = 1;
            double e = elem_err(got, want);
            if (e > c->max_lse) c->max_lse = e;
            if (e > worst) {
                worst = e;
                c->worst_row = r;
                c->worst_got = got;
                c->worst_want = want;
            }
        }
        c->dead_bad += bad_dead;
    }
}

static void report_fail(const char *name, const char *why) {
    printf("FAIL %s %s\n", name, why);
    g_failures++;
}

static void run_case(const Case *cs) {
    g_cases++;
    const attnc_sizes *s = &cs->sz;
    /* The seed depends on the case name only, so every case is reproducible on its own. */
    uint64_t seed = 0x5EEDull;
    for (const char *p = cs->name; *p; p++) seed = seed * 131 + (unsigned char)*p;
    g_rng = seed;
    float in_scale = cs->in_scale != 0.0f ? cs->in_scale : 1.0f;
    float *Q = rand_floats(n_q(s), in_scale);
    float *K = rand_floats(n_k(s), in_scale);
    float *V = rand_floats(n_v(s), 1.0f);
    float *O = malloc(sizeof(float) * (size_t)(n_o(s) + 1));
    float *L = malloc(sizeof(float) * (size_t)(n_l(s) + 1));
    double *wO = malloc(sizeof(double) * (size_t)(n_o(s) + 1));
    double *wL = malloc(sizeof(double) * (size_t)(n_l(s) + 1));
    unsigned char *dead = malloc((size_t)(n_l(s) + 1));
    if (!O || !L || !wO || !wL || !dead) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    for (int64_t i = 0; i < n_o(s); i++) O[i] = SENTINEL;
    for (int64_t i = 0; i < n_l(s); i++) L[i] = SENTINEL;

    attnc_kernel *k = build_kernel(cs->name, cs->spec);
    if (!k) {
        g_failures++;
        goto out;
    }
    attnc_args a;
    memset(&a, 0, sizeof a);
    a.sizes = *s;
    a.q = Q;
    a.k = K;
    a.v = V;
    a.o = O;
    a.lse = L;
    a.params = cs->params;
    a.n_params = cs->n_params;
    a.tensors = cs->tensors;
    a.n_tensors = cs->n_tensors;
    attnc_error err;
    memset(&err, 0, sizeof err);
    attnc_status st = attnc_kernel_run(k, &a, &err);
    if (st != ATTNC_OK) {
        char why[700];
        snprintf(why, sizeof why, "run status=%d: %s", (int)st, err.message);
        report_fail(cs->name, why);
        goto out;
    }

    RefCtx ctx = cs->ctx;
    ctx.sz = *s;
    naive_attention(&cs->ref, &ctx, Q, K, V, wO, wL, dead);
    Cmp c;
    compare(s, O, L, wO, wL, dead, &c);
    double maxerr = c.max_o > c.max_lse ? c.max_o : c.max_lse;
    int mismatch = maxerr > TOL || c.dead_bad > 0 || c.nan_count > 0;

    /* LSE is optional: a second run without it must give the same O. */
    if (cs->no_lse && !mismatch) {
        float *O2 = malloc(sizeof(float) * (size_t)(n_o(s) + 1));
        if (!O2) {
            fprintf(stderr, "out of memory\n");
            exit(2);
        }
        a.o = O2;
        a.lse = NULL;
        st = attnc_kernel_run(k, &a, &err);
        if (st != ATTNC_OK) {
            char why[700];
            snprintf(why, sizeof why, "run without LSE status=%d: %s", (int)st, err.message);
            free(O2);
            report_fail(cs->name, why);
            goto out;
        }
        Cmp c2;
        compare(s, O2, NULL, wO, wL, dead, &c2);
        free(O2);
        if (c2.max_o > TOL || c2.dead_bad || c2.nan_count) {
            char why[200];
            snprintf(why, sizeof why, "without LSE: maxerr=%.3g nan=%lld", c2.max_o, (long long)c2.nan_count);
            report_fail(cs->name, why);
            goto out;
        }
    }

    int64_t r = c.worst_row;
    int64_t rq = r >= 0 ? r % s->Lq : -1, rh = r >= 0 ? (r / s->Lq) % s->H : -1, rb = r >= 0 ? r / (s->Lq * s->H) : -1;
    if (cs->expect_mismatch) {
        if (mismatch) {
            printf("ok %s mismatch detected maxerr=%.3g (b=%lld h=%lld q=%lld got %.9g want %.9g)\n", cs->name,
                   maxerr, (long long)rb, (long long)rh, (long long)rq, c.worst_got, c.worst_want);
        } else {
            char why[200];
            snprintf(why, sizeof why, "mismatch NOT detected (maxerr=%.3g)", maxerr);
            report_fail(cs->name, why);
        }
    } else if (mismatch) {
        char why[400];
        snprintf(why, sizeof why,
                 "maxerr O=%.3g LSE=%.3g nan=%lld masked-rows-wrong=%lld/%lld worst at b=%lld h=%lld q=%lld: "
                 "got %.9g want %.9g",
                 c.max_o, c.max_lse, (long long)c.nan_count, (long long)c.dead_bad, (long long)c.dead_rows,
                 (long long)rb, (long long)rh, (long long)rq, c.worst_got, c.worst_want);
        report_fail(cs->name, why);
    } else {
        printf("ok %s maxerr=%.3g (O %.3g, LSE %.3g, masked rows %lld)\n", cs->name, maxerr, c.max_o, c.max_lse,
               (long long)c.dead_rows);
    }
out:
    attnc_kernel_free(k);
    free(Q);
    free(K);
    free(V);
    free(O);
    free(L);
    free(wO);
    free(wL);
    free(dead);
}

/* The message with anything but printable ASCII shown as \xNN. */
static const char *printable(const char *msg, char *buf, size_t size) {
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)msg; *p && n + 5 < size; p++) {
        if (*p >= 0x20 && *p < 0x7f)
            buf[n++] = (char)*p;
        else
            n += (size_t)snprintf(buf + n, size - n, "\\x%02X", *p);
    }
    buf[n] = 0;
    return buf;
}

static int is_printable_line(const char *msg) {
    for (const unsigned char *p = (const unsigned char *)msg; *p; p++)
        if (*p < 0x20 || *p >= 0x7f) return 0;
    return 1;
}

enum {
    ERR_AT_POS = 1,    /* an error inside a clause: the message starts `NAME:LINE:COL:` (the spec's position) */
    ERR_KEEP_SPEC = 2  /* keep the spec alive until the kernel has run */
};

/* Run a spec that must fail at run time with `want` and a message containing
 * `needle` (when non-NULL); O and LSE must be left as they were.  The message
 * must be one line of printable text (attnc.h). */
static void run_error_case(const char *name, const char *spec, attnc_sizes s, const attnc_param *params,
                           int n_params, const attnc_tensor *tensors, int n_tensors, attnc_status want,
                           const char *needle, int flags) {
    g_cases++;
    g_rng = 0xE7707ull;
    float *Q = rand_floats(n_q(&s), 1.0f);
    float *K = rand_floats(n_k(&s), 1.0f);
    float *V = rand_floats(n_v(&s), 1.0f);
    float *O = malloc(sizeof(float) * (size_t)(n_o(&s) + 1));
    float *L = malloc(sizeof(float) * (size_t)(n_l(&s) + 1));
    if (!O || !L) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    for (int64_t i = 0; i < n_o(&s); i++) O[i] = SENTINEL;
    for (int64_t i = 0; i < n_l(&s); i++) L[i] = SENTINEL;
    attnc_spec *kept_spec = NULL;
    attnc_kernel *k = build_kernel_keep(name, spec, (flags & ERR_KEEP_SPEC) ? &kept_spec : NULL);
    if (!k) {
        g_failures++;
        goto out;
    }
    attnc_args a;
    memset(&a, 0, sizeof a);
    a.sizes = s;
    a.q = Q;
    a.k = K;
    a.v = V;
    a.o = O;
    a.lse = L;
    a.params = params;
    a.n_params = n_params;
    a.tensors = tensors;
    a.n_tensors = n_tensors;
    attnc_error err;
    memset(&err, 0, sizeof err);
    attnc_status st = attnc_kernel_run(k, &a, &err);
    int64_t touched = 0;
    for (int64_t i = 0; i < n_o(&s); i++) touched += O[i] != SENTINEL;
    for (int64_t i = 0; i < n_l(&s); i++) touched += L[i] != SENTINEL;
    char why[1600], msg[1200];
    printable(err.message, msg, sizeof msg);
    size_t nlen = strlen(name);
    if (st != want) {
        snprintf(why, sizeof why, "status=%d, want %d (message: '%s')", (int)st, (int)want, msg);
        report_fail(name, why);
    } else if (err.status != want) {
        snprintf(why, sizeof why, "err.status=%d, want %d", (int)err.status, (int)want);
        report_fail(name, why);
    } else if (err.message[0] == 0 || !is_printable_line(err.message)) {
        snprintf(why, sizeof why, "message is empty or not one line of printable text: '%s'", msg);
        report_fail(name, why);
    } else if (needle && !strstr(err.message, needle)) {
        snprintf(why, sizeof why, "message does not name '%s': '%s'", needle, msg);
        report_fail(name, why);
    } else if ((flags & ERR_AT_POS) && (strncmp(err.message, name, nlen) != 0 || err.message[nlen] != ':')) {
        snprintf(why, sizeof why, "message does not start with the spec's name '%s:': '%s'", name, msg);
        report_fail(name, why);
    } else if (touched) {
        snprintf(why, sizeof why, "failed call wrote %lld elements of O/LSE (message: '%s')", (long long)touched,
                 msg);
        report_fail(name, why);
    } else {
        printf("ok %s error status=%d: %s\n", name, (int)st, msg);
    }
out:
    attnc_kernel_free(k);
    attnc_spec_free(kept_spec);
    free(Q);
    free(K);
    free(V);
    free(O);
    free(L);
}

/* ---- the variants' math, written directly -------------------------------- */

#define UNUSED4 (void)c, (void)b, (void)h, (void)q, (void)kv

static int keep_causal(const RefCtx *c, int64_t b, int64_t h, int64_t q, int64_t kv) {
    UNUSED4;
    return kv <= q;
}
static int keep_causal_br(const RefCtx *c, int64_t b, int64_t h, int64_t q, int64_t kv) {
    UNUSED4;
    return kv <= q + (c->sz.Lk - c->sz.Lq);
}
/* ip[0] = window */
static int keep_window(const RefCtx *c, int64_t b, int64_t h, int64_t q, int64_t kv) {
    UNUSED4;
    return kv <= q && q - kv < c->ip[0];
}
static int keep_q_ge3_causal(const RefCtx *c, int64_t b, int64_t h, int64_t q, int64_t kv) {
    UNUSED4;
    return q >= 3 && kv <= q;
}
static int keep_nothing(const RefCtx *c, int64_t b, int64_t h, int64_t q, int64_t kv) {
    UNUSED4;
    return 0;
}
static int keep_kv_lt4(const RefCtx *c, int64_t b, int64_t h, int64_t q, int64_t kv) {
    UNUSED4;
    return kv < 4;
}
static int keep_kv_ne2(const RefCtx *c, int64_t b, int64_t h, int64_t q, int64_t kv) {
    UNUSED4;
    return kv != 2;
}
/* it[0] = doc ids [Lk] */
static int keep_document(const RefCtx *c, int64_t b, int64_t h, int64_t q, int64_t kv) {
    UNUSED4;
    return c->it[0][q] == c->it[0][kv];
}
/* ft[0] = t[4]: kv < 4 && t[kv] > 0 */
static int keep_kv_lt4_and_t_pos(const RefCtx *c, int64_t b, int64_t h, int64_t q, int64_t kv) {
    UNUSED4;
    return kv < 4 && (double)c->ft[0][kv] > 0.0;
}
/* ft[0] = t[4]: kv >= 4 || t[kv] > 0 */
static int keep_kv_ge4_or_t_pos(const RefCtx *c, int64_t b, int64_t h, int64_t q, int64_t kv) {
    UNUSED4;
    return kv >= 4 || (double)c->ft[0][kv] > 0.0;
}
/* causal && window ip[0] */
static int keep_gemma(const RefCtx *c, int64_t b, int64_t h, int64_t q, int64_t kv) {
    UNUSED4;
    return kv <= q && (kv <= q && q - kv < c->ip[0]);
}

/* fp[0] = alibi_max: -2^(-alibi_max * (h+1) / H) * |q - kv| */
static double bias_alibi(const RefCtx *c, int64_t b, int64_t h, int64_t q, int64_t kv) {
    UNUSED4;
    double slope = pow(2.0, -c->fp[0] * (double)(h + 1) / (double)c->sz.H);
    return -slope * fabs((double)(q - kv));
}
/* A deliberately wrong ALiBi: the slope uses h instead of h + 1. */
static double bias_alibi_shifted(const RefCtx *c, int64_t b, int64_t h, int64_t q, int64_t kv) {
    UNUSED4;
    double slope = pow(2.0, -c->fp[0] * (double)h / (double)c->sz.H);
    return -slope * fabs((double)(q - kv));
}
/* fp[0] = slope: -slope * |q - kv| */
static double bias_linear(const RefCtx *c, int64_t b, int64_t h, int64_t q, int64_t kv) {
    UNUSED4;
    return -c->fp[0] * fabs((double)(q - kv));
}
/* ft[0] = U[H, Lq, R], ft[1] = W[H, Lk, R], ip[0] = R */
static double bias_lowrank(const RefCtx *c, int64_t b, int64_t h, int64_t q, int64_t kv) {
    UNUSED4;
    int64_t R = c->ip[0];
    double acc = 0.0;
    for (int64_t r = 0; r < R; r++)
        acc += (double)c->ft[0][(h * c->sz.Lq + q) * R + r] * (double)c->ft[1][(h * c->sz.Lk + kv) * R + r];
    return acc;
}
/* ft[0] = t[4]; only called where kept */
static double bias_t_kv(const RefCtx *c, int64_t b, int64_t h, int64_t q, int64_t kv) {
    UNUSED4;
    return (double)c->ft[0][kv];
}
/* ft[0] = t[4]: kv < 4 ? t[kv] : 0.0 */
static double bias_t_kv_cond(const RefCtx *c, int64_t b, int64_t h, int64_t q, int64_t kv) {
    UNUSED4;
    return kv < 4 ? (double)c->ft[0][kv] : 0.0;
}
/* ft[0] = rowbias[H, Lq] */
static double bias_rowbias(const RefCtx *c, int64_t b, int64_t h, int64_t q, int64_t kv) {
    UNUSED4;
    return (double)c->ft[0][h * c->sz.Lq + q];
}
static double bias_half(const RefCtx *c, int64_t b, int64_t h, int64_t q, int64_t kv) {
    UNUSED4;
    return 0.5;
}

/* Python-style floor division and modulo, written independently. */
static int64_t py_div(int64_t a, int64_t d) {
    int64_t qt = a / d;
    if ((a % d != 0) && ((a < 0) != (d < 0))) qt -= 1;
    return qt;
}
static int64_t py_mod(int64_t a, int64_t d) { return a - d * py_div(a, d); }
/* 0.1 * (q / (kv - 2)) + 0.05 * ((q - 7) % (kv - 2)), kv != 2 */
static double bias_intdiv(const RefCtx *c, int64_t b, int64_t h, int64_t q, int64_t kv) {
    UNUSED4;
    return 0.1 * (double)py_div(q, kv - 2) + 0.05 * (double)py_mod(q - 7, kv - 2);
}

/* fp[1] = cap */
static double score_softcap(const RefCtx *c, double s) { return c->fp[1] * tanh(s / c->fp[1]); }
/* score * 2.0, then score - 1.0 */
static double score_twice_minus1(const RefCtx *c, double s) {
    (void)c;
    return s * 2.0 - 1.0;
}

static double weight_sigmoid(const RefCtx *c, double s) {
    double x = s - log((double)c->sz.Lk);
    return 1.0 / (1.0 + exp(-x));
}
static double weight_relu(const RefCtx *c, double s) {
    (void)c;
    return s > 0.0 ? s : 0.0;
}

/* ---- the cases ----------------------------------------------------------- */

static attnc_sizes SZ(int64_t B, int64_t H, int64_t Hkv, int64_t Lq, int64_t Lk, int64_t D, int64_t Dv) {
    attnc_sizes s = {B, H, Hkv, Lq, Lk, D, Dv};
    return s;
}

static attnc_param PI(const char *name, int64_t v) {
    attnc_param p;
    memset(&p, 0, sizeof p);
    p.name = name;
    p.type = ATTNC_INT;
    p.i = v;
    return p;
}

static attnc_param PF(const char *name, double v) {
    attnc_param p;
    memset(&p, 0, sizeof p);
    p.name = name;
    p.type = ATTNC_FLOAT;
    p.f = v;
    return p;
}

static attnc_tensor TF(const char *name, const float *data, int rank, int64_t d0, int64_t d1, int64_t d2) {
    attnc_tensor t;
    memset(&t, 0, sizeof t);
    t.name = name;
    t.dtype = ATTNC_F32;
    t.rank = rank;
    t.shape[0] = d0;
    t.shape[1] = d1;
    t.shape[2] = d2;
    t.data = data;
    return t;
}

static attnc_tensor TI(const char *name, const int32_t *data, int64_t d0) {
    attnc_tensor t;
    memset(&t, 0, sizeof t);
    t.name = name;
    t.dtype = ATTNC_I32;
    t.rank = 1;
    t.shape[0] = d0;
    t.data = data;
    return t;
}

static Case base(const char *name, const char *spec, attnc_sizes sz) {
    Case c;
    memset(&c, 0, sizeof c);
    c.name = name;
    c.spec = spec;
    c.sz = sz;
    return c;
}

static void cases_basic(void) {
    Case c;

    c = base("plain", "attention plain { }", SZ(2, 4, 4, 33, 47, 16, 16));
    c.no_lse = 1;
    run_case(&c);

    c = base("causal", "attention a { use causal; }", SZ(1, 3, 3, 50, 50, 32, 32));
    c.ref.keep = keep_causal;
    run_case(&c);

    c = base("causal_lq_lt_lk", "attention a { use causal; }", SZ(2, 2, 2, 19, 45, 8, 8));
    c.ref.keep = keep_causal;
    run_case(&c);

    c = base("causal_bottom_right_lq_lt_lk", "attention a { use causal_bottom_right; }", SZ(1, 2, 2, 17, 53, 16, 16));
    c.ref.keep = keep_causal_br;
    run_case(&c);

    /* Lq > Lk: rows q < Lq - Lk see nothing. */
    c = base("causal_bottom_right_lq_gt_lk", "attention a { use causal_bottom_right; }", SZ(2, 2, 1, 61, 23, 16, 12));
    c.ref.keep = keep_causal_br;
    c.no_lse = 1;
    run_case(&c);

    c = base("sliding_window_5", "attention a { use sliding_window(window = 5); }", SZ(1, 2, 2, 64, 64, 16, 16));
    c.ref.keep = keep_window;
    c.ctx.ip[0] = 5;
    run_case(&c);

    /* The window as a required param given per call. */
    {
        attnc_param p = PI("window", 9);
        c = base("sliding_window_param_per_call", "attention a { use sliding_window; }", SZ(1, 2, 2, 40, 40, 16, 16));
        c.params = &p;
        c.n_params = 1;
        c.ref.keep = keep_window;
        c.ctx.ip[0] = 9;
        run_case(&c);
    }

    c = base("alibi_default", "attention a { use alibi; }", SZ(1, 8, 8, 40, 40, 16, 16));
    c.ref.bias = bias_alibi;
    c.ctx.fp[0] = 8.0;
    run_case(&c);

    c = base("alibi_max_4", "attention a { use alibi(alibi_max = 4.0); }", SZ(2, 4, 2, 31, 44, 16, 16));
    c.ref.bias = bias_alibi;
    c.ctx.fp[0] = 4.0;
    run_case(&c);

    {
        attnc_param p = PF("alibi_max", 2.5);
        c = base("alibi_max_per_call", "attention a { use alibi; use causal; }", SZ(1, 6, 3, 37, 37, 8, 8));
        c.params = &p;
        c.n_params = 1;
        c.ref.bias = bias_alibi;
        c.ref.keep = keep_causal;
        c.ctx.fp[0] = 2.5;
        run_case(&c);
    }

    /* Inputs scaled by 4: raw scores reach about +-10, well past the cap of 2. */
    c = base("softcap_2", "attention a { use softcap(cap = 2.0); }", SZ(1, 2, 2, 30, 41, 16, 16));
    c.ref.score = score_softcap;
    c.ctx.fp[1] = 2.0;
    c.in_scale = 4.0f;
    run_case(&c);

    c = base("gemma_causal_window_softcap",
             "attention g {\n  use causal;\n  use sliding_window(window = 7);\n  use softcap(cap = 3.0);\n}",
             SZ(1, 4, 2, 48, 48, 24, 24));
    c.ref.keep = keep_gemma;
    c.ref.score = score_softcap;
    c.ctx.ip[0] = 7;
    c.ctx.fp[1] = 3.0;
    c.in_scale = 3.0f;
    run_case(&c);

    {
        const int64_t L = 57;
        g_rng = 0xD0Cull;
        int32_t *doc = rand_ints(L, 4);
        attnc_tensor t = TI("doc", doc, L);
        c = base("document", "attention a { use document; }", SZ(2, 2, 2, L, L, 16, 16));
        c.tensors = &t;
        c.n_tensors = 1;
        c.ref.keep = keep_document;
        c.ctx.it[0] = doc;
        run_case(&c);
        free(doc);
    }

    c = base("sigmoid_weight", "attention a { weight sigmoid(score - log(float(Lk))); }", SZ(1, 3, 3, 30, 45, 16, 16));
    c.ref.weight = weight_sigmoid;
    run_case(&c);

    /* Weight mode with fully masked rows. */
    c = base("sigmoid_weight_bottom_right_lq_gt_lk",
             "attention a { use causal_bottom_right; weight sigmoid(score - log(float(Lk))); }",
             SZ(1, 2, 2, 40, 25, 16, 16));
    c.ref.keep = keep_causal_br;
    c.ref.weight = weight_sigmoid;
    run_case(&c);

    /* ReLU weight: rows whose scores are all negative have sum p = 0, LSE = -inf. */
    c = base("relu_weight", "attention a { weight max(score, 0.0); }", SZ(1, 2, 2, 20, 3, 16, 16));
    c.ref.weight = weight_relu;
    run_case(&c);

    c = base("bias_then_scores_in_order", "attention a { bias 0.5; score score * 2.0; score score - 1.0; }",
             SZ(1, 2, 2, 21, 29, 16, 16));
    c.ref.bias = bias_half;
    c.ref.score = score_twice_minus1;
    run_case(&c);
}

static void cases_lowrank(void) {
    static const char *spec =
        "attention lowrank {\n"
        "  param R: int = 3;\n"
        "  tensor U: float[H, Lq, R];\n"
        "  tensor W: float[H, Lk, R];\n"
        "  bias sum(r < R) U[h, q, r] * W[h, kv, r];\n"
        "}\n";
    const int64_t H = 4, Lq = 26, Lk = 35;
    for (int pass = 0; pass < 2; pass++) {
        int64_t R = pass == 0 ? 3 : 5;
        g_rng = 0x10ull + (uint64_t)R;
        float *U = rand_floats(H * Lq * R, 1.0f);
        float *W = rand_floats(H * Lk * R, 1.0f);
        attnc_tensor t[2] = {TF("U", U, 3, H, Lq, R), TF("W", W, 3, H, Lk, R)};
        attnc_param p = PI("R", R);
        Case c = base(pass == 0 ? "lowrank_sum_R_default_3" : "lowrank_sum_R_per_call_5", spec,
                      SZ(1, H, 2, Lq, Lk, 16, 16));
        c.tensors = t;
        c.n_tensors = 2;
        if (pass == 1) {
            c.params = &p;
            c.n_params = 1;
        }
        c.ref.bias = bias_lowrank;
        c.ctx.ip[0] = R;
        c.ctx.ft[0] = U;
        c.ctx.ft[1] = W;
        run_case(&c);
        free(U);
        free(W);
    }
}

static void cases_shapes(void) {
    Case c;
    c = base("gqa_h6_hkv2", "attention a { }", SZ(2, 6, 2, 24, 31, 16, 16));
    run_case(&c);
    c = base("gqa_h6_hkv3_causal", "attention a { use causal; }", SZ(1, 6, 3, 36, 36, 16, 16));
    c.ref.keep = keep_causal;
    run_case(&c);
    c = base("gqa_h1_hkv1", "attention a { }", SZ(3, 1, 1, 29, 70, 16, 16));
    run_case(&c);
    c = base("lq_ne_lk_1_row", "attention a { }", SZ(1, 2, 1, 1, 66, 16, 16));
    run_case(&c);
    c = base("lq_ne_lk_1_key", "attention a { }", SZ(1, 2, 2, 45, 1, 16, 16));
    run_case(&c);
    c = base("d24_dv40", "attention a { use causal; }", SZ(1, 2, 2, 33, 33, 24, 40));
    c.ref.keep = keep_causal;
    run_case(&c);
    c = base("d40_dv24_gqa", "attention a { }", SZ(1, 6, 2, 19, 27, 40, 24));
    run_case(&c);
    c = base("d3_dv5", "attention a { }", SZ(1, 1, 1, 11, 13, 3, 5));
    run_case(&c);
}

static void cases_params(void) {
    Case c;
    c = base("scale_constant", "attention a { scale 0.37; }", SZ(1, 2, 2, 25, 30, 24, 24));
    c.ref.scale = 0.37;
    c.in_scale = 2.0f;
    run_case(&c);

    static const char *tspec = "attention a { param temp: float = 2.0; scale 1.0 / (temp * sqrt(float(D))); }";
    c = base("scale_param_default", tspec, SZ(1, 2, 2, 25, 30, 24, 24));
    c.ref.scale = 1.0 / (2.0 * sqrt(24.0));
    c.in_scale = 2.0f;
    run_case(&c);
    {
        attnc_param p = PF("temp", 0.25);
        c = base("scale_param_per_call", tspec, SZ(1, 2, 2, 25, 30, 24, 24));
        c.params = &p;
        c.n_params = 1;
        c.ref.scale = 1.0 / (0.25 * sqrt(24.0));
        c.in_scale = 2.0f;
        run_case(&c);
    }

    static const char *sspec = "attention a { param slope: float = 0.1; bias -slope * float(abs(q - kv)); }";
    c = base("param_default", sspec, SZ(1, 2, 2, 30, 30, 16, 16));
    c.ref.bias = bias_linear;
    c.ctx.fp[0] = 0.1;
    run_case(&c);
    {
        attnc_param p = PF("slope", 0.7);
        c = base("param_per_call", sspec, SZ(1, 2, 2, 30, 30, 16, 16));
        c.params = &p;
        c.n_params = 1;
        c.ref.bias = bias_linear;
        c.ctx.fp[0] = 0.7;
        run_case(&c);

        /* Negative: the per-call value must not be ignored. */
        c.name = "neg_param_per_call_vs_default_ref";
        c.ctx.fp[0] = 0.1;
        c.expect_mismatch = 1;
        run_case(&c);
    }
    {
        /* An int param given as an integral float (attnc.h allows it). */
        attnc_param p = PF("window", 6.0);
        c = base("int_param_given_as_float", "attention a { use sliding_window; }", SZ(1, 1, 1, 20, 20, 8, 8));
        c.params = &p;
        c.n_params = 1;
        c.ref.keep = keep_window;
        c.ctx.ip[0] = 6;
        run_case(&c);
    }
}

static void cases_masked(void) {
    Case c;
    c = base("fully_masked_rows_q_lt_3", "attention a { mask q >= 3 && kv <= q; }", SZ(2, 2, 2, 20, 20, 16, 16));
    c.ref.keep = keep_q_ge3_causal;
    c.no_lse = 1;
    run_case(&c);

    c = base("mask_everything", "attention a { mask kv > Lk; }", SZ(1, 2, 2, 12, 17, 16, 16));
    c.ref.keep = keep_nothing;
    c.no_lse = 1;
    run_case(&c);

    c = base("mask_false_with_bias_and_weight", "attention a { mask false; bias 1.0; weight sigmoid(score); }",
             SZ(1, 1, 1, 5, 7, 8, 8));
    c.ref.keep = keep_nothing;
    c.ref.weight = weight_sigmoid;
    run_case(&c);
}

static void cases_lazy(void) {
    static const float t4[4] = {0.75f, -0.5f, 1.25f, 0.2f};
    attnc_tensor t = TF("t", t4, 1, 4, 0, 0);
    Case c;

    c = base("lazy_mask_guards_bias_index", "attention a { tensor t: float[4]; mask kv < 4; bias t[kv]; }",
             SZ(1, 2, 2, 6, 8, 16, 16));
    c.tensors = &t;
    c.n_tensors = 1;
    c.ref.keep = keep_kv_lt4;
    c.ref.bias = bias_t_kv;
    c.ctx.ft[0] = t4;
    run_case(&c);

    c = base("lazy_second_mask_after_false", "attention a { tensor t: float[4]; mask kv < 4; mask t[kv] > 0.0; }",
             SZ(1, 2, 2, 6, 8, 16, 16));
    c.tensors = &t;
    c.n_tensors = 1;
    c.ref.keep = keep_kv_lt4_and_t_pos;
    c.ctx.ft[0] = t4;
    run_case(&c);

    c = base("lazy_and", "attention a { tensor t: float[4]; mask kv < 4 && t[kv] > 0.0; }", SZ(1, 2, 2, 6, 8, 16, 16));
    c.tensors = &t;
    c.n_tensors = 1;
    c.ref.keep = keep_kv_lt4_and_t_pos;
    c.ctx.ft[0] = t4;
    run_case(&c);

    c = base("lazy_or", "attention a { tensor t: float[4]; mask kv >= 4 || t[kv] > 0.0; }", SZ(1, 2, 2, 6, 8, 16, 16));
    c.tensors = &t;
    c.n_tensors = 1;
    c.ref.keep = keep_kv_ge4_or_t_pos;
    c.ctx.ft[0] = t4;
    run_case(&c);

    c = base("lazy_ternary", "attention a { tensor t: float[4]; bias kv < 4 ? t[kv] : 0.0; }", SZ(1, 2, 2, 6, 8, 16, 16));
    c.tensors = &t;
    c.n_tensors = 1;
    c.ref.bias = bias_t_kv_cond;
    c.ctx.ft[0] = t4;
    run_case(&c);

    /* Int division by zero only at masked positions; also checks floor division and modulo. */
    c = base("lazy_int_div_guarded_floor_semantics",
             "attention a { mask kv != 2; bias 0.1 * float(q / (kv - 2)) + 0.05 * float((q - 7) % (kv - 2)); }",
             SZ(1, 2, 2, 15, 9, 8, 8));
    c.ref.keep = keep_kv_ne2;
    c.ref.bias = bias_intdiv;
    run_case(&c);
}

static void cases_negative(void) {
    Case c;
    /* The interpreter runs a sliding window; the reference is plain causal. */
    c = base("neg_causal_ref_vs_sliding_window", "attention a { use sliding_window(window = 5); }",
             SZ(1, 2, 2, 40, 40, 16, 16));
    c.ref.keep = keep_causal;
    c.expect_mismatch = 1;
    run_case(&c);

    /* The reference's ALiBi slope uses h instead of h + 1. */
    c = base("neg_alibi_shifted_slope", "attention a { use alibi; }", SZ(1, 8, 8, 40, 40, 16, 16));
    c.ref.bias = bias_alibi_shifted;
    c.ctx.fp[0] = 8.0;
    c.expect_mismatch = 1;
    run_case(&c);

    /* Score clauses in the wrong order: only LSE can tell (a constant shift). */
    c = base("neg_bias_scores_wrong_order", "attention a { bias 0.5; score score - 1.0; score score * 2.0; }",
             SZ(1, 2, 2, 21, 29, 16, 16));
    c.ref.bias = bias_half;
    c.ref.score = score_twice_minus1;
    c.expect_mismatch = 1;
    run_case(&c);

    /* The default scale where the spec gives another. */
    c = base("neg_default_scale_vs_custom", "attention a { scale 0.2; }", SZ(1, 2, 2, 20, 20, 16, 16));
    c.expect_mismatch = 1;
    run_case(&c);

    /* Fully masked rows: the reference says -inf/0, a plain interpreter gives finite values. */
    c = base("neg_plain_vs_masked_ref", "attention a { }", SZ(1, 1, 1, 10, 10, 8, 8));
    c.ref.keep = keep_q_ge3_causal;
    c.expect_mismatch = 1;
    run_case(&c);
}

static void cases_errors(void) {
    static const float t4[4] = {0.75f, -0.5f, 1.25f, 0.2f};

    /* Errors found when binding the call: they name the param or tensor. */
    run_error_case("err_missing_param", "attention a { param window_len: int; mask kv <= q && q - kv < window_len; }",
                   SZ(1, 2, 2, 8, 8, 8, 8), NULL, 0, NULL, 0, ATTNC_ERR_RUNTIME, "window_len", 0);
    run_error_case("err_missing_prelude_param", "attention a { use sliding_window; }", SZ(1, 2, 2, 8, 8, 8, 8), NULL,
                   0, NULL, 0, ATTNC_ERR_RUNTIME, "window", 0);
    {
        /* Another param given, the required one missing. */
        attnc_param p = PF("alibi_max", 3.0);
        run_error_case("err_missing_param_other_given",
                       "attention a { use alibi; param width_q: int; mask kv < width_q; }", SZ(1, 2, 2, 8, 8, 8, 8),
                       &p, 1, NULL, 0, ATTNC_ERR_RUNTIME, "width_q", 0);
    }

    static const char *rb = "attention a { tensor rowbias: float[H, Lq]; bias rowbias[h, q]; }";
    {
        float *data = calloc((size_t)(2 * 9), sizeof(float));
        attnc_tensor t = TF("rowbias", data, 2, 2, 9, 0); /* wants [2, 8] */
        run_error_case("err_tensor_wrong_shape", rb, SZ(1, 2, 2, 8, 8, 8, 8), NULL, 0, &t, 1, ATTNC_ERR_RUNTIME,
                       "rowbias", 0);
        attnc_tensor t1 = TF("rowbias", data, 1, 16, 0, 0); /* wrong rank */
        run_error_case("err_tensor_wrong_rank", rb, SZ(1, 2, 2, 8, 8, 8, 8), NULL, 0, &t1, 1, ATTNC_ERR_RUNTIME,
                       "rowbias", 0);
        run_error_case("err_tensor_missing", rb, SZ(1, 2, 2, 8, 8, 8, 8), NULL, 0, NULL, 0, ATTNC_ERR_RUNTIME,
                       "rowbias", 0);
        free(data);
    }
    {
        int32_t doc[9] = {0};
        attnc_tensor t = TI("doc", doc, 9); /* Lk = 8 */
        run_error_case("err_document_wrong_shape", "attention a { use document; }", SZ(1, 1, 1, 8, 8, 8, 8), NULL, 0,
                       &t, 1, ATTNC_ERR_RUNTIME, "doc", 0);
    }
    {
        /* The good shape makes the same spec run: the errors above are about the shape. */
        float *data = calloc((size_t)(2 * 8), sizeof(float));
        for (int i = 0; i < 16; i++) data[i] = 0.1f * (float)i;
        attnc_tensor t = TF("rowbias", data, 2, 2, 8, 0);
        Case c = base("tensor_right_shape", rb, SZ(1, 2, 2, 8, 8, 8, 8));
        c.tensors = &t;
        c.n_tensors = 1;
        c.ref.bias = bias_rowbias;
        c.ctx.ft[0] = data;
        run_case(&c);
        free(data);
    }

    /* Errors raised while evaluating a clause at a kept position (spec 5.1, 5.3).
     * Those kernels outlive their spec, as attnc.h allows; the last one keeps
     * its spec alive as a control. */
    attnc_tensor t = TF("t", t4, 1, 4, 0, 0);
    run_error_case("err_index_out_of_range_kept", "attention a { tensor t: float[4]; bias t[kv]; }",
                   SZ(1, 2, 2, 6, 8, 8, 8), NULL, 0, &t, 1, ATTNC_ERR_RUNTIME, "'t'", ERR_AT_POS);
    run_error_case("err_index_out_of_range_mask", "attention a { tensor t: float[4]; mask t[kv] > 0.0; }",
                   SZ(1, 2, 2, 6, 8, 8, 8), NULL, 0, &t, 1, ATTNC_ERR_RUNTIME, "'t'", ERR_AT_POS);
    run_error_case("err_index_negative_kept", "attention a { tensor t: float[4]; bias t[kv - 1]; }",
                   SZ(1, 1, 1, 3, 4, 8, 8), NULL, 0, &t, 1, ATTNC_ERR_RUNTIME, "'t'", ERR_AT_POS);
    /* The && guard is the wrong way round: the index is evaluated first. */
    run_error_case("err_and_unguarded", "attention a { tensor t: float[4]; mask t[kv] > 0.0 && kv < 4; }",
                   SZ(1, 2, 2, 6, 8, 8, 8), NULL, 0, &t, 1, ATTNC_ERR_RUNTIME, "'t'", ERR_AT_POS);
    run_error_case("err_int_div_zero_kept", "attention a { bias float(q / (kv - 2)); }", SZ(1, 2, 2, 6, 8, 8, 8),
                   NULL, 0, NULL, 0, ATTNC_ERR_RUNTIME, NULL, ERR_AT_POS);
    run_error_case("err_int_mod_zero_kept", "attention a { bias float(q % (kv - 3)); }", SZ(1, 2, 2, 6, 8, 8, 8),
                   NULL, 0, NULL, 0, ATTNC_ERR_RUNTIME, NULL, ERR_AT_POS);
    {
        attnc_param p = PI("z", 0);
        run_error_case("err_int_div_zero_param", "attention a { param z: int = 1; bias float(kv / z); }",
                       SZ(1, 1, 1, 4, 4, 8, 8), &p, 1, NULL, 0, ATTNC_ERR_RUNTIME, NULL, ERR_AT_POS);
    }
    run_error_case("err_index_out_of_range_spec_kept_alive", "attention a { tensor t: float[4]; bias t[kv]; }",
                   SZ(1, 2, 2, 6, 8, 8, 8), NULL, 0, &t, 1, ATTNC_ERR_RUNTIME, "'t'", ERR_AT_POS | ERR_KEEP_SPEC);
}

int main(void) {
    printf("# attnc %s: interpreter vs naive reference, tolerance %.0e * (1 + |want|)\n", attnc_version(), TOL);
    if (!attnc_backend_available(ATTNC_BACKEND_INTERP)) {
        printf("FAIL interp backend not available\n");
        return 1;
    }
    cases_basic();
    cases_lowrank();
    cases_shapes();
    cases_params();
    cases_masked();
    cases_lazy();
    cases_negative();
    cases_errors();
    printf("# %d cases, %d failed\n", g_cases, g_failures);
    return g_failures ? 1 : 0;
}
