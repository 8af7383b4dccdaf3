/* fuzz_npy.c — libFuzzer target for the .npy reader and writer
 * (cli/npy.c).  Any bytes are read twice, from memory (npy_read_mem) and
 * from a regular file (npy_read, which reads piece by piece after checking
 * lengths against the file size): both must give the same answer, ok with
 * the same array or a clean one-line error.  An array that reads is written
 * back (npy_write) and must read back identical.  Failures: crashes, leaks,
 * sanitizer reports, and the two readers or the round trip disagreeing. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "npy.h"

static char in_path[64], out_path[64];

static void remove_files(void) {
    unlink(in_path);
    unlink(out_path);
}

/* One scratch directory for the whole run, so each input costs two file
 * writes; in memory (/dev/shm) where there is one, since disk syncs would
 * make the run I/O-bound. */
static void make_paths(void) {
    char dir[] = "/dev/shm/fuzz_npy.XXXXXX", fallback[] = "/tmp/fuzz_npy.XXXXXX";
    const char *made = mkdtemp(dir);
    if (!made) made = mkdtemp(fallback);
    if (!made) abort();
    snprintf(in_path, sizeof in_path, "%s/in.npy", made);
    snprintf(out_path, sizeof out_path, "%s/out.npy", made);
    atexit(remove_files);
}

static void write_file(const char *path, const uint8_t *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0) abort();
}

static int same_array(const npy_array *a, const npy_array *b) {
    return a->dtype == b->dtype && a->rank == b->rank && a->count == b->count &&
           !memcmp(a->shape, b->shape, sizeof a->shape) && (a->count == 0 || !memcmp(a->data, b->data, a->count * 4));
}

/* A message is one line, never empty, and names its source. */
static void check_message(const char *msg, const char *source) {
    if (!msg[0] || strchr(msg, '\n') || strncmp(msg, source, strlen(source)) != 0) {
        fprintf(stderr, "bad message: '%s'\n", msg);
        abort();
    }
}

static void round_trip(const npy_array *a) {
    char msg[512];
    npy_array back;
    if (npy_write(out_path, a->dtype, a->rank, a->shape, a->data, msg, sizeof msg)) {
        fprintf(stderr, "cannot write back an array that read: %s\n", msg);
        abort();
    }
    if (npy_read(out_path, &back, msg, sizeof msg) || !same_array(a, &back)) {
        fprintf(stderr, "the round trip changed the array: %s\n", msg);
        abort();
    }
    npy_free(&back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!in_path[0]) make_paths();
    char mem_msg[512], file_msg[512];
    npy_array from_mem, from_file;
    int mem_rc = npy_read_mem(data, size, "mem", &from_mem, mem_msg, sizeof mem_msg);
    write_file(in_path, data, size);
    int file_rc = npy_read(in_path, &from_file, file_msg, sizeof file_msg);
    if (!mem_rc != !file_rc || (!mem_rc && !same_array(&from_mem, &from_file))) {
        fprintf(stderr, "memory and file readers disagree: '%s' vs '%s'\n", mem_rc ? mem_msg : "ok",
                file_rc ? file_msg : "ok");
        abort();
    }
    if (mem_rc) {
        check_message(mem_msg, "mem: ");
        check_message(file_msg, in_path);
    } else {
        round_trip(&from_mem);
    }
    npy_free(&from_mem);
    npy_free(&from_file);
    return 0;
}
