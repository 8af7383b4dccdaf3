/* templates/cuda_mma.h — the device primitives of the tensor-core kernels:
 * one text that is CUDA under nvcc / NVRTC (__CUDACC__: PTX inline assembly
 * and intrinsics) and C for cuda-emu, where each primitive calls the strict
 * SIMT emulation (backends/cuda/emu_simt.h, docs/cuda-emu.md).  Embedded in
 * the library (attnc_cuda_mma_text, cmake/embed.cmake) for the emitters to
 * paste, after the cuda_macros section of templates/support.h (and, under
 * ATTNC_JIT, jit_types) and base/half.h's functions, whose names it uses.
 *
 * Everything is a macro or an ATTNC_MMA_DEV function taking plain C types
 * (uint32_t registers of two 16-bit elements, the lower-indexed element in
 * the lower half, as PTX's .f16x2 / .bf16x2), so the same kernel text
 * compiles as C99 and as CUDA C++.  The macros pass the caller's __LINE__
 * to the emulation, whose faults name it.
 *
 *   ids          attnc_tid() attnc_ntid() attnc_bid_x/y/z() attnc_nbid_x/y/z()
 *                attnc_lane() attnc_warp()           (1-D blocks: lane = tid % 32)
 *   shared       ATTNC_SMEM_STATIC(T, name)   T *const name, a __shared__ T of the block
 *                ATTNC_SMEM_DYNAMIC(T, name)  T *name, the launch's dynamic shared memory
 *   barriers     attnc_syncthreads()  attnc_syncwarp(mask)
 *   ordering     attnc_schedule_point(): __threadfence_block() on the GPU, nothing in the
 *                emulation: a point ptxas does not move shared-memory loads across (the
 *                kernels use it to bound how many operands its scheduler keeps in flight)
 *   shuffles     attnc_shfl_xor_f32(mask, v, lanemask)  _idx_f32(mask, v, lane)
 *                _down_f32(mask, v, delta)  _up_f32  and _u32 of each;  _xor_f32_w(.., width)
 *   vote         attnc_ballot(mask, pred)
 *   mma          attnc_mma_f16(acc, a, b)  attnc_mma_bf16(acc, a, b):
 *                mma.sync.aligned.m16n8k16.row.col.f32.{f16,bf16}.{f16,bf16}.f32,
 *                float acc[4] += A(uint32_t a[4]) * B(uint32_t b[2])
 *                attnc_mma_tf32(acc, a, b): mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32,
 *                float acc[4] += A(uint32_t a[4]) * B(uint32_t b[2]), one tf32 a register
 *   tf32         attnc_cvt_tf32(x): cvt.rna.tf32.f32, x rounded to 10 mantissa bits (nearest,
 *                ties away from zero), the low 13 bits of the result zero: the only
 *                operands the emulation's mma.tf32 accepts
 *   lds          attnc_lds_u32(p): a 32-bit load from shared memory (the emulation
 *                checks that p is in shared memory and no cp.async to it is pending)
 *   ldmatrix     attnc_ldmatrix_x4(r, p) _x4_trans _x2 _x2_trans _x1 _x1_trans:
 *                uint32_t r[n]; p: this lane's row (lane % 8 of matrix lane / 8)
 *   cp.async     attnc_cp_async16(dst, src, src_bytes)  (cg, 16 bytes, zero fill past src_bytes)
 *                attnc_cp_async_commit()  attnc_cp_async_wait(N) (N a constant)  attnc_cp_async_wait_all()
 *   packing      attnc_pack_f16x2(lo, hi)  attnc_pack_bf16x2(lo, hi): two floats rounded to nearest even
 *   entry        ATTNC_KERNEL_ENTRY(name, Args, body, threads): the __global__ function
 *                `name(const Args)` on the GPU, `void name(const void *)` in the emulation,
 *                both calling `body(const Args *)`. */
#ifndef ATTNC_CUDA_MMA_H
#define ATTNC_CUDA_MMA_H

#ifdef __CUDACC__

#define ATTNC_MMA_DEV static __device__ __forceinline__

#define attnc_tid() ((int32_t)threadIdx.x)
#define attnc_ntid() ((int32_t)blockDim.x)
#define attnc_bid_x() ((int32_t)blockIdx.x)
#define attnc_bid_y() ((int32_t)blockIdx.y)
#define attnc_bid_z() ((int32_t)blockIdx.z)
#define attnc_nbid_x() ((int32_t)gridDim.x)
#define attnc_nbid_y() ((int32_t)gridDim.y)
#define attnc_nbid_z() ((int32_t)gridDim.z)

#define ATTNC_SMEM_STATIC(T, name)                                                                                     \
    __shared__ __align__(128) T name##_storage_;                                                                       \
    T *const name = &name##_storage_
#define ATTNC_SMEM_DYNAMIC(T, name)                                                                                    \
    extern __shared__ __align__(128) unsigned char attnc_dynamic_smem_[];                                              \
    T *name = (T *)attnc_dynamic_smem_

#define attnc_syncthreads() __syncthreads()
#define attnc_syncwarp(mask) __syncwarp(mask)
#define attnc_schedule_point() __threadfence_block()

#define attnc_shfl_xor_f32_w(mask, v, lm, w) __shfl_xor_sync((mask), (float)(v), (lm), (w))
#define attnc_shfl_xor_u32_w(mask, v, lm, w) __shfl_xor_sync((mask), (uint32_t)(v), (lm), (w))
#define attnc_shfl_idx_f32(mask, v, src) __shfl_sync((mask), (float)(v), (src))
#define attnc_shfl_idx_u32(mask, v, src) __shfl_sync((mask), (uint32_t)(v), (src))
#define attnc_shfl_down_f32(mask, v, d) __shfl_down_sync((mask), (float)(v), (d))
#define attnc_shfl_down_u32(mask, v, d) __shfl_down_sync((mask), (uint32_t)(v), (d))
#define attnc_shfl_up_f32(mask, v, d) __shfl_up_sync((mask), (float)(v), (d))
#define attnc_shfl_up_u32(mask, v, d) __shfl_up_sync((mask), (uint32_t)(v), (d))
#define attnc_ballot(mask, pred) __ballot_sync((mask), (pred))

/* the 32-bit shared-memory address PTX's .shared operands take */
ATTNC_MMA_DEV uint32_t attnc_smem_addr(const void *p) { return (uint32_t)__cvta_generic_to_shared(p); }

ATTNC_MMA_DEV void attnc_mma_f16_(float *acc, const uint32_t *a, const uint32_t *b) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(acc[0]), "+f"(acc[1]), "+f"(acc[2]), "+f"(acc[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
ATTNC_MMA_DEV void attnc_mma_bf16_(float *acc, const uint32_t *a, const uint32_t *b) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(acc[0]), "+f"(acc[1]), "+f"(acc[2]), "+f"(acc[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
ATTNC_MMA_DEV void attnc_mma_tf32_(float *acc, const uint32_t *a, const uint32_t *b) {
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(acc[0]), "+f"(acc[1]), "+f"(acc[2]), "+f"(acc[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
#define attnc_mma_f16(acc, a, b) attnc_mma_f16_((acc), (a), (b))
#define attnc_mma_bf16(acc, a, b) attnc_mma_bf16_((acc), (a), (b))
#define attnc_mma_tf32(acc, a, b) attnc_mma_tf32_((acc), (a), (b))

ATTNC_MMA_DEV uint32_t attnc_cvt_tf32(float x) {
    uint32_t d;
    asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(d) : "f"(x));
    return d;
}
#define attnc_lds_u32(p) (*(const uint32_t *)(p))

ATTNC_MMA_DEV void attnc_ldmatrix_x4_(uint32_t *r, const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(attnc_smem_addr(p)));
}
ATTNC_MMA_DEV void attnc_ldmatrix_x4_trans_(uint32_t *r, const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(attnc_smem_addr(p)));
}
ATTNC_MMA_DEV void attnc_ldmatrix_x2_(uint32_t *r, const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n"
                 : "=r"(r[0]), "=r"(r[1])
                 : "r"(attnc_smem_addr(p)));
}
ATTNC_MMA_DEV void attnc_ldmatrix_x2_trans_(uint32_t *r, const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n"
                 : "=r"(r[0]), "=r"(r[1])
                 : "r"(attnc_smem_addr(p)));
}
ATTNC_MMA_DEV void attnc_ldmatrix_x1_(uint32_t *r, const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];\n" : "=r"(r[0]) : "r"(attnc_smem_addr(p)));
}
ATTNC_MMA_DEV void attnc_ldmatrix_x1_trans_(uint32_t *r, const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];\n" : "=r"(r[0]) : "r"(attnc_smem_addr(p)));
}
#define attnc_ldmatrix_x4(r, p) attnc_ldmatrix_x4_((r), (p))
#define attnc_ldmatrix_x4_trans(r, p) attnc_ldmatrix_x4_trans_((r), (p))
#define attnc_ldmatrix_x2(r, p) attnc_ldmatrix_x2_((r), (p))
#define attnc_ldmatrix_x2_trans(r, p) attnc_ldmatrix_x2_trans_((r), (p))
#define attnc_ldmatrix_x1(r, p) attnc_ldmatrix_x1_((r), (p))
#define attnc_ldmatrix_x1_trans(r, p) attnc_ldmatrix_x1_trans_((r), (p))

/* cg: cached in L2 only (16-byte copies); the copy reads src_bytes (0..16) and zero-fills the rest */
ATTNC_MMA_DEV void attnc_cp_async16_(void *dst, const void *src, int32_t src_bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(attnc_smem_addr(dst)), "l"(src),
                 "r"(src_bytes));
}
#define attnc_cp_async16(dst, src, src_bytes) attnc_cp_async16_((dst), (src), (src_bytes))
#define attnc_cp_async_commit() asm volatile("cp.async.commit_group;\n" ::: "memory")
#define attnc_cp_async_wait(n) asm volatile("cp.async.wait_group %0;\n" ::"n"(n) : "memory")
#define attnc_cp_async_wait_all() asm volatile("cp.async.wait_all;\n" ::: "memory")

/* cvt.rn.f16x2.f32 d, a, b puts a in the upper half and b in the lower */
ATTNC_MMA_DEV uint32_t attnc_pack_f16x2(float lo, float hi) {
    uint32_t d;
    asm("cvt.rn.f16x2.f32 %0, %1, %2;\n" : "=r"(d) : "f"(hi), "f"(lo));
    return d;
}
ATTNC_MMA_DEV uint32_t attnc_pack_bf16x2(float lo, float hi) {
    uint32_t d;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(d) : "f"(hi), "f"(lo));
    return d;
}

#define ATTNC_KERNEL_ENTRY(name, Args, body, threads)                                                                  \
    extern "C" __global__ void __launch_bounds__(threads) name(const Args args) { body(&args); }
/* the same, promising ptxas at least min_blocks blocks per SM (so it may use up to 65536 / (threads * min_blocks)
 * registers instead of capping them for an occupancy shared memory forbids anyway) */
#define ATTNC_KERNEL_ENTRY_MIN(name, Args, body, threads, min_blocks)                                                   \
    extern "C" __global__ void __launch_bounds__(threads, min_blocks) name(const Args args) { body(&args); }

#else /* cuda-emu: the strict SIMT emulation, backends/cuda/emu_simt.h (bound by the JIT) */

/* the emulation's entry points as emu_simt.h declares them (the generated text
 * includes no header; tests/test_cuda_simt.c includes both files, so a compiler
 * checks that they agree) */

#define ATTNC_MMA_DEV static inline

int32_t attnc_simt_id(int32_t which);
void *attnc_simt_shared(int64_t bytes, const char *name, int32_t line);
void *attnc_simt_dynamic_shared(void);
void attnc_simt_syncthreads(int32_t line);
void attnc_simt_syncwarp(uint32_t mask, int32_t line);
uint32_t attnc_simt_shfl(uint32_t mask, uint32_t value, int32_t b, int32_t c, int32_t mode, int32_t line);
uint32_t attnc_simt_ballot(uint32_t mask, int32_t pred, int32_t line);
void attnc_simt_mma16816(int32_t type, float *d, const uint32_t *a, const uint32_t *b, const float *c, int32_t line);
void attnc_simt_mma1688_tf32(float *d, const uint32_t *a, const uint32_t *b, const float *c, int32_t line);
uint32_t attnc_simt_lds32(const void *p, int32_t line);
void attnc_simt_ldmatrix(int32_t num, int32_t trans, uint32_t *r, const void *row, int32_t line);
void attnc_simt_cp_async(void *dst, const void *src, int32_t cp_size, int32_t src_size, int32_t line);
void attnc_simt_cp_async_commit(int32_t line);
void attnc_simt_cp_async_wait(int32_t n, int32_t line);
/* the host side of the emulation: run blocks first .. first + count - 1 of a
 * launch (dims: grid x, y, z, block x, y, z); 0, or a status and message */
int32_t attnc_simt_launch(void (*kernel)(const void *), const void *args, const int32_t *dims, int64_t dynamic_smem,
                          int64_t first, int64_t count, char *message, int32_t message_bytes);

#define attnc_tid() attnc_simt_id(0)
#define attnc_ntid() attnc_simt_id(6)
#define attnc_bid_x() attnc_simt_id(3)
#define attnc_bid_y() attnc_simt_id(4)
#define attnc_bid_z() attnc_simt_id(5)
#define attnc_nbid_x() attnc_simt_id(9)
#define attnc_nbid_y() attnc_simt_id(10)
#define attnc_nbid_z() attnc_simt_id(11)

#define ATTNC_SMEM_STATIC(T, name) T *const name = (T *)attnc_simt_shared((int64_t)sizeof(T), #name, __LINE__)
#define ATTNC_SMEM_DYNAMIC(T, name) T *name = (T *)attnc_simt_dynamic_shared()

#define attnc_syncthreads() attnc_simt_syncthreads(__LINE__)
#define attnc_syncwarp(mask) attnc_simt_syncwarp((mask), __LINE__)
#define attnc_schedule_point() ((void)0) /* one thread runs at a time: loads are ordered anyway */

/* PTX shfl.sync's modes (idx 0, up 1, down 2, bfly 3) and clamp operand c as CUDA passes a width */
#define attnc_shfl_(mask, u, b, c, mode) attnc_simt_shfl((mask), (u), (b), (c), (mode), __LINE__)
#define attnc_shfl_xor_u32_w(mask, v, lm, w) attnc_shfl_((mask), (uint32_t)(v), (lm), ((32 - (w)) << 8) | 31, 3)
#define attnc_shfl_xor_f32_w(mask, v, lm, w) attnc_f32_from_bits(attnc_shfl_xor_u32_w((mask), attnc_f32_bits(v), (lm), (w)))
#define attnc_shfl_idx_u32(mask, v, src) attnc_shfl_((mask), (uint32_t)(v), (src), 31, 0)
#define attnc_shfl_idx_f32(mask, v, src) attnc_f32_from_bits(attnc_shfl_idx_u32((mask), attnc_f32_bits(v), (src)))
#define attnc_shfl_down_u32(mask, v, d) attnc_shfl_((mask), (uint32_t)(v), (d), 31, 2)
#define attnc_shfl_down_f32(mask, v, d) attnc_f32_from_bits(attnc_shfl_down_u32((mask), attnc_f32_bits(v), (d)))
#define attnc_shfl_up_u32(mask, v, d) attnc_shfl_((mask), (uint32_t)(v), (d), 0, 1)
#define attnc_shfl_up_f32(mask, v, d) attnc_f32_from_bits(attnc_shfl_up_u32((mask), attnc_f32_bits(v), (d)))
#define attnc_ballot(mask, pred) attnc_simt_ballot((mask), (pred) != 0, __LINE__)

#define attnc_mma_f16(acc, a, b) attnc_simt_mma16816(0, (acc), (a), (b), (acc), __LINE__)
#define attnc_mma_bf16(acc, a, b) attnc_simt_mma16816(1, (acc), (a), (b), (acc), __LINE__)
#define attnc_mma_tf32(acc, a, b) attnc_simt_mma1688_tf32((acc), (a), (b), (acc), __LINE__)
#define attnc_lds_u32(p) attnc_simt_lds32((p), __LINE__)

/* cvt.rna.tf32.f32 as sm_80's SASS computes it (FSETP |x| >= inf; IADD 0x1000 unless so;
 * LOP3 & 0xffffe000): half an ulp of tf32 added to the magnitude's bits, a carry
 * into the exponent included (the largest finite values round to inf), then the 13
 * low bits cleared; inf and NaN keep their bits but the low 13 (a NaN whose payload
 * is only there would become inf: the GPU's result as well). */
ATTNC_MMA_DEV uint32_t attnc_cvt_tf32(float x) {
    uint32_t u = attnc_f32_bits(x);
    if ((u & 0x7f800000u) != 0x7f800000u) u += 0x1000u;
    return u & 0xffffe000u;
}

#define attnc_ldmatrix_x4(r, p) attnc_simt_ldmatrix(4, 0, (r), (p), __LINE__)
#define attnc_ldmatrix_x4_trans(r, p) attnc_simt_ldmatrix(4, 1, (r), (p), __LINE__)
#define attnc_ldmatrix_x2(r, p) attnc_simt_ldmatrix(2, 0, (r), (p), __LINE__)
#define attnc_ldmatrix_x2_trans(r, p) attnc_simt_ldmatrix(2, 1, (r), (p), __LINE__)
#define attnc_ldmatrix_x1(r, p) attnc_simt_ldmatrix(1, 0, (r), (p), __LINE__)
#define attnc_ldmatrix_x1_trans(r, p) attnc_simt_ldmatrix(1, 1, (r), (p), __LINE__)

#define attnc_cp_async16(dst, src, src_bytes) attnc_simt_cp_async((dst), (src), 16, (src_bytes), __LINE__)
#define attnc_cp_async_commit() attnc_simt_cp_async_commit(__LINE__)
#define attnc_cp_async_wait(n) attnc_simt_cp_async_wait((n), __LINE__)
#define attnc_cp_async_wait_all() (attnc_simt_cp_async_commit(__LINE__), attnc_simt_cp_async_wait(0, __LINE__))

ATTNC_MMA_DEV uint32_t attnc_pack_f16x2(float lo, float hi) {
    return (uint32_t)attnc_f32_to_f16(lo) | (uint32_t)attnc_f32_to_f16(hi) << 16;
}
ATTNC_MMA_DEV uint32_t attnc_pack_bf16x2(float lo, float hi) {
    return (uint32_t)attnc_f32_to_bf16(lo) | (uint32_t)attnc_f32_to_bf16(hi) << 16;
}

#define ATTNC_KERNEL_ENTRY(name, Args, body, threads)                                                                  \
    void name(const void *args) { body((const Args *)args); }
#define ATTNC_KERNEL_ENTRY_MIN(name, Args, body, threads, min_blocks) ATTNC_KERNEL_ENTRY(name, Args, body, threads)

#endif

#define attnc_lane() (attnc_tid() & 31)
#define attnc_warp() (attnc_tid() >> 5)
#define attnc_shfl_xor_f32(mask, v, lm) attnc_shfl_xor_f32_w((mask), (v), (lm), 32)
#define attnc_shfl_xor_u32(mask, v, lm) attnc_shfl_xor_u32_w((mask), (v), (lm), 32)

#endif
