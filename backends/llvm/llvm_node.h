/* llvm_node.h — IR nodes as LLVM values (backends/llvm/llvm_node.c).
 * Internal to backends/llvm/llvm_*.c. */
#ifndef ATTNC_LLVM_NODE_H
#define ATTNC_LLVM_NODE_H
#include "llvm_build.h"

/* The value of node r at the builder's position: a scalar, or a vector of W
 * lanes along q when it varies with q; memoised while its scope is open. */
LLVMValueRef lower_node(Lower *L, IrRef r);

/* Bind sum level `level` to i inside the loop just opened (a scope is
 * pushed); returns what lower_close_sum restores. */
LLVMValueRef lower_open_sum(Lower *L, int level, LLVMValueRef i);

/* Unbind sum level `level` (back to `saved`) and pop the scope. */
void lower_close_sum(Lower *L, int level, LLVMValueRef saved);

/* Emit, here, every node below r that reads no sum variable but those of the
 * loops open here; gen: a fresh ++L->visit_gen. */
void lower_hoist_invariant(Lower *L, IrRef r, unsigned gen);

/* Emit, here, every node below r placed at `place` or coarser that reads no
 * sum variable; gen: a fresh ++L->visit_gen. */
void lower_hoist_place(Lower *L, IrRef r, Place place, unsigned gen);

/* Add to L->frontier the ROW nodes below r that the element loop reads
 * (mark: one byte per node, zeroed once for all roots). */
void lower_find_frontier(Lower *L, IrRef r, char *mark);

/* Add r itself to L->frontier when it is a ROW value worth a slot. */
void lower_add_frontier(Lower *L, IrRef r, char *mark);

#endif
