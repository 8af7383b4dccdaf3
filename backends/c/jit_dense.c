/* jit_dense.c — templates/dense.c compiled into libattnc for the code
 * libtcc compiles, which calls these functions for its dense loops (libtcc
 * neither vectorises nor allocates registers).  Built at -O3 (CMakeLists.txt)
 * twice on x86-64: a portable copy and an AVX2+FMA copy; jit_dense_function
 * picks by what the CPU has, once per lookup (a few per kernel compile). */
#include "jit_dense.h"

#include "backend.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "half.h"

static inline float attnc_inf(void) { return INFINITY; }

#define ATTNC_DENSE_API static
#include "dense.c"

#if defined(__x86_64__) && defined(__GNUC__)
#define ATTNC_HAVE_AVX2_COPY 1
#undef ATTNC_DENSE_API
#define ATTNC_DENSE_API static __attribute__((target("avx2,fma")))
#define attnc_dense_transpose attnc_dense_transpose_avx2
#define attnc_dense_qk attnc_dense_qk_avx2
#define attnc_dense_softmax attnc_dense_softmax_avx2
#define attnc_dense_weights attnc_dense_weights_avx2
#define attnc_dense_pv attnc_dense_pv_avx2
#define attnc_dense_qk_block attnc_dense_qk_block_avx2
#define attnc_dense_qk_row attnc_dense_qk_row_avx2
#define attnc_dense_qk_rows attnc_dense_qk_rows_avx2
#define attnc_dense_widen attnc_dense_widen_avx2
#define attnc_dense_narrow attnc_dense_narrow_avx2
#include "dense.c"
#undef attnc_dense_transpose
#undef attnc_dense_qk
#undef attnc_dense_softmax
#undef attnc_dense_weights
#undef attnc_dense_pv
#undef attnc_dense_qk_block
#undef attnc_dense_qk_row
#undef attnc_dense_qk_rows
#undef attnc_dense_widen
#undef attnc_dense_narrow
#else
#define ATTNC_HAVE_AVX2_COPY 0
#endif

const void *jit_dense_function(const char *name) {
#if ATTNC_HAVE_AVX2_COPY
#define ENTRY(f) {#f, (const void *)f, (const void *)f##_avx2}
#else
#define ENTRY(f) {#f, (const void *)f, (const void *)f}
#endif
    static const struct {
        const char *name;
        const void *portable, *avx2;
    } table[] = {ENTRY(attnc_dense_transpose), ENTRY(attnc_dense_qk), ENTRY(attnc_dense_softmax),
                 ENTRY(attnc_dense_weights), ENTRY(attnc_dense_pv), ENTRY(attnc_dense_widen),
                 ENTRY(attnc_dense_narrow), ENTRY(attnc_dense_qk_rows)};
#undef ENTRY
    int avx2 = 0;
#if ATTNC_HAVE_AVX2_COPY
    __builtin_cpu_init();
    avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (!strcmp(table[i].name, name)) return avx2 ? table[i].avx2 : table[i].portable;
    return NULL;
}

DenseProductFn backend_dense_product(void) { return (DenseProductFn)jit_dense_function("attnc_dense_qk"); }
