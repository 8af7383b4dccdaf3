/* tests/cuda_simt/mma.cu — D = A B + C for 16 x 16 matrices of f16 or bf16
 * (A, B row major, C and D float32) by one warp with two
 * mma.m16n8k16.row.col, for tests/test_cuda_simt.c (run by cuda-emu) and
 * tests/cuda_simt_nvcc.sh (compiled by nvcc).  How the fragments are loaded:
 *   mode 0  each lane reads its elements from global memory by the PTX ISA's
 *           fragment tables ("Matrix Fragments for mma.m16n8k16 with floating
 *           point type");
 *   mode 1  cp.async copies A and B to shared memory, ldmatrix.x4 loads A and
 *           ldmatrix.x4.trans B (row major there: the transpose gives "col");
 *   modes 2-5  mode 0 with one deliberate layout mistake each, which the
 *           emulation must expose as a wrong product:
 *           2: a1 and a2 swapped (rows g + 8 taken for columns + 8)
 *           3: B's two registers swapped (k 8-15 taken for k 0-7)
 *           4: D's c1 and c2 swapped on the way out
 *           5: lanes grouped the wrong way (g = lane % 8, q = lane / 8). */
typedef struct MmaArgs {
    const uint16_t *a, *b; /* [16][16] each */
    const float *c;
    float *d;              /* [16][16] */
    int32_t bf16, mode;
} MmaArgs;

typedef struct MmaSmem {
    uint16_t a[16][16], b[16][16];
} MmaSmem;

ATTNC_MMA_DEV uint32_t mma_pair(const uint16_t *m, int32_t r, int32_t c, int32_t step) {
    return (uint32_t)m[r * 16 + c] | (uint32_t)m[r * 16 + c + step] << 16;
}

ATTNC_MMA_DEV void mma_body(const MmaArgs *p) {
    ATTNC_SMEM_STATIC(MmaSmem, sm);
    const int32_t lane = attnc_lane();
    int32_t g = lane >> 2, q = lane & 3;
    if (p->mode == 5) g = lane & 7, q = lane >> 3;
    uint32_t a[4], b[2][2];
    float acc[2][4];
    if (p->mode == 1) {
        /* 32 lanes x 16 bytes = one matrix per round: A then B */
        attnc_cp_async16(&sm->a[lane / 2][(lane & 1) * 8], p->a + lane * 8, 16);
        attnc_cp_async16(&sm->b[lane / 2][(lane & 1) * 8], p->b + lane * 8, 16);
        attnc_cp_async_commit();
        attnc_cp_async_wait(0);
        attnc_syncwarp(0xffffffffu);
        const int32_t m = lane >> 3, r = lane & 7;
        attnc_ldmatrix_x4(a, &sm->a[(m & 1) * 8 + r][(m >> 1) * 8]);
        uint32_t bt[4];
        attnc_ldmatrix_x4_trans(bt, &sm->b[(m & 1) * 8 + r][(m >> 1) * 8]);
        b[0][0] = bt[0], b[0][1] = bt[1], b[1][0] = bt[2], b[1][1] = bt[3];
    } else {
        a[0] = mma_pair(p->a, g, 2 * q, 1);
        a[1] = mma_pair(p->a, g + 8, 2 * q, 1);
        a[2] = mma_pair(p->a, g, 2 * q + 8, 1);
        a[3] = mma_pair(p->a, g + 8, 2 * q + 8, 1);
        if (p->mode == 2) {
            uint32_t t = a[1];
            a[1] = a[2], a[2] = t;
        }
        for (int32_t nt = 0; nt < 2; nt++) {
            /* b0, b1: B[2q][n], B[2q + 1][n] with n = g: one column, two rows (step 16) */
            const int32_t k = 2 * q, n = nt * 8 + g, hi = p->mode == 3;
            b[nt][hi] = (uint32_t)p->b[k * 16 + n] | (uint32_t)p->b[(k + 1) * 16 + n] << 16;
            b[nt][1 - hi] = (uint32_t)p->b[(k + 8) * 16 + n] | (uint32_t)p->b[(k + 9) * 16 + n] << 16;
        }
    }
    for (int32_t nt = 0; nt < 2; nt++) {
        const int32_t col = nt * 8 + 2 * q;
        acc[nt][0] = p->c[g * 16 + col];
        acc[nt][1] = p->c[g * 16 + col + 1];
        acc[nt][2] = p->c[(g + 8) * 16 + col];
        acc[nt][3] = p->c[(g + 8) * 16 + col + 1];
        if (p->bf16)
            attnc_mma_bf16(acc[nt], a, b[nt]);
        else
            attnc_mma_f16(acc[nt], a, b[nt]);
        const int32_t swap = p->mode == 4;
        p->d[g * 16 + col] = acc[nt][0];
        p->d[g * 16 + col + 1] = acc[nt][swap ? 2 : 1];
        p->d[(g + 8) * 16 + col] = acc[nt][swap ? 1 : 2];
        p->d[(g + 8) * 16 + col + 1] = acc[nt][3];
    }
}

ATTNC_KERNEL_ENTRY(mma_kernel, MmaArgs, mma_body, 32)
