/* test_derive.c — the middle end's derivatives against central finite
 * differences, in double, through the IR evaluator.
 *
 *   test_derive EXAMPLE.attn ...
 *
 * examples: for every attention of the given files, at random kept elements
 *   with random tensors and pre, the backward plan's d value / d pre, and
 *   ir_derive of the value and bias roots by every float load that reads no
 *   sum variable and every top-level float sum, against finite differences
 *   of that node's value (the evaluator's memo holds the perturbed value);
 * hand: hand-built IR covering every operation and function, at random
 *   points, and the spec's points without a derivative (abs at 0, min/max
 *   ties, floor, pow at 0), and the operations that must fail;
 * scatter: grad_eval_scatter for low_rank_bias, relative_bias_1d (every
 *   variant), pair_bias and query_temperature, summed over every kept element
 *   of a small call with random seeds, against finite differences of
 *   sum(g * value + gpre * bias) by each tensor element.
 * Steps are relative (1e-5) and tolerances 1e-5 relative: a missing factor of
 * 2 or a wrong sign fails.  Where the difference quotients at h and h/16
 * disagree (a kink within h), the point is skipped and counted. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"
#include "bind.h"
#include "grad_plan.h"
#include "support.h"

static int fails, passes, kinks;

#define FAIL(...)                                                                                                      \
    do {                                                                                                               \
        fails++;                                                                                                       \
        printf("FAIL ");                                                                                               \
        printf(__VA_ARGS__);                                                                                           \
        printf("\n");                                                                                                  \
    } while (0)

static int close_rel(double got, double want, double scale) {
    if (isnan(got) || isnan(want)) return isnan(got) && isnan(want);
    if (isinf(got) || isinf(want)) return got == want;
    return fabs(got - want) <= 1e-5 * fmax(fabs(got), fabs(want)) + 1e-9 * (1 + fabs(scale));
}

/* root's value with node x held at v (every other node recomputed). */
static double eval_at(IrEval *ev, IrRef root, IrRef x, double v) {
    ir_eval_reset(ev);
    ev->memo[x].f = v;
    ev->stamp[x] = ev->gen;
    return ir_eval(ev, root).f;
}

static double central(IrEval *ev, IrRef root, IrRef x, double x0, double h) {
    return (eval_at(ev, root, x, x0 + h) - eval_at(ev, root, x, x0 - h)) / (2 * h);
}

/* d root / d x (the node dx) at the evaluator's point against finite differences; label names the case. */
static void check_fd(IrEval *ev, IrRef root, IrRef x, IrRef dx, const char *label) {
    ir_eval_reset(ev);
    double x0 = ir_eval(ev, x).f, f0 = ir_eval(ev, root).f, an = ir_eval(ev, dx).f;
    if (!isfinite(f0) || !isfinite(x0)) return;
    double h = 1e-5 * fmax(1.0, fabs(x0));
    double fd = central(ev, root, x, x0, h);
    if (close_rel(an, fd, f0)) {
        passes++;
        return;
    }
    double fd2 = central(ev, root, x, x0, h / 16);
    if (!close_rel(fd, fd2, f0)) { /* the quotient is not converging: a kink or a jump within h */
        kinks++;
        return;
    }
    FAIL("%s: derivative %.12g, finite differences %.12g (at %.9g, value %.9g)", label, an, fd, x0, f0);
}

/* ---- the examples -------------------------------------------------------- */

typedef struct Case {
    ExampleCall call;
    BoundCall bc;
    int bound;
    int64_t (*dims)[ATTNC_MAX_RANK];
    Arena *arena;
    GradPlan *gp;
} Case;

static void case_free(Case *c) {
    if (c->bound) bind_release(&c->bc);
    free(c->dims);
    arena_free(c->arena);
    example_call_close(&c->call);
}

/* Compile `variant`, bind a call of sizes sz with ea's params and random tensors (floats on a grid of 2^-8, so
 * that x +- 2^-10 is exact in float32), build its backward plan.  0 on failure (reported). */
static int case_open(Case *c, const attnc_spec *spec, const char *variant, ExampleArgs *ea) {
    memset(c, 0, sizeof *c);
    attnc_options opts = {.backend = ATTNC_BACKEND_REFPLAN};
    attnc_error err = {0};
    char why[700];
    if (example_call_open(&c->call, spec, variant, &opts, ea, why, sizeof why)) {
        FAIL("%s: %s", variant, why);
        return 0;
    }
    for (int t = 0; t < c->call.nt; t++) {
        attnc_tensor *tt = &c->call.tensors[t];
        if (tt->dtype != ATTNC_F32) continue;
        size_t n = 1;
        for (int d = 0; d < tt->rank; d++) n *= (size_t)tt->shape[d];
        float *x = (float *)tt->data;
        for (size_t i = 0; i < n; i++) x[i] = (float)(round(x[i] * 256.0) / 256.0);
    }
    const Attention *a = attnc_kernel_plan(c->call.k)->attn;
    if (bind_call(a, attnc_kernel_fixed(c->call.k), &c->call.args, &c->bc, &err)) {
        FAIL("%s: bind: %s", variant, err.message);
        return 0;
    }
    c->bound = 1;
    c->dims = calloc((size_t)a->ntensors + 1, sizeof *c->dims);
    c->arena = arena_new();
    if (!c->dims || !c->arena) {
        FAIL("%s: out of memory", variant);
        return 0;
    }
    for (int t = 0; t < a->ntensors; t++)
        for (int d = 0; d < c->bc.tensors[t]->rank; d++) c->dims[t][d] = c->bc.tensors[t]->shape[d];
    if (grad_plan_build(c->arena, a, NULL, NULL, &c->gp, &err)) {
        FAIL("%s: backward plan: %s", variant, err.message);
        return 0;
    }
    return 1;
}

static int ev_open(Case *c, IrEval *ev) {
    if (!ir_eval_init(ev, c->gp->ir)) return 0;
    ev->sz = c->bc.sz;
    ev->params = c->bc.params;
    ev->tensors = c->bc.tensors;
    ev->dims = (const int64_t(*)[ATTNC_MAX_RANK])c->dims;
    return 1;
}

/* Set ev to element (b, h, q, kv) with pre; 1 when the masks keep it and it raises no error. */
static int ev_element(Case *c, IrEval *ev, int64_t b, int64_t h, int64_t q, int64_t kv, double pre) {
    const attnc_sizes *sz = &c->bc.sz;
    ev->b = b, ev->h = h, ev->hk = h / (sz->H / sz->Hkv), ev->q = q, ev->kv = kv, ev->pre = pre;
    ir_eval_reset(ev);
    return ir_eval(ev, c->gp->f->keep).b && !ir_eval(ev, c->gp->f->fault).b;
}

/* The float loads and top-level float sums the value and bias roots read, outside any sum variable. */
static int variables(const GradPlan *gp, IrRef *out, int max) {
    const IrModule *m = gp->ir;
    int top = gp->value > gp->f->bias ? gp->value : gp->f->bias, n = 0;
    char *live = calloc((size_t)top + 1, 1);
    if (!live) return 0;
    live[gp->value] = live[gp->f->bias] = 1;
    for (int i = top; i >= 0; i--)
        if (live[i])
            for (int k = 0; k < ir_at(m, i)->nargs; k++) live[ir_at(m, i)->args[k]] = 1;
    for (int i = 0; i <= top && n < max; i++) {
        const IrNode *nd = ir_at(m, i);
        if (live[i] && nd->type == T_FLOAT && !nd->sumvars && (nd->op == IR_LOAD || nd->op == IR_SUM)) out[n++] = i;
    }
    free(live);
    return n;
}

enum { MAX_VARS = 64, ELEMENTS = 12 };

static void check_example(const attnc_spec *spec, const char *variant, ExampleArgs *ea) {
    Case c;
    if (!case_open(&c, spec, variant, ea)) {
        case_free(&c);
        return;
    }
    GradPlan *gp = c.gp;
    IrRef vars[MAX_VARS], dval[MAX_VARS], dbias[MAX_VARS];
    int nv = variables(gp, vars, MAX_VARS);
    attnc_error err = {0};
    for (int i = 0; i < nv; i++)
        if (ir_derive(gp->ir, gp->value, vars[i], &dval[i], &err) || ir_derive(gp->ir, gp->f->bias, vars[i], &dbias[i], &err)) {
            FAIL("%s: ir_derive by %%%d: %s", variant, vars[i], err.message);
            case_free(&c);
            return;
        }
    IrEval ev;
    if (!ev_open(&c, &ev)) {
        FAIL("%s: out of memory", variant);
        case_free(&c);
        return;
    }
    IrRef pre = ir_node(gp->ir, IR_PRE, T_FLOAT, 0, (Const){0}, 0, NULL); /* exists: the value reads it, or it is the score */
    const attnc_sizes *sz = &c.bc.sz;
    int done = 0, f0 = fails;
    for (int tries = 0; tries < 2000 && done < ELEMENTS; tries++) {
        int64_t b = (int64_t)(rng_next() % (uint64_t)sz->B), h = (int64_t)(rng_next() % (uint64_t)sz->H);
        int64_t q = (int64_t)(rng_next() % (uint64_t)sz->Lq), kv = (int64_t)(rng_next() % (uint64_t)sz->Lk);
        if (!ev_element(&c, &ev, b, h, q, kv, 3.0 * rng_uniform())) continue;
        done++;
        char label[200];
        snprintf(label, sizeof label, "%s (%lld,%lld,%lld,%lld) dvalue_dpre", variant, (long long)b, (long long)h,
                 (long long)q, (long long)kv);
        check_fd(&ev, gp->value, pre, gp->dvalue_dpre, label);
        for (int i = 0; i < nv; i++) {
            snprintf(label, sizeof label, "%s (%lld,%lld,%lld,%lld) d value / d %%%d", variant, (long long)b,
                     (long long)h, (long long)q, (long long)kv, vars[i]);
            check_fd(&ev, gp->value, vars[i], dval[i], label);
            snprintf(label, sizeof label, "%s (%lld,%lld,%lld,%lld) d bias / d %%%d", variant, (long long)b,
                     (long long)h, (long long)q, (long long)kv, vars[i]);
            check_fd(&ev, gp->f->bias, vars[i], dbias[i], label);
        }
    }
    if (!done) FAIL("%s: no kept element found", variant);
    printf("%s %s: %d elements, %d variables besides pre, %d terms\n", fails > f0 ? "FAIL" : "ok", variant, done, nv,
           gp->nterms);
    ir_eval_free(&ev);
    case_free(&c);
}

static const char *current_file;
static void (*current_check)(const attnc_spec *, const char *, ExampleArgs *);

static void each_example(const attnc_spec *spec, const char *variant, ExampleArgs *ea) {
    if (ea) current_check(spec, variant, ea);
    else FAIL("%s: no usable example-args line for %s", current_file, variant);
}

static void run_text(const char *file, const char *text, size_t len,
                     void (*fn)(const attnc_spec *, const char *, ExampleArgs *)) {
    char why[1200];
    current_file = file, current_check = fn;
    if (for_each_example(file, text, len, each_example, why, sizeof why)) FAIL("%s: %s", file, why);
}

static void run_file(const char *file, void (*fn)(const attnc_spec *, const char *, ExampleArgs *)) {
    size_t len;
    char *text = read_file(file, &len);
    if (!text) FAIL("%s: unreadable", file);
    else run_text(file, text, len, fn);
    free(text);
}

/* ---- hand-built IR --------------------------------------------------------- */

enum { MAX_HAND = 48 };

typedef struct Hand {
    IrModule *m;
    IrRef x, y, z; /* pre, T[0], U[1] */
    IrRef expr[MAX_HAND];
    const char *name[MAX_HAND];
    int n;
} Hand;

static IrRef add(Hand *hd, const char *name, IrRef e) {
    if (hd->n < MAX_HAND) {
        hd->name[hd->n] = name;
        hd->expr[hd->n++] = e;
    }
    return e;
}

static IrRef o2(Hand *hd, IrOp op, IrRef a, IrRef b) { return ir_op2(hd->m, op, op >= IR_LT && op <= IR_OR ? T_BOOL : T_FLOAT, a, b); }
static IrRef fn1(Hand *hd, Fn fn, IrRef a) { return ir_node(hd->m, IR_CALL, T_FLOAT, fn, (Const){0}, 1, &a); }
static IrRef fn2(Hand *hd, Fn fn, IrRef a, IrRef b) {
    IrRef args[2] = {a, b};
    return ir_node(hd->m, IR_CALL, T_FLOAT, fn, (Const){0}, 2, args);
}
static IrRef sel(Hand *hd, IrRef c, IrRef a, IrRef b) { return ir_op3(hd->m, IR_SELECT, T_FLOAT, c, a, b); }
static IrRef flt(Hand *hd, double v) { return ir_float(hd->m, v); }

/* Every operation on floats and every function, mostly in compositions. */
static void hand_exprs(Hand *hd) {
    IrModule *m = hd->m;
    IrRef x = hd->x, y = hd->y, z = hd->z;
    add(hd, "-x", ir_op1(m, IR_NEG, T_FLOAT, x));
    add(hd, "x + y - z", o2(hd, IR_SUB, o2(hd, IR_ADD, x, y), z));
    add(hd, "x * y * z", o2(hd, IR_MUL, o2(hd, IR_MUL, x, y), z));
    add(hd, "x / y", o2(hd, IR_DIV, x, y));
    add(hd, "z / (x * y)", o2(hd, IR_DIV, z, o2(hd, IR_MUL, x, y)));
    add(hd, "(x * z) mod y", o2(hd, IR_MOD, o2(hd, IR_MUL, x, z), y));
    add(hd, "y mod x", o2(hd, IR_MOD, y, x));
    add(hd, "x < y ? x * z : y * y", sel(hd, o2(hd, IR_LT, x, y), o2(hd, IR_MUL, x, z), o2(hd, IR_MUL, y, y)));
    add(hd, "abs(x * z)", ir_op1(m, IR_ABS, T_FLOAT, o2(hd, IR_MUL, x, z)));
    add(hd, "min(x, z) * y", o2(hd, IR_MUL, o2(hd, IR_MIN, x, z), y));
    add(hd, "max(x * y, z)", o2(hd, IR_MAX, o2(hd, IR_MUL, x, y), z));
    add(hd, "clamp(x, -y, y)", o2(hd, IR_MIN, o2(hd, IR_MAX, x, ir_op1(m, IR_NEG, T_FLOAT, y)), y));
    add(hd, "exp(x * z)", fn1(hd, FN_EXP, o2(hd, IR_MUL, x, z)));
    add(hd, "exp2(x - y)", fn1(hd, FN_EXP2, o2(hd, IR_SUB, x, y)));
    add(hd, "log(y) * x", o2(hd, IR_MUL, fn1(hd, FN_LOG, y), x));
    add(hd, "log(x * x + y)", fn1(hd, FN_LOG, o2(hd, IR_ADD, o2(hd, IR_MUL, x, x), y)));
    add(hd, "log2(y * z * z)", fn1(hd, FN_LOG2, o2(hd, IR_MUL, y, o2(hd, IR_MUL, z, z))));
    add(hd, "sqrt(y + x * x)", fn1(hd, FN_SQRT, o2(hd, IR_ADD, y, o2(hd, IR_MUL, x, x))));
    add(hd, "tanh(x * y)", fn1(hd, FN_TANH, o2(hd, IR_MUL, x, y)));
    add(hd, "tanh(exp(x) * y) / y", o2(hd, IR_DIV, fn1(hd, FN_TANH, o2(hd, IR_MUL, fn1(hd, FN_EXP, x), y)), y));
    add(hd, "sigmoid(x * z)", fn1(hd, FN_SIGMOID, o2(hd, IR_MUL, x, z)));
    add(hd, "erf(x * z)", fn1(hd, FN_ERF, o2(hd, IR_MUL, x, z)));
    add(hd, "pow(y, x)", fn2(hd, FN_POW, y, x));
    add(hd, "pow(y, x * z)", fn2(hd, FN_POW, y, o2(hd, IR_MUL, x, z)));
    add(hd, "pow(x, 3.0) * y", o2(hd, IR_MUL, fn2(hd, FN_POW, x, flt(hd, 3.0)), y));
    add(hd, "pow(z * z, 0.5)", fn2(hd, FN_POW, o2(hd, IR_MUL, z, z), flt(hd, 0.5)));
    add(hd, "floor(x) * y + x", o2(hd, IR_ADD, o2(hd, IR_MUL, fn1(hd, FN_FLOOR, x), y), x));
    add(hd, "ceil(x * z) * y", o2(hd, IR_MUL, fn1(hd, FN_CEIL, o2(hd, IR_MUL, x, z)), y));
    add(hd, "sign(x) * y", o2(hd, IR_MUL, fn1(hd, FN_SIGN, x), y));
    IrRef ix = ir_node(m, IR_CALL, T_INT, FN_INT, (Const){0}, 1, (IrRef[]){o2(hd, IR_MUL, x, flt(hd, 4.0))});
    add(hd, "float(int(x * 4)) * y", o2(hd, IR_MUL, ir_op1(m, IR_TOFLOAT, T_FLOAT, ix), y));
    IrRef r = ir_node(m, IR_SUMVAR, T_INT, 0, (Const){0}, 0, NULL);
    IrRef body = o2(hd, IR_ADD, o2(hd, IR_MUL, o2(hd, IR_MUL, y, ir_op1(m, IR_TOFLOAT, T_FLOAT, r)), x), z);
    add(hd, "sum(r < 3) y * r * x + z", ir_node(m, IR_SUM, T_FLOAT, 0, (Const){0}, 2, (IrRef[]){ir_int(m, 3), body}));
}

/* A derivative at an exact point, compared exactly (the spec's rules where there is no derivative). */
typedef struct Exact {
    IrRef e, var, d;
    double xyz[3];
    double want;
    const char *what;
} Exact;

static int hand_exact(Hand *hd, Exact *out) {
    IrRef x = hd->x, y = hd->y, z = hd->z;
    int n = 0;
    const double tie[3] = {0.75, 0.75, 2}, lo_tie[3] = {0.5, 0.5, 1}, hi_tie[3] = {1, 0, 1};
    IrRef abs_x = ir_op1(hd->m, IR_ABS, T_FLOAT, x);
    out[n++] = (Exact){abs_x, x, IR_NONE, {0, 1, 1}, 0, "d abs(x) / dx at 0"};
    IrRef min_xy = o2(hd, IR_MIN, x, y), min_yx = o2(hd, IR_MIN, y, x), max_xy = o2(hd, IR_MAX, x, y);
    out[n++] = (Exact){min_xy, x, IR_NONE, {tie[0], tie[1], tie[2]}, 1, "d min(x, y) / dx at a tie"};
    out[n++] = (Exact){min_xy, y, IR_NONE, {tie[0], tie[1], tie[2]}, 0, "d min(x, y) / dy at a tie"};
    out[n++] = (Exact){min_yx, y, IR_NONE, {tie[0], tie[1], tie[2]}, 1, "d min(y, x) / dy at a tie"};
    out[n++] = (Exact){min_yx, x, IR_NONE, {tie[0], tie[1], tie[2]}, 0, "d min(y, x) / dx at a tie"};
    out[n++] = (Exact){max_xy, x, IR_NONE, {tie[0], tie[1], tie[2]}, 1, "d max(x, y) / dx at a tie"};
    out[n++] = (Exact){max_xy, y, IR_NONE, {tie[0], tie[1], tie[2]}, 0, "d max(x, y) / dy at a tie"};
    IrRef clamp = o2(hd, IR_MIN, o2(hd, IR_MAX, x, y), z); /* clamp(x, y, z), as ir_build makes it */
    out[n++] = (Exact){clamp, x, IR_NONE, {lo_tie[0], lo_tie[1], lo_tie[2]}, 1, "d clamp(x, lo, hi) / dx at x == lo"};
    out[n++] = (Exact){clamp, y, IR_NONE, {lo_tie[0], lo_tie[1], lo_tie[2]}, 0, "d clamp(x, lo, hi) / dlo at x == lo"};
    out[n++] = (Exact){clamp, x, IR_NONE, {hi_tie[0], hi_tie[1], hi_tie[2]}, 1, "d clamp(x, lo, hi) / dx at x == hi"};
    out[n++] = (Exact){clamp, z, IR_NONE, {hi_tie[0], hi_tie[1], hi_tie[2]}, 0, "d clamp(x, lo, hi) / dhi at x == hi"};
    IrRef pow_xz = fn2(hd, FN_POW, x, z);
    out[n++] = (Exact){pow_xz, x, IR_NONE, {0, 1, 2}, 0, "d pow(x, z) / dx at (0, 2)"};
    out[n++] = (Exact){pow_xz, z, IR_NONE, {0, 1, 2}, 0, "d pow(x, z) / dz at (0, 2) (torch: 0, not 0 * -inf)"};
    out[n++] = (Exact){pow_xz, x, IR_NONE, {0, 1, 0}, 0, "d pow(x, z) / dx at (0, 0) (torch: 0)"};
    out[n++] = (Exact){pow_xz, z, IR_NONE, {0, 1, 0}, 0, "d pow(x, z) / dz at (0, 0)"};
    out[n++] = (Exact){pow_xz, x, IR_NONE, {-0.5, 1, 0}, 0, "d pow(x, z) / dx at (-0.5, 0)"};
    out[n++] = (Exact){pow_xz, x, IR_NONE, {-0.5, 1, 2}, -1, "d pow(x, z) / dx at (-0.5, 2)"};
    out[n++] = (Exact){fn1(hd, FN_SQRT, y), y, IR_NONE, {0, 0, 1}, INFINITY, "d sqrt(y) / dy at 0"};
    out[n++] = (Exact){fn1(hd, FN_LOG, y), y, IR_NONE, {0, 0, 1}, INFINITY, "d log(y) / dy at 0"};
    out[n++] = (Exact){fn1(hd, FN_FLOOR, x), x, IR_NONE, {1, 1, 1}, 0, "d floor(x) / dx at 1"};
    out[n++] = (Exact){fn1(hd, FN_CEIL, x), x, IR_NONE, {0.5, 1, 1}, 0, "d ceil(x) / dx"};
    out[n++] = (Exact){fn1(hd, FN_SIGN, x), x, IR_NONE, {0, 1, 1}, 0, "d sign(x) / dx at 0"};
    return n;
}

/* Operations whose derivative is 0 by the spec's rule: the derivative is the constant 0, built as such. */
static void symbolic_zeros(Hand *hd) {
    IrRef x = hd->x, y = hd->y;
    IrRef ix = ir_node(hd->m, IR_CALL, T_INT, FN_INT, (Const){0}, 1, &x);
    IrRef e[] = {fn1(hd, FN_FLOOR, x), fn1(hd, FN_CEIL, x), fn1(hd, FN_SIGN, x), ir_op1(hd->m, IR_TOFLOAT, T_FLOAT, ix),
                 sel(hd, o2(hd, IR_LT, x, y), flt(hd, 1.0), flt(hd, 2.0))};
    static const char *const names[] = {"floor", "ceil", "sign", "float(int(x))", "x < y ? 1 : 2"};
    for (int i = 0; i < 5; i++) {
        IrRef d = IR_NONE;
        attnc_error err = {0};
        attnc_status st = ir_derive(hd->m, e[i], x, &d, &err);
        const IrNode *n = st ? NULL : ir_at(hd->m, d);
        if (n && n->op == IR_CONST && n->c.f == 0.0) passes++;
        else FAIL("hand: d %s / dx is not the constant 0 (%s)", names[i], st ? err.message : "a node");
    }
}

/* What has no rule fails, with a message naming it. */
static void must_fail(Hand *hd) {
    IrRef x = hd->x;
    IrRef bad_call = ir_node(hd->m, IR_CALL, T_FLOAT, FN_CLAMP, (Const){0}, 1, &x);
    IrRef r = ir_node(hd->m, IR_SUMVAR, T_INT, 0, (Const){0}, 0, NULL);
    IrRef per_r = ir_node(hd->m, IR_LOAD, T_FLOAT, 0, (Const){0}, 1, &r);
    IrRef body = o2(hd, IR_MUL, per_r, x);
    IrRef sum = ir_node(hd->m, IR_SUM, T_FLOAT, 0, (Const){0}, 2, (IrRef[]){ir_int(hd->m, 3), body});
    struct {
        IrRef e, var;
        const char *needle;
    } cases[] = {{bad_call, x, "clamp"}, {sum, per_r, "variable of sum"}};
    for (int i = 0; i < 2; i++) {
        IrRef d = IR_NONE;
        attnc_error err = {0};
        attnc_status st = ir_derive(hd->m, cases[i].e, cases[i].var, &d, &err);
        if (st == ATTNC_ERR_INTERNAL && strstr(err.message, cases[i].needle) && d == IR_NONE) passes++;
        else FAIL("hand: ir_derive should fail about '%s', got status %d '%s'", cases[i].needle, (int)st, err.message);
    }
}

static double pick(double lo, double hi, int signed_) {
    double v = lo + (hi - lo) * (0.5 + 0.5 * rng_uniform());
    return signed_ && rng_uniform() < 0 ? -v : v;
}

static void check_hand(void) {
    static const char text[] = "attention hand { tensor T : float[4]; tensor U : float[4]; }";
    attnc_spec *spec = NULL;
    attnc_kernel *k = NULL;
    attnc_error err = {0};
    attnc_options opts = {.backend = ATTNC_BACKEND_REFPLAN};
    Arena *arena = arena_new();
    if (!arena || attnc_spec_from_string("hand.attn", text, sizeof text - 1, &spec, &err) ||
        attnc_compile(spec, "hand", &opts, &k, &err)) {
        FAIL("hand: %s", err.message);
        attnc_spec_free(spec);
        arena_free(arena);
        return;
    }
    Hand hd = {ir_new(arena, attnc_kernel_plan(k)->attn), 0, 0, 0, {0}, {0}, 0};
    IrRef zero = ir_int(hd.m, 0), one = ir_int(hd.m, 1);
    hd.x = ir_node(hd.m, IR_PRE, T_FLOAT, 0, (Const){0}, 0, NULL);
    hd.y = ir_node(hd.m, IR_LOAD, T_FLOAT, 0, (Const){0}, 1, &zero);
    hd.z = ir_node(hd.m, IR_LOAD, T_FLOAT, 1, (Const){0}, 1, &one);
    hand_exprs(&hd);
    IrRef vars[3] = {hd.x, hd.y, hd.z}, d[MAX_HAND][3];
    for (int i = 0; i < hd.n; i++)
        for (int v = 0; v < 3; v++)
            if (ir_derive(hd.m, hd.expr[i], vars[v], &d[i][v], &err)) FAIL("hand %s: %s", hd.name[i], err.message);
    Exact ex[32];
    int ne = hand_exact(&hd, ex);
    for (int i = 0; i < ne; i++)
        if (ir_derive(hd.m, ex[i].e, ex[i].var, &ex[i].d, &err)) FAIL("hand %s: %s", ex[i].what, err.message);
    symbolic_zeros(&hd);
    must_fail(&hd);
    /* every node exists: the evaluator's memo is sized now */
    float data[8] = {0};
    attnc_tensor T = {"T", ATTNC_F32, 1, {4}, data}, U = {"U", ATTNC_F32, 1, {4}, data + 4};
    const attnc_tensor *tensors[2] = {&T, &U};
    int64_t dims[2][ATTNC_MAX_RANK] = {{4}, {4}};
    IrEval ev;
    if (!ir_eval_init(&ev, hd.m)) {
        FAIL("hand: out of memory");
    } else if (!fails) {
        ev.tensors = tensors;
        ev.dims = (const int64_t(*)[ATTNC_MAX_RANK])dims;
        static const char *const var_names[3] = {"x", "y", "z"};
        for (int i = 0; i < hd.n; i++)
            for (int p = 0; p < 20; p++) {
                ev.pre = pick(0.3, 2, 1);
                data[0] = (float)pick(0.3, 2, 0);
                data[5] = (float)pick(0.3, 2, 1);
                for (int v = 0; v < 3; v++) {
                    char label[120];
                    snprintf(label, sizeof label, "hand d(%s)/d%s at x=%g y=%g z=%g", hd.name[i], var_names[v], ev.pre,
                             data[0], data[5]);
                    check_fd(&ev, hd.expr[i], vars[v], d[i][v], label);
                }
            }
        for (int i = 0; i < ne; i++) {
            ev.pre = ex[i].xyz[0];
            data[0] = (float)ex[i].xyz[1];
            data[5] = (float)ex[i].xyz[2];
            ir_eval_reset(&ev);
            double got = ir_eval(&ev, ex[i].d).f;
            if (got == ex[i].want) passes++;
            else FAIL("hand %s: %.9g, want %.9g", ex[i].what, got, ex[i].want);
        }
        printf("hand-built IR: %d expressions by 3 variables, %d exact points\n", hd.n, ne);
    }
    ir_eval_free(&ev);
    attnc_kernel_free(k);
    attnc_spec_free(spec);
    arena_free(arena);
}

/* ---- scattered tensor gradients ------------------------------------------- */

typedef struct Elem {
    int64_t b, h, q, kv;
    double pre, g, gpre;
} Elem;

/* sum over the elements of g * value + gpre * bias, pre held. */
static double objective(Case *c, IrEval *ev, const Elem *e, int n) {
    double L = 0;
    for (int i = 0; i < n; i++) {
        ev_element(c, ev, e[i].b, e[i].h, e[i].q, e[i].kv, e[i].pre);
        L += e[i].g * ir_eval(ev, c->gp->value).f + e[i].gpre * ir_eval(ev, c->gp->f->bias).f;
    }
    return L;
}

static void check_scatter(const attnc_spec *spec, const char *variant, ExampleArgs *ea) {
    attnc_sizes small = {ea->sz.B < 2 ? ea->sz.B : 2, 2, 1, 6, 7, ea->sz.D, ea->sz.Dv};
    ea->sz = small;
    Case c;
    IrEval ev;
    int have_ev = 0;
    Elem *el = NULL;
    double *grad[MAX_ITEMS] = {0};
    if (!case_open(&c, spec, variant, ea) || !(have_ev = ev_open(&c, &ev))) goto out;
    const Attention *a = c.gp->ir->attn;
    el = malloc(sizeof *el * (size_t)(small.B * small.H * small.Lq * small.Lk));
    int n = 0;
    for (int64_t b = 0; b < small.B; b++)
        for (int64_t h = 0; h < small.H; h++)
            for (int64_t q = 0; q < small.Lq; q++)
                for (int64_t kv = 0; kv < small.Lk; kv++) {
                    Elem e = {b, h, q, kv, 3.0 * rng_uniform(), rng_uniform(), rng_uniform()};
                    if (ev_element(&c, &ev, b, h, q, kv, e.pre)) el[n++] = e;
                }
    size_t size[MAX_ITEMS] = {0};
    for (int t = 0; t < a->ntensors; t++) {
        if (c.bc.tensors[t]->dtype != ATTNC_F32) continue;
        size[t] = 1;
        for (int d = 0; d < c.bc.tensors[t]->rank; d++) size[t] *= (size_t)c.dims[t][d];
        grad[t] = calloc(size[t], sizeof(double));
    }
    for (int i = 0; i < n; i++) {
        ev_element(&c, &ev, el[i].b, el[i].h, el[i].q, el[i].kv, el[i].pre);
        grad_eval_scatter(c.gp, &ev, el[i].g, el[i].gpre, grad);
    }
    double L0 = objective(&c, &ev, el, n);
    const double step = 1.0 / 16384; /* the data are multiples of 2^-8 in [-1, 1]: x +- 2^-14 is exact in float32 */
    int f0 = fails, nonzero = 0, checked = 0;
    for (int t = 0; t < a->ntensors; t++) {
        float *x = (float *)c.bc.tensors[t]->data;
        for (size_t j = 0; grad[t] && j < size[t]; j++) {
            float x0 = x[j];
            x[j] = (float)(x0 + step);
            double up = objective(&c, &ev, el, n);
            x[j] = (float)(x0 - step);
            double down = objective(&c, &ev, el, n);
            x[j] = x0;
            double fd = (up - down) / (2 * step);
            checked++;
            nonzero += grad[t][j] != 0;
            if (close_rel(grad[t][j], fd, L0)) passes++;
            else if (fails - f0 < 5)
                FAIL("%s: d%s[%zu] scattered %.12g, finite differences %.12g", variant, a->tensors[t]->name, j,
                     grad[t][j], fd);
            else fails++;
        }
    }
    if (!nonzero) FAIL("%s: every scattered gradient is 0", variant);
    printf("%s scatter %s: %d elements, %d tensor elements checked, %d with a gradient\n", fails > f0 ? "FAIL" : "ok",
           variant, n, checked, nonzero);
out:
    for (int t = 0; t < MAX_ITEMS; t++) free(grad[t]);
    free(el);
    if (have_ev) ir_eval_free(&ev);
    case_free(&c);
}

/* Sums in sums: a load reading two sum variables (a chain of two), one reading
 * none inside both (its derivative is a sum of sums), one load node in two
 * sums of the same level (two chains), a square (a factor of 2), and a
 * tensor read by both the value and the bias. */
static const char nested_text[] =
    "// example-args: --shape B=1,H=2,Hkv=1,Lq=6,Lk=7,D=4,Dv=4 --param R=3\n"
    "attention nested_sums {\n"
    "    param R : int = 3;\n"
    "    tensor A : float[Lq, R];\n"
    "    tensor M : float[R, R];\n"
    "    tensor c : float[H];\n"
    "    bias sum(r < R) A[q, r] * sum(s < R) M[r, s] * c[h] * float(kv - s);\n"
    "    score tanh(score * c[h]) + sum(r < R) A[q, r] * A[q, r];\n"
    "}\n";

/* The files whose tensor gradients are checked element by element; 1 when file is one of them. */
static int check_scatter_file(const char *file) {
    static const char *const names[] = {"low_rank_bias.attn", "relative_bias_1d.attn", "pair_bias.attn",
                                        "query_temperature.attn"};
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(base, names[i])) {
            run_file(file, check_scatter);
            return 1;
        }
    return 0;
}

int main(int argc, char **argv) {
    rng_seed(12);
    check_hand();
    run_text("nested_sums.attn", nested_text, sizeof nested_text - 1, check_example);
    run_text("nested_sums.attn", nested_text, sizeof nested_text - 1, check_scatter);
    int scatter_files = 0;
    for (int i = 1; i < argc; i++) {
        run_file(argv[i], check_example);
        scatter_files += check_scatter_file(argv[i]);
    }
    if (scatter_files != 4) FAIL("the scatter checks need the four example files (got %d)", scatter_files);
    printf("%d checks passed, %d failed, %d skipped at a kink\n", passes, fails, kinks);
    /* a kink within 1e-5 of a random point is rare: many of them would hide real failures */
    if (kinks > passes / 100) FAIL("%d points skipped at a kink", kinks);
    return fails ? 1 : 0;
}
