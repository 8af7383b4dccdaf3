/* llvm_grad.c — the backward kernel (issue 12) as LLVM IR: the backward
 * schedule (middle/schedule_grad.h) translated in the loop nest of
 * docs/gradients-kernel.md, as templates/tile_bwd.c and its holes
 * (backends/c/c_holes.c) do in C.
 *
 * Requires: a Plan whose backward schedule was built (Plan.grad_sched, no
 * `why`), a module with the target's triple and data layout.  Produces: in
 * that module an AttnGradTileFn and its scratch function (kernel_abi.h),
 * built by llvm_backend.c on a kernel's first backward call.
 *
 * Layout.  One query row at a time (L->scalar_rows: the schedule's row and
 * element values are scalars, its row slots one 8-byte value per row of the
 * q tile), vectorised along D: the work item's K and V rows, the q tile's Q
 * and dO rows and the dK, dV, dQ accumulators live in scratch as float32
 * rows padded with zeros to whole vectors of W lanes (Dp, Dvp), so that
 * every dot product and axpy is a loop of whole vectors without tails:
 *
 *   per work item (b, hk, kv tile kt):  K, V rows (element types, strides) -> scratch;
 *                                       dK, dV rows = 0; item and col blocks
 *   per query head hr of hk's group, per q tile the transposed map lists:
 *     per row i: Q row, dO row -> scratch, dQ row = 0, row blocks
 *     per row i (LSE = -inf skipped with softmax), per kv j of the tile:
 *       S = Q[i].K[j]; pre, fault (return 1), keep (PARTIAL tiles), value
 *       p; dP = dO[i].V[j] fused with dV[j] += p dO[i]; g, gpre
 *       dK[j] += gs Q[i] fused with dQ[i] += gs K[j]  (gs = gpre * scale)
 *       tensor terms: scalar scatter-adds, as tile_bwd.c
 *     dQ rows of the q tile added into the call's dQ
 *   dK, dV rows of the tile added into the call's (the item owns them)
 *
 * Lane sums reduce by a fixed tree of shuffles: a call gives the same bits
 * every time. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "llvm_build.h"
#include "llvm_lower.h"
#include "llvm_math.h"
#include "llvm_node.h"
#include "llvm_steps.h"
#include "llvm_tensor.h"
#include "schedule_grad.h"

/* Scratch regions of one backward work item (float rows padded to vectors). */
typedef struct GradRegions {
    LLVMValueRef k, v, dk, dv; /* [BK][Dp], [BK][Dvp], [BK][Dp], [BK][Dvp] */
    LLVMValueRef q, dout, dq;  /* [BQ][Dp], [BQ][Dvp], [BQ][Dp] */
    LLVMValueRef rows, cols;   /* the schedule's slots: [nrow_slots][BQ], [ncol_slots][BK], 8 bytes each */
} GradRegions;

typedef struct Grad {
    Lower *L;
    const GradSchedule *gs;
    GradRegions rg;
    LLVMValueRef Dp, Dvp;    /* D and Dv rounded up to whole vectors */
    LLVMValueRef dtensor[1]; /* (flexible) by tensor index: this partition's accumulator, or NULL */
} Grad;

static LLVMValueRef round_up(Lower *L, LLVMValueRef n, int to) {
    return LLVMBuildAnd(L->bd, LLVMBuildAdd(L->bd, n, ci64(L, to - 1), ""), ci64(L, -to), "");
}

/* Carve the regions (base != NULL) or size them; the bytes needed, with 64
 * of slack for aligning the base. */
static LLVMValueRef grad_layout(Lower *L, LLVMValueRef Dp, LLVMValueRef Dvp, LLVMValueRef base, GradRegions *rg) {
    LLVMBuilderRef b = L->bd;
    const Schedule *s = L->s;
    LLVMValueRef bk4 = ci64(L, (int64_t)L->BK * 4), bq4 = ci64(L, (int64_t)L->QB * 4);
    LLVMValueRef sizes[9] = {
        LLVMBuildMul(b, Dp, bk4, ""),  LLVMBuildMul(b, Dvp, bk4, ""), LLVMBuildMul(b, Dp, bk4, ""),
        LLVMBuildMul(b, Dvp, bk4, ""), LLVMBuildMul(b, Dp, bq4, ""),  LLVMBuildMul(b, Dvp, bq4, ""),
        LLVMBuildMul(b, Dp, bq4, ""),  ci64(L, (int64_t)s->nrow_slots * L->QB * 8 + 8),
        ci64(L, (int64_t)s->ncol_slots * L->BK * 8 + 8),
    };
    LLVMValueRef *dst[9] = {&rg->k, &rg->v, &rg->dk, &rg->dv, &rg->q, &rg->dout, &rg->dq, &rg->rows, &rg->cols};
    LLVMValueRef off = ci64(L, 0);
    for (int i = 0; i < 9; i++) {
        if (base) *dst[i] = gep(L, L->i8, base, off);
        off = LLVMBuildAdd(b, off, round_up(L, sizes[i], 64), "");
    }
    return LLVMBuildAdd(b, off, ci64(L, 64), "");
}

/* The lane sum of a float vector by a fixed tree (the same bits every time). */
static LLVMValueRef lane_sum(Lower *L, LLVMValueRef v) {
    for (int w = L->W / 2; w >= 1; w /= 2) {
        LLVMValueRef mask[MAX_LANES];
        for (int i = 0; i < L->W; i++) mask[i] = ci32(L, i < w ? i + w : i);
        LLVMValueRef hi = LLVMBuildShuffleVector(L->bd, v, LLVMGetUndef(L->vf32), LLVMConstVector(mask, (unsigned)L->W), "");
        v = LLVMBuildFAdd(L->bd, v, hi, "");
    }
    return LLVMBuildExtractElement(L->bd, v, ci32(L, 0), "");
}

/* ---- rows into scratch ------------------------------------------------------ */

typedef struct RowLoad {
    LLVMValueRef base; /* i8 pointer: the tensor's element 0 */
    LLVMValueRef at;   /* the row's first element (in elements) */
    LLVMValueRef n, np; /* elements, and the padded length */
    LLVMValueRef dst;  /* floats */
} RowLoad;

/* dst[0..n) = the row widened to float32 (its element type `elem`), dst[n..np) = 0. */
static void load_row_of(Lower *L, void *ctx, int elem) {
    const RowLoad *r = ctx;
    LLVMTypeRef et = elem == ELEM_F32 ? L->f32 : LLVMInt16TypeInContext(L->ctx);
    LLVMValueRef src = gep(L, et, r->base, r->at);
    Loop ld;
    LLVMValueRef d = loop_begin(L, &ld, ci64(L, 0), r->n, ci64(L, 1), "row.load");
    LLVMValueRef x = load(L, et, gep(L, et, src, d), elem == ELEM_F32 ? 4 : 2);
    if (elem != ELEM_F32) x = lower_widen(L, x, elem);
    store(L, x, gep(L, L->f32, r->dst, d), 4);
    loop_end(L, &ld);
    Loop lz;
    d = loop_begin(L, &lz, r->n, r->np, ci64(L, 1), "row.pad");
    store(L, cf32(L, 0), gep(L, L->f32, r->dst, d), 4);
    loop_end(L, &lz);
}

static void load_row(Lower *L, LLVMValueRef elem, LLVMValueRef base, LLVMValueRef at, LLVMValueRef n,
                     LLVMValueRef np, LLVMValueRef dst) {
    RowLoad r = {base, at, n, np, dst};
    lower_elem_switch(L, elem, load_row_of, &r);
}

/* dst[0..n) = 0 (n a multiple of W). */
static void zero_row(Lower *L, LLVMValueRef dst, LLVMValueRef n) {
    Loop lz;
    LLVMValueRef d = loop_begin(L, &lz, ci64(L, 0), n, ci64(L, L->W), "zero");
    store_fvec(L, LLVMConstNull(L->vf32), dst, d);
    loop_end(L, &lz);
}

/* dst[0..n) += src[0..n) (scalars: dst is the call's unpadded row). */
static void add_row(Lower *L, LLVMValueRef dst, LLVMValueRef src, LLVMValueRef n) {
    Loop la;
    LLVMValueRef d = loop_begin(L, &la, ci64(L, 0), n, ci64(L, 1), "add");
    LLVMValueRef p = gep(L, L->f32, dst, d);
    store(L, LLVMBuildFAdd(L->bd, load(L, L->f32, p, 4), load(L, L->f32, gep(L, L->f32, src, d), 4), ""), p, 4);
    loop_end(L, &la);
}

/* ---- the call ---------------------------------------------------------------- */

static LLVMValueRef field(Lower *L, size_t off, LLVMTypeRef t) { return call_field(L, off, t); }

static LLVMValueRef stride(Lower *L, size_t off, int i) {
    return call_field(L, off + (size_t)i * sizeof(int64_t), L->i64);
}

/* Element offset of row `row` of (bi, hi) of a tensor with strides at `off`. */
static LLVMValueRef row_at(Lower *L, size_t off, LLVMValueRef bi, LLVMValueRef hi, LLVMValueRef row) {
    LLVMBuilderRef b = L->bd;
    LLVMValueRef x = LLVMBuildMul(b, bi, stride(L, off, 0), "");
    x = LLVMBuildAdd(b, x, LLVMBuildMul(b, hi, stride(L, off, 1), ""), "");
    return LLVMBuildAdd(b, x, LLVMBuildMul(b, row, stride(L, off, 2), ""), "");
}

/* ROW_FAULT or COL_FAULT: only in calls that check faults, in a scope of their own. */
static void fault_only(Lower *L, LLVMValueRef checks, SchedBlockId id) {
    if (L->s->block[id].nsteps == 0) return;
    LLVMBasicBlockRef after = if_begin(L, checks, "fault.values");
    scope_push(L);
    lower_steps(L, id);
    scope_pop(L);
    if_end(L, after);
}

/* ---- the element ----------------------------------------------------------- */

/* One tensor term (grad_plan.h) for seeds g, gpre: its coefficients, then,
 * when its gradient is wanted and the coefficient is not 0, the loops of its
 * chain and the scatter-add (nothing outside the tensor's shape).  A zero
 * coefficient contributes nothing, even against an infinite seed. */
static void tensor_term(Grad *G, const GradTerm *t, const GradTermSched *ts, LLVMValueRef g, LLVMValueRef gpre) {
    Lower *L = G->L;
    LLVMBuilderRef b = L->bd;
    lower_block(L, SB_VALUE_FULL, &ts->coef);
    LLVMValueRef kv = lower_node(L, t->dvalue), kb = lower_node(L, t->dbias);
    LLVMValueRef dt = G->dtensor[t->tensor];
    LLVMValueRef zero = cf32(L, 0);
    LLVMValueRef wanted = LLVMBuildICmp(b, LLVMIntNE, LLVMBuildPtrToInt(b, dt, L->i64, ""), ci64(L, 0), "");
    LLVMBasicBlockRef done = if_begin(L, wanted, "term");
    LLVMValueRef c = LLVMBuildFAdd(
        b, fsel(L, fcmp(L, LLVMRealUNE, kv, zero), LLVMBuildFMul(b, g, kv, ""), zero),
        fsel(L, fcmp(L, LLVMRealUNE, kb, zero), LLVMBuildFMul(b, gpre, kb, ""), zero), "tc0");
    LLVMBasicBlockRef after[GRAD_MAX_CHAIN + 1];
    Loop lp[GRAD_MAX_CHAIN];
    LLVMValueRef saved[GRAD_MAX_CHAIN];
    after[0] = if_begin(L, fcmp(L, LLVMRealUNE, c, zero), "term.c");
    for (int i = 0; i < t->nsums; i++) {
        const IrNode *sum = &L->ir->nodes[t->sums[i]];
        LLVMValueRef bound = lower_node(L, sum->args[0]);
        LLVMValueRef r = loop_begin(L, &lp[i], ci64(L, 0), bound, ci64(L, 1), "term.r");
        scope_push(L);
        saved[i] = L->sumvar[sum->aux];
        L->sumvar[sum->aux] = r;
        lower_block(L, SB_VALUE_FULL, &ts->level[i]);
        LLVMValueRef inner = lower_node(L, t->inner[i]);
        c = fsel(L, fcmp(L, LLVMRealUNE, inner, zero), LLVMBuildFMul(b, c, inner, ""), zero);
        after[i + 1] = if_begin(L, fcmp(L, LLVMRealUNE, c, zero), "term.c");
    }
    lower_block(L, SB_VALUE_FULL, &ts->index);
    const IrNode *ld = &L->ir->nodes[t->load];
    LLVMValueRef inb = cbool(L, 1), off = ci64(L, 0);
    for (int k = 0; k < ld->nargs && k < ATTNC_ABI_MAX_RANK; k++) {
        LLVMValueRef x = lower_node(L, ld->args[k]), dim = L->tdim[ld->aux][k];
        /* dims are never negative: unsigned < is 0 <= x < dim */
        inb = LLVMBuildAnd(b, inb, LLVMBuildICmp(b, LLVMIntULT, x, dim, ""), "");
        off = LLVMBuildAdd(b, LLVMBuildMul(b, off, dim, ""), x, "");
    }
    LLVMBasicBlockRef in = if_begin(L, inb, "term.add");
    LLVMValueRef p = gep(L, L->f32, dt, off);
    store(L, LLVMBuildFAdd(b, load(L, L->f32, p, 4), c, ""), p, 4);
    if_end(L, in);
    for (int i = t->nsums - 1; i >= 0; i--) {
        if_end(L, after[i + 1]);
        L->sumvar[L->ir->nodes[t->sums[i]].aux] = saved[i];
        scope_pop(L);
        loop_end(L, &lp[i]);
    }
    if_end(L, after[0]);
    if_end(L, done);
}

/* What the element loop of one row reads. */
typedef struct RowCtx {
    LLVMValueRef qrow, dorow, dqrow; /* padded float rows in scratch */
    LLVMValueRef lse, delta;
    LLVMValueRef mode, checks;
} RowCtx;

/* sum over the padded row of a[d] * b[d]; when axpy_dst, also
 * axpy_dst[d] += axpy_s * a[d] in the same loop (dP with dV += p dO). */
static LLVMValueRef dot(Lower *L, LLVMValueRef a, LLVMValueRef bv, LLVMValueRef n, LLVMValueRef axpy_dst,
                        LLVMValueRef axpy_s) {
    LLVMValueRef acc = local(L, L->vf32, LLVMConstNull(L->vf32));
    LLVMValueRef s = axpy_dst ? splat(L, axpy_s) : NULL;
    Loop ld;
    LLVMValueRef d = loop_begin(L, &ld, ci64(L, 0), n, ci64(L, L->W), "dot");
    LLVMValueRef x = load_fvec(L, a, d);
    set(L, acc, fmuladd(L, x, load_fvec(L, bv, d), get(L, L->vf32, acc)));
    if (axpy_dst) store_fvec(L, fmuladd(L, s, x, load_fvec(L, axpy_dst, d)), axpy_dst, d);
    loop_end(L, &ld);
    return lane_sum(L, get(L, L->vf32, acc));
}

/* Element (row, kv j): the seeds and every accumulation (the module comment). */
static void element(Grad *G, const RowCtx *R, LLVMValueRef j) {
    Lower *L = G->L;
    LLVMBuilderRef b = L->bd;
    const Schedule *s = L->s;
    const GradSchedule *gs = G->gs;
    LLVMValueRef krow = gep(L, L->f32, G->rg.k, LLVMBuildMul(b, j, G->Dp, ""));
    LLVMValueRef vrow = gep(L, L->f32, G->rg.v, LLVMBuildMul(b, j, G->Dvp, ""));
    LLVMValueRef dkrow = gep(L, L->f32, G->rg.dk, LLVMBuildMul(b, j, G->Dp, ""));
    LLVMValueRef dvrow = gep(L, L->f32, G->rg.dv, LLVMBuildMul(b, j, G->Dvp, ""));
    LLVMValueRef sdot = dot(L, R->qrow, krow, G->Dp, NULL, NULL);
    lower_steps(L, SB_PRE);
    LLVMValueRef scale = lower_node(L, gs->gp->f->scale);
    L->pre = LLVMBuildFAdd(b, LLVMBuildFMul(b, scale, sdot, ""), lower_node(L, gs->gp->f->bias), "pre");
    if (s->needs_fault) {
        LLVMBasicBlockRef after = if_begin(L, R->checks, "fault");
        scope_push(L);
        lower_steps(L, SB_FAULT);
        LLVMBasicBlockRef ok = block(L, "fault.no"), bad = block(L, "fault.yes");
        LLVMBuildCondBr(b, lower_node(L, s->block[SB_FAULT].result), bad, ok);
        LLVMPositionBuilderAtEnd(b, bad);
        LLVMBuildRet(b, ci32(L, 1));
        LLVMPositionBuilderAtEnd(b, ok);
        scope_pop(L);
        if_end(L, after);
    }
    LLVMBasicBlockRef skip = NULL;
    if (s->needs_mask) {
        LLVMValueRef keep = local(L, L->i1, cbool(L, 1));
        LLVMValueRef partial = LLVMBuildICmp(b, LLVMIntEQ, R->mode, LLVMConstInt(L->i8, TILE_PARTIAL, 0), "");
        LLVMBasicBlockRef after = if_begin(L, partial, "keep");
        scope_push(L);
        lower_steps(L, SB_KEEP);
        set(L, keep, lower_node(L, s->block[SB_KEEP].result));
        scope_pop(L);
        if_end(L, after);
        skip = if_begin(L, get(L, L->i1, keep), "kept");
    }
    lower_steps(L, SB_VALUE_FULL);
    LLVMValueRef value = lower_node(L, gs->value), dvdpre = lower_node(L, gs->dvalue_dpre);
    LLVMValueRef p = s->softmax ? lower_exp2(L, LLVMBuildFMul(b, LLVMBuildFSub(b, value, R->lse, ""),
                                                             cf32(L, 1.44269504088896340736), ""))
                                : value;
    LLVMValueRef dp = dot(L, R->dorow, vrow, G->Dvp, dvrow, p);
    LLVMValueRef g = LLVMBuildFSub(b, dp, R->delta, "");
    if (s->softmax) g = LLVMBuildFMul(b, p, g, "g");
    /* a zero derivative contributes nothing, even against an infinite seed */
    LLVMValueRef gpre = fsel(L, fcmp(L, LLVMRealUNE, dvdpre, cf32(L, 0)), LLVMBuildFMul(b, g, dvdpre, ""), cf32(L, 0));
    LLVMValueRef gsv = splat(L, LLVMBuildFMul(b, gpre, scale, "gs"));
    Loop ld;
    LLVMValueRef d = loop_begin(L, &ld, ci64(L, 0), G->Dp, ci64(L, L->W), "dkdq");
    LLVMValueRef qx = load_fvec(L, R->qrow, d), kx = load_fvec(L, krow, d);
    store_fvec(L, fmuladd(L, gsv, qx, load_fvec(L, dkrow, d)), dkrow, d);
    store_fvec(L, fmuladd(L, gsv, kx, load_fvec(L, R->dqrow, d)), R->dqrow, d);
    loop_end(L, &ld);
    for (int t = 0; t < gs->gp->nterms && !L->failed; t++) tensor_term(G, &gs->gp->terms[t], &gs->terms[t], g, gpre);
    if (skip) if_end(L, skip);
    L->pre = NULL;
}

/* ---- the loop nest -------------------------------------------------------- */

/* What the work item binds once. */
typedef struct Item {
    LLVMValueRef b, hk, k0, nc; /* the kv tile: keys [k0, k0 + nc) */
    LLVMValueRef lse, delta, dout, dq; /* the call's */
    LLVMValueRef checks;
} Item;

/* Per row of the q tile at q0: Q and dO rows into scratch, dQ row zeroed, the row blocks. */
static void row_prologue(Grad *G, const Item *I, LLVMValueRef hr, LLVMValueRef q0, LLVMValueRef nr) {
    Lower *L = G->L;
    LLVMBuilderRef b = L->bd;
    LLVMValueRef H = L->var[V_SIZE_H], Lq = L->var[V_SIZE_LQ];
    Loop li;
    LLVMValueRef i = loop_begin(L, &li, ci64(L, 0), nr, ci64(L, 1), "rows");
    LLVMValueRef q = LLVMBuildAdd(b, q0, i, "q");
    LLVMValueRef qs = LLVMBuildMul(b, i, G->Dp, ""), ds = LLVMBuildMul(b, i, G->Dvp, "");
    load_row(L, field(L, offsetof(AttnCall, q_elem), L->i32), field(L, offsetof(AttnCall, q), ptr_to(L->i8)),
             row_at(L, offsetof(AttnCall, q_stride), I->b, hr, q), L->var[V_SIZE_D], G->Dp, gep(L, L->f32, G->rg.q, qs));
    LLVMValueRef row = LLVMBuildAdd(b, LLVMBuildMul(b, LLVMBuildAdd(b, LLVMBuildMul(b, I->b, H, ""), hr, ""), Lq, ""), q, "");
    load_row(L, ci32(L, ELEM_F32), I->dout, LLVMBuildMul(b, row, L->var[V_SIZE_DV], ""), L->var[V_SIZE_DV], G->Dvp,
             gep(L, L->f32, G->rg.dout, ds));
    zero_row(L, gep(L, L->f32, G->rg.dq, qs), G->Dp);
    L->q_vec = q;
    L->lane0 = i;
    scope_push(L);
    lower_steps(L, SB_ROW);
    fault_only(L, I->checks, SB_ROW_FAULT);
    scope_pop(L);
    L->q_vec = L->lane0 = NULL;
    loop_end(L, &li);
}

/* Every element of the q tile at q0 (tile mode `mode`), then its dQ rows into the call's. */
static void qtile(Grad *G, const Item *I, LLVMValueRef hr, LLVMValueRef q0, LLVMValueRef nr, LLVMValueRef mode) {
    Lower *L = G->L;
    LLVMBuilderRef b = L->bd;
    LLVMValueRef H = L->var[V_SIZE_H], Lq = L->var[V_SIZE_LQ];
    row_prologue(G, I, hr, q0, nr);
    Loop li;
    LLVMValueRef i = loop_begin(L, &li, ci64(L, 0), nr, ci64(L, 1), "row");
    LLVMValueRef q = LLVMBuildAdd(b, q0, i, "q");
    LLVMValueRef row = LLVMBuildAdd(b, LLVMBuildMul(b, LLVMBuildAdd(b, LLVMBuildMul(b, I->b, H, ""), hr, ""), Lq, ""), q, "");
    LLVMValueRef lse_at = LLVMBuildAdd(b, LLVMBuildMul(b, I->b, stride(L, offsetof(AttnCall, lse_stride), 0), ""),
                                       LLVMBuildMul(b, hr, stride(L, offsetof(AttnCall, lse_stride), 1), ""), "");
    lse_at = LLVMBuildAdd(b, lse_at, LLVMBuildMul(b, q, stride(L, offsetof(AttnCall, lse_stride), 2), ""), "");
    RowCtx R;
    R.lse = load(L, L->f32, gep(L, L->f32, I->lse, lse_at), 4);
    R.delta = load(L, L->f32, gep(L, L->f32, I->delta, row), 4);
    R.qrow = gep(L, L->f32, G->rg.q, LLVMBuildMul(b, i, G->Dp, ""));
    R.dqrow = gep(L, L->f32, G->rg.dq, LLVMBuildMul(b, i, G->Dp, ""));
    R.dorow = gep(L, L->f32, G->rg.dout, LLVMBuildMul(b, i, G->Dvp, ""));
    R.mode = mode;
    R.checks = I->checks;
    /* softmax: an empty row (LSE = -inf) has no gradient */
    LLVMBasicBlockRef live = L->s->softmax ? if_begin(L, fcmp(L, LLVMRealUNE, R.lse, cf32(L, -INFINITY)), "live") : NULL;
    L->q_vec = q;
    L->lane0 = i;
    scope_push(L);
    lower_load_row_slots(L);
    Loop lj;
    LLVMValueRef j = loop_begin(L, &lj, ci64(L, 0), I->nc, ci64(L, 1), "elem");
    scope_push(L);
    L->kv = LLVMBuildAdd(b, I->k0, j, "kv");
    L->col_j = j;
    lower_load_col_slots(L);
    element(G, &R, j);
    L->kv = L->col_j = NULL;
    scope_pop(L);
    loop_end(L, &lj);
    scope_pop(L);
    L->q_vec = L->lane0 = NULL;
    if (live) if_end(L, live);
    loop_end(L, &li);
    /* the q tile's dQ rows into the call's (this kv split's own buffer) */
    Loop la;
    i = loop_begin(L, &la, ci64(L, 0), nr, ci64(L, 1), "dq");
    row = LLVMBuildAdd(b, LLVMBuildMul(b, LLVMBuildAdd(b, LLVMBuildMul(b, I->b, H, ""), hr, ""), Lq, ""),
                       LLVMBuildAdd(b, q0, i, ""), "");
    add_row(L, gep(L, L->f32, I->dq, LLVMBuildMul(b, row, L->var[V_SIZE_D], "")),
            gep(L, L->f32, G->rg.dq, LLVMBuildMul(b, i, G->Dp, "")), L->var[V_SIZE_D]);
    loop_end(L, &la);
}

/* The item's kv rows: K and V into scratch, dK and dV zeroed, the col blocks. */
static void col_prologue(Grad *G, const Item *I) {
    Lower *L = G->L;
    LLVMBuilderRef b = L->bd;
    LLVMValueRef kbase = field(L, offsetof(AttnCall, k), ptr_to(L->i8)), vbase = field(L, offsetof(AttnCall, v), ptr_to(L->i8));
    LLVMValueRef kel = field(L, offsetof(AttnCall, k_elem), L->i32), vel = field(L, offsetof(AttnCall, v_elem), L->i32);
    Loop lj;
    LLVMValueRef j = loop_begin(L, &lj, ci64(L, 0), I->nc, ci64(L, 1), "col");
    LLVMValueRef kv = LLVMBuildAdd(b, I->k0, j, "kv");
    LLVMValueRef ks = LLVMBuildMul(b, j, G->Dp, ""), vs = LLVMBuildMul(b, j, G->Dvp, "");
    load_row(L, kel, kbase, row_at(L, offsetof(AttnCall, k_stride), I->b, I->hk, kv), L->var[V_SIZE_D], G->Dp,
             gep(L, L->f32, G->rg.k, ks));
    load_row(L, vel, vbase, row_at(L, offsetof(AttnCall, v_stride), I->b, I->hk, kv), L->var[V_SIZE_DV], G->Dvp,
             gep(L, L->f32, G->rg.v, vs));
    zero_row(L, gep(L, L->f32, G->rg.dk, ks), G->Dp);
    zero_row(L, gep(L, L->f32, G->rg.dv, vs), G->Dvp);
    L->kv = kv;
    L->col_j = j;
    scope_push(L);
    lower_steps(L, SB_COL);
    fault_only(L, I->checks, SB_COL_FAULT);
    scope_pop(L);
    L->kv = L->col_j = NULL;
    loop_end(L, &lj);
}

/* The AttnGradTileFn (kernel_abi.h). */
static void gen_grad_tile(Grad *G, const char *name) {
    Lower *L = G->L;
    LLVMBuilderRef b = L->bd;
    LLVMTypeRef pf = ptr_to(L->f32);
    LLVMTypeRef args[6] = {ptr_to(L->i8), L->i64, L->i64, L->i64, ptr_to(pf), ptr_to(L->i8)};
    LLVMBasicBlockRef entry = lower_open_function(L, name, LLVMFunctionType(L->i32, args, 6, 0));
    static const char *const names[6] = {"call", "b", "hk", "kt", "dtensor", "scratch"};
    for (unsigned i = 0; i < 6; i++) LLVMSetValueName2(LLVMGetParam(L->fn, i), names[i], strlen(names[i]));
    L->call = LLVMGetParam(L->fn, 0);
    Item I;
    I.b = LLVMGetParam(L->fn, 1);
    I.hk = LLVMGetParam(L->fn, 2);
    LLVMValueRef kt = LLVMGetParam(L->fn, 3), dtensor = LLVMGetParam(L->fn, 4), scratch = LLVMGetParam(L->fn, 5);
    lower_bind_inputs(L);
    L->var[V_B] = I.b;
    L->var[V_HK] = I.hk;
    L->var[V_H] = NULL; /* the query head is a row value here (the head loop is inside the item) */
    const Attention *a = L->p->attn;
    for (int t = 0; t < a->ntensors; t++)
        G->dtensor[t] = load(L, pf, gep(L, pf, dtensor, ci64(L, t)), 8);
    LLVMValueRef H = L->var[V_SIZE_H], Hkv = L->var[V_SIZE_HKV], Lq = L->var[V_SIZE_LQ], Lk = L->var[V_SIZE_LK];
    G->Dp = round_up(L, L->var[V_SIZE_D], L->W);
    G->Dvp = round_up(L, L->var[V_SIZE_DV], L->W);
    I.k0 = LLVMBuildMul(b, kt, ci64(L, L->BK), "k0");
    I.nc = smin(L, LLVMBuildSub(b, Lk, I.k0, ""), ci64(L, L->BK));
    I.lse = field(L, offsetof(AttnCall, lse), pf);
    I.delta = field(L, offsetof(AttnGradCall, delta), pf);
    I.dout = field(L, offsetof(AttnGradCall, dout), ptr_to(L->i8));
    I.dq = field(L, offsetof(AttnGradCall, dq), pf);
    I.checks = LLVMBuildICmp(b, LLVMIntNE, field(L, offsetof(AttnCall, check_faults), L->i32), ci32(L, 0), "checks");
    lower_steps(L, SB_ITEM);
    LLVMValueRef mis =
        LLVMBuildAnd(b, LLVMBuildSub(b, ci64(L, 0), LLVMBuildPtrToInt(b, scratch, L->i64, ""), ""), ci64(L, 63), "");
    grad_layout(L, G->Dp, G->Dvp, gep(L, L->i8, scratch, mis), &G->rg);
    L->row_slots = G->rg.rows;
    L->col_slots = G->rg.cols;
    col_prologue(G, &I);

    /* the query heads of hk's group; per head the q tiles the transposed map lists for kt */
    LLVMValueRef group = LLVMBuildSDiv(b, H, smax(L, Hkv, ci64(L, 1)), "");
    LLVMValueRef row_start = field(L, offsetof(AttnCall, row_start), ptr_to(L->i64));
    LLVMValueRef tile_kv = field(L, offsetof(AttnCall, tile_kv), ptr_to(L->i32));
    LLVMValueRef tile_mode = field(L, offsetof(AttnCall, tile_mode), ptr_to(L->i8));
    LLVMValueRef nkt = field(L, offsetof(AttnCall, nkt), L->i64);
    LLVMValueRef gsb = field(L, offsetof(AttnCall, group_stride_b), L->i64);
    LLVMValueRef gsh = field(L, offsetof(AttnCall, group_stride_h), L->i64);
    Loop lh;
    LLVMValueRef h0 = LLVMBuildMul(b, I.hk, group, "");
    LLVMValueRef hr = loop_begin(L, &lh, h0, LLVMBuildAdd(b, h0, group, ""), ci64(L, 1), "head");
    L->var[V_H] = hr;
    LLVMValueRef grp = LLVMBuildAdd(b, LLVMBuildMul(b, I.b, gsb, ""), LLVMBuildMul(b, hr, gsh, ""), "");
    LLVMValueRef at = LLVMBuildAdd(b, LLVMBuildMul(b, grp, nkt, ""), kt, "");
    LLVMValueRef first = load(L, L->i64, gep(L, L->i64, row_start, at), 8);
    LLVMValueRef last = load(L, L->i64, gep(L, L->i64, row_start, LLVMBuildAdd(b, at, ci64(L, 1), "")), 8);
    Loop le;
    LLVMValueRef e = loop_begin(L, &le, first, last, ci64(L, 1), "qtile");
    LLVMValueRef qt = LLVMBuildSExt(b, load(L, L->i32, gep(L, L->i32, tile_kv, e), 4), L->i64, "qt");
    LLVMValueRef mode = load(L, L->i8, gep(L, L->i8, tile_mode, e), 1);
    LLVMValueRef q0 = LLVMBuildMul(b, qt, ci64(L, L->QB), "q0");
    LLVMValueRef nr = smin(L, LLVMBuildSub(b, Lq, q0, ""), ci64(L, L->QB));
    qtile(G, &I, hr, q0, nr, mode);
    loop_end(L, &le);
    loop_end(L, &lh);
    L->var[V_H] = NULL;

    /* the tile's rows of dK and dV belong to this item alone */
    LLVMValueRef dk = field(L, offsetof(AttnGradCall, dk), pf), dv = field(L, offsetof(AttnGradCall, dv), pf);
    Loop lj;
    LLVMValueRef j = loop_begin(L, &lj, ci64(L, 0), I.nc, ci64(L, 1), "dkdv");
    LLVMValueRef kvrow = LLVMBuildAdd(b, LLVMBuildMul(b, LLVMBuildAdd(b, LLVMBuildMul(b, I.b, Hkv, ""), I.hk, ""), Lk, ""),
                                      LLVMBuildAdd(b, I.k0, j, ""), "");
    add_row(L, gep(L, L->f32, dk, LLVMBuildMul(b, kvrow, L->var[V_SIZE_D], "")),
            gep(L, L->f32, G->rg.dk, LLVMBuildMul(b, j, G->Dp, "")), L->var[V_SIZE_D]);
    add_row(L, gep(L, L->f32, dv, LLVMBuildMul(b, kvrow, L->var[V_SIZE_DV], "")),
            gep(L, L->f32, G->rg.dv, LLVMBuildMul(b, j, G->Dvp, "")), L->var[V_SIZE_DV]);
    loop_end(L, &lj);
    LLVMBuildRet(b, ci32(L, 0));
    lower_close_function(L, entry);
}

/* Scratch bytes of a backward work item: grad_layout sized from the call. */
static void gen_grad_scratch(Grad *G, const char *name) {
    Lower *L = G->L;
    LLVMBuilderRef b = L->bd;
    LLVMTypeRef args[1] = {ptr_to(L->i8)};
    LLVMBasicBlockRef entry = lower_open_function(L, name, LLVMFunctionType(L->i64, args, 1, 0));
    L->call = LLVMGetParam(L->fn, 0);
    LLVMSetValueName2(L->call, "call", 4);
    lower_bind_inputs(L);
    LLVMValueRef D = L->var[V_SIZE_D], Dv = L->var[V_SIZE_DV];
    LLVMValueRef bytes = grad_layout(L, round_up(L, D, L->W), round_up(L, Dv, L->W), NULL, NULL);
    /* absurd sizes: more than any machine has, without overflow */
    LLVMValueRef limit = ci64(L, (int64_t)1 << 30);
    LLVMValueRef huge = LLVMBuildICmp(b, LLVMIntUGT, D, limit, "");
    huge = LLVMBuildOr(b, huge, LLVMBuildICmp(b, LLVMIntUGT, Dv, limit, ""), "");
    huge = LLVMBuildOr(b, huge, LLVMBuildICmp(b, LLVMIntUGT, bytes, ci64(L, (int64_t)1 << 40), ""), "");
    LLVMBuildRet(b, LLVMBuildSelect(b, huge, ci64(L, (int64_t)1 << 40), bytes, ""));
    lower_close_function(L, entry);
}

static void reset(Lower *L) {
    while (L->depth > 0) scope_pop(L);
    while (L->nstack > 0) L->memo[L->stack[--L->nstack]] = NULL;
    memset(L->var, 0, sizeof L->var);
    memset(L->sumvar, 0, sizeof L->sumvar);
    L->q_vec = L->kv = L->pre = L->lane0 = L->col_j = NULL;
}

attnc_status llvm_lower_grad(const Plan *p, const LlvmTarget *target, LLVMModuleRef mod, const char *tile_name,
                             const char *scratch_name, attnc_error *err) {
    const GradSchedule *gs = p->grad_sched;
    if (!gs) return set_error(err, ATTNC_ERR_INTERNAL, "LLVM backend: attention '%s' has no backward schedule", p->attn->name);
    if (gs->base.why[0])
        return set_error(err, ATTNC_ERR_INTERNAL, "LLVM backend: no backward kernel for attention '%s': %s",
                         p->attn->name, gs->base.why);
    int width = llvm_kernel_width(p, target->vec_width);
    if (width != 4 && width != 8 && width != 16)
        return set_error(err, ATTNC_ERR_INTERNAL, "LLVM backend: vector width %d is not 4, 8 or 16", width);
    Lower L;
    memset(&L, 0, sizeof L);
    L.ctx = LLVMGetModuleContext(mod);
    L.mod = mod;
    L.p = p;
    L.ir = gs->base.m;
    L.f = gs->gp->f;
    L.s = &gs->base;
    L.target = target;
    L.W = width;
    L.C = 1;
    L.QB = gs->base.bq;
    L.BK = gs->base.bk;
    L.scalar_rows = 1;
    lower_init_types(&L);
    const Attention *a = p->attn;
    size_t n = (size_t)gs->base.m->n + 1;
    L.memo = calloc(n, sizeof *L.memo);
    L.stack = calloc(n, sizeof *L.stack);
    L.param = calloc((size_t)a->nparams + 1, sizeof *L.param);
    L.tdata = calloc((size_t)a->ntensors + 1, sizeof *L.tdata);
    L.tdim = calloc((size_t)a->ntensors + 1, sizeof *L.tdim);
    Grad *G = calloc(1, sizeof *G + sizeof(LLVMValueRef) * (size_t)a->ntensors);
    attnc_status st = ATTNC_OK;
    if (!L.memo || !L.stack || !L.param || !L.tdata || !L.tdim || !G) {
        st = set_error(err, ATTNC_ERR_NOMEM, "out of memory in the LLVM backend");
    } else if (L.QB < 1 || L.BK < 1) {
        st = set_error(err, ATTNC_ERR_INTERNAL, "LLVM backend: tiles of %d x %d", L.QB, L.BK);
    } else {
        G->L = &L;
        G->gs = gs;
        L.bd = LLVMCreateBuilderInContext(L.ctx);
        L.alloca_bd = LLVMCreateBuilderInContext(L.ctx);
        gen_grad_tile(G, tile_name);
        reset(&L);
        if (scratch_name) gen_grad_scratch(G, scratch_name);
        LLVMDisposeBuilder(L.bd);
        LLVMDisposeBuilder(L.alloca_bd);
        if (L.failed) st = set_error(err, ATTNC_ERR_INTERNAL, "LLVM backend (backward): %s", L.why);
    }
    free(G);
    free(L.memo);
    free(L.stack);
    free(L.param);
    free(L.tdata);
    free(L.tdim);
    return st;
}
