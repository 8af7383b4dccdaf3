/* api_cuda.c — the public functions of the cuda backend (include/attnc.h,
 * version 0.4): a call on device pointers and a stream, and the device
 * memory of callers that do not link CUDA themselves.  Everything goes
 * through the backend's DeviceOps (backends/backend.h) and
 * runtime/launch_device.c, as attnc_kernel_run's host-pointer calls do. */
#include "attnc.h"
#include "api_kernel.h"
#include "bind.h"
#include "launch_device.h"
#include "registry.h"
#include "status.h"

/* The cuda backend's device ops, or the one line why this machine has none. */
static attnc_status cuda_ops(const DeviceOps **ops, attnc_error *err) {
    const BackendImpl *impl = backend_find(ATTNC_BACKEND_CUDA);
    *ops = NULL;
    if (!impl || !impl->device) return set_error(err, ATTNC_ERR_USAGE, "backend 'cuda' is not available in this build");
    attnc_status st = impl->probe(err);
    if (!st) *ops = impl->device;
    return st;
}

attnc_status attnc_kernel_run_cuda(const attnc_kernel *k, const attnc_args *args, const attnc_layouts *layouts,
                                   void *stream, attnc_error *err) {
    if (!k || !args) return set_error(err, ATTNC_ERR_USAGE, "kernel or args is NULL");
    if (!k->impl->device)
        return set_error(err, ATTNC_ERR_USAGE, "attnc_kernel_run_cuda: the kernel is for backend '%s', not 'cuda'",
                         attnc_backend_name(k->backend));
    BoundCall bc;
    attnc_status st = bind_call_layout(k->attn, &k->fixed, args, layouts, 1, &bc, err);
    if (st) return st;
    /* version 2: the CUDA text's kernels around the attention kernel, on the device (api_cuda_v2.c), which
     * checks the work on the kernel's own call (with the tables the plan reads) */
    int v2 = k->rows || k->attn->rotary || k->attn->sink;
    if (!v2) st = tile_check_work(k->plan, &bc, err);
    float dummy[1] = {0};
    attnc_args a = api_with_empty_arrays(args, dummy);
    const attnc_sizes *sz = &bc.sz;
    if (!st && sz->B * sz->H * sz->Lq > 0)
        st = v2 ? api_run_v2_kernels(k, &bc, &a, 0, NULL, k->impl->device, stream, err)
                : launch_device_run(k->plan, k->impl->device, &k->ck, &bc, &a, stream, 1, err);
    bind_release(&bc);
    if (!st && err) {
        err->status = ATTNC_OK;
        err->message[0] = 0;
    }
    return st;
}

attnc_status attnc_cuda_alloc(size_t n, void **out, attnc_error *err) {
    if (!out) return set_error(err, ATTNC_ERR_USAGE, "out is NULL");
    *out = NULL;
    const DeviceOps *ops;
    attnc_status st = cuda_ops(&ops, err);
    return st ? st : ops->alloc(n, out, err);
}

void attnc_cuda_free(void *p) {
    const DeviceOps *ops;
    if (p && !cuda_ops(&ops, NULL)) ops->free(p);
}

attnc_status attnc_cuda_copy(void *dst, const void *src, size_t n, int to_device, attnc_error *err) {
    if ((!dst || !src) && n) return set_error(err, ATTNC_ERR_USAGE, "attnc_cuda_copy: NULL pointer");
    const DeviceOps *ops;
    attnc_status st = cuda_ops(&ops, err);
    return st ? st : ops->copy(dst, src, n, to_device, NULL, err);
}
