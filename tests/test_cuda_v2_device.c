/* test_cuda_v2_device.c — the device executor of api/api_cuda_v2.c (what
 * attnc_kernel_run_cuda does with a version-2 attention on a GPU) without a
 * GPU (tests/cuda.cmake: `cuda/emu/v2-device/NAME`): a DeviceOps whose
 * "device" memory is host memory, whose kernel launch runs cuda-emu's work
 * items in order and whose v2_launch runs cuda-emu's emulated version-2
 * kernels (the same CUDA text the cuda backend compiles with NVRTC).
 *
 *   test_cuda_v2_device FILE.attn VARIANT 'ARGS' [--expect-fault]
 *
 * ARGS as an `// example-args` line (--shape, --param, --int-range).  The
 * device path must agree with the interpreter (1e-4 relative to 1 + |O|)
 * and, bit for bit, with cuda-emu's own host path (attnc_kernel_run: the
 * same kernels; D not a multiple of 16 keeps both on the scaffold), and
 * must have launched version-2 kernels.  With --expect-fault both paths
 * must fail with the interpreter's message. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_kernel.h"
#include "bind.h"
#include "support.h"

static int v2_launches;

static attnc_status fake_alloc(size_t n, void **out, attnc_error *err) {
    *out = calloc(1, n ? n : 1);
    return *out ? ATTNC_OK : set_error(err, ATTNC_ERR_NOMEM, "out of memory");
}

static void fake_free(void *p) { free(p); }

static attnc_status fake_copy(void *dst, const void *src, size_t n, int to_device, void *stream, attnc_error *err) {
    (void)to_device, (void)stream, (void)err;
    memmove(dst, src, n);
    return ATTNC_OK;
}

/* every work item of the call in order, on cuda-emu's tile function */
static attnc_status fake_launch(const CompiledKernel *ck, const AttnCall *c, void *stream, void *scratch, int *faulted,
                                attnc_error *err) {
    (void)stream, (void)scratch;
    void *s = malloc((size_t)ck->scratch_bytes(c) + 64);
    if (!s) return set_error(err, ATTNC_ERR_NOMEM, "out of memory");
    for (int64_t b = 0; b < c->B; b++)
        for (int64_t h = 0; h < c->H; h++)
            for (int64_t qt = 0; qt < c->nqt; qt++) *faulted |= ck->tile(c, b, h, qt, s) != 0;
    free(s);
    return ATTNC_OK;
}

static attnc_status fake_v2(const CompiledKernel *ck, int which, const AttnCall *c, int arg, void *p0, void *p1,
                            void *p2, void *stream, attnc_error *err) {
    (void)stream, (void)err;
    v2_launches++;
    if (which == 0) ck->v2->rows(c, arg, p0, p1);
    else if (which == 1) ck->v2->table(c, arg, p0, p1);
    else if (which == 2) ck->v2->sinks(c, p0, p1);
    else ck->v2->merge(c, p0, p1, p2);
    return ATTNC_OK;
}

static const DeviceOps fake = {fake_alloc, fake_free, fake_copy, fake_launch, fake_v2};

/* The device path: attnc_kernel_run_cuda's, on the fake device. */
static attnc_status run_device(const attnc_kernel *k, const attnc_args *args, attnc_error *err) {
    BoundCall bc;
    attnc_status st = bind_call_layout(k->attn, &k->fixed, args, NULL, 1, &bc, err);
    if (st) return st;
    float dummy[1] = {0};
    attnc_args a = api_with_empty_arrays(args, dummy);
    st = api_run_v2_kernels(k, &bc, &a, 0, NULL, &fake, NULL, err);
    bind_release(&bc);
    return st;
}

static attnc_kernel *compile(const char *file, const char *variant, attnc_backend b) {
    attnc_spec *spec = NULL;
    attnc_kernel *k = NULL;
    attnc_error err = {0};
    attnc_options o = {.backend = b, .threads = 1};
    if (attnc_spec_from_file(file, &spec, &err) || attnc_compile(spec, variant, &o, &k, &err))
        printf("FAIL compile %s (%s): %s\n", variant, attnc_backend_name(b), err.message);
    attnc_spec_free(spec);
    return k;
}

/* The three runs on the same inputs; 0 pass. */
static int check(attnc_kernel *k, attnc_kernel *ki, const ExampleArgs *ea, int expect_fault) {
    attnc_param params[MAX_ITEMS];
    attnc_tensor tensors[MAX_ITEMS];
    memset(tensors, 0, sizeof tensors);
    const char *why = NULL;
    int nt = make_params(k, ea, params, &why) < 0 ? -1 : make_tensors(k, ea, params, ea->nparams, tensors, &why);
    if (nt < 0) {
        printf("FAIL %s\n", why);
        return 1;
    }
    const attnc_sizes *sz = &ea->sz;
    size_t rows = (size_t)(sz->B * sz->H * sz->Lq), no = rows * (size_t)sz->Dv;
    float *q = random_floats(rows * (size_t)sz->D), *kk = random_floats((size_t)(sz->B * sz->Hkv * sz->Lk * sz->D));
    float *v = random_floats((size_t)(sz->B * sz->Hkv * sz->Lk * sz->Dv)), *o[3], *lse[3];
    attnc_error err[3];
    attnc_status st[3];
    for (int r = 0; r < 3; r++) {
        o[r] = calloc(no + 1, sizeof(float)), lse[r] = calloc(rows + 1, sizeof(float));
        memset(&err[r], 0, sizeof err[r]);
        attnc_args args = {*sz, q, kk, v, o[r], lse[r], params, ea->nparams, tensors, nt};
        st[r] = r == 0 ? attnc_kernel_run(ki, &args, &err[r]) : r == 1 ? attnc_kernel_run(k, &args, &err[r])
                                                                      : run_device(k, &args, &err[r]);
    }
    int fail = 0;
    if (expect_fault) {
        for (int r = 1; r < 3; r++)
            if (st[r] != ATTNC_ERR_RUNTIME || strcmp(err[r].message, err[0].message))
                printf("FAIL %s path: status %d '%s', the interpreter's: '%s'\n", r == 1 ? "host" : "device", st[r],
                       err[r].message, err[0].message), fail = 1;
        if (!fail) printf("ok: both paths fail with the interpreter's message: %s\n", err[0].message);
    } else if (st[0] || st[1] || st[2]) {
        printf("FAIL runs: interp '%s', cuda-emu '%s', device '%s'\n", err[0].message, err[1].message, err[2].message);
        fail = 1;
    } else {
        char buf[300];
        double worst = 0;
        const char *bad = compare_outputs(o[2], lse[2], o[0], lse[0], no, rows, 1e-4, &worst, buf, sizeof buf);
        int same = !memcmp(o[1], o[2], no * sizeof(float)) && !memcmp(lse[1], lse[2], rows * sizeof(float));
        if (bad) printf("FAIL the device path against the interpreter: %s\n", bad), fail = 1;
        if (sz->D % 16 && !same) printf("FAIL the device path differs from cuda-emu's host path\n"), fail = 1;
        if (!v2_launches) printf("FAIL no version-2 kernel was launched\n"), fail = 1;
        if (!fail)
            printf("ok: %d version-2 launches, max relative error %.3g%s\n", v2_launches, worst,
                   same ? ", the same bits as cuda-emu's host path" : "");
    }
    for (int r = 0; r < 3; r++) free(o[r]), free(lse[r]);
    for (int i = 0; i < nt; i++) free((void *)tensors[i].data);
    free(q), free(kk), free(v);
    return fail;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: test_cuda_v2_device FILE.attn VARIANT 'ARGS' [--expect-fault]\n");
        return 2;
    }
    char line[1024];
    ExampleArgs ea;
    snprintf(line, sizeof line, "%s", argv[3]);
    if (!parse_args(line, &ea)) {
        printf("FAIL cannot parse '%s'\n", argv[3]);
        return 2;
    }
    rng_seed(14);
    attnc_kernel *k = compile(argv[1], argv[2], ATTNC_BACKEND_CUDA_EMU), *ki = compile(argv[1], argv[2], ATTNC_BACKEND_INTERP);
    int fail = !k || !ki || check(k, ki, &ea, argc > 4 && !strcmp(argv[4], "--expect-fault"));
    attnc_kernel_free(k);
    attnc_kernel_free(ki);
    printf("%s\n", fail ? "FAIL" : "PASS");
    return fail;
}
