/* api_batch.c — attnc_kernel_run_batch: ragged batches and paged KV caches
 * (include/attnc.h, docs/decode.md).
 *
 * Each sequence is a call of its own through attnc_kernel_run_layout, so
 * every backend computes it as it computes any call (tile maps, packed
 * heads, split-KV).  Before any sequence runs, the batch is checked (offsets,
 * lengths, page ids) and the whole buffers are bound once as one call of B =
 * 1 over every row, which checks their layouts, extents and overlaps.  O and
 * LSE go to private buffers and are copied out only when every sequence
 * succeeded: on an error nothing is written.  Params and tensors are bound
 * by each sequence's call, with that sequence's sizes.  A sequence whose pages are not
 * consecutive rows of one L dimension is read through its block table by a
 * kernel that reads pages (CompiledKernel.pages; any page stride), with kv
 * tiles of the plan's size where they divide a page, else, for a kernel
 * that takes shorter ones (CompiledKernel.short_kv_tiles), of the largest
 * size below it that does (api.c: attnc_kernel_page_tile); for any other
 * its K and V rows are gathered, head-major, into a buffer the kernel keeps
 * for the next batch (attnc_kernel.gathered).  With page strides (attnc_batch.k_page_stride,
 * v_page_stride) K and V are bound as [num_pages, Hkv, page_size, D] views,
 * the page stride first. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"
#include "api_kernel.h"
#include "attnc.h"
#include "bind.h"
#include "threads.h"

typedef struct Batch {
    const attnc_args *args;
    const attnc_batch *bt;
    attnc_layouts lay;      /* the caller's, zero strides resolved */
    int64_t nseq;
    int64_t rows_q, rows_k; /* rows of Q (O, LSE) and of K (V) */
    int ebytes[5];          /* bytes of an element of Q, K, V, O, LSE */
    int64_t page_stride[2]; /* elements from one page of K (V) to the next, resolved */
} Batch;

static int elem_bytes(attnc_elem e) { return e == ATTNC_ELEM_F32 ? 4 : 2; }

/* Zero strides: [rows, heads, row] (THD); LSE [heads, rows] of `rows`. */
static void resolve_strides(attnc_layout *l, int64_t heads, int64_t row, int lse, int64_t rows) {
    if (l->stride[0] || l->stride[1] || l->stride[2] || (!lse && l->stride[3])) return; /* LSE: stride[3] unused */
    if (lse) l->stride[1] = rows, l->stride[2] = 1;
    else l->stride[3] = 1, l->stride[2] = heads * row, l->stride[1] = row;
}

static int64_t seq_q(const Batch *b, int64_t s) {
    return b->bt->q_start ? b->bt->q_start[s] : s * b->args->sizes.Lq;
}

/* Keys of sequence s and the row of K where they start (-1: paged). */
static int64_t seq_k(const Batch *b, int64_t s, int64_t *first) {
    const attnc_batch *bt = b->bt;
    *first = -1;
    if (bt->page_size > 0) return bt->kv_len ? bt->kv_len[s] : b->args->sizes.Lk;
    *first = bt->k_start ? bt->k_start[s] : s * b->args->sizes.Lk;
    return bt->k_start ? bt->k_start[s + 1] - bt->k_start[s] : b->args->sizes.Lk;
}

/* Offsets non-decreasing from 0 up, within `rows`. */
static attnc_status check_starts(const char *name, const int64_t *start, int64_t nseq, int64_t rows, const char *dim,
                                 attnc_error *err) {
    if (start[0] < 0) return set_error(err, ATTNC_ERR_USAGE, "%s[0] = %lld is negative", name, (long long)start[0]);
    for (int64_t s = 0; s < nseq; s++)
        if (start[s + 1] < start[s])
            return set_error(err, ATTNC_ERR_USAGE,
                             "%s[%lld] = %lld is less than %s[%lld] = %lld: sequences' rows must not overlap", name,
                             (long long)(s + 1), (long long)start[s + 1], name, (long long)s, (long long)start[s]);
    if (start[nseq] > rows)
        return set_error(err, ATTNC_ERR_USAGE, "%s[%lld] = %lld runs past the %lld rows of %s", name, (long long)nseq,
                         (long long)start[nseq], (long long)rows, dim);
    return ATTNC_OK;
}

static attnc_status check_pages(const Batch *b, attnc_error *err) {
    const attnc_batch *bt = b->bt;
    if (bt->k_start) return set_error(err, ATTNC_ERR_USAGE, "a batch has k_start or a paged KV cache, not both");
    if (bt->num_pages <= 0 || bt->pages_per_seq <= 0 || !bt->block_table)
        return set_error(err, ATTNC_ERR_USAGE, "a paged KV cache needs num_pages > 0, pages_per_seq > 0 and a block_table");
    if (bt->num_pages > ((int64_t)1 << 40) / bt->page_size || bt->pages_per_seq > ((int64_t)1 << 40) / bt->page_size)
        return set_error(err, ATTNC_ERR_USAGE, "the paged KV cache is larger than any buffer");
    for (int64_t s = 0; s < b->nseq; s++) {
        int64_t first, n = seq_k(b, s, &first);
        if (n < 0 || n > bt->pages_per_seq * bt->page_size)
            return set_error(err, ATTNC_ERR_USAGE, "sequence %lld has %lld keys: not in [0, %lld] (pages_per_seq * page_size)",
                             (long long)s, (long long)n, (long long)(bt->pages_per_seq * bt->page_size));
        for (int64_t j = 0; j * bt->page_size < n; j++) {
            int32_t p = bt->block_table[s * bt->pages_per_seq + j];
            if (p < 0 || p >= bt->num_pages)
                return set_error(err, ATTNC_ERR_RUNTIME, "block_table[%lld][%lld] = %d is not a page: num_pages = %lld",
                                 (long long)s, (long long)j, p, (long long)bt->num_pages);
        }
    }
    return ATTNC_OK;
}

/* Tensor t (BT_K, BT_V; BT_O, BT_LSE of `whole`) bound: its bytes [*first,
 * *end).  K and V as [num_pages, Hkv, page_size, D] with the page stride
 * first: extent, and no two pages (or rows) sharing memory. */
static attnc_status bound_bytes(const Batch *b, const attnc_args *whole, BindTensor t, uintptr_t *first, uintptr_t *end,
                                attnc_error *err) {
    static const char *const names[BT_COUNT] = {"Q", "K", "V", "O", "LSE"};
    const attnc_layout *lay[BT_COUNT] = {&b->lay.q, &b->lay.k, &b->lay.v, &b->lay.o, &b->lay.lse};
    const void *ptr[BT_COUNT] = {whole->q, whole->k, whole->v, whole->o, whole->lse};
    attnc_layout l = *lay[t];
    int64_t dims[4];
    bind_tensor_dims(&whole->sizes, t, dims);
    int kv = t == BT_K || t == BT_V;
    if (kv) {
        dims[0] = b->bt->num_pages, dims[2] = b->bt->page_size;
        l.stride[0] = b->page_stride[t == BT_V];
    }
    BoundLayout out;
    attnc_error e = {0};
    attnc_status st = bind_one_layout(names[t], dims, t == BT_LSE, 1, &l, ptr[t], &out, first, end, &e);
    if (st && kv)
        return set_error(err, st, "paged %s (%s = %lld): %s", names[t], t == BT_V ? "v_page_stride" : "k_page_stride",
                         (long long)l.stride[0], e.message);
    return st ? set_error(err, st, "%s", e.message) : ATTNC_OK;
}

/* Page strides: K and V checked as pages (bound_bytes); every other buffer
 * as one call without keys; then O and LSE clear of K's and V's pages. */
static attnc_status check_strided_pages(const Batch *b, attnc_args *whole, attnc_error *err) {
    whole->sizes.Lk = 0;
    attnc_status st = bind_check_layouts(whole, &b->lay, 1, err);
    uintptr_t first[BT_COUNT], end[BT_COUNT];
    for (int t = BT_K; !st && t < BT_COUNT; t++) st = bound_bytes(b, whole, (BindTensor)t, &first[t], &end[t], err);
    if (st) return st;
    for (int out = BT_O; out <= BT_LSE; out++)
        for (int in = BT_K; in <= BT_V; in++)
            if (first[out] < end[out] && first[in] < end[in] && first[out] < end[in] && first[in] < end[out])
                return set_error(err, ATTNC_ERR_USAGE, "%s overlaps %s's pages in memory (outputs must not alias)",
                                 out == BT_O ? "O" : "LSE", in == BT_K ? "K" : "V");
    return ATTNC_OK;
}

/* rows * stride elements, saturated at 2^62, a negative stride as it is:
 * no overflow before the strides are checked (which reject what this bends). */
static int64_t rows_apart(int64_t rows, int64_t stride) {
    const int64_t cap = (int64_t)1 << 62;
    return stride < 0 ? stride : stride > 0 && rows > cap / stride ? cap : rows * stride;
}

/* The batch's own checks and sizes; then the buffers bound as one call. */
static attnc_status check_batch(Batch *b, attnc_error *err) {
    const attnc_batch *bt = b->bt;
    const attnc_sizes *sz = &b->args->sizes;
    b->nseq = sz->B;
    if (sz->B < 0 || sz->Lq < 0 || sz->Lk < 0 || sz->H <= 0 || sz->Hkv <= 0 || sz->D < 0 || sz->Dv < 0)
        return set_error(err, ATTNC_ERR_USAGE, "bad sizes for a batch: B, Lq, Lk, D, Dv >= 0 and H, Hkv > 0");
    if (bt->page_size < 0) return set_error(err, ATTNC_ERR_USAGE, "page_size = %lld is negative", (long long)bt->page_size);
    if (sz->B > ((int64_t)1 << 30)) return set_error(err, ATTNC_ERR_USAGE, "B = %lld sequences is too many", (long long)sz->B);
    attnc_status st = ATTNC_OK;
    b->rows_q = bt->q_start ? sz->Lq : sz->B * sz->Lq;
    if (bt->q_start) st = check_starts("q_start", bt->q_start, b->nseq, sz->Lq, "Q", err);
    if (!st && bt->page_size > 0) {
        st = check_pages(b, err);
        b->rows_k = bt->num_pages * bt->page_size;
    } else if (!st) {
        b->rows_k = bt->k_start ? sz->Lk : sz->B * sz->Lk;
        if (bt->k_start) st = check_starts("k_start", bt->k_start, b->nseq, sz->Lk, "K", err);
    }
    if (st) return st;
    if (bt->k_page_stride < 0 || bt->v_page_stride < 0)
        return set_error(err, ATTNC_ERR_USAGE, "%s = %lld is negative",
                         bt->k_page_stride < 0 ? "k_page_stride" : "v_page_stride",
                         (long long)(bt->k_page_stride < 0 ? bt->k_page_stride : bt->v_page_stride));
    if ((bt->k_page_stride || bt->v_page_stride) && bt->page_size == 0)
        return set_error(err, ATTNC_ERR_USAGE, "k_page_stride and v_page_stride apply to a paged KV cache (page_size > 0)");
    attnc_layout *l[5] = {&b->lay.q, &b->lay.k, &b->lay.v, &b->lay.o, &b->lay.lse};
    int64_t heads[5] = {sz->H, sz->Hkv, sz->Hkv, sz->H, sz->H}, row[5] = {sz->D, sz->D, sz->Dv, sz->Dv, 1};
    for (int t = 0; t < 5; t++) {
        resolve_strides(l[t], heads[t], row[t], t == 4, b->rows_q);
        b->ebytes[t] = elem_bytes(l[t]->elem);
    }
    b->page_stride[0] = bt->k_page_stride ? bt->k_page_stride : rows_apart(bt->page_size, b->lay.k.stride[2]);
    b->page_stride[1] = bt->v_page_stride ? bt->v_page_stride : rows_apart(bt->page_size, b->lay.v.stride[2]);
    /* every buffer at once: one call of B = 1 over all rows */
    attnc_args whole = *b->args;
    whole.sizes.B = 1, whole.sizes.Lq = b->rows_q, whole.sizes.Lk = b->rows_k;
    /* params and tensors are bound per sequence, with its sizes */
    if (bt->page_size > 0 && (bt->k_page_stride || bt->v_page_stride)) return check_strided_pages(b, &whole, err);
    return bind_check_layouts(&whole, &b->lay, 1, err);
}

static const void *at(const void *base, int64_t elems, int bytes) { return (const char *)base + elems * bytes; }

/* Gather the rows of sequence s's pages into kv (heads x rows x row,
 * head-major: a decode work item reads one kv head's rows, which decode
 * reads ~2x faster back to back than Hkv * row elements apart); pages
 * page_stride elements apart. */
static void gather(const Batch *b, int64_t s, int64_t n, const void *src, const attnc_layout *l, int64_t page_stride,
                   int bytes, int64_t heads, int64_t row, char *kv) {
    const attnc_batch *bt = b->bt;
    for (int64_t kv_i = 0; kv_i < n; kv_i++) {
        int64_t page = bt->block_table[s * bt->pages_per_seq + kv_i / bt->page_size];
        int64_t r = page * page_stride + kv_i % bt->page_size * l->stride[2];
        for (int64_t h = 0; h < heads; h++)
            memcpy(kv + ((h * n + kv_i) * row) * bytes, at(src, r + h * l->stride[1], bytes), (size_t)(row * bytes));
    }
}

/* K and V of sequence s with n keys: in place (ragged, or pages one after
 * another), read through its block table row by a kernel that reads pages
 * (*pages set; not when `gather`), or gathered into buffer 0 of *buf (taken from the kernel's kept buffers:
 * kept_buffers_put it back). */
static attnc_status seq_kv(const attnc_kernel *k, const Batch *b, int64_t s, int64_t n, int gather_pages,
                           attnc_args *a, attnc_layouts *lay, LaunchPages *pages, Buffers **buf, attnc_error *err) {
    const attnc_batch *bt = b->bt;
    const attnc_sizes *sz = &b->args->sizes;
    int64_t first;
    seq_k(b, s, &first);
    int consecutive = 1;
    int64_t page0 = 0; /* paged: the sequence's first page */
    if (first < 0) {
        /* pages in order are rows of one L dimension only when a page is page_size rows */
        consecutive = b->page_stride[0] == bt->page_size * b->lay.k.stride[2] &&
                      b->page_stride[1] == bt->page_size * b->lay.v.stride[2];
        page0 = n > 0 ? bt->block_table[s * bt->pages_per_seq] : 0;
        for (int64_t j = 1; j * bt->page_size < n; j++)
            consecutive &= bt->block_table[s * bt->pages_per_seq + j] == page0 + j;
        first = 0;
    }
    int64_t tile = consecutive || gather_pages ? 0 : attnc_kernel_page_tile(k, bt->page_size);
    if (tile) {
        *pages = (LaunchPages){bt->block_table + s * bt->pages_per_seq, bt->page_size, b->page_stride[0],
                               b->page_stride[1], tile};
        lay->k.extent = lay->v.extent = 0; /* every page inside the whole buffers, checked once */
        return ATTNC_OK;
    }
    if (consecutive) {
        a->k = at(b->args->k, first * b->lay.k.stride[2] + page0 * b->page_stride[0], b->ebytes[1]);
        a->v = at(b->args->v, first * b->lay.v.stride[2] + page0 * b->page_stride[1], b->ebytes[2]);
        lay->k.extent = lay->v.extent = 0; /* inside the whole buffers, checked once */
        return ATTNC_OK;
    }
    size_t kb = (size_t)(n * sz->Hkv * sz->D * b->ebytes[1]), vb = (size_t)(n * sz->Hkv * sz->Dv * b->ebytes[2]);
    Buffers *kept = kept_buffers_take(k->gathered);
    char *p = kept ? buffers_reserve(kept, 0, kb + vb) : NULL;
    if (!p) {
        kept_buffers_put(NULL, kept);
        return set_error(err, ATTNC_ERR_NOMEM, "out of memory gathering the pages of sequence %lld", (long long)s);
    }
    gather(b, s, n, b->args->k, &b->lay.k, b->page_stride[0], b->ebytes[1], sz->Hkv, sz->D, p);
    gather(b, s, n, b->args->v, &b->lay.v, b->page_stride[1], b->ebytes[2], sz->Hkv, sz->Dv, p + kb);
    *buf = kept;
    a->k = (const float *)p, a->v = (const float *)(p + kb);
    attnc_layout *l[2] = {&lay->k, &lay->v};
    int64_t row[2] = {sz->D, sz->Dv};
    for (int t = 0; t < 2; t++) {
        memset(l[t]->stride, 0, sizeof l[t]->stride);
        l[t]->stride[3] = 1, l[t]->stride[2] = row[t], l[t]->stride[1] = n * row[t], l[t]->extent = 0;
    }
    return ATTNC_OK;
}

/* Run sequence s into the private O (THD, O's type) and LSE ([H, rows]);
 * its pages read in place unless `gather_pages`. */
static attnc_status run_seq(const attnc_kernel *k, const Batch *b, int64_t s, int gather_pages, int threads, char *o,
                            float *lse, attnc_error *err) {
    const attnc_sizes *sz = &b->args->sizes;
    int64_t q0 = seq_q(b, s), nq = b->bt->q_start ? b->bt->q_start[s + 1] - q0 : sz->Lq, first;
    int64_t nk = seq_k(b, s, &first);
    attnc_args a = *b->args;
    attnc_layouts lay = b->lay;
    a.sizes.B = 1, a.sizes.Lq = nq, a.sizes.Lk = nk;
    a.q = at(b->args->q, q0 * b->lay.q.stride[2], b->ebytes[0]);
    lay.q.extent = 0;
    a.o = (float *)(o + q0 * sz->H * sz->Dv * b->ebytes[3]);
    memset(lay.o.stride, 0, sizeof lay.o.stride);
    lay.o.stride[3] = 1, lay.o.stride[2] = sz->H * sz->Dv, lay.o.stride[1] = sz->Dv, lay.o.extent = 0;
    a.lse = lse + q0;
    memset(lay.lse.stride, 0, sizeof lay.lse.stride);
    lay.lse.stride[2] = 1, lay.lse.stride[1] = b->rows_q, lay.lse.extent = 0;
    Buffers *buf = NULL;
    LaunchPages pages = {NULL, 0, 0, 0, 0};
    attnc_status st = seq_kv(k, b, s, nk, gather_pages, &a, &lay, &pages, &buf, err);
    if (!st) { /* an empty sequence too: its params and tensors are checked like any call's */
        st = attnc_kernel_run_pages(k, &a, &lay, pages.table ? &pages : NULL, threads, err);
        if (st == ATTNC_ERR_RUNTIME && pages.table) { /* a fault: the interpreter names it on gathered K and V */
            if (buf) kept_buffers_put(k->gathered, buf);
            return run_seq(k, b, s, 1, threads, o, lse, err);
        }
        if (st && err) {
            char msg[sizeof err->message];
            int n = snprintf(msg, sizeof msg, "sequence %lld: ", (long long)s);
            if (n > 0 && (size_t)n < sizeof msg) {
                size_t room = sizeof msg - (size_t)n - 1, len = strlen(err->message);
                memcpy(msg + n, err->message, len < room ? len : room);
                msg[(size_t)n + (len < room ? len : room)] = 0;
                memcpy(err->message, msg, sizeof msg);
            }
        }
    }
    if (buf) kept_buffers_put(k->gathered, buf);
    return st;
}

/* Rows [r0, r1) of the private O and LSE into the caller's buffers. */
static void copy_out(const Batch *b, const char *o, const float *lse, int64_t r0, int64_t r1) {
    const attnc_sizes *sz = &b->args->sizes;
    int ob = b->ebytes[3];
    for (int64_t r = r0; r < r1; r++)
        for (int64_t h = 0; h < sz->H; h++) {
            memcpy((char *)b->args->o + (r * b->lay.o.stride[2] + h * b->lay.o.stride[1]) * ob,
                   o + ((r * sz->H + h) * sz->Dv) * ob, (size_t)(sz->Dv * ob));
            if (b->args->lse) b->args->lse[r * b->lay.lse.stride[2] + h * b->lay.lse.stride[1]] = lse[h * b->rows_q + r];
        }
}

/* Sequences as work items of the thread pool, each on one thread. */
typedef struct SeqRuns {
    const attnc_kernel *k;
    const Batch *b;
    char *o;
    float *lse;
    attnc_status *status; /* [nseq] */
    attnc_error *errs;    /* [nseq] */
} SeqRuns;

static void seq_work(void *ctx, int64_t s, int thread) {
    (void)thread;
    SeqRuns *r = ctx;
    r->status[s] = run_seq(r->k, r->b, s, 0, 1, r->o, r->lse, &r->errs[s]);
}

/* Every sequence into the private O and LSE: one after another, each call on
 * all the kernel's threads (split-KV and all), or, when the sequences are at
 * least twice the threads, as items of the pool, each on one thread (a
 * decode batch: one call per sequence would wake the threads for a few
 * rows each).  Either way the first failing sequence (in order) is the
 * error, and the choice depends only on B and the thread count, so a call
 * gives the same bits every time. */
static attnc_status run_all(const attnc_kernel *k, const Batch *b, char *o, float *lse, attnc_error *err) {
    int threads = attnc_kernel_threads(k);
    if (threads < 2 || b->nseq < 2 * (int64_t)threads) {
        attnc_status st = ATTNC_OK;
        for (int64_t s = 0; !st && s < b->nseq; s++) st = run_seq(k, b, s, 0, 0, o, lse, err);
        return st;
    }
    SeqRuns r = {k, b, o, lse, calloc((size_t)b->nseq, sizeof(attnc_status)), calloc((size_t)b->nseq, sizeof(attnc_error))};
    attnc_status st = r.status && r.errs ? ATTNC_OK : set_error(err, ATTNC_ERR_NOMEM, "out of memory");
    if (!st) pool_run(threads, b->nseq, seq_work, &r);
    for (int64_t s = 0; !st && s < b->nseq; s++)
        if ((st = r.status[s]) && err) *err = r.errs[s];
    free(r.status);
    free(r.errs);
    return st;
}

attnc_status attnc_kernel_run_batch(const attnc_kernel *k, const attnc_args *args, const attnc_layouts *layouts,
                                    const attnc_batch *batch, attnc_error *err) {
    if (!k) return set_error(err, ATTNC_ERR_USAGE, "kernel is NULL");
    if (!args || !batch) return set_error(err, ATTNC_ERR_USAGE, "no arguments or no batch given (NULL)");
    Batch b;
    memset(&b, 0, sizeof b);
    b.args = args, b.bt = batch;
    if (layouts) b.lay = *layouts;
    attnc_status st = check_batch(&b, err);
    if (st) return st;
    const attnc_sizes *sz = &args->sizes;
    char *o = malloc((size_t)(b.rows_q * sz->H * sz->Dv * b.ebytes[3]) + 4);
    float *lse = malloc(sizeof(float) * (size_t)(b.rows_q * sz->H + 1));
    if (!o || !lse) st = set_error(err, ATTNC_ERR_NOMEM, "out of memory");
    /* rows no sequence covers (before q_start[0], after q_start[B]) are not outputs: left as they are */
    if (!st) st = run_all(k, &b, o, lse, err);
    for (int64_t s = 0; !st && s < b.nseq; s++) {
        int64_t q0 = seq_q(&b, s);
        copy_out(&b, o, lse, q0, batch->q_start ? batch->q_start[s + 1] : q0 + sz->Lq);
    }
    free(o);
    free(lse);
    if (!st && err) {
        err->status = ATTNC_OK;
        err->message[0] = 0;
    }
    return st;
}
