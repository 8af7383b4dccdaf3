/* plan.h — the kernel plan: the one description every backend translates.
 *
 * The fused loop nest it describes (FlashAttention with online softmax):
 *
 *   per call:   bind sizes/params/tensors; scale; tile map (tiles.c)
 *   per (b, h): values of level HEAD
 *   per q tile of bq rows, per row: values of level ROW, lse_offset, low-rank Q columns
 *     for each kv tile the tile map lists for this q tile (EMPTY tiles are never visited):
 *       S = scale * Q_tile . K_tile^T (+ low-rank columns), then per element:
 *         pre = S + bias                  (level ELEM; COL values per kv)
 *         keep  = mask                    (only on PARTIAL tiles; FULL tiles skip it)
 *         fault = runtime error check     (only when `fault` is not constant false)
 *         s = score(pre); p = weight(s) or online softmax (log2 domain)
 *       O_acc += P . V_tile
 *     O = O_acc / l (softmax) and LSE = m + log(l) + lse_offset
 */
#ifndef ATTNC_PLAN_H
#define ATTNC_PLAN_H
#include "attnc.h"
#include "call.h"
#include "ir.h"
#include "schedule.h"
#include "status.h"
#include "strbuf.h"

typedef enum TileMode { TILE_EMPTY = 0, TILE_FULL = 1, TILE_PARTIAL = 2 } TileMode;

typedef struct Plan {
    const Attention *attn;
    IrModule *ir;
    IrFunc *f;
    int bq, bk;          /* tile sizes in rows of Q and of K */
    int vec_width;       /* float lanes of the target's vectors */
    int needs_mask;      /* keep is not constant true */
    int needs_fault;     /* fault is not constant false */
    int mask_varies_b;   /* the tile map differs per batch ... */
    int mask_varies_h;   /* ... or per head */
    int softmax;         /* no weight clause */
    /* the band of keys of each query row (pass_band.c): int nodes of the row
     * loop with keep(q, kv) implying band_lo(q) <= kv <= band_hi(q); both
     * IR_NONE when no mask conjunct bounds kv */
    IrRef band_lo, band_hi;
    /* where the kernel computes each value (schedule.h) */
    Schedule *sched;
    /* the backward's derivatives (grad_plan.h), built with the plan; NULL
     * when the derivation failed, grad_error then says why (a forward kernel
     * still compiles: only its backward is refused) */
    const struct GradPlan *grad;
    const char *grad_error;
    /* where the backward kernel computes each value (schedule_grad.h); NULL
     * when grad is NULL */
    const struct GradSchedule *grad_sched;
    /* when the plan is of an attention whose dot products of rows became
     * table reads (middle/rows_table.h): the rewrite, for the backends that
     * fill the tables themselves (ahead-of-time C); set by the library */
    const struct RowsRewrite *rows;
    /* multi-dimensional tiles (grid.h, pass_grid.c): the plan over rows in
     * block order when the masks decompose q and kv over a grid, else NULL */
    struct GridTiling *grid;
    /* the block-order plan's IR_DIAG nodes of grid offsets (pass_grid.c):
     * its q and kv tiles' blocks (Schedule.diag_grid); zeros otherwise */
    int diag_grid[4];
} Plan;

/* Diagonal tables (the schedule's diag block): TABLES_DISTANCE, pass_toeplitz
 * (terms of kv - q); TABLES_GRID, pass_toeplitz_grid on the block-order plan
 * of a 2-D grid (terms of the cells' offsets).  PlanOptions.toeplitz and
 * BackendImpl.toeplitz are sets of them. */
enum { TABLES_DISTANCE = 1, TABLES_GRID = 2 };

typedef struct PlanOptions {
    int bq, bk;              /* 0: 64 */
    int vec_width;           /* the target's float lanes; 0: 16 */
    const int *is_fixed;     /* params fixed at compile time, by param index (or NULL) */
    const Const *fixed;
    StrBuf *dump;            /* when not NULL: the IR after each pass */
    int separable;           /* pass_lowrank's separable form (see there) */
    int toeplitz;            /* the diagonal tables the backend's kernels translate (TABLES_*; 0: none) */
    int no_grid;             /* 1: no multi-dimensional tiles (Plan.grid stays NULL) */
} PlanOptions;

/* Run the middle end on a checked attention: build the IR, run the passes in
 * order, and describe the kernel.  NULL when out of memory. */
Plan *plan_compile(Arena *arena, const Attention *a, const PlanOptions *opt);

/* p's needs_mask, needs_fault and mask_varies_b/h from its IR (p->ir, p->f): plan_compile's, and the
 * block-order plan's (pass_grid.c). */
void plan_mask_facts(Plan *p);

/* The widest kv tile whose keys the map lists one by one (TileMap.live). */
enum { TILE_LIVE_KEYS = 16 };

/* The tile map of one call: for each classification group (one, or one per
 * batch and/or head) and q tile, the kv tiles to visit and their mode. */
typedef struct TileMap {
    int64_t nqt, nkt;     /* tiles along q and kv */
    int64_t bq;           /* query rows per q tile (the plan's bq, or bq / pack for packed heads) */
    int64_t bk, lk;       /* keys per kv tile (the plan's bk, or fewer: tile_map_build_tiles) and per call (Lk) */
    int64_t ngroups;      /* 1, B, H or B*H */
    int64_t *row_start;   /* ngroups * nqt + 1 offsets into kv/mode */
    int32_t *kv;          /* kv tile index of each visited tile */
    uint8_t *mode;        /* TILE_FULL or TILE_PARTIAL */
    uint16_t *keys;       /* 2 per visited tile: its keys [keys[2e], keys[2e+1]) counted from its first, outside
                           * which the analysis proved every element masked and free of runtime errors (FULL
                           * tiles: all of them; a PARTIAL tile's keys outside the range need no work) */
    uint16_t *live;       /* NULL unless bk <= TILE_LIVE_KEYS: 1 per visited tile, bit j set unless the analysis
                           * proved every element of key k0 + j masked and free of runtime errors (FULL tiles:
                           * all keys; a PARTIAL tile's set bits lie in its range `keys`).  A 2-D neighbourhood's
                           * key blocks have whole columns no query of the block reaches, which a range cannot
                           * cut (docs/multidim-tiles.md) */
    int64_t live_cut;     /* keys the live sets leave out of PARTIAL tiles' ranges (0 without `live`) */
    int64_t total, visited, full, partial; /* over all groups */
    int64_t evaluations;  /* interval evaluations it took */
    int check_faults;     /* the plan has fault code and the analysis could not rule faults out */
} TileMap;

/* Classify every tile for this call's sizes, params and tensors, in work
 * proportional to the number of tiles (never L^2). */
attnc_status tile_map_build(const Plan *p, const BoundCall *bc, TileMap *out, attnc_error *err);
/* The same with q tiles of `bq` query rows (the work items of packed heads). */
attnc_status tile_map_build_rows(const Plan *p, const BoundCall *bc, int64_t bq, TileMap *out, attnc_error *err);
/* The same with kv tiles of `bk` keys, fewer than the plan's (0 or more: the plan's): the tiles of a paged K and V
 * whose pages hold fewer rows than the plan's kv tile (runtime/launch.c, LaunchPages.kv_tile). */
attnc_status tile_map_build_tiles(const Plan *p, const BoundCall *bc, int64_t bq, int64_t bk, TileMap *out,
                                  attnc_error *err);
/* The tiles of tm whose kv tile index is in [kt0, kt1), with tm's indexing
 * (one kv split of split-KV). */
attnc_status tile_map_slice(const TileMap *tm, int64_t kt0, int64_t kt1, TileMap *out, attnc_error *err);
/* The same tiles listed by kv tile (the backward pass's order): out has
 * tm's fields with nqt and nkt swapped, row_start per (group, kv tile) and
 * kv[] holding q tile indices, in increasing order. */
attnc_status tile_map_transpose(const TileMap *tm, TileMap *out, attnc_error *err);
void tile_map_free(TileMap *tm);
/* PARTIAL tiles whose keys the map narrowed (TileMap.keys, and TileMap.live where present), and the keys it cut
 * from them. */
void tile_map_keys_cut(const TileMap *tm, int64_t *narrowed, int64_t *cut);
/* The group of (b, h). */
int64_t tile_group(const Plan *p, const TileMap *tm, int64_t b, int64_t h, int64_t H);

/* Asked by the mask counts below at an element where the IR's `fault` is
 * true (the element raises a runtime error somewhere): the masks evaluated
 * there by whoever can name the error (the api asks the interpreter): -1
 * when a mask raises it (the count stops), else whether they keep the
 * element (the error is a bias's or a score's: the run reports it). */
typedef struct TileFaultHook {
    int (*masks_at)(void *ctx, int64_t b, int64_t h, int64_t q, int64_t kv);
    void *ctx;
} TileFaultHook;

/* Elements (b, h, q, kv) the masks keep in this call: FULL tiles count
 * whole, PARTIAL tiles by boxes the interval analysis decides, the rest
 * element by element (middle/tile_count.c); -1 when out of memory, -2 when
 * the hook reports a mask's runtime error. */
int64_t tile_count_kept(const Plan *p, const BoundCall *bc, const TileMap *tm, const TileFaultHook *hook);

/* The pairs the masks keep for (b, h), as rows x cols pixels over Lq x Lk
 * (1 <= rows <= Lq, 1 <= cols <= Lk; pixel (r, c) holds the pairs with
 * q * rows / Lq == r and kv * cols / Lk == c): kept[] the fraction of each
 * pixel's pairs kept, tiles[] (when not NULL) the highest tile mode among
 * the tiles it touches (TILE_EMPTY: none visited).  1 done, 0 out of memory,
 * -2 when the hook reports a mask's runtime error (kept and tiles untouched). */
int tile_picture(const Plan *p, const BoundCall *bc, const TileMap *tm, int64_t b, int64_t h, int rows, int cols,
                 float *kept, uint8_t *tiles, const TileFaultHook *hook);

/* Refuse (ATTNC_ERR_RUNTIME, naming the sum) a call whose sums could run
 * more than 2^31 - 1 iterations per evaluation or 2^50 body evaluations in
 * all, bounded by interval arithmetic over the whole call.  Every backend's
 * call goes through it before any work starts. */
attnc_status tile_check_work(const Plan *p, const BoundCall *bc, attnc_error *err);

/* Text: the IR, the plan and (when tm is not NULL) the tile statistics. */
void plan_print(const Plan *p, const TileMap *tm, StrBuf *out);
/* The tile statistics of tm under the heading `title`. */
void plan_print_tile_map(const Plan *p, const TileMap *tm, const char *title, StrBuf *out);

#endif
