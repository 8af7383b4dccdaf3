/* templates/tile_bwd.c — the backward kernel that attnc emits as C
 * (kernel_abi.h: AttnGradCall, AttnGradTileFn; docs/gradients-kernel.md).
 *
 * backends/c/c_emit.c copies this file after templates/tile.c into every
 * generated translation unit and fills the holes  / *@GRAD_NAME@* /  with the
 * code of the backward schedule (middle/schedule_grad.h) printed by
 * backends/c/c_holes.c (cemit_grad_holes).  Everything else is the same for
 * every attention: FlashAttention-2's backward loop nest in scalar float32,
 * written for clarity (libtcc is the correctness-first backend).
 *
 * One work item is kv tile kt of (b, hk).  Its K and V rows are widened to
 * float32 once; for every query head hr of hk's group and every q tile the
 * transposed tile map lists, the kernel recomputes each element's score from
 * Q, K and the forward's LSE and accumulates
 *   p    = softmax ? exp(value - LSE) : value        dP = dO[q] . V[kv]
 *   g    = softmax ? p * (dP - delta[q]) : dP - delta[q]   (delta includes dLSE)
 *   gpre = g * dvalue/dpre
 *   dV[kv] += p * dO[q]   dK[kv] += gpre * scale * Q[q]   dQ[q] += gpre * scale * K[kv]
 *   and the tensor terms' scatter-adds into dtensor.
 * dK and dV of the tile are summed in scratch and added to the call's
 * accumulators at the end (the item owns those rows).  Rows whose forward LSE
 * is -inf (softmax: nothing kept) are skipped.  FULL tiles skip the masks.
 *
 * Before this text the emitter defines ATTNC_BQ, ATTNC_BK, ATTNC_SOFTMAX,
 * ATTNC_GRAD_ROW_SLOTS, ATTNC_GRAD_COL_SLOTS, ATTNC_LINKAGE and the names of
 * templates/tile.c (ATTNC_TILE_PARTIAL, attnc_take, attnc_inf, the dense
 * functions).  The holes, and what each sees:
 *   GRAD_ITEM   once per work item: values of the call and of (b, hk)
 *   GRAD_SLOTS  typed views of sc.row_slots / sc.col_slots
 *   GRAD_COL    per kv of the tile (kv, j): kv values into col slots
 *   GRAD_ROW    per query row (q, i, head hr): row values into row slots
 *   GRAD_PRE    per element (i, j, dot): declares pre and gscale
 *   GRAD_FAULT  (calls that check faults) returns 1 when the element faults
 *   GRAD_KEEP   (PARTIAL tiles) sets elem_keep
 *   GRAD_VALUE  sets elem_value (the score for softmax, else the weight) and
 *               elem_dvdpre (d value / d pre)
 *   GRAD_TERMS  reads g and gpre: the tensor terms, scatter-added into
 *               dtensor[t] (NULL: not wanted) */

/* The work item's scratch, carved from the runtime's per-thread buffer. */
typedef struct AttnGradScratch {
    float *k, *v;       /* [BK][D], [BK][Dv] the tile's K and V rows as float32 */
    float *dk, *dv;     /* [BK][D], [BK][Dv] the tile's dK and dV */
    float *q;           /* [BQ][D] the current q tile's rows as float32 */
    int64_t *row_slots; /* [GRAD_ROW_SLOTS][BQ] */
    int64_t *col_slots; /* [GRAD_COL_SLOTS][BK] */
} AttnGradScratch;

static int64_t attnc_grad_scratch_layout(const AttnCall *c, char *base, AttnGradScratch *sc) {
    int64_t off = 0;
    sc->k = (float *)attnc_take(base, &off, ATTNC_BK * c->D * 4);
    sc->v = (float *)attnc_take(base, &off, ATTNC_BK * c->Dv * 4);
    sc->dk = (float *)attnc_take(base, &off, ATTNC_BK * c->D * 4);
    sc->dv = (float *)attnc_take(base, &off, ATTNC_BK * c->Dv * 4);
    sc->q = (float *)attnc_take(base, &off, ATTNC_BQ * c->D * 4);
    sc->row_slots = (int64_t *)attnc_take(base, &off, ATTNC_GRAD_ROW_SLOTS * ATTNC_BQ * 8);
    sc->col_slots = (int64_t *)attnc_take(base, &off, ATTNC_GRAD_COL_SLOTS * ATTNC_BK * 8);
    return off;
}

/* Bytes of scratch one backward work item needs (kernel_abi.h). */
ATTNC_LINKAGE int64_t attnc_grad_scratch_bytes(const AttnCall *c) {
    AttnGradScratch sc;
    return attnc_grad_scratch_layout(c, (char *)0, &sc);
}

/* n elements of a float32, f16 or bf16 row at `at` (in elements) as float32. */
static void attnc_grad_row(const void *src, int32_t elem, int64_t at, int64_t n, float *dst) {
    if (elem) {
        attnc_dense_widen((const uint16_t *)src + at, elem, 1, n, 0, dst);
    } else {
        const float *s = (const float *)src + at;
        for (int64_t d = 0; d < n; d++) dst[d] = s[d];
    }
}

/* Accumulate kv tile kt of (b, hk) (kernel_abi.h, AttnGradTileFn). */
ATTNC_LINKAGE int attnc_grad_tile(const AttnGradCall *gc, int64_t b, int64_t hk, int64_t kt, float *const *dtensor,
                                  void *scratch) {
    const AttnCall *c = &gc->f;
    const int64_t D = c->D, Dv = c->Dv, H = c->H, Lq = c->Lq;
    const int64_t group_heads = c->H / c->Hkv;
    const int64_t k0 = kt * ATTNC_BK;
    const int64_t nc = c->Lk - k0 < ATTNC_BK ? c->Lk - k0 : ATTNC_BK;
    const int check_faults = c->check_faults;
    (void)dtensor;
    (void)check_faults;
    /*@GRAD_ITEM@*/
    AttnGradScratch sc;
    attnc_grad_scratch_layout(c, (char *)scratch, &sc);
    /*@GRAD_SLOTS@*/

    /* the tile's K and V rows as float32, its dK and dV zeroed, its kv values */
    for (int64_t j = 0; j < nc; j++) {
        const int64_t kv = k0 + j;
        (void)kv;
        attnc_grad_row(c->k, c->k_elem, b * c->k_stride[0] + hk * c->k_stride[1] + kv * c->k_stride[2], D, sc.k + j * D);
        attnc_grad_row(c->v, c->v_elem, b * c->v_stride[0] + hk * c->v_stride[1] + kv * c->v_stride[2], Dv,
                       sc.v + j * Dv);
        for (int64_t d = 0; d < D; d++) sc.dk[j * D + d] = 0.0f;
        for (int64_t d = 0; d < Dv; d++) sc.dv[j * Dv + d] = 0.0f;
        /*@GRAD_COL@*/
    }

    for (int64_t hr = hk * group_heads; hr < (hk + 1) * group_heads; hr++) {
        /* the q tiles of this kv tile in hr's tile group (all of them without a map) */
        const int64_t group = b * c->group_stride_b + hr * c->group_stride_h;
        const int64_t first = c->row_start ? c->row_start[group * c->nkt + kt] : 0;
        const int64_t last = c->row_start ? c->row_start[group * c->nkt + kt + 1] : c->nqt;
        for (int64_t e = first; e < last; e++) {
            const int64_t qt = c->row_start ? (int64_t)c->tile_kv[e] : e;
            const int mode = c->row_start ? c->tile_mode[e] : ATTNC_TILE_PARTIAL;
            const int64_t q0 = qt * ATTNC_BQ;
            const int64_t nr = Lq - q0 < ATTNC_BQ ? Lq - q0 : ATTNC_BQ;
            (void)mode;
            for (int64_t i = 0; i < nr; i++) {
                const int64_t q = q0 + i;
                (void)q;
                attnc_grad_row(c->q, c->q_elem, b * c->q_stride[0] + hr * c->q_stride[1] + q * c->q_stride[2], D,
                               sc.q + i * D);
                /*@GRAD_ROW@*/
            }
            for (int64_t i = 0; i < nr; i++) {
                const int64_t q = q0 + i;
                const int64_t row = (b * H + hr) * Lq + q;
                const float lse = c->lse[b * c->lse_stride[0] + hr * c->lse_stride[1] + q * c->lse_stride[2]];
                const float delta = gc->delta[row];
                const float *dorow = gc->dout + row * Dv;
                const float *qrow = sc.q + i * D;
                float *dqrow = gc->dq + row * D;
                (void)lse;
#if ATTNC_SOFTMAX
                if (lse == -attnc_inf()) continue; /* an empty row has no gradient */
#endif
                for (int64_t j = 0; j < nc; j++) {
                    const int64_t kv = k0 + j;
                    const float *krow = sc.k + j * D, *vrow = sc.v + j * Dv;
                    int elem_keep = 1;
                    float elem_value = 0.0f, elem_dvdpre = 0.0f;
                    float dot = 0.0f, dp = 0.0f;
                    (void)kv;
                    for (int64_t d = 0; d < D; d++) dot += qrow[d] * krow[d];
                    /*@GRAD_PRE@*/
                    /*@GRAD_FAULT@*/
                    /*@GRAD_KEEP@*/
                    if (!elem_keep) continue;
                    /*@GRAD_VALUE@*/
#if ATTNC_SOFTMAX
                    const float p = expf(elem_value - lse);
#else
                    const float p = elem_value;
#endif
                    for (int64_t d = 0; d < Dv; d++) dp += dorow[d] * vrow[d];
#if ATTNC_SOFTMAX
                    const float g = p * (dp - delta);
#else
                    const float g = dp - delta;
#endif
                    /* a zero derivative contributes nothing, even against an infinite seed */
                    const float gpre = elem_dvdpre != 0 ? g * elem_dvdpre : 0.0f;
                    const float gs = gpre * gscale;
                    float *dkrow = sc.dk + j * D, *dvrow = sc.dv + j * Dv;
                    for (int64_t d = 0; d < Dv; d++) dvrow[d] += p * dorow[d];
                    for (int64_t d = 0; d < D; d++) {
                        dkrow[d] += gs * qrow[d];
                        dqrow[d] += gs * krow[d];
                    }
                    /*@GRAD_TERMS@*/
                }
            }
        }
    }

    /* the tile's rows of dK and dV belong to this item alone */
    for (int64_t j = 0; j < nc; j++) {
        const int64_t at = (b * c->Hkv + hk) * c->Lk + k0 + j;
        for (int64_t d = 0; d < D; d++) gc->dk[at * D + d] += sc.dk[j * D + d];
        for (int64_t d = 0; d < Dv; d++) gc->dv[at * Dv + d] += sc.dv[j * Dv + d];
    }
    return 0;
}
