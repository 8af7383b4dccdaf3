/* interp_grad.h — the reference backward pass (BackendImpl.backward of the
 * interpreter): gradients of sum(O * dO) + sum(LSE * dLSE) in float64, a
 * query row at a time, by reverse mode on the checked expression trees.
 * Independent of the middle end's derivative IR, which it checks. */
#ifndef ATTNC_INTERP_GRAD_H
#define ATTNC_INTERP_GRAD_H
#include "backend.h"

/* The gradients bg asks for (dQ, dK, dV rounded once to their layouts'
 * element types, tensor gradients to float32), written only on success.
 * args' O and LSE are not read: the row's O and LSE are recomputed in
 * float64.  A runtime error of the forward is reported as the forward
 * reports it (ATTNC_ERR_RUNTIME, same message). */
attnc_status interp_backward(const Plan *p, const CompiledKernel *ck, const BoundCall *bc, const attnc_args *args,
                             const BoundGrad *bg, int threads, attnc_error *err);

/* The sink's share of the tensor gradients bg asks for (spec 9.4, 9.5),
 * added to them, given the forward's merged O and LSE (args, at bc's
 * layouts): per row dL/dsink = exp(sink - LSE) (dLSE - sum(dO * O)), through
 * the sink's expression by the same tape.  The compiled backends' backward
 * (api/api_grad_v2.c) runs the kernel's backward for the rest. */
attnc_status interp_sink_backward(const BoundCall *bc, const attnc_args *args, const BoundGrad *bg, attnc_error *err);

#endif
