/* launch_stats.h — what runtime/launch.c counts, for tests that must know a
 * path ran (the differential fuzzer's summary).  Requires nothing. */
#ifndef ATTNC_LAUNCH_STATS_H
#define ATTNC_LAUNCH_STATS_H

/* How many calls ran the block-order plan (docs/multidim-tiles.md) in this process. */
long long launch_grid_calls(void);

#endif
