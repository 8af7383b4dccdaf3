/* test_cgen.c — the generated C (backends/c/c_emit.c) against the reference
 * interpreter, through the libtcc JIT or ahead of time with the system C
 * compiler.
 *
 *   test_cgen SPEC --variant NAME --shape B=..,H=..,Hkv=..,Lq=..,Lk=..,D=..,Dv=..
 *             [--param N=V]... [-D N=V]... [--int-range T=LO,HI]... [--tile BQxBK]
 *             [--threads N] [--masked-rows] [--expect-fault]
 *             (--backend tcc|cuda-emu|llvm|refplan | --aot ATTNC CC WORKDIR)
 *   test_cgen --unit
 *
 * --backend tcc: compile with -D fixed params through the library, run,
 * compare O and LSE with the interpreter's (tolerance 2e-3 as for every
 * float32 backend, NaN matching NaN, -inf matching -inf).  --backend llvm and
 * refplan run the same comparison, so that one spec file is checked on every
 * backend (tests/cgen.cmake, cgen_every); a backend this build lacks skips
 * (exit 77).
 * --aot: `ATTNC emit SPEC --target c -o WORKDIR/NAME.c` (which also writes
 * NAME.h), a small glue file that fills NAME_args by field name, both
 * compiled by `CC -O2 -std=c99` into a shared object that is loaded here and
 * called through NAME_attention: the documented entry point, as a user would.
 * --layout NAME (tests/layouts.h): Q, K, V, O and LSE stored in that layout
 * (f16 / bf16, [B,L,H,D], a fused QKV buffer, gaps between rows), for the
 * backend (attnc_kernel_run_layout) or the AOT entry point (its elem and
 * stride fields); the interpreter runs on the same rounded inputs in
 * float32, contiguous.  A 16-bit O must be the reference rounded to nearest
 * even (layout_compare_o); the bytes between O's and LSE's elements must
 * stay untouched.
 * Ahead of time, the entry point must also refuse an element type other than
 * 0, 1, 2 and a negative stride (status 2, nothing written).
 * --masked-rows: the shape must leave some rows fully masked (LSE = -inf), so
 * that the test is known to exercise them.
 * --expect-fault: the call must fail with a runtime error of the spec: the
 * kernel with the interpreter's exact message, the AOT entry point with
 * status 1.
 * --unit: the JIT's own paths: a source that does not compile gives an
 * internal error naming libtcc's message and `attnc emit --target c`; other
 * targets are refused; compiles from several threads at once agree. */
#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attnc.h"
#include "layouts.h"
#include "support.h"
#include "tcc_backend.h"

/* float32 kernels against the float64 interpreter */
static const double CGEN_TOLERANCE = 2e-3;


typedef struct Test {
    const char *spec_path, *variant, *attnc, *cc, *workdir;
    attnc_sizes sz;
    attnc_backend backend; /* --backend: tcc, cuda-emu, llvm or refplan */
    const char *params[MAX_ITEMS], *defines[MAX_ITEMS];
    int nparams, ndefines;
    char range_name[MAX_ITEMS][64];
    int range_lo[MAX_ITEMS], range_hi[MAX_ITEMS], nranges;
    int tile_q, tile_k, threads, masked_rows, expect_fault, aot;
    const char *layout; /* --layout NAME, or NULL */
} Test;


static int parse_shape(const char *text, attnc_sizes *sz) {
    *sz = (attnc_sizes){1, 1, 1, 1, 1, 1, 1};
    const char *p = text;
    while (*p) {
        char key[8];
        long long v;
        int n = 0;
        if (sscanf(p, "%7[A-Za-z]=%lld%n", key, &v, &n) != 2) return 0;
        if (!strcmp(key, "B")) sz->B = v;
        else if (!strcmp(key, "H")) sz->H = v;
        else if (!strcmp(key, "Hkv")) sz->Hkv = v;
        else if (!strcmp(key, "Lq")) sz->Lq = v;
        else if (!strcmp(key, "Lk")) sz->Lk = v;
        else if (!strcmp(key, "D")) sz->D = v;
        else if (!strcmp(key, "Dv")) sz->Dv = v;
        else return 0;
        p += n;
        if (*p == ',') p++;
    }
    return 1;
}

static int usage(void) {
    fprintf(stderr, "usage: test_cgen SPEC --variant NAME --shape ... [--param N=V]... [-D N=V]... "
                    "[--int-range T=LO,HI]... [--tile BQxBK] [--threads N] [--layout NAME] [--masked-rows] "
                    "(--backend tcc|cuda-emu|llvm|refplan | --aot ATTNC CC WORKDIR) | test_cgen --unit\n");
    return 2;
}

static int parse_test_args(int argc, char **argv, Test *t) {
    memset(t, 0, sizeof *t);
    t->threads = 2;
    int have_shape = 0, have_mode = 0;
    if (argc < 2) return 0;
    t->spec_path = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--masked-rows") || !strcmp(a, "--expect-fault")) {
            *(a[2] == 'm' ? &t->masked_rows : &t->expect_fault) = 1;
            continue;
        }
        if (!v) return 0;
        i++;
        if (!strcmp(a, "--variant")) t->variant = v;
        else if (!strcmp(a, "--shape")) have_shape = parse_shape(v, &t->sz);
        else if (!strcmp(a, "--param") && t->nparams < MAX_ITEMS) t->params[t->nparams++] = v;
        else if (!strcmp(a, "-D") && t->ndefines < MAX_ITEMS) t->defines[t->ndefines++] = v;
        else if (!strcmp(a, "--threads")) t->threads = atoi(v);
        else if (!strcmp(a, "--layout")) t->layout = v;
        else if (!strcmp(a, "--tile")) {
            if (sscanf(v, "%dx%d", &t->tile_q, &t->tile_k) != 2) return 0;
        } else if (!strcmp(a, "--int-range") && t->nranges < MAX_ITEMS) {
            int k = t->nranges++;
            if (sscanf(v, "%63[^=]=%d,%d", t->range_name[k], &t->range_lo[k], &t->range_hi[k]) != 3 ||
                t->range_hi[k] <= t->range_lo[k])
                return 0;
        } else if (!strcmp(a, "--backend")) {
            if (!attnc_backend_parse(v, &t->backend) || t->backend == ATTNC_BACKEND_INTERP) return 0;
            have_mode = 1;
        } else if (!strcmp(a, "--aot") && i + 2 < argc) {
            t->attnc = v;
            t->cc = argv[++i];
            t->workdir = argv[++i];
            t->aot = 1;
            have_mode = 1;
        } else {
            return 0;
        }
    }
    return have_shape && have_mode && t->variant;
}

/* Compile the variant with the test's -D params for `backend`. */
static attnc_kernel *compile(const Test *t, const attnc_spec *spec, attnc_backend backend, char *why, size_t n) {
    attnc_define defs[MAX_ITEMS];
    char names[MAX_ITEMS][64];
    for (int i = 0; i < t->ndefines; i++) {
        const char *eq = strchr(t->defines[i], '=');
        snprintf(names[i], sizeof names[i], "%.*s", eq ? (int)(eq - t->defines[i]) : 0, t->defines[i]);
        defs[i] = (attnc_define){names[i], eq ? eq + 1 : ""};
    }
    attnc_options opts = {.backend = backend, .threads = t->threads, .defines = defs, .n_defines = t->ndefines,
                          .tile_q = t->tile_q, .tile_k = t->tile_k};
    attnc_kernel *k = NULL;
    attnc_error err = {0};
    if (attnc_compile(spec, t->variant, &opts, &k, &err)) {
        snprintf(why, n, "compile for %s: %s", attnc_backend_name(backend), err.message);
        return NULL;
    }
    return k;
}

typedef struct Inputs {
    float *q, *k, *v;
    attnc_param params[MAX_ITEMS];
    attnc_tensor tensors[MAX_ITEMS];
    int nparams, ntensors;
} Inputs;

static int make_inputs(const Test *t, const attnc_kernel *k, Inputs *in, char *why, size_t n) {
    const attnc_sizes *sz = &t->sz;
    attnc_error err = {0};
    in->q = random_floats((size_t)(sz->B * sz->H * sz->Lq * sz->D));
    in->k = random_floats((size_t)(sz->B * sz->Hkv * sz->Lk * sz->D));
    in->v = random_floats((size_t)(sz->B * sz->Hkv * sz->Lk * sz->Dv));
    for (int i = 0; i < t->nparams; i++) {
        const char *eq = strchr(t->params[i], '=');
        char name[64];
        snprintf(name, sizeof name, "%.*s", eq ? (int)(eq - t->params[i]) : 0, t->params[i]);
        if (!eq || attnc_kernel_param_from_text(k, name, eq + 1, &in->params[in->nparams++], &err)) {
            snprintf(why, n, "--param %s: %s", t->params[i], err.message);
            return 0;
        }
    }
    in->ntensors = attnc_kernel_tensor_count(k);
    for (int i = 0; i < in->ntensors; i++)
        if (make_tensor(k, i, sz, in->params, in->nparams, t->range_name, t->range_lo, t->range_hi, t->nranges,
                        &in->tensors[i], why, n))
            return 0;
    return 1;
}

static void free_inputs(Inputs *in) {
    free(in->q);
    free(in->k);
    free(in->v);
    for (int i = 0; i < in->ntensors; i++) free((void *)in->tensors[i].data);
}

/* The whole file (tests/support.c's read_file without the length). */
static char *read_text(const char *path) {
    size_t len;
    return read_file(path, &len);
}

typedef int (*GlueFn)(const int64_t *sizes, const float *q, const float *k, const float *v, float *o, float *lse,
                      const int32_t *elems, const int64_t (*strides)[4], const attnc_param *params,
                      const void *const *tensors, const int64_t (*shapes)[ATTNC_MAX_RANK]);

/* Emit, write the glue, compile and load: the glue function, or NULL with why. */
static GlueFn build_aot(const Test *t, const attnc_kernel *k, void **lib, char *why, size_t n) {
    const char *V = t->variant;
    char cmd[4096], path[1024];
    int len = snprintf(cmd, sizeof cmd, "'%s' emit '%s' --variant %s --target c -o '%s/%s.c'", t->attnc, t->spec_path,
                       V, t->workdir, V);
    for (int i = 0; i < t->ndefines; i++) len += snprintf(cmd + len, sizeof cmd - (size_t)len, " -D %s", t->defines[i]);
    if (system(cmd) != 0) {
        snprintf(why, n, "failed: %.900s", cmd);
        return NULL;
    }
    snprintf(path, sizeof path, "%s/%s.h", t->workdir, V);
    char *header = read_text(path);
    if (!header) {
        snprintf(why, n, "emit did not write %.900s", path);
        return NULL;
    }
    /* the glue sets each field by name, as a user's program would */
    snprintf(path, sizeof path, "%s/%s_glue.c", t->workdir, V);
    FILE *g = fopen(path, "w");
    if (!g) {
        free(header);
        snprintf(why, n, "cannot write %.900s", path);
        return NULL;
    }
    fprintf(g, "#include <string.h>\n#include \"%s.h\"\n", V);
    /* Param: the layout of attnc_param, without including attnc.h into the user's side */
    fprintf(g, "typedef struct { const char *name; int type; int64_t i; double f; int b; } Param;\n");
    fprintf(g, "int glue(const int64_t *sz, const float *q, const float *k, const float *v, float *o, float *lse,\n"
               "         const int32_t *elem, const int64_t (*stride)[4],\n"
               "         const Param *p, const void *const *t, const int64_t (*shape)[8]) {\n");
    fprintf(g, "    %s_args a;\n    memset(&a, 0, sizeof a);\n", V);
    fprintf(g, "    a.B = sz[0], a.H = sz[1], a.Hkv = sz[2], a.Lq = sz[3], a.Lk = sz[4], a.D = sz[5], a.Dv = sz[6];\n");
    fprintf(g, "    a.q = q, a.k = k, a.v = v, a.o = o, a.lse = lse;\n");
    fprintf(g, "    a.q_elem = elem[0], a.k_elem = elem[1], a.v_elem = elem[2], a.o_elem = elem[3];\n"
               "    memcpy(a.q_stride, stride[0], sizeof a.q_stride);\n"
               "    memcpy(a.k_stride, stride[1], sizeof a.k_stride);\n"
               "    memcpy(a.v_stride, stride[2], sizeof a.v_stride);\n"
               "    memcpy(a.o_stride, stride[3], sizeof a.o_stride);\n"
               "    memcpy(a.lse_stride, stride[4], sizeof a.lse_stride);\n");
    int np = attnc_kernel_param_count(k);
    for (int i = 0; i < np; i++) {
        attnc_type type;
        const char *name = attnc_kernel_param_info(k, i, &type, NULL, NULL);
        char field[128];
        snprintf(field, sizeof field, " param_%s;", name);
        if (!strstr(header, field)) continue; /* the kernel does not read it */
        fprintf(g, "    a.param_%s = p[%d].%s;\n", name, i, type == ATTNC_INT ? "i" : type == ATTNC_FLOAT ? "f" : "b");
    }
    for (int i = 0; i < attnc_kernel_tensor_count(k); i++) {
        attnc_dtype dt;
        int rank;
        const char *name = attnc_kernel_tensor_info(k, i, &dt, &rank);
        fprintf(g, "    a.tensor_%s = t[%d];\n", name, i);
        fprintf(g, "    for (int d = 0; d < %d; d++) a.shape_%s[d] = shape[%d][d];\n", rank, name, i);
    }
    fprintf(g, "    return %s_attention(&a);\n}\n", V);
    fclose(g);
    free(header);
    /* -O2 as README tells users; $ATTNC_AOT_OPT (-O0..-O3) where tests/cgen.cmake trades it for CI's time */
    const char *opt = getenv("ATTNC_AOT_OPT");
    if (!opt || strlen(opt) != 3 || strncmp(opt, "-O", 2) || opt[2] < '0' || opt[2] > '3') opt = "-O2";
    snprintf(cmd, sizeof cmd, "%s %s -std=c99 -Wall -shared -fPIC -o '%s/%s.so' '%s/%s.c' '%s/%s_glue.c' -lm", t->cc,
             opt, t->workdir, V, t->workdir, V, t->workdir, V);
    if (system(cmd) != 0) {
        snprintf(why, n, "failed: %.900s", cmd);
        return NULL;
    }
    snprintf(path, sizeof path, "%s/%s.so", t->workdir, V);
    *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    GlueFn fn = *lib ? (GlueFn)dlsym(*lib, "glue") : NULL;
    if (!fn) snprintf(why, n, "cannot load %.300s: %.300s", path, dlerror());
    return fn;
}

/* The entry point refuses an element type other than 0, 1, 2 and a negative
 * stride with status 2 (its header says so) and writes nothing.  Each call is
 * valid float32 contiguous but for one field, chosen so that an entry point
 * that failed to check it would run in bounds and return 0 (a D stride is
 * otherwise taken as 1; a B stride is never used when B = 1).  NULL when all
 * are refused. */
static const char *check_aot_refusals(GlueFn glue, const int64_t sizes[7], const Inputs *in, const attnc_param *all,
                                      const void *const *tdata, const int64_t (*shapes)[ATTNC_MAX_RANK], size_t no,
                                      size_t rows, char *why, size_t n) {
    static const struct {
        const char *what;
        int elem, value;         /* elems[elem] = value (elem >= 0) */
        int tensor, dim, stride; /* else strides[tensor][dim] = stride */
    } bad[] = {{"q_elem 3", 0, 3, 0, 0, 0},           {"o_elem -1", 3, -1, 0, 0, 0},
               {"v_elem 7", 2, 7, 0, 0, 0},           {"o_stride[3] -1", -1, 0, 3, 3, -1},
               {"q_stride[0] -1 (B = 1)", -1, 0, 0, 0, -1}};
    float *o = malloc(sizeof(float) * (no + 1)), *lse = malloc(sizeof(float) * (rows + 1));
    const char *failed = o && lse ? NULL : "out of memory";
    for (size_t c = 0; !failed && c < sizeof bad / sizeof bad[0]; c++) {
        if (bad[c].elem < 0 && bad[c].dim == 0 && sizes[0] != 1) continue;
        int32_t elems[4] = {0, 0, 0, 0};
        int64_t strides[5][4];
        memset(strides, 0, sizeof strides);
        if (bad[c].elem >= 0) elems[bad[c].elem] = bad[c].value;
        else strides[bad[c].tensor][bad[c].dim] = bad[c].stride;
        memset(o, 0x7e, sizeof(float) * (no + 1));
        memset(lse, 0x7e, sizeof(float) * (rows + 1));
        int rc = glue(sizes, in->q, in->k, in->v, o, lse, elems, (const int64_t(*)[4])strides, all, tdata, shapes);
        int untouched = 1;
        for (size_t i = 0; i < (no + 1) * sizeof(float); i++) untouched &= ((unsigned char *)o)[i] == 0x7e;
        for (size_t i = 0; i < (rows + 1) * sizeof(float); i++) untouched &= ((unsigned char *)lse)[i] == 0x7e;
        if (rc != 2 || !untouched) {
            snprintf(why, n, "ahead of time with %s: status %d (want 2)%s", bad[c].what, rc,
                     untouched ? "" : ", and O or LSE written");
            failed = why;
        }
    }
    free(o);
    free(lse);
    return failed;
}

/* Run the backend (or AOT code) and the interpreter; NULL when they agree. */
static const char *run_test(const Test *t, char *why, size_t n) {
    char *text = read_text(t->spec_path);
    if (!text) {
        snprintf(why, n, "cannot read %s", t->spec_path);
        return why;
    }
    attnc_spec *spec = NULL;
    attnc_error err = {0};
    attnc_kernel *ref = NULL, *k = NULL;
    void *lib = NULL;
    Inputs in;
    memset(&in, 0, sizeof in);
    const attnc_sizes *sz = &t->sz;
    size_t rows = (size_t)(sz->B * sz->H * sz->Lq), no = rows * (size_t)sz->Dv;
    float *o = malloc(sizeof(float) * (no + 1)), *lse = malloc(sizeof(float) * (rows + 1));
    float *ro = malloc(sizeof(float) * (no + 1)), *rlse = malloc(sizeof(float) * (rows + 1));
    const char *bad = NULL;
    if (attnc_spec_from_string(t->spec_path, text, strlen(text), &spec, &err)) {
        snprintf(why, n, "%s %s", err.message, spec ? attnc_spec_diagnostics(spec) : "");
        bad = why;
    }
    if (!bad && !(ref = compile(t, spec, ATTNC_BACKEND_INTERP, why, n))) bad = why;
    if (!bad && !(k = compile(t, spec, t->aot ? ATTNC_BACKEND_INTERP : t->backend, why, n))) bad = why;
    if (!bad && !make_inputs(t, ref, &in, why, n)) bad = why;
    /* a layout: the inputs the reference sees are what its buffers hold */
    TestLayout tl;
    memset(&tl, 0, sizeof tl);
    if (!bad && t->layout && !layout_make(t->layout, sz, &tl, why, n)) bad = why;
    if (!bad && t->layout && !layout_store_inputs(&tl, in.q, in.k, in.v)) bad = "out of memory";
    attnc_args args = {*sz, in.q, in.k, in.v, ro, rlse, in.params, in.nparams, in.tensors, in.ntensors};
    char ref_message[sizeof err.message] = "";
    attnc_status ref_status = bad ? ATTNC_OK : attnc_kernel_run(ref, &args, &err);
    if (ref_status) snprintf(ref_message, sizeof ref_message, "%s", err.message);
    if (!bad && t->expect_fault != (ref_status == ATTNC_ERR_RUNTIME)) {
        snprintf(why, n, "the interpreter %s: %.300s", t->expect_fault ? "reports no runtime error" : "fails",
                 ref_status ? ref_message : "");
        bad = why;
    }
    if (!bad && t->aot) {
        GlueFn glue = build_aot(t, k, &lib, why, n);
        const void *tdata[MAX_ITEMS];
        int64_t shapes[MAX_ITEMS][ATTNC_MAX_RANK];
        for (int i = 0; i < in.ntensors; i++) {
            tdata[i] = in.tensors[i].data;
            memcpy(shapes[i], in.tensors[i].shape, sizeof shapes[i]);
        }
        /* the interpreter's param values, defaults included, by the kernel's param order */
        attnc_param all[MAX_ITEMS];
        for (int i = 0; i < attnc_kernel_param_count(k) && i < MAX_ITEMS; i++) {
            int has_default;
            const char *name = attnc_kernel_param_info(k, i, NULL, &has_default, &all[i]);
            for (int j = 0; j < in.nparams; j++)
                if (!strcmp(in.params[j].name, name)) all[i] = in.params[j];
        }
        int64_t sizes[7] = {sz->B, sz->H, sz->Hkv, sz->Lq, sz->Lk, sz->D, sz->Dv};
        /* without a layout: every elem and stride field 0 (float32, contiguous) */
        int32_t elems[4] = {tl.L.q.elem, tl.L.k.elem, tl.L.v.elem, tl.L.o.elem};
        int64_t strides[5][4];
        const attnc_layout *ls[5] = {&tl.L.q, &tl.L.k, &tl.L.v, &tl.L.o, &tl.L.lse};
        for (int i = 0; i < 5; i++) memcpy(strides[i], ls[i]->stride, sizeof strides[i]);
        int rc = !glue ? -1
                 : t->layout ? glue(sizes, tl.at[TL_Q], tl.at[TL_K], tl.at[TL_V], tl.buf[TL_O], tl.buf[TL_LSE], elems,
                                    (const int64_t(*)[4])strides, all, tdata, (const int64_t(*)[ATTNC_MAX_RANK])shapes)
                             : glue(sizes, in.q, in.k, in.v, o, lse, elems, (const int64_t(*)[4])strides, all, tdata,
                                    (const int64_t(*)[ATTNC_MAX_RANK])shapes);
        if (!glue) bad = why;
        else if (rc != (t->expect_fault ? 1 : 0)) {
            snprintf(why, n, "%s_attention returned %d", t->variant, rc);
            bad = why;
        }
        if (!bad)
            bad = check_aot_refusals(glue, sizes, &in, all, tdata, (const int64_t(*)[ATTNC_MAX_RANK])shapes, no, rows,
                                     why, n);
    } else if (!bad) {
        args.o = o;
        args.lse = lse;
        if (t->layout) {
            args.q = tl.at[TL_Q], args.k = tl.at[TL_K], args.v = tl.at[TL_V];
            args.o = tl.buf[TL_O], args.lse = tl.buf[TL_LSE];
        }
        attnc_status st = attnc_kernel_run_layout(k, &args, t->layout ? &tl.L : NULL, &err);
        if (t->expect_fault && (st != ATTNC_ERR_RUNTIME || strcmp(err.message, ref_message) != 0)) {
            snprintf(why, n, "%s gives status %d '%.300s', the interpreter '%.300s'", attnc_backend_name(t->backend),
                     (int)st, st ? err.message : "", ref_message);
            bad = why;
        } else if (!t->expect_fault && st) {
            snprintf(why, n, "%s: %s", attnc_backend_name(t->backend), err.message);
            bad = why;
        }
    }
    if (!bad && t->expect_fault) {
        printf("ok %s %s: the runtime error is reported (%s)\n", t->variant, t->aot ? "ahead of time" : attnc_backend_name(t->backend),
               ref_message);
        goto done;
    }
    double worst = 0;
    int masked = 0;
    for (size_t i = 0; i < rows; i++) masked += rlse[i] == -INFINITY;
    size_t mismatches = 0;
    if (!bad && t->layout) bad = layout_load_outputs(&tl, o, lse, why, n);
    if (!bad) bad = compare_outputs(o, lse, ro, rlse, no, rows, CGEN_TOLERANCE, &worst, why, n);
    if (!bad && tl.L.o.elem != ATTNC_ELEM_F32) bad = layout_compare_o(tl.L.o.elem, o, ro, no, &mismatches, why, n);
    if (!bad && t->masked_rows && masked == 0) bad = "no row is fully masked, but --masked-rows says some must be";
    if (!bad)
        printf("ok %s %s%s%s: max relative error %.3g, %d of %zu rows fully masked, %zu of O's values across a "
               "rounding boundary within float32 error\n",
               t->variant, t->aot ? "ahead of time" : attnc_backend_name(t->backend), t->layout ? ", layout " : "",
               t->layout ? t->layout : "", worst, masked, rows, mismatches);
done:
    layout_free(&tl);
    if (lib) dlclose(lib);
    free_inputs(&in);
    free(o);
    free(lse);
    free(ro);
    free(rlse);
    attnc_kernel_free(ref);
    attnc_kernel_free(k);
    attnc_spec_free(spec);
    free(text);
    return bad;
}

/* ---- --unit --------------------------------------------------------------- */

static int fails = 0;
static void check(int ok, const char *what, const char *detail) {
    printf("%s %s%s%s\n", ok ? "ok" : "FAIL", what, ok ? "" : ": ", ok ? "" : detail);
    fails += !ok;
}

static const char threaded_spec[] = "attention w { param window : int = 5; use causal; mask q - kv < window; "
                                    "bias -0.1 * float(q - kv); }";

/* One thread's work: compile the spec for `backend` and run it on fixed inputs into o. */
typedef struct ThreadRun {
    attnc_backend backend;
    float o[2 * 37 * 4], lse[2 * 37];
    int ok;
} ThreadRun;

static void *compile_and_run(void *arg) {
    ThreadRun *run = arg;
    attnc_spec *spec = NULL;
    attnc_kernel *k = NULL;
    attnc_error err = {0};
    attnc_options opts = {.backend = run->backend, .threads = 1, .tile_q = 16, .tile_k = 16};
    float q[2 * 37 * 8], kk[37 * 8], v[37 * 4];
    for (int i = 0; i < 2 * 37 * 8; i++) q[i] = (float)((i * 7) % 11) / 11.0f;
    for (int i = 0; i < 37 * 8; i++) kk[i] = (float)((i * 5) % 13) / 13.0f;
    for (int i = 0; i < 37 * 4; i++) v[i] = (float)(i % 9);
    attnc_args args = {{1, 2, 1, 37, 37, 8, 4}, q, kk, v, run->o, run->lse, NULL, 0, NULL, 0};
    run->ok = !attnc_spec_from_string("w.attn", threaded_spec, strlen(threaded_spec), &spec, &err) &&
              !attnc_compile(spec, NULL, &opts, &k, &err) && !attnc_kernel_run(k, &args, &err);
    attnc_kernel_free(k);
    attnc_spec_free(spec);
    return NULL;
}

static int unit(void) {
    /* a source libtcc rejects: an internal error that names the cause and the way to see the C */
    JitKernel *jk = NULL;
    CompiledKernel ck;
    attnc_error err = {0};
    attnc_status st = jit_compile_c("int attnc_tile(void) { return undeclared_name; }\n", "broken", &jk, &ck, &err);
    check(st == ATTNC_ERR_INTERNAL && jk == NULL && strstr(err.message, "undeclared_name") &&
              strstr(err.message, "attnc emit FILE --variant broken --target c") && strstr(err.message, "a bug in attnc"),
          "C that does not compile gives an internal error with libtcc's message", err.message);
    st = jit_compile_c("int attnc_tile(void) { return 0; }\n", "no_scratch", &jk, &ck, &err);
    check(st == ATTNC_ERR_INTERNAL && strstr(err.message, "find the kernel functions"),
          "C without the kernel functions gives an internal error", err.message);
    st = jit_compile_c("int f(void);\nint attnc_tile(void) { return f(); }\nlong attnc_scratch_bytes(void) { return 0; }\n",
                       "unresolved", &jk, &ck, &err);
    check(st == ATTNC_ERR_INTERNAL && strstr(err.message, "link") && strstr(err.message, "'f'"),
          "C calling an unknown function fails to link, naming it", err.message);

    /* emit: the tcc backend knows target c only */
    attnc_spec *spec = NULL;
    attnc_kernel *k = NULL;
    attnc_options opts = {.backend = ATTNC_BACKEND_TCC, .threads = 1};
    char *text = NULL;
    st = attnc_spec_from_string("w.attn", threaded_spec, strlen(threaded_spec), &spec, &err);
    if (!st) st = attnc_compile(spec, NULL, &opts, &k, &err);
    check(!st, "compile for tcc", err.message);
    if (!st) {
        st = attnc_kernel_emit(k, "c", NULL, 0, &text, &err);
        check(!st && text && strstr(text, "int w_attention(const w_args *args);") && strstr(text, "attnc_tile"),
              "emit --target c gives the entry point and the kernel", err.message);
        attnc_free(text);
        text = NULL;
        st = attnc_kernel_emit(k, "no-such-target", NULL, 0, &text, &err);
        check(st == ATTNC_ERR_USAGE && !text, "emit of an unknown target is a usage error", err.message);
    }
    attnc_kernel_free(k);
    attnc_spec_free(spec);

    /* libtcc is not thread-safe: compiles from several threads are serialised */
    enum { THREADS = 6 };
    static ThreadRun runs[THREADS + 1];
    pthread_t th[THREADS];
    int all = 1;
    runs[THREADS].backend = ATTNC_BACKEND_INTERP;
    compile_and_run(&runs[THREADS]);
    for (int i = 0; i < THREADS; i++) {
        runs[i].backend = ATTNC_BACKEND_TCC;
        pthread_create(&th[i], NULL, compile_and_run, &runs[i]);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        all &= runs[i].ok;
        for (int j = 0; j < 2 * 37 * 4; j++) all &= close_enough(runs[i].o[j], runs[THREADS].o[j], CGEN_TOLERANCE);
        for (int j = 0; j < 2 * 37; j++) all &= close_enough(runs[i].lse[j], runs[THREADS].lse[j], CGEN_TOLERANCE);
    }
    check(all, "6 threads compile and run tcc kernels at once", "a thread failed");
    printf("%d failed\n", fails);
    return fails != 0;
}

int main(int argc, char **argv) {
    if (argc == 2 && !strcmp(argv[1], "--unit")) return unit();
    Test t;
    if (!parse_test_args(argc, argv, &t)) return usage();
    if (!t.aot && !attnc_backend_available(t.backend)) {
        printf("skip: this build has no backend %s\n", attnc_backend_name(t.backend));
        return 77;
    }
    char why[1024];
    const char *bad = run_test(&t, why, sizeof why);
    if (bad) printf("FAIL %s (%s): %s\n", t.variant, t.spec_path, bad);
    return bad != NULL;
}
