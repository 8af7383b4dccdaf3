/* api_cuda_v2.c — a call of a version-2 attention (spec 9.2–9.4) through
 * the CUDA text's own kernels around the attention kernel
 * (backends/cuda/cuda_emit_v2.c), in the order of the text's
 * NAME_cuda_launch: Q and K rows (rotated), the tables of dot products, the
 * sinks, the attention kernel on them, the merge of the sinks into O and
 * LSE.  Two executors of the same sequence:
 *
 *  - cuda-emu (host memory): the kernels are the emulated text's C
 *    functions (CompiledKernel.v2), the attention kernel runs on the
 *    threaded launcher;
 *  - the cuda backend on device pointers (attnc_kernel_run_cuda): the
 *    kernels are launched on the caller's stream (DeviceOps.v2_launch), the
 *    buffers and the tables are device memory, the attention kernel runs
 *    through runtime/launch_device.c reading the tables in place.
 *
 * The library's host path for the other backends is api_rope_sink.c and
 * api_rows.c; this one computes nothing of version 2 itself.  A runtime
 * error in rows or sinks (a position or a sink out of range) is decided by
 * the interpreter on the whole call, as api_run_rope_sink does: a position
 * no kept element reads is no error (lazy evaluation), and then the
 * interpreter's O and LSE are the call's.
 * Q's and K's rows read as tensors (rows(Q), rows(K): dots that became
 * sums) are the rows kernel's output, in place.
 * Requires: a kernel with a plan, and k->ck.v2 (host) or DeviceOps.v2_launch.
 * Produces: api_run_v2_kernels (api_kernel.h). */
#include <stdlib.h>
#include <string.h>

#include "api_kernel.h"
#include "interp.h"
#include "launch_device.h"

/* Where the call runs: ops NULL for cuda-emu's host memory. */
typedef struct V2Exec {
    const attnc_kernel *k;
    const DeviceOps *ops;
    void *stream;
    int *fault; /* host or device memory */
    attnc_error *err;
} V2Exec;

static attnc_status ex_alloc(const V2Exec *x, size_t bytes, void **p) {
    if (x->ops) return x->ops->alloc(bytes + 4, p, x->err);
    *p = calloc(1, bytes + 4);
    return *p ? ATTNC_OK : set_error(x->err, ATTNC_ERR_NOMEM, "out of memory");
}

static void ex_free(const V2Exec *x, void *p) {
    if (x->ops) x->ops->free(p);
    else free(p);
}

/* Kernel `which` of V2Kernels / DeviceOps.v2_launch. */
static attnc_status ex_run(const V2Exec *x, int which, const AttnCall *c, int arg, void *p0, void *p1, void *p2) {
    if (x->ops) return x->ops->v2_launch(&x->k->ck, which, c, arg, p0, p1, p2, x->stream, x->err);
    const V2Kernels *v2 = x->k->ck.v2;
    if (which == 0) v2->rows(c, arg, p0, p1);
    else if (which == 1) v2->table(c, arg, p0, p1);
    else if (which == 2) v2->sinks(c, p0, p1);
    else v2->merge(c, p0, p1, p2);
    return ATTNC_OK;
}

/* The fault flag, once what was queued before has run. */
static attnc_status ex_fault(const V2Exec *x, int *fault) {
    if (x->ops) return x->ops->copy(fault, x->fault, sizeof *fault, 0, x->stream, x->err);
    *fault = *x->fault;
    return ATTNC_OK;
}

/* Buffers of one call: rotated (or widened) rows, sinks, the kernel's float32 O and LSE, the tables.
 * borrowed[i]: qf (0) or kf (1) is rc's tensor rows(Q) or rows(K) (on the host), not freed here. */
typedef struct V2Buffers {
    float *qf, *kf, *sinks, *o32, *lse32;
    float **tables;
    int borrowed[2];
} V2Buffers;

/* rc's tensor rows(Q) (i 0) or rows(K), where the host computes those rows in place; NULL: none. */
static float *rc_rows(const V2Exec *x, const RowsCall *rc, int i) {
    const RowsRewrite *rw = x->k->rows;
    if (x->ops || !rw || rw->row_tensor[i] < 0) return NULL;
    return (float *)rc->tables[rw->row_tensor[i] - rw->ntensors_before].data;
}

static void buffers_free(const V2Exec *x, V2Buffers *b, int ntables) {
    float *all[] = {b->borrowed[0] ? NULL : b->qf, b->borrowed[1] ? NULL : b->kf, b->sinks, b->o32, b->lse32};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ex_free(x, all[i]);
    for (int t = 0; x->ops && b->tables && t < ntables; t++) ex_free(x, b->tables[t]); /* else rc's */
    free(b->tables);
    memset(b, 0, sizeof *b);
}

/* The buffers; the tables are rc's (api_rows_bind's zeroed ones) on the host, new ones on the device. */
static attnc_status buffers_alloc(const V2Exec *x, const attnc_sizes *sz, const RowsCall *rc, V2Buffers *b) {
    const attnc_kernel *k = x->k;
    int need_q, need_k, nt = k->rows ? k->rows->ntables : 0;
    rows_needed(k->rows, k->attn->rotary != NULL, &need_q, &need_k);
    size_t rows_o = (size_t)(sz->B * sz->H * sz->Lq), f = sizeof(float);
    attnc_status st = ATTNC_OK;
    b->borrowed[0] = (b->qf = rc_rows(x, rc, 0)) != NULL, b->borrowed[1] = (b->kf = rc_rows(x, rc, 1)) != NULL;
    if (need_q && !b->qf) st = ex_alloc(x, f * rows_o * (size_t)sz->D, (void **)&b->qf);
    if (!st && need_k && !b->kf) st = ex_alloc(x, f * (size_t)(sz->B * sz->Hkv * sz->Lk * sz->D), (void **)&b->kf);
    if (!st && k->attn->sink) st = ex_alloc(x, f * rows_o, (void **)&b->sinks);
    if (!st && k->attn->sink) st = ex_alloc(x, f * rows_o * (size_t)sz->Dv, (void **)&b->o32);
    if (!st && k->attn->sink) st = ex_alloc(x, f * rows_o, (void **)&b->lse32);
    if (!st && !(b->tables = calloc((size_t)nt + 1, sizeof *b->tables)))
        st = set_error(x->err, ATTNC_ERR_NOMEM, "out of memory");
    for (int t = 0; !st && t < nt; t++) {
        const attnc_tensor *T = &rc->tables[t];
        size_t n = 1;
        for (int d = 0; d < T->rank; d++) n *= (size_t)T->shape[d];
        if (x->ops) st = ex_alloc(x, f * n, (void **)&b->tables[t]);
        else b->tables[t] = (float *)T->data;
    }
    return st;
}

/* Rows, tables and sinks; *fault on a runtime error of the spec. */
static attnc_status run_before(const V2Exec *x, const AttnCall *c, const V2Buffers *b, float *const *tables,
                               int *fault) {
    const attnc_kernel *k = x->k;
    attnc_status st = ATTNC_OK;
    if (b->qf) st = ex_run(x, 0, c, 0, b->qf, x->fault, NULL);
    if (!st && b->kf) st = ex_run(x, 0, c, 1, b->kf, x->fault, NULL);
    for (int t = 0; !st && k->rows && t < k->rows->ntables; t++)
        st = ex_run(x, 1, c, t, k->rows->tables[t].is_k ? b->kf : b->qf, tables[t], NULL);
    if (!st && k->attn->sink) st = ex_run(x, 2, c, 0, b->sinks, x->fault, NULL);
    return st ? st : ex_fault(x, fault);
}

/* The attention kernel on the rotated rows, the tables, and float32 O and LSE with a sink. */
static attnc_status run_attention(const V2Exec *x, const BoundCall *kbc, const attnc_args *args, const V2Buffers *b,
                                  float *const *tables, int threads, const LaunchPages *pages) {
    const attnc_kernel *k = x->k;
    BoundCall bc = *kbc;
    const attnc_sizes *sz = &bc.sz;
    attnc_args a = *args;
    if (k->attn->rotary) {
        a.q = b->qf, a.k = b->kf;
        bc.layout[BT_Q] = api_contiguous_f32(sz->H, sz->Lq, sz->D);
        bc.layout[BT_K] = api_contiguous_f32(sz->Hkv, sz->Lk, sz->D);
    }
    if (k->attn->sink) {
        a.o = b->o32, a.lse = b->lse32;
        bc.layout[BT_O] = api_contiguous_f32(sz->H, sz->Lq, sz->Dv);
        bc.layout[BT_LSE] = api_contiguous_f32(sz->H, sz->Lq, 1);
    }
    attnc_status st = tile_check_work(k->plan, &bc, x->err);
    if (st || !x->ops) return st ? st : launch_run_items(k->plan, &k->ck, &bc, &a, threads, k->opts.flags, pages, NULL, x->err);
    /* on the device: the tables in place, after the attention's own tensors */
    const void **on_device = calloc((size_t)bc.attn->ntensors + 1, sizeof *on_device);
    if (!on_device) return set_error(x->err, ATTNC_ERR_NOMEM, "out of memory");
    for (int t = 0; k->rows && t < k->rows->ntables; t++) on_device[k->rows->ntensors_before + t] = tables[t];
    const float *rows[2] = {b->qf, b->kf};
    for (int i = 0; k->rows && i < 2; i++)
        if (k->rows->row_tensor[i] >= 0) on_device[k->rows->row_tensor[i]] = rows[i];
    st = launch_device_run_with(k->plan, x->ops, &k->ck, &bc, &a, x->stream, 1, on_device, x->err);
    free(on_device);
    return st;
}

/* The sequence, on bc's buffers; *fault when rows or sinks raised a runtime error. */
static attnc_status run_sequence(const V2Exec *x, BoundCall *bc, const BoundCall *kbc, const RowsCall *rc,
                                 const attnc_args *args, int threads, const LaunchPages *pages, int *fault) {
    const attnc_kernel *k = x->k;
    LaunchValues vals;
    V2Buffers b;
    memset(&vals, 0, sizeof vals);
    memset(&b, 0, sizeof b);
    int nt = k->rows ? k->rows->ntables : 0;
    attnc_status st = launch_values(kbc, &vals) ? buffers_alloc(x, &bc->sz, rc, &b)
                                                : set_error(x->err, ATTNC_ERR_NOMEM, "out of memory");
    float **tables = b.tables;
    for (int t = 0; !st && x->ops && t < nt; t++) /* the kernels read the device's tables */
        vals.tdata[k->rows->ntensors_before + t] = tables[t];
    const float *rows[2] = {b.qf, b.kf};
    for (int i = 0; !st && x->ops && i < 2; i++)
        if (k->rows && k->rows->row_tensor[i] >= 0) vals.tdata[k->rows->row_tensor[i]] = rows[i];
    if (!st) {
        const attnc_sizes *sz = &bc->sz;
        AttnCall c = {.B = sz->B, .H = sz->H, .Hkv = sz->Hkv, .Lq = sz->Lq, .Lk = sz->Lk, .D = sz->D, .Dv = sz->Dv,
                      .q = args->q, .k = args->k, .v = args->v, .o = args->o, .lse = args->lse,
                      .params = vals.params, .tensor_data = vals.tdata,
                      .tensor_shape = (const int64_t(*)[ATTNC_ABI_MAX_RANK])vals.tshape, .pack = 1};
        launch_set_layouts(&c, bc, 0, 0);
        st = run_before(x, &c, &b, tables, fault);
        if (!st && !*fault) st = run_attention(x, kbc, args, &b, tables, threads, pages);
        if (!st && !*fault && k->attn->sink) st = ex_run(x, 3, &c, 0, b.o32, b.lse32, b.sinks);
        if (!st && !*fault && x->ops) st = ex_fault(x, fault); /* waits for the merge */
    }
    buffers_free(x, &b, nt);
    launch_values_free(&vals);
    return st;
}

attnc_status api_run_v2_kernels(const attnc_kernel *k, BoundCall *bc, const attnc_args *args, int threads,
                                const LaunchPages *pages, const DeviceOps *ops, void *stream, attnc_error *err) {
    const Attention *at = bc->attn;
    if (pages && (at->rotary || (k->rows && rows_read_k(k->rows)))) /* api_batch.c gathers the pages first */
        return set_error(err, ATTNC_ERR_INTERNAL, "attention '%s' reads K before the kernel: its K must be gathered "
                         "from the pages before the call", at->name);
    /* the kernel's view: its plan's attention (with the tables), without a rotary or a sink, so that the
     * launcher's rerun on the interpreter (to name a fault) does not apply them again */
    RowsCall rc;
    memset(&rc, 0, sizeof rc);
    BoundCall kbc = *bc;
    Attention plain = *at;
    attnc_status st = k->rows ? api_rows_bind(k, bc, NULL, NULL, 1, 0, &rc, err) : ATTNC_OK; /* zeroed tables */
    if (st) return st;
    if (k->rows) kbc = rc.bc, plain = rc.attn;
    plain.rotary = NULL, plain.sink = NULL;
    kbc.attn = &plain;
    int zero = 0, fault = 0;
    V2Exec x = {k, ops, stream, &zero, err};
    if (ops && !(st = ex_alloc(&x, sizeof zero, (void **)&x.fault))) st = ops->copy(x.fault, &zero, sizeof zero, 1, stream, err);
    if (!st) st = run_sequence(&x, bc, &kbc, &rc, args, threads, pages, &fault);
    if (ops) ex_free(&x, x.fault);
    if (k->rows) api_rows_release(&rc);
    if (!st && fault) /* the interpreter decides, and names the error */
        st = launch_device_interp(ops, bc, args, ops != NULL, 1, stream, err);
    else if (st == ATTNC_ERR_RUNTIME && k->rows) { /* named as the spec reads: E[i], not the table */
        attnc_error mine = {0};
        if (launch_device_interp(ops, bc, args, ops != NULL, 0, stream, &mine) == ATTNC_ERR_RUNTIME && err) *err = mine;
    }
    return st;
}
