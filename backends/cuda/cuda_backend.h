/* cuda_backend.h — what the `cuda` backend (cuda_backend.c) shows the tests:
 * its NVRTC compile of a plan's kernel text, without a device. */
#ifndef ATTNC_CUDA_BACKEND_H
#define ATTNC_CUDA_BACKEND_H
#include <stddef.h>

#include "attnc.h"
#include "plan.h"

/* The kernel text the backend compiles for p: the tensor-core kernel at (D,
 * Dv, type: cuda_fa2_type) when fa2 (cuda_fa2_emit_source), else the scaffold
 * (cuda_emit_source), NVRTC-compiled for compute capability `arch` (80:
 * sm_80) into PTX (ptx = 1: for compute_ARCH) or a cubin (ptx = 0: sm_ARCH,
 * what the backend loads).  *image (malloc'd, NUL-terminated) and *size;
 * *secs the NVRTC compile's wall time.  ATTNC_OK; ATTNC_ERR_RUNTIME when
 * NVRTC is missing or refuses the text (the message has the log's first
 * error; ATTNC_CUDA_DUMP=DIR writes DIR/NAME.cu and DIR/NAME.log). */
attnc_status cuda_rt_compile(const Plan *p, int fa2, int D, int Dv, int type, int arch, int ptx, char **image,
                             size_t *size, double *secs, attnc_error *err);

/* Tests only: 1 appends a line NVRTC refuses to every text it compiles. */
extern int cuda_rt_break_source_for_tests;

#endif
