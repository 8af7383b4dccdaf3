/* launch_stats.h — what the runtime counts, for tests that must know a path
 * ran (the differential fuzzer's summary).  Requires nothing. */
#ifndef ATTNC_LAUNCH_STATS_H
#define ATTNC_LAUNCH_STATS_H

/* How many calls ran the block-order plan (docs/multidim-tiles.md) in this process. */
long long launch_grid_calls(void);
/* How many calls ran on a kernel's kept tile map (runtime/map_cache.c) that skips a tile or has a PARTIAL one (a
 * wrong kept map there changes O), in this process. */
long long map_cache_masked_reuses(void);

#endif
