/* bind.h — what one call of a kernel binds: sizes, param values, captured
 * tensors and the scale, all checked against the attention before any
 * backend touches memory.  Shared by every backend. */
#ifndef ATTNC_BIND_H
#define ATTNC_BIND_H
#include "attnc.h"
#include "call.h"
#include "status.h"

/* Check args against the attention and fill `bc` (its arrays malloc'd; free
 * with bind_release).  Returns ATTNC_OK or an error with `err` filled. */
attnc_status bind_call(const Attention *a, const FixedParams *fixed, const attnc_args *args, BoundCall *bc,
                       attnc_error *err);
/* The same with the layouts of Q, K, V, O and LSE (NULL: contiguous float32),
 * checked (ATTNC_ERR_USAGE) and resolved into bc->layout; `runs`: the call
 * will run, so O and LSE must not overlap Q, K, V or each other. */
attnc_status bind_call_layout(const Attention *a, const FixedParams *fixed, const attnc_args *args,
                              const attnc_layouts *layouts, int runs, BoundCall *bc, attnc_error *err);
/* Only the sizes and the layouts of args (what bind_call_layout checks of
 * them), not params or tensors: the buffers of a batch, bound as one call. */
attnc_status bind_check_layouts(const attnc_args *args, const attnc_layouts *layouts, int runs, attnc_error *err);
void bind_release(BoundCall *bc);

/* The dims of tensor t of a call ([B, H, L, D]; LSE [B, H, Lq] with a last dim of 1). */
void bind_tensor_dims(const attnc_sizes *s, BindTensor t, int64_t dims[4]);
/* Check one layout of a tensor named N with these dims (lse_like: float32,
 * 3 strides; output: no two elements may share memory) and resolve it into
 * *out; the bytes it spans are [*first, *end). */
attnc_status bind_one_layout(const char *N, const int64_t dims[4], int lse_like, int output, const attnc_layout *l,
                             const void *ptr, BoundLayout *out, uintptr_t *first, uintptr_t *end, attnc_error *err);

/* The shape tensor declaration d needs for the sizes and params bound in bc
 * (tensors need not be bound); an error for a negative or too large one. */
attnc_status bind_tensor_shape(const BoundCall *bc, const Decl *d, int64_t *shape, attnc_error *err);

/* Parse a param value written as text ("8", "-0.5", "true") for a param of type t. */
attnc_status bind_parse_value(Type t, const char *name, const char *text, Const *out, attnc_error *err);

#endif
