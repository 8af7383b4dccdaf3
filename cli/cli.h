/* cli.h — what the command's files share: options, exit statuses, helpers.
 * The library returns statuses and text; only cli/ prints and exits. */
#ifndef ATTNC_CLI_H
#define ATTNC_CLI_H
#include "attnc.h"
#include "npy.h"

enum { EXIT_SPEC = 1, EXIT_USAGE = 2, EXIT_RUNTIME = 3, EXIT_DIFF = 4 };
enum { MAX_REPEATED = 64 };

typedef struct Options {
    const char *cmd, *file, *variant;
    const char *q, *k, *v, *o, *lse, *backend, *threads, *target, *shape, *tile;
    const char *seed, *backends, *reps;
    int dump_passes, separable_bias;
    const char *params[MAX_REPEATED], *tensors[MAX_REPEATED], *defines[MAX_REPEATED];
    const char *int_ranges[MAX_REPEATED];
    int nparams, ntensors, ndefines, nint_ranges;
} Options;

/* Inputs read from files or made up for a call. */
typedef struct RunInputs {
    npy_array q, k, v, tens[MAX_REPEATED];
    attnc_param params[MAX_REPEATED];
    attnc_tensor tensors[MAX_REPEATED];
    char names[MAX_REPEATED][128];
} RunInputs;

/* Print "attnc: " and the message (fmt takes up to two strings); return code. */
int fail(int code, const char *fmt, const char *a, const char *b);
/* The exit status for a library status. */
int status_exit(attnc_status st);
/* Load and check o->file; prints diagnostics; 0 or an exit status. */
int load_spec(const Options *o, attnc_spec **spec);
/* Copy NAME of "NAME=VALUE" into name and return VALUE (NULL if malformed). */
const char *split_assignment(const char *s, char *name, size_t n);
int parse_threads(const char *s, int *out);
/* "B=1,H=8,Lq=4096,...": missing sizes default (Hkv = H, Lk = Lq, Dv = D). */
int parse_shape(const char *text, attnc_sizes *sz);
/* "BQxBK" into opts->tile_q/tile_k. */
int parse_tile(const char *text, attnc_options *opts);
/* --param and --tensor of o into in (tensors read from .npy files). */
int bind_cli_params(const Options *o, const attnc_kernel *kern, RunInputs *in);
void free_inputs(RunInputs *in);

int cmd_diff(const Options *o);
int cmd_bench(const Options *o);

#endif
