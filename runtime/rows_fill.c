/* rows_fill.c — the per-call tables of middle/rows_table.h:
 * T[b, h, row, i...] = dot(X[b, h, row, :], E[i..., :]) for X = Q (or the
 * rotated Q) or K, float32 products accumulated in float32 like the
 * kernel's own dot products (templates/dense.c's register-blocked product,
 * vectorised), one work item of the thread pool per (b, head).  The
 * llvm and tcc launches make the tables of Q rows per work item instead
 * (rows_items.c): then only the tables of K rows are made here.
 * Requires: a bound call whose dot lengths were checked (bind.c: E's last
 * extent is D).
 * Produces: rows_fill, rows_free (rows_fill.h). */
#include "rows_fill.h"

#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "tensor_io.h"
#include "threads.h"

typedef struct Fill {
    const BoundCall *bc;
    const void *x;      /* Q or K */
    const BoundLayout *l;
    const float *et;    /* E transposed: [D][n] */
    int64_t heads, rows, n;
    float *out;         /* [B][heads][rows][n] */
    float *xbuf;        /* [threads][CHUNK][D]: rows of one (b, head) widened to float32 */
    DenseProductFn product;
} Fill;

enum { CHUNK = 64 };

/* the rows of one (b, head) against every row of E */
static void fill_item(void *ctx, int64_t item, int thread) {
    const Fill *f = ctx;
    int64_t D = f->bc->sz.D, b = item / f->heads, h = item % f->heads;
    float *x = f->xbuf + (int64_t)thread * CHUNK * D;
    for (int64_t r0 = 0; r0 < f->rows; r0 += CHUNK) {
        int64_t nr = f->rows - r0 < CHUNK ? f->rows - r0 : CHUNK;
        for (int64_t r = 0; r < nr; r++) {
            int64_t at = b * f->l->stride[0] + h * f->l->stride[1] + (r0 + r) * f->l->stride[2];
            for (int64_t d = 0; d < D; d++) x[r * D + d] = (float)tensor_load(f->x, f->l->elem, at + d);
        }
        float *t = f->out + (item * f->rows + r0) * f->n;
        f->product(x, D, nr, D, f->et, f->n, t);
    }
}

static attnc_status rows_fill_tables(const BoundCall *bc, const RowsRewrite *rw, const void *q, const void *k,
                                     int threads, int q_later, attnc_tensor *tables, attnc_error *err) {
    const attnc_sizes *sz = &bc->sz;
    memset(tables, 0, sizeof *tables * (size_t)rows_extra(rw));
    if (threads < 1) threads = 1;
    float *xbuf = malloc(sizeof(float) * (size_t)threads * CHUNK * (size_t)sz->D + 1);
    if (!xbuf) return set_error(err, ATTNC_ERR_NOMEM, "out of memory");
    for (int t = 0; t < rw->ntables; t++) {
        const RowTable *rt = &rw->tables[t];
        const attnc_tensor *E = bc->tensors[rt->tensor->index];
        Fill f = {bc, rt->is_k ? k : q, &bc->layout[rt->is_k ? BT_K : BT_Q], NULL, rt->is_k ? sz->Hkv : sz->H,
                  rt->is_k ? sz->Lk : sz->Lq, 1, NULL, xbuf, backend_dense_product()};
        attnc_tensor *T = &tables[t];
        T->name = rt->decl->name;
        T->dtype = ATTNC_F32;
        T->rank = 3 + E->rank - 1;
        T->shape[0] = sz->B, T->shape[1] = f.heads, T->shape[2] = f.rows;
        for (int i = 0; i + 1 < E->rank; i++) f.n *= (T->shape[3 + i] = E->shape[i]);
        size_t count = (size_t)(sz->B * f.heads * f.rows) * (size_t)f.n;
        if (q && q_later && !rt->is_k) continue; /* shape only */
        if (!q) { /* shapes only: zeros */
            if (!(T->data = calloc(count + 1, sizeof(float)))) {
                rows_free(tables, t);
                free(xbuf);
                return set_error(err, ATTNC_ERR_NOMEM, "out of memory for the table of %s", T->name);
            }
            continue;
        }
        f.out = malloc(sizeof(float) * count + 1);
        float *et = malloc(sizeof(float) * (size_t)f.n * (size_t)sz->D + 1);
        if (et) /* E transposed once: the products run along its rows */
            for (int64_t i = 0; i < f.n; i++)
                for (int64_t d = 0; d < sz->D; d++) et[d * f.n + i] = ((const float *)E->data)[i * sz->D + d];
        f.et = et;
        if (!f.out || !et) {
            free(f.out);
            free(et);
            rows_free(tables, t);
            free(xbuf);
            return set_error(err, ATTNC_ERR_NOMEM, "out of memory for the table of %s (%zu floats)", T->name, count);
        }
        pool_run(threads, sz->B * f.heads, fill_item, &f);
        free(et);
        T->data = f.out;
    }
    free(xbuf);
    return ATTNC_OK;
}

/* Q's or K's rows as the float32 tensor rows(Q) or rows(K) [B, heads, L, D]
 * (middle/rows_table.h: the sums that dot(Q, K) and its kind became read
 * them): widened from x at layout l; x NULL: zeros (shapes only). */
static attnc_status fill_rows(const BoundCall *bc, int is_k, const void *x, attnc_tensor *T, attnc_error *err) {
    const attnc_sizes *sz = &bc->sz;
    const BoundLayout *l = &bc->layout[is_k ? BT_K : BT_Q];
    int64_t heads = is_k ? sz->Hkv : sz->H, L = is_k ? sz->Lk : sz->Lq, D = sz->D;
    T->name = is_k ? "rows(K)" : "rows(Q)";
    T->dtype = ATTNC_F32;
    T->rank = 4;
    T->shape[0] = sz->B, T->shape[1] = heads, T->shape[2] = L, T->shape[3] = D;
    size_t count = (size_t)(sz->B * heads * L) * (size_t)D;
    float *out = x ? malloc(sizeof(float) * count + 1) : calloc(count + 1, sizeof(float));
    if (!out) return set_error(err, ATTNC_ERR_NOMEM, "out of memory for %s (%zu floats)", T->name, count);
    float *o = out;
    for (int64_t b = 0; x && b < sz->B; b++)
        for (int64_t h = 0; h < heads; h++)
            for (int64_t r = 0; r < L; r++) {
                int64_t at = b * l->stride[0] + h * l->stride[1] + r * l->stride[2];
                for (int64_t d = 0; d < D; d++) *o++ = (float)tensor_load(x, l->elem, at + d);
            }
    T->data = out;
    return ATTNC_OK;
}

attnc_status rows_fill(const BoundCall *bc, const RowsRewrite *rw, const void *q, const void *k, int threads,
                       int q_later, attnc_tensor *tables, attnc_error *err) {
    attnc_status st = rows_fill_tables(bc, rw, q, k, threads, q_later, tables, err);
    for (int is_k = 0; is_k < 2 && !st; is_k++) {
        int at = rw->row_tensor[is_k] - rw->ntensors_before;
        if (at >= 0 && (st = fill_rows(bc, is_k, q ? (is_k ? k : q) : NULL, &tables[at], err))) rows_free(tables, at);
    }
    return st;
}

void rows_free(attnc_tensor *tables, int n) {
    for (int t = 0; t < n; t++) free((void *)tables[t].data);
}
