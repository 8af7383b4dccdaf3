/* train_step.c — learning a relative-position bias table with attnc from C:
 * the forward pass, then the backward pass for dQ, dK, dV and the gradient
 * of the table, then a gradient step on the table; a few steps bring the
 * attention's output towards a target.
 *
 *   cc train_step.c -I include -L build -lattnc -lm -lpthread && ./a.out [backend]
 *
 * The loss is L = sum((O - T)^2) / 2, so dL/dO = O - T is the dO the
 * backward pass takes (no dLSE).  The program checks one element of each
 * gradient against a central difference of the loss, and that the loss
 * falls.  Without an argument it uses the first backend (default, tcc,
 * interp) whose kernels have a backward pass. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attnc.h"

enum { B = 1, H = 4, HKV = 2, L = 48, D = 16, DV = 16, MAXD = 8, NT = 2 * MAXD + 1, STEPS = 20 };

static const char spec_text[] =
    "attention learned_relative {\n"
    "    param max_dist : int = 8;\n"
    "    tensor table : float[H, 2 * max_dist + 1];\n"
    "    use causal;\n"
    "    bias table[h, min(q - kv, max_dist) + max_dist];\n"
    "}\n";

typedef struct Model {
    attnc_kernel *k;
    float q[B * H * L * D], kk[B * HKV * L * D], v[B * HKV * L * DV], target[B * H * L * DV];
    float table[H * NT], o[B * H * L * DV], lse[B * H * L];
    attnc_tensor t;
    attnc_args args;
} Model;

/* The forward pass and its loss. */
static double forward(Model *m) {
    attnc_error err;
    if (attnc_kernel_run(m->k, &m->args, &err)) {
        fprintf(stderr, "forward: %s\n", err.message);
        exit(1);
    }
    double loss = 0;
    for (int i = 0; i < B * H * L * DV; i++) loss += 0.5 * (m->o[i] - m->target[i]) * (m->o[i] - m->target[i]);
    return loss;
}

/* A central difference of the loss along x[i] (x one of the model's inputs). */
static double central(Model *m, float *x, int i) {
    float keep = x[i], h = 1e-2f;
    x[i] = keep + h;
    double up = forward(m);
    x[i] = keep - h;
    double down = forward(m);
    x[i] = keep;
    forward(m);
    return (up - down) / (2.0 * h);
}

static attnc_kernel *compile_with_backward(const attnc_spec *spec, const char *name) {
    attnc_backend order[3] = {ATTNC_BACKEND_DEFAULT, ATTNC_BACKEND_TCC, ATTNC_BACKEND_INTERP};
    int n = 3;
    if (name) {
        if (!attnc_backend_parse(name, &order[0])) return fprintf(stderr, "unknown backend %s\n", name), NULL;
        n = 1;
    }
    for (int i = 0; i < n; i++) {
        attnc_options opts = {.backend = order[i], .threads = 2};
        attnc_kernel *k = NULL;
        attnc_error err;
        if (!attnc_backend_available(order[i]) && order[i] != ATTNC_BACKEND_DEFAULT) continue;
        if (attnc_compile(spec, NULL, &opts, &k, &err)) {
            fprintf(stderr, "compile: %s\n", err.message);
            continue;
        }
        if (attnc_kernel_has_backward(k)) return k;
        attnc_kernel_free(k);
    }
    fprintf(stderr, "no backend with a backward pass\n");
    return NULL;
}

int main(int argc, char **argv) {
    attnc_error err;
    attnc_spec *spec = NULL;
    if (attnc_spec_from_string("train.attn", spec_text, sizeof spec_text - 1, &spec, &err)) {
        fprintf(stderr, "%s%s\n", spec ? attnc_spec_diagnostics(spec) : "", err.message);
        return 1;
    }
    Model *m = calloc(1, sizeof *m);
    m->k = compile_with_backward(spec, argc > 1 ? argv[1] : NULL);
    attnc_spec_free(spec);
    if (!m->k) return 1;
    for (int i = 0; i < B * H * L * D; i++) m->q[i] = sinf(0.7f * (float)i);
    for (int i = 0; i < B * HKV * L * D; i++) m->kk[i] = cosf(0.3f * (float)i);
    for (int i = 0; i < B * HKV * L * DV; i++) m->v[i] = sinf(0.11f * (float)i) + 0.1f * (float)(i % 5);
    for (int i = 0; i < B * H * L * DV; i++) m->target[i] = 0.5f * cosf(0.05f * (float)i);
    m->t = (attnc_tensor){.name = "table", .dtype = ATTNC_F32, .rank = 2, .shape = {H, NT}, .data = m->table};
    m->args = (attnc_args){{B, H, HKV, L, L, D, DV}, m->q, m->kk, m->v, m->o, m->lse, NULL, 0, &m->t, 1};

    static float dout[B * H * L * DV], dq[B * H * L * D], dk[B * HKV * L * D], dv[B * HKV * L * DV], dtable[H * NT];
    attnc_tensor_grad tg = {"table", dtable};
    attnc_grad grad = {.dout = dout, .dq = dq, .dk = dk, .dv = dv, .dtensors = &tg, .n_dtensors = 1};
    double first = 0, loss = 0, worst = 0;
    for (int step = 0; step < STEPS; step++) {
        loss = forward(m);
        if (step == 0) first = loss;
        for (int i = 0; i < B * H * L * DV; i++) dout[i] = m->o[i] - m->target[i];
        if (attnc_kernel_backward(m->k, &m->args, NULL, &grad, &err)) {
            fprintf(stderr, "backward: %s\n", err.message);
            return 1;
        }
        if (step == 0) { /* the gradients against the loss itself, one element of each */
            double check[4][2] = {{central(m, m->table, 3 * NT + 5), dtable[3 * NT + 5]},
                                  {central(m, m->q, 77), dq[77]},
                                  {central(m, m->kk, 123), dk[123]},
                                  {central(m, m->v, 45), dv[45]}};
            for (int c = 0; c < 4; c++) worst = fmax(worst, fabs(check[c][0] - check[c][1]) / (1 + fabs(check[c][0])));
        }
        for (int i = 0; i < H * NT; i++) m->table[i] -= 0.05f * dtable[i]; /* gradient descent on the table */
    }
    int ok = worst < 2e-2 && loss < first;
    printf("backend %s: loss %.4f -> %.4f in %d steps on the bias table; gradients vs central differences: %.2g: %s\n",
           attnc_backend_name(attnc_kernel_backend(m->k)), first, loss, STEPS, worst, ok ? "ok" : "WRONG");
    attnc_kernel_free(m->k);
    free(m);
    return !ok;
}
