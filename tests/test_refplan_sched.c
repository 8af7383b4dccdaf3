/* test_refplan_sched.c — refplan tests the schedule (issue 9, item 1).
 *
 * refplan executes the schedule's steps (runtime/plan_steps.c), so a wrong
 * schedule must not give the interpreter's answer.  For attentions whose
 * calls run every block of the forward kernel (call and head values, row
 * and col slots, low-rank columns, an LSE offset, nested sums, masks on
 * PARTIAL tiles, FULL tiles, the fault check, diagonal tables), the intact schedule matches
 * the interpreter, and removing any one step that the call runs makes the
 * call fail or changes O or LSE.  A call runs every step but the low-rank
 * limit (only 2^24 columns reach it) and, when its tile analysis rules
 * faults out, the fault blocks (fault, row.fault, col.fault).  Before refplan
 * executed the schedule, every such removal went unnoticed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"
#include "bind.h"
#include "launch_stats.h"
#include "plan.h"
#include "support.h"

static int fails, passes;

static const char spec_text[] =
    "attention probe_lowrank {\n"
    "    param R : int;\n"
    "    tensor U : float[H, Lq, 4];\n"
    "    tensor W : float[H, Lk, 4];\n"
    "    tensor rb : float[Lq];\n"
    "    mask kv <= q;\n"
    "    bias sum(r < R) U[h, q, r] * W[h, kv, r];\n"
    "    bias rb[q] * 0.5;\n"
    "    bias 0.1 * float(q % 3) * float(kv % 2) + 0.01 * float(sum(j < 3) (q * j + kv) % 5);\n"
    "    bias 0.001 * float(h + 1) * float(R + Lk);\n"
    "}\n"
    "attention probe_weight {\n"
    "    tensor T : float[Lk, 3];\n"
    "    mask kv <= q + 2;\n"
    "    bias sum(r < 3) sum(s < r + 1) T[kv, s] * float(q % (r + 2));\n"
    "    weight sigmoid(score);\n"
    "}\n"
    "attention probe_fault {\n"
    "    tensor t : float[24];\n"
    "    tensor ix : int[Lk];\n"
    "    mask kv <= q;\n"
    "    bias t[ix[kv] + q - kv] * 0.5 + 0.1 * float(kv % 3);\n"
    "}\n"
    /* diagonal tables (docs/toeplitz.md): the bias and the fault root's
     * "out of range" (true at d = 3, which the mask drops) per distance */
    "attention probe_toeplitz {\n"
    "    tensor t : float[H, 8];\n"
    "    mask kv <= q + 2;\n"
    "    bias t[h, clamp(kv - q, -5, 3) + 5] * log(2.0 + float(abs(q - kv)));\n"
    "}\n";

/* Random inputs of one call, and the interpreter's O and LSE. */
typedef struct Call {
    attnc_sizes sz;
    float *q, *k, *v, *o, *lse, *ref_o, *ref_lse;
    size_t no, rows;
    attnc_param params[MAX_ITEMS];
    attnc_tensor tensors[MAX_ITEMS];
    int np, nt;
} Call;

static attnc_args args_of(Call *c, float *o, float *lse) {
    return (attnc_args){c->sz, c->q, c->k, c->v, o, lse, c->params, c->np, c->tensors, c->nt};
}

static attnc_kernel *compile(const attnc_spec *spec, const char *variant, attnc_backend b) {
    attnc_options opts = {.backend = b, .threads = 1, .tile_q = 8, .tile_k = 8};
    attnc_kernel *k = NULL;
    attnc_error err = {0};
    if (attnc_compile(spec, variant, &opts, &k, &err)) printf("FAIL %s: compile: %s\n", variant, err.message);
    return k;
}

/* Whether the call on k fails or differs from the interpreter's answer. */
static int differs(attnc_kernel *k, Call *c, const char **what) {
    attnc_error err = {0};
    attnc_args a = args_of(c, c->o, c->lse);
    static char buf[300];
    double worst;
    if (attnc_kernel_run(k, &a, &err)) {
        snprintf(buf, sizeof buf, "fails: %.250s", err.message);
        *what = buf;
        return 1;
    }
    *what = compare_outputs(c->o, c->lse, c->ref_o, c->ref_lse, c->no, c->rows, 1e-6, &worst, buf, sizeof buf);
    return *what != NULL;
}

/* Whether the call checks faults (its tile analysis could not rule them out). */
static int call_checks_faults(attnc_kernel *k, Call *c) {
    attnc_args a = args_of(c, c->o, c->lse);
    attnc_error err = {0};
    BoundCall bc;
    TileMap tm;
    int checks = 1;
    if (bind_call(attnc_kernel_plan(k)->attn, attnc_kernel_fixed(k), &a, &bc, &err)) return 1;
    if (!tile_map_build(attnc_kernel_plan(k), &bc, &tm, &err)) {
        checks = tm.check_faults;
        tile_map_free(&tm);
    }
    bind_release(&bc);
    return checks;
}

/* Whether the call runs step `at` of block b. */
static int runs(const Schedule *s, int b, int at, int checks_faults) {
    const SchedStep *st = &s->block[b].steps[at];
    if (st->op == STEP_LOWRANK_LIMIT) return 0;
    if (checks_faults) return 1;
    /* what only the fault check needs is in these blocks, which such a call skips */
    return b != SB_FAULT && b != SB_FAULT_PARTIAL && b != SB_ROW_FAULT && b != SB_COL_FAULT;
}

/* Remove step k of block b, run, put it back: whether refplan noticed. */
static int removal_noticed(attnc_kernel *k, SchedBlock *blk, int at, Call *c) {
    SchedStep saved = blk->steps[at];
    memmove(blk->steps + at, blk->steps + at + 1, sizeof(SchedStep) * (size_t)(blk->nsteps - at - 1));
    blk->nsteps--;
    const char *what;
    int noticed = differs(k, c, &what);
    memmove(blk->steps + at + 1, blk->steps + at, sizeof(SchedStep) * (size_t)(blk->nsteps - at));
    blk->steps[at] = saved;
    blk->nsteps++;
    return noticed;
}

static void run_variant(const attnc_spec *spec, const char *variant, const char *shape_line) {
    attnc_kernel *ref = compile(spec, variant, ATTNC_BACKEND_INTERP), *k = compile(spec, variant, ATTNC_BACKEND_REFPLAN);
    Call c;
    memset(&c, 0, sizeof c);
    ExampleArgs ea;
    char line[256];
    const char *why = NULL, *what = NULL;
    snprintf(line, sizeof line, "%s", shape_line);
    if (!ref || !k || !parse_args(line, &ea)) {
        printf("FAIL %s: no kernel or bad args\n", variant);
        fails++;
        goto done;
    }
    c.sz = ea.sz;
    c.np = make_params(k, &ea, c.params, &why);
    c.nt = c.np < 0 ? -1 : make_tensors(k, &ea, c.params, c.np, c.tensors, &why);
    if (c.nt < 0) {
        printf("FAIL %s: %s\n", variant, why);
        fails++;
        goto done;
    }
    c.rows = (size_t)(c.sz.B * c.sz.H * c.sz.Lq);
    c.no = c.rows * (size_t)c.sz.Dv;
    c.q = random_floats((size_t)(c.sz.B * c.sz.H * c.sz.Lq * c.sz.D));
    c.k = random_floats((size_t)(c.sz.B * c.sz.Hkv * c.sz.Lk * c.sz.D));
    c.v = random_floats((size_t)(c.sz.B * c.sz.Hkv * c.sz.Lk * c.sz.Dv));
    c.o = malloc(sizeof(float) * c.no);
    c.lse = malloc(sizeof(float) * c.rows);
    c.ref_o = malloc(sizeof(float) * c.no);
    c.ref_lse = malloc(sizeof(float) * c.rows);
    attnc_error err = {0};
    attnc_args ra = args_of(&c, c.ref_o, c.ref_lse);
    if (attnc_kernel_run(ref, &ra, &err)) {
        printf("FAIL %s: interpreter: %s\n", variant, err.message);
        fails++;
        goto done;
    }
    if (differs(k, &c, &what)) {
        printf("FAIL %s: refplan on the intact schedule %s\n", variant, what);
        fails++;
        goto done;
    }
    Schedule *s = attnc_kernel_plan(k)->sched;
    int steps = 0, missed = 0, checks = call_checks_faults(k, &c);
    for (int b = 0; b < SB_COUNT; b++) {
        SchedBlock *blk = &s->block[b];
        for (int at = 0; at < blk->nsteps; at++) {
            if (!runs(s, b, at, checks)) continue;
            steps++;
            if (removal_noticed(k, blk, at, &c)) continue;
            missed++;
            printf("FAIL %s: refplan does not notice block %s without its step %d (op %d, node %%%d)\n", variant,
                   sched_block_name((SchedBlockId)b), at, (int)blk->steps[at].op, blk->steps[at].node);
        }
    }
    printf("%s %s: intact schedule matches the interpreter; %d of %d step removals noticed%s\n",
           missed ? "FAIL" : "ok", variant, steps - missed, steps, checks ? " (faults checked)" : "");
    missed ? fails++ : passes++;
done:
    for (int i = 0; i < c.nt; i++) free((void *)c.tensors[i].data);
    free(c.q), free(c.k), free(c.v), free(c.o), free(c.lse), free(c.ref_o), free(c.ref_lse);
    attnc_kernel_free(ref);
    attnc_kernel_free(k);
}

int main(void) {
    attnc_spec *spec = NULL;
    attnc_error err = {0};
    if (attnc_spec_from_string("probe.attn", spec_text, sizeof spec_text - 1, &spec, &err)) {
        printf("FAIL probe.attn: %s\n%s", err.message, spec ? attnc_spec_diagnostics(spec) : "");
        attnc_spec_free(spec);
        return 1;
    }
    rng_seed(7);
    map_cache_set_dropping(0); /* every run checks faults: a removed check step must show */
    run_variant(spec, "probe_lowrank", "--shape B=2,H=2,Hkv=1,Lq=20,Lk=21,D=8,Dv=4 --param R=3");
    run_variant(spec, "probe_weight", "--shape B=1,H=2,Hkv=2,Lq=19,Lk=17,D=8,Dv=4");
    run_variant(spec, "probe_fault", "--shape B=1,H=1,Hkv=1,Lq=20,Lk=20,D=8,Dv=4 --int-range ix=0,4");
    run_variant(spec, "probe_toeplitz", "--shape B=1,H=2,Hkv=1,Lq=20,Lk=23,D=8,Dv=4");
    attnc_spec_free(spec);
    printf("%d passed, %d failed\n", passes, fails);
    return fails ? 1 : 0;
}
