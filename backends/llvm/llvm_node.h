/* llvm_node.h — IR nodes as LLVM values (backends/llvm/llvm_node.c).
 * Internal to backends/llvm/llvm_*.c. */
#ifndef ATTNC_LLVM_NODE_H
#define ATTNC_LLVM_NODE_H
#include "llvm_build.h"

/* The leaves the AttnCall gives (L->call): the sizes into L->var, the
 * params, the captured tensors' data and shapes. */
void lower_bind_inputs(Lower *L);

/* The value of node r at the builder's position, available there: a leaf or
 * a memoised step's value (a scalar, or a vector of W lanes along q when it
 * varies with q).  Anything else fails L ("the schedule did not provide"). */
LLVMValueRef lower_node(Lower *L, IrRef r);

/* STEP_VALUE: compute node r (not a sum) from its available operands, and
 * memoise it in the innermost open scope. */
LLVMValueRef lower_value(Lower *L, IrRef r);

#endif
