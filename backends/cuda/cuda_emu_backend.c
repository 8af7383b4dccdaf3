/* cuda_emu_backend.c — backend "cuda-emu": the CUDA C of backends/cuda/cuda_emit.c
 * run on the CPU.  The text compiles as C99 without __CUDACC__: each phase
 * of a thread block becomes a loop over the block's threads, shared memory
 * becomes locals and the launch's dynamic shared memory the runtime's
 * per-thread scratch; libtcc compiles it in memory (backends/c/tcc_backend.c,
 * jit_compile_c) and launch.c runs it like every compiled backend.  It also
 * serves `attnc emit --target cuda`.
 *
 * Requires: libtcc (ATTNC_HAVE_TCC); compiled twice like tcc_backend.c, with
 * ATTNC_TCC_JIT only in the variant that can run kernels.
 * Produces: backend_cuda_emu (backend.h). */
#include <string.h>

#include "backend.h"
#include "cuda_emit.h"
#include "tcc_backend.h"

static attnc_status cuda_emu_compile(const Plan *p, const attnc_options *opts, CompiledKernel *ck, void **state,
                                     attnc_error *err) {
    (void)opts;
    StrBuf src = {0};
    JitKernel *k = NULL;
    attnc_status st = cuda_emit_source(p, &src, err);
    if (!st) st = jit_compile_c(src.p, p->attn->name, &k, ck, err);
    ck->packs = 1; /* templates/cuda_tile.cu computes work items of packed heads */
    ck->pages = 1; /* templates/cuda_tile.cu reads a paged K and V in place (AttnCall.kv_page) */
    sb_free(&src);
    *state = k;
    return st;
}

static void cuda_emu_release(void *state) { jit_kernel_free(state); }

static attnc_status cuda_emu_emit(const Plan *p, const attnc_options *opts, const char *target, StrBuf *out,
                                  attnc_error *err) {
    (void)opts;
    if (strcmp(target, "cuda") != 0)
        return set_error(err, ATTNC_ERR_USAGE, "backend 'cuda-emu' emits target 'cuda', not '%s'", target);
    return cuda_emit_source(p, out, err);
}

#ifdef ATTNC_TCC_JIT
enum { CUDA_EMU_CAN_RUN = 1 };
#else
enum { CUDA_EMU_CAN_RUN = 0 };
#endif
const BackendImpl backend_cuda_emu = {
    .id = ATTNC_BACKEND_CUDA_EMU,
    .can_run = CUDA_EMU_CAN_RUN,
    .compile = cuda_emu_compile,
    .release = cuda_emu_release,
    .emit = cuda_emu_emit,
    .layouts = 1, /* f16 / bf16 and strides: templates/cuda_tile.cu */
};
