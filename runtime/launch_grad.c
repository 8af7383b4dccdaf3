/* launch_grad.c — the backward pass's driver, shared by every compiled
 * backend (launch_grad.h; the kernel's side is kernel_abi.h's AttnGradCall).
 * Requires: the forward Plan, a CompiledKernel with grad_tile, the bound
 * forward call and its BoundGrad.  Produces: dQ, dK, dV and the tensor
 * gradients BoundGrad asks for, written only on success.
 *
 *   1. per row, in float64: delta (softmax: rowsum(dO * O) - dLSE; weight:
 *      -dLSE * exp(-LSE)), and dO as contiguous float32;
 *   2. the forward's tile map, listed by kv tile (tile_map_transpose);
 *   3. work items (b, hk, s): kv split s of (b, hk) is kv tiles
 *      [nkt * s / S, nkt * (s + 1) / S); S > 1 only when the B * Hkv items
 *      are fewer than the threads, and then each split accumulates dQ in
 *      its own buffer.  An item owns its kv tiles' rows of dK and dV.
 *   4. partition p of P runs items p, p + P, p + 2P, ... in order, with its
 *      own tensor-gradient accumulators: which item adds into which buffer,
 *      and in which order, does not depend on timing, so a call gives the
 *      same bits every time for a given thread count;
 *   5. dQ summed over the splits and the tensor gradients over the
 *      partitions, in order, then written at the caller's layouts.
 * A kernel that reports a fault gets the interpreter's message, as in the
 * forward (launch.c). */
#include "launch_grad.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "interp.h"
#include "launch.h"
#include "tensor_io.h"
#include "threads.h"

enum { MAX_GRAD_SPLITS = 64 };

typedef struct GradLaunch {
    const CompiledKernel *ck;
    AttnGradCall call[MAX_GRAD_SPLITS];
    int splits, parts;
    int64_t items; /* B * Hkv * splits */
    int64_t nkt;
    float ***dtensor;  /* [parts][tensor]: each partition's accumulators (NULL: not wanted) */
    float **acc_ptrs, *acc_data; /* what dtensor points into */
    char *scratch;
    int64_t scratch_bytes;
    volatile int fault;
} GradLaunch;

/* Partition `part`: items part, part + parts, ... */
static void run_partition(void *ctx, int64_t part, int thread) {
    GradLaunch *g = ctx;
    void *scratch = g->scratch + (int64_t)thread * g->scratch_bytes;
    for (int64_t i = part; i < g->items; i += g->parts) {
        int s = (int)(i % g->splits);
        int64_t bhk = i / g->splits, hkv = g->call[0].f.Hkv;
        int64_t b = bhk / hkv, hk = bhk % hkv;
        for (int64_t kt = g->nkt * s / g->splits; kt < g->nkt * (s + 1) / g->splits; kt++)
            if (g->ck->grad_tile(&g->call[s], b, hk, kt, g->dtensor[part], scratch)) g->fault = 1;
    }
}

/* dst[0..n) (dst NULL: nothing) = the dO row at d_at (dout NULL: zeros) as float32; returns
 * sum dO * O in float64 (O's row at o_at), in order.  Float32 rows skip
 * tensor_load's switch: this runs once per element of O on every call. */
static double row_dot(const void *dout, attnc_elem de, int64_t d_at, const void *o, attnc_elem oe, int64_t o_at,
                      int64_t n, float *dst) {
    double dot = 0;
    if (dout && de == ATTNC_ELEM_F32 && oe == ATTNC_ELEM_F32) {
        const float *g = (const float *)dout + d_at, *x = (const float *)o + o_at;
        if (dst) memcpy(dst, g, sizeof(float) * (size_t)n);
        for (int64_t d = 0; d < n; d++) dot += (double)g[d] * x[d];
    } else {
        for (int64_t d = 0; d < n; d++) {
            double g = dout ? tensor_load(dout, de, d_at + d) : 0.0;
            if (dst) dst[d] = (float)g;
            dot += g * tensor_load(o, oe, o_at + d);
        }
    }
    return dot;
}

/* delta per row and (dout not NULL) dO as contiguous float32 (rows [B, H, Lq]). */
static void row_terms(const Plan *p, const BoundCall *bc, const attnc_args *args, const BoundGrad *bg, float *delta,
                      float *dout) {
    const attnc_sizes *s = &bc->sz;
    const BoundLayout *L = bc->layout, *G = bg->layout;
    for (int64_t b = 0; b < s->B; b++)
        for (int64_t h = 0; h < s->H; h++)
            for (int64_t q = 0; q < s->Lq; q++) {
                int64_t row = (b * s->H + h) * s->Lq + q;
                double dlse = bg->dlse ? bg->dlse[b * G[GT_DLSE].stride[0] + h * G[GT_DLSE].stride[1] +
                                                  q * G[GT_DLSE].stride[2]]
                                       : 0.0;
                double lse = args->lse[b * L[BT_LSE].stride[0] + h * L[BT_LSE].stride[1] + q * L[BT_LSE].stride[2]];
                int64_t o_at = b * L[BT_O].stride[0] + h * L[BT_O].stride[1] + q * L[BT_O].stride[2];
                int64_t d_at = b * G[GT_DOUT].stride[0] + h * G[GT_DOUT].stride[1] + q * G[GT_DOUT].stride[2];
                double dot = row_dot(bg->dout, G[GT_DOUT].elem, d_at, args->o, L[BT_O].elem, o_at, s->Dv,
                                     dout ? dout + row * s->Dv : NULL);
                if (p->softmax) delta[row] = (float)(dot - dlse);
                else delta[row] = dlse == 0 ? 0.0f : (float)(-dlse * exp(-lse));
            }
}

/* Write a contiguous float32 [d0, d1, d2, d3] tensor at a caller's layout
 * (nothing when the kernel accumulated into the caller's tensor itself). */
static void store(const float *src, const int64_t dims[4], void *dst, const BoundLayout *l) {
    if (!dst || dst == src) return;
    int64_t i = 0;
    for (int64_t a = 0; a < dims[0]; a++)
        for (int64_t b = 0; b < dims[1]; b++)
            for (int64_t c = 0; c < dims[2]; c++) {
                int64_t at = a * l->stride[0] + b * l->stride[1] + c * l->stride[2];
                if (l->elem == ATTNC_ELEM_F32) { /* the common case: rows copied as they are */
                    memcpy((float *)dst + at, src + i, sizeof(float) * (size_t)dims[3]);
                    i += dims[3];
                    continue;
                }
                for (int64_t d = 0; d < dims[3]; d++) tensor_store(dst, l->elem, at + d, src[i++]);
            }
}

/* The caller's tensor itself (else NULL) when the kernel may use it in place:
 * float32, contiguous in the driver's order (dims), and, for an output, a
 * call that cannot fault (a fault midway must not leave it half written;
 * launch.c's rule for O).  Saves a buffer, its page faults and the copy. */
static float *in_place(const void *t, const BoundLayout *l, const int64_t dims[4], int faults) {
    if (!t || faults || l->elem != ATTNC_ELEM_F32 || l->stride[2] != dims[3] || l->stride[1] != dims[2] * dims[3] ||
        l->stride[0] != dims[1] * dims[2] * dims[3])
        return NULL;
    return (float *)t;
}

/* Elements of tensor t, whose gradient is wanted (0 otherwise). */
static int64_t wanted_elements(const BoundCall *bc, const BoundGrad *bg, int t) {
    if (!bg->dtensor[t]) return 0;
    int64_t n = 1;
    for (int r = 0; r < bc->tensors[t]->rank; r++) n *= bc->tensors[t]->shape[r];
    return n;
}

/* Every output, now that the call succeeded: dQ summed over the splits. */
static void write_outputs(GradLaunch *g, const BoundCall *bc, const BoundGrad *bg, int64_t nq) {
    const attnc_sizes *s = &bc->sz;
    float *dq = g->call[0].dq;
    for (int sp = 1; sp < g->splits; sp++)
        for (int64_t i = 0; i < nq; i++) dq[i] += g->call[sp].dq[i];
    int64_t dims[3][4] = {{s->B, s->H, s->Lq, s->D}, {s->B, s->Hkv, s->Lk, s->D}, {s->B, s->Hkv, s->Lk, s->Dv}};
    store(dq, dims[0], bg->dq, &bg->layout[GT_DQ]);
    store(g->call[0].dk, dims[1], bg->dk, &bg->layout[GT_DK]);
    store(g->call[0].dv, dims[2], bg->dv, &bg->layout[GT_DV]);
    for (int t = 0; t < bc->attn->ntensors; t++) {
        int64_t n = wanted_elements(bc, bg, t);
        for (int64_t i = 0; i < n; i++) {
            float sum = 0;
            for (int part = 0; part < g->parts; part++) sum += g->dtensor[part][t][i];
            bg->dtensor[t][i] = sum;
        }
    }
}

/* Each partition's tensor accumulators, zeroed: g->dtensor[part][t] in one block; 0 when out of memory. */
static int tensor_accumulators(GradLaunch *g, const BoundCall *bc, const BoundGrad *bg) {
    int nt = bc->attn->ntensors;
    int64_t per_part = 0;
    for (int t = 0; t < nt; t++) per_part += wanted_elements(bc, bg, t);
    g->dtensor = calloc((size_t)g->parts, sizeof *g->dtensor);
    g->acc_ptrs = calloc((size_t)g->parts * (size_t)(nt + 1), sizeof *g->acc_ptrs);
    g->acc_data = calloc((size_t)(per_part * g->parts) + 1, sizeof *g->acc_data);
    if (!g->dtensor || !g->acc_ptrs || !g->acc_data) return 0;
    float *next = g->acc_data;
    for (int part = 0; part < g->parts; part++) {
        g->dtensor[part] = g->acc_ptrs + (size_t)part * (size_t)(nt + 1);
        for (int t = 0; t < nt; t++) {
            int64_t n = wanted_elements(bc, bg, t);
            g->dtensor[part][t] = n ? next : NULL;
            next += n;
        }
    }
    return 1;
}

attnc_status launch_grad_run(const Plan *p, const CompiledKernel *ck, const BoundCall *bc, const attnc_args *args,
                             const BoundGrad *bg, int threads, attnc_error *err) {
    const attnc_sizes *sz = &bc->sz;
    TileMap fwd, tm;
    memset(&tm, 0, sizeof tm);
    attnc_status st = tile_map_build(p, bc, &fwd, err);
    if (st) return st;
    st = tile_map_transpose(&fwd, &tm, err);
    tile_map_free(&fwd);
    if (st) return st;
    GradLaunch *g = calloc(1, sizeof *g);
    LaunchValues vals;
    int have_vals = launch_values(bc, &vals);
    int64_t rows = sz->B * sz->H * sz->Lq, nq = rows * sz->D;
    int64_t dims[4][4] = {{sz->B, sz->H, sz->Lq, sz->D}, {sz->B, sz->Hkv, sz->Lk, sz->D},
                          {sz->B, sz->Hkv, sz->Lk, sz->Dv}, {sz->B, sz->H, sz->Lq, sz->Dv}};
    /* dO read in place (an input: any call); dQ, dK and dV accumulated in place, zeroed just before the kernel runs */
    const float *dout_in = in_place(bg->dout, &bg->layout[GT_DOUT], dims[3], 0);
    float *dq_out = in_place(bg->dq, &bg->layout[GT_DQ], dims[0], tm.check_faults);
    float *dk_out = in_place(bg->dk, &bg->layout[GT_DK], dims[1], tm.check_faults);
    float *dv_out = in_place(bg->dv, &bg->layout[GT_DV], dims[2], tm.check_faults);
    float *delta = malloc(sizeof(float) * (size_t)(rows + 1));
    float *dout = dout_in ? NULL : malloc(sizeof(float) * (size_t)(rows * sz->Dv + 1));
    float *dk = dk_out ? NULL : calloc((size_t)(sz->B * sz->Hkv * sz->Lk * sz->D) + 1, sizeof(float));
    float *dv = dv_out ? NULL : calloc((size_t)(sz->B * sz->Hkv * sz->Lk * sz->Dv) + 1, sizeof(float));
    if (!g || !have_vals || !delta || !(dout || dout_in) || !(dk || dk_out) || !(dv || dv_out)) {
        st = set_error(err, ATTNC_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (threads <= 0) threads = pool_cores();
    g->ck = ck, g->nkt = tm.nqt; /* transposed: its "q tiles" are kv tiles */
    g->splits = launch_split_count(sz->B * sz->Hkv, g->nkt, threads, MAX_GRAD_SPLITS);
    g->items = sz->B * sz->Hkv * g->splits;
    g->parts = g->items < threads ? (int)g->items : threads;
    row_terms(p, bc, args, bg, delta, dout);
    int64_t gsb, gsh;
    sched_group_strides(p->sched, sz->H, &gsb, &gsh);
    for (int s = 0; s < g->splits; s++) {
        AttnGradCall *c = &g->call[s];
        c->f = (AttnCall){.B = sz->B, .H = sz->H, .Hkv = sz->Hkv, .Lq = sz->Lq, .Lk = sz->Lk, .D = sz->D,
                          .Dv = sz->Dv, .q = args->q, .k = args->k, .v = args->v, .lse = args->lse,
                          .params = vals.params, .tensor_data = vals.tdata,
                          .tensor_shape = (const int64_t(*)[ATTNC_ABI_MAX_RANK])vals.tshape, .bq = p->bq, .bk = p->bk,
                          .nqt = tm.nkt, .nkt = tm.nqt, .row_start = tm.row_start, .tile_kv = tm.kv,
                          .tile_mode = tm.mode, .group_stride_b = gsb, .group_stride_h = gsh,
                          .kernel_data = ck->kernel_data, .check_faults = tm.check_faults};
        launch_set_layouts(&c->f, bc, 0, 0);
        c->delta = delta, c->dout = dout_in ? dout_in : dout;
        c->dk = dk_out ? dk_out : dk, c->dv = dv_out ? dv_out : dv;
        c->dq = s == 0 && dq_out ? dq_out : calloc((size_t)nq + 1, sizeof(float));
        if (!c->dq) {
            st = set_error(err, ATTNC_ERR_NOMEM, "out of memory for dQ");
            goto done;
        }
    }
    attnc_status (*prepare)(const AttnCall *, attnc_error *) = ck->grad_prepare ? ck->grad_prepare : ck->prepare;
    if (prepare && (st = prepare(&g->call[0].f, err))) goto done; /* code built on first use (launch.c) */
    int have_acc = tensor_accumulators(g, bc, bg);
    g->scratch_bytes = ck->grad_scratch_bytes ? (ck->grad_scratch_bytes(&g->call[0].f) + 63) / 64 * 64 : 0;
    if (g->scratch_bytes < 0 || g->scratch_bytes > ((int64_t)1 << 39) / threads) {
        st = set_error(err, ATTNC_ERR_NOMEM, "out of memory: %d threads' scratch would need %lld bytes each", threads,
                       (long long)g->scratch_bytes);
        goto done;
    }
    g->scratch = malloc((size_t)(g->scratch_bytes * g->parts) + 64);
    if (!have_acc || !g->scratch) {
        st = set_error(err, ATTNC_ERR_NOMEM, "out of memory for the gradients' accumulators");
        goto done;
    }
    /* nothing can fail now but the kernel, and these calls cannot fault */
    if (dq_out) memset(dq_out, 0, sizeof(float) * (size_t)nq);
    if (dk_out) memset(dk_out, 0, sizeof(float) * (size_t)(sz->B * sz->Hkv * sz->Lk * sz->D));
    if (dv_out) memset(dv_out, 0, sizeof(float) * (size_t)(sz->B * sz->Hkv * sz->Lk * sz->Dv));
    pool_run(g->parts, g->parts, run_partition, g);
    if (g->fault) { /* the interpreter reads Q, K, V at their layouts and names the element at fault */
        st = interp_run(bc, args->q, args->k, args->v, NULL, NULL, err);
        if (st == ATTNC_OK)
            st = set_error(err, ATTNC_ERR_INTERNAL, "the kernel flagged a runtime error the interpreter does not see");
        goto done;
    }
    write_outputs(g, bc, bg, nq);
done:
    if (g) {
        for (int s = 0; s < g->splits; s++)
            if (g->call[s].dq != dq_out) free(g->call[s].dq);
        free(g->dtensor), free(g->acc_ptrs), free(g->acc_data);
        free(g->scratch);
        free(g);
    }
    launch_values_free(&vals);
    free(delta), free(dout), free(dk), free(dv);
    tile_map_free(&tm);
    return st;
}
