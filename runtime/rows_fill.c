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

attnc_status rows_fill(const BoundCall *bc, const RowsRewrite *rw, const void *q, const void *k, int threads,
                       int q_later, attnc_tensor *tables, attnc_error *err) {
    const attnc_sizes *sz = &bc->sz;
    memset(tables, 0, sizeof *tables * (size_t)rw->ntables);
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

void rows_free(attnc_tensor *tables, int n) {
    for (int t = 0; t < n; t++) free((void *)tables[t].data);
}
