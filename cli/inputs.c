/* inputs.c — what `run`, `diff` and `bench` share: the one-line failure
 * message and exit status, loading the spec, and --param/--tensor values
 * (tensors read from .npy files).  Below main.c and measure.c, so neither
 * of those calls the other's functions. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "half.h"
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

int elem_bytes(attnc_elem e) { return e == ATTNC_ELEM_F32 ? 4 : 2; }

void *convert_elems(const void *src, attnc_elem from, attnc_elem to, size_t n) {
    char *out = malloc((size_t)elem_bytes(to) * n + 4);
    for (size_t i = 0; out && i < n; i++) {
        uint16_t w = from == ATTNC_ELEM_F32 ? 0 : ((const uint16_t *)src)[i];
        float x = from == ATTNC_ELEM_F32 ? ((const float *)src)[i] : from == ATTNC_ELEM_F16 ? attnc_f16_to_f32(w) : attnc_bf16_to_f32(w);
        if (to == ATTNC_ELEM_F32) ((float *)out)[i] = x;
        else ((uint16_t *)out)[i] = to == ATTNC_ELEM_F16 ? attnc_f32_to_f16(x) : attnc_f32_to_bf16(x);
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
