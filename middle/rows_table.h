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
 * own Q.K^T.  refplan and cuda-emu (and the device) keep per-call tables. */
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
    Attention *attn; /* the original's tensors, then one per table (index ntensors_before + t) */
    int ntensors_before;
    RowTable *tables;
    int ntables;
} RowsRewrite;

/* a with every dot replaced by a table read; NULL with *why set when a dot
 * pairs something the tables cannot express (dot(Q, K), two tensor rows), or
 * when out of memory (*why "out of memory"). */
RowsRewrite *rows_rewrite(Arena *arena, const Attention *a, const char **why);

#endif
