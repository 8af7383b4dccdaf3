/* c_holes.c — the C code of one attention's kernel plan: the schedule's
 * steps (middle/schedule.h) printed as the code of each hole of the kernel
 * templates (templates/tile.c and templates/cuda_tile.cu), the one
 * element-code printer of the C and CUDA emitters.
 *
 * Requires: a Plan with its Schedule.  Produces: a CEmitHoles (c_holes.h).
 * It decides nothing about where a value is computed: each STEP_VALUE
 * becomes one typed local (int64_t, float, or int for bool) named v<node>,
 * a slot read becomes row_<node>[i] or col_<node>[j], a sum's steps a for
 * loop; the query head is `hr` (the row's head) in row and element code and
 * `h` (the work item's) elsewhere.  Int arithmetic goes through uint64_t, so
 * it wraps without undefined behaviour; loads compare their indices with the
 * bound tensor's shape and read 0 outside it (the plan's `fault` value
 * reports the error where the spec has one).  The code calls the helpers of
 * templates/support.h (attnc_floordiv, ...) by name; the file assembly
 * (backends/c/c_emit.c) defines those it calls.  The generated kernel
 * computes what runtime/plan_run.c (refplan) computes, in float32 instead
 * of float64. */
#include "c_holes.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    NAME_CHARS = 96,    /* the longest C expression that names one value */
    LINE_CHARS = 2048,  /* the longest generated line (a load of 8 indices) */
};

typedef struct CEmit {
    const Plan *p;
    const Schedule *s;
    const IrModule *m;
    SchedBlockId blk;   /* the block being printed */
    StrBuf *text;       /* its text */
    int depth;          /* loops open inside it */
    int nomem;
    char why[300];      /* the first reason the plan cannot be emitted */
} CEmit;

static void hole_fail(CEmit *E, const char *fmt, ...) {
    if (E->why[0]) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(E->why, sizeof E->why, fmt, ap);
    va_end(ap);
}

static int failed(const CEmit *E) { return E->why[0] || E->nomem; }

/* One line of the current block at its loop depth. */
static void line(CEmit *E, const char *fmt, ...) {
    char buf[LINE_CHARS];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0 || n >= (int)sizeof buf) {
        hole_fail(E, "a generated line is too long");
        return;
    }
    sb_printf(E->text, "%*s%s\n", E->depth * 4, "", buf);
}

static const char *ctype(Type t) { return t == T_INT ? "int64_t" : t == T_FLOAT ? "float" : "int"; }

static void const_text(const IrNode *n, char *out) {
    if (n->type == T_BOOL) {
        snprintf(out, NAME_CHARS, "%d", n->c.b ? 1 : 0);
    } else if (n->type == T_INT) {
        if (n->c.i == INT64_MIN) snprintf(out, NAME_CHARS, "(-9223372036854775807LL - 1)");
        else if (n->c.i < 0) snprintf(out, NAME_CHARS, "(%lldLL)", (long long)n->c.i);
        else snprintf(out, NAME_CHARS, "%lldLL", (long long)n->c.i);
    } else {
        /* what a float32 kernel computes with; from 0x1.ffffffp+127 on, float rounds to inf
         * (and converting such a double to float would be undefined behaviour) */
        double d = n->c.f;
        int overflows = isinf(d) || fabs(d) >= 0x1.ffffffp+127;
        float f = overflows ? 0.0f : (float)d;
        if (isnan(d)) snprintf(out, NAME_CHARS, "attnc_nan()");
        else if (overflows) snprintf(out, NAME_CHARS, "%s", d < 0 ? "(-attnc_inf())" : "attnc_inf()");
        else snprintf(out, NAME_CHARS, "%s%af%s", signbit(f) ? "(" : "", (double)f, signbit(f) ? ")" : "");
    }
}

/* Whether block id runs once per query row or per element: there the
 * templates name the row's own query head `hr`, which differs from the work
 * item's `h` when the item packs several heads (kernel_abi.h, AttnCall.pack).
 * Blocks are per row unless listed: a new per-item block printing `hr` fails
 * to compile, where a new per-row block printing `h` would be silently wrong. */
static int per_row(SchedBlockId id) {
    return id != SB_SCRATCH && id != SB_ITEM && id != SB_COL && id != SB_COL_FAULT;
}

static void var_text(const CEmit *E, int var, char *out) {
    static const char *const names[V_COUNT] = {"b",     "h",     "q",     "kv",   "hk",   "c->B",
                                               "c->H",  "c->Hkv", "c->Lq", "c->Lk", "c->D", "c->Dv"};
    if (var == V_H && per_row(E->blk)) snprintf(out, NAME_CHARS, "hr");
    else snprintf(out, NAME_CHARS, "%s", var >= 0 && var < V_COUNT ? names[var] : "0");
}


/* The C expression that reads node r in the current block (available there). */
static void name_of(CEmit *E, IrRef r, char *out) {
    const IrNode *n = ir_at(E->m, r);
    switch (n->op) {
    case IR_CONST: const_text(n, out); return;
    case IR_VAR: var_text(E, n->aux, out); return;
    case IR_SUMVAR: snprintf(out, NAME_CHARS, "r%d", n->aux); return;
    case IR_PRE: snprintf(out, NAME_CHARS, "pre"); return;
    default: break;
    }
    switch (sched_home(E->s, E->blk, r)) {
    case SH_ROW_SLOT: snprintf(out, NAME_CHARS, "row_%d[i]", r); return;
    case SH_COL_SLOT: snprintf(out, NAME_CHARS, "col_%d[j]", r); return;
    default: snprintf(out, NAME_CHARS, "v%d", r); return;
    }
}

static const char *fn_c_name(int fn) {
    switch (fn) {
    case FN_EXP: return "expf";
    case FN_EXP2: return "exp2f";
    case FN_LOG: return "logf";
    case FN_LOG2: return "log2f";
    case FN_SQRT: return "sqrtf";
    case FN_TANH: return "tanhf";
    case FN_SIGMOID: return "attnc_sigmoid";
    case FN_ERF: return "erff";
    case FN_POW: return "powf";
    case FN_FLOOR: return "floorf";
    case FN_CEIL: return "ceilf";
    case FN_SIGN: return "attnc_sign";
    case FN_SIN: return "sinf";
    case FN_COS: return "cosf";
    default: return NULL;
    }
}

/* The bounds check (cond) and row-major offset (off) of a tensor access n
 * (IR_LOAD / IR_INBOUNDS) as C; 0 (with hole_fail) when it cannot be printed. */
static int load_index_text(CEmit *E, const IrNode *n, char *cond, size_t cond_len, char *off, size_t off_len) {
    char idx[ATTNC_MAX_RANK][NAME_CHARS];
    cond[0] = off[0] = 0;
    if (n->nargs < 1 || n->nargs > ATTNC_MAX_RANK) {
        hole_fail(E, "a tensor access with %d indices", n->nargs);
        return 0;
    }
    size_t cl = 0, ol = 0;
    for (int i = 0; i < n->nargs; i++) {
        name_of(E, n->args[i], idx[i]);
        /* dims are never negative, so one unsigned compare checks 0 <= i < dim */
        cl += (size_t)snprintf(cond + cl, cond_len - cl, "%s(uint64_t)%s < (uint64_t)c->tensor_shape[%d][%d]",
                               i ? " && " : "", idx[i], n->aux, i);
        if (cl >= cond_len) break;
    }
    for (int i = 0; i < n->nargs && ol < off_len; i++)
        ol += i == 0 ? (size_t)snprintf(off, off_len, "%s", idx[0])
                     : (size_t)snprintf(off + ol, off_len - ol, ") * c->tensor_shape[%d][%d] + %s", n->aux, i, idx[i]);
    if (cl >= cond_len || ol >= off_len) {
        hole_fail(E, "a tensor access is too long to print");
        return 0;
    }
    return 1;
}

/* A tensor element: its bounds check, or the element (0 outside the shape). */
static void hole_load(CEmit *E, IrRef r, const IrNode *n) {
    char cond[LINE_CHARS / 2], off[LINE_CHARS / 2];
    if (!load_index_text(E, n, cond, sizeof cond, off, sizeof off)) return;
    if (n->op == IR_INBOUNDS) {
        line(E, "int v%d = %s;", r, cond);
        return;
    }
    const Decl *t = E->p->attn->tensors[n->aux];
    int is_int = t->type == T_INT;
    char open[ATTNC_MAX_RANK + 1];
    memset(open, '(', (size_t)n->nargs - 1);
    open[n->nargs - 1] = 0;
    line(E, "%s v%d = %s ? %s((const %s *)c->tensor_data[%d])[%s%s] : %s; /* %s */", ctype(n->type), r, cond,
         is_int ? "(int64_t)" : "", is_int ? "int32_t" : "float", n->aux, open, off, is_int ? "0" : "0.0f", t->name);
}

/* An IR_DIAG node (pass_toeplitz.c), which only element blocks read
 * (schedule.h, SB_DIAG; refplan fails the run elsewhere too): its table,
 * which the DIAG hole filled for this pair of tiles, at the element's
 * distance kv - q (entry kv - q - diag_d0).  Grid tables (Schedule.diag_grid)
 * have no C form: the C and CUDA backends take TABLES_DISTANCE only
 * (backend.h). */
static void diag_read(CEmit *E, IrRef r, const IrNode *n) {
    const char *T = ctype(n->type);
    if (E->s->block[E->blk].loop != SL_ELEM) hole_fail(E, "a diagonal table read outside the element code");
    if (E->s->diag_grid[0]) hole_fail(E, "grid tables (Schedule.diag_grid) have no C form");
    line(E, "%s v%d = ((const %s *)(sc.diag + %d * ATTNC_DIAG_CAP))[kv - q - diag_d0];", T, r, T, E->s->slot_of[r]);
}

/* One node, whose operands are all readable: its local. */
static void emit_one(CEmit *E, IrRef r) {
    const IrNode *n = ir_at(E->m, r);
    char a[3][NAME_CHARS];
    const char *T = ctype(n->type);
    int ints = n->nargs > 0 && ir_at(E->m, n->args[0])->type == T_INT;
    switch (n->op) {
    case IR_LOAD:
    case IR_INBOUNDS: hole_load(E, r, n); break;
    case IR_DIAG: diag_read(E, r, n); break;
    case IR_PARAM: {
        const Decl *d = E->p->attn->params[n->aux];
        if (n->type == T_FLOAT) line(E, "float v%d = (float)c->params[%d].f; /* %s */", r, n->aux, d->name);
        else if (n->type == T_INT) line(E, "int64_t v%d = c->params[%d].i; /* %s */", r, n->aux, d->name);
        else line(E, "int v%d = c->params[%d].i != 0; /* %s */", r, n->aux, d->name);
        break;
    }
    default: {
        if (n->nargs > 3) {
            hole_fail(E, "IR operation '%s' with %d operands", ir_op_name(n->op), n->nargs);
            return;
        }
        for (int i = 0; i < n->nargs; i++) name_of(E, n->args[i], a[i]);
        const char *x = a[0], *y = a[1];
        int is_int = n->type == T_INT;
        switch (n->op) {
        case IR_TOFLOAT: line(E, "float v%d = (float)%s;", r, x); break;
        case IR_NEG:
            if (is_int) line(E, "int64_t v%d = (int64_t)(0 - (uint64_t)%s);", r, x);
            else line(E, "float v%d = -%s;", r, x);
            break;
        case IR_NOT: line(E, "int v%d = !%s;", r, x); break;
        case IR_ADD:
        case IR_SUB:
        case IR_MUL: {
            const char *op = n->op == IR_ADD ? "+" : n->op == IR_SUB ? "-" : "*";
            if (is_int) line(E, "int64_t v%d = (int64_t)((uint64_t)%s %s (uint64_t)%s);", r, x, op, y);
            else line(E, "float v%d = %s %s %s;", r, x, op, y);
            break;
        }
        case IR_DIV:
            if (is_int) line(E, "int64_t v%d = attnc_floordiv(%s, %s);", r, x, y);
            else line(E, "float v%d = %s / %s;", r, x, y);
            break;
        case IR_MOD:
            if (is_int) line(E, "int64_t v%d = attnc_floormod(%s, %s);", r, x, y);
            else line(E, "float v%d = attnc_fmod_floor(%s, %s);", r, x, y);
            break;
        case IR_LT: line(E, "int v%d = %s < %s;", r, x, y); break;
        case IR_LE: line(E, "int v%d = %s <= %s;", r, x, y); break;
        case IR_EQ: line(E, "int v%d = %s == %s;", r, x, y); break;
        case IR_NE: line(E, "int v%d = %s != %s;", r, x, y); break;
        /* bools are 0 or 1 and every operand is total: no need to short-circuit */
        case IR_AND: line(E, "int v%d = %s & %s;", r, x, y); break;
        case IR_OR: line(E, "int v%d = %s | %s;", r, x, y); break;
        case IR_SELECT: line(E, "%s v%d = %s ? %s : %s;", T, r, x, y, a[2]); break;
        case IR_ABS:
            if (is_int) line(E, "int64_t v%d = %s < 0 ? (int64_t)(0 - (uint64_t)%s) : %s;", r, x, x, x);
            else line(E, "float v%d = fabsf(%s);", r, x);
            break;
        /* exactly ir_apply's comparisons, NaN included (fminf would differ) */
        case IR_MIN: line(E, "%s v%d = %s < %s ? %s : %s;", T, r, x, y, x, y); break;
        case IR_MAX: line(E, "%s v%d = %s > %s ? %s : %s;", T, r, x, y, x, y); break;
        case IR_CALL:
            if (n->aux == FN_INT) {
                if (ints) line(E, "int64_t v%d = %s;", r, x);
                else line(E, "int64_t v%d = attnc_float_to_int(%s);", r, x);
            } else if (fn_c_name(n->aux)) {
                if (n->nargs == 2) line(E, "float v%d = %s(%s, %s);", r, fn_c_name(n->aux), x, y);
                else line(E, "float v%d = %s(%s);", r, fn_c_name(n->aux), x);
            } else {
                hole_fail(E, "built-in function '%s' has no C form", fn_name((Fn)n->aux));
            }
            break;
        default: hole_fail(E, "IR operation '%s' has no C form", ir_op_name(n->op));
        }
    }
    }
}

/* The loop of a sum: `T vR = 0; for (rL = 0; rL < bound; rL++) {` */
static void sum_open(CEmit *E, IrRef r, const IrNode *n) {
    char bound[NAME_CHARS];
    int level = n->aux;
    name_of(E, n->args[0], bound);
    line(E, "%s v%d = 0;", ctype(n->type), r);
    if (n->op == IR_ANY) line(E, "for (int64_t r%d = 0; r%d < %s && !v%d; r%d++) {", level, level, bound, r, level);
    else line(E, "for (int64_t r%d = 0; r%d < %s; r%d++) {", level, level, bound, level);
    E->depth++;
}

/* `vR += body; }` */
static void sum_close(CEmit *E, IrRef r, const IrNode *n) {
    char body[NAME_CHARS];
    name_of(E, n->args[1], body);
    if (n->op == IR_ANY) line(E, "v%d = %s;", r, body);
    else if (n->type == T_INT) line(E, "v%d = (int64_t)((uint64_t)v%d + (uint64_t)%s);", r, r, body);
    else line(E, "v%d += %s;", r, body);
    E->depth--;
    line(E, "}");
}

/* The steps of block `id` as C, into `text`.  In the scratch-size function
 * (SB_SCRATCH) a call with too many low-rank columns asks for an impossible
 * size; in the kernel it fails the work item (the interpreter then gives the
 * answer). */
static void print_block_steps(CEmit *E, SchedBlockId id, const SchedBlock *blk, StrBuf *text) {
    E->blk = id;
    E->text = text;
    char v[NAME_CHARS];
    for (int i = 0; i < blk->nsteps && !failed(E); i++) {
        const SchedStep *st = &blk->steps[i];
        const IrNode *n = st->node != IR_NONE ? ir_at(E->m, st->node) : NULL;
        switch (st->op) {
        case STEP_VALUE: emit_one(E, st->node); break;
        case STEP_SUM_OPEN: sum_open(E, st->node, n); break;
        case STEP_SUM_CLOSE: sum_close(E, st->node, n); break;
        case STEP_EXPORT: {
            int row = blk->loop == SL_ROW;
            line(E, "%s_%d[%s] = v%d;", row ? "row" : "col", st->node, row ? "i" : "j", st->node);
            break;
        }
        case STEP_LOWRANK_COUNT:
            name_of(E, st->node, v);
            line(E, "const int64_t lowrank_n%d = %s > 0 ? %s : 0;", st->aux, v, v);
            if (id != SB_SCRATCH) line(E, "const int64_t lowrank_at%d = lowrank_cols;", st->aux);
            line(E, "lowrank_cols += lowrank_n%d;", st->aux);
            break;
        case STEP_LOWRANK_LIMIT:
            if (id == SB_SCRATCH) line(E, "if (lowrank_cols > ATTNC_MAX_LOWRANK_COLS) return (int64_t)1 << 40;");
            else line(E, "if (lowrank_cols > ATTNC_MAX_LOWRANK_COLS) return 1;");
            break;
        case STEP_LOWRANK_OPEN:
            line(E, "for (int64_t r0 = 0; r0 < lowrank_n%d; r0++) {", st->aux);
            E->depth++;
            break;
        case STEP_LOWRANK_STORE:
            name_of(E, st->node, v);
            if (blk->loop == SL_ROW) line(E, "sc.qlr[i * lowrank_cols + lowrank_at%d + r0] = %s;", st->aux, v);
            else line(E, "sc.klr[(lowrank_at%d + r0) * ATTNC_BK + j] = %s;", st->aux, v);
            break;
        case STEP_LOWRANK_CLOSE:
            E->depth--;
            line(E, "}");
            break;
        case STEP_LSE_OFFSET:
            name_of(E, st->node, v);
            line(E, "sc.lse_off[i] = %s;", v);
            break;
        case STEP_DIAG_STORE: { /* entry de of table aux (the DIAG hole's loop) */
            const char *T = ctype(n->type);
            name_of(E, st->node, v);
            line(E, "((%s *)(sc.diag + %d * ATTNC_DIAG_CAP))[de] = %s;", T, st->aux, v);
            break;
        }
        }
    }
}

static void print_steps(CEmit *E, SchedBlockId id, StrBuf *text) { print_block_steps(E, id, &E->s->block[id], text); }

/* The row or kv values only the fault check reads, in calls that check faults. */
static void print_fault_steps(CEmit *E, SchedBlockId id, StrBuf *text) {
    if (E->s->block[id].nsteps == 0) return;
    E->blk = id;
    E->text = text;
    line(E, "if (c->check_faults) {");
    E->depth++;
    print_steps(E, id, text);
    E->depth--;
    line(E, "}");
}

/* ---- the holes ---------------------------------------------------------- */

/* The element code of one tile mode: elem_fault, elem_keep, elem_value. */
static void emit_element(CEmit *E, int partial, StrBuf *text) {
    const Schedule *s = E->s;
    const IrFunc *f = E->p->f;
    char v[NAME_CHARS], scale[NAME_CHARS], bias[NAME_CHARS];
    E->depth = 0;
    print_steps(E, SB_PRE, text);
    name_of(E, f->scale, scale);
    name_of(E, f->bias, bias);
    int no_bias = ir_at(E->m, f->bias)->op == IR_CONST && ir_at(E->m, f->bias)->c.f == 0;
    line(E, "const float pre = %s * srow[j]%s%s%s;", scale, no_bias ? "" : " + ", no_bias ? "" : bias,
         s->nlowrank ? " + lrow[j]" : "");
    line(E, "(void)pre;");
    if (partial && s->needs_mask) {
        print_steps(E, SB_KEEP, text);
        name_of(E, s->block[SB_KEEP].result, v);
        line(E, "elem_keep = %s;", v);
    }
    if (s->needs_fault) {
        /* in its own scope: what only the fault check needs is not computed when the call skips it;
         * on PARTIAL tiles after the masks, whose values it reuses */
        SchedBlockId fb = partial ? SB_FAULT_PARTIAL : SB_FAULT;
        line(E, "if (check_faults) {");
        E->depth++;
        print_steps(E, fb, text);
        name_of(E, s->block[fb].result, v);
        line(E, "elem_fault = %s;", v);
        E->depth--;
        line(E, "}");
    }
    SchedBlockId vb = partial ? SB_VALUE_PARTIAL : SB_VALUE_FULL;
    print_steps(E, vb, text);
    name_of(E, s->block[vb].result, v);
    if (s->softmax) line(E, "elem_value = %s * ATTNC_LOG2E;", v);
    else line(E, "elem_value = %s;", v);
}

/* The schedule's band of keys (band_lo <= kv <= band_hi wherever keep holds;
 * row slots, item values or leaves) as ATTNC_BAND_LO and ATTNC_BAND_HI, two
 * expressions of the element code's names (row i, its q and hr). */
static void emit_band(CEmit *E, StrBuf *text) {
    char lo[NAME_CHARS], hi[NAME_CHARS];
    if (E->s->band_lo == IR_NONE) return;
    E->blk = SB_KEEP;
    name_of(E, E->s->band_lo, lo);
    name_of(E, E->s->band_hi, hi);
    sb_printf(text, "#define ATTNC_BAND_LO (%s)\n#define ATTNC_BAND_HI (%s)\n", lo, hi);
}

/* Typed views of the row and col slots. */
static void emit_slots(CEmit *E, StrBuf *text) {
    const Schedule *s = E->s;
    for (int k = 0; k < s->nrow_slots; k++) {
        const char *T = ctype(ir_at(E->m, s->row_slots[k])->type);
        sb_printf(text, "%s *row_%d = (%s *)(sc.row_slots + %d * ATTNC_BQ);\n", T, s->row_slots[k], T, k);
    }
    for (int k = 0; k < s->ncol_slots; k++) {
        const char *T = ctype(ir_at(E->m, s->col_slots[k])->type);
        sb_printf(text, "%s *col_%d = (%s *)(sc.col_slots + %d * ATTNC_BK);\n", T, s->col_slots[k], T, k);
    }
}

/* An emitter of p's schedule; ATTNC_ERR_INTERNAL when the schedule could not be built. */
static attnc_status emit_start(const Plan *p, CEmit *E, attnc_error *err) {
    memset(E, 0, sizeof *E);
    E->p = p;
    E->s = p->sched;
    E->m = p->ir;
    if (p->sched->why[0])
        return set_error(err, ATTNC_ERR_INTERNAL, "cannot emit C for attention '%s': %s", p->attn->name, p->sched->why);
    return ATTNC_OK;
}

attnc_status cemit_holes(const Plan *p, CEmitHoles *h, attnc_error *err) {
    memset(h, 0, sizeof *h);
    CEmit E;
    attnc_status st = emit_start(p, &E, err);
    if (st) return st;
    print_steps(&E, SB_SCRATCH, &h->scratch);
    print_steps(&E, SB_ITEM, &h->head);
    print_steps(&E, SB_ROW, &h->row);
    print_fault_steps(&E, SB_ROW_FAULT, &h->row);
    print_steps(&E, SB_COL, &h->col);
    print_fault_steps(&E, SB_COL_FAULT, &h->col);
    emit_slots(&E, &h->slots);
    emit_band(&E, &h->slots);
    print_steps(&E, SB_DIAG, &h->diag);
    emit_element(&E, 1, &h->elem_partial);
    emit_element(&E, 0, &h->elem_full);
    h->nrow_slots = E.s->nrow_slots;
    h->ncol_slots = E.s->ncol_slots;
    StrBuf *all[] = {&h->scratch, &h->head, &h->slots, &h->row, &h->col, &h->elem_partial, &h->elem_full, &h->diag};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) E.nomem |= all[i]->failed;
    if (E.nomem) return set_error(err, ATTNC_ERR_NOMEM, "out of memory while emitting C");
    if (E.why[0])
        return set_error(err, ATTNC_ERR_INTERNAL, "cannot emit C for attention '%s': %s", p->attn->name, E.why);
    return ATTNC_OK;
}

void cemit_put_schedule_macros(const Schedule *s, StrBuf *out) {
    sb_printf(out, "#define ATTNC_BQ %d\n#define ATTNC_BK %d\n", s->bq, s->bk);
    sb_printf(out, "#define ATTNC_SOFTMAX %d\n#define ATTNC_LSE_OFFSET %d\n", s->softmax ? 1 : 0, s->lse_offset ? 1 : 0);
    sb_printf(out, "#define ATTNC_ROW_SLOTS %d\n#define ATTNC_COL_SLOTS %d\n", s->nrow_slots, s->ncol_slots);
    sb_printf(out, "#define ATTNC_LOWRANK %d\n", s->nlowrank > 0);
    sb_printf(out, "#define ATTNC_MAX_LOWRANK_COLS %d\n", SCHED_MAX_LOWRANK_COLS);
    sb_printf(out, "#define ATTNC_BAND %d\n", s->band_lo != IR_NONE);
    /* the diagonal tables (SB_DIAG) and their entries, one per distance a pair of tiles meets (and a spare) */
    sb_printf(out, "#define ATTNC_DIAG_TABLES %d\n#define ATTNC_DIAG_CAP %d\n", s->ndiag, s->bq + s->bk);
}

void cemit_holes_free(CEmitHoles *h) {
    StrBuf *all[] = {&h->scratch, &h->head, &h->slots, &h->row, &h->col, &h->elem_partial, &h->elem_full, &h->diag};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) sb_free(all[i]);
    memset(h, 0, sizeof *h);
}

/* ---- version 2's standalone blocks (schedule.h: SB_ROPE ...) ---------------- */

/* `QUALIFIER int NAME(const AttnCall *c, int64_t b, int64_t h, int64_t hk,
 * int64_t q, int64_t kv, T *out0, ...)`: the steps of block id, the values
 * outs[] stored through the out pointers; returns the block's fault (1: a
 * runtime error of the spec). */
static void emit_standalone(CEmit *E, SchedBlockId id, const char *qualifier, const char *name, const IrRef *outs,
                            int nouts, IrRef fault, StrBuf *text) {
    char v[NAME_CHARS];
    E->blk = id;
    E->text = text;
    E->depth = 0;
    sb_printf(text, "%s int %s(const AttnCall *c, int64_t b, int64_t h, int64_t hk, int64_t q, int64_t kv", qualifier,
              name);
    for (int i = 0; i < nouts; i++) sb_printf(text, ", %s *out%d", ctype(ir_at(E->m, outs[i])->type), i);
    sb_printf(text, ") {\n");
    E->depth = 1;
    line(E, "const int64_t hr = h;");
    line(E, "(void)c, (void)b, (void)h, (void)hr, (void)hk, (void)q, (void)kv;");
    print_steps(E, id, text);
    for (int i = 0; i < nouts; i++) {
        name_of(E, outs[i], v);
        line(E, "*out%d = %s;", i, v);
    }
    name_of(E, fault, v);
    line(E, "return %s;", v);
    E->depth = 0;
    line(E, "}");
}

attnc_status cemit_v2_functions(const Plan *p, StrBuf *out, attnc_error *err) {
    return cemit_v2_functions_as(p, "static", out, err);
}

attnc_status cemit_v2_functions_as(const Plan *p, const char *qualifier, StrBuf *out, attnc_error *err) {
    const IrFunc *f = p->f;
    CEmit E;
    attnc_status st = emit_start(p, &E, err);
    if (st) return st;
    if (f->qpos != IR_NONE) {
        IrRef rope[] = {f->rope_dims, f->rope_base, f->rope_interleaved};
        emit_standalone(&E, SB_ROPE, qualifier, "attnc_v2_rope", rope, 3, f->rope_fault, out);
        emit_standalone(&E, SB_QPOS, qualifier, "attnc_v2_qpos", &f->qpos, 1, f->qpos_fault, out);
        emit_standalone(&E, SB_KVPOS, qualifier, "attnc_v2_kvpos", &f->kvpos, 1, f->kvpos_fault, out);
    }
    if (f->sink != IR_NONE) emit_standalone(&E, SB_SINK, qualifier, "attnc_v2_sink", &f->sink, 1, f->sink_fault, out);
    if (E.nomem || out->failed) return set_error(err, ATTNC_ERR_NOMEM, "out of memory while emitting C");
    if (E.why[0])
        return set_error(err, ATTNC_ERR_INTERNAL, "cannot emit C for attention '%s': %s", p->attn->name, E.why);
    return ATTNC_OK;
}

/* ---- the holes of the backward kernel (templates/tile_bwd.c) ---------------- */

/* GRAD_PRE, GRAD_FAULT, GRAD_KEEP, GRAD_VALUE: the element's steps in the
 * backward schedule's scope order (fault and keep each in a C block of
 * their own, as in the schedule). */
static void emit_grad_element(CEmit *E, const GradSchedule *gs, CEmitGradHoles *h) {
    const Schedule *s = &gs->base;
    const IrFunc *f = gs->gp->f;
    char v[NAME_CHARS], scale[NAME_CHARS], bias[NAME_CHARS];
    E->depth = 0;
    print_steps(E, SB_PRE, &h->pre);
    name_of(E, f->scale, scale);
    name_of(E, f->bias, bias);
    line(E, "const float gscale = %s;", scale);
    line(E, "const float pre = gscale * dot + %s;", bias);
    line(E, "(void)pre;");
    if (s->needs_fault) {
        E->text = &h->fault;
        line(E, "if (check_faults) {");
        E->depth++;
        print_steps(E, SB_FAULT, &h->fault);
        name_of(E, s->block[SB_FAULT].result, v);
        line(E, "if (%s) return 1;", v);
        E->depth--;
        line(E, "}");
    }
    if (s->needs_mask) {
        E->text = &h->keep;
        line(E, "if (mode == ATTNC_TILE_PARTIAL) {");
        E->depth++;
        print_steps(E, SB_KEEP, &h->keep);
        name_of(E, s->block[SB_KEEP].result, v);
        line(E, "elem_keep = %s;", v);
        E->depth--;
        line(E, "}");
    }
    print_steps(E, SB_VALUE_FULL, &h->value);
    name_of(E, gs->value, v);
    line(E, "elem_value = %s;", v);
    name_of(E, gs->dvalue_dpre, v);
    line(E, "elem_dvdpre = %s;", v);
}

/* seed * coefficient (named `name`) as C, guarded so that a zero
 * coefficient gives 0 against any seed; empty for the constant 0, the seed
 * alone for the constant 1. */
static void coef_text(CEmit *E, IrRef r, const char *seed, const char *name, char *out, size_t n) {
    const IrNode *k = ir_at(E->m, r);
    int is_const = k->op == IR_CONST && k->type == T_FLOAT;
    if (is_const && k->c.f == 0) out[0] = 0;
    else if (is_const && k->c.f == 1) snprintf(out, n, "%s", seed);
    else if (is_const && !isnan(k->c.f)) snprintf(out, n, "%s * %s", seed, name);
    else snprintf(out, n, "(%s != 0 ? %s * %s : 0.0f)", name, seed, name);
}

/* One tensor term (grad_plan.h): coefficients at the scope of block id (the
 * element's, or a standalone function's), then, when its gradient is wanted
 * and the coefficient is not 0, the loops of its sum chain and the
 * scatter-add (out-of-range indices add nothing). */
static void emit_grad_term(CEmit *E, SchedBlockId id, const GradTerm *t, const GradTermSched *ts, StrBuf *text) {
    char kv[NAME_CHARS], kb[NAME_CHARS], x[NAME_CHARS], cond[LINE_CHARS / 2], off[LINE_CHARS / 2];
    print_block_steps(E, id, &ts->coef, text);
    name_of(E, t->dvalue, kv);
    name_of(E, t->dbias, kb);
    line(E, "if (dtensor[%d]) { /* %s */", t->tensor, E->p->attn->tensors[t->tensor]->name);
    E->depth++;
    /* a zero coefficient contributes nothing, even against an infinite seed */
    char a[2 * NAME_CHARS + 40], bb[2 * NAME_CHARS + 40];
    coef_text(E, t->dvalue, "g", kv, a, sizeof a);
    coef_text(E, t->dbias, "gpre", kb, bb, sizeof bb);
    if (!a[0] && !bb[0]) line(E, "const float tc0 = 0.0f;");
    else line(E, "const float tc0 = %s%s%s;", a, a[0] && bb[0] ? " + " : "", bb);
    line(E, "if (tc0 != 0) {");
    E->depth++;
    for (int i = 0; i < t->nsums; i++) {
        const IrNode *sum = ir_at(E->m, t->sums[i]);
        name_of(E, sum->args[0], x);
        line(E, "for (int64_t r%d = 0; r%d < %s; r%d++) {", sum->aux, sum->aux, x, sum->aux);
        E->depth++;
        print_block_steps(E, id, &ts->level[i], text);
        name_of(E, t->inner[i], x);
        line(E, "const float tc%d = %s != 0 ? tc%d * %s : 0.0f;", i + 1, x, i, x);
        line(E, "if (tc%d != 0) {", i + 1);
        E->depth++;
    }
    print_block_steps(E, id, &ts->index, text);
    E->blk = id;
    E->text = text;
    if (!load_index_text(E, ir_at(E->m, t->load), cond, sizeof cond, off, sizeof off)) return;
    char open[ATTNC_MAX_RANK + 1];
    int nargs = ir_at(E->m, t->load)->nargs;
    memset(open, '(', (size_t)nargs - 1);
    open[nargs - 1] = 0;
    line(E, "if (%s) dtensor[%d][%s%s] += tc%d;", cond, t->tensor, open, off, t->nsums);
    for (int i = 0; i < 2 * t->nsums + 2; i++) {
        E->depth--;
        line(E, "}");
    }
}

attnc_status cemit_grad_holes(const Plan *p, CEmitGradHoles *h, attnc_error *err) {
    memset(h, 0, sizeof *h);
    const GradSchedule *gs = p->grad_sched;
    if (!gs) return set_error(err, ATTNC_ERR_INTERNAL, "attention '%s' has no backward schedule", p->attn->name);
    if (gs->base.why[0])
        return set_error(err, ATTNC_ERR_INTERNAL, "cannot emit the backward C for attention '%s': %s", p->attn->name,
                         gs->base.why);
    CEmit E;
    memset(&E, 0, sizeof E);
    E.p = p;
    E.s = &gs->base;
    E.m = gs->base.m;
    print_steps(&E, SB_ITEM, &h->item);
    print_steps(&E, SB_ROW, &h->row);
    print_fault_steps(&E, SB_ROW_FAULT, &h->row);
    print_steps(&E, SB_COL, &h->col);
    print_fault_steps(&E, SB_COL_FAULT, &h->col);
    emit_slots(&E, &h->slots);
    emit_grad_element(&E, gs, h);
    E.depth = 0;
    for (int i = 0; i < gs->gp->nterms && !failed(&E); i++)
        emit_grad_term(&E, SB_VALUE_FULL, &gs->gp->terms[i], &gs->terms[i], &h->terms);
    h->nrow_slots = gs->base.nrow_slots;
    h->ncol_slots = gs->base.ncol_slots;
    StrBuf *all[] = {&h->item, &h->slots, &h->col, &h->row, &h->pre, &h->fault, &h->keep, &h->value, &h->terms};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) E.nomem |= all[i]->failed;
    if (E.nomem) return set_error(err, ATTNC_ERR_NOMEM, "out of memory while emitting C");
    if (E.why[0])
        return set_error(err, ATTNC_ERR_INTERNAL, "cannot emit the backward C for attention '%s': %s", p->attn->name,
                         E.why);
    return ATTNC_OK;
}

void cemit_grad_holes_free(CEmitGradHoles *h) {
    StrBuf *all[] = {&h->item, &h->slots, &h->col, &h->row, &h->pre, &h->fault, &h->keep, &h->value, &h->terms};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) sb_free(all[i]);
    memset(h, 0, sizeof *h);
}

/* ---- version 2's backward around the kernel (the sink's tensor terms) ------- */

attnc_status cemit_v2_grad_functions(const Plan *p, StrBuf *out, attnc_error *err) {
    const GradSchedule *gs = p->grad_sched;
    if (!gs || gs->base.why[0] || p->f->sink == IR_NONE) return ATTNC_OK;
    if (gs->gp->nsink_terms == 0 && !gs->gp->sink_error) return ATTNC_OK; /* it reads no float tensor */
    if (gs->gp->sink_error)
        return set_error(err, ATTNC_ERR_INTERNAL, "cannot emit the backward C for attention '%s': the sink's: %s",
                         p->attn->name, gs->gp->sink_error);
    CEmit E;
    memset(&E, 0, sizeof E);
    E.p = p;
    E.s = &gs->base;
    E.m = gs->base.m;
    E.blk = SB_SINK; /* standalone: every value local (schedule_grad.h, sink_terms) */
    E.text = out;
    sb_printf(out, "static void attnc_v2_dsink(const AttnCall *c, int64_t b, int64_t h, int64_t hk, int64_t q, "
                   "int64_t kv, float g, float *const *dtensor) {\n");
    E.depth = 1;
    line(&E, "const int64_t hr = h;");
    line(&E, "const float gpre = 0.0f;");
    line(&E, "(void)c, (void)b, (void)h, (void)hr, (void)hk, (void)q, (void)kv, (void)g, (void)gpre, (void)dtensor;");
    for (int i = 0; i < gs->gp->nsink_terms && !failed(&E); i++)
        emit_grad_term(&E, SB_SINK, &gs->gp->sink_terms[i], &gs->sink_terms[i], out);
    E.depth = 0;
    line(&E, "}");
    if (E.nomem || out->failed) return set_error(err, ATTNC_ERR_NOMEM, "out of memory while emitting C");
    if (E.why[0])
        return set_error(err, ATTNC_ERR_INTERNAL, "cannot emit the backward C for attention '%s': %s", p->attn->name,
                         E.why);
    return ATTNC_OK;
}
