/* outfile.h — write output files so that a failure leaves nothing partial and
 * nothing a path names is ever replaced by something else.
 *
 * What a path names decides how it is written:
 *   - nothing, or a regular file: a temporary file in the same directory,
 *     renamed over the path only when every file of the group is written
 *     (outfile_commit), so the old file stays whole until then;
 *   - a symbolic link: the same, on the file the link resolves to (the link
 *     stays a link, even a dangling one);
 *   - a character device or a FIFO (/dev/null, /dev/stdout, a pipe): written
 *     through directly, write and close errors reported (/dev/full fails);
 *   - anything else (a directory, a socket, a block device): refused.
 * Messages are one line, "PATH: problem", with no trailing newline.
 */
#ifndef ATTNC_OUTFILE_H
#define ATTNC_OUTFILE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct outfile outfile;

/* Check what PATH names and get it ready to write (create the temporary
 * file, or open the device); nonzero + msg on failure, *out = NULL. */
int outfile_open(const char *path, outfile **out, char *msg, size_t msgsize);

/* Append n bytes; nonzero + msg on a write error. */
int outfile_write(outfile *f, const void *bytes, size_t n, char *msg, size_t msgsize);

/* The path as given to outfile_open, for messages. */
const char *outfile_path(const outfile *f);

/* Finish a group of n files: close every one (reporting errors), then rename
 * every temporary file into place.  On any failure, the temporary files are
 * removed and so are files already renamed into place by this call, so the
 * group is written whole or not at all (bytes already written through to a
 * device cannot be taken back).  Nonzero + msg on failure. */
int outfile_commit(outfile *const *files, int n, char *msg, size_t msgsize);

/* Close and free; removes the temporary file unless committed.  NULL is fine. */
void outfile_discard(outfile *f);

#ifdef __cplusplus
}
#endif
#endif
