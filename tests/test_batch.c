/* test_batch.c — attnc_kernel_run_batch: ragged batches and paged KV caches
 * against each sequence computed alone, densely, by the interpreter.
 *
 *   test_batch [--backend NAME]...   (default: every backend this build has)
 *
 * Sequences of different lengths (one of them with no query rows, one with
 * no keys) packed THD-style; K and V ragged, or paged with pages in order
 * (read in place) and shuffled (read through the block table); every call on 1, 2 and 3 threads (on 2,
 * the 4 sequences run as items of the thread pool, one thread each).
 * Then pages of 64, 32, 24 and 6 rows against the default kv tile (64 keys:
 * pages of 32 and 24 are read in kv tiles of a page by the backends that
 * take shorter tiles, counted by launch_short_tile_calls; pages of 6 are
 * gathered) and of 16 rows against tile_k 16, with float32 and bf16 K and V, stored [pages, rows,
 * Hkv, D] (NHD), head-major [pages, Hkv, rows, D] (HND, pages padded: page
 * strides) and [Hkv, pages, rows, D] (pages interleaved per head).
 * O and LSE start as NaN except the rows no sequence covers, which must stay
 * as they were.  Hostile batches must fail with the documented status and
 * leave O and LSE untouched, and so must bad page strides. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attnc.h"
#include "launch_stats.h"
#include "support.h"

#define CHECK(cond, ...)                                                                                               \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            printf("FAIL line %d: ", __LINE__);                                                                        \
            printf(__VA_ARGS__);                                                                                       \
            printf("\n");                                                                                              \
            fails++;                                                                                                   \
        }                                                                                                              \
    } while (0)

static int fails;

static const char *SPEC = "attention causal_br { mask kv <= q + Lk - Lq; }\n"
                          "attention alibi_window { param w : int = 20; mask kv <= q + Lk - Lq && q + Lk - Lq - kv < w;"
                          " bias -0.25 * float(h + 1) * float(q + Lk - Lq - kv); }\n"
                          "attention relu { weight max(score, 0.0); }\n";

enum { NSEQ = 4, H = 4, HKV = 2, D = 12, DV = 8, PAGE = 16 };
static const int64_t LQ[NSEQ] = {1, 5, 0, 3}, LK[NSEQ] = {70, 33, 10, 0};

typedef struct Data {
    int64_t q_start[NSEQ + 1], k_start[NSEQ + 1], kv_len[NSEQ];
    int64_t tq, tk, lead; /* total rows; `lead` rows before the first sequence */
    float *q, *k, *v;     /* THD */
    float *ref_o, *ref_lse; /* THD, [H, tq] */
    int64_t num_pages;
    int32_t table[NSEQ * 8];
    float *pk, *pv; /* pages [num_pages, PAGE, HKV, D] */
} Data;

/* Sequence s alone, dense [1, H, L, D], through the interpreter. */
static void reference(const attnc_spec *spec, const char *variant, Data *x) {
    attnc_options io = {.backend = ATTNC_BACKEND_INTERP};
    attnc_kernel *k = NULL;
    attnc_error err = {0};
    if (attnc_compile(spec, variant, &io, &k, &err)) {
        CHECK(0, "compile interp: %s", err.message);
        return;
    }
    for (int s = 0; s < NSEQ; s++) {
        int64_t nq = LQ[s], nk = LK[s];
        float *q = calloc((size_t)(H * nq * D + 1), 4), *kk = calloc((size_t)(HKV * nk * D + 1), 4);
        float *v = calloc((size_t)(HKV * nk * DV + 1), 4), *o = calloc((size_t)(H * nq * DV + 1), 4);
        float *lse = calloc((size_t)(H * nq + 1), 4);
        for (int64_t r = 0; r < nq; r++)
            for (int h = 0; h < H; h++)
                memcpy(q + (h * nq + r) * D, x->q + ((x->q_start[s] + r) * H + h) * D, D * 4);
        for (int64_t r = 0; r < nk; r++)
            for (int h = 0; h < HKV; h++) {
                memcpy(kk + (h * nk + r) * D, x->k + ((x->k_start[s] + r) * HKV + h) * D, D * 4);
                memcpy(v + (h * nk + r) * DV, x->v + ((x->k_start[s] + r) * HKV + h) * DV, DV * 4);
            }
        attnc_args a = {{1, H, HKV, nq, nk, D, DV}, q, kk, v, o, lse, NULL, 0, NULL, 0};
        if (nq > 0 && attnc_kernel_run(k, &a, &err)) CHECK(0, "interp sequence %d: %s", s, err.message);
        for (int64_t r = 0; r < nq; r++)
            for (int h = 0; h < H; h++) {
                memcpy(x->ref_o + ((x->q_start[s] + r) * H + h) * DV, o + (h * nq + r) * DV, DV * 4);
                x->ref_lse[h * x->tq + x->q_start[s] + r] = lse[h * nq + r];
            }
        free(q), free(kk), free(v), free(o), free(lse);
    }
    attnc_kernel_free(k);
}

static void make_data(Data *x) {
    memset(x, 0, sizeof *x);
    x->lead = 2;
    x->q_start[0] = x->lead, x->k_start[0] = 0;
    for (int s = 0; s < NSEQ; s++) {
        x->q_start[s + 1] = x->q_start[s] + LQ[s];
        x->k_start[s + 1] = x->k_start[s] + LK[s];
        x->kv_len[s] = LK[s];
    }
    x->tq = x->q_start[NSEQ] + 1; /* one row after the last sequence too */
    x->tk = x->k_start[NSEQ];
    x->q = random_floats((size_t)(x->tq * H * D));
    x->k = random_floats((size_t)(x->tk * HKV * D));
    x->v = random_floats((size_t)(x->tk * HKV * DV));
    x->ref_o = malloc(sizeof(float) * (size_t)(x->tq * H * DV));
    x->ref_lse = malloc(sizeof(float) * (size_t)(x->tq * H));
    /* pages: sequence s's page j is page (7 * (s * 8 + j)) % num_pages: shuffled, distinct */
    x->num_pages = NSEQ * 8 + 1;
    x->pk = calloc((size_t)(x->num_pages * PAGE * HKV * D), 4);
    x->pv = calloc((size_t)(x->num_pages * PAGE * HKV * DV), 4);
    for (int s = 0; s < NSEQ; s++)
        for (int j = 0; j < 8; j++) x->table[s * 8 + j] = (int32_t)((7 * (s * 8 + j) + 3) % x->num_pages);
    for (int s = 0; s < NSEQ; s++)
        for (int64_t r = 0; r < LK[s]; r++) {
            int64_t row = (int64_t)x->table[s * 8 + r / PAGE] * PAGE + r % PAGE;
            memcpy(x->pk + row * HKV * D, x->k + (x->k_start[s] + r) * HKV * D, HKV * D * 4);
            memcpy(x->pv + row * HKV * DV, x->v + (x->k_start[s] + r) * HKV * DV, HKV * DV * 4);
        }
}

/* O and LSE: NaN on the sequences' rows, 7 on the rows outside them. */
static void poison(const Data *x, float *o, float *lse) {
    for (int64_t r = 0; r < x->tq; r++) {
        int inside = r >= x->q_start[0] && r < x->q_start[NSEQ];
        for (int64_t e = 0; e < H * DV; e++) o[r * H * DV + e] = inside ? NAN : 7.0f;
        for (int h = 0; h < H; h++) lse[h * x->tq + r] = inside ? NAN : 7.0f;
    }
}

static void compare(const Data *x, const float *o, const float *lse, const char *what) {
    char buf[300];
    double worst = 0;
    const char *bad = compare_outputs(o, lse, x->ref_o, x->ref_lse, 0, 0, 2e-3, &worst, buf, sizeof buf);
    for (int64_t r = 0; !bad && r < x->tq; r++) {
        int inside = r >= x->q_start[0] && r < x->q_start[NSEQ];
        for (int64_t e = 0; !bad && e < H * DV; e++) {
            float want = inside ? x->ref_o[r * H * DV + e] : 7.0f;
            if (!close_enough(o[r * H * DV + e], want, 2e-3)) bad = "O";
        }
        for (int h = 0; !bad && h < H; h++) {
            float want = inside ? x->ref_lse[h * x->tq + r] : 7.0f;
            if (!close_enough(lse[h * x->tq + r], want, 2e-3)) bad = "LSE";
        }
        if (bad) snprintf(buf, sizeof buf, "%s of row %lld differs", bad, (long long)r), bad = buf;
    }
    CHECK(!bad, "%s: %s", what, bad);
}

static void check_backend(const attnc_spec *spec, const char *variant, attnc_backend be, Data *x) {
    float *o = malloc(sizeof(float) * (size_t)(x->tq * H * DV)), *lse = malloc(sizeof(float) * (size_t)(x->tq * H));
    for (int threads = 1; threads <= 3; threads++) { /* 2: B >= 2 threads, sequences as pool items */
        attnc_options opts = {.backend = be, .threads = threads, .tile_k = 16};
        attnc_kernel *k = NULL;
        attnc_error err = {0};
        if (attnc_compile(spec, variant, &opts, &k, &err)) {
            CHECK(0, "%s compile: %s", attnc_backend_name(be), err.message);
            break;
        }
        char what[200];
        attnc_args a = {{NSEQ, H, HKV, x->tq, x->tk, D, DV}, x->q, x->k, x->v, o, lse, NULL, 0, NULL, 0};
        attnc_batch ragged = {.q_start = x->q_start, .k_start = x->k_start};
        poison(x, o, lse);
        snprintf(what, sizeof what, "%s %s ragged, %d threads", variant, attnc_backend_name(be), threads);
        CHECK(!attnc_kernel_run_batch(k, &a, NULL, &ragged, &err), "%s: %s", what, err.message);
        compare(x, o, lse, what);
        /* paged, shuffled pages (gathered) */
        attnc_args p = a;
        p.k = x->pk, p.v = x->pv, p.sizes.Lk = 0;
        attnc_batch paged = {.q_start = x->q_start, .page_size = PAGE, .num_pages = x->num_pages, .pages_per_seq = 8,
                             .block_table = x->table, .kv_len = x->kv_len};
        poison(x, o, lse);
        snprintf(what, sizeof what, "%s %s paged, %d threads", variant, attnc_backend_name(be), threads);
        CHECK(!attnc_kernel_run_batch(k, &p, NULL, &paged, &err), "%s: %s", what, err.message);
        compare(x, o, lse, what);
        /* paged, each sequence's pages in order (read in place): the ragged K as pages of 1 row */
        int32_t *seq_table = malloc(sizeof(int32_t) * (size_t)(NSEQ * 80));
        int64_t kv_len[NSEQ];
        for (int s = 0; s < NSEQ; s++) {
            kv_len[s] = LK[s];
            for (int j = 0; j < 80; j++) seq_table[s * 80 + j] = (int32_t)(x->k_start[s] + j < x->tk ? x->k_start[s] + j : 0);
        }
        attnc_args in_place = a;
        in_place.sizes.Lk = 0;
        attnc_batch rows = {.q_start = x->q_start, .page_size = 1, .num_pages = x->tk, .pages_per_seq = 80,
                            .block_table = seq_table, .kv_len = kv_len};
        poison(x, o, lse);
        snprintf(what, sizeof what, "%s %s paged in place, %d threads", variant, attnc_backend_name(be), threads);
        CHECK(!attnc_kernel_run_batch(k, &in_place, NULL, &rows, &err), "%s: %s", what, err.message);
        compare(x, o, lse, what);
        free(seq_table);
        attnc_kernel_free(k);
    }
    free(o), free(lse);
}

/* How pages are stored: NHD [pages, rows, Hkv, row] (zero strides, no page
 * stride); HND [pages, Hkv, rows, row], each page followed by PAD unused
 * elements; HEADS [Hkv, pages, rows, row]. */
enum { NHD, HND, HEADS, PAD = 3 };

/* The page layout of one of K (row D) or V (row Dv): its strides (elements
 * from head to head, row to row), page stride (0: none given) and size. */
static void page_layout(int kind, int64_t page, int64_t num_pages, int64_t row, attnc_layout *l, int64_t *page_stride,
                        int64_t *elems) {
    memset(l->stride, 0, sizeof l->stride);
    *page_stride = 0, *elems = num_pages * page * HKV * row;
    if (kind == HND) {
        l->stride[1] = page * row, l->stride[2] = row, l->stride[3] = 1;
        *page_stride = HKV * page * row + PAD, *elems = num_pages * *page_stride;
    } else if (kind == HEADS) {
        l->stride[1] = num_pages * page * row, l->stride[2] = row, l->stride[3] = 1, *page_stride = page * row;
    }
}

/* Element of row r of head h in page p. */
static int64_t page_elem(int kind, const attnc_layout *l, int64_t page_stride, int64_t page, int64_t row, int64_t p,
                         int64_t r, int64_t h) {
    if (kind == NHD) return ((p * page + r) * HKV + h) * row;
    return p * page_stride + h * l->stride[1] + r * l->stride[2];
}

/* x's K and V as pages of `page` rows stored as `kind` says, each
 * sequence's pages in reverse order (never consecutive), float32 or bf16
 * (x's K and V are bf16 values then: the top half of each float), run with
 * tile_k (0: the backend's).  Backends that read pages (CompiledKernel.pages)
 * read them in place, through the block table, when page is a multiple of
 * the kv tile or, for those that take shorter kv tiles, of a size of 8 or
 * more below it; else they are gathered. */
static void check_page_size(const attnc_spec *spec, const char *variant, attnc_backend be, const Data *x, int64_t page,
                            int tile_k, int bf16, int kind) {
    const int64_t pps = (80 + page - 1) / page, num_pages = NSEQ * pps + 1, esz = bf16 ? 2 : 4;
    attnc_layouts lay;
    memset(&lay, 0, sizeof lay);
    int64_t kps, vps, kn, vn;
    page_layout(kind, page, num_pages, D, &lay.k, &kps, &kn);
    page_layout(kind, page, num_pages, DV, &lay.v, &vps, &vn);
    lay.k.elem = lay.v.elem = bf16 ? ATTNC_ELEM_BF16 : ATTNC_ELEM_F32;
    lay.k.extent = kn, lay.v.extent = vn;
    int32_t *table = malloc(sizeof(int32_t) * (size_t)(NSEQ * pps));
    char *pk = calloc((size_t)kn, (size_t)esz), *pv = calloc((size_t)vn, (size_t)esz);
    float *o = malloc(sizeof(float) * (size_t)(x->tq * H * DV)), *lse = malloc(sizeof(float) * (size_t)(x->tq * H));
    for (int64_t i = 0; i < NSEQ * pps; i++) table[i] = (int32_t)(num_pages - 1 - i);
    for (int s = 0; s < NSEQ; s++)
        for (int64_t r = 0; r < LK[s]; r++)
            for (int64_t h = 0; h < HKV; h++) {
                int64_t pg = table[s * pps + r / page];
                const float *src[2] = {x->k + ((x->k_start[s] + r) * HKV + h) * D,
                                       x->v + ((x->k_start[s] + r) * HKV + h) * DV};
                char *dst[2] = {pk + page_elem(kind, &lay.k, kps, page, D, pg, r % page, h) * esz,
                                pv + page_elem(kind, &lay.v, vps, page, DV, pg, r % page, h) * esz};
                for (int t = 0; t < 2; t++)
                    for (int64_t e = 0; e < (t ? DV : D); e++) {
                        uint32_t bits;
                        memcpy(&bits, &src[t][e], 4);
                        uint16_t top = (uint16_t)(bits >> 16);
                        if (bf16) memcpy(dst[t] + e * 2, &top, 2);
                        else memcpy(dst[t] + e * 4, &src[t][e], 4);
                    }
            }
    attnc_batch paged = {.q_start = x->q_start, .page_size = page, .num_pages = num_pages, .pages_per_seq = pps,
                         .block_table = table, .kv_len = x->kv_len, .k_page_stride = kps, .v_page_stride = vps};
    for (int threads = 1; threads <= 3; threads++) { /* 2: B >= 2 threads, sequences as pool items */
        attnc_options opts = {.backend = be, .threads = threads, .tile_k = tile_k};
        attnc_kernel *k = NULL;
        attnc_error err = {0};
        if (attnc_compile(spec, variant, &opts, &k, &err)) {
            CHECK(0, "%s compile: %s", attnc_backend_name(be), err.message);
            break;
        }
        char what[200];
        attnc_args a = {{NSEQ, H, HKV, x->tq, 0, D, DV}, x->q, (const float *)pk, (const float *)pv, o, lse,
                        NULL, 0, NULL, 0};
        poison(x, o, lse);
        static const char *const kinds[] = {"NHD", "HND", "Hkv-major"};
        snprintf(what, sizeof what, "%s %s %s pages of %lld, tile_k %d, %s, %d threads", variant, attnc_backend_name(be),
                 kinds[kind], (long long)page, tile_k, bf16 ? "bf16" : "f32", threads);
        long long short0 = launch_short_tile_calls();
        CHECK(!attnc_kernel_run_batch(k, &a, &lay, &paged, &err), "%s: %s", what, err.message);
        compare(x, o, lse, what);
        /* pages shorter than the kv tile with a divisor of 8 or more keys: read in place in tiles of that size */
        int takes_short = be == ATTNC_BACKEND_LLVM || be == ATTNC_BACKEND_TCC || be == ATTNC_BACKEND_REFPLAN ||
                          be == ATTNC_BACKEND_CUDA_EMU;
        int want_short = takes_short && tile_k == 0 && page % 64 != 0 && page >= 8;
        CHECK((launch_short_tile_calls() > short0) == want_short, "%s: %s kv tiles shorter than the plan's", what,
              want_short ? "expected" : "unexpected");
        attnc_kernel_free(k);
    }
    free(table), free(pk), free(pv), free(o), free(lse);
}

/* K and V rounded down to bf16 values in place (the top half of each float). */
static void to_bf16_values(float *f, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &f[i], 4);
        bits &= 0xffff0000u;
        memcpy(&f[i], &bits, 4);
    }
}

/* The batch fails with status `want` and one line of message, leaving
 * the args' O and LSE (x->tq rows) as they were. */
static void refused(const attnc_kernel *k, const Data *x, const attnc_args *a, const attnc_layouts *lay,
                    const attnc_batch *b, attnc_status want, const char *what) {
    for (int64_t e = 0; e < x->tq * H * DV; e++) a->o[e] = 3.0f;
    for (int64_t e = 0; e < x->tq * H; e++) a->lse[e] = 3.0f;
    attnc_error err = {0};
    attnc_status st = attnc_kernel_run_batch(k, a, lay, b, &err);
    CHECK(st == want, "%s: status %d, want %d (%s)", what, st, want, err.message);
    CHECK(err.message[0] && !strchr(err.message, '\n'), "%s: one line of message", what);
    int touched = 0;
    for (int64_t e = 0; e < x->tq * H * DV; e++) touched |= a->o[e] != 3.0f;
    for (int64_t e = 0; e < x->tq * H; e++) touched |= a->lse[e] != 3.0f;
    CHECK(!touched, "%s: O or LSE written", what);
    printf("  %s: %s\n", what, err.message);
}

/* Bad batches: the status, and O and LSE untouched. */
static void hostile(const attnc_spec *spec, Data *x) {
    attnc_options opts = {.backend = ATTNC_BACKEND_INTERP};
    attnc_kernel *k = NULL;
    attnc_error err = {0};
    if (attnc_compile(spec, "causal_br", &opts, &k, &err)) return;
    float *o = malloc(sizeof(float) * (size_t)(x->tq * H * DV)), *lse = malloc(sizeof(float) * (size_t)(x->tq * H));
    attnc_args a = {{NSEQ, H, HKV, x->tq, x->tk, D, DV}, x->q, x->k, x->v, o, lse, NULL, 0, NULL, 0};
    int64_t back[NSEQ + 1], past[NSEQ + 1], len_big[NSEQ];
    memcpy(back, x->q_start, sizeof back);
    back[2] = back[1] - 1;
    memcpy(past, x->k_start, sizeof past);
    past[NSEQ] = x->tk + 1;
    memcpy(len_big, x->kv_len, sizeof len_big);
    len_big[1] = 8 * PAGE + 1;
    int32_t table[NSEQ * 8];
    memcpy(table, x->table, sizeof table);
    table[8 + 1] = (int32_t)x->num_pages; /* sequence 1 uses its pages 0..2 */
    attnc_args p = a;
    p.k = x->pk, p.v = x->pv;
    struct {
        const char *what;
        const attnc_args *args;
        attnc_batch b;
        attnc_status want;
    } cases[] = {
        {"q_start going back", &a, {.q_start = back, .k_start = x->k_start}, ATTNC_ERR_USAGE},
        {"k_start past K", &a, {.q_start = x->q_start, .k_start = past}, ATTNC_ERR_USAGE},
        {"kv_len beyond the block table", &p,
         {.q_start = x->q_start, .page_size = PAGE, .num_pages = x->num_pages, .pages_per_seq = 8,
          .block_table = x->table, .kv_len = len_big}, ATTNC_ERR_USAGE},
        {"a page id out of range", &p,
         {.q_start = x->q_start, .page_size = PAGE, .num_pages = x->num_pages, .pages_per_seq = 8,
          .block_table = table, .kv_len = x->kv_len}, ATTNC_ERR_RUNTIME},
        {"no block table", &p, {.q_start = x->q_start, .page_size = PAGE, .num_pages = x->num_pages, .pages_per_seq = 8},
         ATTNC_ERR_USAGE},
        {"k_start and pages", &p,
         {.q_start = x->q_start, .k_start = x->k_start, .page_size = PAGE, .num_pages = x->num_pages,
          .pages_per_seq = 8, .block_table = x->table}, ATTNC_ERR_USAGE},
        {"negative page size", &a, {.q_start = x->q_start, .page_size = -1}, ATTNC_ERR_USAGE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        refused(k, x, cases[i].args, NULL, &cases[i].b, cases[i].want, cases[i].what);
    CHECK(attnc_kernel_run_batch(k, &a, NULL, NULL, &err) == ATTNC_ERR_USAGE, "NULL batch");
    free(o), free(lse);
    attnc_kernel_free(k);
}

/* Bad page strides (head-major pages of PAGE rows): ATTNC_ERR_USAGE, one
 * line of message, O and LSE untouched. */
static void hostile_strides(const attnc_spec *spec, const Data *x) {
    attnc_options opts = {.backend = ATTNC_BACKEND_INTERP};
    attnc_kernel *k = NULL;
    attnc_error err = {0};
    if (attnc_compile(spec, "causal_br", &opts, &k, &err)) return;
    const int64_t kps = HKV * PAGE * D, vps = HKV * PAGE * DV, kn = x->num_pages * kps;
    float *pk = calloc((size_t)kn, 4), *pv = calloc((size_t)(x->num_pages * vps), 4);
    float *o = malloc(sizeof(float) * (size_t)(x->tq * H * DV)), *lse = malloc(sizeof(float) * (size_t)(x->tq * H));
    attnc_args a = {{NSEQ, H, HKV, x->tq, 0, D, DV}, x->q, pk, pv, o, lse, NULL, 0, NULL, 0}, alias = a, rows = a;
    rows.sizes.Lk = x->tk, rows.k = x->k, rows.v = x->v;
    alias.o = pk + kn - x->tq * H * DV; /* O inside K's last page */
    attnc_layouts hnd, overlap, tight;
    memset(&hnd, 0, sizeof hnd);
    hnd.k.stride[1] = PAGE * D, hnd.k.stride[2] = D, hnd.k.stride[3] = 1, hnd.k.extent = kn;
    hnd.v.stride[1] = PAGE * DV, hnd.v.stride[2] = DV, hnd.v.stride[3] = 1;
    overlap = hnd, tight = hnd;
    overlap.k.stride[2] = D - 1; /* rows of a page share elements */
    tight.k.extent = kn - 1;     /* the last page ends one element past K */
    attnc_batch good = {.q_start = x->q_start, .page_size = PAGE, .num_pages = x->num_pages, .pages_per_seq = 8,
                        .block_table = x->table, .kv_len = x->kv_len, .k_page_stride = kps, .v_page_stride = vps};
    attnc_batch negative = good, short_page = good, ragged = {.q_start = x->q_start, .k_start = x->k_start};
    negative.v_page_stride = -vps;
    short_page.k_page_stride = kps - D; /* page p's last row is page p + 1's first */
    ragged.k_page_stride = kps;
    struct {
        const char *what;
        const attnc_args *args;
        const attnc_layouts *lay;
        const attnc_batch *b;
    } cases[] = {
        {"a negative page stride", &a, &hnd, &negative},
        {"pages that overlap", &a, &hnd, &short_page},
        {"rows of a page that overlap", &a, &overlap, &good},
        {"the last page past K's extent", &a, &tight, &good},
        {"O inside K's pages", &alias, &hnd, &good},
        {"a page stride without pages", &rows, NULL, &ragged},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        refused(k, x, cases[i].args, cases[i].lay, cases[i].b, ATTNC_ERR_USAGE, cases[i].what);
    /* the same batch with good strides runs */
    CHECK(!attnc_kernel_run_batch(k, &a, &hnd, &good, &err), "head-major pages: %s", err.message);
    free(pk), free(pv), free(o), free(lse);
    attnc_kernel_free(k);
}

/* A runtime error raised by a kernel that reads pages in place is named by
 * the interpreter on the sequence's K and V as the batch holds them: one
 * key (kv 37) scores 5.5, whose int indexes past t's 4 entries.  Pages of
 * 16 rows (tile_k 16: read in place), shuffled, NHD and head-major; read as
 * one dense L dimension they would put that key elsewhere, or past K. */
static void fault_in_pages(attnc_backend be) {
    enum { LK = 64, NP = 5 };
    static const char text[] = "attention f { tensor t : float[4]; score score + t[int(abs(score))]; }\n";
    attnc_spec *spec = NULL;
    attnc_kernel *k = NULL;
    attnc_error err = {0};
    attnc_options opts = {.backend = be, .tile_k = 16, .threads = 1};
    if (attnc_spec_from_string("f.attn", text, sizeof text - 1, &spec, &err) || attnc_compile(spec, NULL, &opts, &k, &err)) {
        CHECK(0, "fault spec: %s", err.message);
        attnc_spec_free(spec);
        return;
    }
    float q[H * D] = {0}, t[4] = {0}, o[H * DV], lse[H];
    float *pk = calloc(NP * (PAGE * HKV * D + PAD), 4), *pv = calloc(NP * (PAGE * HKV * DV + PAD), 4); /* HND: padded */
    for (int h = 0; h < H; h++) q[h * D] = 1.0f;
    attnc_tensor tens = {.name = "t", .dtype = ATTNC_F32, .rank = 1, .shape = {4}, .data = t};
    int32_t table[LK / PAGE] = {4, 1, 3, 2};
    int64_t kv_len = LK;
    for (int hnd = 0; hnd <= 1; hnd++) {
        attnc_layouts lay;
        memset(&lay, 0, sizeof lay);
        attnc_batch b = {.page_size = PAGE, .num_pages = NP, .pages_per_seq = LK / PAGE, .block_table = table,
                         .kv_len = &kv_len};
        int64_t kps, vps, kn, vn;
        page_layout(hnd ? HND : NHD, PAGE, NP, D, &lay.k, &kps, &kn);
        page_layout(hnd ? HND : NHD, PAGE, NP, DV, &lay.v, &vps, &vn);
        b.k_page_stride = kps, b.v_page_stride = vps;
        memset(pk, 0, (size_t)kn * 4);
        pk[page_elem(hnd ? HND : NHD, &lay.k, kps, PAGE, D, table[37 / PAGE], 37 % PAGE, 1)] = 5.5f * sqrtf((float)D);
        attnc_args a = {{1, H, HKV, 1, 0, D, DV}, q, pk, pv, o, lse, NULL, 0, &tens, 1};
        attnc_status st = attnc_kernel_run_batch(k, &a, &lay, &b, &err);
        CHECK(st == ATTNC_ERR_RUNTIME && strstr(err.message, "kv=37") && strstr(err.message, "index 5"),
              "%s %s pages: a fault at kv 37: status %d, %s", attnc_backend_name(be), hnd ? "HND" : "NHD", st,
              err.message);
    }
    free(pk), free(pv);
    attnc_kernel_free(k);
    attnc_spec_free(spec);
}

/* Each sequence is a call of its own, an empty one too: a tensor shaped by Lq fits the sequences of 5 query
 * rows and fails the one with none (found by attnc-fuzz's batch layout: the batch skipped empty sequences). */
static void empty_sequence_checked(const Data *x) {
    static const char *text = "attention perq { tensor t : float[Lq]; bias t[q]; }\n";
    attnc_spec *spec = NULL;
    attnc_kernel *k = NULL;
    attnc_error err = {0};
    attnc_options opts = {.backend = ATTNC_BACKEND_REFPLAN, .threads = 2};
    if (attnc_spec_from_string("perq.attn", text, strlen(text), &spec, &err) || attnc_compile(spec, "perq", &opts, &k, &err)) {
        CHECK(0, "perq: %s", err.message);
        attnc_spec_free(spec);
        return;
    }
    float t[5] = {0.5f, -1, 2, 0, 1}, *o = malloc(sizeof(float) * (size_t)(x->tq * H * DV)), *lse = malloc(sizeof(float) * (size_t)(x->tq * H));
    attnc_tensor tensors[1] = {{.name = "t", .dtype = ATTNC_F32, .rank = 1, .shape = {5}, .data = t}};
    int64_t qs[3] = {0, 5, 5}, ks[3] = {0, 33, 43}; /* sequence 0: 5 rows, 33 keys; sequence 1: no rows, 10 keys */
    attnc_args a = {{2, H, HKV, 5, 43, D, DV}, x->q, x->k, x->v, o, lse, NULL, 0, tensors, 1};
    attnc_batch b = {.q_start = qs, .k_start = ks};
    attnc_status st = attnc_kernel_run_batch(k, &a, NULL, &b, &err);
    CHECK(st == ATTNC_ERR_RUNTIME && strstr(err.message, "sequence 1"), "an empty sequence's tensor: status %d (%s)", st,
          err.message);
    qs[2] = 10; /* five rows: it fits */
    a.sizes.Lq = 10;
    st = attnc_kernel_run_batch(k, &a, NULL, &b, &err);
    CHECK(st == ATTNC_OK, "two sequences of 5 rows: status %d (%s)", st, err.message);
    /* four sequences on two threads run as pool items: the first failing one (in order) is the error */
    int64_t qs4[5] = {0, 5, 5, 10, 10}, ks4[5] = {0, 33, 43, 60, 70};
    attnc_batch b4 = {.q_start = qs4, .k_start = ks4};
    a.sizes.B = 4, a.sizes.Lk = 70;
    st = attnc_kernel_run_batch(k, &a, NULL, &b4, &err);
    CHECK(st == ATTNC_ERR_RUNTIME && strstr(err.message, "sequence 1:"), "4 sequences, 1 and 3 empty: status %d (%s)", st,
          err.message);
    free(o), free(lse);
    attnc_kernel_free(k);
    attnc_spec_free(spec);
}

int main(int argc, char **argv) {
    attnc_backend list[8];
    int n = 0;
    for (int i = 1; i + 1 < argc; i += 2)
        if (!strcmp(argv[i], "--backend") && n < 8 && attnc_backend_parse(argv[i + 1], &list[n])) n++;
    if (n == 0) {
        static const attnc_backend all[] = {ATTNC_BACKEND_INTERP, ATTNC_BACKEND_REFPLAN, ATTNC_BACKEND_TCC,
                                            ATTNC_BACKEND_CUDA_EMU, ATTNC_BACKEND_LLVM};
        for (int i = 0; i < 5; i++)
            if (attnc_backend_available(all[i])) list[n++] = all[i];
    }
    attnc_spec *spec = NULL;
    attnc_error err = {0};
    if (attnc_spec_from_string("batch.attn", SPEC, strlen(SPEC), &spec, &err)) {
        printf("FAIL spec: %s\n%s", err.message, spec ? attnc_spec_diagnostics(spec) : "");
        return 1;
    }
    Data x;
    make_data(&x);
    static const char *const variants[] = {"causal_br", "alibi_window", "relu"};
    for (int v = 0; v < 3; v++) {
        reference(spec, variants[v], &x);
        for (int i = 0; i < n; i++) check_backend(spec, variants[v], list[i], &x);
    }
    /* page sizes against the default kv tile (64 rows, or what the backend
     * chooses): 64 read in place, 32 and 24 in tiles of a page (the
     * interpreter gathers them), 6 gathered; f32 and bf16 K and V
     * (now bf16 values, so the reference sees exactly what the kernels
     * read) */
    to_bf16_values(x.k, x.tk * HKV * D);
    to_bf16_values(x.v, x.tk * HKV * DV);
    for (int v = 0; v < 3; v++) {
        reference(spec, variants[v], &x);
        for (int i = 0; i < n; i++)
            for (int bf16 = 0; bf16 <= 1; bf16++)
                for (int kind = NHD; kind <= HEADS; kind++) {
                    check_page_size(spec, variants[v], list[i], &x, 64, 0, bf16, kind);
                    check_page_size(spec, variants[v], list[i], &x, 32, 0, bf16, kind);
                    check_page_size(spec, variants[v], list[i], &x, 24, 0, bf16, kind);
                    check_page_size(spec, variants[v], list[i], &x, 6, 0, bf16, kind);
                    check_page_size(spec, variants[v], list[i], &x, 16, 16, bf16, kind);
                }
    }
    hostile(spec, &x);
    hostile_strides(spec, &x);
    for (int i = 0; i < n; i++) fault_in_pages(list[i]);
    empty_sequence_checked(&x);
    attnc_spec_free(spec);
    free(x.q), free(x.k), free(x.v), free(x.ref_o), free(x.ref_lse), free(x.pk), free(x.pv);
    printf(fails ? "FAIL: %d\n" : "ok\n", fails);
    return fails ? 1 : 0;
}
