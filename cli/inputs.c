/* inputs.c — what the commands share: the one-line failure message and
 * exit status, loading the spec, --param/--tensor values (tensors read from
 * .npy files), Q, K and V files, and output files opened as a group.  Below main.c and measure.c, so neither
 * of those calls the other's functions. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "half.h"
#include "inputs.h"
#include "outfile.h"

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

/* ---- Q, K, V files and output files ------------------------------------ */

/* Read Q, K or V (`what`): a rank-4 '<f4' or '<f2' array, stored as o->elem
 * (a '<f4' file rounded to it, a '<f2' file widened for f32, as is for f16). */
int load_qkv(const Options *o, const char *path, const char *what, npy_array *a) {
    char msg[600];
    if (npy_read_f16(path, a, msg, sizeof msg)) return fail(EXIT_RUNTIME, "%s: %s", what, msg);
    if (a->dtype != ATTNC_F32) return fail(EXIT_RUNTIME, "%s (%s) must be float32 ('<f4') or f16 ('<f2')", what, path);
    if (a->rank != 4)
        return fail(EXIT_RUNTIME, o->blhd ? "%s (%s) must have 4 dimensions [B, L, heads, D]"
                                          : "%s (%s) must have 4 dimensions [B, heads, L, D]", what, path);
    if (a->f16 && o->elem == ATTNC_ELEM_BF16)
        return fail(EXIT_USAGE, "%s (%s) is f16 ('<f2'): --dtype bf16 takes '<f4' files only", what, path);
    attnc_elem from = a->f16 ? ATTNC_ELEM_F16 : ATTNC_ELEM_F32;
    if (from == o->elem) return 0;
    void *data = convert_elems(a->data, from, o->elem, a->count);
    if (!data) return fail(EXIT_RUNTIME, "out of memory converting %s", what, NULL);
    free(a->data);
    a->data = data;
    return 0;
}

int check_qkv_shapes(const npy_array *q, const npy_array *k, const npy_array *v) {
    char buf[300];
    if (k->shape[0] != q->shape[0] || v->shape[0] != q->shape[0])
        snprintf(buf, sizeof buf, "batch sizes differ: Q has %lld, K %lld, V %lld", (long long)q->shape[0],
                 (long long)k->shape[0], (long long)v->shape[0]);
    else if (k->shape[3] != q->shape[3])
        snprintf(buf, sizeof buf, "head dims differ: Q has D=%lld, K has D=%lld", (long long)q->shape[3],
                 (long long)k->shape[3]);
    else if (v->shape[1] != k->shape[1] || v->shape[2] != k->shape[2])
        snprintf(buf, sizeof buf, "V shape [%lld, %lld, %lld, _] does not match K [%lld, %lld, %lld, _]",
                 (long long)v->shape[0], (long long)v->shape[1], (long long)v->shape[2], (long long)k->shape[0],
                 (long long)k->shape[1], (long long)k->shape[2]);
    else
        return 0;
    return fail(EXIT_RUNTIME, "%s", buf, NULL);
}

/* The sizes of the call from Q, K, V's shapes in their layout. */
attnc_sizes sizes_of(const RunInputs *in, int blhd) {
    const int64_t *q = in->q.shape, *k = in->k.shape, *v = in->v.shape;
    int h = blhd ? 2 : 1, l = blhd ? 1 : 2;
    return (attnc_sizes){q[0], q[h], k[h], q[l], k[l], q[3], v[3]};
}

/* Output files are opened (every destination checked) before anything is
 * written, and committed together: a failure leaves none of them behind. */
int open_outputs(const char *const *paths, int n, outfile **files) {
    char msg[600];
    for (int i = 0; i < n; i++)
        if (outfile_open(paths[i], &files[i], msg, sizeof msg)) return fail(EXIT_RUNTIME, "%s", msg, NULL);
    return 0;
}

void discard_outputs(outfile **files, int n) {
    for (int i = 0; i < n; i++) outfile_discard(files[i]);
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
