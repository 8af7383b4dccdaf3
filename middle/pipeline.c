/* pipeline.c — the middle end, one straight line: build the IR, run each
 * pass in order, describe the kernel.
 * Requires: a checked Attention (no errors).  Produces: a Plan.
 * With opt->dump, the IR is printed after every pass, marked "(no change)"
 * when the pass changed nothing.  Common subexpressions are shared by
 * construction (ir_node hash-conses every node), so no pass is needed for
 * them; the node counts in the dump show it. */
#include <stdio.h>

#include "grad_plan.h"
#include "grid.h"
#include "schedule_grad.h"
#include "ir_passes.h"
#include "plan.h"

static void dump(const Plan *p, const char *pass, int changed, StrBuf *out) {
    if (!out) return;
    sb_printf(out, "== after %s%s (%d nodes in the module)\n", pass, changed ? "" : " (no change)", p->ir->n);
    if (changed) ir_print(p->ir, p->f, out);
}

void plan_mask_facts(Plan *p) {
    p->needs_mask = !ir_is_bool(p->ir, p->f->keep, 1);
    p->needs_fault = !ir_is_bool(p->ir, p->f->fault, 0);
    /* tile maps per batch row or head when the masks differ there; fault checks that read b or h (a bias's
     * table[h, ...] bounds) do not split the map: the tile analysis bounds them over every b and h at once */
    int mask_deps = ir_at(p->ir, p->f->keep)->deps;
    p->mask_varies_b = (mask_deps & DEP_B) != 0;
    p->mask_varies_h = (mask_deps & (DEP_H | DEP_HK)) != 0;
}

Plan *plan_compile(Arena *arena, const Attention *a, const PlanOptions *opt) {
    PlanOptions none = {0};
    if (!opt) opt = &none;
    Plan *p = arena_alloc(arena, sizeof *p);
    if (!p) return NULL;
    p->attn = a;
    p->ir = ir_new(arena, a);
    if (!p->ir) return NULL;
    p->f = ir_build(p->ir, a);
    if (!p->f) return NULL;
    dump(p, "build", 1, opt->dump);
    dump(p, "specialize", pass_specialize(p->ir, p->f, opt->is_fixed, opt->fixed), opt->dump);
    dump(p, "fold", pass_fold(p->ir, p->f), opt->dump);
    dump(p, "mask-facts", pass_mask_facts(p->ir, p->f), opt->dump);
    dump(p, "softmax-invariant", pass_softmax_invariant(p->ir, p->f), opt->dump);
    dump(p, "lowrank", pass_lowrank(p->ir, p->f, opt->separable), opt->dump);
    dump(p, "reciprocal", pass_reciprocal(p->ir, p->f), opt->dump);
    dump(p, "fold", pass_fold(p->ir, p->f), opt->dump);
    pass_band(p->ir, p->f, &p->band_lo, &p->band_hi);
    if (opt->toeplitz & TABLES_DISTANCE) dump(p, "toeplitz", pass_toeplitz(p->ir, p->f), opt->dump);
    if (p->ir->failed) return NULL;

    p->bq = opt->bq > 0 ? opt->bq : 64;
    p->bk = opt->bk > 0 ? opt->bk : 64;
    p->vec_width = opt->vec_width > 0 ? opt->vec_width : 16;
    plan_mask_facts(p);
    p->softmax = p->f->weight == IR_NONE;
    /* before any schedule: it adds nodes to the module, and a schedule's
     * per-node tables are as long as the module */
    if (!opt->no_grid && !pass_grid(arena, p, opt->bq > 0 ? opt->bq : GRID_DEFAULT_BQ,
                                    opt->bk > 0 ? opt->bk : GRID_DEFAULT_BK, (opt->toeplitz & TABLES_GRID) != 0))
        return NULL;
    p->sched = sched_build(arena, p);
    if (!p->sched) return NULL;
    if (p->grid && !(p->grid->plan->sched = sched_build(arena, p->grid->plan))) return NULL;

    GradPlan *gp;
    attnc_error err = {0};
    attnc_status st = grad_plan_build(arena, a, opt->is_fixed, opt->fixed, &gp, &err);
    if (st == ATTNC_ERR_NOMEM) return NULL;
    p->grad = gp;
    if (st) {
        p->grad = NULL;
        p->grad_error = arena_strdup(arena, err.message);
        if (!p->grad_error) return NULL;
    } else {
        p->grad_sched = sched_grad_build(arena, gp, p->sched);
        if (!p->grad_sched) return NULL;
    }
    return p;
}

void plan_print_tile_map(const Plan *p, const TileMap *tm, const char *title, StrBuf *out) {
    sb_printf(out, "%s:\n", title);
    sb_printf(out, "  %lld group%s of %lld x %lld tiles: %lld tiles\n", (long long)tm->ngroups,
              tm->ngroups == 1 ? "" : "s", (long long)tm->nqt, (long long)tm->nkt, (long long)tm->total);
    sb_printf(out, "  visited %lld (full %lld, partial %lld), skipped %lld\n", (long long)tm->visited,
              (long long)tm->full, (long long)tm->partial, (long long)(tm->total - tm->visited));
    sb_printf(out, "  mask evaluated on %lld tiles; %lld interval evaluations\n", (long long)tm->partial,
              (long long)tm->evaluations);
    int64_t narrowed, cut;
    tile_map_keys_cut(tm, &narrowed, &cut);
    if (narrowed) sb_printf(out, "  keys narrowed on %lld partial tiles: %lld keys need no work\n", (long long)narrowed,
                            (long long)cut);
    if (p->needs_fault)
        sb_printf(out, "  runtime error checks for this call: %s\n",
                  tm->check_faults ? "needed" : "none (every index provably in range)");
}

void plan_print(const Plan *p, const TileMap *tm, StrBuf *out) {
    sb_printf(out, "attention %s\n", p->attn->name);
    sb_printf(out, "ir:\n");
    ir_print(p->ir, p->f, out);
    sb_printf(out, "plan:\n");
    sb_printf(out, "  tiles %d x %d, vectors of %d floats\n", p->bq, p->bk, p->vec_width);
    sb_printf(out, "  normalise: %s\n", p->softmax ? "online softmax (log2 domain)" : "weight clause, no division");
    sb_printf(out, "  mask: %s%s%s\n", p->needs_mask ? "evaluated on PARTIAL tiles" : "none (every pair kept)",
              p->mask_varies_b ? ", tile map per batch" : "", p->mask_varies_h ? ", tile map per head" : "");
    sb_printf(out, "  runtime error checks: %s\n", p->needs_fault ? "in the plan (a call skips them when its tile analysis proves them false)" : "none needed");
    if (p->band_lo != IR_NONE) {
        sb_printf(out, "  band of keys per row: %%%d <= kv <= %%%d, of\n", p->band_lo, p->band_hi);
        IrRef band[2] = {p->band_lo, p->band_hi};
        ir_print_nodes(p->ir, band, 2, out);
    }
    if (p->f->lse_offset != IR_NONE) sb_printf(out, "  lse_offset: %%%d per row (softmax-invariant bias terms)\n", p->f->lse_offset);
    for (int g = 0; g < p->f->nlowrank; g++)
        sb_printf(out, "  low-rank columns: %%%d appended to Q (per row) and %%%d to K (per kv), count %%%d\n",
                  p->f->lowrank_q[g], p->f->lowrank_k[g], p->f->lowrank_count[g]);
    sched_print(p->sched, out);
    if (p->grid) {
        const GridTiling *g = p->grid;
        if (g->height == IR_NONE)
            sb_printf(out, "multi-dimensional tiles (docs/multidim-tiles.md): grid width %%%d; rows in block order, "
                      "a q tile a %d x %d block, a kv tile %d x %d; the block-order plan:\n", g->width, g->qbx, g->qby,
                      g->kbx, g->kby);
        else
            sb_printf(out, "multi-dimensional tiles (docs/multidim-tiles.md): grid width %%%d, height %%%d; rows in "
                      "block order, a q tile a %d x %d x %d block, a kv tile %d x %d x %d; the block-order plan:\n",
                      g->width, g->height, g->qbx, g->qby, g->qbz, g->kbx, g->kby, g->kbz);
        ir_print(p->ir, g->plan->f, out);
        sched_print(g->plan->sched, out);
    }
    if (tm) plan_print_tile_map(p, tm, "tile map", out);
    if (p->grad) {
        grad_plan_print(p->grad, out);
        if (p->grad_sched) sched_grad_print(p->grad_sched, out);
    } else sb_printf(out, "backward:\n  not available: %s\n", p->grad_error ? p->grad_error : "not built");
}
