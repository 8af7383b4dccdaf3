/* test_cuda_device.c — the `cuda` backend on a GPU through the C API
 * (tests/cuda_rt.cmake: `cuda/gpu-rt/api`); exit 77 (skipped) where the
 * backend is not available (no driver, device or NVRTC).
 *
 *   test_cuda_device EXAMPLES_DIR CGEN_VARIANTS.attn
 *
 * causal_top_left in bf16 with GQA and odd lengths (B = 2, H = 8, Hkv = 2,
 * Lq = 131, Lk = 168, D = Dv = 64: the tensor-core kernel), and in float32
 * at D = 24 (the scaffold): attnc_kernel_run_layout (host pointers, copied)
 * and attnc_kernel_run_cuda (device pointers from attnc_cuda_alloc, the
 * default stream) must give the same O and LSE bit for bit, and both agree
 * with the interpreter (bf16: 2^-7 relative to 1 + |O|; f32: 1e-4).  Then
 * div_zero (tests/cgen/variants.attn), whose elements raise a runtime
 * error: both paths must fail with the interpreter's message, and the host
 * path must leave O untouched. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attnc.h"
#include "half.h"

static attnc_kernel *compile(const char *file, const char *variant, attnc_backend b) {
    attnc_spec *spec = NULL;
    attnc_kernel *k = NULL;
    attnc_error err = {0};
    attnc_options o = {.backend = b};
    if (attnc_spec_from_file(file, &spec, &err) || attnc_compile(spec, variant, &o, &k, &err))
        printf("FAIL compile %s (%s): %s\n", variant, attnc_backend_name(b), err.message);
    attnc_spec_free(spec);
    return k;
}

static void *elems(size_t n, int bf16, unsigned seed) {
    uint16_t *h = malloc(2 * n + 4);
    float *f = malloc(4 * n + 4);
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        float x = (float)(seed >> 8) / 8388608.0f - 1.0f;
        f[i] = x;
        h[i] = attnc_f32_to_bf16(x);
    }
    if (bf16) free(f);
    else free(h);
    return bf16 ? (void *)h : (void *)f;
}

typedef struct Bufs {
    attnc_args a;
    attnc_layouts lay;
    size_t n[5];
} Bufs;

/* host inputs of sizes sz, O (f32) and LSE zeroed */
static void make(Bufs *b, attnc_sizes sz, int bf16) {
    memset(b, 0, sizeof *b);
    b->a.sizes = sz;
    size_t eb = bf16 ? 2 : 4;
    b->n[0] = (size_t)(sz.B * sz.H * sz.Lq * sz.D) * eb, b->n[1] = (size_t)(sz.B * sz.Hkv * sz.Lk * sz.D) * eb;
    b->n[2] = (size_t)(sz.B * sz.Hkv * sz.Lk * sz.Dv) * eb, b->n[3] = (size_t)(sz.B * sz.H * sz.Lq * sz.Dv) * 4;
    b->n[4] = (size_t)(sz.B * sz.H * sz.Lq) * 4;
    b->a.q = elems(b->n[0] / eb, bf16, 1), b->a.k = elems(b->n[1] / eb, bf16, 2), b->a.v = elems(b->n[2] / eb, bf16, 3);
    b->a.o = calloc(1, b->n[3] + 4), b->a.lse = calloc(1, b->n[4] + 4);
    attnc_elem e = bf16 ? ATTNC_ELEM_BF16 : ATTNC_ELEM_F32;
    b->lay.q.elem = b->lay.k.elem = b->lay.v.elem = e;
}

static void release(Bufs *b) {
    free((void *)b->a.q), free((void *)b->a.k), free((void *)b->a.v), free(b->a.o), free(b->a.lse);
}

/* The call on device pointers, O and LSE copied back into got (host). */
static attnc_status run_device(const attnc_kernel *k, const Bufs *h, float *o, float *lse, attnc_error *err) {
    void *d[5] = {0};
    const void *from[3] = {h->a.q, h->a.k, h->a.v};
    attnc_status st = ATTNC_OK;
    for (int i = 0; i < 5 && !st; i++) st = attnc_cuda_alloc(h->n[i], &d[i], err);
    for (int i = 0; i < 3 && !st; i++) st = attnc_cuda_copy(d[i], from[i], h->n[i], 1, err);
    attnc_args a = h->a;
    a.q = d[0], a.k = d[1], a.v = d[2], a.o = d[3], a.lse = d[4];
    if (!st) st = attnc_kernel_run_cuda(k, &a, &h->lay, NULL, err);
    if (!st) st = attnc_cuda_copy(o, d[3], h->n[3], 0, err);
    if (!st) st = attnc_cuda_copy(lse, d[4], h->n[4], 0, err);
    for (int i = 0; i < 5; i++) attnc_cuda_free(d[i]);
    return st;
}

static int agree(const Bufs *h, attnc_sizes sz, int bf16, const char *file) {
    attnc_kernel *k = compile(file, "causal_top_left", ATTNC_BACKEND_CUDA);
    attnc_kernel *ref = compile(file, "causal_top_left", ATTNC_BACKEND_INTERP);
    if (!k || !ref) return 1;
    attnc_error err = {0};
    size_t no = h->n[3] / 4, nl = h->n[4] / 4;
    float *o2 = malloc(h->n[3] + 4), *l2 = malloc(h->n[4] + 4), *o3 = malloc(h->n[3] + 4), *l3 = malloc(h->n[4] + 4);
    int fail = 0;
    if (attnc_kernel_run_layout(k, &h->a, &h->lay, &err)) printf("FAIL host pointers: %s\n", err.message), fail = 1;
    if (!fail && run_device(k, h, o2, l2, &err)) printf("FAIL device pointers: %s\n", err.message), fail = 1;
    attnc_args r = h->a;
    r.o = o3, r.lse = l3;
    if (!fail && attnc_kernel_run_layout(ref, &r, &h->lay, &err)) printf("FAIL interp: %s\n", err.message), fail = 1;
    double tol = bf16 ? 1.0 / 128 : 1e-4, worst = 0;
    for (size_t i = 0; !fail && i < no; i++) {
        if (memcmp(&h->a.o[i], &o2[i], 4)) printf("FAIL O[%zu]: host %g, device %g\n", i, h->a.o[i], o2[i]), fail = 1;
        double d = fabs((double)h->a.o[i] - o3[i]) / (1 + fabs(o3[i]));
        if (!(d <= tol)) printf("FAIL O[%zu] = %g, the interpreter's %g\n", i, h->a.o[i], o3[i]), fail = 1;
        worst = d > worst ? d : worst;
    }
    for (size_t i = 0; !fail && i < nl; i++)
        if (memcmp(&h->a.lse[i], &l2[i], 4) || !(fabs((double)h->a.lse[i] - l3[i]) <= tol * (1 + fabs(l3[i]))))
            printf("FAIL LSE[%zu]: host %g, device %g, interp %g\n", i, h->a.lse[i], l2[i], l3[i]), fail = 1;
    printf("%s D=%lld: host == device, max rel error vs interp %.3g%s\n", bf16 ? "bf16" : "f32", (long long)sz.D, worst,
           fail ? "" : " ok");
    free(o2), free(l2), free(o3), free(l3);
    attnc_kernel_free(k);
    attnc_kernel_free(ref);
    return fail;
}

static int faults(const char *file) {
    attnc_kernel *k = compile(file, "div_zero", ATTNC_BACKEND_CUDA);
    if (!k) return 1;
    attnc_sizes sz = {1, 2, 2, 17, 23, 8, 8};
    Bufs h;
    make(&h, sz, 0);
    memset(h.a.o, 0x5a, h.n[3]);
    attnc_error e1 = {0}, e2 = {0};
    float *o2 = malloc(h.n[3]), *l2 = malloc(h.n[4]);
    attnc_status s1 = attnc_kernel_run_layout(k, &h.a, &h.lay, &e1), s2 = run_device(k, &h, o2, l2, &e2);
    int fail = s1 != ATTNC_ERR_RUNTIME || s2 != ATTNC_ERR_RUNTIME || strcmp(e1.message, e2.message) != 0;
    for (size_t i = 0; i < h.n[3]; i++) fail |= ((unsigned char *)h.a.o)[i] != 0x5a;
    printf("div_zero: host '%s', device '%s'%s\n", e1.message, e2.message, fail ? "  FAIL" : " ok");
    free(o2), free(l2);
    release(&h);
    attnc_kernel_free(k);
    return fail;
}

int main(int argc, char **argv) {
    if (argc < 3) return fprintf(stderr, "usage: test_cuda_device EXAMPLES_DIR VARIANTS.attn\n"), 2;
    if (!attnc_backend_available(ATTNC_BACKEND_CUDA)) {
        attnc_error err = {0};
        void *p = NULL;
        attnc_cuda_alloc(1, &p, &err);
        attnc_cuda_free(p);
        printf("SKIP: no CUDA backend here (%s)\n", err.message[0] ? err.message : "NVRTC?");
        return 77;
    }
    char causal[1024];
    snprintf(causal, sizeof causal, "%s/causal.attn", argv[1]);
    int fail = 0;
    attnc_sizes big = {2, 8, 2, 131, 168, 64, 64}, odd = {2, 4, 2, 70, 33, 24, 40};
    Bufs h;
    make(&h, big, 1);
    fail |= agree(&h, big, 1, causal);
    release(&h);
    make(&h, odd, 0);
    fail |= agree(&h, odd, 0, causal);
    release(&h);
    fail |= faults(argv[2]);
    printf("%s\n", fail ? "FAIL" : "PASS");
    return fail;
}
