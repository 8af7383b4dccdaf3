/* pass_grid.c — multi-dimensional tiles: recognise masks that decompose q
 * and kv over a grid, and build the plan over rows in block order (grid.h;
 * docs/multidim-tiles.md).
 * Requires: a Plan after the passes, before its schedule.  Produces:
 * p->grid (or NULL), whose plan shares p's module and has its own IrFunc,
 * band (pass_band on it: p's bounds original keys) and schedule; Toeplitz
 * terms of kv - q become there, on a 2-D grid with `toeplitz`, terms of
 * the cells' offsets (pass_toeplitz_grid), else are computed per element. */
#include <stdlib.h>
#include <string.h>

#include "grid.h"
#include "ir_passes.h"
#include "plan.h"

/* A node of the call: reads sizes, params and constants only. */
static int call_level(const IrModule *m, IrRef r) {
    return (ir_at(m, r)->deps & (DEP_ELEMENT | DEP_SUMVAR | DEP_HK)) == 0 && ir_at(m, r)->type == T_INT;
}

/* Whether some node reachable from root is `var % w` or `var / w` (op). */
static int uses(const IrModule *m, const unsigned char *live, IrRef var, IrRef w, IrOp op) {
    for (int i = 0; i < m->n; i++) {
        const IrNode *n = ir_at(m, i);
        if (live[i] && n->op == op && n->nargs == 2 && n->args[0] == var && n->args[1] == w) return 1;
    }
    return 0;
}

/* Whether some live node is `var / (w * h)` (either order of the product). */
static int divides_by_area(const IrModule *m, const unsigned char *live, IrRef var, IrRef w, IrRef h) {
    for (int i = 0; i < m->n; i++) {
        const IrNode *n = ir_at(m, i), *a = n->nargs == 2 ? ir_at(m, n->args[1]) : NULL;
        if (live[i] && n->op == IR_DIV && n->args[0] == var && a->op == IR_MUL &&
            ((a->args[0] == w && a->args[1] == h) || (a->args[0] == h && a->args[1] == w)))
            return 1;
    }
    return 0;
}

/* The 3-axis form's height: the first h of the call with `(var / w) % h`
 * and `var / (w * h)` both in the masks, or IR_NONE.  Both are asked for:
 * `(q / W) % d` alone is also a 2-D dilation group (na2d_dilated), whose
 * blocks should stay two-dimensional. */
static IrRef find_height(const IrModule *m, const unsigned char *live, IrRef var, IrRef w) {
    for (int i = 0; i < m->n; i++) {
        const IrNode *n = ir_at(m, i);
        if (!live[i] || n->op != IR_MOD || !call_level(m, n->args[1])) continue;
        const IrNode *d = ir_at(m, n->args[0]);
        if (d->op == IR_DIV && d->args[0] == var && d->args[1] == w && divides_by_area(m, live, var, w, n->args[1]))
            return n->args[1];
    }
    return IR_NONE;
}

/* The grid width the masks read: the first W with `q % W` in keep and
 * `kv % W` or `kv / W` there too; IR_NONE when none.  *height: the H of
 * `(q / W) % H` when the masks read three axes, else IR_NONE. */
static IrRef find_width(const IrModule *m, const IrFunc *f, unsigned char *live, IrRef *height) {
    IrRef qv = IR_NONE, kvv = IR_NONE;
    memset(live, 0, (size_t)m->n);
    if (f->keep == IR_NONE) return IR_NONE;
    live[f->keep] = 1;
    for (int i = f->keep; i >= 0; i--) {
        if (!live[i]) continue;
        const IrNode *n = ir_at(m, i);
        for (int a = 0; a < n->nargs; a++) live[n->args[a]] = 1;
        if (n->op == IR_VAR && n->aux == V_Q) qv = i;
        if (n->op == IR_VAR && n->aux == V_KV) kvv = i;
    }
    if (qv == IR_NONE || kvv == IR_NONE) return IR_NONE;
    for (int i = 0; i < m->n; i++) {
        const IrNode *n = ir_at(m, i);
        if (!live[i] || n->op != IR_MOD || n->args[0] != qv || !call_level(m, n->args[1])) continue;
        IrRef w = n->args[1];
        if (uses(m, live, kvv, w, IR_MOD) || uses(m, live, kvv, w, IR_DIV)) {
            *height = find_height(m, live, qv, w);
            return w;
        }
    }
    return IR_NONE;
}

/* The block of a tile of t rows: bx x by with bx * by = t, as square as
 * powers of two allow (64: 8 x 8, 32: 8 x 4, 16: 4 x 4); 0 when t is not a
 * power of two >= 4. */
static int block_shape(int t, int *bx, int *by) {
    if (t < 4 || (t & (t - 1))) return 0;
    int lg = 0;
    while ((1 << lg) < t) lg++;
    *by = 1 << (lg / 2);
    *bx = t / *by;
    return 1;
}

/* The same for three axes: bx x by x bz = t, x getting the most (64: 4 x 4 x
 * 4, 32: 4 x 4 x 2, 16: 4 x 2 x 2). */
static int block_shape3(int t, int *bx, int *by, int *bz) {
    if (t < 4 || (t & (t - 1))) return 0;
    int lg = 0;
    while ((1 << lg) < t) lg++;
    int ax = (lg + 2) / 3, ay = (lg - ax + 1) / 2;
    *bx = 1 << ax, *by = 1 << ay, *bz = 1 << (lg - ax - ay);
    return 1;
}

typedef struct Subst {
    IrRef var[2], w, h;  /* q and kv (old nodes), W, H (IR_NONE: two axes) */
    IrRef x[2], y[2], z[2]; /* their grid coordinates (z: three axes), of the block-order index */
    IrRef row2[2], row[2];  /* var / W (y, or z * H + y) and the original row */
} Subst;

/* Whether node r is W * H (either order). */
static int is_area(const IrModule *m, const Subst *s, IrRef r) {
    const IrNode *n = ir_at(m, r);
    return s->h != IR_NONE && n->op == IR_MUL &&
           ((n->args[0] == s->w && n->args[1] == s->h) || (n->args[0] == s->h && n->args[1] == s->w));
}

static IrRef subst(IrModule *m, IrRef old, const IrNode *n, const IrRef *new_args, void *ctx) {
    const Subst *s = ctx;
    /* a Toeplitz term (pass_toeplitz.c) is read along diagonals of kv - q, which in block order are not
     * diagonals: its body, per element (or in a grid table: pass_toeplitz_grid, run before) */
    if (n->op == IR_DIAG && n->aux == DIAG_DISTANCE) return new_args[0];
    int divmod = (n->op == IR_MOD || n->op == IR_DIV) && n->nargs == 2;
    for (int k = 0; k < 2; k++) {
        if (old == s->var[k]) return s->row[k];
        if (!divmod) continue;
        if (n->args[0] == s->var[k] && n->args[1] == s->w) return n->op == IR_MOD ? s->x[k] : s->row2[k];
        if (n->args[0] == s->var[k] && is_area(m, s, n->args[1]) && n->op == IR_DIV) return s->z[k];
        const IrNode *a = ir_at(m, n->args[0]);
        if (s->h != IR_NONE && n->args[1] == s->h && a->op == IR_DIV && a->args[0] == s->var[k] && a->args[1] == s->w)
            return n->op == IR_MOD ? s->y[k] : s->z[k];
    }
    return IR_NONE;
}

static IrRef add_mul(IrModule *m, IrRef a, IrRef b, IrRef c) { /* a * b + c */
    return ir_op2(m, IR_ADD, T_INT, ir_op2(m, IR_MUL, T_INT, a, b), c);
}

/* x, y (z) and the original row of block-order index `var` (blocks bx x by
 * (x bz)): grid.h's formulas. */
static void coords(IrModule *m, Subst *s, int k, int bx, int by, int bz) {
    IrRef i = s->var[k], area = ir_int(m, (int64_t)bx * by * bz), cx = ir_int(m, bx), cy = ir_int(m, by);
    IrRef t = ir_op2(m, IR_DIV, T_INT, i, area), j = ir_op2(m, IR_MOD, T_INT, i, area);
    IrRef nbx = ir_op2(m, IR_DIV, T_INT, s->w, cx);
    IrRef tx = ir_op2(m, IR_MOD, T_INT, t, nbx), ty = ir_op2(m, IR_DIV, T_INT, t, nbx);
    s->x[k] = add_mul(m, tx, cx, ir_op2(m, IR_MOD, T_INT, j, cx));
    if (s->h == IR_NONE) {
        s->y[k] = s->row2[k] = add_mul(m, ty, cy, ir_op2(m, IR_DIV, T_INT, j, cx));
    } else { /* ty runs over the blocks of a plane and then the planes */
        IrRef nby = ir_op2(m, IR_DIV, T_INT, s->h, cy), cxy = ir_int(m, (int64_t)bx * by);
        IrRef ty2 = ir_op2(m, IR_MOD, T_INT, ty, nby), tz = ir_op2(m, IR_DIV, T_INT, ty, nby);
        s->y[k] = add_mul(m, ty2, cy, ir_op2(m, IR_MOD, T_INT, ir_op2(m, IR_DIV, T_INT, j, cx), cy));
        s->z[k] = add_mul(m, tz, ir_int(m, bz), ir_op2(m, IR_DIV, T_INT, j, cxy));
        s->row2[k] = add_mul(m, s->z[k], s->h, s->y[k]);
    }
    s->row[k] = add_mul(m, s->row2[k], s->w, s->x[k]);
}

int pass_grid(Arena *arena, Plan *p, int bq, int bk, int toeplitz) {
    IrModule *m = p->ir;
    const IrFunc *f = p->f;
    p->grid = NULL;
    int qbx, qby, qbz = 1, kbx, kby, kbz = 1;
    /* version 2's rows and sinks are made around the kernel by original row: not here */
    if (f->rope_dims != IR_NONE || f->qpos != IR_NONE || f->kvpos != IR_NONE || f->sink != IR_NONE) return 1;
    unsigned char *live = malloc((size_t)m->n + 1);
    if (!live) return 0;
    IrRef h = IR_NONE, w = find_width(m, f, live, &h);
    free(live);
    if (w == IR_NONE) return 1;
    if (h == IR_NONE ? !block_shape(bq, &qbx, &qby) || !block_shape(bk, &kbx, &kby)
                     : !block_shape3(bq, &qbx, &qby, &qbz) || !block_shape3(bk, &kbx, &kby, &kbz))
        return 1;
    GridTiling *g = arena_alloc(arena, sizeof *g);
    Plan *sub = arena_alloc(arena, sizeof *sub);
    IrFunc *sf = arena_alloc(arena, sizeof *sf);
    if (!g || !sub || !sf) return 0;
    *sf = *f;
    if (f->nlowrank) { /* ir_rewrite rewrites these in place */
        size_t bytes = sizeof(IrRef) * (size_t)f->nlowrank;
        sf->lowrank_count = arena_alloc(arena, bytes), sf->lowrank_q = arena_alloc(arena, bytes);
        sf->lowrank_k = arena_alloc(arena, bytes);
        if (!sf->lowrank_count || !sf->lowrank_q || !sf->lowrank_k) return 0;
        memcpy(sf->lowrank_count, f->lowrank_count, bytes);
        memcpy(sf->lowrank_q, f->lowrank_q, bytes);
        memcpy(sf->lowrank_k, f->lowrank_k, bytes);
    }
    /* terms of the cells' offsets, on the original rows (where `kv / W - q / W` can be seen); two axes only,
     * blocks for which every offset of a pair of tiles meets a corner key (schedule.h: sched_grid_entry) */
    int grid_tables = toeplitz && h == IR_NONE && kbx <= qbx + 1 && kby <= qby + 1 && pass_toeplitz_grid(m, sf, w);
    if (m->failed) return 0;
    Subst s = {.var = {ir_var(m, V_Q), ir_var(m, V_KV)}, .w = w, .h = h};
    coords(m, &s, 0, qbx, qby, qbz);
    coords(m, &s, 1, kbx, kby, kbz);
    ir_rewrite(m, sf, subst, &s);
    pass_fold(m, sf);
    if (m->failed) return 0;
    *sub = *p;
    sub->f = sf;
    /* p's band bounds original keys; a band of block-order keys is what pass_band finds in sf (keys of a row
     * are seldom an interval there: mostly none) */
    pass_band(m, sf, &sub->band_lo, &sub->band_hi);
    if (m->failed) return 0;
    sub->bq = bq, sub->bk = bk;
    if (grid_tables) sub->diag_grid[0] = qbx, sub->diag_grid[1] = qby, sub->diag_grid[2] = kbx, sub->diag_grid[3] = kby;
    plan_mask_facts(sub);
    sub->grad = NULL, sub->grad_sched = NULL, sub->grid = NULL;
    sub->grad_error = "the plan over block-order rows has no backward (the 1-D plan's runs)";
    *g = (GridTiling){.plan = sub, .width = w, .height = h, .qbx = qbx, .qby = qby, .qbz = qbz, .kbx = kbx,
                      .kby = kby, .kbz = kbz};
    p->grid = g;
    return 1;
}

int grid_applies(const Plan *p, const GridTiling *g, const BoundCall *bc, int64_t *W, int64_t *H) {
    const attnc_sizes *sz = &bc->sz;
    if (!g || sz->Lq != sz->Lk || sz->Lq <= 0) return 0;
    IrEval ev;
    if (!ir_eval_init(&ev, p->ir)) return -1; /* not 0: the call would run the other plan, silently */
    ev.sz = *sz;
    ev.params = bc->params;
    ev.tensors = bc->tensors;
    int64_t w = ir_eval(&ev, g->width).i;
    ir_eval_reset(&ev);
    int64_t h = g->height == IR_NONE ? (w > 0 ? sz->Lq / w : 0) : ir_eval(&ev, g->height).i;
    ir_eval_free(&ev);
    *W = w, *H = h;
    if (w <= 0 || h <= 0 || w > sz->Lq / h || sz->Lq % (w * h)) return 0;
    int64_t planes = sz->Lq / (w * h);
    return w % g->qbx == 0 && w % g->kbx == 0 && h % g->qby == 0 && h % g->kby == 0 && planes % g->qbz == 0 &&
           planes % g->kbz == 0;
}
