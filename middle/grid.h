/* grid.h — multi-dimensional tiles (docs/multidim-tiles.md).
 *
 * When an attention's masks read q and kv as coordinates of one row-major
 * grid (`q % W`, `q / W`, `kv % W`, `kv / W` with the same call-level W),
 * pass_grid builds a second plan of the same attention over rows in *block
 * order*: rows are numbered block by block (a block of bx x by grid cells,
 * bx * by = the tile size), so a q tile (kv tile) is a bx x by spatial block
 * and the tile analysis (tiles.c) classifies spatial tiles.  In that plan
 * the IR's q and kv are block-order indices i; the grid coordinates are
 *     t = i / (bx * by), j = i % (bx * by), nbx = W / bx,
 *     x = (t % nbx) * bx + j % bx,   y = (t / nbx) * by + j / bx,
 * substituted for `q % W` and `q / W` (and y * W + x for any other use of q),
 * the same for kv with its own block.  When the masks also read
 * `(q / W) % H` (three axes: W columns, H rows, L / (W * H) planes) the
 * blocks are bx x by x bz:
 *     nby = H / by, x as above, y = (t / nbx % nby) * by + j / bx % by,
 *     z = (t / nbx / nby) * bz + j / (bx * by),
 * substituted for `(q / W) % H`, `(q / W) / H` and `q / (W * H)`, and
 * z * H + y for `q / W`.  A call uses it when the grid divides
 * (grid_applies): the runtime (runtime/launch.c) copies Q, K, V into block
 * order, runs the grid plan's kernel, and scatters O and LSE back. */
#ifndef ATTNC_GRID_H
#define ATTNC_GRID_H
#include "call.h"
#include "ir.h"

struct Plan;

typedef struct GridTiling {
    struct Plan *plan;      /* the plan over block-order rows (no backward: the backward runs the 1-D plan) */
    IrRef width;            /* W: a node of the call (sizes, params), in the plans' shared module */
    IrRef height;           /* H of the 3-axis form, a node of the call; IR_NONE: two axes (H = Lq / W) */
    /* a q tile is a qbx x qby x qbz block (their product = bq), a kv tile kbx x kby x kbz (= bk); bz = 1 for two axes */
    int qbx, qby, qbz, kbx, kby, kbz;
} GridTiling;

/* Build p->grid when p's masks decompose q and kv over a grid and the
 * block-order plan's tile sizes (`bq` rows of q, `bk` of kv) are powers of
 * two >= 4 (else leave it NULL): rewrites a copy of p->f (with `toeplitz`,
 * terms of the cells' offsets on a 2-D grid become grid tables:
 * pass_toeplitz_grid, Plan.diag_grid); must run before
 * p's schedule is built (it adds nodes to the module).  0 when out of
 * memory, else 1. */
int pass_grid(Arena *arena, struct Plan *p, int bq, int bk, int toeplitz);

/* The block-order plan's q tile when none is asked for: 16 rows, a 4 x 4
 * block (4 x 2 x 2 with three axes).  A block's neighbourhoods cover its
 * size plus the kernel less one along each axis, rounded out to kv tiles:
 * for 7 x 7 over 4 x 4 kv blocks, an 8 x 8 query block visits 4.6 pairs per
 * kept pair, a 4 x 4 one 2.7 (3-D 3 x 3 x 3, counted by hand: 10.7 against 4.7), and a
 * 16-row tile is still one row vector of the kernel. */
#define GRID_DEFAULT_BQ 16

/* The block-order plan's kv tile when none is asked for: 16 rows, a 4 x 4
 * block.  An 8 x 8 query block's 7 x 7 neighbourhoods cover 14 x 14 keys:
 * nine 8 x 8 kv tiles (8.5% of their pairs kept) but sixteen 4 x 4 ones
 * (19%); measured 77-83 ms against 115 ms for natten2d at L = 4096 (see
 * docs/multidim-tiles.md). */
#define GRID_DEFAULT_BK 16

/* Whether call bc can run g's plan (1, else 0; -1 out of memory), with *W,
 * *H its grid's width and height (two axes: H = Lq / W): Lq == Lk, W, H > 0,
 * W * H divides Lq, both blocks divide the grid (W by bx, H by by, Lq / (W *
 * H) by bz). */
int grid_applies(const struct Plan *p, const GridTiling *g, const BoundCall *bc, int64_t *W, int64_t *H);

/* The original row of block-order row i (blocks bx x by x bz) of a grid W
 * wide and H high (two axes: bz = 1, any H that by divides). */
static inline int64_t grid_row(int64_t W, int64_t H, int bx, int by, int bz, int64_t i) {
    int64_t area = (int64_t)bx * by * bz, t = i / area, j = i % area, nbx = W / bx, nby = H / by;
    int64_t x = (t % nbx) * bx + j % bx, y = (t / nbx % nby) * by + j / bx % by;
    int64_t z = (t / nbx / nby) * bz + j / ((int64_t)bx * by);
    return (z * H + y) * W + x;
}

#endif
