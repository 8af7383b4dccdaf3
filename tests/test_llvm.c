/* test_llvm.c — the LLVM backend against the reference interpreter, through
 * the public API only.
 *
 * Covers: random shapes (odd L, Lq != Lk, GQA, D in {16, 40, 64, 128},
 * Dv != D, 1 and 2 threads, default and odd tile sizes, 16-, 8- and 4-lane
 * code) on variants that exercise every kind of IR the lowering handles
 * (masks at every level, fully masked rows, tensors, sums, low-rank columns,
 * weight clauses, int and float arithmetic edge cases, libm calls);
 * the error paths (missing param, wrong tensor shape, an out-of-range index
 * or a division by zero at a kept position: ATTNC_ERR_RUNTIME with O and LSE
 * untouched; the same at masked positions: no error); the code as text;
 * kernels run and compiled from several threads at once; and (--cycles N)
 * compile, run, free cycles beyond the cache's capacity (leaks show under
 * ASan).  Exit 0 when everything passes, 77 when the build has no LLVM backend. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attnc.h"
#include "support.h"
#include "check.h"

/* Tight enough that one wrongly kept or dropped (q, kv) moves O or LSE past it. */
static const double TOLERANCE = 2e-4;


typedef struct Variant {
    const char *text;
    const char *params; /* "name=value name=value" or NULL */
    const char *ranges; /* "tensor=lo,hi ..." for int tensors, or NULL */
} Variant;

static const Variant VARIANTS[] = {
    {"attention dense { }", NULL, NULL},
    {"attention c { use causal; }", NULL, NULL},
    {"attention cbr { use causal_bottom_right; }", NULL, NULL},
    {"attention gemma { use causal; use sliding_window(window = 17); use softcap(cap = 20.0); use alibi; }", NULL,
     NULL},
    /* rows q % 3 == 1 keep nothing: O = 0, LSE = -inf */
    {"attention holes { mask q % 3 != 1 && kv <= q + 2; }", NULL, NULL},
    {"attention sig { use causal; weight sigmoid(score - log(float(Lk))); }", NULL, NULL},
    {"attention relu { param div : float = 3.0; weight max(score, 0.0) / div; }", NULL, NULL},
    {"attention doc { tensor dq : int[Lq]; tensor dk : int[Lk]; mask dq[q] == dk[kv]; }", NULL, "dq=0,4 dk=0,4"},
    {"attention lowrank { param rank : int = 3; tensor U : float[B, H, Lq, rank]; tensor W : float[B, H, Lk, rank];"
     " bias sum(r < rank) U[b, h, q, r] * W[b, h, kv, r]; }",
     "rank=5", NULL},
    /* a sum whose body varies per element: stays a loop in the element code */
    {"attention esum { bias sum(r < 3) float((q + 2 * kv + r) % 5) * 0.1; }", NULL, NULL},
    {"attention math { mask (q * 7 + kv) % 5 != 0;"
     " bias float((q - 3 * kv) / 4 - kv % 4) * 0.05 + 0.1 * tanh(float(q) * 0.03 - 1.0)"
     " - 0.01 * log2(float(kv + 1)) + 0.001 * float(int(exp(float(kv % 7)))) + 0.05 * sign(float(q - kv)); }",
     NULL, NULL},
    {"attention libm { bias 0.1 * pow(float(kv % 5) + 0.5, 1.5) - 0.2 * erf(float(q - kv) * 0.1)"
     " + (float(kv) - 7.25) % 3.5 * 0.05 + 0.01 * sqrt(float(q)) + 0.1 * floor(float(kv) / 3.0) - 0.1 * ceil(float(q) "
     "/ 7.0); }",
     NULL, NULL},
    /* int64 division beyond 2^52 (the exact scalar path) and at both signs */
    {"attention bigdiv { bias float(((q + 4611686018427387904) / (kv + 2)) % 7) * 0.1"
     " + float((kv - 2 * q) / (q % 5 - 7)) * 0.01; }",
     NULL, NULL},
    {"attention table { param max_dist : int = 6; tensor table : float[H, 2 * max_dist + 1];"
     " bias table[h, clamp(kv - q, -max_dist, max_dist) + max_dist]; }",
     NULL, NULL},
    {"attention span { tensor span : int[H]; mask abs(q - kv) <= span[h]; }", NULL, "span=0,20"},
    /* a per-row tensor read by a score clause: a ROW value the element loop reloads */
    {"attention temp { use causal; tensor temp : float[B, H, Lq]; score score * (1.0 + temp[b, h, q]); }", NULL, NULL},
    {"attention flip { param flip : bool = false; mask flip ? kv >= q : kv <= q; }", "flip=true", NULL},
    /* x / (kv - q) divides by zero only where the mask drops the element */
    {"attention guarded { mask kv != q; bias float(q / (kv - q)) * 0.01; }", NULL, NULL},
    /* the inline exp/exp2/log/log2/tanh/sigmoid/erf over wide ranges, straight into O */
    {"attention mathrange { weight sigmoid(score * 10.0) + 0.01 * tanh(float(q - kv) * 0.37)"
     " + 0.5 + 0.4 * erf(score * 3.0) + 0.01 * erf(float(q - kv) * 0.05) + erf(float(kv % 7) * 1e-5)"
     " + exp(float(kv % 40) - 30.0) + exp2(float(q % 50) * 0.5 - 20.0) + 0.001 * log(float(q + 1) * 1e-30)"
     " + 0.01 * log2(float(kv + 1)) + exp(-float(kv) * 3.0) + 0.01 * log(1.0 + exp(score)); }",
     NULL, NULL},
    /* a bias constant along kv: moved to lse_offset by the middle end */
    {"attention offset { tensor rowb : float[Lq]; bias rowb[q] * 3.0 + float(kv % 3) * 0.1; }", NULL, NULL},
};
enum { NVARIANTS = sizeof VARIANTS / sizeof VARIANTS[0] };

static void parse_items(const Variant *v, ExampleArgs *ea) {
    char buf[512];
    if (v->params) {
        snprintf(buf, sizeof buf, "%s", v->params);
        for (char *save = NULL, *tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save))
            if (sscanf(tok, "%63[^=]=%63s", ea->param_name[ea->nparams], ea->param_text[ea->nparams]) == 2)
                ea->nparams++;
    }
    if (v->ranges) {
        snprintf(buf, sizeof buf, "%s", v->ranges);
        for (char *save = NULL, *tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
            int k = ea->nranges;
            if (sscanf(tok, "%63[^=]=%d,%d", ea->range_name[k], &ea->range_lo[k], &ea->range_hi[k]) == 3) ea->nranges++;
        }
    }
}

typedef struct Shape {
    attnc_sizes sz;
    int threads, tile_q, tile_k;
    const char *width; /* ATTNC_LLVM_VECTOR_WIDTH, or NULL for the host's */
} Shape;

/* Run one variant on one shape through LLVM and the interpreter; compare. */
static void differential(const Variant *v, const Shape *s, int round) {
    attnc_spec *spec = NULL;
    attnc_error err = {0};
    if (attnc_spec_from_string("test.attn", v->text, strlen(v->text), &spec, &err)) {
        CHECK(0, "spec '%s': %s\n%s", v->text, err.message, spec ? attnc_spec_diagnostics(spec) : "");
        attnc_spec_free(spec);
        return;
    }
    if (s->width)
        setenv("ATTNC_LLVM_VECTOR_WIDTH", s->width, 1);
    else
        unsetenv("ATTNC_LLVM_VECTOR_WIDTH");
    attnc_options lo = {ATTNC_BACKEND_LLVM, s->threads, NULL, 0, s->tile_q, s->tile_k, 0};
    attnc_options io = {ATTNC_BACKEND_INTERP, 1, NULL, 0, 0, 0, 0};
    attnc_kernel *kl = NULL, *ki = NULL;
    if (attnc_compile(spec, NULL, &lo, &kl, &err) || attnc_compile(spec, NULL, &io, &ki, &err)) {
        CHECK(0, "compile '%s': %s", v->text, err.message);
        attnc_kernel_free(kl);
        attnc_spec_free(spec);
        return;
    }
    ExampleArgs ea;
    memset(&ea, 0, sizeof ea);
    ea.sz = s->sz;
    parse_items(v, &ea);
    attnc_param params[MAX_ITEMS];
    attnc_tensor tensors[MAX_ITEMS];
    memset(tensors, 0, sizeof tensors);
    const char *why = NULL;
    int np = make_params(kl, &ea, params, &why), nt = np < 0 ? -1 : make_tensors(kl, &ea, params, np, tensors, &why);
    const attnc_sizes *z = &s->sz;
    size_t rows = (size_t)(z->B * z->H * z->Lq), no = rows * (size_t)z->Dv;
    float *q = random_floats(rows * (size_t)z->D);
    float *k = random_floats((size_t)(z->B * z->Hkv * z->Lk * z->D));
    float *vv = random_floats((size_t)(z->B * z->Hkv * z->Lk * z->Dv));
    float *o1 = malloc(sizeof(float) * (no + 1)), *o2 = malloc(sizeof(float) * (no + 1));
    float *l1 = malloc(sizeof(float) * (rows + 1)), *l2 = malloc(sizeof(float) * (rows + 1));
    char what[200];
    snprintf(what, sizeof what,
             "%.40s B=%lld H=%lld Hkv=%lld Lq=%lld Lk=%lld D=%lld Dv=%lld threads=%d tiles=%dx%d W=%s", v->text,
             (long long)z->B, (long long)z->H, (long long)z->Hkv, (long long)z->Lq, (long long)z->Lk, (long long)z->D,
             (long long)z->Dv, s->threads, s->tile_q, s->tile_k, s->width ? s->width : "host");
    if (np < 0 || nt < 0) {
        CHECK(0, "%s: %s", what, why);
    } else {
        attnc_args a1 = {*z, q, k, vv, o1, l1, params, np, tensors, nt}, a2 = a1;
        a2.o = o2;
        a2.lse = l2;
        attnc_status st1 = attnc_kernel_run(kl, &a1, &err);
        CHECK(st1 == ATTNC_OK, "%s: llvm run: %s", what, err.message);
        attnc_status st2 = attnc_kernel_run(ki, &a2, &err);
        CHECK(st2 == ATTNC_OK, "%s: interpreter run: %s", what, err.message);
        int bad = 0;
        for (size_t i = 0; !st1 && !st2 && i < no + rows && bad < 3; i++) {
            float got = i < no ? o1[i] : l1[i - no], want = i < no ? o2[i] : l2[i - no];
            if (!close_enough(got, want, TOLERANCE)) {
                bad++;
                CHECK(0, "%s: %s[%zu] = %.9g, the interpreter gives %.9g", what, i < no ? "O" : "LSE",
                      i < no ? i : i - no, got, want);
            }
        }
        if (round == 0 && !bad) printf("ok %s\n", what);
    }
    for (int i = 0; i < (nt > 0 ? nt : 0); i++) free((void *)tensors[i].data);
    free(q);
    free(k);
    free(vv);
    free(o1);
    free(o2);
    free(l1);
    free(l2);
    attnc_kernel_free(kl);
    attnc_kernel_free(ki);
    attnc_spec_free(spec);
}

static int pick(const int *xs, int n) { return xs[rng_next() % (uint64_t)n]; }
static int odd_between(int lo, int hi) { return (lo + (int)(rng_next() % (uint64_t)(hi - lo + 1))) | 1; }

static void random_shapes(void) {
    static const int Ds[] = {16, 40, 64, 128}, Dvs[] = {8, 24, 40, 72}, groups[] = {1, 2, 3};
    static const int tiles[][2] = {{0, 0}, {0, 0}, {16, 16}, {10, 24}, {80, 48}};
    static const char *widths[] = {NULL, NULL, NULL, "8", "4"};
    /* rounds 0, 1 and 3: Lk = Lq with Dv != D on one thread; Lk != Lq with Dv = D, and with Dv != D, on two (a
     * round 2 repeated round 0's kind of shape: ~20 s of CI's CPU) */
    for (int v = 0; v < NVARIANTS; v++)
        for (int round = 0; round < 4; round += round == 1 ? 2 : 1) {
            Shape s;
            memset(&s, 0, sizeof s);
            s.sz.B = 1 + (int64_t)(rng_next() % 2);
            s.sz.Hkv = 1 + (int64_t)(rng_next() % 2);
            s.sz.H = s.sz.Hkv * pick(groups, 3);
            s.sz.Lq = odd_between(1, 150);
            s.sz.Lk = round % 2 ? odd_between(1, 150) : s.sz.Lq;
            s.sz.D = pick(Ds, 4);
            s.sz.Dv = round == 1 ? s.sz.D : pick(Dvs, 4);
            s.threads = 1 + round % 2;
            int t = (int)(rng_next() % 5);
            s.tile_q = tiles[t][0];
            s.tile_k = tiles[t][1];
            s.width = widths[(v + round) % 5];
            differential(&VARIANTS[v], &s, round);
        }
    unsetenv("ATTNC_LLVM_VECTOR_WIDTH");
}

/* A call that must fail with ATTNC_ERR_RUNTIME and leave O and LSE as they were. */
static void expect_runtime_error(const char *text, const attnc_sizes *sz, const attnc_param *params, int np,
                                 const attnc_tensor *tensors, int nt, const char *what) {
    attnc_spec *spec = NULL;
    attnc_error err = {0};
    attnc_kernel *k = NULL;
    attnc_options o = {ATTNC_BACKEND_LLVM, 2, NULL, 0, 0, 0, 0};
    if (attnc_spec_from_string("err.attn", text, strlen(text), &spec, &err) ||
        attnc_compile(spec, NULL, &o, &k, &err)) {
        CHECK(0, "%s: %s", what, err.message);
        attnc_spec_free(spec);
        return;
    }
    size_t rows = (size_t)(sz->B * sz->H * sz->Lq), no = rows * (size_t)sz->Dv;
    float *q = random_floats(rows * (size_t)sz->D), *kk = random_floats((size_t)(sz->B * sz->Hkv * sz->Lk * sz->D));
    float *v = random_floats((size_t)(sz->B * sz->Hkv * sz->Lk * sz->Dv));
    float *out = malloc(sizeof(float) * (no + 1)), *lse = malloc(sizeof(float) * (rows + 1));
    for (size_t i = 0; i < no; i++) out[i] = 1234.5f;
    for (size_t i = 0; i < rows; i++) lse[i] = -77.0f;
    attnc_args a = {*sz, q, kk, v, out, lse, params, np, tensors, nt};
    attnc_status st = attnc_kernel_run(k, &a, &err);
    CHECK(st == ATTNC_ERR_RUNTIME, "%s: status %d (%s), expected a runtime error", what, st, err.message);
    int untouched = 1;
    for (size_t i = 0; i < no; i++) untouched &= out[i] == 1234.5f;
    for (size_t i = 0; i < rows; i++) untouched &= lse[i] == -77.0f;
    CHECK(untouched, "%s: O or LSE was written by a failed call", what);
    if (st == ATTNC_ERR_RUNTIME) printf("ok %s: %s\n", what, err.message);
    free(q);
    free(kk);
    free(v);
    free(out);
    free(lse);
    attnc_kernel_free(k);
    attnc_spec_free(spec);
}

static void error_paths(void) {
    attnc_sizes sz = {1, 2, 2, 37, 45, 16, 8};
    expect_runtime_error("attention w { use sliding_window; }", &sz, NULL, 0, NULL, 0, "missing param");
    int32_t doc[64] = {0};
    attnc_tensor wrong = {"doc", ATTNC_I32, 1, {46}, doc};
    expect_runtime_error("attention d { use document; }", &sz, NULL, 0, &wrong, 1, "wrong tensor shape");
    float t[64] = {0};
    attnc_tensor small = {"t", ATTNC_F32, 1, {8}, t};
    /* no mask: every tile is FULL, and the fault check must still run */
    expect_runtime_error("attention oob { tensor t : float[8]; bias t[kv]; }", &sz, NULL, 0, &small, 1,
                         "out-of-range index at a kept position");
    /* only the last key of the last tile reads past the end */
    attnc_tensor last = {"t", ATTNC_F32, 1, {44}, t};
    expect_runtime_error("attention oob2 { use causal_bottom_right; tensor t : float[Lk - 1]; bias t[kv]; }", &sz, NULL,
                         0, &last, 1, "out-of-range index at the last kept key");
    attnc_tensor rowt = {"r", ATTNC_F32, 1, {30}, t};
    expect_runtime_error("attention oobrow { tensor r : float[30]; score score + r[q]; }", &sz, NULL, 0, &rowt, 1,
                         "out-of-range row index in a score clause");
    expect_runtime_error("attention dz { param z : int = 0; bias float(kv / z); }", &sz, NULL, 0, NULL, 0,
                         "division by zero at a kept position");
    expect_runtime_error("attention mz { use causal; bias float(q % (kv - 5)); }", &sz, NULL, 0, NULL, 0,
                         "modulo by zero at one kept key");
    /* the same reads under a mask that drops them: no error, same result as the interpreter */
    Variant masked = {"attention oobm { tensor t : float[8]; mask kv < 8; bias t[kv]; }", NULL, NULL};
    Shape s = {sz, 2, 0, 0, NULL};
    differential(&masked, &s, 0);
}

/* The code as text: the IR before and after optimisation, and assembly. */
static void emit_text(void) {
    const char *text = "attention e { use causal; use softcap; }";
    attnc_spec *spec = NULL;
    attnc_error err = {0};
    attnc_kernel *k = NULL;
    attnc_options o = {ATTNC_BACKEND_LLVM, 1, NULL, 0, 0, 0, 0};
    if (attnc_spec_from_string("emit.attn", text, strlen(text), &spec, &err) ||
        attnc_compile(spec, NULL, &o, &k, &err)) {
        CHECK(0, "emit: %s", err.message);
        attnc_spec_free(spec);
        return;
    }
    char *ir = NULL, *as = NULL;
    CHECK(attnc_kernel_emit(k, "llvm-ir", NULL, 0, &ir, &err) == ATTNC_OK, "emit llvm-ir: %s", err.message);
    CHECK(attnc_kernel_emit(k, "asm", NULL, 0, &as, &err) == ATTNC_OK, "emit asm: %s", err.message);
    if (ir) {
        const char *before = strstr(ir, "before optimisation"), *after = strstr(ir, "after default<O3>");
        CHECK(before && after && before < after, "llvm-ir: no before/after sections");
        CHECK(strstr(ir, "define i32 @attnc_tile(") && strstr(ir, "define i64 @attnc_scratch("),
              "llvm-ir: the kernel functions are missing");
    }
    if (as) CHECK(strstr(as, "attnc_tile:") != NULL, "asm: no attnc_tile label");
    if (ir && as) printf("ok emit: %zu bytes of LLVM IR, %zu of assembly\n", strlen(ir), strlen(as));
    attnc_free(ir);
    attnc_free(as);
    attnc_kernel_free(k);
    attnc_spec_free(spec);
}

/* ---- threads ------------------------------------------------------------- */

typedef struct Job {
    const Variant *v;
    Shape s;
    int id;
} Job;

static void *run_job(void *arg) {
    Job *j = arg;
    differential(j->v, &j->s, 1);
    return NULL;
}

/* One kernel run from two threads at once (each call itself on 2 threads),
 * and distinct kernels compiled at once. */
static void concurrency(void) {
    pthread_t th[4];
    Job jobs[4];
    for (int i = 0; i < 4; i++) {
        jobs[i].v = &VARIANTS[i % 2 ? 3 : 8];
        memset(&jobs[i].s, 0, sizeof jobs[i].s);
        jobs[i].s.sz = (attnc_sizes){2, 4, 2, 65 + 2 * i, 77, 64, 32};
        jobs[i].s.threads = 2;
        jobs[i].id = i;
    }
    for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, run_job, &jobs[i]);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    printf("ok concurrent compiles and runs\n");
}

/* Compile, run, free n distinct kernels (more than the cache keeps: run
 * with ATTNC_LLVM_IDLE_KERNELS below n), then every third again (recompiled
 * after eviction). */
static void cycles(int n) {
    attnc_sizes sz = {1, 1, 1, 9, 13, 16, 16};
    for (int pass = 0; pass < 2; pass++)
        for (int i = 1; i <= n; i += pass ? 3 : 1) {
            char text[160];
            snprintf(text, sizeof text, "attention cyc%d { bias float(kv %% %d) * 0.25; mask kv <= q + %d; }", i, i,
                     i % 3);
            Variant v = {text, NULL, NULL};
            Shape s = {sz, 1 + i % 2, 0, 0, NULL};
            differential(&v, &s, 1);
        }
    printf("ok compile/run/free cycles\n");
}

int main(int argc, char **argv) {
    if (!attnc_backend_available(ATTNC_BACKEND_LLVM)) {
        printf("skipped: this build has no LLVM backend\n");
        return 77;
    }
    rng_seed(20261122);
    if (argc == 3 && strcmp(argv[1], "--cycles") == 0 && atoi(argv[2]) > 0) {
        cycles(atoi(argv[2]));
    } else if (argc == 1) {
        error_paths();
        emit_text();
        random_shapes();
        concurrency();
    } else {
        fprintf(stderr, "usage: test_llvm [--cycles N]\n");
        return 2;
    }
    printf("%d failure%s\n", failures, failures == 1 ? "" : "s");
    return failures != 0;
}
