/* api_grad.c — attnc_kernel_backward (include/attnc.h): bind and check the
 * forward call and the gradient arguments, then run the backward pass: the
 * backend's own (the interpreter) or its compiled kernel through
 * runtime/launch_grad.c, as the forward runs through launch.c (around it,
 * api_grad_v2.c, for a rotary, a sink or dots of rows).  A call with nothing
 * to differentiate (no query rows, or no keys and no sink: every row empty)
 * writes zeros here. */
#include <string.h>

#include "api_kernel.h"
#include "attnc.h"
#include "bind.h"
#include "bind_grad.h"
#include "launch_grad.h"
#include "plan.h"

/* Zero every element of a [dims] tensor at its layout. */
static void zero_tensor(void *base, const BoundLayout *l, const int64_t dims[4]) {
    if (!base) return;
    size_t size = l->elem == ATTNC_ELEM_F32 ? 4 : 2;
    for (int64_t i0 = 0; i0 < dims[0]; i0++)
        for (int64_t i1 = 0; i1 < dims[1]; i1++)
            for (int64_t i2 = 0; i2 < dims[2]; i2++)
                memset((char *)base + (size_t)(i0 * l->stride[0] + i1 * l->stride[1] + i2 * l->stride[2]) * size, 0,
                       (size_t)dims[3] * size);
}

/* The gradients of a call without a kept element: all zero. */
static void write_zeros(const BoundCall *bc, const BoundGrad *bg) {
    static const BindTensor like[3] = {BT_Q, BT_K, BT_V};
    void *out[3] = {bg->dq, bg->dk, bg->dv};
    for (int t = 0; t < 3; t++) {
        int64_t dims[4];
        bind_tensor_dims(&bc->sz, like[t], dims);
        zero_tensor(out[t], &bg->layout[GT_DQ + t], dims);
    }
    for (int i = 0; i < bc->attn->ntensors; i++) {
        if (!bg->dtensor[i]) continue;
        const attnc_tensor *t = bc->tensors[i];
        int64_t count = 1;
        for (int r = 0; r < t->rank; r++) count *= t->shape[r];
        memset(bg->dtensor[i], 0, (size_t)count * sizeof(float));
    }
}

/* Whether every layout of the call and of its gradients is float32, contiguous. */
static int plain(const BoundCall *bc, const BoundGrad *bg) {
    static const BindTensor like[GT_COUNT] = {BT_O, BT_LSE, BT_Q, BT_K, BT_V};
    if (!api_plain_layouts(bc)) return 0;
    for (int t = 0; t < GT_COUNT; t++) {
        const BoundLayout *l = &bg->layout[t];
        int64_t dims[4];
        bind_tensor_dims(&bc->sz, like[t], dims);
        if (l->elem != ATTNC_ELEM_F32 || l->stride[2] != dims[3] || l->stride[1] != dims[2] * dims[3] ||
            l->stride[0] != dims[1] * dims[2] * dims[3])
            return 0;
    }
    return 1;
}

/* The interpreter's own backward (with or without a plan), or a compiled kernel's. */
int attnc_kernel_has_backward(const attnc_kernel *k) {
    return k && (k->impl->backward != NULL || (k->plan && k->ck.grad_tile != NULL));
}

/* A compiled kernel whose attention has a rotary, a sink or dots of rows: its backward runs around the kernel's. */
static int around(const attnc_kernel *k) {
    return k->impl->backward == NULL && (k->rows || k->attn->rotary || k->attn->sink);
}

attnc_status attnc_kernel_backward(const attnc_kernel *k, const attnc_args *args, const attnc_layouts *layouts,
                                   const attnc_grad *grad, attnc_error *err) {
    if (!k) return set_error(err, ATTNC_ERR_USAGE, "kernel is NULL");
    if (!attnc_kernel_has_backward(k))
        return set_error(err, ATTNC_ERR_USAGE, "backend '%s' has no backward pass yet (interp has)",
                         attnc_backend_name(k->backend));
    BoundCall bc;
    /* runs = 0: O and LSE are read here, so they may overlap Q, K, V */
    attnc_status st = bind_call_layout(k->attn, &k->fixed, args, layouts, 0, &bc, err);
    if (st) return st;
    BoundGrad bg;
    st = bind_grad(&bc, args, grad, &bg, err);
    if (st) {
        bind_release(&bc);
        return st;
    }
    if (!k->impl->layouts && !plain(&bc, &bg))
        st = set_error(err, ATTNC_ERR_USAGE, "backend '%s' takes only float32, contiguous tensors",
                       attnc_backend_name(k->backend));
    if (!st && k->plan && !around(k)) st = tile_check_work(k->plan, &bc, err); /* around: on the kernel's call */
    const attnc_sizes *sz = &bc.sz;
    if (st) {
        /* reported */
    } else if (sz->B * sz->H * sz->Lq == 0 || (sz->Lk == 0 && !k->attn->sink)) {
        write_zeros(&bc, &bg); /* with a sink and no keys, LSE = the sink: its gradient is dLSE (below) */
    } else {
        float dummy[1] = {0};
        attnc_args a = api_with_empty_arrays(args, dummy);
        if (around(k)) st = api_backward_v2(k, &bc, &a, &bg, k->threads, err);
        else if (k->impl->backward) st = k->impl->backward(k->plan, &k->ck, &bc, &a, &bg, k->threads, err);
        else st = launch_grad_run(k->plan, &k->ck, &bc, &a, &bg, k->threads, err);
    }
    bind_grad_release(&bg);
    bind_release(&bc);
    if (!st && err) {
        err->status = ATTNC_OK;
        err->message[0] = 0;
    }
    return st;
}
