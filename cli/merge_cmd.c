/* merge_cmd.c — `attnc merge --o1 O1.npy --lse1 LSE1.npy --o2 O2.npy
 * --lse2 LSE2.npy -o O.npy [--lse LSE.npy] [--weight]`: two partial results
 * over disjoint keys into the result over all of them (attnc_merge).  O files
 * have any shape whose last dimension is Dv ([B, H, Lq, Dv] from `run`), LSE
 * files that shape without its last dimension; every shape is checked before
 * anything is opened for writing, and the outputs are written as a group. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inputs.h"
#include "merge_cmd.h"
#include "npy.h"
#include "outfile.h"

enum { O1, LSE1, O2, LSE2, NIN };

typedef struct MergeInputs {
    npy_array a[NIN];
    const char *path[NIN];
} MergeInputs;

static const char *const in_names[NIN] = {"O1", "LSE1", "O2", "LSE2"};

/* "[2, 4, 9]" */
static void shape_text(const int64_t *shape, int rank, char *buf, size_t n) {
    size_t len = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < rank && len < n; i++)
        len += (size_t)snprintf(buf + len, n - len, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (len < n) snprintf(buf + len, n - len, "]");
}

static int read_input(MergeInputs *in, int i) {
    char msg[600];
    if (npy_read(in->path[i], &in->a[i], msg, sizeof msg)) return fail(EXIT_RUNTIME, "%s: %s", in_names[i], msg);
    if (in->a[i].dtype != ATTNC_F32) {
        snprintf(msg, sizeof msg, "%s (%s) must be float32 ('<f4')", in_names[i], in->path[i]);
        return fail(EXIT_RUNTIME, "%s", msg, NULL);
    }
    return 0;
}

/* Input i has `rank` dimensions equal to ref's first `rank`. */
static int check_shape(const MergeInputs *in, int i, int ref, int rank) {
    const npy_array *a = &in->a[i], *r = &in->a[ref];
    if (a->rank == rank && !memcmp(a->shape, r->shape, sizeof(int64_t) * (size_t)rank)) return 0;
    char got[200], want[200], msg[700];
    shape_text(a->shape, a->rank, got, sizeof got);
    shape_text(r->shape, rank, want, sizeof want);
    snprintf(msg, sizeof msg, "%s (%s) shape %s does not match %s%s %s", in_names[i], in->path[i], got,
             in_names[ref], rank < r->rank ? " without its last dimension," : "", want);
    return fail(EXIT_RUNTIME, "%s", msg, NULL);
}

static int read_inputs(const Options *o, MergeInputs *in) {
    const char *paths[NIN] = {o->o1, o->lse1, o->o2, o->lse2};
    memcpy(in->path, paths, sizeof paths);
    int has_lse = o->lse1 != NULL; /* options.c: both or neither */
    for (int i = 0; i < NIN; i++)
        if ((has_lse || (i != LSE1 && i != LSE2)) && read_input(in, i)) return EXIT_RUNTIME;
    if (in->a[O1].rank < 1) {
        char msg[700];
        snprintf(msg, sizeof msg, "O1 (%s) must have at least one dimension (its last is Dv)", o->o1);
        return fail(EXIT_RUNTIME, "%s", msg, NULL);
    }
    int rank = in->a[O1].rank;
    if (check_shape(in, O2, O1, rank)) return EXIT_RUNTIME;
    if (has_lse && (check_shape(in, LSE1, O1, rank - 1) || check_shape(in, LSE2, O1, rank - 1))) return EXIT_RUNTIME;
    return 0;
}

/* An array's data, or a valid pointer for an empty one (attnc_merge takes no NULL). */
static const float *data_of(const npy_array *a) {
    static const float none = 0;
    return a->data ? a->data : &none;
}

static int merge_and_write(const Options *o, const MergeInputs *in, outfile **files, int nfiles) {
    const npy_array *o1 = &in->a[O1];
    int64_t dv = o1->shape[o1->rank - 1], rows = dv ? (int64_t)o1->count / dv : 1;
    for (int i = 0; !dv && i < o1->rank - 1; i++) rows *= o1->shape[i];
    int has_lse = o->lse1 != NULL;
    float *out = malloc(sizeof(float) * (o1->count + 1)), *lse = malloc(sizeof(float) * ((size_t)rows + 1));
    int rc = out && lse ? 0 : fail(EXIT_RUNTIME, "out of memory for the output", NULL, NULL);
    attnc_error err = {0};
    attnc_merge_kind kind = o->weight ? ATTNC_MERGE_WEIGHT : ATTNC_MERGE_SOFTMAX;
    if (!rc && attnc_merge(kind, rows, dv, data_of(o1), has_lse ? data_of(&in->a[LSE1]) : NULL, data_of(&in->a[O2]),
                           has_lse ? data_of(&in->a[LSE2]) : NULL, out, has_lse ? lse : NULL, &err))
        rc = fail(status_exit(err.status), "%s", err.message, NULL);
    char msg[600];
    if (!rc && (npy_write_to(files[0], ATTNC_F32, o1->rank, o1->shape, out, msg, sizeof msg) ||
                (nfiles > 1 && npy_write_to(files[1], ATTNC_F32, o1->rank - 1, o1->shape, lse, msg, sizeof msg)) ||
                outfile_commit(files, nfiles, msg, sizeof msg)))
        rc = fail(EXIT_RUNTIME, "%s", msg, NULL);
    if (!rc) {
        shape_text(o1->shape, o1->rank, msg, sizeof msg);
        printf("merge (%s): O %s -> %s%s%s\n", o->weight ? "weight" : "softmax", msg, o->o, o->lse ? ", LSE -> " : "",
               o->lse ? o->lse : "");
    }
    free(out);
    free(lse);
    return rc;
}

int cmd_merge(const Options *o) {
    MergeInputs in;
    memset(&in, 0, sizeof in);
    const char *paths[2] = {o->o, o->lse};
    outfile *files[2] = {NULL, NULL};
    int nfiles = o->lse ? 2 : 1;
    int rc = read_inputs(o, &in);
    char msg[600];
    for (int i = 0; !rc && i < nfiles; i++)
        if (outfile_open(paths[i], &files[i], msg, sizeof msg)) rc = fail(EXIT_RUNTIME, "%s", msg, NULL);
    if (!rc) rc = merge_and_write(o, &in, files, nfiles);
    for (int i = 0; i < nfiles; i++) outfile_discard(files[i]);
    for (int i = 0; i < NIN; i++) npy_free(&in.a[i]);
    return rc;
}
