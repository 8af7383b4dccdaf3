/* tile_count.c — how many (b, h, q, kv) the masks keep in a call
 * (attnc_kernel_kept_pairs, `attnc bench`'s kept pairs).
 *
 * Work follows the tile map: EMPTY tiles are skipped, FULL tiles count
 * whole, and a PARTIAL tile is cut into boxes that the interval analysis
 * decides (every element kept, or none), down to boxes of at most SMALL_BOX
 * elements or until the tile's budget of interval evaluations is spent;
 * those are counted element by element with the IR evaluator.  Axial masks
 * (`q / w == kv / w`), all PARTIAL, took seconds one element at a time at
 * L = 4096.  When the call may raise a runtime error, every element of a
 * PARTIAL tile goes through tile_element_kept, whose hook names a mask's.
 * Requires: a Plan, the call's BoundCall and its TileMap.
 * Produces: tile_count_kept (plan.h). */
#include <stdlib.h>

#include "tile_ival.h"

/* At most SMALL_BOX elements are counted one by one; a tile gets BOX_BUDGET
 * interval evaluations, so that a mask the intervals never decide costs
 * those few more than counting every element. */
enum { SMALL_BOX = 16, BOX_BUDGET = 64 };

typedef struct Counter {
    const Plan *p;
    const TileMap *tm;
    const TileFaultHook *hook;
    IrEval ev;        /* its b, h, hk: the group's */
    Analysis an;      /* its b, h, hk: the group's */
    int by_intervals; /* no element can fault: boxes may be decided by intervals */
    int budget;       /* interval evaluations left for the tile */
} Counter;

/* Kept elements of [q0, q1) x [k0, k1), one by one; -1 when the hook reports a mask's runtime error. */
static int64_t count_elements(Counter *c, int64_t q0, int64_t q1, int64_t k0, int64_t k1) {
    int64_t kept = 0;
    for (c->ev.q = q0; c->ev.q < q1; c->ev.q++)
        for (c->ev.kv = k0; c->ev.kv < k1; c->ev.kv++) {
            int k = tile_element_kept(c->p, c->tm, &c->ev, c->hook);
            if (k < 0) return -1;
            kept += k;
        }
    return kept;
}

/* Kept elements of the box [q0, q1) x [k0, k1): by intervals where they decide, else its quarters. */
static int64_t count_box(Counter *c, int64_t q0, int64_t q1, int64_t k0, int64_t k1) {
    int64_t area = (q1 - q0) * (k1 - k0);
    if (!c->by_intervals || area <= SMALL_BOX || --c->budget < 0) return count_elements(c, q0, q1, k0, k1);
    c->an.vars[V_Q] = ival_int(q0, q1 - 1);
    c->an.vars[V_KV] = ival_int(k0, k1 - 1);
    ival_new_generation(&c->an);
    Ival keep = ival_eval(&c->an, c->p->f->keep);
    if (keep.hi == 0) return 0;
    if (keep.lo == 1) return area;
    int64_t qm = q1 - q0 > 1 ? q0 + (q1 - q0) / 2 : q1, km = k1 - k0 > 1 ? k0 + (k1 - k0) / 2 : k1;
    int64_t qs[3] = {q0, qm, q1}, ks[3] = {k0, km, k1}, kept = 0;
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++) {
            if (qs[i] >= qs[i + 1] || ks[j] >= ks[j + 1]) continue;
            int64_t n = count_box(c, qs[i], qs[i + 1], ks[j], ks[j + 1]);
            if (n < 0) return -1;
            kept += n;
        }
    return kept;
}

int64_t tile_count_kept(const Plan *p, const BoundCall *bc, const TileMap *tm, const TileFaultHook *hook) {
    const attnc_sizes *sz = &bc->sz;
    if (sz->B * sz->H * sz->Lq * sz->Lk == 0) return 0; /* no pairs (and no head groups to divide by) */
    Counter c = {.p = p, .tm = tm, .hook = hook, .by_intervals = !tm->check_faults};
    int64_t(*dims)[ATTNC_MAX_RANK];
    if (!tile_mask_eval_init(p, bc, &c.ev, &dims)) return -1;
    int ok = !c.by_intervals || ival_analysis_init(&c.an, p, bc);
    int64_t nb = p->mask_varies_b ? sz->B : 1, nh = p->mask_varies_h ? sz->H : 1;
    int64_t copies = (sz->B / nb) * (sz->H / nh); /* (b, h) pairs sharing one group */
    int64_t kept = ok ? 0 : -1;
    for (int64_t g = 0; kept >= 0 && g < tm->ngroups; g++) {
        c.ev.b = p->mask_varies_b ? g / nh : 0;
        c.ev.h = p->mask_varies_h ? g % nh : 0;
        c.ev.hk = c.ev.h / (sz->H / sz->Hkv);
        if (c.by_intervals) ival_set_element_vars(&c.an, c.ev.b, c.ev.h);
        for (int64_t qt = 0; kept >= 0 && qt < tm->nqt; qt++) {
            int64_t t = g * tm->nqt + qt, q0 = qt * tm->bq, q1 = q0 + tm->bq < sz->Lq ? q0 + tm->bq : sz->Lq;
            for (int64_t e = tm->row_start[t]; kept >= 0 && e < tm->row_start[t + 1]; e++) {
                int64_t k0 = (int64_t)tm->kv[e] * tm->bk, k1 = k0 + tm->bk < sz->Lk ? k0 + tm->bk : sz->Lk;
                c.budget = BOX_BUDGET;
                int64_t n = tm->mode[e] == TILE_FULL ? (q1 - q0) * (k1 - k0) : count_box(&c, q0, q1, k0, k1);
                kept = n < 0 ? -2 : kept + n * copies;
            }
        }
    }
    ir_eval_free(&c.ev);
    free(dims);
    if (c.by_intervals) ival_analysis_free(&c.an);
    return kept;
}
