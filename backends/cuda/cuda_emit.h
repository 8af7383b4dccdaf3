/* cuda_emit.h — a kernel plan as one CUDA C translation unit
 * (backends/cuda/cuda_emit.c, from templates/cuda_tile.cu): what
 * `attnc emit --target cuda` prints, and what the cuda-emu backend compiles
 * with libtcc (the same text without the __CUDACC__ parts). */
#ifndef ATTNC_CUDA_EMIT_H
#define ATTNC_CUDA_EMIT_H
#include "attnc.h"
#include "plan.h"

/* Append the CUDA C for p to out: the kernel, and the host launcher
 * `extern "C" int NAME_cuda_launch(const AttnCall *, int *fault, cudaStream_t)`
 * documented in the text's header comment.  Returns ATTNC_OK, or
 * ATTNC_ERR_INTERNAL / ATTNC_ERR_NOMEM with err filled. */
attnc_status cuda_emit_source(const Plan *p, StrBuf *out, attnc_error *err);

#endif
