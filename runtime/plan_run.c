/* plan_run.c — the kernel's schedule executed by a scalar reference in
 * float64 (backend "refplan").  Requires: a Plan with its Schedule
 * (call->kernel_data).  It is a kernel of the launch ABI (kernel_abi.h), run
 * by launch.c like every compiled backend, so it also exercises the driver
 * and the threads.
 *
 * Produces: O and LSE exactly as a compiled kernel computes them from the
 * schedule (middle/schedule.h) — its blocks' steps run by plan_steps.c in
 * the loop nest of templates/tile.c: per work item SB_SCRATCH and SB_ITEM,
 * per row SB_ROW, per visited kv tile SB_COL per kv, then per element
 * SB_PRE, SB_KEEP (PARTIAL tiles), SB_FAULT or on PARTIAL tiles
 * SB_FAULT_PARTIAL (when the call checks faults) and the value; online softmax in the log2 domain, the schedule's empty-row
 * rule — but without vectors or threads.  Q, K and V are read exactly at
 * the call's element types and strides, O is rounded once to its type and
 * written at its strides, LSE at its (tensor_io.h).  Its purpose is to test the middle
 * end: any difference from the interpreter is a bug in a pass, in the tile
 * analysis, in the plan or in the schedule. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "plan.h"
#include "plan_run.h"
#include "plan_steps.h"
#include "registry.h"
#include "tensor_io.h"

/* More scratch than this per thread is no call a machine runs: the work
 * item fails instead, and the interpreter gives the answer or the error. */
#define REFPLAN_MAX_SCRATCH ((int64_t)1 << 40)

/* A work item's scratch. */
typedef struct Parts {
    /* the prefix: what the scratch block's steps need (refplan_scratch_bytes runs them too) */
    Const *val;
    uint64_t *stamp;
    Const *params;
    attnc_tensor *tens;
    const attnc_tensor **tptr;
    int64_t *lr_n, *lr_at;
    /* the rest: rows, slots, low-rank columns */
    double *m, *l, *lse_off, *acc; /* [bq], [bq], [bq], [bq][Dv] */
    int64_t *any;                  /* [bq] */
    Const *row_slot, *col_slot;
    uint64_t *row_ok, *col_ok;
    double *qcol, *kcol;
    Const *diag;       /* [ndiag][bq + bk - 1]: the diagonal tables of a tile */
    uint64_t *diag_ok;
} Parts;

/* Hand out n1 * n2 items of `size` bytes at *off (base NULL: only count);
 * *off becomes -1 once the total would pass REFPLAN_MAX_SCRATCH. */
static void *take(char *base, int64_t *off, int64_t n1, int64_t n2, int64_t size) {
    int64_t count, bytes;
    if (*off < 0 || n1 < 0 || n2 < 0 || __builtin_mul_overflow(n1, n2, &count) ||
        __builtin_mul_overflow(count, size, &bytes) || bytes > REFPLAN_MAX_SCRATCH - *off) {
        *off = -1;
        return NULL;
    }
    void *p = base ? base + *off : NULL;
    *off += (bytes + 7) / 8 * 8;
    return p;
}

/* The entries of one table of the diag block: a distance's bq + bk - 1 (one spare), or 4 corner keys' bq
 * rows of a grid table (schedule.h: diag_grid). */
static int64_t diag_cap(const Schedule *s, const AttnCall *c) { return s->diag_grid[0] ? 4 * c->bq : c->bq + c->bk; }

/* Lay the scratch out over base (NULL: measure only) for `cols` low-rank
 * columns, only its prefix when prefix_only; returns its size, -1 when too large. */
static int64_t layout(const AttnCall *c, const Plan *p, int64_t cols, int prefix_only, char *base, Parts *P) {
    const Schedule *s = p->sched;
    int64_t off = 0, nodes = p->ir->n + 1;
    P->val = take(base, &off, nodes, 1, sizeof(Const));
    P->stamp = take(base, &off, nodes, 1, sizeof(uint64_t));
    P->params = take(base, &off, p->attn->nparams + 1, 1, sizeof(Const));
    P->tens = take(base, &off, p->attn->ntensors + 1, 1, sizeof(attnc_tensor));
    P->tptr = take(base, &off, p->attn->ntensors + 1, 1, sizeof(attnc_tensor *));
    P->lr_n = take(base, &off, s->nlowrank + 1, 1, sizeof(int64_t));
    P->lr_at = take(base, &off, s->nlowrank + 1, 1, sizeof(int64_t));
    if (prefix_only) return off;
    P->m = take(base, &off, c->bq, 1, sizeof(double));
    P->l = take(base, &off, c->bq, 1, sizeof(double));
    P->lse_off = take(base, &off, c->bq, 1, sizeof(double));
    P->any = take(base, &off, c->bq, 1, sizeof(int64_t));
    P->acc = take(base, &off, c->bq, c->Dv, sizeof(double));
    P->row_slot = take(base, &off, s->nrow_slots, c->bq, sizeof(Const));
    P->row_ok = take(base, &off, s->nrow_slots, c->bq, sizeof(uint64_t));
    P->col_slot = take(base, &off, s->ncol_slots, c->bk, sizeof(Const));
    P->col_ok = take(base, &off, s->ncol_slots, c->bk, sizeof(uint64_t));
    P->qcol = take(base, &off, c->bq, cols, sizeof(double));
    P->kcol = take(base, &off, c->bk, cols, sizeof(double));
    P->diag = take(base, &off, s->ndiag, diag_cap(s, c), sizeof(Const));
    P->diag_ok = take(base, &off, s->ndiag, diag_cap(s, c), sizeof(uint64_t));
    return off;
}

/* The step interpreter over the prefix: sizes, params and tensors as the
 * evaluator reads them, no value computed yet. */
static void bind(const AttnCall *c, const Plan *p, const Parts *P, StepRun *R) {
    memset(R, 0, sizeof *R);
    R->s = p->sched;
    R->ev.m = p->ir;
    R->ev.sz = (attnc_sizes){c->B, c->H, c->Hkv, c->Lq, c->Lk, c->D, c->Dv};
    for (int i = 0; i < p->attn->nparams; i++) {
        Type t = p->attn->params[i]->type;
        if (t == T_FLOAT) P->params[i].f = c->params[i].f;
        else if (t == T_BOOL) P->params[i].b = (int)c->params[i].i;
        else P->params[i].i = c->params[i].i;
    }
    for (int i = 0; i < p->attn->ntensors; i++) {
        memset(&P->tens[i], 0, sizeof P->tens[i]);
        P->tens[i].dtype = p->attn->tensors[i]->type == T_INT ? ATTNC_I32 : ATTNC_F32;
        P->tens[i].rank = p->attn->tensors[i]->ndims;
        P->tens[i].data = c->tensor_data[i];
        P->tptr[i] = &P->tens[i];
    }
    R->ev.params = P->params;
    R->ev.tensors = P->tptr;
    R->ev.dims = c->tensor_shape;
    R->val = P->val;
    R->stamp = P->stamp;
    memset(R->stamp, 0, sizeof(uint64_t) * (size_t)(p->ir->n + 1));
    R->lr_n = P->lr_n;
    R->lr_at = P->lr_at;
    R->bq = c->bq;
    R->bk = c->bk;
}

/* The call's low-rank columns by the scratch block's steps (what the C
 * kernel's attnc_scratch_bytes computes); -1 when the call must fail. */
static int64_t call_columns(StepRun *R) {
    R->cols = 0;
    steps_open(R);
    int rc = steps_run(R, SB_SCRATCH);
    steps_close(R);
    return rc ? -1 : R->cols;
}

/* Scratch of one work item: the values of every node and the prefix, the
 * rows, the slots, the low-rank columns of the call.  refplan_tile makes the
 * same decisions from the same steps, so a call too large to lay out fails
 * there (return 1) instead of overflowing a size here. */
int64_t refplan_scratch_bytes(const AttnCall *c) {
    const Plan *p = c->kernel_data;
    Parts P;
    StepRun R;
    int64_t prefix = layout(c, p, 0, 1, NULL, &P), cols = 0;
    if (prefix >= 0) {
        char *base = malloc((size_t)prefix);
        if (!base) return REFPLAN_MAX_SCRATCH; /* out of memory now: the launch will be too */
        layout(c, p, 0, 1, base, &P);
        bind(c, p, &P, &R);
        cols = call_columns(&R);
        free(base);
    }
    int64_t need = layout(c, p, cols > 0 ? cols : 0, 0, NULL, &P);
    return need > 0 ? need : 8;
}

/* The sum of the products of the row's and the kv's low-rank columns. */
static double lowrank_term(const StepRun *R) {
    const double *qc = R->qcol + R->i * R->cols_cap, *kc = R->kcol + R->j * R->cols_cap;
    double t = 0;
    for (int64_t x = 0; x < R->cols; x++) t += qc[x] * kc[x];
    return t;
}

/* Element (i, j) of the tile in its own scope; returns 0 when kept (*value:
 * the score, or the weight), 1 when masked, -1 on a runtime error or a bad run. */
static int element_steps(StepRun *R, int partial, int check_faults, double pre_dot, double *value) {
    const Schedule *s = R->s;
    if (partial && s->needs_mask && s->band_lo != IR_NONE) {
        /* the row's band (pass_band.c): a key outside it is masked, keep is
         * not evaluated -- but in a call that checks faults, where a mask
         * before the band's conjunct may raise an error there */
        int64_t lo = steps_read(R, SB_KEEP, s->band_lo).i, hi = steps_read(R, SB_KEEP, s->band_hi).i;
        if (R->bad) return -1;
        if ((R->ev.kv < lo || R->ev.kv > hi) && !(check_faults && s->needs_fault)) return 1;
    }
    if (steps_run(R, SB_PRE)) return -1;
    R->ev.pre = pre_dot + steps_read(R, SB_PRE, s->block[SB_PRE].result).f + lowrank_term(R);
    int keep = 1;
    if (partial && s->needs_mask) {
        if (steps_run(R, SB_KEEP)) return -1;
        keep = steps_read(R, SB_KEEP, s->block[SB_KEEP].result).b;
        if (R->bad) return -1;
    }
    if (check_faults && s->needs_fault) { /* on PARTIAL tiles after the masks, whose values it reads */
        SchedBlockId fb = partial ? SB_FAULT_PARTIAL : SB_FAULT;
        steps_open(R); /* what only the check needs is not available after it */
        int fault = steps_run(R, fb) || steps_read(R, fb, s->block[fb].result).b;
        steps_close(R);
        if (fault || R->bad) return -1;
    }
    if (!keep) return 1;
    SchedBlockId vb = partial ? SB_VALUE_PARTIAL : SB_VALUE_FULL;
    if (steps_run(R, vb)) return -1;
    *value = steps_read(R, vb, s->block[vb].result).f;
    return R->bad ? -1 : 0;
}

static int element(StepRun *R, int partial, int check_faults, double pre_dot, double *value) {
    steps_open(R);
    int rc = element_steps(R, partial, check_faults, pre_dot, value);
    steps_close(R);
    return rc;
}

/* Online softmax in the log2 domain (m tracks max(s * log2 e)), or a weight
 * clause's plain sums. */
static void accumulate(const Schedule *s, const Parts *P, int64_t i, double v, const AttnCall *c, int64_t vrow) {
    int64_t Dv = c->Dv;
    attnc_elem ve = (attnc_elem)c->v_elem;
    const double log2e = 1.44269504088896340736;
    double *acc = P->acc + i * Dv;
    P->any[i] = 1;
    if (!s->softmax) {
        P->l[i] += v;
        for (int64_t d = 0; d < Dv; d++) acc[d] += v * tensor_load(c->v, ve, vrow + d);
        return;
    }
    double t = v * log2e;
    if (t > P->m[i]) {
        double c = P->m[i] == -INFINITY ? 0 : exp2(P->m[i] - t);
        P->l[i] *= c;
        for (int64_t d = 0; d < Dv; d++) acc[d] *= c;
        P->m[i] = t;
    }
    if (t == -INFINITY) return;
    double w = exp2(t - P->m[i]);
    P->l[i] += w;
    for (int64_t d = 0; d < Dv; d++) acc[d] += w * tensor_load(c->v, ve, vrow + d);
}

/* O and LSE of row i (O's row at element orow, LSE's at lrow) by the
 * schedule's normalisation and empty-row rules. */
static void finish_row(const Schedule *s, const Parts *P, int64_t i, const AttnCall *c, int64_t orow, int64_t lrow) {
    const double ln2 = 0.69314718055994530942;
    int64_t Dv = c->Dv;
    attnc_elem oe = (attnc_elem)c->o_elem;
    const double *acc = P->acc + i * Dv, off = P->lse_off[i];
    double v;
    if (sched_row_is_empty(s, (int)P->any[i], P->m[i], off)) {
        for (int64_t d = 0; d < Dv; d++) tensor_store(c->o, oe, orow + d, 0);
        v = -INFINITY;
    } else if (s->softmax) {
        for (int64_t d = 0; d < Dv; d++) tensor_store(c->o, oe, orow + d, acc[d] / P->l[i]);
        v = P->m[i] * ln2 + log(P->l[i]) + (s->lse_offset ? off : 0);
    } else {
        for (int64_t d = 0; d < Dv; d++) tensor_store(c->o, oe, orow + d, acc[d]);
        v = log(P->l[i]);
    }
    if (c->lse) c->lse[lrow] = (float)v;
}

/* Row i of the work item whose first (packed) row is r0 and first head h:
 * its query row and head (kernel_abi.h: AttnCall.pack). */
static void row_of(const AttnCall *c, int64_t h, int64_t r0, int64_t i, int64_t *q, int64_t *head) {
    int64_t pack = c->pack > 1 ? c->pack : 1;
    *q = (r0 + i) / pack;
    *head = h + (r0 + i) % pack;
}

/* The rows of the work item: their state, then SB_ROW's steps. */
static int rows_start(StepRun *R, const AttnCall *c, const Parts *P, int64_t h, int64_t q0, int64_t nr) {
    for (int64_t i = 0; i < nr; i++) {
        P->m[i] = -INFINITY;
        P->l[i] = 0;
        P->any[i] = 0;
        P->lse_off[i] = 0;
        memset(P->acc + i * c->Dv, 0, sizeof(double) * (size_t)c->Dv);
        R->i = i;
        row_of(c, h, q0, i, &R->ev.q, &R->ev.h);
        R->ev.kv = 0;
        steps_open(R);
        int rc = steps_run(R, SB_ROW) || (c->check_faults && steps_run(R, SB_ROW_FAULT));
        steps_close(R);
        if (rc) return 1;
    }
    return 0;
}

/* NaN over columns a block must store before anything reads them: a
 * missing store then shows in O, never an earlier call's value. */
static void poison(double *x, int64_t n) {
    for (int64_t k = 0; k < n; k++) x[k] = NAN;
}

/* One visited kv tile: SB_COL per kv, then every element of it. */
static int tile(StepRun *R, const AttnCall *c, const Parts *P, int64_t h, int64_t q0, int64_t nr, int64_t e,
                double scale, int64_t kh, int64_t vh) {
    attnc_elem qe = (attnc_elem)c->q_elem, ke = (attnc_elem)c->k_elem;
    int64_t k0 = (int64_t)c->tile_kv[e] * c->bk, nc = c->Lk - k0 < c->bk ? c->Lk - k0 : c->bk;
    /* where the tile's first row of K and of V lies: row k0, or its place in
     * its page (kernel_abi.h: kv_page, the page strides) */
    int64_t page = c->page_rows ? (int64_t)c->kv_page[k0 / c->page_rows] : 0;
    int64_t kr0 = c->page_rows ? page * c->k_page_stride + k0 % c->page_rows * c->k_stride[2] : k0 * c->k_stride[2];
    int64_t vr0 = c->page_rows ? page * c->v_page_stride + k0 % c->page_rows * c->v_stride[2] : k0 * c->v_stride[2];
    int partial = c->tile_mode[e] == TILE_PARTIAL;
    /* a PARTIAL tile's keys outside the map's range are masked and free of runtime errors (kernel ABI 7): not
     * evaluated, as the LLVM kernel skips them (a range that cut a kept key shows against the interpreter) */
    int64_t ja = 0, jz = nc;
    if (partial && c->tile_keys) {
        ja = c->tile_keys[2 * e] < nc ? c->tile_keys[2 * e] : nc;
        jz = c->tile_keys[2 * e + 1] < nc ? c->tile_keys[2 * e + 1] : nc;
    }
    /* nor are its keys outside the map's live set (kernel ABI 10; tiles of at most 16 keys) */
    uint32_t live = partial && c->tile_live ? c->tile_live[e] : 0xffffffffu;
    R->tile_id++;
    poison(R->kcol, c->bk * R->cols_cap);
    R->ev.h = h; /* kv values see the item's head (with packed heads they read none) */
    for (int64_t j = 0; j < nc; j++) {
        R->j = j;
        R->ev.kv = k0 + j;
        steps_open(R);
        int rc = steps_run(R, SB_COL) || (c->check_faults && steps_run(R, SB_COL_FAULT));
        steps_close(R);
        if (rc) return 1;
    }
    /* the diag block once per distance the tile's elements meet: rows q0 ..
     * q0 + nr - 1 (heads are never packed with diagonal tables), kv k0 .. k0 + nc - 1 */
    if (R->s->ndiag && R->s->diag_grid[0]) { /* grid tables: each corner key against each row of the q tile */
        R->diag_q0 = q0, R->diag_k0 = k0, R->diag_n = 4 * c->bq;
        for (int64_t e = 0; e < R->diag_n; e++) {
            R->diag_e = e;
            R->ev.q = q0 + e % c->bq;
            R->ev.kv = k0 + sched_grid_corner(R->s, (int)(e / c->bq));
            if (R->ev.q >= c->Lq) continue; /* a last q tile's rows past Lq: no element reads them */
            steps_open(R);
            int rc = steps_run(R, SB_DIAG);
            steps_close(R);
            if (rc) return 1;
        }
    } else if (R->s->ndiag) {
        R->diag_d0 = k0 - (q0 + nr - 1);
        R->diag_n = nr + nc - 1;
        for (int64_t e = 0; e < R->diag_n; e++) {
            R->diag_e = e;
            R->ev.q = q0;
            R->ev.kv = q0 + R->diag_d0 + e;
            steps_open(R);
            int rc = steps_run(R, SB_DIAG);
            steps_close(R);
            if (rc) return 1;
        }
    }
    for (int64_t i = 0; i < nr; i++) {
        R->i = i;
        row_of(c, h, q0, i, &R->ev.q, &R->ev.h);
        int64_t qrow = R->ev.b * c->q_stride[0] + R->ev.h * c->q_stride[1] + R->ev.q * c->q_stride[2];
        for (int64_t j = ja; j < jz; j++) {
            if (j < 32 && !(live >> j & 1)) continue;
            int64_t krow = kh + kr0 + j * c->k_stride[2];
            double dot = 0, v;
            for (int64_t d = 0; d < c->D; d++) dot += tensor_load(c->q, qe, qrow + d) * tensor_load(c->k, ke, krow + d);
            R->j = j;
            R->ev.kv = k0 + j;
            int rc = element(R, partial, c->check_faults, scale * dot, &v);
            if (rc < 0) return 1;
            if (rc == 0) accumulate(R->s, P, i, v, c, vh + vr0 + j * c->v_stride[2]);
        }
    }
    return 0;
}

/* Rows [qt*bq, min((qt+1)*bq, Lq)) of (b, h) (packed rows of heads h ..
 * h + pack - 1), as templates/tile.c computes them. */
static int work_item(StepRun *R, const AttnCall *c, const Parts *P, int64_t b, int64_t h, int64_t qt) {
    const Plan *p = c->kernel_data;
    const Schedule *s = p->sched;
    int64_t rows = c->Lq * (c->pack > 1 ? c->pack : 1);
    int64_t hk = h / (c->H / c->Hkv), q0 = qt * c->bq, nr = rows - q0 < c->bq ? rows - q0 : c->bq;
    R->ev.b = b, R->ev.h = h, R->ev.hk = hk;
    R->cols = 0;
    if (steps_run(R, SB_ITEM) || R->cols > R->cols_cap) return 1; /* more columns than the call counted: a bad schedule */
    double scale = steps_read(R, SB_PRE, p->f->scale).f;
    if (R->bad || rows_start(R, c, P, h, q0, nr)) return 1;
    /* the (b, hk) planes of K and V, in elements */
    int64_t kh = b * c->k_stride[0] + hk * c->k_stride[1], vh = b * c->v_stride[0] + hk * c->v_stride[1];
    int64_t t = (b * c->group_stride_b + h * c->group_stride_h) * c->nqt + qt;
    for (int64_t e = c->row_start[t]; e < c->row_start[t + 1]; e++)
        if (tile(R, c, P, h, q0, nr, e, scale, kh, vh)) return 1;
    for (int64_t i = 0; i < nr; i++) {
        int64_t q, hr;
        row_of(c, h, q0, i, &q, &hr);
        finish_row(s, P, i, c, b * c->o_stride[0] + hr * c->o_stride[1] + q * c->o_stride[2],
                   b * c->lse_stride[0] + hr * c->lse_stride[1] + q * c->lse_stride[2]);
    }
    return 0;
}

int refplan_tile(const AttnCall *c, int64_t b, int64_t h, int64_t qt, void *scratch) {
    const Plan *p = c->kernel_data;
    const Schedule *s = p->sched;
    Parts P;
    StepRun R;
    if (layout(c, p, 0, 0, NULL, &P) < 0) return 1; /* refplan_scratch_bytes gave no room for it */
    layout(c, p, 0, 1, scratch, &P);
    bind(c, p, &P, &R);
    int64_t cap = call_columns(&R);
    if (cap < 0 || layout(c, p, cap, 0, scratch, &P) < 0) return 1;
    R.cols_cap = cap;
    R.row_slot = P.row_slot;
    R.col_slot = P.col_slot;
    R.row_ok = P.row_ok;
    R.col_ok = P.col_ok;
    R.lse_off = P.lse_off;
    R.qcol = P.qcol;
    R.kcol = P.kcol;
    R.diag = P.diag;
    R.diag_ok = P.diag_ok;
    R.diag_cap = diag_cap(s, c);
    if (s->ndiag) memset(R.diag_ok, 0, sizeof(uint64_t) * (size_t)(s->ndiag * R.diag_cap));
    poison(R.qcol, c->bq * cap);
    memset(R.row_ok, 0, sizeof(uint64_t) * (size_t)(s->nrow_slots * c->bq));
    memset(R.col_ok, 0, sizeof(uint64_t) * (size_t)(s->ncol_slots * c->bk));
    steps_open(&R); /* the work item's scope */
    return work_item(&R, c, &P, b, h, qt);
}

/* ---- refplan as a backend: the plan itself is the kernel's data ---- */

static attnc_status refplan_compile(const Plan *p, const attnc_options *opts, CompiledKernel *ck, void **state,
                                    attnc_error *err) {
    (void)opts, (void)state;
    if (p->sched->why[0])
        return set_error(err, ATTNC_ERR_INTERNAL, "refplan cannot run attention '%s': %s", p->attn->name,
                         p->sched->why);
    ck->tile = refplan_tile;
    ck->scratch_bytes = refplan_scratch_bytes;
    ck->kernel_data = p;
    ck->packs = 1;
    ck->pages = 1;
    ck->short_kv_tiles = 1; /* every tile size is the call's (AttnCall.bk) */
    if (p->grad) { /* the backward plan derived: plan_grad.c runs it */
        ck->grad_tile = refplan_grad_tile;
        ck->grad_scratch_bytes = refplan_grad_scratch_bytes;
    }
    return ATTNC_OK;
}

static void refplan_release(void *state) { (void)state; }

const BackendImpl backend_refplan = {
    .id = ATTNC_BACKEND_REFPLAN,
    .can_run = 1,
    .compile = refplan_compile,
    .release = refplan_release,
    .emit = backend_emit_nothing,
    .layouts = 1,
    .toeplitz = TABLES_DISTANCE | TABLES_GRID, /* executes SB_DIAG (tile) */
};
