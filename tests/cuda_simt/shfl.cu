/* tests/cuda_simt/shfl.cu — warp shuffles and votes, for
 * tests/test_cuda_simt.c: every thread t of a block of 64 (two warps) starts
 * from v = args.in[t] and writes, at out[k * 64 + t]:
 *   k = 0  the sum over its quad (xor 1, 2: the butterfly of the online softmax)
 *   k = 1  the max over its quad
 *   k = 2  the sum over its warp (xor 16, 8, 4, 2, 1)
 *   k = 3  lane 5's v (idx)
 *   k = 4  v of lane + 3, its own past lane 31 (down 3)
 *   k = 5  v of lane - 2, its own below lane 0 (up 2)
 *   k = 6  xor 8 with width 8: lane l reads lane l - 8 when l & 8, else its own v
 *          (a later segment is out of reach)
 *   k = 7  the ballot of v > 0 (as float bits: a uint32) */
typedef struct ShflArgs {
    const float *in;
    float *out;
} ShflArgs;

ATTNC_MMA_DEV void shfl_body(const ShflArgs *p) {
    const uint32_t all = 0xffffffffu;
    const int32_t t = attnc_tid();
    const float v = p->in[t];
    float s = v + attnc_shfl_xor_f32(all, v, 1);
    s += attnc_shfl_xor_f32(all, s, 2);
    p->out[0 * 64 + t] = s;
    float m = v, o = attnc_shfl_xor_f32(all, m, 1);
    m = o > m ? o : m;
    o = attnc_shfl_xor_f32(all, m, 2);
    m = o > m ? o : m;
    p->out[1 * 64 + t] = m;
    float w = v;
    for (int32_t x = 16; x >= 1; x >>= 1) w += attnc_shfl_xor_f32(all, w, x);
    p->out[2 * 64 + t] = w;
    p->out[3 * 64 + t] = attnc_shfl_idx_f32(all, v, 5);
    p->out[4 * 64 + t] = attnc_shfl_down_f32(all, v, 3);
    p->out[5 * 64 + t] = attnc_shfl_up_f32(all, v, 2);
    p->out[6 * 64 + t] = attnc_shfl_xor_f32_w(all, v, 8, 8);
    p->out[7 * 64 + t] = attnc_f32_from_bits(attnc_ballot(all, v > 0.0f));
}

ATTNC_KERNEL_ENTRY(shfl_kernel, ShflArgs, shfl_body, 64)
