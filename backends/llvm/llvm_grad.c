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
 * Layout.  The element pass runs one query row at a time (L->scalar_rows:
 * the schedule's row values are scalars, its row slots one 8-byte value
 * per row of the q tile) and along kv in vectors of W keys (L->kv_lanes;
 * one key at a time for plans with tensor terms, whose scatter-adds would
 * collide across lanes).  The five products are the forward's
 * register-blocked micro-kernel (llvm_gemm.c's lower_gemm) with vectors
 * along the kv tile (or the q tile for dQ), over float32 rows in scratch
 * padded with zeros to whole vectors (Dp, Dvp; BKp, BQp):
 *
 *   per work item (b, hk, kv tile kt):  K, Kt, Vt (element types, strides) -> scratch;
 *                                       dKt, dVt = 0; item and col blocks
 *   per query head hr of hk's group, per q tile the transposed map lists:
 *     Q and dO rows -> scratch, row blocks
 *     S = Q Kt, dP = dO Vt
 *     element pass (LSE = -inf rows skipped): pre, fault (return 1), keep
 *       (PARTIAL tiles), value, p, g, gpre, tensor terms; P over S,
 *       gs = gpre * scale over dP and into GSt (0 where not kept)
 *     dVt += dO^T P, dKt += Q^T gs, dQt = K^T GSt, dQt added into the call's dQ
 *   dKt, dVt added into the call's dK, dV (the item owns those rows)
 *
 * Every sum has a fixed order: a call gives the same bits every time. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "llvm_build.h"
#include "llvm_gemm.h"
#include "llvm_lower.h"
#include "llvm_math.h"
#include "llvm_node.h"
#include "llvm_steps.h"
#include "llvm_tensor.h"
#include "schedule_grad.h"

/* Scratch regions of one backward work item: float rows padded with zeros
 * to whole vectors (Dp, Dvp along D and Dv; BKp, BQp along the tiles). */
typedef struct GradRegions {
    LLVMValueRef k;             /* K[BKp][Dp]: the tile's K rows (dQ's product), at the end its dK */
    LLVMValueRef kt, vt;        /* Kt[Dp][BKp], Vt[Dvp][BKp]: transposed (S's and dP's products) */
    LLVMValueRef v;             /* V[BKp][Dvp]: the tile's V rows on their way into Vt, at the end its dV */
    LLVMValueRef dkt, dvt;      /* dKt[Dp][BKp], dVt[Dvp][BKp]: the tile's dK and dV, transposed */
    LLVMValueRef q;             /* Q[BQ][Dp]: the q tile's rows widened (Q not float32; else read in place) */
    LLVMValueRef s, dp;         /* [BQ][BKp]: S then P, dP then gs = gpre * scale */
    LLVMValueRef dq;            /* dQ[BQ][Dp]: the q tile's dQ when D is not whole vectors */
    LLVMValueRef rows, cols;    /* the schedule's slots: [nrow_slots][BQ], [ncol_slots][BK], 8 bytes each */
} GradRegions;

enum { NREGIONS = 12 };

typedef struct Grad {
    Lower *L;
    const GradSchedule *gs;
    GradRegions rg;
    int BQ, BK, BKp;         /* the tiles; BK rounded up to whole vectors */
    LLVMValueRef Dp, Dvp;    /* D and Dv rounded up to whole vectors */
    LLVMValueRef dtensor[1]; /* (flexible) by tensor index: this partition's accumulator, or NULL */
} Grad;

static LLVMValueRef round_up(Lower *L, LLVMValueRef n, int to) {
    return LLVMBuildAnd(L->bd, LLVMBuildAdd(L->bd, n, ci64(L, to - 1), ""), ci64(L, -to), "");
}

/* Carve the regions into *rg (base != NULL) or only size them (rg still
 * valid, untouched); the bytes needed, with 64 of slack for aligning the base. */
static LLVMValueRef grad_layout(Grad *G, LLVMValueRef Dp, LLVMValueRef Dvp, LLVMValueRef base, GradRegions *rg) {
    Lower *L = G->L;
    LLVMBuilderRef b = L->bd;
    const Schedule *s = L->s;
    LLVMValueRef bk4 = ci64(L, (int64_t)G->BKp * 4), bq4 = ci64(L, (int64_t)G->BQ * 4);
    LLVMValueRef sizes[NREGIONS] = {
        LLVMBuildMul(b, Dp, bk4, ""),                             /* k */
        LLVMBuildMul(b, Dp, bk4, ""),                             /* kt */
        LLVMBuildMul(b, Dvp, bk4, ""),                            /* vt */
        LLVMBuildMul(b, Dvp, bk4, ""),                            /* v */
        LLVMBuildMul(b, Dp, bk4, ""),                             /* dkt */
        LLVMBuildMul(b, Dvp, bk4, ""),                            /* dvt */
        LLVMBuildMul(b, Dp, bq4, ""),                             /* q */
        ci64(L, (int64_t)G->BQ * G->BKp * 4),                     /* s */
        ci64(L, (int64_t)G->BQ * G->BKp * 4),                     /* dp */
        LLVMBuildMul(b, Dp, bq4, ""),                             /* dq */
        ci64(L, (int64_t)s->nrow_slots * G->BQ * 8 + 8),          /* rows */
        ci64(L, (int64_t)s->ncol_slots * G->BKp * 8 + 8),         /* cols: BKp cells (read W at a time) */
    };
    LLVMValueRef *dst[NREGIONS] = {&rg->k, &rg->kt, &rg->vt, &rg->v, &rg->dkt, &rg->dvt,
                                   &rg->q, &rg->s,  &rg->dp, &rg->dq,   &rg->rows, &rg->cols};
    LLVMValueRef off = ci64(L, 0);
    for (int i = 0; i < NREGIONS; i++) {
        if (base) *dst[i] = gep(L, L->i8, base, off);
        off = LLVMBuildAdd(b, off, round_up(L, sizes[i], 64), "");
    }
    return LLVMBuildAdd(b, off, ci64(L, 64), "");
}

/* Out[r*ldo + 0..W*cols) (=|+=) sum over k < depth of A[r*ars + k*aks] *
 * Bm[k*ldb + 0..W*cols) for r < nrows: the forward's register-blocked
 * micro-kernel (llvm_gemm.c), R x CQ vectors of accumulators.  A is read
 * one float at a time (anywhere, any strides); cols (i64) vectors: a
 * constant picks a CQ that divides it, else blocks of CQ then the rest one
 * vector at a time; pf (or NULL): a region pulled into L2 meanwhile. */
static void gemm(Grad *G, LLVMValueRef cols, LLVMValueRef A, LLVMValueRef ars, LLVMValueRef aks, LLVMValueRef nrows,
                 LLVMValueRef Bm, LLVMValueRef ldb, LLVMValueRef depth, LLVMValueRef Out, LLVMValueRef ldo,
                 int accumulate, const Prefetch *pf) {
    Lower *L = G->L;
    LLVMBuilderRef b = L->bd;
    int cq = L->W == 16 ? 4 : 2;
    L->R = 4;
    if (LLVMIsAConstantInt(cols)) {
        while (LLVMConstIntGetSExtValue(cols) % cq) cq--;
        L->CQ = cq;
        L->gemm_cols = cols;
        lower_gemm_ld(L, A, ars, aks, nrows, Bm, ldb, depth, Out, ldo, accumulate, pf);
    } else {
        LLVMValueRef whole = LLVMBuildAnd(b, cols, ci64(L, -cq), "");
        L->CQ = cq;
        L->gemm_cols = whole;
        lower_gemm_ld(L, A, ars, aks, nrows, Bm, ldb, depth, Out, ldo, accumulate, pf);
        LLVMBasicBlockRef after = if_begin(L, LLVMBuildICmp(b, LLVMIntSLT, whole, cols, ""), "gemm.rest");
        LLVMValueRef at = LLVMBuildMul(b, whole, ci64(L, L->W), "");
        L->CQ = 1;
        L->gemm_cols = LLVMBuildSub(b, cols, whole, "");
        lower_gemm_ld(L, A, ars, aks, nrows, gep(L, L->f32, Bm, at), ldb, depth, gep(L, L->f32, Out, at), ldo,
                      accumulate, NULL);
        if_end(L, after);
    }
    L->gemm_cols = NULL;
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

/* What the element pass of one row reads. */
typedef struct RowCtx {
    LLVMValueRef s, dp;  /* the row of S (P written back) and of dP (gs written back) */
    LLVMValueRef lse, delta;
    LLVMValueRef mode, checks;
} RowCtx;

/* Element (row, kv j) from S and dP: the seeds, p into S, gs = gpre * scale
 * into dP and GSt (0 where not kept), the tensor terms. */
static void element(Grad *G, const RowCtx *R, LLVMValueRef j) {
    Lower *L = G->L;
    LLVMBuilderRef b = L->bd;
    const Schedule *s = L->s;
    const GradSchedule *gs = G->gs;
    LLVMValueRef sp = gep(L, L->f32, R->s, j), dpp = gep(L, L->f32, R->dp, j);
    LLVMValueRef sdot = load(L, L->f32, sp, 4), dp = load(L, L->f32, dpp, 4);
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
    /* a masked element contributes nothing */
    store(L, cf32(L, 0), sp, 4);
    store(L, cf32(L, 0), dpp, 4);
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
    LLVMValueRef g = LLVMBuildFSub(b, dp, R->delta, "");
    if (s->softmax) g = LLVMBuildFMul(b, p, g, "g");
    /* a zero derivative contributes nothing, even against an infinite seed */
    LLVMValueRef gpre = fsel(L, fcmp(L, LLVMRealUNE, dvdpre, cf32(L, 0)), LLVMBuildFMul(b, g, dvdpre, ""), cf32(L, 0));
    LLVMValueRef gsv = LLVMBuildFMul(b, gpre, scale, "gs");
    store(L, p, sp, 4);
    store(L, gsv, dpp, 4);
    for (int t = 0; t < gs->gp->nterms && !L->failed; t++) tensor_term(G, &gs->gp->terms[t], &gs->terms[t], g, gpre);
    if (skip) if_end(L, skip);
    L->pre = NULL;
}

/* Elements (row, kv j0 .. j0 + W - 1) as one vector along kv (L->kv_lanes:
 * plans without tensor terms, whose scatter-adds would collide across
 * lanes): the same seeds as element(), lanes past the tile's keys not kept. */
static void element_vec(Grad *G, const RowCtx *R, LLVMValueRef j0, LLVMValueRef nc) {
    Lower *L = G->L;
    LLVMBuilderRef b = L->bd;
    const Schedule *s = L->s;
    const GradSchedule *gs = G->gs;
    LLVMValueRef js = LLVMBuildAdd(b, splat(L, j0), iota(L), "j");
    LLVMValueRef valid = LLVMBuildICmp(b, LLVMIntSLT, js, splat(L, nc), "valid");
    LLVMValueRef sp = gep(L, L->f32, R->s, j0), dpp = gep(L, L->f32, R->dp, j0);
    LLVMValueRef sdot = load(L, L->vf32, sp, 4), dp = load(L, L->vf32, dpp, 4);
    lower_steps(L, SB_PRE);
    LLVMValueRef scale = splat(L, lower_node(L, gs->gp->f->scale));
    L->pre = LLVMBuildFAdd(b, LLVMBuildFMul(b, scale, sdot, ""), splat(L, lower_node(L, gs->gp->f->bias)), "pre");
    if (s->needs_fault) {
        LLVMBasicBlockRef after = if_begin(L, R->checks, "fault");
        scope_push(L);
        lower_steps(L, SB_FAULT);
        LLVMValueRef f = LLVMBuildAnd(b, splat(L, lower_node(L, s->block[SB_FAULT].result)), valid, "");
        LLVMBasicBlockRef ok = block(L, "fault.no"), bad = block(L, "fault.yes");
        LLVMBuildCondBr(b, any_lane(L, f), bad, ok);
        LLVMPositionBuilderAtEnd(b, bad);
        LLVMBuildRet(b, ci32(L, 1));
        LLVMPositionBuilderAtEnd(b, ok);
        scope_pop(L);
        if_end(L, after);
    }
    LLVMValueRef kept = valid;
    if (s->needs_mask) {
        LLVMValueRef keep = local(L, L->vi1, kept);
        LLVMValueRef partial = LLVMBuildICmp(b, LLVMIntEQ, R->mode, LLVMConstInt(L->i8, TILE_PARTIAL, 0), "");
        LLVMBasicBlockRef after = if_begin(L, partial, "keep");
        scope_push(L);
        lower_steps(L, SB_KEEP);
        set(L, keep, LLVMBuildAnd(b, kept, splat(L, lower_node(L, s->block[SB_KEEP].result)), ""));
        scope_pop(L);
        if_end(L, after);
        kept = get(L, L->vi1, keep);
    }
    lower_steps(L, SB_VALUE_FULL);
    LLVMValueRef value = splat(L, lower_node(L, gs->value)), dvdpre = splat(L, lower_node(L, gs->dvalue_dpre));
    LLVMValueRef zero = LLVMConstNull(L->vf32);
    LLVMValueRef p = s->softmax ? lower_exp2(L, LLVMBuildFMul(b, LLVMBuildFSub(b, value, splat(L, R->lse), ""),
                                                             splat(L, cf32(L, 1.44269504088896340736)), ""))
                                : value;
    p = fsel(L, kept, p, zero);
    LLVMValueRef g = LLVMBuildFSub(b, dp, splat(L, R->delta), "");
    if (s->softmax) g = LLVMBuildFMul(b, p, g, "g");
    /* a zero derivative contributes nothing, even against an infinite seed; nor does a masked element */
    LLVMValueRef live = LLVMBuildAnd(b, kept, fcmp(L, LLVMRealUNE, dvdpre, zero), "");
    LLVMValueRef gsv = fsel(L, live, LLVMBuildFMul(b, LLVMBuildFMul(b, g, dvdpre, ""), scale, ""), zero);
    store(L, p, sp, 4);
    store(L, gsv, dpp, 4);
    L->pre = NULL;
}

/* ---- the loop nest -------------------------------------------------------- */

/* What the work item binds once. */
typedef struct Item {
    LLVMValueRef b, hk, k0, nc; /* the kv tile: keys [k0, k0 + nc) */
    LLVMValueRef lse, delta, dout, dq; /* the call's */
    LLVMValueRef qf32;                 /* i1: Q is float32 (its rows read in place) */
    LLVMValueRef checks;
} Item;

static LLVMValueRef flat_row(Lower *L, const Item *I, LLVMValueRef hr, LLVMValueRef q) {
    LLVMBuilderRef b = L->bd;
    LLVMValueRef bh = LLVMBuildAdd(b, LLVMBuildMul(b, I->b, L->var[V_SIZE_H], ""), hr, "");
    return LLVMBuildAdd(b, LLVMBuildMul(b, bh, L->var[V_SIZE_LQ], ""), q, "");
}

/* Per row of the q tile at q0: the row blocks, and Q's row widened into
 * scratch when Q is not float32 (the products read float32 Q and the
 * driver's float32 dO in place: A operands need no padding). */
static void row_prologue(Grad *G, const Item *I, LLVMValueRef hr, LLVMValueRef q0, LLVMValueRef nr) {
    Lower *L = G->L;
    LLVMBuilderRef b = L->bd;
    Loop li;
    LLVMValueRef i = loop_begin(L, &li, ci64(L, 0), nr, ci64(L, 1), "rows");
    LLVMValueRef q = LLVMBuildAdd(b, q0, i, "q");
    LLVMBasicBlockRef widened = if_begin(L, LLVMBuildNot(b, I->qf32, ""), "q.widen");
    load_row(L, field(L, offsetof(AttnCall, q_elem), L->i32), field(L, offsetof(AttnCall, q), ptr_to(L->i8)),
             row_at(L, offsetof(AttnCall, q_stride), I->b, hr, q), L->var[V_SIZE_D], G->Dp,
             gep(L, L->f32, G->rg.q, LLVMBuildMul(b, i, G->Dp, "")));
    if_end(L, widened);
    L->q_vec = q;
    L->lane0 = i;
    scope_push(L);
    lower_steps(L, SB_ROW);
    fault_only(L, I->checks, SB_ROW_FAULT);
    scope_pop(L);
    L->q_vec = L->lane0 = NULL;
    loop_end(L, &li);
}

/* The element pass over the q tile's rows: S and dP in, P and gs out. */
static void element_pass(Grad *G, const Item *I, LLVMValueRef hr, LLVMValueRef q0, LLVMValueRef nr, LLVMValueRef mode) {
    Lower *L = G->L;
    LLVMBuilderRef b = L->bd;
    Loop li;
    LLVMValueRef i = loop_begin(L, &li, ci64(L, 0), nr, ci64(L, 1), "row");
    LLVMValueRef q = LLVMBuildAdd(b, q0, i, "q");
    LLVMValueRef lse_at = LLVMBuildAdd(b, LLVMBuildMul(b, I->b, stride(L, offsetof(AttnCall, lse_stride), 0), ""),
                                       LLVMBuildMul(b, hr, stride(L, offsetof(AttnCall, lse_stride), 1), ""), "");
    lse_at = LLVMBuildAdd(b, lse_at, LLVMBuildMul(b, q, stride(L, offsetof(AttnCall, lse_stride), 2), ""), "");
    RowCtx R;
    R.lse = load(L, L->f32, gep(L, L->f32, I->lse, lse_at), 4);
    R.delta = load(L, L->f32, gep(L, L->f32, I->delta, flat_row(L, I, hr, q)), 4);
    R.s = gep(L, L->f32, G->rg.s, LLVMBuildMul(b, i, ci64(L, G->BKp), ""));
    R.dp = gep(L, L->f32, G->rg.dp, LLVMBuildMul(b, i, ci64(L, G->BKp), ""));
    R.mode = mode;
    R.checks = I->checks;
    /* softmax: an empty row (LSE = -inf) has no gradient: its elements are not kept */
    LLVMValueRef live = L->s->softmax ? fcmp(L, LLVMRealUNE, R.lse, cf32(L, -INFINITY)) : cbool(L, 1);
    LLVMBasicBlockRef yes = block(L, "live"), no = block(L, "dead"), join = block(L, "row.done");
    LLVMBuildCondBr(b, live, yes, no);
    LLVMPositionBuilderAtEnd(b, yes);
    L->q_vec = q;
    L->lane0 = i;
    scope_push(L);
    lower_load_row_slots(L);
    Loop lj;
    /* without tensor terms, W keys at a time */
    int lanes = G->gs->gp->nterms == 0;
    LLVMValueRef j = loop_begin(L, &lj, ci64(L, 0), I->nc, ci64(L, lanes ? L->W : 1), "elem");
    scope_push(L);
    L->kv_lanes = lanes;
    LLVMValueRef kv = LLVMBuildAdd(b, I->k0, j, "kv");
    L->kv = lanes ? LLVMBuildAdd(b, splat(L, kv), iota(L), "kv") : kv;
    L->col_j = j;
    lower_load_col_slots(L);
    if (lanes) element_vec(G, &R, j, I->nc);
    else element(G, &R, j);
    L->kv = L->col_j = NULL;
    L->kv_lanes = 0;
    scope_pop(L);
    loop_end(L, &lj);
    scope_pop(L);
    L->q_vec = L->lane0 = NULL;
    LLVMBuildBr(b, join);
    LLVMPositionBuilderAtEnd(b, no);
    Loop lz;
    j = loop_begin(L, &lz, ci64(L, 0), I->nc, ci64(L, 1), "dead.elem");
    store(L, cf32(L, 0), gep(L, L->f32, R.s, j), 4);
    store(L, cf32(L, 0), gep(L, L->f32, R.dp, j), 4);
    loop_end(L, &lz);
    LLVMBuildBr(b, join);
    LLVMPositionBuilderAtEnd(b, join);
    /* the tile's columns past its keys: nothing (dKt, dVt columns no one reads, but defined) */
    Loop lp;
    j = loop_begin(L, &lp, I->nc, ci64(L, G->BKp), ci64(L, 1), "pad");
    store(L, cf32(L, 0), gep(L, L->f32, R.s, j), 4);
    store(L, cf32(L, 0), gep(L, L->f32, R.dp, j), 4);
    loop_end(L, &lp);
    loop_end(L, &li);
}

/* dQ[q0 .. q0 + nr) += gs K (the call's dQ: this kv split's own buffer),
 * vectors along D: in place when D is whole vectors, else through scratch. */
static void add_dq(Grad *G, const Item *I, LLVMValueRef hr, LLVMValueRef q0, LLVMValueRef nr) {
    Lower *L = G->L;
    LLVMBuilderRef b = L->bd;
    LLVMValueRef D = L->var[V_SIZE_D], one = ci64(L, 1), bkp = ci64(L, G->BKp);
    LLVMValueRef cols = LLVMBuildUDiv(b, G->Dp, ci64(L, L->W), "");
    LLVMValueRef dq = gep(L, L->f32, I->dq, LLVMBuildMul(b, flat_row(L, I, hr, q0), D, ""));
    LLVMBasicBlockRef whole = block(L, "dq.whole"), part = block(L, "dq.part"), done = block(L, "dq.done");
    LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntEQ, D, G->Dp, ""), whole, part);
    LLVMPositionBuilderAtEnd(b, whole);
    gemm(G, cols, G->rg.dp, bkp, one, nr, G->rg.k, G->Dp, I->nc, dq, D, 1, NULL);
    LLVMBuildBr(b, done);
    LLVMPositionBuilderAtEnd(b, part);
    gemm(G, cols, G->rg.dp, bkp, one, nr, G->rg.k, G->Dp, I->nc, G->rg.dq, G->Dp, 0, NULL);
    Loop li;
    LLVMValueRef i = loop_begin(L, &li, ci64(L, 0), nr, one, "dq");
    Loop ld;
    LLVMValueRef d = loop_begin(L, &ld, ci64(L, 0), D, one, "dq.d");
    LLVMValueRef p = gep(L, L->f32, dq, LLVMBuildAdd(b, LLVMBuildMul(b, i, D, ""), d, ""));
    LLVMValueRef x = load(L, L->f32, gep(L, L->f32, G->rg.dq, LLVMBuildAdd(b, LLVMBuildMul(b, i, G->Dp, ""), d, "")), 4);
    store(L, LLVMBuildFAdd(b, load(L, L->f32, p, 4), x, ""), p, 4);
    loop_end(L, &ld);
    loop_end(L, &li);
    LLVMBuildBr(b, done);
    LLVMPositionBuilderAtEnd(b, done);
}

/* One q tile: S = Q K^T and dP = dO V^T, the element pass, then
 * dV^T += dO^T P, dK^T += Q^T gs, dQ += gs K.  Meanwhile the next q tile's
 * rows (q0n, nrn) of Q, dO and dQ are pulled into L2, one line per inner
 * iteration of the S, dP and dK products: for every kv tile the item sweeps
 * the head's q tiles, which at long lengths come from memory. */
static void qtile(Grad *G, const Item *I, LLVMValueRef hr, LLVMValueRef q0, LLVMValueRef nr, LLVMValueRef mode,
                  LLVMValueRef q0n, LLVMValueRef nrn) {
    Lower *L = G->L;
    LLVMBuilderRef b = L->bd;
    LLVMValueRef D = L->var[V_SIZE_D], Dv = L->var[V_SIZE_DV], one = ci64(L, 1), four = ci64(L, 4);
    LLVMValueRef bkp = ci64(L, G->BKp), cols = ci64(L, G->BKp / L->W);
    const GradRegions *rg = &G->rg;
    row_prologue(G, I, hr, q0, nr);
    LLVMValueRef qbase = field(L, offsetof(AttnCall, q), ptr_to(L->i8));
    LLVMValueRef qstride = stride(L, offsetof(AttnCall, q_stride), 2);
    LLVMValueRef qin = gep(L, L->f32, qbase, row_at(L, offsetof(AttnCall, q_stride), I->b, hr, q0));
    LLVMValueRef qa = LLVMBuildSelect(b, I->qf32, qin, rg->q, "qa");
    LLVMValueRef qrs = LLVMBuildSelect(b, I->qf32, qstride, G->Dp, "");
    LLVMValueRef doa = gep(L, L->f32, I->dout, LLVMBuildMul(b, flat_row(L, I, hr, q0), Dv, ""));
    LLVMValueRef qesz = LLVMBuildSelect(b, I->qf32, four, ci64(L, 2), "");
    LLVMValueRef qn = gep(L, L->i8, qbase, LLVMBuildMul(b, row_at(L, offsetof(AttnCall, q_stride), I->b, hr, q0n), qesz, ""));
    Prefetch pq = lower_prefetch_rows(L, qn, nrn, D, qstride, qesz, 0);
    Prefetch pdo = lower_prefetch_rows(L, gep(L, L->f32, I->dout, LLVMBuildMul(b, flat_row(L, I, hr, q0n), Dv, "")),
                                       nrn, Dv, Dv, four, 1);
    Prefetch pdq = lower_prefetch_rows(L, gep(L, L->f32, I->dq, LLVMBuildMul(b, flat_row(L, I, hr, q0n), D, "")), nrn,
                                       D, D, four, 1);
    gemm(G, cols, qa, qrs, one, nr, rg->kt, bkp, D, rg->s, bkp, 0, &pq);
    gemm(G, cols, doa, Dv, one, nr, rg->vt, bkp, Dv, rg->dp, bkp, 0, &pdo);
    element_pass(G, I, hr, q0, nr, mode);
    gemm(G, cols, doa, one, Dv, Dv, rg->s, bkp, nr, rg->dvt, bkp, 1, NULL);
    gemm(G, cols, qa, one, qrs, D, rg->dp, bkp, nr, rg->dkt, bkp, 1, &pdq);
    add_dq(G, I, hr, q0, nr);
}

/* The item's kv rows: K and V into scratch (rows past the tile's keys 0),
 * then transposed into Kt and Vt; dK and dV zeroed; the col blocks. */
static void col_prologue(Grad *G, const Item *I) {
    Lower *L = G->L;
    LLVMBuilderRef b = L->bd;
    const GradRegions *rg = &G->rg;
    LLVMValueRef kbase = field(L, offsetof(AttnCall, k), ptr_to(L->i8));
    LLVMValueRef vbase = field(L, offsetof(AttnCall, v), ptr_to(L->i8));
    LLVMValueRef kel = field(L, offsetof(AttnCall, k_elem), L->i32), vel = field(L, offsetof(AttnCall, v_elem), L->i32);
    LLVMValueRef bkp = ci64(L, G->BKp);
    zero_row(L, rg->dkt, LLVMBuildMul(b, G->Dp, bkp, ""));
    zero_row(L, rg->dvt, LLVMBuildMul(b, G->Dvp, bkp, ""));
    /* the col slots' cells past the tile's keys are read (lanes not kept): defined */
    zero_row(L, rg->cols, ci64(L, (int64_t)L->s->ncol_slots * G->BKp * 2));
    Loop lj;
    LLVMValueRef j = loop_begin(L, &lj, ci64(L, 0), I->nc, ci64(L, 1), "col");
    LLVMValueRef kv = LLVMBuildAdd(b, I->k0, j, "kv");
    load_row(L, kel, kbase, row_at(L, offsetof(AttnCall, k_stride), I->b, I->hk, kv), L->var[V_SIZE_D], G->Dp,
             gep(L, L->f32, rg->k, LLVMBuildMul(b, j, G->Dp, "")));
    load_row(L, vel, vbase, row_at(L, offsetof(AttnCall, v_stride), I->b, I->hk, kv), L->var[V_SIZE_DV], G->Dvp,
             gep(L, L->f32, rg->v, LLVMBuildMul(b, j, G->Dvp, "")));
    L->kv = kv;
    L->col_j = j;
    scope_push(L);
    lower_steps(L, SB_COL);
    fault_only(L, I->checks, SB_COL_FAULT);
    scope_pop(L);
    L->kv = L->col_j = NULL;
    loop_end(L, &lj);
    Loop lz;
    LLVMValueRef at = loop_begin(L, &lz, LLVMBuildMul(b, I->nc, G->Dp, ""), LLVMBuildMul(b, bkp, G->Dp, ""),
                                 ci64(L, L->W), "k.pad");
    store_fvec(L, LLVMConstNull(L->vf32), rg->k, at);
    loop_end(L, &lz);
    at = loop_begin(L, &lz, LLVMBuildMul(b, I->nc, G->Dvp, ""), LLVMBuildMul(b, bkp, G->Dvp, ""), ci64(L, L->W),
                    "v.pad");
    store_fvec(L, LLVMConstNull(L->vf32), rg->v, at);
    loop_end(L, &lz);
    lower_transpose(L, rg->k, G->Dp, bkp, G->Dp, rg->kt, bkp);
    lower_transpose(L, rg->v, G->Dvp, bkp, G->Dvp, rg->vt, bkp);
}

/* The call's rows (k0 + j) of dst (n floats each) += the tile's transposed
 * src[d][j] (j < nc, d < n), through tmp[BKp][np]: whole vectors, then
 * the row's last floats one at a time. */
static void add_transposed(Grad *G, const Item *I, LLVMValueRef dst, LLVMValueRef src, LLVMValueRef n,
                           LLVMValueRef np, LLVMValueRef tmp) {
    Lower *L = G->L;
    LLVMBuilderRef b = L->bd;
    LLVMValueRef bkp = ci64(L, G->BKp);
    lower_transpose(L, src, bkp, np, bkp, tmp, np);
    LLVMValueRef whole = LLVMBuildAnd(b, n, ci64(L, -L->W), "");
    Loop lj;
    LLVMValueRef j = loop_begin(L, &lj, ci64(L, 0), I->nc, ci64(L, 1), "out");
    LLVMValueRef bh = LLVMBuildAdd(b, LLVMBuildMul(b, I->b, L->var[V_SIZE_HKV], ""), I->hk, "");
    LLVMValueRef row = LLVMBuildAdd(b, LLVMBuildMul(b, bh, L->var[V_SIZE_LK], ""), LLVMBuildAdd(b, I->k0, j, ""), "");
    LLVMValueRef out = gep(L, L->f32, dst, LLVMBuildMul(b, row, n, ""));
    LLVMValueRef in = gep(L, L->f32, tmp, LLVMBuildMul(b, j, np, ""));
    Loop ld;
    LLVMValueRef d = loop_begin(L, &ld, ci64(L, 0), whole, ci64(L, L->W), "out.v");
    store_fvec(L, LLVMBuildFAdd(b, load_fvec(L, out, d), load_fvec(L, in, d), ""), out, d);
    loop_end(L, &ld);
    d = loop_begin(L, &ld, whole, n, ci64(L, 1), "out.d");
    LLVMValueRef p = gep(L, L->f32, out, d);
    store(L, LLVMBuildFAdd(b, load(L, L->f32, p, 4), load(L, L->f32, gep(L, L->f32, in, d), 4), ""), p, 4);
    loop_end(L, &ld);
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
    I.k0 = LLVMBuildMul(b, kt, ci64(L, G->BK), "k0");
    I.nc = smin(L, LLVMBuildSub(b, Lk, I.k0, ""), ci64(L, G->BK));
    I.lse = field(L, offsetof(AttnCall, lse), pf);
    I.delta = field(L, offsetof(AttnGradCall, delta), pf);
    I.dout = field(L, offsetof(AttnGradCall, dout), ptr_to(L->i8));
    I.dq = field(L, offsetof(AttnGradCall, dq), pf);
    I.qf32 = LLVMBuildICmp(b, LLVMIntEQ, field(L, offsetof(AttnCall, q_elem), L->i32), ci32(L, ELEM_F32), "qf32");
    I.checks = LLVMBuildICmp(b, LLVMIntNE, field(L, offsetof(AttnCall, check_faults), L->i32), ci32(L, 0), "checks");
    lower_steps(L, SB_ITEM);
    LLVMValueRef mis =
        LLVMBuildAnd(b, LLVMBuildSub(b, ci64(L, 0), LLVMBuildPtrToInt(b, scratch, L->i64, ""), ""), ci64(L, 63), "");
    grad_layout(G, G->Dp, G->Dvp, gep(L, L->i8, scratch, mis), &G->rg);
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
    LLVMValueRef q0 = LLVMBuildMul(b, qt, ci64(L, G->BQ), "q0");
    LLVMValueRef nr = smin(L, LLVMBuildSub(b, Lq, q0, ""), ci64(L, G->BQ));
    /* the next q tile of the head (this one again after the last): prefetched */
    LLVMValueRef en = smin(L, LLVMBuildAdd(b, e, ci64(L, 1), ""), LLVMBuildSub(b, last, ci64(L, 1), ""));
    LLVMValueRef q0n =
        LLVMBuildMul(b, LLVMBuildSExt(b, load(L, L->i32, gep(L, L->i32, tile_kv, en), 4), L->i64, ""), ci64(L, G->BQ), "");
    qtile(G, &I, hr, q0, nr, mode, q0n, smin(L, LLVMBuildSub(b, Lq, q0n, ""), ci64(L, G->BQ)));
    loop_end(L, &le);
    loop_end(L, &lh);
    L->var[V_H] = NULL;

    /* the tile's rows of dK and dV belong to this item alone */
    add_transposed(G, &I, field(L, offsetof(AttnGradCall, dk), pf), G->rg.dkt, L->var[V_SIZE_D], G->Dp, G->rg.k);
    add_transposed(G, &I, field(L, offsetof(AttnGradCall, dv), pf), G->rg.dvt, L->var[V_SIZE_DV], G->Dvp, G->rg.v);
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
    GradRegions unused; /* sizing only: nothing is carved */
    LLVMValueRef bytes = grad_layout(G, round_up(L, D, L->W), round_up(L, Dv, L->W), NULL, &unused);
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
    if (!gs)
        return set_error(err, ATTNC_ERR_INTERNAL, "LLVM backend: attention '%s' has no backward schedule",
                         p->attn->name);
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
    L.QB = gs->base.bq; /* the row slots' stride */
    L.BK = (gs->base.bk + width - 1) / width * width; /* the col slots' stride (BKp) */
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
        G->BQ = L.QB, G->BK = gs->base.bk;
        G->BKp = (G->BK + L.W - 1) / L.W * L.W;
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
