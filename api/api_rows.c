/* api_rows.c — a bound call of a kernel whose dot products of rows became
 * table reads (middle/rows_table.h): the call as the kernel's plan sees it,
 * the original's tensors followed by the tables and Q's and K's rows as
 * tensors (where dots became sums), computed for this call
 * (runtime/rows_fill.c), or for the tables of Q rows on the llvm and tcc
 * launches per work item (runtime/rows_items.c), or, where only the tile
 * map matters, zero-filled.
 * Requires: k->rows (api.c sets it when compiling such an attention).
 * Produces: api_rows_bind, api_rows_release (api_kernel.h). */
#include <stdlib.h>
#include <string.h>

#include "api_kernel.h"
#include "rows_fill.h"

attnc_status api_rows_bind(const attnc_kernel *k, const BoundCall *bc, const void *q, const void *kk, int threads,
                           int q_items, RowsCall *rc, attnc_error *err) {
    const RowsRewrite *rw = k->rows;
    memset(rc, 0, sizeof *rc);
    rc->n = rows_extra(rw);
    rc->tables = calloc((size_t)rc->n + 1, sizeof *rc->tables);
    rc->all = calloc((size_t)rw->attn->ntensors + 1, sizeof *rc->all);
    if (!rc->tables || !rc->all) {
        api_rows_release(rc);
        return set_error(err, ATTNC_ERR_NOMEM, "out of memory");
    }
    int has_q = 0;
    for (int t = 0; t < rw->ntables; t++) has_q |= !rw->tables[t].is_k;
    q_items = q && q_items && has_q;
    /* q NULL: zeros, shapes only */
    attnc_status st = rows_fill(bc, rw, q, kk, threads, q_items, rc->tables, err);
    if (!st && q_items && !(rc->items = rows_items_new(bc, rw, q))) {
        rows_free(rc->tables, rc->n);
        st = set_error(err, ATTNC_ERR_NOMEM, "out of memory");
    }
    if (st) {
        rc->n = 0; /* rows_fill freed what it had filled */
        api_rows_release(rc);
        return st;
    }
    for (int i = 0; i < rw->ntensors_before; i++) rc->all[i] = bc->tensors[i];
    for (int t = 0; t < rc->n; t++) rc->all[rw->ntensors_before + t] = &rc->tables[t];
    /* the rewritten attention, with what the call around it stripped (a rotary or a sink already applied) */
    rc->attn = *rw->attn;
    rc->attn.rotary = bc->attn->rotary;
    rc->attn.sink = bc->attn->sink;
    rc->bc = *bc;
    rc->bc.attn = &rc->attn;
    rc->bc.tensors = rc->all;
    return ATTNC_OK;
}

void api_rows_release(RowsCall *rc) {
    if (rc->tables) rows_free(rc->tables, rc->n);
    rows_items_free(rc->items);
    free(rc->tables);
    free(rc->all);
    memset(rc, 0, sizeof *rc);
}
