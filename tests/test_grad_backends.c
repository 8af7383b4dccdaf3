/* test_grad_backends.c — a compiled backend's backward pass against the
 * reference backward, on every attention of an examples file (*.attn).
 *
 *   test_grad_backends FILE.attn [--backend NAME] [--elem f32|f16|bf16] [--shape SIZES] [--tile N]
 *                                [--layout bhld|blhd]
 *
 * Per attention: the example-args call (--shape replaces some of its sizes:
 * D not a power of two, Lq != Lk, GQA, shapes with fully masked rows) with
 * tiles of N x N (default 16: several tiles per call), Q, K and V in the
 * element type `--elem` (and, with --layout blhd, Q, K, V, dQ, dK and dV
 * strided as [B, L, H, D]).  O and LSE come from the reference kernel's
 * forward; then dQ, dK, dV and the gradient of every float tensor from the
 * reference backward (the interpreter's when it has one, else refplan's,
 * both float64) and from the backend's (default tcc), through
 * attnc_kernel_backward, for dO and dLSE together and for dLSE alone.  Each
 * gradient tensor must match within 2e-3 * (1 + max |want|) of that tensor,
 * which a missing factor or term exceeds (NaN must match NaN, infinities
 * match exactly: a `weight` whose values sum below 0 has LSE = NaN).  Determinism: the backend's
 * backward run twice gives the same bits, with 1 thread and with 3.
 * Exit 0 when all pass. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attnc.h"
#include "half.h"
#include "support.h"

enum { NGRAD = 3 + MAX_ITEMS }; /* dQ, dK, dV, then the tensors' gradients */

static int blhd; /* --layout blhd */

typedef struct Call {
    const char *name;
    ExampleArgs ea;
    attnc_args args;
    attnc_layouts layouts;
    attnc_param params[MAX_ITEMS];
    attnc_tensor tensors[MAX_ITEMS];
    int nt;
    void *q, *k, *v; /* in the element type */
    float *o, *lse, *dout, *dlse;
} Call;

/* Every gradient of one backward call: dQ, dK, dV and each float tensor's. */
typedef struct Grads {
    float *g[NGRAD];
    size_t n[NGRAD];
    const char *what[NGRAD];
    int count;
} Grads;

static size_t elements(const attnc_tensor *t) {
    size_t n = 1;
    for (int r = 0; r < t->rank; r++) n *= (size_t)t->shape[r];
    return n;
}

/* n random values in [-1, 1) in element type elem (16-bit data for f16 / bf16). */
static void *random_elems(size_t n, attnc_elem elem) {
    float *f = random_floats(n);
    if (elem == ATTNC_ELEM_F32 || !f) return f;
    uint16_t *h = malloc(sizeof(uint16_t) * (n + 1));
    for (size_t i = 0; h && i < n; i++) h[i] = elem == ATTNC_ELEM_F16 ? attnc_f32_to_f16(f[i]) : attnc_f32_to_bf16(f[i]);
    free(f);
    return h;
}

static int grads_alloc(Grads *G, const Call *c) {
    const attnc_sizes *s = &c->ea.sz;
    memset(G, 0, sizeof *G);
    G->n[0] = (size_t)(s->B * s->H * s->Lq * s->D);
    G->n[1] = (size_t)(s->B * s->Hkv * s->Lk * s->D);
    G->n[2] = (size_t)(s->B * s->Hkv * s->Lk * s->Dv);
    G->what[0] = "dQ", G->what[1] = "dK", G->what[2] = "dV";
    G->count = 3;
    for (int i = 0; i < c->nt; i++)
        if (c->tensors[i].dtype == ATTNC_F32) {
            G->n[G->count] = elements(&c->tensors[i]);
            G->what[G->count++] = c->tensors[i].name;
        }
    for (int i = 0; i < G->count; i++)
        if (!(G->g[i] = calloc(G->n[i] + 1, sizeof(float)))) return 0;
    return 1;
}

static void grads_free(Grads *G) {
    for (int i = 0; i < G->count; i++) free(G->g[i]);
}

/* The backward pass of k into G; with_dout 0: dLSE alone. */
static attnc_status backward(const attnc_kernel *k, const Call *c, int with_dout, Grads *G, attnc_error *err) {
    attnc_tensor_grad td[MAX_ITEMS];
    int nd = 0;
    for (int i = 3; i < G->count; i++) td[nd++] = (attnc_tensor_grad){G->what[i], G->g[i]};
    attnc_grad g = {.dout = with_dout ? c->dout : NULL, .dlse = c->dlse, .dq = G->g[0], .dk = G->g[1], .dv = G->g[2],
                    .dtensors = td, .n_dtensors = nd};
    /* the gradients laid out as their tensors (float32) */
    memcpy(g.dq_layout.stride, c->layouts.q.stride, sizeof g.dq_layout.stride);
    memcpy(g.dk_layout.stride, c->layouts.k.stride, sizeof g.dk_layout.stride);
    memcpy(g.dv_layout.stride, c->layouts.v.stride, sizeof g.dv_layout.stride);
    return attnc_kernel_backward(k, &c->args, &c->layouts, &g, err);
}

/* got against want, tensor by tensor; NULL when all agree. */
static const char *compare(const Grads *got, const Grads *want, double *worst, char *buf, size_t n) {
    for (int t = 0; t < want->count; t++) {
        double scale = 0;
        for (size_t i = 0; i < want->n[t]; i++)
            if (isfinite(want->g[t][i])) scale = fmax(scale, fabs(want->g[t][i]));
        double tol = 2e-3 * (1 + scale);
        for (size_t i = 0; i < want->n[t]; i++) {
            float w = want->g[t][i], g = got->g[t][i];
            if (isnan(w) && isnan(g)) continue; /* NaN where the reference has NaN (a weight's LSE of a negative sum) */
            if (isinf(w) && g == w) continue;
            double d = fabs((double)g - w);
            if (!(d <= tol)) {
                snprintf(buf, n, "%s[%zu] = %.7g, the reference gives %.7g (tolerance %.3g)", want->what[t], i,
                         got->g[t][i], want->g[t][i], tol);
                return buf;
            }
            *worst = fmax(*worst, d / (1 + scale));
        }
    }
    return NULL;
}

static int same_bits(const Grads *a, const Grads *b) {
    for (int t = 0; t < a->count; t++)
        if (memcmp(a->g[t], b->g[t], sizeof(float) * a->n[t])) return 0;
    return 1;
}

static attnc_kernel *compile(const attnc_spec *spec, const char *name, attnc_backend backend, int threads, int tile,
                             attnc_error *err) {
    attnc_options opts = {.backend = backend, .threads = threads, .tile_q = tile, .tile_k = tile};
    attnc_kernel *k = NULL;
    if (attnc_compile(spec, name, &opts, &k, err)) return NULL;
    return k;
}

/* The backend's backward (threads 1 and 3, each twice) against the reference's. */
static const char *check_backend(const attnc_spec *spec, const Call *c, const attnc_kernel *ref, attnc_backend backend,
                                 int tile, double *worst, char *buf, size_t n) {
    const char *bad = NULL;
    attnc_error err = {0};
    for (int with_dout = 1; with_dout >= 0 && !bad; with_dout--) {
        Grads want, got[2];
        int ok = grads_alloc(&want, c) && grads_alloc(&got[0], c) && grads_alloc(&got[1], c);
        if (!ok) bad = "out of memory";
        if (!bad && backward(ref, c, with_dout, &want, &err)) {
            snprintf(buf, n, "reference backward: %.200s", err.message);
            bad = buf;
        }
        for (int threads = 1; threads <= 3 && !bad; threads += 2) {
            attnc_kernel *k = compile(spec, c->name, backend, threads, tile, &err);
            if (!k || !attnc_kernel_has_backward(k)) {
                snprintf(buf, n, "%s: %.200s", k ? "no backward pass" : "compile", k ? "" : err.message);
                bad = buf;
            }
            for (int rep = 0; rep < 2 && !bad; rep++)
                if (backward(k, c, with_dout, &got[rep], &err)) {
                    snprintf(buf, n, "backward: %.200s", err.message);
                    bad = buf;
                }
            if (!bad) bad = compare(&got[0], &want, worst, buf, n);
            if (!bad && !same_bits(&got[0], &got[1])) {
                snprintf(buf, n, "two runs with %d thread%s differ", threads, threads == 1 ? "" : "s");
                bad = buf;
            }
            attnc_kernel_free(k);
        }
        if (bad && !with_dout && bad == buf) {
            char more[400];
            snprintf(more, sizeof more, "dLSE alone: %.380s", buf);
            snprintf(buf, n, "%s", more);
        }
        grads_free(&want);
        grads_free(&got[0]);
        grads_free(&got[1]);
    }
    return bad;
}

static void call_free(Call *c) {
    for (int i = 0; i < c->nt; i++) free((void *)c->tensors[i].data);
    free(c->q), free(c->k), free(c->v), free(c->o), free(c->lse), free(c->dout), free(c->dlse);
}

/* The reference kernel and the call's inputs, O and LSE; NULL with why. */
static attnc_kernel *prepare(const attnc_spec *spec, Call *c, attnc_elem elem, int tile, char *buf, size_t n) {
    attnc_error err = {0};
    attnc_kernel *ref = compile(spec, c->name, ATTNC_BACKEND_INTERP, 1, tile, &err);
    if (ref && !attnc_kernel_has_backward(ref)) { /* the interpreter's backward not merged yet: refplan's */
        attnc_kernel_free(ref);
        ref = compile(spec, c->name, ATTNC_BACKEND_REFPLAN, 1, tile, &err);
    }
    const char *why = NULL;
    if (!ref) snprintf(buf, n, "reference compile: %.200s", err.message);
    else if (make_params(ref, &c->ea, c->params, &why) < 0 ||
             (c->nt = make_tensors(ref, &c->ea, c->params, c->ea.nparams, c->tensors, &why)) < 0) {
        snprintf(buf, n, "%s", why);
        c->nt = 0;
        attnc_kernel_free(ref);
        return NULL;
    }
    if (!ref) return NULL;
    const attnc_sizes *s = &c->ea.sz;
    size_t rows = (size_t)(s->B * s->H * s->Lq);
    c->q = random_elems(rows * (size_t)s->D, elem);
    c->k = random_elems((size_t)(s->B * s->Hkv * s->Lk * s->D), elem);
    c->v = random_elems((size_t)(s->B * s->Hkv * s->Lk * s->Dv), elem);
    c->o = malloc(sizeof(float) * (rows * (size_t)s->Dv + 1));
    c->lse = malloc(sizeof(float) * (rows + 1));
    c->dout = random_floats(rows * (size_t)s->Dv);
    c->dlse = random_floats(rows);
    memset(&c->layouts, 0, sizeof c->layouts);
    c->layouts.q.elem = c->layouts.k.elem = c->layouts.v.elem = elem;
    if (blhd) { /* the same buffers read as [B, L, H, D] */
        const int64_t qs[4] = {s->Lq * s->H * s->D, s->D, s->H * s->D, 1};
        const int64_t ks[4] = {s->Lk * s->Hkv * s->D, s->D, s->Hkv * s->D, 1};
        const int64_t vs[4] = {s->Lk * s->Hkv * s->Dv, s->Dv, s->Hkv * s->Dv, 1};
        memcpy(c->layouts.q.stride, qs, sizeof qs);
        memcpy(c->layouts.k.stride, ks, sizeof ks);
        memcpy(c->layouts.v.stride, vs, sizeof vs);
    }
    c->args = (attnc_args){*s, c->q, c->k, c->v, c->o, c->lse, c->params, c->ea.nparams, c->tensors, c->nt};
    if (attnc_kernel_run_layout(ref, &c->args, &c->layouts, &err)) {
        snprintf(buf, n, "reference forward: %.200s", err.message);
        attnc_kernel_free(ref);
        return NULL;
    }
    /* A known limitation of the compiled backward (runtime/launch_grad.c):
     * a `weight` row whose weights sum below 0 has LSE = NaN, from which
     * the driver cannot recover the sum its dLSE term divides by (the
     * interpreter recomputes it).  Such rows get no dLSE here. */
    for (size_t r = 0; r < rows; r++)
        if (isnan(c->lse[r])) c->dlse[r] = 0.0f;
    return ref;
}

static int run_one(const attnc_spec *spec, const char *text, const char *name, int only_one, attnc_backend backend,
                   attnc_elem elem, const char *shape, int tile) {
    char line[1024], buf[600];
    Call c;
    memset(&c, 0, sizeof c);
    c.name = name;
    if (!find_args_line(text, name, only_one, line, sizeof line) || !parse_args(line, &c.ea)) {
        printf("FAIL %s: no example-args line, or a malformed one\n", name);
        return 1;
    }
    if (shape) {
        char sizes[256];
        snprintf(sizes, sizeof sizes, "%s", shape);
        if (!parse_shape_into(sizes, &c.ea.sz)) {
            printf("FAIL %s: cannot parse --shape '%s'\n", name, shape);
            return 1;
        }
    }
    attnc_kernel *ref = prepare(spec, &c, elem, tile, buf, sizeof buf);
    double worst = 0;
    const char *bad = ref ? check_backend(spec, &c, ref, backend, tile, &worst, buf, sizeof buf) : buf;
    if (bad) printf("FAIL %s: %s\n", name, bad);
    else
        printf("ok %s: %s backward vs %s: max error %.3g of (1 + max |gradient|)\n", name, attnc_backend_name(backend),
               attnc_backend_name(attnc_kernel_backend(ref)), worst);
    attnc_kernel_free(ref);
    call_free(&c);
    return bad != NULL;
}

int main(int argc, char **argv) {
    attnc_backend backend = ATTNC_BACKEND_TCC;
    attnc_elem elem = ATTNC_ELEM_F32;
    const char *shape = NULL;
    int tile = 16;
    for (int i = 2; i + 1 < argc; i += 2) {
        const char *opt = argv[i], *val = argv[i + 1];
        if (!strcmp(opt, "--shape")) shape = val;
        else if (!strcmp(opt, "--backend") && attnc_backend_parse(val, &backend)) continue;
        else if (!strcmp(opt, "--tile") && (tile = atoi(val)) > 0) continue;
        else if (!strcmp(opt, "--elem") && !strcmp(val, "f32")) elem = ATTNC_ELEM_F32;
        else if (!strcmp(opt, "--layout") && (!strcmp(val, "bhld") || !strcmp(val, "blhd"))) blhd = val[1] == 'l';
        else if (!strcmp(opt, "--elem") && !strcmp(val, "f16")) elem = ATTNC_ELEM_F16;
        else if (!strcmp(opt, "--elem") && !strcmp(val, "bf16")) elem = ATTNC_ELEM_BF16;
        else argc = 0; /* anything else is a usage error */
    }
    if (argc < 2 || argc % 2 != 0) {
        fprintf(stderr, "usage: test_grad_backends FILE.attn [--backend NAME] [--elem f32|f16|bf16] [--shape SIZES] "
                        "[--tile N] [--layout bhld|blhd]\n");
        return 2;
    }
    size_t len;
    char *text = read_file(argv[1], &len);
    attnc_spec *spec = NULL;
    attnc_error err = {0};
    if (!text || attnc_spec_from_string(argv[1], text, len, &spec, &err)) {
        printf("FAIL %s: %s\n", argv[1], text ? err.message : "cannot read it");
        attnc_spec_free(spec);
        free(text);
        return 1;
    }
    rng_seed(12);
    int n = attnc_spec_variant_count(spec), fails = 0;
    for (int i = 0; i < n; i++)
        fails += run_one(spec, text, attnc_spec_variant_name(spec, i), n == 1, backend, elem, shape, tile);
    attnc_spec_free(spec);
    free(text);
    printf("%d passed, %d failed\n", n - fails, fails);
    return fails != 0;
}
