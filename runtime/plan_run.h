/* plan_run.h — the kernel plan executed by a scalar float64 reference, as a
 * compiled kernel of the launch ABI: call->kernel_data is the Plan. */
#ifndef ATTNC_PLAN_RUN_H
#define ATTNC_PLAN_RUN_H
#include "kernel_abi.h"

int refplan_tile(const AttnCall *call, int64_t b, int64_t h, int64_t qt, void *scratch);
int64_t refplan_scratch_bytes(const AttnCall *call);

/* plan_grad.c: the backward plan run the same way (kernel_abi.h's AttnGradCall). */
int refplan_grad_tile(const AttnGradCall *call, int64_t b, int64_t hk, int64_t kt, float *const *dtensor,
                      void *scratch);
int64_t refplan_grad_scratch_bytes(const AttnCall *call);

#endif
