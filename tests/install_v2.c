/* install_v2.c — built by tests/install.sh against the INSTALLED library
 * (only <attnc.h>): a language version 2 attention (rotary with position ids
 * and partial rotation, learned sinks, GQA) on the default backend, checked
 * against the interpreter backend of the same library.  Exit 0 when they
 * agree; one line on stderr and exit 1 otherwise. */
#include <attnc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char spec_text[] =
    "attention llama_sinks {\n"
    "    tensor pos : int[B, Lq];\n"
    "    tensor sinks : float[H];\n"
    "    use causal;\n"
    "    rotary(base = 500000.0, dims = D / 2, qpos = pos[b, q], kvpos = pos[b, kv]);\n"
    "    sink sinks[h];\n"
    "}\n";

enum { B = 2, H = 4, HKV = 2, L = 19, D = 16, DV = 8 };

/* Run the spec on backend into o and lse. */
static attnc_status run(attnc_backend backend, const attnc_args *args, attnc_error *err) {
    attnc_spec *spec = NULL;
    attnc_kernel *k = NULL;
    attnc_options opts = {0};
    opts.backend = backend;
    attnc_status st = attnc_spec_from_string("install_v2.attn", spec_text, strlen(spec_text), &spec, err);
    if (!st) st = attnc_compile(spec, NULL, &opts, &k, err);
    if (!st) st = attnc_kernel_run(k, args, err);
    attnc_kernel_free(k);
    attnc_spec_free(spec);
    return st;
}

int main(void) {
    static float q[B * H * L * D], k[B * HKV * L * D], v[B * HKV * L * DV], sinks[H];
    static float o[2][B * H * L * DV], lse[2][B * H * L];
    static int32_t pos[B * L];
    unsigned seed = 7;
    float *all[] = {q, k, v, sinks};
    size_t n[] = {B * H * L * D, B * HKV * L * D, B * HKV * L * DV, H};
    for (int a = 0; a < 4; a++)
        for (size_t i = 0; i < n[a]; i++) {
            seed = seed * 1103515245u + 12345u;
            all[a][i] = (float)((seed >> 8) % 2001) / 1000.0f - 1.0f;
        }
    for (int b = 0; b < B; b++) /* the second sequence starts at position 1000 (a continued context) */
        for (int i = 0; i < L; i++) pos[b * L + i] = b * 1000 + i;
    attnc_tensor tensors[] = {{"pos", ATTNC_I32, 2, {B, L}, pos}, {"sinks", ATTNC_F32, 1, {H}, sinks}};
    attnc_error err = {0};
    for (int r = 0; r < 2; r++) {
        attnc_args args = {{B, H, HKV, L, L, D, DV}, q, k, v, o[r], lse[r], NULL, 0, tensors, 2};
        if (run(r ? ATTNC_BACKEND_INTERP : ATTNC_BACKEND_DEFAULT, &args, &err)) {
            fprintf(stderr, "install_v2: %s backend: %s\n", r ? "interp" : "default", err.message);
            return 1;
        }
    }
    double worst = 0;
    for (size_t i = 0; i < sizeof o[0] / sizeof o[0][0]; i++) worst = fmax(worst, fabs(o[0][i] - o[1][i]));
    for (size_t i = 0; i < sizeof lse[0] / sizeof lse[0][0]; i++) worst = fmax(worst, fabs(lse[0][i] - lse[1][i]));
    if (!(worst <= 1e-4)) {
        fprintf(stderr, "install_v2: the default backend differs from the interpreter by %g\n", worst);
        return 1;
    }
    return 0;
}
