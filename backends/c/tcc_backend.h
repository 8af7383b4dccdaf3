/* tcc_backend.h — the libtcc JIT (backends/c/tcc_backend.c) below the backend
 * interface, so tests can compile C text directly. */
#ifndef ATTNC_TCC_BACKEND_H
#define ATTNC_TCC_BACKEND_H
#include "backend.h"

typedef struct JitKernel JitKernel;

/* Compile `source` (C from c_emit.c) in memory and fill ck with its kernel
 * functions; `what` names the attention in messages.  A source that does not
 * compile gives ATTNC_ERR_INTERNAL with libtcc's first error.  Thread-safe:
 * compiles are serialised (libtcc 0.9.27 keeps global state). */
attnc_status jit_compile_c(const char *source, const char *what, JitKernel **out, CompiledKernel *ck,
                           attnc_error *err);

/* Milliseconds the compile (libtcc only, not the emission) took. */
double jit_compile_ms(const JitKernel *k);

/* Free the code; NULL is ignored. */
void jit_kernel_free(JitKernel *k);

#endif
