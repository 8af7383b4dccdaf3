/* fuzz_cli.c — libFuzzer target for the command-line parser (cli/options.c).
 * The bytes become an argv: the first byte picks the command (one of the
 * five with a FILE, or the first argument taken from the bytes: `merge`
 * and unknown commands), the rest split at NUL
 * bytes into arguments, each in a buffer of exactly its size so a read past
 * an argument's end is a sanitizer report.  Failures: crashes, leaks,
 * sanitizer reports, and answers that break the parser's contract — a status
 * other than 0 or 2, a message that is empty or not one printable line, or
 * an accepted command line whose values are out of their documented range. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npy.h" /* NPY_MAX_DATA_BYTES, the bound the parser enforces */
#include "options.h"

enum { MAX_ARGS = 128 };

static void die(const char *what, const char *msg) {
    fprintf(stderr, "fuzz_cli: %s: '%s'\n", what, msg);
    abort();
}

static void check_message(const char *msg) {
    if (!msg[0]) die("an error with no message", msg);
    for (const char *p = msg; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) die("a message that is not one printable line", msg);
    if (!strncmp(msg, "internal error", 14)) die("an internal error", msg); /* arguments quoted later may say anything */
}

/* Elements of a [a, b, c, d] tensor, or UINT64_MAX past 2^64 (computed apart from the parser). */
static uint64_t elements(int64_t a, int64_t b, int64_t c, int64_t d) {
    const int64_t dims[4] = {a, b, c, d};
    unsigned __int128 n = 1;
    for (int i = 0; i < 4; i++) {
        n *= (unsigned __int128)dims[i];
        if (n > UINT64_MAX) n = (unsigned __int128)UINT64_MAX + 1;
    }
    return n > UINT64_MAX ? UINT64_MAX : (uint64_t)n;
}

static void check_accepted(const Options *o) {
    if (!o->cmd || !cli_known_command(o->cmd)) die("accepted without a command", "");
    int merge = !strcmp(o->cmd, "merge"); /* the one command without a FILE */
    if (merge ? o->file != NULL : !o->file) die(merge ? "merge accepted with a FILE" : "accepted without a FILE", "");
    if (merge && (!o->o1 || !o->o2 || !o->o || (!o->weight && (!o->lse1 || !o->lse2)) || !o->lse1 != !o->lse2 ||
                  (o->lse && !o->lse1)))
        die("merge accepted without the files it needs", "");
    if (o->nparams > MAX_REPEATED || o->ntensors > MAX_REPEATED || o->ndefines > MAX_REPEATED ||
        o->nint_ranges > MAX_REPEATED)
        die("too many repeated options accepted", "");
    if (o->nthreads < 0 || o->nthreads > 4096) die("thread count out of range", o->threads);
    if (o->tile && (o->tile_q < 1 || o->tile_q > 4096 || o->tile_k < 1 || o->tile_k > 4096))
        die("tile out of range", o->tile);
    if (o->reps && o->nreps < 1) die("reps out of range", o->reps);
    if (o->paged && (o->page_rows < 1 || o->page_rows > 65536)) die("--paged out of range", o->paged);
    if (!o->q_start != !o->k_start) die("--q-start accepted without --k-start (or the reverse)", "");
    static const char *const elems[] = {"f32", "f16", "bf16"}; /* --dtype, in attnc_elem order */
    if ((int)o->elem < 0 || (int)o->elem > 2 || (o->dtype ? strcmp(o->dtype, elems[o->elem]) : o->elem != 0))
        die("--dtype accepted as another element type", o->dtype ? o->dtype : "");
    if (o->blhd != (o->layout && !strcmp(o->layout, "blhd")) || (o->layout && !o->blhd && strcmp(o->layout, "bhld")))
        die("--layout accepted as another layout", o->layout ? o->layout : "");
    if (o->shape) {
        const attnc_sizes *s = &o->sizes;
        if (s->B < 0 || s->H < 0 || s->Hkv < 0 || s->Lq < 0 || s->Lk < 0 || s->D < 0 || s->Dv < 0)
            die("a negative size accepted", o->shape);
        const uint64_t bound = NPY_MAX_DATA_BYTES / 4;
        if (elements(s->B, s->H, s->Lq, s->D) > bound || elements(s->B, s->Hkv, s->Lk, s->D) > bound ||
            elements(s->B, s->Hkv, s->Lk, s->Dv) > bound || elements(s->B, s->H, s->Lq, s->Dv) > bound)
            die("a shape past the .npy bound accepted", o->shape);
    }
    for (int i = 0; i < o->nint_ranges; i++) {
        char name[128], msg[300];
        int64_t lo, hi;
        if (cli_parse_int_range(o->int_ranges[i], name, sizeof name, &lo, &hi, msg, sizeof msg) || lo >= hi)
            die("an accepted --int-range that does not parse", o->int_ranges[i]);
    }
    for (int i = 0; i < o->nparams; i++) {
        char name[128];
        const char *v = split_assignment(o->params[i], name, sizeof name);
        if (v && (strlen(name) >= sizeof name || v[-1] != '=')) die("split_assignment", o->params[i]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *const commands[] = {"check", "run", "emit", "diff", "bench"};
    if (size == 0) return 0;
    char *argv[MAX_ARGS + 1];
    int argc = 0;
    argv[argc++] = strdup("attnc");
    if (data[0] % 6 < 5) argv[argc++] = strdup(commands[data[0] % 6]);
    size_t start = 1;
    for (size_t i = 1; i <= size && argc < MAX_ARGS; i++) {
        if (i < size && data[i] != 0) continue;
        char *arg = malloc(i - start + 1);
        memcpy(arg, data + start, i - start);
        arg[i - start] = 0;
        argv[argc++] = arg;
        start = i + 1;
    }
    argv[argc] = NULL;
    Options o;
    char msg[600];
    int rc = cli_parse_args(argc, argv, &o, msg, sizeof msg);
    if (rc != 0 && rc != EXIT_USAGE) die("a status other than 0 or 2", msg);
    if (rc) check_message(msg);
    else check_accepted(&o);
    for (int i = 0; i < argc; i++) free(argv[i]);
    return 0;
}
