/* tests/cuda_simt/cpasync.cu — K/V-style double buffering with cp.async, for
 * tests/test_cuda_simt.c.  A block of 64 threads streams `tiles` tiles of
 * 64 rows x 8 f16 (16 bytes a row, one cp.async per thread) through two
 * shared buffers: tile i + 1 is in flight while tile i is read.  Thread t
 * sums row 63 - t of every tile (another thread's copy: the barrier after
 * the wait is needed) into out[t].  The last row of the last tile copies only
 * its first 8 bytes (src-size 8): the rest must read as zeros.
 *   mode 0  correct: commit, wait_group 1, __syncthreads, read, __syncthreads
 *   mode 1  the wait_group is missing: the reads see the poison (NaN)
 *   mode 2  the wait_group is missing and the rows are read with ldmatrix,
 *           which must fault (a read of a copy in flight)
 *   mode 3  the second __syncthreads is missing: the next tile's copy
 *           overwrites a buffer that slower threads still read (poison) */
typedef struct CpArgs {
    const uint16_t *src; /* [tiles][64][8] */
    float *out;          /* [64] */
    int32_t tiles, mode;
} CpArgs;

typedef struct CpSmem {
    uint16_t buf[2][64][8];
} CpSmem;

ATTNC_MMA_DEV void cp_issue(const CpArgs *p, CpSmem *sm, int32_t i, int32_t t) {
    const int32_t bytes = i == p->tiles - 1 && t == 63 ? 8 : 16;
    attnc_cp_async16(&sm->buf[i & 1][t][0], p->src + ((int64_t)i * 64 + t) * 8, bytes);
}

ATTNC_MMA_DEV void cp_body(const CpArgs *p) {
    ATTNC_SMEM_DYNAMIC(CpSmem, sm); /* launched with sizeof(CpSmem) bytes of dynamic shared memory */
    const int32_t t = attnc_tid();
    float acc = 0.0f;
    cp_issue(p, sm, 0, t);
    attnc_cp_async_commit();
    for (int32_t i = 0; i < p->tiles; i++) {
        if (i + 1 < p->tiles) cp_issue(p, sm, i + 1, t);
        attnc_cp_async_commit(); /* an empty group at the end keeps "wait for all but one" right */
        if (p->mode == 0 || p->mode == 3) attnc_cp_async_wait(1);
        attnc_syncthreads();
        if (p->mode == 2) {
            uint32_t r[1];
            attnc_ldmatrix_x1(r, &sm->buf[i & 1][(attnc_warp() * 8 + (t & 7)) ^ 63][0]);
            acc += attnc_f16_to_f32((uint16_t)r[0]);
        } else {
            for (int32_t d = 0; d < 8; d++) acc += attnc_f16_to_f32(sm->buf[i & 1][63 - t][d]);
        }
        if (p->mode != 3) attnc_syncthreads();
    }
    p->out[t] = acc;
}

ATTNC_KERNEL_ENTRY(cp_kernel, CpArgs, cp_body, 64)
