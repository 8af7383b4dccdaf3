/* ir.h — the expression IR: a typed, hash-consed DAG of the per-element
 * computation of one attention, with lets inlined and `use`s resolved.
 *
 * Every operation is total, so backends may evaluate any node eagerly (in
 * vector lanes, whole tiles): a load whose indices are out of range yields 0,
 * an int division or modulo by zero yields 0.  What the spec calls a runtime
 * error is expressed separately, as the bool root `fault`, built so that it
 * is true exactly where lazy evaluation (spec 5.3) would raise one.
 *
 * Nodes are numbered in creation order, so operands always have smaller
 * numbers than their users: a walk from 0 upwards is a topological order.
 * Passes create at most one node per argument list, so that the numbering
 * (and the dumps tests compare) does not depend on the C compiler's order of
 * evaluating arguments. */
#ifndef ATTNC_IR_H
#define ATTNC_IR_H
#include "sema.h"
#include "strbuf.h"

typedef int IrRef; /* index of a node; IR_NONE for none */
#define IR_NONE (-1)

typedef enum IrOp {
    IR_CONST,  /* c */
    IR_VAR,    /* aux: a BuiltinVar (b, h, q, kv, hk, sizes) */
    IR_PARAM,  /* aux: the param's index in the attention */
    IR_PRE,    /* float: the element's score before score clauses: scale * dot + bias + low-rank terms */
    IR_SUMVAR, /* int: the variable of the enclosing sum of level aux */
    IR_TOFLOAT,
    IR_NEG, IR_NOT,
    IR_ADD, IR_SUB, IR_MUL,
    IR_DIV, IR_MOD, /* floor semantics on ints; x/0 and x%0 give 0 on ints */
    IR_LT, IR_LE, IR_EQ, IR_NE, /* a > b is built as b < a */
    IR_AND, IR_OR,
    IR_SELECT, /* args: cond, then, else */
    IR_ABS, IR_MIN, IR_MAX,
    IR_CALL,   /* aux: an Fn (exp, exp2, log, log2, sqrt, tanh, sigmoid, erf, pow, floor, ceil, int, sign) */
    IR_LOAD,   /* aux: tensor index; args: one int index per dimension; out of range gives 0 */
    IR_INBOUNDS, /* bool, aux: tensor index; args: the indices; true when all are in range */
    IR_SUM,    /* aux: level; args: bound, body */
    IR_ANY,    /* bool, aux: level; args: bound, body: is body true for some r < bound */
    IR_DIAG,   /* args: body, a value that depends on (q, kv) only through kv - q (aux DIAG_DISTANCE), or
                * only through their grid cells' offsets (aux DIAG_GRID, the block-order plan; pass_toeplitz.c);
                * its value is the body's.  The schedule computes the body once per distance kv - q (per
                * offset) of a tile (the diag block) and the element reads it there (schedule.h, SB_DIAG) */
    IR_OP_COUNT
} IrOp;

/* IR_DIAG's aux: what its body is a function of. */
enum { DIAG_DISTANCE = 0, DIAG_GRID = 1 };

/* What a node varies with: sema's DEP_* bits plus these. */
/* DEP_HK: the kv head (`hk`), apart from the query head: the query heads a
 * packed work item holds (schedule.h, pack_heads) share their kv head. */
enum { DEP_PRE = DEP_SCORE, DEP_SUMVAR = 1 << 8, DEP_HK = 1 << 9 };

typedef struct IrNode {
    IrOp op;
    Type type;
    int aux;
    Const c;
    int nargs;
    IrRef *args;
    int deps;        /* DEP_SUMVAR set when sumvars != 0 */
    unsigned sumvars; /* sum levels whose variable this reads and no sum inside binds (bit 31: level >= 31) */
    unsigned hash;
} IrNode;

typedef struct IrModule {
    Arena *arena;
    IrNode *nodes;
    int n, cap;
    IrRef *table; /* open-addressing hash table of node indices */
    int table_cap;
    int failed;   /* out of memory */
    const Attention *attn; /* for names of params and tensors */
} IrModule;

/* The roots of one attention's element computation.  For a kept element:
 *   pre   = scale * dot(Q[b,h,q,:], K[b,hk,kv,:]) + bias + low-rank terms
 *   score = the score clauses applied to pre (reads IR_PRE)
 *   p     = weight (reads IR_PRE through score) or softmax of score. */
typedef struct IrFunc {
    IrRef keep;   /* bool: every mask holds */
    IrRef scale;  /* float, per call: the factor of the dot product */
    IrRef bias;   /* float: the sum of the bias clauses (never reads the score) */
    IrRef score;  /* float: the final score; IR_PRE itself when there are no score clauses */
    IrRef weight; /* float: the `weight` clause, or IR_NONE for softmax */
    IrRef fault;  /* bool: lazy evaluation of this element raises a runtime error */
    IrRef lse_offset; /* float, per row: added to LSE after a softmax-invariant rewrite, or IR_NONE */
    /* Low-rank bias terms moved into the QK product (FlashBias, pass_lowrank.c):
     * group g adds sum(r < lowrank_count[g]) lowrank_q[g](q, r) * lowrank_k[g](kv, r)
     * to the score before any score clause; r is IR_SUMVAR of level 0. */
    int nlowrank;
    IrRef *lowrank_count, *lowrank_q, *lowrank_k;
    /* Version 2 (spec 9.3, 9.4), applied around the element computation:
     * rotary's arguments (per call: int dims, float base, bool interleaved),
     * each query row's position (int over b, h, q) and each key's (int over
     * b, hk, kv), each row's sink (float over b, h, q), IR_NONE when the
     * attention has none; each *_fault is the bool of its lazy evaluation
     * raising a runtime error. */
    IrRef rope_dims, rope_base, rope_interleaved, rope_fault;
    IrRef qpos, qpos_fault, kvpos, kvpos_fault;
    IrRef sink, sink_fault;
} IrFunc;

/* Module lifetime: all memory comes from `arena`. */
IrModule *ir_new(Arena *arena, const Attention *attn);

/* The unique node (op, type, aux, c, args): equal requests give equal refs. */
IrRef ir_node(IrModule *m, IrOp op, Type type, int aux, Const c, int nargs, const IrRef *args);

/* Shorthands. */
IrRef ir_int(IrModule *m, int64_t v);
IrRef ir_float(IrModule *m, double v);
IrRef ir_bool(IrModule *m, int v);
IrRef ir_var(IrModule *m, int var);
IrRef ir_op1(IrModule *m, IrOp op, Type type, IrRef a);
IrRef ir_op2(IrModule *m, IrOp op, Type type, IrRef a, IrRef b);
IrRef ir_op3(IrModule *m, IrOp op, Type type, IrRef a, IrRef b, IrRef c);

static inline const IrNode *ir_at(const IrModule *m, IrRef r) { return &m->nodes[r]; }
static inline int ir_is_const(const IrModule *m, IrRef r) { return r != IR_NONE && m->nodes[r].op == IR_CONST; }
/* Whether r is the bool constant v. */
int ir_is_bool(const IrModule *m, IrRef r, int v);

const char *ir_op_name(IrOp op);

/* A rewrite: for each node (in topological order) a function may return a
 * replacement built from the already-rewritten operands.  ir_rewrite applies
 * it to every root of f and returns how many roots changed. */
typedef IrRef (*IrRewriteFn)(IrModule *m, IrRef old, const IrNode *n, const IrRef *new_args, void *ctx);
int ir_rewrite(IrModule *m, IrFunc *f, IrRewriteFn fn, void *ctx);
/* The same for one root; returns its replacement. */
IrRef ir_rewrite_root(IrModule *m, IrRef root, IrRewriteFn fn, void *ctx);

/* The terms of a sum: flattens ADD (and SUB/NEG as negated terms) below r
 * into out (at most max); returns the count, or -1 when there are more. */
int ir_terms(IrModule *m, IrRef r, IrRef *out, int max);

/* Rebuild node `old` with new operands, unchanged otherwise. */
IrRef ir_rebuild(IrModule *m, const IrNode *n, const IrRef *new_args);

/* Print the nodes reachable from f's roots and the roots themselves. */
void ir_print(const IrModule *m, const IrFunc *f, StrBuf *out);
/* Print the nodes reachable from roots[0..n) (IR_NONE entries skipped), in node order. */
void ir_print_nodes(const IrModule *m, const IrRef *roots, int nroots, StrBuf *out);

#endif
