/* rows_grad.c — the backward of rows_fill.c's tables (rows_grad.h).
 * T[b, h, r, i] = X[b, h, r, :] . E[i, :] for X = Q (or the rotated Q) or K,
 * so with dT the gradient of the table (the kernel's backward gives it: a
 * table is a captured float tensor of the rewritten attention)
 *     dX[b, h, r, :] = sum_i dT[b, h, r, i] E[i, :]      (dT E, per (b, head))
 *     dE[i, :]      = sum_{b, h, r} dT[b, h, r, i] X[b, h, r, :]   (dT^T X)
 * Both are dense products run by templates/dense.c's register-blocked
 * product (backend_dense_product), as the tables are filled, over chunks
 * of CHUNK rows: dX in parallel over (b, head) (each owns its rows), dE in
 * (b, head) order into a float64 accumulator, rounded once.
 * Requires: a bound call whose dot lengths were checked (E's last extent is D). */
#include "rows_grad.h"

#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "tensor_io.h"
#include "threads.h"

enum { CHUNK = 64 };

typedef struct RowsGrad {
    const BoundCall *bc;
    const float *e;    /* E: [n][D] */
    const float *dt;   /* dT: [B][heads][rows][n] */
    float *dx;         /* dX: [B][heads][rows][D] */
    int64_t heads, rows, n;
    float *buf;        /* [threads][CHUNK][D] */
    DenseProductFn product;
} RowsGrad;

/* dX += dT E on the rows of one (b, head). */
static void dx_item(void *ctx, int64_t item, int thread) {
    const RowsGrad *g = ctx;
    int64_t D = g->bc->sz.D;
    float *s = g->buf + (int64_t)thread * CHUNK * D;
    for (int64_t r0 = 0; r0 < g->rows; r0 += CHUNK) {
        int64_t nr = g->rows - r0 < CHUNK ? g->rows - r0 : CHUNK, first = item * g->rows + r0;
        g->product(g->dt + first * g->n, g->n, nr, g->n, g->e, D, s);
        float *dx = g->dx + first * D;
        for (int64_t i = 0; i < nr * D; i++) dx[i] += s[i];
    }
}

/* acc ([n][D], float64) += dT^T X over every (b, head), in order. */
static int de_accumulate(const RowsGrad *g, const void *x, const BoundLayout *l, double *acc) {
    int64_t D = g->bc->sz.D, n = g->n;
    float *xt = malloc(sizeof(float) * (size_t)(CHUNK * D) + 1);   /* X rows widened: [CHUNK][D] */
    float *dtt = malloc(sizeof(float) * (size_t)(n * CHUNK) + 1);  /* dT^T: [n][CHUNK] */
    float *s = malloc(sizeof(float) * (size_t)(n * D) + 1);
    int ok = xt && dtt && s;
    for (int64_t item = 0; ok && item < g->bc->sz.B * g->heads; item++) {
        int64_t b = item / g->heads, h = item % g->heads;
        for (int64_t r0 = 0; r0 < g->rows; r0 += CHUNK) {
            int64_t nr = g->rows - r0 < CHUNK ? g->rows - r0 : CHUNK;
            const float *dt = g->dt + (item * g->rows + r0) * n;
            for (int64_t r = 0; r < nr; r++) {
                int64_t at = b * l->stride[0] + h * l->stride[1] + (r0 + r) * l->stride[2];
                for (int64_t d = 0; d < D; d++) xt[r * D + d] = (float)tensor_load(x, l->elem, at + d);
                for (int64_t i = 0; i < n; i++) dtt[i * nr + r] = dt[r * n + i];
            }
            g->product(dtt, nr, n, nr, xt, D, s);
            for (int64_t i = 0; i < n * D; i++) acc[i] += s[i];
        }
    }
    free(xt), free(dtt), free(s);
    return ok;
}

attnc_status rows_backward(const BoundCall *bc, const RowsRewrite *rw, const void *q, const void *k,
                           float *const *dtab, float *dq, float *dk, float *const *dtensor, int threads,
                           attnc_error *err) {
    const attnc_sizes *sz = &bc->sz;
    if (threads < 1) threads = 1;
    for (int t = 0; t < rw->ntables; t++) {
        const RowTable *rt = &rw->tables[t];
        int ei = rt->tensor->index;
        const attnc_tensor *E = bc->tensors[ei];
        float *dx = rt->is_k ? dk : dq, *de = dtensor[ei];
        if (!dtab[t] || (!dx && !de)) continue;
        RowsGrad g = {bc, E->data, dtab[t], dx, rt->is_k ? sz->Hkv : sz->H, rt->is_k ? sz->Lk : sz->Lq, 1, NULL,
                      backend_dense_product()};
        for (int i = 0; i + 1 < E->rank; i++) g.n *= E->shape[i];
        if (dx) {
            g.buf = malloc(sizeof(float) * (size_t)threads * CHUNK * (size_t)sz->D + 1);
            if (!g.buf) return set_error(err, ATTNC_ERR_NOMEM, "out of memory for the gradient of %s", rt->decl->name);
            pool_run(threads, sz->B * g.heads, dx_item, &g);
            free(g.buf);
        }
        if (de) {
            double *acc = calloc((size_t)(g.n * sz->D) + 1, sizeof(double));
            int ok = acc && de_accumulate(&g, rt->is_k ? k : q, &bc->layout[rt->is_k ? BT_K : BT_Q], acc);
            for (int64_t i = 0; ok && i < g.n * sz->D; i++) de[i] += (float)acc[i];
            free(acc);
            if (!ok) return set_error(err, ATTNC_ERR_NOMEM, "out of memory for the gradient of %s", E->name);
        }
    }
    return ATTNC_OK;
}
