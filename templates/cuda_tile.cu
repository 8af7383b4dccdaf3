/* templates/cuda_tile.cu — the fused attention kernel that attnc emits as
 * CUDA C (`attnc emit --target cuda`), and that the cuda-emu backend runs on
 * the CPU through libtcc.
 *
 * backends/cuda/cuda_emit.c copies this file into every generated translation
 * unit, replaces @NAME@ by the attention's name and fills the holes (the
 * lines holding only a comment of the form  / *@HOLE@* / ) with the code of
 * one attention's kernel plan, exactly the code templates/tile.c receives
 * (backends/c/c_holes.c, cemit_holes): the per-element code is shared between
 * the C and the CUDA kernels, and the holes see the same names here.
 *
 * Before this text the emitter defines:
 *   ATTNC_BQ, ATTNC_BK, ATTNC_SOFTMAX, ATTNC_LSE_OFFSET, ATTNC_ROW_SLOTS,
 *   ATTNC_COL_SLOTS, ATTNC_MAX_LOWRANK_COLS, ATTNC_DIAG_TABLES,
 *   ATTNC_DIAG_CAP                           as for templates/tile.c
 *   ATTNC_NPARAMS, ATTNC_NTENSORS            the attention's params and tensors
 *   ATTNC_PACK_HEADS  1 when the schedule lets a block pack query heads
 *                   (Schedule.pack_heads; the launcher refuses pack > 1 otherwise)
 *   ATTNC_LOWRANK   1 when the plan has low-rank bias terms (lrow exists)
 *   ATTNC_SCRATCH_READS_TENSORS  1 when the SCRATCH hole reads tensor data (the
 *                   launcher, on the host, cannot: it refuses the call)
 *   ATTNC_V2        1 for a version-2 attention: the launcher below is
 *                   @NAME@_cuda_kernel_launch, called by the entry point
 *                   backends/cuda/cuda_emit_v2.c appends
 *   ATTNC_DEV       how helpers are declared (host and device functions)
 *   ATTNC_ITEM      how attnc_cuda_item is declared
 *   ATTNC_SHARED    __shared__ (nothing for the emulation)
 *   ATTNC_THREADS_BEGIN(t) / ATTNC_THREADS_END  one phase of the block:
 *                   on the GPU, thread t = threadIdx.x runs the body, then
 *                   __syncthreads(); in the emulation, a loop runs the body
 *                   for t = 0 .. ATTNC_NT-1.  Phases hold no break or
 *                   continue of their own, and no local survives a phase:
 *                   per-row state lives in shared arrays indexed by the row.
 *   attnc_inf(), kernel_abi.h's AttnCall, and the helpers the holes call
 *                   (the sections of templates/support.h).
 *
 * Structure: one block of ATTNC_NT = min(ATTNC_BQ, 128) threads per work
 * item (b, h, q tile), reading the tile map exactly as templates/tile.c does.
 * Thread t owns rows i = t, t + NT, ... of the q tile: it keeps the row's running max
 * (log2 domain), sum and "kept anything" flag in shared memory and its
 * un-normalised output row in O itself (no other thread writes it).  Per
 * visited kv tile: a phase where the threads compute the tile's per-key
 * values (column slots, low-rank K columns), with diagonal tables a phase
 * where they fill the tables' entries (the DIAG hole, as in templates/tile.c;
 * in shared memory), then a phase where each thread computes its row's dot
 * products, element code and online-softmax update.
 * The low-rank Q and K columns live in dynamic shared memory
 * (attnc_cuda_dynamic_bytes); everything else is static.  A runtime error
 * of an element (the plan's fault) is reported by attnc_cuda_item's result;
 * the kernel ORs it into the caller's fault flag.
 *
 * Layouts (the AttnCall's elem and stride fields): a float32 Q, K or V is
 * read in place with its strides, and a float32 O accumulates in place.  An
 * f16 or bf16 tensor is staged as float32 in dynamic shared memory, widened
 * once per tile: a thread widens its own Q rows once per work item, the
 * per-key phase widens the K and V tiles, and an f16 / bf16 O accumulates in
 * float32 rows there and is rounded once (to nearest even) when finished.
 * The staging takes room only for the tensors that need it.
 *
 * Packed heads (AttnCall.pack = P > 1, kernel_abi.h): the block's work item
 * holds query heads h .. h+P-1, which share one kv head, so the per-key
 * phase stages each K and V tile once for all of them.  Row i of the tile
 * is packed row r = qt*BQ + i: query row q = r / P of head hr = h + r % P,
 * recomputed by each phase for the rows its thread owns.  Q, O and LSE rows
 * are addressed per row with their own head; the holes read `hr` in row and
 * element code (backends/c/c_holes.c), the item's `h` in HEAD and COL.
 *
 * Paged K and V (AttnCall.page_rows > 0, kernel_abi.h): key kv of K lies
 * kv_page[kv / page_rows] * k_page_stride + (kv % page_rows) * ks elements
 * from the head's start (V: v_page_stride, vs).  page_rows is a multiple
 * of the call's kv tile (c->bk: BK, or fewer keys for pages shorter than
 * BK), so a kv tile is one run of rows of one page: where its first row
 * lies (kr0, vr0) replaces k0 * ks and k0 * vs in the K and V addresses (in
 * place or staged); masks, biases and the holes see kv = k0 + j as always. */

#define ATTNC_TILE_FULL 1
#define ATTNC_TILE_PARTIAL 2
#define ATTNC_LOG2E 1.44269504088896340736f
#define ATTNC_LN2 0.69314718055994530942f
#define ATTNC_NT (ATTNC_BQ < 128 ? ATTNC_BQ : 128) /* threads per block; each runs rows t, t + NT, ... */
#if ATTNC_SOFTMAX
#define ATTNC_MASKED (-attnc_inf()) /* a masked score: exp2 gives 0 */
#else
#define ATTNC_MASKED 0.0f           /* a masked weight */
#endif

/* The names the hole code uses for its scratch (as in templates/tile.c). */
typedef struct AttnCudaScratch {
    float *lse_off;     /* [BQ] the row's LSE offset (shared) */
    float *qlr;         /* [BQ][lowrank_cols] low-rank columns of the Q rows (dynamic shared) */
    float *klr;         /* [lowrank_cols][BK] low-rank columns of the K tile (dynamic shared) */
    int64_t *row_slots; /* [ROW_SLOTS][BQ] (shared) */
    int64_t *col_slots; /* [COL_SLOTS][BK] (shared) */
    int64_t *diag;      /* [DIAG_TABLES][DIAG_CAP] the tile's diagonal tables (shared; templates/tile.c's DIAG) */
} AttnCudaScratch;

/* The float32 staging of 16-bit tensors, after the low-rank columns in
 * dynamic shared memory, in floats: Q rows [BQ][D] at *qf, the K tile
 * [BK][D] at *kf, the V tile [BK][Dv] at *vf, O's accumulators [BQ][Dv] at
 * *of, each only when that tensor is f16 or bf16; returns the total. */
ATTNC_DEV int64_t attnc_cuda_staging(const AttnCall *c, int64_t *qf, int64_t *kf, int64_t *vf, int64_t *of) {
    int64_t n = 0;
    *qf = n;
    n += c->q_elem ? ATTNC_BQ * c->D : 0;
    *kf = n;
    n += c->k_elem ? ATTNC_BK * c->D : 0;
    *vf = n;
    n += c->v_elem ? ATTNC_BK * c->Dv : 0;
    *of = n;
    n += c->o_elem ? ATTNC_BQ * c->Dv : 0;
    return n;
}

/* Bytes of dynamic shared memory one block needs (host and device). */
ATTNC_DEV int64_t attnc_cuda_dynamic_bytes(const AttnCall *c) {
    int64_t lowrank_cols = 0, qf, kf, vf, of;
    /*@SCRATCH@*/
    return ((ATTNC_BQ + ATTNC_BK) * lowrank_cols + attnc_cuda_staging(c, &qf, &kf, &vf, &of)) * 4;
}

/* dst[d] = src[d] widened to float32 for d < n; src holds f16 (elem 1) or bf16 (elem 2). */
ATTNC_DEV void attnc_cuda_widen(const uint16_t *src, int32_t elem, int64_t n, float *dst) {
    if (elem == 1)
        for (int64_t d = 0; d < n; d++) dst[d] = attnc_f16_to_f32(src[d]);
    else
        for (int64_t d = 0; d < n; d++) dst[d] = attnc_bf16_to_f32(src[d]);
}

/* Work item (b, h, qt), run by the ATTNC_NT threads of a block: O and LSE of
 * its rows.  dyn: attnc_cuda_dynamic_bytes(c) bytes of shared memory.
 * Returns nonzero when the calling thread met a runtime error (or the call's
 * low-rank sizes cannot be held, for every thread). */
ATTNC_ITEM int attnc_cuda_item(const AttnCall *c, int64_t b, int64_t h, int64_t qt, float *dyn) {
    const int64_t D = c->D, Dv = c->Dv;
    const int64_t P = c->pack > 1 ? c->pack : 1; /* query heads in this work item */
    const int64_t hk = h / (c->H / c->Hkv);
    const int64_t q0 = qt * ATTNC_BQ; /* the first (packed) row */
    const int64_t nr = c->Lq * P - q0 < ATTNC_BQ ? c->Lq * P - q0 : ATTNC_BQ;
    /* offsets in elements of the batch's Q, O and LSE, and of K's and V's head */
    const int64_t qat = b * c->q_stride[0], oat = b * c->o_stride[0], lat = b * c->lse_stride[0];
    const int64_t kat = b * c->k_stride[0] + hk * c->k_stride[1], ks = c->k_stride[2];
    const int64_t vat = b * c->v_stride[0] + hk * c->v_stride[1], vs = c->v_stride[2];
    int64_t lowrank_cols = 0;
    (void)hk;
    /*@HEAD@*/
#if ATTNC_SOFTMAX
    ATTNC_SHARED float sm_m[ATTNC_BQ];
#endif
    ATTNC_SHARED float sm_l[ATTNC_BQ];
    ATTNC_SHARED float sm_lse_off[ATTNC_BQ];
    ATTNC_SHARED int32_t sm_any[ATTNC_BQ];
    ATTNC_SHARED int64_t sm_row_slots[ATTNC_ROW_SLOTS > 0 ? ATTNC_ROW_SLOTS * ATTNC_BQ : 1];
    ATTNC_SHARED int64_t sm_col_slots[ATTNC_COL_SLOTS > 0 ? ATTNC_COL_SLOTS * ATTNC_BK : 1];
    ATTNC_SHARED int64_t sm_diag[ATTNC_DIAG_TABLES > 0 ? ATTNC_DIAG_TABLES * ATTNC_DIAG_CAP : 1];
    AttnCudaScratch sc;
    sc.lse_off = sm_lse_off;
    sc.qlr = dyn;
    sc.klr = dyn + ATTNC_BQ * lowrank_cols;
    int64_t qf_at, kf_at, vf_at, of_at;
    attnc_cuda_staging(c, &qf_at, &kf_at, &vf_at, &of_at);
    float *stage = dyn + (ATTNC_BQ + ATTNC_BK) * lowrank_cols;
    float *qf = stage + qf_at, *kf = stage + kf_at, *vf = stage + vf_at, *of = stage + of_at;
    sc.row_slots = sm_row_slots;
    sc.col_slots = sm_col_slots;
    sc.diag = sm_diag;
    (void)sc;
    /*@SLOTS@*/
    /* 0 when the call's tile analysis proved that nothing here can fault */
    const int check_faults = c->check_faults;
    int fault = 0;
    (void)check_faults;

    /* phase: per-row state and row values */
    ATTNC_THREADS_BEGIN(t)
    for (int64_t i = t; i < nr; i += ATTNC_NT) {
        const int64_t q = (q0 + i) / P, hr = h + (q0 + i) % P;
        float *orow = c->o_elem ? of + i * Dv : c->o + oat + hr * c->o_stride[1] + q * c->o_stride[2];
        (void)q;
        (void)hr;
        if (c->q_elem)
            attnc_cuda_widen((const uint16_t *)c->q + qat + hr * c->q_stride[1] + q * c->q_stride[2], c->q_elem, D,
                             qf + i * D);
#if ATTNC_SOFTMAX
        sm_m[i] = -attnc_inf();
#endif
        sm_l[i] = 0.0f;
        sm_any[i] = 0;
        sc.lse_off[i] = 0.0f;
        for (int64_t d = 0; d < Dv; d++) orow[d] = 0.0f;
        /*@ROW@*/
    }
    ATTNC_THREADS_END

    /* the kv tiles this q tile visits, from the tile map of its group */
    const int64_t group = b * c->group_stride_b + h * c->group_stride_h;
    const int64_t first = c->row_start ? c->row_start[group * c->nqt + qt] : 0;
    const int64_t last = c->row_start ? c->row_start[group * c->nqt + qt + 1] : c->nkt;
    /* keys per kv tile: ATTNC_BK, or fewer for pages shorter than it (c->bk, kernel_abi.h) */
    const int64_t bk = c->bk;
    for (int64_t e = first; e < last; e++) {
        const int64_t k0 = (c->row_start ? (int64_t)c->tile_kv[e] : e) * bk;
        const int mode = c->row_start ? c->tile_mode[e] : ATTNC_TILE_PARTIAL;
        const int64_t nc = c->Lk - k0 < bk ? c->Lk - k0 : bk;
        /* where the tile's first row of K and of V lies (elements from the
         * head's start): row k0, or its place in its page (a tile never spans
         * two pages); kv stays k0 + j below */
        const int64_t kpage = c->page_rows ? (int64_t)c->kv_page[k0 / c->page_rows] : 0;
        const int64_t kr0 = c->page_rows ? kpage * c->k_page_stride + k0 % c->page_rows * ks : k0 * ks;
        const int64_t vr0 = c->page_rows ? kpage * c->v_page_stride + k0 % c->page_rows * vs : k0 * vs;
        /* the tile's K and V rows as float32: in place, or staged (widened below) */
        const float *ktile = c->k_elem ? kf : c->k + kat + kr0, *vtile = c->v_elem ? vf : c->v + vat + vr0;
        const int64_t kld = c->k_elem ? D : ks, vld = c->v_elem ? Dv : vs;

        /* phase: the tile's per-key values, and its 16-bit K and V rows widened */
        ATTNC_THREADS_BEGIN(t)
        for (int64_t j = t; j < nc; j += ATTNC_NT) {
            const int64_t kv = k0 + j;
            (void)kv;
            if (c->k_elem) attnc_cuda_widen((const uint16_t *)c->k + kat + kr0 + j * ks, c->k_elem, D, kf + j * D);
            if (c->v_elem) attnc_cuda_widen((const uint16_t *)c->v + vat + vr0 + j * vs, c->v_elem, Dv, vf + j * Dv);
            /*@COL@*/
        }
        ATTNC_THREADS_END
#if ATTNC_DIAG_TABLES
        /* phase: the terms of kv - q once per distance the tile's elements meet (templates/tile.c's DIAG) */
        const int64_t diag_d0 = k0 - (q0 + nr - 1);
        ATTNC_THREADS_BEGIN(t)
        for (int64_t de = t; de < nr + nc - 1; de += ATTNC_NT) {
            const int64_t q = q0, kv = q0 + diag_d0 + de, hr = h;
            (void)q;
            (void)kv;
            (void)hr;
            /*@DIAG@*/
        }
        ATTNC_THREADS_END
#endif

        /* phase: each thread's row against the tile */
        ATTNC_THREADS_BEGIN(t)
        for (int64_t i = t; i < nr; i += ATTNC_NT) {
            const int64_t q = (q0 + i) / P, hr = h + (q0 + i) % P;
            const float *qrow = c->q_elem ? qf + i * D : c->q + qat + hr * c->q_stride[1] + q * c->q_stride[2];
            float *orow = c->o_elem ? of + i * Dv : c->o + oat + hr * c->o_stride[1] + q * c->o_stride[2];
            float srow[ATTNC_BK];
#if ATTNC_LOWRANK
            float lrow[ATTNC_BK];
#endif
            int kept = 0;
            /* its keys [jlo, jhi) of the tile: with a band (middle/pass_band.c), a PARTIAL tile's keys in the
             * row's band, the others masked unevaluated (templates/tile.c); not in a call that checks runtime
             * errors (a mask may raise one outside the band) */
            int64_t jlo = 0, jhi = nc;
            (void)q;
            (void)hr;
#if ATTNC_BAND
            if (mode == ATTNC_TILE_PARTIAL && !check_faults)
                attnc_band_keys(ATTNC_BAND_LO, ATTNC_BAND_HI, k0, 0, nc, &jlo, &jhi);
#endif
            /* dot products, and the low-rank bias terms over their extra columns */
            for (int64_t j = 0; j < nc; j++) {
                const float *krow = ktile + j * kld;
                if (j < jlo || j >= jhi) {
                    srow[j] = 0.0f; /* masked below, before anything reads it */
                    continue;
                }
                float dot = 0.0f;
                for (int64_t d = 0; d < D; d++) dot += qrow[d] * krow[d];
                srow[j] = dot;
#if ATTNC_LOWRANK
                float lr = 0.0f;
                for (int64_t r = 0; r < lowrank_cols; r++) lr += sc.qlr[i * lowrank_cols + r] * sc.klr[r * ATTNC_BK + j];
                lrow[j] = lr;
#endif
            }
            /* per element: score (or weight), masks on PARTIAL tiles only */
            if (mode == ATTNC_TILE_PARTIAL) {
                for (int64_t j = 0; j < nc; j++) {
                    const int64_t kv = k0 + j;
                    int elem_fault = 0, elem_keep = 1;
                    float elem_value = 0.0f;
                    (void)kv;
                    if (j < jlo || j >= jhi) {
                        srow[j] = ATTNC_MASKED;
                        continue;
                    }
                    /*@ELEM_PARTIAL@*/
                    fault |= elem_fault;
                    kept |= elem_keep;
                    srow[j] = elem_keep ? elem_value : ATTNC_MASKED;
                }
            } else {
                for (int64_t j = 0; j < nc; j++) {
                    const int64_t kv = k0 + j;
                    int elem_fault = 0;
                    float elem_value = 0.0f;
                    (void)kv;
                    /*@ELEM_FULL@*/
                    fault |= elem_fault;
                    srow[j] = elem_value;
                }
                kept = nc > 0;
            }
            sm_any[i] |= kept;
#if ATTNC_SOFTMAX
            /* online softmax in the log2 domain (NaN scores are never the max) */
            float tile_max = -attnc_inf();
            for (int64_t j = 0; j < nc; j++) tile_max = srow[j] > tile_max ? srow[j] : tile_max;
            const float m_old = sm_m[i];
            const float m_new = tile_max > m_old ? tile_max : m_old;
            int live = m_new != -attnc_inf(); /* else nothing kept yet: every p is 0 */
            if (live && m_new != m_old) {
                const float rescale = exp2f(m_old - m_new);
                sm_l[i] *= rescale;
                for (int64_t d = 0; d < Dv; d++) orow[d] *= rescale;
                sm_m[i] = m_new;
            }
            float sum = 0.0f;
            for (int64_t j = 0; j < nc; j++) {
                srow[j] = live ? exp2f(srow[j] - m_new) : 0.0f;
                sum += srow[j];
            }
            sm_l[i] += sum;
#else
            float sum = 0.0f;
            for (int64_t j = 0; j < nc; j++) sum += srow[j];
            sm_l[i] += sum;
#endif
            /* O_acc += P . V_tile (a masked key, p = 0, adds nothing) */
            for (int64_t d = 0; d < Dv; d++) {
                float a = orow[d];
                for (int64_t j = 0; j < nc; j++)
                    if (srow[j] != 0.0f) a += srow[j] * vtile[j * vld + d];
                orow[d] = a;
            }
        }
        ATTNC_THREADS_END
    }

    /* phase: O and LSE, each row at its own head; a row that kept nothing gives O = 0 and LSE = -inf */
    ATTNC_THREADS_BEGIN(t)
    for (int64_t i = t; i < nr; i += ATTNC_NT) {
        const int64_t q = (q0 + i) / P, hr = h + (q0 + i) % P;
        const int64_t orow_at = oat + hr * c->o_stride[1] + q * c->o_stride[2];
        const float off = sc.lse_off[i];
        float *orow = c->o_elem ? of + i * Dv : c->o + orow_at;
        int empty = !sm_any[i] || (ATTNC_LSE_OFFSET && (off != off || off == -attnc_inf()));
        float lse;
#if ATTNC_SOFTMAX
        empty = empty || sm_m[i] == -attnc_inf();
        for (int64_t d = 0; d < Dv; d++) orow[d] = empty ? 0.0f : orow[d] / sm_l[i];
        lse = sm_m[i] * ATTNC_LN2 + logf(sm_l[i]) + off;
#else
        for (int64_t d = 0; d < Dv; d++) orow[d] = empty ? 0.0f : orow[d];
        lse = logf(sm_l[i]);
#endif
        if (c->o_elem) { /* rounded once into O */
            uint16_t *out = (uint16_t *)c->o + orow_at;
            for (int64_t d = 0; d < Dv; d++)
                out[d] = c->o_elem == 1 ? attnc_f32_to_f16(orow[d]) : attnc_f32_to_bf16(orow[d]);
        }
        if (c->lse) c->lse[lat + hr * c->lse_stride[1] + q * c->lse_stride[2]] = empty ? -attnc_inf() : lse;
    }
    ATTNC_THREADS_END
    return fault;
}

#ifdef __CUDACC__
/* One block per work item: item = (b * (H / P) + h / P) * nqt + qt, where
 * P = pack (at least 1) and the item holds heads h .. h + P - 1. */
__global__ void __launch_bounds__(ATTNC_NT) @NAME@_cuda_kernel(AttnCall call, AttnCudaConsts consts, int *fault) {
    extern __shared__ float attnc_dynamic[];
    attnc_cuda_use_consts(&call, &consts);
    const int64_t P = call.pack > 1 ? call.pack : 1, groups = call.H / P;
    const int64_t item = (int64_t)blockIdx.x;
    const int64_t qt = item % call.nqt, bh = item / call.nqt;
    if (attnc_cuda_item(&call, bh / groups, bh % groups * P, qt, attnc_dynamic)) atomicOr(fault, 1);
}

/* The launch of call c (its params and tensors readable where this runs),
 * the one rule of the nvcc launcher below and of attnc's cuda backend, which
 * runs it on the device (@NAME@_cuda_geometry: NVRTC compiles no host code):
 * g[0] blocks (0: nothing to run), g[1] threads per block, g[2] bytes of
 * dynamic shared memory.  Returns 0; 1 for a call this kernel does not take;
 * 2 for one too large to launch. */
ATTNC_DEV int attnc_cuda_geometry(const AttnCall *c, int64_t *g) {
    /* kv tiles shorter than ATTNC_BK only for pages shorter than it */
    if (c->bq != ATTNC_BQ || c->bk < 1 || c->bk > ATTNC_BK || (c->bk != ATTNC_BK && c->page_rows <= 0) || c->H <= 0 ||
        c->Hkv <= 0 || c->H % c->Hkv != 0 || c->pack < 0 ||
        (c->pack > 1 && (!ATTNC_PACK_HEADS || (c->H / c->Hkv) % c->pack != 0)) || c->page_rows < 0 ||
        (c->page_rows > 0 && (!c->kv_page || c->B != 1 || c->page_rows % c->bk != 0 || c->k_page_stride <= 0 ||
                              c->v_page_stride <= 0)))
        return 1;
    g[0] = c->B * (c->H / (c->pack > 1 ? c->pack : 1)) * c->nqt;
    g[1] = ATTNC_NT;
    g[2] = attnc_cuda_dynamic_bytes(c);
    return g[0] > 2147483647 || g[2] > 2147483647 ? 2 : 0;
}

#ifdef __CUDACC_RTC__
/* attnc's cuda backend: g[0 .. 2] and g[3] = the result of attnc_cuda_geometry (one thread). */
extern "C" __global__ void @NAME@_cuda_geometry(AttnCall call, AttnCudaConsts consts, int64_t *g) {
    attnc_cuda_use_consts(&call, &consts);
    g[3] = attnc_cuda_geometry(&call, g);
}
#else
#if ATTNC_V2 /* the entry point is the version-2 launcher's (backends/cuda/cuda_emit_v2.c), which calls this */
static int @NAME@_cuda_kernel_launch(const AttnCall *call, int *fault, cudaStream_t stream) {
#else
extern "C" int @NAME@_cuda_launch(const AttnCall *call, int *fault, cudaStream_t stream) {
#endif
    if (!call || !fault) return (int)cudaErrorInvalidValue;
    AttnCudaConsts consts; /* support.h's cuda_consts */
    AttnCall host;
    attnc_cuda_consts(call, &consts, &host);
#if ATTNC_SCRATCH_READS_TENSORS
    return (int)cudaErrorNotSupported; /* the low-rank sizes depend on tensor data the host cannot read */
#endif
    int64_t g[3];
    const int bad = attnc_cuda_geometry(&host, g);
    if (bad) return (int)(bad == 1 ? cudaErrorInvalidValue : cudaErrorInvalidConfiguration);
    if (g[0] == 0) return 0;
    if (g[2] > 48 * 1024) {
        cudaError_t e = cudaFuncSetAttribute(@NAME@_cuda_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             (int)g[2]);
        if (e != cudaSuccess) return (int)e;
    }
    @NAME@_cuda_kernel<<<(unsigned)g[0], (unsigned)g[1], (size_t)g[2], stream>>>(*call, consts, fault);
    return (int)cudaGetLastError();
}
#endif
#else
/* The emulation: the kernel ABI of middle/kernel_abi.h, one work item per
 * call on the calling CPU thread, its ATTNC_NT "threads" run phase by phase. */
ATTNC_LINKAGE int64_t attnc_scratch_bytes(const AttnCall *c) { return attnc_cuda_dynamic_bytes(c); }

ATTNC_LINKAGE int attnc_tile(const AttnCall *c, int64_t b, int64_t h, int64_t qt, void *scratch) {
    return attnc_cuda_item(c, b, h, qt, (float *)scratch) != 0;
}
#endif
