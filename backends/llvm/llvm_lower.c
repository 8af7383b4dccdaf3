/* llvm_lower.c — the kernel plan as LLVM IR, built with the LLVM C API (no
 * textual IR, no C++).
 * Requires: a Plan and a module carrying the target's triple and data layout.
 * Produces: in that module, the AttnTileFn and AttnScratchFn of the kernel ABI
 * (middle/kernel_abi.h), computing what runtime/plan_run.c's refplan_tile
 * computes, in float32: the same tile-map walk, the mask only on PARTIAL
 * tiles, the fault root when the call asks for it, online softmax in the log2
 * domain, O = 0 and LSE = -inf for rows that keep nothing, lse_offset per row,
 * the weight clause without division.
 *
 * How the work is laid out.  Vector lanes run along q: one vector holds W
 * consecutive query rows, and a row block of QB = C*W rows is the unit the
 * tile loop works on (one q tile of bq rows is one or more row blocks).
 * With packed heads (AttnCall.pack = P > 1, kernel ABI 4) the rows are
 * packed rows, r / P of head h + r % P: llvm_rows.c maps each lane to its
 * query row and head, and the leaf h is then a row value.  In the decode
 * version of the kernel (llvm_lower.h's LLVM_VARIANT_NARROW) a row block
 * runs over only its vectors that hold rows of the item (L->nvec): a decode
 * block of P rows costs one vector, not C, and its micro-kernels take a
 * narrow version (llvm_gemm.c); in the prefill version it runs all C.  Each
 * version reads and writes the element types it was built for.
 * Along q rather than along kv because then
 *   - Q is transposed into scratch once per row block (Qt[d][q]), and K and V
 *     are read in place: the QK micro-kernel broadcasts K[kv][d] against Qt
 *     rows, the PV micro-kernel broadcasts V[kv][dv] against P rows; D and Dv
 *     are plain scalar loops, so no size needs padding or masked loads;
 *   - the online softmax statistics (row max, row sum) are per lane: no
 *     horizontal reductions in the tile loop.
 * A row block of one vector (C = 1: 16-row q tiles on AVX-512) holds O as
 * rows instead of transposed when Dv is a multiple of W (o_rows): its PV
 * then broadcasts P and loads V's rows as vectors (a broadcast of V per FMA
 * bound it by loads), and takes the rescaling as it loads O's rows.
 * The micro-kernels keep an R x CQ block of vector accumulators in registers
 * (R rows of K or V against CQ vectors of rows of Q), and spread prefetches
 * of the next tile's K and V through their inner loops.
 *
 * Per kv tile: the col loop (the schedule's kv values into col slots, the
 * low-rank K columns); QK micro-kernel into S; when the call can fault (its
 * check_faults), a pass over the fault root that returns 1 at once; the
 * element pass (two versions: with the mask for PARTIAL tiles, without for
 * FULL ones); for softmax the normalising pass (P = 2^(t - m), rescaling of
 * l and of the accumulator when the running max moved); the PV micro-kernel.
 *
 * Where IR values are computed is the schedule's (middle/schedule.h): this
 * file builds each of its blocks at its loop (llvm_steps.c) -- SB_ITEM in the
 * prologue (scalars), SB_ROW per row vector (vectors; exports to row slots),
 * SB_COL per kv of a tile (scalars; exports to col slots), SB_DIAG per row
 * block and tile (the diagonal tables, llvm_steps.c: lower_diag_fill; read
 * by IR_DIAG steps as one reversed vector, llvm_node.c), SB_PRE, SB_FAULT,
 * SB_KEEP and SB_VALUE_* per element vector, reading row and kv values from
 * their slots; SB_SCRATCH in the scratch size function.  Its rules (softmax
 * or weight, the LSE offset, masks, faults, the empty-row rule) are the
 * schedule's fields.  The vector width is the plan's (Plan.vec_width).
 * The files of the lowering: llvm_build.h (the state, builder helpers),
 * llvm_math.c (arithmetic: exp/log polynomials, total division),
 * llvm_node.c (one IR node), llvm_steps.c (the schedule's steps),
 * llvm_gemm.c (the micro-kernels), llvm_tensor.c (element types and
 * strides), llvm_rows.c (the lanes' rows and heads), llvm_rowio.c (Q read
 * and O written per row vector), llvm_band.c (the band of keys on PARTIAL
 * tiles), llvm_tile.h (the tile state they share) and this one, the
 * kernel: the loop nest, the scratch layout, the element, softmax and output
 * passes, and the entry point llvm_lower_plan.
 */
#include "llvm_lower.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel_abi.h"
#include "llvm_build.h"
#include "llvm_gemm.h"
#include "llvm_math.h"
#include "llvm_node.h"
#include "llvm_rows.h"
#include "llvm_steps.h"
#include "llvm_tensor.h"
#include "llvm_tile.h"

/* ---- the kernel ------------------------------------------------------------- */

static LLVMValueRef round64(Lower *L, LLVMValueRef bytes) {
    return LLVMBuildAnd(L->bd, LLVMBuildAdd(L->bd, bytes, ci64(L, 63), ""), ci64(L, -64), "");
}

/* Carve the scratch regions (base != NULL) or just size them; returns the
 * bytes needed, 64 of slack for aligning the base included. */
static LLVMValueRef layout(Lower *L, LLVMValueRef D, LLVMValueRef Dv, LLVMValueRef Rt, LLVMValueRef base, Regions *rg) {
    LLVMBuilderRef b = L->bd;
    LLVMValueRef qb4 = ci64(L, (int64_t)L->QB * 4);
    LLVMValueRef sizes[8] = {
        LLVMBuildMul(b, D, qb4, ""),                                         /* qt */
        LLVMBuildMul(b, Rt, qb4, ""),                                        /* qx */
        LLVMBuildMul(b, Rt, ci64(L, (int64_t)L->BK * 4), ""),                /* kx */
        ci64(L, (int64_t)L->BK * L->QB * 4),                                 /* s */
        LLVMBuildMul(b, Dv, qb4, ""),                                        /* ot */
        ci64(L, (int64_t)L->QB * 4 * 5 + (int64_t)L->s->nrow_slots * L->QB * 8 +
                    (int64_t)L->s->ncol_slots * L->BK * 8 + rows_map_bytes(L) +
                    L->s->ndiag * diag_stride(L) * 4), /* stats, lse_off, rows, cols, map, diag */
        /* kc, vc: sized for every call (a call's element types are not known here) */
        LLVMBuildMul(b, D, ci64(L, (int64_t)L->BK * 4), ""),
        LLVMBuildMul(b, Dv, ci64(L, (int64_t)L->BK * 4), ""),
    };
    LLVMValueRef off = ci64(L, 0);
    LLVMValueRef at[8];
    for (int i = 0; i < 8; i++) {
        at[i] = off;
        off = LLVMBuildAdd(b, off, round64(L, sizes[i]), "");
    }
    if (base) {
        LLVMValueRef *dst[5] = {&rg->qt, &rg->qx, &rg->kx, &rg->s, &rg->ot};
        for (int i = 0; i < 5; i++) *dst[i] = gep(L, L->i8, base, at[i]);
        LLVMValueRef stats = gep(L, L->i8, base, at[5]);
        rg->m = stats;
        rg->l = gep(L, L->i8, stats, ci64(L, (int64_t)L->QB * 4));
        rg->any = gep(L, L->i8, stats, ci64(L, (int64_t)L->QB * 8));
        rg->tmax = gep(L, L->i8, stats, ci64(L, (int64_t)L->QB * 12));
        rg->lse_off = gep(L, L->i8, stats, ci64(L, (int64_t)L->QB * 16));
        rg->rows = gep(L, L->i8, stats, ci64(L, (int64_t)L->QB * 20));
        rg->cols = gep(L, L->i8, rg->rows, ci64(L, (int64_t)L->s->nrow_slots * L->QB * 8));
        rg->map = gep(L, L->i8, rg->cols, ci64(L, (int64_t)L->s->ncol_slots * L->BK * 8));
        rg->diag = gep(L, L->i8, rg->map, ci64(L, rows_map_bytes(L)));
        rg->kc = gep(L, L->i8, base, at[6]);
        rg->vc = gep(L, L->i8, base, at[7]);
    }
    return LLVMBuildAdd(b, off, ci64(L, 64), "");
}

/* ROW_FAULT or COL_FAULT: the values only the fault check reads, computed
 * only in calls that check faults (their own scope: nothing after reads them). */
static void fault_only_steps(Lower *L, Tile *T, SchedBlockId id) {
    if (L->s->block[id].nsteps == 0) return;
    LLVMBasicBlockRef after = if_begin(L, T->checks, "fault.values");
    scope_push(L);
    lower_steps(L, id);
    scope_pop(L);
    if_end(L, after);
}

/* Per row block: Q transposed and scaled, the schedule's row block (row
 * slots, low-rank Q columns, the LSE offset), fresh softmax statistics and a
 * zero output accumulator. */
static void row_prologue(Lower *L, Tile *T) {
    LLVMBuilderRef b = L->bd;
    Loop lc;
    LLVMValueRef c = loop_begin(L, &lc, ci64(L, 0), L->nvec, ci64(L, 1), "rows");
    scope_push(L);
    rows_compute(L, &T->rows, T->qb0, c);
    rows_enter(L, &T->rows, T->qb0, c);
    LLVMValueRef col = LLVMBuildMul(b, c, ci64(L, L->W), "");
    LLVMValueRef Dv = L->var[V_SIZE_DV];
    PackQ pq = {T, c, col};
    lower_elem_switch(L, T->q_elem, lower_pack_q, &pq);
    lower_steps(L, SB_ROW);
    fault_only_steps(L, T, SB_ROW_FAULT);
    store_fvec(L, splat(L, cf32(L, -INFINITY)), T->rg.m, col);
    store_fvec(L, LLVMConstNull(L->vf32), T->rg.l, col);
    store_fvec(L, LLVMConstNull(L->vf32), T->rg.any, col);
    Loop lz;
    LLVMValueRef dv = loop_begin(L, &lz, ci64(L, 0), Dv, ci64(L, 1), "zeroo");
    store_fvec(L, LLVMConstNull(L->vf32), T->rg.ot, LLVMBuildAdd(b, LLVMBuildMul(b, dv, ci64(L, L->QB), ""), col, ""));
    loop_end(L, &lz);
    rows_leave(L, &T->rows);
    scope_pop(L);
    loop_end(L, &lc);
}

/* The col loop over the tile's kv: the schedule's col block (col slots,
 * low-rank K columns), once per kv rather than per element vector. */
static void col_values(Lower *L, Tile *T) {
    if (L->s->block[SB_COL].nsteps == 0 && L->s->block[SB_COL_FAULT].nsteps == 0) return;
    Loop lk;
    LLVMValueRef kv = loop_begin(L, &lk, T->k0, T->k1, ci64(L, 1), "col.kv");
    scope_push(L);
    L->kv = kv;
    L->col_j = LLVMBuildSub(L->bd, kv, T->k0, "");
    lower_steps(L, SB_COL);
    fault_only_steps(L, T, SB_COL_FAULT);
    L->kv = L->col_j = NULL;
    scope_pop(L);
    loop_end(L, &lk);
}

/* The key in slot kv (k0 <= kv < k1) of the tile: kv itself, or k0 + sel[kv - k0] (live_order). */
static LLVMValueRef slot_key(Lower *L, const Tile *T, LLVMValueRef kv) {
    if (!T->sel) return kv;
    LLVMValueRef j = load(L, L->i32, gep(L, L->i32, T->sel, LLVMBuildSub(L->bd, kv, T->k0, "")), 4);
    return LLVMBuildAdd(L->bd, T->k0, LLVMBuildZExt(L->bd, j, L->i64, ""), "key");
}

/* At a kv of the element loop: its col slots, S (scale * Q.K plus the
 * low-rank product), the schedule's SB_PRE, and pre = S + its result (the
 * bias; a constant 0 costs nothing). */
static void enter_element(Lower *L, Tile *T, LLVMValueRef kv, LLVMValueRef at) {
    L->kv = kv;
    L->col_j = LLVMBuildSub(L->bd, kv, T->k0, "");
    lower_load_col_slots(L);
    LLVMValueRef s = load_fvec(L, T->rg.s, at);
    lower_steps(L, SB_PRE);
    IrRef bias = L->s->block[SB_PRE].result;
    L->pre = ir_is_const(L->ir, bias) && L->ir->nodes[bias].c.f == 0.0
                 ? s
                 : LLVMBuildFAdd(L->bd, s, splat(L, lower_node(L, bias)), "pre");
}

static void leave_element(Lower *L) { L->pre = L->kv = L->col_j = NULL; }

/* The per-element code over the tile's scores S[kv][q]: bias, mask (PARTIAL
 * tiles; only over the keys of the rows' bands when the schedule has one,
 * the others masked without evaluating anything), score clauses; then either the log2-domain score (softmax: masked
 * -> -inf, the tile max per lane) or the weight (masked -> 0, summed straight
 * into l). */
static void elementwise(Lower *L, Tile *T, int partial) {
    LLVMBuilderRef b = L->bd;
    const Schedule *sc = L->s;
    int softmax = sc->softmax;
    Loop lc;
    LLVMValueRef c = loop_begin(L, &lc, ci64(L, 0), L->nvec, ci64(L, 1), partial ? "elem.partial" : "elem.full");
    scope_push(L);
    rows_enter(L, &T->rows, T->qb0, c);
    LLVMValueRef col = L->lane0;
    lower_load_row_slots(L);
    LLVMValueRef tmax = local(L, L->vf32, splat(L, cf32(L, -INFINITY)));
    LLVMValueRef lsum = softmax ? NULL : local(L, L->vf32, LLVMConstNull(L->vf32));
    LLVMValueRef kept = softmax ? NULL : local(L, L->vi1, LLVMConstNull(L->vi1));
    LLVMValueRef ka = T->k0, kz = T->k1;
    if (partial) { /* only the keys the tile map's range (and the vector's band) leave need work */
        ka = T->ka, kz = T->kz;
        if (sc->needs_mask && sc->band_lo != IR_NONE) lower_band_range(L, T, &ka, &kz);
        lower_fill_masked(L, T, T->k0, ka, col);
        lower_fill_masked(L, T, kz, T->k1, col);
    }
    Loop lk;
    LLVMValueRef kv = loop_begin(L, &lk, ka, kz, ci64(L, 1), "elem.kv");
    scope_push(L);
    LLVMValueRef at = LLVMBuildAdd(b, LLVMBuildMul(b, LLVMBuildSub(b, kv, T->k0, ""), ci64(L, L->QB), ""), col, "");
    enter_element(L, T, slot_key(L, T, kv), at);
    LLVMValueRef keep = NULL;
    if (partial && sc->needs_mask) {
        lower_steps(L, SB_KEEP);
        keep = splat(L, lower_node(L, sc->block[SB_KEEP].result));
    }
    SchedBlockId vb = partial ? SB_VALUE_PARTIAL : SB_VALUE_FULL;
    lower_steps(L, vb);
    LLVMValueRef value = splat(L, lower_node(L, sc->block[vb].result));
    if (softmax) {
        LLVMValueRef t = LLVMBuildFMul(b, value, splat(L, cf32(L, 1.44269504088896340736)), "");
        if (keep) t = fsel(L, keep, t, splat(L, cf32(L, -INFINITY)));
        store_fvec(L, t, T->rg.s, at);
        LLVMValueRef m = get(L, L->vf32, tmax);
        set(L, tmax, fsel(L, fcmp(L, LLVMRealOGT, t, m), t, m));
    } else {
        LLVMValueRef w = value;
        if (keep) w = fsel(L, keep, w, LLVMConstNull(L->vf32));
        store_fvec(L, w, T->rg.s, at);
        set(L, lsum, LLVMBuildFAdd(b, get(L, L->vf32, lsum), w, ""));
        set(L, kept, LLVMBuildOr(b, get(L, L->vi1, kept), keep ? keep : splat(L, cbool(L, 1)), ""));
    }
    leave_element(L);
    scope_pop(L);
    loop_end(L, &lk);
    if (softmax) {
        store_fvec(L, get(L, L->vf32, tmax), T->rg.tmax, col);
    } else {
        store_fvec(L, LLVMBuildFAdd(b, load_fvec(L, T->rg.l, col), get(L, L->vf32, lsum), ""), T->rg.l, col);
        LLVMValueRef any = fsel(L, get(L, L->vi1, kept), splat(L, cf32(L, 1.0)), load_fvec(L, T->rg.any, col));
        store_fvec(L, any, T->rg.any, col);
    }
    rows_leave(L, &T->rows);
    scope_pop(L);
    loop_end(L, &lc);
}

/* The plan's fault root over the tile's elements (rows of the item only):
 * whether lazy evaluation would raise a runtime error anywhere in it. */
static void fault_pass(Lower *L, Tile *T) {
    LLVMBuilderRef b = L->bd;
    Loop lc;
    LLVMValueRef c = loop_begin(L, &lc, ci64(L, 0), L->nvec, ci64(L, 1), "fault.c");
    scope_push(L);
    rows_enter(L, &T->rows, T->qb0, c);
    lower_load_row_slots(L);
    LLVMValueRef fault = local(L, L->vi1, LLVMConstNull(L->vi1));
    Loop lk;
    LLVMValueRef kv = loop_begin(L, &lk, T->k0, T->k1, ci64(L, 1), "fault.kv");
    scope_push(L);
    enter_element(L, T, kv,
                  LLVMBuildAdd(b, LLVMBuildMul(b, LLVMBuildSub(b, kv, T->k0, ""), ci64(L, L->QB), ""), L->lane0, ""));
    /* its own scope: the values only the check needs are not the element pass's */
    scope_push(L);
    lower_steps(L, SB_FAULT);
    LLVMValueRef fv = LLVMBuildAnd(b, splat(L, lower_node(L, L->s->block[SB_FAULT].result)), L->valid, "");
    scope_pop(L);
    set(L, fault, LLVMBuildOr(b, get(L, L->vi1, fault), fv, ""));
    leave_element(L);
    scope_pop(L);
    loop_end(L, &lk);
    LLVMBasicBlockRef after = if_begin(L, any_lane(L, get(L, L->vi1, fault)), "fault");
    set(L, T->fault, cbool(L, 1));
    if_end(L, after);
    rows_leave(L, &T->rows);
    scope_pop(L);
    loop_end(L, &lc);
}

/* Softmax after the element pass: the new running max, P = 2^(t - m) in place
 * of the scores, l and the output accumulator rescaled by 2^(m_old - m). */
static void normalise(Lower *L, Tile *T) {
    LLVMBuilderRef b = L->bd;
    Loop lc;
    LLVMValueRef c = loop_begin(L, &lc, ci64(L, 0), L->nvec, ci64(L, 1), "softmax");
    LLVMValueRef col = LLVMBuildMul(b, c, ci64(L, L->W), "");
    LLVMValueRef m_old = load_fvec(L, T->rg.m, col), m_tile = load_fvec(L, T->rg.tmax, col);
    LLVMValueRef m_new = fsel(L, fcmp(L, LLVMRealOGT, m_tile, m_old), m_tile, m_old);
    /* a lane that has kept nothing stays at -inf: subtract 0 there, not -inf */
    LLVMValueRef m_sub =
        fsel(L, fcmp(L, LLVMRealOEQ, m_new, splat(L, cf32(L, -INFINITY))), LLVMConstNull(L->vf32), m_new);
    LLVMValueRef corr = lower_exp2(L, LLVMBuildFSub(b, m_old, m_sub, ""));
    LLVMValueRef sum = local(L, L->vf32, LLVMConstNull(L->vf32));
    Loop lk;
    LLVMValueRef kv = loop_begin(L, &lk, T->k0, T->k1, ci64(L, 1), "softmax.kv");
    LLVMValueRef at = LLVMBuildAdd(b, LLVMBuildMul(b, LLVMBuildSub(b, kv, T->k0, ""), ci64(L, L->QB), ""), col, "");
    LLVMValueRef p = lower_exp2(L, LLVMBuildFSub(b, load_fvec(L, T->rg.s, at), m_sub, ""));
    store_fvec(L, p, T->rg.s, at);
    set(L, sum, LLVMBuildFAdd(b, get(L, L->vf32, sum), p, ""));
    loop_end(L, &lk);
    LLVMValueRef l = fmuladd(L, load_fvec(L, T->rg.l, col), corr, get(L, L->vf32, sum));
    store_fvec(L, l, T->rg.l, col);
    store_fvec(L, m_new, T->rg.m, col);
    /* O rows (one row vector): P.V multiplies each row by its correction as it loads it (L->orow_corr) */
    if (L->orow) store_fvec(L, corr, L->orow_corr, col);
    LLVMValueRef rescale = any_lane(L, fcmp(L, LLVMRealUNE, corr, splat(L, cf32(L, 1.0))));
    if (L->orow) rescale = LLVMBuildAnd(b, rescale, LLVMBuildNot(b, L->orow, ""), "");
    LLVMBasicBlockRef after = if_begin(L, rescale, "rescale");
    Loop ld;
    LLVMValueRef dv = loop_begin(L, &ld, ci64(L, 0), L->var[V_SIZE_DV], ci64(L, 1), "rescale.dv");
    LLVMValueRef o = LLVMBuildAdd(b, LLVMBuildMul(b, dv, ci64(L, L->QB), ""), col, "");
    store_fvec(L, LLVMBuildFMul(b, load_fvec(L, T->rg.ot, o), corr, ""), T->rg.ot, o);
    loop_end(L, &ld);
    if_end(L, after);
    loop_end(L, &lc);
}

static void set_function_attributes(Lower *L, LLVMValueRef fn) {
    char width[16];
    snprintf(width, sizeof width, "%d", L->W * 32);
    /* without these, x86 splits 512-bit vectors in two on CPUs that prefer 256 */
    LLVMAddTargetDependentFunctionAttr(fn, "min-legal-vector-width", width);
    LLVMAddTargetDependentFunctionAttr(fn, "prefer-vector-width", width);
    if (L->target->cpu) LLVMAddTargetDependentFunctionAttr(fn, "target-cpu", L->target->cpu);
    if (L->target->features) LLVMAddTargetDependentFunctionAttr(fn, "target-features", L->target->features);
    unsigned nounwind = LLVMGetEnumAttributeKindForName("nounwind", 8);
    if (nounwind) LLVMAddAttributeAtIndex(fn, LLVMAttributeFunctionIndex, LLVMCreateEnumAttribute(L->ctx, nounwind, 0));
}

/* A function whose entry block holds the allocas and falls through to `start`. */
LLVMBasicBlockRef lower_open_function(Lower *L, const char *name, LLVMTypeRef fty) {
    L->fn = LLVMAddFunction(L->mod, name, fty);
    set_function_attributes(L, L->fn);
    LLVMBasicBlockRef entry = block(L, "entry");
    LLVMBasicBlockRef start = block(L, "start");
    LLVMPositionBuilderAtEnd(L->alloca_bd, entry);
    LLVMPositionBuilderAtEnd(L->bd, start);
    return entry;
}

void lower_close_function(Lower *L, LLVMBasicBlockRef entry) {
    LLVMPositionBuilderAtEnd(L->alloca_bd, entry);
    LLVMBuildBr(L->alloca_bd, LLVMGetNextBasicBlock(entry));
}

static void reset_values(Lower *L) {
    while (L->depth > 0) scope_pop(L);
    while (L->nstack > 0) L->memo[L->stack[--L->nstack]] = NULL;
    memset(L->var, 0, sizeof L->var);
    memset(L->sumvar, 0, sizeof L->sumvar);
    L->q_vec = L->kv = L->pre = L->valid = L->lane0 = L->col_j = L->nvec = L->gemm_cols = NULL;
    memset(L->lr_n, 0, sizeof L->lr_n);
    memset(L->lr_at, 0, sizeof L->lr_at);
    L->lr_cols = L->lr_over = NULL;
}

/* The element pass for this tile's mode, after the fault check when the call
 * asks for one (a fault returns 1 at once: O is discarded anyway). */
static void element_pass(Lower *L, Tile *T, LLVMValueRef mode) {
    LLVMBuilderRef b = L->bd;
    if (L->s->needs_fault) {
        LLVMBasicBlockRef after = if_begin(L, T->checks, "check");
        fault_pass(L, T);
        LLVMBasicBlockRef ok = if_begin(L, get(L, L->i1, T->fault), "fault.return");
        LLVMBuildRet(b, ci32(L, 1));
        LLVMPositionBuilderAtEnd(b, ok);
        if_end(L, after);
    }
    if (!L->s->needs_mask) {
        elementwise(L, T, 0);
        return;
    }
    LLVMBasicBlockRef partial = block(L, "elem.partial"), full = block(L, "elem.full"), join = block(L, "elem.done");
    LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntEQ, mode, LLVMConstInt(L->i8, TILE_PARTIAL, 0), ""), partial, full);
    LLVMPositionBuilderAtEnd(b, partial);
    elementwise(L, T, 1);
    LLVMBuildBr(b, join);
    LLVMPositionBuilderAtEnd(b, full);
    elementwise(L, T, 0);
    LLVMBuildBr(b, join);
    LLVMPositionBuilderAtEnd(b, join);
}

static LLVMValueRef stride_at(Lower *L, size_t off, int i) {
    return call_field(L, off + (size_t)i * sizeof(int64_t), L->i64);
}
static LLVMValueRef lse_stride(Lower *L, int i) { return stride_at(L, offsetof(AttnCall, lse_stride), i); }

/* Element [b, h, 0, 0] of `tensor` (0 Q, 1 K, 2 V, 3 O; an i8 pointer), of
 * the version's element type and the call's strides; *row: its L stride;
 * *esz: bytes per element. */
static LLVMValueRef tensor_at(Lower *L, size_t ptr_off, int tensor, size_t stride_off, LLVMValueRef bi,
                              LLVMValueRef hi, LLVMValueRef *elem, LLVMValueRef *row, LLVMValueRef *esz) {
    LLVMBuilderRef b = L->bd;
    *elem = ci32(L, llvm_variant_elem(L->variant, tensor)); /* the version's: the call's are the same */
    *row = stride_at(L, stride_off, 2);
    *esz = lower_elem_bytes(L, *elem);
    LLVMValueRef at = LLVMBuildAdd(b, LLVMBuildMul(b, bi, stride_at(L, stride_off, 0), ""),
                                   LLVMBuildMul(b, hi, stride_at(L, stride_off, 1), ""), "");
    return gep(L, L->i8, call_field(L, ptr_off, ptr_to(L->i8)), LLVMBuildMul(b, at, *esz, ""));
}

/* The work item's Q, K, V and O as the call holds them (kernel ABI 3). */
static void bind_tensors(Lower *L, Tile *T, LLVMValueRef bi, LLVMValueRef hi, LLVMValueRef hk) {
    LLVMBuilderRef b = L->bd;
    LLVMValueRef qesz, oesz;
#define AT(t, i, h, e, r, z) tensor_at(L, offsetof(AttnCall, t), i, offsetof(AttnCall, t##_stride), bi, h, e, r, z)
    T->qbh = AT(q, 0, hi, &T->q_elem, &T->qs, &qesz);
    T->kbh = AT(k, 1, hk, &T->k_elem, &T->ks, &T->kesz);
    T->vbh = AT(v, 2, hk, &T->v_elem, &T->vs, &T->vesz);
    T->obh = AT(o, 3, hi, &T->o_elem, &T->os, &oesz);
#undef AT
    T->ls = lse_stride(L, 2);
    T->k_f32 = LLVMBuildICmp(b, LLVMIntEQ, T->k_elem, ci32(L, ELEM_F32), "k_f32");
    T->v_f32 = LLVMBuildICmp(b, LLVMIntEQ, T->v_elem, ci32(L, ELEM_F32), "v_f32");
    T->k_dense = LLVMBuildICmp(b, LLVMIntEQ, T->ks, L->var[V_SIZE_D], "k_dense");
    T->v_dense = LLVMBuildICmp(b, LLVMIntEQ, T->vs, L->var[V_SIZE_DV], "v_dense");
}

/* The row of K (which 0) or V (which 1) `off` elements from &K[b, hk, 0, 0]
 * (&V[...]) as an i8 pointer. */
static LLVMValueRef kv_row(Lower *L, const Tile *T, int which, LLVMValueRef off) {
    return gep(L, L->i8, which ? T->vbh : T->kbh, LLVMBuildMul(L->bd, off, which ? T->vesz : T->kesz, ""));
}

/* Where key k0 (a kv tile's first) lies in K (which 0) or V (1): elements from the head's start. */
static LLVMValueRef tile_offset(Lower *L, const Tile *T, int which, LLVMValueRef page_rows, LLVMValueRef k0) {
    return lower_page_offset(L, T->kv_page, page_rows, which ? T->vps : T->kps, which ? T->vs : T->ks, k0);
}

/* &kv_rows[k0] in the version that maps keys (an i64 pointer), else NULL. */
static LLVMValueRef key_map(Lower *L, const Tile *T, LLVMValueRef k0) {
    return T->kv_rows ? gep(L, L->i64, T->kv_rows, k0) : NULL;
}

/* The tile's nk rows of K (which 0) or V (1) as the call holds them
 * (f16 and bf16 converted into Kc or Vc when a micro-kernel needs floats;
 * in the version that maps keys, float32 rows through T->koff, voff). */
static KvRows tile_rows(Lower *L, const Tile *T, int which, LLVMValueRef nk) {
    return (KvRows){which ? T->v_elem : T->k_elem, which ? T->v_f32 : T->k_f32,
                    kv_row(L, T, which, which ? T->vr0 : T->kr0), which ? T->vs : T->ks,
                    L->var[which ? V_SIZE_DV : V_SIZE_D], nk,
                    as_ptr(L, which ? T->rg.vc : T->rg.kc, L->f32), T->kv_rows ? (which ? T->voff : T->koff) : NULL};
}

/* T->koff, voff of keys [k0, k0 + nk): each key's row (kv_rows) times K's and V's row strides, once per tile
 * (not per step of the micro-kernels). */
static void key_offsets(Lower *L, Tile *T, LLVMValueRef nk) {
    LLVMBuilderRef b = L->bd;
    Loop lj;
    LLVMValueRef j = loop_begin(L, &lj, ci64(L, 0), nk, ci64(L, 1), "key.offsets");
    LLVMValueRef key = T->sel ? LLVMBuildZExt(b, load(L, L->i32, gep(L, L->i32, T->sel, j), 4), L->i64, "") : j;
    LLVMValueRef row = load(L, L->i64, gep(L, L->i64, T->kv_rows, LLVMBuildAdd(b, T->k0, key, "")), 8);
    store(L, LLVMBuildMul(b, row, T->ks, ""), gep(L, L->i64, T->koff, j), 8);
    store(L, LLVMBuildMul(b, row, T->vs, ""), gep(L, L->i64, T->voff, j), 8);
    loop_end(L, &lj);
}

/* T->sel: the order of the nk keys of tile entry e in the tile's slots.  On a PARTIAL tile whose live keys the
 * call lists (AttnCall.tile_live: a 2-D neighbourhood's key block less the columns no query of the block reaches)
 * those keys first, then the others (masked, in the slots the products skip), and T->ka, kz the live ones' slots;
 * else the keys in order (all live). */
static void live_order(Lower *L, Tile *T, LLVMValueRef e, LLVMValueRef mode, LLVMValueRef nk) {
    LLVMBuilderRef b = L->bd;
    LLVMValueRef use = LLVMBuildAnd(b, LLVMBuildICmp(b, LLVMIntEQ, mode, LLVMConstInt(L->i8, TILE_PARTIAL, 0), ""),
                                    LLVMBuildIsNotNull(b, T->tile_live, ""), "tile.live");
    LLVMValueRef bits = local(L, L->i64, ci64(L, -1));
    LLVMBasicBlockRef after = if_begin(L, use, "live.bits");
    set(L, bits, LLVMBuildZExt(b, load(L, L->i16, gep(L, L->i16, T->tile_live, e), 2), L->i64, ""));
    if_end(L, after);
    /* the tile's keys (nk <= BK <= 16): live ones, and the others */
    LLVMValueRef keys = LLVMBuildSub(b, LLVMBuildShl(b, ci64(L, 1), nk, ""), ci64(L, 1), "");
    LLVMValueRef live = LLVMBuildAnd(b, get(L, L->i64, bits), keys, "");
    LLVMValueRef count = intrinsic1(L, "llvm.ctpop", live);
    if (L->BK == 16 && L->W == 16 && L->target->features && llvm_has_feature(L->target->features, "avx512f")) {
        /* AVX-512: the key numbers 0..15 compressed in registers (vpcompressd; its memory form is microcoded on
         * Zen 4, ~3% of natten2d's kernel) by the live and the other keys, stored at slot 0 and slot `count` (sel
         * has 2 * BK slots: the second store writes past the tile's) */
        LLVMTypeRef vi = LLVMVectorType(L->i32, 16), vb = LLVMVectorType(L->i1, 16);
        LLVMValueRef iota[16];
        for (int i = 0; i < 16; i++) iota[i] = ci32(L, i);
        LLVMValueRef numbers = LLVMConstVector(iota, 16);
        LLVMValueRef dead = LLVMBuildAnd(b, LLVMBuildNot(b, live, ""), keys, "");
        LLVMValueRef to[2] = {T->sel, gep(L, L->i32, T->sel, count)}, which[2] = {live, dead};
        for (int i = 0; i < 2; i++) {
            LLVMValueRef args[3] = {numbers, LLVMConstNull(vi),
                                    LLVMBuildBitCast(b, LLVMBuildTrunc(b, which[i], L->i16, ""), vb, "")};
            LLVMValueRef packed = intrinsic(L, "llvm.x86.avx512.mask.compress", &vi, 1, args, 3);
            store(L, packed, as_ptr(L, to[i], vi), 4);
        }
    } else { /* one pass: a live key to the next slot from the front, another to the next from the back */
        LLVMValueRef front = local(L, L->i64, ci64(L, 0)), back = local(L, L->i64, count);
        Loop lj;
        LLVMValueRef j = loop_begin(L, &lj, ci64(L, 0), nk, ci64(L, 1), "live.order");
        LLVMValueRef is = LLVMBuildTrunc(b, LLVMBuildLShr(b, live, j, ""), L->i1, "");
        LLVMValueRef f = get(L, L->i64, front), k = get(L, L->i64, back);
        store(L, LLVMBuildTrunc(b, j, L->i32, ""), gep(L, L->i32, T->sel, LLVMBuildSelect(b, is, f, k, "")), 4);
        set(L, front, LLVMBuildAdd(b, f, LLVMBuildZExt(b, is, L->i64, ""), ""));
        set(L, back, LLVMBuildAdd(b, k, LLVMBuildZExt(b, LLVMBuildNot(b, is, ""), L->i64, ""), ""));
        loop_end(L, &lj);
    }
    T->ka = LLVMBuildSelect(b, use, T->k0, T->ka, "");
    T->kz = LLVMBuildSelect(b, use, LLVMBuildAdd(b, T->k0, count, ""), T->kz, "");
}

/* T->ka, kz: the keys of tile entry e that need work: on a PARTIAL tile
 * the tile map's range (kernel ABI 7, when the call passes one), else all. */
static void tile_keys(Lower *L, Tile *T, LLVMValueRef e, LLVMValueRef mode) {
    LLVMBuilderRef b = L->bd;
    LLVMValueRef ka = local(L, L->i64, T->k0), kz = local(L, L->i64, T->k1);
    LLVMValueRef use = LLVMBuildAnd(b, LLVMBuildICmp(b, LLVMIntEQ, mode, LLVMConstInt(L->i8, TILE_PARTIAL, 0), ""),
                                    LLVMBuildIsNotNull(b, T->tile_keys, ""), "tile.range");
    LLVMBasicBlockRef after = if_begin(L, use, "tile.keys");
    LLVMValueRef at = LLVMBuildMul(b, e, ci64(L, 2), "");
    LLVMValueRef lo = LLVMBuildZExt(b, load(L, L->i16, gep(L, L->i16, T->tile_keys, at), 2), L->i64, "");
    LLVMValueRef hi = LLVMBuildZExt(b, load(L, L->i16, gep(L, L->i16, T->tile_keys, LLVMBuildAdd(b, at, ci64(L, 1), "")), 2),
                                    L->i64, "");
    LLVMValueRef a = smin(L, LLVMBuildAdd(b, T->k0, lo, ""), T->k1);
    set(L, ka, a);
    set(L, kz, smax(L, smin(L, LLVMBuildAdd(b, T->k0, hi, ""), T->k1), a));
    if_end(L, after);
    T->ka = get(L, L->i64, ka), T->kz = get(L, L->i64, kz);
}

/* T->first_k, first_v: the K and V rows of the item's first tile, which
 * the Q rows' packing prefetches (llvm_rowio.c).  Decode (narrow row
 * blocks) only: its first tile comes from memory, while a prefill item's
 * first tile is usually the one the item before read, and there the burst
 * of prefetches cost window-256 ~6% (10 alternating pairs), dense ~2%.
 * No tiles: tile_kv[e0] may not exist, so a local 0 is read instead, and
 * an empty region prefetched (prefetches never fault). */
static void first_tile_prefetch(Lower *L, Tile *T, LLVMValueRef e0, LLVMValueRef e1, LLVMValueRef bk, LLVMValueRef Lk,
                                LLVMValueRef D, LLVMValueRef Dv) {
    LLVMBuilderRef b = L->bd;
    LLVMValueRef has_tiles = LLVMBuildICmp(b, LLVMIntSLT, e0, e1, "");
    LLVMValueRef zero_kv = local(L, L->i32, ci32(L, 0));
    LLVMValueRef first_kv =
        LLVMBuildSelect(b, has_tiles, as_ptr(L, gep(L, L->i32, T->tile_kv, e0), L->i32), zero_kv, "");
    LLVMValueRef fk0 = LLVMBuildMul(b, LLVMBuildSExt(b, load(L, L->i32, first_kv, 4), L->i64, ""), bk, "");
    LLVMValueRef frows = LLVMBuildSub(b, smin(L, LLVMBuildAdd(b, fk0, smin(L, bk, ci64(L, L->BK)), ""), Lk), fk0, "");
    frows = LLVMBuildSelect(b, has_tiles, frows, ci64(L, 0), "");
    LLVMValueRef fpr = LLVMBuildSelect(b, has_tiles, T->page_rows, ci64(L, 0), "");
    T->first_k = lower_prefetch_rows(L, kv_row(L, T, 0, tile_offset(L, T, 0, fpr, fk0)), frows, D, T->ks, T->kesz, 0);
    T->first_v = lower_prefetch_rows(L, kv_row(L, T, 1, tile_offset(L, T, 1, fpr, fk0)), frows, Dv, T->vs, T->vesz, 0);
}

/* One row block: the row prologue, the tile loop, the finish, over the
 * block's vectors that hold rows of the item (L->nvec, at most C): a decode
 * block of a few packed rows costs one vector, not C. */
static void row_block(Lower *L, Tile *T) {
    LLVMBuilderRef b = L->bd;
    const IrFunc *f = L->f;
    LLVMValueRef Lk = L->var[V_SIZE_LK], D = L->var[V_SIZE_D], Dv = L->var[V_SIZE_DV], bk = T->bk;
    LLVMValueRef n = LLVMBuildSub(b, smin(L, LLVMBuildAdd(b, T->qb0, ci64(L, L->QB), ""), T->rows.r1), T->qb0, "");
    L->nblock = n;
    L->diag_row0 = LLVMBuildSub(b, T->qb0, T->rows.r0, "");
    /* the narrow version: only the vectors that hold rows (fewer than C, the
     * caller's choice: llvm_call_variant); the wide one: all C, masked */
    L->nvec = L->variant & LLVM_VARIANT_NARROW
                  ? LLVMBuildUDiv(b, LLVMBuildAdd(b, n, ci64(L, L->W - 1), ""), ci64(L, L->W), "nvec")
                  : ci64(L, L->C);
    row_prologue(L, T);
    Loop le;
    LLVMValueRef e = loop_begin(L, &le, T->e0, T->e1, ci64(L, 1), "tile");
    LLVMValueRef kt = LLVMBuildSExt(b, load(L, L->i32, gep(L, L->i32, T->tile_kv, e), 4), L->i64, "");
    LLVMValueRef mode = load(L, L->i8, gep(L, L->i8, T->tile_mode, e), 1);
    T->k0 = LLVMBuildMul(b, kt, bk, "");
    T->k1 = smin(L, LLVMBuildAdd(b, T->k0, smin(L, bk, ci64(L, L->BK)), ""), Lk);
    LLVMValueRef nk = LLVMBuildSub(b, T->k1, T->k0, "");
    tile_keys(L, T, e, mode);
    if (T->sel) live_order(L, T, e, mode, nk);
    if (T->kv_rows) key_offsets(L, T, nk);
    /* mapped keys: rows from the head's start, through the map (never paged) */
    T->kr0 = T->kv_rows ? ci64(L, 0) : tile_offset(L, T, 0, T->page_rows, T->k0);
    T->vr0 = T->kv_rows ? ci64(L, 0) : tile_offset(L, T, 1, T->page_rows, T->k0);
    /* the next tile of this row block (this one again after the last): its K
     * rows are prefetched during this tile's QK product, its V rows during P.V */
    LLVMValueRef next = smin(L, LLVMBuildAdd(b, e, ci64(L, 1), ""), LLVMBuildSub(b, T->e1, ci64(L, 1), ""));
    LLVMValueRef nk0 =
        LLVMBuildMul(b, LLVMBuildSExt(b, load(L, L->i32, gep(L, L->i32, T->tile_kv, next), 4), L->i64, ""), bk, "");
    LLVMValueRef nrows = LLVMBuildSub(b, smin(L, LLVMBuildAdd(b, nk0, smin(L, bk, ci64(L, L->BK)), ""), Lk), nk0, "");
    LLVMValueRef nkr0 = T->kv_rows ? ci64(L, 0) : tile_offset(L, T, 0, T->page_rows, nk0);
    LLVMValueRef nvr0 = T->kv_rows ? ci64(L, 0) : tile_offset(L, T, 1, T->page_rows, nk0);
    Prefetch pk[2], pv[2]; /* [0] as rows apart, [1] as one block */
    for (int dense = 0; dense < 2; dense++) {
        pk[dense] = lower_prefetch_rows(L, kv_row(L, T, 0, nkr0), nrows, D, T->ks, T->kesz, dense);
        pv[dense] = lower_prefetch_rows(L, kv_row(L, T, 1, nvr0), nrows, Dv, T->vs, T->vesz, dense);
    }
    pk[0].map = pv[0].map = key_map(L, T, nk0); /* (k_dense and v_dense are false there) */
    col_values(L, T);
    lower_diag_fill(L, T->k0, T->qb0, T->rows.r0); /* the diagonal tables of the tile (SB_DIAG) */
    /* S[kv][q] = sum_d K[kv][d] * Qt[d][q] (+ low-rank columns) */
    KvRows kr = tile_rows(L, T, 0, nk), vr;
    lower_kv_product_tile(L, T, 0, mode, T->k_dense, pk, &kr, T->rg.qt, T->rg.s);
    if (f->nlowrank) lower_gemm_versions(L, NULL, NULL, T->rg.kx, T->rt, ci64(L, 1), nk, T->rg.qx, T->rt, T->rg.s, 1);
    element_pass(L, T, mode);
    if (L->s->softmax) normalise(L, T);
    /* OT[dv][q] += sum_kv V[kv][dv] * P[kv][q] */
    vr = tile_rows(L, T, 1, nk);
    lower_kv_product_tile(L, T, 1, mode, T->v_dense, pv, &vr, T->rg.s, T->rg.ot);
    loop_end(L, &le);
    lower_write_rows(L, T);
    L->nvec = NULL;
}

/* Whether the tile function holds a work item's output accumulator as O
 * rows [QB][Dv] (when Dv is a multiple of W; L->orow) instead of OT
 * [Dv][QB]: a row block of one vector (a 2-D neighbourhood's 16-row q
 * tiles on AVX-512), whose P.V with OT loads a broadcast of V per FMA
 * (pv_into_rows, llvm_gemm.c); not with a band (its banded products write
 * OT's columns) nor in the narrow version (its own micro-kernels).  The
 * zeroing is the same for both (all QB x Dv floats); the rescaling, P.V
 * and O's store read L->orow. */
static int o_rows(const Lower *L) {
    return L->C == 1 && L->W == 16 && L->s->band_lo == IR_NONE && !(L->variant & LLVM_VARIANT_NARROW);
}

static void gen_tile(Lower *L, const char *name) {
    LLVMBuilderRef b = L->bd;
    const IrFunc *f = L->f;
    LLVMTypeRef args[5] = {ptr_to(L->i8), L->i64, L->i64, L->i64, ptr_to(L->i8)};
    LLVMBasicBlockRef entry = lower_open_function(L, name, LLVMFunctionType(L->i32, args, 5, 0));
    static const char *const names[5] = {"call", "b", "h", "qt", "scratch"};
    for (unsigned i = 0; i < 5; i++) LLVMSetValueName2(LLVMGetParam(L->fn, i), names[i], strlen(names[i]));
    L->call = LLVMGetParam(L->fn, 0);
    LLVMValueRef bi = LLVMGetParam(L->fn, 1), hi = LLVMGetParam(L->fn, 2), qt = LLVMGetParam(L->fn, 3);
    LLVMValueRef scratch = LLVMGetParam(L->fn, 4);
    lower_bind_inputs(L);
    LLVMValueRef H = L->var[V_SIZE_H], Hkv = L->var[V_SIZE_HKV], Lk = L->var[V_SIZE_LK];
    LLVMValueRef D = L->var[V_SIZE_D], Dv = L->var[V_SIZE_DV];
    L->var[V_B] = bi;
    L->var[V_H] = hi; /* the item's (first) head; a vector of the lanes' heads in packed rows (llvm_rows.c) */
    /* bind guarantees Hkv > 0 and H % Hkv == 0; the selects keep it UB-free regardless */
    LLVMValueRef group = LLVMBuildSDiv(b, H, smax(L, Hkv, ci64(L, 1)), "");
    LLVMValueRef hk = LLVMBuildSDiv(b, hi, smax(L, group, ci64(L, 1)), "");
    L->var[V_HK] = hk;
    Tile T;
    memset(&T, 0, sizeof T);
    LLVMValueRef lp = call_field(L, offsetof(AttnCall, lse), ptr_to(L->f32));
    LLVMValueRef bq = call_field(L, offsetof(AttnCall, bq), L->i64);
    LLVMValueRef bk = T.bk = call_field(L, offsetof(AttnCall, bk), L->i64);
    LLVMValueRef nqt = call_field(L, offsetof(AttnCall, nqt), L->i64);
    LLVMValueRef row_start = call_field(L, offsetof(AttnCall, row_start), ptr_to(L->i64));
    T.tile_kv = call_field(L, offsetof(AttnCall, tile_kv), ptr_to(L->i32));
    T.tile_mode = call_field(L, offsetof(AttnCall, tile_mode), ptr_to(L->i8));
    T.tile_keys = call_field(L, offsetof(AttnCall, tile_keys), ptr_to(L->i16));
    T.kv_page = call_field(L, offsetof(AttnCall, kv_page), ptr_to(L->i32));
    T.page_rows = call_field(L, offsetof(AttnCall, page_rows), L->i64);
    T.kps = call_field(L, offsetof(AttnCall, k_page_stride), L->i64);
    T.vps = call_field(L, offsetof(AttnCall, v_page_stride), L->i64);
    if (llvm_variant_maps_kv(L->variant)) {
        T.kv_rows = call_field(L, offsetof(AttnCall, kv_rows), ptr_to(L->i64));
        LLVMTypeRef offs = LLVMArrayType(L->i64, (unsigned)L->BK);
        T.koff = LLVMBuildAlloca(L->alloca_bd, offs, "koff");
        T.voff = LLVMBuildAlloca(L->alloca_bd, offs, "voff");
        /* live keys first (live_order): where the products run over a range of slots, and no low-rank product
         * writes S in key order */
        if (lower_ranged_products(L) && !f->nlowrank && L->BK <= TILE_LIVE_KEYS) {
            T.tile_live = call_field(L, offsetof(AttnCall, tile_live), ptr_to(L->i16));
            T.sel = LLVMBuildAlloca(L->alloca_bd, LLVMArrayType(L->i32, 2 * (unsigned)L->BK), "sel");
        }
    }
    LLVMValueRef gsb = call_field(L, offsetof(AttnCall, group_stride_b), L->i64);
    LLVMValueRef gsh = call_field(L, offsetof(AttnCall, group_stride_h), L->i64);
    LLVMValueRef check_faults = call_field(L, offsetof(AttnCall, check_faults), L->i32);
    T.checks = LLVMBuildICmp(b, LLVMIntNE, check_faults, ci32(L, 0), "checks");
    LLVMValueRef grp = LLVMBuildAdd(b, LLVMBuildMul(b, bi, gsb, ""), LLVMBuildMul(b, hi, gsh, ""), "");
    LLVMValueRef t = LLVMBuildAdd(b, LLVMBuildMul(b, grp, nqt, ""), qt, "");
    LLVMValueRef e0 = T.e0 = load(L, L->i64, gep(L, L->i64, row_start, t), 8);
    LLVMValueRef e1 = T.e1 = load(L, L->i64, gep(L, L->i64, row_start, LLVMBuildAdd(b, t, ci64(L, 1), "")), 8);
    rows_bind(L, &T.rows, hi, qt, bq);
    bind_tensors(L, &T, bi, hi, hk);
    if (T.kv_rows) T.k_dense = T.v_dense = cbool(L, 0); /* a tile's rows are runs of the grid's, not one block */
    T.lse_row = gep(L, L->f32, lp, LLVMBuildAdd(b, LLVMBuildMul(b, bi, lse_stride(L, 0), ""),
                                                LLVMBuildMul(b, hi, lse_stride(L, 1), ""), ""));
    /* LSE is optional: test the call's pointer, not &LSE[b, h, 0] (NULL + an offset is not NULL) */
    T.has_lse = LLVMBuildICmp(b, LLVMIntNE, LLVMBuildPtrToInt(b, lp, L->i64, ""), ci64(L, 0), "has_lse");
    T.fault = local(L, L->i1, cbool(L, 0));

    /* per work item: the schedule's values of the call and of (b, h), the low-rank counts */
    lower_steps(L, SB_ITEM);
    T.scale = lower_node(L, f->scale); /* Q is scaled once per row block: a value of the item */
    T.rt = L->lr_cols;
    /* the scratch base, aligned to 64 bytes */
    LLVMValueRef mis =
        LLVMBuildAnd(b, LLVMBuildSub(b, ci64(L, 0), LLVMBuildPtrToInt(b, scratch, L->i64, ""), ""), ci64(L, 63), "");
    layout(L, D, Dv, T.rt, gep(L, L->i8, scratch, mis), &T.rg);
    rows_set_map(&T.rows, T.rg.map);
    L->row_slots = T.rg.rows;
    L->col_slots = T.rg.cols;
    L->qx = T.rg.qx;
    L->kx = T.rg.kx;
    L->lse_off = T.rg.lse_off;
    L->diag = T.rg.diag;

    if (o_rows(L)) {
        L->orow = LLVMBuildICmp(b, LLVMIntEQ, LLVMBuildURem(b, Dv, ci64(L, L->W), ""), ci64(L, 0), "orow");
        /* the corrections of O rows: the tile max's region, free once normalise has read it */
        L->orow_corr = L->s->softmax ? T.rg.tmax : NULL;
    }
    if (L->variant & LLVM_VARIANT_NARROW) first_tile_prefetch(L, &T, e0, e1, bk, Lk, D, Dv);
    T.spare_in = local(L, L->vf32, LLVMConstNull(L->vf32));
    T.spare_out = local(L, L->vf32, NULL);
    Loop lrb;
    T.qb0 = loop_begin(L, &lrb, T.rows.r0, T.rows.r1, ci64(L, L->QB), "rowblock");
    row_block(L, &T);
    loop_end(L, &lrb);
    L->orow = L->orow_corr = NULL;
    LLVMBuildRet(b, ci32(L, 0));
    lower_close_function(L, entry);
}

/* Scratch bytes: the same layout() as the tile function, sized from the call. */
static void gen_scratch(Lower *L, const char *name) {
    LLVMTypeRef args[1] = {ptr_to(L->i8)};
    LLVMBasicBlockRef entry = lower_open_function(L, name, LLVMFunctionType(L->i64, args, 1, 0));
    L->call = LLVMGetParam(L->fn, 0);
    LLVMSetValueName2(L->call, "call", 4);
    lower_bind_inputs(L);
    lower_steps(L, SB_SCRATCH); /* the low-rank column counts, and whether they pass the limit */
    LLVMValueRef rt = L->lr_cols;
    LLVMValueRef bytes = layout(L, L->var[V_SIZE_D], L->var[V_SIZE_DV], rt, NULL, NULL);
    /* absurd ranks or sizes: ask for more than any machine has, without overflow */
    LLVMBuilderRef b = L->bd;
    LLVMValueRef limit = ci64(L, (int64_t)1 << 30);
    LLVMValueRef huge = LLVMBuildICmp(b, LLVMIntUGT, bytes, ci64(L, (int64_t)1 << 40), "");
    if (L->lr_over) huge = LLVMBuildOr(b, huge, L->lr_over, "");
    huge = LLVMBuildOr(b, huge, LLVMBuildICmp(b, LLVMIntUGT, L->var[V_SIZE_D], limit, ""), "");
    huge = LLVMBuildOr(b, huge, LLVMBuildICmp(b, LLVMIntUGT, L->var[V_SIZE_DV], limit, ""), "");
    LLVMBuildRet(L->bd, LLVMBuildSelect(L->bd, huge, ci64(L, (int64_t)1 << 40), bytes, ""));
    lower_close_function(L, entry);
}

void lower_init_types(Lower *L) {
    L->i1 = LLVMInt1TypeInContext(L->ctx);
    L->i8 = LLVMInt8TypeInContext(L->ctx);
    L->i16 = LLVMInt16TypeInContext(L->ctx);
    L->i32 = LLVMInt32TypeInContext(L->ctx);
    L->i64 = LLVMInt64TypeInContext(L->ctx);
    L->f32 = LLVMFloatTypeInContext(L->ctx);
    L->f64 = LLVMDoubleTypeInContext(L->ctx);
    unsigned w = (unsigned)L->W;
    L->vi1 = LLVMVectorType(L->i1, w);
    L->vi8 = LLVMVectorType(L->i8, w);
    L->vi32 = LLVMVectorType(L->i32, w);
    L->vi64 = LLVMVectorType(L->i64, w);
    L->vf32 = LLVMVectorType(L->f32, w);
    L->vf64 = LLVMVectorType(L->f64, w);
}

/* The largest divisor of c that is at most max. */
static int divisor_at_most(int c, int max) {
    for (int d = max; d > 1; d--)
        if (c % d == 0) return d;
    return 1;
}

/* The kernel's lanes: the plan's vector width (the schedule's), or the
 * target's for a plan that names none the kernel can build. */
int llvm_kernel_width(const Plan *p, int target_width) {
    int w = p->vec_width;
    return w == 4 || w == 8 || w == 16 ? w : target_width;
}

attnc_status llvm_lower_plan(const Plan *p, const LlvmTarget *target, LLVMModuleRef mod, const char *tile_name,
                             const char *scratch_name, attnc_error *err) {
    const IrFunc *f = p->f;
    int width = llvm_kernel_width(p, target->vec_width);
    if (width != 4 && width != 8 && width != 16)
        return set_error(err, ATTNC_ERR_INTERNAL, "LLVM backend: vector width %d is not 4, 8 or 16", width);
    if (!p->sched) return set_error(err, ATTNC_ERR_INTERNAL, "LLVM backend: the plan has no schedule");
    if (p->sched->why[0])
        return set_error(err, ATTNC_ERR_INTERNAL, "LLVM backend: cannot compile attention '%s': %s", p->attn->name,
                         p->sched->why);
    if (f->nlowrank > MAX_LOWRANK)
        return set_error(err, ATTNC_ERR_INTERNAL, "LLVM backend: more than 64 low-rank bias groups");
    /* the row map's micro-kernels read K and V as floats in place (kernel_abi.h: kv_rows only with float32) */
    if (llvm_variant_maps_kv(target->variant) &&
        (llvm_variant_elem(target->variant, 1) != ELEM_F32 || llvm_variant_elem(target->variant, 2) != ELEM_F32))
        return set_error(err, ATTNC_ERR_INTERNAL, "LLVM backend: K and V through kv_rows must be float32");
    Lower L;
    memset(&L, 0, sizeof L);
    L.ctx = LLVMGetModuleContext(mod);
    L.mod = mod;
    L.p = p;
    L.ir = p->ir;
    L.f = f;
    L.s = p->sched;
    L.target = target;
    L.W = width;
    L.C = llvm_row_vectors(p, width);
    /* one vector per row block: every block is as wide as it can be */
    L.variant = L.C == 1 ? target->variant & ~LLVM_VARIANT_NARROW : target->variant;
    /* accumulators: R x CQ vectors, 16 of the 32 registers of AVX-512, 8 of AVX2's 16; at least 8 in
     * flight (two FMA units, four cycles each): a 16-row q tile on AVX-512 (one vector, CQ = 1) had
     * R = 4, and its products ran at half the FMA rate */
    L.CQ = divisor_at_most(L.C, L.W == 16 ? 4 : 2);
    L.R = (L.W == 16 ? 16 : 8) / L.CQ;
    if (L.R < 4) L.R = 4;
    if (L.R > LLVM_MAX_R) L.R = LLVM_MAX_R;
    L.QB = L.C * L.W;
    L.BK = p->bk;
    lower_init_types(&L);
    size_t n = (size_t)p->ir->n + 1;
    const Attention *a = p->attn;
    L.memo = calloc(n, sizeof *L.memo);
    L.stack = calloc(n, sizeof *L.stack);
    L.param = calloc((size_t)a->nparams + 1, sizeof *L.param);
    L.tdata = calloc((size_t)a->ntensors + 1, sizeof *L.tdata);
    L.tdim = calloc((size_t)a->ntensors + 1, sizeof *L.tdim);
    attnc_status st = ATTNC_OK;
    if (!L.memo || !L.stack || !L.param || !L.tdata || !L.tdim) {
        st = set_error(err, ATTNC_ERR_NOMEM, "out of memory in the LLVM backend");
    } else {
        L.bd = LLVMCreateBuilderInContext(L.ctx);
        L.alloca_bd = LLVMCreateBuilderInContext(L.ctx);
        gen_tile(&L, tile_name);
        reset_values(&L);
        if (scratch_name) gen_scratch(&L, scratch_name);
        LLVMDisposeBuilder(L.bd);
        LLVMDisposeBuilder(L.alloca_bd);
        if (L.failed) st = set_error(err, ATTNC_ERR_INTERNAL, "LLVM backend: %s", L.why);
    }
    free(L.memo);
    free(L.stack);
    free(L.param);
    free(L.tdata);
    free(L.tdim);
    return st;
}
