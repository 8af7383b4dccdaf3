/* launch_device.c — one call of a device backend's kernel (launch_device.h):
 * the tile map built on the host, everything the kernel reads moved to one
 * block of device memory, one launch through DeviceOps, the outputs moved
 * back.  The block holds, 256-byte aligned: 64 bytes of scratch for the
 * backend (the fault flag), the tile map (row_start, kv, mode), the captured
 * tensors, and for host pointers Q, K and V (each the span its strides
 * cover) and a contiguous O and LSE (copied out to the caller's strides on
 * success).  The small first part is staged on the host and copied once.
 * One work item per (b, h, q tile): no packed heads and no split keys (a
 * GPU has enough blocks without them). */
#include "launch_device.h"

#include <stdlib.h>
#include <string.h>

#include "interp.h"
#include "launch.h"

enum { SCRATCH_BYTES = 64, ALIGN = 256 };

static size_t aligned(size_t n) { return (n + ALIGN - 1) / ALIGN * ALIGN; }

/* Elements from element [0, 0, 0, 0] to the last, plus one; 0 when empty. */
static int64_t span(int64_t n0, int64_t n1, int64_t n2, int64_t n3, const int64_t *stride) {
    int64_t n[4] = {n0, n1, n2, n3}, last = 0;
    for (int d = 0; d < 4; d++) {
        if (n[d] <= 0) return 0;
        last += (n[d] - 1) * stride[d];
    }
    return last + 1;
}

static int elem_bytes(attnc_elem e) { return e == ATTNC_ELEM_F32 ? 4 : 2; }

/* Where each part lies in the device block, in bytes from its start. */
typedef struct Parts {
    size_t row_start, kv, mode, *tensor, small; /* small: the staged first part's size */
    size_t in[3], in_bytes[3];                  /* Q, K, V (host pointers only) */
    size_t o, o_bytes, lse, lse_bytes, total;
} Parts;

static size_t tensor_bytes(const attnc_tensor *t) {
    size_t n = 4;
    for (int d = 0; d < t->rank; d++) n *= (size_t)t->shape[d];
    return n;
}

static int plan_parts(const BoundCall *bc, const TileMap *tm, int device, int lse, const void *const *on_device,
                      Parts *pt) {
    const attnc_sizes *s = &bc->sz;
    const BoundLayout *L = bc->layout;
    int nt = bc->attn->ntensors;
    int64_t tiles = tm->row_start[tm->ngroups * tm->nqt];
    pt->tensor = calloc((size_t)nt + 1, sizeof *pt->tensor);
    if (!pt->tensor) return 0;
    size_t at = SCRATCH_BYTES;
    pt->row_start = at = aligned(at);
    at += sizeof(int64_t) * (size_t)(tm->ngroups * tm->nqt + 1);
    pt->kv = at = aligned(at);
    at += sizeof(int32_t) * (size_t)tiles;
    pt->mode = at = aligned(at);
    at += (size_t)tiles;
    for (int i = 0; i < nt; i++) {
        pt->tensor[i] = at = aligned(at);
        at += on_device && on_device[i] ? 0 : tensor_bytes(bc->tensors[i]);
    }
    pt->small = at;
    if (!device) {
        const int64_t n[3][4] = {{s->B, s->H, s->Lq, s->D}, {s->B, s->Hkv, s->Lk, s->D}, {s->B, s->Hkv, s->Lk, s->Dv}};
        for (int t = 0; t < 3; t++) {
            pt->in[t] = at = aligned(at);
            pt->in_bytes[t] = (size_t)span(n[t][0], n[t][1], n[t][2], n[t][3], L[t].stride) * elem_bytes(L[t].elem);
            at += pt->in_bytes[t];
        }
        pt->o = at = aligned(at);
        pt->o_bytes = (size_t)(s->B * s->H * s->Lq * s->Dv) * elem_bytes(L[BT_O].elem);
        at += pt->o_bytes;
        pt->lse = at = aligned(at);
        pt->lse_bytes = lse ? sizeof(float) * (size_t)(s->B * s->H * s->Lq) : 0;
        at += pt->lse_bytes;
    }
    pt->total = at;
    return 1;
}

/* The first part (zeroed scratch, tile map, tensors) as the device will hold it. */
static char *stage_small(const BoundCall *bc, const TileMap *tm, const void *const *on_device, const Parts *pt) {
    char *h = calloc(1, pt->small);
    if (!h) return NULL;
    int64_t tiles = tm->row_start[tm->ngroups * tm->nqt];
    memcpy(h + pt->row_start, tm->row_start, sizeof(int64_t) * (size_t)(tm->ngroups * tm->nqt + 1));
    if (tiles) memcpy(h + pt->kv, tm->kv, sizeof(int32_t) * (size_t)tiles);
    if (tiles) memcpy(h + pt->mode, tm->mode, (size_t)tiles);
    for (int i = 0; i < bc->attn->ntensors; i++)
        if (!(on_device && on_device[i]) && tensor_bytes(bc->tensors[i]) && bc->tensors[i]->data)
            memcpy(h + pt->tensor[i], bc->tensors[i]->data, tensor_bytes(bc->tensors[i]));
    return h;
}

/* Bytes of O's (t 0) or LSE's (t 1) span at bc's layout. */
static size_t out_span(const BoundCall *bc, int t) {
    const attnc_sizes *s = &bc->sz;
    const BoundLayout *L = &bc->layout[t ? BT_LSE : BT_O];
    return t ? (size_t)span(s->B, s->H, s->Lq, 1, L->stride) * 4
             : (size_t)span(s->B, s->H, s->Lq, s->Dv, L->stride) * elem_bytes(L->elem);
}

attnc_status launch_device_interp(const DeviceOps *ops, const BoundCall *bc, const attnc_args *args, int device,
                                  int outputs, void *stream, attnc_error *err) {
    const attnc_sizes *s = &bc->sz;
    const BoundLayout *L = bc->layout;
    const void *in[3] = {args->q, args->k, args->v};
    void *out[2] = {args->o, args->lse}, *host[5] = {NULL, NULL, NULL, NULL, NULL};
    attnc_status st = ATTNC_OK;
    if (device) {
        const int64_t n[3][4] = {{s->B, s->H, s->Lq, s->D}, {s->B, s->Hkv, s->Lk, s->D}, {s->B, s->Hkv, s->Lk, s->Dv}};
        for (int t = 0; t < 3 && !st; t++) {
            size_t bytes = (size_t)span(n[t][0], n[t][1], n[t][2], n[t][3], L[t].stride) * elem_bytes(L[t].elem);
            host[t] = malloc(bytes + 4);
            if (!host[t]) st = set_error(err, ATTNC_ERR_NOMEM, "out of memory");
            else st = ops->copy(host[t], in[t], bytes, 0, stream, err);
            in[t] = host[t];
        }
        /* the outputs' spans copied first: what lies between their rows is kept */
        for (int t = 0; t < 2 && !st && outputs; t++)
            if (out[t]) {
                host[3 + t] = malloc(out_span(bc, t) + 4);
                if (!host[3 + t]) st = set_error(err, ATTNC_ERR_NOMEM, "out of memory");
                else st = ops->copy(host[3 + t], out[t], out_span(bc, t), 0, stream, err);
                out[t] = host[3 + t];
            }
    }
    if (!st)
        st = interp_run(bc, in[0], in[1], in[2], outputs ? out[0] : NULL, outputs ? out[1] : NULL, err);
    for (int t = 0; t < 2 && !st && outputs && device; t++)
        if (host[3 + t]) st = ops->copy(t ? args->lse : args->o, host[3 + t], out_span(bc, t), 1, stream, err);
    for (int t = 0; t < 5; t++) free(host[t]);
    return st;
}

/* The interpreter's message for a call whose kernel flagged a fault (Q, K
 * and V copied back from the device first when they live there). */
static attnc_status name_fault(const DeviceOps *ops, const BoundCall *bc, const attnc_args *args, int device,
                               void *stream, attnc_error *err) {
    attnc_status st = launch_device_interp(ops, bc, args, device, 0, stream, err);
    if (st == ATTNC_OK)
        st = set_error(err, ATTNC_ERR_INTERNAL, "the kernel flagged a runtime error the interpreter does not see");
    return st;
}

/* O and LSE from the block into the caller's buffers at their strides. */
static attnc_status copy_outputs(const DeviceOps *ops, const BoundCall *bc, const attnc_args *args, const char *block,
                                 const Parts *pt, void *stream, attnc_error *err) {
    const BoundLayout *L = bc->layout;
    char *o = malloc(pt->o_bytes + pt->lse_bytes + 4);
    if (!o) return set_error(err, ATTNC_ERR_NOMEM, "out of memory");
    attnc_status st = ops->copy(o, block + pt->o, pt->o_bytes, 0, stream, err);
    if (!st && pt->lse_bytes) st = ops->copy(o + pt->o_bytes, block + pt->lse, pt->lse_bytes, 0, stream, err);
    if (!st) {
        launch_copy_out(&bc->sz, bc->sz.Dv, elem_bytes(L[BT_O].elem), o, (char *)args->o, L[BT_O].stride);
        if (pt->lse_bytes) launch_copy_out(&bc->sz, 1, 4, o + pt->o_bytes, (char *)args->lse, L[BT_LSE].stride);
    }
    free(o);
    return st;
}

/* The AttnCall of the call with the block's device pointers. */
static void fill_call(const Plan *p, const CompiledKernel *ck, const BoundCall *bc, const attnc_args *args,
                      const TileMap *tm, const LaunchValues *vals, const void **dtensor, char *block, const Parts *pt,
                      int device, const void *const *on_device, AttnCall *c) {
    const attnc_sizes *sz = &bc->sz;
    int64_t gsb, gsh;
    sched_group_strides(p->sched, sz->H, &gsb, &gsh);
    for (int i = 0; i < bc->attn->ntensors; i++)
        dtensor[i] = on_device && on_device[i] ? on_device[i] : block + pt->tensor[i];
    *c = (AttnCall){.B = sz->B, .H = sz->H, .Hkv = sz->Hkv, .Lq = sz->Lq, .Lk = sz->Lk, .D = sz->D, .Dv = sz->Dv,
                    .q = device ? args->q : (const float *)(block + pt->in[0]),
                    .k = device ? args->k : (const float *)(block + pt->in[1]),
                    .v = device ? args->v : (const float *)(block + pt->in[2]),
                    .o = device ? args->o : (float *)(block + pt->o),
                    .lse = device ? args->lse : args->lse ? (float *)(block + pt->lse) : NULL,
                    .params = vals->params, .tensor_data = dtensor,
                    .tensor_shape = (const int64_t(*)[ATTNC_ABI_MAX_RANK])vals->tshape, .bq = p->bq, .bk = p->bk,
                    .nqt = tm->nqt, .nkt = tm->nkt, .row_start = (const int64_t *)(block + pt->row_start),
                    .tile_kv = (const int32_t *)(block + pt->kv), .tile_mode = (const uint8_t *)(block + pt->mode),
                    .group_stride_b = gsb, .group_stride_h = gsh, .kernel_data = ck->kernel_data,
                    .check_faults = tm->check_faults, .pack = 1};
    launch_set_layouts(c, bc, !device, 0);
}

/* Inputs to the block: the staged first part, and Q, K, V for host pointers. */
static attnc_status copy_inputs(const DeviceOps *ops, const BoundCall *bc, const attnc_args *args, const TileMap *tm,
                                const void *const *on_device, const Parts *pt, char *block, int device, void *stream,
                                attnc_error *err) {
    char *small = stage_small(bc, tm, on_device, pt);
    if (!small) return set_error(err, ATTNC_ERR_NOMEM, "out of memory");
    attnc_status st = ops->copy(block, small, pt->small, 1, stream, err);
    free(small);
    const void *in[3] = {args->q, args->k, args->v};
    for (int t = 0; t < 3 && !st && !device; t++)
        if (pt->in_bytes[t]) st = ops->copy(block + pt->in[t], in[t], pt->in_bytes[t], 1, stream, err);
    return st;
}

attnc_status launch_device_run(const Plan *p, const DeviceOps *ops, const CompiledKernel *ck, const BoundCall *bc,
                               const attnc_args *args, void *stream, int device, attnc_error *err) {
    return launch_device_run_with(p, ops, ck, bc, args, stream, device, NULL, err);
}

attnc_status launch_device_run_with(const Plan *p, const DeviceOps *ops, const CompiledKernel *ck, const BoundCall *bc,
                                    const attnc_args *args, void *stream, int device, const void *const *on_device,
                                    attnc_error *err) {
    TileMap tm;
    LaunchValues vals;
    Parts pt;
    memset(&pt, 0, sizeof pt);
    memset(&vals, 0, sizeof vals);
    attnc_status st = tile_map_build_rows(p, bc, p->bq, &tm, err);
    if (st) return st;
    const void **dtensor = calloc((size_t)bc->attn->ntensors + 1, sizeof *dtensor);
    char *block = NULL;
    if (!dtensor || !launch_values(bc, &vals) || !plan_parts(bc, &tm, device, args->lse != NULL, on_device, &pt))
        st = set_error(err, ATTNC_ERR_NOMEM, "out of memory");
    if (!st) st = ops->alloc(pt.total, (void **)&block, err);
    if (!st) st = copy_inputs(ops, bc, args, &tm, on_device, &pt, block, device, stream, err);
    int faulted = 0;
    if (!st) {
        AttnCall c;
        fill_call(p, ck, bc, args, &tm, &vals, dtensor, block, &pt, device, on_device, &c);
        st = ops->launch(ck, &c, stream, block, &faulted, err);
    }
    if (!st && faulted) st = name_fault(ops, bc, args, device, stream, err);
    if (!st && !device) st = copy_outputs(ops, bc, args, block, &pt, stream, err);
    ops->free(block);
    free(pt.tensor);
    free(dtensor);
    launch_values_free(&vals);
    tile_map_free(&tm);
    return st;
}
