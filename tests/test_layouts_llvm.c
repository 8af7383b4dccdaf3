/* test_layouts_llvm.c — the LLVM kernel on tensors as users hold them
 * (issue 10): Q, K, V and O in f32, f16 or bf16, [B, H, L, D] or [B, L, H, D],
 * Q, K and V as slices of one fused [B, L, 3, H, D] buffer, O and LSE with
 * gaps between their rows or heads.
 *
 * Each layout runs on examples (a mask, ALiBi, a low-rank bias, a document
 * mask read from a tensor, a softcap, a weight clause) with odd lengths, Lq !=
 * Lk, GQA and D not a power of two, at 8-lane code (the first prefill and the
 * first decode case at 4- and 16-lane code too), and at decode
 * shapes whose query heads are packed (each row of a work item at its own
 * head's Q, O and LSE rows).  The inputs are drawn in float32 and rounded to
 * each tensor's type; the reference is the interpreter on those rounded values
 * in plain float32 [B, H, L, D] form.  O must be within half a unit in the
 * last place of O's type of the reference, plus the float32 error of the
 * kernel: a truncating or otherwise wrong rounding mode, a mis-strided row or
 * a wrong element type fails it.  O must also be, bit for bit, the LLVM
 * kernel's own plain-float32 O on the same inputs rounded to O's type (the
 * kernels convert per tile and then run the same code), and LSE bit for bit
 * the same.  Bytes of O's and LSE's buffers between the tensor's elements must
 * stay untouched.
 *
 * Usage: test_layouts_llvm EXAMPLES_DIR [--quick]  (--quick: one case, one
 * width, for valgrind).  Exit 0 when all pass, 77 without an LLVM backend. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attnc.h"
#include "half.h"
#include "support.h"
#include "check.h"

/* The kernel's float32 error against the interpreter's double, relative to
 * 1 + |value|: far below half an f16 or bf16 unit at the values O takes. */
static const double F32_TOL = 1e-6;


typedef struct Case {
    const char *file, *variant;
    const char *args; /* as an example-args line */
} Case;

static const Case CASES[] = {
    {"causal.attn", "causal_bottom_right_aligned", "--shape B=2,H=4,Hkv=2,Lq=37,Lk=53,D=40,Dv=24"},
    {"alibi.attn", "alibi_causal", "--shape B=1,H=4,Hkv=1,Lq=71,Lk=71,D=24,Dv=40"},
    {"low_rank_bias.attn", "flashbias_low_rank", "--shape B=2,H=4,Hkv=2,Lq=33,Lk=47,D=40,Dv=8 --param rank=3"},
    {"document.attn", "document_causal", "--shape B=2,H=3,Hkv=3,Lq=45,Lk=45,D=20,Dv=12 --int-range doc=0,4"},
    {"softcap.attn", "softcap_causal", "--shape B=1,H=6,Hkv=2,Lq=65,Lk=90,D=72,Dv=40 --param cap=1.5"},
    {"sigmoid.attn", "sigmoid_attention", "--shape B=2,H=4,Hkv=2,Lq=40,Lk=57,D=40,Dv=24"},
    /* decode (issue 11): 4 query heads per kv head packed into one work item */
    {"causal.attn", "causal_bottom_right_aligned", "--shape B=2,H=8,Hkv=2,Lq=1,Lk=53,D=40,Dv=24"},
    {"alibi.attn", "alibi_causal", "--shape B=1,H=8,Hkv=2,Lq=7,Lk=71,D=24,Dv=40"},
    {"softcap.attn", "softcap_causal", "--shape B=1,H=8,Hkv=2,Lq=3,Lk=90,D=72,Dv=40 --param cap=1.5"},
};
enum { NCASES = sizeof CASES / sizeof CASES[0] };

/* Where one of Q, K, V, O lives. */
typedef enum Form { BHLD, BLHD, FUSED } Form;
typedef struct Place {
    attnc_elem elem;
    Form form;
    int pad_row, pad_head; /* elements of gap after each row, after each head (BHLD) */
} Place;

/* A layout of the whole call: Q, K, V (fused: slices of one buffer) and O;
 * LSE's gap between rows and whether it is [B, Lq, H]. */
typedef struct Mode {
    const char *name;
    Place q, k, v, o;
    int lse_gap, lse_blh;
} Mode;

static const Mode MODES[] = {
    {"f16", {ATTNC_ELEM_F16, BHLD, 0, 0}, {ATTNC_ELEM_F16, BHLD, 0, 0}, {ATTNC_ELEM_F16, BHLD, 0, 0},
     {ATTNC_ELEM_F16, BHLD, 0, 0}, 0, 0},
    {"bf16", {ATTNC_ELEM_BF16, BHLD, 0, 0}, {ATTNC_ELEM_BF16, BHLD, 0, 0}, {ATTNC_ELEM_BF16, BHLD, 0, 0},
     {ATTNC_ELEM_BF16, BHLD, 0, 0}, 0, 0},
    {"blhd-f32", {ATTNC_ELEM_F32, BLHD, 0, 0}, {ATTNC_ELEM_F32, BLHD, 0, 0}, {ATTNC_ELEM_F32, BLHD, 0, 0},
     {ATTNC_ELEM_F32, BLHD, 0, 0}, 0, 1},
    {"blhd-bf16", {ATTNC_ELEM_BF16, BLHD, 0, 0}, {ATTNC_ELEM_BF16, BLHD, 0, 0}, {ATTNC_ELEM_BF16, BLHD, 0, 0},
     {ATTNC_ELEM_BF16, BLHD, 0, 0}, 0, 1},
    {"fused-f16 O-gaps", {ATTNC_ELEM_F16, FUSED, 0, 0}, {ATTNC_ELEM_F16, FUSED, 0, 0}, {ATTNC_ELEM_F16, FUSED, 0, 0},
     {ATTNC_ELEM_F16, BLHD, 3, 0}, 2, 0},
    {"fused-bf16 O-f32-gaps", {ATTNC_ELEM_BF16, FUSED, 0, 0}, {ATTNC_ELEM_BF16, FUSED, 0, 0},
     {ATTNC_ELEM_BF16, FUSED, 0, 0}, {ATTNC_ELEM_F32, BHLD, 1, 7}, 3, 1},
    {"mixed", {ATTNC_ELEM_BF16, BLHD, 0, 0}, {ATTNC_ELEM_F16, BHLD, 2, 0}, {ATTNC_ELEM_F32, BLHD, 5, 0},
     {ATTNC_ELEM_BF16, BHLD, 0, 5}, 1, 0},
    {"f32 padded rows", {ATTNC_ELEM_F32, BHLD, 3, 0}, {ATTNC_ELEM_F32, BHLD, 1, 4}, {ATTNC_ELEM_F32, BHLD, 7, 0},
     {ATTNC_ELEM_F32, BHLD, 0, 0}, 0, 0},
};
enum { NMODES = sizeof MODES / sizeof MODES[0] };

static size_t esize(attnc_elem e) { return e == ATTNC_ELEM_F32 ? 4 : 2; }

static float round_to(attnc_elem e, float x) {
    if (e == ATTNC_ELEM_F16) return attnc_f16_to_f32(attnc_f32_to_f16(x));
    if (e == ATTNC_ELEM_BF16) return attnc_bf16_to_f32(attnc_f32_to_bf16(x));
    return x;
}

static void put(unsigned char *buf, attnc_elem e, int64_t i, float x) {
    if (e == ATTNC_ELEM_F32) {
        memcpy(buf + i * 4, &x, 4);
    } else {
        uint16_t h = e == ATTNC_ELEM_F16 ? attnc_f32_to_f16(x) : attnc_f32_to_bf16(x);
        memcpy(buf + i * 2, &h, 2);
    }
}

static float get(const unsigned char *buf, attnc_elem e, int64_t i) {
    if (e == ATTNC_ELEM_F32) {
        float x;
        memcpy(&x, buf + i * 4, 4);
        return x;
    }
    uint16_t h;
    memcpy(&h, buf + i * 2, 2);
    return e == ATTNC_ELEM_F16 ? attnc_f16_to_f32(h) : attnc_bf16_to_f32(h);
}

/* Half a unit in the last place of type e at |x| (0 for f32: its error is F32_TOL's). */
static double half_ulp(attnc_elem e, double x) {
    if (e == ATTNC_ELEM_F32 || x == 0 || !isfinite(x)) return 0;
    int ex;
    frexp(fabs(x), &ex); /* |x| in [2^(ex-1), 2^ex) */
    int mant = e == ATTNC_ELEM_F16 ? 10 : 7, emin = e == ATTNC_ELEM_F16 ? -14 : -126;
    int exp = ex - 1 < emin ? emin : ex - 1;
    return ldexp(1.0, exp - mant) / 2;
}

/* One tensor of the call: [B, heads, L, row] at its place; the fused buffer
 * is [B, Lf, 3, Hf, Dm] with Q, K, V in slots 0, 1, 2. */
typedef struct Tensor {
    attnc_elem elem;
    int64_t stride[4], offset; /* elements; offset: of element [0,0,0,0] in buf */
    int64_t heads, len, row;
    unsigned char *buf; /* owned unless fused */
    int64_t extent;     /* elements of buf from the offset on */
} Tensor;

static void place(Tensor *t, const Place *p, int64_t B, int64_t heads, int64_t len, int64_t row, int slot,
                  unsigned char *fused, const int64_t *fused_dims) {
    t->elem = p->elem, t->heads = heads, t->len = len, t->row = row;
    int64_t pitch = row + p->pad_row, total;
    if (p->form == FUSED) {
        int64_t Lf = fused_dims[0], Hf = fused_dims[1], Dm = fused_dims[2];
        int64_t s[4] = {Lf * 3 * Hf * Dm, Dm, 3 * Hf * Dm, 1};
        memcpy(t->stride, s, sizeof s);
        t->offset = slot * Hf * Dm;
        total = B * s[0];
        t->buf = fused;
    } else {
        if (p->form == BHLD) {
            int64_t head = len * pitch + p->pad_head;
            int64_t s[4] = {heads * head, head, pitch, 1};
            memcpy(t->stride, s, sizeof s);
        } else {
            int64_t s[4] = {len * heads * pitch, pitch, heads * pitch, 1};
            memcpy(t->stride, s, sizeof s);
        }
        t->offset = 0;
        total = B * t->stride[0];
        t->buf = malloc((size_t)total * esize(p->elem) + 1);
        memset(t->buf, 0x5a, (size_t)total * esize(p->elem));
    }
    t->extent = total - t->offset;
}

static int64_t at(const Tensor *t, int64_t b, int64_t h, int64_t l, int64_t d) {
    return t->offset + b * t->stride[0] + h * t->stride[1] + l * t->stride[2] + d;
}

/* The reference values: uniform in [-1, 1), rounded to the tensor's type,
 * contiguous [B, heads, L, row] (returned), and the same into t's buffer. */
static float *fill(Tensor *t, int64_t B) {
    size_t n = (size_t)(B * t->heads * t->len * t->row);
    float *x = random_floats(n);
    size_t i = 0;
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < t->heads; h++)
            for (int64_t l = 0; l < t->len; l++)
                for (int64_t d = 0; d < t->row; d++, i++) {
                    x[i] = round_to(t->elem, x[i]);
                    put(t->buf, t->elem, at(t, b, h, l, d), x[i]);
                }
    return x;
}

static attnc_layout layout_of(const Tensor *t) {
    attnc_layout l = {t->elem, {t->stride[0], t->stride[1], t->stride[2], t->stride[3]}, t->extent};
    return l;
}

/* Every byte of buf outside the tensor's elements is still 0x5a. */
static int gaps_untouched(const unsigned char *buf, size_t bytes, const unsigned char *covered) {
    for (size_t i = 0; i < bytes; i++)
        if (!covered[i] && buf[i] != 0x5a) return 0;
    return 1;
}

typedef struct Run {
    attnc_kernel *llvm, *interp;
    const attnc_param *params;
    int np;
    const attnc_tensor *tensors;
    int nt;
    attnc_sizes sz;
} Run;

/* Run one mode: layouts through llvm, rounded plain inputs through the
 * interpreter and through llvm; compare. */
static void run_mode(const Run *r, const Mode *m, const char *what) {
    const attnc_sizes *z = &r->sz;
    int64_t Dm = z->D > z->Dv ? z->D : z->Dv, Lf = z->Lq > z->Lk ? z->Lq : z->Lk;
    int64_t fused_dims[3] = {Lf, z->H, Dm};
    size_t fused_bytes = (size_t)(z->B * Lf * 3 * z->H * Dm) * esize(m->q.elem);
    unsigned char *fused = malloc(fused_bytes + 1);
    memset(fused, 0x5a, fused_bytes);
    Tensor q, k, v, o;
    place(&q, &m->q, z->B, z->H, z->Lq, z->D, 0, fused, fused_dims);
    place(&k, &m->k, z->B, z->Hkv, z->Lk, z->D, 1, fused, fused_dims);
    place(&v, &m->v, z->B, z->Hkv, z->Lk, z->Dv, 2, fused, fused_dims);
    place(&o, &m->o, z->B, z->H, z->Lq, z->Dv, 0, NULL, NULL);
    float *qr = fill(&q, z->B), *kr = fill(&k, z->B), *vr = fill(&v, z->B);
    /* LSE: [B, H, Lq] or [B, Lq, H], each value followed by lse_gap unused floats */
    int64_t g = 1 + m->lse_gap, rows = z->B * z->H * z->Lq;
    attnc_layout ll = {ATTNC_ELEM_F32, {z->H * z->Lq * g, z->Lq * g, g, 0}, rows * g};
    if (m->lse_blh) ll.stride[1] = g, ll.stride[2] = z->H * g;
    float *lse = malloc(sizeof(float) * (size_t)(rows * g));
    memset(lse, 0x5a, sizeof(float) * (size_t)(rows * g));
    size_t o_bytes = (size_t)(o.extent) * esize(o.elem);
    attnc_layouts lays = {layout_of(&q), layout_of(&k), layout_of(&v), layout_of(&o), ll};
    attnc_args a = {*z,      (const float *)(const void *)(q.buf + q.offset * esize(q.elem)),
                    (const float *)(const void *)(k.buf + k.offset * esize(k.elem)),
                    (const float *)(const void *)(v.buf + v.offset * esize(v.elem)),
                    (float *)(void *)o.buf, lse, r->params, r->np, r->tensors, r->nt};
    size_t no = (size_t)(rows * z->Dv);
    float *oref = malloc(sizeof(float) * no), *lref = malloc(sizeof(float) * (size_t)rows);
    float *oplain = malloc(sizeof(float) * no), *lplain = malloc(sizeof(float) * (size_t)rows);
    attnc_args plain = {*z, qr, kr, vr, oref, lref, r->params, r->np, r->tensors, r->nt};
    attnc_error err = {0};
    attnc_status st = attnc_kernel_run_layout(r->llvm, &a, &lays, &err);
    CHECK(st == ATTNC_OK, "%s [%s]: llvm with layouts: %s", what, m->name, err.message);
    attnc_status st2 = attnc_kernel_run(r->interp, &plain, &err);
    CHECK(st2 == ATTNC_OK, "%s [%s]: interpreter: %s", what, m->name, err.message);
    plain.o = oplain, plain.lse = lplain;
    attnc_status st3 = attnc_kernel_run(r->llvm, &plain, &err);
    CHECK(st3 == ATTNC_OK, "%s [%s]: llvm plain: %s", what, m->name, err.message);
    unsigned char *o_cov = calloc(o_bytes + 1, 1), *l_cov = calloc(sizeof(float) * (size_t)(rows * g) + 1, 1);
    int bad = 0;
    double worst = 0;
    for (int64_t b = 0; !st && !st2 && !st3 && b < z->B; b++)
        for (int64_t h = 0; h < z->H; h++)
            for (int64_t i = 0; i < z->Lq; i++) {
                int64_t row = (b * z->H + h) * z->Lq + i;
                for (int64_t d = 0; d < z->Dv; d++) {
                    int64_t e = at(&o, b, h, i, d);
                    memset(o_cov + e * (int64_t)esize(o.elem), 1, esize(o.elem));
                    float got = get(o.buf, o.elem, e), want = oref[row * z->Dv + d];
                    float mine = round_to(o.elem, oplain[row * z->Dv + d]);
                    double tol = half_ulp(o.elem, want) + F32_TOL * (1 + fabs(want));
                    double diff = fabs((double)got - want);
                    if (isfinite(want) && diff / tol > worst) worst = diff / tol;
                    if (!(diff <= tol || (isnan(got) && isnan(want))) && bad++ < 3)
                        CHECK(0, "%s [%s]: O[%lld,%lld,%lld,%lld] = %.9g, the interpreter gives %.9g (tolerance %.3g)",
                              what, m->name, (long long)b, (long long)h, (long long)i, (long long)d, got, want, tol);
                    if (memcmp(&got, &mine, 4) != 0 && bad++ < 3)
                        CHECK(0, "%s [%s]: O[%lld,%lld,%lld,%lld] = %.9g, plain llvm rounded gives %.9g", what,
                              m->name, (long long)b, (long long)h, (long long)i, (long long)d, got, mine);
                }
                int64_t li = b * ll.stride[0] + h * ll.stride[1] + i * ll.stride[2];
                memset(l_cov + li * 4, 1, 4);
                float got = lse[li], want = lref[row];
                if (!close_enough(got, want, F32_TOL) && bad++ < 3)
                    CHECK(0, "%s [%s]: LSE[%lld,%lld,%lld] = %.9g, the interpreter gives %.9g", what, m->name,
                          (long long)b, (long long)h, (long long)i, got, want);
                if (memcmp(&got, &lplain[row], 4) != 0 && bad++ < 3)
                    CHECK(0, "%s [%s]: LSE[%lld,%lld,%lld] = %.9g, plain llvm gives %.9g", what, m->name, (long long)b,
                          (long long)h, (long long)i, got, lplain[row]);
            }
    CHECK(gaps_untouched(o.buf, o_bytes, o_cov), "%s [%s]: bytes between O's elements were written", what, m->name);
    CHECK(gaps_untouched((unsigned char *)lse, sizeof(float) * (size_t)(rows * g), l_cov),
          "%s [%s]: floats between LSE's elements were written", what, m->name);
    if (!bad && !st && !st2 && !st3) printf("ok %s [%s] worst %.2f of the tolerance\n", what, m->name, worst);
    Tensor *own[4] = {&q, &k, &v, &o};
    for (int i = 0; i < 4; i++)
        if (own[i]->buf != fused) free(own[i]->buf);
    free(fused);
    free(qr), free(kr), free(vr), free(lse), free(oref), free(lref), free(oplain), free(lplain), free(o_cov),
        free(l_cov);
}

static void run_case(const char *dir, const Case *c, const char *const *widths, int nwidths) {
    char path[1024], line[512], what[256];
    snprintf(path, sizeof path, "%s/%s", dir, c->file);
    size_t len = 0;
    char *text = read_file(path, &len);
    attnc_spec *spec = NULL;
    attnc_error err = {0};
    if (!text || attnc_spec_from_string(path, text, len, &spec, &err)) {
        CHECK(0, "%s: %s", path, text ? err.message : "unreadable");
        free(text);
        attnc_spec_free(spec);
        return;
    }
    ExampleArgs ea;
    memset(&ea, 0, sizeof ea);
    snprintf(line, sizeof line, "%s", c->args);
    CHECK(parse_args(line, &ea), "%s: bad args", c->args);
    attnc_options io = {ATTNC_BACKEND_INTERP, 1, NULL, 0, 0, 0, 0};
    attnc_kernel *ki = NULL;
    if (attnc_compile(spec, c->variant, &io, &ki, &err)) CHECK(0, "%s: %s", c->variant, err.message);
    for (int w = 0; ki && w < nwidths; w++) {
        setenv("ATTNC_LLVM_VECTOR_WIDTH", widths[w], 1);
        attnc_options lo = {ATTNC_BACKEND_LLVM, 2, NULL, 0, 0, 0, 0};
        attnc_kernel *kl = NULL;
        if (attnc_compile(spec, c->variant, &lo, &kl, &err)) {
            CHECK(0, "%s: %s", c->variant, err.message);
            continue;
        }
        attnc_param params[MAX_ITEMS];
        attnc_tensor tensors[MAX_ITEMS];
        memset(tensors, 0, sizeof tensors);
        const char *why = NULL;
        rng_seed(1234 + (uint64_t)w);
        int np = make_params(kl, &ea, params, &why), nt = np < 0 ? -1 : make_tensors(kl, &ea, params, np, tensors, &why);
        CHECK(np >= 0 && nt >= 0, "%s: %s", c->variant, why);
        Run r = {kl, ki, params, np, tensors, nt, ea.sz};
        for (int m = 0; np >= 0 && nt >= 0 && m < NMODES; m++) {
            snprintf(what, sizeof what, "%s %s W=%s", c->variant, c->args, widths[w]);
            run_mode(&r, &MODES[m], what);
        }
        for (int i = 0; i < (nt > 0 ? nt : 0); i++) free((void *)tensors[i].data);
        attnc_kernel_free(kl);
    }
    attnc_kernel_free(ki);
    attnc_spec_free(spec);
    free(text);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_layouts_llvm EXAMPLES_DIR [--quick]\n");
        return 2;
    }
    if (!attnc_backend_available(ATTNC_BACKEND_LLVM)) {
        printf("skipped: this build has no LLVM backend\n");
        return 77;
    }
    int quick = argc > 2 && strcmp(argv[2], "--quick") == 0;
    /* 16-, 8- and 4-lane code for one prefill and one decode case (the strided and converted row I/O is the
     * same lowering for every element code); 8 lanes for the others (all at three widths: the test took 127 s, now 42 s) */
    static const char *const widths[] = {"8", "16", "4"};
    for (int c = 0; c < (quick ? 1 : NCASES); c++)
        run_case(argv[1], &CASES[c], quick ? widths + 1 : widths, quick || (c != 0 && c != 6) ? 1 : 3);
    unsetenv("ATTNC_LLVM_VECTOR_WIDTH");
    printf(failures ? "FAILED: %d\n" : "all passed\n", failures);
    return failures ? 1 : 0;
}
