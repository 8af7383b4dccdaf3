/* cuda_emit.h — a kernel plan as one CUDA C translation unit
 * (backends/cuda/cuda_emit.c, from templates/cuda_tile.cu): what
 * `attnc emit --target cuda` prints, and what the cuda-emu backend compiles
 * with libtcc (the same text without the __CUDACC__ parts). */
#ifndef ATTNC_CUDA_EMIT_H
#define ATTNC_CUDA_EMIT_H
#include "attnc.h"
#include "c_holes.h"
#include "plan.h"

/* Append the CUDA C for p to out: the kernel, and the host launcher
 * `extern "C" int NAME_cuda_launch(const AttnCall *, int *fault, cudaStream_t)`
 * documented in the text's header comment.  Returns ATTNC_OK, or
 * ATTNC_ERR_INTERNAL / ATTNC_ERR_NOMEM with err filled. */
attnc_status cuda_emit_source(const Plan *p, StrBuf *out, attnc_error *err);

/* What every CUDA text of p starts with (the scaffold's and the tensor-core
 * kernel's, backends/cuda/cuda_fa2_emit.c): the cuda_macros section of
 * templates/support.h (jit_types and libm under ATTNC_JIT), kernel_abi.h,
 * attnc_inf and the helpers H's code calls, base/half.h's conversions, the
 * schedule's macros, ATTNC_NPARAMS and ATTNC_NTENSORS; v2 (NULL: none) the
 * version-2 functions whose helpers are wanted too.  0 when the embedded
 * support.h lacks a section. */
int cuda_emit_prologue(const Plan *p, const CEmitHoles *H, const StrBuf *v2, StrBuf *out);

/* The text of a version-2 attention after the template (cuda_emit_v2.c):
 * `functions` (cemit_v2_functions_as with ATTNC_DEV), the device kernels
 * NAME_v2_rows, NAME_v2_table, NAME_v2_sinks, NAME_v2_merge (C functions
 * over every index without __CUDACC__: cuda-emu) and, under nvcc, the
 * extern "C" NAME_cuda_launch that runs them around the kernel. */
attnc_status cuda_emit_v2(const Plan *p, const StrBuf *functions, StrBuf *out, attnc_error *err);

/* Whether p's text has cuda_emit_v2's part: a rotary, a sink, tables of dot products, or Q's and K's rows
 * read as tensors (cemit_plan_is_v2, or middle/rows_table.h's rows(Q) / rows(K)). */
int cuda_plan_is_v2(const Plan *p);

#endif
