/* launch_stats.h — what the runtime counts, for tests that must know a path
 * ran (the differential fuzzer's summary), and the one knob tests turn.
 * Requires nothing. */
#ifndef ATTNC_LAUNCH_STATS_H
#define ATTNC_LAUNCH_STATS_H

/* How many calls ran the block-order plan (docs/multidim-tiles.md) in this process. */
long long launch_grid_calls(void);
/* How many of those read terms of the cells' offsets from grid tables (docs/toeplitz.md), in this process. */
long long launch_grid_table_calls(void);
/* How many calls ran 1-D tiles whose plan has tables of distances kv - q (docs/toeplitz.md), in this process. */
long long launch_diag_table_calls(void);
/* How many calls ran 1-D tiles whose plan has a band of keys per row (docs/band-masks.md), in this process. */
long long launch_band_calls(void);
/* How many of those read K and V in place through AttnCall.kv_rows (CompiledKernel.maps_kv_rows), in this
 * process. */
long long launch_grid_kv_mapped_calls(void);
/* How many calls handed a kernel live key sets (AttnCall.tile_live) that leave keys out of their tiles' ranges, in
 * this process (the LLVM kernel's row-map version and refplan skip those keys). */
long long launch_live_key_calls(void);
/* How many calls read a paged K and V in place with kv tiles shorter than the plan's (pages of fewer rows:
 * LaunchPages.kv_tile), in this process. */
long long launch_short_tile_calls(void);
/* How many calls ran on a kernel's kept tile map (runtime/map_cache.c) that skips a tile or has a PARTIAL one (a
 * wrong kept map there changes O), in this process. */
long long map_cache_masked_reuses(void);
/* How many kept tile maps dropped their runtime error checks after a call ran them without an error
 * (map_cache_ran_clean), in this process. */
long long map_cache_checks_dropped(void);
/* Whether kept tile maps drop their checks after a clean call (1, the default) or keep them (0), so that a test
 * that removes a check's steps sees every call run them; for the whole process. */
void map_cache_set_dropping(int on);
/* How many calls cut their keys into chunks (or finer splits) because rows of several kv heads interleave
 * (runtime/launch.c: kv_chunks), in this process. */
long long launch_kv_chunked_calls(void);
/* The bytes of K and V rows a chunk of kv_chunks holds (0: the default, 8 MiB), so that tests reach many chunks
 * with small shapes; for the whole process. */
void launch_set_chunk_bytes(long long bytes);

/* How many calls read K and V from one kv head's rows copied back to back (runtime/launch.c: pack_head), in this
 * process. */
long long launch_kv_packed_calls(void);
/* How many of those widened 16-bit K or V rows into float32 on the way (pack_head; CompiledKernel.widens), in this
 * process. */
long long launch_kv_widened_calls(void);
/* Whether calls may pack K and V rows that lie apart (1, the default) or read them in place (0), so that tests
 * reach both; for the whole process. */
void launch_set_kv_packing(int on);

#endif
