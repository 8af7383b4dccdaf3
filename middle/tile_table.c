/* tile_table.c — the columns of a table of Q rows each work item can read
 * (tile_table.h), by the interval analysis of tile classification.
 * Requires: a Plan whose attention has the table (rows_table.h: T[b, h, q,
 * i...], read by IR_LOAD nodes of its index) and the call's tile map.
 * Produces: tile_table_columns.
 *
 * Soundness: a kernel evaluates a clause in every lane of every kv tile it
 * visits, masked or not, and of every q row of its tile (rows past Lq
 * included: their loads are out of T's shape and read nothing), so the
 * interval of a read's last index over whole tiles holds every column the
 * kernel can read.  Consecutive visited kv tiles are evaluated as one range
 * (one evaluation per run of tiles: a causal item costs one), which is the
 * same interval for an index monotone in kv, and only wider otherwise. */
#include "tile_table.h"

#include <stdlib.h>

#include "tile_ival.h"

/* The last index of every load of `table`; 0 when one of them cannot be
 * bounded per item (more than one column index, or a sum variable). */
static int column_indexes(const Plan *p, int table, IrRef *out, int *n) {
    *n = 0;
    for (IrRef r = 0; r < p->ir->n; r++) {
        const IrNode *x = &p->ir->nodes[r];
        if (x->op != IR_LOAD || x->aux != table) continue;
        if (x->nargs != 4 || (p->ir->nodes[x->args[3]].deps & DEP_SUMVAR)) return 0;
        out[(*n)++] = x->args[3];
    }
    return 1;
}

/* The hull of the column indexes over kv in [k0, k1) (the other variables set). */
static void hull_over(Analysis *an, const IrRef *idx, int n, int64_t k0, int64_t k1, int64_t *lo, int64_t *hi) {
    an->vars[V_KV] = ival_int(k0, k1 - 1);
    ival_new_generation(an);
    for (int i = 0; i < n; i++) {
        Ival v = ival_eval(an, idx[i]);
        if (v.lo < *lo) *lo = v.lo;
        if (v.hi > *hi) *hi = v.hi;
    }
}

/* The columns item (b, heads h0 .. h0 + pack - 1, qt) reads: the runs of
 * consecutive kv tiles of each head's group, evaluated as ranges. */
static void item_columns(Analysis *an, const TileMap *tm, const IrRef *idx, int n, int64_t b, int64_t h0,
                         int64_t pack, int64_t qt, int64_t ncols, int64_t *out) {
    const Plan *p = an->p;
    const attnc_sizes *sz = &an->bc->sz;
    int64_t group = sz->Hkv > 0 && sz->H >= sz->Hkv ? sz->H / sz->Hkv : 1;
    an->vars[V_B] = ival_int(b, b);
    an->vars[V_H] = ival_int(h0, h0 + pack - 1);
    an->vars[V_HK] = ival_int(h0 / group, (h0 + pack - 1) / group);
    an->vars[V_Q] = ival_int(qt * tm->bq, qt * tm->bq + tm->bq - 1);
    int64_t lo = INT64_MAX, hi = INT64_MIN, seen = -1;
    for (int64_t h = h0; h < h0 + pack; h++) {
        int64_t g = tile_group(p, tm, b, h, sz->H);
        if (g == seen) continue; /* packed heads share their group */
        seen = g;
        const int64_t *rs = tm->row_start + g * tm->nqt + qt;
        for (int64_t e = rs[0]; e < rs[1];) {
            int64_t first = tm->kv[e], last = first;
            for (e++; e < rs[1] && tm->kv[e] == last + 1; e++) last++;
            hull_over(an, idx, n, first * tm->bk, (last + 1) * tm->bk, &lo, &hi);
        }
    }
    if (lo < 0) lo = 0;
    if (hi > ncols - 1) hi = ncols - 1;
    out[0] = lo <= hi ? lo : 0;
    out[1] = lo <= hi ? hi + 1 : 0;
}

attnc_status tile_table_columns(const Plan *p, const BoundCall *bc, const TileMap *tm, int table, int64_t pack,
                                int64_t *cols, attnc_error *err) {
    const attnc_sizes *sz = &bc->sz;
    const attnc_tensor *T = bc->tensors[table];
    int64_t heads = pack > 0 ? sz->H / pack : sz->H, items = sz->B * heads * tm->nqt, ncols = 1;
    for (int d = 3; d < T->rank; d++) ncols *= T->shape[d]; /* the columns: T's trailing indices flattened */
    IrRef *idx = malloc(sizeof(IrRef) * (size_t)p->ir->n + 1);
    Analysis an;
    int ok = ival_analysis_init(&an, p, bc) && idx, n = 0;
    if (ok && T->rank == 4 && column_indexes(p, table, idx, &n)) {
        for (int64_t it = 0; it < items; it++) {
            int64_t bh = it / tm->nqt;
            item_columns(&an, tm, idx, n, bh / heads, bh % heads * pack, pack, it % tm->nqt, ncols, cols + 2 * it);
        }
    } else if (ok) { /* every column of the table's rows */
        for (int64_t it = 0; it < items; it++) cols[2 * it] = 0, cols[2 * it + 1] = ncols;
    }
    ival_analysis_free(&an);
    free(idx);
    return ok ? ATTNC_OK : set_error(err, ATTNC_ERR_NOMEM, "out of memory while bounding a table's columns");
}
