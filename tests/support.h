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

#endif
