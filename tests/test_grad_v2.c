/* test_grad_v2.c — attnc_kernel_backward's plumbing for version-2 attentions
 * (rotary, sinks, dots of rows; api/api_grad_v2.c) on every backend of the
 * build with a backward pass, the interpreter's included:
 *  - a sink's runtime error is the backward's, in the forward's words, and
 *    leaves every output (dQ, dK, dV, the tensor gradients) untouched;
 *  - a rotary position that fails only for masked keys (lazy, spec 5.3): no
 *    error, and the compiled backward (which rotates every row up front, then
 *    hands such a call to the interpreter) gives the interpreter's gradients;
 *    without the mask the same call is a runtime error everywhere;
 *  - gradients asked for one at a time (only dE, only dQ, only dsinks, no dO)
 *    equal the ones of the call that asks for all of them;
 *  - no keys at all with a sink: dsinks is the sum of dLSE, not 0.
 * The values themselves: test_grad_interp (finite differences) and
 * test_grad_backends (every backend against the interpreter). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attnc.h"
#include "check.h"
#include "support.h"

enum { NG = 5 }; /* dQ, dK, dV and up to two tensor gradients */

static const attnc_sizes SZ = {.B = 2, .H = 4, .Hkv = 2, .Lq = 6, .Lk = 9, .D = 6, .Dv = 3};

/* One call: inputs, the forward's outputs, dO and dLSE. */
typedef struct Call {
    attnc_sizes sz;
    float *q, *k, *v, *o, *lse, *dout, *dlse;
    attnc_tensor t[2];
    int nt;
} Call;

/* The gradients of one backward call and their sizes. */
typedef struct Grads {
    float *g[NG];
    size_t n[NG];
} Grads;

static const float SENTINEL = 12345.0f;

static void call_init(Call *c, const attnc_tensor *t, int nt) {
    const attnc_sizes *s = &SZ;
    size_t rows = (size_t)(s->B * s->H * s->Lq);
    c->sz = *s;
    c->q = random_floats(rows * (size_t)s->D);
    c->k = random_floats((size_t)(s->B * s->Hkv * s->Lk * s->D));
    c->v = random_floats((size_t)(s->B * s->Hkv * s->Lk * s->Dv));
    c->o = calloc(rows * (size_t)s->Dv + 1, sizeof(float));
    c->lse = calloc(rows + 1, sizeof(float));
    c->dout = random_floats(rows * (size_t)s->Dv);
    c->dlse = random_floats(rows);
    c->nt = nt;
    for (int i = 0; i < nt; i++) c->t[i] = t[i];
}

static void call_free(Call *c) {
    free(c->q), free(c->k), free(c->v), free(c->o), free(c->lse), free(c->dout), free(c->dlse);
}

static void grads_init(Grads *G, const Call *c) {
    const attnc_sizes *s = &c->sz;
    size_t n[NG] = {(size_t)(s->B * s->H * s->Lq * s->D), (size_t)(s->B * s->Hkv * s->Lk * s->D),
                    (size_t)(s->B * s->Hkv * s->Lk * s->Dv), 0, 0};
    for (int i = 0; i < c->nt; i++) {
        n[3 + i] = 1;
        for (int r = 0; r < c->t[i].rank; r++) n[3 + i] *= (size_t)c->t[i].shape[r];
    }
    for (int i = 0; i < NG; i++) {
        G->n[i] = n[i];
        G->g[i] = malloc(sizeof(float) * (n[i] + 1));
        for (size_t j = 0; j < n[i]; j++) G->g[i][j] = SENTINEL;
    }
}

static void grads_free(Grads *G) {
    for (int i = 0; i < NG; i++) free(G->g[i]);
}

/* The backward call asking for the gradients `want` (bit i: dQ, dK, dV, then the tensors'). */
static attnc_status backward(const attnc_kernel *k, const Call *c, Grads *G, unsigned want, int with_dout,
                             attnc_error *err) {
    attnc_args a = {c->sz, c->q, c->k, c->v, c->o, c->lse, NULL, 0, c->t, c->nt};
    attnc_tensor_grad td[2];
    int nd = 0;
    for (int i = 0; i < c->nt; i++)
        if (want & (8u << i)) td[nd++] = (attnc_tensor_grad){c->t[i].name, G->g[3 + i]};
    attnc_grad g = {.dout = with_dout ? c->dout : NULL, .dlse = c->dlse, .dq = want & 1 ? G->g[0] : NULL,
                    .dk = want & 2 ? G->g[1] : NULL, .dv = want & 4 ? G->g[2] : NULL, .dtensors = td,
                    .n_dtensors = nd};
    return attnc_kernel_backward(k, &a, NULL, &g, err);
}

static attnc_kernel *compile(const char *text, attnc_backend backend, attnc_error *err) {
    attnc_spec *spec = NULL;
    attnc_kernel *k = NULL;
    attnc_options opts = {.backend = backend, .threads = 2, .tile_q = 4, .tile_k = 4};
    if (!attnc_spec_from_string("v2.attn", text, strlen(text), &spec, err)) attnc_compile(spec, NULL, &opts, &k, err);
    attnc_spec_free(spec);
    return k;
}

static int untouched(const Grads *G) {
    for (int i = 0; i < NG; i++)
        for (size_t j = 0; j < G->n[i]; j++)
            if (G->g[i][j] != SENTINEL) return 0;
    return 1;
}

/* Gradient i of a against b within tol * (1 + max |b|). */
static int close_grads(const Grads *a, const Grads *b, int i, double tol) {
    double scale = 0, worst = 0;
    for (size_t j = 0; j < b->n[i]; j++) scale = fmax(scale, fabs(b->g[i][j]));
    for (size_t j = 0; j < b->n[i]; j++) worst = fmax(worst, fabs((double)a->g[i][j] - b->g[i][j]));
    return worst <= tol * (1 + scale);
}

static const attnc_backend BACKENDS[] = {ATTNC_BACKEND_INTERP, ATTNC_BACKEND_REFPLAN, ATTNC_BACKEND_TCC,
                                         ATTNC_BACKEND_LLVM};
enum { NBACKENDS = sizeof BACKENDS / sizeof BACKENDS[0] };

/* A sink reading t[q] out of range (Lq = 6 > 4): the forward's error, nothing written. */
static void test_sink_error(void) {
    static const char text[] = "attention bad { tensor t : float[4]; use causal; rotary; bias 0.1 * float(kv); "
                               "sink t[q]; }\n";
    float tdata[4] = {0.5f, -0.25f, 1.0f, 0.0f};
    attnc_tensor t = {"t", ATTNC_F32, 1, {4}, tdata};
    for (int b = 0; b < NBACKENDS; b++) {
        if (!attnc_backend_available(BACKENDS[b])) continue;
        attnc_error ferr = {0}, berr = {0};
        attnc_kernel *k = compile(text, BACKENDS[b], &ferr);
        CHECK(k != NULL, "%s: bad compiles (%s)", attnc_backend_name(BACKENDS[b]), ferr.message);
        if (!k) continue;
        Call c;
        call_init(&c, &t, 1);
        Grads G;
        grads_init(&G, &c);
        attnc_args a = {c.sz, c.q, c.k, c.v, c.o, c.lse, NULL, 0, c.t, 1};
        attnc_status fst = attnc_kernel_run(k, &a, &ferr);
        attnc_status bst = backward(k, &c, &G, 0xf, 1, &berr);
        int clean = untouched(&G);
        CHECK(fst == ATTNC_ERR_RUNTIME && bst == fst && !strcmp(ferr.message, berr.message) && clean,
              "%s: a sink's runtime error: forward %d '%s', backward %d '%s', outputs %s",
              attnc_backend_name(BACKENDS[b]), (int)fst, ferr.message, (int)bst, berr.message,
              clean ? "untouched" : "WRITTEN");
        grads_free(&G);
        call_free(&c);
        attnc_kernel_free(k);
    }
}

/* kvpos = pos[kv + 2]: out of range for the last two keys, which the mask drops (or not). */
static void test_lazy_position(int masked) {
    char text[300];
    snprintf(text, sizeof text, "attention lazy { tensor pos : int[Lk]; tensor E : float[Lk, D]; %s"
             "rotary(kvpos = pos[kv + 2]); bias dot(K, E[kv]); sink -0.5; }\n", masked ? "mask kv < Lk - 2; " : "");
    int32_t pos[9] = {3, 1, 4, 1, 5, 9, 2, 6, 5};
    float *e = random_floats((size_t)(SZ.Lk * SZ.D));
    attnc_tensor t[2] = {{"E", ATTNC_F32, 2, {SZ.Lk, SZ.D}, e}, {"pos", ATTNC_I32, 1, {SZ.Lk}, pos}};
    Call c;
    call_init(&c, t, 1); /* the gradients: E's only */
    c.t[1] = t[1], c.nt = 2;
    Grads want;
    grads_init(&want, &c);
    attnc_error err = {0};
    attnc_kernel *ref = compile(text, ATTNC_BACKEND_INTERP, &err);
    attnc_args a = {c.sz, c.q, c.k, c.v, c.o, c.lse, NULL, 0, c.t, 2};
    attnc_status rst = ref ? attnc_kernel_run(ref, &a, &err) : ATTNC_ERR_SPEC;
    if (!rst) rst = backward(ref, &c, &want, 0xf, 1, &err);
    CHECK(masked ? rst == ATTNC_OK : rst == ATTNC_ERR_RUNTIME, "lazy position (%s): the interpreter gives %d (%s)",
          masked ? "masked" : "unmasked", (int)rst, err.message);
    char ref_msg[sizeof err.message];
    snprintf(ref_msg, sizeof ref_msg, "%s", err.message);
    for (int b = 1; ref && b < NBACKENDS; b++) {
        if (!attnc_backend_available(BACKENDS[b])) continue;
        attnc_kernel *k = compile(text, BACKENDS[b], &err);
        Grads got;
        grads_init(&got, &c);
        attnc_status st = k ? backward(k, &c, &got, 0xf, 1, &err) : ATTNC_ERR_SPEC;
        int ok = st == rst && (st ? !strcmp(err.message, ref_msg) && untouched(&got) : 1);
        for (int i = 0; !st && i < 4; i++) ok &= close_grads(&got, &want, i, 1e-4);
        CHECK(ok, "lazy position (%s) on %s: status %d (%s), the interpreter's %d", masked ? "masked" : "unmasked",
              attnc_backend_name(BACKENDS[b]), (int)st, st ? err.message : "ok", (int)rst);
        grads_free(&got);
        attnc_kernel_free(k);
    }
    grads_free(&want);
    call_free(&c);
    attnc_kernel_free(ref);
    free(e);
}

/* Each gradient asked for alone (and without dO) equals the one asked for with all the others. */
static void test_one_at_a_time(void) {
    static const char text[] = "attention all { tensor E : float[2 * Lk, D]; tensor sinks : float[H]; use causal;\n"
                               "  rotary(dims = 4, interleaved = true); bias dot(Q, E[kv - q + Lk]) + dot(K, E[kv]);\n"
                               "  sink sinks[h]; }\n";
    float *e = random_floats((size_t)(2 * SZ.Lk * SZ.D)), *s = random_floats((size_t)SZ.H);
    attnc_tensor t[2] = {{"E", ATTNC_F32, 2, {2 * SZ.Lk, SZ.D}, e}, {"sinks", ATTNC_F32, 1, {SZ.H}, s}};
    for (int b = 0; b < NBACKENDS; b++) {
        if (!attnc_backend_available(BACKENDS[b])) continue;
        attnc_error err = {0};
        attnc_kernel *k = compile(text, BACKENDS[b], &err);
        CHECK(k != NULL && attnc_kernel_has_backward(k), "%s: all compiles with a backward pass (%s)",
              attnc_backend_name(BACKENDS[b]), err.message);
        if (!k) continue;
        Call c;
        call_init(&c, t, 2);
        attnc_args a = {c.sz, c.q, c.k, c.v, c.o, c.lse, NULL, 0, c.t, 2};
        for (int with_dout = 1; with_dout >= 0; with_dout--) {
            Grads all;
            grads_init(&all, &c);
            attnc_status st = attnc_kernel_run(k, &a, &err);
            if (!st) st = backward(k, &c, &all, 0x1f, with_dout, &err);
            CHECK(!st, "%s: backward of all (%s)", attnc_backend_name(BACKENDS[b]), err.message);
            for (int i = 0; !st && i < NG; i++) {
                Grads one;
                grads_init(&one, &c);
                attnc_status st1 = backward(k, &c, &one, 1u << i, with_dout, &err);
                int others = 1; /* the gradients not asked for are not written */
                for (int j = 0; j < NG; j++)
                    for (size_t x = 0; j != i && x < one.n[j]; x++) others &= one.g[j][x] == SENTINEL;
                CHECK(!st1 && close_grads(&one, &all, i, 1e-6) && others,
                      "%s: gradient %d alone%s: status %d (%s), %s", attnc_backend_name(BACKENDS[b]), i,
                      with_dout ? "" : " without dO", (int)st1, st1 ? err.message : "ok",
                      others ? "the others untouched" : "another one WRITTEN");
                grads_free(&one);
            }
            grads_free(&all);
        }
        call_free(&c);
        attnc_kernel_free(k);
    }
    free(e), free(s);
}

/* No keys (Lk = 0) and learned sinks: every row is O = 0, LSE = sinks[h], so dsinks[h] is the sum of dLSE over
 * the head's rows and everything else is 0 (spec 9.4, 9.5). */
static void test_no_keys(void) {
    static const char text[] = "attention nokeys { tensor sinks : float[H]; use causal_bottom_right; "
                               "sink sinks[h]; }\n";
    float sinks[4] = {0.5f, -1.0f, 2.0f, 0.0f};
    attnc_tensor t = {"sinks", ATTNC_F32, 1, {4}, sinks};
    for (int b = 0; b < NBACKENDS; b++) {
        if (!attnc_backend_available(BACKENDS[b])) continue;
        attnc_error err = {0};
        attnc_kernel *k = compile(text, BACKENDS[b], &err);
        if (!k) {
            CHECK(0, "%s: nokeys compiles (%s)", attnc_backend_name(BACKENDS[b]), err.message);
            continue;
        }
        Call c;
        call_init(&c, &t, 1);
        c.sz.Lk = 0;
        Grads G;
        grads_init(&G, &c);
        attnc_args a = {c.sz, c.q, c.k, c.v, c.o, c.lse, NULL, 0, c.t, 1};
        attnc_status st = attnc_kernel_run(k, &a, &err);
        if (!st) st = backward(k, &c, &G, 0xf, 1, &err);
        double want[4] = {0};
        for (int64_t r = 0; r < c.sz.B * c.sz.H * c.sz.Lq; r++) want[(r / c.sz.Lq) % c.sz.H] += c.dlse[r];
        int ok = !st;
        for (int h = 0; ok && h < 4; h++) ok &= fabs(G.g[3][h] - want[h]) <= 1e-5 * (1 + fabs(want[h]));
        for (size_t j = 0; ok && j < G.n[0]; j++) ok &= G.g[0][j] == 0;
        CHECK(ok, "%s: no keys: status %d (%s), dsinks[0] = %g (want %g)", attnc_backend_name(BACKENDS[b]), (int)st,
              st ? err.message : "ok", (double)G.g[3][0], want[0]);
        grads_free(&G);
        call_free(&c);
        attnc_kernel_free(k);
    }
}

int main(void) {
    rng_seed(14);
    test_sink_error();
    test_lazy_position(1);
    test_lazy_position(0);
    test_one_at_a_time();
    test_no_keys();
    printf("test_grad_v2: %d failure%s\n", failures, failures == 1 ? "" : "s");
    return failures != 0;
}
