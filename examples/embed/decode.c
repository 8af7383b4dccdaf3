/* decode.c — one step of token-by-token generation from C: a query row per
 * head against a paged f16 KV cache, on every core (attnc splits the keys
 * across threads when one sequence gives too few work items, and merges the
 * parts exactly).
 *
 *   cc decode.c -I include -L build -lattnc -lm -lpthread && ./a.out [Lk]
 *
 * The cache holds K and V as f16 pages of PAGE rows, head-major: [pages,
 * Hkv, PAGE, D] (FlashInfer's "HND"; page strides, attnc 0.3), in an order
 * given by a block table.  A work item reads one kv head's rows, which are
 * then D elements apart; vLLM's pages, [pages, PAGE, Hkv, D] (zero strides,
 * no page strides), work too but decode reads them about 3x slower, their
 * rows of one head being Hkv * D elements apart.  The query heads
 * that share a kv head (GQA, H / Hkv of them) are computed together, so
 * each K and V element is read once per step.  The program checks the result
 * against the same call on a contiguous copy of the cache and, for one head,
 * against a direct computation, and prints the time of a step. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 199309L /* clock_gettime */
#endif
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "attnc.h"

enum { H = 32, HKV = 8, D = 128, PAGE = 64 };

/* f32 to IEEE binary16, round to nearest even (finite inputs of moderate size). */
static uint16_t to_f16(float x) {
    union { float f; uint32_t u; } v = {x};
    uint32_t sign = (v.u >> 16) & 0x8000u, exp = (v.u >> 23) & 0xffu, man = v.u & 0x7fffffu;
    if (exp < 113) return (uint16_t)sign; /* tiny values flush to zero here: inputs stay above 2^-14 */
    uint32_t h = ((exp - 112) << 10) | (man >> 13), rest = man & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1))) h++;
    return (uint16_t)(sign | h);
}

static float from_f16(uint16_t h) { /* normal values only, as made here */
    union { uint32_t u; float f; } v = {((uint32_t)(h & 0x8000u) << 16) | (((uint32_t)((h >> 10) & 0x1f) + 112) << 23) |
                                       ((uint32_t)(h & 0x3ff) << 13)};
    return (h & 0x7fff) ? v.f : 0.0f;
}

/* Query head h's output, directly: softmax(q . k / sqrt(D)) . v over the contiguous cache. */
static double direct_error(const uint16_t *q, const uint16_t *kc, const uint16_t *vc, int64_t Lk, int h, const float *o) {
    double *s = malloc(sizeof(double) * (size_t)Lk), m = -INFINITY, l = 0, out[D] = {0}, worst = 0;
    int hk = h / (H / HKV);
    for (int64_t kv = 0; s && kv < Lk; kv++) {
        double dot = 0;
        for (int d = 0; d < D; d++) dot += (double)from_f16(q[h * D + d]) * from_f16(kc[((size_t)hk * Lk + kv) * D + d]);
        s[kv] = dot / sqrt((double)D);
        m = fmax(m, s[kv]);
    }
    for (int64_t kv = 0; s && kv < Lk; kv++) {
        double p = exp(s[kv] - m);
        l += p;
        for (int d = 0; d < D; d++) out[d] += p * from_f16(vc[((size_t)hk * Lk + kv) * D + d]);
    }
    for (int d = 0; s && d < D; d++) worst = fmax(worst, fabs(out[d] / l - o[h * D + d]));
    free(s);
    return s ? worst : INFINITY;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
    int64_t Lk = argc > 1 ? atoll(argv[1]) : 4096;
    if (Lk < 1 || Lk > (1 << 24)) return fprintf(stderr, "Lk must be 1 .. 2^24\n"), 2;
    int64_t pages = (Lk + PAGE - 1) / PAGE;
    attnc_error err;
    attnc_spec *spec = NULL;
    attnc_kernel *kernel = NULL;
    static const char text[] = "attention decode { use causal_bottom_right; }\n";
    attnc_options opts = {.backend = ATTNC_BACKEND_DEFAULT, .threads = 0}; /* 0: every core */
    if (attnc_spec_from_string("decode.attn", text, sizeof text - 1, &spec, &err) ||
        attnc_compile(spec, NULL, &opts, &kernel, &err)) {
        fprintf(stderr, "%s\n", err.message);
        attnc_spec_free(spec);
        return 1;
    }
    attnc_spec_free(spec);

    /* the cache: page p holds rows [p * PAGE, (p + 1) * PAGE) of its sequence, each kv head's
     * PAGE rows together; stored in reverse order */
    size_t row = (size_t)HKV * D, cache = (size_t)pages * PAGE * row;
    uint16_t *k = calloc(cache, 2), *v = calloc(cache, 2), *kc = calloc(cache, 2), *vc = calloc(cache, 2);
    int32_t *table = malloc(sizeof(int32_t) * (size_t)pages);
    uint16_t *q = malloc(2 * (size_t)H * D);
    float *o = malloc(sizeof(float) * H * D), *o_dense = malloc(sizeof(float) * H * D), lse[H], lse_dense[H];
    if (!k || !v || !kc || !vc || !table || !q || !o || !o_dense) return fprintf(stderr, "out of memory\n"), 1;
    for (int64_t p = 0; p < pages; p++) table[p] = (int32_t)(pages - 1 - p);
    for (int64_t kv = 0; kv < Lk; kv++)
        for (size_t hk = 0; hk < HKV; hk++)
            for (size_t d = 0; d < D; d++) {
                size_t dense = (hk * (size_t)Lk + (size_t)kv) * D + d; /* [Hkv, Lk, D] */
                size_t paged = (((size_t)table[kv / PAGE] * HKV + hk) * PAGE + (size_t)(kv % PAGE)) * D + d;
                kc[dense] = k[paged] = to_f16(0.5f + 0.25f * sinf((float)dense * 0.013f));
                vc[dense] = v[paged] = to_f16(0.5f + 0.25f * cosf((float)dense * 0.007f));
            }
    for (int i = 0; i < H * D; i++) q[i] = to_f16(0.5f + 0.25f * sinf((float)i));

    /* one sequence, one new token (Lq = 1) at position Lk - 1: Q [1, H, 1, D] */
    attnc_args args = {{1, H, HKV, 1, Lk, D, D}, (const float *)q, (const float *)k, (const float *)v, o, lse,
                       NULL, 0, NULL, 0};
    attnc_layouts lay = {0};
    lay.q.elem = lay.k.elem = lay.v.elem = ATTNC_ELEM_F16;
    for (int t = 0; t < 2; t++) { /* one page of K, V: [Hkv, PAGE, D]; pages Hkv * PAGE * D apart */
        attnc_layout *l = t ? &lay.v : &lay.k;
        l->stride[1] = PAGE * D, l->stride[2] = D, l->stride[3] = 1;
    }
    int64_t kv_len = Lk;
    attnc_batch batch = {.page_size = PAGE, .num_pages = pages, .pages_per_seq = pages, .block_table = table,
                         .kv_len = &kv_len, .k_page_stride = HKV * PAGE * D, .v_page_stride = HKV * PAGE * D};
    if (attnc_kernel_run_batch(kernel, &args, &lay, &batch, &err)) return fprintf(stderr, "paged: %s\n", err.message), 1;

    /* the same step on the contiguous cache [1, Hkv, Lk, D] (zero strides) */
    attnc_args dense = args;
    dense.k = (const float *)kc, dense.v = (const float *)vc, dense.o = o_dense, dense.lse = lse_dense;
    attnc_layouts dl = {0};
    dl.q.elem = dl.k.elem = dl.v.elem = ATTNC_ELEM_F16;
    if (attnc_kernel_run_layout(kernel, &dense, &dl, &err)) return fprintf(stderr, "dense: %s\n", err.message), 1;
    double worst = 0, direct = fmax(direct_error(q, kc, vc, Lk, 0, o), direct_error(q, kc, vc, Lk, H - 1, o));
    for (int i = 0; i < H * D; i++) worst = fmax(worst, fabs((double)o[i] - o_dense[i]));
    int status = !(worst < 1e-5 && direct < 1e-4);
    double best = INFINITY;
    for (int rep = 0; rep < 10; rep++) {
        double t0 = now();
        attnc_kernel_run_batch(kernel, &args, &lay, &batch, &err);
        best = fmin(best, now() - t0);
    }
    printf("backend %s: decode over %lld keys in %lld f16 pages of %d rows: max |paged - dense| = %.2g, "
           "|paged - direct| = %.2g: %s; %.3f ms a step, K and V read at %.1f GB/s\n",
           attnc_backend_name(attnc_kernel_backend(kernel)), (long long)Lk, (long long)pages, PAGE, worst, direct,
           status ? "WRONG" : "ok", best * 1e3, 2.0 * (double)Lk * (double)row * 2 / best * 1e-9);
    attnc_kernel_free(kernel);
    free(k), free(v), free(kc), free(vc), free(table), free(q), free(o), free(o_dense);
    return status;
}
