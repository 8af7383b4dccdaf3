/* launch_grad.c — the backward pass's driver, shared by every compiled
 * backend (launch_grad.h; the kernel's side is kernel_abi.h's AttnGradCall).
 * Requires: the forward Plan, a CompiledKernel with grad_tile, the bound
 * forward call and its BoundGrad.  Produces: dQ, dK, dV and the tensor
 * gradients BoundGrad asks for, written only on success.
 *
 *   1. per row, in float64: delta (softmax: rowsum(dO * O) - dLSE; weight:
 *      -dLSE * exp(-LSE)), and dO as contiguous float32; Q, K and V whose
 *      rows lie apart copied into contiguous blocks (packed_copy); these
 *      and the private dQ, dK, dV in buffers the kernel keeps between calls;
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
#include "kept_buffers.h"
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

/* Whether a tensor of dims at layout l is one contiguous block in the driver's order. */
static int contiguous(const BoundLayout *l, const int64_t dims[4]) {
    return l->stride[2] == dims[3] && l->stride[1] == dims[2] * dims[3] && l->stride[0] == dims[1] * dims[2] * dims[3];
}

/* The caller's tensor itself (else NULL) when the kernel may use it in place:
 * float32, contiguous in the driver's order (dims), and, for an output, a
 * call that cannot fault (a fault midway must not leave it half written;
 * launch.c's rule for O).  Saves a buffer, its page faults and the copy. */
static float *in_place(const void *t, const BoundLayout *l, const int64_t dims[4], int faults) {
    return !t || faults || l->elem != ATTNC_ELEM_F32 || !contiguous(l, dims) ? NULL : (float *)t;
}

/* Q, K or V copied into one contiguous block of its element type when its
 * rows lie apart ([B, L, H, D], fused QKV slices), else NULL (*nomem set
 * when the copy could not be made).  The backward reads each Q row once
 * per kv tile that reaches it and each K and V row across its q tiles:
 * rows H * D elements apart each lie on a page of their own and share L1
 * sets, on every read; the copy is one pass (launch.c packs the
 * forward's K and V for the same reason; docs/layouts.md). */
static char *packed_copy(const void *t, const BoundLayout *l, const int64_t dims[4], Buffers *buf, int slot,
                         int *nomem) {
    if (contiguous(l, dims)) return NULL;
    size_t eb = l->elem == ATTNC_ELEM_F32 ? 4 : 2, row = (size_t)dims[3] * eb;
    char *out = buf ? buffers_reserve(buf, slot, (size_t)(dims[0] * dims[1] * dims[2]) * row + 1) : NULL, *at = out;
    if (!out) {
        *nomem = 1;
        return NULL;
    }
    for (int64_t a = 0; a < dims[0]; a++)
        for (int64_t b = 0; b < dims[1]; b++, at += (size_t)dims[2] * row)
            tensor_copy_rows(at, (const char *)t + (a * l->stride[0] + b * l->stride[1]) * (int64_t)eb, dims[2],
                             l->stride[2] * (int64_t)eb, row);
    return out;
}

/* The call reads its tensor at `copy`, contiguous, when there is one. */
static void read_packed(const float **ptr, int64_t stride[4], const char *copy, const int64_t dims[4]) {
    if (!copy) return;
    *ptr = (const float *)copy; /* of the tensor's element type: the kernel reads it as the layout says */
    int64_t s[4] = {dims[1] * dims[2] * dims[3], dims[2] * dims[3], dims[3], 1};
    memcpy(stride, s, sizeof s);
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
    /* the call's buffers, kept by the kernel for its next call (runtime/kept_buffers.h): a training step calls the
     * backward with one shape again and again, and fresh ones cost page faults on every call */
    enum { GB_DELTA, GB_DOUT, GB_DK, GB_DV, GB_DQ, GB_Q, GB_K, GB_V, GB_SCRATCH };
    Buffers *buf = kept_buffers_take(ck->grad_rows);
    int64_t nk = sz->B * sz->Hkv * sz->Lk * sz->D, nv = sz->B * sz->Hkv * sz->Lk * sz->Dv;
    float *delta = buf ? buffers_reserve(buf, GB_DELTA, sizeof(float) * (size_t)(rows + 1)) : NULL;
    float *dout = dout_in || !buf ? NULL : buffers_reserve(buf, GB_DOUT, sizeof(float) * (size_t)(rows * sz->Dv + 1));
    float *dk = dk_out || !buf ? NULL : buffers_reserve(buf, GB_DK, sizeof(float) * (size_t)(nk + 1));
    float *dv = dv_out || !buf ? NULL : buffers_reserve(buf, GB_DV, sizeof(float) * (size_t)(nv + 1));
    float *dq0 = dq_out || !buf ? dq_out : buffers_reserve(buf, GB_DQ, sizeof(float) * (size_t)(nq + 1));
    int nomem = 0;
    char *qc = packed_copy(args->q, &bc->layout[BT_Q], dims[0], buf, GB_Q, &nomem);
    char *kc = packed_copy(args->k, &bc->layout[BT_K], dims[1], buf, GB_K, &nomem);
    char *vc = packed_copy(args->v, &bc->layout[BT_V], dims[2], buf, GB_V, &nomem);
    if (!g || !have_vals || !delta || !(dout || dout_in) || !(dk || dk_out) || !(dv || dv_out) || !dq0 || nomem) {
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
        read_packed(&c->f.q, c->f.q_stride, qc, dims[0]);
        read_packed(&c->f.k, c->f.k_stride, kc, dims[1]);
        read_packed(&c->f.v, c->f.v_stride, vc, dims[2]);
        c->delta = delta, c->dout = dout_in ? dout_in : dout;
        c->dk = dk_out ? dk_out : dk, c->dv = dv_out ? dv_out : dv;
        c->dq = s == 0 ? dq0 : calloc((size_t)nq + 1, sizeof(float));
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
    g->scratch = buffers_reserve(buf, GB_SCRATCH, (size_t)(g->scratch_bytes * g->parts) + 64);
    if (!have_acc || !g->scratch) {
        st = set_error(err, ATTNC_ERR_NOMEM, "out of memory for the gradients' accumulators");
        goto done;
    }
    /* nothing can fail now but the kernel, and these calls cannot fault */
    memset(dq0, 0, sizeof(float) * (size_t)nq);
    memset(dk_out ? dk_out : dk, 0, sizeof(float) * (size_t)nk);
    memset(dv_out ? dv_out : dv, 0, sizeof(float) * (size_t)nv);
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
            if (s > 0) free(g->call[s].dq);
        free(g->dtensor), free(g->acc_ptrs), free(g->acc_data);
        free(g);
    }
    launch_values_free(&vals);
    if (buf) kept_buffers_put(ck->grad_rows, buf);
    tile_map_free(&tm);
    return st;
}
