/* schedule.h — where a kernel computes every value: its loop nest, the loop
 * each IR node lives in, what one loop hands to a deeper one, how sums are
 * hoisted, the low-rank column layout, and the rules of the kernel (tile
 * group, normalisation, empty rows, vector width) as data.
 *
 * The plan (plan.h) says *what* a kernel computes; the schedule, computed
 * once from it (schedule.c, the last step of plan_compile), says *where*.
 * Every backend translates the schedule and derives none of it: the C and
 * CUDA emitters print its steps as text (backends/c/c_holes.c), the LLVM
 * backend builds them (backends/llvm/llvm_steps.c), refplan executes them
 * (runtime/plan_run.c).  `attnc emit --target ir` prints it.
 *
 * The forward kernel's loop nest (a kernel is a list of loops like these,
 * so the decode and backward kernels are other lists of the same kinds):
 *
 *   call                     scratch size: the low-rank column counts
 *   item  (b, h, q tile)     values of the call and of (b, h)
 *     row   (q of the tile)  row values, low-rank Q columns, the LSE offset
 *     tile  (kv tiles listed by the tile map of the item's group)
 *       col   (kv of the tile)   kv values, low-rank K columns
 *       dense S = scale * Q.K^T (+ the low-rank columns' product)
 *       elem  (q, kv)            pre, the fault check, masks (PARTIAL
 *                                tiles), the score or weight
 *       dense O_acc += P.V after the normaliser's update
 *     finish (q of the tile)  O and LSE by the normalisation and empty-row rules
 *
 * Steps.  Each block (a hole of one loop) is a list of steps in the order a
 * backend emits them.  A step computes one node from operands that are, at
 * that point, available: a leaf (sched_is_leaf), computed by an earlier
 * step of this block or of a block that encloses it, or held in a slot. */
#ifndef ATTNC_SCHEDULE_H
#define ATTNC_SCHEDULE_H
#include <math.h>

#include "ir.h"
#include "status.h"
#include "strbuf.h"

struct Plan;

/* The loops of a kernel, outermost first. */
typedef enum SchedLoop { SL_CALL, SL_ITEM, SL_ROW, SL_TILE, SL_COL, SL_ELEM, SL_FINISH, SL_COUNT } SchedLoop;

/* The blocks of the forward kernel, in the order their steps are emitted.
 * The element blocks share one scope in this order: PRE, then KEEP (PARTIAL
 * tiles only), then the VALUE of the tile's mode.  The fault check is its
 * own scope (what only the check needs is not computed when a call skips
 * it), so its values are not available to KEEP or VALUE: FAULT after PRE
 * (any tile), or on PARTIAL tiles FAULT_PARTIAL after KEEP, reusing the
 * masks' values; a backend uses one or the other.  For the same
 * reason the row and kv values only the fault check reads are in ROW_FAULT
 * and COL_FAULT, which continue the scope of ROW and COL (after their
 * steps) only in calls that check faults. */
typedef enum SchedBlockId {
    SB_SCRATCH,       /* call: what sizing the scratch reads (low-rank counts) */
    SB_ITEM,          /* item: values of the call and of (b, h); low-rank counts and offsets */
    SB_ROW,           /* row: row values, low-rank Q columns, the LSE offset */
    SB_COL,           /* col: kv values, low-rank K columns */
    SB_PRE,           /* elem: bias; result: pre = scale * dot + bias + low-rank term */
    SB_FAULT,         /* elem, after PRE, when the call checks faults: result fault */
    SB_KEEP,          /* elem, PARTIAL tiles: result keep (the masks) */
    SB_VALUE_PARTIAL, /* elem, PARTIAL tiles, after KEEP: result score (softmax) or weight */
    SB_VALUE_FULL,    /* elem, FULL tiles, after PRE: the same */
    SB_ROW_FAULT,     /* row, after ROW, when the call checks faults: what only FAULT reads */
    SB_COL_FAULT,     /* col, after COL, when the call checks faults: the same */
    SB_FAULT_PARTIAL, /* elem, PARTIAL tiles, after KEEP, when the call checks faults: result fault */
    SB_DIAG,          /* tile: per visited kv tile of a row block, before its elements, once per distance
                       * d = kv - q the tile's elements can meet: the bodies of the IR_DIAG nodes
                       * (pass_toeplitz.c), stored by STEP_DIAG_STORE into table k at d; its scope
                       * continues the item's (it reads item values), q and kv are bound to any pair
                       * with kv - q = d.  An element block reads an IR_DIAG node with a STEP_VALUE:
                       * table slot_of[node] at the element's kv - q.  Empty without IR_DIAG nodes */
    /* Version 2, around the kernel (spec 9.3, 9.4): standalone blocks, each
     * computing every value it reads itself (from b, h, hk, q, kv, the sizes,
     * params and tensors), for code that rotates rows before the kernel and
     * merges sinks after it.  Empty without a rotary (a sink). */
    SB_ROPE,          /* per call: rotary's dims, base, interleaved and their fault (result rope_fault) */
    SB_QPOS,          /* per (b, h, q): result qpos; then qpos_fault */
    SB_KVPOS,         /* per (b, hk, kv): result kvpos; then kvpos_fault */
    SB_SINK,          /* per (b, h, q): result sink; then sink_fault */
    SB_COUNT
} SchedBlockId;

typedef enum StepOp {
    STEP_VALUE,         /* node: compute it */
    STEP_SUM_OPEN,      /* node (IR_SUM / IR_ANY, aux = level): its accumulator = 0, then a loop of sum
                         * variable `level` over [0, bound) (args[0], available); IR_ANY stops once true */
    STEP_SUM_CLOSE,     /* node: accumulator += body (args[1], available); end of the loop: node available */
    STEP_EXPORT,        /* node: store it into slot aux of this block's loop (row or col) */
    STEP_LOWRANK_COUNT, /* aux g, node count: n_g = max(count, 0); column offset at_g = columns so far; columns += n_g */
    STEP_LOWRANK_LIMIT, /* after the counts: more than SCHED_MAX_LOWRANK_COLS columns fails the call */
    STEP_LOWRANK_OPEN,  /* aux g: a loop of sum variable 0 over [0, n_g) */
    STEP_LOWRANK_STORE, /* aux g, node: the column value at (this row or kv, at_g + r0) */
    STEP_LOWRANK_CLOSE, /* aux g: end of that loop */
    STEP_LSE_OFFSET,    /* node: the row's LSE offset (available) */
    STEP_DIAG_STORE,    /* SB_DIAG only; aux k, node: the body of diag_nodes[k] (available) into table k at this d */
} StepOp;

typedef struct SchedStep {
    StepOp op;
    IrRef node;
    int aux;
} SchedStep;

typedef struct SchedBlock {
    SchedLoop loop;
    SchedStep *steps;
    int nsteps, cap;
    IrRef result; /* the value the block delivers (see SchedBlockId), IR_NONE for none */
} SchedBlock;

/* Whether block id is one of the standalone blocks (SB_ROPE ...). */
static inline int sched_block_standalone(SchedBlockId id) { return id >= SB_ROPE && id < SB_COUNT; }

/* Where a block reads a node from. */
typedef enum SchedHome {
    SH_LEAF,     /* a leaf the backend names directly (sched_is_leaf) */
    SH_LOCAL,    /* computed by a step of this block or of the item block */
    SH_ROW_SLOT, /* slot slot_of[node] of the row loop (read by the element blocks) */
    SH_COL_SLOT, /* slot col_slot[node] of the col loop */
} SchedHome;

/* More low-rank columns than this fail the call (the interpreter then gives
 * the answer or the error): no tensor could hold them, and the scratch size
 * must not overflow. */
#define SCHED_MAX_LOWRANK_COLS (1 << 24)

typedef struct Schedule {
    const IrModule *m;
    SchedBlock block[SB_COUNT];
    /* slots: the row (col) values the element blocks read, in slot order */
    int nrow_slots, ncol_slots;
    IrRef *row_slots, *col_slots;
    int *slot_of;   /* per node: its slot in the row or col loop, -1 when none; of an IR_DIAG node: its table */
    /* diagonal tables (SB_DIAG): table k holds the body of IR_DIAG node
     * diag_nodes[k] per distance kv - q; a work item's heads are then never packed */
    int ndiag;
    IrRef *diag_nodes;
    /* the block-order plan's (pass_grid.c) tables are of grid offsets
     * (IR_DIAG aux DIAG_GRID) when diag_grid[0] > 0: its q tiles are
     * diag_grid[0] x [1] blocks of cells, its kv tiles [2] x [3].  Table k
     * of a pair of tiles then holds, for each corner key c of the kv tile
     * (0: its first cell, 1: the last of its first row, 2: the first of its
     * last row, 3: its last; sched_grid_corner) and each row i of the q
     * tile, the body at (q0 + i, k0 + corner c); the element (i, j) reads
     * entry sched_grid_entry(s, stride, i, j), the one at the same offsets */
    int diag_grid[4];
    SchedLoop *loop_of; /* per node not under a sum: the loop that computes it */
    /* low-rank groups: count, Q-side and K-side column of each */
    int nlowrank;
    /* the rules */
    int softmax;      /* 1: online softmax in the log2 domain (m tracks max(score * log2 e));
                       * 0: a weight clause: O = sum_kv weight * V, l = sum of weights */
    int lse_offset;   /* the LSE gains the row's offset (softmax-invariant bias terms) */
    int needs_mask, needs_fault;
    /* the tile group of (b, h) is b * group_stride_b + h * group_stride_h (sched_group_strides) */
    int group_by_b, group_by_h;
    int vec_width;    /* float lanes of the target's vectors */
    /* 1: a work item may hold several query heads of one kv head, its rows
     * packed (AttnCall.pack): every value of h is computed in the row (or
     * element) loop, and the tile map does not vary with the head */
    int pack_heads;
    int bq, bk;
    /* the band of keys of each row (plan.h's band_lo, band_hi; IR_NONE: none):
     * keep implies band_lo <= kv <= band_hi.  The row block computes them
     * (a row slot each when they vary with q), so a backend may skip the
     * keys of a PARTIAL tile outside a row's band without evaluating keep */
    IrRef band_lo, band_hi;
    char why[160]; /* not empty: the steps could not be built, and why */
} Schedule;

/* The schedule of plan p (its IR after the passes); NULL when out of
 * memory.  When the plan holds what no kernel can compute, `why` says so
 * and the blocks are empty: a compiled backend then refuses the plan (the
 * interpreter still runs it). */
Schedule *sched_build(Arena *arena, const struct Plan *p);

/* Check s against its own rules (operands available at each step, loops
 * balanced, slots stored before they are read, results available): 0 when
 * it holds, 1 with `why` set when not, -1 when out of memory.  sched_build
 * runs it on every schedule. */
int sched_verify(const Schedule *s, const IrFunc *f, char *why, size_t why_len);

/* Leaves: constants, the built-in variables, sum variables and pre. */
int sched_is_leaf(const IrNode *n);

/* Key j of a kv tile (0 <= j < bk) of corner c (0..3) of the grid's kv tile (Schedule.diag_grid). */
static inline int sched_grid_corner(const Schedule *s, int c) {
    return (c & 2 ? s->diag_grid[3] - 1 : 0) * s->diag_grid[2] + (c & 1 ? s->diag_grid[2] - 1 : 0);
}

/* The entry of a grid table (Schedule.diag_grid) that element (q0 + i, k0 + j) of a pair of tiles reads:
 * c * stride + i' (stride >= bq entries per corner) for corner c and row i' at the same row and column
 * offsets as (i, j).  A key in an earlier row (column) of the tile than row i's cell meets it from the
 * corner's first row (column), a later one from its last.  Needs kbx <= qbx + 1 and kby <= qby + 1
 * (pass_grid makes grid tables only then). */
static inline int64_t sched_grid_entry(const Schedule *s, int64_t stride, int64_t i, int64_t j) {
    int64_t qbx = s->diag_grid[0], kbx = s->diag_grid[2], kby = s->diag_grid[3];
    int64_t dx = j % kbx - i % qbx, dy = j / kbx - i / qbx; /* the key's cell minus the row's */
    int cx = dx > 0, cy = dy > 0;
    int64_t ix = (cx ? kbx - 1 : 0) - dx, iy = (cy ? kby - 1 : 0) - dy; /* the corner's row at the same offsets */
    return (int64_t)(cy * 2 + cx) * stride + iy * qbx + ix;
}

/* Where block `b` reads node r from. */
SchedHome sched_home(const Schedule *s, SchedBlockId b, IrRef r);

/* The group strides of the tile map: group(b, h) = b * *sb + h * *sh. */
void sched_group_strides(const Schedule *s, int64_t H, int64_t *sb, int64_t *sh);

/* A row that is empty gives O = 0 and LSE = -inf.  A row is empty when it
 * kept no element, or (softmax) its running max is still -inf, or (with an
 * LSE offset) the offset is NaN or -inf.  The one statement of the rule:
 * every backend's finish code computes exactly this. */
static inline int sched_row_is_empty(const Schedule *s, int any, double m, double offset) {
    return !any || (s->softmax && m == -INFINITY) || (s->lse_offset && (isnan(offset) || offset == -INFINITY));
}

/* Names, for printing. */
const char *sched_loop_name(SchedLoop l);
const char *sched_block_name(SchedBlockId b);

/* The schedule as text (`attnc emit --target ir`, the golden dumps). */
void sched_print(const Schedule *s, StrBuf *out);
/* One block as text: a header line "  NAME (loop L): result %r", then its
 * steps (sched_print_steps) indented `depth` levels of two spaces. */
void sched_print_block(const IrModule *m, const SchedBlock *blk, const char *name, StrBuf *out);
void sched_print_steps(const IrModule *m, const SchedBlock *blk, int depth, StrBuf *out);

#endif
