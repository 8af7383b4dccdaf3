/* measure_grad.h — the backward pass of a made-up call, for `diff --grad`
 * and `bench --grad` (measure_grad.c). */
#ifndef ATTNC_MEASURE_GRAD_H
#define ATTNC_MEASURE_GRAD_H
#include "made_call.h"

/* The buffers of a backward call beside a made-up forward call: O (float32),
 * random dO and dLSE, dQ, dK, dV and every float tensor's gradient. */
typedef struct GradBufs {
    float *o, *dout, *dlse, *d[3];
    size_t nqkv[3];                     /* elements of dQ, dK, dV */
    attnc_tensor_grad dt[MAX_REPEATED]; /* one per float tensor of the call */
    size_t n[MAX_REPEATED];
    int ndt;
    attnc_args args;   /* the call's, O replaced by the float32 one */
    attnc_layouts lay; /* the call's, O float32 */
    attnc_grad g;
} GradBufs;

/* 0 or an exit status (message printed); free with grad_bufs_free either way. */
int grad_bufs_make(const Options *o, const Call *call, GradBufs *gb);
void grad_bufs_free(GradBufs *gb);
/* The forward call into gb's O and LSE, and the backward pass from them. */
attnc_status grad_forward(const attnc_kernel *k, GradBufs *gb, attnc_error *err);
attnc_status grad_backward(const attnc_kernel *k, GradBufs *gb, attnc_error *err);

/* diff --grad over backends list[0..n): each one's forward and backward
 * against the interpreter's; 0, EXIT_DIFF or another exit status. */
int diff_grad(const Options *o, const attnc_sizes *sz, const attnc_backend *list, int n);

#endif
