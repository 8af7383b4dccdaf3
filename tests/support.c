/* support.c — shared helpers of the test programs (see support.h). */
#include "support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
void rng_seed(uint64_t seed) { rng_state = seed; }
uint64_t rng_next(void) {
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
float rng_uniform(void) { return (float)((double)(rng_next() >> 11) / 9007199254740992.0 * 2.0 - 1.0); }

char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) buf[n] = 0;
    *len = (size_t)n;
    return buf;
}

/* The text after `// example-args[name]:` (or `// example-args:`), up to the line end. */
int find_args_line(const char *text, const char *name, int only_one, char *out, size_t n) {
    char tagged[128];
    snprintf(tagged, sizeof tagged, "// example-args[%s]:", name);
    const char *p = strstr(text, tagged);
    size_t skip = strlen(tagged);
    if (!p && only_one) {
        p = strstr(text, "// example-args:");
        skip = strlen("// example-args:");
    }
    if (!p) return 0;
    p += skip;
    size_t len = strcspn(p, "\n");
    if (len >= n) len = n - 1;
    memcpy(out, p, len);
    out[len] = 0;
    return 1;
}

int parse_shape_into(char *s, attnc_sizes *sz) {
    for (char *tok = strtok(s, ","); tok; tok = strtok(NULL, ",")) {
        char key[16];
        long long v;
        if (sscanf(tok, "%15[A-Za-z]=%lld", key, &v) != 2) return 0;
        if (!strcmp(key, "B")) sz->B = v;
        else if (!strcmp(key, "H")) sz->H = v;
        else if (!strcmp(key, "Hkv")) sz->Hkv = v;
        else if (!strcmp(key, "Lq")) sz->Lq = v;
        else if (!strcmp(key, "Lk")) sz->Lk = v;
        else if (!strcmp(key, "D")) sz->D = v;
        else if (!strcmp(key, "Dv")) sz->Dv = v;
        else return 0;
    }
    return 1;
}

static int parse_shape(char *s, attnc_sizes *sz) {
    *sz = (attnc_sizes){1, 1, 1, 1, 1, 1, 1};
    return parse_shape_into(s, sz);
}

int parse_args(char *line, ExampleArgs *ea) {
    memset(ea, 0, sizeof *ea);
    int have_shape = 0;
    char *save = NULL;
    for (char *tok = strtok_r(line, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
        char *val = strtok_r(NULL, " \t", &save);
        if (!val) return 0;
        if (!strcmp(tok, "--shape")) {
            char buf[256];
            snprintf(buf, sizeof buf, "%s", val);
            if (!parse_shape(buf, &ea->sz)) return 0;
            have_shape = 1;
        } else if (!strcmp(tok, "--param") && ea->nparams < MAX_ITEMS) {
            if (sscanf(val, "%63[^=]=%63s", ea->param_name[ea->nparams], ea->param_text[ea->nparams]) != 2) return 0;
            ea->nparams++;
        } else if (!strcmp(tok, "--int-range") && ea->nranges < MAX_ITEMS) {
            int k = ea->nranges;
            if (sscanf(val, "%63[^=]=%d,%d", ea->range_name[k], &ea->range_lo[k], &ea->range_hi[k]) != 3 ||
                ea->range_hi[k] <= ea->range_lo[k])
                return 0;
            ea->nranges++;
        } else {
            return 0;
        }
    }
    return have_shape;
}

float *random_floats(size_t n) {
    float *p = malloc(sizeof(float) * (n + 1));
    for (size_t i = 0; p && i < n; i++) p[i] = rng_uniform();
    return p;
}

int make_tensor(const attnc_kernel *k, int i, const attnc_sizes *sz, const attnc_param *params, int np,
                const char (*range_name)[64], const int *range_lo, const int *range_hi, int nranges, attnc_tensor *t,
                char *why, size_t n) {
    attnc_error err = {0};
    t->name = attnc_kernel_tensor_info(k, i, &t->dtype, &t->rank);
    if (attnc_kernel_tensor_shape(k, i, sz, params, np, t->shape, &err)) {
        snprintf(why, n, "shape of tensor '%s': %s", t->name, err.message);
        return -1;
    }
    size_t count = 1;
    for (int d = 0; d < t->rank; d++) count *= (size_t)t->shape[d];
    if (t->dtype == ATTNC_F32) {
        t->data = random_floats(count);
    } else {
        int lo = 0, hi = 4;
        for (int r = 0; r < nranges; r++)
            if (!strcmp(range_name[r], t->name)) lo = range_lo[r], hi = range_hi[r];
        int32_t *p = malloc(sizeof(int32_t) * (count + 1));
        for (size_t j = 0; p && j < count; j++) p[j] = lo + (int32_t)(rng_next() % (uint64_t)(hi - lo));
        t->data = p;
    }
    return 0;
}

int make_tensors(attnc_kernel *k, const ExampleArgs *ea, const attnc_param *params, int np, attnc_tensor *tensors,
                 const char **why) {
    static char msg[600];
    int nt = attnc_kernel_tensor_count(k);
    for (int i = 0; i < nt; i++)
        if (make_tensor(k, i, &ea->sz, params, np, ea->range_name, ea->range_lo, ea->range_hi, ea->nranges,
                        &tensors[i], msg, sizeof msg)) {
            *why = msg;
            return -1;
        }
    return nt;
}

int close_enough(float got, float want, double tol) {
    if (isnan(want) || isnan(got)) return isnan(want) && isnan(got);
    if (isinf(want) || isinf(got)) return got == want;
    return fabs((double)got - (double)want) <= tol * (1.0 + fabs((double)want));
}

const char *compare_outputs(const float *o, const float *lse, const float *ref_o, const float *ref_lse, size_t no,
                            size_t rows, double tol, double *worst, char *buf, size_t n) {
    *worst = 0;
    for (size_t i = 0; i < no + rows; i++) {
        float got = i < no ? o[i] : lse[i - no], want = i < no ? ref_o[i] : ref_lse[i - no];
        if (!close_enough(got, want, tol)) {
            snprintf(buf, n, "%s[%zu] = %.9g but the interpreter gives %.9g", i < no ? "O" : "LSE", i < no ? i : i - no,
                     got, want);
            return buf;
        }
        if (isfinite(want)) {
            double e = fabs((double)got - (double)want) / (1.0 + fabs((double)want));
            *worst = e > *worst ? e : *worst;
        }
    }
    return NULL;
}

int make_params(attnc_kernel *k, const ExampleArgs *ea, attnc_param *params, const char **why) {
    static char msg[600];
    for (int i = 0; i < ea->nparams; i++) {
        attnc_error err = {0};
        if (attnc_kernel_param_from_text(k, ea->param_name[i], ea->param_text[i], &params[i], &err)) {
            snprintf(msg, sizeof msg, "--param %s: %s", ea->param_name[i], err.message);
            *why = msg;
            return -1;
        }
    }
    return ea->nparams;
}

int example_call_open(ExampleCall *c, const attnc_spec *spec, const char *variant, const attnc_options *opts,
                      const ExampleArgs *ea, char *why, size_t n) {
    static const float unread = 0;
    memset(c, 0, sizeof *c);
    attnc_error err = {0};
    if (attnc_compile(spec, variant, opts, &c->k, &err)) return snprintf(why, n, "compile: %s", err.message), -1;
    const char *msg = NULL;
    c->np = make_params(c->k, ea, c->params, &msg);
    c->nt = c->np < 0 ? -1 : make_tensors(c->k, ea, c->params, c->np, c->tensors, &msg);
    if (c->nt < 0) return snprintf(why, n, "%s", msg), -1;
    c->args = (attnc_args){ea->sz, &unread, &unread, &unread, (float *)&unread, NULL, c->params, c->np, c->tensors,
                           c->nt};
    return 0;
}

void example_call_close(ExampleCall *c) {
    for (int i = 0; i < MAX_ITEMS; i++) free((void *)c->tensors[i].data); /* make_tensor leaves NULL where it stopped */
    attnc_kernel_free(c->k);
    memset(c, 0, sizeof *c);
}

int for_each_example(const char *file, const char *text, size_t len,
                     void (*fn)(const attnc_spec *, const char *, ExampleArgs *), char *why, size_t n) {
    attnc_spec *spec = NULL;
    attnc_error err = {0};
    if (attnc_spec_from_string(file, text, len, &spec, &err)) {
        snprintf(why, n, "%s\n%s", err.message, spec ? attnc_spec_diagnostics(spec) : "");
        attnc_spec_free(spec);
        return -1;
    }
    int count = attnc_spec_variant_count(spec);
    for (int i = 0; i < count; i++) {
        const char *name = attnc_spec_variant_name(spec, i);
        char line[1024];
        ExampleArgs ea;
        int usable = find_args_line(text, name, count == 1, line, sizeof line) && parse_args(line, &ea);
        fn(spec, name, usable ? &ea : NULL);
    }
    attnc_spec_free(spec);
    return 0;
}
