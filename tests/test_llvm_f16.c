/* test_llvm_f16.c — the LLVM kernel's f16 and bf16 conversions, exactly
 * (issue 10): every 16-bit pattern widened on load and narrowed on store,
 * and float32 values of every kind narrowed, against base/half.h.
 *
 * With one key, softmax gives p = 1 and O = V: a V row of 16-bit values
 * comes back as O through the kernel's widening (per tile, and the decode
 * micro-kernel's at Lq = 1) and narrowing.  256 sequences of Dv = 256 hold
 * all 65536 patterns of f16 (then bf16); O must be the pattern rounded
 * through float32, bit for bit (NaN quieted, as the hardware does; a signed
 * zero may come back as +0: O starts as a sum).  Then V as float32 holding
 * ties, overflow to inf, subnormal ties, float32 subnormals, NaN, and random
 * bit patterns, with O stored as f16 and bf16: O must be base/half.h's
 * rounding of V.
 *
 * Run with ATTNC_LLVM_SOFT_F16=1 (ctest does both), the kernel converts f16
 * in integer lanes, as on a host without F16C; `--expect-soft 0|1` checks
 * which path ran.  Exit 0 when all pass, 77 without an LLVM backend. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attnc.h"
#include "half.h"
#include "llvm_lower.h"

enum { SEQS = 256, DV = 256, N = SEQS * DV };

static int fails;

static uint32_t bits_of(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static float float_of(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Whether two 16-bit results agree: equal, or both zeros. */
static int same16(uint16_t got, uint16_t want) { return got == want || ((got & 0x7fff) == 0 && (want & 0x7fff) == 0); }

static uint16_t round16(int elem, float f) { return elem == ATTNC_ELEM_F16 ? attnc_f32_to_f16(f) : attnc_f32_to_bf16(f); }
static float widen16(int elem, uint16_t h) { return elem == ATTNC_ELEM_F16 ? attnc_f16_to_f32(h) : attnc_bf16_to_f32(h); }
static const char *name_of(int elem) { return elem == ATTNC_ELEM_F16 ? "f16" : elem == ATTNC_ELEM_BF16 ? "bf16" : "f32"; }

/* O = V through kernel k: V of elem_v (N values at v), O of elem_o (N at o); Lq query rows per sequence. */
static int run(const attnc_kernel *k, int elem_v, const void *v, int elem_o, void *o, int64_t lq) {
    static float q[SEQS * 4], kk[SEQS];
    float *o_rows = malloc((size_t)(SEQS * lq * DV) * 4);
    attnc_args a = {{SEQS, 1, 1, lq, 1, 1, DV}, q, kk, v, o_rows, NULL, NULL, 0, NULL, 0};
    attnc_layouts lay;
    memset(&lay, 0, sizeof lay);
    lay.v.elem = (attnc_elem)elem_v, lay.o.elem = (attnc_elem)elem_o;
    attnc_error err = {0};
    attnc_status st = attnc_kernel_run_layout(k, &a, &lay, &err);
    if (st) {
        printf("FAIL: run (V %s, O %s, Lq %lld): %s\n", name_of(elem_v), name_of(elem_o), (long long)lq, err.message);
        fails++;
    } else { /* every query row of a sequence holds the same O: keep the last */
        size_t eb = elem_o == ATTNC_ELEM_F32 ? 4 : 2;
        for (int s = 0; s < SEQS; s++)
            memcpy((char *)o + (size_t)s * DV * eb, (char *)o_rows + ((size_t)s * lq + (size_t)lq - 1) * DV * eb, DV * eb);
    }
    free(o_rows);
    return st;
}

/* All 65536 patterns of elem as V and as O. */
static void every_pattern(const attnc_kernel *k, int elem, int64_t lq) {
    uint16_t *v = malloc(N * 2), *o = malloc(N * 2);
    for (int i = 0; i < N; i++) v[i] = (uint16_t)i;
    if (!run(k, elem, v, elem, o, lq)) {
        int bad = 0;
        for (int i = 0; i < N; i++) {
            uint16_t want = round16(elem, widen16(elem, v[i]));
            if (!same16(o[i], want) && bad++ < 5)
                printf("FAIL: %s pattern 0x%04x (Lq %lld): O = 0x%04x, want 0x%04x\n", name_of(elem), v[i], (long long)lq,
                       o[i], want);
        }
        fails += bad;
        printf("%s: every pattern through V and O at Lq = %lld: %d wrong\n", name_of(elem), (long long)lq, bad);
    }
    free(v), free(o);
}

/* float32 V of every kind, O rounded to elem. */
static void narrowing(const attnc_kernel *k, int elem, int64_t lq) {
    static const float edges[] = {
        1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f, 1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, 65504.0f, 65519.99f, 65520.0f,
        65536.0f, 1e10f, 3.3895314e38f, 0x1p-14f, 0x1p-14f - 0x1p-25f, 0x1p-24f, 0x1p-25f, 3 * 0x1p-25f, 0x1.8p-24f,
        0x1p-26f, 0x1p-126f, 0x1p-149f, 0x1.fffffcp-127f, 0.0f, 1.0f / 3.0f};
    enum { NE = sizeof edges / sizeof edges[0] };
    float *v = malloc(N * 4);
    uint16_t *o = malloc(N * 2);
    uint64_t s = 0x243F6A8885A308D3ull;
    for (int i = 0; i < N; i++) {
        if (i < 4 * NE) {
            float e = edges[i % NE];
            v[i] = i / NE % 2 ? -e : e;
            if (i / NE >= 2) v[i] = float_of(bits_of(v[i]) + 1); /* just above each edge */
            continue;
        }
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        v[i] = float_of((uint32_t)(s >> 32));
    }
    v[4 * NE] = float_of(0x7f800000), v[4 * NE + 1] = float_of(0xff800000), v[4 * NE + 2] = float_of(0x7fc00001);
    v[4 * NE + 3] = float_of(0xff812345); /* a signalling NaN */
    if (!run(k, ATTNC_ELEM_F32, v, elem, o, lq)) {
        int bad = 0;
        for (int i = 0; i < N; i++) {
            uint16_t want = round16(elem, v[i]);
            if (!same16(o[i], want) && bad++ < 5)
                printf("FAIL: %s of %a (0x%08x, Lq %lld): O = 0x%04x, want 0x%04x\n", name_of(elem), (double)v[i],
                       bits_of(v[i]), (long long)lq, o[i], want);
        }
        fails += bad;
        printf("%s: float32 edges and random patterns narrowed at Lq = %lld: %d wrong\n", name_of(elem), (long long)lq, bad);
    }
    free(v), free(o);
}

int main(int argc, char **argv) {
    if (!attnc_backend_available(ATTNC_BACKEND_LLVM)) {
        printf("SKIP: no LLVM backend in this build\n");
        return 77;
    }
    int expect_soft = -1;
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--expect-soft")) expect_soft = atoi(argv[i + 1]);
    printf("f16 conversions: %s\n", llvm_soft_f16() ? "integer lanes (no F16C)" : "LLVM half (F16C)");
    if (expect_soft >= 0 && llvm_soft_f16() != expect_soft) {
        printf("FAIL: llvm_soft_f16() = %d, want %d\n", llvm_soft_f16(), expect_soft);
        fails++;
    }
    static const char *text = "attention one { }\n";
    attnc_spec *spec = NULL;
    attnc_kernel *k = NULL;
    attnc_error err = {0};
    attnc_options opts = {.backend = ATTNC_BACKEND_LLVM, .threads = 1};
    if (attnc_spec_from_string("one.attn", text, strlen(text), &spec, &err) || attnc_compile(spec, "one", &opts, &k, &err)) {
        printf("FAIL: compile: %s\n", err.message);
        attnc_spec_free(spec);
        return 1;
    }
    for (int64_t lq = 1; lq <= 3; lq += 2) { /* 1: the decode micro-kernel; 3: prefill's per-tile widening */
        every_pattern(k, ATTNC_ELEM_F16, lq);
        every_pattern(k, ATTNC_ELEM_BF16, lq);
        narrowing(k, ATTNC_ELEM_F16, lq);
        narrowing(k, ATTNC_ELEM_BF16, lq);
    }
    attnc_kernel_free(k);
    attnc_spec_free(spec);
    printf(fails ? "FAIL: %d\n" : "ok\n", fails);
    return fails ? 1 : 0;
}
