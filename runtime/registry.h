/* registry.h — every backend of this build, by attnc_backend: the compiling
 * ones (backends/) and the two references in runtime/ (the interpreter and
 * refplan), all behind the one interface of backends/backend.h. */
#ifndef ATTNC_REGISTRY_H
#define ATTNC_REGISTRY_H
#include "backend.h"

extern const BackendImpl backend_interp;   /* runtime/interp.c */
extern const BackendImpl backend_refplan;  /* runtime/plan_run.c */
extern const BackendImpl backend_tcc;      /* backends/c/tcc_backend.c */
extern const BackendImpl backend_cuda_emu; /* backends/cuda/cuda_emu_backend.c: also `emit --target cuda` */
extern const BackendImpl backend_cuda;     /* backends/cuda/cuda_backend.c: NVRTC and the CUDA driver, dlopen'd */
#ifdef ATTNC_HAVE_LLVM
extern const BackendImpl backend_llvm; /* backends/llvm/llvm_backend.c */
#endif

/* The implementation of `b` in this build, or NULL. */
const BackendImpl *backend_find(attnc_backend b);

/* A backend's emit for no target of its own (the references have none). */
attnc_status backend_emit_nothing(const Plan *p, const attnc_options *opts, const char *target, StrBuf *out,
                                  attnc_error *err);

#endif
