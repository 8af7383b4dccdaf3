/* rows_grad.h — the backward of the per-call tables of dot products of rows
 * (middle/rows_table.h, runtime/rows_fill.h): from each table's gradient dT
 * to the gradients of the rows it was filled from and of the tensor E
 * (rows_grad.c). */
#ifndef ATTNC_ROWS_GRAD_H
#define ATTNC_ROWS_GRAD_H
#include "call.h"
#include "rows_table.h"
#include "status.h"

/* For each table t of rw with dtab[t] (float32 [B, heads, rows, n], NULL:
 * skipped), T = X E^T filled from q or k (at bc's layouts, as rows_fill read
 * them):
 *     dX += dT E   into dq or dk (float32, contiguous [B, heads, rows, D]; NULL: not wanted),
 *     dE += dT^T X into dtensor[E's index] (float32, E's shape; NULL: not wanted).
 * dX on `threads` threads, dE in a fixed order (the same bits every run). */
attnc_status rows_backward(const BoundCall *bc, const RowsRewrite *rw, const void *q, const void *k,
                           float *const *dtab, float *dq, float *dk, float *const *dtensor, int threads,
                           attnc_error *err);

#endif
