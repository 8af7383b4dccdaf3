/* rows_items.c — the tables of Q rows made per work item (rows_items.h).
 *
 * A table of Q rows, T[b, h, q, i] = dot(Q[b, h, q, :], E[i, :]), is read
 * by the work item (b, heads h .. h + pack - 1, q tile) at its own rows
 * only, and (Music Transformer's E[q - kv], Shaw's clipped E[kv - q + M])
 * at few columns: the band of E's rows its kv tiles reach.  So instead of
 * the whole table per call (B·H·Lq·n floats: 512 MiB at H = 8, L = 4096)
 * each thread has one buffer of the rows one item spans, and before an
 * item runs it computes those rows at the columns the item can read
 * (middle/tile_table.c), as the small products Q_tile · E_bandᵀ of
 * templates/dense.c (the Music Transformer's "skew": the kernel then reads
 * the band along its diagonals).  Causal Music: q tile [q0, q1) fills
 * columns [0, q1), as much work as the tile's own Q·Kᵀ; memory O(threads ·
 * rows of a tile · n).
 *
 * The kernel indexes T as the whole table: element (b, h, q, i) at
 * ((b·H + h)·Lq + q)·n + i from tensor_data.  The item's buffer holds rows
 * [r0, r0 + slab) of that flattened table (row stride n, the columns not
 * filled never read), so the item's tensor_data points r0·n floats before
 * the buffer.  That address lies outside any object, which C pointer
 * arithmetic may not form, so it is computed as a uintptr_t (the kernel's
 * offset arithmetic wraps back into the buffer, the way machine addresses
 * do); the kernel dereferences only indexes inside T's shape (every load is
 * bounds-checked: padded q rows past Lq read nothing), and those of the
 * item's rows and columns land in the filled part of the buffer.
 * Requires: a bound call whose dot lengths were checked (bind.c).
 * Produces: rows_items_new, rows_items_hook, rows_items_free. */
#include "rows_items.h"

#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "tensor_io.h"
#include "threads.h"
#include "tile_table.h"

enum { ROWS = 64, COLS = 64 }; /* Q rows per product; E rows (table columns) per block of E transposed */

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define ROWS_HAVE_AVX512 1

/* Columns [from, to) of one block (< COLS) of rows i < nr: dst[i * ld + j] = sum over d < D of x[i * D + d] *
 * bt[d * COLS + j], straight into the item's rows.  4 rows x 32 columns of sums stay in registers and each step
 * is a fused multiply-add: templates/dense.c's product, compiled as ISO C, multiplies and adds apart and keeps its
 * sums on the stack, at a fraction of the FMA peak, and then its block is copied once more. */
#define ROWS_STEP(r) c##r##0 = _mm512_fmadd_ps(_mm512_set1_ps(a##r[d]), b0, c##r##0), \
                     c##r##1 = _mm512_fmadd_ps(_mm512_set1_ps(a##r[d]), b1, c##r##1)
__attribute__((target("avx512f"))) static void block_avx512(const float *x, int64_t nr, int64_t D, const float *bt,
                                                            float *dst, int64_t ld, int64_t from, int64_t to) {
    for (int64_t i = 0; i < nr; i += 4) {
        int64_t rows = nr - i < 4 ? nr - i : 4; /* rows past nr repeat row i: computed, never stored */
        const float *a0 = x + i * D, *a1 = rows > 1 ? a0 + D : a0, *a2 = rows > 2 ? a0 + 2 * D : a0;
        const float *a3 = rows > 3 ? a0 + 3 * D : a0;
        for (int64_t j = from / 32 * 32; j < to; j += 32) {
            __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00,
                   c31 = c00;
            for (int64_t d = 0; d < D; d++) {
                __m512 b0 = _mm512_loadu_ps(bt + d * COLS + j), b1 = _mm512_loadu_ps(bt + d * COLS + j + 16);
                ROWS_STEP(0), ROWS_STEP(1), ROWS_STEP(2), ROWS_STEP(3);
            }
            __m512 c[4][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}};
            for (int h = 0; h < 2; h++) { /* the lanes of [from, to) */
                int64_t base = j + 16 * h, lo = from > base ? from - base : 0, hi = to - base < 16 ? to - base : 16;
                if (hi <= lo) continue;
                __mmask16 m = (__mmask16)(((1u << hi) - 1) & ~((1u << lo) - 1));
                for (int64_t r = 0; r < rows; r++) _mm512_mask_storeu_ps(dst + (i + r) * ld + base, m, c[r][h]);
            }
        }
    }
}
#undef ROWS_STEP
#else
#define ROWS_HAVE_AVX512 0
#endif

typedef struct QTable {
    int index;     /* the table among the rewritten call's tensors */
    int64_t n;     /* its columns: E's rows */
    float *et;     /* E transposed in blocks of COLS columns: [blocks][D][COLS], zero-padded */
    int64_t *cols; /* [splits][items][2]: the columns each item reads */
    float *whole;  /* the whole table, when made once per call; else NULL */
    float *buf;    /* [threads][slab][n]: the rows of one item per thread */
} QTable;

struct RowsItems {
    const BoundCall *bc;
    const void *q;
    DenseProductFn product;
    int avx512; /* block_avx512 instead of product */
    QTable *t;
    int nt, splits;
    int64_t pack, bq, nqt, items, slab; /* slab: rows of T one item spans */
    float *x, *s; /* [threads][ROWS][D] Q rows widened; [threads][ROWS][COLS] one block's products */
};

/* E transposed in blocks of COLS of its rows, each [D][COLS]. */
static float *blocks_of(const float *e, int64_t n, int64_t D) {
    int64_t nb = (n + COLS - 1) / COLS;
    float *et = calloc((size_t)(nb * D * COLS) + 1, sizeof(float));
    if (et)
        for (int64_t i = 0; i < n; i++)
            for (int64_t d = 0; d < D; d++) et[(i / COLS * D + d) * COLS + i % COLS] = e[i * D + d];
    return et;
}

RowsItems *rows_items_new(const BoundCall *bc, const RowsRewrite *rw, const void *q) {
    RowsItems *ri = calloc(1, sizeof *ri);
    if (!ri || !(ri->t = calloc((size_t)rw->ntables + 1, sizeof *ri->t))) {
        free(ri);
        return NULL;
    }
    ri->bc = bc, ri->q = q, ri->product = backend_dense_product();
#if ROWS_HAVE_AVX512
    __builtin_cpu_init();
    ri->avx512 = __builtin_cpu_supports("avx512f");
#endif
    for (int i = 0; i < rw->ntables; i++) {
        if (rw->tables[i].is_k) continue;
        const attnc_tensor *E = bc->tensors[rw->tables[i].tensor->index];
        QTable *t = &ri->t[ri->nt++];
        t->index = rw->ntensors_before + i;
        t->n = 1;
        for (int d = 0; d + 1 < E->rank; d++) t->n *= E->shape[d];
        if (!(t->et = blocks_of((const float *)E->data, t->n, bc->sz.D))) {
            rows_items_free(ri);
            return NULL;
        }
    }
    if (ri->nt == 0) {
        rows_items_free(ri);
        return NULL;
    }
    return ri;
}

void rows_items_free(RowsItems *ri) {
    if (!ri) return;
    for (int i = 0; i < ri->nt; i++) {
        free(ri->t[i].et);
        free(ri->t[i].cols);
        free(ri->t[i].whole);
        free(ri->t[i].buf);
    }
    free(ri->t);
    free(ri->x);
    free(ri->s);
    free(ri);
}

/* Rows [q0, q1) of (b, h) of table t at the blocks of columns meeting
 * [c0, c1), written from dst (row q0's column 0; rows n apart). */
static void fill_rows(const RowsItems *ri, const QTable *t, int thread, int64_t b, int64_t h, int64_t q0, int64_t q1,
                      int64_t c0, int64_t c1, float *dst) {
    const BoundLayout *l = &ri->bc->layout[BT_Q];
    int64_t D = ri->bc->sz.D;
    float *x = ri->x + (int64_t)thread * ROWS * D, *s = ri->s + (int64_t)thread * ROWS * COLS;
    for (int64_t r0 = q0; r0 < q1; r0 += ROWS) {
        int64_t nr = q1 - r0 < ROWS ? q1 - r0 : ROWS;
        for (int64_t r = 0; r < nr; r++) {
            int64_t at = b * l->stride[0] + h * l->stride[1] + (r0 + r) * l->stride[2];
            for (int64_t d = 0; d < D; d++) x[r * D + d] = (float)tensor_load(ri->q, l->elem, at + d);
        }
        for (int64_t j = c0 / COLS; j * COLS < c1; j++) {
            /* only [c0, c1) of the block: a column interval too narrow reads stale rows, which the tests see */
            int64_t from = c0 > j * COLS ? c0 : j * COLS, to = c1 < (j + 1) * COLS ? c1 : (j + 1) * COLS;
            float *out = dst + (r0 - q0) * t->n + j * COLS;
#if ROWS_HAVE_AVX512
            if (ri->avx512) {
                block_avx512(x, nr, D, t->et + j * D * COLS, out, t->n, from - j * COLS, to - j * COLS);
                continue;
            }
#endif
            ri->product(x, D, nr, D, t->et + j * D * COLS, COLS, s);
            for (int64_t r = 0; r < nr; r++)
                memcpy(out + r * t->n + from - j * COLS, s + r * COLS + from - j * COLS,
                       sizeof(float) * (size_t)(to - from));
        }
    }
}

typedef struct Whole {
    const RowsItems *ri;
    const QTable *t;
} Whole;

/* The whole table's rows of one (b, h). */
static void fill_head(void *ctx, int64_t bh, int thread) {
    const Whole *w = ctx;
    const attnc_sizes *sz = &w->ri->bc->sz;
    fill_rows(w->ri, w->t, thread, bh / sz->H, bh % sz->H, 0, sz->Lq, 0, w->t->n, w->t->whole + bh * sz->Lq * w->t->n);
}

/* Table t's columns for every item of every split; then per item, or the
 * whole table when the items together would compute more of it. */
static attnc_status plan_table(RowsItems *ri, QTable *t, const Plan *p, const BoundCall *bc, const TileMap *tm,
                               int threads, attnc_error *err) {
    const attnc_sizes *sz = &bc->sz;
    int64_t per_split = ri->items * 2, work = 0;
    if (!(t->cols = malloc(sizeof(int64_t) * (size_t)(per_split * ri->splits) + 1)))
        return set_error(err, ATTNC_ERR_NOMEM, "out of memory");
    for (int s = 0; s < ri->splits; s++) {
        attnc_status st = tile_table_columns(p, bc, &tm[s], t->index, ri->pack, t->cols + s * per_split, err);
        if (st) return st;
        for (int64_t it = 0; it < ri->items; it++) {
            int64_t q0 = it % ri->nqt * ri->bq, rows = (q0 + ri->bq < sz->Lq ? ri->bq : sz->Lq - q0) * ri->pack;
            work += rows * (t->cols[s * per_split + 2 * it + 1] - t->cols[s * per_split + 2 * it]);
        }
    }
    if (work > sz->B * sz->H * sz->Lq * t->n) { /* kv splits wanting every column: once per call */
        if (!(t->whole = malloc(sizeof(float) * (size_t)(sz->B * sz->H * sz->Lq * t->n) + 1)))
            return set_error(err, ATTNC_ERR_NOMEM, "out of memory for the table %s", bc->attn->tensors[t->index]->name);
        Whole w = {ri, t};
        pool_run(threads, sz->B * sz->H, fill_head, &w);
        return ATTNC_OK;
    }
    if (!(t->buf = malloc(sizeof(float) * (size_t)(threads * ri->slab * t->n) + 1)))
        return set_error(err, ATTNC_ERR_NOMEM, "out of memory for %d threads' rows of %s", threads,
                         bc->attn->tensors[t->index]->name);
    return ATTNC_OK;
}

static attnc_status items_begin(void *ctx, const Plan *p, const BoundCall *bc, const TileMap *tm, int splits,
                                int64_t pack, int threads, attnc_error *err) {
    RowsItems *ri = ctx;
    const attnc_sizes *sz = &bc->sz;
    ri->splits = splits, ri->pack = pack, ri->bq = tm[0].bq, ri->nqt = tm[0].nqt;
    ri->items = sz->B * (sz->H / pack) * ri->nqt;
    ri->slab = (pack - 1) * sz->Lq + (ri->bq < sz->Lq ? ri->bq : sz->Lq);
    ri->x = malloc(sizeof(float) * (size_t)(threads * ROWS * sz->D) + 1);
    ri->s = malloc(sizeof(float) * (size_t)(threads * ROWS * COLS) + 1);
    if (!ri->x || !ri->s) return set_error(err, ATTNC_ERR_NOMEM, "out of memory");
    for (int i = 0; i < ri->nt; i++) {
        attnc_status st = plan_table(ri, &ri->t[i], p, bc, tm, threads, err);
        if (st) return st;
    }
    return ATTNC_OK;
}

/* Work item `item` of split `split`: its rows at its columns, and its tables' pointers. */
static void items_item(void *ctx, int thread, int split, int64_t item, const void **tensor_data) {
    const RowsItems *ri = ctx;
    const attnc_sizes *sz = &ri->bc->sz;
    int64_t heads = sz->H / ri->pack, bh = item / ri->nqt, b = bh / heads, h0 = bh % heads * ri->pack;
    int64_t q0 = item % ri->nqt * ri->bq, q1 = q0 + ri->bq < sz->Lq ? q0 + ri->bq : sz->Lq;
    int64_t r0 = (b * sz->H + h0) * sz->Lq + q0; /* the item's first row of T */
    for (int i = 0; i < ri->nt; i++) {
        const QTable *t = &ri->t[i];
        if (t->whole) {
            tensor_data[t->index] = t->whole;
            continue;
        }
        const int64_t *c = t->cols + ((int64_t)split * ri->items + item) * 2;
        float *buf = t->buf + (int64_t)thread * ri->slab * t->n;
        for (int64_t h = h0; h < h0 + ri->pack && c[0] < c[1]; h++)
            fill_rows(ri, t, thread, b, h, q0, q1, c[0], c[1], buf + ((b * sz->H + h) * sz->Lq + q0 - r0) * t->n);
        /* T's element 0 as the kernel indexes it: r0 rows before the buffer (the file's header says why uintptr_t) */
        tensor_data[t->index] = (const void *)((uintptr_t)buf - (uintptr_t)r0 * (uintptr_t)t->n * sizeof(float));
    }
}

LaunchItemTensors rows_items_hook(RowsItems *ri) { return (LaunchItemTensors){ri, items_begin, items_item}; }
