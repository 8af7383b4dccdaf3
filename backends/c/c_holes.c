/* c_holes.c — the C code of one attention's kernel plan: IR + plan -> the
 * code of each hole of the kernel templates (templates/tile.c and
 * templates/cuda_tile.cu), the one element-code generator of the C and
 * CUDA emitters.
 *
 * Requires: a Plan (plan.h) whose IR has been through the middle end.
 *
 * Produces: a CEmitHoles (c_holes.h).  Each IR node becomes one typed local
 * (int64_t, float, or int for bool), computed in the loop of its level
 * (plan_level): call and (b, h) values once per work item, row values once
 * per row, kv values once per column of each visited tile, element values
 * per element.  A value read by a deeper loop travels through a scratch
 * array ("slot", indexed by row or column in the tile).  Sums become for
 * loops; what a sum's body computes without its variable is hoisted out of
 * the loop.  Int arithmetic goes through uint64_t, so it wraps without
 * undefined behaviour; loads compare their indices with the bound tensor's
 * shape and read 0 outside it (the plan's `fault` value reports the error
 * where the spec has one).  The code calls the helpers of
 * templates/support.h (attnc_floordiv, ...) by name; the file assembly
 * (backends/c/c_emit.c) defines those it calls.
 *
 * The generated kernel computes what runtime/plan_run.c (refplan) computes,
 * in float32 instead of float64.  Node emission is iterative (an explicit
 * stack, then the nodes in index order, which is topological), so long
 * chains of masks or lets do not recurse deeply here. */
#include "c_holes.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    NAME_CHARS = 96,    /* the longest C expression that names one value */
    LINE_CHARS = 2048,  /* the longest generated line (a load of 8 indices) */
    MAX_SUM_LEVEL = 30, /* sum levels the open-loop masks can track (IrNode.sumvars has 31 bits) */
};

/* The code of one hole of the template, and which values it holds. */
typedef struct Block {
    Level level;        /* values it computes: LV_CALL (scratch size), LV_HEAD (call and head), LV_ROW, LV_COL, LV_ELEM */
    StrBuf text;
    int depth;          /* loops open inside the block */
    unsigned open;      /* sum levels whose loops are open */
    int *avail;         /* per node: 1 + depth of the scope holding its local; 0: none */
    IrRef *locals;      /* nodes with a local, in emission order (to close scopes) */
    int nlocals, cap;
    unsigned *seen;     /* per node: visit stamp of the current walk */
    unsigned stamp;
} Block;

typedef struct CEmit {
    const Plan *p;
    const IrModule *m;
    Block head, row, col, elem, scratch;
    StrBuf elem_partial, elem_full; /* the element block's code for each tile mode */
    char *in_slot;      /* per node: stored in a row or column slot */
    StrBuf slots;       /* declarations of the slot views */
    int nrow_slots, ncol_slots;
    int pre_ready;      /* `pre` is defined in the element block */
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

/* One line of the block at its current loop depth. */
static void line(CEmit *E, Block *B, const char *fmt, ...) {
    char buf[LINE_CHARS];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0 || n >= (int)sizeof buf) {
        hole_fail(E, "a generated line is too long");
        return;
    }
    sb_printf(&B->text, "%*s%s\n", B->depth * 4, "", buf);
}

static const char *ctype(Type t) { return t == T_INT ? "int64_t" : t == T_FLOAT ? "float" : "int"; }

/* The level of a node ignoring the sums it sits in (plan_level puts every
 * node that reads a sum variable at the element level). */
static Level base_level(const IrNode *n) {
    IrNode t = *n;
    t.deps &= ~DEP_SUMVAR;
    return plan_level(&t);
}

/* Nodes whose C text is a name or literal, not a local. */
static int is_inline(const IrNode *n) {
    return n->op == IR_CONST || n->op == IR_VAR || n->op == IR_SUMVAR || n->op == IR_PRE;
}

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

static void var_text(int var, char *out) {
    static const char *const names[V_COUNT] = {"b",     "h",     "q",     "kv",   "hk",   "c->B",
                                               "c->H",  "c->Hkv", "c->Lq", "c->Lk", "c->D", "c->Dv"};
    snprintf(out, NAME_CHARS, "%s", var >= 0 && var < V_COUNT ? names[var] : "0");
}

/* The block that computes node n when block B reads it, or NULL. */
static Block *owner(CEmit *E, Block *B, const IrNode *n) {
    if (n->sumvars) return B; /* a sum's body: computed inside the sum's loop */
    Level lv = base_level(n);
    if (B->level == LV_CALL) return lv == LV_CALL ? B : NULL;
    if (lv <= LV_HEAD) return &E->head;
    Block *o = lv == LV_ROW ? &E->row : lv == LV_COL ? &E->col : &E->elem;
    if (o != B && (o->level > B->level || B->level != LV_ELEM)) return NULL; /* e.g. a kv value in the row loop */
    return o;
}

/* The C expression that reads node r in block B (r already computed). */
static void name_of(CEmit *E, Block *B, IrRef r, char *out) {
    const IrNode *n = ir_at(E->m, r);
    switch (n->op) {
    case IR_CONST: const_text(n, out); return;
    case IR_VAR: var_text(n->aux, out); return;
    case IR_SUMVAR: snprintf(out, NAME_CHARS, "r%d", n->aux); return;
    case IR_PRE:
        if (!E->pre_ready || B != &E->elem) hole_fail(E, "the score is read before it is computed");
        snprintf(out, NAME_CHARS, "pre");
        return;
    default: break;
    }
    Block *o = owner(E, B, n);
    if (o == &E->row && B != o) snprintf(out, NAME_CHARS, "row_%d[i]", r);
    else if (o == &E->col && B != o) snprintf(out, NAME_CHARS, "col_%d[j]", r);
    else snprintf(out, NAME_CHARS, "v%d", r);
}

static int block_init(Block *B, Level level, int nodes) {
    memset(B, 0, sizeof *B);
    B->level = level;
    B->avail = calloc((size_t)nodes + 1, sizeof(int));
    B->seen = calloc((size_t)nodes + 1, sizeof(unsigned));
    return B->avail && B->seen;
}

static void block_free(Block *B) {
    sb_free(&B->text);
    free(B->avail);
    free(B->locals);
    free(B->seen);
}

/* Forget every local of the element block (it is emitted once per tile mode). */
static void block_reset(Block *B, int nodes) {
    sb_free(&B->text);
    memset(&B->text, 0, sizeof B->text);
    memset(B->avail, 0, sizeof(int) * (size_t)(nodes + 1));
    B->nlocals = 0;
    B->depth = 0;
    B->open = 0;
}

static void add_local(CEmit *E, Block *B, IrRef r) {
    if (B->nlocals == B->cap) {
        int cap = B->cap ? B->cap * 2 : 64;
        IrRef *l = realloc(B->locals, sizeof(IrRef) * (size_t)cap);
        if (!l) {
            E->nomem = 1;
            return;
        }
        B->locals = l;
        B->cap = cap;
    }
    B->locals[B->nlocals++] = r;
    B->avail[r] = B->depth + 1;
}

/* Open a C block inside B; returns the mark to close it. */
static int open_scope(Block *B) {
    B->depth++;
    return B->nlocals;
}

/* Close it: its locals are out of scope. */
static void close_scope(Block *B, int mark) {
    while (B->nlocals > mark) B->avail[B->locals[--B->nlocals]] = 0;
    B->depth--;
}

/* Open a loop over sum variable r<level> inside B; returns the mark to close it. */
static int open_loop(Block *B, int level) {
    B->open |= 1u << level;
    return open_scope(B);
}

static void close_loop(Block *B, int level, int mark) {
    B->open &= ~(1u << level);
    close_scope(B, mark);
}

static void need(CEmit *E, Block *B, IrRef root);

/* A row or kv value read by the element loop goes through a slot. */
static void export_to_slot(CEmit *E, Block *from, IrRef r) {
    if (E->in_slot[r]) return;
    E->in_slot[r] = 1;
    const IrNode *n = ir_at(E->m, r);
    int is_row = from == &E->row;
    int k = is_row ? E->nrow_slots++ : E->ncol_slots++;
    sb_printf(&E->slots, "%s *%s_%d = (%s *)(sc.%s_slots + %d * ATTNC_%s);\n", ctype(n->type), is_row ? "row" : "col",
              r, ctype(n->type), is_row ? "row" : "col", k, is_row ? "BQ" : "BK");
    line(E, from, "%s_%d[%s] = v%d;", is_row ? "row" : "col", r, is_row ? "i" : "j", r);
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
    default: return NULL;
    }
}

/* A tensor element: its bounds check, or the element (0 outside the shape). */
static void hole_load(CEmit *E, Block *B, IrRef r, const IrNode *n) {
    char idx[ATTNC_MAX_RANK][NAME_CHARS], cond[LINE_CHARS / 2] = "", off[LINE_CHARS / 2] = "";
    if (n->nargs < 1 || n->nargs > ATTNC_MAX_RANK) {
        hole_fail(E, "a tensor access with %d indices", n->nargs);
        return;
    }
    size_t cl = 0, ol = 0;
    for (int i = 0; i < n->nargs; i++) {
        name_of(E, B, n->args[i], idx[i]);
        /* dims are never negative, so one unsigned compare checks 0 <= i < dim */
        cl += (size_t)snprintf(cond + cl, sizeof cond - cl, "%s(uint64_t)%s < (uint64_t)c->tensor_shape[%d][%d]",
                               i ? " && " : "", idx[i], n->aux, i);
        if (cl >= sizeof cond) break;
    }
    for (int i = 0; i < n->nargs && ol < sizeof off; i++)
        ol += i == 0 ? (size_t)snprintf(off, sizeof off, "%s", idx[0])
                     : (size_t)snprintf(off + ol, sizeof off - ol, ") * c->tensor_shape[%d][%d] + %s", n->aux, i, idx[i]);
    if (cl >= sizeof cond || ol >= sizeof off) {
        hole_fail(E, "a tensor access is too long to print");
        return;
    }
    if (n->op == IR_INBOUNDS) {
        line(E, B, "int v%d = %s;", r, cond);
        return;
    }
    const Decl *t = E->p->attn->tensors[n->aux];
    int is_int = t->type == T_INT;
    char open[ATTNC_MAX_RANK + 1];
    memset(open, '(', (size_t)n->nargs - 1);
    open[n->nargs - 1] = 0;
    line(E, B, "%s v%d = %s ? %s((const %s *)c->tensor_data[%d])[%s%s] : %s; /* %s */", ctype(n->type), r, cond,
         is_int ? "(int64_t)" : "", is_int ? "int32_t" : "float", n->aux, open, off, is_int ? "0" : "0.0f", t->name);
}

/* `T vR = 0; for (rL = 0; rL < bound; rL++) { body; vR += ...; }` */
static void hole_sum(CEmit *E, Block *B, IrRef r, const IrNode *n) {
    char bound[NAME_CHARS], body[NAME_CHARS];
    int level = n->aux;
    if (level < 0 || level > MAX_SUM_LEVEL) {
        hole_fail(E, "sums nested %d deep (the C emitter handles %d)", level + 1, MAX_SUM_LEVEL + 1);
        return;
    }
    name_of(E, B, n->args[0], bound);
    int any = n->op == IR_ANY;
    line(E, B, "%s v%d = 0;", ctype(n->type), r);
    if (any) line(E, B, "for (int64_t r%d = 0; r%d < %s && !v%d; r%d++) {", level, level, bound, r, level);
    else line(E, B, "for (int64_t r%d = 0; r%d < %s; r%d++) {", level, level, bound, level);
    int mark = open_loop(B, level);
    need(E, B, n->args[1]);
    name_of(E, B, n->args[1], body);
    if (any) line(E, B, "v%d = %s;", r, body);
    else if (n->type == T_INT) line(E, B, "v%d = (int64_t)((uint64_t)v%d + (uint64_t)%s);", r, r, body);
    else line(E, B, "v%d += %s;", r, body);
    close_loop(B, level, mark);
    line(E, B, "}");
}

/* One node, whose operands are all readable: its local. */
static void emit_one(CEmit *E, Block *B, IrRef r) {
    const IrNode *n = ir_at(E->m, r);
    char a[3][NAME_CHARS];
    const char *T = ctype(n->type);
    int ints = n->nargs > 0 && ir_at(E->m, n->args[0])->type == T_INT;
    switch (n->op) {
    case IR_SUM:
    case IR_ANY: hole_sum(E, B, r, n); break;
    case IR_LOAD:
    case IR_INBOUNDS: hole_load(E, B, r, n); break;
    case IR_PARAM: {
        const Decl *d = E->p->attn->params[n->aux];
        if (n->type == T_FLOAT) line(E, B, "float v%d = (float)c->params[%d].f; /* %s */", r, n->aux, d->name);
        else if (n->type == T_INT) line(E, B, "int64_t v%d = c->params[%d].i; /* %s */", r, n->aux, d->name);
        else line(E, B, "int v%d = c->params[%d].i != 0; /* %s */", r, n->aux, d->name);
        break;
    }
    default: {
        if (n->nargs > 3) {
            hole_fail(E, "IR operation '%s' with %d operands", ir_op_name(n->op), n->nargs);
            return;
        }
        for (int i = 0; i < n->nargs; i++) name_of(E, B, n->args[i], a[i]);
        const char *x = a[0], *y = a[1];
        int is_int = n->type == T_INT;
        switch (n->op) {
        case IR_TOFLOAT: line(E, B, "float v%d = (float)%s;", r, x); break;
        case IR_NEG:
            if (is_int) line(E, B, "int64_t v%d = (int64_t)(0 - (uint64_t)%s);", r, x);
            else line(E, B, "float v%d = -%s;", r, x);
            break;
        case IR_NOT: line(E, B, "int v%d = !%s;", r, x); break;
        case IR_ADD:
        case IR_SUB:
        case IR_MUL: {
            const char *op = n->op == IR_ADD ? "+" : n->op == IR_SUB ? "-" : "*";
            if (is_int) line(E, B, "int64_t v%d = (int64_t)((uint64_t)%s %s (uint64_t)%s);", r, x, op, y);
            else line(E, B, "float v%d = %s %s %s;", r, x, op, y);
            break;
        }
        case IR_DIV:
            if (is_int) line(E, B, "int64_t v%d = attnc_floordiv(%s, %s);", r, x, y);
            else line(E, B, "float v%d = %s / %s;", r, x, y);
            break;
        case IR_MOD:
            if (is_int) line(E, B, "int64_t v%d = attnc_floormod(%s, %s);", r, x, y);
            else line(E, B, "float v%d = attnc_fmod_floor(%s, %s);", r, x, y);
            break;
        case IR_LT: line(E, B, "int v%d = %s < %s;", r, x, y); break;
        case IR_LE: line(E, B, "int v%d = %s <= %s;", r, x, y); break;
        case IR_EQ: line(E, B, "int v%d = %s == %s;", r, x, y); break;
        case IR_NE: line(E, B, "int v%d = %s != %s;", r, x, y); break;
        /* bools are 0 or 1 and every operand is total: no need to short-circuit */
        case IR_AND: line(E, B, "int v%d = %s & %s;", r, x, y); break;
        case IR_OR: line(E, B, "int v%d = %s | %s;", r, x, y); break;
        case IR_SELECT: line(E, B, "%s v%d = %s ? %s : %s;", T, r, x, y, a[2]); break;
        case IR_ABS:
            if (is_int) line(E, B, "int64_t v%d = %s < 0 ? (int64_t)(0 - (uint64_t)%s) : %s;", r, x, x, x);
            else line(E, B, "float v%d = fabsf(%s);", r, x);
            break;
        /* exactly ir_apply's comparisons, NaN included (fminf would differ) */
        case IR_MIN: line(E, B, "%s v%d = %s < %s ? %s : %s;", T, r, x, y, x, y); break;
        case IR_MAX: line(E, B, "%s v%d = %s > %s ? %s : %s;", T, r, x, y, x, y); break;
        case IR_CALL:
            if (n->aux == FN_INT) {
                if (ints) line(E, B, "int64_t v%d = %s;", r, x);
                else line(E, B, "int64_t v%d = attnc_float_to_int(%s);", r, x);
            } else if (fn_c_name(n->aux)) {
                if (n->nargs == 2) line(E, B, "float v%d = %s(%s, %s);", r, fn_c_name(n->aux), x, y);
                else line(E, B, "float v%d = %s(%s);", r, fn_c_name(n->aux), x);
            } else {
                hole_fail(E, "built-in function '%s' has no C form", fn_name((Fn)n->aux));
            }
            break;
        default: hole_fail(E, "IR operation '%s' has no C form", ir_op_name(n->op));
        }
    }
    }
    add_local(E, B, r);
}

static int cmp_ref(const void *a, const void *b) { return *(const IrRef *)a - *(const IrRef *)b; }

/* Make node `root` readable from block B at its current scope: emit, in
 * topological order, every node it depends on that B computes here (and,
 * through the blocks that own them, the outer values it reads). */
static void need(CEmit *E, Block *B, IrRef root) {
    if (failed(E) || root == IR_NONE) return;
    int cap = 64, nstack = 0, nlist = 0, lcap = 64;
    IrRef *stack = malloc(sizeof(IrRef) * (size_t)cap), *list = malloc(sizeof(IrRef) * (size_t)lcap);
    if (!stack || !list) {
        free(stack);
        free(list);
        E->nomem = 1;
        return;
    }
    if (++B->stamp == 0) { /* wrapped: clear the stamps */
        memset(B->seen, 0, sizeof(unsigned) * (size_t)(E->m->n + 1));
        B->stamp = 1;
    }
    stack[nstack++] = root;
    while (nstack > 0 && !failed(E)) {
        IrRef r = stack[--nstack];
        if (B->seen[r] == B->stamp) continue;
        B->seen[r] = B->stamp;
        const IrNode *n = ir_at(E->m, r);
        if (is_inline(n) || B->avail[r]) continue;
        Block *o = owner(E, B, n);
        if (!o) {
            hole_fail(E, "a %s value is needed in the %s loop", plan_level_name(base_level(n)), plan_level_name(B->level));
            break;
        }
        if (o != B) { /* an outer loop's value */
            need(E, o, r);
            if (o == &E->row || o == &E->col) export_to_slot(E, o, r);
            continue;
        }
        if ((n->sumvars & ~B->open) == 0) { /* computable at this scope */
            if (nlist == lcap) {
                IrRef *l = realloc(list, sizeof(IrRef) * (size_t)(lcap *= 2));
                if (!l) {
                    E->nomem = 1;
                    break;
                }
                list = l;
            }
            list[nlist++] = r;
        }
        /* operands (a sum's body too: what it reads outside its loop is hoisted here) */
        if (nstack + n->nargs > cap) {
            cap = (nstack + n->nargs) * 2;
            IrRef *s = realloc(stack, sizeof(IrRef) * (size_t)cap);
            if (!s) {
                E->nomem = 1;
                break;
            }
            stack = s;
        }
        for (int i = 0; i < n->nargs; i++) stack[nstack++] = n->args[i];
    }
    if (nstack > 0 && !failed(E)) E->nomem = 1;
    qsort(list, (size_t)nlist, sizeof(IrRef), cmp_ref);
    for (int i = 0; i < nlist && !failed(E); i++)
        if (!B->avail[list[i]]) emit_one(E, B, list[i]);
    free(stack);
    free(list);
}

/* need + name_of. */
static void value(CEmit *E, Block *B, IrRef r, char *out) {
    need(E, B, r);
    name_of(E, B, r, out);
}

/* ---- the holes ---------------------------------------------------------- */

/* Low-rank counts (call level): lowrank_n<g> and, in the kernel, lowrank_at<g>. */
static void emit_lowrank_counts(CEmit *E, Block *B, int with_offsets) {
    const IrFunc *f = E->p->f;
    for (int g = 0; g < f->nlowrank; g++) {
        char count[NAME_CHARS];
        value(E, B, f->lowrank_count[g], count);
        line(E, B, "const int64_t lowrank_n%d = %s > 0 ? %s : 0;", g, count, count);
        if (with_offsets) line(E, B, "const int64_t lowrank_at%d = lowrank_cols;", g);
        line(E, B, "lowrank_cols += lowrank_n%d;", g);
    }
    if (f->nlowrank) {
        /* a count no tensor could hold: fail the call (the interpreter gives the answer) rather than overflow */
        if (with_offsets) line(E, B, "if (lowrank_cols > ATTNC_MAX_LOWRANK_COLS) return 1;");
        else line(E, B, "if (lowrank_cols > ATTNC_MAX_LOWRANK_COLS) return (int64_t)1 << 40;");
    }
}

/* Low-rank columns of one row (side q) or one key (side k). */
static void emit_lowrank_columns(CEmit *E, Block *B, int q_side) {
    const IrFunc *f = E->p->f;
    for (int g = 0; g < f->nlowrank; g++) {
        IrRef col = q_side ? f->lowrank_q[g] : f->lowrank_k[g];
        char v[NAME_CHARS];
        need(E, B, col); /* at the row (or kv) scope: everything that does not read r */
        line(E, B, "for (int64_t r0 = 0; r0 < lowrank_n%d; r0++) {", g);
        int mark = open_loop(B, 0);
        value(E, B, col, v);
        if (q_side) line(E, B, "sc.qlr[i * lowrank_cols + lowrank_at%d + r0] = %s;", g, v);
        else line(E, B, "sc.klr[(lowrank_at%d + r0) * ATTNC_BK + j] = %s;", g, v);
        close_loop(B, 0, mark);
        line(E, B, "}");
    }
}

/* The element code for one tile mode: elem_fault, elem_keep, elem_value. */
static void emit_element(CEmit *E, int partial) {
    const Plan *p = E->p;
    const IrFunc *f = p->f;
    Block *B = &E->elem;
    char v[NAME_CHARS], scale[NAME_CHARS], bias[NAME_CHARS];
    block_reset(B, E->m->n);
    E->pre_ready = 0;
    if (partial && p->needs_mask) {
        value(E, B, f->keep, v);
        line(E, B, "elem_keep = %s;", v);
    }
    value(E, B, f->scale, scale);
    value(E, B, f->bias, bias);
    int no_bias = ir_at(E->m, f->bias)->op == IR_CONST && ir_at(E->m, f->bias)->c.f == 0;
    line(E, B, "const float pre = %s * srow[j]%s%s%s;", scale, no_bias ? "" : " + ", no_bias ? "" : bias,
         f->nlowrank ? " + lrow[j]" : "");
    line(E, B, "(void)pre;");
    E->pre_ready = 1;
    if (p->needs_fault) {
        /* after `pre`: a fault under a `?:` whose condition reads the score reads it too.  In its
         * own scope: what only the fault check needs is not computed when the call skips it. */
        line(E, B, "if (check_faults) {");
        int mark = open_scope(B);
        value(E, B, f->fault, v);
        line(E, B, "elem_fault = %s;", v);
        close_scope(B, mark);
        line(E, B, "}");
    }
    if (p->softmax) {
        value(E, B, f->score, v);
        line(E, B, "elem_value = %s * ATTNC_LOG2E;", v);
    } else {
        value(E, B, f->weight, v);
        line(E, B, "elem_value = %s;", v);
    }
}

static void emit_holes(CEmit *E) {
    const IrFunc *f = E->p->f;
    emit_lowrank_counts(E, &E->scratch, 0);
    emit_lowrank_counts(E, &E->head, 1);
    emit_lowrank_columns(E, &E->row, 1);
    if (f->lse_offset != IR_NONE) {
        char v[NAME_CHARS];
        value(E, &E->row, f->lse_offset, v);
        line(E, &E->row, "sc.lse_off[i] = %s;", v);
    }
    emit_lowrank_columns(E, &E->col, 0);
    /* the element code goes last: it adds the row and kv values it reads */
    emit_element(E, 1);
    E->elem_partial = E->elem.text;
    memset(&E->elem.text, 0, sizeof E->elem.text);
    emit_element(E, 0);
    E->elem_full = E->elem.text;
    memset(&E->elem.text, 0, sizeof E->elem.text);
}

/* ---- the entry points --------------------------------------------------- */

/* Move the text out of a StrBuf, leaving it empty. */
static StrBuf take_text(StrBuf *from) {
    StrBuf t = *from;
    memset(from, 0, sizeof *from);
    return t;
}

attnc_status cemit_holes(const Plan *p, CEmitHoles *h, attnc_error *err) {
    memset(h, 0, sizeof *h);
    CEmit E;
    memset(&E, 0, sizeof E);
    E.p = p;
    E.m = p->ir;
    int nodes = p->ir->n;
    E.in_slot = calloc((size_t)nodes + 1, 1);
    int ok = E.in_slot && block_init(&E.head, LV_HEAD, nodes) && block_init(&E.row, LV_ROW, nodes) &&
             block_init(&E.col, LV_COL, nodes) && block_init(&E.elem, LV_ELEM, nodes) &&
             block_init(&E.scratch, LV_CALL, nodes);
    if (!ok) E.nomem = 1;
    if (!failed(&E)) emit_holes(&E);
    E.nomem |= E.head.text.failed | E.row.text.failed | E.col.text.failed | E.scratch.text.failed |
               E.elem_partial.failed | E.elem_full.failed | E.slots.failed;
    attnc_status st = ATTNC_OK;
    if (E.nomem) st = set_error(err, ATTNC_ERR_NOMEM, "out of memory while emitting C");
    else if (E.why[0])
        st = set_error(err, ATTNC_ERR_INTERNAL, "cannot emit C for attention '%s': %s", p->attn->name, E.why);
    h->scratch = take_text(&E.scratch.text);
    h->head = take_text(&E.head.text);
    h->slots = take_text(&E.slots);
    h->row = take_text(&E.row.text);
    h->col = take_text(&E.col.text);
    h->elem_partial = take_text(&E.elem_partial);
    h->elem_full = take_text(&E.elem_full);
    h->nrow_slots = E.nrow_slots;
    h->ncol_slots = E.ncol_slots;
    block_free(&E.head);
    block_free(&E.row);
    block_free(&E.col);
    block_free(&E.elem);
    block_free(&E.scratch);
    free(E.in_slot);
    return st;
}

void cemit_holes_free(CEmitHoles *h) {
    StrBuf *all[] = {&h->scratch, &h->head, &h->slots, &h->row, &h->col, &h->elem_partial, &h->elem_full};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) sb_free(all[i]);
    memset(h, 0, sizeof *h);
}
