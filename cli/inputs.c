/* inputs.c — what `run`, `diff` and `bench` share: the one-line failure
 * message and exit status, loading the spec, and --param/--tensor values
 * (tensors read from .npy files).  Below main.c and measure.c, so neither
 * of those calls the other's functions. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inputs.h"

int fail(int code, const char *fmt, const char *a, const char *b) {
    fprintf(stderr, "attnc: ");
    fprintf(stderr, fmt, a ? a : "", b ? b : "");
    fprintf(stderr, "\n");
    return code;
}

/* Load and check the spec; prints diagnostics. */
int load_spec(const Options *o, attnc_spec **spec) {
    attnc_error err = {0};
    attnc_status st = attnc_spec_from_file(o->file, spec, &err);
    if (*spec && attnc_spec_error_count(*spec)) {
        fputs(attnc_spec_diagnostics(*spec), stderr);
        int n = attnc_spec_error_count(*spec);
        fprintf(stderr, "%d error%s generated.\n", n, n == 1 ? "" : "s");
        return EXIT_SPEC;
    }
    if (st) return fail(st == ATTNC_ERR_SPEC ? EXIT_SPEC : EXIT_RUNTIME, "%s", err.message, NULL);
    return 0;
}

int status_exit(attnc_status st) {
    return st == ATTNC_ERR_SPEC ? EXIT_SPEC : st == ATTNC_ERR_USAGE ? EXIT_USAGE : EXIT_RUNTIME;
}

int bind_cli_params(const Options *o, const attnc_kernel *kern, RunInputs *in) {
    for (int i = 0; i < o->nparams; i++) {
        char name[128];
        const char *val = split_assignment(o->params[i], name, sizeof name);
        if (!val) return fail(EXIT_USAGE, "--param '%s': expected NAME=VALUE", o->params[i], NULL);
        attnc_error err = {0};
        attnc_status st = attnc_kernel_param_from_text(kern, name, val, &in->params[i], &err);
        if (st) return fail(status_exit(st), "--param: %s", err.message, NULL);
    }
    for (int i = 0; i < o->ntensors; i++) {
        const char *path = split_assignment(o->tensors[i], in->names[i], sizeof in->names[i]);
        if (!path) return fail(EXIT_USAGE, "--tensor '%s': expected NAME=FILE.npy", o->tensors[i], NULL);
        char msg[600];
        if (npy_read(path, &in->tens[i], msg, sizeof msg)) return fail(EXIT_RUNTIME, "tensor '%s': %s", in->names[i], msg);
        attnc_tensor *t = &in->tensors[i];
        t->name = in->names[i];
        t->dtype = in->tens[i].dtype;
        t->rank = in->tens[i].rank;
        memcpy(t->shape, in->tens[i].shape, sizeof t->shape);
        t->data = in->tens[i].data;
    }
    return 0;
}

/* ---- element types and layouts ------------------------------------------- */

/* float32 <-> f16 / bf16, exact widening and narrowing to nearest even, as
 * base/half.h does them: cli/ is a client of the public header only
 * (tests/layering.sh), so these few lines are written out again here.
 * tests/layouts_cli.sh checks them against half.h (files that
 * tests/tools/npyconv rounds with it give the same O). */
static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}
static float f32_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    if (exp == 0x1fu) return f32_from_bits(sign | 0x7f800000u | (man << 13));
    if (exp == 0) {
        float v = (float)man * 5.9604644775390625e-08f; /* a subnormal: man * 2^-24, exact */
        return sign ? -v : v;
    }
    return f32_from_bits(sign | ((exp + 112u) << 23) | (man << 13));
}

static uint16_t f32_to_f16(float f) {
    uint32_t u = f32_bits(f), sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
    if (a >= 0x7f800000u) return (uint16_t)(sign | 0x7c00u | (a > 0x7f800000u ? 0x200u | ((a >> 13) & 0x3ffu) : 0));
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* beyond 65504 after rounding: inf */
    if (a < 0x38800000u) {                                   /* a subnormal f16, or 0 */
        if (a < 0x33000000u) return (uint16_t)sign;
        uint32_t man = (a & 0x7fffffu) | 0x800000u, shift = 126u - (a >> 23);
        uint32_t q = man >> shift, rest = man & ((1u << shift) - 1u), half = 1u << (shift - 1u);
        q += rest > half || (rest == half && (q & 1u));
        return (uint16_t)(sign | q);
    }
    uint32_t r = a + 0xfffu + ((a >> 13) & 1u);
    return (uint16_t)(sign | (((r >> 13) - (112u << 10)) & 0x7fffu));
}

static float bf16_to_f32(uint16_t b) { return f32_from_bits((uint32_t)b << 16); }

static uint16_t f32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

int elem_bytes(attnc_elem e) { return e == ATTNC_ELEM_F32 ? 4 : 2; }

void *convert_elems(const void *src, attnc_elem from, attnc_elem to, size_t n) {
    char *out = malloc((size_t)elem_bytes(to) * n + 4);
    for (size_t i = 0; out && i < n; i++) {
        uint16_t w = from == ATTNC_ELEM_F32 ? 0 : ((const uint16_t *)src)[i];
        float x = from == ATTNC_ELEM_F32 ? ((const float *)src)[i] : from == ATTNC_ELEM_F16 ? f16_to_f32(w) : bf16_to_f32(w);
        if (to == ATTNC_ELEM_F32) ((float *)out)[i] = x;
        else ((uint16_t *)out)[i] = to == ATTNC_ELEM_F16 ? f32_to_f16(x) : f32_to_bf16(x);
    }
    return out;
}

/* One tensor of `heads` x `len` rows of `row` elements, stored [B, L, H, D]. */
static void blhd_layout(attnc_layout *l, int64_t B, int64_t heads, int64_t len, int64_t row) {
    l->stride[0] = len * heads * row;
    l->stride[1] = row;
    l->stride[2] = heads * row;
    l->stride[3] = 1;
    l->extent = B * len * heads * row;
}

void storage_layouts(const attnc_sizes *s, attnc_elem elem, int blhd, attnc_layouts *out) {
    memset(out, 0, sizeof *out);
    out->q.elem = out->k.elem = out->v.elem = out->o.elem = elem;
    if (!blhd) return;
    blhd_layout(&out->q, s->B, s->H, s->Lq, s->D);
    blhd_layout(&out->k, s->B, s->Hkv, s->Lk, s->D);
    blhd_layout(&out->v, s->B, s->Hkv, s->Lk, s->Dv);
    blhd_layout(&out->o, s->B, s->H, s->Lq, s->Dv);
}

void free_inputs(RunInputs *in) {
    if (!in) return;
    npy_free(&in->q);
    npy_free(&in->k);
    npy_free(&in->v);
    for (int i = 0; i < MAX_REPEATED; i++) npy_free(&in->tens[i]);
}
