/* jit_dense.h — the dense loops of templates/dense.c compiled into libattnc,
 * for the code the libtcc backend compiles (backends/c/jit_dense.c). */
#ifndef ATTNC_JIT_DENSE_H
#define ATTNC_JIT_DENSE_H

/* The copy of dense function `name` ("attnc_dense_qk", ...) best for this
 * machine (an AVX2+FMA build where the CPU has them), or NULL if unknown. */
const void *jit_dense_function(const char *name);

#endif
