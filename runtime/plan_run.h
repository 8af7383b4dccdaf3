/* plan_run.h — the kernel plan executed by a scalar float64 reference. */
#ifndef ATTNC_PLAN_RUN_H
#define ATTNC_PLAN_RUN_H
#include "bind.h"
#include "plan.h"

/* Run plan p on one bound call; writes O (and LSE) only on success. */
attnc_status plan_run(const Plan *p, const BoundCall *bc, const float *q, const float *k, const float *v, float *o,
                      float *lse, attnc_error *err);

#endif
