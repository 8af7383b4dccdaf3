/* backend.h — what a compiling backend (libtcc, LLVM) provides to the
 * library.  api.c picks the implementation by attnc_backend and runs the
 * result through launch.c; a backend only turns a Plan into an AttnTileFn
 * (and, for `attnc emit`, into text). */
#ifndef ATTNC_BACKEND_H
#define ATTNC_BACKEND_H
#include "attnc.h"
#include "launch.h"
#include "plan.h"

typedef struct BackendImpl {
    attnc_backend id;
    int can_run; /* 0: this build can emit its text but not compile kernels (libattnc.so without libtcc) */
    /* Compile p into ck; *state is the backend's (freed by release), and
     * ck->kernel_data may point into it.  The plan outlives the state. */
    attnc_status (*compile)(const Plan *p, const attnc_options *opts, CompiledKernel *ck, void **state,
                            attnc_error *err);
    void (*release)(void *state);
    /* Text of the compiled form for `target` ("c", "llvm-ir", "asm", ...):
     * ATTNC_ERR_USAGE when the target is not this backend's. */
    attnc_status (*emit)(const Plan *p, const attnc_options *opts, const char *target, StrBuf *out,
                         attnc_error *err);
} BackendImpl;

#ifdef ATTNC_HAVE_TCC
extern const BackendImpl backend_tcc; /* runtime/tcc_backend.c */
extern const BackendImpl backend_cuda_emu; /* runtime/cuda_emu_backend.c: also `emit --target cuda` */
#endif
#ifdef ATTNC_HAVE_LLVM
extern const BackendImpl backend_llvm; /* runtime/llvm_backend.c */
#endif

/* The implementation of `b` in this build, or NULL. */
const BackendImpl *backend_find(attnc_backend b);

#endif
