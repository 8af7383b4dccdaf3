/* tests/cuda_simt/faults.cu — device code a GPU would not run the same way,
 * which the emulation must stop with a clear fault (tests/test_cuda_simt.c
 * checks each message).  A block of 64 threads; args.mode picks the mistake:
 *   0  none (the kernel must run: out[t] = t); a device function declaring
 *      a __shared__ variable gives the same memory on every call
 *   1  divergent barriers: the two warps wait at different __syncthreads
 *   2  thread 5 returns early; the others wait at __syncthreads
 *   3  mma.sync in divergent code: lanes 0-15 run it, lanes 16-31 a shuffle
 *   4  mma.sync in divergent code: lanes 16-31 skip it and exit
 *   5  a shuffle whose mask omits the lanes it reads (xor 16 with mask 0xffff)
 *   6  deadlock: lane 0 of warp 1 waits at a shuffle for lanes that went on to
 *      a __syncthreads, where the block waits for lane 0
 *   7  mma.sync with f16 in half the warp and bf16 in the other
 *   8  two mma.sync of the same type on two lines, half the warp at each
 *      (.aligned: every lane must run the same instruction)
 *   9  cp.async into a local array, not shared memory */
typedef struct FaultArgs {
    float *out; /* [64] */
    int32_t mode;
} FaultArgs;

ATTNC_MMA_DEV void fault_mma(int32_t bf16, float *acc) {
    uint32_t a[4] = {0x3c003c00u, 0, 0, 0}, b[2] = {0x3c003c00u, 0};
    if (bf16)
        attnc_mma_bf16(acc, a, b);
    else
        attnc_mma_f16(acc, a, b);
}

ATTNC_MMA_DEV float *fault_cell(void) {
    ATTNC_SMEM_STATIC(float, cell);
    return cell;
}

ATTNC_MMA_DEV void fault_body(const FaultArgs *p) {
    const int32_t t = attnc_tid(), lane = attnc_lane(), warp = attnc_warp();
    const uint32_t all = 0xffffffffu;
    float acc[4] = {0, 0, 0, 0}, v = (float)t;
    uint32_t acc_a[4] = {0, 0, 0, 0}, acc_b[2] = {0, 0};
    if (p->mode == 1) {
        if (warp == 0)
            attnc_syncthreads();
        else
            attnc_syncthreads();
    }
    if (p->mode == 2 && t == 5) return;
    if (p->mode == 3) {
        if (lane < 16)
            fault_mma(0, acc);
        else
            v = attnc_shfl_xor_f32(all, v, 1);
    }
    if (p->mode == 4) {
        if (lane >= 16) return;
        fault_mma(0, acc);
    }
    if (p->mode == 5) v = attnc_shfl_xor_f32(0xffffu, v, 16);
    if (p->mode == 6 && warp == 1 && lane == 0) v = attnc_shfl_xor_f32(all, v, 1);
    if (p->mode == 7) fault_mma(lane >= 16, acc);
    if (p->mode == 8) {
        if (lane < 16)
            fault_mma(0, acc);
        else
            attnc_mma_f16(acc, acc_a, acc_b);
    }
    if (p->mode == 9) {
        uint32_t local[8];
        attnc_cp_async16(&local[(t & 1) * 4], p->out, 16);
    }
    if (fault_cell() != fault_cell()) v = -1.0f;
    attnc_syncthreads();
    p->out[t] = v + acc[0];
}

ATTNC_KERNEL_ENTRY(fault_kernel, FaultArgs, fault_body, 64)
