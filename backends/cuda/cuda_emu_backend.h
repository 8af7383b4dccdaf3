/* cuda_emu_backend.h — what the cuda-emu backend (cuda_emu_backend.c) tells
 * the tests about its tensor-core kernel. */
#ifndef ATTNC_CUDA_EMU_BACKEND_H
#define ATTNC_CUDA_EMU_BACKEND_H
#include <stddef.h>

/* Work items the tensor-core kernel has run in this process (all kernels),
 * and the SIMT emulation's last refusal of its device code ("" if none). */
void cuda_emu_fa2_stats(long long *items, char *fault, size_t n);

#endif
