/* tests/cuda_simt/mma_tf32.cu — D = A B + C with A 16 x 8 and B 8 x 16 float32
 * (row major, rounded to tf32 by cvt.rna.tf32.f32 as they are loaded) and C,
 * D 16 x 16 float32, by one warp with two mma.m16n8k8.row.col tf32, for
 * tests/test_cuda_simt.c (run by cuda-emu) and tests/cuda_simt_nvcc.sh
 * (compiled by nvcc).  How the fragments are loaded:
 *   mode 0  each lane reads its elements from global memory by the PTX ISA's
 *           tables ("Matrix Fragments for mma.m16n8k8" with .tf32: a0 (g, t),
 *           a1 (g + 8, t), a2 (g, t + 4), a3 (g + 8, t + 4); b0 (k t, n g),
 *           b1 (k t + 4, n g));
 *   mode 1  cp.async copies A and B to shared memory; ldmatrix.x4 of 8 rows
 *           by 4 floats loads A (lane (g, t) receives element (g, t) of each
 *           matrix), B's elements come from 32-bit shared loads;
 *   modes 2-4  mode 0 with one deliberate layout mistake each, which the
 *           emulation must expose as a wrong product:
 *           2: a1 and a2 swapped (row g + 8 taken for column t + 4)
 *           3: b0 and b1 swapped (k t + 4 taken for k t)
 *           4: lanes grouped the wrong way (g = lane % 8, t = lane / 8);
 *   mode 5  mode 0 without A's conversion: the emulation must refuse it;
 *   mode 6  mode 1 reading B before the cp.async's wait: a fault. */
typedef struct MmaTf32Args {
    const float *a, *b; /* [16][8], [8][16] */
    const float *c;
    float *d; /* [16][16] */
    int32_t mode;
} MmaTf32Args;

typedef struct MmaTf32Smem {
    float a[16][8], b[8][16];
} MmaTf32Smem;

ATTNC_MMA_DEV uint32_t tf32_at(const float *m, int32_t i, int32_t convert) {
    return convert ? attnc_cvt_tf32(m[i]) : attnc_f32_bits(m[i]);
}

ATTNC_MMA_DEV void mma_tf32_body(const MmaTf32Args *p) {
    ATTNC_SMEM_STATIC(MmaTf32Smem, sm);
    const int32_t lane = attnc_lane(), smem = p->mode == 1 || p->mode == 6;
    int32_t g = lane >> 2, t = lane & 3;
    if (p->mode == 4) g = lane & 7, t = lane >> 3;
    uint32_t a[4], b[2][2];
    float acc[2][4];
    if (smem) {
        /* 32 lanes x 16 bytes: A's 128 floats, then B's */
        attnc_cp_async16(&sm->a[lane / 2][(lane & 1) * 4], p->a + lane * 4, 16);
        attnc_cp_async16(&sm->b[lane / 4][(lane & 3) * 4], p->b + lane * 4, 16);
        attnc_cp_async_commit();
        if (p->mode == 1) attnc_cp_async_wait(0);
        attnc_syncwarp(0xffffffffu);
        for (int32_t nt = 0; nt < 2; nt++)
            for (int32_t i = 0; i < 2; i++) /* b_i: B[t + 4 i][n] */
                b[nt][i] = attnc_cvt_tf32(attnc_f32_from_bits(attnc_lds_u32(&sm->b[t + 4 * i][nt * 8 + g])));
        const int32_t m = lane >> 3, r = lane & 7;
        attnc_ldmatrix_x4(a, &sm->a[(m & 1) * 8 + r][(m >> 1) * 4]);
        for (int32_t i = 0; i < 4; i++) a[i] = attnc_cvt_tf32(attnc_f32_from_bits(a[i]));
    } else {
        const int32_t cvt = p->mode != 5;
        a[0] = tf32_at(p->a, g * 8 + t, cvt);
        a[1] = tf32_at(p->a, (g + 8) * 8 + t, cvt);
        a[2] = tf32_at(p->a, g * 8 + t + 4, cvt);
        a[3] = tf32_at(p->a, (g + 8) * 8 + t + 4, cvt);
        if (p->mode == 2) {
            uint32_t x = a[1];
            a[1] = a[2], a[2] = x;
        }
        for (int32_t nt = 0; nt < 2; nt++) {
            const int32_t hi = p->mode == 3;
            b[nt][hi] = tf32_at(p->b, t * 16 + nt * 8 + g, 1);
            b[nt][1 - hi] = tf32_at(p->b, (t + 4) * 16 + nt * 8 + g, 1);
        }
    }
    for (int32_t nt = 0; nt < 2; nt++) {
        const int32_t col = nt * 8 + 2 * t;
        acc[nt][0] = p->c[g * 16 + col];
        acc[nt][1] = p->c[g * 16 + col + 1];
        acc[nt][2] = p->c[(g + 8) * 16 + col];
        acc[nt][3] = p->c[(g + 8) * 16 + col + 1];
        attnc_mma_tf32(acc[nt], a, b[nt]);
        p->d[g * 16 + col] = acc[nt][0];
        p->d[g * 16 + col + 1] = acc[nt][1];
        p->d[(g + 8) * 16 + col] = acc[nt][2];
        p->d[(g + 8) * 16 + col + 1] = acc[nt][3];
    }
}

ATTNC_KERNEL_ENTRY(mma_tf32_kernel, MmaTf32Args, mma_tf32_body, 32)
