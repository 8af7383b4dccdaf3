/* main.c — the `attnc` command line (shared/spec/interfaces.md section 1).
 * The library returns statuses and text; only cli/ prints, only this file exits.
 * Exit status: 0 ok, 1 spec errors, 2 bad command line, 3 runtime error of
 * the call, 4 `diff` found a difference beyond tolerance. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grad_cmd.h"
#include "inputs.h"
#include "measure.h"
#include "merge_cmd.h"
#include "options.h"
#include "ragged.h"
#include "show_cmd.h"

static const char usage[] =
    "usage:\n"
    "  attnc check FILE [--variant NAME]\n"
    "  attnc run   FILE [--variant NAME] --q Q.npy --k K.npy --v V.npy -o O.npy\n"
    "              [--lse LSE.npy] [--param NAME=VALUE]... [--tensor NAME=T.npy]...\n"
    "              [--backend llvm|tcc|interp|cuda-emu|cuda] [--threads N] [--dtype f32|f16|bf16] [--layout bhld|blhd]\n"
    "              [--q-start QS.npy --k-start KS.npy]\n"
    "  attnc grad  FILE [--variant NAME] --q Q.npy --k K.npy --v V.npy --do dO.npy [--dlse dLSE.npy]\n"
    "              --dq dQ.npy --dk dK.npy --dv dV.npy [--dtensor NAME=dT.npy]... [--param NAME=VALUE]...\n"
    "              [--tensor NAME=T.npy]... [--backend NAME] [--threads N] [--dtype ...] [--layout ...]\n"
    "  attnc emit  FILE [--variant NAME] --target ir|llvm-ir|asm|c|cuda [-D NAME=VALUE]... [-o OUT]\n"
    "              [--shape B=1,H=1,Hkv=1,Lq=4096,Lk=4096,D=64,Dv=64 [--param NAME=VALUE]... [--tensor NAME=T.npy]...]\n"
    "              [--tile BQxBK] [--dump-passes] [--separable-bias] [--dtype f16|bf16 --head-dim D[,Dv]]\n"
    "  attnc diff  FILE [--variant NAME] [--shape B=1,H=4,Hkv=4,Lq=128,Lk=128,D=64,Dv=64]\n"
    "              [--param NAME=VALUE]... [--tensor NAME=T.npy]... [--int-range NAME=LO,HI]... [--seed N]\n"
    "              [--backends llvm,tcc,refplan] [--threads N] [--dtype f32|f16|bf16] [--layout bhld|blhd] [--grad]\n"
    "              [--tile BQxBK]\n"
    "  attnc bench FILE [--variant NAME] --shape ... [--param NAME=VALUE]... [--tensor NAME=T.npy]...\n"
    "              [--backend ...] [--threads N] [--reps N] [--tile BQxBK] [--dtype ...] [--layout ...] [--paged ROWS] [--grad]\n"
    "              [--page-layout nhd|hnd]\n"
    "  attnc merge --o1 O1.npy --lse1 LSE1.npy --o2 O2.npy --lse2 LSE2.npy -o O.npy [--lse LSE.npy] [--weight]\n"
    "  attnc show FILE [--variant NAME] --shape ... [--param NAME=VALUE]... [--tensor NAME=T.npy]... [--at B,H]\n"
    "             [--size PIXELS] [--tile BQxBK] -o MASK.png\n"
    "--dtype: Q, K, V and O stored as f32 (default), f16 or bf16 ('<f4' files are rounded to it, '<f2' files\n"
    "  are f16); --layout blhd: Q, K, V and O are [B, L, H, D] (default bhld: [B, H, L, D]); LSE is [B, H, Lq];\n"
    "  output files are '<f4'.\n"
    "--q-start/--k-start: a ragged batch (int32 [B + 1] row offsets; Q [rows, H, D], K and V [rows, Hkv, D],\n"
    "  O [rows, H, Dv], LSE [H, rows]); each sequence is a call of its own (the spec sees B = 1).\n"
    "bench --paged ROWS: K and V stored as pages of ROWS rows ([pages, ROWS, Hkv, D], scattered), run as a batch;\n"
    "  --page-layout hnd: head-major pages [pages, Hkv, ROWS, D] (page strides; decode reads them faster).\n"
    "grad: the gradients of sum(O * dO) + sum(LSE * dLSE) (dLSE zero without --dlse); dO and the outputs are\n"
    "  '<f4' in Q's, K's, V's and O's layout; without --backend, the default backend if it has a backward pass,\n"
    "  else tcc, else interp.  diff --grad / bench --grad check and time the backward pass the same way.\n"
    "emit --target cuda --dtype f16|bf16 --head-dim D[,Dv] (or --shape's D, Dv): the tensor-core kernel for\n"
    "  those calls (entry point NAME_fa2_launch; D, Dv multiples of 16 up to 256); without --dtype, the scaffold.\n"
    "--backend cuda: compiled by NVRTC for the first CUDA device and run there (driver and NVRTC loaded at run\n"
    "  time; without them, exit 3); bench times it on device buffers (no copies), NVRTC in the warm-up call.\n"
    "merge: two results over disjoint keys into the one over all of them (O files: any shape ending in Dv,\n"
    "  LSE files: that shape without Dv); --weight for an attention with a `weight` clause (then the LSEs are optional).\n"
    "show: the mask of one (b, h) (--at, default 0,0; black = kept, grey = the fraction kept when downsampled) beside\n"
    "  the tile map (white EMPTY, green FULL, orange PARTIAL), at most --size pixels a side (default 512), as a PNG.\n";


static int cmd_check(const Options *o) {
    attnc_spec *spec = NULL;
    int rc = load_spec(o, &spec);
    if (!rc && o->variant) {
        int found = 0;
        for (int i = 0; i < attnc_spec_variant_count(spec); i++)
            found |= strcmp(attnc_spec_variant_name(spec, i), o->variant) == 0;
        if (!found) rc = fail(EXIT_USAGE, "no attention named '%s' in %s", o->variant, o->file);
    }
    if (!rc) {
        printf("%s: ok (", o->file);
        for (int i = 0; i < attnc_spec_variant_count(spec); i++)
            printf("%s%s", i ? ", " : "", attnc_spec_variant_name(spec, i));
        printf(")\n");
    }
    attnc_spec_free(spec);
    return rc;
}

/* files[0] gets O (float32, shaped oshape), files[1] (when --lse) the LSE [B, H, Lq]. */
static int write_outputs(outfile **files, int n, const attnc_sizes *sz, const int64_t oshape[4], const float *out,
                         const float *lse) {
    char msg[600];
    int64_t lshape[3] = {sz->B, sz->H, sz->Lq};
    if (npy_write_to(files[0], ATTNC_F32, 4, oshape, out, msg, sizeof msg) ||
        (n > 1 && npy_write_to(files[1], ATTNC_F32, 3, lshape, lse, msg, sizeof msg)) ||
        outfile_commit(files, n, msg, sizeof msg))
        return fail(EXIT_RUNTIME, "%s", msg, NULL);
    return 0;
}

static int cmd_run(const Options *o) {
    attnc_options opts = {.threads = o->nthreads};
    if (o->backend && !attnc_backend_parse(o->backend, &opts.backend))
        return fail(EXIT_USAGE, "unknown backend '%s' (llvm, tcc, interp, cuda-emu, cuda)", o->backend, NULL);
    attnc_spec *spec = NULL;
    attnc_kernel *kern = NULL;
    RunInputs *in = calloc(1, sizeof *in);
    float *out = NULL, *lse = NULL;
    void *stored = NULL; /* O in --dtype */
    const char *paths[2] = {o->o, o->lse};
    outfile *files[2] = {NULL, NULL};
    int nfiles = o->lse ? 2 : 1;
    int rc = in ? 0 : fail(EXIT_RUNTIME, "out of memory", NULL, NULL);
    if (!rc) rc = load_spec(o, &spec);
    attnc_error err = {0};
    if (!rc) {
        attnc_status st = attnc_compile(spec, o->variant, &opts, &kern, &err);
        if (st) rc = fail(status_exit(st), "%s", err.message, NULL);
    }
    if (!rc) rc = load_qkv(o, o->q, "Q", &in->q);
    if (!rc) rc = load_qkv(o, o->k, "K", &in->k);
    if (!rc) rc = load_qkv(o, o->v, "V", &in->v);
    if (!rc) rc = check_qkv_shapes(&in->q, &in->k, &in->v);
    if (!rc) rc = bind_cli_params(o, kern, in);
    attnc_sizes sz = {0};
    size_t rows = 0, no = 0;
    if (!rc) {
        sz = sizes_of(in, o->blhd);
        rows = (size_t)(sz.B * sz.H * sz.Lq), no = rows * (size_t)sz.Dv;
        stored = malloc((size_t)elem_bytes(o->elem) * no + 4);
        lse = malloc(sizeof(float) * (rows + 1));
        if (!stored || !lse) rc = fail(EXIT_RUNTIME, "out of memory for the output", NULL, NULL);
    }
    if (!rc) rc = open_outputs(paths, nfiles, files);
    if (!rc) {
        attnc_args args = {sz, in->q.data, in->k.data, in->v.data, stored, lse, in->params, o->nparams,
                           in->tensors, o->ntensors};
        attnc_layouts lay;
        storage_layouts(&sz, o->elem, o->blhd, &lay);
        attnc_status st = attnc_kernel_run_layout(kern, &args, &lay, &err);
        if (st) rc = fail(status_exit(st), "%s", err.message, NULL);
    }
    if (!rc && !(out = convert_elems(stored, o->elem, ATTNC_ELEM_F32, no))) /* the file is '<f4': exact */
        rc = fail(EXIT_RUNTIME, "out of memory for the output", NULL, NULL);
    int64_t oshape[4] = {sz.B, o->blhd ? sz.Lq : sz.H, o->blhd ? sz.H : sz.Lq, sz.Dv};
    if (!rc) rc = write_outputs(files, nfiles, &sz, oshape, out, lse);
    if (!rc)
        printf("%s: O [%lld, %lld, %lld, %lld] -> %s%s%s (backend %s)\n", attnc_kernel_variant(kern),
               (long long)oshape[0], (long long)oshape[1], (long long)oshape[2], (long long)oshape[3], o->o,
               o->lse ? ", LSE -> " : "", o->lse ? o->lse : "", attnc_backend_name(attnc_kernel_backend(kern)));
    discard_outputs(files, nfiles);
    free_inputs(in);
    free(in);
    free(out);
    free(stored);
    free(lse);
    attnc_kernel_free(kern);
    attnc_spec_free(spec);
    return rc;
}

/* `emit --target c -o X.c`: the C holds its own header between two marker
 * lines (backends/c/c_emit.h); that part goes to X.h as well.  Returns X.h
 * (malloc'd) and the part, or NULL when there is no header to write. */
static char *c_header_part(const char *c_path, const char *text, const char **part, size_t *len) {
    static const char begin[] = "/* ---- attnc:header-begin ---- */\n", end[] = "/* ---- attnc:header-end ---- */\n";
    size_t n = strlen(c_path);
    const char *b = strstr(text, begin), *e = b ? strstr(b, end) : NULL;
    if (n < 3 || strcmp(c_path + n - 2, ".c") != 0 || !e) return NULL;
    char *h_path = malloc(n + 1);
    if (h_path) snprintf(h_path, n + 1, "%.*sh", (int)(n - 1), c_path);
    *part = b + strlen(begin);
    *len = (size_t)(e - *part);
    return h_path;
}

/* The emitted text to stdout, or to -o (and its header beside a .c file). */
static int write_emitted(const Options *o, const char *text) {
    if (!o->o) {
        fputs(text, stdout);
        return 0;
    }
    const char *header = NULL;
    size_t header_len = 0;
    char *h_path = !strcmp(o->target, "c") ? c_header_part(o->o, text, &header, &header_len) : NULL;
    if (header && !h_path) return fail(EXIT_RUNTIME, "out of memory", NULL, NULL);
    const char *paths[2] = {o->o, h_path};
    outfile *files[2] = {NULL, NULL};
    int n = h_path ? 2 : 1;
    char msg[600];
    int rc = open_outputs(paths, n, files);
    if (!rc && (outfile_write(files[0], text, strlen(text), msg, sizeof msg) ||
                (n > 1 && outfile_write(files[1], header, header_len, msg, sizeof msg)) ||
                outfile_commit(files, n, msg, sizeof msg)))
        rc = fail(EXIT_RUNTIME, "%s", msg, NULL);
    discard_outputs(files, n);
    free(h_path);
    return rc;
}

static int cmd_emit(const Options *o) {
    attnc_options opts = {.tile_q = o->tile_q, .tile_k = o->tile_k};
    opts.backend = ATTNC_BACKEND_REFPLAN;
    opts.flags = o->separable_bias ? ATTNC_OPT_SEPARABLE_BIAS : 0;
    attnc_define defs[MAX_REPEATED];
    char names[MAX_REPEATED][128];
    for (int i = 0; i < o->ndefines; i++) {
        const char *val = split_assignment(o->defines[i], names[i], sizeof names[i]);
        if (!val) return fail(EXIT_USAGE, "-D '%s': expected NAME=VALUE", o->defines[i], NULL);
        defs[i] = (attnc_define){names[i], val};
    }
    opts.defines = defs;
    opts.n_defines = o->ndefines;
    attnc_sizes sz = o->sizes;
    attnc_spec *spec = NULL;
    attnc_kernel *kern = NULL;
    RunInputs *in = calloc(1, sizeof *in);
    char *text = NULL;
    attnc_error err = {0};
    int rc = in ? load_spec(o, &spec) : fail(EXIT_RUNTIME, "out of memory", NULL, NULL);
    if (!rc) {
        attnc_status st = attnc_compile(spec, o->variant, &opts, &kern, &err);
        if (st) rc = fail(status_exit(st), "%s", err.message, NULL);
    }
    if (!rc && o->shape) rc = bind_cli_params(o, kern, in);
    if (!rc) {
        /* the tile map needs sizes, params and tensors, not Q/K/V contents */
        static const float nothing = 0;
        attnc_args call = {sz, &nothing, &nothing, &nothing, (float *)&nothing, NULL, in->params, o->nparams,
                           in->tensors, o->ntensors};
        /* --dtype: the tensor-core kernel's specialisation, named in the target (cuda_emu_backend.c) */
        char target[64];
        snprintf(target, sizeof target, "%s", o->target);
        if (o->fa2_d) snprintf(target, sizeof target, "cuda:%s:%d:%d", o->dtype, o->fa2_d, o->fa2_dv);
        attnc_status st = attnc_kernel_emit(kern, target, o->shape ? &call : NULL,
                                            o->dump_passes ? ATTNC_EMIT_PASSES : 0, &text, &err);
        if (st) rc = fail(status_exit(st), "%s", err.message, NULL);
    }
    if (!rc) rc = write_emitted(o, text);
    attnc_free(text);
    free_inputs(in);
    free(in);
    attnc_kernel_free(kern);
    attnc_spec_free(spec);
    return rc;
}

int main(int argc, char **argv) {
    /* a FIFO or pipe whose reader has gone is a write error (EPIPE, exit 3), not a kill */
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("attnc %s\n", attnc_version());
        return 0;
    }
    Options o;
    char msg[600];
    int rc = cli_parse_args(argc, argv, &o, msg, sizeof msg);
    if (rc) return fail(rc, "%s", msg, NULL);
    if (!strcmp(o.cmd, "check")) return cmd_check(&o);
    if (!strcmp(o.cmd, "run")) return o.q_start ? cmd_run_ragged(&o) : cmd_run(&o);
    if (!strcmp(o.cmd, "grad")) return cmd_grad(&o);
    if (!strcmp(o.cmd, "emit")) return cmd_emit(&o);
    if (!strcmp(o.cmd, "diff")) return cmd_diff(&o);
    if (!strcmp(o.cmd, "bench")) return cmd_bench(&o);
    if (!strcmp(o.cmd, "merge")) return cmd_merge(&o);
    if (!strcmp(o.cmd, "show")) return cmd_show(&o);
    return fail(EXIT_USAGE, "unknown command '%s'", o.cmd, NULL);
}
