/* api_internal.h — what tests and tools inside the project may see of a
 * kernel beyond the public header: its plan and compile-time params. */
#ifndef ATTNC_API_INTERNAL_H
#define ATTNC_API_INTERNAL_H
#include "attnc.h"
#include "call.h"
#include "plan.h"

const Plan *attnc_kernel_plan(const attnc_kernel *k);
const FixedParams *attnc_kernel_fixed(const attnc_kernel *k);

#endif
