/* bind_grad.h — the extra arguments of a backward call (attnc_grad),
 * checked against the forward call bound beside them (bind.h). */
#ifndef ATTNC_BIND_GRAD_H
#define ATTNC_BIND_GRAD_H
#include "attnc.h"
#include "call.h"
#include "status.h"

/* Check g against the bound forward call bc (args: the forward's, whose O and
 * LSE are read) and fill bg (its array malloc'd: bind_grad_release).
 * ATTNC_ERR_USAGE for a bad layout, an unknown, int or repeated tensor
 * gradient, a missing O or LSE, or an output overlapping anything. */
attnc_status bind_grad(const BoundCall *bc, const attnc_args *args, const attnc_grad *g, BoundGrad *bg,
                       attnc_error *err);
void bind_grad_release(BoundGrad *bg);

#endif
