/* call.h — the middle end's description of one call of a kernel: the sizes,
 * param values, captured tensors and scale, checked against the attention.
 * runtime/bind.c fills it (bind_call); the tile analysis, the launcher and
 * the interpreter read it. */
#ifndef ATTNC_CALL_H
#define ATTNC_CALL_H
#include "attnc.h"
#include "sema.h"

/* Params fixed when the kernel was compiled (-D), by param index. */
typedef struct FixedParams {
    int *is_fixed;
    Const *value;
} FixedParams;

typedef struct BoundCall {
    const Attention *attn;
    attnc_sizes sz;
    Const *params;                /* by param index */
    const attnc_tensor **tensors; /* by tensor index */
    double scale;
} BoundCall;

#endif
