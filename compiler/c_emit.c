/* c_emit.c — a kernel plan as C: IR + plan -> one self-contained C99
 * translation unit.
 *
 * Requires: a Plan (plan.h) whose IR has been through the middle end; the
 * template templates/tile.c and runtime/kernel_abi.h, embedded in the
 * library at build time (cmake/embed.cmake).
 *
 * Produces text in four parts:
 *   1. the header of the ahead-of-time entry point (NAME_args and
 *      NAME_attention) between CEMIT_HEADER_BEGIN and CEMIT_HEADER_END; when
 *      ATTNC_JIT is defined (libtcc) a few typedefs stand in for it, so the
 *      JIT needs no system header;
 *   2. kernel_abi.h (AttnCall), declarations of the libm functions the code
 *      calls, helpers with the IR's total semantics (floor division and
 *      modulo with x/0 = 0, saturating int(), Python-style float %), and the
 *      dense loops of templates/dense.c (only their prototypes under
 *      ATTNC_JIT: the JIT binds them to libattnc's vectorised copies);
 *   3. the template with its holes filled.  Each IR node becomes one typed
 *      local (int64_t, float, or int for bool), computed in the loop of its
 *      level (plan_level): call and (b, h) values once per work item, row
 *      values once per row, kv values once per column of each visited tile,
 *      element values per element.  A value read by a deeper loop travels
 *      through a scratch array ("slot", indexed by row or column in the
 *      tile).  Sums become for loops; what a sum's body computes without
 *      its variable is hoisted out of the loop.  Int arithmetic goes through
 *      uint64_t, so it wraps without undefined behaviour; loads compare
 *      their indices with the bound tensor's shape and read 0 outside it
 *      (the plan's `fault` value reports the error where the spec has one);
 *   4. the entry point, which runs every work item on the calling thread
 *      (not under ATTNC_JIT).
 *
 * The generated kernel computes what runtime/plan_run.c (refplan) computes,
 * in float32 instead of float64.  Node emission is iterative (an explicit
 * stack, then the nodes in index order, which is topological), so long
 * chains of masks or lets do not recurse deeply here. */
#include "c_emit.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const char attnc_tile_template[];
extern const unsigned long attnc_tile_template_len;
extern const char attnc_dense_template[];
extern const unsigned long attnc_dense_template_len;
extern const char attnc_kernel_abi_text[];
extern const unsigned long attnc_kernel_abi_text_len;

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

static void fail(CEmit *E, const char *fmt, ...) {
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
        fail(E, "a generated line is too long");
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
        if (!E->pre_ready || B != &E->elem) fail(E, "the score is read before it is computed");
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
static void emit_load(CEmit *E, Block *B, IrRef r, const IrNode *n) {
    char idx[ATTNC_MAX_RANK][NAME_CHARS], cond[LINE_CHARS / 2] = "", off[LINE_CHARS / 2] = "";
    if (n->nargs < 1 || n->nargs > ATTNC_MAX_RANK) {
        fail(E, "a tensor access with %d indices", n->nargs);
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
        fail(E, "a tensor access is too long to print");
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
static void emit_sum(CEmit *E, Block *B, IrRef r, const IrNode *n) {
    char bound[NAME_CHARS], body[NAME_CHARS];
    int level = n->aux;
    if (level < 0 || level > MAX_SUM_LEVEL) {
        fail(E, "sums nested %d deep (the C emitter handles %d)", level + 1, MAX_SUM_LEVEL + 1);
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
    case IR_ANY: emit_sum(E, B, r, n); break;
    case IR_LOAD:
    case IR_INBOUNDS: emit_load(E, B, r, n); break;
    case IR_PARAM: {
        const Decl *d = E->p->attn->params[n->aux];
        if (n->type == T_FLOAT) line(E, B, "float v%d = (float)c->params[%d].f; /* %s */", r, n->aux, d->name);
        else if (n->type == T_INT) line(E, B, "int64_t v%d = c->params[%d].i; /* %s */", r, n->aux, d->name);
        else line(E, B, "int v%d = c->params[%d].i != 0; /* %s */", r, n->aux, d->name);
        break;
    }
    default: {
        if (n->nargs > 3) {
            fail(E, "IR operation '%s' with %d operands", ir_op_name(n->op), n->nargs);
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
                fail(E, "built-in function '%s' has no C form", fn_name((Fn)n->aux));
            }
            break;
        default: fail(E, "IR operation '%s' has no C form", ir_op_name(n->op));
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
            fail(E, "a %s value is needed in the %s loop", plan_level_name(base_level(n)), plan_level_name(B->level));
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

/* ---- the translation unit ----------------------------------------------- */

/* Which params the kernel reads (after -D specialisation folded the fixed ones). */
static void params_read(CEmit *E, char *used) {
    const IrModule *m = E->m;
    const IrFunc *f = E->p->f;
    char *live = calloc((size_t)m->n + 1, 1);
    if (!live) {
        E->nomem = 1;
        return;
    }
    IrRef roots[] = {f->keep, f->scale, f->bias, f->score, f->weight, f->fault, f->lse_offset};
    for (size_t i = 0; i < sizeof roots / sizeof roots[0]; i++)
        if (roots[i] != IR_NONE) live[roots[i]] = 1;
    for (int g = 0; g < f->nlowrank; g++) live[f->lowrank_count[g]] = live[f->lowrank_q[g]] = live[f->lowrank_k[g]] = 1;
    for (int i = m->n - 1; i >= 0; i--) {
        if (!live[i]) continue;
        for (int a = 0; a < m->nodes[i].nargs; a++) live[m->nodes[i].args[a]] = 1;
        if (m->nodes[i].op == IR_PARAM) used[m->nodes[i].aux] = 1;
    }
    free(live);
}

static void emit_header(const CEmit *E, const char *used, StrBuf *out) {
    const Attention *a = E->p->attn;
    const char *N = a->name;
    sb_printf(out, "%s\n", CEMIT_HEADER_BEGIN);
    sb_printf(out,
              "/* %s.h: attention %s, compiled ahead of time by attnc %s (generated: do not edit).\n"
              " *\n"
              " * Add %s.c to a C99 build (link with -lm) and call\n"
              " *\n"
              " *     %s_args a = {0};\n"
              " *     a.B = ...; a.H = ...; a.Hkv = ...; a.Lq = ...; a.Lk = ...; a.D = ...; a.Dv = ...;\n"
              " *     a.q = Q; a.k = K; a.v = V; a.o = O; a.lse = LSE;  (LSE may be NULL)\n"
              " *     ... the param_ and tensor_/shape_ fields below ...\n"
              " *     int status = %s_attention(&a);\n"
              " *\n"
              " * Arrays are float32, row-major and contiguous: Q[B,H,Lq,D], K[B,Hkv,Lk,D],\n"
              " * V[B,Hkv,Lk,Dv], O[B,H,Lq,Dv], LSE[B,H,Lq]; tensors are row-major with the\n"
              " * shape given in shape_NAME (the shape the spec declares).  Query head h\n"
              " * reads key/value head h / (H / Hkv).\n"
              " *\n"
              " * %s_attention runs every (batch, head, %d-row query tile) on the calling\n"
              " * thread and keeps no state, so several threads may call it at once.  It\n"
              " * has no tile map (libattnc classifies tiles per call and skips those the\n"
              " * masks prove empty): it evaluates the masks on every tile, which gives\n"
              " * the same result with more work.\n"
              " *\n"
              " * Returns 0 when O and LSE are written; 1 on a runtime error of the spec\n"
              " * (a tensor index out of range or an int division by zero where the spec\n"
              " * evaluates it; O and LSE are then unspecified; libattnc's interpreter\n"
              " * names the element); 2 when the sizes or pointers are invalid (negative,\n"
              " * H not a multiple of Hkv); 3 when out of memory. */\n",
              N, N, attnc_version(), N, N, N, N, E->p->bq);
    sb_printf(out, "#ifndef ATTNC_%s_H\n#define ATTNC_%s_H\n#include <stdint.h>\n\n", N, N);
    sb_printf(out, "typedef struct %s_args {\n", N);
    sb_printf(out, "    int64_t B, H, Hkv, Lq, Lk, D, Dv;\n");
    sb_printf(out, "    const float *q, *k, *v;\n");
    sb_printf(out, "    float *o, *lse;\n");
    for (int i = 0; i < a->nparams; i++) {
        if (!used[i]) continue;
        const Decl *d = a->params[i];
        char def[80] = "";
        if (d->init && d->init->kind == X_CONST && !(d->init->deps & (DEP_SIZE | DEP_PARAM))) {
            if (d->type == T_INT) snprintf(def, sizeof def, ", default %lld", (long long)d->init->c.i);
            else if (d->type == T_FLOAT) snprintf(def, sizeof def, ", default %.17g", d->init->c.f);
            else snprintf(def, sizeof def, ", default %s", d->init->c.b ? "1" : "0");
        }
        sb_printf(out, "    %s param_%s; /* %s param %s%s%s */\n",
                  d->type == T_INT ? "int64_t" : d->type == T_FLOAT ? "double" : "int", d->name, type_name(d->type),
                  d->name, def, d->type == T_BOOL ? " (0 or 1)" : "");
    }
    for (int i = 0; i < a->ntensors; i++) {
        const Decl *t = a->tensors[i];
        sb_printf(out, "    const %s *tensor_%s; /* %s tensor %s of rank %d */\n", t->type == T_INT ? "int32_t" : "float",
                  t->name, type_name(t->type), t->name, t->ndims);
        sb_printf(out, "    int64_t shape_%s[%d];\n", t->name, t->ndims);
    }
    sb_printf(out, "} %s_args;\n\n", N);
    sb_printf(out, "/* O and LSE of attention %s for the call `args` describes: 0 ok, 1 runtime\n"
                   " * error of the spec, 2 invalid sizes or pointers, 3 out of memory. */\n", N);
    sb_printf(out, "int %s_attention(const %s_args *args);\n\n#endif\n%s\n", N, N, CEMIT_HEADER_END);
}

static const char jit_types[] =
    "/* the JIT compiles without system headers: the types stdint.h would give */\n"
    "typedef signed char int8_t;\ntypedef short int16_t;\ntypedef int int32_t;\ntypedef long long int64_t;\n"
    "typedef unsigned char uint8_t;\ntypedef unsigned short uint16_t;\ntypedef unsigned int uint32_t;\n"
    "typedef unsigned long long uint64_t;\n";

/* libm, as the generated code declares it (the JIT binds these names). */
static const char libm_declarations[] =
    "/* libm (bound to the host's functions by the JIT) */\n"
    "float expf(float);\nfloat exp2f(float);\nfloat logf(float);\nfloat log2f(float);\nfloat sqrtf(float);\n"
    "float tanhf(float);\nfloat erff(float);\nfloat powf(float, float);\nfloat floorf(float);\nfloat ceilf(float);\n"
    "float fmodf(float, float);\nfloat fabsf(float);\n"
    "\n"
    "static inline float attnc_inf(void) {\n"
    "    union { uint32_t u; float f; } x;\n"
    "    x.u = 0x7f800000u;\n"
    "    return x.f;\n"
    "}\n";

/* Helpers with the IR's total semantics, each emitted only where the code
 * calls it (compilers warn about unused static functions). */
static const struct {
    const char *name, *text;
} helpers[] = {
    {"attnc_nan(",
     "static inline float attnc_nan(void) {\n"
     "    union { uint32_t u; float f; } x;\n"
     "    x.u = 0x7fc00000u;\n"
     "    return x.f;\n"
     "}\n"},
    {"attnc_floordiv(",
     "/* int / floors like Python; x / 0 = 0; INT64_MIN / -1 wraps */\n"
     "static inline int64_t attnc_floordiv(int64_t a, int64_t b) {\n"
     "    if (b == 0) return 0;\n"
     "    if (b == -1) return (int64_t)(0 - (uint64_t)a);\n"
     "    int64_t q = a / b;\n"
     "    if (a % b != 0 && ((a < 0) != (b < 0))) q--;\n"
     "    return q;\n"
     "}\n"},
    {"attnc_floormod(",
     "/* int % takes the sign of the divisor, like Python; x % 0 = 0 */\n"
     "static inline int64_t attnc_floormod(int64_t a, int64_t b) {\n"
     "    if (b == 0 || b == -1) return 0;\n"
     "    int64_t r = a % b;\n"
     "    if (r != 0 && ((r < 0) != (b < 0))) r += b;\n"
     "    return r;\n"
     "}\n"},
    {"attnc_fmod_floor(",
     "/* float % takes the sign of the divisor, like Python */\n"
     "static inline float attnc_fmod_floor(float a, float b) {\n"
     "    float r = fmodf(a, b);\n"
     "    if (r != 0 && ((r < 0) != (b < 0))) r += b;\n"
     "    return r;\n"
     "}\n"},
    {"attnc_float_to_int(",
     "/* int(x): truncates, saturates at the int64 range, NaN gives 0 */\n"
     "static inline int64_t attnc_float_to_int(float x) {\n"
     "    if (x != x) return 0;\n"
     "    if (x >= 9223372036854775808.0f) return (int64_t)9223372036854775807LL;\n"
     "    if (x < -9223372036854775808.0f) return (int64_t)(-9223372036854775807LL - 1);\n"
     "    return (int64_t)x;\n"
     "}\n"},
    {"attnc_sigmoid(", "static inline float attnc_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }\n"},
    {"attnc_sign(", "static inline float attnc_sign(float x) { return x > 0 ? 1.0f : x < 0 ? -1.0f : x; }\n"},
};

/* Whether any hole's code mentions `name`. */
static int code_uses(const CEmit *E, const char *name) {
    const StrBuf *code[] = {&E->head.text, &E->row.text, &E->col.text, &E->scratch.text, &E->elem_partial, &E->elem_full};
    for (size_t i = 0; i < sizeof code / sizeof code[0]; i++)
        if (code[i]->p && strstr(code[i]->p, name)) return 1;
    return 0;
}

void cemit_put_replaced(StrBuf *out, const char *s, size_t len, const char *from, const char *to) {
    size_t fl = strlen(from);
    while (len > 0) {
        const char *hit = NULL;
        for (size_t k = 0; k + fl <= len; k++)
            if (!memcmp(s + k, from, fl)) {
                hit = s + k;
                break;
            }
        size_t n = hit ? (size_t)(hit - s) : len;
        sb_printf(out, "%.*s", (int)n, s);
        if (!hit) break;
        sb_printf(out, "%s", to);
        s += n + fl;
        len -= n + fl;
    }
}

int cemit_fill_template(const char *tmpl, size_t tmpl_len, const StrBuf *const code[CEMIT_NHOLES], const char *name,
                        StrBuf *out) {
    static const char *const holes[CEMIT_NHOLES] = {"/*@SCRATCH@*/", "/*@HEAD@*/",         "/*@SLOTS@*/",
                                                    "/*@ROW@*/",     "/*@COL@*/",          "/*@ELEM_PARTIAL@*/",
                                                    "/*@ELEM_FULL@*/"};
    int filled = 0;
    const char *t = tmpl, *end = t + tmpl_len;
    while (t < end) {
        const char *eol = memchr(t, '\n', (size_t)(end - t));
        size_t len = eol ? (size_t)(eol - t) : (size_t)(end - t);
        size_t indent = strspn(t, " ");
        if (indent > len) indent = len;
        int hole = -1;
        for (int h = 0; h < CEMIT_NHOLES; h++)
            if (len - indent == strlen(holes[h]) && !memcmp(t + indent, holes[h], len - indent)) hole = h;
        if (hole < 0) {
            if (name) cemit_put_replaced(out, t, len, "@NAME@", name);
            else sb_printf(out, "%.*s", (int)len, t);
            sb_printf(out, "\n");
        } else {
            filled++;
            const char *s = code[hole]->p ? code[hole]->p : "";
            while (*s) {
                size_t n = strcspn(s, "\n");
                sb_printf(out, "%*s%.*s\n", (int)indent, "", (int)n, s);
                s += n + (s[n] == '\n');
            }
        }
        t += len + 1;
    }
    return filled == CEMIT_NHOLES;
}

/* templates/tile.c with the holes filled. */
static int fill_template(CEmit *E, StrBuf *out) {
    const StrBuf *const code[CEMIT_NHOLES] = {&E->scratch.text, &E->head.text, &E->slots,       &E->row.text,
                                              &E->col.text,     &E->elem_partial, &E->elem_full};
    return cemit_fill_template(attnc_tile_template, attnc_tile_template_len, code, NULL, out);
}

static void emit_entry(const CEmit *E, const char *used, StrBuf *out) {
    const Attention *a = E->p->attn;
    const char *N = a->name;
    sb_printf(out, "\n#ifndef ATTNC_JIT\n#include <stdlib.h>\n#include <string.h>\n\n");
    sb_printf(out, "int %s_attention(const %s_args *a) {\n", N, N);
    sb_printf(out, "    if (!a || !a->q || !a->k || !a->v || !a->o) return 2;\n"
                   "    if (a->B < 0 || a->H < 0 || a->Hkv <= 0 || a->Lq < 0 || a->Lk < 0 || a->D < 0 || a->Dv < 0 ||\n"
                   "        a->H %% a->Hkv != 0)\n"
                   "        return 2;\n");
    sb_printf(out, "    AttnValue params[%d];\n", a->nparams + 1);
    sb_printf(out, "    const void *tensor_data[%d];\n", a->ntensors + 1);
    sb_printf(out, "    int64_t tensor_shape[%d][ATTNC_ABI_MAX_RANK];\n", a->ntensors + 1);
    sb_printf(out, "    for (int i = 0; i < %d; i++) params[i].i = 0;\n", a->nparams + 1);
    sb_printf(out, "    for (int i = 0; i < %d; i++) {\n"
                   "        tensor_data[i] = (const void *)0;\n"
                   "        for (int d = 0; d < ATTNC_ABI_MAX_RANK; d++) tensor_shape[i][d] = 0;\n"
                   "    }\n", a->ntensors + 1);
    for (int i = 0; i < a->nparams; i++) {
        if (!used[i]) continue;
        const Decl *d = a->params[i];
        if (d->type == T_FLOAT) sb_printf(out, "    params[%d].f = a->param_%s;\n", i, d->name);
        else if (d->type == T_INT) sb_printf(out, "    params[%d].i = a->param_%s;\n", i, d->name);
        else sb_printf(out, "    params[%d].i = a->param_%s != 0;\n", i, d->name);
    }
    for (int i = 0; i < a->ntensors; i++) {
        const Decl *t = a->tensors[i];
        sb_printf(out, "    tensor_data[%d] = a->tensor_%s;\n", i, t->name);
        sb_printf(out, "    for (int d = 0; d < %d; d++) {\n", t->ndims);
        sb_printf(out, "        if (a->shape_%s[d] < 0) return 2;\n", t->name);
        sb_printf(out, "        tensor_shape[%d][d] = a->shape_%s[d];\n    }\n", i, t->name);
    }
    sb_printf(out,
              "    AttnCall c;\n"
              "    memset(&c, 0, sizeof c);\n"
              "    c.B = a->B, c.H = a->H, c.Hkv = a->Hkv, c.Lq = a->Lq, c.Lk = a->Lk, c.D = a->D, c.Dv = a->Dv;\n"
              "    c.q = a->q, c.k = a->k, c.v = a->v, c.o = a->o, c.lse = a->lse;\n"
              "    c.params = params;\n"
              "    c.tensor_data = tensor_data;\n"
              "    c.tensor_shape = (const int64_t(*)[ATTNC_ABI_MAX_RANK])tensor_shape;\n"
              "    c.bq = ATTNC_BQ, c.bk = ATTNC_BK;\n"
              "    c.nqt = (a->Lq + ATTNC_BQ - 1) / ATTNC_BQ, c.nkt = (a->Lk + ATTNC_BK - 1) / ATTNC_BK;\n"
              "    c.row_start = (const int64_t *)0; /* no tile map: every kv tile, masks evaluated */\n"
              "    c.tile_kv = (const int32_t *)0;\n"
              "    c.tile_mode = (const uint8_t *)0;\n"
              "    c.mask_varies_b = 0, c.mask_varies_h = 0;\n"
              "    c.kernel_data = (const void *)0;\n"
              "    c.check_faults = 1;\n"
              "    int64_t bytes = attnc_scratch_bytes(&c);\n"
              "    void *scratch = malloc((size_t)bytes + 64);\n"
              "    if (!scratch) return 3;\n"
              "    int status = 0;\n"
              "    for (int64_t b = 0; b < a->B && !status; b++)\n"
              "        for (int64_t h = 0; h < a->H && !status; h++)\n"
              "            for (int64_t qt = 0; qt < c.nqt && !status; qt++)\n"
              "                status = attnc_tile(&c, b, h, qt, scratch);\n"
              "    free(scratch);\n"
              "    return status;\n"
              "}\n#endif\n");
}

attnc_status cemit_source(const Plan *p, StrBuf *out, attnc_error *err) {
    CEmit E;
    memset(&E, 0, sizeof E);
    E.p = p;
    E.m = p->ir;
    int nodes = p->ir->n;
    char *used = calloc((size_t)p->attn->nparams + 1, 1);
    E.in_slot = calloc((size_t)nodes + 1, 1);
    int ok = used && E.in_slot && block_init(&E.head, LV_HEAD, nodes) && block_init(&E.row, LV_ROW, nodes) &&
             block_init(&E.col, LV_COL, nodes) && block_init(&E.elem, LV_ELEM, nodes) &&
             block_init(&E.scratch, LV_CALL, nodes);
    attnc_status st = ATTNC_OK;
    if (!ok) E.nomem = 1;
    if (!failed(&E)) {
        emit_holes(&E);
        params_read(&E, used);
    }
    if (!failed(&E)) {
        const char *N = p->attn->name;
        sb_printf(out, "/* %s.c: attention %s as a fused, tiled FlashAttention kernel in C99,\n"
                       " * generated by attnc %s from templates/tile.c (do not edit).\n"
                       " * Compiled ahead of time it provides %s_attention (see the header part);\n"
                       " * compiled with ATTNC_JIT defined (attnc's libtcc backend) it provides\n"
                       " * attnc_tile and attnc_scratch_bytes of runtime/kernel_abi.h. */\n",
                  N, N, attnc_version(), N);
        sb_printf(out, "#ifdef ATTNC_JIT\n%s#else\n", jit_types);
        emit_header(&E, used, out);
        sb_printf(out, "#endif\n\n");
        /* the kernel ABI, minus its include: the types come from above */
        const char *abi = attnc_kernel_abi_text, *inc = strstr(abi, "#include <stdint.h>\n");
        if (inc) sb_printf(out, "%.*s%s\n", (int)(inc - abi), abi, inc + strlen("#include <stdint.h>\n"));
        else sb_printf(out, "%s\n", abi);
        sb_printf(out, "%s", libm_declarations);
        for (size_t i = 0; i < sizeof helpers / sizeof helpers[0]; i++)
            if (code_uses(&E, helpers[i].name)) sb_printf(out, "%s", helpers[i].text);
        sb_printf(out, "\n");
        /* the dense loops: compiled here ahead of time; the JIT calls libattnc's -O3 copies */
        sb_printf(out, "#ifdef ATTNC_JIT\n#define ATTNC_DENSE_API\n#define ATTNC_DENSE_PROTOTYPES_ONLY\n#else\n"
                       "#define ATTNC_DENSE_API static inline\n"
                       "#endif\n%.*s\n",
                  (int)attnc_dense_template_len, attnc_dense_template);
        sb_printf(out, "#define ATTNC_BQ %d\n#define ATTNC_BK %d\n#define ATTNC_SOFTMAX %d\n#define ATTNC_LSE_OFFSET %d\n",
                  p->bq, p->bk, p->softmax ? 1 : 0, p->f->lse_offset != IR_NONE ? 1 : 0);
        sb_printf(out, "#define ATTNC_ROW_SLOTS %d\n#define ATTNC_COL_SLOTS %d\n", E.nrow_slots, E.ncol_slots);
        sb_printf(out, "#define ATTNC_LOWRANK %d\n", p->f->nlowrank > 0);
        sb_printf(out, "#define ATTNC_MAX_LOWRANK_COLS (1 << 24)\n");
        sb_printf(out, "#ifdef ATTNC_JIT\n#define ATTNC_LINKAGE\n#else\n#define ATTNC_LINKAGE static\n#endif\n\n");
        if (!fill_template(&E, out)) fail(&E, "the embedded template lacks a hole");
        emit_entry(&E, used, out);
    }
    E.nomem |= E.head.text.failed | E.row.text.failed | E.col.text.failed | E.scratch.text.failed |
               E.elem_partial.failed | E.elem_full.failed | E.slots.failed | out->failed;
    if (E.nomem) st = set_error(err, ATTNC_ERR_NOMEM, "out of memory while emitting C");
    else if (E.why[0])
        st = set_error(err, ATTNC_ERR_INTERNAL, "cannot emit C for attention '%s': %s", p->attn->name, E.why);
    block_free(&E.head);
    block_free(&E.row);
    block_free(&E.col);
    block_free(&E.elem);
    block_free(&E.scratch);
    sb_free(&E.elem_partial);
    sb_free(&E.elem_full);
    sb_free(&E.slots);
    free(E.in_slot);
    free(used);
    return st;
}

/* ---- the holes alone (compiler/cuda_emit.c) ----------------------------- */

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
    if (!failed(&E))
        for (size_t i = 0; i < sizeof helpers / sizeof helpers[0]; i++)
            if (code_uses(&E, helpers[i].name)) sb_printf(&h->helpers, "%s", helpers[i].text);
    E.nomem |= E.head.text.failed | E.row.text.failed | E.col.text.failed | E.scratch.text.failed |
               E.elem_partial.failed | E.elem_full.failed | E.slots.failed | h->helpers.failed;
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
    StrBuf *all[] = {&h->scratch, &h->head, &h->slots, &h->row, &h->col, &h->elem_partial, &h->elem_full, &h->helpers};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) sb_free(all[i]);
    memset(h, 0, sizeof *h);
}
