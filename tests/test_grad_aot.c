/* test_grad_aot.c — the ahead-of-time C's backward entry point (NAME_backward,
 * `attnc emit --target c`) against the library's reference backward.
 *
 *   test_grad_aot FILE.attn ATTNC CC WORKDIR [--variant V] [--expect-fault] [ARGS...]
 *
 * Per attention of FILE (only V with --variant): the example-args call
 * (ARGS instead when given: --shape, --param, --int-range) with float32 Q,
 * K, V; O and LSE from the reference kernel's forward (the interpreter's
 * backward when it has one, else refplan's); `ATTNC emit FILE --variant V
 * --target c -o WORKDIR/V.c`, a glue file that sets the args and grad
 * fields by name as a user's program would, both compiled by `CC -std=c99
 * -Wall -Wextra -Werror` into a shared object; then dQ, dK, dV and every
 * float tensor's gradient of V_backward within 2e-3 * (1 + max |want|) of
 * the reference's, NaN matching NaN.  With --expect-fault (a call whose
 * spec raises a runtime error: no reference) V_backward must return 1 and
 * leave every output as it was.  Exit 0 when all pass. */
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attnc.h"
#include "support.h"

typedef int (*GradGlue)(const int64_t *sz, const float *q, const float *k, const float *v, float *o, float *lse,
                        const attnc_param *p, const void *const *t, const int64_t (*shape)[ATTNC_MAX_RANK],
                        const float *dout, const float *dlse, float *dq, float *dk, float *dv, float *const *dt);

typedef struct Aot {
    const char *attnc, *cc, *workdir, *spec_path;
    const char *variant; /* NULL: every attention */
    char args[1024];     /* the call's args, instead of the example-args line (empty: that line) */
    int expect_fault;
} Aot;

/* Emit, write the glue, compile and load: the glue function, or NULL with why. */
static GradGlue build(const Aot *A, const char *V, const attnc_kernel *k, void **lib, char *why, size_t n) {
    char cmd[4096], path[1024];
    snprintf(cmd, sizeof cmd, "'%s' emit '%s' --variant %s --target c -o '%s/%s.c'", A->attnc, A->spec_path, V,
             A->workdir, V);
    if (system(cmd) != 0) {
        snprintf(why, n, "failed: %.900s", cmd);
        return NULL;
    }
    snprintf(path, sizeof path, "%s/%s_glue.c", A->workdir, V);
    FILE *g = fopen(path, "w");
    if (!g) {
        snprintf(why, n, "cannot write %.900s", path);
        return NULL;
    }
    fprintf(g, "#include <string.h>\n#include \"%s.h\"\n", V);
    fprintf(g, "typedef struct { const char *name; int type; int64_t i; double f; int b; } Param;\n");
    fprintf(g, "int glue(const int64_t *sz, const float *q, const float *k, const float *v, float *o, float *lse,\n"
               "         const Param *p, const void *const *t, const int64_t (*shape)[8], const float *dout,\n"
               "         const float *dlse, float *dq, float *dk, float *dv, float *const *dt) {\n");
    fprintf(g, "    %s_args a;\n    %s_grad g;\n    memset(&a, 0, sizeof a);\n    memset(&g, 0, sizeof g);\n", V, V);
    fprintf(g, "    (void)p, (void)t, (void)shape, (void)dt; /* unused without params or tensors */\n");
    fprintf(g, "    a.B = sz[0], a.H = sz[1], a.Hkv = sz[2], a.Lq = sz[3], a.Lk = sz[4], a.D = sz[5], a.Dv = sz[6];\n");
    fprintf(g, "    a.q = q, a.k = k, a.v = v, a.o = o, a.lse = lse;\n");
    fprintf(g, "    g.dout = dout, g.dlse = dlse, g.dq = dq, g.dk = dk, g.dv = dv;\n");
    for (int i = 0; i < attnc_kernel_param_count(k); i++) {
        attnc_type type;
        const char *name = attnc_kernel_param_info(k, i, &type, NULL, NULL);
        snprintf(path, sizeof path, "%s/%s.h", A->workdir, V);
        size_t len;
        char *header = read_file(path, &len), field[128];
        snprintf(field, sizeof field, " param_%s;", name);
        if (header && strstr(header, field))
            fprintf(g, "    a.param_%s = p[%d].%s;\n", name, i, type == ATTNC_INT ? "i" : type == ATTNC_FLOAT ? "f" : "b");
        free(header);
    }
    for (int i = 0; i < attnc_kernel_tensor_count(k); i++) {
        attnc_dtype dt;
        int rank;
        const char *name = attnc_kernel_tensor_info(k, i, &dt, &rank);
        fprintf(g, "    a.tensor_%s = t[%d];\n", name, i);
        fprintf(g, "    for (int d = 0; d < %d; d++) a.shape_%s[d] = shape[%d][d];\n", rank, name, i);
        if (dt == ATTNC_F32) fprintf(g, "    g.dtensor_%s = dt[%d];\n", name, i);
    }
    fprintf(g, "    return %s_backward(&a, &g);\n}\n", V);
    fclose(g);
    snprintf(cmd, sizeof cmd, "%s -O2 -std=c99 -Wall -Wextra -Werror -shared -fPIC -o '%s/%s.so' '%s/%s.c' '%s/%s_glue.c' -lm",
             A->cc, A->workdir, V, A->workdir, V, A->workdir, V);
    if (system(cmd) != 0) {
        snprintf(why, n, "failed: %.900s", cmd);
        return NULL;
    }
    snprintf(path, sizeof path, "%s/%s.so", A->workdir, V);
    *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    GradGlue fn = *lib ? (GradGlue)dlsym(*lib, "glue") : NULL;
    if (!fn) snprintf(why, n, "cannot load %.300s: %.300s", path, dlerror());
    return fn;
}

/* got against want (n floats); NULL when they agree. */
static const char *compare(const char *what, const float *got, const float *want, size_t n, char *buf, size_t len) {
    double scale = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(want[i])) scale = fmax(scale, fabs(want[i]));
    for (size_t i = 0; i < n; i++) {
        if (isnan(want[i]) && isnan(got[i])) continue;
        if (!(fabs((double)got[i] - want[i]) <= 2e-3 * (1 + scale))) {
            snprintf(buf, len, "%s[%zu] = %.7g, the reference gives %.7g", what, i, got[i], want[i]);
            return buf;
        }
    }
    return NULL;
}

static size_t count(const attnc_tensor *t) {
    size_t n = 1;
    for (int r = 0; r < t->rank; r++) n *= (size_t)t->shape[r];
    return n;
}

static int run_one(const Aot *A, const attnc_spec *spec, const char *text, const char *V, int only_one) {
    char line[1024], buf[1200];
    ExampleArgs ea;
    if (A->args[0]) snprintf(line, sizeof line, "%s", A->args);
    if ((!A->args[0] && !find_args_line(text, V, only_one, line, sizeof line)) || !parse_args(line, &ea)) {
        printf("FAIL %s: no example-args line\n", V);
        return 1;
    }
    attnc_error err = {0};
    attnc_kernel *ref = NULL;
    attnc_options opts = {.backend = ATTNC_BACKEND_INTERP, .threads = 1};
    if (!attnc_compile(spec, V, &opts, &ref, &err) && !attnc_kernel_has_backward(ref)) {
        attnc_kernel_free(ref);
        ref = NULL;
        opts.backend = ATTNC_BACKEND_REFPLAN;
        attnc_compile(spec, V, &opts, &ref, &err);
    }
    if (!ref) {
        printf("FAIL %s: compile: %s\n", V, err.message);
        return 1;
    }
    const attnc_sizes *s = &ea.sz;
    attnc_param params[MAX_ITEMS];
    attnc_tensor tensors[MAX_ITEMS];
    memset(tensors, 0, sizeof tensors);
    const char *why = NULL;
    int nt = make_params(ref, &ea, params, &why) < 0 ? -1 : make_tensors(ref, &ea, params, ea.nparams, tensors, &why);
    size_t rows = (size_t)(s->B * s->H * s->Lq), nq = rows * (size_t)s->D;
    size_t nk = (size_t)(s->B * s->Hkv * s->Lk * s->D), nv = (size_t)(s->B * s->Hkv * s->Lk * s->Dv);
    float *q = random_floats(nq), *k = random_floats(nk), *v = random_floats(nv);
    float *o = malloc(sizeof(float) * (rows * (size_t)s->Dv + 1)), *lse = malloc(sizeof(float) * (rows + 1));
    float *dout = random_floats(rows * (size_t)s->Dv), *dlse = random_floats(rows);
    float *got[3 + MAX_ITEMS] = {0}, *want[3 + MAX_ITEMS] = {0};
    size_t n[3 + MAX_ITEMS] = {nq, nk, nv};
    const char *bad = nt < 0 ? why : NULL;
    for (int i = 0; i < 3 + (nt > 0 ? nt : 0); i++) {
        if (i >= 3) n[i] = tensors[i - 3].dtype == ATTNC_F32 ? count(&tensors[i - 3]) : 0;
        got[i] = calloc(n[i] + 1, sizeof(float));
        want[i] = calloc(n[i] + 1, sizeof(float));
    }
    attnc_args args = {*s, q, k, v, o, lse, params, ea.nparams, tensors, nt > 0 ? nt : 0};
    attnc_tensor_grad td[MAX_ITEMS];
    int nd = 0;
    for (int i = 0; i < nt; i++)
        if (n[3 + i]) td[nd++] = (attnc_tensor_grad){tensors[i].name, want[3 + i]};
    attnc_grad g = {.dout = dout, .dlse = dlse, .dq = want[0], .dk = want[1], .dv = want[2], .dtensors = td,
                    .n_dtensors = nd};
    if (A->expect_fault) { /* no reference: some O and LSE, and outputs that must stay as they are */
        memset(o, 0, sizeof(float) * rows * (size_t)s->Dv);
        memset(lse, 0, sizeof(float) * rows);
        for (int i = 0; i < 3 + (nt > 0 ? nt : 0); i++)
            for (size_t j = 0; j < n[i]; j++) got[i][j] = want[i][j] = 7.0f;
    }
    if (!bad && !A->expect_fault && attnc_kernel_run(ref, &args, &err)) {
        snprintf(buf, sizeof buf, "reference: %.300s", err.message);
        bad = buf;
    }
    /* rows with LSE = NaN (a `weight` summing below 0) get no dLSE: the compiled
     * backward cannot recover the sum from LSE (test_grad_backends.c says more) */
    for (size_t r = 0; !bad && r < rows; r++)
        if (isnan(lse[r])) dlse[r] = 0.0f;
    if (!bad && !A->expect_fault && attnc_kernel_backward(ref, &args, NULL, &g, &err)) {
        snprintf(buf, sizeof buf, "reference: %.300s", err.message);
        bad = buf;
    }
    void *lib = NULL;
    GradGlue glue = bad ? NULL : build(A, V, ref, &lib, buf, sizeof buf);
    if (!bad && !glue) bad = buf;
    if (!bad) {
        const void *tdata[MAX_ITEMS + 1] = {0};
        int64_t shapes[MAX_ITEMS + 1][ATTNC_MAX_RANK];
        memset(shapes, 0, sizeof shapes);
        for (int i = 0; i < nt; i++) {
            tdata[i] = tensors[i].data;
            memcpy(shapes[i], tensors[i].shape, sizeof shapes[i]);
        }
        int64_t sizes[7] = {s->B, s->H, s->Hkv, s->Lq, s->Lk, s->D, s->Dv};
        /* every param the kernel has, by index: the call's value, else its default (the entry point has no defaults) */
        attnc_param all[MAX_ITEMS];
        memset(all, 0, sizeof all);
        for (int i = 0; i < attnc_kernel_param_count(ref) && i < MAX_ITEMS; i++) {
            int has_default = 0;
            const char *name = attnc_kernel_param_info(ref, i, NULL, &has_default, &all[i]);
            for (int j = 0; j < ea.nparams; j++)
                if (!strcmp(params[j].name, name)) all[i] = params[j];
        }
        int rc = glue(sizes, q, k, v, o, lse, all, tdata, (const int64_t(*)[ATTNC_MAX_RANK])shapes, dout, dlse,
                      got[0], got[1], got[2], got + 3);
        if (rc != (A->expect_fault ? 1 : 0)) {
            snprintf(buf, sizeof buf, "%s_backward returned %d, expected %d", V, rc, A->expect_fault);
            bad = buf;
        }
        static const char *const names[3] = {"dQ", "dK", "dV"};
        for (int i = 0; !bad && i < 3 + nt; i++)
            bad = compare(i < 3 ? names[i] : tensors[i - 3].name, got[i], want[i], n[i], buf, sizeof buf);
    }
    if (bad) printf("FAIL %s: %s\n", V, bad);
    else if (A->expect_fault) printf("ok %s: %s_backward returned 1 and wrote nothing\n", V, V);
    else printf("ok %s: %s_backward agrees with %s's backward\n", V, V, attnc_backend_name(attnc_kernel_backend(ref)));
    if (lib) dlclose(lib);
    for (int i = 0; i < 3 + MAX_ITEMS; i++) free(got[i]), free(want[i]);
    for (int i = 0; i < nt; i++) free((void *)tensors[i].data);
    free(q), free(k), free(v), free(o), free(lse), free(dout), free(dlse);
    attnc_kernel_free(ref);
    return bad != NULL;
}

int main(int argc, char **argv) {
    Aot A = {argc > 4 ? argv[2] : NULL, argc > 4 ? argv[3] : NULL, argc > 4 ? argv[4] : NULL, argv[1], NULL, "", 0};
    size_t used = 0;
    for (int i = 5; i < argc; i++) {
        if (!strcmp(argv[i], "--variant") && i + 1 < argc) A.variant = argv[++i];
        else if (!strcmp(argv[i], "--expect-fault")) A.expect_fault = 1;
        else used += (size_t)snprintf(A.args + used, used < sizeof A.args ? sizeof A.args - used : 0, "%s ", argv[i]);
    }
    if (argc < 5 || used >= sizeof A.args) {
        fprintf(stderr, "usage: test_grad_aot FILE.attn ATTNC CC WORKDIR [--variant V] [--expect-fault] [ARGS...]\n");
        return 2;
    }
    size_t len;
    char *text = read_file(argv[1], &len);
    attnc_spec *spec = NULL;
    attnc_error err = {0};
    if (!text || attnc_spec_from_string(argv[1], text, len, &spec, &err)) {
        printf("FAIL %s: %s\n", argv[1], text ? err.message : "cannot read it");
        attnc_spec_free(spec);
        free(text);
        return 1;
    }
    rng_seed(21);
    int nv = attnc_spec_variant_count(spec), fails = 0, ran = 0;
    for (int i = 0; i < nv; i++) {
        const char *V = attnc_spec_variant_name(spec, i);
        if (A.variant && strcmp(A.variant, V)) continue;
        fails += run_one(&A, spec, text, V, nv == 1);
        ran++;
    }
    attnc_spec_free(spec);
    free(text);
    if (!ran) printf("FAIL: no attention %s in %s\n", A.variant ? A.variant : "", argv[1]);
    printf("%d passed, %d failed\n", ran - fails, fails);
    fails += !ran;
    return fails != 0;
}
