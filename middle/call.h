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

/* The tensors of the call that have a layout, in attnc_args order. */
typedef enum BindTensor { BT_Q, BT_K, BT_V, BT_O, BT_LSE, BT_COUNT } BindTensor;

/* A checked layout: element type and strides resolved (contiguous ones
 * filled in), all non-negative, rows contiguous, every element inside the
 * caller's extent, outputs without self-overlap. */
typedef struct BoundLayout {
    attnc_elem elem;
    int64_t stride[4];
} BoundLayout;

typedef struct BoundCall {
    const Attention *attn;
    attnc_sizes sz;
    BoundLayout layout[BT_COUNT];
    Const *params;                /* by param index */
    const attnc_tensor **tensors; /* by tensor index */
    double scale;
    /* rotary (version 2), when attn->rotary: its call-level arguments,
     * checked (rope_dims even, 0 <= rope_dims <= D) */
    double rope_base;
    int64_t rope_dims;
    int rope_interleaved;
} BoundCall;

/* The extra tensors of a backward call (attnc_grad), in its order. */
typedef enum GradTensor { GT_DOUT, GT_DLSE, GT_DQ, GT_DK, GT_DV, GT_COUNT } GradTensor;

/* A checked backward call, beside the forward's BoundCall (whose O and LSE
 * are the forward's outputs, read).  Layouts are resolved as in BoundCall;
 * dout and dlse NULL mean zero; dq, dk, dv NULL are not wanted. */
typedef struct BoundGrad {
    BoundLayout layout[GT_COUNT];
    const void *dout;
    const float *dlse;
    void *dq, *dk, *dv;
    float **dtensor; /* by tensor index: float32, contiguous, the bound shape; NULL: not wanted */
} BoundGrad;

#endif
