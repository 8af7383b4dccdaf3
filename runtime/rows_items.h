/* rows_items.h — the tables of Q rows (middle/rows_table.h) made per work
 * item of a launch instead of once per call (rows_items.c). */
#ifndef ATTNC_ROWS_ITEMS_H
#define ATTNC_ROWS_ITEMS_H
#include "call.h"
#include "launch.h"
#include "rows_table.h"

typedef struct RowsItems RowsItems;

/* The maker of rw's tables of Q rows for call bc (bound to the original
 * attention), reading q at bc's Q layout (the rotated Q when there is a
 * rotary) and the tensors; NULL when out of memory, or when rw has no table
 * of Q rows.  The call's rewritten tensors hold those tables with their
 * shapes and NULL data (rows_fill's q_later). */
RowsItems *rows_items_new(const BoundCall *bc, const RowsRewrite *rw, const void *q);

/* What launch_run_items calls: before each work item, the item's rows of
 * each table, only the columns its tiles can read (tile_table.h); or the
 * whole table once, when that is less work (all columns wanted by every
 * kv split of an item). */
LaunchItemTensors rows_items_hook(RowsItems *ri);

void rows_items_free(RowsItems *ri);

#endif
