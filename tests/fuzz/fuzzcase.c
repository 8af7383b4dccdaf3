/* fuzzcase.c — running one fuzz case through the public API (fuzzcase.h).
 *
 * Tolerances: the interpreter computes in float64, refplan too, so they
 * agree up to the float32 rounding of the outputs (tight).  llvm, tcc and
 * cuda-emu compute in float32: a score's error grows with D (the dot
 * product), with the magnitude of the score expressions and with Lk (the
 * sums), so the tolerance is eps32 times those, with a safety factor.  A
 * softmax row's O is a convex combination of V rows in [-1, 1); a `weight`
 * row's O is scaled by sum p = exp(LSE), so its error is measured relative
 * to that.  cuda-emu's tensor-core kernel rounds float32 Q, K and V (and P)
 * to tf32 (docs/cuda.md): a score's error is then up to 2 eps |scale|
 * sum_d |q_d k_d|, which grows with the scale the case does not know (scale
 * 10 at D = 16 put LSE 6e-3 off, seed 5152); the reference measures it
 * (tf32_spans). */
#include "fuzzcase.h"

#include "cuda_emu_backend.h"
#include "fclayout.h"
#include "launch_stats.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const kind_names[] = {"same", "spec", "skip", "status", "partial-write", "empty-row",
                                         "nan-inf", "O", "LSE", "grad", "crash", "tiles"};
const char *fc_kind_name(FcKind k) { return kind_names[k]; }

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static float *floats(uint64_t *s, size_t n) {
    float *p = malloc(sizeof(float) * (n + 1));
    for (size_t i = 0; p && i < n; i++) p[i] = (float)((double)(next(s) >> 11) / 9007199254740992.0 * 2.0 - 1.0);
    return p;
}

/* An empty array (a zero size) is passed as NULL, which the API allows, in one case of two. */
static int null_empty(const FuzzCase *c) { return (int)(c->data_seed >> 17 & 1); }
static float *floats_or_null(uint64_t *s, size_t n, int null) { return n == 0 && null ? NULL : floats(s, n); }

/* The inputs of one call, made from the case's seed: the same for every backend. */
typedef struct Inputs {
    float *q, *k, *v;
    attnc_tensor t[FC_MAX];
    int nt;
    size_t rows, no;
} Inputs;

static void inputs_free(Inputs *in) {
    free(in->q), free(in->k), free(in->v);
    for (int i = 0; i < in->nt; i++) free((void *)in->t[i].data);
    memset(in, 0, sizeof *in);
}

/* Whether k takes param `name` (unbound); a minimised spec may have lost some of the case's params. */
static int has_param(const attnc_kernel *k, const char *name) {
    for (int i = 0; i < attnc_kernel_param_count(k); i++) {
        attnc_type ty;
        int has_default;
        if (!strcmp(attnc_kernel_param_info(k, i, &ty, &has_default, NULL), name)) return 1;
    }
    return 0;
}

static int params_for(const attnc_kernel *k, const FuzzCase *c, int skip_defined, attnc_param *out, char *why) {
    int n = 0;
    for (int i = 0; i < c->nparams; i++) {
        if (!has_param(k, c->params[i].name)) continue;
        int defined = 0;
        for (int j = 0; skip_defined && j < c->ndefines; j++) defined |= !strcmp(c->defines[j].name, c->params[i].name);
        if (defined) continue;
        attnc_error err = {0};
        if (attnc_kernel_param_from_text(k, c->params[i].name, c->params[i].text, &out[n], &err)) {
            snprintf(why, 600, "param %s=%s: %s", c->params[i].name, c->params[i].text, err.message);
            return -1;
        }
        n++;
    }
    return n;
}

/* Tensors of kernel k (the reference): shapes from the API; a shape it refuses (a negative dimension) gives an
 * empty tensor, which the call must then refuse too.  Returns 0, or FC_SKIP when too large. */
static int make_inputs(const attnc_kernel *k, const FuzzCase *c, const attnc_param *params, int np, Inputs *in) {
    const attnc_sizes *sz = &c->sz;
    uint64_t s = c->data_seed;
    in->rows = (size_t)(sz->B * sz->H * sz->Lq);
    in->no = in->rows * (size_t)sz->Dv;
    int null = null_empty(c);
    in->q = floats_or_null(&s, in->rows * (size_t)sz->D, null);
    in->k = floats_or_null(&s, (size_t)(sz->B * sz->Hkv * sz->Lk * sz->D), null);
    in->v = floats_or_null(&s, (size_t)(sz->B * sz->Hkv * sz->Lk * sz->Dv), null);
    for (int i = 0; i < attnc_kernel_tensor_count(k) && in->nt < FC_MAX; i++) {
        attnc_tensor *t = &in->t[in->nt++];
        attnc_error err = {0};
        t->name = attnc_kernel_tensor_info(k, i, &t->dtype, &t->rank);
        size_t count = 1;
        if (attnc_kernel_tensor_shape(k, i, sz, params, np, t->shape, &err)) {
            memset(t->shape, 0, sizeof t->shape);
            count = 0;
        }
        for (int d = 0; d < t->rank; d++) count *= (size_t)t->shape[d];
        if (count > ((size_t)1 << 22)) return FC_SKIP;
        if (t->dtype == ATTNC_F32) {
            t->data = floats_or_null(&s, count, null);
            continue;
        }
        int64_t lo = 0, hi = 4;
        attnc_kernel_tensor_value_range(k, i, sz, params, np, &lo, &hi, &err);
        for (int r = 0; r < c->nranges; r++)
            if (!strcmp(c->ranges[r].name, t->name)) lo = c->ranges[r].lo, hi = c->ranges[r].hi;
        if (hi <= lo) hi = lo + 1;
        int32_t *p = malloc(sizeof(int32_t) * (count + 1));
        for (size_t j = 0; p && j < count; j++) p[j] = (int32_t)(lo + (int64_t)(next(&s) % (uint64_t)(hi - lo)));
        if (count == 0 && null) free(p), p = NULL;
        t->data = p;
    }
    return 0;
}

/* The same call on the same kernel again: the kernel keeps its tile map between calls of one shape
 * (runtime/map_cache.h), so this call runs on the kept copy; O and LSE must be the first call's bits. */
static attnc_status call_again(const attnc_kernel *k, const attnc_args *first, const Inputs *in, const float *o,
                               const float *lse, char *msg) {
    float *o2 = malloc(sizeof(float) * (in->no + 1)), *lse2 = malloc(sizeof(float) * (in->rows + 1));
    attnc_args a = *first;
    if (a.o) a.o = o2;
    if (a.lse) a.lse = lse2;
    attnc_error err = {0};
    attnc_status st = !o2 || !lse2 ? ATTNC_ERR_NOMEM : attnc_kernel_run(k, &a, &err);
    if (st) snprintf(msg, 600, "the second call: %s", o2 && lse2 ? err.message : "out of memory");
    for (size_t i = 0; !st && a.o && i < in->no; i++)
        if (memcmp(&o2[i], &o[i], sizeof(float)) != 0) {
            snprintf(msg, 600, "the second call of the kernel gave O[%zu] = %.9g, the first %.9g", i, o2[i], o[i]);
            st = ATTNC_ERR_INTERNAL;
        }
    for (size_t i = 0; !st && a.lse && i < in->rows; i++)
        if (memcmp(&lse2[i], &lse[i], sizeof(float)) != 0) {
            snprintf(msg, 600, "the second call of the kernel gave LSE[%zu] = %.9g, the first %.9g", i, lse2[i], lse[i]);
            st = ATTNC_ERR_INTERNAL;
        }
    free(o2);
    free(lse2);
    return st;
}

/* Compile for opts and run; O and LSE are filled with a sentinel first so that a failed call that writes is seen. */
static attnc_status compile_run(const attnc_spec *spec, const FuzzCase *c, const attnc_options *opts, int skip_defined,
                                const Inputs *in, float *o, float *lse, char *msg, int *partial) {
    attnc_kernel *k = NULL;
    attnc_error err = {0};
    attnc_param params[FC_MAX];
    attnc_status st = attnc_compile(spec, c->variant, opts, &k, &err);
    if (st) {
        snprintf(msg, 600, "compile: %s", err.message);
        return st;
    }
    int np = params_for(k, c, skip_defined, params, msg);
    if (np < 0) {
        attnc_kernel_free(k);
        return ATTNC_ERR_USAGE;
    }
    for (size_t i = 0; i < in->no; i++) o[i] = 12345.0f;
    for (size_t i = 0; i < in->rows; i++) lse[i] = 12345.0f;
    int null = null_empty(c);
    attnc_args args = {c->sz, in->q, in->k, in->v, in->no == 0 && null ? NULL : o,
                       (skip_defined && c->no_lse) || (in->rows == 0 && null) ? NULL : lse, params, np, in->t, in->nt};
    if (skip_defined && (c->elem || c->layout)) { /* the backend's call in the case's type and layout */
        FcLayoutCall L;
        if (fcl_prepare(c, in->q, in->k, in->v, args.lse != NULL, &L)) {
            fcl_free(&L);
            attnc_kernel_free(k);
            snprintf(msg, 600, "out of memory for the layout");
            return ATTNC_ERR_NOMEM;
        }
        attnc_args a = args;
        a.q = L.q, a.k = L.k, a.v = L.v, a.o = L.o, a.lse = L.lse;
        if (fcl_layout(c) == 4) a.sizes.Lq = L.q_start[c->sz.B], a.sizes.Lk = L.k_start[c->sz.B]; /* rows held */
        st = fcl_layout(c) >= 3 ? attnc_kernel_run_batch(k, &a, &L.lay, &L.batch, &err)
                                : attnc_kernel_run_layout(k, &a, &L.lay, &err);
        if (st) {
            snprintf(msg, 600, "run: %s", err.message);
            *partial |= !fcl_untouched(&L);
        } else if (fcl_extract(c, &L, o, lse)) {
            snprintf(msg, 600, "the call wrote between the elements of O or LSE");
            *partial = 1;
            st = ATTNC_ERR_INTERNAL;
        }
        fcl_free(&L);
        attnc_kernel_free(k);
        return st;
    }
    /* the reference of a batch: each sequence as a call of its own */
    st = !skip_defined && fcl_layout(c) == 4 ? fcb_reference(k, c, &args, o, args.lse, &err) : attnc_kernel_run(k, &args, &err);
    if (st) {
        snprintf(msg, 600, "run: %s", err.message);
        for (size_t i = 0; i < in->no + in->rows; i++)
            *partial |= (i < in->no ? o[i] : lse[i - in->no]) != 12345.0f;
    } else if (skip_defined) {
        st = call_again(k, &args, in, o, lse, msg);
    }
    attnc_kernel_free(k);
    return st;
}

static double tolerance(const FuzzCase *c, double lse) {
    double m = isfinite(lse) ? fabs(lse) : 0;
    if (c->backend == ATTNC_BACKEND_INTERP || c->backend == ATTNC_BACKEND_REFPLAN) return 4e-6 * (1 + m / 16);
    return 1e-5 * (4 + sqrt((double)c->sz.D) + sqrt((double)c->sz.Lk) + 2 * m);
}

static int close_to(float got, float want, double tol, double scale) {
    if (isnan(want) || isnan(got)) return isnan(want) && isnan(got);
    if (isinf(want) || isinf(got)) return got == want;
    return fabs((double)got - (double)want) <= tol * (scale + fabs((double)want));
}

/* O stored as f16 or bf16 (elem) near the type's largest finite value: a difference within the tolerance
 * decides between that value and an infinity (the tensor-core kernel's P in 16 bits moves O by about 2^-11,
 * enough to cross 65520).  1 when got g and the reference's unrounded w straddle that edge so closely. */
static int overflow_edge(int elem, float g, float w, double tol, double scale) {
    float wr = w;
    fcl_round(elem, &wr, 1);
    if (!elem || isnan(g) || !isfinite(w) || !!isinf(g) == !!isinf(wr) || (g < 0) != (w < 0)) return 0;
    float edge = elem == 1 ? 65520.0f : 0x1.ffp127f; /* the least magnitude that rounds to an infinity */
    return close_to(isinf(g) ? copysignf(edge, g) : g, w, tol, scale);
}

/* Row by row: fully masked rows and non-finite values exactly, the rest within tolerance (span: NULL, or per row
 * the magnitude of its scores' products that tf32 rounds, tf32_spans). */
static FcKind compare(const FuzzCase *c, int softmax, const Inputs *in, const float *o, const float *lse,
                      const float *ro, const float *rlse, const double *span, FcResult *r) {
    size_t dv = (size_t)c->sz.Dv;
    for (size_t row = 0; row < in->rows; row++) {
        float L = rlse[row];
        size_t b = row / (size_t)(c->sz.H * c->sz.Lq), h = row / (size_t)c->sz.Lq % (size_t)c->sz.H,
               q = row % (size_t)c->sz.Lq;
        char where[96];
        snprintf(where, sizeof where, "row b=%zu h=%zu q=%zu", b, h, q);
        if (L == -INFINITY) {
            r->empty_rows++;
            int ok = c->no_lse || lse[row] == -INFINITY;
            for (size_t j = 0; j < dv; j++) ok &= o[row * dv + j] == 0.0f;
            if (!ok) {
                snprintf(r->detail, sizeof r->detail, "%s is fully masked (LSE -inf, O 0) but LSE = %.9g, O[0] = %.9g",
                         where, lse[row], dv ? o[row * dv] : 0.0f);
                return FC_EMPTY;
            }
            continue;
        }
        if (!softmax && L < -80) continue; /* sum p below float32's range: a float32 backend may give 0 and -inf */
        double tol = tolerance(c, L);
        if (r->tensor_core && c->elem == 0) /* float32 through TF32 (docs/cuda.md): Q, K, V and P rounded to 11 bits */
            tol = fmax(tol, 0x1p-10 * (1 + sqrt((double)c->sz.D) / 4 + (span ? span[row] : 0) + fabs((double)L) / 8));
        double scale = softmax || !isfinite(L) ? 1.0 : 1.0 + exp(L < 80 ? L : 80);
        double otol = tol + (c->elem == 1 ? 0x1p-11 : c->elem == 2 ? 0x1p-8 : 0); /* O rounded once to its type */
        if (!c->no_lse && !close_to(lse[row], L, tol, 1.0)) {
            snprintf(r->detail, sizeof r->detail, "%s: LSE = %.9g but the interpreter gives %.9g (tolerance %.3g)", where,
                     lse[row], L, tol);
            return isfinite(L) && isfinite(lse[row]) ? FC_LSE : FC_SPECIAL;
        }
        for (size_t j = 0; j < dv; j++) {
            float g = o[row * dv + j], w = ro[row * dv + j];
            if (c->elem && isfinite(w)) { /* beyond the type's largest finite value O is stored as an infinity */
                float r = w;
                fcl_round(c->elem, &r, 1);
                if (isinf(r)) w = r;
            }
            if (!close_to(g, w, otol, scale) && !overflow_edge(c->elem, g, ro[row * dv + j], otol, scale)) {
                snprintf(r->detail, sizeof r->detail, "%s: O[..%zu] = %.9g but the interpreter gives %.9g (tolerance %.3g)",
                         where, j, g, w, tol);
                return isfinite(g) && isfinite(w) ? FC_O : FC_SPECIAL;
            }
        }
    }
    return FC_SAME;
}

/* ---- the backward pass ------------------------------------------------------ */

/* The largest |got - want| over 1 + max |want| of one gradient; -1 when a NaN or infinity differs. */
static double grad_error(const float *got, const float *want, size_t n) {
    double scale = 0, worst = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(want[i]) && fabs(want[i]) > scale) scale = fabs(want[i]);
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(got[i]) || !isfinite(want[i])) {
            if (!(isnan(got[i]) && isnan(want[i])) && got[i] != want[i]) return -1;
            continue;
        }
        double d = fabs((double)got[i] - want[i]) / (1 + scale);
        if (d > worst) worst = d;
    }
    return worst;
}

/* dQ, dK, dV and every float tensor's gradient of one backward call. */
typedef struct GradOut {
    float *d[3 + FC_MAX];
    size_t n[3 + FC_MAX];
    attnc_tensor_grad tg[FC_MAX];
    int ntg;
} GradOut;

static int grad_out_make(const FuzzCase *c, const Inputs *in, GradOut *g) {
    const attnc_sizes *s = &c->sz;
    memset(g, 0, sizeof *g);
    g->n[0] = in->rows * (size_t)s->D, g->n[1] = (size_t)(s->B * s->Hkv * s->Lk * s->D);
    g->n[2] = (size_t)(s->B * s->Hkv * s->Lk * s->Dv);
    for (int i = 0; i < in->nt; i++) {
        if (in->t[i].dtype != ATTNC_F32) continue;
        size_t n = 1;
        for (int d = 0; d < in->t[i].rank; d++) n *= (size_t)in->t[i].shape[d];
        g->n[3 + g->ntg] = n;
        g->tg[g->ntg++].name = in->t[i].name;
    }
    for (int i = 0; i < 3 + g->ntg; i++) {
        if (!(g->d[i] = malloc(sizeof(float) * (g->n[i] + 1)))) return -1;
        memset(g->d[i], 0xff, sizeof(float) * g->n[i]); /* NaN: what a backend leaves unwritten differs */
        if (i >= 3) g->tg[i - 3].data = g->d[i];
    }
    return 0;
}

static void grad_out_free(GradOut *g) {
    for (int i = 0; i < 3 + FC_MAX; i++) free(g->d[i]);
}

/* The backward call, float32 contiguous, or (in_layout) Q, K and V in the case's element type and layout
 * (0, 1 or 2) with O, dO, dQ, dK and dV at their strides (fclayout.c). */
static attnc_status backward(const attnc_kernel *k, const FuzzCase *c, const attnc_param *params, int np,
                             const Inputs *in, float *o, float *lse, const float *dout, const float *dlse, GradOut *g,
                             int in_layout, char *msg) {
    attnc_args args = {c->sz, in->q, in->k, in->v, o, lse, params, np, in->t, in->nt};
    attnc_grad gr = {.dout = dout, .dlse = dlse, .dq = g->d[0], .dk = g->d[1], .dv = g->d[2], .dtensors = g->tg,
                     .n_dtensors = g->ntg};
    attnc_error err = {0};
    attnc_status st;
    FcGradCall G;
    if (!in_layout) {
        st = attnc_kernel_backward(k, &args, NULL, &gr, &err);
    } else if (fcl_grad_prepare(c, in->q, in->k, in->v, o, lse, dout, &G)) {
        snprintf(err.message, sizeof err.message, "out of memory for the layout");
        st = ATTNC_ERR_NOMEM;
    } else {
        attnc_args a = args;
        a.q = G.f.q, a.k = G.f.k, a.v = G.f.v, a.o = G.o, a.lse = G.lse;
        attnc_grad lg = G.grad;
        lg.dlse = dlse, lg.dtensors = g->tg, lg.n_dtensors = g->ntg;
        st = attnc_kernel_backward(k, &a, &G.f.lay, &lg, &err);
        if (!st) fcl_grad_extract(c, &G, g->d[0], g->d[1], g->d[2]);
    }
    if (in_layout) fcl_grad_free(&G);
    if (st) snprintf(msg, 600, "%s", err.message);
    return st;
}

/* FC_GRAD with r's detail when a gradient of got is further than tol from want's (`which` names the call). */
static FcKind grad_check(const GradOut *got, const GradOut *want, double tol, const char *which, FcResult *r) {
    static const char *const names[3] = {"dQ", "dK", "dV"};
    for (int i = 0; i < 3 + want->ntg; i++) {
        double e = grad_error(got->d[i], want->d[i], want->n[i]);
        if (e < 0 || e > tol) {
            snprintf(r->detail, sizeof r->detail, "backward%s: %s differs from the interpreter's by %.3g of its scale%s",
                     which, i < 3 ? names[i] : want->tg[i - 3].name, e, e < 0 ? " (NaN/inf differ)" : "");
            return FC_GRAD;
        }
    }
    return FC_SAME;
}

/* The backend's backward against the interpreter's, both from the
 * interpreter's O and LSE (ro, rl) with random dO and dLSE.  A backend
 * without a backward pass compares nothing. */
static FcKind grad_compare(const attnc_spec *spec, const FuzzCase *c, const attnc_options *opts, const attnc_kernel *ref,
                           const attnc_param *rparams, int rnp, const Inputs *in, float *ro, float *rl, FcResult *r) {
    attnc_kernel *k = NULL;
    attnc_error err = {0};
    attnc_param params[FC_MAX];
    char msg[600] = "", rmsg[600] = "";
    if (attnc_compile(spec, c->variant, opts, &k, &err) || !attnc_kernel_has_backward(k)) {
        attnc_kernel_free(k);
        return FC_SAME;
    }
    int np = params_for(k, c, 1, params, msg);
    uint64_t s = c->data_seed ^ 0x6A09E667F3BCC909ull;
    float *dout = floats(&s, in->no), *dlse = floats(&s, in->rows);
    /* a weight row whose weights sum below 0 has LSE = NaN, from which compiled backwards cannot recover the sum
     * that dLSE's term divides by (docs/gradients.md: a documented limitation), and one whose weights sum to 0 has
     * LSE = -inf and an infinite dLSE term, whose inf - inf the interpreter's reverse mode and the compiled
     * backwards' folded derivatives resolve differently (NaN or 0; seed 9349): such rows get no dLSE */
    for (size_t i = 0; dlse && i < in->rows; i++)
        if (!isfinite(rl[i])) dlse[i] = 0;
    GradOut want, got;
    FcKind kind = FC_SAME;
    if (np < 0 || !dout || !dlse || grad_out_make(c, in, &want) || grad_out_make(c, in, &got)) {
        snprintf(r->detail, sizeof r->detail, "cannot make the backward call: %s", np < 0 ? msg : "out of memory");
        kind = FC_SKIP;
    } else {
        int in_layout = (c->elem || c->layout) && fcl_layout(c) <= 2; /* a batch's backward: the plain call */
        attnc_status rst = backward(ref, c, rparams, rnp, in, ro, rl, dout, dlse, &want, 0, rmsg);
        attnc_status st = backward(k, c, params, np, in, ro, rl, dout, dlse, &got, in_layout, msg);
        /* compiled backwards recompute P = exp(s - LSE) from the float32 LSE they are given, the interpreter
         * from its own float64 one: a score of 4e6 leaves LSE a quarter off, so P off by that relative error;
         * and from their own float32 score s, whose absolute error is some ulps of |s| where the score goes
         * through exp2/log2 (pow), not one: P is off by that much.  16 ulps of the largest |LSE| (the largest
         * score) cover it; the term is 1e-6 |LSE|, so it widens the tolerance only where scores are in the
         * thousands (attnc-fuzz seed 5402: `pow(abs(float(kv) / (0.25 + abs(score))) + 0.5, 2)`, scores near
         * 4e4: llvm's dQ 0.0155 of its scale against 0.0115 with 4 ulps) */
        double lse_err = 0;
        for (size_t i = 0; i < in->rows; i++)
            if (isfinite(rl[i]) && fabs(rl[i]) * 0x1p-24 > lse_err) lse_err = fabs(rl[i]) * 0x1p-24;
        double tol = (c->backend == ATTNC_BACKEND_REFPLAN ? 1e-4 : 2e-3) + 16 * lse_err;
        if (st != rst) {
            snprintf(r->detail, sizeof r->detail, "backward: interpreter: %s; %s: %s", rst ? rmsg : "ok",
                     attnc_backend_name(c->backend), st ? msg : "ok");
            kind = FC_STATUS;
        }
        if (!st && !rst && kind == FC_SAME) kind = grad_check(&got, &want, tol, "", r);
        /* a second call on the kernel, plain: what the first left in the buffers the kernel keeps between
         * backward calls (accumulators, Q, K and V copied at the first call's layout) must not reach it */
        if (!st && !rst && kind == FC_SAME) {
            GradOut again;
            if (grad_out_make(c, in, &again)) {
                snprintf(r->detail, sizeof r->detail, "cannot make the second backward call: out of memory");
                kind = FC_SKIP;
            } else if ((st = backward(k, c, params, np, in, ro, rl, dout, dlse, &again, 0, msg))) {
                snprintf(r->detail, sizeof r->detail, "backward, second call: %s: %s", attnc_backend_name(c->backend),
                         msg);
                kind = FC_STATUS;
            } else {
                kind = grad_check(&again, &want, tol, ", second call", r);
            }
            grad_out_free(&again);
        }
    }
    grad_out_free(&want), grad_out_free(&got);
    free(dout), free(dlse);
    attnc_kernel_free(k);
    return kind;
}

/* The masks' picture of (b, h) = (B - 1, H - 1) at rows x cols from kernel k into kept (rows * cols floats). */
static attnc_status picture(const attnc_kernel *k, const attnc_args *a, int rows, int cols, float *kept) {
    attnc_error err = {0};
    return attnc_kernel_picture(k, a, a->sizes.B - 1, a->sizes.H - 1, rows, cols, kept, NULL, &err);
}

/* The backend kernel's tile map checked against one-element tiles, where the tile analysis evaluates every
 * pair exactly (an interpreter kernel with --tile 1x1): attnc_kernel_kept_pairs, and the picture of the last
 * (b, h) at full resolution and downsampled, must agree bit for bit.  A tile wrongly FULL or EMPTY shows as a
 * difference.  Calls whose masks raise runtime errors are not compared (which pairs get evaluated depends on
 * the tiles).  FC_SAME when they agree or cannot be compared. */
static FcKind tiles_compare(const attnc_spec *spec, const FuzzCase *c, const attnc_options *opts, const Inputs *in,
                            FcResult *r) {
    if (fcl_layout(c) == 4 || c->sz.B <= 0 || c->sz.H <= 0 || c->sz.Lq <= 0 || c->sz.Lk <= 0 ||
        c->sz.Lq * c->sz.Lk > ((int64_t)1 << 16))
        return FC_SAME;
    attnc_options one = {.backend = ATTNC_BACKEND_INTERP, .threads = 1, .tile_q = 1, .tile_k = 1};
    attnc_kernel *k = NULL, *exact = NULL;
    attnc_error err = {0};
    FcKind kind = FC_SAME;
    attnc_param params[FC_MAX], pexact[FC_MAX];
    char msg[600] = "";
    int rows = (int)c->sz.Lq, cols = (int)c->sz.Lk, drows = rows > 2 ? rows / 3 : 1, dcols = cols > 4 ? cols / 5 : 1;
    float *pk = malloc(sizeof(float) * (size_t)rows * (size_t)cols * 2 + 2 * sizeof(float) * (size_t)drows * (size_t)dcols);
    if (!pk || attnc_compile(spec, c->variant, opts, &k, &err) || attnc_compile(spec, c->variant, &one, &exact, &err))
        goto done;
    int np = params_for(k, c, 1, params, msg), npx = params_for(exact, c, 0, pexact, msg);
    if (np < 0 || npx < 0) goto done;
    attnc_args a = {c->sz, NULL, NULL, NULL, NULL, NULL, params, np, in->t, in->nt}, ax = a;
    ax.params = pexact, ax.n_params = npx;
    int64_t kept = -1, kept_exact = -1;
    if (attnc_kernel_kept_pairs(k, &a, &kept, &err) || attnc_kernel_kept_pairs(exact, &ax, &kept_exact, &err)) goto done;
    float *pe = pk + (size_t)rows * cols, *dk = pe + (size_t)rows * cols, *de = dk + (size_t)drows * dcols;
    if (kept != kept_exact) {
        snprintf(r->detail, sizeof r->detail, "kept pairs: %" PRId64 " with %s's tile map, %" PRId64 " counted pair by pair",
                 kept, attnc_backend_name(c->backend), kept_exact);
        kind = FC_TILES;
    } else if (!picture(k, &a, rows, cols, pk) && !picture(exact, &ax, rows, cols, pe) &&
               !picture(k, &a, drows, dcols, dk) && !picture(exact, &ax, drows, dcols, de)) {
        for (int i = 0; kind == FC_SAME && i < rows * cols; i++)
            if (pk[i] != pe[i]) {
                snprintf(r->detail, sizeof r->detail, "mask picture of (b, h) = (%" PRId64 ", %" PRId64 "): pair (%d, %d) %s "
                         "with %s's tile map, %s pair by pair", c->sz.B - 1, c->sz.H - 1, i / cols, i % cols,
                         pk[i] ? "kept" : "dropped", attnc_backend_name(c->backend), pe[i] ? "kept" : "dropped");
                kind = FC_TILES;
            }
        for (int i = 0; kind == FC_SAME && i < drows * dcols; i++)
            if (dk[i] != de[i]) {
                snprintf(r->detail, sizeof r->detail, "downsampled mask picture %dx%d: pixel %d %g, %g pair by pair",
                         drows, dcols, i, (double)dk[i], (double)de[i]);
                kind = FC_TILES;
            }
    }
done:
    free(pk);
    attnc_kernel_free(k);
    attnc_kernel_free(exact);
    return kind;
}

static FcKind finish(FcResult *r, FcKind k) { return r->kind = k; }

/* Per row, how large its scores' products sigma * sum_d |q_d k_d| are (the part of a score tf32 rounds): the
 * reference's LSE on (s |Q|, |K|) for s = 1 and -1 (a negative scale) against (0, |K|), the largest difference
 * (0 where a row is masked or not finite); NULL when it cannot tell (out of memory, a call that fails). */
static double *tf32_spans(attnc_spec *spec, const FuzzCase *c, const attnc_options *ropts, const Inputs *in) {
    size_t nq = in->rows * (size_t)c->sz.D, nk = (size_t)(c->sz.B * c->sz.Hkv * c->sz.Lk * c->sz.D);
    Inputs t = *in;
    float *q = malloc(sizeof(float) * (nq + 1)), *k = malloc(sizeof(float) * (nk + 1));
    float *o = malloc(sizeof(float) * (in->no + 1)), *l[3];
    double *span = calloc(in->rows + 1, sizeof(double));
    int ok = q && k && o && span;
    for (int s = 0; s < 3; s++) ok &= (l[s] = malloc(sizeof(float) * (in->rows + 1))) != NULL;
    /* (every l[s] malloc'd or NULL: freed below either way) */
    for (size_t i = 0; ok && i < nk; i++) k[i] = fabsf(in->k[i]);
    t.q = q, t.k = k;
    for (int s = 0; ok && s < 3; s++) { /* s: 0 (zero Q), 1 (|Q|), 2 (-|Q|) */
        for (size_t i = 0; i < nq; i++) q[i] = s == 0 ? 0.0f : s == 1 ? fabsf(in->q[i]) : -fabsf(in->q[i]);
        char msg[600] = "";
        int partial = 0;
        ok = compile_run(spec, c, ropts, 0, &t, o, l[s], msg, &partial) == ATTNC_OK;
    }
    for (size_t r = 0; ok && r < in->rows; r++)
        for (int s = 1; s < 3; s++) {
            double d = fabs((double)l[s][r] - (double)l[0][r]);
            if (isfinite(d) && d > span[r]) span[r] = d;
        }
    free(q), free(k), free(o);
    for (int s = 0; s < 3; s++) free(l[s]);
    if (!ok) free(span);
    return ok ? span : NULL;
}

FcKind fc_run(const FuzzCase *c, FcResult *r) {
    memset(r, 0, sizeof *r);
    attnc_spec *spec = NULL;
    attnc_error err = {0};
    if (attnc_spec_from_string("fuzz.attn", c->text, c->len, &spec, &err)) {
        snprintf(r->detail, sizeof r->detail, "%s", spec ? attnc_spec_diagnostics(spec) : err.message);
        attnc_spec_free(spec);
        return finish(r, FC_SPEC);
    }
    attnc_kernel *ref = NULL;
    attnc_options ropts = {.backend = ATTNC_BACKEND_INTERP, .threads = 1};
    attnc_param params[FC_MAX];
    Inputs in = {0};
    FcKind kind = FC_SAME;
    char msg[600] = "";
    int np = -1;
    if (attnc_compile(spec, c->variant, &ropts, &ref, &err)) snprintf(msg, sizeof msg, "interp: %s", err.message);
    else np = params_for(ref, c, 0, params, msg);
    if (np < 0 || make_inputs(ref, c, params, np, &in)) {
        snprintf(r->detail, sizeof r->detail, "cannot make the call: %s", msg);
        kind = FC_SKIP;
    } else { /* both sides see the values the backend's type can hold */
        fcl_round(c->elem, in.q, in.rows * (size_t)c->sz.D);
        fcl_round(c->elem, in.k, (size_t)(c->sz.B * c->sz.Hkv * c->sz.Lk * c->sz.D));
        fcl_round(c->elem, in.v, (size_t)(c->sz.B * c->sz.Hkv * c->sz.Lk * c->sz.Dv));
    }
    float *ro = malloc(sizeof(float) * (in.no + 1)), *rl = malloc(sizeof(float) * (in.rows + 1));
    float *o = malloc(sizeof(float) * (in.no + 1)), *l = malloc(sizeof(float) * (in.rows + 1));
    if (kind == FC_SAME) {
        int partial = 0;
        char rmsg[600] = "";
        r->ref_status = compile_run(spec, c, &ropts, 0, &in, ro, rl, rmsg, &partial);
        r->ref_failed = r->ref_status != ATTNC_OK;
        if (r->ref_failed) snprintf(r->ref_message, sizeof r->ref_message, "%s", rmsg);
        attnc_define defs[FC_MAX];
        int nd = 0;
        for (int i = 0; i < c->ndefines; i++)
            if (has_param(ref, c->defines[i].name)) defs[nd++] = (attnc_define){c->defines[i].name, c->defines[i].text};
        attnc_options opts = {c->backend, c->threads > 0 ? c->threads : 1, defs, nd, c->tile_q, c->tile_k, c->flags};
        if (c->warm_threads > 0) {
            attnc_options warm = opts;
            int unused = 0;
            warm.threads = c->warm_threads;
            compile_run(spec, c, &warm, 1, &in, o, l, msg, &unused);
            msg[0] = 0;
        }
        double t0 = now();
        long long tc0 = 0, tc1 = 0, grid0 = launch_grid_calls(), kept0 = map_cache_masked_reuses();
        long long mapped0 = launch_grid_kv_mapped_calls(), tables0 = launch_grid_table_calls(), diag0 = launch_diag_table_calls();
        long long band0 = launch_band_calls(), live0 = launch_live_key_calls(), short0 = launch_short_tile_calls();
        long long dropped0 = map_cache_checks_dropped();
        long long chunk0 = launch_kv_chunked_calls(), pack0 = launch_kv_packed_calls(), widen0 = launch_kv_widened_calls();
        cuda_emu_fa2_stats(&tc0, NULL, 0);
        r->status = compile_run(spec, c, &opts, 1, &in, o, l, msg, &partial);
        cuda_emu_fa2_stats(&tc1, NULL, 0);
        r->seconds = now() - t0;
        r->tensor_core = tc1 > tc0;
        r->grid = launch_grid_calls() > grid0;
        r->grid_mapped = launch_grid_kv_mapped_calls() > mapped0;
        r->grid_tables = launch_grid_table_calls() > tables0;
        r->diag_tables = launch_diag_table_calls() > diag0;
        r->band = launch_band_calls() > band0;
        r->live_keys = launch_live_key_calls() > live0;
        r->short_tiles = launch_short_tile_calls() > short0;
        r->checks_dropped = map_cache_checks_dropped() > dropped0;
        r->kept_map = map_cache_masked_reuses() > kept0;
        r->chunked = launch_kv_chunked_calls() > chunk0;
        r->packed = launch_kv_packed_calls() > pack0;
        r->widened = launch_kv_widened_calls() > widen0;
        if (r->status != r->ref_status) {
            snprintf(r->detail, sizeof r->detail, "interpreter: %s; %s: %s", r->ref_status ? rmsg : "ok",
                     attnc_backend_name(c->backend), r->status ? msg : "ok");
            kind = FC_STATUS;
        } else if (partial) {
            snprintf(r->detail, sizeof r->detail, "the failed call wrote O or LSE: %s", msg);
            kind = FC_PARTIAL;
        } else if (!r->status) {
            double *span = r->tensor_core && c->elem == 0 ? tf32_spans(spec, c, &ropts, &in) : NULL;
            kind = compare(c, attnc_kernel_is_softmax(ref), &in, o, l, ro, rl, span, r);
            free(span);
            if (kind == FC_SAME) kind = tiles_compare(spec, c, &opts, &in, r);
            if (kind == FC_SAME && c->grad && fcl_layout(c) != 4) kind /* no backward of a batch */ = grad_compare(spec, c, &opts, ref, params, np, &in, ro, rl, r);
        }
    }
    free(ro), free(rl), free(o), free(l);
    inputs_free(&in);
    attnc_kernel_free(ref);
    attnc_spec_free(spec);
    return finish(r, kind);
}

/* ---- case.txt ------------------------------------------------------------------ */

int fc_write(const FuzzCase *c, const char *path, const char *comment) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fprintf(f, "# %s\n", comment);
    fprintf(f, "variant %s\nbackend %s\ndata-seed %" PRIu64 "\n", c->variant, attnc_backend_name(c->backend), c->data_seed);
    fprintf(f, "shape B=%lld,H=%lld,Hkv=%lld,Lq=%lld,Lk=%lld,D=%lld,Dv=%lld\n", (long long)c->sz.B, (long long)c->sz.H,
            (long long)c->sz.Hkv, (long long)c->sz.Lq, (long long)c->sz.Lk, (long long)c->sz.D, (long long)c->sz.Dv);
    fprintf(f, "tile %dx%d\nflags %d\nno-lse %d\nthreads %d\n", c->tile_q, c->tile_k, c->flags, c->no_lse,
            c->threads > 0 ? c->threads : 1);
    if (c->warm_threads) fprintf(f, "warm-threads %d\n", c->warm_threads);
    if (c->elem || c->layout) fprintf(f, "elem %d\nlayout %d\n", c->elem, c->layout);
    if (c->grad) fprintf(f, "grad 1\n");
    for (int i = 0; i < c->nparams; i++) fprintf(f, "param %s=%s\n", c->params[i].name, c->params[i].text);
    for (int i = 0; i < c->ndefines; i++) fprintf(f, "define %s=%s\n", c->defines[i].name, c->defines[i].text);
    for (int i = 0; i < c->nranges; i++)
        fprintf(f, "int-range %s=%lld,%lld\n", c->ranges[i].name, (long long)c->ranges[i].lo, (long long)c->ranges[i].hi);
    return fclose(f);
}

static int named_line(const char *val, FcNamed *list, int *n) {
    if (*n == FC_MAX) return -1;
    FcNamed *x = &list[(*n)++];
    return sscanf(val, "%31[^=]=%47s", x->name, x->text) == 2 ? 0 : -1;
}

int fc_read(FuzzCase *c, const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[512], key[32], val[400];
    int bad = 0;
    while (!bad && fgets(line, sizeof line, f)) {
        if (line[0] == '#' || sscanf(line, "%31s %399s", key, val) != 2) continue;
        long long v[7];
        if (!strcmp(key, "variant")) snprintf(c->variant, sizeof c->variant, "%.47s", val);
        else if (!strcmp(key, "backend")) bad = !attnc_backend_parse(val, &c->backend);
        else if (!strcmp(key, "data-seed")) c->data_seed = strtoull(val, NULL, 10);
        else if (!strcmp(key, "shape")) {
            bad = sscanf(val, "B=%lld,H=%lld,Hkv=%lld,Lq=%lld,Lk=%lld,D=%lld,Dv=%lld", &v[0], &v[1], &v[2], &v[3], &v[4],
                         &v[5], &v[6]) != 7;
            c->sz = (attnc_sizes){v[0], v[1], v[2], v[3], v[4], v[5], v[6]};
        } else if (!strcmp(key, "tile")) bad = sscanf(val, "%dx%d", &c->tile_q, &c->tile_k) != 2;
        else if (!strcmp(key, "flags")) c->flags = atoi(val);
        else if (!strcmp(key, "no-lse")) c->no_lse = atoi(val);
        else if (!strcmp(key, "threads")) c->threads = atoi(val);
        else if (!strcmp(key, "warm-threads")) c->warm_threads = atoi(val);
        else if (!strcmp(key, "elem")) c->elem = atoi(val), bad = c->elem < 0 || c->elem > 2;
        else if (!strcmp(key, "layout")) c->layout = atoi(val), bad = c->layout < 0 || c->layout > 4;
        else if (!strcmp(key, "grad")) c->grad = atoi(val), bad = c->grad < 0 || c->grad > 1;
        else if (!strcmp(key, "param")) bad = named_line(val, c->params, &c->nparams);
        else if (!strcmp(key, "define")) bad = named_line(val, c->defines, &c->ndefines);
        else if (!strcmp(key, "int-range") && c->nranges < FC_MAX) {
            FcRange *r = &c->ranges[c->nranges++];
            bad = sscanf(val, "%31[^=]=%lld,%lld", r->name, &v[0], &v[1]) != 3;
            r->lo = v[0], r->hi = v[1];
        } else bad = 1;
    }
    fclose(f);
    return bad ? -1 : 0;
}
