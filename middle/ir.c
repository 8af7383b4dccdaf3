/* ir.c — the IR module: hash-consed node creation, generic rewriting and
 * printing.  Requires: an arena.  Produces: nodes shared by every pass. */
#include "ir.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const op_names[IR_OP_COUNT] = {
    "const", "var", "param", "pre", "sumvar", "tofloat", "neg", "not", "add", "sub", "mul", "div", "mod",
    "lt", "le", "eq", "ne", "and", "or", "select", "abs", "min", "max", "call", "load", "inbounds", "sum", "any", "diag"};

const char *ir_op_name(IrOp op) { return op < IR_OP_COUNT ? op_names[op] : "?"; }

IrModule *ir_new(Arena *arena, const Attention *attn) {
    IrModule *m = arena_alloc(arena, sizeof *m);
    if (!m) return NULL;
    m->arena = arena;
    m->attn = attn;
    return m;
}

static unsigned hash_node(IrOp op, Type type, int aux, Const c, int nargs, const IrRef *args) {
    unsigned h = 2166136261u;
#define MIX(x) (h = (h ^ (unsigned)(x)) * 16777619u)
    MIX(op);
    MIX(type);
    MIX(aux);
    uint64_t bits;
    memcpy(&bits, &c, sizeof bits);
    MIX(bits);
    MIX(bits >> 32);
    for (int i = 0; i < nargs; i++) MIX(args[i]);
#undef MIX
    return h;
}

static int same_node(const IrNode *n, IrOp op, Type type, int aux, Const c, int nargs, const IrRef *args) {
    if (n->op != op || n->type != type || n->aux != aux || n->nargs != nargs) return 0;
    if (memcmp(&n->c, &c, sizeof c) != 0) return 0;
    for (int i = 0; i < nargs; i++)
        if (n->args[i] != args[i]) return 0;
    return 1;
}

static int grow(IrModule *m) {
    if (m->n == m->cap) {
        int cap = m->cap ? m->cap * 2 : 256;
        IrNode *nodes = arena_alloc(m->arena, sizeof(IrNode) * (size_t)cap);
        if (!nodes) return 0;
        if (m->n) memcpy(nodes, m->nodes, sizeof(IrNode) * (size_t)m->n);
        m->nodes = nodes;
        m->cap = cap;
    }
    if ((m->n + 1) * 2 > m->table_cap) {
        int cap = m->table_cap ? m->table_cap * 2 : 512;
        IrRef *t = arena_alloc(m->arena, sizeof(IrRef) * (size_t)cap);
        if (!t) return 0;
        for (int i = 0; i < cap; i++) t[i] = IR_NONE;
        for (int i = 0; i < m->n; i++) {
            unsigned j = m->nodes[i].hash & (unsigned)(cap - 1);
            while (t[j] != IR_NONE) j = (j + 1) & (unsigned)(cap - 1);
            t[j] = i;
        }
        m->table = t;
        m->table_cap = cap;
    }
    return 1;
}

static int deps_of(const IrModule *m, IrOp op, int aux, int nargs, const IrRef *args) {
    int d = 0;
    for (int i = 0; i < nargs; i++) d |= m->nodes[args[i]].deps;
    switch (op) {
    case IR_VAR:
        return aux == V_B ? DEP_B : aux == V_H ? DEP_H : aux == V_HK ? DEP_HK : aux == V_Q ? DEP_Q : aux == V_KV ? DEP_KV : DEP_SIZE;
    case IR_PARAM: return DEP_PARAM;
    case IR_PRE: return DEP_PRE | DEP_B | DEP_H | DEP_HK | DEP_Q | DEP_KV;
    case IR_SUMVAR: return DEP_SUMVAR;
    case IR_LOAD: return d | DEP_TENSOR;
    case IR_SUM:
    case IR_ANY:
        /* the body's sum variable is bound here, unless the body sits in an outer sum too */
        return d;
    default: return d;
    }
}

IrRef ir_node(IrModule *m, IrOp op, Type type, int aux, Const c, int nargs, const IrRef *args) {
    if (m->failed) return IR_NONE;
    for (int i = 0; i < nargs; i++)
        if (args[i] == IR_NONE) return IR_NONE;
    unsigned h = hash_node(op, type, aux, c, nargs, args);
    if (m->table_cap) {
        for (unsigned j = h & (unsigned)(m->table_cap - 1); m->table[j] != IR_NONE;
             j = (j + 1) & (unsigned)(m->table_cap - 1))
            if (m->nodes[m->table[j]].hash == h && same_node(&m->nodes[m->table[j]], op, type, aux, c, nargs, args))
                return m->table[j];
    }
    if (!grow(m)) {
        m->failed = 1;
        return IR_NONE;
    }
    IrNode *n = &m->nodes[m->n];
    memset(n, 0, sizeof *n);
    n->op = op;
    n->type = type;
    n->aux = aux;
    n->c = c;
    n->nargs = nargs;
    n->hash = h;
    if (nargs) {
        n->args = arena_alloc(m->arena, sizeof(IrRef) * (size_t)nargs);
        if (!n->args) {
            m->failed = 1;
            return IR_NONE;
        }
        memcpy(n->args, args, sizeof(IrRef) * (size_t)nargs);
    }
    n->deps = deps_of(m, op, aux, nargs, args) & ~DEP_SUMVAR;
    unsigned sv = 0;
    if (op == IR_SUMVAR) sv = 1u << (aux < 31 ? aux : 31);
    for (int i = 0; i < nargs; i++) sv |= m->nodes[args[i]].sumvars;
    if ((op == IR_SUM || op == IR_ANY) && aux < 31) sv = (m->nodes[args[1]].sumvars & ~(1u << aux)) | m->nodes[args[0]].sumvars;
    n->sumvars = sv;
    if (sv) n->deps |= DEP_SUMVAR;
    unsigned j = h & (unsigned)(m->table_cap - 1);
    while (m->table[j] != IR_NONE) j = (j + 1) & (unsigned)(m->table_cap - 1);
    m->table[j] = m->n;
    return m->n++;
}

IrRef ir_int(IrModule *m, int64_t v) { return ir_node(m, IR_CONST, T_INT, 0, (Const){.i = v}, 0, NULL); }
IrRef ir_float(IrModule *m, double v) { return ir_node(m, IR_CONST, T_FLOAT, 0, (Const){.f = v}, 0, NULL); }
IrRef ir_bool(IrModule *m, int v) {
    /* all 8 bytes set: nodes are hashed and compared bytewise, and a union
     * initialised through .b leaves the rest unspecified */
    Const c = {.i = 0};
    c.b = v != 0;
    return ir_node(m, IR_CONST, T_BOOL, 0, c, 0, NULL);
}
IrRef ir_var(IrModule *m, int var) { return ir_node(m, IR_VAR, T_INT, var, (Const){0}, 0, NULL); }
IrRef ir_op1(IrModule *m, IrOp op, Type t, IrRef a) { return ir_node(m, op, t, 0, (Const){0}, 1, &a); }
IrRef ir_op2(IrModule *m, IrOp op, Type t, IrRef a, IrRef b) {
    IrRef args[2] = {a, b};
    return ir_node(m, op, t, 0, (Const){0}, 2, args);
}
IrRef ir_op3(IrModule *m, IrOp op, Type t, IrRef a, IrRef b, IrRef c) {
    IrRef args[3] = {a, b, c};
    return ir_node(m, op, t, 0, (Const){0}, 3, args);
}

int ir_is_bool(const IrModule *m, IrRef r, int v) {
    return r != IR_NONE && m->nodes[r].op == IR_CONST && m->nodes[r].type == T_BOOL && m->nodes[r].c.b == (v != 0);
}

IrRef ir_rebuild(IrModule *m, const IrNode *n, const IrRef *new_args) {
    return ir_node(m, n->op, n->type, n->aux, n->c, n->nargs, new_args);
}

/* Rewrite the DAG below root, memoised in map (old ref -> new ref). */
static IrRef rewrite_root(IrModule *m, IrRef root, IrRef *map, IrRewriteFn fn, void *ctx) {
    if (root == IR_NONE) return IR_NONE;
    /* operands are numbered below their users, so one upward sweep suffices */
    int limit = root + 1;
    for (int i = 0; i < limit; i++) {
        if (map[i] != IR_NONE) continue;
        IrNode n = m->nodes[i]; /* a copy: ir_node may move the array */
        IrRef argbuf[16], *args = n.nargs <= 16 ? argbuf : arena_alloc(m->arena, sizeof(IrRef) * (size_t)n.nargs);
        if (!args) return IR_NONE;
        for (int a = 0; a < n.nargs; a++) args[a] = map[n.args[a]];
        IrRef r = fn ? fn(m, i, &n, args, ctx) : IR_NONE;
        map[i] = r != IR_NONE ? r : ir_rebuild(m, &n, args);
        if (m->failed) return IR_NONE;
    }
    return map[root];
}

IrRef ir_rewrite_root(IrModule *m, IrRef root, IrRewriteFn fn, void *ctx) {
    if (root == IR_NONE) return IR_NONE;
    IrRef *map = malloc(sizeof(IrRef) * (size_t)(root + 1));
    if (!map) {
        m->failed = 1;
        return IR_NONE;
    }
    for (int i = 0; i <= root; i++) map[i] = IR_NONE;
    IrRef r = rewrite_root(m, root, map, fn, ctx);
    free(map);
    return r;
}

int ir_rewrite(IrModule *m, IrFunc *f, IrRewriteFn fn, void *ctx) {
    int n0 = m->n;
    IrRef *map = malloc(sizeof(IrRef) * (size_t)(n0 + 1));
    if (!map) {
        m->failed = 1;
        return 0;
    }
    for (int i = 0; i < n0; i++) map[i] = IR_NONE;
    int changed = 0;
    IrRef *roots[] = {&f->keep,      &f->scale,         &f->bias,       &f->score,       &f->weight,
                      &f->fault,     &f->lse_offset,    &f->rope_dims,  &f->rope_base,   &f->rope_interleaved,
                      &f->rope_fault, &f->qpos,         &f->qpos_fault, &f->kvpos,       &f->kvpos_fault,
                      &f->sink,      &f->sink_fault};
    for (size_t i = 0; i < sizeof roots / sizeof roots[0]; i++) {
        IrRef old = *roots[i];
        if (old == IR_NONE || old >= n0) continue;
        *roots[i] = rewrite_root(m, old, map, fn, ctx);
        changed += *roots[i] != old;
    }
    for (int g = 0; g < f->nlowrank; g++) {
        IrRef *rs[] = {&f->lowrank_count[g], &f->lowrank_q[g], &f->lowrank_k[g]};
        for (int i = 0; i < 3; i++) {
            IrRef old = *rs[i];
            if (old == IR_NONE || old >= n0) continue;
            *rs[i] = rewrite_root(m, old, map, fn, ctx);
            changed += *rs[i] != old;
        }
    }
    free(map);
    return changed;
}

/* ---- printing ---------------------------------------------------------- */

/* Where a value can be computed once: the coarsest loop level it varies in. */
static const char *level_name(int deps) {
    if (deps & (DEP_PRE | DEP_SUMVAR)) return deps & DEP_PRE ? "elem" : "sum";
    int q = deps & DEP_Q, kv = deps & DEP_KV;
    if (q && kv) return "elem";
    if (q) return "row";
    if (kv) return "col";
    if (deps & (DEP_B | DEP_H | DEP_HK)) return "head";
    return "call";
}

static void print_node(const IrModule *m, IrRef r, StrBuf *out) {
    const IrNode *n = &m->nodes[r];
    sb_printf(out, "  %%%-4d %-5s %-5s = %s", r, type_name(n->type), level_name(n->deps), ir_op_name(n->op));
    switch (n->op) {
    case IR_CONST:
        if (n->type == T_INT) sb_printf(out, " %lld", (long long)n->c.i);
        else if (n->type == T_FLOAT) sb_printf(out, " %.9g", n->c.f);
        else sb_printf(out, " %s", n->c.b ? "true" : "false");
        break;
    case IR_VAR: sb_printf(out, " %s", builtin_var_name(n->aux)); break;
    case IR_PARAM: sb_printf(out, " %s", m->attn ? m->attn->params[n->aux]->name : "?"); break;
    case IR_CALL: sb_printf(out, " %s", fn_name((Fn)n->aux)); break;
    case IR_LOAD:
    case IR_INBOUNDS: sb_printf(out, " %s", m->attn ? m->attn->tensors[n->aux]->name : "?"); break;
    case IR_SUMVAR:
    case IR_SUM:
    case IR_ANY: sb_printf(out, " level %d", n->aux); break;
    case IR_DIAG: if (n->aux == DIAG_GRID) sb_printf(out, " grid"); break;
    default: break;
    }
    for (int i = 0; i < n->nargs; i++) sb_printf(out, "%s%%%d", i ? ", " : " ", n->args[i]);
    sb_printf(out, "\n");
}

void ir_print_nodes(const IrModule *m, const IrRef *roots, int nroots, StrBuf *out) {
    char *live = calloc((size_t)m->n + 1, 1);
    if (!live) {
        out->failed = 1; /* the caller sees out of memory, not a shorter dump */
        return;
    }
    for (int i = 0; i < nroots; i++)
        if (roots[i] != IR_NONE) live[roots[i]] = 1;
    for (int i = m->n - 1; i >= 0; i--)
        if (live[i])
            for (int a = 0; a < m->nodes[i].nargs; a++) live[m->nodes[i].args[a]] = 1;
    for (int i = 0; i < m->n; i++)
        if (live[i]) print_node(m, i, out);
    free(live);
}

void ir_print(const IrModule *m, const IrFunc *f, StrBuf *out) {
    enum { NMAIN = 17 };
    IrRef roots[NMAIN + 3 * 8];
    int nroots = 0;
    IrRef main_roots[NMAIN] = {f->keep,       f->scale,      f->bias,      f->score,           f->weight,
                               f->fault,      f->lse_offset, f->rope_dims, f->rope_base,       f->rope_interleaved,
                               f->rope_fault, f->qpos,       f->qpos_fault, f->kvpos,          f->kvpos_fault,
                               f->sink,       f->sink_fault};
    for (int i = 0; i < NMAIN; i++) roots[nroots++] = main_roots[i];
    for (int g = 0; g < f->nlowrank && g < 8; g++) {
        roots[nroots++] = f->lowrank_count[g];
        roots[nroots++] = f->lowrank_q[g];
        roots[nroots++] = f->lowrank_k[g];
    }
    ir_print_nodes(m, roots, nroots, out);
    if (out->failed) return;
    static const char *const names[NMAIN] = {"keep",        "scale",      "bias",       "score",
                                             "weight",      "fault",      "lse_offset", "rotary.dims",
                                             "rotary.base", "rotary.interleaved", "rotary.fault", "qpos",
                                             "qpos.fault",  "kvpos",      "kvpos.fault", "sink",
                                             "sink.fault"};
    for (int i = 0; i < NMAIN; i++)
        if (main_roots[i] != IR_NONE) sb_printf(out, "  %s = %%%d\n", names[i], main_roots[i]);
    for (int g = 0; g < f->nlowrank; g++)
        sb_printf(out, "  lowrank[%d] = sum(r < %%%d) %%%d * %%%d\n", g, f->lowrank_count[g], f->lowrank_q[g],
                  f->lowrank_k[g]);
}

static int collect_terms(IrModule *m, IrRef r, int negate, IrRef *out, int n, int max) {
    if (n < 0) return n;
    const IrNode *node = &m->nodes[r];
    if (node->type == T_FLOAT && (node->op == IR_ADD || node->op == IR_SUB)) {
        IrRef a = node->args[0], b = node->args[1];
        int neg_b = node->op == IR_SUB ? !negate : negate;
        n = collect_terms(m, a, negate, out, n, max);
        return collect_terms(m, b, neg_b, out, n, max);
    }
    if (node->type == T_FLOAT && node->op == IR_NEG) return collect_terms(m, node->args[0], !negate, out, n, max);
    if (n == max) return -1;
    out[n] = negate ? ir_op1(m, IR_NEG, T_FLOAT, r) : r;
    return n + 1;
}

int ir_terms(IrModule *m, IrRef r, IrRef *out, int max) { return collect_terms(m, r, 0, out, 0, max); }
