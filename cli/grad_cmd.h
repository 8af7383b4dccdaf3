/* grad_cmd.h — `attnc grad` (grad_cmd.c). */
#ifndef ATTNC_GRAD_CMD_H
#define ATTNC_GRAD_CMD_H
#include "options.h"

/* The forward call on Q, K, V from .npy files, then its backward pass for dO
 * (and dLSE): dQ, dK, dV and the --dtensor gradients written as a group;
 * 0 or an exit status (message printed). */
int cmd_grad(const Options *o);

#endif
