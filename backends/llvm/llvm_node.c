/* llvm_node.c — one IR node as an LLVM value: operations and tensor loads.
 * Requires: the lowering state with its leaves bound (L->var, q_vec, kv, pre,
 * sumvar, param, tdata, tdim: what is NULL here is not available here), the
 * node's operands already available (computed by earlier steps of the
 * schedule, llvm_steps.c) and the builder where the value is wanted.
 * Produces: the node's value there; and the call's leaves themselves
 * (lower_bind_inputs).  Where a node is computed, sums and
 * hoisting are the schedule's (middle/schedule.c), not decided here.
 * Every IR operation is total (ir.h), so all of it is evaluated eagerly in
 * lanes: loads are masked gathers (an out-of-range lane reads nothing and
 * gives 0), and the arithmetic of llvm_math.c cannot produce poison. */
#include "llvm_node.h"

#include <stddef.h>
#include <stdlib.h>

#include "llvm_math.h"

/* ---- the call's leaves ---------------------------------------------------- */

void lower_bind_inputs(Lower *L) {
    static const size_t size_off[7] = {offsetof(AttnCall, B),  offsetof(AttnCall, H),  offsetof(AttnCall, Hkv),
                                       offsetof(AttnCall, Lq), offsetof(AttnCall, Lk), offsetof(AttnCall, D),
                                       offsetof(AttnCall, Dv)};
    for (int i = 0; i < 7; i++) L->var[V_SIZE_B + i] = call_field(L, size_off[i], L->i64);
    const Attention *a = L->p->attn;
    LLVMValueRef params = call_field(L, offsetof(AttnCall, params), ptr_to(L->i64));
    for (int i = 0; i < a->nparams; i++) {
        LLVMValueRef at = gep(L, L->i64, params, ci64(L, i));
        Type t = a->params[i]->type;
        if (t == T_FLOAT)
            L->param[i] = LLVMBuildFPTrunc(L->bd, load(L, L->f64, at, 8), L->f32, "");
        else if (t == T_BOOL)
            L->param[i] = LLVMBuildICmp(L->bd, LLVMIntNE, load(L, L->i64, at, 8), ci64(L, 0), "");
        else
            L->param[i] = load(L, L->i64, at, 8);
    }
    LLVMValueRef data = call_field(L, offsetof(AttnCall, tensor_data), ptr_to(ptr_to(L->i8)));
    LLVMValueRef shape = call_field(L, offsetof(AttnCall, tensor_shape), ptr_to(L->i64));
    for (int t = 0; t < a->ntensors; t++) {
        L->tdata[t] = load(L, ptr_to(L->i8), gep(L, ptr_to(L->i8), data, ci64(L, t)), 8);
        for (int d = 0; d < a->tensors[t]->ndims && d < ATTNC_ABI_MAX_RANK; d++)
            L->tdim[t][d] = load(L, L->i64, gep(L, L->i64, shape, ci64(L, (int64_t)t * ATTNC_ABI_MAX_RANK + d)), 8);
    }
}

/* ---- operations ----------------------------------------------------------- */

static LLVMValueRef emit_op(Lower *L, const IrNode *n, LLVMValueRef *a, const Type *at) {
    LLVMBuilderRef b = L->bd;
    int vec = 0;
    for (int i = 0; i < n->nargs; i++) vec |= is_vec(a[i]);
    if (vec)
        for (int i = 0; i < n->nargs; i++) a[i] = splat(L, a[i]);
    int ints = n->type == T_INT, arg_int = at[0] == T_INT, arg_bool = at[0] == T_BOOL;
    switch (n->op) {
    case IR_TOFLOAT: return LLVMBuildSIToFP(b, a[0], type_of(L, T_FLOAT, vec), "");
    case IR_NEG: return ints ? LLVMBuildSub(b, LLVMConstNull(LLVMTypeOf(a[0])), a[0], "") : LLVMBuildFNeg(b, a[0], "");
    case IR_NOT: return LLVMBuildNot(b, a[0], "");
    case IR_ADD: return ints ? LLVMBuildAdd(b, a[0], a[1], "") : LLVMBuildFAdd(b, a[0], a[1], "");
    case IR_SUB: return ints ? LLVMBuildSub(b, a[0], a[1], "") : LLVMBuildFSub(b, a[0], a[1], "");
    case IR_MUL: return ints ? LLVMBuildMul(b, a[0], a[1], "") : LLVMBuildFMul(b, a[0], a[1], "");
    case IR_DIV: return ints ? lower_int_divmod(L, a[0], a[1], 0) : LLVMBuildFDiv(b, a[0], a[1], "");
    case IR_MOD: return ints ? lower_int_divmod(L, a[0], a[1], 1) : lower_float_mod(L, a[0], a[1]);
    case IR_LT: return arg_int ? LLVMBuildICmp(b, LLVMIntSLT, a[0], a[1], "") : fcmp(L, LLVMRealOLT, a[0], a[1]);
    case IR_LE: return arg_int ? LLVMBuildICmp(b, LLVMIntSLE, a[0], a[1], "") : fcmp(L, LLVMRealOLE, a[0], a[1]);
    case IR_EQ:
        return arg_int || arg_bool ? LLVMBuildICmp(b, LLVMIntEQ, a[0], a[1], "") : fcmp(L, LLVMRealOEQ, a[0], a[1]);
    case IR_NE:
        return arg_int || arg_bool ? LLVMBuildICmp(b, LLVMIntNE, a[0], a[1], "") : fcmp(L, LLVMRealUNE, a[0], a[1]);
    case IR_AND: return LLVMBuildAnd(b, a[0], a[1], "");
    case IR_OR: return LLVMBuildOr(b, a[0], a[1], "");
    case IR_SELECT: return LLVMBuildSelect(b, a[0], a[1], a[2], "");
    case IR_ABS:
        if (!ints) return intrinsic1(L, "llvm.fabs", a[0]);
        return LLVMBuildSelect(b, LLVMBuildICmp(b, LLVMIntSLT, a[0], LLVMConstNull(LLVMTypeOf(a[0])), ""),
                               LLVMBuildSub(b, LLVMConstNull(LLVMTypeOf(a[0])), a[0], ""), a[0], "");
    case IR_MIN: return ints ? smin(L, a[0], a[1]) : fsel(L, fcmp(L, LLVMRealOLT, a[0], a[1]), a[0], a[1]);
    case IR_MAX: return ints ? smax(L, a[0], a[1]) : fsel(L, fcmp(L, LLVMRealOGT, a[0], a[1]), a[0], a[1]);
    case IR_CALL: return lower_call(L, (Fn)n->aux, a, n->nargs, at);
    default: break;
    }
    fail(L, "an IR operation the LLVM backend does not know");
    return LLVMGetUndef(type_of(L, n->type, vec));
}

/* t[i0, i1, ...]: in range -> the element, else 0; or the in-range test itself. */
static LLVMValueRef node_load(Lower *L, const IrNode *n) {
    int t = n->aux;
    if (n->nargs > ATTNC_ABI_MAX_RANK || t < 0 || t >= L->p->attn->ntensors) {
        fail(L, "a tensor access the LLVM backend cannot express");
        return LLVMGetUndef(type_of(L, n->type, 0));
    }
    LLVMBuilderRef b = L->bd;
    LLVMValueRef idx[ATTNC_ABI_MAX_RANK];
    int vec = 0;
    for (int i = 0; i < n->nargs; i++) {
        idx[i] = lower_node(L, n->args[i]);
        vec |= is_vec(idx[i]);
    }
    LLVMValueRef inb = vec ? splat(L, cbool(L, 1)) : cbool(L, 1), off = vec ? splat(L, ci64(L, 0)) : ci64(L, 0);
    for (int i = 0; i < n->nargs; i++) {
        LLVMValueRef x = vec ? splat(L, idx[i]) : idx[i], dim = vec ? splat(L, L->tdim[t][i]) : L->tdim[t][i];
        /* dims are never negative (bind checks), so unsigned < is 0 <= x < dim */
        inb = LLVMBuildAnd(b, inb, LLVMBuildICmp(b, LLVMIntULT, x, dim, ""), "");
        off = LLVMBuildAdd(b, LLVMBuildMul(b, off, dim, ""), x, "");
    }
    if (n->op == IR_INBOUNDS) return inb;
    int elem_int = L->p->attn->tensors[t]->type == T_INT;
    LLVMTypeRef et = elem_int ? L->i32 : L->f32;
    LLVMValueRef v;
    if (vec) {
        LLVMValueRef ptrs = gep(L, et, L->tdata[t], off);
        v = gather(L, elem_int ? L->vi32 : L->vf32, ptrs, inb);
    } else {
        /* a branch, not a clamped index: an empty tensor has no element 0 */
        LLVMBasicBlockRef from = LLVMGetInsertBlock(b), yes = block(L, "load"), join = block(L, "loaded");
        LLVMBuildCondBr(b, inb, yes, join);
        LLVMPositionBuilderAtEnd(b, yes);
        LLVMValueRef x = load(L, et, gep(L, et, L->tdata[t], off), 4);
        LLVMBuildBr(b, join);
        LLVMPositionBuilderAtEnd(b, join);
        v = LLVMBuildPhi(b, et, "");
        LLVMValueRef vals[2] = {LLVMConstNull(et), x};
        LLVMBasicBlockRef bbs[2] = {from, yes};
        LLVMAddIncoming(v, vals, bbs, 2);
    }
    return elem_int ? LLVMBuildSExt(b, v, vec ? L->vi64 : L->i64, "") : v;
}

static LLVMValueRef leaf_missing(Lower *L, const IrNode *n, const char *what) {
    char msg[120];
    snprintf(msg, sizeof msg, "%s is read where the kernel does not have it", what);
    fail(L, msg);
    return LLVMGetUndef(type_of(L, n->type, 0));
}

/* The value of node r here: a leaf, or what a step of the schedule computed
 * (or loaded from its slot) in a scope still open.  Never computed here: a
 * node the schedule did not provide is an internal error, not a silent
 * recomputation in the wrong loop. */
LLVMValueRef lower_node(Lower *L, IrRef r) {
    if (L->memo[r]) return L->memo[r];
    const IrNode *n = &L->ir->nodes[r];
    if (L->failed) return LLVMGetUndef(type_of(L, n->type, 0));
    LLVMValueRef v;
    switch (n->op) {
    case IR_CONST:
        if (n->type == T_INT) return ci64(L, n->c.i);
        if (n->type == T_FLOAT) return cf32(L, n->c.f);
        return cbool(L, n->c.b);
    case IR_VAR:
        v = n->aux == V_Q ? L->q_vec : n->aux == V_KV ? L->kv : L->var[n->aux];
        return v ? v : leaf_missing(L, n, builtin_var_name(n->aux));
    case IR_PRE: return L->pre ? L->pre : leaf_missing(L, n, "the score");
    case IR_SUMVAR:
        v = n->aux >= 0 && n->aux < MAX_SUM_LEVELS ? L->sumvar[n->aux] : NULL;
        return v ? v : leaf_missing(L, n, "a sum variable");
    default: {
        char msg[120];
        snprintf(msg, sizeof msg, "the schedule did not provide %%%d (%s)", r, ir_op_name(n->op));
        fail(L, msg);
        return LLVMGetUndef(type_of(L, n->type, 0));
    }
    }
}

/* The module's constant [BK][diag_grid_stride(L)] of i32: the grid table
 * entry row i of a q tile meets key j at (sched_grid_entry; 0 for rows
 * past bq, which no element reads). */
static LLVMValueRef grid_entries(Lower *L) {
    if (L->grid_entry) return L->grid_entry;
    int64_t gs = diag_grid_stride(L), n = (int64_t)L->BK * gs;
    LLVMValueRef *v = malloc(sizeof(LLVMValueRef) * (size_t)n);
    if (!v) {
        fail(L, "out of memory");
        return NULL;
    }
    for (int64_t j = 0; j < L->BK; j++)
        for (int64_t i = 0; i < gs; i++)
            v[j * gs + i] = ci32(L, i < L->p->bq ? (int32_t)sched_grid_entry(L->s, gs, i, j) : 0);
    LLVMTypeRef at = LLVMArrayType(L->i32, (unsigned)n);
    LLVMValueRef g = LLVMAddGlobal(L->mod, at, "attnc_grid_entries");
    LLVMSetInitializer(g, LLVMConstArray(L->i32, v, (unsigned)n));
    LLVMSetGlobalConstant(g, 1);
    LLVMSetLinkage(g, LLVMPrivateLinkage);
    free(v);
    return L->grid_entry = g;
}

/* An IR_DIAG node of grid offsets (table k) in an element: lanes W rows of
 * the q tile from L->diag_row0 + L->lane0, kv key L->col_j of the tile;
 * each lane's entry from the module's constant, then a gather from the
 * table (in L1: 4 * bq floats). */
static LLVMValueRef grid_read(Lower *L, IrRef r, int k) {
    LLVMBuilderRef b = L->bd;
    LLVMValueRef entries = grid_entries(L);
    if (!entries || !L->diag_row0) {
        if (!L->failed) fail(L, "a grid table read outside a row block");
        return LLVMGetUndef(L->vf32);
    }
    LLVMValueRef at = LLVMBuildAdd(b, LLVMBuildMul(b, L->col_j, ci64(L, diag_grid_stride(L)), ""),
                                   LLVMBuildAdd(b, L->diag_row0, L->lane0, ""), "");
    LLVMValueRef idx = load(L, L->vi32, gep(L, L->i32, entries, at), 4);
    LLVMValueRef table = gep(L, L->f32, L->diag, ci64(L, (int64_t)k * diag_stride(L)));
    LLVMValueRef v = gather(L, L->vf32, gep(L, L->f32, table, idx), splat(L, cbool(L, 1)));
    return L->ir->nodes[r].type == T_BOOL ? fcmp(L, LLVMRealUNE, v, LLVMConstNull(L->vf32)) : v; /* bools as 0 / 1 */
}

/* An IR_DIAG node in an element (lanes: W consecutive query rows, kv one
 * key): its table at d = kv - q, which falls by one from lane to lane, so
 * the W entries lie back to back, the last lane's first: one contiguous
 * load, reversed (no gather).  Entry e holds d = k0 - (qb0 + QB - 1) + e, so
 * lane i (q = qb0 + lane0 + i) reads e = j - lane0 - i + QB - 1 (j = kv - k0). */
static LLVMValueRef diag_read(Lower *L, IrRef r) {
    int k = L->s->slot_of[r];
    if (!L->diag || !L->col_j || !L->lane0 || L->kv_lanes || L->scalar_rows || k < 0 || k >= L->s->ndiag) {
        fail(L, "a diagonal table read outside the element loop");
        return LLVMGetUndef(L->vf32);
    }
    if (L->s->diag_grid[0]) return grid_read(L, r, k);
    LLVMBuilderRef b = L->bd;
    LLVMValueRef e = LLVMBuildAdd(b, LLVMBuildSub(b, L->col_j, L->lane0, ""),
                                  ci64(L, (int64_t)k * diag_stride(L) + L->QB - L->W), "");
    LLVMValueRef v = load_fvec(L, L->diag, e);
    LLVMValueRef rev[MAX_LANES];
    for (int i = 0; i < L->W; i++) rev[i] = ci32(L, L->W - 1 - i);
    v = LLVMBuildShuffleVector(b, v, LLVMGetUndef(L->vf32), LLVMConstVector(rev, (unsigned)L->W), "diag");
    return L->ir->nodes[r].type == T_BOOL ? fcmp(L, LLVMRealUNE, v, LLVMConstNull(L->vf32)) : v; /* bools as 0 / 1 */
}

/* STEP_VALUE: node r from its operands, which are available here. */
LLVMValueRef lower_value(Lower *L, IrRef r) {
    if (L->memo[r]) return L->memo[r];
    const IrNode *n = &L->ir->nodes[r];
    if (L->failed) return LLVMGetUndef(type_of(L, n->type, 0));
    LLVMValueRef v;
    switch (n->op) {
    case IR_CONST:
    case IR_VAR:
    case IR_PRE:
    case IR_SUMVAR: return lower_node(L, r); /* leaves: nothing to compute */
    case IR_PARAM: v = L->param[n->aux]; break;
    case IR_LOAD:
    case IR_INBOUNDS: v = node_load(L, n); break;
    case IR_DIAG: v = diag_read(L, r); break;
    case IR_SUM:
    case IR_ANY: fail(L, "a sum as a value step (its loop is STEP_SUM_OPEN/CLOSE)"); return LLVMGetUndef(L->i1);
    default: {
        LLVMValueRef a[3];
        Type at[3] = {T_INT, T_INT, T_INT};
        if (n->nargs > 3) {
            fail(L, "an IR node with too many operands");
            return LLVMGetUndef(type_of(L, n->type, 0));
        }
        for (int i = 0; i < n->nargs; i++) {
            a[i] = lower_node(L, n->args[i]);
            at[i] = L->ir->nodes[n->args[i]].type;
        }
        v = emit_op(L, n, a, at);
    }
    }
    remember(L, r, v);
    return v;
}
