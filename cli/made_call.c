/* made_call.c — the inputs `diff` and `bench` make up for a call (made_call.h):
 * Q, K, V uniform in [-1, 1) from a seeded generator, params from --param
 * or their defaults, tensors from --tensor files or random (ints in a range
 * that keeps the spec's indexing in bounds where the library can tell, else
 * [0, 4), or --int-range), rounded to --dtype and laid out as --layout says. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "made_call.h"

static uint64_t rng_state;
static uint64_t next_random(void) {
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

float *random_floats(size_t n) {
    float *p = malloc(sizeof(float) * (n + 1));
    for (size_t i = 0; p && i < n; i++) p[i] = (float)((double)(next_random() >> 11) / 9007199254740992.0 * 2 - 1);
    return p;
}

double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}


void call_free(Call *c) {
    free(c->q);
    free(c->k);
    free(c->v);
    free(c->o);
    free(c->lse);
    for (int i = 0; i < c->nmade; i++) free(c->made[i]);
    free_inputs(&c->in);
}

/* The last --int-range for tensor `name` overrides [*lo, *hi). */
static int int_range_option(const Options *o, const char *name, int64_t *lo, int64_t *hi) {
    for (int i = 0; i < o->nint_ranges; i++) {
        char key[128], msg[300];
        int64_t a, b;
        if (cli_parse_int_range(o->int_ranges[i], key, sizeof key, &a, &b, msg, sizeof msg))
            return fail(EXIT_USAGE, "%s", msg, NULL);
        if (!strcmp(key, name)) {
            *lo = a;
            *hi = b;
        }
    }
    return 0;
}

/* Elements of a tensor the spec shaped, bounded like a .npy file's data. */
static int made_tensor_count(const attnc_tensor *t, size_t *count) {
    uint64_t n = 1;
    for (int d = 0; d < t->rank; d++) {
        uint64_t dim = t->shape[d] < 0 ? UINT64_MAX : (uint64_t)t->shape[d];
        if (dim && n > UINT64_MAX / dim) return 1;
        n *= dim;
    }
    *count = (size_t)n;
    return n > NPY_MAX_DATA_BYTES / 4;
}

/* n random floats rounded to elem (NULL: out of memory). */
static void *stored_random(size_t n, attnc_elem elem) {
    float *x = random_floats(n);
    if (!x || elem == ATTNC_ELEM_F32) return x;
    void *stored = convert_elems(x, ATTNC_ELEM_F32, elem, n);
    free(x);
    return stored;
}

/* Inputs for kernel k: files where given, random elsewhere. */
int make_call(const Options *o, const attnc_kernel *k, const attnc_sizes *sz, Call *c) {
    memset(c, 0, sizeof *c);
    rng_state = o->seed_value;
    int rc = bind_cli_params(o, k, &c->in);
    if (rc) return rc;
    int nt = o->ntensors;
    for (int i = 0; i < attnc_kernel_tensor_count(k); i++) {
        attnc_tensor t = {0};
        t.name = attnc_kernel_tensor_info(k, i, &t.dtype, &t.rank);
        int given = 0;
        for (int j = 0; j < o->ntensors; j++) given |= !strcmp(c->in.tensors[j].name, t.name);
        if (given) continue;
        attnc_error err = {0};
        if (attnc_kernel_tensor_shape(k, i, sz, c->in.params, o->nparams, t.shape, &err))
            return fail(EXIT_RUNTIME, "tensor '%s': %s", t.name, err.message);
        size_t count;
        if (made_tensor_count(&t, &count))
            return fail(EXIT_RUNTIME, "tensor '%s' is too large to make up (more than a .npy file may hold)", t.name,
                        NULL);
        if (t.dtype == ATTNC_F32) {
            t.data = random_floats(count);
        } else {
            int64_t lo, hi;
            if (attnc_kernel_tensor_value_range(k, i, sz, c->in.params, o->nparams, &lo, &hi, &err))
                return fail(EXIT_RUNTIME, "tensor '%s': %s", t.name, err.message);
            if ((rc = int_range_option(o, t.name, &lo, &hi))) return rc;
            int32_t *p = malloc(sizeof(int32_t) * (count + 1));
            for (size_t j = 0; p && j < count; j++) p[j] = (int32_t)(lo + (int64_t)(next_random() % (uint64_t)(hi - lo)));
            t.data = p;
        }
        if (!t.data || nt == MAX_REPEATED) return fail(EXIT_RUNTIME, "out of memory or too many tensors", NULL, NULL);
        c->made[c->nmade++] = (void *)t.data;
        c->in.tensors[nt++] = t;
    }
    size_t rows = (size_t)(sz->B * sz->H * sz->Lq);
    c->elem = o->elem;
    /* the values are independent draws: the same stream serves either layout */
    c->q = stored_random(rows * (size_t)sz->D, o->elem);
    c->k = stored_random((size_t)(sz->B * sz->Hkv * sz->Lk * sz->D), o->elem);
    c->v = stored_random((size_t)(sz->B * sz->Hkv * sz->Lk * sz->Dv), o->elem);
    c->o = malloc((size_t)elem_bytes(o->elem) * rows * (size_t)sz->Dv + 4);
    c->lse = malloc(sizeof(float) * (rows + 1));
    if (!c->q || !c->k || !c->v || !c->o || !c->lse) return fail(EXIT_RUNTIME, "out of memory for the inputs", NULL, NULL);
    c->args = (attnc_args){*sz, c->q, c->k, c->v, c->o, c->lse, c->in.params, o->nparams, c->in.tensors, nt};
    storage_layouts(sz, o->elem, o->blhd, &c->lay);
    return 0;
}


int compile_for(const Options *o, const attnc_spec *spec, attnc_backend b, int threads, attnc_kernel **k) {
    attnc_options opts = {.backend = b,
                          .threads = threads,
                          .flags = o->separable_bias ? ATTNC_OPT_SEPARABLE_BIAS : 0,
                          .tile_q = o->tile_q,
                          .tile_k = o->tile_k};
    attnc_error err = {0};
    attnc_status st = attnc_compile(spec, o->variant, &opts, k, &err);
    return st ? fail(status_exit(st), "%s", err.message, NULL) : 0;
}


void accumulate_error(const float *got, const float *want, size_t n, double *abs_err, double *rel_err,
                             int *special) {
    for (size_t i = 0; i < n; i++) {
        double g = got[i], w = want[i];
        if (!isfinite(g) || !isfinite(w)) {
            if (!(isnan(g) && isnan(w)) && g != w) *special = 1;
            continue;
        }
        double d = fabs(g - w);
        if (d > *abs_err) *abs_err = d;
        if (d / (1.0 + fabs(w)) > *rel_err) *rel_err = d / (1.0 + fabs(w));
    }
}

