/* templates/cuda_fa2.cu — the tensor-core forward kernel (FlashAttention-2's
 * design) that attnc emits as CUDA C for the calls it handles, and that the
 * cuda-emu backend runs on the CPU through libtcc on the strict SIMT
 * emulation (docs/cuda-emu.md, docs/cuda.md "The tensor-core kernel").
 *
 * backends/cuda/cuda_fa2_emit.c pastes, before this text: the cuda_macros
 * section of templates/support.h (jit_types and libm under ATTNC_JIT),
 * kernel_abi.h, attnc_inf and the helpers the holes call, base/half.h's
 * conversions, templates/cuda_mma.h (the device primitives), the schedule's
 * macros (ATTNC_BQ = ATTNC_BK = 64, ATTNC_SOFTMAX, ATTNC_LSE_OFFSET,
 * ATTNC_ROW_SLOTS, ATTNC_COL_SLOTS, ATTNC_DIAG_TABLES, ATTNC_DIAG_CAP,
 * ATTNC_NPARAMS, ATTNC_NTENSORS) and this
 * specialisation's: ATTNC_FA2_D, ATTNC_FA2_DV (multiples of 16),
 * ATTNC_FA2_BF16 (1: Q, K, V are bf16; 0: f16), ATTNC_FA2_TF32 (1: Q, K,
 * V are float32, multiplied through TF32; ATTNC_FA2_BF16 is then 0),
 * ATTNC_FA2_BREAK (0; only in the tests that prove the emulation sees a
 * mistake: 1 a wrong fragment mapping, 2 a missing barrier before a
 * buffer's refill).  The holes are
 * filled with the code templates/cuda_tile.cu receives (backends/c/c_holes.c),
 * the element code reading `dot` where the scaffold reads srow[j].
 *
 * One block of 4 warps per work item (b, h, q tile of 64 rows); warp w owns
 * rows 16w .. 16w + 15.  Q is staged by cp.async and loaded once into A
 * fragments (ldmatrix.x4) kept in registers.  The visited kv tiles (the tile
 * map, or all of them PARTIAL) of 64 keys are staged into two shared buffers
 * by cp.async: tile e + 1 is in flight while tile e is used.  S = Q K^T with
 * mma.m16n8k16 (K row major is B .col: plain ldmatrix.x4); the element code
 * runs per accumulator element at its coordinates (row 16w + g (+ 8),
 * key 8 n-tile + 2 (lane % 4) (+ 1)), masks only on PARTIAL tiles (with a
 * band of keys per row, ATTNC_BAND, only inside each row's band, and S and
 * P V skip the steps of keys no row of the warp keeps), keys past
 * Lk and rows past Lq never evaluated; the online softmax runs on the
 * fragments, a row's max and sum over its quad by shuffles; P's fragments
 * packed to 16 bits are O += P V's A fragments, V's B fragments come from
 * ldmatrix.x4.trans.  Row values (ROW) and per-key values (COL) live in
 * shared memory as in the scaffold.  Shared memory: Q [64][D + 8], K
 * [2][64][D + 8], V [2][64][Dv + 8] 16-bit elements (8 of padding per row keep
 * the ldmatrix rows on distinct banks), dynamic; the slots static.
 *
 * float32 Q, K, V (ATTNC_FA2_TF32) take the same path with 32-bit elements,
 * the type's differences in the macros and the small functions below
 * (attnc_fa2_s, attnc_fa2_pv, attnc_fa2_operand): mma.m16n8k8.tf32 on
 * operands rounded by cvt.rna.tf32.f32 as they are loaded.  Q [64][D], K
 * [2][64][D], V [2][64][Dv] floats, rows unpadded with their 16-byte chunks
 * XOR-swizzled by the row (ATTNC_FA2_SWZ), so that D = Dv = 128 fits sm_80's
 * 163 KiB (160 KiB) and no access has bank conflicts; Q is read from shared
 * memory at each tile instead of registers (64 more registers at D = 128
 * made ptxas spill).  ldmatrix of 8 rows x 4 floats gives lane (g, t) element
 * (g, t): the tf32 A layout (a0 (g, t), a1 (g + 8, t), a2 (g, t + 4), a3
 * (g + 8, t + 4)) for Q and the B layout (b0 (k t, n g), b1 (k t + 4, n g))
 * for K.  A tile's keys go through S, softmax and P V in two parts of 32
 * (S's accumulators: 16 registers).  P V: lane (g, t) holds keys 2t and
 * 2t + 1 of an n-tile of S where A wants k-columns t and t + 4, so the k order
 * is permuted: A's column t is key 2t, column t + 4 key 2t + 1, and V's B
 * fragment likewise (b0 = V[2t][g], b1 = V[2t + 1][g], two 32-bit shared
 * loads): no shuffles. */

#if ATTNC_BQ != 64 || ATTNC_BK != 64
#error "the tensor-core kernel takes 64 x 64 tiles"
#endif
#if ATTNC_FA2_D % 16 != 0 || ATTNC_FA2_DV % 16 != 0
#error "the tensor-core kernel takes head sizes that are multiples of 16"
#endif

#define ATTNC_TILE_FULL 1
#define ATTNC_TILE_PARTIAL 2
#define ATTNC_LOG2E 1.44269504088896340736f
#define ATTNC_LN2 0.69314718055994530942f
#define ATTNC_FA2_THREADS 128
#ifndef ATTNC_FA2_TF32
#define ATTNC_FA2_TF32 0
#endif
#if ATTNC_FA2_TF32
typedef uint32_t attnc_fa2_elem; /* a float32's bits, in shared memory and registers */
#define ATTNC_FA2_PAD 0          /* rows unpadded, 16-byte chunks swizzled (ATTNC_FA2_SWZ) */
#define ATTNC_FA2_PARTS 2        /* a tile's keys in two parts of 32: S's accumulators, 16 registers */
/* element (row, col) of a shared tile of rows of D (Dv) floats, sw the row's chunk mask
 * (ATTNC_FA2_SW: 7 when a row has a multiple of 8 chunks of 4 floats, else 3): chunk col / 4
 * at chunk (col / 4) ^ (row & sw) of its row, so the 8 rows an ldmatrix reads, and the 8 keys
 * x 4 columns of a V fragment load, fall on distinct banks without padding */
/* Written as the column's aligned group of (sw + 1) chunks plus the swizzled offset inside it (the same
 * value): an unrolled loop's columns then share one lane-dependent offset per group position and differ by
 * constants the loads take as immediates.  Written as one XOR, ptxas kept every column's address live across
 * the kv-tile loop: 255 registers and 212 bytes of spills at D = 128 on sm_90 when the element code is cheap
 * (relu_attention's weight with `* 0.5` instead of `/ float(Lk)`; tests/cuda/fa2_cheap_weight.attn). */
#define ATTNC_FA2_SWZ(row, col, sw)                                                                              \
    (((col) & ~(4 * (sw) + 3)) | (((((col) & (4 * (sw) + 3)) >> 2) ^ ((row) & (sw))) << 2) | ((col) & 3))
#define ATTNC_FA2_SW(width) ((width) % 32 == 0 ? 7 : 3)
#else
typedef uint16_t attnc_fa2_elem;
#define ATTNC_FA2_PAD 8     /* 16 bytes of padding a row: the ldmatrix rows on distinct banks */
#define ATTNC_FA2_PARTS 1   /* all 64 keys of a tile at once: S's accumulators, 32 registers */
#define ATTNC_FA2_SWZ(row, col, sw) (col)
#define ATTNC_FA2_SW(width) 0
#endif
#define ATTNC_FA2_NT (8 / ATTNC_FA2_PARTS) /* n-tiles of 8 keys in a part */
#define ATTNC_FA2_VEC (16 / (int32_t)sizeof(attnc_fa2_elem)) /* elements of one 16-byte cp.async */
#define ATTNC_FA2_LD (ATTNC_FA2_D + ATTNC_FA2_PAD)   /* row pitch of Q and K in shared memory, in elements */
#define ATTNC_FA2_LDV (ATTNC_FA2_DV + ATTNC_FA2_PAD) /* of V */
#define ATTNC_FA2_SWK ATTNC_FA2_SW(ATTNC_FA2_D)      /* the swizzle masks of Q and K's rows */
#define ATTNC_FA2_SWV ATTNC_FA2_SW(ATTNC_FA2_DV)     /* of V's */
#define ATTNC_FA2_Q_AT 0
#define ATTNC_FA2_K_AT (64 * ATTNC_FA2_LD)
#define ATTNC_FA2_V_AT (3 * 64 * ATTNC_FA2_LD)
#define ATTNC_FA2_SMEM_ELEMS (3 * 64 * ATTNC_FA2_LD + 2 * 64 * ATTNC_FA2_LDV)
#define ATTNC_FA2_SMEM_BYTES (ATTNC_FA2_SMEM_ELEMS * (int32_t)sizeof(attnc_fa2_elem))
/* the dynamic shared memory the emulation gives a block: sm_90's 227 KiB less the static part */
#define ATTNC_FA2_SMEM_LIMIT (227 * 1024 - (int64_t)sizeof(AttnFa2Rows))
#if ATTNC_SOFTMAX
#define ATTNC_MASKED (-attnc_inf())
#else
#define ATTNC_MASKED 0.0f
#endif
#if ATTNC_FA2_TF32
#define attnc_fa2_mma(acc, a, b) attnc_mma_tf32((acc), (a), (b))
#elif ATTNC_FA2_BF16
#define attnc_fa2_mma(acc, a, b) attnc_mma_bf16((acc), (a), (b))
#define attnc_fa2_pack(lo, hi) attnc_pack_bf16x2((lo), (hi))
#else
#define attnc_fa2_mma(acc, a, b) attnc_mma_f16((acc), (a), (b))
#define attnc_fa2_pack(lo, hi) attnc_pack_f16x2((lo), (hi))
#endif
#ifdef __CUDACC__
#define ATTNC_UNROLL _Pragma("unroll")
#define ATTNC_NO_UNROLL _Pragma("unroll 1") /* a loop of run-time length inside unrolled ones: kept small */
#define attnc_fa2_flag(p) atomicOr((p), 1)
#else
#define ATTNC_UNROLL
#define ATTNC_NO_UNROLL
#define attnc_fa2_flag(p) (*(p) = 1) /* fibers run one at a time */
#endif

/* The row values, per-key values and LSE offsets of the work item. */
typedef struct AttnFa2Rows {
    int64_t row_slots[ATTNC_ROW_SLOTS > 0 ? ATTNC_ROW_SLOTS * 64 : 1];
    int64_t col_slots[ATTNC_COL_SLOTS > 0 ? ATTNC_COL_SLOTS * 64 : 1];
    int64_t diag[ATTNC_DIAG_TABLES > 0 ? ATTNC_DIAG_TABLES * ATTNC_DIAG_CAP : 1]; /* the tile's diagonal tables */
    float lse_off[64];
} AttnFa2Rows;

/* The names the hole code uses for its scratch (as in templates/cuda_tile.cu). */
typedef struct AttnFa2Scratch {
    float *lse_off;
    float *qlr; /* [64][lowrank_cols] low-rank columns of the Q rows (dynamic shared, after V) */
    float *klr; /* [lowrank_cols][64] low-rank columns of the K tile */
    int64_t *row_slots, *col_slots;
    int64_t *diag; /* [DIAG_TABLES][DIAG_CAP]: the DIAG hole's tables (templates/tile.c) */
} AttnFa2Scratch;

typedef struct AttnFa2Args {
    AttnCall call;
#ifdef __CUDACC__
    AttnCudaConsts consts; /* support.h's cuda_consts */
#endif
    int64_t first_item; /* block x computes work item first_item + x = (b * H + h) * nqt + qt */
    int *fault;         /* set to 1 when an element raises a runtime error */
} AttnFa2Args;

/* cp.async of `rows` rows (the others zero-filled) of `width` elements
 * from src (row stride `stride`) into dst (row pitch ld, swizzle mask sw): 16 bytes a copy. */
ATTNC_MMA_DEV void attnc_fa2_stage(attnc_fa2_elem *dst, int32_t ld, int32_t sw, const attnc_fa2_elem *src,
                                   int64_t stride, int64_t rows, int32_t width, int32_t tid) {
    const int32_t chunks = width / ATTNC_FA2_VEC;
    (void)sw;
    for (int32_t x = tid; x < 64 * chunks; x += ATTNC_FA2_THREADS) {
        const int32_t r = x / chunks, cc = x % chunks;
        const int valid = r < rows;
        attnc_cp_async16(dst + r * ld + ATTNC_FA2_SWZ(r, cc * ATTNC_FA2_VEC, sw),
                         valid ? src + r * stride + cc * ATTNC_FA2_VEC : src, valid ? 16 : 0);
    }
}

/* A or B fragment registers as the mma takes them: float32 rounded to tf32;
 * 16-bit elements as loaded. */
ATTNC_MMA_DEV void attnc_fa2_operand(uint32_t *r, int32_t n) {
#if ATTNC_FA2_TF32
    for (int32_t i = 0; i < n; i++) r[i] = attnc_cvt_tf32(attnc_f32_from_bits(r[i]));
#else
    (void)r, (void)n;
#endif
}

#if ATTNC_FA2_TF32
/* S = Q K^T for keys kp .. kp + 8 NT - 1 of the tile (the 16 keys of a pair of
 * n-tiles only where they meet [wlo, whi), else S stays 0): per k step, Q's A
 * fragment (ldmatrix.x4 of 8 rows x 4 floats: rows 0-7 / 8-15 by columns 0-3 /
 * 4-7 give a0 .. a3) from shared memory, Q staying there (its 64 registers at
 * D = 128 would spill), then for n-tiles 2 np and 2 np + 1 K's B fragments
 * (keys 0-7 / 8-15 by columns 0-3 / 4-7: b0, b1 of each). */
ATTNC_MMA_DEV void attnc_fa2_s(float (*s)[4], const uint32_t (*qa)[4], const attnc_fa2_elem *qs,
                               const attnc_fa2_elem *ks, int32_t kp, int32_t wlo, int32_t whi, int32_t w,
                               int32_t lane) {
    const int32_t m8 = lane >> 3, r8 = lane & 7, qrow = 16 * w + (m8 & 1) * 8 + r8;
    (void)qa;
    ATTNC_UNROLL
    for (int32_t kk = 0; kk < ATTNC_FA2_D / 8; kk++) {
        uint32_t qf[4];
        if (kk % 8 == 0) attnc_schedule_point(); /* at most 8 k steps' fragments loaded ahead (see attnc_fa2_pv) */
        attnc_ldmatrix_x4(qf, qs + qrow * ATTNC_FA2_LD + ATTNC_FA2_SWZ(qrow, kk * 8 + (m8 >> 1) * 4, ATTNC_FA2_SWK));
        attnc_fa2_operand(qf, 4);
        ATTNC_UNROLL
        for (int32_t np = 0; np < ATTNC_FA2_NT / 2; np++) {
            uint32_t kb[4];
            const int32_t row = kp + np * 16 + (m8 >> 1) * 8 + r8;
            if (kp + np * 16 + 16 <= wlo || kp + np * 16 >= whi) continue; /* no row of the warp keeps them */
            attnc_ldmatrix_x4(kb, ks + row * ATTNC_FA2_LD + ATTNC_FA2_SWZ(row, kk * 8 + (m8 & 1) * 4, ATTNC_FA2_SWK));
            attnc_fa2_operand(kb, 4);
            attnc_fa2_mma(s[2 * np], qf, kb);
            attnc_fa2_mma(s[2 * np + 1], qf, kb + 2);
        }
    }
}

/* O += P V over keys kp .. kp + 8 NT - 1 of the tile (vs: its row kp; the
 * steps that reach keys [jlo, jhi) of the part only), 8 (one n-tile of S)
 * per k step: A's column t is key 2t (this lane's s[..][0], [2]), column
 * t + 4 key 2t + 1 ([1], [3]); V's B rows in the same order, b0 =
 * V[2t][n], b1 = V[2t + 1][n]: 32-bit shared loads (ldmatrix.trans moves 16-bit
 * elements). */
ATTNC_MMA_DEV void attnc_fa2_pv(float (*o)[4], float (*s)[4], const attnc_fa2_elem *vs, int32_t jlo, int32_t jhi,
                                int32_t lane) {
    const int32_t g = lane >> 2, tq = lane & 3;
    ATTNC_UNROLL
    for (int32_t kk = 0; kk < ATTNC_FA2_NT; kk++) {
        uint32_t pa[4];
        if (8 * kk + 8 <= jlo || 8 * kk >= jhi) continue; /* P is 0 there in every row of the warp */
        /* one k step's V fragments at a time: with cheap element code (a weight clause without
         * division or exp) ptxas hoisted all 128 of a part's V loads above S = Q K^T, 128 live
         * registers: 255 registers and 136 bytes of spills at D = 128 (tests/cuda/fa2_cheap_weight.attn) */
        attnc_schedule_point();
        pa[0] = attnc_cvt_tf32(s[kk][0]);
        pa[1] = attnc_cvt_tf32(s[kk][2]);
        pa[2] = attnc_cvt_tf32(s[kk][1]);
        pa[3] = attnc_cvt_tf32(s[kk][3]);
        const int32_t r0 = 8 * kk + 2 * tq;
        ATTNC_UNROLL
        for (int32_t dn = 0; dn < ATTNC_FA2_DV / 8; dn++) {
            uint32_t vb[2];
            vb[0] = attnc_lds_u32(vs + r0 * ATTNC_FA2_LDV + ATTNC_FA2_SWZ(r0, 8 * dn + g, ATTNC_FA2_SWV));
            vb[1] = attnc_lds_u32(vs + (r0 + 1) * ATTNC_FA2_LDV + ATTNC_FA2_SWZ(r0 + 1, 8 * dn + g, ATTNC_FA2_SWV));
            attnc_fa2_operand(vb, 2);
            attnc_fa2_mma(o[dn], pa, vb);
        }
    }
}
#else
/* Warp w's Q rows 16 w .. 16 w + 15 as A fragments, kept in registers, k step
 * by k step (ldmatrix.x4: matrices rows 0-7 / 8-15 by the step's first /
 * second half). */
ATTNC_MMA_DEV void attnc_fa2_load_q(uint32_t (*qa)[4], const attnc_fa2_elem *qs, int32_t w, int32_t m8, int32_t r8) {
    ATTNC_UNROLL
    for (int32_t kk = 0; kk < ATTNC_FA2_D / 16; kk++)
        attnc_ldmatrix_x4(qa[kk], qs + (16 * w + (m8 & 1) * 8 + r8) * ATTNC_FA2_LD + kk * 16 + (m8 >> 1) * 8);
}

/* S = Q K^T for keys kp .. kp + 8 NT - 1 of the tile (pairs of n-tiles that
 * meet [wlo, whi) only, else S stays 0): n-tiles 2 np and 2 np + 1
 * (keys kp + 16 np ..) from one ldmatrix.x4 per k step (matrices: keys 0-7 /
 * 8-15 by the step's first / second half), Q's fragments from registers. */
ATTNC_MMA_DEV void attnc_fa2_s(float (*s)[4], const uint32_t (*qa)[4], const attnc_fa2_elem *qs,
                               const attnc_fa2_elem *ks, int32_t kp, int32_t wlo, int32_t whi, int32_t w,
                               int32_t lane) {
    const int32_t m8 = lane >> 3, r8 = lane & 7;
    (void)qs, (void)w;
    ATTNC_UNROLL
    for (int32_t np = 0; np < ATTNC_FA2_NT / 2; np++) {
        if (kp + np * 16 + 16 <= wlo || kp + np * 16 >= whi) continue; /* no row of the warp keeps them */
        ATTNC_UNROLL
        for (int32_t kk = 0; kk < ATTNC_FA2_D / 16; kk++) {
            uint32_t kb[4];
            attnc_ldmatrix_x4(kb, ks + (kp + np * 16 + (m8 >> 1) * 8 + r8) * ATTNC_FA2_LD + kk * 16 + (m8 & 1) * 8);
            attnc_fa2_mma(s[2 * np], qa[kk], kb);
            attnc_fa2_mma(s[2 * np + 1], qa[kk], kb + 2);
        }
    }
}

/* O += P V: S's n-tiles 2 kk and 2 kk + 1 packed are P's A fragment for keys
 * 16 kk .. 16 kk + 15 (those of steps that reach keys [jlo, jhi) of the
 * part); V's B fragments from ldmatrix.x4.trans. */
ATTNC_MMA_DEV void attnc_fa2_pv(float (*o)[4], float (*s)[4], const attnc_fa2_elem *vs, int32_t jlo, int32_t jhi,
                                int32_t lane) {
    const int32_t m8 = lane >> 3, r8 = lane & 7;
    ATTNC_UNROLL
    for (int32_t kk = 0; kk < ATTNC_FA2_NT / 2; kk++) {
        uint32_t pa[4];
        if (16 * kk + 16 <= jlo || 16 * kk >= jhi) continue; /* P is 0 there in every row of the warp */
        pa[0] = attnc_fa2_pack(s[2 * kk][0], s[2 * kk][1]);
        pa[1] = attnc_fa2_pack(s[2 * kk][2], s[2 * kk][3]);
        pa[2] = attnc_fa2_pack(s[2 * kk + 1][0], s[2 * kk + 1][1]);
        pa[3] = attnc_fa2_pack(s[2 * kk + 1][2], s[2 * kk + 1][3]);
        ATTNC_UNROLL
        for (int32_t dp = 0; dp < ATTNC_FA2_DV / 16; dp++) {
            uint32_t vb[4];
            const int32_t row = kk * 16 + (m8 & 1) * 8 + r8, col = dp * 16 + (m8 >> 1) * 8;
            attnc_ldmatrix_x4_trans(vb, vs + row * ATTNC_FA2_LDV + col);
            attnc_fa2_mma(o[2 * dp], pa, vb);
            attnc_fa2_mma(o[2 * dp + 1], pa, vb + 2);
        }
    }
}
#endif

/* Bytes of dynamic shared memory a block of call c needs (host and device):
 * the Q, K and V tiles, then the low-rank columns of the Q rows and K tile;
 * 2^40 when the call's low-rank sizes cannot be held. */
ATTNC_DEV int64_t attnc_fa2_dynamic_bytes(const AttnCall *c) {
    int64_t lowrank_cols = 0;
    (void)c;
    /*@SCRATCH@*/
    return ATTNC_FA2_SMEM_BYTES + (int64_t)2 * 64 * 4 * lowrank_cols;
}

ATTNC_MMA_DEV float attnc_fa2_max(float a, float b) { return b > a ? b : a; } /* a NaN b is never the max */

/* The work item's O and LSE; nonzero when an element raised a runtime error
 * (or the call's low-rank sizes cannot be held: every thread returns early). */
ATTNC_MMA_DEV int attnc_fa2_item(const AttnFa2Args *args) {
#ifdef __CUDACC__
    AttnCall call = args->call;
    call.params = args->consts.params;
    call.tensor_data = args->consts.tensor_data;
    call.tensor_shape = (const int64_t(*)[ATTNC_ABI_MAX_RANK])args->consts.tensor_shape;
    const AttnCall *c = &call;
#else
    const AttnCall *c = &args->call;
#endif
    const int32_t tid = attnc_tid(), lane = attnc_lane(), w = attnc_warp();
    const int32_t g = lane >> 2, tq = lane & 3, m8 = lane >> 3, r8 = lane & 7;
    const uint32_t all = 0xffffffffu;
    (void)m8, (void)r8; /* Q's fragment rows (the 16-bit types) */
    const int64_t item = args->first_item + attnc_bid_x();
    const int64_t qt = item % c->nqt, bh = item / c->nqt, b = bh / c->H, h = bh % c->H;
    const int64_t hk = h / (c->H / c->Hkv);
    const int64_t q0 = qt * 64, nr = c->Lq - q0 < 64 ? c->Lq - q0 : 64;
    const attnc_fa2_elem *qg =
        (const attnc_fa2_elem *)c->q + b * c->q_stride[0] + h * c->q_stride[1] + q0 * c->q_stride[2];
    const attnc_fa2_elem *kg = (const attnc_fa2_elem *)c->k + b * c->k_stride[0] + hk * c->k_stride[1];
    const attnc_fa2_elem *vg = (const attnc_fa2_elem *)c->v + b * c->v_stride[0] + hk * c->v_stride[1];
    ATTNC_SMEM_DYNAMIC(attnc_fa2_elem, smem);
    ATTNC_SMEM_STATIC(AttnFa2Rows, rows);
    AttnFa2Scratch sc;
    int64_t lowrank_cols = 0;
    (void)lowrank_cols;
    (void)hk;
    /*@HEAD@*/
    sc.lse_off = rows->lse_off;
    sc.qlr = (float *)(smem + ATTNC_FA2_SMEM_ELEMS);
    sc.klr = sc.qlr + 64 * lowrank_cols;
    sc.row_slots = rows->row_slots;
    sc.col_slots = rows->col_slots;
    sc.diag = rows->diag;
    /*@SLOTS@*/
    const int check_faults = c->check_faults;
    int fault = 0;
    (void)check_faults;

    /* the kv tiles this q tile visits, from the tile map of its group */
    const int64_t group = b * c->group_stride_b + h * c->group_stride_h;
    const int64_t first = c->row_start ? c->row_start[group * c->nqt + qt] : 0;
    const int64_t last = c->row_start ? c->row_start[group * c->nqt + qt + 1] : c->nkt;

    /* Q, and the first kv tile, in flight in the first group */
    attnc_fa2_stage(smem + ATTNC_FA2_Q_AT, ATTNC_FA2_LD, ATTNC_FA2_SWK, qg, c->q_stride[2], nr, ATTNC_FA2_D, tid);
    if (first < last) {
        const int64_t k0 = (c->row_start ? (int64_t)c->tile_kv[first] : first) * 64;
        const int64_t nc = c->Lk - k0 < 64 ? c->Lk - k0 : 64;
        attnc_fa2_stage(smem + ATTNC_FA2_K_AT, ATTNC_FA2_LD, ATTNC_FA2_SWK, kg + k0 * c->k_stride[2], c->k_stride[2],
                        nc, ATTNC_FA2_D, tid);
        attnc_fa2_stage(smem + ATTNC_FA2_V_AT, ATTNC_FA2_LDV, ATTNC_FA2_SWV, vg + k0 * c->v_stride[2], c->v_stride[2],
                        nc, ATTNC_FA2_DV, tid);
    }
    attnc_cp_async_commit();

    /* row values: thread i computes row i's */
    if (tid < nr) {
        const int64_t i = tid, q = q0 + i, hr = h;
        (void)q;
        (void)hr;
        sc.lse_off[i] = 0.0f;
        /*@ROW@*/
    }
    attnc_syncthreads();

    float o[ATTNC_FA2_DV / 8][4];
    uint32_t qa[ATTNC_FA2_TF32 ? 1 : ATTNC_FA2_D / 16][4]; /* Q's A fragments (16-bit types: float32 reads Q's tile) */
    float mx[2], l[2];
    int any[2];
    ATTNC_UNROLL
    for (int32_t dn = 0; dn < ATTNC_FA2_DV / 8; dn++) o[dn][0] = o[dn][1] = o[dn][2] = o[dn][3] = 0.0f;
    mx[0] = mx[1] = -attnc_inf();
    l[0] = l[1] = 0.0f;
    any[0] = any[1] = 0;

    for (int64_t e = first; e < last; e++) {
        const int32_t buf = (int32_t)((e - first) & 1);
        const int64_t k0 = (c->row_start ? (int64_t)c->tile_kv[e] : e) * 64;
        const int mode = c->row_start ? c->tile_mode[e] : ATTNC_TILE_PARTIAL;
        const int64_t nc = c->Lk - k0 < 64 ? c->Lk - k0 : 64;
        if (e + 1 < last) { /* tile e + 1 into the other buffer, which every thread left at the last barrier */
            const int64_t k1 = (c->row_start ? (int64_t)c->tile_kv[e + 1] : e + 1) * 64;
            const int64_t nc1 = c->Lk - k1 < 64 ? c->Lk - k1 : 64;
            attnc_fa2_stage(smem + ATTNC_FA2_K_AT + (buf ^ 1) * 64 * ATTNC_FA2_LD, ATTNC_FA2_LD, ATTNC_FA2_SWK,
                            kg + k1 * c->k_stride[2], c->k_stride[2], nc1, ATTNC_FA2_D, tid);
            attnc_fa2_stage(smem + ATTNC_FA2_V_AT + (buf ^ 1) * 64 * ATTNC_FA2_LDV, ATTNC_FA2_LDV, ATTNC_FA2_SWV,
                            vg + k1 * c->v_stride[2], c->v_stride[2], nc1, ATTNC_FA2_DV, tid);
        }
        attnc_cp_async_commit();
        /* the tile's per-key values: thread j computes key j's */
        if (tid < nc) {
            const int64_t j = tid, kv = k0 + j;
            (void)kv;
            /*@COL@*/
        }
#if ATTNC_DIAG_TABLES
        /* the terms of kv - q once per distance the tile's elements meet (templates/tile.c's DIAG): thread de
         * computes entry de (of at most 127) */
        const int64_t diag_d0 = k0 - (q0 + nr - 1);
#if ATTNC_FA2_THREADS < 64 + 64 - 1
#error "a thread per entry of the diagonal tables: 64 + 64 - 1 of them"
#endif
        if (tid < nr + nc - 1) {
            const int64_t de = tid, q = q0, kv = q0 + diag_d0 + de, hr = h;
            (void)q;
            (void)kv;
            (void)hr;
            /*@DIAG@*/
        }
#endif
        attnc_cp_async_wait(1); /* this tile's copies (and Q's) are done, the next tile's may fly */
        attnc_syncthreads();
        const attnc_fa2_elem *ks = smem + ATTNC_FA2_K_AT + buf * 64 * ATTNC_FA2_LD;
        const attnc_fa2_elem *vs = smem + ATTNC_FA2_V_AT + buf * 64 * ATTNC_FA2_LDV;
#if !ATTNC_FA2_TF32
        if (e == first) attnc_fa2_load_q(qa, smem + ATTNC_FA2_Q_AT, w, m8, r8);
#endif
        /* this lane's rows' keys [blo, bhi) of the tile, and [wlo, whi) those of the warp's 16 rows: with a band
         * (middle/pass_band.c) on a PARTIAL tile, each row's keys in its band (templates/tile.c), the others
         * masked unevaluated, and S and P V skip the steps of keys no row of the warp keeps (a warp-uniform
         * branch: the mma stay converged); not in a call that checks runtime errors (a mask may raise one
         * outside the band) */
        int32_t blo[2] = {0, 0}, bhi[2] = {64, 64}, wlo = 0, whi = 64;
#if ATTNC_BAND
        if (mode == ATTNC_TILE_PARTIAL && !check_faults) {
            uint32_t a = 64, z = 0; /* the union of the lane's rows' keys */
            ATTNC_UNROLL
            for (int32_t hh = 0; hh < 2; hh++) {
                const int64_t i = 16 * w + g + 8 * hh, q = q0 + i, hr = h;
                int64_t lo = 0, hi = 0;
                (void)q;
                (void)hr;
                if (i < nr) attnc_band_keys(ATTNC_BAND_LO, ATTNC_BAND_HI, k0, 0, nc, &lo, &hi);
                blo[hh] = (int32_t)lo, bhi[hh] = (int32_t)hi;
                if (lo < hi) a = (uint32_t)lo < a ? (uint32_t)lo : a, z = (uint32_t)hi > z ? (uint32_t)hi : z;
            }
            ATTNC_UNROLL
            for (int32_t m = 4; m < 32; m *= 2) { /* lanes of another g hold other rows */
                const uint32_t a2 = attnc_shfl_xor_u32(all, a, m), z2 = attnc_shfl_xor_u32(all, z, m);
                a = a2 < a ? a2 : a, z = z2 > z ? z2 : z;
            }
            wlo = a < z ? (int32_t)a : 0, whi = a < z ? (int32_t)z : 0;
        }
#endif

        /* the tile's keys in ATTNC_FA2_PARTS parts of 64 / ATTNC_FA2_PARTS, each through S, the element code,
         * the online softmax and O += P V in turn (a loop kept rolled: one part's registers at a time) */
        ATTNC_NO_UNROLL
        for (int32_t part = 0; part < ATTNC_FA2_PARTS; part++) {
            const int32_t kp = part * 8 * ATTNC_FA2_NT; /* the part's first key in the tile */
            float s[ATTNC_FA2_NT][4]; /* S = Q K^T */
            ATTNC_UNROLL
            for (int32_t nt = 0; nt < ATTNC_FA2_NT; nt++) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
            attnc_fa2_s(s, (const uint32_t(*)[4])qa, smem + ATTNC_FA2_Q_AT, ks, kp, wlo, whi, w, lane);

            /* the element code at each accumulator's (q, kv): element r of n-tile nt is
             * row 16 w + g + 8 (r >> 1), key kp + 8 nt + 2 tq + (r & 1) of the tile */
            ATTNC_UNROLL
            for (int32_t nt = 0; nt < ATTNC_FA2_NT; nt++) {
                ATTNC_UNROLL
                for (int32_t r = 0; r < 4; r++) {
                    const int64_t i = 16 * w + g + 8 * (r >> 1);
                    const int64_t j = kp + 8 * nt + 2 * tq + (ATTNC_FA2_BREAK == 1 ? 1 - (r & 1) : (r & 1));
                    const int64_t q = q0 + i, kv = k0 + j, hr = h;
                    float val = ATTNC_MASKED;
                    (void)q;
                    (void)kv;
                    (void)hr;
                    if (i < nr && j < nc) {
                        const float dot = s[nt][r];
                        int elem_fault = 0, elem_keep = 1;
                        float elem_value = 0.0f;
                        (void)dot;
#if ATTNC_LOWRANK
                        float lr = 0.0f; /* the low-rank bias terms over their extra columns */
                        ATTNC_NO_UNROLL
                        for (int64_t x = 0; x < lowrank_cols; x++)
                            lr += sc.qlr[i * lowrank_cols + x] * sc.klr[x * 64 + j];
#endif
                        if (mode == ATTNC_TILE_PARTIAL) {
                            if (j < blo[r >> 1] || j >= bhi[r >> 1]) elem_keep = 0; /* outside the row's band */
                            else {
                                /*@ELEM_PARTIAL@*/
                            }
                        } else {
                            /*@ELEM_FULL@*/
                        }
                        fault |= elem_fault;
                        any[r >> 1] |= elem_keep;
                        val = elem_keep ? elem_value : ATTNC_MASKED;
                    }
                    s[nt][r] = val;
                }
            }

            /* the online softmax (log2 domain) of rows g and g + 8; a weight's plain sum */
            ATTNC_UNROLL
            for (int32_t hh = 0; hh < 2; hh++) {
#if ATTNC_SOFTMAX
                float mt = -attnc_inf();
                ATTNC_UNROLL
                for (int32_t nt = 0; nt < ATTNC_FA2_NT; nt++)
                    mt = attnc_fa2_max(attnc_fa2_max(mt, s[nt][2 * hh]), s[nt][2 * hh + 1]);
                mt = attnc_fa2_max(mt, attnc_shfl_xor_f32(all, mt, 1));
                mt = attnc_fa2_max(mt, attnc_shfl_xor_f32(all, mt, 2));
                const float mnew = attnc_fa2_max(mx[hh], mt);
                const int live = mnew != -attnc_inf(); /* else nothing kept yet: every p is 0 */
                if (live && mnew != mx[hh]) {
                    const float rescale = exp2f(mx[hh] - mnew);
                    l[hh] *= rescale;
                    ATTNC_UNROLL
                    for (int32_t dn = 0; dn < ATTNC_FA2_DV / 8; dn++) {
                        o[dn][2 * hh] *= rescale;
                        o[dn][2 * hh + 1] *= rescale;
                    }
                    mx[hh] = mnew;
                }
                ATTNC_UNROLL
                for (int32_t nt = 0; nt < ATTNC_FA2_NT; nt++)
                    for (int32_t x = 2 * hh; x < 2 * hh + 2; x++) {
                        s[nt][x] = live ? exp2f(s[nt][x] - mnew) : 0.0f;
                        l[hh] += s[nt][x]; /* this lane's part of the row sum: the quad adds them at the end */
                    }
#else
                ATTNC_UNROLL
                for (int32_t nt = 0; nt < ATTNC_FA2_NT; nt++) l[hh] += s[nt][2 * hh] + s[nt][2 * hh + 1];
#endif
            }

            attnc_fa2_pv(o, s, vs + kp * ATTNC_FA2_LDV, wlo - kp, whi - kp, lane); /* O += P V */
        }
#if ATTNC_FA2_BREAK != 2
        attnc_syncthreads(); /* every thread is done with buffer buf (and the col slots) before they are refilled */
#endif
    }

    /* O and LSE of rows g and g + 8: a row that kept nothing gives O = 0 and LSE = -inf */
    ATTNC_UNROLL
    for (int32_t hh = 0; hh < 2; hh++) {
        l[hh] += attnc_shfl_xor_f32(all, l[hh], 1);
        l[hh] += attnc_shfl_xor_f32(all, l[hh], 2);
        any[hh] |= (int)attnc_shfl_xor_u32(all, (uint32_t)any[hh], 1);
        any[hh] |= (int)attnc_shfl_xor_u32(all, (uint32_t)any[hh], 2);
        const int64_t i = 16 * w + g + 8 * hh, q = q0 + i;
        if (i < nr) {
            const float off = sc.lse_off[i];
            int empty = !any[hh] || (ATTNC_LSE_OFFSET && (off != off || off == -attnc_inf()));
            float lse;
#if ATTNC_SOFTMAX
            empty = empty || mx[hh] == -attnc_inf();
            const float inv = empty ? 0.0f : 1.0f / l[hh];
            lse = mx[hh] * ATTNC_LN2 + logf(l[hh]) + off;
#else
            const float inv = empty ? 0.0f : 1.0f;
            lse = logf(l[hh]);
#endif
            const int64_t at = b * c->o_stride[0] + h * c->o_stride[1] + q * c->o_stride[2];
            ATTNC_UNROLL
            for (int32_t dn = 0; dn < ATTNC_FA2_DV / 8; dn++)
                for (int32_t x = 0; x < 2; x++) {
                    const int64_t d = 8 * dn + 2 * tq + x;
                    const float val = empty ? 0.0f : o[dn][2 * hh + x] * inv;
                    if (c->o_elem == 0) c->o[at + d] = val;
                    else if (c->o_elem == 1) ((uint16_t *)c->o)[at + d] = attnc_f32_to_f16(val);
                    else ((uint16_t *)c->o)[at + d] = attnc_f32_to_bf16(val);
                }
            if (c->lse && tq == 0)
                c->lse[b * c->lse_stride[0] + h * c->lse_stride[1] + q * c->lse_stride[2]] = empty ? -attnc_inf() : lse;
        }
    }
    return fault;
}

ATTNC_MMA_DEV void attnc_fa2_body(const AttnFa2Args *args) {
    if (attnc_fa2_item(args)) attnc_fa2_flag(args->fault);
}

#if ATTNC_FA2_TF32
/* float32: one block per SM is all shared memory allows at D = 128 (two at 64, still within 255 registers
 * a thread): said to ptxas, which otherwise capped registers for an occupancy it cannot reach, spilling
 * (softplus_attention, relu_attention at the 96/128/168-register steps) */
ATTNC_KERNEL_ENTRY_MIN(@NAME@_fa2_kernel, AttnFa2Args, attnc_fa2_body, ATTNC_FA2_THREADS, 1)
#else
/* 16-bit: two blocks per SM at least (up to 255 registers a thread): by default ptxas capped
 * sm_90's at 168 and spilled (retention, D = 64, cuda/nvrtc/retention) */
ATTNC_KERNEL_ENTRY_MIN(@NAME@_fa2_kernel, AttnFa2Args, attnc_fa2_body, ATTNC_FA2_THREADS, 2)
#endif

#ifdef __CUDACC__
/* The launch of call c (its params readable where this runs), the one rule
 * of the nvcc launcher below and of attnc's cuda backend, which runs it on
 * the device (@NAME@_fa2_geometry: NVRTC compiles no host code): g[0]
 * blocks (0: nothing to run), g[1] threads per block, g[2] bytes of dynamic
 * shared memory.  Returns 0; 1 for a call this kernel does not take; 2 for
 * one too large to launch. */
ATTNC_DEV int attnc_fa2_geometry(const AttnCall *c, int64_t *g) {
    const int elem = ATTNC_FA2_TF32 ? 0 : ATTNC_FA2_BF16 ? 2 : 1; /* attnc_elem: f32, bf16, f16 */
    if (c->bq != 64 || c->bk != 64 || c->H <= 0 || c->Hkv <= 0 || c->H % c->Hkv != 0 || c->pack > 1 ||
        c->page_rows != 0 || c->D != ATTNC_FA2_D || c->Dv != ATTNC_FA2_DV || c->q_elem != elem ||
        c->k_elem != elem || c->v_elem != elem)
        return 1;
    g[0] = c->B * c->H * c->nqt;
    g[1] = ATTNC_FA2_THREADS;
    g[2] = attnc_fa2_dynamic_bytes(c);
    return g[0] > 2147483647 || g[2] > 2147483647 ? 2 : 0;
}

#ifdef __CUDACC_RTC__
/* attnc's cuda backend: g[0 .. 2] and g[3] = the result of attnc_fa2_geometry (one thread). */
extern "C" __global__ void @NAME@_fa2_geometry(AttnFa2Args a, int64_t *g) {
    attnc_cuda_use_consts(&a.call, &a.consts);
    g[3] = attnc_fa2_geometry(&a.call, g);
}
static_assert(sizeof(AttnFa2Args) == sizeof(AttnCall) + sizeof(AttnCudaConsts) + 16,
              "AttnFa2Args as backends/cuda/cuda_backend.c writes it");
#else
extern "C" int @NAME@_fa2_launch(const AttnCall *call, int *fault, cudaStream_t stream) {
    if (!call || !fault) return (int)cudaErrorInvalidValue;
    AttnFa2Args a;
    memset(&a, 0, sizeof a);
    a.call = *call;
    AttnCall host;
    attnc_cuda_consts(call, &a.consts, &host);
    a.first_item = 0;
    a.fault = fault;
#if ATTNC_SCRATCH_READS_TENSORS
    return (int)cudaErrorNotSupported; /* the low-rank sizes depend on tensor data the host cannot read */
#endif
    int64_t g[3];
    const int bad = attnc_fa2_geometry(&host, g);
    if (bad) return (int)(bad == 1 ? cudaErrorInvalidValue : cudaErrorInvalidConfiguration);
    if (g[0] == 0) return 0;
    if (g[2] > 48 * 1024) {
        cudaError_t e = cudaFuncSetAttribute(@NAME@_fa2_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             (int)g[2]);
        if (e != cudaSuccess) return (int)e;
    }
    @NAME@_fa2_kernel<<<(unsigned)g[0], (unsigned)g[1], (size_t)g[2], stream>>>(a);
    return (int)cudaGetLastError();
}
#endif
#else
/* The emulation: kernel_abi.h's entry points, one work item (one block of
 * the strict SIMT emulation) per call on the calling CPU thread. */
ATTNC_LINKAGE int64_t attnc_scratch_bytes(const AttnCall *c) {
    (void)c;
    return 512;
}

/* 0; 1 when an element raised a runtime error; 2 when the emulation refused
 * the device code (its message in scratch, 512 bytes); 3 when the call's
 * low-rank columns do not fit in a block's shared memory (the caller runs
 * the scaffold instead: the same for every work item of the call). */
ATTNC_LINKAGE int attnc_tile(const AttnCall *c, int64_t b, int64_t h, int64_t qt, void *scratch) {
    AttnFa2Args a;
    int fault = 0;
    const int32_t dims[6] = {1, 1, 1, ATTNC_FA2_THREADS, 1, 1};
    const int64_t dynamic = attnc_fa2_dynamic_bytes(c);
    if (dynamic > ATTNC_FA2_SMEM_LIMIT) return 3;
    a.call = *c;
    a.first_item = (b * c->H + h) * c->nqt + qt;
    a.fault = &fault;
    if (attnc_simt_launch(@NAME@_fa2_kernel, &a, dims, dynamic, 0, 1, (char *)scratch, 512)) return 2;
    return fault != 0;
}
#endif
