/* cuda_fa2_emit.h — the tensor-core forward kernel (templates/cuda_fa2.cu,
 * FlashAttention-2's design) as CUDA C for one head size and input type:
 * what the cuda-emu backend runs for the calls it handles (docs/cuda.md). */
#ifndef ATTNC_CUDA_FA2_EMIT_H
#define ATTNC_CUDA_FA2_EMIT_H
#include "attnc.h"
#include "kernel_abi.h"
#include "plan.h"

/* 1 when the tensor-core kernel can compute p's calls at all: 64 x 64
 * tiles (each call has its own conditions: backends/cuda/cuda_emu_backend.c,
 * cuda_fa2_call_ok, and the emulation's attnc_tile for low-rank columns). */
int cuda_fa2_plan_ok(const Plan *p);

/* float32 Q, K, V through TF32 up to D = Dv = 128: the Q tile and K and V's
 * two buffers of 64 rows of D floats (163840 bytes at 128) fit sm_80's
 * 163 KiB of shared memory, which 256 would not (nor would O's Dv / 2
 * accumulator registers). */
enum { CUDA_FA2_MAX_HEAD = 256, CUDA_FA2_MAX_HEAD_TF32 = 128 };

/* The kernel's input types (cuda_fa2_emit_source): f16, bf16, and float32
 * multiplied through TF32 (cvt.rna.tf32.f32, mma.m16n8k8.tf32). */
enum { CUDA_FA2_F16 = 0, CUDA_FA2_BF16 = 1, CUDA_FA2_TF32 = 2 };

/* The CUDA_FA2_* type of an ATTNC_ELEM_* (f16, bf16; anything else float32). */
int cuda_fa2_type(int elem);

/* 1 when the tensor-core kernel computes call c of a plan it can compute
 * (cuda_fa2_plan_ok): 64 x 64 tiles, Q, K, V all f16, all bf16 or all
 * float32 (through TF32), D and Dv multiples of 16 up to CUDA_FA2_MAX_HEAD
 * (CUDA_FA2_MAX_HEAD_TF32 for float32), one query head per work item, no
 * paged K/V, Q, K, V 16-byte aligned with strides multiples of 16 bytes.
 * Other calls run on the scaffold (exact float32 arithmetic).  The one rule
 * for every user of the kernel (cuda-emu, emit, the cuda backend). */
int cuda_fa2_call_ok(const AttnCall *c);

/* The whole rule, for every backend that runs the kernel (cuda-emu, cuda):
 * the plan's (cuda_fa2_plan_ok), the call's (cuda_fa2_call_ok), float32
 * on the scaffold when `flags` has ATTNC_OPT_EXACT_F32, and no f16 for a
 * `weight` clause (its P is not bounded by 1: it would overflow f16 before
 * the P V product; tests/fuzz/findings/item13-cuda-emu-fa2-f16-weight-overflow). */
int cuda_fa2_takes(const Plan *p, const AttnCall *c, int flags);

/* Bytes of dynamic shared memory of the kernel's K, V (and Q) tiles at D, Dv
 * for a CUDA_FA2_* type (the low-rank columns some calls add come after). */
int64_t cuda_fa2_smem_bytes(int D, int Dv, int type);

/* Append the tensor-core kernel of p for head sizes D and Dv (multiples of
 * 16) and Q, K, V of CUDA_FA2_* type `type` (f16 0, bf16 1, float32 2).  Its entry points: the
 * kernel `NAME_fa2_kernel` and, under nvcc, `extern "C" int
 * NAME_fa2_launch(const AttnCall *, int *fault, cudaStream_t)`; in the
 * emulation kernel_abi.h's attnc_tile (one block of the SIMT emulation per
 * work item; 2: the emulation refused the device code, its message in the
 * scratch; 3: the call's low-rank columns do not fit, run the scaffold) and
 * attnc_scratch_bytes.  ATTNC_OK, or ATTNC_ERR_INTERNAL /
 * ATTNC_ERR_NOMEM with err filled. */
attnc_status cuda_fa2_emit_source(const Plan *p, int D, int Dv, int type, StrBuf *out, attnc_error *err);

/* Tests only: 1 emits the kernel with each element's key coordinate wrong
 * (the columns of a register pair swapped), 2 without the __syncthreads
 * before a kv buffer is refilled; the tests must see either. */
extern int cuda_fa2_break_for_tests;

#endif
