/* test_decode.c — every attention of an examples file in the shapes of
 * decode (docs/decode.md) on one backend, against the reference interpreter.
 *
 *   test_decode FILE.attn --backend NAME
 *
 * For each attention, the example's `// example-args` sizes and params with
 * H = 8 query heads over Hkv = 8, 2 or 1 kv heads (GQA ratios 1, 4, 8),
 * Lq in {1, 2, 7, 16} and B = 1 (B = 2 for Lq = 7: batched decode), in three
 * configurations of one kernel each:
 *   whole  1 thread: the query heads of a kv head packed into one work item
 *   split  16 threads, kv tiles of 16: more threads than work items, so the
 *          keys are split across threads and merged (run twice: the results
 *          must be bit for bit the same)
 *   plain  16 threads, kv tiles of 16, ATTNC_OPT_NO_PACK_HEADS | NO_KV_SPLIT
 *   paged  (B = 1) the split kernel through attnc_kernel_run_batch, K and V
 *          in pages of 16 rows in reverse order, [pages, rows, Hkv, D] and
 *          head-major [pages, Hkv, rows, D] (read in place by kernels that
 *          read pages)
 * With --long, instead: H = 8 over Hkv = 8 and 2, Lq 1 and 3, Lk = 700,
 * D = Dv = 128, K and V as [B, Lk, Hkv, D] views and in vLLM's pages: rows of
 * all kv heads interleave, so the runtime cuts the keys into chunks run one
 * after another (runtime/launch.c: kv_chunks; chunks of 64 KiB here, so
 * every kv tile is one: up to 44 of them); the whole and split kernels
 * must chunk (launch_kv_chunked_calls), the plain one (NO_KV_SPLIT) and
 * weight attentions (their LSE is asked for) not.
 * O and LSE are NaN before every run, so a row a kernel does not write is a
 * difference.  A shape the spec rejects (the interpreter's runtime error, a
 * tensor it cannot shape) is skipped; every attention must run at least one.
 * Exit 0 when all agree. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attnc.h"
#include "launch_stats.h"
#include "support.h"

enum { NCONFIG = 3 };
static const char *const config_name[NCONFIG] = {"whole", "split", "plain"};

static attnc_kernel *compile_config(const attnc_spec *spec, const char *name, attnc_backend backend, int config,
                                    attnc_error *err) {
    attnc_options opts = {.backend = backend, .threads = config == 0 ? 1 : 16, .tile_k = config == 0 ? 0 : 16};
    if (config == 2) opts.flags = ATTNC_OPT_NO_PACK_HEADS | ATTNC_OPT_NO_KV_SPLIT;
    attnc_kernel *k = NULL;
    return attnc_compile(spec, name, &opts, &k, err) ? NULL : k;
}

/* Run k with O and LSE poisoned first. */
static attnc_status run_poisoned(const attnc_kernel *k, attnc_args *a, size_t no, size_t rows, attnc_error *err) {
    memset(a->o, 0xff, sizeof(float) * no);
    memset(a->lse, 0xff, sizeof(float) * rows);
    return attnc_kernel_run(k, a, err);
}

typedef struct Shape {
    attnc_sizes sz;
    attnc_param params[MAX_ITEMS];
    attnc_tensor tensors[MAX_ITEMS];
    int np, nt;
    float *q, *k, *v, *o, *lse, *ref_o, *ref_lse, *again_o, *again_lse;
} Shape;

static void shape_free(Shape *s) {
    for (int i = 0; i < s->nt; i++) free((void *)s->tensors[i].data);
    free(s->q), free(s->k), free(s->v), free(s->o), free(s->lse);
    free(s->ref_o), free(s->ref_lse), free(s->again_o), free(s->again_lse);
}

/* Inputs and the interpreter's outputs for sizes sz; 1: the spec rejects the
 * shape (skip it), -1: a failure of the test itself. */
static int shape_make(const attnc_spec *spec, const char *name, attnc_kernel *ref, const ExampleArgs *ea,
                      Shape *s) {
    const char *why = NULL;
    char buf[300];
    attnc_error err = {0};
    s->np = ea->nparams;
    if (make_params(ref, ea, s->params, &why) < 0) return -1;
    for (int i = 0; i < attnc_kernel_tensor_count(ref); i++) {
        if (make_tensor(ref, i, &s->sz, s->params, s->np, ea->range_name, ea->range_lo, ea->range_hi, ea->nranges,
                        &s->tensors[i], buf, sizeof buf))
            return 1;
        s->nt = i + 1;
    }
    const attnc_sizes *z = &s->sz;
    size_t rows = (size_t)(z->B * z->H * z->Lq), no = rows * (size_t)z->Dv;
    s->q = random_floats(rows * (size_t)z->D);
    s->k = random_floats((size_t)(z->B * z->Hkv * z->Lk * z->D));
    s->v = random_floats((size_t)(z->B * z->Hkv * z->Lk * z->Dv));
    s->o = malloc(sizeof(float) * (no + 1)), s->ref_o = malloc(sizeof(float) * (no + 1));
    s->again_o = malloc(sizeof(float) * (no + 1));
    s->lse = malloc(sizeof(float) * (rows + 1)), s->ref_lse = malloc(sizeof(float) * (rows + 1));
    s->again_lse = malloc(sizeof(float) * (rows + 1));
    if (!s->q || !s->k || !s->v || !s->o || !s->ref_o || !s->again_o || !s->lse || !s->ref_lse || !s->again_lse)
        return -1;
    attnc_args a = {*z, s->q, s->k, s->v, s->ref_o, s->ref_lse, s->params, s->np, s->tensors, s->nt};
    (void)spec, (void)name;
    return run_poisoned(ref, &a, no, rows, &err) ? 1 : 0;
}

/* The shape (B = 1) through attnc_kernel_run_batch with K and V in pages of
 * 16 rows in reverse order, [pages, 16, Hkv, D] or head-major (hnd: [pages,
 * Hkv, 16, D], page strides), on the split kernel (kv tiles of 16: a kernel
 * that reads pages reads them in place); NULL or what went wrong. */
static const char *run_paged(const attnc_kernel *k, Shape *s, int hnd, char *buf, size_t n) {
    enum { PAGE = 16 };
    const attnc_sizes *z = &s->sz;
    int64_t pps = (z->Lk + PAGE - 1) / PAGE, np = pps > 0 ? pps : 1;
    size_t rows = (size_t)(z->H * z->Lq), no = rows * (size_t)z->Dv;
    /* row r of head h of page p at p * PAGE * Hkv + hs * h + rs * r rows */
    int64_t hs = hnd ? PAGE : 1, rs = hnd ? 1 : z->Hkv;
    float *pk = calloc((size_t)(np * PAGE * z->Hkv * z->D + 1), 4), *pv = calloc((size_t)(np * PAGE * z->Hkv * z->Dv + 1), 4);
    int32_t *table = malloc(sizeof(int32_t) * (size_t)np);
    const char *bad = NULL;
    if (!pk || !pv || !table) bad = "out of memory";
    for (int64_t j = 0; !bad && j < np; j++) table[j] = (int32_t)(np - 1 - j);
    for (int64_t kv = 0; !bad && kv < z->Lk; kv++)
        for (int64_t h = 0; h < z->Hkv; h++) {
            int64_t r = (int64_t)table[kv / PAGE] * PAGE * z->Hkv + h * hs + kv % PAGE * rs;
            memcpy(pk + r * z->D, s->k + (h * z->Lk + kv) * z->D, sizeof(float) * (size_t)z->D);
            memcpy(pv + r * z->Dv, s->v + (h * z->Lk + kv) * z->Dv, sizeof(float) * (size_t)z->Dv);
        }
    if (!bad) {
        int64_t kv_len[1] = {z->Lk};
        attnc_batch batch = {.page_size = PAGE, .num_pages = np, .pages_per_seq = np, .block_table = table,
                             .kv_len = kv_len};
        attnc_layouts lay; /* Q, O and LSE as the dense call holds them: [H, Lq, D] */
        memset(&lay, 0, sizeof lay);
        if (hnd) {
            batch.k_page_stride = PAGE * z->Hkv * z->D, batch.v_page_stride = PAGE * z->Hkv * z->Dv;
            lay.k.stride[1] = PAGE * z->D, lay.k.stride[2] = z->D, lay.k.stride[3] = 1;
            lay.v.stride[1] = PAGE * z->Dv, lay.v.stride[2] = z->Dv, lay.v.stride[3] = 1;
        }
        lay.q.stride[1] = z->Lq * z->D, lay.q.stride[2] = z->D, lay.q.stride[3] = 1;
        lay.o.stride[1] = z->Lq * z->Dv, lay.o.stride[2] = z->Dv, lay.o.stride[3] = 1;
        lay.lse.stride[1] = z->Lq, lay.lse.stride[2] = 1;
        attnc_args a = {*z, s->q, pk, pv, s->o, s->lse, s->params, s->np, s->tensors, s->nt};
        attnc_error err = {0};
        double worst = 0;
        memset(s->o, 0xff, sizeof(float) * no);
        memset(s->lse, 0xff, sizeof(float) * rows);
        if (attnc_kernel_run_batch(k, &a, &lay, &batch, &err)) snprintf(buf, n, "%.250s", err.message), bad = buf;
        double tol = attnc_kernel_backend(k) == ATTNC_BACKEND_REFPLAN ? 1e-5 : 2e-3;
        if (!bad) bad = compare_outputs(s->o, s->lse, s->ref_o, s->ref_lse, no, rows, tol, &worst, buf, n);
    }
    free(pk), free(pv), free(table);
    return bad;
}

/* One shape on the three kernels (and paged, when B = 1); returns the number of failures. */
static int check_shape(attnc_kernel *const *kern, attnc_backend backend, const char *name, Shape *s) {
    const attnc_sizes *z = &s->sz;
    size_t rows = (size_t)(z->B * z->H * z->Lq), no = rows * (size_t)z->Dv;
    double tol = backend == ATTNC_BACKEND_REFPLAN ? 1e-5 : 2e-3;
    int fails = 0;
    for (int c = 0; c < NCONFIG; c++) {
        attnc_args a = {*z, s->q, s->k, s->v, s->o, s->lse, s->params, s->np, s->tensors, s->nt};
        attnc_error err = {0};
        char buf[300];
        double worst = 0;
        const char *bad = NULL;
        if (run_poisoned(kern[c], &a, no, rows, &err)) bad = err.message;
        if (!bad) bad = compare_outputs(s->o, s->lse, s->ref_o, s->ref_lse, no, rows, tol, &worst, buf, sizeof buf);
        if (!bad && c == 1) { /* split-KV: the same bits every time for a given thread count */
            attnc_args b = a;
            b.o = s->again_o, b.lse = s->again_lse;
            if (run_poisoned(kern[c], &b, no, rows, &err)) bad = err.message;
            else if (memcmp(s->o, s->again_o, sizeof(float) * no) || memcmp(s->lse, s->again_lse, sizeof(float) * rows))
                bad = "two runs of the same call differ";
        }
        if (bad) {
            printf("FAIL %s H=%lld Hkv=%lld Lq=%lld Lk=%lld (%s): %s\n", name, (long long)z->H, (long long)z->Hkv,
                   (long long)z->Lq, (long long)z->Lk, config_name[c], bad);
            fails++;
        }
    }
    for (int hnd = 0; z->B == 1 && hnd <= 1; hnd++) {
        char buf[300];
        const char *bad = run_paged(kern[1], s, hnd, buf, sizeof buf);
        if (bad) {
            printf("FAIL %s H=%lld Hkv=%lld Lq=%lld Lk=%lld (paged%s): %s\n", name, (long long)z->H, (long long)z->Hkv,
                   (long long)z->Lq, (long long)z->Lk, hnd ? ", head-major" : "", bad);
            fails++;
        }
    }
    return fails;
}

/* K and V of s as [B, Lk, Hkv, D] views run on kernel c (whole, split,
 * plain), then (split) in vLLM's pages; chunked or not as the kernel's
 * configuration says.  Returns the number of failures. */
static int check_interleaved(attnc_kernel *const *kern, attnc_backend backend, const char *name, Shape *s) {
    const attnc_sizes *z = &s->sz;
    size_t rows = (size_t)(z->B * z->H * z->Lq), no = rows * (size_t)z->Dv;
    double tol = backend == ATTNC_BACKEND_REFPLAN ? 1e-5 : 2e-3;
    float *kb = malloc(sizeof(float) * (size_t)(z->B * z->Lk * z->Hkv * z->D + 1));
    float *vb = malloc(sizeof(float) * (size_t)(z->B * z->Lk * z->Hkv * z->Dv + 1));
    int fails = 0;
    for (int64_t b = 0; kb && vb && b < z->B; b++)
        for (int64_t h = 0; h < z->Hkv; h++)
            for (int64_t kv = 0; kv < z->Lk; kv++) {
                int64_t from = (b * z->Hkv + h) * z->Lk + kv, to = (b * z->Lk + kv) * z->Hkv + h;
                memcpy(kb + to * z->D, s->k + from * z->D, sizeof(float) * (size_t)z->D);
                memcpy(vb + to * z->Dv, s->v + from * z->Dv, sizeof(float) * (size_t)z->Dv);
            }
    attnc_layouts lay;
    memset(&lay, 0, sizeof lay);
    lay.k.stride[0] = z->Lk * z->Hkv * z->D, lay.k.stride[1] = z->D, lay.k.stride[2] = z->Hkv * z->D, lay.k.stride[3] = 1;
    lay.v.stride[0] = z->Lk * z->Hkv * z->Dv, lay.v.stride[1] = z->Dv, lay.v.stride[2] = z->Hkv * z->Dv, lay.v.stride[3] = 1;
    for (int c = 0; c <= NCONFIG; c++) {
        char buf[300];
        double worst = 0;
        const char *bad = kb && vb ? NULL : "out of memory";
        long long before = launch_kv_chunked_calls();
        if (!bad && c < NCONFIG) {
            attnc_args a = {*z, s->q, kb, vb, s->o, s->lse, s->params, s->np, s->tensors, s->nt};
            attnc_error err = {0};
            memset(s->o, 0xff, sizeof(float) * no);
            memset(s->lse, 0xff, sizeof(float) * rows);
            if (attnc_kernel_run_layout(kern[c], &a, &lay, &err)) bad = err.message;
            if (!bad) bad = compare_outputs(s->o, s->lse, s->ref_o, s->ref_lse, no, rows, tol, &worst, buf, sizeof buf);
        } else if (!bad) {
            bad = run_paged(kern[1], s, 0, buf, sizeof buf);
        }
        int chunked = launch_kv_chunked_calls() > before;
        /* a weight attention asked for its LSE is never split (docs/merge.md) */
        int want = c != 2 && attnc_kernel_is_softmax(kern[0]);
        if (!bad && chunked != want) bad = chunked ? "keys cut into chunks with NO_KV_SPLIT" : "keys not cut into chunks";
        if (bad) {
            printf("FAIL %s H=%lld Hkv=%lld Lq=%lld Lk=%lld (%s, kv heads interleaved): %s\n", name, (long long)z->H,
                   (long long)z->Hkv, (long long)z->Lq, (long long)z->Lk, c < NCONFIG ? config_name[c] : "paged", bad);
            fails++;
        }
    }
    free(kb), free(vb);
    return fails;
}

static int run_attention(const attnc_spec *spec, const char *text, const char *name, int only_one,
                         attnc_backend backend, int long_keys) {
    char line[1024];
    ExampleArgs ea;
    if (!find_args_line(text, name, only_one, line, sizeof line) || !parse_args(line, &ea)) {
        printf("FAIL %s: no usable example-args line\n", name);
        return 1;
    }
    attnc_error err = {0};
    attnc_options ro = {.backend = ATTNC_BACKEND_INTERP};
    attnc_kernel *ref = NULL, *kern[NCONFIG] = {NULL};
    int fails = 0, ran = 0, skipped = 0;
    if (attnc_compile(spec, name, &ro, &ref, &err)) fails++;
    for (int c = 0; c < NCONFIG && !fails; c++)
        if (!(kern[c] = compile_config(spec, name, backend, c, &err))) fails++;
    if (fails) printf("FAIL %s: compile: %s\n", name, err.message);
    static const int64_t hkv[] = {8, 2, 1}, lq[] = {1, 2, 7, 16}, long_lq[] = {1, 3};
    for (int g = 0; g < (long_keys ? 2 : 3) && !fails; g++)
        for (int l = 0; l < (long_keys ? 2 : 4); l++) {
            Shape s;
            memset(&s, 0, sizeof s);
            s.sz = ea.sz;
            s.sz.B = lq[l] == 7 ? 2 : 1, s.sz.H = 8, s.sz.Hkv = hkv[g], s.sz.Lq = lq[l];
            if (long_keys) s.sz.B = 1, s.sz.Lq = long_lq[l], s.sz.Lk = 700, s.sz.D = s.sz.Dv = 128;
            int rc = shape_make(spec, name, ref, &ea, &s);
            if (rc < 0) {
                printf("FAIL %s: making inputs\n", name);
                fails++;
            } else if (rc > 0) {
                skipped++;
            } else {
                fails += long_keys ? check_interleaved(kern, backend, name, &s) : check_shape(kern, backend, name, &s);
                ran++;
            }
            shape_free(&s);
        }
    if (!fails && ran == 0) {
        printf("FAIL %s: the spec rejects every decode shape tried\n", name);
        fails++;
    }
    if (!fails && long_keys)
        printf("ok %s: %d decode shapes with kv heads interleaved, chunked where they should be (%d shapes the spec rejects)\n",
               name, ran, skipped);
    else if (!fails)
        printf("ok %s: %d decode shapes x %d configurations, paged where B = 1 (%d shapes the spec rejects)\n", name, ran,
               NCONFIG, skipped);
    for (int c = 0; c < NCONFIG; c++) attnc_kernel_free(kern[c]);
    attnc_kernel_free(ref);
    return fails;
}

int main(int argc, char **argv) {
    attnc_backend backend = ATTNC_BACKEND_REFPLAN;
    int long_keys = argc == 5 && !strcmp(argv[4], "--long");
    if ((argc != 4 && !long_keys) || strcmp(argv[2], "--backend") || !attnc_backend_parse(argv[3], &backend)) {
        fprintf(stderr, "usage: test_decode FILE.attn --backend NAME [--long]\n");
        return 2;
    }
    if (!attnc_backend_available(backend)) return 77;
    if (long_keys) launch_set_chunk_bytes(64 << 10);
    size_t len;
    char *text = read_file(argv[1], &len);
    attnc_spec *spec = NULL;
    attnc_error err = {0};
    if (!text || attnc_spec_from_string(argv[1], text, len, &spec, &err)) {
        printf("FAIL %s: cannot read or check the spec\n", argv[1]);
        attnc_spec_free(spec);
        free(text);
        return 1;
    }
    int n = attnc_spec_variant_count(spec), fails = 0;
    for (int i = 0; i < n; i++) fails += run_attention(spec, text, attnc_spec_variant_name(spec, i), n == 1, backend, long_keys);
    attnc_spec_free(spec);
    free(text);
    return fails ? 1 : 0;
}
