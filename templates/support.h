/* templates/support.h — the fixed C text of the generated kernels that is
 * not the kernel template itself: the types and libm declarations the JIT
 * needs without system headers, the CUDA portability macros, and the
 * helper functions with the IR's total semantics.  One copy, embedded in
 * the library (cmake/embed.cmake) and pasted by both emitters:
 * backends/c/c_emit.c (`--target c`, libtcc) and backends/cuda/cuda_emit.c
 * (`--target cuda`, cuda-emu).
 *
 * This file is never included or compiled whole.  It is a list of
 * sections, each between a line  / *@KIND NAME@* /  and a line
 * / *@end@* /  (without the spaces); text outside sections, like this
 * comment, is not emitted.  KIND is
 *   section  a named piece an emitter pastes where it needs it
 *            (cemit_put_support);
 *   helper   a function NAME the code of the holes (backends/c/c_holes.c)
 *            may call: an emitter pastes it only when that code contains
 *            "NAME(" (cemit_put_helpers), since compilers warn about
 *            unused static functions.  To add a helper, add a section here
 *            and call it from c_holes.c; nothing else changes.
 * Functions are written `static inline`: the C emitter pastes them as they
 * are, the CUDA emitter replaces `static inline` by ATTNC_DEV (host and
 * device functions under nvcc, see section cuda_macros).  Sections are
 * pasted in this file's order. */

/* The JIT (libtcc) compiles without system headers.  The libm functions
 * here are the ones the JIT binds by name: keep them in step with
 * CEMIT_EXTERNAL_FUNCTIONS in backends/c/c_emit.h. */
/*@section jit_types@*/
/* the JIT compiles without system headers: the types stdint.h would give */
typedef signed char int8_t;
typedef short int16_t;
typedef int int32_t;
typedef long long int64_t;
typedef unsigned char uint8_t;
typedef unsigned short uint16_t;
typedef unsigned int uint32_t;
typedef unsigned long long uint64_t;
/*@end@*/
/*@section libm@*/
/* libm (bound to the host's functions by the JIT) */
float expf(float);
float exp2f(float);
float logf(float);
float log2f(float);
float sqrtf(float);
float tanhf(float);
float erff(float);
float sinf(float);
float cosf(float);
float powf(float, float);
float floorf(float);
float ceilf(float);
float fmodf(float, float);
float fabsf(float);
/*@end@*/

/* The qualifiers of templates/cuda_tile.cu: CUDA under nvcc, else plain C99
 * for cuda-emu (the emitter adds jit_types and libm under ATTNC_JIT). */
/*@section cuda_macros@*/
#ifdef __CUDACC__
#ifndef __CUDACC_RTC__ /* NVRTC (attnc's cuda backend) compiles device code only, without system headers */
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#endif
#define ATTNC_DEV static __host__ __device__ __forceinline__
#define ATTNC_ITEM static __device__
#define ATTNC_SHARED __shared__
#define ATTNC_THREADS_BEGIN(t) { const int64_t t = (int64_t)threadIdx.x; {
#define ATTNC_THREADS_END } } __syncthreads();
#else /* cuda-emu: plain C99 on the CPU, each phase a loop over the block's threads */
#ifndef ATTNC_JIT /* libtcc has no system headers: its types and libm follow */
#include <math.h>
#include <stdint.h>
#endif
#define ATTNC_DEV static inline
#define ATTNC_ITEM static
#define ATTNC_SHARED
#define ATTNC_THREADS_BEGIN(t) for (int64_t t = 0; t < ATTNC_NT; t++) {
#define ATTNC_THREADS_END }
#define ATTNC_LINKAGE
#endif
/*@end@*/

/* Both CUDA templates' launchers (cuda_tile.cu, cuda_fa2.cu): the call's
 * params and tensors passed by value as a kernel argument (the AttnCall's
 * arrays are host memory), and the host's view of the call reading them
 * there.  After ATTNC_NPARAMS and ATTNC_NTENSORS (cuda_emit_prologue).
 * attnc's cuda backend (NVRTC) writes the struct's bytes itself
 * (backends/cuda/cuda_backend.c, consts_fill): 8-byte members in this order,
 * no padding, which the static_assert holds it to. */
/*@section cuda_consts@*/
#ifdef __CUDACC__
typedef struct AttnCudaConsts {
    AttnValue params[ATTNC_NPARAMS + 1];
    const void *tensor_data[ATTNC_NTENSORS + 1];
    int64_t tensor_shape[ATTNC_NTENSORS + 1][ATTNC_ABI_MAX_RANK];
} AttnCudaConsts;
static_assert(sizeof(AttnCudaConsts) == 8 * (ATTNC_NPARAMS + 1 + (ATTNC_NTENSORS + 1) * (1 + ATTNC_ABI_MAX_RANK)),
              "AttnCudaConsts as backends/cuda/cuda_backend.c writes it");
#ifdef ATTNC_HOST_CALL_BYTES /* NVRTC: the library's sizeof(AttnCall), whose bytes it passes */
static_assert(sizeof(AttnCall) == ATTNC_HOST_CALL_BYTES, "AttnCall as the host lays it out");
#endif

/* call's params and tensors read from consts (on the device) */
ATTNC_DEV void attnc_cuda_use_consts(AttnCall *call, const AttnCudaConsts *consts) {
    call->params = consts->params;
    call->tensor_data = consts->tensor_data;
    call->tensor_shape = (const int64_t(*)[ATTNC_ABI_MAX_RANK])consts->tensor_shape;
}

#ifndef __CUDACC_RTC__
static void attnc_cuda_consts(const AttnCall *call, AttnCudaConsts *consts, AttnCall *host) {
    memset(consts, 0, sizeof *consts);
    for (int i = 0; i < ATTNC_NPARAMS; i++) consts->params[i] = call->params[i];
    for (int i = 0; i < ATTNC_NTENSORS; i++) {
        consts->tensor_data[i] = call->tensor_data[i];
        for (int d = 0; d < ATTNC_ABI_MAX_RANK; d++) consts->tensor_shape[i][d] = call->tensor_shape[i][d];
    }
    *host = *call;
    attnc_cuda_use_consts(host, consts);
}
#endif
#endif
/*@end@*/

/* +infinity without math.h's INFINITY (the templates use it everywhere). */
/*@section inf@*/
static inline float attnc_inf(void) {
    union { uint32_t u; float f; } x;
    x.u = 0x7f800000u;
    return x.f;
}
/*@end@*/

/* A row's band of keys (middle/pass_band.c: band_lo <= kv <= band_hi
 * wherever the masks keep) within one tile, for templates/tile.c and the
 * CUDA templates alike; the emitters paste it only for a schedule with a
 * band (ATTNC_BAND), where the templates call it. */
/*@section band_keys@*/
/* The keys [*lo, *hi) of the range [ja, jz) of a tile whose first key is k0
 * that the band [band_lo, band_hi] reaches (empty: *lo == *hi); no overflow
 * for any band. */
static inline void attnc_band_keys(int64_t band_lo, int64_t band_hi, int64_t k0, int64_t ja, int64_t jz, int64_t *lo,
                                   int64_t *hi) {
    const int64_t a = band_lo <= k0 + ja ? ja : band_lo - k0 < jz ? band_lo - k0 : jz;
    const int64_t z = band_hi < k0 + ja ? ja : band_hi - k0 < jz ? band_hi - k0 + 1 : jz;
    *lo = a;
    *hi = z > a ? z : a;
}
/*@end@*/

/* The helpers: the IR's total semantics (floor division and modulo with
 * x/0 = 0, saturating int(), Python-style float %) and the built-ins libm
 * lacks. */
/*@helper attnc_nan@*/
static inline float attnc_nan(void) {
    union { uint32_t u; float f; } x;
    x.u = 0x7fc00000u;
    return x.f;
}
/*@end@*/
/*@helper attnc_floordiv@*/
/* int / floors like Python; x / 0 = 0; INT64_MIN / -1 wraps */
static inline int64_t attnc_floordiv(int64_t a, int64_t b) {
    if (b == 0) return 0;
    if (b == -1) return (int64_t)(0 - (uint64_t)a);
    int64_t q = a / b;
    if (a % b != 0 && ((a < 0) != (b < 0))) q--;
    return q;
}
/*@end@*/
/*@helper attnc_floormod@*/
/* int % takes the sign of the divisor, like Python; x % 0 = 0 */
static inline int64_t attnc_floormod(int64_t a, int64_t b) {
    if (b == 0 || b == -1) return 0;
    int64_t r = a % b;
    if (r != 0 && ((r < 0) != (b < 0))) r += b;
    return r;
}
/*@end@*/
/*@helper attnc_fmod_floor@*/
/* float % takes the sign of the divisor, like Python */
static inline float attnc_fmod_floor(float a, float b) {
    float r = fmodf(a, b);
    if (r != 0 && ((r < 0) != (b < 0))) r += b;
    return r;
}
/*@end@*/
/*@helper attnc_float_to_int@*/
/* int(x): truncates, saturates at the int64 range, NaN gives 0 */
static inline int64_t attnc_float_to_int(float x) {
    if (x != x) return 0;
    if (x >= 9223372036854775808.0f) return (int64_t)9223372036854775807LL;
    if (x < -9223372036854775808.0f) return (int64_t)(-9223372036854775807LL - 1);
    return (int64_t)x;
}
/*@end@*/
/*@helper attnc_sigmoid@*/
static inline float attnc_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }
/*@end@*/
/*@helper attnc_sign@*/
static inline float attnc_sign(float x) { return x > 0 ? 1.0f : x < 0 ? -1.0f : x; }
/*@end@*/
