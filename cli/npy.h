/* npy.h — read and write NumPy .npy files holding '<f4' or '<i4' arrays.
 *
 * Messages are one line, "SOURCE: problem", with no trailing newline.
 */
#ifndef ATTNC_NPY_H
#define ATTNC_NPY_H

#include <stddef.h>
#include <stdint.h>

#include "attnc.h" /* attnc_dtype (ATTNC_I32, ATTNC_F32) and ATTNC_MAX_RANK */
#include "outfile.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The most data a .npy file may hold (16 GiB): the reader refuses more, and
 * the command line bounds the inputs it makes up (attnc diff/bench --shape) by
 * the same figure. */
#define NPY_MAX_DATA_BYTES ((uint64_t)16 << 30)

typedef struct npy_array {
    attnc_dtype dtype;
    int f16;                       /* '<f2' (only npy_read_f16 reads it): dtype ATTNC_F32, 2-byte items */
    int rank;                      /* 0..ATTNC_MAX_RANK */
    int64_t shape[ATTNC_MAX_RANK]; /* entries past rank are 0 */
    size_t count;                  /* product of shape (1 for rank 0) */
    void *data;                    /* malloc'd, count * 4 (f16: 2) bytes, native order; NULL when count == 0 */
} npy_array;

/* Read a .npy file; on failure returns nonzero, zeroes *out and writes one line (no trailing newline) naming the problem and the file into msg. */
int npy_read(const char *path, npy_array *out, char *msg, size_t msgsize);

/* Same as npy_read, and '<f2' (IEEE binary16) files too: then out->f16 is 1
 * and data holds count 16-bit words (`attnc run --dtype` reads Q, K, V so). */
int npy_read_f16(const char *path, npy_array *out, char *msg, size_t msgsize);

/* Same as npy_read, from `len` bytes in memory; `what` names the source in messages (NULL: "<memory>"). */
int npy_read_mem(const void *bytes, size_t len, const char *what, npy_array *out, char *msg, size_t msgsize);

/* Write a version 1.0 .npy file ('<f4' or '<i4', C order) to what path names, as outfile.h describes: a
 * regular file (or a link's target) via a temp file in the same directory and a rename, so a failure leaves no
 * partial file; a device or FIFO directly; anything else refused.  Nonzero + msg on failure. */
int npy_write(const char *path, attnc_dtype dtype, int rank, const int64_t *shape, const void *data,
              char *msg, size_t msgsize);

/* The same file's bytes appended to f (several files written as a group: outfile_commit). */
int npy_write_to(outfile *f, attnc_dtype dtype, int rank, const int64_t *shape, const void *data, char *msg,
                 size_t msgsize);

/* Free the data and zero the struct; safe on a zeroed struct and on NULL. */
void npy_free(npy_array *a);

#ifdef __cplusplus
}
#endif
#endif
