/* rows_table.h — dot products of rows (spec 9.2) turned into tables the
 * compiled kernels read like any captured tensor (rows_table.c).
 *
 * dot(Q, E[i, ...]) is a function of (b, h, q) and E's leading indices
 * only, so the library computes, once per call,
 *     T[b, h, q, i, ...] = dot(Q[b, h, q, :], E[i, ..., :])
 * (a small matrix product: Lq x rows-of-E x D per head) and the kernel reads
 * T[b, h, q, i, ...] where the spec reads dot(Q, E[i, ...]); likewise
 * dot(K, E[...]) over (b, hk, kv).  Index errors stay where they were: T's
 * leading extents are E's, checked by the kernel's bounds check exactly
 * when E[i, ...] would be out of range.
 *
 * When the library computes T: the tables of K rows (DeBERTa's dot(K, ...))
 * once per call (runtime/rows_fill.c), on every backend.  The tables of Q
 * rows on the llvm and tcc launches per work item instead
 * (runtime/rows_items.c): an item reads its own q rows only, and of them
 * the columns its kv tiles can reach (middle/tile_table.c: Shaw's band,
 * Music Transformer's [0, q1)), so each item computes just those before it
 * runs, in a buffer of its thread — memory O(threads x tile rows x n)
 * instead of O(B H Lq n), and for causal Music as much work as the item's
 * own Q.K^T.  refplan and cuda-emu (and the device) keep per-call tables.
 *
 * Every other dot — dot(Q, K), dot(A[i], B[j]), dot(Q, Q), ... — has no
 * table: it becomes the IR's sum  sum(r < n) X[.., r] * Y[.., r]  with Q's
 * and K's rows read as float32 tensors rows(Q) [B, H, Lq, D] and rows(K)
 * [B, Hkv, Lk, D] the library binds per call (after rotary: the rows the
 * spec's dot reads).  A bias term whose X is per query row and Y per key
 * (dot(Q, K), dot(A[q], B[kv])) then rides inside the QK product as D (or
 * n) extra columns (pass_lowrank.c, FlashBias); anything else is a sum per
 * element.  Index errors stay lazy: the sum reads X's indices exactly where
 * the dot would (but for rows of length 0, whose sum reads nothing). */
#ifndef ATTNC_ROWS_TABLE_H
#define ATTNC_ROWS_TABLE_H
#include "sema.h"

/* One table: the rows of `tensor` against Q's rows (is_k 0: [B, H, Lq,
 * leading dims of tensor]) or K's (is_k 1: [B, Hkv, Lk, ...]). */
typedef struct RowTable {
    int is_k;
    const Decl *tensor; /* E, canonical */
    Decl *decl;         /* the table as a tensor of the rewritten attention */
} RowTable;

typedef struct RowsRewrite {
    Attention *attn; /* the original's tensors, then one per table (index ntensors_before + t), then the rows */
    int ntensors_before;
    RowTable *tables;
    int ntables;
    int row_tensor[2]; /* the index in attn of rows(Q) [0] and rows(K) [1], or -1 when no sum reads them */
} RowsRewrite;

/* a with every dot replaced by a table read or a sum; NULL when out of memory
 * (*why "out of memory"). */
RowsRewrite *rows_rewrite(Arena *arena, const Attention *a, const char **why);

/* The tensors the library adds to a call of rw->attn: the tables, then the rows. */
static inline int rows_extra(const RowsRewrite *rw) { return rw->attn->ntensors - rw->ntensors_before; }

/* Which of Q's and K's rows are made float32 (rotated) before the kernel: all
 * with a rotary, those a table pairs, those read as rows(Q) / rows(K).  rw
 * may be NULL (no dots).  One rule for the library, ahead-of-time C and the
 * CUDA text. */
void rows_needed(const RowsRewrite *rw, int rotary, int *need_q, int *need_k);

/* Whether the library reads K before the kernel (a table of K rows, or K's rows as a tensor). */
int rows_read_k(const RowsRewrite *rw);

#endif
