/* api_cuda_v2.c — a call of a version-2 attention (spec 9.2–9.4) on a
 * kernel with its own kernels around the attention kernel
 * (CompiledKernel.v2: cuda-emu runs the CUDA text's, backends/cuda/cuda_emit_v2.c),
 * in the order of the text's NAME_cuda_launch: Q and K rows (rotated), the
 * tables of dot products, the sinks, the attention kernel on them, the
 * merge of the sinks into O and LSE.  The library's host path for the other
 * backends is api_rope_sink.c / api_rows.c; this one computes nothing of
 * version 2 itself, so the CUDA text is what the tests check.
 * A runtime error in rows or sinks (a position or a sink out of range) is
 * decided by the interpreter on the whole call, as api_run_rope_sink does:
 * a position no kept element reads is no error (lazy evaluation).
 * Requires: a kernel with k->ck.v2 and a plan.
 * Produces: api_run_v2_kernels (api_kernel.h). */
#include <stdlib.h>
#include <string.h>

#include "api_kernel.h"
#include "interp.h"

/* Buffers of one call: rotated (or widened) rows, sinks, the kernel's float32 O and LSE. */
typedef struct V2Buffers {
    float *qf, *kf, *sinks, *o32, *lse32;
} V2Buffers;

static void buffers_free(V2Buffers *b) {
    free(b->qf), free(b->kf), free(b->sinks), free(b->o32), free(b->lse32);
    memset(b, 0, sizeof *b);
}

/* Which rows the call needs: Q's and K's for a rotary, and those a table pairs. */
static void rows_needed(const attnc_kernel *k, int *need_q, int *need_k) {
    *need_q = *need_k = k->attn->rotary != NULL;
    for (int t = 0; k->rows && t < k->rows->ntables; t++) *(k->rows->tables[t].is_k ? need_k : need_q) = 1;
}

static int buffers_alloc(const attnc_kernel *k, const attnc_sizes *sz, V2Buffers *b) {
    int need_q, need_k;
    rows_needed(k, &need_q, &need_k);
    size_t rows_o = (size_t)(sz->B * sz->H * sz->Lq);
    memset(b, 0, sizeof *b);
    int ok = 1;
    if (need_q) ok &= (b->qf = malloc(sizeof(float) * rows_o * (size_t)sz->D + 1)) != NULL;
    if (need_k) ok &= (b->kf = malloc(sizeof(float) * (size_t)(sz->B * sz->Hkv * sz->Lk * sz->D) + 1)) != NULL;
    if (k->attn->sink) {
        ok &= (b->sinks = malloc(sizeof(float) * rows_o + 1)) != NULL;
        ok &= (b->o32 = malloc(sizeof(float) * rows_o * (size_t)sz->Dv + 1)) != NULL;
        ok &= (b->lse32 = malloc(sizeof(float) * rows_o + 1)) != NULL;
    }
    return ok;
}

/* Rows, tables and sinks into b and the tables' data; *fault on a runtime error of the spec. */
static void run_before(const attnc_kernel *k, const AttnCall *c, const RowsCall *rc, V2Buffers *b, int *fault) {
    const V2Kernels *v2 = k->ck.v2;
    if (b->qf) v2->rows(c, 0, b->qf, fault);
    if (b->kf) v2->rows(c, 1, b->kf, fault);
    for (int t = 0; !*fault && k->rows && t < k->rows->ntables; t++)
        v2->table(c, t, k->rows->tables[t].is_k ? b->kf : b->qf, (float *)rc->tables[t].data);
    if (!*fault && k->attn->sink) v2->sinks(c, b->sinks, fault);
}

/* The attention kernel on the rotated rows, the tables, and float32 O and LSE with a sink. */
static attnc_status run_attention(const attnc_kernel *k, const BoundCall *kbc, const attnc_args *args,
                                  const V2Buffers *b, int threads, const LaunchPages *pages, attnc_error *err) {
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
    attnc_status st = tile_check_work(k->plan, &bc, err);
    return st ? st : launch_run_items(k->plan, &k->ck, &bc, &a, threads, k->opts.flags, pages, NULL, err);
}

attnc_status api_run_v2_kernels(const attnc_kernel *k, BoundCall *bc, const attnc_args *args, int threads,
                                const LaunchPages *pages, attnc_error *err) {
    const Attention *at = bc->attn;
    int need_q, need_k;
    rows_needed(k, &need_q, &need_k);
    if (pages && (at->rotary || need_k)) /* api_batch.c gathers such a sequence's pages first */
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
    LaunchValues vals;
    V2Buffers b;
    memset(&vals, 0, sizeof vals);
    memset(&b, 0, sizeof b);
    if (!launch_values(&kbc, &vals) || !buffers_alloc(k, &bc->sz, &b)) st = set_error(err, ATTNC_ERR_NOMEM, "out of memory");
    int fault = 0;
    if (!st) {
        const attnc_sizes *sz = &bc->sz;
        AttnCall c = {.B = sz->B, .H = sz->H, .Hkv = sz->Hkv, .Lq = sz->Lq, .Lk = sz->Lk, .D = sz->D, .Dv = sz->Dv,
                      .q = args->q, .k = args->k, .v = args->v, .o = args->o, .lse = args->lse,
                      .params = vals.params, .tensor_data = vals.tdata,
                      .tensor_shape = (const int64_t(*)[ATTNC_ABI_MAX_RANK])vals.tshape, .pack = 1};
        launch_set_layouts(&c, bc, 0, 0);
        run_before(k, &c, &rc, &b, &fault);
        if (!fault) st = run_attention(k, &kbc, args, &b, threads, pages, err);
        if (!st && !fault && at->sink) k->ck.v2->merge(&c, b.o32, b.lse32, b.sinks);
    }
    buffers_free(&b);
    launch_values_free(&vals);
    if (k->rows) api_rows_release(&rc);
    if (!st && fault) /* the interpreter decides, and names the error */
        st = interp_run(bc, args->q, args->k, args->v, args->o, args->lse, err);
    else if (st == ATTNC_ERR_RUNTIME && k->rows) { /* named as the spec reads: E[i], not the table */
        attnc_error mine = {0};
        if (interp_run(bc, args->q, args->k, args->v, NULL, NULL, &mine) == ATTNC_ERR_RUNTIME && err) *err = mine;
    }
    return st;
}
