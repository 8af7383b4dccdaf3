/* measure_grad.c — `attnc diff --grad` and what `attnc bench --grad` needs
 * (measure_grad.h): the backward pass of a made-up call (made_call.h) with
 * random dO and dLSE, every float tensor's gradient asked for.  O and the
 * gradients are float32 in their tensor's layout; Q, K, V as --dtype says.
 * diff --grad compares each backend's dQ, dK, dV and tensor gradients, after
 * its own forward call, with the interpreter's. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "measure_grad.h"

static const double GRAD_TOLERANCE = 2e-3; /* of 1 + the largest |reference| of each gradient */

void grad_bufs_free(GradBufs *gb) {
    free(gb->o), free(gb->dout), free(gb->dlse);
    for (int i = 0; i < 3; i++) free(gb->d[i]);
    for (int i = 0; i < gb->ndt; i++) free(gb->dt[i].data);
    memset(gb, 0, sizeof *gb);
}

static size_t count_of(const attnc_tensor *t) {
    size_t n = 1;
    for (int r = 0; r < t->rank; r++) n *= (size_t)t->shape[r];
    return n;
}

int grad_bufs_make(const Options *o, const Call *call, GradBufs *gb) {
    memset(gb, 0, sizeof *gb);
    const attnc_sizes *sz = &call->args.sizes;
    size_t rows = (size_t)(sz->B * sz->H * sz->Lq);
    size_t n[3] = {rows * (size_t)sz->D, (size_t)(sz->B * sz->Hkv * sz->Lk * sz->D),
                   (size_t)(sz->B * sz->Hkv * sz->Lk * sz->Dv)};
    gb->o = malloc(sizeof(float) * (rows * (size_t)sz->Dv + 1));
    gb->dout = random_floats(rows * (size_t)sz->Dv);
    gb->dlse = random_floats(rows);
    for (int i = 0; i < 3; i++) gb->d[i] = malloc(sizeof(float) * (n[i] + 1));
    int bad = !gb->o || !gb->dout || !gb->dlse || !gb->d[0] || !gb->d[1] || !gb->d[2];
    for (int i = 0; !bad && i < call->args.n_tensors; i++) {
        const attnc_tensor *t = &call->args.tensors[i];
        if (t->dtype != ATTNC_F32) continue;
        gb->n[gb->ndt] = count_of(t);
        gb->dt[gb->ndt] = (attnc_tensor_grad){t->name, malloc(sizeof(float) * (gb->n[gb->ndt] + 1))};
        bad = !gb->dt[gb->ndt++].data;
    }
    if (bad) return fail(EXIT_RUNTIME, "out of memory for the gradients", NULL, NULL);
    gb->nqkv[0] = n[0], gb->nqkv[1] = n[1], gb->nqkv[2] = n[2];
    gb->args = call->args;
    gb->args.o = gb->o;
    gb->lay = call->lay;
    gb->lay.o.elem = ATTNC_ELEM_F32; /* O feeds the backward pass: not rounded to --dtype */
    gb->g = (attnc_grad){.dout = gb->dout, .dlse = gb->dlse, .dq = gb->d[0], .dk = gb->d[1], .dv = gb->d[2],
                         .dtensors = gb->dt, .n_dtensors = gb->ndt};
    gb->g.dout_layout = gb->lay.o;
    gb->g.dq_layout = gb->lay.q, gb->g.dk_layout = gb->lay.k, gb->g.dv_layout = gb->lay.v;
    gb->g.dq_layout.elem = gb->g.dk_layout.elem = gb->g.dv_layout.elem = ATTNC_ELEM_F32;
    (void)o;
    return 0;
}

attnc_status grad_forward(const attnc_kernel *k, GradBufs *gb, attnc_error *err) {
    return attnc_kernel_run_layout(k, &gb->args, &gb->lay, err);
}

attnc_status grad_backward(const attnc_kernel *k, GradBufs *gb, attnc_error *err) {
    return attnc_kernel_backward(k, &gb->args, &gb->lay, &gb->g, err);
}

/* Every output NaN (all-ones bits): what a backend leaves unwritten differs. */
static void poison(GradBufs *gb) {
    for (int i = 0; i < 3; i++) memset(gb->d[i], 0xff, sizeof(float) * gb->nqkv[i]);
    for (int i = 0; i < gb->ndt; i++) memset(gb->dt[i].data, 0xff, sizeof(float) * gb->n[i]);
}

/* The largest |got - want| over 1 + max |want|; *special when NaN/inf differ. */
static double scaled_error(const float *got, const float *want, size_t n, int *special) {
    double scale = 0, worst = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(want[i]) && fabs(want[i]) > scale) scale = fabs(want[i]);
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(got[i]) || !isfinite(want[i])) {
            if (!(isnan(got[i]) && isnan(want[i])) && got[i] != want[i]) *special = 1;
            continue;
        }
        double d = fabs((double)got[i] - want[i]) / (1 + scale);
        if (d > worst) worst = d;
    }
    return worst;
}

/* The reference's gradients, copied: [0..2] dQ, dK, dV, then the tensors. */
static int copy_reference(const GradBufs *gb, float **ref) {
    for (int i = 0; i < 3 + gb->ndt; i++) {
        size_t n = i < 3 ? gb->nqkv[i] : gb->n[i - 3];
        const float *src = i < 3 ? gb->d[i] : gb->dt[i - 3].data;
        if (!(ref[i] = malloc(sizeof(float) * (n + 1)))) return fail(EXIT_RUNTIME, "out of memory", NULL, NULL);
        memcpy(ref[i], src, sizeof(float) * n);
    }
    return 0;
}

/* One backend's forward and backward against the reference; 1 when it differs. */
static int compare_backend(const char *name, GradBufs *gb, float *const *ref) {
    int special = 0;
    double e[3 + MAX_REPEATED] = {0}, worst = 0;
    for (int i = 0; i < 3 + gb->ndt; i++) {
        e[i] = scaled_error(i < 3 ? gb->d[i] : gb->dt[i - 3].data, ref[i], i < 3 ? gb->nqkv[i] : gb->n[i - 3], &special);
        if (e[i] > worst) worst = e[i];
    }
    printf("%-10s %12.3g %12.3g %12.3g", name, e[0], e[1], e[2]);
    for (int i = 0; i < gb->ndt; i++) printf(" %12.3g", e[3 + i]);
    int bad = special || worst > GRAD_TOLERANCE;
    printf("%s\n", bad ? (special ? "  FAIL (NaN/inf differ)" : "  FAIL") : "  ok");
    return bad;
}

/* diff --grad: the call is made once for the interpreter and shared. */
int diff_grad(const Options *o, const attnc_sizes *size, const attnc_backend *list, int n) {
    attnc_sizes sz = *size;
    attnc_spec *spec = NULL;
    attnc_kernel *ref = NULL;
    Call call;
    GradBufs gb;
    memset(&call, 0, sizeof call);
    memset(&gb, 0, sizeof gb);
    float *want[3 + MAX_REPEATED] = {0};
    attnc_error err = {0};
    attnc_status st = ATTNC_OK;
    int rc = load_spec(o, &spec);
    if (!rc) rc = compile_for(o, spec, ATTNC_BACKEND_INTERP, 1, &ref);
    if (!rc) rc = make_call(o, ref, &sz, &call);
    if (!rc) rc = grad_bufs_make(o, &call, &gb);
    if (!rc && ((st = grad_forward(ref, &gb, &err)) || (st = grad_backward(ref, &gb, &err))))
        rc = fail(status_exit(st), "interpreter: %s", err.message, NULL);
    if (!rc) rc = copy_reference(&gb, want);
    if (!rc) {
        printf("%-10s %12s %12s %12s", "backend", "dQ max err", "dK max err", "dV max err");
        for (int i = 0; i < gb.ndt; i++) printf(" %12.12s", gb.dt[i].name);
        printf("   (|got - ref| / (1 + max |ref|))\n");
    }
    int worst = 0, compared = 0;
    for (int i = 0; !rc && i < n; i++) {
        attnc_kernel *k = NULL;
        rc = compile_for(o, spec, list[i], o->nthreads, &k);
        if (!rc && !attnc_kernel_has_backward(k)) {
            if (o->backends) rc = fail(EXIT_USAGE, "backend '%s' has no backward pass yet", attnc_backend_name(list[i]), NULL);
            else printf("%-10s skipped: no backward pass yet\n", attnc_backend_name(list[i]));
            attnc_kernel_free(k);
            continue;
        }
        if (!rc) poison(&gb);
        if (!rc && ((st = grad_forward(k, &gb, &err)) || (st = grad_backward(k, &gb, &err))))
            rc = fail(status_exit(st), "%s", err.message, NULL);
        if (!rc) worst |= compare_backend(attnc_backend_name(list[i]), &gb, want), compared++;
        attnc_kernel_free(k);
    }
    if (!rc && !compared) printf("(no backend compared: none of them has a backward pass yet)\n");
    if (!rc && worst) {
        fprintf(stderr, "attnc: a backend's gradients differ from the interpreter's by more than %g\n", GRAD_TOLERANCE);
        rc = EXIT_DIFF;
    }
    for (int i = 0; i < 3 + MAX_REPEATED; i++) free(want[i]);
    grad_bufs_free(&gb);
    call_free(&call);
    attnc_kernel_free(ref);
    attnc_spec_free(spec);
    return rc;
}
