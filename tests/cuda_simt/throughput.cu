/* tests/cuda_simt/throughput.cu — the emulation's cost on the shape of a
 * FlashAttention-2 block (tests/test_cuda_simt.c --throughput): 4 warps of
 * 32 threads; per round each warp runs one ldmatrix.x4, two mma.sync, two
 * shuffles (a quad's butterfly) and the block one __syncthreads: about the
 * mix of one kv tile's inner step.  With A and B all ones each mma adds 16
 * to every accumulator: out[block * 128 + t] = 32 * rounds + 2 * rounds.
 * In the emulation, tp_launch launches it from the generated code itself
 * (attnc_simt_launch), the way cuda-emu's kernel functions will. */
typedef struct TpArgs {
    float *out;
    int32_t rounds;
} TpArgs;

typedef struct TpSmem {
    uint16_t tile[4][16][16];
} TpSmem;

ATTNC_MMA_DEV void tp_body(const TpArgs *p) {
    ATTNC_SMEM_STATIC(TpSmem, sm);
    const int32_t t = attnc_tid(), lane = attnc_lane(), warp = attnc_warp();
    const uint32_t all = 0xffffffffu;
    for (int32_t i = 0; i < 8; i++) sm->tile[warp][lane / 2][(lane & 1) * 8 + i] = 0x3c00; /* 1.0 */
    attnc_syncthreads();
    float acc[4] = {0, 0, 0, 0}, s = 0.0f;
    for (int32_t r = 0; r < p->rounds; r++) {
        uint32_t a[4], b[2];
        attnc_ldmatrix_x4(a, &sm->tile[warp][(lane >> 3 & 1) * 8 + (lane & 7)][(lane >> 4) * 8]);
        b[0] = a[0], b[1] = a[2];
        attnc_mma_f16(acc, a, b);
        attnc_mma_f16(acc, a, b);
        float x = 1.0f + attnc_shfl_xor_f32(all, 0.0f, 1);
        x += attnc_shfl_xor_f32(all, x, 2);
        s += x;
        attnc_syncthreads();
    }
    p->out[attnc_bid_x() * attnc_ntid() + t] = acc[0] + s;
}

ATTNC_KERNEL_ENTRY(tp_kernel, TpArgs, tp_body, 128)

#ifndef __CUDACC__
int32_t tp_launch(float *out, int32_t rounds, int32_t blocks, char *message, int32_t message_bytes) {
    TpArgs args;
    int32_t dims[6] = {blocks, 1, 1, 128, 1, 1};
    args.out = out;
    args.rounds = rounds;
    return attnc_simt_launch(tp_kernel, &args, dims, 0, 0, blocks, message, message_bytes);
}
#endif
