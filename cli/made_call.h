/* made_call.h — a call with made-up inputs, shared by `diff` and `bench`
 * (measure.c) and their --grad forms (measure_grad.c). */
#ifndef ATTNC_MADE_CALL_H
#define ATTNC_MADE_CALL_H
#include <stddef.h>

#include "inputs.h"
#include "options.h"

/* A call with made-up inputs; owns its buffers. */
typedef struct Call {
    RunInputs in;
    attnc_args args;
    attnc_layouts lay;
    attnc_elem elem;   /* Q, K, V and O stored as */
    void *q, *k, *v, *o; /* in elem */
    float *lse;
    void *made[MAX_REPEATED]; /* tensors made up here */
    int nmade;
} Call;

/* Inputs for kernel k: files where given, random elsewhere (the generator
 * restarts from o->seed_value); 0 or an exit status (message printed). */
int make_call(const Options *o, const attnc_kernel *k, const attnc_sizes *sz, Call *c);
void call_free(Call *c);
/* n floats uniform in [-1, 1) from the call's generator (malloc'd; NULL: out of memory). */
float *random_floats(size_t n);
/* Compile o's variant for backend b; 0 or an exit status (message printed). */
int compile_for(const Options *o, const attnc_spec *spec, attnc_backend b, int threads, attnc_kernel **k);
double now_seconds(void);

/* The largest differences of a backend's results from the reference's. */
typedef struct Errors {
    double o_abs, o_rel, lse_abs, lse_rel;
    int mismatched_special; /* a NaN or infinity where the reference has none, or the reverse */
} Errors;

/* Fold got against want into the largest absolute and relative (to
 * 1 + |want|) errors; *special when a NaN or infinity differs. */
void accumulate_error(const float *got, const float *want, size_t n, double *abs_err, double *rel_err, int *special);

#endif
