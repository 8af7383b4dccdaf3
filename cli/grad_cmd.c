/* grad_cmd.c — `attnc grad` (shared/spec/interfaces.md 4.1): the forward
 * call on Q, K, V from files, then its backward pass for dO (and dLSE),
 * writing dQ, dK, dV and the gradients of the float tensors named by
 * --dtensor, all '<f4' and committed together (nothing is written on an
 * error).  Q, K, V are stored as --dtype in --layout; dO, dQ, dK, dV have
 * Q's, K's, V's and O's layout in float32; O and LSE stay float32. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grad_cmd.h"
#include "inputs.h"

enum { MAX_OUT = 3 + MAX_REPEATED };

/* Everything one `grad` owns. */
typedef struct Grad {
    RunInputs in;
    npy_array dout, dlse;
    float *o, *lse, *d[3];               /* forward O, LSE; dQ, dK, dV */
    attnc_tensor_grad dt[MAX_REPEATED];  /* --dtensor buffers */
    char dt_names[MAX_REPEATED][128];
    int64_t dt_shape[MAX_REPEATED][ATTNC_MAX_RANK];
    int dt_rank[MAX_REPEATED];
    const char *paths[MAX_OUT];
    outfile *files[MAX_OUT];
    int nfiles;
} Grad;

static void grad_free(Grad *g) {
    discard_outputs(g->files, g->nfiles);
    free_inputs(&g->in);
    npy_free(&g->dout);
    npy_free(&g->dlse);
    free(g->o), free(g->lse);
    for (int i = 0; i < 3; i++) free(g->d[i]);
    for (int i = 0; i < MAX_REPEATED; i++) free(g->dt[i].data);
}

/* The kernel: --backend, or the default backend when it has a backward
 * pass, else tcc, else the interpreter (which has one in every build). */
static int compile_grad(const Options *o, const attnc_spec *spec, attnc_kernel **k) {
    attnc_options opts = {.threads = o->nthreads};
    if (o->backend && !attnc_backend_parse(o->backend, &opts.backend))
        return fail(EXIT_USAGE, "unknown backend '%s' (llvm, tcc, interp, cuda-emu, refplan)", o->backend, NULL);
    attnc_error err = {0};
    attnc_status st = attnc_compile(spec, o->variant, &opts, k, &err);
    /* no --backend: the default, else the first of tcc and interp with a backward pass */
    static const attnc_backend fallback[2] = {ATTNC_BACKEND_TCC, ATTNC_BACKEND_INTERP};
    for (int i = 0; !st && !o->backend && i < 2 && !attnc_kernel_has_backward(*k); i++) {
        if (!attnc_backend_available(fallback[i])) continue;
        attnc_kernel_free(*k);
        *k = NULL;
        opts.backend = fallback[i];
        st = attnc_compile(spec, o->variant, &opts, k, &err);
    }
    if (st) return fail(status_exit(st), "%s", err.message, NULL);
    if (!attnc_kernel_has_backward(*k)) /* the library words why: the backend, or what the attention uses */
        return attnc_kernel_backward(*k, NULL, NULL, NULL, &err), fail(EXIT_USAGE, "%s", err.message, NULL);
    return 0;
}

/* A float32 array from path with exactly the shape want[rank]. */
static int load_exact(const char *path, const char *what, int rank, const int64_t *want, npy_array *a) {
    char msg[600];
    if (npy_read(path, a, msg, sizeof msg)) return fail(EXIT_RUNTIME, "%s: %s", what, msg);
    int same = a->dtype == ATTNC_F32 && a->rank == rank;
    for (int i = 0; same && i < rank; i++) same = a->shape[i] == want[i];
    if (same) return 0;
    char buf[200];
    int n = snprintf(buf, sizeof buf, "float32 ('<f4') [");
    for (int i = 0; i < rank && n < (int)sizeof buf; i++)
        n += snprintf(buf + n, sizeof buf - (size_t)n, "%s%lld", i ? ", " : "", (long long)want[i]);
    if (n < (int)sizeof buf) snprintf(buf + n, sizeof buf - (size_t)n, "]");
    return fail(EXIT_RUNTIME, "%s must be %s", what, buf);
}

/* One --dtensor NAME=FILE: a buffer with the tensor's shape, and its output file. */
static int add_dtensor(const Options *o, const attnc_kernel *k, const attnc_sizes *sz, Grad *g, int i) {
    const char *path = split_assignment(o->dtensors[i], g->dt_names[i], sizeof g->dt_names[i]);
    if (!path) return fail(EXIT_USAGE, "--dtensor '%s': expected NAME=FILE.npy", o->dtensors[i], NULL);
    int found = -1;
    for (int t = 0; t < attnc_kernel_tensor_count(k); t++) {
        attnc_dtype dt;
        int rank;
        if (!strcmp(attnc_kernel_tensor_info(k, t, &dt, &rank), g->dt_names[i])) found = t;
    }
    if (found < 0) return fail(EXIT_USAGE, "--dtensor: '%s' is not a tensor of the attention", g->dt_names[i], NULL);
    attnc_dtype dtype;
    attnc_kernel_tensor_info(k, found, &dtype, &g->dt_rank[i]);
    if (dtype != ATTNC_F32) return fail(EXIT_USAGE, "--dtensor: tensor '%s' holds ints: it has no gradient", g->dt_names[i], NULL);
    attnc_error err = {0};
    attnc_status st = attnc_kernel_tensor_shape(k, found, sz, g->in.params, o->nparams, g->dt_shape[i], &err);
    if (st) return fail(status_exit(st), "--dtensor %s", err.message, NULL);
    size_t count = 1;
    for (int r = 0; r < g->dt_rank[i]; r++) count *= (size_t)g->dt_shape[i][r];
    if (count > NPY_MAX_DATA_BYTES / sizeof(float))
        return fail(EXIT_RUNTIME, "--dtensor: the gradient of '%s' is larger than a .npy file may hold", g->dt_names[i], NULL);
    g->dt[i] = (attnc_tensor_grad){g->dt_names[i], malloc(sizeof(float) * (count + 1))};
    if (!g->dt[i].data) return fail(EXIT_RUNTIME, "out of memory", NULL, NULL);
    g->paths[3 + i] = path;
    return 0;
}

/* dQ, dK, dV shaped as the Q, K, V files, then the tensor gradients; committed together. */
static int write_all(Grad *g, int ndt) {
    char msg[600];
    const npy_array *like[3] = {&g->in.q, &g->in.k, &g->in.v};
    for (int t = 0; t < 3; t++)
        if (npy_write_to(g->files[t], ATTNC_F32, 4, like[t]->shape, g->d[t], msg, sizeof msg))
            return fail(EXIT_RUNTIME, "%s", msg, NULL);
    for (int i = 0; i < ndt; i++)
        if (npy_write_to(g->files[3 + i], ATTNC_F32, g->dt_rank[i], g->dt_shape[i], g->dt[i].data, msg, sizeof msg))
            return fail(EXIT_RUNTIME, "%s", msg, NULL);
    if (outfile_commit(g->files, g->nfiles, msg, sizeof msg)) return fail(EXIT_RUNTIME, "%s", msg, NULL);
    return 0;
}

/* The forward call into g->o, g->lse; then the backward into g->d, g->dt. */
static int forward_backward(const Options *o, const attnc_kernel *k, const attnc_sizes *sz, Grad *g) {
    attnc_args args = {*sz, g->in.q.data, g->in.k.data, g->in.v.data, g->o, g->lse, g->in.params, o->nparams,
                       g->in.tensors, o->ntensors};
    attnc_layouts lay;
    storage_layouts(sz, o->elem, o->blhd, &lay);
    lay.o.elem = ATTNC_ELEM_F32; /* O feeds the backward: no rounding to --dtype */
    attnc_error err = {0};
    attnc_status st = attnc_kernel_run_layout(k, &args, &lay, &err);
    if (st) return fail(status_exit(st), "%s", err.message, NULL);
    attnc_grad gr = {.dout = g->dout.data, .dlse = (const float *)g->dlse.data, .dq = g->d[0], .dk = g->d[1],
                     .dv = g->d[2], .dtensors = g->dt, .n_dtensors = o->ndtensors};
    gr.dout_layout = lay.o; /* dO, dQ, dK, dV: float32 in their tensor's layout */
    gr.dq_layout = lay.q, gr.dk_layout = lay.k, gr.dv_layout = lay.v;
    gr.dq_layout.elem = gr.dk_layout.elem = gr.dv_layout.elem = ATTNC_ELEM_F32;
    st = attnc_kernel_backward(k, &args, &lay, &gr, &err);
    if (st) return fail(status_exit(st), "%s", err.message, NULL);
    return 0;
}

int cmd_grad(const Options *o) {
    attnc_spec *spec = NULL;
    attnc_kernel *k = NULL;
    Grad *g = calloc(1, sizeof *g);
    int rc = g ? load_spec(o, &spec) : fail(EXIT_RUNTIME, "out of memory", NULL, NULL);
    if (!rc) rc = compile_grad(o, spec, &k);
    if (!rc) rc = load_qkv(o, o->q, "Q", &g->in.q);
    if (!rc) rc = load_qkv(o, o->k, "K", &g->in.k);
    if (!rc) rc = load_qkv(o, o->v, "V", &g->in.v);
    if (!rc) rc = check_qkv_shapes(&g->in.q, &g->in.k, &g->in.v);
    if (!rc) rc = bind_cli_params(o, k, &g->in);
    attnc_sizes sz = {0};
    if (!rc) {
        sz = sizes_of(&g->in, o->blhd);
        const int64_t oshape[4] = {sz.B, o->blhd ? sz.Lq : sz.H, o->blhd ? sz.H : sz.Lq, sz.Dv}, lshape[3] = {sz.B, sz.H, sz.Lq};
        rc = load_exact(o->dout, "dO", 4, oshape, &g->dout);
        if (!rc && o->dlse) rc = load_exact(o->dlse, "dLSE", 3, lshape, &g->dlse);
    }
    for (int i = 0; !rc && i < o->ndtensors; i++) rc = add_dtensor(o, k, &sz, g, i);
    if (!rc) {
        size_t rows = (size_t)(sz.B * sz.H * sz.Lq);
        g->o = malloc(sizeof(float) * (rows * (size_t)sz.Dv + 1));
        g->lse = malloc(sizeof(float) * (rows + 1));
        g->d[0] = malloc(sizeof(float) * ((size_t)g->in.q.count + 1));
        g->d[1] = malloc(sizeof(float) * ((size_t)g->in.k.count + 1));
        g->d[2] = malloc(sizeof(float) * ((size_t)g->in.v.count + 1));
        if (!g->o || !g->lse || !g->d[0] || !g->d[1] || !g->d[2]) rc = fail(EXIT_RUNTIME, "out of memory", NULL, NULL);
    }
    if (!rc) {
        g->paths[0] = o->dq, g->paths[1] = o->dk, g->paths[2] = o->dv;
        g->nfiles = 3 + o->ndtensors;
        rc = open_outputs(g->paths, g->nfiles, g->files);
    }
    if (!rc) rc = forward_backward(o, k, &sz, g);
    if (!rc) rc = write_all(g, o->ndtensors);
    if (!rc)
        printf("%s: dQ -> %s, dK -> %s, dV -> %s%s (backend %s)\n", attnc_kernel_variant(k), o->dq, o->dk, o->dv,
               o->ndtensors ? " and tensor gradients" : "", attnc_backend_name(attnc_kernel_backend(k)));
    if (g) grad_free(g);
    free(g);
    attnc_kernel_free(k);
    attnc_spec_free(spec);
    return rc;
}
