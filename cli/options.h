/* options.h — the command line parsed (options.c), and the exit statuses
 * every command of cli/ returns.  The library returns statuses and text;
 * only cli/ prints and exits. */
#ifndef ATTNC_OPTIONS_H
#define ATTNC_OPTIONS_H
#include <stddef.h>
#include <stdint.h>

#include "attnc.h"

enum { EXIT_SPEC = 1, EXIT_USAGE = 2, EXIT_RUNTIME = 3, EXIT_DIFF = 4 };
enum { MAX_REPEATED = 64 };

typedef struct Options {
    const char *cmd, *file, *variant;
    const char *q, *k, *v, *o, *lse, *backend, *threads, *target, *shape, *tile;
    const char *seed, *backends, *reps, *dtype, *layout;
    const char *o1, *lse1, *o2, *lse2; /* merge's inputs */
    const char *q_start, *k_start;     /* run over a ragged batch */
    const char *paged;                 /* bench: K and V as pages of this many rows */
    const char *page_layout;           /* bench --paged: nhd (default) or hnd */
    const char *head_dim;              /* emit --target cuda --dtype f16|bf16: "D" or "D,Dv" */
    const char *dout, *dlse, *dq, *dk, *dv; /* grad's inputs and outputs */
    const char *at, *size;             /* show: "B,H" drawn, and the picture's size in pixels */
    int dump_passes, separable_bias, weight, grad; /* grad: diff and bench of the backward pass */
    const char *params[MAX_REPEATED], *tensors[MAX_REPEATED], *defines[MAX_REPEATED];
    const char *int_ranges[MAX_REPEATED];
    const char *dtensors[MAX_REPEATED]; /* grad: NAME=FILE, the gradient of float tensor NAME */
    int nparams, ntensors, ndefines, nint_ranges, ndtensors;
    /* the values above that do not depend on the spec, checked and parsed */
    int nthreads, tile_q, tile_k, nreps; /* 0 where not given */
    int page_rows;                       /* --paged, 0 where not given */
    int page_hnd;                        /* --page-layout hnd: pages [pages, Hkv, ROWS, D] */
    int fa2_d, fa2_dv;                   /* emit --target cuda --dtype: the tensor-core kernel's head sizes */
    attnc_sizes sizes;                   /* when shape is given */
    uint64_t seed_value;                 /* 1 when seed is not given */
    attnc_elem elem;                     /* --dtype: Q, K, V and O stored as (default f32) */
    int blhd;                            /* --layout blhd: Q, K, V, O are [B, L, H, D] */
    int64_t at_b, at_h;                  /* show --at (default 0,0) */
    int pixels;                          /* show --size: the longer side's pixels per panel (default 512) */
} Options;

/* options.c: parsing that prints nothing, exits never and touches no file.
 * Each returns 0, or EXIT_USAGE with a one-line message in msg[n]. */
/* argv (argv[1] the command) into *o, every spec-independent value checked. */
int cli_parse_args(int argc, char **argv, Options *o, char *msg, size_t n);
int cli_known_command(const char *cmd);
int cli_parse_threads(const char *s, int *out, char *msg, size_t n);
/* "B=1,H=8,Lq=4096,...": missing sizes default (B = H = 1, Lq = 128, D = 64,
 * Hkv = H, Lk = Lq, Dv = D); sizes are non-negative and no Q, K, V or O may
 * hold more than a .npy file may (NPY_MAX_DATA_BYTES). */
int cli_parse_shape(const char *text, attnc_sizes *sz, char *msg, size_t n);
/* "BQxBK", each 1 to 4096. */
int cli_parse_tile(const char *text, int *tile_q, int *tile_k, char *msg, size_t n);
/* "NAME=LO,HI" with LO < HI within int32. */
int cli_parse_int_range(const char *text, char *name, size_t name_size, int64_t *lo, int64_t *hi, char *msg,
                        size_t n);
/* Copy NAME of "NAME=VALUE" into name and return VALUE (NULL if malformed). */
const char *split_assignment(const char *s, char *name, size_t n);

#endif
