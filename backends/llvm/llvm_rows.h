/* llvm_rows.h — the rows of a work item in the LLVM kernel: which query row
 * of which head each lane of a row vector holds (kernel ABI 4: with
 * AttnCall.pack = P > 1 the rows of the heads h .. h + P - 1 are packed, row
 * r being query row r / P of head h + r % P), whether it is a row of the
 * item, and where its Q, O and LSE rows are (backends/llvm/llvm_rows.c).
 * Internal to backends/llvm/llvm_*.c. */
#ifndef ATTNC_LLVM_ROWS_H
#define ATTNC_LLVM_ROWS_H
#include "llvm_build.h"

typedef struct RowMap {
    int packed;        /* the schedule allows packed heads: h is a row value (a vector of lanes) */
    LLVMValueRef h0;   /* the work item's (first) head, the scalar h of its item and col blocks */
    LLVMValueRef pack; /* P >= 1 (packed only) */
    LLVMValueRef r0, r1; /* the item's rows [r0, r1): packed rows when packed */
    LLVMValueRef map;  /* packed: scratch [2][QB] i64: each lane's query row, and its head - h0 */
    LLVMValueRef hoff; /* packed, in a row vector: its lanes' head - h0 */
    LLVMValueRef qh, oh, lh; /* packed: head strides (elements) of Q, O and LSE */
    LLVMValueRef q_rows; /* the call's q_rows (i64 pointer, NULL: row r is row r; kernel ABI 8) */
} RowMap;

/* Bytes of scratch rows_bind's map needs (0 unless the schedule packs). */
int64_t rows_map_bytes(const Lower *L);

/* The item's rows for work item (b, h0, qt): its first head, P, [r0, r1). */
void rows_bind(Lower *L, RowMap *rm, LLVMValueRef h0, LLVMValueRef qt, LLVMValueRef bq);

/* `map` (scratch of rows_map_bytes): where the row prologue stores the lanes'
 * query rows and heads (packed only). */
void rows_set_map(RowMap *rm, LLVMValueRef map);

/* In the row prologue, for row vector c of the row block at qb0: the lanes'
 * query rows and heads into the map (the divisions by P happen here only,
 * and not at all when P is 1). */
void rows_compute(Lower *L, RowMap *rm, LLVMValueRef qb0, LLVMValueRef c);

/* Enter row vector c of the row block at qb0: L->lane0, q_vec (query rows),
 * valid (rows of the item) and, packed, the leaf h as a vector of the lanes'
 * heads (rm->hoff their offsets from h0).  rows_leave restores the scalar h. */
void rows_enter(Lower *L, RowMap *rm, LLVMValueRef qb0, LLVMValueRef c);
void rows_leave(Lower *L, RowMap *rm);

/* Element offsets of the lanes' rows in a tensor whose [b, h0] is the base:
 * q * row_stride (+ (h - h0) * the head stride `which` of Q 'q', O 'o' or LSE 'l'),
 * q taken through the call's q_rows when it has one. */
LLVMValueRef rows_offset(Lower *L, const RowMap *rm, LLVMValueRef row_stride, char which);

#endif
