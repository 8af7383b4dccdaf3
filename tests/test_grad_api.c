/* test_grad_api.c — attnc_kernel_backward on the interpreter, through the
 * public API only: the plumbing around the reference backward that
 * tests/test_grad_interp.c checks against finite differences.
 *
 * On examples/low_rank_bias.attn (two float tensors, GQA, Lq != Lk):
 * - gradients asked for one at a time equal those of the full call, and
 *   outputs are overwritten, not accumulated into;
 * - f16 and bf16 Q, K, V and dO give exactly the gradients of the float32
 *   contiguous call on their widened values; 16-bit dQ, dK, dV are those
 *   rounded to their type (within one unit: rounding once from float64 may
 *   differ from rounding the float32 on a tie);
 * - [B, L, H, D] Q, K, V, O, dO, dQ, dK, dV and [B, L, H] LSE and dLSE give
 *   exactly the contiguous call's gradients.
 * Rows that keep nothing (masked; softmax scores all -inf) have zero
 * gradient whatever their dO and dLSE.
 * Hostile calls are refused with ATTNC_ERR_USAGE and a message, writing
 * nothing: LSE NULL, an unknown, int or repeated tensor gradient, outputs
 * overlapping each other, a backend without a backward pass.  A runtime
 * error of the forward (an index out of range) is reported by the backward
 * with the forward's status and message, writing nothing.
 *
 * Usage: test_grad_api EXAMPLES_DIR */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attnc.h"
#include "half.h"
#include "support.h"

static int fails, passes;

static void check(int ok, const char *fmt, ...) {
    char what[700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (ok) passes++;
    else fails++;
    if (!ok || getenv("VERBOSE")) printf("%s %s\n", ok ? "ok" : "FAIL", what);
}

enum { SENTINEL = 0x7e, NGRAD = 5 }; /* dQ, dK, dV, dU, dW */
static const char *const GRAD_NAMES[NGRAD] = {"dQ", "dK", "dV", "dU", "dW"};

/* One call's inputs (float32 contiguous) and its bound pieces. */
typedef struct Setup {
    attnc_kernel *k;
    attnc_sizes sz;
    attnc_param params[MAX_ITEMS];
    attnc_tensor tensors[MAX_ITEMS];
    int np, nt;
    float *q, *kk, *v, *dout, *dlse;
    size_t n[NGRAD]; /* element counts of the gradients */
    size_t no, rows;
} Setup;

/* Gradients as float32 contiguous buffers. */
typedef struct Grads {
    float *g[NGRAD];
} Grads;

static attnc_kernel *compile_text(const char *name, const char *text, attnc_backend b, attnc_error *err) {
    attnc_spec *s = NULL;
    attnc_kernel *k = NULL;
    attnc_options opts = {.backend = b};
    if (attnc_spec_from_string(name, text, strlen(text), &s, err) == ATTNC_OK) attnc_compile(s, NULL, &opts, &k, err);
    attnc_spec_free(s);
    return k;
}

static int grads_alloc(Grads *g, const Setup *S) {
    int ok = 1;
    for (int i = 0; i < NGRAD; i++) {
        g->g[i] = malloc(sizeof(float) * (S->n[i] + 1));
        if (g->g[i]) memset(g->g[i], SENTINEL, sizeof(float) * S->n[i]);
        ok &= g->g[i] != NULL;
    }
    return ok;
}

static void grads_free(Grads *g) {
    for (int i = 0; i < NGRAD; i++) free(g->g[i]);
}

/* Whether every byte of b still holds the sentinel. */
static int untouched(const void *b, size_t bytes) {
    for (size_t i = 0; i < bytes; i++)
        if (((const unsigned char *)b)[i] != SENTINEL) return 0;
    return 1;
}

static int setup(Setup *S, const char *dir) {
    char path[1024];
    size_t len;
    snprintf(path, sizeof path, "%s/low_rank_bias.attn", dir);
    char *text = read_file(path, &len);
    memset(S, 0, sizeof *S);
    if (!text) {
        printf("FAIL cannot read %s\n", path);
        return 0;
    }
    attnc_error err = {0};
    S->k = compile_text(path, text, ATTNC_BACKEND_INTERP, &err);
    free(text);
    if (!S->k) {
        printf("FAIL %s: %s\n", path, err.message);
        return 0;
    }
    ExampleArgs ea;
    char line[] = "--shape B=2,H=4,Hkv=2,Lq=9,Lk=11,D=5,Dv=3 --param rank=3";
    const char *why = NULL;
    if (!parse_args(line, &ea) || (S->np = make_params(S->k, &ea, S->params, &why)) < 0 ||
        (S->nt = make_tensors(S->k, &ea, S->params, S->np, S->tensors, &why)) != 2) {
        printf("FAIL setting up low_rank_bias: %s\n", why ? why : "bad example-args");
        S->nt = 0;
        return 0;
    }
    S->sz = ea.sz;
    const attnc_sizes *z = &S->sz;
    S->rows = (size_t)(z->B * z->H * z->Lq), S->no = S->rows * (size_t)z->Dv;
    S->n[0] = S->rows * (size_t)z->D;
    S->n[1] = (size_t)(z->B * z->Hkv * z->Lk * z->D), S->n[2] = (size_t)(z->B * z->Hkv * z->Lk * z->Dv);
    for (int i = 0; i < 2; i++) {
        S->n[3 + i] = 1;
        for (int r = 0; r < S->tensors[i].rank; r++) S->n[3 + i] *= (size_t)S->tensors[i].shape[r];
    }
    S->q = random_floats(S->n[0]), S->kk = random_floats(S->n[1]), S->v = random_floats(S->n[2]);
    S->dout = random_floats(S->no), S->dlse = random_floats(S->rows);
    return S->q && S->kk && S->v && S->dout && S->dlse;
}

/* The forward then the backward, float32 contiguous, with these inputs;
 * want[i] 0: gradient i not asked for. */
static attnc_status plain_backward(const Setup *S, const float *q, const float *k, const float *v, const float *dout,
                                   Grads *out, const int *want, attnc_error *err) {
    float *o = malloc(sizeof(float) * (S->no + 1)), *lse = malloc(sizeof(float) * (S->rows + 1));
    attnc_args a = {S->sz, q, k, v, o, lse, S->params, S->np, S->tensors, S->nt};
    attnc_tensor_grad dt[2];
    int ndt = 0;
    for (int i = 0; i < 2; i++)
        if (want[3 + i]) dt[ndt++] = (attnc_tensor_grad){S->tensors[i].name, out->g[3 + i]};
    attnc_grad g = {.dout = dout, .dlse = S->dlse, .dq = want[0] ? out->g[0] : NULL, .dk = want[1] ? out->g[1] : NULL,
                    .dv = want[2] ? out->g[2] : NULL, .dtensors = dt, .n_dtensors = ndt};
    attnc_status st = attnc_kernel_run(S->k, &a, err);
    if (!st) st = attnc_kernel_backward(S->k, &a, NULL, &g, err);
    free(o), free(lse);
    return st;
}

static int same(const float *a, const float *b, size_t n) { return !memcmp(a, b, n * sizeof(float)); }

/* Each gradient alone, into buffers holding garbage: the full call's values. */
static void test_one_at_a_time(const Setup *S, const Grads *ref) {
    for (int i = 0; i < NGRAD; i++) {
        Grads g;
        int want[NGRAD] = {0};
        want[i] = 1;
        attnc_error err = {0};
        if (!grads_alloc(&g, S)) return;
        attnc_status st = plain_backward(S, S->q, S->kk, S->v, S->dout, &g, want, &err);
        check(!st && same(g.g[i], ref->g[i], S->n[i]), "%s alone equals the full call's (%s)", GRAD_NAMES[i],
              err.message);
        for (int j = 0; j < NGRAD; j++)
            if (j != i)
                check(untouched(g.g[j], S->n[j] * sizeof(float)), "%s alone leaves %s alone", GRAD_NAMES[i],
                      GRAD_NAMES[j]);
        grads_free(&g);
    }
}

static uint16_t to16(attnc_elem e, float x) { return e == ATTNC_ELEM_F16 ? attnc_f32_to_f16(x) : attnc_f32_to_bf16(x); }
static float from16(attnc_elem e, uint16_t x) {
    return e == ATTNC_ELEM_F16 ? attnc_f16_to_f32(x) : attnc_bf16_to_f32(x);
}

/* x as 16-bit values (*h) and widened back (*w). */
static int halve(attnc_elem e, const float *x, size_t n, uint16_t **h, float **w) {
    *h = malloc(sizeof(uint16_t) * (n + 1)), *w = malloc(sizeof(float) * (n + 1));
    for (size_t i = 0; *h && *w && i < n; i++) (*w)[i] = from16(e, (*h)[i] = to16(e, x[i]));
    return *h && *w;
}

/* Q, K, V and dO stored as e; dQ, dK, dV as float32 (out16 0) or as e. */
static void test_half(const Setup *S, attnc_elem e, int out16) {
    const char *en = e == ATTNC_ELEM_F16 ? "f16" : "bf16";
    const float *src[4] = {S->q, S->kk, S->v, S->dout};
    size_t cnt[4] = {S->n[0], S->n[1], S->n[2], S->no};
    uint16_t *h[4] = {0};
    float *w[4] = {0};
    Grads ref = {0}, got = {0};
    int ok = 1, all[NGRAD] = {1, 1, 1, 1, 1};
    for (int i = 0; i < 4; i++) ok &= halve(e, src[i], cnt[i], &h[i], &w[i]);
    attnc_error err = {0};
    ok = ok && grads_alloc(&ref, S) && grads_alloc(&got, S) &&
         !plain_backward(S, w[0], w[1], w[2], w[3], &ref, all, &err);
    check(ok, "%s: the float32 call on the widened inputs (%s)", en, err.message);
    uint16_t *g16[3] = {0};
    for (int i = 0; ok && i < 3; i++) ok &= (g16[i] = malloc(sizeof(uint16_t) * (S->n[i] + 1))) != NULL;
    uint16_t *o16 = malloc(sizeof(uint16_t) * (S->no + 1));
    float *lse = malloc(sizeof(float) * (S->rows + 1));
    if (ok && o16 && lse) {
        attnc_layouts L = {.q = {.elem = e}, .k = {.elem = e}, .v = {.elem = e}, .o = {.elem = e}};
        attnc_args a = {S->sz, (const float *)h[0], (const float *)h[1], (const float *)h[2], (float *)o16, lse,
                        S->params, S->np, S->tensors, S->nt};
        attnc_tensor_grad dt[2] = {{S->tensors[0].name, got.g[3]}, {S->tensors[1].name, got.g[4]}};
        attnc_elem oe = out16 ? e : ATTNC_ELEM_F32;
        attnc_grad g = {.dout = h[3], .dlse = S->dlse, .dtensors = dt, .n_dtensors = 2,
                        .dout_layout = {.elem = e}, .dq_layout = {.elem = oe}, .dk_layout = {.elem = oe},
                        .dv_layout = {.elem = oe}};
        g.dq = out16 ? (void *)g16[0] : got.g[0], g.dk = out16 ? (void *)g16[1] : got.g[1];
        g.dv = out16 ? (void *)g16[2] : got.g[2];
        attnc_status st = attnc_kernel_run_layout(S->k, &a, &L, &err);
        if (!st) st = attnc_kernel_backward(S->k, &a, &L, &g, &err);
        check(!st, "%s backward, %s outputs (%s)", en, out16 ? en : "f32", err.message);
        for (int i = 0; !st && i < NGRAD; i++) {
            if (!out16 || i >= 3) {
                check(same(got.g[i], ref.g[i], S->n[i]), "%s inputs: %s equals the float32 call's on widened inputs", en,
                      GRAD_NAMES[i]);
                continue;
            }
            size_t bad = S->n[i];
            double unit = e == ATTNC_ELEM_F16 ? 1.0 / 1024 : 1.0 / 128;
            for (size_t j = 0; j < S->n[i] && bad == S->n[i]; j++) {
                double r = ref.g[i][j], x = from16(e, g16[i][j]);
                if (fabs(x - r) > unit * fabs(r) + 6e-8) bad = j;
            }
            check(bad == S->n[i], "%s %s within one unit of the float32 call's rounded (first bad: %zu)", en,
                  GRAD_NAMES[i], bad);
        }
    }
    for (int i = 0; i < 4; i++) free(h[i]), free(w[i]);
    for (int i = 0; i < 3; i++) free(g16[i]);
    free(o16), free(lse);
    grads_free(&ref), grads_free(&got);
}

/* ---- [B, L, H, D] ----------------------------------------------------- */

/* x ([B, X, L, D] contiguous) stored as [B, L, X, D], and back. */
static float *to_blhd(const float *x, int64_t B, int64_t X, int64_t L, int64_t D, int back, float *out) {
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < X; i++)
            for (int64_t l = 0; l < L; l++)
                for (int64_t d = 0; d < D; d++) {
                    size_t c = (size_t)(((b * X + i) * L + l) * D + d), s = (size_t)(((b * L + l) * X + i) * D + d);
                    if (back) out[c] = x[s];
                    else out[s] = x[c];
                }
    return out;
}

static attnc_layout blhd(int64_t X, int64_t L, int64_t D) {
    return (attnc_layout){.elem = ATTNC_ELEM_F32, .stride = {L * X * D, D, X * D, 1}};
}

static void test_strided(const Setup *S, const Grads *ref) {
    const attnc_sizes *z = &S->sz;
    int64_t dims[7][4] = {{z->B, z->H, z->Lq, z->D},   {z->B, z->Hkv, z->Lk, z->D}, {z->B, z->Hkv, z->Lk, z->Dv},
                          {z->B, z->H, z->Lq, z->Dv},  {z->B, z->H, z->Lq, z->Dv},  {z->B, z->H, z->Lq, 1},
                          {z->B, z->H, z->Lq, 1}}; /* Q K V dO O dLSE LSE */
    const float *src[7] = {S->q, S->kk, S->v, S->dout, NULL, S->dlse, NULL};
    float *s[7], *g[3];
    int ok = 1;
    for (int i = 0; i < 7; i++) {
        size_t n = (size_t)(dims[i][0] * dims[i][1] * dims[i][2] * dims[i][3]);
        ok &= (s[i] = malloc(sizeof(float) * (n + 1))) != NULL;
        if (s[i] && src[i]) to_blhd(src[i], dims[i][0], dims[i][1], dims[i][2], dims[i][3], 0, s[i]);
    }
    for (int i = 0; i < 3; i++) ok &= (g[i] = malloc(sizeof(float) * (S->n[i] + 1))) != NULL;
    Grads got = {0};
    ok &= grads_alloc(&got, S);
    if (ok) {
        attnc_layout lse = {.stride = {z->Lq * z->H, 1, z->H, 0}};
        attnc_layouts L = {blhd(z->H, z->Lq, z->D), blhd(z->Hkv, z->Lk, z->D), blhd(z->Hkv, z->Lk, z->Dv),
                           blhd(z->H, z->Lq, z->Dv), lse};
        attnc_args a = {*z, s[0], s[1], s[2], s[4], s[6], S->params, S->np, S->tensors, S->nt};
        attnc_tensor_grad dt[2] = {{S->tensors[0].name, got.g[3]}, {S->tensors[1].name, got.g[4]}};
        attnc_grad gr = {.dout = s[3], .dlse = s[5], .dq = g[0], .dk = g[1], .dv = g[2], .dtensors = dt,
                         .n_dtensors = 2, .dout_layout = L.o, .dlse_layout = lse, .dq_layout = L.q,
                         .dk_layout = L.k, .dv_layout = L.v};
        attnc_error err = {0};
        attnc_status st = attnc_kernel_run_layout(S->k, &a, &L, &err);
        if (!st) st = attnc_kernel_backward(S->k, &a, &L, &gr, &err);
        check(!st, "[B, L, H, D] backward (%s)", err.message);
        for (int i = 0; !st && i < NGRAD; i++) {
            if (i < 3) to_blhd(g[i], dims[i][0], dims[i][1], dims[i][2], dims[i][3], 1, got.g[i]);
            check(same(got.g[i], ref->g[i], S->n[i]), "[B, L, H, D]: %s equals the contiguous call's", GRAD_NAMES[i]);
        }
    }
    for (int i = 0; i < 7; i++) free(s[i]);
    for (int i = 0; i < 3; i++) free(g[i]);
    grads_free(&got);
}

/* ---- hostile calls and runtime errors --------------------------------- */

/* Run the backward of k with a and g; expect status want with a message and
 * every output (of out) untouched. */
static void expect_refusal(const attnc_kernel *k, const attnc_args *a, const attnc_grad *g, const Setup *S,
                           const Grads *out, attnc_status want, const char *what) {
    attnc_error err = {0};
    attnc_status st = attnc_kernel_backward(k, a, NULL, g, &err);
    int clean = 1;
    for (int i = 0; i < NGRAD; i++) clean &= untouched(out->g[i], S->n[i] * sizeof(float));
    check(st == want && err.message[0] && clean, "%s: status %d (want %d), message '%s', outputs %s", what, (int)st,
          (int)want, err.message, clean ? "untouched" : "WRITTEN");
}

static void test_hostile(const Setup *S) {
    float *o = malloc(sizeof(float) * (S->no + 1)), *lse = malloc(sizeof(float) * (S->rows + 1));
    Grads out = {0};
    attnc_error err = {0};
    attnc_args a = {S->sz, S->q, S->kk, S->v, o, lse, S->params, S->np, S->tensors, S->nt};
    if (!o || !lse || !grads_alloc(&out, S) || attnc_kernel_run(S->k, &a, &err)) {
        check(0, "hostile calls: setting up (%s)", err.message);
        goto done;
    }
    attnc_tensor_grad dt[2] = {{S->tensors[0].name, out.g[3]}, {S->tensors[1].name, out.g[4]}};
    attnc_grad g = {.dout = S->dout, .dlse = S->dlse, .dq = out.g[0], .dk = out.g[1], .dv = out.g[2], .dtensors = dt,
                    .n_dtensors = 2};
    attnc_args no_lse = a;
    no_lse.lse = NULL;
    expect_refusal(S->k, &no_lse, &g, S, &out, ATTNC_ERR_USAGE, "LSE NULL");
    attnc_grad bad = g;
    attnc_tensor_grad unknown[1] = {{"nope", out.g[3]}}, twice[2] = {{"U", out.g[3]}, {"U", out.g[4]}};
    bad.dtensors = unknown, bad.n_dtensors = 1;
    expect_refusal(S->k, &a, &bad, S, &out, ATTNC_ERR_USAGE, "an unknown tensor gradient");
    bad.dtensors = twice, bad.n_dtensors = 2;
    expect_refusal(S->k, &a, &bad, S, &out, ATTNC_ERR_USAGE, "a tensor gradient asked twice");
    bad = g;
    bad.dk = out.g[0] + 1; /* inside dQ */
    expect_refusal(S->k, &a, &bad, S, &out, ATTNC_ERR_USAGE, "dK overlapping dQ");
    attnc_tensor_grad on_dv[2] = {{"U", out.g[2]}, {"W", out.g[4]}};
    bad = g;
    bad.dtensors = on_dv;
    expect_refusal(S->k, &a, &bad, S, &out, ATTNC_ERR_USAGE, "dU overlapping dV");
    bad = g;
    bad.dq = S->q; /* the input it differentiates */
    expect_refusal(S->k, &a, &bad, S, &out, ATTNC_ERR_USAGE, "dQ overlapping Q");

    /* int tensors have no gradient */
    attnc_kernel *mixed = compile_text("mixed.attn",
                                       "attention mixed { tensor doc : int[Lk]; tensor t : float[H];"
                                       " mask doc[kv] >= 0; bias t[h]; }",
                                       ATTNC_BACKEND_INTERP, &err);
    int32_t doc[64] = {0};
    float t[64] = {0};
    attnc_tensor mt[2] = {{"doc", ATTNC_I32, 1, {S->sz.Lk}, doc}, {"t", ATTNC_F32, 1, {S->sz.H}, t}};
    attnc_args ma = {S->sz, S->q, S->kk, S->v, o, lse, NULL, 0, mt, 2};
    attnc_tensor_grad ints[1] = {{"doc", out.g[3]}};
    bad = g;
    bad.dtensors = ints, bad.n_dtensors = 1;
    check(mixed != NULL, "mixed.attn compiles (%s)", err.message);
    if (mixed) expect_refusal(mixed, &ma, &bad, S, &out, ATTNC_ERR_USAGE, "the gradient of an int tensor");
    attnc_kernel_free(mixed);

    /* a backend without a backward pass yet: the first of these this build has */
    attnc_backend none[] = {ATTNC_BACKEND_CUDA_EMU, ATTNC_BACKEND_LLVM};
    attnc_kernel *rk = NULL;
    char path_text[] = "attention flashbias_low_rank { param rank : int = 8; tensor U : float[B, H, Lq, rank];"
                       " tensor W : float[B, H, Lk, rank]; bias sum(r < rank) U[b, h, q, r] * W[b, h, kv, r]; }";
    attnc_spec *spec = NULL;
    attnc_spec_from_string("nobwd.attn", path_text, strlen(path_text), &spec, &err);
    for (size_t i = 0; spec && !rk && i < sizeof none / sizeof none[0]; i++) {
        attnc_options ro = {.backend = none[i]};
        if (!attnc_backend_available(none[i]) || attnc_compile(spec, NULL, &ro, &rk, &err)) continue;
        if (attnc_kernel_has_backward(rk)) attnc_kernel_free(rk), rk = NULL;
    }
    attnc_spec_free(spec);
    if (rk) expect_refusal(rk, &a, &g, S, &out, ATTNC_ERR_USAGE, "a backend without a backward pass");
    else printf("note: every backend of this build has a backward pass: the refusal is not checked\n");
    attnc_kernel_free(rk);
done:
    free(o), free(lse);
    grads_free(&out);
}

/* The forward's runtime error, reported by the backward in its words. */
static void test_runtime_error(const Setup *S) {
    attnc_error ferr = {0}, berr = {0};
    attnc_kernel *k = compile_text("oob.attn", "attention oob {\n  tensor t : float[6];\n  bias t[q - kv + 2];\n}\n",
                                   ATTNC_BACKEND_INTERP, &ferr);
    check(k != NULL, "oob.attn compiles (%s)", ferr.message);
    if (!k) return;
    float t[6] = {0}, *o = malloc(sizeof(float) * (S->no + 1)), *lse = malloc(sizeof(float) * (S->rows + 1));
    attnc_tensor tt[1] = {{"t", ATTNC_F32, 1, {6}, t}};
    attnc_args a = {S->sz, S->q, S->kk, S->v, o, lse, NULL, 0, tt, 1};
    Grads out = {0};
    if (o && lse && grads_alloc(&out, S)) {
        attnc_status fst = attnc_kernel_run(k, &a, &ferr);
        attnc_tensor_grad dt[1] = {{"t", out.g[3]}};
        attnc_grad g = {.dout = S->dout, .dlse = S->dlse, .dq = out.g[0], .dk = out.g[1], .dv = out.g[2],
                        .dtensors = dt, .n_dtensors = 1};
        attnc_status bst = attnc_kernel_backward(k, &a, NULL, &g, &berr);
        int clean = 1;
        for (int i = 0; i < 4; i++) clean &= untouched(out.g[i], (i < 3 ? S->n[i] : 6) * sizeof(float));
        check(fst == ATTNC_ERR_RUNTIME && bst == fst && !strcmp(ferr.message, berr.message) && clean,
              "runtime error: forward %d '%s', backward %d '%s', outputs %s", (int)fst, ferr.message, (int)bst,
              berr.message, clean ? "untouched" : "WRITTEN");
    }
    free(o), free(lse);
    grads_free(&out);
    attnc_kernel_free(k);
}

/* Rows that keep nothing (masked, or softmax rows whose every score is
 * -inf) have zero gradient whatever their dO and dLSE (spec 9.5): the
 * gradients equal those of the call with dO and dLSE zeroed on them. */
static void test_empty_rows(const Setup *S) {
    attnc_error err = {0};
    attnc_kernel *k = compile_text("empty.attn",
                                   "attention empty { tensor t : float[Lk];\n"
                                   "  mask q != 2 && q != 5;\n  bias (q == 4 ? log(0.0) : 0.0) + t[kv]; }\n",
                                   ATTNC_BACKEND_INTERP, &err);
    check(k != NULL, "empty.attn compiles (%s)", err.message);
    if (!k) return;
    const attnc_sizes *z = &S->sz;
    float t[64], *o = malloc(sizeof(float) * (S->no + 1)), *lse = malloc(sizeof(float) * (S->rows + 1));
    float *dout = malloc(sizeof(float) * (S->no + 1)), *dlse = malloc(sizeof(float) * (S->rows + 1));
    for (int64_t i = 0; i < z->Lk; i++) t[i] = rng_uniform();
    attnc_tensor tt[1] = {{"t", ATTNC_F32, 1, {z->Lk}, t}};
    attnc_args a = {*z, S->q, S->kk, S->v, o, lse, NULL, 0, tt, 1};
    Grads g[2] = {{{0}}, {{0}}};
    int ok = o && lse && dout && dlse && grads_alloc(&g[0], S) && grads_alloc(&g[1], S) &&
             !attnc_kernel_run(k, &a, &err);
    for (int pass = 0; ok && pass < 2; pass++) {
        /* pass 0: dO and dLSE everywhere; pass 1: zero on the empty rows */
        for (size_t r = 0; r < S->rows; r++) {
            int64_t q = (int64_t)(r % (size_t)z->Lq);
            int empty = q == 2 || q == 4 || q == 5;
            dlse[r] = pass && empty ? 0.0f : 1.0f + (float)(r % 3);
            for (size_t d = r * (size_t)z->Dv; d < (r + 1) * (size_t)z->Dv; d++)
                dout[d] = pass && empty ? 0.0f : S->dout[d];
            if (pass == 0 && empty) ok &= lse[r] == -INFINITY;
        }
        attnc_tensor_grad dt[1] = {{"t", g[pass].g[3]}};
        attnc_grad gr = {.dout = dout, .dlse = dlse, .dq = g[pass].g[0], .dk = g[pass].g[1], .dv = g[pass].g[2],
                         .dtensors = dt, .n_dtensors = 1};
        ok &= !attnc_kernel_backward(k, &a, NULL, &gr, &err);
    }
    check(ok, "empty rows: forward LSE -inf on them, backward runs (%s)", err.message);
    size_t n[4] = {S->n[0], S->n[1], S->n[2], (size_t)z->Lk};
    for (int i = 0; ok && i < 4; i++)
        check(same(g[0].g[i], g[1].g[i], n[i]), "empty rows: %s ignores their dO and dLSE", GRAD_NAMES[i]);
    for (size_t r = 0; ok && r < S->rows; r++) {
        int64_t q = (int64_t)(r % (size_t)z->Lq);
        if (q != 2 && q != 4 && q != 5) continue;
        for (int64_t d = 0; d < z->D; d++) ok &= g[0].g[0][r * (size_t)z->D + (size_t)d] == 0.0f;
    }
    check(ok, "empty rows: their dQ rows are 0");
    free(o), free(lse), free(dout), free(dlse);
    grads_free(&g[0]), grads_free(&g[1]);
    attnc_kernel_free(k);
}

static void free_setup(Setup *S) {
    for (int i = 0; i < S->nt; i++) free((void *)S->tensors[i].data);
    free(S->q), free(S->kk), free(S->v), free(S->dout), free(S->dlse);
    attnc_kernel_free(S->k);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_grad_api EXAMPLES_DIR\n");
        return 2;
    }
    Setup S;
    Grads ref = {0};
    int all[NGRAD] = {1, 1, 1, 1, 1};
    attnc_error err = {0};
    if (setup(&S, argv[1]) && grads_alloc(&ref, &S)) {
        check(!plain_backward(&S, S.q, S.kk, S.v, S.dout, &ref, all, &err), "the float32 contiguous backward (%s)",
              err.message);
        test_one_at_a_time(&S, &ref);
        test_half(&S, ATTNC_ELEM_F16, 0);
        test_half(&S, ATTNC_ELEM_BF16, 0);
        test_half(&S, ATTNC_ELEM_F16, 1);
        test_half(&S, ATTNC_ELEM_BF16, 1);
        test_strided(&S, &ref);
        test_hostile(&S);
        test_runtime_error(&S);
        test_empty_rows(&S);
    } else {
        fails++;
    }
    grads_free(&ref);
    free_setup(&S);
    printf("%d passed, %d failed\n", passes, fails);
    return fails != 0;
}
