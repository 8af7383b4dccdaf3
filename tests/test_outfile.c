/* test_outfile — unit tests for cli/outfile.c and npy_write on what a
 * path names: a new file, a symlink (dangling or not), a directory, a
 * character device (a private mknod copy of /dev/null and /dev/full when
 * running as root, so a regression cannot replace the system's; the system's
 * otherwise, which a non-root process cannot replace), and a group of files
 * committed whole or not at all. */
#define _POSIX_C_SOURCE 200809L
#define _XOPEN_SOURCE 700 /* mknod */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "npy.h"
#include "outfile.h"

static int failures;
static char dir[256];

static void check(int ok, const char *name, const char *detail) {
    printf("%s - %s%s%s\n", ok ? "ok" : "FAIL", name, ok ? "" : ": ", ok ? "" : detail);
    failures += !ok;
}

static const char *in_dir(const char *name) {
    static char paths[4][512];
    static int next;
    char *p = paths[next++ % 4];
    snprintf(p, sizeof paths[0], "%s/%s", dir, name);
    return p;
}

static long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static int is_link(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0 && S_ISLNK(st.st_mode);
}

static const int64_t shape[1] = {4};
static const float values[4] = {1, 2, 3, 4};
enum { FILE_SIZE = 128 + 16 };

static int write_npy(const char *path, char *msg) {
    return npy_write(path, ATTNC_F32, 1, shape, values, msg, 512);
}

static void test_links(void) {
    char msg[512];
    symlink("target.npy", in_dir("dangling.npy"));
    int rc = write_npy(in_dir("dangling.npy"), msg);
    check(!rc && is_link(in_dir("dangling.npy")) && file_size(in_dir("target.npy")) == FILE_SIZE,
          "a dangling symlink stays a link and its target is created", rc ? msg : "link replaced or target missing");
    mkdir(in_dir("sub"), 0777);
    symlink("../target.npy", in_dir("sub/rel.npy"));
    unlink(in_dir("target.npy"));
    FILE *f = fopen(in_dir("target.npy"), "w");
    if (f) fclose(f);
    rc = write_npy(in_dir("sub/rel.npy"), msg);
    check(!rc && is_link(in_dir("sub/rel.npy")) && file_size(in_dir("target.npy")) == FILE_SIZE,
          "a relative symlink to an existing file stays a link and its target is replaced",
          rc ? msg : "link replaced or target not written");
    symlink("loop2.npy", in_dir("loop1.npy"));
    symlink("loop1.npy", in_dir("loop2.npy"));
    rc = write_npy(in_dir("loop1.npy"), msg);
    check(rc && strstr(msg, "Too many levels of symbolic links") && is_link(in_dir("loop1.npy")),
          "a symlink loop is refused", rc ? msg : "accepted");
    rc = write_npy(in_dir("sub"), msg);
    check(rc && strstr(msg, "is a directory"), "a directory is refused", rc ? msg : "accepted");
}

/* A private character device as root (mknod), the system's otherwise; NULL if neither is safe. */
static const char *device(const char *name, unsigned minor, const char *system_path) {
    if (geteuid() != 0) return system_path;
    const char *p = in_dir(name);
    return mknod(p, S_IFCHR | 0666, makedev(1, minor)) == 0 ? p : NULL;
}

static void test_devices(void) {
    char msg[512];
    const char *null = device("null", 3, "/dev/null"), *full = device("full", 7, "/dev/full");
    if (!null || !full) {
        printf("# no private device nodes (mknod refused): device tests skipped\n");
        return;
    }
    struct stat st;
    int rc = write_npy(null, msg);
    check(!rc && stat(null, &st) == 0 && S_ISCHR(st.st_mode), "writing to a null device works and keeps it",
          rc ? msg : "no longer a character device");
    rc = write_npy(full, msg);
    check(rc && strstr(msg, "No space left on device") && stat(full, &st) == 0 && S_ISCHR(st.st_mode),
          "writing to a full device fails and keeps it", rc ? msg : "accepted");
}

/* Two files committed as a group; the second's directory moves away before
 * the commit, so its rename fails: the first must not be left in place. */
static void test_group_rollback(void) {
    char msg[512];
    mkdir(in_dir("g1"), 0777);
    mkdir(in_dir("g2"), 0777);
    outfile *files[2] = {NULL, NULL};
    int rc = outfile_open(in_dir("g1/a.npy"), &files[0], msg, sizeof msg) ||
             outfile_open(in_dir("g2/b.npy"), &files[1], msg, sizeof msg) ||
             npy_write_to(files[0], ATTNC_F32, 1, shape, values, msg, sizeof msg) ||
             npy_write_to(files[1], ATTNC_F32, 1, shape, values, msg, sizeof msg);
    check(!rc, "a group of two files opens and writes", msg);
    char tmp_name[600];
    snprintf(tmp_name, sizeof tmp_name, "%s.moved", in_dir("g2"));
    rename(in_dir("g2"), tmp_name); /* the temp file moves with its directory */
    rc = outfile_commit(files, 2, msg, sizeof msg);
    outfile_discard(files[0]);
    outfile_discard(files[1]);
    check(rc && access(in_dir("g1/a.npy"), F_OK) != 0, "a failed rename in a group removes the files already renamed",
          rc ? "the first file is left in place" : "commit succeeded");
    rmdir(in_dir("g1"));
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_name);
    check(system(cmd) == 0, "cleanup", cmd);
}

int main(void) {
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/test_outfile.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        fprintf(stderr, "test_outfile: cannot make a temp dir %s: %s\n", dir, strerror(errno));
        return 1;
    }
    test_links();
    test_devices();
    test_group_rollback();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "test_outfile: cannot remove %s\n", dir);
    printf("%s: %d failure%s\n", failures ? "FAIL" : "ok", failures, failures == 1 ? "" : "s");
    return failures ? 1 : 0;
}
