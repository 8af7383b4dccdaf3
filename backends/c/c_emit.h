/* c_emit.h — a kernel plan as one self-contained C99 translation unit
 * (backends/c/c_emit.c): what the libtcc backend compiles in memory, and what
 * `attnc emit --target c` writes for a C compiler ahead of time; and the
 * file assembly backends/cuda/cuda_emit.c shares with it. */
#ifndef ATTNC_C_EMIT_H
#define ATTNC_C_EMIT_H
#include "attnc.h"
#include "c_holes.h"
#include "plan.h"

/* The generated text holds the ahead-of-time header between these two lines
 * (`attnc emit --target c -o X.c` also writes them to X.h). */
#define CEMIT_HEADER_BEGIN "/* ---- attnc:header-begin ---- */"
#define CEMIT_HEADER_END "/* ---- attnc:header-end ---- */"

/* Defined (to 1) when compiling for the JIT: the text then needs no header
 * at all and exports the kernel ABI functions under these names. */
#define CEMIT_JIT_MACRO "ATTNC_JIT"
#define CEMIT_TILE_SYMBOL "attnc_tile"
#define CEMIT_SCRATCH_SYMBOL "attnc_scratch_bytes"
/* ... and, when the plan has a backward schedule, the backward kernel's
 * (kernel_abi.h: AttnGradTileFn; templates/tile_bwd.c) */
#define CEMIT_GRAD_TILE_SYMBOL "attnc_grad_tile"
#define CEMIT_GRAD_SCRATCH_SYMBOL "attnc_grad_scratch_bytes"

/* The external functions the generated code calls under ATTNC_JIT, which
 * the JIT binds by name: libm and the C library's block moves (which a
 * compiler may call for struct copies), X(name) for each ... */
#define CEMIT_EXTERNAL_FUNCTIONS(X)                                                                          \
    X(expf) X(exp2f) X(logf) X(log2f) X(sqrtf) X(tanhf) X(erff) X(powf) X(floorf) X(ceilf) X(fmodf) X(fabsf) \
    X(sinf) X(cosf) \
    X(memset) X(memcpy) X(memmove)
/* ... and the dense loops of templates/dense.c (backends/c/jit_dense.c). */
#define CEMIT_DENSE_FUNCTIONS(X)                                                                               \
    X(attnc_dense_transpose) X(attnc_dense_qk) X(attnc_dense_softmax) X(attnc_dense_weights) X(attnc_dense_pv) \
    X(attnc_dense_widen) X(attnc_dense_narrow) X(attnc_dense_qk_rows)

/* Append the C for p to out: the header of the entry point
 * `int NAME_attention(const NAME_args *)` (NAME: the attention's name), the
 * kernel ABI functions and the entry point itself.  Returns ATTNC_OK, or
 * ATTNC_ERR_INTERNAL (the plan holds something the emitter cannot express)
 * or ATTNC_ERR_NOMEM with err filled. */
attnc_status cemit_source(const Plan *p, StrBuf *out, attnc_error *err);

/* Append template text (templates/tile.c, templates/cuda_tile.cu) with each
 * line that is exactly a hole (SCRATCH, HEAD, SLOTS, ROW, COL, ELEM_PARTIAL,
 * ELEM_FULL, DIAG) replaced by h's code for it, indented like the hole, and, when
 * name is not NULL, @NAME@ replaced by name elsewhere; 0 when a hole is
 * missing. */
int cemit_fill_template(const char *tmpl, size_t tmpl_len, const CEmitHoles *h, const char *name, StrBuf *out);

/* Append section `name` of templates/support.h, with each `static inline`
 * replaced by qualifier when qualifier is not NULL; 0 when it has none. */
int cemit_put_support(const char *name, const char *qualifier, StrBuf *out);

/* Append the helpers of templates/support.h that h's code calls, in the
 * file's order, `static inline` replaced by qualifier when not NULL. */
void cemit_put_helpers(const CEmitHoles *h, const char *qualifier, StrBuf *out);
/* ... and those version 2's functions (cemit_v2_functions' text v2) call */
void cemit_put_helpers_v2(const CEmitHoles *h, const StrBuf *v2, const char *qualifier, StrBuf *out);

/* Append middle/kernel_abi.h (AttnCall) without its #include <stdint.h>:
 * the generated text gives the types itself. */
void cemit_put_kernel_abi(StrBuf *out);

/* Append base/half.h's conversions (float32 <-> f16 / bf16) without its
 * preprocessor lines (include guard, #include <stdint.h>), with each
 * `static inline` replaced by qualifier when not NULL. */
void cemit_put_half(const char *qualifier, StrBuf *out);

/* ---- shared by c_emit.c and c_emit_v2.c ---- */

/* The entry point's first part: NAME_args `a` checked (return 2) and the
 * AttnCall `c` of the call, without a tile map (tensor_data, tensor_shape:
 * the user's tensors; a version-2 plan's tables after them are zero). */
void cemit_call_setup(const Plan *p, const char *used, StrBuf *out);

/* Whether p's attention has a rotary, a sink or tables of dot products of
 * rows (Plan.rows): its entry point is c_emit_v2.c's. */
int cemit_plan_is_v2(const Plan *p);

/* The tensors a caller gives (the plan's first ones; the rest are tables). */
int cemit_user_tensors(const Plan *p);

/* NAME_attention of a version-2 attention, after cemit_v2_functions' text
 * (c_holes.h) and the libm, stdlib and string declarations. */
void cemit_v2_entry(const Plan *p, const char *used, StrBuf *out);

/* Both entries' preparation of a version-2 call (after `int status`): Q
 * and K rows as float32 (qf, kf) rotated by a rotary, the tables filled
 * into tensor_data and tensor_shape, c reading them; returns 1 on a bad
 * rotary; cemit_v2_backward_free frees what it allocates. */
void cemit_v2_prepare(const Plan *p, StrBuf *out);
/* `int64_t n` = the rows of table tensor E (the product of its leading extents), printed in an entry. */
void cemit_v2_table_count(const Decl *E, StrBuf *out);

/* c_emit_v2_grad.c: the parts of NAME_backward of a version-2 attention
 * (c_emit.c prints the rest, as for version 1, and cemit_v2_prepare before
 * the kernel's backward): its helpers (before the function), after the
 * kernel's backward the tables', the sink's and the rotation's terms into
 * dq, dk and dtensor, and the frees. */
void cemit_v2_backward_helpers(const Plan *p, StrBuf *out);
void cemit_v2_backward_after(const Plan *p, StrBuf *out);
void cemit_v2_backward_free(const Plan *p, StrBuf *out);

#endif
