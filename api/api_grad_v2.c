/* api_grad_v2.c — the backward pass of a compiled kernel whose attention has
 * a rotary, a sink or dots of rows (spec 9.2 - 9.5), around the kernel's own
 * backward as the forward runs around its kernel (api_rope_sink.c,
 * api_rows.c); docs/gradients.md says why each step is right:
 *
 *  1. rotary: Q and K rotated as the forward rotates them; the kernel's
 *     backward on the rotated copies gives the gradients of the rotated rows,
 *     turned back by the inverse rotation (rope_unrotate: dX = R^T dX_rot);
 *  2. dots of rows: the kernel's backward of the rewritten attention also
 *     gives each table's gradient dT (a table is a captured float tensor
 *     there); then dX += dT E and dE += dT^T X (rows_backward), X the rows
 *     the table was filled from, before the inverse rotation; the dots that
 *     became sums over Q's and K's rows as tensors (dot(Q, K)) give those
 *     tensors' gradients, added to dQ and dK as they are;
 *  3. sink: the kernel's backward fed the merged O and LSE is exact for Q, K
 *     and V (the sink is one more term of value 0 in each row's softmax:
 *     exp(s - LSE) and sum(dO * O) are the merged ones), and the sink's
 *     tensors get exp(sink - LSE) (dLSE - sum(dO * O)) through its
 *     expression (interp_sink_backward), computed first: a sink's runtime
 *     error leaves every output unwritten.
 * Requires: a kernel with a plan and no backend backward (api_grad.c's around()).
 * Produces: api_backward_v2 (api_kernel.h). */
#include <stdlib.h>
#include <string.h>

#include "api_kernel.h"
#include "interp.h"
#include "interp_grad.h"
#include "launch_grad.h"
#include "rope_sink.h"
#include "rows_grad.h"
#include "tensor_io.h"
#include "threads.h"

/* What one backward call allocates. */
typedef struct V2 {
    RopeScratch *rope;  /* the kernel's rotation scratch, taken for this call (a rotary) */
    const float *qr, *kr; /* Q and K rotated, in it */
    float *dq, *dk;     /* the kernel's dQ and dK, float32 contiguous, before the tables' and the rotation's terms */
    float **dtensor;    /* the rewritten attention's tensor gradients: the caller's, then the tables' */
    float **dsink;      /* the sink's share of the caller's tensor gradients (NULL: none wanted) */
    RowsCall rc;
    int bound;
} V2;

static int64_t tensor_elements(const attnc_tensor *t) {
    int64_t n = 1;
    for (int r = 0; r < t->rank; r++) n *= t->shape[r];
    return n;
}

/* The rewritten attention's call (its tables filled from the Q and K the
 * kernel reads) and its gradient requests: a table's gradient when the rows
 * or the tensor it came from want one. */
static attnc_status bind_tables(const attnc_kernel *k, const BoundCall *bc, const attnc_args *a, BoundGrad *g2,
                                int threads, V2 *v, attnc_error *err) {
    const RowsRewrite *rw = k->rows;
    attnc_status st = api_rows_bind(k, bc, a->q, a->k, threads, 0, &v->rc, err); /* whole tables: the backward reads them per kv tile */
    if (st) return st;
    v->bound = 1;
    int nb = rw->ntensors_before;
    v->dtensor = calloc((size_t)rw->attn->ntensors + 1, sizeof *v->dtensor);
    if (!v->dtensor) return set_error(err, ATTNC_ERR_NOMEM, "out of memory");
    for (int i = 0; i < nb; i++) v->dtensor[i] = g2->dtensor[i];
    for (int t = 0; t < rw->ntables; t++) {
        const RowTable *rt = &rw->tables[t];
        if (!(rt->is_k ? g2->dk : g2->dq) && !g2->dtensor[rt->tensor->index]) continue;
        const attnc_tensor *T = &v->rc.tables[t];
        if (!(v->dtensor[nb + t] = malloc(sizeof(float) * (size_t)tensor_elements(T) + 1)))
            return set_error(err, ATTNC_ERR_NOMEM, "out of memory for the gradient of %s", T->name);
    }
    for (int is_k = 0; is_k < 2; is_k++) { /* Q's and K's rows as tensors: their gradients are dQ's and dK's terms */
        int i = rw->row_tensor[is_k];
        if (i < 0 || !(is_k ? g2->dk : g2->dq)) continue;
        const attnc_tensor *T = &v->rc.tables[i - nb];
        if (!(v->dtensor[i] = malloc(sizeof(float) * (size_t)tensor_elements(T) + 1)))
            return set_error(err, ATTNC_ERR_NOMEM, "out of memory for the gradient of %s", T->name);
    }
    g2->dtensor = v->dtensor;
    return ATTNC_OK;
}

/* The sink's share of the tensor gradients, into v->dsink, before anything
 * is written: a sink's runtime error leaves the outputs untouched. */
static attnc_status sink_share(const BoundCall *bc, const attnc_args *args, const BoundGrad *bg, V2 *v,
                               attnc_error *err) {
    const Attention *at = bc->attn;
    int wanted = 0;
    for (int i = 0; i < at->ntensors; i++) wanted |= bg->dtensor[i] != NULL;
    if (!(at->sink->deps & DEP_TENSOR) || !wanted) return ATTNC_OK;
    if (!(v->dsink = calloc((size_t)at->ntensors + 1, sizeof *v->dsink)))
        return set_error(err, ATTNC_ERR_NOMEM, "out of memory");
    for (int i = 0; i < at->ntensors; i++) {
        if (bg->dtensor[i] && !(v->dsink[i] = calloc((size_t)tensor_elements(bc->tensors[i]) + 1, sizeof(float))))
            return set_error(err, ATTNC_ERR_NOMEM, "out of memory for the sink's gradient");
    }
    BoundGrad share = *bg;
    share.dtensor = v->dsink;
    return interp_sink_backward(bc, args, &share, err);
}

/* The gradients of rows(Q) and rows(K) (the sums dot(Q, K) and its kind
 * became read Q's and K's rows as tensors) are terms of dQ and dK: the rows
 * are Q and K as the kernel reads them, float32 contiguous like g2's. */
static void add_row_grads(const BoundCall *bc, const RowsRewrite *rw, const V2 *v, const BoundGrad *g2) {
    const attnc_sizes *sz = &bc->sz;
    for (int is_k = 0; is_k < 2; is_k++) {
        int i = rw->row_tensor[is_k];
        float *dx = is_k ? (float *)g2->dk : (float *)g2->dq;
        if (i < 0 || !dx || !v->dtensor[i]) continue;
        int64_t n = sz->B * (is_k ? sz->Hkv * sz->Lk : sz->H * sz->Lq) * sz->D;
        for (int64_t j = 0; j < n; j++) dx[j] += v->dtensor[i][j];
    }
}

/* The kernel's backward on bc (the attention without rotary and sink; Q and
 * K as the kernel reads them), then the tables' terms. */
static attnc_status kernel_backward(const attnc_kernel *k, const BoundCall *bc, const attnc_args *a, BoundGrad *g2,
                                    int threads, V2 *v, attnc_error *err) {
    int nthreads = threads > 0 ? threads : pool_cores();
    const BoundCall *use = bc;
    attnc_status st = ATTNC_OK;
    if (k->rows && !(st = bind_tables(k, bc, a, g2, nthreads, v, err))) use = &v->rc.bc;
    if (!st) st = tile_check_work(k->plan, use, err);
    if (!st) st = launch_grad_run(k->plan, &k->ck, use, a, g2, threads, err);
    if (!st && k->rows)
        st = rows_backward(bc, k->rows, a->q, a->k, v->dtensor + k->rows->ntensors_before, g2->dq, g2->dk,
                           v->dtensor, nthreads, err);
    if (!st && k->rows) add_row_grads(bc, k->rows, v, g2);
    return st;
}

/* A float32, contiguous [d0, d1, d2, d3] tensor to out at layout l (out NULL: nothing). */
static void store_f32(const float *src, const int64_t dims[4], void *out, const BoundLayout *l) {
    int64_t i = 0;
    for (int64_t a = 0; out && a < dims[0]; a++)
        for (int64_t b = 0; b < dims[1]; b++)
            for (int64_t c = 0; c < dims[2]; c++)
                for (int64_t d = 0; d < dims[3]; d++)
                    tensor_store(out, l->elem, a * l->stride[0] + b * l->stride[1] + c * l->stride[2] + d, src[i++]);
}

/* dQ and dK from the float32 ones of the rows the kernel read: rotated back, or copied. */
static attnc_status write_dq_dk(const BoundCall *bc, const V2 *v, const BoundGrad *bg, int threads,
                                attnc_error *err) {
    const attnc_sizes *sz = &bc->sz;
    if (bc->attn->rotary)
        return rope_unrotate(bc, v->dq, v->dk, threads > 0 ? threads : pool_cores(), bg->dq, &bg->layout[GT_DQ],
                             bg->dk, &bg->layout[GT_DK], err);
    int64_t qdims[4] = {sz->B, sz->H, sz->Lq, sz->D}, kdims[4] = {sz->B, sz->Hkv, sz->Lk, sz->D};
    if (v->dq) store_f32(v->dq, qdims, bg->dq, &bg->layout[GT_DQ]);
    if (v->dk) store_f32(v->dk, kdims, bg->dk, &bg->layout[GT_DK]);
    return ATTNC_OK;
}

static void free_v2(const attnc_kernel *k, V2 *v) {
    if (v->bound) api_rows_release(&v->rc);
    for (int t = 0; v->dtensor && k->rows && t < rows_extra(k->rows); t++) free(v->dtensor[k->rows->ntensors_before + t]);
    for (int i = 0; v->dsink && i < k->attn->ntensors; i++) free(v->dsink[i]);
    free(v->dtensor), free(v->dsink);
    if (v->rope) rope_scratch_keep(&((attnc_kernel *)k)->rope, v->rope);
    free(v->dq), free(v->dk);
}

attnc_status api_backward_v2(const attnc_kernel *k, BoundCall *bc, const attnc_args *args, const BoundGrad *bg,
                             int threads, attnc_error *err) {
    const Attention *at = bc->attn;
    const attnc_sizes *sz = &bc->sz;
    V2 v;
    memset(&v, 0, sizeof v);
    attnc_args a = *args;
    BoundGrad g2 = *bg;
    BoundLayout saved[BT_COUNT];
    memcpy(saved, bc->layout, sizeof saved);
    attnc_status st = at->sink ? sink_share(bc, args, bg, &v, err) : ATTNC_OK;
    if (!st && at->rotary) {
        int fault = 0;
        /* the scratch the forward keeps in the kernel, taken and given back atomically (api_rope_sink.c) */
        v.rope = rope_scratch_take(&((attnc_kernel *)k)->rope);
        st = !v.rope ? set_error(err, ATTNC_ERR_NOMEM, "out of memory rotating Q and K")
                     : rope_rotate(bc, args->q, args->k, threads > 0 ? threads : pool_cores(), v.rope, &v.qr, &v.kr,
                                   &fault, err);
        if (!st && fault) { /* a position's runtime error: the reference knows whether a kept element needs it */
            free_v2(k, &v);
            return interp_backward(k->plan, &k->ck, bc, args, bg, threads, err);
        }
        a.q = v.qr, a.k = v.kr;
        bc->layout[BT_Q] = api_contiguous_f32(sz->H, sz->Lq, sz->D);
        bc->layout[BT_K] = api_contiguous_f32(sz->Hkv, sz->Lk, sz->D);
    }
    /* dQ and dK of the rows the kernel reads, to be completed (tables) and rotated back before they are written */
    int own = at->rotary || k->rows;
    if (!st && own && bg->dq) {
        st = (v.dq = malloc(sizeof(float) * (size_t)(sz->B * sz->H * sz->Lq * sz->D) + 1)) ? ATTNC_OK
             : set_error(err, ATTNC_ERR_NOMEM, "out of memory for dQ");
        g2.dq = v.dq, g2.layout[GT_DQ] = api_contiguous_f32(sz->H, sz->Lq, sz->D);
    }
    if (!st && own && bg->dk) {
        st = (v.dk = malloc(sizeof(float) * (size_t)(sz->B * sz->Hkv * sz->Lk * sz->D) + 1)) ? ATTNC_OK
             : set_error(err, ATTNC_ERR_NOMEM, "out of memory for dK");
        g2.dk = v.dk, g2.layout[GT_DK] = api_contiguous_f32(sz->Hkv, sz->Lk, sz->D);
    }
    /* the kernel's own view: the attention without them (its fault path reruns the interpreter on it) */
    Attention plain = *at;
    plain.rotary = NULL;
    plain.sink = NULL;
    if (!st) {
        bc->attn = &plain;
        st = kernel_backward(k, bc, &a, &g2, threads, &v, err);
        bc->attn = at;
    }
    memcpy(bc->layout, saved, sizeof saved);
    if (!st && own) st = write_dq_dk(bc, &v, bg, threads, err);
    for (int i = 0; !st && v.dsink && i < at->ntensors; i++) /* the sink's share */
        for (int64_t j = 0; v.dsink[i] && j < tensor_elements(bc->tensors[i]); j++) bg->dtensor[i][j] += v.dsink[i][j];
    if (st == ATTNC_ERR_RUNTIME) { /* named as the spec reads: by the interpreter on the call as given */
        attnc_error mine = {0};
        if (interp_run(bc, args->q, args->k, args->v, NULL, NULL, &mine) == ATTNC_ERR_RUNTIME && err) *err = mine;
    }
    free_v2(k, &v);
    return st;
}
