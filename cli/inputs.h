/* inputs.h — what `run`, `diff` and `bench` share (inputs.c). */
#ifndef ATTNC_INPUTS_H
#define ATTNC_INPUTS_H
#include "attnc.h"
#include "npy.h"
#include "outfile.h"
#include "options.h"

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

/* ---- Q, K, V files and output files ---- */

/* Read Q, K or V (`what`) from path: a rank-4 '<f4' or '<f2' array, stored as o->elem. */
int load_qkv(const Options *o, const char *path, const char *what, npy_array *a);
/* Q, K and V's shapes agree (batch, head dims, K against V). */
int check_qkv_shapes(const npy_array *q, const npy_array *k, const npy_array *v);
/* The sizes of the call from Q, K, V's shapes in their layout. */
attnc_sizes sizes_of(const RunInputs *in, int blhd);
/* Open every output (each destination checked) before anything is written;
 * outfile_commit writes them together, discard_outputs drops the rest. */
int open_outputs(const char *const *paths, int n, outfile **files);
void discard_outputs(outfile **files, int n);

/* ---- element types and layouts (--dtype, --layout) ---- */

/* Bytes of one element of Q, K, V or O. */
int elem_bytes(attnc_elem e);
/* n elements of type `from` (f32 or f16) as type `to`: widened exactly,
 * narrowed to nearest even; malloc'd (NULL: out of memory). */
void *convert_elems(const void *src, attnc_elem from, attnc_elem to, size_t n);
/* The layouts of a call whose Q, K, V and O are stored contiguously as
 * elem, [B, H, L, D] or (blhd) [B, L, H, D]; LSE contiguous [B, H, Lq]. */
void storage_layouts(const attnc_sizes *sz, attnc_elem elem, int blhd, attnc_layouts *out);

/* --param and --tensor of o into in (tensors read from .npy files). */
int bind_cli_params(const Options *o, const attnc_kernel *kern, RunInputs *in);
void free_inputs(RunInputs *in);

#endif
