/* test_cuda_simt.c — the strict SIMT emulation (backends/cuda/emu_simt.h) on
 * small device programs written with templates/cuda_mma.h (tests/cuda_simt/),
 * compiled as C by libtcc exactly as cuda-emu compiles its CUDA text (the
 * cuda_macros and jit_types sections of templates/support.h, base/half.h,
 * then the primitives and the program), with the emulation's entry points
 * bound by name.
 *
 *   test_cuda_simt DIR mma|tf32|shfl|cpasync|faults|flash|throughput   one case, programs in DIR
 *   test_cuda_simt --emit DIR OUT   write OUT/NAME.cu: each program as nvcc compiles it
 *                                   (tests/cuda_simt_nvcc.sh)
 *
 * mma: 16x16x16 products in f16 and bf16 against a direct float32 computation;
 * the inputs make every wrong fragment index visible, and four programs that
 * break the layout on purpose must give a wrong product.  tf32: cvt.rna.tf32.f32
 * against a float64 rounding (random bit patterns, ties, subnormals, the
 * largest floats, inf, NaN), then 16x8x16 products through
 * mma.m16n8k8.tf32 against float64 (exact for integers, within float32's
 * summation error for fractions), three broken layouts that must give a
 * wrong product, an unconverted operand and a 32-bit shared load of a copy in
 * flight that must be refused.  shfl: butterflies
 * over a quad and a warp, idx, up, down, width, ballot.  cpasync: double
 * buffering right, then without the wait (poison read, or an ldmatrix fault)
 * and without the barrier that protects a buffer from its next copy.  faults:
 * divergent barriers, an early exit, divergent and mismatched mma.sync, a
 * shuffle outside its mask, a deadlock: each a runtime error naming it.
 * flash: FlashAttention-2's inner loop on one warp (cp.async double
 * buffering, both mma, the online softmax on fragments, P reused from S's
 * accumulators) against softmax attention in double; P's fragment broken on
 * purpose must fail.
 * throughput: 100 blocks of 128 threads; prints the time and the fiber
 * switches per second (no threshold); then the launch from the generated
 * code, and two OS threads running halves of one launch at once.
 * throughput-quick: the same with 10 rounds instead of 100. */
#include <libtcc.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "c_emit.h"
#include "check.h"
#include "emu_fiber.h"
#include "emu_simt.h"
#include "half.h"
#include "strbuf.h"
#include "support.h"
/* the emulation's side of the primitives, after emu_simt.h: the compiler
 * checks that the generated code's declarations agree with the library's */
#include "cuda_mma.h"

extern const char attnc_cuda_mma_text[];

static const char *const programs[] = {"mma", "mma_tf32", "shfl", "cpasync", "faults", "flash_tile", "throughput"};

/* The text of program NAME as the emitters would assemble it. */
static int program_text(const char *dir, const char *name, StrBuf *out) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.cu", dir, name);
    size_t len = 0;
    char *body = read_file(path, &len);
    if (!body) return 0;
    int ok = cemit_put_support("cuda_macros", NULL, out);
    sb_printf(out, "#if defined(ATTNC_JIT) && !defined(__CUDACC__)\n");
    ok = ok && cemit_put_support("jit_types", NULL, out) && cemit_put_support("libm", NULL, out);
    sb_printf(out, "#endif\n");
    cemit_put_half("ATTNC_DEV", out);
    sb_printf(out, "%s\n#line 1 \"%s.cu\"\n%s", attnc_cuda_mma_text, name, body);
    free(body);
    return ok && !out->failed;
}

static void tcc_message(void *opaque, const char *msg) {
    if (!*(char *)opaque) snprintf(opaque, 400, "%s", msg);
}

#define BIND(name) tcc_add_symbol(s, #name, (const void *)name);

/* Compile program NAME for the emulation; NULL (and a message) on failure. */
static TCCState *compile(const char *dir, const char *name) {
    StrBuf text = {0};
    char msg[400] = "";
    if (!program_text(dir, name, &text)) {
        printf("FAIL cannot read %s/%s.cu\n", dir, name);
        sb_free(&text);
        return NULL;
    }
    TCCState *s = tcc_new();
    tcc_set_error_func(s, msg, tcc_message);
    tcc_set_options(s, "-nostdlib");
    tcc_set_output_type(s, TCC_OUTPUT_MEMORY);
    tcc_define_symbol(s, CEMIT_JIT_MACRO, "1");
    int ok = tcc_compile_string(s, text.p) == 0;
    if (ok) {
        SIMT_EXTERNAL_FUNCTIONS(BIND)
        CEMIT_EXTERNAL_FUNCTIONS(BIND)
        ok = tcc_relocate(s, TCC_RELOCATE_AUTO) >= 0;
    }
    sb_free(&text);
    if (!ok) {
        printf("FAIL libtcc on %s.cu: %s\n", name, msg);
        tcc_delete(s);
        return NULL;
    }
    return s;
}

static attnc_status launch_dyn(TCCState *s, const char *kernel, const void *args, int32_t blocks, int32_t threads,
                               int64_t dynamic_smem, SimtStats *stats, attnc_error *err) {
    SimtLaunch l = {.args = args, .grid = {blocks, 1, 1}, .block = {threads, 1, 1}, .dynamic_smem = dynamic_smem};
    l.kernel = (SimtKernelFn)tcc_get_symbol(s, kernel);
    memset(err, 0, sizeof *err);
    return simt_run(&l, 0, blocks, stats, err);
}

static attnc_status launch(TCCState *s, const char *kernel, const void *args, int32_t blocks, int32_t threads,
                           SimtStats *stats, attnc_error *err) {
    return launch_dyn(s, kernel, args, blocks, threads, 0, stats, err);
}

/* ---- mma ---- */

typedef struct MmaArgs {
    const uint16_t *a, *b;
    const float *c;
    float *d;
    int32_t bf16, mode;
} MmaArgs;

static uint16_t narrow(float x, int bf16) { return bf16 ? attnc_f32_to_bf16(x) : attnc_f32_to_f16(x); }
static float widen(uint16_t h, int bf16) { return bf16 ? attnc_bf16_to_f32(h) : attnc_f16_to_f32(h); }

/* Inputs: small integers (every product and sum exact, every element told
 * apart by its neighbours) or fractions (rounding visible); the reference
 * sums C, then k = 0 .. 15, in float32, the order emu_simt_ops.c documents. */
static void mma_case(TCCState *s, int bf16, int integers) {
    _Alignas(16) uint16_t a[256], b[256];
    float c[256], d[256], ref[256];
    rng_seed(integers ? 11u + (unsigned)bf16 : 29u + (unsigned)bf16);
    for (int i = 0; i < 256; i++) {
        float x = rng_uniform() * 2 - 1, y = rng_uniform() * 2 - 1;
        a[i] = narrow(integers ? floorf(x * 9) : x, bf16);
        b[i] = narrow(integers ? floorf(y * 9) : y, bf16);
        c[i] = integers ? floorf(rng_uniform() * 33) - 16 : rng_uniform();
    }
    for (int r = 0; r < 16; r++)
        for (int n = 0; n < 16; n++) {
            float acc = c[r * 16 + n];
            for (int k = 0; k < 16; k++) acc += widen(a[r * 16 + k], bf16) * widen(b[k * 16 + n], bf16);
            ref[r * 16 + n] = acc;
        }
    for (int32_t mode = 0; mode <= 5; mode++) {
        MmaArgs args = {a, b, c, d, bf16, mode};
        attnc_error err;
        for (int i = 0; i < 256; i++) d[i] = NAN;
        attnc_status st = launch(s, "mma_kernel", &args, 1, 32, NULL, &err);
        CHECK(st == ATTNC_OK, "mma %s mode %d: %s", bf16 ? "bf16" : "f16", mode, err.message);
        int wrong = 0;
        for (int i = 0; i < 256; i++) wrong += !(d[i] == ref[i]);
        if (mode <= 1)
            CHECK(wrong == 0, "mma %s mode %d (%s inputs): %d of 256 elements differ from float32",
                  bf16 ? "bf16" : "f16", mode, integers ? "integer" : "fractional", wrong);
        else
            CHECK(wrong > 0, "mma %s mode %d: a broken fragment layout gave the right product", bf16 ? "bf16" : "f16",
                  mode);
    }
}

static void test_mma(TCCState *s) {
    for (int bf16 = 0; bf16 < 2; bf16++)
        for (int integers = 1; integers >= 0; integers--) mma_case(s, bf16, integers);
}

/* ---- tf32: cvt.rna.tf32.f32 and mma.m16n8k8.tf32 ---- */

/* x rounded to tf32 in float64: to a multiple of the tf32 quantum at x's
 * binade (2^(e - 10); 2^-136 below 2^-126, where float32's subnormals keep
 * the same bit positions), ties away from zero (C's round()), then to float
 * (the largest binade's carry gives inf) */
static float tf32_reference(float x) {
    if (!isfinite(x)) return x;
    int e;
    frexp((double)x, &e); /* |x| in [2^(e-1), 2^e) */
    const double quantum = ldexp(1.0, (e - 1 < -126 ? -126 : e - 1) - 10);
    return (float)(round((double)x / quantum) * quantum);
}

static void test_cvt_tf32(void) {
    int wrong = 0, n = 0;
    uint32_t first_bad = 0;
    rng_seed(41);
    for (int i = 0; i < 200000; i++, n++) {
        /* random patterns; every 4th with its low 13 bits an exact tie (0x1000) */
        uint32_t u = (uint32_t)(rng_next() >> 7);
        if (i % 4 == 0) u = (u & ~0x1fffu) | 0x1000u;
        if (i % 16 == 1) u &= 0x80ffffffu; /* subnormals and the smallest normals */
        if (i % 16 == 2) u |= 0x7f000000u; /* the largest binades */
        const float x = attnc_f32_from_bits(u);
        if (isnan(x)) continue;
        const uint32_t got = attnc_cvt_tf32(x), want = attnc_f32_bits(tf32_reference(x));
        if (got != want && !wrong++) first_bad = u;
    }
    CHECK(wrong == 0, "cvt.rna.tf32.f32: %d of %d values differ from float64's rounding (first: 0x%08x -> 0x%08x, "
          "want 0x%08x)", wrong, n, first_bad, attnc_cvt_tf32(attnc_f32_from_bits(first_bad)),
          attnc_f32_bits(tf32_reference(attnc_f32_from_bits(first_bad))));
    /* ties away from zero, both signs; the carry into the exponent; inf, NaN */
    static const uint32_t cases[][2] = {{0x3f801000u, 0x3f802000u}, {0xbf801000u, 0xbf802000u},
                                        {0x3f803000u, 0x3f804000u}, {0x3f800fffu, 0x3f800000u},
                                        {0x3fffffffu, 0x40000000u}, {0x7f7fffffu, 0x7f800000u},
                                        {0x00001000u, 0x00002000u}, {0x7f800000u, 0x7f800000u},
                                        {0xff800000u, 0xff800000u}, {0x7fc00000u, 0x7fc00000u},
                                        {0x7fffffffu, 0x7fffe000u}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const uint32_t got = attnc_cvt_tf32(attnc_f32_from_bits(cases[i][0]));
        CHECK(got == cases[i][1], "cvt.rna.tf32.f32 0x%08x: 0x%08x, want 0x%08x", cases[i][0], got, cases[i][1]);
    }
}

typedef struct MmaTf32Args {
    const float *a, *b;
    const float *c;
    float *d;
    int32_t mode;
} MmaTf32Args;

/* A (16 x 8) and B (8 x 16): small integers (every product and sum exact)
 * or fractions (their tf32 rounding and float32's sums visible); against
 * float64 on the tf32-rounded inputs, within float32's summation error
 * (8 additions of at most 2^-24 of the running sum's magnitude each). */
static void mma_tf32_case(TCCState *s, int integers) {
    _Alignas(16) float a[128], b[128];
    float c[256], d[256];
    double ref[256], bound[256];
    rng_seed(integers ? 17u : 31u);
    for (int i = 0; i < 128; i++) {
        float x = rng_uniform() * 2 - 1, y = rng_uniform() * 2 - 1;
        a[i] = integers ? floorf(x * 9) : x, b[i] = integers ? floorf(y * 9) : y;
    }
    for (int i = 0; i < 256; i++) c[i] = integers ? floorf(rng_uniform() * 33) - 16 : rng_uniform();
    for (int r = 0; r < 16; r++)
        for (int n = 0; n < 16; n++) {
            double acc = c[r * 16 + n], mag = fabs(acc);
            for (int k = 0; k < 8; k++) {
                double p = (double)tf32_reference(a[r * 8 + k]) * tf32_reference(b[k * 16 + n]);
                acc += p, mag += fabs(p);
            }
            ref[r * 16 + n] = acc, bound[r * 16 + n] = 8 * ldexp(mag, -24);
        }
    for (int32_t mode = 0; mode <= 6; mode++) {
        MmaTf32Args args = {a, b, c, d, mode};
        attnc_error err;
        for (int i = 0; i < 256; i++) d[i] = NAN;
        attnc_status st = launch(s, "mma_tf32_kernel", &args, 1, 32, NULL, &err);
        if ((mode == 5 && !integers) || mode == 6) { /* small integers are tf32 values: mode 5 runs on them */
            const char *want = mode == 5 ? "low 13 bits are not zero" : "ld.shared.b32";
            CHECK(st == ATTNC_ERR_RUNTIME && strstr(err.message, want) && strstr(err.message, "line"),
                  "mma tf32 mode %d: want a fault \"%s\", got status %d: %s", mode, want, st, err.message);
            if (!integers) printf("mode %d: %s\n", mode, err.message);
            continue;
        }
        CHECK(st == ATTNC_OK, "mma tf32 mode %d: %s", mode, err.message);
        int wrong = 0;
        double worst = 0;
        for (int i = 0; i < 256; i++) {
            double e = fabs((double)d[i] - ref[i]);
            wrong += !(e <= bound[i]);
            worst = e > worst ? e : worst;
        }
        if (mode <= 1 || mode == 5)
            CHECK(wrong == 0, "mma tf32 mode %d (%s inputs): %d of 256 elements differ from float64 (worst %g)", mode,
                  integers ? "integer" : "fractional", wrong, worst);
        else
            CHECK(wrong > 0, "mma tf32 mode %d: a broken fragment layout gave the right product", mode);
        if (integers && (mode <= 1 || mode == 5))
            CHECK(worst == 0, "mma tf32 mode %d: integers not exact (%g)", mode, worst);
    }
    /* without the conversion, fractions are not tf32: the products would be exact in float64 but wrong */
    int changed = 0;
    for (int i = 0; i < 128; i++) changed += tf32_reference(a[i]) != a[i];
    CHECK(integers || changed > 0, "mma tf32: the fractional inputs are already tf32 values");
}

static void test_tf32(TCCState *s) {
    test_cvt_tf32();
    for (int integers = 1; integers >= 0; integers--) mma_tf32_case(s, integers);
}

/* ---- shfl ---- */

typedef struct ShflArgs {
    const float *in;
    float *out;
} ShflArgs;

static void test_shfl(TCCState *s) {
    float in[64], out[8 * 64];
    for (int t = 0; t < 64; t++) in[t] = (float)((t * 7) % 13 - 6);
    ShflArgs args = {in, out};
    attnc_error err;
    CHECK(launch(s, "shfl_kernel", &args, 1, 64, NULL, &err) == ATTNC_OK, "shfl: %s", err.message);
    for (int t = 0; t < 64; t++) {
        const int w0 = t & ~31, q0 = t & ~3, lane = t & 31;
        float quad = 0, mx = -INFINITY, warp = 0;
        uint32_t ballot = 0;
        for (int i = 0; i < 4; i++) quad += in[q0 + i], mx = fmaxf(mx, in[q0 + i]);
        for (int i = 0; i < 32; i++) ballot |= (uint32_t)(in[w0 + i] > 0) << i;
        /* the butterfly's own order: pairs, then pairs of pairs ... */
        float part[32];
        for (int i = 0; i < 32; i++) part[i] = in[w0 + i];
        for (int x = 16; x >= 1; x >>= 1) {
            float next[32];
            for (int i = 0; i < 32; i++) next[i] = part[i] + part[i ^ x];
            memcpy(part, next, sizeof part);
        }
        warp = part[lane];
        const float want[8] = {quad,
                               mx,
                               warp,
                               in[w0 + 5],
                               lane + 3 < 32 ? in[t + 3] : in[t],
                               lane >= 2 ? in[t - 2] : in[t],
                               lane & 8 ? in[t - 8] : in[t],
                               attnc_f32_from_bits(ballot)};
        for (int k = 0; k < 8; k++)
            CHECK(memcmp(&out[k * 64 + t], &want[k], sizeof(float)) == 0, "shfl: thread %d result %d: %g, want %g", t,
                  k, out[k * 64 + t], want[k]);
    }
}

/* ---- cp.async ---- */

typedef struct CpArgs {
    const uint16_t *src;
    float *out;
    int32_t tiles, mode;
} CpArgs;

static void test_cpasync(TCCState *s) {
    enum { TILES = 6 };
    _Alignas(16) uint16_t src[TILES * 64 * 8];
    float out[64], want[64];
    for (int i = 0; i < TILES * 64 * 8; i++) src[i] = attnc_f32_to_f16((float)((i * 3) % 17 - 8));
    for (int t = 0; t < 64; t++) {
        want[t] = 0;
        for (int i = 0; i < TILES; i++)
            for (int d = 0; d < 8; d++)
                if (!(i == TILES - 1 && 63 - t == 63 && d >= 4)) /* src-size 8: zero fill */
                    want[t] += attnc_f16_to_f32(src[(i * 64 + 63 - t) * 8 + d]);
    }
    attnc_error err;
    for (int32_t mode = 0; mode <= 3; mode++) {
        CpArgs args = {src, out, TILES, mode};
        for (int t = 0; t < 64; t++) out[t] = -1;
        attnc_status st = launch_dyn(s, "cp_kernel", &args, 1, 64, 2 * 64 * 8 * 2, NULL, &err);
        int nan = 0, wrong = 0;
        for (int t = 0; t < 64; t++) nan += isnan(out[t]), wrong += !(out[t] == want[t]);
        if (mode == 0)
            CHECK(st == ATTNC_OK && wrong == 0, "cp.async double buffering: %d sums wrong; %s", wrong, err.message);
        if (mode == 1)
            CHECK(st == ATTNC_OK && nan == 64, "cp.async without wait_group: %d of 64 threads saw the poison", nan);
        if (mode == 2)
            CHECK(st == ATTNC_ERR_RUNTIME && strstr(err.message, "ldmatrix") &&
                      strstr(err.message, "cp.async not yet waited for"),
                  "ldmatrix of a copy in flight must fault: %s", err.message);
        if (mode == 3) CHECK(st == ATTNC_OK && nan > 0, "a copy over a buffer still being read: no poison seen");
    }
}

/* ---- faults ---- */

typedef struct FaultArgs {
    float *out;
    int32_t mode;
} FaultArgs;

static void test_faults(TCCState *s) {
    static const char *const want[][2] = {
        {NULL, NULL},
        {"divergent barriers", "__syncthreads at line"},
        {"exits while thread 0 waits at __syncthreads", "must reach it"},
        {"mma.sync", "shfl.sync"},
        {"exits while lane 0 waits for it at mma.sync", "lane 16"},
        {"not in the mask", "shfl.sync"},
        {"deadlock", "waits at __syncthreads"},
        {"mma.sync", "must all run the same one"},
        {"mma.sync (line 64)", "waits at mma.sync (line 27)"},
        {"cp.async (line 68)", "is not in the block's shared memory"},
    };
    float out[64];
    for (int32_t mode = 0; mode < (int32_t)(sizeof want / sizeof want[0]); mode++) {
        FaultArgs args = {out, mode};
        attnc_error err;
        attnc_status st = launch(s, "fault_kernel", &args, 1, 64, NULL, &err);
        if (!want[mode][0]) {
            int wrong = 0;
            for (int t = 0; t < 64; t++) wrong += out[t] != (float)t;
            CHECK(st == ATTNC_OK && wrong == 0, "faults mode 0 must run (%d results wrong): %s", wrong, err.message);
            continue;
        }
        CHECK(st == ATTNC_ERR_RUNTIME && strstr(err.message, want[mode][0]) && strstr(err.message, want[mode][1]) &&
                  strstr(err.message, "line"),
              "faults mode %d: want \"%s\" and \"%s\", got status %d: %s", mode, want[mode][0], want[mode][1], st,
              err.message);
        printf("mode %d: %s\n", mode, err.message);
    }
    /* launches the emulation refuses before running anything */
    FaultArgs args = {out, 0};
    attnc_error err;
    SimtLaunch l = {.kernel = (SimtKernelFn)tcc_get_symbol(s, "fault_kernel"),
                    .args = &args,
                    .grid = {1, 1, 1},
                    .block = {1025, 1, 1}};
    CHECK(simt_run(&l, 0, 1, NULL, &err) == ATTNC_ERR_USAGE && strstr(err.message, "1025 threads"),
          "a block of 1025 threads: %s", err.message);
    l.block[0] = 64;
    l.dynamic_smem = 300 * 1024;
    CHECK(simt_run(&l, 0, 1, NULL, &err) == ATTNC_ERR_USAGE && strstr(err.message, "dynamic shared memory"),
          "300 KiB of dynamic shared memory: %s", err.message);
    l.dynamic_smem = 0;
    CHECK(simt_run(&l, 1, 1, NULL, &err) == ATTNC_ERR_USAGE && strstr(err.message, "grid of 1"),
          "block 1 of a grid of 1: %s", err.message);
}

/* ---- flash_tile: FlashAttention-2's inner loop on one warp ---- */

typedef struct FlashArgs {
    const uint16_t *q, *k, *v;
    float *o;
    int32_t tiles, bf16, mode;
    float scale;
} FlashArgs;

/* Against softmax(Q K^T / 4) V in double on the same 16-bit inputs: P is
 * rounded to 16 bits for the second mma (as FlashAttention-2 does), so the
 * tolerance is that rounding's (2^-11 f16, 2^-8 bf16, relative). */
static void test_flash(TCCState *s) {
    enum { TILES = 4, NKV = 16 * TILES };
    _Alignas(16) uint16_t q[256], k[NKV * 16], v[NKV * 16];
    float o[256];
    for (int bf16 = 0; bf16 < 2; bf16++) {
        rng_seed(5u + (unsigned)bf16);
        for (int i = 0; i < 256; i++) q[i] = narrow(rng_uniform() * 2 - 1, bf16);
        for (int i = 0; i < NKV * 16; i++)
            k[i] = narrow(rng_uniform() * 2 - 1, bf16), v[i] = narrow(rng_uniform() * 2 - 1, bf16);
        double worst = 0;
        const double tol = bf16 ? 2e-2 : 3e-3;
        for (int32_t mode = 0; mode <= 1; mode++) {
            FlashArgs args = {q, k, v, o, TILES, bf16, mode, 0.25f * 1.44269504f};
            attnc_error err;
            CHECK(launch(s, "flash_kernel", &args, 1, 32, NULL, &err) == ATTNC_OK, "flash: %s", err.message);
            worst = 0;
            for (int r = 0; r < 16; r++) {
                double sc[NKV], mx = -INFINITY, l = 0;
                for (int j = 0; j < NKV; j++) {
                    sc[j] = 0;
                    for (int d = 0; d < 16; d++)
                        sc[j] += (double)widen(q[r * 16 + d], bf16) * widen(k[j * 16 + d], bf16);
                    sc[j] *= 0.25;
                    mx = fmax(mx, sc[j]);
                }
                for (int j = 0; j < NKV; j++) l += exp(sc[j] - mx);
                for (int dv = 0; dv < 16; dv++) {
                    double want = 0;
                    for (int j = 0; j < NKV; j++) want += exp(sc[j] - mx) / l * widen(v[j * 16 + dv], bf16);
                    worst = fmax(worst, fabs(o[r * 16 + dv] - want));
                }
            }
            if (mode == 0)
                CHECK(worst <= tol, "flash %s: O differs from the reference by %g (tolerance %g)",
                      bf16 ? "bf16" : "f16", worst, tol);
            else
                CHECK(worst > 10 * tol, "flash %s with P's fragment broken: O within %g of the reference",
                      bf16 ? "bf16" : "f16", worst);
            printf("flash %s mode %d: largest difference %.3g\n", bf16 ? "bf16" : "f16", mode, worst);
        }
    }
}

/* ---- throughput ---- */

typedef struct TpArgs {
    float *out;
    int32_t rounds;
} TpArgs;

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Two OS threads run halves of one launch at once, as launch.c's workers
 * would (the running block is thread-local, each thread has its fibers). */
typedef struct Half {
    SimtLaunch l;
    int64_t first, count;
    attnc_status st;
    attnc_error err;
} Half;

static void *run_half(void *arg) {
    Half *h = arg;
    h->st = simt_run(&h->l, h->first, h->count, NULL, &h->err);
    return NULL;
}

static void threads_share_a_launch(TCCState *s, float *out) {
    enum { BLOCKS = 40, ROUNDS = 20 };
    TpArgs args = {out, ROUNDS};
    Half h[2];
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        h[i] = (Half){{.kernel = (SimtKernelFn)tcc_get_symbol(s, "tp_kernel"),
                       .args = &args,
                       .grid = {BLOCKS, 1, 1},
                       .block = {128, 1, 1}},
                      i * BLOCKS / 2,
                      BLOCKS / 2,
                      ATTNC_OK,
                      {0}};
        CHECK(pthread_create(&th[i], NULL, run_half, &h[i]) == 0, "pthread_create");
    }
    int wrong = 0;
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        CHECK(h[i].st == ATTNC_OK, "half %d of a launch: %s", i, h[i].err.message);
    }
    for (int i = 0; i < BLOCKS * 128; i++) wrong += out[i] != 34.0f * ROUNDS;
    CHECK(wrong == 0, "two threads sharing a launch: %d results wrong", wrong);
}

/* Twice: launched here (simt_run, which makes the fibers), then from the
 * generated code (attnc_simt_launch, reusing them). */
static int tp_rounds = 100; /* throughput-quick: 10 (the sanitizer build: its fiber switches are ~50x slower) */
static void test_throughput(TCCState *s) {
    enum { BLOCKS = 100, THREADS = 128 };
    const int ROUNDS = tp_rounds;
    static float out[BLOCKS * THREADS];
    TpArgs args = {out, ROUNDS};
    SimtStats stats = {0};
    attnc_error err;
    double t0 = seconds();
    attnc_status st = launch(s, "tp_kernel", &args, BLOCKS, THREADS, &stats, &err);
    double sec = seconds() - t0;
    CHECK(st == ATTNC_OK, "throughput: %s", err.message);
    int wrong = 0;
    for (int i = 0; i < BLOCKS * THREADS; i++) wrong += out[i] != 34.0f * ROUNDS, out[i] = 0;
    CHECK(wrong == 0, "throughput: %d results wrong", wrong);
    printf("%d blocks x %d threads x %d rounds: %.3f s, %llu switches (%.1f M/s), %llu warp collectives, %llu "
           "barriers (fibers: %s)\n",
           BLOCKS, THREADS, ROUNDS, sec, (unsigned long long)stats.switches, (double)stats.switches / sec / 1e6,
           (unsigned long long)stats.collectives, (unsigned long long)stats.barriers, fiber_method());
    int32_t (*tp_launch)(float *, int32_t, int32_t, char *, int32_t) =
        (int32_t(*)(float *, int32_t, int32_t, char *, int32_t))tcc_get_symbol(s, "tp_launch");
    char msg[512] = "";
    t0 = seconds();
    int32_t rc = tp_launch(out, ROUNDS, BLOCKS, msg, (int32_t)sizeof msg);
    sec = seconds() - t0;
    wrong = 0;
    for (int i = 0; i < BLOCKS * THREADS; i++) wrong += out[i] != 34.0f * ROUNDS;
    CHECK(rc == 0 && wrong == 0, "throughput from the generated code: status %d, %d results wrong: %s", rc, wrong, msg);
    printf("again, launched by the generated code: %.3f s\n", sec);
    threads_share_a_launch(s, out);
}

static int emit(const char *dir, const char *outdir) {
    for (size_t i = 0; i < sizeof programs / sizeof programs[0]; i++) {
        StrBuf text = {0};
        char path[1024];
        snprintf(path, sizeof path, "%s/%s.cu", outdir, programs[i]);
        FILE *f = program_text(dir, programs[i], &text) ? fopen(path, "w") : NULL;
        int ok = f && fputs(text.p, f) >= 0;
        if (f) ok = fclose(f) == 0 && ok;
        sb_free(&text);
        if (!ok) {
            printf("FAIL cannot write %s\n", path);
            return 1;
        }
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 4 && !strcmp(argv[1], "--emit")) return emit(argv[2], argv[3]);
    if (argc != 3) {
        fprintf(stderr, "usage: test_cuda_simt DIR mma|tf32|shfl|cpasync|faults|flash|throughput[-quick] | --emit DIR OUT\n");
        return 2;
    }
    static const struct {
        const char *name, *program;
        void (*run)(TCCState *);
    } cases[] = {{"mma", "mma", test_mma},
                 {"tf32", "mma_tf32", test_tf32},
                 {"shfl", "shfl", test_shfl},
                 {"cpasync", "cpasync", test_cpasync},
                 {"faults", "faults", test_faults},
                 {"flash", "flash_tile", test_flash},
                 {"throughput", "throughput", test_throughput}};
    const char *want = argv[2];
    if (!strcmp(want, "throughput-quick")) want = "throughput", tp_rounds = 10;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (strcmp(want, cases[i].name) != 0) continue;
        TCCState *s = compile(argv[1], cases[i].program);
        if (!s) return 1;
        cases[i].run(s);
        tcc_delete(s);
        printf("%s: %s\n", cases[i].name, failures ? "FAILED" : "ok");
        return failures != 0;
    }
    fprintf(stderr, "test_cuda_simt: unknown case '%s'\n", argv[2]);
    return 2;
}
