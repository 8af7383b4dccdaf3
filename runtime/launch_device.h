/* launch_device.h — running a compiled kernel of a device backend (the
 * `cuda` backend: BackendImpl.device) over one bound call. */
#ifndef ATTNC_LAUNCH_DEVICE_H
#define ATTNC_LAUNCH_DEVICE_H
#include "backend.h"
#include "call.h"
#include "plan.h"

/* Run ck over the call on the device of `ops`.  device = 0: args' Q, K, V,
 * O and LSE are host memory, copied in and out (O and LSE written only on
 * success); device = 1: they are device memory, used in place (O and LSE
 * unspecified after a fault).  Params and tensors are host memory either
 * way (the tile map reads the tensors; they are copied per call).  A fault
 * is named by the interpreter as launch_run does (device = 1: on Q, K and V
 * copied back).  `stream`: the device's stream, NULL the default. */
attnc_status launch_device_run(const Plan *p, const DeviceOps *ops, const CompiledKernel *ck, const BoundCall *bc,
                               const attnc_args *args, void *stream, int device, attnc_error *err);

/* launch_device_run with tensors already in device memory: on_device[i]
 * (NULL where tensor i is host memory, copied as above; on_device NULL:
 * none) is what the kernel reads as tensor i (bc's host copy still serves
 * the tile map).  version 2's tables of dot products (api/api_cuda_v2.c). */
attnc_status launch_device_run_with(const Plan *p, const DeviceOps *ops, const CompiledKernel *ck, const BoundCall *bc,
                                    const attnc_args *args, void *stream, int device, const void *const *on_device,
                                    attnc_error *err);

/* The interpreter on the call (device: Q, K and V copied back from the
 * device first); with `outputs` it writes O and LSE (device: through host
 * copies of their spans, copied back), else only names a runtime error. */
attnc_status launch_device_interp(const DeviceOps *ops, const BoundCall *bc, const attnc_args *args, int device,
                                  int outputs, void *stream, attnc_error *err);

#endif
