/* map_cache.h — a kernel's last tile map, kept for the next call with the
 * same sizes, params and q tile (runtime/launch.c).  Building the map takes
 * an interval analysis per tile pair the quad tree visits (natten2d at
 * L = 4096 in block order: 17,517 evaluations, about a quarter of a call);
 * a model calls one kernel many times with one shape, as FlexAttention's
 * users build a BlockMask once.  The key is everything the map is made
 * from: sizes, params, q tile, tensor shapes (bounds checks read them) and a
 * copy of the contents of the tensors the masks and fault checks read (a
 * document's ids, a block layout: compared byte for byte, since a caller
 * may change a buffer in place; calls whose masks read more than 1 MiB of
 * tensors build their map every time).
 *
 * A kept map also learns from the calls that used it: runtime error checks
 * that the tile analysis could not rule out (a relative table's bounds,
 * read at offsets the intervals of a pair of tiles overestimate) are
 * dropped once a call of the key has run them over every element it keeps
 * without an error (map_cache_ran_clean), when they read nothing outside
 * the key (not the scores): the next calls of the key then write O in place
 * and evaluate no check. */
#ifndef ATTNC_MAP_CACHE_H
#define ATTNC_MAP_CACHE_H
#include "plan.h"

typedef struct MapCache MapCache;

/* A cache for plan p's calls into *out.  ATTNC_ERR_NOMEM or OK. */
attnc_status map_cache_new(const Plan *p, MapCache **out, attnc_error *err);

/* Free c and its map; NULL is ignored. */
void map_cache_free(MapCache *c);

/* p's tile map of call bc with q tiles of bq rows and kv tiles of bk keys
 * (the plan's bk, or fewer: tile_map_build_tiles) into *out (the caller's,
 * freed with tile_map_free): a copy of the kept map when the last call that
 * built one had the same key, else built and kept.  c may be
 * NULL (built every time).  Safe for calls on several threads at once. */
attnc_status map_cache_build(MapCache *c, const Plan *p, const BoundCall *bc, int64_t bq, int64_t bk, TileMap *out,
                             attnc_error *err);

/* Call bc (q tiles of bq rows, kv tiles of bk keys: its map's) ran its runtime error checks over every
 * element it keeps and found none: the kept map of its key needs no checks
 * from now on (when the checks read only what the key holds).  c may be
 * NULL. */
void map_cache_ran_clean(MapCache *c, const BoundCall *bc, int64_t bq, int64_t bk);

#endif
