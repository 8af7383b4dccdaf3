/* test_lang_v2.c — the version-2 constructs on the interpreter and every compiled backend (spec 9:
 * rows and dot, rotary, sink, sin/cos) against a naive computation written
 * here, through the public API only.
 *
 * The reference shares no code with attnc: rotary is an explicit D x D
 * rotation matrix applied to each row, relative embeddings are explicit dot
 * products with the tensor's rows, a sink is one more term of the softmax.
 * Each case runs on random inputs (odd D, Lq != Lk, GQA, rows with nothing
 * kept); |got - want| <= 1e-5 (1 + |want|).  A negative case compares one
 * spec with the reference of another and must mismatch (the comparison can
 * fail); error cases check the runtime errors and refusals of spec 9. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attnc.h"
#include "support.h"

enum { MAXD = 16 };

/* One case: the spec and what its reference needs to know. */
typedef struct Case {
    const char *name, *spec;
    attnc_sizes sz;
    int rope;                /* rotate Q and K */
    int rope_dims, rope_il;  /* dims (0: D), interleaved */
    double rope_base;
    int pos_ids;             /* positions from tensors pq[q], pk[kv] */
    int causal, window, lag; /* masks: kv <= q; q - kv < window (0: none); kv <= q - lag */
    int shaw;                /* bias dot(Q, E[clamp(kv - q, -M, M) + M]) / sqrt(D), M = 3 */
    int deberta;             /* bias (dot(Q, Pk[d]) + dot(K, Pq[d])) / sqrt(3 D), scale 1/sqrt(3 D), k = 4 */
    int sink;                /* sink sinks[h] */
    int trig;                /* bias sin(float(kv)) * cos(float(q)) */
} Case;

typedef struct Inputs {
    float *q, *k, *v, *E, *Pk, *Pq, *sinks;
    int32_t *pq, *pk;
} Inputs;

/* ---- the naive reference ------------------------------------------------ */

/* x := R(pos) x with R the explicit rotation matrix of spec 9.3. */
static void rotate(const Case *c, int64_t D, int64_t pos, double *x) {
    double R[MAXD][MAXD] = {{0}}, y[MAXD] = {0};
    int64_t dims = c->rope_dims ? c->rope_dims : D;
    for (int64_t i = 0; i < D; i++) R[i][i] = 1;
    for (int64_t i = 0; i < dims / 2; i++) {
        double a = (double)pos * pow(c->rope_base, -2.0 * (double)i / (double)dims);
        int64_t j = c->rope_il ? 2 * i : i, k = c->rope_il ? 2 * i + 1 : i + dims / 2;
        R[j][j] = cos(a), R[j][k] = -sin(a), R[k][j] = sin(a), R[k][k] = cos(a);
    }
    for (int64_t i = 0; i < D; i++)
        for (int64_t j = 0; j < D; j++) y[i] += R[i][j] * x[j];
    memcpy(x, y, sizeof(double) * (size_t)D);
}

static double dotd(const double *a, const float *b, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static int64_t clampi(int64_t x, int64_t lo, int64_t hi) { return x < lo ? lo : x > hi ? hi : x; }

static void reference(const Case *c, const Inputs *in, double *o, double *lse) {
    const attnc_sizes *z = &c->sz;
    int64_t D = z->D, Dv = z->Dv, group = z->H / z->Hkv;
    double *s = malloc(sizeof(double) * (size_t)z->Lk), qr[MAXD], kr[MAXD];
    for (int64_t b = 0; b < z->B; b++)
        for (int64_t h = 0; h < z->H; h++)
            for (int64_t qi = 0; qi < z->Lq; qi++) {
                int64_t hk = h / group, row = (b * z->H + h) * z->Lq + qi;
                double m = c->sink ? in->sinks[h] : -INFINITY, l = 0;
                int any = 0;
                for (int64_t kv = 0; kv < z->Lk; kv++) {
                    int keep = (!c->causal || kv <= qi) && (!c->window || qi - kv < c->window) &&
                               (!c->lag || kv <= qi - c->lag);
                    s[kv] = NAN;
                    if (!keep) continue;
                    for (int64_t d = 0; d < D; d++) {
                        qr[d] = in->q[row * D + d];
                        kr[d] = in->k[((b * z->Hkv + hk) * z->Lk + kv) * D + d];
                    }
                    if (c->rope) {
                        rotate(c, D, c->pos_ids ? in->pq[qi] : qi, qr);
                        rotate(c, D, c->pos_ids ? in->pk[kv] : kv, kr);
                    }
                    double dot = 0;
                    for (int64_t d = 0; d < D; d++) dot += qr[d] * kr[d];
                    double x = dot / sqrt((double)(c->deberta ? 3 * D : D));
                    if (c->shaw) x += dotd(qr, in->E + (clampi(kv - qi, -3, 3) + 3) * D, D) / sqrt((double)D);
                    if (c->deberta) {
                        int64_t dd = clampi(qi - kv, -4, 3) + 4;
                        x += (dotd(qr, in->Pk + dd * D, D) + dotd(kr, in->Pq + dd * D, D)) / sqrt(3.0 * (double)D);
                    }
                    if (c->trig) x += sin((double)kv) * cos((double)qi);
                    s[kv] = x;
                    any = 1;
                    if (x > m) m = x;
                }
                for (int64_t d = 0; d < Dv; d++) o[row * Dv + d] = 0;
                if (!any) {
                    lse[row] = c->sink ? in->sinks[h] : -INFINITY;
                    continue;
                }
                if (c->sink) l = exp(in->sinks[h] - m); /* the extra term: score sink, value 0 */
                for (int64_t kv = 0; kv < z->Lk; kv++) {
                    if (isnan(s[kv])) continue;
                    double p = exp(s[kv] - m);
                    l += p;
                    for (int64_t d = 0; d < Dv; d++) o[row * Dv + d] += p * in->v[((b * z->Hkv + hk) * z->Lk + kv) * Dv + d];
                }
                for (int64_t d = 0; d < Dv; d++) o[row * Dv + d] /= l;
                lse[row] = m + log(l);
            }
    free(s);
}

/* ---- running attnc -------------------------------------------------------- */

static float *rand_n(int64_t n) { return random_floats((size_t)(n > 0 ? n : 1)); }

static int32_t *rand_pos(int64_t n) {
    int32_t *p = malloc(sizeof(int32_t) * (size_t)(n > 0 ? n : 1));
    for (int64_t i = 0; i < n; i++) p[i] = (int32_t)(rng_next() % 1000);
    return p;
}

static void make_inputs(const attnc_sizes *z, Inputs *in) {
    in->q = rand_n(z->B * z->H * z->Lq * z->D);
    in->k = rand_n(z->B * z->Hkv * z->Lk * z->D);
    in->v = rand_n(z->B * z->Hkv * z->Lk * z->Dv);
    in->E = rand_n(7 * z->D);
    in->Pk = rand_n(8 * z->D);
    in->Pq = rand_n(8 * z->D);
    in->sinks = rand_n(z->H);
    for (int64_t h = 0; h < z->H; h++) in->sinks[h] *= 4;
    in->pq = rand_pos(z->Lq);
    in->pk = rand_pos(z->Lk);
}

static void free_inputs(Inputs *in) {
    free(in->q), free(in->k), free(in->v), free(in->E), free(in->Pk), free(in->Pq), free(in->sinks);
    free(in->pq), free(in->pk);
}

/* Compile `spec` for backend and run it on in: the status, O and LSE (float). */
static attnc_status run_spec(const char *spec, attnc_backend backend, const attnc_sizes *z, const Inputs *in,
                             float *o, float *lse, attnc_error *err) {
    attnc_spec *sp = NULL;
    attnc_kernel *k = NULL;
    attnc_status st = attnc_spec_from_string("v2.attn", spec, strlen(spec), &sp, err);
    attnc_options opts = {0};
    opts.backend = backend;
    if (!st) st = attnc_compile(sp, NULL, &opts, &k, err);
    if (!st) {
        /* each tensor the spec declares, with the shape it asks for (the data is large enough) */
        attnc_tensor t[] = {
            {"E", ATTNC_F32, 0, {0}, in->E},         {"Pk", ATTNC_F32, 0, {0}, in->Pk},
            {"Pq", ATTNC_F32, 0, {0}, in->Pq},       {"sinks", ATTNC_F32, 0, {0}, in->sinks},
            {"pq", ATTNC_I32, 0, {0}, in->pq},       {"pk", ATTNC_I32, 0, {0}, in->pk},
        };
        attnc_tensor mine[6];
        int n = 0;
        for (int j = 0; j < attnc_kernel_tensor_count(k) && !st; j++)
            for (int i = 0; i < 6; i++)
                if (strcmp(attnc_kernel_tensor_info(k, j, NULL, &t[i].rank), t[i].name) == 0) {
                    st = attnc_kernel_tensor_shape(k, j, z, NULL, 0, t[i].shape, err);
                    mine[n++] = t[i];
                }
        attnc_args a = {*z, in->q, in->k, in->v, o, lse, NULL, 0, mine, n};
        if (!st) st = attnc_kernel_run(k, &a, err);
    }
    attnc_kernel_free(k);
    attnc_spec_free(sp);
    return st;
}

static int failures;

/* Run case c's spec (or `spec` instead) on backend and compare with c's reference: 1 when they agree within tol. */
static int agrees_on(const Case *c, const char *spec, attnc_backend backend, double tol, double *worst) {
    const attnc_sizes *z = &c->sz;
    int64_t rows = z->B * z->H * z->Lq;
    Inputs in;
    make_inputs(z, &in);
    float *o = calloc((size_t)(rows * z->Dv + 1), sizeof(float)), *lse = calloc((size_t)rows + 1, sizeof(float));
    double *ro = calloc((size_t)(rows * z->Dv + 1), sizeof(double)), *rl = calloc((size_t)rows + 1, sizeof(double));
    attnc_error err = {0};
    int ok = !run_spec(spec ? spec : c->spec, backend, z, &in, o, lse, &err);
    if (!ok) printf("  %s: %s\n", c->name, err.message);
    reference(c, &in, ro, rl);
    *worst = 0;
    for (int64_t r = 0; ok && r < rows; r++) {
        int masked = isinf(rl[r]) || (c->sink && c->lag && r % z->Lq < c->lag);
        for (int64_t d = 0; d < z->Dv; d++) {
            double e = fabs(o[r * z->Dv + d] - ro[r * z->Dv + d]) / (1 + fabs(ro[r * z->Dv + d]));
            if (masked && o[r * z->Dv + d] != 0) e = INFINITY; /* nothing kept: exactly 0 */
            if (!(e <= *worst)) *worst = e;
        }
        double e = isinf(rl[r]) ? (lse[r] == rl[r] ? 0 : INFINITY) : fabs(lse[r] - rl[r]) / (1 + fabs(rl[r]));
        if (!(e <= *worst)) *worst = e;
    }
    ok = ok && *worst <= tol;
    free(o), free(lse), free(ro), free(rl);
    free_inputs(&in);
    return ok;
}

static int agrees(const Case *c, const char *spec, double *worst) {
    return agrees_on(c, spec, ATTNC_BACKEND_INTERP, 1e-5, worst);
}

static void check(int ok, const char *what, const char *detail) {
    printf("%s %s%s%s\n", ok ? "ok" : "FAIL", what, detail ? ": " : "", detail ? detail : "");
    failures += !ok;
}

/* spec run on backend fails with `want` and a message containing `text`. */
static void expect_error(const char *what, const char *spec, attnc_backend backend, attnc_status want,
                         const char *text) {
    attnc_sizes z = {1, 2, 1, 5, 6, 8, 4};
    Inputs in;
    make_inputs(&z, &in);
    float o[2 * 5 * 4], lse[10];
    attnc_error err = {0};
    attnc_status st = run_spec(spec, backend, &z, &in, o, lse, &err);
    check(st == want && strstr(err.message, text) != NULL, what, err.message);
    free_inputs(&in);
}

int main(void) {
    rng_seed(42);
    static const Case cases[] = {
        {"rope-llama-partial", "attention a { use causal; rotary(base = 500000.0, dims = 12); }",
         {2, 4, 2, 13, 17, 16, 8}, .rope = 1, .rope_dims = 12, .rope_base = 500000.0, .causal = 1},
        {"rope-gptj-position-ids",
         "attention a { tensor pq : int[Lq]; tensor pk : int[Lk]; rotary(interleaved = true, qpos = pq[q], "
         "kvpos = pk[kv]); }",
         {1, 3, 1, 9, 14, 10, 5}, .rope = 1, .rope_il = 1, .rope_base = 10000.0, .pos_ids = 1},
        {"shaw-relative-odd-D",
         "attention a { param M : int = 3; tensor E : float[2 * M + 1, D]; use causal;\n"
         "  bias dot(Q, E[clamp(kv - q, -M, M) + M]) / sqrt(float(D)); }",
         {2, 2, 2, 11, 11, 7, 3}, .shaw = 1, .causal = 1},
        {"deberta",
         "attention a { param k : int = 4; tensor Pk : float[2 * k, D]; tensor Pq : float[2 * k, D];\n"
         "  scale 1.0 / sqrt(3.0 * float(D)); let d = clamp(q - kv, -k, k - 1) + k;\n"
         "  bias (dot(Q, Pk[d]) + dot(K, Pq[d])) / sqrt(3.0 * float(D)); }",
         {1, 4, 2, 10, 12, 6, 4}, .deberta = 1},
        {"sink-window-masked-rows",
         "attention a { tensor sinks : float[H]; use causal; use sliding_window(window = 4); mask kv <= q - 2;\n"
         "  sink sinks[h]; }",
         {2, 4, 2, 9, 9, 8, 6}, .sink = 1, .causal = 1, .window = 4, .lag = 2},
        {"rope-rows-and-trig",
         "attention a { param M : int = 3; tensor E : float[2 * M + 1, D]; rotary(dims = 4);\n"
         "  bias dot(Q, E[clamp(kv - q, -M, M) + M]) / sqrt(float(D)) + sin(float(kv)) * cos(float(q)); }",
         {1, 2, 1, 8, 6, 6, 6}, .rope = 1, .rope_dims = 4, .rope_base = 10000.0, .shaw = 1, .trig = 1},
    };
    char buf[64];
    double worst;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int ok = agrees(&cases[i], NULL, &worst);
        snprintf(buf, sizeof buf, "max error %.2g", worst);
        check(ok, cases[i].name, buf);
    }
    /* every case on every compiled backend (float32: a looser bound): rotary and sinks around the kernel, dot
     * products of rows as per-call tables */
    static const attnc_backend compiled[] = {ATTNC_BACKEND_LLVM, ATTNC_BACKEND_TCC, ATTNC_BACKEND_REFPLAN,
                                             ATTNC_BACKEND_CUDA_EMU};
    static const int around[] = {0, 1, 2, 3, 4, 5};
    for (size_t b = 0; b < sizeof compiled / sizeof compiled[0]; b++)
        for (size_t i = 0; i < sizeof around / sizeof around[0] && attnc_backend_available(compiled[b]); i++) {
            char what[128];
            int ok = agrees_on(&cases[around[i]], NULL, compiled[b], 2e-5, &worst);
            snprintf(what, sizeof what, "%s on %s", cases[around[i]].name, attnc_backend_name(compiled[b]));
            snprintf(buf, sizeof buf, "max error %.2g", worst);
            check(ok, what, buf);
        }
    /* the comparison can fail: GPT-J's pairs against Llama's reference, a sink dropped */
    check(!agrees(&cases[0], "attention a { use causal; rotary(base = 500000.0, dims = 12, interleaved = true); }",
                  &worst), "negative: interleaved pairs differ from the reference", NULL);
    check(!agrees(&cases[4], "attention a { tensor sinks : float[H]; use causal; use sliding_window(window = 4);\n"
                              "  mask kv <= q - 2; }", &worst), "negative: a dropped sink differs", NULL);
    check(!agrees(&cases[3], "attention a { param k : int = 4; tensor Pk : float[2 * k, D]; tensor Pq : float[2 * k, D];\n"
                              "  scale 1.0 / sqrt(3.0 * float(D)); let d = clamp(kv - q, -k, k - 1) + k;\n"
                              "  bias (dot(Q, Pk[d]) + dot(K, Pq[d])) / sqrt(3.0 * float(D)); }", &worst),
          "negative: a mirrored relative index differs", NULL);

    expect_error("odd rotary dims from a param is an error of the call",
                 "attention a { param r : int = 5; rotary(dims = r); }", ATTNC_BACKEND_INTERP, ATTNC_ERR_RUNTIME,
                 "rotary's dims is 5");
    expect_error("rotary dims over D", "attention a { rotary(dims = 10); }", ATTNC_BACKEND_INTERP,
                 ATTNC_ERR_RUNTIME, "between 0 and D = 8");
    expect_error("rows of different lengths", "attention a { tensor E : float[7, Dv]; bias dot(Q, E[0]); }",
                 ATTNC_BACKEND_INTERP, ATTNC_ERR_RUNTIME, "different lengths (8 and 4)");
    expect_error("a tensor row's index out of range",
                 "attention a { tensor E : float[2, D]; mask kv <= q; bias dot(K, E[q - kv]); }",
                 ATTNC_BACKEND_INTERP, ATTNC_ERR_RUNTIME, "out of range");
    expect_error("a qpos index out of range",
                 "attention a { tensor pq : int[3]; rotary(qpos = pq[q]); }", ATTNC_BACKEND_INTERP,
                 ATTNC_ERR_RUNTIME, "out of range");
    /* lazy (spec 5.3): a row index is evaluated only where the masks keep the element */
    attnc_sizes z = {1, 2, 1, 5, 6, 8, 4};
    Inputs in;
    make_inputs(&z, &in);
    float o[40], lse[10];
    attnc_error err = {0};
    check(!run_spec("attention a { tensor E : float[7, D]; mask kv <= q && q - kv < 7; bias dot(K, E[q - kv]); }",
                    ATTNC_BACKEND_INTERP, &z, &in, o, lse, &err),
          "a guarded row index is no error", err.message);
    free_inputs(&in);
    if (attnc_backend_available(ATTNC_BACKEND_TCC)) /* compiled as a sum (middle/rows_table.h), checked per call */
        expect_error("a compiled kernel's dot of tensor rows of different lengths",
                     "attention a { tensor E : float[2, D]; tensor Pk : float[2, 4]; mask kv > Lk; "
                     "bias dot(E[0], Pk[1]) + dot(Q, K); }",
                     ATTNC_BACKEND_TCC, ATTNC_ERR_RUNTIME, "dot of rows of different lengths (8 and 4)");
    if (attnc_backend_available(ATTNC_BACKEND_TCC)) {
        /* around a compiled kernel: a position id out of range is an error only where a kept element needs it */
        expect_error("a compiled kernel's position out of range, used",
                     "attention a { tensor pk : int[4]; rotary(kvpos = pk[kv]); }", ATTNC_BACKEND_TCC,
                     ATTNC_ERR_RUNTIME, "index 4 is out of range [0, 4)");
        z = (attnc_sizes){1, 2, 1, 5, 6, 8, 4};
        make_inputs(&z, &in);
        check(!run_spec("attention a { tensor pk : int[4]; mask kv < 4; rotary(kvpos = pk[kv]); }", ATTNC_BACKEND_TCC,
                        &z, &in, o, lse, &err),
              "a compiled kernel's unused position out of range is no error", err.message);
        free_inputs(&in);
        expect_error("a compiled kernel's row index out of range: the interpreter's message",
                     "attention a { tensor E : float[2, D]; mask kv <= q; bias dot(K, E[q - kv]); }", ATTNC_BACKEND_TCC,
                     ATTNC_ERR_RUNTIME, "index 2 is out of range [0, 2) in dimension 0 of tensor 'E'");
        expect_error("a sink's index out of range", "attention a { tensor sinks : float[1]; sink sinks[h]; }",
                     ATTNC_BACKEND_TCC, ATTNC_ERR_RUNTIME, "out of range");
        /* ahead-of-time C and the CUDA text merge the sink themselves (backends/c/c_emit_v2.c,
         * backends/cuda/cuda_emit_v2.c); LLVM IR would compute without it: emit refuses that target */
        attnc_spec *sp = NULL;
        attnc_kernel *k = NULL;
        attnc_options opts = {0};
        opts.backend = ATTNC_BACKEND_TCC;
        char *text = NULL;
        const char *spec = "attention a { sink 1.0; }";
        attnc_status st = attnc_spec_from_string("v2.attn", spec, strlen(spec), &sp, &err);
        if (!st) st = attnc_compile(sp, NULL, &opts, &k, &err);
        if (!st) st = attnc_kernel_emit(k, "c", NULL, 0, &text, &err);
        check(!st && strstr(text, "attnc_v2_sink(") && strstr(text, "attnc_v2_merge_sink("),
              "emit --target c merges the sink", st ? err.message : "");
        attnc_free(text);
        text = NULL;
        st = attnc_kernel_emit(k, "cuda", NULL, 0, &text, &err);
        check(!st && strstr(text, "attnc_v2_sink(") && strstr(text, "a_v2_merge"), "emit --target cuda merges the sink",
              st ? err.message : "");
        attnc_free(text);
        text = NULL;
        st = attnc_kernel_emit(k, "llvm-ir", NULL, 0, &text, &err);
        check(st == ATTNC_ERR_USAGE && strstr(err.message, "would compute without it"),
              "emit --target llvm-ir refuses a sink", err.message);
        attnc_free(text);
        attnc_kernel_free(k);
        attnc_spec_free(sp);
    }
    printf("%s\n", failures ? "FAILED" : "all passed");
    return failures != 0;
}
