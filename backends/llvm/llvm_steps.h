/* llvm_steps.h — the schedule's steps built as LLVM IR
 * (backends/llvm/llvm_steps.c).  Internal to backends/llvm/llvm_*.c. */
#ifndef ATTNC_LLVM_STEPS_H
#define ATTNC_LLVM_STEPS_H
#include "llvm_build.h"

/* The steps of block `id` of the schedule (L->s->block[id]) at the builder's
 * position; their values stay in the memo of the scope open here. */
void lower_steps(Lower *L, SchedBlockId id);

/* The same for a block outside L->s->block (the backward schedule's tensor
 * terms, middle/schedule_grad.h), built as block `id` would be. */
void lower_block(Lower *L, SchedBlockId id, const SchedBlock *blk);

/* Into the memo of the scope open here: every row slot's value for the row
 * vector at L->lane0 (vectors), every col slot's for the kv at L->col_j
 * (scalars): what the element blocks read from slots (sched_home). */
void lower_load_row_slots(Lower *L);
void lower_load_col_slots(Lower *L);

/* The schedule's diag block over a tile's distances (after its col loop,
 * before its elements): entries e of [0, QB + BK) in vectors of W, entry e
 * at d = kv - q = k0 - (qb0 + QB - 1) + e, every distance the row block's
 * lanes (valid or not) meet on the tile starting at key k0; q and kv bound
 * to a pair with that difference (kv = k0, q a vector), which is all the
 * bodies read of them (pass_toeplitz.c).  Grid tables (Schedule.diag_grid):
 * entries c * diag_grid_stride(L) + i, q the q tile's row r0 + i (a vector)
 * and kv its corner key k0 + sched_grid_corner(c).  Nothing without IR_DIAG
 * nodes. */
void lower_diag_fill(Lower *L, LLVMValueRef k0, LLVMValueRef qb0, LLVMValueRef r0);

#endif
