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

/* A function of the library the generated code calls by name. */
typedef struct JitSymbol {
    const char *name;
    const void *addr;
} JitSymbol;

/* jit_compile_c binding `extra` (nextra symbols) besides the C emitter's
 * externals: cuda-emu's tensor-core kernels call the SIMT emulation
 * (backends/cuda/emu_simt.h, SIMT_EXTERNAL_FUNCTIONS). */
attnc_status jit_compile_c_with(const char *source, const char *what, const JitSymbol *extra, size_t nextra,
                                JitKernel **out, CompiledKernel *ck, attnc_error *err);

/* The address of function `name` of k's code, or NULL. */
void *jit_symbol(JitKernel *k, const char *name);

/* Milliseconds the compile (libtcc only, not the emission) took. */
double jit_compile_ms(const JitKernel *k);

/* Free the code; NULL is ignored. */
void jit_kernel_free(JitKernel *k);

#endif
