/* templates/tile.c — the fused, tiled attention kernel that attnc emits as C.
 *
 * backends/c/c_emit.c copies this file into every generated translation unit
 * and fills the holes marked with a comment of the form  / *@NAME@* /  with
 * the code of one attention's kernel plan (middle/plan.h).  Everything
 * else here is the same for every attention: the loop nest of FlashAttention
 * with online softmax, exactly as runtime/plan_run.c (refplan, the float64
 * reference) computes it, but in float32.  The dense loops (Q.K^T, P.V, the
 * softmax update) are the functions of templates/dense.c, written so that gcc
 * and clang -O3 vectorise them; the element code is branch-free.
 *
 * Before this text the emitter defines:
 *   ATTNC_BQ, ATTNC_BK     the plan's tile sizes (rows of Q, rows of K)
 *   ATTNC_SOFTMAX          1: online softmax; 0: a `weight` clause (no division)
 *   ATTNC_LSE_OFFSET       1: the plan adds a per-row term to LSE (softmax-invariant bias)
 *   ATTNC_LOWRANK          1: the plan has low-rank bias terms (the element code reads lrow)
 *   ATTNC_ROW_SLOTS        per-row values the element code reads (8 bytes x BQ each)
 *   ATTNC_COL_SLOTS        per-kv values the element code reads (8 bytes x BK each)
 *   ATTNC_BAND             1: the schedule has a band of keys per row (the SLOTS
 *                          hole defines ATTNC_BAND_LO and ATTNC_BAND_HI, row i's
 *                          band_lo <= kv <= band_hi wherever keep holds): a
 *                          PARTIAL tile's QK runs over each group of rows' keys
 *                          in it, its element code over each row's, the others
 *                          masked unevaluated (not in calls that check runtime
 *                          errors); P.V skips keys no row of a group keeps
 *   ATTNC_DIAG_TABLES      diagonal tables the element code reads (0: none)
 *   ATTNC_DIAG_CAP         entries per table (8 bytes each)
 *   ATTNC_LINKAGE          `static` ahead of time, empty for the JIT (which looks
 *                          attnc_tile and attnc_scratch_bytes up by name)
 *   attnc_inf()            +infinity as a float
 * and the AttnCall of middle/kernel_abi.h and the functions of dense.c.
 *
 * Layouts (the AttnCall's elem and stride fields): a float32 Q, K or V is
 * read in place, row by row with its L stride; an f16 or bf16 one is
 * widened to float32 once per tile (Q's rows once per work item into sc.qf,
 * each K tile while it is transposed into sc.kt, each V tile into sc.vf),
 * so the dense code always runs over float32.  O's rows are written with
 * O's strides, rounded once to its element type; LSE with its strides.
 *
 * Packed heads (AttnCall.pack = P > 1, kernel_abi.h): the work item holds
 * query heads h .. h+P-1, which read one kv head, so each K and V tile is
 * loaded once for all of them.  Row i of the tile is packed row
 * r = qt*BQ + i: query row q = r / P of head hr = h + r % P (sc.row_q,
 * sc.row_h).  Its Q row is then not part of one strided block: every Q row
 * is gathered (and widened) into sc.qf; O and LSE rows go to their own
 * head.  The holes read the row's head as `hr` in the row and element code
 * (backends/c/c_holes.c) and the item's `h` in HEAD and COL, which the
 * schedule keeps free of h when it lets the runtime pack (pack_heads).
 * With P = 1, hr = h and q = qt*BQ + i: exactly the unpacked kernel.
 *
 * Paged K and V (AttnCall.page_rows > 0, kernel_abi.h): key kv of K lies
 * kv_page[kv / page_rows] * k_page_stride + (kv % page_rows) * ks elements
 * from the head's start (V: v_page_stride, vs).  page_rows is a multiple of
 * the call's kv tile (c->bk: BK, or fewer keys for pages shorter than BK),
 * so each kv tile is one run of rows of one page: only where the tile's
 * first row lies (kr0, vr0: element offsets) changes; masks, biases and the
 * holes see kv = k0 + j as always.  Unpaged, kr0 = k0 * ks (one select per
 * tile).
 *
 * The holes, and what each sees:
 *   HEAD      once per work item: call-level and (b, h)-level values; sets
 *             lowrank_cols (the Q/K columns of low-rank bias terms)
 *   SCRATCH   in attnc_scratch_bytes: sets lowrank_cols from call-level values
 *   SLOTS     typed views of sc.row_slots / sc.col_slots for the values above
 *   ROW       per query row q: row values, low-rank Q columns, lse offset
 *   COL       per key row kv of a visited tile: kv values, low-rank K columns
 *   DIAG      per entry de of the diagonal tables of a visited tile (the
 *             schedule's SB_DIAG, middle/pass_toeplitz.c): the terms that
 *             read q and kv only through kv - q, at q = q0, kv = q0 +
 *             diag_d0 + de, stored at entry de (an element reads entry kv -
 *             q - diag_d0).  Heads are never packed with diagonal tables
 *             (hr = h)
 *   ELEM_FULL, ELEM_PARTIAL  per element (q, kv), reading srow[j] (the dot
 *             product) and lrow[j] (the low-rank term): they set elem_fault
 *             (a runtime error here, computed only when check_faults),
 *             elem_keep (the masks; FULL tiles keep
 *             everything) and elem_value (the score times log2(e) for softmax,
 *             else the weight).
 * Every IR operation the holes use is total (an out-of-range load gives 0,
 * an int division by zero gives 0), so they compute eagerly, without
 * branches; the plan's `fault` value reports what the spec calls an error. */

#define ATTNC_TILE_FULL 1
#define ATTNC_TILE_PARTIAL 2
#define ATTNC_LOG2E 1.44269504088896340736f
#define ATTNC_LN2 0.69314718055994530942f
#if ATTNC_SOFTMAX
#define ATTNC_MASKED (-attnc_inf()) /* a masked score: exp2 gives 0 */
#else
#define ATTNC_MASKED 0.0f           /* a masked weight */
#endif

/* The work item's scratch, carved from the runtime's per-thread buffer. */
typedef struct AttnScratch {
    float *m, *l;        /* [BQ] running max (log2 domain) and sum of each row */
    int32_t *any;        /* [BQ] the row kept some element (weight clauses) */
    float *lse_off;      /* [BQ] the row's LSE offset */
    float *acc;          /* [BQ][Dv] un-normalised output rows */
    float *s;            /* [BQ][BK] dot products, then scores, then probabilities */
    float *lr;           /* [BQ][BK] the low-rank bias term of each element */
    float *kt;           /* [D][BK] the K tile, transposed */
    float *qf;           /* [BQ][D] the Q rows as float32 (an f16 / bf16 Q, or packed heads) */
    float *vf;           /* [BK][Dv] the V tile widened to float32 (an f16 / bf16 V only) */
    float *qlr;          /* [BQ][lowrank_cols] low-rank columns of the Q rows */
    float *klr;          /* [lowrank_cols][BK] low-rank columns of the K tile, transposed */
    int64_t *row_q;      /* [BQ] the query row of each tile row */
    int64_t *row_h;      /* [BQ] the query head of each tile row */
    int64_t *row_slots;  /* [ROW_SLOTS][BQ] */
    int64_t *col_slots;  /* [COL_SLOTS][BK] */
    int64_t *diag;       /* [DIAG_TABLES][DIAG_CAP] */
    int64_t *klo, *khi;  /* [BQ] each: a PARTIAL tile's keys [klo, khi) per row (ATTNC_BAND) */
} AttnScratch;

/* Hand out `bytes` of base at *off, 64-byte aligned; with base NULL only count. */
static void *attnc_take(char *base, int64_t *off, int64_t bytes) {
    void *p = base ? (void *)(base + *off) : (void *)0;
    *off += (bytes + 63) / 64 * 64;
    return p;
}

/* Lay the scratch out over base (NULL: measure only); returns its size. */
static int64_t attnc_scratch_layout(const AttnCall *c, int64_t lowrank_cols, char *base, AttnScratch *sc) {
    int64_t off = 0;
    sc->m = (float *)attnc_take(base, &off, ATTNC_BQ * 4);
    sc->l = (float *)attnc_take(base, &off, ATTNC_BQ * 4);
    sc->any = (int32_t *)attnc_take(base, &off, ATTNC_BQ * 4);
    sc->lse_off = (float *)attnc_take(base, &off, ATTNC_BQ * 4);
    sc->acc = (float *)attnc_take(base, &off, ATTNC_BQ * c->Dv * 4);
    sc->s = (float *)attnc_take(base, &off, ATTNC_BQ * ATTNC_BK * 4);
    /* whenever the element code reads lrow, even when this call's counts are all 0 */
    sc->lr = (float *)attnc_take(base, &off, ATTNC_LOWRANK ? ATTNC_BQ * ATTNC_BK * 4 : 0);
    sc->kt = (float *)attnc_take(base, &off, c->D * ATTNC_BK * 4);
    sc->qf = (float *)attnc_take(base, &off, c->q_elem || c->pack > 1 ? ATTNC_BQ * c->D * 4 : 0);
    sc->vf = (float *)attnc_take(base, &off, c->v_elem ? ATTNC_BK * c->Dv * 4 : 0);
    sc->qlr = (float *)attnc_take(base, &off, ATTNC_BQ * lowrank_cols * 4);
    sc->klr = (float *)attnc_take(base, &off, lowrank_cols * ATTNC_BK * 4);
    sc->row_q = (int64_t *)attnc_take(base, &off, ATTNC_BQ * 8);
    sc->row_h = (int64_t *)attnc_take(base, &off, ATTNC_BQ * 8);
    sc->row_slots = (int64_t *)attnc_take(base, &off, ATTNC_ROW_SLOTS * ATTNC_BQ * 8);
    sc->col_slots = (int64_t *)attnc_take(base, &off, ATTNC_COL_SLOTS * ATTNC_BK * 8);
    sc->diag = (int64_t *)attnc_take(base, &off, ATTNC_DIAG_TABLES * ATTNC_DIAG_CAP * 8);
    sc->klo = (int64_t *)attnc_take(base, &off, ATTNC_BAND ? ATTNC_BQ * 8 : 0);
    sc->khi = (int64_t *)attnc_take(base, &off, ATTNC_BAND ? ATTNC_BQ * 8 : 0);
    return off;
}

/* Bytes of scratch one work item needs (kernel_abi.h). */
ATTNC_LINKAGE int64_t attnc_scratch_bytes(const AttnCall *c) {
    int64_t lowrank_cols = 0;
    /*@SCRATCH@*/
    AttnScratch sc;
    return attnc_scratch_layout(c, lowrank_cols, (char *)0, &sc);
}

/* Q row `at` (an offset in elements) as float32 into dst: copied, or widened. */
static void attnc_q_row(const AttnCall *c, int64_t at, float *dst) {
    if (c->q_elem) {
        attnc_dense_widen((const uint16_t *)c->q + at, c->q_elem, 1, c->D, 0, dst);
    } else {
        const float *src = c->q + at;
        for (int64_t d = 0; d < c->D; d++) dst[d] = src[d];
    }
}

/* Rows [qt*BQ, min((qt+1)*BQ, Lq*P)) of (b, h .. h+P-1), P = pack (at least
 * 1): O and LSE (kernel_abi.h).
 * Returns 1 when an element of a visited tile raises a runtime error.
 * A call without a tile map (row_start NULL: the ahead-of-time entry point)
 * visits every kv tile and evaluates the masks everywhere. */
ATTNC_LINKAGE int attnc_tile(const AttnCall *c, int64_t b, int64_t h, int64_t qt, void *scratch) {
    const int64_t D = c->D, Dv = c->Dv;
    const int64_t P = c->pack > 1 ? c->pack : 1; /* query heads in this work item */
    const int64_t hk = h / (c->H / c->Hkv);
    const int64_t q0 = qt * ATTNC_BQ; /* the first (packed) row */
    const int64_t nr = c->Lq * P - q0 < ATTNC_BQ ? c->Lq * P - q0 : ATTNC_BQ;
    /* offsets in elements of K's and V's head (one kv head for the whole item) */
    const int64_t kat = b * c->k_stride[0] + hk * c->k_stride[1], ks = c->k_stride[2];
    const int64_t vat = b * c->v_stride[0] + hk * c->v_stride[1], vs = c->v_stride[2];
    int64_t lowrank_cols = 0;
    (void)hk;
    /*@HEAD@*/
    AttnScratch sc;
    attnc_scratch_layout(c, lowrank_cols, (char *)scratch, &sc);
    /*@SLOTS@*/
    /* the Q rows as float32 with their leading dimension: one head's float32
     * rows in place (one strided block), else gathered row by row into sc.qf */
    const int gather_q = c->q_elem || P > 1;
    const float *qtile = gather_q ? sc.qf : c->q + b * c->q_stride[0] + h * c->q_stride[1] + q0 * c->q_stride[2];
    const int64_t qld = gather_q ? D : c->q_stride[2];
#if ATTNC_LOWRANK
    /* every low-rank group is empty in this call (R = 0): no tile computes lr, the term is 0 */
    if (lowrank_cols == 0)
        for (int64_t x = 0; x < ATTNC_BQ * ATTNC_BK; x++) sc.lr[x] = 0.0f;
#endif

    for (int64_t i = 0; i < nr; i++) {
        const int64_t q = (q0 + i) / P, hr = h + (q0 + i) % P;
        (void)q;
        (void)hr;
        sc.row_q[i] = q;
        sc.row_h[i] = hr;
        if (gather_q) attnc_q_row(c, b * c->q_stride[0] + hr * c->q_stride[1] + q * c->q_stride[2], sc.qf + i * D);
        sc.m[i] = -attnc_inf();
        sc.l[i] = 0.0f;
        sc.any[i] = 0;
        sc.lse_off[i] = 0.0f;
        for (int64_t d = 0; d < Dv; d++) sc.acc[i * Dv + d] = 0.0f;
        /*@ROW@*/
    }

    /* the kv tiles this q tile visits, from the tile map of its group */
    const int64_t group = b * c->group_stride_b + h * c->group_stride_h;
    const int64_t first = c->row_start ? c->row_start[group * c->nqt + qt] : 0;
    const int64_t last = c->row_start ? c->row_start[group * c->nqt + qt + 1] : c->nkt;
#if ATTNC_SOFTMAX
    (void)attnc_dense_weights; /* unused: no compiler warning about it */
#else
    (void)attnc_dense_softmax;
#endif
#if !ATTNC_BAND
    (void)attnc_dense_qk_rows;
#endif
    /* 0 when the call's tile analysis proved that nothing here can fault */
    const int check_faults = c->check_faults;
    int fault = 0;
    (void)check_faults;
    /* keys per kv tile: the plan's, or fewer for pages shorter than it (kernel ABI: AttnCall.bk) */
    const int64_t bk = c->bk > 0 && c->bk < ATTNC_BK ? c->bk : ATTNC_BK;
    for (int64_t e = first; e < last; e++) {
        const int64_t k0 = (c->row_start ? (int64_t)c->tile_kv[e] : e) * bk;
        const int mode = c->row_start ? c->tile_mode[e] : ATTNC_TILE_PARTIAL;
        const int64_t nc = c->Lk - k0 < bk ? c->Lk - k0 : bk;
        /* a PARTIAL tile's keys [ja, jz) (kernel ABI 7, the tile map's range) and, in tiles of at most 16 keys,
         * its live set (ABI 10): the others are masked without evaluating anything */
        int64_t ja = 0, jz = nc;
        uint32_t live = 0xffffffffu;
        if (mode == ATTNC_TILE_PARTIAL && c->row_start && c->tile_keys) {
            ja = c->tile_keys[2 * e] < nc ? c->tile_keys[2 * e] : nc;
            jz = c->tile_keys[2 * e + 1] < nc ? c->tile_keys[2 * e + 1] : nc;
        }
        if (mode == ATTNC_TILE_PARTIAL && c->row_start && c->tile_live) live = c->tile_live[e];
        /* where the tile's first row of K and of V lies (elements from the
         * head's start): row k0, or its place in its page (a tile never spans
         * two pages); kv stays k0 + j below */
        const int64_t kpage = c->page_rows ? (int64_t)c->kv_page[k0 / c->page_rows] : 0;
        const int64_t kr0 = c->page_rows ? kpage * c->k_page_stride + k0 % c->page_rows * ks : k0 * ks;
        const int64_t vr0 = c->page_rows ? kpage * c->v_page_stride + k0 % c->page_rows * vs : k0 * vs;
        /* the K tile (transposed below) and the V tile as float32: in place, or widened */
        const void *ktile = c->k_elem ? (const void *)((const uint16_t *)c->k + kat + kr0)
                                      : (const void *)(c->k + kat + kr0);
        const float *vtile = c->v + vat + vr0;
        int64_t vld = vs;

        for (int64_t j = 0; j < nc; j++) {
            const int64_t kv = k0 + j;
            (void)kv;
            /*@COL@*/
        }
#if ATTNC_DIAG_TABLES
        /* the terms of kv - q once per distance the tile's elements meet */
        const int64_t diag_d0 = k0 - (q0 + nr - 1);
        for (int64_t de = 0; de < nr + nc - 1; de++) {
            const int64_t q = q0, kv = q0 + diag_d0 + de, hr = h;
            (void)q;
            (void)kv;
            (void)hr;
            /*@DIAG@*/
        }
#endif
        /* S = Q_tile . K_tile^T over K transposed, so the products run
         * along kv in vector lanes; columns past the last key are zero.  With
         * a band, a PARTIAL tile's rows only over their keys in it (not in a
         * call that checks runtime errors: a mask may raise one outside the
         * band, so the element loop then evaluates every key of the range) */
        attnc_dense_transpose(ktile, c->k_elem, nc, D, ks, ATTNC_BK, sc.kt);
#if ATTNC_BAND
        const int banded = mode == ATTNC_TILE_PARTIAL && !check_faults;
        if (banded) {
            for (int64_t i = 0; i < nr; i++) {
                const int64_t q = sc.row_q[i], hr = sc.row_h[i];
                (void)q;
                (void)hr;
                attnc_band_keys(ATTNC_BAND_LO, ATTNC_BAND_HI, k0, ja, jz, &sc.klo[i], &sc.khi[i]);
            }
            attnc_dense_qk_rows(qtile, qld, nr, D, sc.kt, ATTNC_BK, sc.s, sc.klo, sc.khi);
        } else {
            attnc_dense_qk(qtile, qld, nr, D, sc.kt, ATTNC_BK, sc.s);
        }
#else
        attnc_dense_qk(qtile, qld, nr, D, sc.kt, ATTNC_BK, sc.s);
#endif
        /* low-rank bias terms: the same product over their extra columns */
        if (lowrank_cols > 0) {
            for (int64_t r = 0; r < lowrank_cols; r++)
                for (int64_t j = nc; j < ATTNC_BK; j++) sc.klr[r * ATTNC_BK + j] = 0.0f;
            attnc_dense_qk(sc.qlr, lowrank_cols, nr, lowrank_cols, sc.klr, ATTNC_BK, sc.lr);
        }

        /* per element: score (or weight), masks on PARTIAL tiles only */
        if (mode == ATTNC_TILE_PARTIAL) {
            for (int64_t i = 0; i < nr; i++) {
                const int64_t q = sc.row_q[i], hr = sc.row_h[i];
                float *srow = sc.s + i * ATTNC_BK;
                const float *lrow = sc.lr + i * ATTNC_BK;
                int kept = 0;
#if ATTNC_BAND
                const int64_t jlo = banded ? sc.klo[i] : ja, jhi = banded ? sc.khi[i] : jz; /* its band in [ja, jz) */
#else
                const int64_t jlo = ja, jhi = jz;
#endif
                (void)q;
                (void)hr;
                (void)lrow;
                for (int64_t j = 0; j < nc; j++) {
                    const int64_t kv = k0 + j;
                    int elem_fault = 0, elem_keep = 1;
                    float elem_value = 0.0f;
                    (void)kv;
                    if (j < jlo || j >= jhi || (j < 32 && !(live >> j & 1))) {
                        srow[j] = ATTNC_MASKED;
                        continue;
                    }
                    /*@ELEM_PARTIAL@*/
                    fault |= elem_fault;
                    kept |= elem_keep;
                    srow[j] = elem_keep ? elem_value : ATTNC_MASKED;
                }
                sc.any[i] |= kept;
            }
        } else {
            for (int64_t i = 0; i < nr; i++) {
                const int64_t q = sc.row_q[i], hr = sc.row_h[i];
                float *srow = sc.s + i * ATTNC_BK;
                const float *lrow = sc.lr + i * ATTNC_BK;
                (void)q;
                (void)hr;
                (void)lrow;
                for (int64_t j = 0; j < nc; j++) {
                    const int64_t kv = k0 + j;
                    int elem_fault = 0;
                    float elem_value = 0.0f;
                    (void)kv;
                    /*@ELEM_FULL@*/
                    fault |= elem_fault;
                    srow[j] = elem_value;
                }
                sc.any[i] |= nc > 0;
            }
        }
        if (fault) return 1;

        /* online softmax in the log2 domain (or a weight clause's plain
         * sum), then O_acc += P . V_tile */
#if ATTNC_SOFTMAX
        attnc_dense_softmax(sc.s, nr, nc, ATTNC_BK, sc.m, sc.l, sc.acc, Dv);
#else
        attnc_dense_weights(sc.s, nr, nc, ATTNC_BK, sc.l);
#endif
        if (c->v_elem) {
            attnc_dense_widen((const uint16_t *)c->v + vat + vr0, c->v_elem, nc, Dv, vs, sc.vf);
            vtile = sc.vf;
            vld = Dv;
        }
        attnc_dense_pv(sc.s, nr, nc, ATTNC_BK, vtile, vld, Dv, sc.acc);
    }

    /* O and LSE, each row at its own head; a row that kept nothing gives
     * O = 0 and LSE = -inf.  A float32 O row is written in place; an f16 /
     * bf16 one is finished in its accumulator row, then rounded once into O. */
    for (int64_t i = 0; i < nr; i++) {
        const int64_t q = sc.row_q[i], hr = sc.row_h[i];
        const int64_t oat = b * c->o_stride[0] + hr * c->o_stride[1] + q * c->o_stride[2];
        const float off = sc.lse_off[i];
        float *arow = sc.acc + i * Dv;
        float *orow = c->o_elem ? arow : c->o + oat;
        int empty = !sc.any[i] || (ATTNC_LSE_OFFSET && (off != off || off == -attnc_inf()));
        float lse;
#if ATTNC_SOFTMAX
        empty = empty || sc.m[i] == -attnc_inf();
        for (int64_t d = 0; d < Dv; d++) orow[d] = empty ? 0.0f : arow[d] / sc.l[i];
        lse = sc.m[i] * ATTNC_LN2 + logf(sc.l[i]) + off;
#else
        for (int64_t d = 0; d < Dv; d++) orow[d] = empty ? 0.0f : arow[d];
        lse = logf(sc.l[i]);
#endif
        if (c->o_elem) attnc_dense_narrow(arow, Dv, c->o_elem, (uint16_t *)c->o + oat);
        if (c->lse)
            c->lse[b * c->lse_stride[0] + hr * c->lse_stride[1] + q * c->lse_stride[2]] = empty ? -attnc_inf() : lse;
    }
    return 0;
}
