/* test_cuda_fa2.c — the tensor-core kernel of cuda-emu (templates/cuda_fa2.cu
 * on the strict SIMT emulation) against the interpreter, on every attention
 * of an examples file (tests/cuda_fa2.cmake: `cuda-emu/fa2/<example>`).
 *
 *   test_cuda_fa2 FILE.attn [--tf32] [--break | --break-barrier]
 *   test_cuda_fa2 FILE.attn --emit DIR
 *   test_cuda_fa2 tests/cuda/fa2_band.attn --band
 *
 * Per attention, per type (f16 and bf16; with --tf32 float32, which the
 * kernel multiplies through TF32), per shape: the example-args
 * line's sizes with D = 32 and Dv = 16; GQA (H = 8, Hkv = 2) with Lq = 131
 * and Lk = 168 (3 q tiles, 3 kv tiles the last of 40 keys, D = 64, Dv = 48);
 * Lq = 150 > Lk = 56 (rows that bottom-right-aligned masks empty, D = Dv = 16);
 * and one shape drawn per attention and type (B, Hkv | 4, Lq and Lk in
 * 1 .. 200, D and Dv in 16 .. 64).  Where a shape makes the spec raise a
 * runtime error (an index past a tensor sized for other lengths), the kernel
 * must report the interpreter's error instead.  And D = 24, Dv = 40, which
 * the kernel does not take: the scaffold must run every work item.
 * f16 runs on the SIMT emulation's round-robin schedule, bf16 and float32
 * depth-first (emu_simt.h: a warp runs ahead of the others until a barrier),
 * so a missing __syncthreads shows as a read of a pending cp.async copy.
 * Q, K and V are drawn in float32 and rounded to the type; the kernel runs on
 * them (O and LSE float32); the reference is the interpreter on the same
 * rounded values.  Every work item must have run on the tensor-core kernel
 * (cuda_emu_fa2_stats: no silent fallback), and the emulation must not have
 * refused the device code.
 *
 * Tolerance: O = sum_j p_j v_j / l with the p_j rounded to the 16-bit type
 * before O += P V (relative error at most u: 2^-11 for f16, 2^-8 for bf16)
 * and l summed in float32 from the unrounded p_j, so |O - O_ref| <= u max|v|
 * <= u (|v| < 1) plus float32 accumulation errors (~1e-6); we allow 2u
 * relative to 1 + |O_ref| (compare_outputs).  LSE has no 16-bit rounding: the
 * same bound is loose for it.  A `weight` attention has no normalisation: its
 * error is u sum_j |w_j v_j| <= u sum_j |w_j|, which for weights >= 0 (every
 * example's) is u exp(LSE_ref) (a weight attention's LSE is the log of its
 * sum of weights): such rows are compared with 2u (1 + exp(LSE_ref)), rows
 * whose LSE is not finite with 2u (1 + Lk).
 *
 * float32 (--tf32): the kernel runs on the float32 values drawn; it rounds
 * Q, K and V to tf32 (cvt.rna.tf32.f32) as they enter the tensor cores, a
 * rounding the reference reproduces exactly: the interpreter runs on Q, K, V
 * rounded to tf32 the same way (tf32_round).  What remains is P's rounding to
 * tf32 before O += P V (relative error at most u = 2^-11, as f16's) and
 * float32 sums: the same 2u tolerance, which a wrong fragment element (an
 * error of the order of |v|) and P, Q, K, V rounded to bf16 (2^-8) exceed;
 * a missing conversion the emulation refuses (an mma.tf32 operand with its
 * low 13 bits set).  The shapes the kernel does not take run on the scaffold in
 * exact float32 and compare against the interpreter on the unrounded values.
 * Each softmax case also prints the error against the interpreter on the
 * unrounded float32 values ("vs exact"), which is what a user sees
 * (docs/cuda.md's accuracy table).
 *
 * --break: emit the kernel with the element code's key coordinate wrong
 * (cuda_fa2_break_for_tests); every attention whose element code reads kv
 * must then mismatch: the test passes when the comparison fails on each.
 * --break-barrier: without the __syncthreads before a kv buffer's refill;
 * the emulation must refuse the device code (on the depth-first schedule,
 * when an item visits 2 kv tiles or more) in some case, and nothing else
 * may fail.
 * --band: the band of keys (tests/cuda/fa2_band.attn; band_cases below).
 * --emit DIR: write DIR/<attention>_<D>_<type>.cu, the tensor-core text of
 * each attention at D = Dv = 64 in f16, at 128 in bf16 and at both in
 * float32 (type tf32), for tests/cuda_fa2_nvcc.sh (nvcc for sm_80; float32
 * also sm_90).
 * With --tf32, --break and --break-barrier apply to the float32 kernel.
 * Each float32 softmax case also runs with ATTNC_OPT_EXACT_F32, which must
 * keep every work item off the tensor-core kernel. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attnc.h"
#include "cuda_emu_backend.h"
#include "cuda_fa2_emit.h"
#include "emu_simt.h"
#include "api_internal.h"
#include "half.h"
#include "support.h"

static const char *const SHAPES[] = {"D=32,Dv=16", "H=8,Hkv=2,Lq=131,Lk=168,D=64,Dv=48",
                                     "B=2,H=4,Hkv=4,Lq=150,Lk=56,D=16,Dv=16"};

enum { T_F16, T_BF16, T_TF32 }; /* CUDA_FA2_F16, _BF16, _TF32 */
static const char *const TYPE_NAME[] = {"f16", "bf16", "tf32"};

/* x rounded to tf32 as cvt.rna.tf32.f32 (to nearest, ties away from zero; finite values) */
static float tf32_round(float x) {
    uint32_t u = attnc_f32_bits(x);
    return isfinite(x) ? attnc_f32_from_bits((u + 0x1000u) & 0xffffe000u) : x;
}

/* x rounded to the type (tf32 only when `tf32`: else float32 unchanged), and
 * the kernel's elements in bits (16-bit) or f32 (float32) */
static float *round_to(const float *x, size_t n, int type, int tf32, uint16_t *bits, float *f32) {
    float *r = malloc(sizeof(float) * (n + 1));
    for (size_t i = 0; i < n; i++) {
        if (type == T_TF32) {
            f32[i] = x[i];
            r[i] = tf32 ? tf32_round(x[i]) : x[i];
            continue;
        }
        bits[i] = type == T_BF16 ? attnc_f32_to_bf16(x[i]) : attnc_f32_to_f16(x[i]);
        r[i] = type == T_BF16 ? attnc_bf16_to_f32(bits[i]) : attnc_f16_to_f32(bits[i]);
    }
    return r;
}

typedef struct Inputs {
    attnc_sizes sz;
    float *q, *k, *v;       /* the reference's: rounded as the kernel rounds them, float32 */
    float *xq, *xk, *xv;    /* float32 only: the values drawn (the kernel's inputs) */
    uint16_t *qb, *kb, *vb; /* 16-bit only: the kernel's inputs */
} Inputs;

static void inputs_free(Inputs *in) {
    free(in->q), free(in->k), free(in->v), free(in->qb), free(in->kb), free(in->vb);
    free(in->xq), free(in->xk), free(in->xv);
}

/* tf32: float32 inputs the kernel rounds to tf32 (the reference's rounded alike) */
static void inputs_make(const attnc_sizes *sz, int type, int tf32, Inputs *in) {
    size_t nq = (size_t)(sz->B * sz->H * sz->Lq * sz->D), nk = (size_t)(sz->B * sz->Hkv * sz->Lk * sz->D);
    size_t nv = (size_t)(sz->B * sz->Hkv * sz->Lk * sz->Dv);
    float *q = random_floats(nq), *k = random_floats(nk), *v = random_floats(nv);
    in->sz = *sz;
    /* malloc's 16-byte alignment is what the kernel's cp.async needs */
    in->qb = malloc(2 * nq + 16), in->kb = malloc(2 * nk + 16), in->vb = malloc(2 * nv + 16);
    in->xq = malloc(4 * nq + 16), in->xk = malloc(4 * nk + 16), in->xv = malloc(4 * nv + 16);
    in->q = round_to(q, nq, type, tf32, in->qb, in->xq);
    in->k = round_to(k, nk, type, tf32, in->kb, in->xk);
    in->v = round_to(v, nv, type, tf32, in->vb, in->xv);
    free(q), free(k), free(v);
}

/* The largest |O - O_exact| / (1 + |O_exact|) over O's elements */
static double o_error(const float *o, const float *exact, size_t no) {
    double worst = 0;
    for (size_t i = 0; i < no; i++)
        if (isfinite(exact[i])) {
            double e = fabs((double)o[i] - (double)exact[i]) / (1.0 + fabs((double)exact[i]));
            worst = e > worst ? e : worst;
        }
    return worst;
}

/* A float32 softmax case against the interpreter on the unrounded inputs (what
 * a user sees): err[0] the tensor-core kernel's O (through TF32), err[1] the
 * same call on cuda-emu with ATTNC_OPT_EXACT_F32 (the scaffold in float32,
 * which must not run any work item on the tensor-core kernel); 0, or 1 with
 * the reason printed. */
static int errors_vs_exact(const attnc_spec *spec, const char *name, attnc_kernel *ref, const attnc_args *rargs,
                           const Inputs *in, const float *o, size_t no, double *err2) {
    size_t rows = (size_t)(in->sz.B * in->sz.H * in->sz.Lq);
    float *xo = malloc(sizeof(float) * (no + 1)), *xlse = malloc(sizeof(float) * (rows + 1));
    float *so = malloc(sizeof(float) * (no + 1)), *slse = malloc(sizeof(float) * (rows + 1));
    attnc_options opts = {.backend = ATTNC_BACKEND_CUDA_EMU,
                          .threads = 2,
                          .flags = ATTNC_OPT_NO_PACK_HEADS | ATTNC_OPT_EXACT_F32};
    attnc_kernel *k = NULL;
    attnc_args x = *rargs, sx;
    attnc_error err = {0};
    long long before = 0, after = 0;
    int fails = 0;
    x.q = in->xq, x.k = in->xk, x.v = in->xv, x.o = xo, x.lse = xlse;
    sx = x, sx.o = so, sx.lse = slse;
    cuda_emu_fa2_stats(&before, NULL, 0);
    if (attnc_kernel_run(ref, &x, &err) || attnc_compile(spec, name, &opts, &k, &err) ||
        attnc_kernel_run(k, &sx, &err)) {
        printf("FAIL %s float32: %s\n", name, err.message), fails = 1;
    } else {
        cuda_emu_fa2_stats(&after, NULL, 0);
        err2[0] = o_error(o, xo, no), err2[1] = o_error(so, xo, no);
        if (after != before)
            printf("FAIL %s: ATTNC_OPT_EXACT_F32 ran %lld work items through TF32\n", name, after - before), fails = 1;
    }
    attnc_kernel_free(k);
    free(xo), free(xlse), free(so), free(slse);
    return fails;
}

/* One attention, one type, one shape; 0 when it behaves as expected. */
static int run_case(const attnc_spec *spec, const char *name, const ExampleArgs *ea0, const char *shape, int type,
                    int broken, int fa2) {
    ExampleArgs ea = *ea0;
    char sizes[128];
    snprintf(sizes, sizeof sizes, "%s", shape);
    if (!parse_shape_into(sizes, &ea.sz)) return printf("FAIL %s: bad shape %s\n", name, shape), 1;
    const attnc_sizes *sz = &ea.sz;
    /* packed heads (GQA decode shapes) run on the scaffold: ask for one head per work item */
    attnc_options opts = {.backend = ATTNC_BACKEND_CUDA_EMU, .threads = 2, .flags = ATTNC_OPT_NO_PACK_HEADS};
    attnc_options iopts = {.backend = ATTNC_BACKEND_INTERP};
    attnc_kernel *k = NULL, *ref = NULL;
    attnc_error err = {0};
    attnc_param params[MAX_ITEMS];
    attnc_tensor tensors[MAX_ITEMS];
    memset(tensors, 0, sizeof tensors);
    const char *why = NULL;
    int nt = 0, fails = 0;
    if (attnc_compile(spec, name, &opts, &k, &err) || attnc_compile(spec, name, &iopts, &ref, &err))
        return printf("FAIL %s: compile: %s\n", name, err.message), attnc_kernel_free(k), 1;
    if (make_params(k, &ea, params, &why) < 0 || (nt = make_tensors(k, &ea, params, ea.nparams, tensors, &why)) < 0) {
        printf("FAIL %s: %s\n", name, why);
        attnc_kernel_free(k), attnc_kernel_free(ref);
        return 1;
    }
    /* f16 P would overflow for a `weight` clause: those calls run on the scaffold (cuda_fa2_takes), checked below */
    if (type == T_F16 && !attnc_kernel_is_softmax(k)) fa2 = 0;
    Inputs in;
    inputs_make(sz, type, fa2, &in);
    size_t rows = (size_t)(sz->B * sz->H * sz->Lq), no = rows * (size_t)sz->Dv;
    float *o = malloc(sizeof(float) * (no + 1)), *lse = malloc(sizeof(float) * (rows + 1));
    float *ro = malloc(sizeof(float) * (no + 1)), *rlse = malloc(sizeof(float) * (rows + 1));
    attnc_args args = {*sz, (const float *)in.qb, (const float *)in.kb, (const float *)in.vb, o, lse, params,
                       ea.nparams, tensors, nt};
    if (type == T_TF32) args.q = in.xq, args.k = in.xk, args.v = in.xv;
    attnc_elem el = type == T_BF16 ? ATTNC_ELEM_BF16 : type == T_F16 ? ATTNC_ELEM_F16 : ATTNC_ELEM_F32;
    attnc_layouts lay;
    memset(&lay, 0, sizeof lay);
    lay.q.elem = lay.k.elem = lay.v.elem = el;
    attnc_args rargs = {*sz, in.q, in.k, in.v, ro, rlse, params, ea.nparams, tensors, nt};
    long long before, after;
    char fault[512];
    /* f16 on the round-robin schedule, bf16 and float32 depth-first: a race between warps shows in one of them */
    simt_set_default_schedule(type != T_F16 ? SIMT_SCHEDULE_DEPTH_FIRST : SIMT_SCHEDULE_ROUND_ROBIN);
    cuda_emu_fa2_stats(&before, fault, sizeof fault);
    const char *tname = TYPE_NAME[type];
    attnc_status st = attnc_kernel_run_layout(k, &args, &lay, &err);
    if (st && broken == 2) {
        cuda_emu_fa2_stats(&after, fault, sizeof fault);
        printf("%s %s %s %s: %s\n", fault[0] ? "ok (missing barrier seen)" : "FAIL (an error, not the emulation's)",
               name, tname, shape, fault);
        fails = !fault[0];
    } else if (st) {
        /* a runtime error of the spec (an index out of range at these sizes): the interpreter must report it too */
        attnc_error rerr = {0};
        attnc_status rst = attnc_kernel_run(ref, &rargs, &rerr);
        cuda_emu_fa2_stats(&after, fault, sizeof fault);
        int same = st == ATTNC_ERR_RUNTIME && rst == ATTNC_ERR_RUNTIME && !strcmp(err.message, rerr.message);
        if (fault[0]) printf("  emulation: %s\n", fault);
        if (!same || after == before) {
            printf("FAIL %s %s %s: run: %s (interpreter: %s; %lld items on the tensor-core kernel)\n", name, tname,
                   shape, err.message, rst ? rerr.message : "no error", after - before);
            fails = 1;
        } else {
            printf("ok %s %s %s: the runtime error, as the interpreter: %s\n", name, tname, shape, err.message);
        }
    } else if (attnc_kernel_run(ref, &rargs, &err)) {
        printf("FAIL %s: interpreter: %s\n", name, err.message), fails = 1;
    } else {
        cuda_emu_fa2_stats(&after, fault, sizeof fault);
        long long items = sz->B * sz->H * ((sz->Lq + 63) / 64);
        double u = type == T_BF16 ? 1.0 / 256 : 1.0 / 2048, worst = 0; /* f16 and tf32: 10 mantissa bits */
        double tol = 2 * u;
        char buf[300];
        const char *bad = NULL;
        if (attnc_kernel_is_softmax(k)) {
            bad = compare_outputs(o, lse, ro, rlse, no, rows, tol, &worst, buf, sizeof buf);
        } else { /* per row: 2u (1 + sum_j w_j), the sum being exp(LSE) (see above) */
            for (size_t r = 0; r < rows && !bad; r++) {
                double sum = isfinite(rlse[r]) ? exp((double)rlse[r]) : (double)sz->Lk, w = 0;
                size_t dv = (size_t)sz->Dv;
                bad = compare_outputs(o + r * dv, lse + r, ro + r * dv, rlse + r, dv, 1, tol * (1 + sum), &w, buf,
                                      sizeof buf);
                if (bad) tol *= 1 + sum;
                worst = w > worst ? w : worst;
            }
        }
        if (!fa2 && after != before) {
            printf("FAIL %s %s %s: %lld work items ran on the tensor-core kernel, which does not take D = %lld, "
                   "Dv = %lld\n", name, tname, shape, after - before, (long long)sz->D, (long long)sz->Dv);
            fails = 1;
        } else if (fa2 && after - before < items) {
            printf("FAIL %s %s %s: %lld of %lld work items ran on the tensor-core kernel\n", name, tname, shape,
                   after - before, items);
            fails = 1;
        } else if (broken == 2) {
            printf("ok (missing barrier unseen on this case) %s %s %s\n", name, tname, shape);
            fails = -1; /* not a failure: the round-robin schedule keeps the warps nearly in step */
        } else if (broken) {
            printf("%s %s %s %s: %s\n", bad ? "ok (broken mapping seen)" : "FAIL (broken mapping unseen)", name,
                   tname, shape, bad ? bad : "");
            fails = !bad;
        } else if (bad) {
            printf("FAIL %s %s %s: %s (tolerance %.3g)\n", name, tname, shape, bad, tol);
            fails = 1;
        } else {
            char exact[96] = "";
            double xe[2];
            if (type == T_TF32 && fa2 && attnc_kernel_is_softmax(k)) {
                fails = errors_vs_exact(spec, name, ref, &rargs, &in, o, no, xe);
                if (!fails) snprintf(exact, sizeof exact, "; vs exact f32: tf32 %.3g, scaffold %.3g", xe[0], xe[1]);
            }
            if (!fails)
                printf("ok %s %s %s: max relative error %.3g (tolerance %.3g%s%s)\n", name, tname, shape, worst, tol,
                       attnc_kernel_is_softmax(k) ? "" : " times 1 + the row's sum of weights", exact);
        }
    }
    for (int i = 0; i < nt; i++) free((void *)tensors[i].data);
    inputs_free(&in);
    free(o), free(lse), free(ro), free(rlse);
    attnc_kernel_free(k), attnc_kernel_free(ref);
    return fails;
}

/* The tensor-core texts of attention `name` into dir (f16 at D = Dv = 64, bf16 at 128, float32 at both); 0 on
 * success. */
static int emit_texts(const attnc_spec *spec, const char *name, const char *dir) {
    attnc_options opts = {.backend = ATTNC_BACKEND_CUDA_EMU};
    attnc_kernel *k = NULL;
    attnc_error err = {0};
    if (attnc_compile(spec, name, &opts, &k, &err)) return printf("FAIL %s: %s\n", name, err.message), 1;
    const Plan *p = attnc_kernel_plan(k);
    int fails = 0;
    static const int texts[4][2] = {{64, T_F16}, {128, T_BF16}, {64, T_TF32}, {128, T_TF32}};
    for (int x = 0; x < 4 && cuda_fa2_plan_ok(p); x++) {
        const int d = texts[x][0], type = texts[x][1];
        StrBuf text = {0};
        char path[1024];
        snprintf(path, sizeof path, "%s/%s_%d_%s.cu", dir, name, d, TYPE_NAME[type]);
        FILE *f = NULL;
        if (cuda_fa2_emit_source(p, d, d, type, &text, &err) || !(f = fopen(path, "w")) || fputs(text.p, f) < 0) {
            printf("FAIL %s: %s\n", path, err.message);
            fails++;
        }
        if (f) fclose(f);
        sb_free(&text);
    }
    attnc_kernel_free(k);
    return fails;
}

/* --band: FILE holds window_banded and window_unbanded (tests/cuda/fa2_band.attn), one window whose tile maps
 * agree, with and without a band of keys.  Per type (bf16 and float32 through TF32) both run on the tensor-core
 * kernel on the same inputs: the same O and LSE (the steps skipped add P = 0), and the banded one through fewer
 * mma.sync (S and P V skip the steps of keys no row of a warp keeps); prints both counts.  0 when so. */
static int band_cases(const attnc_spec *spec) {
    const attnc_sizes sz = {.B = 1, .H = 2, .Hkv = 1, .Lq = 300, .Lk = 300, .D = 32, .Dv = 16};
    const attnc_param w = {.name = "w", .type = ATTNC_INT, .i = 20};
    const char *names[2] = {"window_banded", "window_unbanded"};
    size_t rows = (size_t)(sz.B * sz.H * sz.Lq), no = rows * (size_t)sz.Dv;
    int fails = 0;
    for (int type = T_BF16; type <= T_TF32; type++) {
        Inputs in;
        inputs_make(&sz, type, 1, &in);
        float *o[2], *lse[2];
        unsigned long long mmas[2] = {0, 0};
        attnc_layouts lay;
        memset(&lay, 0, sizeof lay);
        lay.q.elem = lay.k.elem = lay.v.elem = type == T_BF16 ? ATTNC_ELEM_BF16 : ATTNC_ELEM_F32;
        for (int x = 0; x < 2; x++) {
            attnc_options opts = {.backend = ATTNC_BACKEND_CUDA_EMU, .threads = 2};
            attnc_kernel *k = NULL;
            attnc_error err = {0};
            long long before, after;
            o[x] = malloc(sizeof(float) * no), lse[x] = malloc(sizeof(float) * rows);
            attnc_args args = {sz, (const float *)in.qb, (const float *)in.kb, (const float *)in.vb, o[x], lse[x],
                               &w, 1, NULL, 0};
            if (type == T_TF32) args.q = in.xq, args.k = in.xk, args.v = in.xv;
            cuda_emu_fa2_stats(&before, NULL, 0);
            const uint64_t m0 = simt_mmas_total();
            if (attnc_compile(spec, names[x], &opts, &k, &err) || attnc_kernel_run_layout(k, &args, &lay, &err))
                printf("FAIL %s %s: %s\n", names[x], TYPE_NAME[type], err.message), fails++;
            mmas[x] = (unsigned long long)(simt_mmas_total() - m0);
            cuda_emu_fa2_stats(&after, NULL, 0);
            if (after - before != sz.B * sz.H * ((sz.Lq + 63) / 64))
                printf("FAIL %s %s: %lld work items on the tensor-core kernel\n", names[x], TYPE_NAME[type],
                       after - before), fails++;
            attnc_kernel_free(k);
        }
        double worst = 0;
        for (size_t i = 0; i < no; i++) worst = fmax(worst, fabs((double)o[0][i] - (double)o[1][i]));
        for (size_t i = 0; i < rows; i++) worst = fmax(worst, fabs((double)lse[0][i] - (double)lse[1][i]));
        /* both runs' mma see the same nonzero products in the same order; what the band skips adds zeros */
        const int same = worst <= 1e-6, fewer = 4 * mmas[0] <= 3 * mmas[1];
        printf("%s %s: mma.sync %llu with the band, %llu without (%.2f); max |difference| %.3g\n",
               same && fewer ? "ok" : "FAIL", TYPE_NAME[type], mmas[0], mmas[1],
               mmas[1] ? (double)mmas[0] / (double)mmas[1] : 0.0, worst);
        fails += !(same && fewer);
        for (int x = 0; x < 2; x++) free(o[x]), free(lse[x]);
        inputs_free(&in);
    }
    return fails;
}

/* run_case's result as a failure count; -1 (--break-barrier, a case the schedule did not expose) counted apart */
static int tally(int r, int *unseen) {
    *unseen += r < 0;
    return r > 0;
}

int main(int argc, char **argv) {
    int broken = 0, tf32 = 0, band = 0, bad = argc < 2;
    const char *emit = NULL;
    for (int a = 2; a < argc && !bad; a++) {
        if (!strcmp(argv[a], "--break") || !strcmp(argv[a], "--break-barrier"))
            bad = broken, broken = argv[a][7] ? 2 : 1;
        else if (!strcmp(argv[a], "--tf32")) tf32 = 1;
        else if (!strcmp(argv[a], "--band")) band = 1;
        else if (!strcmp(argv[a], "--emit") && a + 1 < argc) emit = argv[++a];
        else bad = 1;
    }
    if (bad || (emit && (broken || tf32)) || (band && (broken || tf32 || emit))) {
        fprintf(stderr, "usage: test_cuda_fa2 FILE.attn [--tf32] [--break | --break-barrier] | FILE.attn --emit DIR"
                        " | FILE.attn --band\n");
        return 2;
    }
    cuda_fa2_break_for_tests = broken;
    size_t len;
    char *text = read_file(argv[1], &len);
    attnc_spec *spec = NULL;
    attnc_error err = {0};
    if (!text || attnc_spec_from_string(argv[1], text, len, &spec, &err)) {
        printf("FAIL %s: %s\n", argv[1], text ? err.message : "unreadable");
        free(text);
        return 1;
    }
    if (band) {
        int r = band_cases(spec);
        attnc_spec_free(spec);
        free(text);
        return r != 0;
    }
    int n = attnc_spec_variant_count(spec), fails = 0, cases = 0, unseen = 0;
    for (int i = 0; i < n; i++) {
        const char *name = attnc_spec_variant_name(spec, i);
        if (emit) {
            fails += emit_texts(spec, name, emit);
            continue;
        }
        char line[1024];
        ExampleArgs ea;
        if (!find_args_line(text, name, n == 1, line, sizeof line) || !parse_args(line, &ea)) {
            printf("FAIL %s: no example-args\n", name);
            fails++;
            continue;
        }
        for (int type = tf32 ? T_TF32 : T_F16; type <= (tf32 ? T_TF32 : T_BF16); type++) {
            for (size_t s = 0; s < sizeof SHAPES / sizeof SHAPES[0]; s++, cases++)
                fails += tally(run_case(spec, name, &ea, SHAPES[s], type, broken, 1), &unseen);
            /* and one drawn shape (the same on every run: seeded by the attention's index and type) */
            char drawn[128];
            int x[6]; /* drawn in order (a function's arguments are evaluated in no set order) */
            rng_seed(type == T_TF32 ? 5000 + (uint64_t)i : 1000 + 2 * (uint64_t)i + (uint64_t)type);
            for (int d = 0; d < 6; d++) x[d] = (int)(rng_next() % 200);
            snprintf(drawn, sizeof drawn, "B=%d,H=4,Hkv=%d,Lq=%d,Lk=%d,D=%d,Dv=%d", 1 + x[0] % 2, 1 << (x[1] % 3),
                     1 + x[2], 1 + x[3], 16 * (1 + x[4] % 4), 16 * (1 + x[5] % 4));
            fails += tally(run_case(spec, name, &ea, drawn, type, broken, 1), &unseen);
            cases++;
            /* head sizes the kernel does not take: the scaffold, on the same inputs */
            if (!broken) fails += run_case(spec, name, &ea, "D=24,Dv=40", type, 0, 0), cases++;
        }
    }
    attnc_spec_free(spec);
    free(text);
    printf("%d cases, %d failed\n", cases, fails);
    if (broken == 2 && unseen == cases) {
        printf("FAIL the missing barrier was never seen\n");
        return 1;
    }
    return fails != 0;
}
