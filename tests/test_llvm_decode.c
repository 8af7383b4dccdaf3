/* test_llvm_decode.c — the LLVM kernel at decode shapes (issue 11): every
 * attention of an examples file (*.attn) with 8 query heads on 2 kv heads
 * (the runtime packs the 4 query heads of a kv head into one work item, their
 * rows side by side in the kernel's vectors: AttnCall.pack), Lq in
 * {1, 2, 7, 16}, an odd Lk and D, Dv not powers of two, at 16-, 8- and
 * 4-lane code, against the interpreter.  The example's `// example-args:`
 * line gives B, the params and the tensors' ranges; its sizes are replaced.
 * A kernel that reads the wrong head for a packed row (its Q, O or LSE row,
 * or a value of h such as ALiBi's slope) fails here.
 *
 *   test_llvm_decode FILE.attn   exit 0 when all pass, 77 without LLVM. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attnc.h"
#include "check.h"
#include "support.h"

static const int LQ[] = {1, 2, 7, 16};
static const char *const WIDTHS[] = {"16", "8", "4"};

/* One call of kernel k at sizes sz against the interpreter's kernel ref. */
static void run_shape(attnc_kernel *k, attnc_kernel *ref, const ExampleArgs *ea, const attnc_sizes *sz,
                      const char *what) {
    attnc_param params[MAX_ITEMS];
    attnc_tensor tensors[MAX_ITEMS];
    memset(tensors, 0, sizeof tensors);
    const char *why = NULL;
    ExampleArgs at = *ea;
    at.sz = *sz;
    int nt = make_params(k, &at, params, &why) < 0 ? -1 : make_tensors(k, &at, params, at.nparams, tensors, &why);
    CHECK(nt >= 0, "%s: %s", what, why ? why : "?");
    if (nt < 0) return;
    size_t rows = (size_t)(sz->B * sz->H * sz->Lq), no = rows * (size_t)sz->Dv;
    float *q = random_floats(rows * (size_t)sz->D);
    float *kk = random_floats((size_t)(sz->B * sz->Hkv * sz->Lk * sz->D));
    float *v = random_floats((size_t)(sz->B * sz->Hkv * sz->Lk * sz->Dv));
    float *o = malloc(sizeof(float) * (no + 1)), *lse = malloc(sizeof(float) * (rows + 1));
    float *ro = malloc(sizeof(float) * (no + 1)), *rlse = malloc(sizeof(float) * (rows + 1));
    attnc_args args = {*sz, q, kk, v, o, lse, params, at.nparams, tensors, nt};
    attnc_args rargs = {*sz, q, kk, v, ro, rlse, params, at.nparams, tensors, nt};
    attnc_error err = {0}, rerr = {0};
    attnc_status st = attnc_kernel_run(k, &args, &err), rst = attnc_kernel_run(ref, &rargs, &rerr);
    /* a call the spec refuses at these sizes must be refused alike */
    CHECK(st == rst, "%s: llvm status %d (%s), interpreter %d (%s)", what, (int)st, err.message, (int)rst, rerr.message);
    if (st == ATTNC_OK && rst == ATTNC_OK) {
        char buf[300];
        double worst = 0;
        const char *bad = compare_outputs(o, lse, ro, rlse, no, rows, 2e-3, &worst, buf, sizeof buf);
        CHECK(!bad, "%s: %s", what, bad);
    }
    for (int i = 0; i < nt; i++) free((void *)tensors[i].data);
    free(q);
    free(kk);
    free(v);
    free(o);
    free(lse);
    free(ro);
    free(rlse);
}

static void run_attention(const attnc_spec *spec, const char *text, const char *name, int only_one) {
    char line[1024];
    ExampleArgs ea;
    if (!find_args_line(text, name, only_one, line, sizeof line) || !parse_args(line, &ea)) {
        CHECK(0, "%s: no usable example-args line", name);
        return;
    }
    attnc_error err = {0};
    attnc_options ropts = {.backend = ATTNC_BACKEND_INTERP};
    attnc_kernel *ref = NULL;
    CHECK(attnc_compile(spec, name, &ropts, &ref, &err) == ATTNC_OK, "%s: interpreter: %s", name, err.message);
    for (int w = 0; ref && w < (int)(sizeof WIDTHS / sizeof *WIDTHS); w++) {
        setenv("ATTNC_LLVM_VECTOR_WIDTH", WIDTHS[w], 1);
        attnc_options opts = {.backend = ATTNC_BACKEND_LLVM, .threads = 2};
        attnc_kernel *k = NULL;
        CHECK(attnc_compile(spec, name, &opts, &k, &err) == ATTNC_OK, "%s W=%s: %s", name, WIDTHS[w], err.message);
        for (int i = 0; k && i < (int)(sizeof LQ / sizeof *LQ); i++) {
            attnc_sizes sz = ea.sz;
            sz.H = 8, sz.Hkv = 2, sz.Lq = LQ[i], sz.Lk = ea.sz.Lk | 1, sz.D = 20, sz.Dv = 12;
            char what[200];
            snprintf(what, sizeof what, "%s W=%s B=%lld Lq=%d Lk=%lld", name, WIDTHS[w], (long long)sz.B, LQ[i],
                     (long long)sz.Lk);
            int before = failures;
            run_shape(k, ref, &ea, &sz, what);
            if (failures == before) printf("ok %s\n", what);
        }
        attnc_kernel_free(k);
    }
    unsetenv("ATTNC_LLVM_VECTOR_WIDTH");
    attnc_kernel_free(ref);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_llvm_decode FILE.attn\n");
        return 2;
    }
    if (!attnc_backend_available(ATTNC_BACKEND_LLVM)) return 77;
    size_t len;
    char *text = read_file(argv[1], &len);
    if (!text) {
        fprintf(stderr, "test_llvm_decode: cannot read %s\n", argv[1]);
        return 2;
    }
    attnc_spec *spec = NULL;
    attnc_error err = {0};
    if (attnc_spec_from_string(argv[1], text, len, &spec, &err)) {
        printf("FAIL %s: %s\n", argv[1], err.message);
        attnc_spec_free(spec);
        free(text);
        return 1;
    }
    int n = attnc_spec_variant_count(spec);
    for (int i = 0; i < n; i++) run_attention(spec, text, attnc_spec_variant_name(spec, i), n == 1);
    attnc_spec_free(spec);
    free(text);
    printf("%s: %d failure(s)\n", argv[1], failures);
    return failures != 0;
}
