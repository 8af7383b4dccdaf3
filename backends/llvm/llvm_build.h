/* llvm_build.h — what the files of the LLVM lowering share: the lowering
 * state (Lower), short LLVM C API builder helpers, and the memo of emitted
 * IR nodes with its scopes.
 * Requires: llvm-c/Core.h, a Plan (plan.h) with its Schedule (schedule.h),
 * the kernel ABI's limits (kernel_abi.h).  Produces: nothing by itself; the
 * helpers are `static inline` so that each file that builds IR (llvm_math.c,
 * llvm_node.c, llvm_steps.c, llvm_lower.c) uses them under their short names
 * without the library exporting names like get, set or load.  Internal to
 * backends/llvm/llvm_*.c. */
#ifndef ATTNC_LLVM_BUILD_H
#define ATTNC_LLVM_BUILD_H
#include <stdio.h>
#include <string.h>

#include "kernel_abi.h"
#include "llvm_lower.h"
#include "schedule.h"

enum { MAX_LANES = 16, MAX_SUM_LEVELS = 64, MAX_SCOPES = 512, MAX_LOWRANK = 64 };

/* The lowering of one plan: its types at the kernel's vector width, the
 * builder, the memo of emitted IR nodes, what the IR's leaves read at the
 * builder's position (NULL: not available there), and where the schedule's
 * steps store (llvm_steps.c). */
typedef struct Lower {
    LLVMContextRef ctx;
    LLVMModuleRef mod;
    LLVMBuilderRef bd;        /* code */
    LLVMBuilderRef alloca_bd; /* the entry block, which holds only allocas */
    const Plan *p;
    const IrModule *ir;
    const IrFunc *f;
    const Schedule *s;
    const LlvmTarget *target;
    int W, C, CQ, R; /* lanes; vectors per row block; micro-kernel block: CQ vectors x R rows */
    int half_block;  /* lower_gemm_ld: one block of R / 2 rows before the single ones (llvm_gemm.c) */
    /* the micro-kernels' A through a row map (K and V through AttnCall.kv_rows, llvm_gemm.c): NULL, or an i64
     * pointer whose element j replaces index j of A's rows (amap_k 0: QK, keys are A's rows) or of k (1: PV) */
    LLVMValueRef amap;
    int amap_k;
    /* the micro-kernels' Bm through a row map (P.V into O rows, llvm_gemm.c): NULL, or an i64 pointer whose
     * element k is where Bm's row k starts (elements) */
    LLVMValueRef bmap;
    LLVMValueRef out_scale; /* NULL, or [rows] floats: gemm_rows scales row i of Out by element i as it loads it */
    int pf_cols; /* gemm_rows: prefetch per column block too, two lines a step (P.V into O rows) */
    /* i1: this work item holds its output accumulator as O rows [QB][Dv] instead of OT [Dv][QB] (a row
     * block of one vector, llvm_lower.c: o_rows); NULL where the kernel never does */
    LLVMValueRef orow;
    /* with orow: [QB] floats, each row's correction of the running max this tile, which P.V applies to O's
     * rows as it loads them (llvm_lower.c: normalise) */
    LLVMValueRef orow_corr;
    int QB, BK;      /* rows per row block (C * W); keys per kv tile */
    int variant;     /* LLVM_VARIANT_* (llvm_lower.h): the version of the kernel being built */
    LLVMTypeRef i1, i8, i16, i32, i64, f32, f64;
    LLVMTypeRef vi1, vi8, vi32, vi64, vf32, vf64;
    LLVMValueRef fn;
    /* emitted IR nodes, each valid while the scope that emitted it is open */
    LLVMValueRef *memo;
    int *stack, nstack;
    int marks[MAX_SCOPES], depth;
    /* what the IR's leaves read */
    LLVMValueRef call;
    LLVMValueRef var[V_COUNT]; /* b, h, hk and sizes (scalars) */
    LLVMValueRef q_vec, kv, pre, valid;
    LLVMValueRef sumvar[MAX_SUM_LEVELS];
    LLVMValueRef *param;
    LLVMValueRef *tdata;
    LLVMValueRef (*tdim)[ATTNC_ABI_MAX_RANK];
    /* low-rank groups (STEP_LOWRANK_COUNT): columns n_g, the first column of
     * each, the total; over: the total is past the limit (STEP_LOWRANK_LIMIT) */
    LLVMValueRef lr_n[MAX_LOWRANK], lr_at[MAX_LOWRANK], lr_cols, lr_over;
    /* scratch regions the steps store into (llvm_lower.c's Regions) */
    LLVMValueRef row_slots; /* [nrow_slots][QB], 8 bytes a row */
    LLVMValueRef col_slots; /* [ncol_slots][BK], 8 bytes a kv */
    LLVMValueRef qx, kx;    /* Qx[lr_cols][QB], Kx[BK][lr_cols] */
    LLVMValueRef lse_off;   /* [QB] floats */
    LLVMValueRef diag;      /* [ndiag][diag_stride(L)] floats: the tile's diagonal tables (SB_DIAG), entry e at
                             * distance kv - q = k0 - (qb0 + QB - 1) + e; grid tables (Schedule.diag_grid):
                             * entry c * diag_grid_stride(L) + i at the q tile's row i and corner key c */
    LLVMValueRef diag_e;    /* in the diag block: the first of the W entries it computes now */
    LLVMValueRef diag_row0; /* grid tables: the row block's first row within its q tile (i64) */
    LLVMValueRef grid_entry; /* grid tables: [BK][diag_grid_stride(L)] i32, the entry row i meets key j at
                              * (sched_grid_entry), a constant of the module */
    LLVMValueRef lane0;     /* the row vector's first row within the block: c * W */
    LLVMValueRef nvec;      /* the row block's vectors that hold rows of the item (i64, at most C) */
    LLVMValueRef nblock;    /* the row block's rows of the item (i64, at most QB) */
    LLVMValueRef gemm_cols; /* the vectors the micro-kernels run over (i64) */
    LLVMValueRef col_j;     /* the kv's index within the tile: kv - k0 */
    /* the backward kernel (llvm_grad.c): q is a scalar, one query row at a
     * time, so row values and row slots are scalars (lane0: the row in the
     * q tile, QB: the q tile's rows) */
    int scalar_rows;
    /* ... and, with kv_lanes, element values vary along kv in vectors of W
     * keys (L->kv a vector), col slots loaded W cells at a time from col_j */
    int kv_lanes;
    int failed;
    char why[300];
} Lower;

static inline void fail(Lower *L, const char *why) {
    if (!L->failed) snprintf(L->why, sizeof L->why, "%s", why);
    L->failed = 1;
}

/* ---- short builder helpers ------------------------------------------------ */

static inline LLVMValueRef ci64(Lower *L, int64_t v) { return LLVMConstInt(L->i64, (unsigned long long)v, 1); }
static inline LLVMValueRef ci32(Lower *L, int32_t v) { return LLVMConstInt(L->i32, (unsigned long long)(int64_t)v, 1); }
static inline LLVMValueRef cf32(Lower *L, double v) { return LLVMConstReal(L->f32, v); }
static inline LLVMValueRef cbool(Lower *L, int v) { return LLVMConstInt(L->i1, v != 0, 0); }

static inline int is_vec(LLVMValueRef v) { return LLVMGetTypeKind(LLVMTypeOf(v)) == LLVMVectorTypeKind; }

/* s repeated in every lane (v itself when already a vector). */
static inline LLVMValueRef splat(Lower *L, LLVMValueRef s) {
    if (is_vec(s)) return s;
    LLVMTypeRef vt = LLVMVectorType(LLVMTypeOf(s), (unsigned)L->W);
    if (LLVMIsConstant(s)) {
        LLVMValueRef e[MAX_LANES];
        for (int i = 0; i < L->W; i++) e[i] = s;
        return LLVMConstVector(e, (unsigned)L->W);
    }
    LLVMValueRef one = LLVMBuildInsertElement(L->bd, LLVMGetUndef(vt), s, ci32(L, 0), "");
    return LLVMBuildShuffleVector(L->bd, one, LLVMGetUndef(vt), LLVMConstNull(L->vi32), "");
}

/* A float constant shaped like `like` (scalar or vector). */
static inline LLVMValueRef fconst(Lower *L, LLVMValueRef like, double v) {
    return is_vec(like) ? splat(L, cf32(L, v)) : cf32(L, v);
}
static inline LLVMValueRef iconst_like(Lower *L, LLVMValueRef like, LLVMTypeRef scalar, int64_t v) {
    LLVMValueRef c = LLVMConstInt(scalar, (unsigned long long)v, 1);
    return is_vec(like) ? splat(L, c) : c;
}

/* <0, 1, ..., W-1> as int64. */
static inline LLVMValueRef iota(Lower *L) {
    LLVMValueRef e[MAX_LANES];
    for (int i = 0; i < L->W; i++) e[i] = ci64(L, i);
    return LLVMConstVector(e, (unsigned)L->W);
}

static inline LLVMTypeRef ptr_to(LLVMTypeRef t) { return LLVMPointerType(t, 0); }

/* p as a pointer to `elem` (a no-op with opaque pointers; a cast with typed ones). */
static inline LLVMValueRef as_ptr(Lower *L, LLVMValueRef p, LLVMTypeRef elem) {
    LLVMTypeRef pt = ptr_to(elem);
    return LLVMTypeOf(p) == pt ? p : LLVMBuildPointerCast(L->bd, p, pt, "");
}

/* &p[i] for an array of `elem` (i: int64 scalar, or a vector for gathers). */
static inline LLVMValueRef gep(Lower *L, LLVMTypeRef elem, LLVMValueRef p, LLVMValueRef i) {
    return LLVMBuildGEP2(L->bd, elem, as_ptr(L, p, elem), &i, 1, "");
}

static inline LLVMValueRef load(Lower *L, LLVMTypeRef t, LLVMValueRef p, unsigned align) {
    LLVMValueRef v = LLVMBuildLoad2(L->bd, t, as_ptr(L, p, t), "");
    LLVMSetAlignment(v, align);
    return v;
}

static inline void store(Lower *L, LLVMValueRef v, LLVMValueRef p, unsigned align) {
    LLVMValueRef s = LLVMBuildStore(L->bd, v, as_ptr(L, p, LLVMTypeOf(v)));
    LLVMSetAlignment(s, align);
}

/* A float vector at element i of float array p. */
static inline LLVMValueRef load_fvec(Lower *L, LLVMValueRef p, LLVMValueRef i) {
    return load(L, L->vf32, gep(L, L->f32, p, i), 4);
}
static inline void store_fvec(Lower *L, LLVMValueRef v, LLVMValueRef p, LLVMValueRef i) {
    store(L, v, gep(L, L->f32, p, i), 4);
}

/* A mutable local (promoted to SSA by mem2reg): allocated in the entry block,
 * initialised here. */
static inline LLVMValueRef local(Lower *L, LLVMTypeRef t, LLVMValueRef init) {
    LLVMValueRef a = LLVMBuildAlloca(L->alloca_bd, t, "");
    if (init) LLVMBuildStore(L->bd, init, a);
    return a;
}
static inline LLVMValueRef get(Lower *L, LLVMTypeRef t, LLVMValueRef a) { return LLVMBuildLoad2(L->bd, t, a, ""); }
static inline void set(Lower *L, LLVMValueRef a, LLVMValueRef v) { LLVMBuildStore(L->bd, v, a); }

/* Field of the AttnCall at byte offset `off`. */
static inline LLVMValueRef call_field(Lower *L, size_t off, LLVMTypeRef t) {
    return load(L, t, gep(L, L->i8, L->call, ci64(L, (int64_t)off)), 8);
}

/* A call of LLVM intrinsic `name` overloaded on the types over[0..nover). */
static inline LLVMValueRef intrinsic(Lower *L, const char *name, LLVMTypeRef *over, int nover, LLVMValueRef *args,
                                     int nargs) {
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    if (!id) {
        fail(L, "an LLVM intrinsic is missing");
        return LLVMGetUndef(LLVMTypeOf(args[0]));
    }
    LLVMValueRef fn = LLVMGetIntrinsicDeclaration(L->mod, id, over, (size_t)nover);
    LLVMTypeRef ft = LLVMIntrinsicGetType(L->ctx, id, over, (size_t)nover);
    return LLVMBuildCall2(L->bd, ft, fn, args, (unsigned)nargs, "");
}

/* An intrinsic overloaded on its one argument's type (llvm.floor, llvm.fabs, ...). */
static inline LLVMValueRef intrinsic1(Lower *L, const char *name, LLVMValueRef x) {
    LLVMTypeRef t = LLVMTypeOf(x);
    return intrinsic(L, name, &t, 1, &x, 1);
}

static inline LLVMValueRef fmuladd(Lower *L, LLVMValueRef a, LLVMValueRef b, LLVMValueRef c) {
    LLVMTypeRef t = LLVMTypeOf(a);
    LLVMValueRef args[3] = {a, b, c};
    return intrinsic(L, "llvm.fmuladd", &t, 1, args, 3);
}

/* Lanes of ptrs where mask holds; 0 elsewhere (nothing is read there).
 * `align`: the elements' alignment in bytes (4 for floats, 2 for f16/bf16). */
static inline LLVMValueRef gather_aligned(Lower *L, LLVMTypeRef vt, LLVMValueRef ptrs, LLVMValueRef mask, int align) {
    LLVMTypeRef over[2] = {vt, LLVMTypeOf(ptrs)};
    LLVMValueRef args[4] = {ptrs, ci32(L, align), mask, LLVMConstNull(vt)};
    return intrinsic(L, "llvm.masked.gather", over, 2, args, 4);
}
static inline LLVMValueRef gather(Lower *L, LLVMTypeRef vt, LLVMValueRef ptrs, LLVMValueRef mask) {
    return gather_aligned(L, vt, ptrs, mask, 4);
}

static inline void scatter_aligned(Lower *L, LLVMValueRef v, LLVMValueRef ptrs, LLVMValueRef mask, int align) {
    LLVMTypeRef over[2] = {LLVMTypeOf(v), LLVMTypeOf(ptrs)};
    LLVMValueRef args[4] = {v, ptrs, ci32(L, align), mask};
    intrinsic(L, "llvm.masked.scatter", over, 2, args, 4);
}
static inline void scatter(Lower *L, LLVMValueRef v, LLVMValueRef ptrs, LLVMValueRef mask) {
    scatter_aligned(L, v, ptrs, mask, 4);
}

static inline void masked_store_aligned(Lower *L, LLVMValueRef v, LLVMValueRef p, LLVMValueRef mask, int align) {
    p = as_ptr(L, p, LLVMTypeOf(v));
    LLVMTypeRef over[2] = {LLVMTypeOf(v), LLVMTypeOf(p)};
    LLVMValueRef args[4] = {v, p, ci32(L, align), mask};
    intrinsic(L, "llvm.masked.store", over, 2, args, 4);
}
static inline void masked_store(Lower *L, LLVMValueRef v, LLVMValueRef p, LLVMValueRef mask) {
    masked_store_aligned(L, v, p, mask, 4);
}
/* The vector of type vt at p where mask holds, 0 elsewhere (nothing is read there). */
static inline LLVMValueRef masked_load(Lower *L, LLVMTypeRef vt, LLVMValueRef p, LLVMValueRef mask, int align) {
    p = as_ptr(L, p, vt);
    LLVMTypeRef over[2] = {vt, LLVMTypeOf(p)};
    LLVMValueRef args[4] = {p, ci32(L, align), mask, LLVMConstNull(vt)};
    return intrinsic(L, "llvm.masked.load", over, 2, args, 4);
}

/* Whether any lane of a bool vector is true (a scalar bool is returned as is). */
static inline LLVMValueRef any_lane(Lower *L, LLVMValueRef v) {
    if (!is_vec(v)) return v;
    LLVMValueRef bits = LLVMBuildBitCast(L->bd, v, LLVMIntTypeInContext(L->ctx, (unsigned)L->W), "");
    return LLVMBuildICmp(L->bd, LLVMIntNE, bits, LLVMConstNull(LLVMTypeOf(bits)), "");
}
static inline LLVMValueRef all_lanes(Lower *L, LLVMValueRef v) {
    if (!is_vec(v)) return v;
    LLVMValueRef bits = LLVMBuildBitCast(L->bd, v, LLVMIntTypeInContext(L->ctx, (unsigned)L->W), "");
    return LLVMBuildICmp(L->bd, LLVMIntEQ, bits, LLVMConstAllOnes(LLVMTypeOf(bits)), "");
}

static inline LLVMValueRef smin(Lower *L, LLVMValueRef a, LLVMValueRef b) {
    return LLVMBuildSelect(L->bd, LLVMBuildICmp(L->bd, LLVMIntSLT, a, b, ""), a, b, "");
}
static inline LLVMValueRef smax(Lower *L, LLVMValueRef a, LLVMValueRef b) {
    return LLVMBuildSelect(L->bd, LLVMBuildICmp(L->bd, LLVMIntSGT, a, b, ""), a, b, "");
}

static inline LLVMValueRef fcmp(Lower *L, LLVMRealPredicate pred, LLVMValueRef a, LLVMValueRef b) {
    return LLVMBuildFCmp(L->bd, pred, a, b, "");
}
static inline LLVMValueRef fsel(Lower *L, LLVMValueRef c, LLVMValueRef a, LLVMValueRef b) {
    return LLVMBuildSelect(L->bd, c, a, b, "");
}

static inline LLVMBasicBlockRef block(Lower *L, const char *name) {
    return LLVMAppendBasicBlockInContext(L->ctx, L->fn, name);
}

/* for (i = start; i < end; i += step): loop_begin returns i and leaves the
 * builder in the body; loop_end closes it and leaves the builder after the
 * loop, where lp->i holds the first i that failed the test. */
typedef struct Loop {
    LLVMBasicBlockRef header, exit;
    LLVMValueRef i, step;
} Loop;

static inline LLVMValueRef loop_begin(Lower *L, Loop *lp, LLVMValueRef start, LLVMValueRef end, LLVMValueRef step,
                               const char *name) {
    LLVMBasicBlockRef pre = LLVMGetInsertBlock(L->bd);
    lp->header = block(L, name);
    LLVMBasicBlockRef body = block(L, name);
    lp->exit = block(L, name);
    lp->step = step;
    LLVMBuildBr(L->bd, lp->header);
    LLVMPositionBuilderAtEnd(L->bd, lp->header);
    lp->i = LLVMBuildPhi(L->bd, L->i64, name);
    LLVMAddIncoming(lp->i, &start, &pre, 1);
    LLVMBuildCondBr(L->bd, LLVMBuildICmp(L->bd, LLVMIntSLT, lp->i, end, ""), body, lp->exit);
    LLVMPositionBuilderAtEnd(L->bd, body);
    return lp->i;
}

static inline void loop_end(Lower *L, Loop *lp) {
    LLVMValueRef next = LLVMBuildAdd(L->bd, lp->i, lp->step, "");
    LLVMBasicBlockRef latch = LLVMGetInsertBlock(L->bd);
    LLVMBuildBr(L->bd, lp->header);
    LLVMAddIncoming(lp->i, &next, &latch, 1);
    LLVMPositionBuilderAtEnd(L->bd, lp->exit);
}

/* if (cond) { ... }: returns the block after; the builder is in the then-block. */
static inline LLVMBasicBlockRef if_begin(Lower *L, LLVMValueRef cond, const char *name) {
    LLVMBasicBlockRef then = block(L, name), after = block(L, name);
    LLVMBuildCondBr(L->bd, cond, then, after);
    LLVMPositionBuilderAtEnd(L->bd, then);
    return after;
}
static inline void if_end(Lower *L, LLVMBasicBlockRef after) {
    LLVMBuildBr(L->bd, after);
    LLVMPositionBuilderAtEnd(L->bd, after);
}

/* ---- the memo of emitted nodes ------------------------------------------ */

static inline LLVMTypeRef type_of(Lower *L, Type t, int vec) {
    if (t == T_INT) return vec ? L->vi64 : L->i64;
    if (t == T_FLOAT) return vec ? L->vf32 : L->f32;
    return vec ? L->vi1 : L->i1;
}

static inline void scope_push(Lower *L) {
    if (L->depth >= MAX_SCOPES) {
        fail(L, "sums are nested too deeply for the LLVM backend");
        return;
    }
    L->marks[L->depth++] = L->nstack;
}

static inline void scope_pop(Lower *L) {
    if (L->depth == 0) return;
    int mark = L->marks[--L->depth];
    while (L->nstack > mark) L->memo[L->stack[--L->nstack]] = NULL;
}

static inline void remember(Lower *L, IrRef r, LLVMValueRef v) {
    L->memo[r] = v;
    L->stack[L->nstack++] = r;
}

/* ---- defined in llvm_lower.c, shared with llvm_grad.c ------------------- */

/* L's types at L->W lanes, in L->ctx. */
void lower_init_types(Lower *L);

/* A function `name` of type fty in L->mod with the target's attributes,
 * L->fn; the builders positioned in its entry block (allocas) and at the
 * start of its code; lower_close_function links the two. */
LLVMBasicBlockRef lower_open_function(Lower *L, const char *name, LLVMTypeRef fty);
void lower_close_function(Lower *L, LLVMBasicBlockRef entry);

/* A grid table's entries per corner key (Schedule.diag_grid): the q tile's rows, in whole vectors. */
static inline int64_t diag_grid_stride(const Lower *L) { return ((int64_t)L->p->bq + L->W - 1) / L->W * L->W; }

/* Floats between two diagonal tables: QB + BK entries, rounded up to whole vectors, since the fill
 * stores W entries at a time (unrounded, a tile whose QB + BK is not a multiple of W wrote the first
 * entries of the next table and past the last one: llvm/differential's mathrange at tiles 10x24); of
 * two grid tables, 4 corner keys' diag_grid_stride(L). */
static inline int64_t diag_stride(const Lower *L) {
    if (L->s->diag_grid[0]) return 4 * diag_grid_stride(L);
    return ((int64_t)L->QB + L->BK + L->W - 1) / L->W * L->W;
}

#endif
