/* test_llvm_lazy.c — the LLVM kernel's versions (llvm_lower.h's
 * LLVM_VARIANTS: by element types, prefill or decode row blocks) are built on
 * first use, once, white box through llvm_versions_built.
 *
 * A fresh kernel (a spec no other test compiles; the cache is per process)
 * builds one version when compiled (float32 prefill).  Then THREADS threads,
 * released together by a barrier, run it at once in a version it does not
 * have yet: decode shapes (narrow row blocks), then prefill with bf16 Q, K
 * and V.  Each time exactly one more version is built (a second build, or a
 * call that ran a half-built version, would show here: the build takes tens
 * of milliseconds, so every thread arrives while it runs), and every
 * thread's O and LSE agree with the interpreter's on the same inputs.  Run
 * again, freed and compiled again (the cache), nothing more is built.
 * The backward kernel (llvm_grad.c) likewise: none of the forward calls
 * builds it; THREADS backward calls at once build it exactly once, and
 * every one of them succeeds (tests/test_grad_backends.c checks its values).
 * Exit 0 when everything passes, 77 when the build has no LLVM backend. */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attnc.h"
#include "check.h"
#include "llvm_lower.h"

enum { THREADS = 4 };

static const char *const SPEC = "attention lazy_versions { use causal; bias float(q - kv) * 0.03125; }";

/* One call's inputs and outputs; bf16: Q, K and V stored as bf16. */
typedef struct Call {
    attnc_sizes sz;
    int bf16;
    void *q, *k, *v;
    float *o, *lse;
} Call;

static uint64_t rng = 88172645463325252ull;
static float next_value(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* n values as floats, or as bf16 (their high halves: exact bf16 values). */
static void *values(size_t n, int bf16) {
    if (!bf16) {
        float *x = malloc(sizeof *x * n);
        for (size_t i = 0; x && i < n; i++) x[i] = next_value();
        return x;
    }
    uint16_t *x = malloc(sizeof *x * n);
    for (size_t i = 0; x && i < n; i++) {
        float f = next_value();
        uint32_t bits;
        memcpy(&bits, &f, 4);
        x[i] = (uint16_t)(bits >> 16);
    }
    return x;
}

static void call_init(Call *c, attnc_sizes sz, int bf16) {
    c->sz = sz;
    c->bf16 = bf16;
    c->q = values((size_t)(sz.B * sz.H * sz.Lq * sz.D), bf16);
    c->k = values((size_t)(sz.B * sz.Hkv * sz.Lk * sz.D), bf16);
    c->v = values((size_t)(sz.B * sz.Hkv * sz.Lk * sz.Dv), bf16);
    c->o = calloc((size_t)(sz.B * sz.H * sz.Lq * sz.Dv), sizeof(float));
    c->lse = calloc((size_t)(sz.B * sz.H * sz.Lq), sizeof(float));
    if (!c->q || !c->k || !c->v || !c->o || !c->lse) abort();
}

static void call_free(Call *c) {
    free(c->q), free(c->k), free(c->v), free(c->o), free(c->lse);
}

static attnc_status run(const attnc_kernel *k, Call *c, attnc_error *err) {
    attnc_args a = {c->sz, c->q, c->k, c->v, c->o, c->lse, NULL, 0, NULL, 0};
    attnc_layouts L;
    memset(&L, 0, sizeof L);
    L.q.elem = L.k.elem = L.v.elem = c->bf16 ? ATTNC_ELEM_BF16 : ATTNC_ELEM_F32;
    return attnc_kernel_run_layout(k, &a, &L, err);
}

typedef struct Worker {
    const attnc_kernel *k;
    pthread_barrier_t *go;
    Call call;
    int backward; /* run the backward pass of the call (its O and LSE computed before) */
    attnc_status st;
    attnc_error err;
} Worker;

static void *work(void *arg) {
    Worker *w = arg;
    pthread_barrier_wait(w->go);
    if (!w->backward) {
        w->st = run(w->k, &w->call, &w->err);
        return NULL;
    }
    Call *c = &w->call;
    attnc_args a = {c->sz, c->q, c->k, c->v, c->o, c->lse, NULL, 0, NULL, 0};
    attnc_layouts L;
    memset(&L, 0, sizeof L);
    L.q.elem = L.k.elem = L.v.elem = c->bf16 ? ATTNC_ELEM_BF16 : ATTNC_ELEM_F32;
    size_t nq = (size_t)(c->sz.B * c->sz.H * c->sz.Lq * c->sz.D);
    size_t nk = (size_t)(c->sz.B * c->sz.Hkv * c->sz.Lk * c->sz.D);
    size_t nv = (size_t)(c->sz.B * c->sz.Hkv * c->sz.Lk * c->sz.Dv);
    attnc_grad g;
    memset(&g, 0, sizeof g);
    g.dout = c->o; /* any dO will do */
    g.dq = calloc(nq + 1, sizeof(float)), g.dk = calloc(nk + 1, sizeof(float)), g.dv = calloc(nv + 1, sizeof(float));
    w->st = g.dq && g.dk && g.dv ? attnc_kernel_backward(w->k, &a, &L, &g, &w->err) : ATTNC_ERR_NOMEM;
    free(g.dq), free(g.dk), free(g.dv);
    return NULL;
}

/* THREADS calls of shape sz at once on kernel k, each checked against the
 * interpreter's kernel ref; `built` more versions must have been built. */
static void at_once(const attnc_kernel *k, const attnc_kernel *ref, attnc_sizes sz, int bf16, unsigned long built,
                    const char *what) {
    Worker w[THREADS];
    pthread_t th[THREADS];
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, THREADS);
    int failed = failures;
    unsigned long before = llvm_versions_built();
    for (int i = 0; i < THREADS; i++) {
        w[i].k = k;
        w[i].go = &go;
        w[i].backward = 0;
        call_init(&w[i].call, sz, bf16);
        pthread_create(&th[i], NULL, work, &w[i]);
    }
    for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
    pthread_barrier_destroy(&go);
    unsigned long now = llvm_versions_built();
    CHECK(now - before == built, "%s: %lu versions built by %d threads at once, expected %lu", what, now - before,
          THREADS, built);
    size_t no = (size_t)(sz.B * sz.H * sz.Lq * sz.Dv), nl = (size_t)(sz.B * sz.H * sz.Lq);
    for (int i = 0; i < THREADS; i++) {
        CHECK(w[i].st == ATTNC_OK, "%s: thread %d: %s", what, i, w[i].err.message);
        Call want = w[i].call;
        want.o = calloc(no, sizeof(float));
        want.lse = calloc(nl, sizeof(float));
        attnc_error err = {0};
        CHECK(want.o && want.lse && run(ref, &want, &err) == ATTNC_OK, "%s: interpreter: %s", what, err.message);
        double worst = 0;
        for (size_t j = 0; want.o && j < no; j++) worst = fmax(worst, fabs((double)want.o[j] - w[i].call.o[j]));
        for (size_t j = 0; want.lse && j < nl; j++)
            worst = fmax(worst, fabs((double)want.lse[j] - w[i].call.lse[j]));
        CHECK(worst < 2e-4, "%s: thread %d differs from the interpreter by %g", what, i, worst);
        free(want.o), free(want.lse);
        call_free(&w[i].call);
    }
    if (failures == failed) printf("ok %s: %d threads at once, %lu version(s) built\n", what, THREADS, now - before);
}

/* THREADS backward calls of shape sz at once on kernel k (O and LSE from
 * its forward first); `built` more kernels must have been built. */
static void grad_at_once(const attnc_kernel *k, attnc_sizes sz, int bf16, unsigned long built, const char *what) {
    Worker w[THREADS];
    pthread_t th[THREADS];
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, THREADS);
    int failed = failures;
    for (int i = 0; i < THREADS; i++) {
        w[i].k = k;
        w[i].go = &go;
        w[i].backward = 1;
        call_init(&w[i].call, sz, bf16);
        CHECK(run(k, &w[i].call, &w[i].err) == ATTNC_OK, "%s: forward: %s", what, w[i].err.message);
    }
    unsigned long before = llvm_versions_built();
    for (int i = 0; i < THREADS; i++) pthread_create(&th[i], NULL, work, &w[i]);
    for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
    pthread_barrier_destroy(&go);
    unsigned long now = llvm_versions_built();
    CHECK(now - before == built, "%s: %lu kernels built by %d threads at once, expected %lu", what, now - before,
          THREADS, built);
    for (int i = 0; i < THREADS; i++) {
        CHECK(w[i].st == ATTNC_OK, "%s: thread %d: %s", what, i, w[i].err.message);
        call_free(&w[i].call);
    }
    if (failures == failed) printf("ok %s: %d threads at once, %lu kernel(s) built\n", what, THREADS, now - before);
}

static attnc_kernel *compile(const attnc_spec *spec, attnc_backend backend) {
    attnc_options o = {backend, 1, NULL, 0, 0, 0, 0};
    attnc_kernel *k = NULL;
    attnc_error err = {0};
    CHECK(attnc_compile(spec, NULL, &o, &k, &err) == ATTNC_OK, "compile: %s", err.message);
    return k;
}

int main(void) {
    if (!attnc_backend_available(ATTNC_BACKEND_LLVM)) {
        printf("skipped: this build has no LLVM backend\n");
        return 77;
    }
    attnc_spec *spec = NULL;
    attnc_error err = {0};
    if (attnc_spec_from_string("lazy.attn", SPEC, strlen(SPEC), &spec, &err)) {
        printf("FAIL: %s\n", err.message);
        return 1;
    }
    attnc_kernel *ref = compile(spec, ATTNC_BACKEND_INTERP);
    unsigned long before = llvm_versions_built();
    attnc_kernel *k = compile(spec, ATTNC_BACKEND_LLVM);
    CHECK(llvm_versions_built() - before == 1, "compiling built %lu versions, expected 1 (float32 prefill)",
          llvm_versions_built() - before);
    if (!k || !ref) return 1;
    attnc_sizes decode = {1, 8, 2, 1, 300, 64, 64}, prefill = {1, 2, 2, 100, 120, 32, 32};
    at_once(k, ref, prefill, 0, 0, "float32 prefill (built by compiling)");
    at_once(k, ref, decode, 0, 1, "float32 decode, first use");
    at_once(k, ref, prefill, 1, 1, "bf16 prefill, first use");
    at_once(k, ref, decode, 0, 0, "float32 decode again");
    grad_at_once(k, prefill, 1, 1, "backward, first use");
    grad_at_once(k, prefill, 0, 0, "backward again");
    /* compile, free, compile again: the cached kernel keeps its versions */
    attnc_kernel_free(k);
    before = llvm_versions_built();
    k = compile(spec, ATTNC_BACKEND_LLVM);
    CHECK(llvm_versions_built() == before, "compiling again built %lu versions", llvm_versions_built() - before);
    if (k) at_once(k, ref, prefill, 1, 0, "bf16 prefill after compiling again");
    attnc_kernel_free(k);
    attnc_kernel_free(ref);
    attnc_spec_free(spec);
    if (failures) printf("%d failure(s)\n", failures);
    return failures != 0;
}
