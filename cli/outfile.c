/* outfile.c — output files written whole or not at all (see outfile.h).
 *
 * Requires POSIX files.  The check of what a path names and the final rename
 * are separate steps: a path changed by someone else in between is written
 * as it was found (the usual limit of temp-file-and-rename writers).
 */
#define _POSIX_C_SOURCE 200809L
#define _XOPEN_SOURCE 700 /* realpath */
#define _FILE_OFFSET_BITS 64

#include "outfile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { MAX_LINK_HOPS = 40 };

struct outfile {
    char *path;  /* as given, for messages */
    char *final; /* where a temporary file is renamed to; NULL when writing through */
    char *temp;  /* the temporary file; NULL when writing through */
    int fd;      /* -1 once closed */
    int committed;
};

#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
static int outfile_fail(char *msg, size_t size, const char *path, const char *fmt, ...)
{
    if (!msg || size == 0)
        return 1;
    int n = snprintf(msg, size, "%s: ", path ? path : "<no path>");
    if (n >= 0 && (size_t)n < size) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg + n, size - (size_t)n, fmt, ap);
        va_end(ap);
    }
    for (char *p = msg; *p; p++) /* one line even when the path has control characters */
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    return 1;
}

/* The target of symbolic link `link`, malloc'd; NULL with errno set. */
static char *read_link(const char *link)
{
    for (size_t size = 256; size <= ((size_t)1 << 20); size *= 2) {
        char *buf = malloc(size);
        if (!buf)
            return NULL;
        ssize_t n = readlink(link, buf, size);
        if (n >= 0 && (size_t)n < size) {
            buf[n] = 0;
            return buf;
        }
        free(buf);
        if (n < 0)
            return NULL;
    }
    errno = ENAMETOOLONG;
    return NULL;
}

/* `path` with the links of its last component followed, for a path that
 * names nothing yet: a dangling link names the file to create.  malloc'd;
 * NULL with errno set. */
static char *follow_dangling_links(const char *path)
{
    char *cur = strdup(path);
    for (int hops = 0; cur && hops < MAX_LINK_HOPS; hops++) {
        struct stat st;
        if (lstat(cur, &st) != 0 || !S_ISLNK(st.st_mode))
            return cur;
        char *target = read_link(cur);
        if (!target || target[0] == '/') {
            free(cur);
            cur = target;
            continue;
        }
        /* a relative target is relative to the link's directory */
        const char *slash = strrchr(cur, '/');
        size_t dir_len = slash ? (size_t)(slash - cur) + 1 : 0, target_len = strlen(target);
        char *next = malloc(dir_len + target_len + 1);
        if (next) {
            memcpy(next, cur, dir_len);
            memcpy(next + dir_len, target, target_len + 1);
        }
        free(cur);
        free(target);
        cur = next;
    }
    if (cur) {
        free(cur);
        errno = ELOOP;
    }
    return NULL;
}

static atomic_uint temp_name_counter;

/* Creates FINAL.tmp.PID.N exclusively (so concurrent writers never share
 * one), with the mode of the file it replaces (`old`, or NULL for none). */
static int create_temp_beside(outfile *f, const struct stat *old, char *msg, size_t size)
{
    size_t n = strlen(f->final) + 64;
    f->temp = malloc(n);
    if (!f->temp)
        return outfile_fail(msg, size, f->path, "out of memory");
    for (int attempt = 0; attempt < 100; attempt++) {
        snprintf(f->temp, n, "%s.tmp.%ld.%u", f->final, (long)getpid(), atomic_fetch_add(&temp_name_counter, 1u));
        /* 0666 rather than mkstemp's 0600 so a new file gets the usual umask-based mode */
        f->fd = open(f->temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (f->fd >= 0) {
            if (old)
                (void)fchmod(f->fd, old->st_mode & 07777); /* best effort: the old mode, whatever the umask */
            return 0;
        }
        if (errno != EEXIST)
            break;
    }
    int e = errno;
    free(f->temp);
    f->temp = NULL;
    return outfile_fail(msg, size, f->path, "cannot create a temporary file next to it: %s", strerror(e));
}

/* Get f ready for what f->path names (see outfile.h). */
static int prepare(outfile *f, char *msg, size_t size)
{
    struct stat st, lst;
    if (stat(f->path, &st) == 0) {
        if (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode)) {
            f->fd = open(f->path, O_WRONLY | O_NOCTTY | O_CLOEXEC);
            return f->fd < 0 ? outfile_fail(msg, size, f->path, "cannot open: %s", strerror(errno)) : 0;
        }
        if (S_ISDIR(st.st_mode))
            return outfile_fail(msg, size, f->path, "is a directory");
        if (!S_ISREG(st.st_mode))
            return outfile_fail(msg, size, f->path, "is not a regular file, a character device or a FIFO: not writing it");
        int is_link = lstat(f->path, &lst) == 0 && S_ISLNK(lst.st_mode);
        f->final = is_link ? realpath(f->path, NULL) : strdup(f->path);
        if (!f->final)
            return outfile_fail(msg, size, f->path, "cannot resolve: %s", strerror(errno));
        return create_temp_beside(f, &st, msg, size);
    }
    if (errno != ENOENT)
        return outfile_fail(msg, size, f->path, "cannot write: %s", strerror(errno));
    f->final = follow_dangling_links(f->path);
    if (!f->final)
        return outfile_fail(msg, size, f->path, "cannot resolve: %s", strerror(errno));
    return create_temp_beside(f, NULL, msg, size);
}

int outfile_open(const char *path, outfile **out, char *msg, size_t msgsize)
{
    if (msg && msgsize)
        msg[0] = 0;
    if (!out)
        return outfile_fail(msg, msgsize, path, "no output handle given");
    *out = NULL;
    if (!path || !path[0])
        return outfile_fail(msg, msgsize, path ? "''" : NULL, "no path given");
    outfile *f = calloc(1, sizeof *f);
    if (f)
        f->path = strdup(path);
    if (!f || !f->path) {
        free(f);
        return outfile_fail(msg, msgsize, path, "out of memory");
    }
    f->fd = -1;
    if (prepare(f, msg, msgsize)) {
        outfile_discard(f);
        return 1;
    }
    *out = f;
    return 0;
}

int outfile_write(outfile *f, const void *bytes, size_t n, char *msg, size_t msgsize)
{
    if (!f || f->fd < 0)
        return outfile_fail(msg, msgsize, f ? f->path : NULL, "not open for writing");
    const char *p = bytes;
    while (n > 0) {
        ssize_t done = write(f->fd, p, n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n);
        if (done < 0 && errno == EINTR)
            continue;
        if (done <= 0)
            return outfile_fail(msg, msgsize, f->path, "cannot write: %s", done < 0 ? strerror(errno) : "nothing written");
        p += done;
        n -= (size_t)done;
    }
    return 0;
}

const char *outfile_path(const outfile *f)
{
    return f ? f->path : NULL;
}

static int close_file(outfile *f, char *msg, size_t msgsize)
{
    int rc = close(f->fd);
    f->fd = -1;
    return rc != 0 ? outfile_fail(msg, msgsize, f->path, "cannot write: %s", strerror(errno)) : 0;
}

int outfile_commit(outfile *const *files, int n, char *msg, size_t msgsize)
{
    for (int i = 0; i < n; i++)
        if (!files[i] || files[i]->fd < 0 || files[i]->committed)
            return outfile_fail(msg, msgsize, files[i] ? files[i]->path : NULL, "not open for writing");
    int bad = 0;
    for (int i = 0; i < n; i++)
        bad |= close_file(files[i], bad ? NULL : msg, msgsize);
    int renamed = 0;
    for (; !bad && renamed < n; renamed++) {
        outfile *f = files[renamed];
        if (f->temp && rename(f->temp, f->final) != 0)
            bad = outfile_fail(msg, msgsize, f->path, "cannot rename the finished temporary file onto it: %s",
                       strerror(errno));
        else
            f->committed = 1;
    }
    if (bad) /* take back what this call put in place: the group is whole or absent */
        for (int i = 0; i < n; i++)
            if (files[i]->committed && files[i]->temp) {
                unlink(files[i]->final);
                files[i]->committed = 0;
                free(files[i]->temp);
                files[i]->temp = NULL;
            }
    return bad;
}

void outfile_discard(outfile *f)
{
    if (!f)
        return;
    if (f->fd >= 0)
        close(f->fd);
    if (f->temp && !f->committed)
        unlink(f->temp);
    free(f->temp);
    free(f->final);
    free(f->path);
    free(f);
}
