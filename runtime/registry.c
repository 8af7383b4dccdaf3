/* registry.c — which implementation serves each attnc_backend (registry.h).
 * The C and CUDA emitters are always built (emitting text needs no libtcc),
 * and so is the cuda backend (it loads the CUDA driver at run time);
 * LLVM only when the build found it. */
#include "registry.h"

const BackendImpl *backend_find(attnc_backend b) {
    switch (b) {
    case ATTNC_BACKEND_INTERP: return &backend_interp;
    case ATTNC_BACKEND_REFPLAN: return &backend_refplan;
    case ATTNC_BACKEND_TCC: return &backend_tcc;
    case ATTNC_BACKEND_CUDA_EMU: return &backend_cuda_emu;
    case ATTNC_BACKEND_CUDA: return &backend_cuda;
#ifdef ATTNC_HAVE_LLVM
    case ATTNC_BACKEND_LLVM: return &backend_llvm;
#endif
    default: return NULL;
    }
}

attnc_status backend_emit_nothing(const Plan *p, const attnc_options *opts, const char *target, StrBuf *out,
                                  attnc_error *err) {
    (void)p, (void)opts, (void)target, (void)out, (void)err;
    return ATTNC_ERR_USAGE;
}
