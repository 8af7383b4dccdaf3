/* tests/cuda_simt/flash_tile.cu — FlashAttention-2's inner loop on one warp,
 * the way the tensor-core kernel will run it (docs/cuda-emu.md, "What the
 * FlashAttention-2 kernel will use"), for tests/test_cuda_simt.c: 16 query
 * rows, `tiles` kv tiles of 16 keys, D = Dv = 16, f16 or bf16.
 *   Q: cp.async to shared memory, ldmatrix.x4 into A fragments, kept;
 *   K, V: cp.async double-buffered (tile j + 1 in flight while j is used);
 *   S = Q K^T: K row major [key][d] is B in .col, so plain ldmatrix.x4;
 *   online softmax on the S fragments (rows g and g + 8 of the lane; a row's
 *   max and sum over the 4 lanes of a quad: shuffles xor 1 and 2);
 *   P: the C fragments of S's two n-tiles packed to 16 bits ARE P's A
 *   fragment (no shared memory); V row major is B row major: ldmatrix.trans;
 *   O += P V; at the end O /= l.
 * mode 1 packs P with its registers a1 and a2 swapped (rows g + 8 taken for
 * keys + 8), a mistake the emulation must show as a wrong O. */
typedef struct FlashArgs {
    const uint16_t *q;     /* [16][16] */
    const uint16_t *k, *v; /* [16 * tiles][16] each */
    float *o;              /* [16][16] */
    int32_t tiles, bf16, mode;
    float scale;           /* the softmax scale times log2(e): scores in the log2 domain */
} FlashArgs;

typedef struct FlashSmem {
    uint16_t q[16][16];
    uint16_t k[2][16][16], v[2][16][16];
} FlashSmem;

/* tile j of K and V into buffer j % 2: 512 bytes each, 16 bytes a lane */
ATTNC_MMA_DEV void flash_load(const FlashArgs *p, FlashSmem *sm, int32_t j, int32_t lane) {
    attnc_cp_async16(&sm->k[j & 1][lane / 2][(lane & 1) * 8], p->k + (int64_t)j * 256 + lane * 8, 16);
    attnc_cp_async16(&sm->v[j & 1][lane / 2][(lane & 1) * 8], p->v + (int64_t)j * 256 + lane * 8, 16);
}

ATTNC_MMA_DEV void flash_mma(int32_t bf16, float *acc, const uint32_t *a, const uint32_t *b) {
    if (bf16)
        attnc_mma_bf16(acc, a, b);
    else
        attnc_mma_f16(acc, a, b);
}

ATTNC_MMA_DEV uint32_t flash_pack(int32_t bf16, float lo, float hi) {
    return bf16 ? attnc_pack_bf16x2(lo, hi) : attnc_pack_f16x2(lo, hi);
}

ATTNC_MMA_DEV float flash_max(float a, float b) { return a > b ? a : b; }

/* the online softmax of row half h (row g + 8h) over this tile's scores s */
ATTNC_MMA_DEV void flash_softmax(float s[2][4], float o[2][4], float *mx, float *l, int32_t h, float scale) {
    const uint32_t all = 0xffffffffu;
    float mnew = mx[h];
    for (int32_t nt = 0; nt < 2; nt++)
        for (int32_t e = 0; e < 2; e++) mnew = flash_max(mnew, s[nt][2 * h + e] * scale);
    mnew = flash_max(mnew, attnc_shfl_xor_f32(all, mnew, 1));
    mnew = flash_max(mnew, attnc_shfl_xor_f32(all, mnew, 2));
    const float corr = exp2f(mx[h] - mnew); /* 0 on the first tile: mx = -inf */
    l[h] *= corr;
    for (int32_t nt = 0; nt < 2; nt++)
        for (int32_t e = 0; e < 2; e++) {
            const float pv = exp2f(s[nt][2 * h + e] * scale - mnew);
            s[nt][2 * h + e] = pv;
            l[h] += pv; /* this lane's part of the row sum: the quad adds them up at the end */
            o[nt][2 * h + e] *= corr;
        }
    mx[h] = mnew;
}

ATTNC_MMA_DEV void flash_body(const FlashArgs *p) {
    ATTNC_SMEM_STATIC(FlashSmem, sm);
    const int32_t lane = attnc_lane(), g = lane >> 2, q = lane & 3, m = lane >> 3, r = lane & 7;
    const uint32_t all = 0xffffffffu;
    uint32_t qa[4];
    float o[2][4] = {{0, 0, 0, 0}, {0, 0, 0, 0}}, l[2] = {0, 0};
    float mx[2] = {-attnc_f32_from_bits(0x7f800000u), -attnc_f32_from_bits(0x7f800000u)};
    attnc_cp_async16(&sm->q[lane / 2][(lane & 1) * 8], p->q + lane * 8, 16);
    flash_load(p, sm, 0, lane);
    attnc_cp_async_commit();
    for (int32_t j = 0; j < p->tiles; j++) {
        if (j + 1 < p->tiles) flash_load(p, sm, j + 1, lane);
        attnc_cp_async_commit();
        attnc_cp_async_wait(1);
        attnc_syncwarp(all); /* the other lanes' copies */
        if (j == 0) attnc_ldmatrix_x4(qa, &sm->q[(m & 1) * 8 + r][(m >> 1) * 8]);
        /* matrix m of the x4: keys 8 (m >> 1) .., d 8 (m & 1) ..: registers b of n-tile m >> 1, k half m & 1 */
        uint32_t kb[4], vb[4], pa[4];
        attnc_ldmatrix_x4(kb, &sm->k[j & 1][(m >> 1) * 8 + r][(m & 1) * 8]);
        float s[2][4] = {{0, 0, 0, 0}, {0, 0, 0, 0}};
        flash_mma(p->bf16, s[0], qa, kb);
        flash_mma(p->bf16, s[1], qa, kb + 2);
        flash_softmax(s, o, mx, l, 0, p->scale);
        flash_softmax(s, o, mx, l, 1, p->scale);
        /* P's A fragment: a0 a1 row g keys 2q.., a2 a3 row g + 8, a4 .. a7 the same for keys + 8 */
        pa[0] = flash_pack(p->bf16, s[0][0], s[0][1]);
        pa[1] = flash_pack(p->bf16, s[0][2], s[0][3]);
        pa[2] = flash_pack(p->bf16, s[1][0], s[1][1]);
        pa[3] = flash_pack(p->bf16, s[1][2], s[1][3]);
        if (p->mode == 1) {
            const uint32_t t = pa[1];
            pa[1] = pa[2], pa[2] = t;
        }
        /* matrix m of the x4.trans: keys 8 (m & 1) .., dv 8 (m >> 1) ..: n-tile m >> 1, k half m & 1 */
        attnc_ldmatrix_x4_trans(vb, &sm->v[j & 1][(m & 1) * 8 + r][(m >> 1) * 8]);
        flash_mma(p->bf16, o[0], pa, vb);
        flash_mma(p->bf16, o[1], pa, vb + 2);
        attnc_syncwarp(all); /* every lane is done with buffer j % 2 before tile j + 2 lands there */
    }
    for (int32_t h = 0; h < 2; h++) {
        l[h] += attnc_shfl_xor_f32(all, l[h], 1);
        l[h] += attnc_shfl_xor_f32(all, l[h], 2);
        for (int32_t nt = 0; nt < 2; nt++)
            for (int32_t e = 0; e < 2; e++) p->o[(g + 8 * h) * 16 + nt * 8 + 2 * q + e] = o[nt][2 * h + e] / l[h];
    }
}

ATTNC_KERNEL_ENTRY(flash_kernel, FlashArgs, flash_body, 32)
