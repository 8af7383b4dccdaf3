/* ragged.c — `attnc run` over a ragged batch through attnc_kernel_run_batch
 * (ragged.h).  Files are THD, FlashAttention's varlen layout; --dtype
 * stores Q, K, V and O as it does for `run`; --layout does not apply. */
#include "ragged.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inputs.h"
#include "outfile.h"

typedef struct Ragged {
    npy_array q, k, v, qs, ks;
    int64_t *q_start, *k_start;
} Ragged;

static void ragged_free(Ragged *r) {
    npy_free(&r->q), npy_free(&r->k), npy_free(&r->v), npy_free(&r->qs), npy_free(&r->ks);
    free(r->q_start), free(r->k_start);
}

/* A [rows, heads, D] tensor file, stored as elem. */
static int load_thd(const char *path, const char *what, attnc_elem elem, npy_array *a) {
    char msg[600];
    if (npy_read_f16(path, a, msg, sizeof msg)) return fail(EXIT_RUNTIME, "%s: %s", what, msg);
    if (a->dtype != ATTNC_F32 || a->rank != 3)
        return fail(EXIT_RUNTIME, "%s (%s) must be float32 or f16 with 3 dimensions [rows, heads, D]", what, path);
    if (a->f16 && elem == ATTNC_ELEM_BF16)
        return fail(EXIT_USAGE, "%s (%s) is f16 ('<f2'): --dtype bf16 takes '<f4' files only", what, path);
    attnc_elem from = a->f16 ? ATTNC_ELEM_F16 : ATTNC_ELEM_F32;
    if (from == elem) return 0;
    void *data = convert_elems(a->data, from, elem, a->count);
    if (!data) return fail(EXIT_RUNTIME, "out of memory converting %s", what, NULL);
    free(a->data);
    a->data = data;
    return 0;
}

/* Sequence starts: int32, one dimension of at least 2 entries. */
static int load_starts(const char *path, const char *what, npy_array *a, int64_t **out) {
    char msg[600];
    if (npy_read(path, a, msg, sizeof msg)) return fail(EXIT_RUNTIME, "%s: %s", what, msg);
    if (a->dtype != ATTNC_I32 || a->rank != 1 || a->count < 2)
        return fail(EXIT_RUNTIME, "%s (%s) must be int32 ('<i4') with one dimension of B + 1 >= 2 entries", what, path);
    *out = malloc(sizeof(int64_t) * a->count);
    if (!*out) return fail(EXIT_RUNTIME, "out of memory", NULL, NULL);
    for (size_t i = 0; i < a->count; i++) (*out)[i] = ((const int32_t *)a->data)[i];
    return 0;
}

static int check_shapes(const Ragged *r) {
    const int64_t *q = r->q.shape, *k = r->k.shape, *v = r->v.shape;
    if (k[2] != q[2]) return fail(EXIT_RUNTIME, "head dims differ: Q's D and K's D must be equal", NULL, NULL);
    if (v[0] != k[0] || v[1] != k[1]) return fail(EXIT_RUNTIME, "V [rows, heads, _] must match K's", NULL, NULL);
    if (r->qs.count != r->ks.count)
        return fail(EXIT_RUNTIME, "--q-start and --k-start must have the same number of entries (B + 1)", NULL, NULL);
    return 0;
}

int cmd_run_ragged(const Options *o) {
    attnc_options opts = {.threads = o->nthreads};
    if (o->backend && !attnc_backend_parse(o->backend, &opts.backend))
        return fail(EXIT_USAGE, "unknown backend '%s' (llvm, tcc, interp, cuda-emu, cuda)", o->backend, NULL);
    if (o->blhd) return fail(EXIT_USAGE, "--layout does not apply to a ragged batch: its files are [rows, heads, D]", NULL, NULL);
    attnc_spec *spec = NULL;
    attnc_kernel *kern = NULL;
    RunInputs *in = calloc(1, sizeof *in);
    Ragged r;
    memset(&r, 0, sizeof r);
    void *stored = NULL;
    float *out = NULL, *lse = NULL;
    const char *paths[2] = {o->o, o->lse};
    outfile *files[2] = {NULL, NULL};
    int nfiles = o->lse ? 2 : 1;
    attnc_error err = {0};
    int rc = in ? load_spec(o, &spec) : fail(EXIT_RUNTIME, "out of memory", NULL, NULL);
    if (!rc) {
        attnc_status st = attnc_compile(spec, o->variant, &opts, &kern, &err);
        if (st) rc = fail(status_exit(st), "%s", err.message, NULL);
    }
    if (!rc) rc = load_thd(o->q, "Q", o->elem, &r.q);
    if (!rc) rc = load_thd(o->k, "K", o->elem, &r.k);
    if (!rc) rc = load_thd(o->v, "V", o->elem, &r.v);
    if (!rc) rc = load_starts(o->q_start, "--q-start", &r.qs, &r.q_start);
    if (!rc) rc = load_starts(o->k_start, "--k-start", &r.ks, &r.k_start);
    if (!rc) rc = check_shapes(&r);
    if (!rc) rc = bind_cli_params(o, kern, in);
    attnc_sizes sz = {(int64_t)r.qs.count - 1, r.q.shape[1], r.k.shape[1], r.q.shape[0], r.k.shape[0], r.q.shape[2],
                      r.v.shape[2]};
    size_t no = (size_t)(sz.Lq * sz.H * sz.Dv), nl = (size_t)(sz.Lq * sz.H);
    if (!rc) {
        stored = calloc(no + 1, (size_t)elem_bytes(o->elem)); /* rows no sequence covers are written as 0 */
        lse = calloc(nl + 1, sizeof(float));
        if (!stored || !lse) rc = fail(EXIT_RUNTIME, "out of memory for the output", NULL, NULL);
    }
    for (int i = 0; !rc && i < nfiles; i++) {
        char msg[600];
        if (outfile_open(paths[i], &files[i], msg, sizeof msg)) rc = fail(EXIT_RUNTIME, "%s", msg, NULL);
    }
    if (!rc) {
        attnc_args args = {sz, r.q.data, r.k.data, r.v.data, stored, lse, in->params, o->nparams, in->tensors,
                           o->ntensors};
        attnc_layouts lay;
        memset(&lay, 0, sizeof lay);
        lay.q.elem = lay.k.elem = lay.v.elem = lay.o.elem = o->elem;
        attnc_batch batch = {.q_start = r.q_start, .k_start = r.k_start};
        attnc_status st = attnc_kernel_run_batch(kern, &args, &lay, &batch, &err);
        if (st) rc = fail(status_exit(st), "%s", err.message, NULL);
    }
    if (!rc && !(out = convert_elems(stored, o->elem, ATTNC_ELEM_F32, no)))
        rc = fail(EXIT_RUNTIME, "out of memory for the output", NULL, NULL);
    int64_t oshape[3] = {sz.Lq, sz.H, sz.Dv}, lshape[2] = {sz.H, sz.Lq};
    if (!rc) {
        char msg[600];
        if (npy_write_to(files[0], ATTNC_F32, 3, oshape, out, msg, sizeof msg) ||
            (nfiles > 1 && npy_write_to(files[1], ATTNC_F32, 2, lshape, lse, msg, sizeof msg)) ||
            outfile_commit(files, nfiles, msg, sizeof msg))
            rc = fail(EXIT_RUNTIME, "%s", msg, NULL);
    }
    if (!rc)
        printf("%s: %lld sequences, O [%lld, %lld, %lld] -> %s (backend %s)\n", attnc_kernel_variant(kern),
               (long long)sz.B, (long long)sz.Lq, (long long)sz.H, (long long)sz.Dv, o->o,
               attnc_backend_name(attnc_kernel_backend(kern)));
    for (int i = 0; i < nfiles; i++) outfile_discard(files[i]);
    ragged_free(&r);
    free_inputs(in);
    free(in);
    free(stored), free(out), free(lse);
    attnc_kernel_free(kern);
    attnc_spec_free(spec);
    return rc;
}
