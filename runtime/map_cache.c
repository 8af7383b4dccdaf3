/* map_cache.c — a kernel's last tile map (map_cache.h).  One entry, taken
 * and put back with atomic exchanges (as api_rope_sink.c keeps its scratch):
 * a call that finds the slot empty or holding another key builds its own
 * map, and offers a copy back. */
#include "map_cache.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "call.h"
#include "status.h"
#include "rows_table.h"

typedef struct Entry {
    attnc_sizes sz;
    int64_t bq;
    Const *params; /* nparams values, by param index */
    TileMap tm;
} Entry;

struct MapCache {
    int nparams;
    Entry *_Atomic slot;
};

static void entry_free(Entry *e) {
    if (!e) return;
    tile_map_free(&e->tm);
    free(e->params);
    free(e);
}

attnc_status map_cache_new(const Plan *p, MapCache **out, attnc_error *err) {
    *out = NULL;
    int deps = ir_at(p->ir, p->f->keep)->deps | ir_at(p->ir, p->f->fault)->deps;
    if (p->attn->ntensors > 0 || (deps & (DEP_TENSOR | DEP_ROW)) || (p->rows && p->rows->ntables > 0))
        return ATTNC_OK;
    MapCache *c = calloc(1, sizeof *c);
    if (!c) return set_error(err, ATTNC_ERR_NOMEM, "out of memory for the kernel's tile map cache");
    c->nparams = p->attn->nparams;
    atomic_init(&c->slot, NULL);
    *out = c;
    return ATTNC_OK;
}

void map_cache_free(MapCache *c) {
    if (!c) return;
    entry_free(atomic_load(&c->slot));
    free(c);
}

static int same_sizes(const attnc_sizes *a, const attnc_sizes *b) {
    return a->B == b->B && a->H == b->H && a->Hkv == b->Hkv && a->Lq == b->Lq && a->Lk == b->Lk && a->D == b->D &&
           a->Dv == b->Dv;
}

static int same_key(const MapCache *c, const Entry *e, const BoundCall *bc, int64_t bq) {
    /* params compared as bytes: bind.c makes them in zeroed memory, so equal values have equal bytes (a float
     * param of -0.0 against 0.0 only misses) */
    return same_sizes(&e->sz, &bc->sz) && e->bq == bq &&
           (c->nparams == 0 || memcmp(e->params, bc->params, sizeof(Const) * (size_t)c->nparams) == 0);
}

/* A copy of tm into *out (every array its own); 0 when out of memory. */
static int copy_map(const TileMap *tm, TileMap *out) {
    *out = *tm;
    size_t rows = (size_t)(tm->ngroups * tm->nqt + 1), n = (size_t)tm->visited + 1;
    out->row_start = malloc(sizeof(int64_t) * rows);
    out->kv = malloc(sizeof(int32_t) * n);
    out->mode = malloc(n);
    if (!out->row_start || !out->kv || !out->mode) {
        tile_map_free(out);
        return 0;
    }
    memcpy(out->row_start, tm->row_start, sizeof(int64_t) * rows);
    if (tm->visited) {
        memcpy(out->kv, tm->kv, sizeof(int32_t) * (size_t)tm->visited);
        memcpy(out->mode, tm->mode, (size_t)tm->visited);
    }
    return 1;
}

/* Offer e to the slot; whatever it held (or e, when the slot is taken meanwhile) is freed. */
static void put_back(MapCache *c, Entry *e) {
    Entry *none = NULL;
    if (!atomic_compare_exchange_strong(&c->slot, &none, e)) entry_free(e);
}

attnc_status map_cache_build(MapCache *c, const Plan *p, const BoundCall *bc, int64_t bq, TileMap *out,
                             attnc_error *err) {
    if (!c) return tile_map_build_rows(p, bc, bq, out, err);
    Entry *e = atomic_exchange(&c->slot, NULL);
    if (e && same_key(c, e, bc, bq)) {
        int ok = copy_map(&e->tm, out);
        put_back(c, e);
        if (ok) return ATTNC_OK;
        memset(out, 0, sizeof *out);
        return set_error(err, ATTNC_ERR_NOMEM, "out of memory while copying the tile map");
    }
    entry_free(e); /* another key: this call's map replaces it */
    attnc_status st = tile_map_build_rows(p, bc, bq, out, err);
    if (st) return st;
    /* keep a copy (out of memory here is the call's, as every allocation failure is) */
    Entry *keep = calloc(1, sizeof *keep);
    if (keep) keep->params = calloc((size_t)c->nparams + 1, sizeof(Const));
    if (!keep || !keep->params || !copy_map(out, &keep->tm)) {
        if (keep) free(keep->params);
        free(keep);
        tile_map_free(out);
        return set_error(err, ATTNC_ERR_NOMEM, "out of memory while keeping the tile map");
    }
    keep->sz = bc->sz, keep->bq = bq;
    if (c->nparams) memcpy(keep->params, bc->params, sizeof(Const) * (size_t)c->nparams);
    put_back(c, keep);
    return ATTNC_OK;
}
