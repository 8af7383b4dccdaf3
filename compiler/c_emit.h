/* c_emit.h — a kernel plan as one self-contained C99 translation unit
 * (compiler/c_emit.c): what the libtcc backend compiles in memory, and what
 * `attnc emit --target c` writes for a C compiler ahead of time. */
#ifndef ATTNC_C_EMIT_H
#define ATTNC_C_EMIT_H
#include "attnc.h"
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

/* The external functions the generated code calls under ATTNC_JIT, which
 * the JIT binds by name: libm and the C library's block moves (which a
 * compiler may call for struct copies), X(name) for each ... */
#define CEMIT_EXTERNAL_FUNCTIONS(X)                                                                          \
    X(expf) X(exp2f) X(logf) X(log2f) X(sqrtf) X(tanhf) X(erff) X(powf) X(floorf) X(ceilf) X(fmodf) X(fabsf) \
    X(memset) X(memcpy) X(memmove)
/* ... and the dense loops of templates/dense.c (runtime/jit_dense.c). */
#define CEMIT_DENSE_FUNCTIONS(X) \
    X(attnc_dense_transpose) X(attnc_dense_qk) X(attnc_dense_softmax) X(attnc_dense_weights) X(attnc_dense_pv)

/* Append the C for p to out: the header of the entry point
 * `int NAME_attention(const NAME_args *)` (NAME: the attention's name), the
 * kernel ABI functions and the entry point itself.  Returns ATTNC_OK, or
 * ATTNC_ERR_INTERNAL (the plan holds something the emitter cannot express)
 * or ATTNC_ERR_NOMEM with err filled. */
attnc_status cemit_source(const Plan *p, StrBuf *out, attnc_error *err);

/* The per-attention code of the kernel, the holes of templates/tile.c, for
 * emitters of other kernel templates (compiler/cuda_emit.c).  Each hole's
 * code reads the names templates/tile.c documents (c, b, h, hk, q, kv, i, j,
 * srow, lrow, check_faults, lowrank_cols, sc.row_slots, sc.col_slots,
 * sc.qlr, sc.klr, sc.lse_off) and declares elem_* results as tile.c says. */
typedef struct CEmitHoles {
    StrBuf scratch, head, slots, row, col, elem_partial, elem_full;
    StrBuf helpers; /* the helper functions the holes call, each defined `static inline` */
    int nrow_slots, ncol_slots;
} CEmitHoles;

/* The holes of templates/tile.c and templates/cuda_tile.cu, in this order:
 * SCRATCH, HEAD, SLOTS, ROW, COL, ELEM_PARTIAL, ELEM_FULL. */
enum { CEMIT_NHOLES = 7 };

/* Append template text with each line that is exactly a hole replaced by
 * its code (indented like the hole) and, when name is not NULL, @NAME@
 * replaced by name elsewhere; 0 when a hole is missing. */
int cemit_fill_template(const char *tmpl, size_t tmpl_len, const StrBuf *const code[CEMIT_NHOLES], const char *name,
                        StrBuf *out);

/* Append len bytes of s with every `from` replaced by `to`. */
void cemit_put_replaced(StrBuf *out, const char *s, size_t len, const char *from, const char *to);

/* Fill h (overwritten) with the hole code of p; returns like cemit_source.
 * Free with cemit_holes_free, whatever the result. */
attnc_status cemit_holes(const Plan *p, CEmitHoles *h, attnc_error *err);

/* Free what cemit_holes filled in. */
void cemit_holes_free(CEmitHoles *h);

#endif
