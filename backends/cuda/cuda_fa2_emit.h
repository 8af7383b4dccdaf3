/* cuda_fa2_emit.h — the tensor-core forward kernel (templates/cuda_fa2.cu,
 * FlashAttention-2's design) as CUDA C for one head size and 16-bit type:
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

enum { CUDA_FA2_MAX_HEAD = 256 };

/* 1 when the tensor-core kernel computes call c of a plan it can compute
 * (cuda_fa2_plan_ok): 64 x 64 tiles, Q, K, V all f16 or all bf16, D and Dv
 * multiples of 16 up to CUDA_FA2_MAX_HEAD, one query head per work item,
 * no paged K/V, Q, K, V 16-byte aligned with strides multiples of 8.  The
 * one rule for every user of the kernel (cuda-emu, emit, the cuda backend). */
int cuda_fa2_call_ok(const AttnCall *c);

/* Append the tensor-core kernel of p for head sizes D and Dv (multiples of
 * 16) and Q, K, V of type bf16 (1) or f16 (0).  Its entry points: the
 * kernel `NAME_fa2_kernel` and, under nvcc, `extern "C" int
 * NAME_fa2_launch(const AttnCall *, int *fault, cudaStream_t)`; in the
 * emulation kernel_abi.h's attnc_tile (one block of the SIMT emulation per
 * work item; 2: the emulation refused the device code, its message in the
 * scratch; 3: the call's low-rank columns do not fit, run the scaffold) and
 * attnc_scratch_bytes.  ATTNC_OK, or ATTNC_ERR_INTERNAL /
 * ATTNC_ERR_NOMEM with err filled. */
attnc_status cuda_fa2_emit_source(const Plan *p, int D, int Dv, int bf16, StrBuf *out, attnc_error *err);

/* Tests only: 1 emits the kernel with each element's key coordinate wrong
 * (the columns of a register pair swapped), 2 without the __syncthreads
 * before a kv buffer is refilled; the tests must see either. */
extern int cuda_fa2_break_for_tests;

#endif
