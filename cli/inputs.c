/* inputs.c — what `run`, `diff` and `bench` share: the one-line failure
 * message and exit status, loading the spec, and --param/--tensor values
 * (tensors read from .npy files).  Below main.c and measure.c, so neither
 * of those calls the other's functions. */
#include <stdio.h>
#include <string.h>

#include "inputs.h"

int fail(int code, const char *fmt, const char *a, const char *b) {
    fprintf(stderr, "attnc: ");
    fprintf(stderr, fmt, a ? a : "", b ? b : "");
    fprintf(stderr, "\n");
    return code;
}

/* Load and check the spec; prints diagnostics. */
int load_spec(const Options *o, attnc_spec **spec) {
    attnc_error err = {0};
    attnc_status st = attnc_spec_from_file(o->file, spec, &err);
    if (*spec && attnc_spec_error_count(*spec)) {
        fputs(attnc_spec_diagnostics(*spec), stderr);
        int n = attnc_spec_error_count(*spec);
        fprintf(stderr, "%d error%s generated.\n", n, n == 1 ? "" : "s");
        return EXIT_SPEC;
    }
    if (st) return fail(st == ATTNC_ERR_SPEC ? EXIT_SPEC : EXIT_RUNTIME, "%s", err.message, NULL);
    return 0;
}

int status_exit(attnc_status st) {
    return st == ATTNC_ERR_SPEC ? EXIT_SPEC : st == ATTNC_ERR_USAGE ? EXIT_USAGE : EXIT_RUNTIME;
}

int bind_cli_params(const Options *o, const attnc_kernel *kern, RunInputs *in) {
    for (int i = 0; i < o->nparams; i++) {
        char name[128];
        const char *val = split_assignment(o->params[i], name, sizeof name);
        if (!val) return fail(EXIT_USAGE, "--param '%s': expected NAME=VALUE", o->params[i], NULL);
        attnc_error err = {0};
        attnc_status st = attnc_kernel_param_from_text(kern, name, val, &in->params[i], &err);
        if (st) return fail(status_exit(st), "--param: %s", err.message, NULL);
    }
    for (int i = 0; i < o->ntensors; i++) {
        const char *path = split_assignment(o->tensors[i], in->names[i], sizeof in->names[i]);
        if (!path) return fail(EXIT_USAGE, "--tensor '%s': expected NAME=FILE.npy", o->tensors[i], NULL);
        char msg[600];
        if (npy_read(path, &in->tens[i], msg, sizeof msg)) return fail(EXIT_RUNTIME, "tensor '%s': %s", in->names[i], msg);
        attnc_tensor *t = &in->tensors[i];
        t->name = in->names[i];
        t->dtype = in->tens[i].dtype;
        t->rank = in->tens[i].rank;
        memcpy(t->shape, in->tens[i].shape, sizeof t->shape);
        t->data = in->tens[i].data;
    }
    return 0;
}

void free_inputs(RunInputs *in) {
    if (!in) return;
    npy_free(&in->q);
    npy_free(&in->k);
    npy_free(&in->v);
    for (int i = 0; i < MAX_REPEATED; i++) npy_free(&in->tens[i]);
}
