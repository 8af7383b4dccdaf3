/* test_layouts_api.c — attnc_kernel_run_layout on the backends that take
 * every layout (issue 10): f16 and bf16 storage, [B, L, H, D], Q, K and V as
 * slices of one fused [B, L, 3, H, D] buffer, O with gaps between its rows
 * and heads (the gaps stay untouched), a strided LSE, mixed element types.
 * Each call is checked against the interpreter run on float32 contiguous
 * copies of the same (rounded) inputs: O within half a unit in the last
 * place of its own type plus float error (so a wrong rounding mode, a
 * mis-strided row or a missing conversion fails), LSE within float error.
 * Hostile layouts (negative stride, rows not contiguous, beyond the extent,
 * O overlapping itself, O aliasing Q, a 16-bit LSE) give ATTNC_ERR_USAGE
 * with a message and leave O untouched; a runtime error on the launcher's
 * fault path is the interpreter's message, read through the layouts.
 * With --packed, calls long enough that the launcher copies each kv head's
 * K and V rows back to back before its items run (runtime/launch.c:
 * pack_head; [B, L, H, D] and fused K and V, GQA and MQA, B = 2, a fault), each
 * run with packing on (the launcher must count it packed) and off.
 *
 * Usage: test_layouts_api [--packed] [BACKEND...] (default: interp refplan). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attnc.h"
#include "half.h"
#include "launch_stats.h"
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

static const char *const SPECS[] = {
    "attention causal_gqa { use causal; }",
    "attention biased { mask kv <= q + 3; bias -0.125 * float(h + 1) * float(abs(q - kv)); }",
    "attention weighted { weight sigmoid(score); }",
};
enum { NSPECS = sizeof SPECS / sizeof SPECS[0], SENTINEL = 0x7e };

static attnc_kernel *compile(const char *text, attnc_backend b, attnc_error *err) {
    attnc_spec *s = NULL;
    attnc_kernel *k = NULL;
    attnc_options opts = {.backend = b, .threads = 2, .tile_q = 4, .tile_k = 4};
    if (attnc_spec_from_string("layouts.attn", text, strlen(text), &s, err) == ATTNC_OK)
        attnc_compile(s, NULL, &opts, &k, err);
    attnc_spec_free(s);
    return k;
}

/* ---- layouts ------------------------------------------------------------ */

/* How a test lays a tensor out: contiguous (strides left 0), [B, L, H, D],
 * a slice of a fused [B, L, 3, H, D] buffer, or [B, H, L, D] with gaps. */
typedef enum Form { F_PLAIN, F_BLHD, F_FUSED, F_GAPS } Form;
static const char *const FORM_NAMES[] = {"plain", "blhd", "fused", "gaps"};
static const char *const ELEM_NAMES[] = {"f32", "f16", "bf16"};

typedef struct Tensor {
    attnc_elem elem;
    Form form;
    int64_t dims[4], stride[4], extent; /* extent: elements from the pointer on */
    char *buf;                          /* what was allocated (NULL for fused K, V: Q's buffer) */
    void *at;                           /* element [0, 0, 0, 0] */
} Tensor;

static int esize(attnc_elem e) { return e == ATTNC_ELEM_F32 ? 4 : 2; }

static int64_t offset(const Tensor *t, int64_t b, int64_t h, int64_t l, int64_t d) {
    return b * t->stride[0] + h * t->stride[1] + l * t->stride[2] + d * t->stride[3];
}

/* Strides and extent of t for its form; a fused tensor is slot `slot` of 3. */
static void lay_out(Tensor *t, int slot) {
    int64_t B = t->dims[0], Hh = t->dims[1], L = t->dims[2], R = t->dims[3];
    int64_t pitch = R + 3, plane = L * pitch + 5;
    switch (t->form) {
    case F_PLAIN: memcpy(t->stride, (int64_t[4]){Hh * L * R, L * R, R, 1}, sizeof t->stride); break;
    case F_BLHD: memcpy(t->stride, (int64_t[4]){L * Hh * R, R, Hh * R, 1}, sizeof t->stride); break;
    case F_FUSED: memcpy(t->stride, (int64_t[4]){L * 3 * Hh * R, R, 3 * Hh * R, 1}, sizeof t->stride); break;
    case F_GAPS: memcpy(t->stride, (int64_t[4]){Hh * plane + 7, plane, pitch, 1}, sizeof t->stride); break;
    }
    if (t->form == F_FUSED) t->extent = B * L * 3 * Hh * R - slot * Hh * R;
    else t->extent = offset(t, B - 1, Hh - 1, L - 1, R - 1) + 1 + (t->form == F_GAPS ? 4 : 0);
}

static void set_word(void *base, attnc_elem e, int64_t off, float x) {
    if (e == ATTNC_ELEM_F32) ((float *)base)[off] = x;
    else ((uint16_t *)base)[off] = e == ATTNC_ELEM_F16 ? attnc_f32_to_f16(x) : attnc_f32_to_bf16(x);
}

static float get_word(const void *base, attnc_elem e, int64_t off) {
    if (e == ATTNC_ELEM_F32) return ((const float *)base)[off];
    uint16_t w = ((const uint16_t *)base)[off];
    return e == ATTNC_ELEM_F16 ? attnc_f16_to_f32(w) : attnc_bf16_to_f32(w);
}

/* Half a unit in the last place of x in type e (0 for float32: float error covers it). */
static double half_ulp(double x, attnc_elem e) {
    if (e == ATTNC_ELEM_F32) return 0;
    int ex;
    frexp(x, &ex); /* |x| in [2^(ex-1), 2^ex) */
    int mant = e == ATTNC_ELEM_F16 ? 10 : 7, emin = e == ATTNC_ELEM_F16 ? -14 : -126;
    if (ex - 1 < emin) ex = emin + 1;
    return ldexp(1.0, ex - 1 - mant - 1);
}

/* ---- one call ------------------------------------------------------------- */

typedef struct Case {
    const char *name;
    attnc_sizes sz;
    attnc_elem q_elem, k_elem, v_elem, o_elem;
    Form q_form, k_form, v_form, o_form;
    int lse_gaps;
} Case;

typedef struct Call {
    Tensor t[4]; /* Q, K, V, O */
    float *lse;
    int64_t lse_stride[3], lse_extent;
    attnc_args args;
    attnc_layouts lay;
    float *ref_q, *ref_k, *ref_v; /* float32, contiguous: the rounded inputs */
} Call;

static void call_free(Call *c) {
    for (int i = 0; i < 4; i++) free(c->t[i].buf);
    free(c->lse);
    free(c->ref_q);
    free(c->ref_k);
    free(c->ref_v);
}

/* The contiguous float32 copy of input t. */
static float *gather(const Tensor *t) {
    const int64_t *d = t->dims;
    float *out = malloc(sizeof(float) * (size_t)(d[0] * d[1] * d[2] * d[3] + 1));
    size_t n = 0;
    for (int64_t b = 0; b < d[0]; b++)
        for (int64_t h = 0; h < d[1]; h++)
            for (int64_t l = 0; l < d[2]; l++)
                for (int64_t x = 0; x < d[3]; x++) out[n++] = get_word(t->at, t->elem, offset(t, b, h, l, x));
    return out;
}

static void to_layout(const Tensor *t, attnc_layout *l) {
    memset(l, 0, sizeof *l);
    l->elem = t->elem;
    if (t->form != F_PLAIN) memcpy(l->stride, t->stride, sizeof l->stride);
    l->extent = t->extent;
}

/* Buffers, random inputs in their types, O and LSE full of the sentinel. */
static void make_call(const Case *cs, Call *c) {
    memset(c, 0, sizeof *c);
    const attnc_sizes *s = &cs->sz;
    const attnc_elem elems[4] = {cs->q_elem, cs->k_elem, cs->v_elem, cs->o_elem};
    const Form forms[4] = {cs->q_form, cs->k_form, cs->v_form, cs->o_form};
    const int64_t dims[4][4] = {{s->B, s->H, s->Lq, s->D}, {s->B, s->Hkv, s->Lk, s->D}, {s->B, s->Hkv, s->Lk, s->Dv},
                                {s->B, s->H, s->Lq, s->Dv}};
    for (int i = 0; i < 4; i++) {
        Tensor *t = &c->t[i];
        t->elem = elems[i], t->form = forms[i];
        memcpy(t->dims, dims[i], sizeof t->dims);
        lay_out(t, i);
        if (t->form == F_FUSED && i > 0) { /* K and V: slots of Q's buffer */
            t->at = (char *)c->t[0].at + (size_t)(i * s->H * s->D * esize(t->elem));
            continue;
        }
        t->buf = malloc((size_t)(t->extent * esize(t->elem)));
        t->at = t->buf;
        if (i == 3) memset(t->buf, SENTINEL, (size_t)(t->extent * esize(t->elem)));
        else
            for (int64_t x = 0; x < t->extent; x++) set_word(t->buf, t->elem, x, rng_uniform());
    }
    int64_t lp = cs->lse_gaps ? 2 : 1, lh = s->Lq * lp + (cs->lse_gaps ? 3 : 0);
    int64_t ls[3] = {s->H * lh + (cs->lse_gaps ? 1 : 0), lh, lp};
    memcpy(c->lse_stride, ls, sizeof ls);
    c->lse_extent = (s->B - 1) * ls[0] + (s->H - 1) * ls[1] + (s->Lq - 1) * ls[2] + 1 + (cs->lse_gaps ? 2 : 0);
    c->lse = malloc(sizeof(float) * (size_t)c->lse_extent);
    memset(c->lse, SENTINEL, sizeof(float) * (size_t)c->lse_extent);
    c->ref_q = gather(&c->t[0]);
    c->ref_k = gather(&c->t[1]);
    c->ref_v = gather(&c->t[2]);
    c->args = (attnc_args){*s, c->t[0].at, c->t[1].at, c->t[2].at, c->t[3].at, c->lse, NULL, 0, NULL, 0};
    to_layout(&c->t[0], &c->lay.q);
    to_layout(&c->t[1], &c->lay.k);
    to_layout(&c->t[2], &c->lay.v);
    to_layout(&c->t[3], &c->lay.o);
    if (cs->lse_gaps) memcpy(c->lay.lse.stride, ls, sizeof ls);
    c->lay.lse.extent = c->lse_extent;
}

/* Whether every byte of buf outside the elements of t (O) or of the LSE is the sentinel. */
static int gaps_untouched(const Call *c) {
    const Tensor *o = &c->t[3];
    char *is_elem = calloc((size_t)(o->extent + c->lse_extent), 1);
    int ok = 1;
    for (int64_t b = 0; b < o->dims[0]; b++)
        for (int64_t h = 0; h < o->dims[1]; h++)
            for (int64_t l = 0; l < o->dims[2]; l++) {
                for (int64_t d = 0; d < o->dims[3]; d++) is_elem[offset(o, b, h, l, d)] = 1;
                is_elem[o->extent + b * c->lse_stride[0] + h * c->lse_stride[1] + l * c->lse_stride[2]] = 1;
            }
    int eo = esize(o->elem);
    for (int64_t x = 0; x < o->extent; x++)
        for (int byte = 0; !is_elem[x] && byte < eo; byte++) ok &= (unsigned char)o->buf[x * eo + byte] == SENTINEL;
    for (int64_t x = 0; x < c->lse_extent; x++)
        for (int byte = 0; !is_elem[o->extent + x] && byte < 4; byte++)
            ok &= ((unsigned char *)c->lse)[x * 4 + byte] == SENTINEL;
    free(is_elem);
    return ok;
}

/* O and LSE of the call against ref_o, ref_lse (the interpreter on the rounded float32 inputs). */
static void compare(const Case *cs, const Call *c, const float *ref_o, const float *ref_lse, const char *what) {
    const Tensor *o = &c->t[3];
    const attnc_sizes *s = &cs->sz;
    double worst = 0;
    int bad = 0;
    char first[200] = "";
    for (int64_t b = 0; b < s->B; b++)
        for (int64_t h = 0; h < s->H; h++)
            for (int64_t l = 0; l < s->Lq; l++) {
                size_t row = (size_t)((b * s->H + h) * s->Lq + l);
                for (int64_t d = 0; d < s->Dv; d++) {
                    double want = ref_o[row * (size_t)s->Dv + (size_t)d];
                    double got = get_word(o->at, o->elem, offset(o, b, h, l, d));
                    double err = fabs(got - want), tol = half_ulp(want, o->elem) + 2e-6 * (1 + fabs(want));
                    if (err / (tol > 0 ? tol : 1) > worst) worst = err / tol;
                    if (!(err <= tol) && !bad++)
                        snprintf(first, sizeof first, "O[%lld,%lld,%lld,%lld] = %.9g, want %.9g", (long long)b,
                                 (long long)h, (long long)l, (long long)d, got, want);
                }
                double want = ref_lse[row];
                double got = c->lse[b * c->lse_stride[0] + h * c->lse_stride[1] + l * c->lse_stride[2]];
                if (!close_enough((float)got, (float)want, 2e-6) && !bad++)
                    snprintf(first, sizeof first, "LSE[%lld,%lld,%lld] = %.9g, want %.9g", (long long)b, (long long)h,
                             (long long)l, got, want);
            }
    check(!bad, "%s: O and LSE match the interpreter (%d off%s%s; worst %.2f of the tolerance)", what, bad,
          bad ? ": " : "", first, worst);
    check(gaps_untouched(c), "%s: the gaps of O and LSE are untouched", what);
}

static void run_case(const Case *cs, attnc_backend backend) {
    for (int si = 0; si < NSPECS; si++) {
        char what[300];
        snprintf(what, sizeof what, "%s %s [%s] Q %s/%s K %s/%s V %s/%s O %s/%s", attnc_backend_name(backend),
                 cs->name, SPECS[si] + 10, ELEM_NAMES[cs->q_elem], FORM_NAMES[cs->q_form], ELEM_NAMES[cs->k_elem],
                 FORM_NAMES[cs->k_form], ELEM_NAMES[cs->v_elem], FORM_NAMES[cs->v_form], ELEM_NAMES[cs->o_elem],
                 FORM_NAMES[cs->o_form]);
        attnc_error err = {0};
        attnc_kernel *ref = compile(SPECS[si], ATTNC_BACKEND_INTERP, &err), *k = compile(SPECS[si], backend, &err);
        check(ref && k, "%s: compiles (%s)", what, err.message);
        if (!ref || !k) {
            attnc_kernel_free(ref);
            attnc_kernel_free(k);
            continue;
        }
        Call c;
        make_call(cs, &c);
        const attnc_sizes *s = &cs->sz;
        size_t rows = (size_t)(s->B * s->H * s->Lq);
        float *ref_o = malloc(sizeof(float) * (rows * (size_t)s->Dv + 1)), *ref_lse = malloc(sizeof(float) * (rows + 1));
        attnc_args ra = {*s, c.ref_q, c.ref_k, c.ref_v, ref_o, ref_lse, NULL, 0, NULL, 0};
        attnc_status st = attnc_kernel_run(ref, &ra, &err);
        check(st == ATTNC_OK, "%s: the reference runs (%s)", what, err.message);
        st = attnc_kernel_run_layout(k, &c.args, &c.lay, &err);
        check(st == ATTNC_OK, "%s: runs (%s)", what, err.message);
        if (st == ATTNC_OK) compare(cs, &c, ref_o, ref_lse, what);
        free(ref_o);
        free(ref_lse);
        call_free(&c);
        attnc_kernel_free(ref);
        attnc_kernel_free(k);
    }
}

/* ---- hostile layouts --------------------------------------------------------- */

/* One bad layout: ATTNC_ERR_USAGE naming the problem, O and LSE untouched. */
static void expect_refused(attnc_kernel *k, Call *c, const attnc_args *args, const attnc_layouts *lay,
                           const char *needle, const char *what) {
    attnc_error err = {0};
    size_t ob = (size_t)(c->t[3].extent * esize(c->t[3].elem));
    char *o_before = malloc(ob), *q_before = malloc((size_t)(c->t[0].extent * esize(c->t[0].elem)));
    memcpy(o_before, c->t[3].buf, ob);
    memcpy(q_before, c->t[0].buf, (size_t)(c->t[0].extent * esize(c->t[0].elem)));
    attnc_status st = attnc_kernel_run_layout(k, args, lay, &err);
    check(st == ATTNC_ERR_USAGE && strstr(err.message, needle) && !strchr(err.message, '\n'),
          "%s %s: ATTNC_ERR_USAGE with '%s' (status %d: %s)", attnc_backend_name(attnc_kernel_backend(k)), what,
          needle, (int)st, err.message);
    check(!memcmp(o_before, c->t[3].buf, ob) && !memcmp(q_before, c->t[0].buf, (size_t)(c->t[0].extent * esize(c->t[0].elem))),
          "%s %s: O (and Q) untouched", attnc_backend_name(attnc_kernel_backend(k)), what);
    free(o_before);
    free(q_before);
}

static void hostile(attnc_backend backend) {
    attnc_error err = {0};
    attnc_kernel *k = compile(SPECS[1], backend, &err);
    check(k != NULL, "hostile: compiles (%s)", err.message);
    if (!k) return;
    Case cs = {"hostile", {2, 4, 2, 9, 13, 8, 6}, ATTNC_ELEM_F16, ATTNC_ELEM_F16, ATTNC_ELEM_F16, ATTNC_ELEM_F16,
               F_BLHD, F_BLHD, F_BLHD, F_BLHD, 0};
    Call c;
    make_call(&cs, &c);
    attnc_layouts lay = c.lay;
    lay.q.stride[1] = -8;
    expect_refused(k, &c, &c.args, &lay, "negative", "negative Q stride");
    lay = c.lay;
    lay.k.stride[3] = 2;
    expect_refused(k, &c, &c.args, &lay, "contiguous", "K stride[3] = 2");
    lay = c.lay;
    lay.v.extent -= 1;
    expect_refused(k, &c, &c.args, &lay, "beyond its extent", "V one element short of its extent");
    lay = c.lay;
    lay.o.stride[1] = 0; /* every head on the same memory */
    expect_refused(k, &c, &c.args, &lay, "share memory", "O heads overlapping");
    lay = c.lay;
    lay.lse.elem = ATTNC_ELEM_F16;
    expect_refused(k, &c, &c.args, &lay, "LSE is float32 only", "f16 LSE");
    attnc_args alias = c.args;
    alias.o = (float *)c.t[0].at; /* O written over Q */
    lay = c.lay;
    lay.o = lay.q;
    lay.o.extent = 0;
    expect_refused(k, &c, &alias, &lay, "overlaps", "O aliasing Q");
    call_free(&c);
    attnc_kernel_free(k);
}

/* A runtime error (an index out of range) with f16 [B, L, H, D] inputs: the
 * launcher's fault path asks the interpreter for the message, through the
 * call's layouts; O untouched.  long_call: 33 rows (packed K and V). */
static void fault(attnc_backend backend, int long_call) {
    const char *spec = "attention oob { tensor t : float[4]; bias t[kv]; }";
    attnc_error err = {0};
    attnc_kernel *k = compile(spec, backend, &err);
    check(k != NULL, "fault: compiles (%s)", err.message);
    if (!k) return;
    Case cs = {"fault", {1, 2, 2, long_call ? 33 : 7, long_call ? 33 : 7, 8, 8}, ATTNC_ELEM_F16, ATTNC_ELEM_BF16, ATTNC_ELEM_F16, ATTNC_ELEM_BF16,
               F_FUSED, F_FUSED, F_FUSED, F_GAPS, 1};
    cs.k_elem = cs.v_elem = ATTNC_ELEM_F16; /* one fused buffer, one type */
    Call c;
    make_call(&cs, &c);
    float t[4] = {1, 2, 3, 4};
    attnc_tensor tens = {"t", ATTNC_F32, 1, {4}, t};
    c.args.tensors = &tens;
    c.args.n_tensors = 1;
    attnc_status st = attnc_kernel_run_layout(k, &c.args, &c.lay, &err);
    check(st == ATTNC_ERR_RUNTIME && strstr(err.message, "index 4 is out of range"),
          "%s fault: the interpreter's message (status %d: %s)", attnc_backend_name(backend), (int)st, err.message);
    size_t ob = (size_t)(c.t[3].extent * 2);
    int untouched = 1;
    for (size_t i = 0; i < ob; i++) untouched &= (unsigned char)c.t[3].buf[i] == SENTINEL;
    check(untouched && gaps_untouched(&c), "%s fault: O untouched", attnc_backend_name(backend));
    call_free(&c);
    attnc_kernel_free(k);
}

/* Calls of 8 to 21 tiles each way (4 x 4 tiles), so that every kv tile is
 * read by at least 4 q tiles (8 with 16-bit K or V): with packing on, each whose K or V rows lie
 * apart must be counted packed, and on llvm (CompiledKernel.widens) each
 * with 16-bit K or V packed and widened into float32, rows back to back or
 * not; with packing off, none; all match the interpreter. */
static void packed(attnc_backend backend) {
    const attnc_sizes gqa = {2, 4, 2, 37, 37, 8, 6};
    /* 16-bit K or V: at least 18 kv tiles, so that every spec reads each at least 8 times (WIDEN_MIN_READS) */
    const attnc_sizes mqa = {2, 4, 1, 80, 73, 8, 8}, gqa16 = {2, 4, 2, 77, 77, 8, 6}, longer16 = {1, 3, 3, 84, 81, 16, 8};
    const Case cases[] = {
        {"blhd", gqa, ATTNC_ELEM_F32, ATTNC_ELEM_F32, ATTNC_ELEM_F32, ATTNC_ELEM_F32, F_BLHD, F_BLHD, F_BLHD, F_BLHD, 1},
        {"bf16 K blhd, V gaps, one kv head", mqa, ATTNC_ELEM_F16, ATTNC_ELEM_BF16, ATTNC_ELEM_F32, ATTNC_ELEM_F16, F_PLAIN, F_BLHD,
         F_GAPS, F_PLAIN, 0},
        {"fused f16", longer16, ATTNC_ELEM_F16, ATTNC_ELEM_F16, ATTNC_ELEM_F16, ATTNC_ELEM_F32, F_FUSED, F_FUSED, F_FUSED,
         F_BLHD, 0},
        {"f16 rows back to back", gqa16, ATTNC_ELEM_F16, ATTNC_ELEM_F16, ATTNC_ELEM_F16, ATTNC_ELEM_F16, F_PLAIN, F_PLAIN,
         F_PLAIN, F_PLAIN, 0},
        {"f32 K, bf16 V back to back", longer16, ATTNC_ELEM_F32, ATTNC_ELEM_F32, ATTNC_ELEM_BF16, ATTNC_ELEM_BF16, F_PLAIN,
         F_PLAIN, F_PLAIN, F_PLAIN, 0},
    };
    int widens = backend == ATTNC_BACKEND_LLVM;
    for (int on = 1; on >= 0; on--) {
        launch_set_kv_packing(on);
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            const Case *cs = &cases[i];
            int half = cs->k_elem != ATTNC_ELEM_F32 || cs->v_elem != ATTNC_ELEM_F32;
            int apart = cs->k_form != F_PLAIN || cs->v_form != F_PLAIN;
            int want_packed = on && (apart || (widens && half)), want_widened = on && widens && half;
            long long before = launch_kv_packed_calls(), wbefore = launch_kv_widened_calls();
            run_case(cs, backend);
            long long calls = launch_kv_packed_calls() - before, wcalls = launch_kv_widened_calls() - wbefore;
            check(calls == (want_packed ? NSPECS : 0) && wcalls == (want_widened ? NSPECS : 0),
                  "%s packed %s (packing %s): %lld of %d calls packed (want %d), %lld widened (want %d)",
                  attnc_backend_name(backend), cs->name, on ? "on" : "off", calls, NSPECS, want_packed ? NSPECS : 0,
                  wcalls, want_widened ? NSPECS : 0);
        }
        long long before = launch_kv_packed_calls();
        fault(backend, 1);
        check(launch_kv_packed_calls() - before == on, "%s packed fault (packing %s): packed %d",
              attnc_backend_name(backend), on ? "on" : "off", on);
    }
    launch_set_kv_packing(1);
}

int main(int argc, char **argv) {
    attnc_backend list[8] = {ATTNC_BACKEND_INTERP, ATTNC_BACKEND_REFPLAN};
    int n = 2, pack = argc > 1 && !strcmp(argv[1], "--packed");
    if (pack) argc--, argv++;
    if (argc > 1) {
        n = 0;
        for (int i = 1; i < argc && n < 8; i++)
            if (!attnc_backend_parse(argv[i], &list[n++])) {
                fprintf(stderr, "unknown backend '%s'\n", argv[i]);
                return 2;
            }
    }
    const attnc_sizes gqa = {2, 4, 2, 9, 13, 8, 6}, fused = {2, 3, 3, 10, 10, 8, 8};
    const Case cases[] = {
        {"f16", gqa, ATTNC_ELEM_F16, ATTNC_ELEM_F16, ATTNC_ELEM_F16, ATTNC_ELEM_F16, F_PLAIN, F_PLAIN, F_PLAIN, F_PLAIN, 0},
        {"bf16", gqa, ATTNC_ELEM_BF16, ATTNC_ELEM_BF16, ATTNC_ELEM_BF16, ATTNC_ELEM_BF16, F_PLAIN, F_PLAIN, F_PLAIN,
         F_PLAIN, 0},
        {"f16 in, f32 out", gqa, ATTNC_ELEM_F16, ATTNC_ELEM_F16, ATTNC_ELEM_F16, ATTNC_ELEM_F32, F_PLAIN, F_PLAIN,
         F_PLAIN, F_PLAIN, 0},
        {"blhd", gqa, ATTNC_ELEM_F32, ATTNC_ELEM_F32, ATTNC_ELEM_F32, ATTNC_ELEM_F32, F_BLHD, F_BLHD, F_BLHD, F_BLHD, 0},
        {"bf16 blhd", gqa, ATTNC_ELEM_BF16, ATTNC_ELEM_BF16, ATTNC_ELEM_BF16, ATTNC_ELEM_BF16, F_BLHD, F_BLHD, F_BLHD,
         F_BLHD, 1},
        {"fused f16", fused, ATTNC_ELEM_F16, ATTNC_ELEM_F16, ATTNC_ELEM_F16, ATTNC_ELEM_F16, F_FUSED, F_FUSED, F_FUSED,
         F_GAPS, 1},
        {"fused f32", fused, ATTNC_ELEM_F32, ATTNC_ELEM_F32, ATTNC_ELEM_F32, ATTNC_ELEM_BF16, F_FUSED, F_FUSED,
         F_FUSED, F_BLHD, 0},
        {"mixed", gqa, ATTNC_ELEM_BF16, ATTNC_ELEM_F16, ATTNC_ELEM_F32, ATTNC_ELEM_F16, F_BLHD, F_GAPS, F_GAPS, F_GAPS,
         1},
    };
    rng_seed(10);
    for (int b = 0; b < n; b++) {
        if (pack) {
            packed(list[b]);
            continue;
        }
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(&cases[i], list[b]);
        hostile(list[b]);
        fault(list[b], 0);
    }
    printf("%d passed, %d failed\n", passes, fails);
    return fails ? 1 : 0;
}
