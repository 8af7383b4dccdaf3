/* kernel_abi.h — the contract between the runtime and every compiled kernel
 * (C emitted for libtcc or for a C compiler ahead of time, LLVM JIT code).
 *
 * A compiled kernel is one function that computes one work item: the rows
 * of one q tile of one (b, h).  The runtime (launch.c) binds the call, builds
 * the tile map, and hands out work items to its threads; the kernel only
 * reads this struct and writes its own rows of O and LSE.
 *
 * This header is also pasted verbatim at the top of generated C, so it must
 * stay self-contained C99 with no includes beyond <stdint.h>. */
#ifndef ATTNC_KERNEL_ABI_H
#define ATTNC_KERNEL_ABI_H
#include <stdint.h>

#define ATTNC_ABI_VERSION 10
#define ATTNC_ABI_MAX_RANK 8

/* One param value: ints and bools in i, floats in f (by the param's type). */
typedef union AttnValue {
    int64_t i;
    double f;
} AttnValue;

typedef struct AttnCall {
    /* sizes */
    int64_t B, H, Hkv, Lq, Lk, D, Dv;
    /* Q[B,H,Lq,D], K[B,Hkv,Lk,D], V[B,Hkv,Lk,Dv], O[B,H,Lq,Dv], LSE[B,H,Lq] (lse may be NULL) */
    const float *q, *k, *v;
    float *o, *lse;
    /* params by param index (the attention's unbound and fixed params alike) */
    const AttnValue *params;
    /* captured tensors by tensor index: data (int32_t or float) and shape */
    const void *const *tensor_data;
    const int64_t (*tensor_shape)[ATTNC_ABI_MAX_RANK];
    /* the tile map (plan.h): tiles of bq rows by bk keys (bk the plan's, or
     * fewer: see page_rows); for work item
     * (b, h, qt) the visited kv tiles are tile_kv[e] for e in
     * [row_start[g * nqt + qt], row_start[g * nqt + qt + 1]) with mode
     * tile_mode[e] (1 FULL: no mask code, 2 PARTIAL: evaluate the mask),
     * where g = b * group_stride_b + h * group_stride_h (the strides are
     * the schedule's rule, middle/schedule.h: sched_group_strides). */
    int64_t bq, bk, nqt, nkt;
    const int64_t *row_start;
    const int32_t *tile_kv;
    const uint8_t *tile_mode;
    int64_t group_stride_b, group_stride_h;
    /* the backend's own data for this kernel (e.g. the plan, for refplan) */
    const void *kernel_data;
    /* 0 when the tile analysis proved that no element of this call can raise
     * a runtime error: the kernel may then skip the plan's fault code */
    int32_t check_faults;
    /* element types (0 float32, 1 f16, 2 bf16: attnc.h's attnc_elem) and
     * strides in elements of Q, K, V, O along [B, H, L, D] (the last is 1)
     * and of LSE along [B, H, Lq]; q, k, v, o point at element [0,0,0,0] */
    int32_t q_elem, k_elem, v_elem, o_elem;
    int64_t q_stride[4], k_stride[4], v_stride[4], o_stride[4], lse_stride[3];
    /* query heads per work item (0 or 1: one; more only when the schedule
     * allows it, Schedule.pack_heads).  With pack = P > 1 the work item
     * (b, h, qt) holds heads h .. h + P - 1 (h a multiple of P; they read
     * one kv head and share one tile group) and its rows are packed:
     * row r of [qt * bq, min((qt + 1) * bq, Lq * P)) is query row r / P of
     * head h + r % P; the tile map's q tiles are of bq / P query rows. */
    int64_t pack;
    /* a paged K and V (page_rows 0: not paged; never with B > 1): key kv of
     * kv head hk is K's element
     *     kv_page[kv / page_rows] * k_page_stride + (kv % page_rows) * k_stride[2]
     *     + hk * k_stride[1] + d
     * (V likewise with v_page_stride, v_stride), so a page may be rows of
     * one L dimension (k_page_stride = page_rows * k_stride[2]) or head-major
     * ([pages, Hkv, page_rows, D]).  page_rows is a multiple of bk, so the
     * rows of a kv tile are consecutive rows (k_stride[2] apart) of one page:
     * a kernel maps only the tile's first key.  (bk may be below the plan's
     * for pages shorter than it, for kernels whose backend says so:
     * CompiledKernel.short_kv_tiles.)  The page strides are set
     * (> 0) whenever page_rows is (ABI 6). */
    const int32_t *kv_page;
    int64_t page_rows;
    int64_t k_page_stride, v_page_stride;
    /* NULL, or 2 per entry e of the tile map: a PARTIAL tile's keys
     * [k0 + tile_keys[2e], k0 + tile_keys[2e + 1]) (k0 its first key)
     * outside which every element is masked and raises no runtime error:
     * a kernel may skip those keys (treat them as masked).  ABI 7. */
    const uint16_t *tile_keys;
    /* NULL, or for each query row r of the call (its own numbering: block
     * order for multi-dimensional tiles), the row of Q, O and LSE where it
     * lies: a kernel reads Q and writes O and LSE at row q_rows[r] instead
     * of r, and uses r for everything else.  Only for kernels whose backend
     * says so (CompiledKernel.maps_rows).  ABI 8. */
    const int64_t *q_rows;
    /* NULL, or for each key kv of the call (block order), the row of K and
     * V where it lies: a kernel reads K and V at row kv_rows[kv] of every
     * kv head instead of kv, and uses kv for everything else.  Only for
     * kernels whose backend says so (CompiledKernel.maps_kv_rows), with
     * float32 K and V, never paged.  ABI 9. */
    const int64_t *kv_rows;
    /* NULL, or 1 per entry e of the tile map (kv tiles of at most 16
     * keys): bit j clear when every element of key k0 + j is masked and
     * raises no runtime error, so a kernel may skip the key (a PARTIAL
     * tile's set bits lie in its tile_keys range; a FULL tile's are all
     * set).  Only for calls whose tile map checks no faults.  ABI 10. */
    const uint16_t *tile_live;
} AttnCall;

/* Compute rows [qt*bq, min((qt+1)*bq, Lq)) of (b, h) (packed rows of heads
 * h .. h + pack - 1 when pack > 1): write their O and LSE.  `scratch` holds at least attnc_kernel_scratch_bytes(call) bytes,
 * private to the calling thread.  Returns 0, or 1 when some element of
 * these rows raises a runtime error (the plan's `fault`): the runtime then
 * asks the reference interpreter for the exact message, and discards O. */
typedef int (*AttnTileFn)(const AttnCall *call, int64_t b, int64_t h, int64_t qt, void *scratch);

/* Bytes of scratch one work item needs. */
typedef int64_t (*AttnScratchFn)(const AttnCall *call);

/* The backward pass (ABI 5; docs/gradients.md).  One work item is one kv
 * tile of one (b, hk) — FlashAttention-2's order: the kernel holds the
 * tile's K and V rows, and for every query head h of kv head hk (the GQA
 * group, h in [hk * H / Hkv, (hk + 1) * H / Hkv)) and every q tile that
 * the tile map lists for this kv tile in h's group, recomputes the scores,
 * p and the seeds, and accumulates:
 *   dV[kv] += p * dO[q]                     dP = dO[q] . V[kv]
 *   g = softmax ? p * (dP - delta[q]) : dP - delta[q]
 *   gpre = g * d(value)/d(pre)              (the backward plan's roots)
 *   dK[kv] += gpre * scale * Q[q]           dQ[q] += gpre * scale * K[kv]
 *   tensor gradients: scatter-add per the backward plan's terms
 * Rows whose forward LSE is -inf (softmax: empty rows) contribute nothing. */
typedef struct AttnGradCall {
    /* the forward call: sizes, Q, K, V and LSE (read; o unused), params,
     * tensors, layouts, kernel_data.  Its tile map is listed by kv tile
     * (plan.h: tile_map_transpose): for kv tile kt of group g the q tiles
     * are tile_kv[e] for e in [row_start[g * nkt + kt], row_start[g * nkt + kt + 1]),
     * where here nkt counts kv tiles and nqt q tiles as in the forward. */
    AttnCall f;
    /* per row [B, H, Lq], contiguous float32: softmax: rowsum(dO * O) - dLSE;
     * weight: -dLSE * exp(-LSE) (0 where dLSE is 0) */
    const float *delta;
    /* dO as float32, contiguous [B, H, Lq, Dv] */
    const float *dout;
    /* accumulators, float32, contiguous, zeroed by the runtime: dQ [B, H, Lq, D]
     * (this kv split's own, when the keys are split), dK [B, Hkv, Lk, D] and
     * dV [B, Hkv, Lk, Dv] (an item owns its kv tile's rows) */
    float *dq, *dk, *dv;
} AttnGradCall;

/* Accumulate kv tile kt of (b, hk) as above; `dtensor` (by tensor index,
 * NULL where not wanted) are the calling partition's own float32
 * accumulators of the tensors' gradients.  Returns 0, or 1 when an element
 * raises a runtime error (the runtime asks the interpreter for the message
 * and writes nothing). */
typedef int (*AttnGradTileFn)(const AttnGradCall *call, int64_t b, int64_t hk, int64_t kt, float *const *dtensor,
                              void *scratch);

#endif
