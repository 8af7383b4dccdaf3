/* map_cache.c — a kernel's last tile map (map_cache.h).  One entry, taken
 * and put back with atomic exchanges (as api_rope_sink.c keeps its scratch):
 * a call that finds the slot empty or holding another key builds its own
 * map, and offers a copy back. */
#include "map_cache.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "call.h"
#include "launch_stats.h"
#include "status.h"

typedef struct Entry {
    attnc_sizes sz;
    int64_t bq, bk; /* the map's q and kv tiles */
    Const *params; /* nparams values, by param index */
    int64_t (*shape)[ATTNC_MAX_RANK]; /* ntensors shapes (the ranks are the attention's) */
    void **data;   /* [ntensors]: a copy of each tensor the masks or fault checks read, else NULL */
    TileMap tm;
} Entry;

struct MapCache {
    int nparams, ntensors;
    unsigned char *reads; /* [ntensors]: the masks or fault checks read its contents */
    int checks_keyed;     /* the fault checks read only what the key holds (not the scores) */
    Entry *_Atomic slot;
};

/* At most this many bytes of tensors a map depends on are copied into the key; a call whose masks read more
 * builds its map every time (comparing them would cost a good part of building it). */
enum { MAX_KEY_BYTES = 1 << 20 };

static atomic_llong masked_reuses, clean_keys; /* launch_stats.h */

long long map_cache_masked_reuses(void) { return atomic_load(&masked_reuses); }
long long map_cache_checks_dropped(void) { return atomic_load(&clean_keys); }

static atomic_int dropping = 1;
void map_cache_set_dropping(int on) { atomic_store(&dropping, on); }

static void entry_free(Entry *e, int ntensors) {
    if (!e) return;
    tile_map_free(&e->tm);
    free(e->params);
    free(e->shape);
    for (int t = 0; e->data && t < ntensors; t++) free(e->data[t]);
    free(e->data);
    free(e);
}

/* The tensors whose contents keep or fault read (IR_LOAD nodes below them; args come before their node). */
static int mark_reads(const Plan *p, unsigned char *reads) {
    const IrModule *m = p->ir;
    unsigned char *below = calloc((size_t)m->n + 1, 1);
    if (!below) return 0;
    below[p->f->keep] = below[p->f->fault] = 1;
    for (IrRef r = m->n - 1; r >= 0; r--) {
        if (!below[r]) continue;
        const IrNode *n = ir_at(m, r);
        if (n->op == IR_LOAD) reads[n->aux] = 1;
        for (int i = 0; i < n->nargs; i++) below[n->args[i]] = 1;
    }
    free(below);
    return 1;
}

attnc_status map_cache_new(const Plan *p, MapCache **out, attnc_error *err) {
    *out = NULL;
    MapCache *c = calloc(1, sizeof *c);
    if (c) c->reads = calloc((size_t)p->attn->ntensors + 1, 1);
    if (!c || !c->reads || !mark_reads(p, c->reads)) {
        map_cache_free(c);
        return set_error(err, ATTNC_ERR_NOMEM, "out of memory for the kernel's tile map cache");
    }
    c->nparams = p->attn->nparams;
    c->ntensors = p->attn->ntensors;
    c->checks_keyed = (ir_at(p->ir, p->f->fault)->deps & DEP_PRE) == 0;
    atomic_init(&c->slot, NULL);
    *out = c;
    return ATTNC_OK;
}

void map_cache_free(MapCache *c) {
    if (!c) return;
    entry_free(atomic_load(&c->slot), c->ntensors);
    free(c->reads);
    free(c);
}

/* Bytes of tensor t of the call (int32 and float32 elements alike). */
static size_t tensor_bytes(const attnc_tensor *t) {
    size_t n = 4;
    for (int d = 0; d < t->rank; d++) n *= (size_t)t->shape[d];
    return n;
}

/* Whether the call's map may be kept: the tensors it depends on are there and small enough to copy. */
static int keepable(const MapCache *c, const BoundCall *bc) {
    size_t bytes = 0;
    for (int t = 0; t < c->ntensors; t++) {
        if (!c->reads[t]) continue;
        if (!bc->tensors[t]->data) return 0;
        bytes += tensor_bytes(bc->tensors[t]);
        if (bytes > MAX_KEY_BYTES) return 0;
    }
    return 1;
}

static int same_key(const MapCache *c, const Entry *e, const BoundCall *bc, int64_t bq, int64_t bk) {
    /* sizes and params compared as bytes (seven int64s; params made in zeroed memory by bind.c, so equal values
     * have equal bytes: a float param of -0.0 against 0.0 only misses) */
    if (e->bq != bq || e->bk != bk || memcmp(&e->sz, &bc->sz, sizeof e->sz) != 0 ||
        (c->nparams && memcmp(e->params, bc->params, sizeof(Const) * (size_t)c->nparams) != 0))
        return 0;
    /* tensor shapes, which the bounds checks read: the binding checks them against dims over sizes and params,
     * so the comparisons above decide them; compared anyway, so that no kept map outlives a bound it checked */
    for (int t = 0; t < c->ntensors; t++)
        for (int d = 0; d < bc->tensors[t]->rank; d++)
            if (e->shape[t][d] != bc->tensors[t]->shape[d]) return 0;
    /* the contents the masks read, byte for byte (a caller may have changed a buffer in place) */
    for (int t = 0; t < c->ntensors; t++)
        if (c->reads[t] && memcmp(e->data[t], bc->tensors[t]->data, tensor_bytes(bc->tensors[t])) != 0) return 0;
    return 1;
}

/* Offer e to the slot; whatever it held (or e, when the slot is taken meanwhile) is freed. */
static void put_back(MapCache *c, Entry *e) {
    Entry *none = NULL;
    if (!atomic_compare_exchange_strong(&c->slot, &none, e)) entry_free(e, c->ntensors);
}

attnc_status map_cache_build(MapCache *c, const Plan *p, const BoundCall *bc, int64_t bq, int64_t bk, TileMap *out,
                             attnc_error *err) {
    if (!c || !keepable(c, bc)) return tile_map_build_tiles(p, bc, bq, bk, out, err);
    Entry *e = atomic_exchange(&c->slot, NULL);
    if (e && same_key(c, e, bc, bq, bk)) { /* a copy: the whole range of kv tiles */
        attnc_status st = tile_map_slice(&e->tm, 0, e->tm.nkt, out, err);
        if (e->tm.partial > 0 || e->tm.visited < e->tm.total) atomic_fetch_add(&masked_reuses, 1);
        put_back(c, e);
        return st;
    }
    entry_free(e, c->ntensors); /* another key: this call's map replaces it */
    attnc_status st = tile_map_build_tiles(p, bc, bq, bk, out, err);
    if (st) return st;
    /* keep a copy (out of memory here is the call's, as every allocation failure is) */
    Entry *keep = calloc(1, sizeof *keep);
    if (keep) keep->params = calloc((size_t)c->nparams + 1, sizeof(Const));
    if (keep) keep->shape = calloc((size_t)c->ntensors + 1, sizeof *keep->shape);
    if (keep) keep->data = calloc((size_t)c->ntensors + 1, sizeof *keep->data);
    int copied = keep && keep->data;
    for (int t = 0; copied && t < c->ntensors; t++)
        if (c->reads[t]) {
            size_t n = tensor_bytes(bc->tensors[t]);
            copied = (keep->data[t] = malloc(n + 1)) != NULL;
            if (copied) memcpy(keep->data[t], bc->tensors[t]->data, n);
        }
    if (!copied || !keep->params || !keep->shape || (st = tile_map_slice(out, 0, out->nkt, &keep->tm, err))) {
        entry_free(keep, c->ntensors);
        tile_map_free(out);
        return set_error(err, ATTNC_ERR_NOMEM, "out of memory while keeping the tile map");
    }
    keep->sz = bc->sz, keep->bq = bq, keep->bk = out->bk;
    if (c->nparams) memcpy(keep->params, bc->params, sizeof(Const) * (size_t)c->nparams);
    for (int t = 0; t < c->ntensors; t++)
        for (int d = 0; d < bc->tensors[t]->rank; d++) keep->shape[t][d] = bc->tensors[t]->shape[d];
    put_back(c, keep);
    return ATTNC_OK;
}

void map_cache_ran_clean(MapCache *c, const BoundCall *bc, int64_t bq, int64_t bk) {
    if (!c || !c->checks_keyed || !atomic_load(&dropping) || !keepable(c, bc)) return;
    Entry *e = atomic_exchange(&c->slot, NULL);
    if (!e) return;
    if (same_key(c, e, bc, bq, bk)) {
        e->tm.check_faults = 0;
        atomic_fetch_add(&clean_keys, 1);
    }
    put_back(c, e);
}
