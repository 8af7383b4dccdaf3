/* rows_fill.h — computing the per-call tables that stand for dot products of
 * rows in compiled kernels (middle/rows_table.h; rows_fill.c). */
#ifndef ATTNC_ROWS_FILL_H
#define ATTNC_ROWS_FILL_H
#include "call.h"
#include "rows_table.h"
#include "status.h"

/* The tables of rw for bound call bc (bound to the original attention),
 * reading Q and K (at bc's layouts) and the tensors, then Q's and K's rows
 * where rw reads them as tensors; tables[0 .. rows_extra(rw)) filled as
 * attnc_tensors with malloc'd data (free with rows_free).  q NULL:
 * the right shapes, zero-filled (for a tile map: masks never read a dot).
 * q_later: the tables of Q rows get their shapes only, data NULL (made per
 * work item: rows_items.h). */
attnc_status rows_fill(const BoundCall *bc, const RowsRewrite *rw, const void *q, const void *k, int threads,
                       int q_later, attnc_tensor *tables, attnc_error *err);

void rows_free(attnc_tensor *tables, int n);

#endif
