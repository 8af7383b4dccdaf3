/* embed.c — attnc inside a C program: compile a variant from a string at
 * run time, call it on our own buffers, and read the result.
 *
 *   cc embed.c -I include -L build -lattnc -lm -lpthread && ./a.out
 *
 * The spec is ALiBi under a causal mask with a per-head slope table the
 * program owns (a captured tensor) and a window given per call (a param). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "attnc.h"

static const char spec_text[] =
    "attention local_alibi {\n"
    "    param window : int;\n"
    "    tensor slope : float[H];\n"
    "    use causal;\n"
    "    mask q - kv < window;\n"
    "    bias -slope[h] * float(q - kv);\n"
    "}\n";

int main(void) {
    enum { B = 1, H = 4, HKV = 2, L = 100, D = 32, DV = 16 };
    attnc_error err;
    attnc_spec *spec = NULL;
    if (attnc_spec_from_string("embedded.attn", spec_text, sizeof spec_text - 1, &spec, &err)) {
        /* diagnostics come back as text; the program decides what to do with them */
        fprintf(stderr, "%s%s\n", spec ? attnc_spec_diagnostics(spec) : "", err.message);
        attnc_spec_free(spec);
        return 1;
    }
    attnc_kernel *kernel = NULL;
    attnc_options opts = {.backend = ATTNC_BACKEND_DEFAULT, .threads = 2};
    if (attnc_compile(spec, NULL, &opts, &kernel, &err)) {
        fprintf(stderr, "compile: %s\n", err.message);
        attnc_spec_free(spec);
        return 1;
    }
    attnc_spec_free(spec); /* the kernel keeps what it needs */

    float *q = malloc(sizeof(float) * B * H * L * D), *k = malloc(sizeof(float) * B * HKV * L * D);
    float *v = malloc(sizeof(float) * B * HKV * L * DV), *o = malloc(sizeof(float) * B * H * L * DV);
    float *lse = malloc(sizeof(float) * B * H * L), slope[H];
    for (int i = 0; i < B * H * L * D; i++) q[i] = sinf((float)i * 0.37f);
    for (int i = 0; i < B * HKV * L * D; i++) k[i] = cosf((float)i * 0.11f);
    for (int i = 0; i < B * HKV * L * DV; i++) v[i] = (float)(i % 7) - 3.0f;
    for (int h = 0; h < H; h++) slope[h] = exp2f(-8.0f * (float)(h + 1) / H);

    attnc_param window = {.name = "window", .type = ATTNC_INT, .i = 16};
    attnc_tensor slope_t = {.name = "slope", .dtype = ATTNC_F32, .rank = 1, .shape = {H}, .data = slope};
    attnc_args args = {{B, H, HKV, L, L, D, DV}, q, k, v, o, lse, &window, 1, &slope_t, 1};
    int status = attnc_kernel_run(kernel, &args, &err);
    if (status) {
        fprintf(stderr, "run: %s\n", err.message);
    } else {
        /* row 0 sees only kv 0: O must equal V[0]; every LSE must be finite */
        int ok = fabsf(o[0] - v[0]) < 1e-5f;
        for (int i = 0; i < B * H * L; i++) ok &= isfinite(lse[i]) != 0;
        printf("backend %s: O[0,0,0,0] = %g (V[0,0,0,0] = %g), LSE[0,0,%d] = %g: %s\n",
               attnc_backend_name(attnc_kernel_backend(kernel)), o[0], v[0], L - 1, lse[L - 1],
               ok ? "ok" : "WRONG");
        status = !ok;
    }
    /* a call with a missing param is an error with a message, not a crash */
    attnc_args bad = args;
    bad.n_params = 0;
    if (attnc_kernel_run(kernel, &bad, &err) != ATTNC_ERR_RUNTIME) status = 1;
    else printf("missing param -> %s\n", err.message);

    attnc_kernel_free(kernel);
    free(q), free(k), free(v), free(o), free(lse);
    return status;
}
