/* support.h — what the test programs share: the `// example-args:` line of
 * the example files, a deterministic generator, random inputs and tensors. */
#ifndef ATTNC_TEST_SUPPORT_H
#define ATTNC_TEST_SUPPORT_H
#include <stddef.h>
#include <stdint.h>

#include "attnc.h"

enum { MAX_ITEMS = 32 };

typedef struct ExampleArgs {
    attnc_sizes sz;
    char param_name[MAX_ITEMS][64], param_text[MAX_ITEMS][64];
    int nparams;
    char range_name[MAX_ITEMS][64];
    int range_lo[MAX_ITEMS], range_hi[MAX_ITEMS];
    int nranges;
} ExampleArgs;

/* splitmix64: the same sequence on every machine. */
uint64_t rng_next(void);
void rng_seed(uint64_t seed);
float rng_uniform(void);
/* The whole file, NUL-terminated; NULL when unreadable. */
char *read_file(const char *path, size_t *len);
/* The text after `// example-args[name]:` (or `// example-args:` when only_one). */
int find_args_line(const char *text, const char *name, int only_one, char *out, size_t n);
/* Set the sizes `B=..,Lq=..` of s names (s is cut up); the others keep their values; 0 when malformed. */
int parse_shape_into(char *s, attnc_sizes *sz);
/* Parse `--shape ... --param N=V --int-range T=LO,HI`; 0 on a malformed line. */
int parse_args(char *line, ExampleArgs *ea);
/* n uniform floats in [-1, 1); free with free(). */
float *random_floats(size_t n);
/* The kernel's params from ea (into params) and random tensors of the right
 * shapes (into tensors, data malloc'd); returns the tensor count, or -1 with
 * *why set. */
int make_params(attnc_kernel *k, const ExampleArgs *ea, attnc_param *params, const char **why);
int make_tensors(attnc_kernel *k, const ExampleArgs *ea, const attnc_param *params, int np, attnc_tensor *tensors,
                 const char **why);
/* Tensor i of k for these sizes and params: name, dtype, rank and shape from
 * the kernel, data malloc'd — floats uniform in [-1, 1), ints in [lo, hi)
 * where range_name[r] names the tensor, else [0, 4).  0, or -1 with why. */
int make_tensor(const attnc_kernel *k, int i, const attnc_sizes *sz, const attnc_param *params, int np,
                const char (*range_name)[64], const int *range_lo, const int *range_hi, int nranges, attnc_tensor *t,
                char *why, size_t n);
/* A compiled variant and a call of an example's sizes, params and random
 * tensors whose Q, K, V and O are never read (tile maps, bands, plans). */
typedef struct ExampleCall {
    attnc_kernel *k;
    attnc_param params[MAX_ITEMS];
    attnc_tensor tensors[MAX_ITEMS];
    int np, nt;
    attnc_args args;
} ExampleCall;
/* Compile variant with opts and make ea's call into c: 0, or -1 with why
 * (what failed: "compile: ..." or the params/tensors' message); close c either way. */
int example_call_open(ExampleCall *c, const attnc_spec *spec, const char *variant, const attnc_options *opts,
                      const ExampleArgs *ea, char *why, size_t n);
void example_call_close(ExampleCall *c);
/* Parse text as a spec and call fn(spec, variant, ea) for each variant, ea
 * its `// example-args` line or NULL when it has no usable one.  0, or -1
 * with the parse error in why. */
int for_each_example(const char *file, const char *text, size_t len,
                     void (*fn)(const attnc_spec *, const char *, ExampleArgs *), char *why, size_t n);
/* |got - want| <= tol * (1 + |want|); NaN matches NaN, infinities match exactly. */
int close_enough(float got, float want, double tol);
/* O (no floats) and LSE (rows floats) against the interpreter's: NULL when all are
 * close, else buf describing the first difference.  *worst: the largest
 * relative error over finite reference values. */
const char *compare_outputs(const float *o, const float *lse, const float *ref_o, const float *ref_lse, size_t no,
                            size_t rows, double tol, double *worst, char *buf, size_t n);

#endif
