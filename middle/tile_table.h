/* tile_table.h — which columns of a table of Q rows (rows_table.h) each
 * work item of a call can read: the runtime fills only those, per work
 * item, instead of the whole table per call (runtime/rows_items.c). */
#ifndef ATTNC_TILE_TABLE_H
#define ATTNC_TILE_TABLE_H
#include "plan.h"

/* For every work item of tile map tm, item = (b * (H / pack) + h / pack) *
 * tm->nqt + qt (query heads h .. h + pack - 1, rows [qt * tm->bq, (qt + 1)
 * * tm->bq)), the columns [cols[2 * item], cols[2 * item + 1]) of the last
 * index of tensor `table` (T[b, h, q, i], a table of Q rows of p's
 * attention) that the item's kernel can read: the interval of every read's
 * last index over the item's q tile and the kv tiles it visits, whole
 * tiles (padded lanes past Lq and Lk included), clamped to [0, n); empty
 * (lo == hi) when it reads none.  The columns are T's indices after q,
 * flattened (n their product); all of them when there are several or an
 * index reads a sum variable.  bc: the call with T's
 * shape (its data may be NULL: its values are not needed). */
attnc_status tile_table_columns(const Plan *p, const BoundCall *bc, const TileMap *tm, int table, int64_t pack,
                                int64_t *cols, attnc_error *err);

#endif
