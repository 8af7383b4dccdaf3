/* test_npy — unit tests for cli/npy.c.
 *
 *   test_npy                                  run every test; exit 1 on any failure
 *   test_npy --expect FILE f4|i4 SHAPE [LO HI]
 *                                             check that FILE reads with that dtype and
 *                                             shape ("" or "scalar": rank 0), and that
 *                                             every value is in [LO,HI)
 *
 * Hostile inputs are built in memory and handed to npy_read_mem in buffers of
 * exactly their length, so a sanitizer build catches any read past the end.
 */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "npy.h"

#define MSG_SIZE 512

/* ---- reporting ------------------------------------------------------------ */

static int failures;

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static void check(int ok, const char *name, const char *detail_fmt, ...)
{
    if (ok) {
        printf("ok - %s\n", name);
        return;
    }
    failures++;
    printf("FAIL - %s: ", name);
    va_list ap;
    va_start(ap, detail_fmt);
    vprintf(detail_fmt, ap);
    va_end(ap);
    printf("\n");
}

/* ---- building .npy bytes ---------------------------------------------------- */

typedef struct buffer {
    unsigned char *bytes;
    size_t len, cap;
} buffer;

static void append(buffer *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n)
            cap *= 2;
        unsigned char *grown = realloc(b->bytes, cap);
        if (!grown) {
            fprintf(stderr, "test_npy: out of memory\n");
            exit(1);
        }
        b->bytes = grown;
        b->cap = cap;
    }
    if (n)
        memcpy(b->bytes + b->len, p, n);
    b->len += n;
}

static void append_le(buffer *b, uint64_t v, int nbytes)
{
    for (int i = 0; i < nbytes; i++) {
        unsigned char byte = (unsigned char)(v >> (8 * i));
        append(b, &byte, 1);
    }
}

/* Data bytes follow a pattern so round trips can be checked byte for byte. */
static unsigned char data_byte(size_t i)
{
    return (unsigned char)(i * 37 + 11);
}

/* A .npy file of the given version whose header is exactly these bytes (no padding added). */
static buffer make_npy_n(int major, int minor, const char *header, size_t header_len, size_t data_len)
{
    buffer b = {0};
    append(&b, "\x93NUMPY", 6);
    unsigned char version[2] = {(unsigned char)major, (unsigned char)minor};
    append(&b, version, 2);
    append_le(&b, header_len, major == 1 ? 2 : 4);
    append(&b, header, header_len);
    for (size_t i = 0; i < data_len; i++) {
        unsigned char byte = data_byte(i);
        append(&b, &byte, 1);
    }
    return b;
}

static buffer make_npy(int major, int minor, const char *header, size_t data_len)
{
    return make_npy_n(major, minor, header, strlen(header), data_len);
}

static buffer make_raw(const void *bytes, size_t len)
{
    buffer b = {0};
    append(&b, bytes, len);
    return b;
}

/* Hands npy_read_mem a heap copy of exactly b->len bytes so over-reads are caught. */
static int read_exact_copy(const buffer *b, const char *what, npy_array *out, char *msg)
{
    unsigned char *copy = malloc(b->len ? b->len : 1);
    if (b->len)
        memcpy(copy, b->bytes, b->len);
    int rc = npy_read_mem(copy, b->len, what, out, msg, MSG_SIZE);
    free(copy);
    return rc;
}

static int is_zeroed(const npy_array *a)
{
    static const npy_array zero;
    return memcmp(a, &zero, sizeof zero) == 0;
}

/* A failure message must name the source, say something, and stay on one line. */
static const char *message_problem(const char *msg, const char *what)
{
    if (msg[0] == '\0')
        return "empty message";
    if (strchr(msg, '\n') || strchr(msg, '\r'))
        return "message has a line break";
    if (what && strstr(msg, what) != msg)
        return "message does not start with the source name";
    return NULL;
}

/* ---- accepting and rejecting -------------------------------------------------- */

static void expect_reject(const char *name, buffer b, const char *expected)
{
    char msg[MSG_SIZE];
    npy_array a;
    memset(&a, 0xab, sizeof a);
    int rc = read_exact_copy(&b, name, &a, msg);
    const char *problem = rc ? message_problem(msg, name) : NULL;
    if (rc == 0)
        check(0, name, "accepted, expected an error containing \"%s\"", expected);
    else if (problem)
        check(0, name, "%s: \"%s\"", problem, msg);
    else if (!strstr(msg, expected))
        check(0, name, "message \"%s\" lacks \"%s\"", msg, expected);
    else
        check(is_zeroed(&a), name, "output not zeroed after failure");
    npy_free(&a);
    free(b.bytes);
}

static void expect_header_reject(const char *name, const char *header, size_t data_len, const char *expected)
{
    expect_reject(name, make_npy(1, 0, header, data_len), expected);
}

static int shape_equals(const npy_array *a, int rank, const int64_t *shape)
{
    if (a->rank != rank)
        return 0;
    for (int i = 0; i < ATTNC_MAX_RANK; i++)
        if (a->shape[i] != (i < rank ? shape[i] : 0))
            return 0;
    return 1;
}

/* Checks the array read from a file made by make_npy with this dtype and shape. */
static void check_array(const char *name, int rc, const char *msg, const npy_array *a, attnc_dtype dtype, int rank,
                        const int64_t *shape, size_t count)
{
    if (rc) {
        check(0, name, "rejected: %s", msg);
        return;
    }
    if (a->dtype != dtype || !shape_equals(a, rank, shape) || a->count != count) {
        check(0, name, "wrong dtype, rank, shape or count (dtype %d rank %d count %zu)", (int)a->dtype, a->rank,
              a->count);
        return;
    }
    if ((count == 0) != (a->data == NULL)) {
        check(0, name, "data pointer should be NULL exactly when count is 0");
        return;
    }
    for (size_t i = 0; i < count * 4; i++)
        if (((const unsigned char *)a->data)[i] != data_byte(i)) {
            check(0, name, "data byte %zu differs", i);
            return;
        }
    check(1, name, "%s", "");
}

static void expect_accept(const char *name, buffer b, attnc_dtype dtype, int rank, const int64_t *shape,
                          size_t count)
{
    char msg[MSG_SIZE];
    npy_array a;
    int rc = read_exact_copy(&b, name, &a, msg);
    check_array(name, rc, msg, &a, dtype, rank, shape, count);
    npy_free(&a);
    free(b.bytes);
}

static void test_valid_headers(void)
{
    static const int64_t s23[] = {2, 3}, s4[] = {4}, s0x3[] = {0, 3}, huge_but_empty[] = {0, INT64_MAX, 7};
    expect_accept("v1.0 numpy-style header", make_npy(1, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }      \n", 24),
                  ATTNC_F32, 2, s23, 6);
    expect_accept("v2.0 header", make_npy(2, 0, "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }\n", 24),
                  ATTNC_I32, 2, s23, 6);
    expect_accept("keys in another order, double quotes",
                  make_npy(1, 0, "{\"shape\": (2, 3), \"fortran_order\": False, \"descr\": \"<f4\"}", 24), ATTNC_F32, 2,
                  s23, 6);
    expect_accept("mixed quotes, no trailing comma", make_npy(1, 0, "{'fortran_order':False,\"descr\":'<i4','shape':(4,)}", 16),
                  ATTNC_I32, 1, s4, 4);
    expect_accept("spaces, tabs and newlines everywhere",
                  make_npy(1, 0, " \t{ 'descr' : '<f4' ,\n\t'shape' : ( 2 , 3 , ) , 'fortran_order' : False , }\r\n  ", 24),
                  ATTNC_F32, 2, s23, 6);
    expect_accept("rank 0 shape ()", make_npy(1, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }", 4),
                  ATTNC_F32, 0, NULL, 1);
    expect_accept("zero-size shape (0, 3)", make_npy(1, 0, "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 3), }", 0),
                  ATTNC_F32, 2, s0x3, 0);
    expect_accept("zero dim beside huge dims", make_npy(1, 0, "{'descr': '<i4', 'fortran_order': False, 'shape': (0, 9223372036854775807, 7), }", 0),
                  ATTNC_I32, 3, huge_but_empty, 0);
}

static void test_hostile_preambles(void)
{
    const char *dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
    expect_reject("empty file", make_raw("", 0), "empty file");
    expect_reject("bad magic", make_raw("\x93NUMPZ\x01\x00\x00\x00", 10), "bad magic");
    expect_reject("zip file", make_raw("PK\x03\x04\x14\x00\x00\x00", 8), "bad magic");
    expect_reject("truncated magic", make_raw("\x93NUM", 4), "truncated .npy preamble: the file has only 4 bytes");
    expect_reject("preamble cut after magic", make_raw("\x93NUMPY\x01", 7), "truncated .npy preamble");
    expect_reject("v1.0 preamble cut in length", make_raw("\x93NUMPY\x01\x00\x10", 9), "truncated .npy preamble");
    expect_reject("v2.0 preamble cut in length", make_raw("\x93NUMPY\x02\x00\x10\x00\x00", 11), "truncated .npy preamble");
    expect_reject("version 3.0", make_npy(3, 0, dict, 8), "version 3.0");
    expect_reject("version 1.1", make_npy(1, 1, dict, 8), "version 1.1");
    expect_reject("version 0.0", make_npy(0, 0, dict, 8), "version 0.0");
    buffer past_end = make_npy(1, 0, dict, 8);
    past_end.bytes[8] = 0xff;
    past_end.bytes[9] = 0x7f;
    expect_reject("v1.0 header length past EOF", past_end, "header length 32767 runs past the end of the file");
    buffer past_end_v2 = make_npy(2, 0, dict, 8);
    memcpy(past_end_v2.bytes + 8, "\xff\xff\xff\xff", 4);
    expect_reject("v2.0 header length past EOF", past_end_v2, "header length 4294967295 runs past the end");
}

static void test_hostile_headers(void)
{
    expect_header_reject("header not a dict (list)", "['descr', '<f4']", 8, "header is not a dict");
    expect_header_reject("header empty", "", 8, "header is not a dict");
    expect_header_reject("header only spaces", "      \n", 8, "header is not a dict");
    expect_header_reject("missing 'shape'", "{'descr': '<f4', 'fortran_order': False}", 8, "header has no 'shape' key");
    expect_header_reject("missing 'descr'", "{'fortran_order': False, 'shape': (2,)}", 8, "header has no 'descr' key");
    expect_header_reject("missing 'fortran_order'", "{'descr': '<f4', 'shape': (2,)}", 8, "header has no 'fortran_order' key");
    expect_header_reject("empty dict", "{}", 8, "header has no 'descr' key");
    expect_header_reject("descr '<f8'", "{'descr': '<f8', 'fortran_order': False, 'shape': (2,)}", 16,
                         "dtype '<f8' is not supported (need '<f4' float32 or '<i4' int32)");
    expect_header_reject("descr '>f4'", "{'descr': '>f4', 'fortran_order': False, 'shape': (2,)}", 8,
                         "dtype '>f4' is not supported (need '<f4' float32 or '<i4' int32)");
    expect_header_reject("descr '<i8'", "{'descr': '<i8', 'fortran_order': False, 'shape': (2,)}", 16, "dtype '<i8' is not supported");
    expect_header_reject("descr '|u1'", "{'descr': '|u1', 'fortran_order': False, 'shape': (2,)}", 2, "dtype '|u1' is not supported");
    expect_header_reject("descr '|i4'", "{'descr': '|i4', 'fortran_order': False, 'shape': (2,)}", 8, "dtype '|i4' is not supported");
    expect_header_reject("structured descr", "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,)}", 8,
                         "structured dtypes are not supported");
    expect_header_reject("descr not a string", "{'descr': 4, 'fortran_order': False, 'shape': (2,)}", 8, "a dtype string");
    expect_header_reject("fortran_order True", "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3)}", 24,
                         "Fortran order is not supported");
    expect_header_reject("fortran_order 0", "{'descr': '<f4', 'fortran_order': 0, 'shape': (2,)}", 8, "True or False");
    expect_header_reject("negative dim", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, -3)}", 8, "negative dimension -3");
    expect_header_reject("rank 9", "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 1, 1, 1, 1, 1, 1, 1)}", 4,
                         "rank 9 is more than the maximum of 8");
    expect_header_reject("product overflows", "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296)}", 8,
                         "too many elements");
    expect_header_reject("product overflows int64 but not uint64", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 4611686018427387905)}", 8,
                         "16 GiB limit");
    expect_header_reject("more than 16 GiB", "{'descr': '<f4', 'fortran_order': False, 'shape': (65536, 65536, 2)}", 8, "16 GiB limit");
    expect_header_reject("dim past int64", "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}", 8, "too large");
    expect_header_reject("shape (5) not a tuple", "{'descr': '<f4', 'fortran_order': False, 'shape': (5)}", 20, "not a tuple");
    expect_header_reject("shape is a list", "{'descr': '<f4', 'fortran_order': False, 'shape': [2, 3]}", 24, "a tuple such as (2, 3)");
    expect_header_reject("shape (,)", "{'descr': '<f4', 'fortran_order': False, 'shape': (,)}", 4, "a dimension or ')'");
    expect_header_reject("shape dim is a float", "{'descr': '<f4', 'fortran_order': False, 'shape': (2.0,)}", 8, "found '.'");
    expect_header_reject("shape dim 5L", "{'descr': '<f4', 'fortran_order': False, 'shape': (5L,)}", 20, "malformed number '5L'");
    expect_header_reject("duplicate key", "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}", 8,
                         "duplicate key 'descr'");
    expect_header_reject("unknown key", "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'foo': 1}", 8, "unknown key 'foo'");
    expect_header_reject("unquoted key", "{descr: '<f4', 'fortran_order': False, 'shape': (2,)}", 8, "a quoted key");
    expect_header_reject("missing colon", "{'descr' '<f4', 'fortran_order': False, 'shape': (2,)}", 8, "':' after a key");
    expect_header_reject("missing comma", "{'descr': '<f4' 'fortran_order': False, 'shape': (2,)}", 8, "',' or '}' after a value");
    expect_header_reject("double comma", "{'descr': '<f4',, 'fortran_order': False, 'shape': (2,)}", 8, "a quoted key or '}'");
    expect_header_reject("unterminated string", "{'descr': '<f4", 8, "unterminated string");
    expect_header_reject("string broken by newline", "{'descr': '<f4\n', 'fortran_order': False, 'shape': (2,)}", 8,
                         "unterminated string");
    expect_header_reject("escape in string", "{'descr': '\\x3cf4', 'fortran_order': False, 'shape': (2,)}", 8, "escape sequences");
    expect_header_reject("unclosed dict", "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)", 8, "found the end of the header");
    expect_header_reject("text after dict", "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)} x", 8, "after the header dict");
    expect_header_reject("two dicts", "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)}{}", 8, "after the header dict");
    expect_header_reject("non-ASCII byte", "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), '\xc3\xa9': 1}", 8,
                         "non-ASCII byte 0xc3");
    static const char nul_header[] = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)}\0   ";
    expect_reject("NUL byte in header", make_npy_n(1, 0, nul_header, sizeof nul_header - 1, 8), "byte 0x00");
}

static void test_hostile_data_sizes(void)
{
    const char *dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
    expect_header_reject("truncated data", dict, 20, "truncated: expected 24 bytes of data, found 20");
    expect_header_reject("no data at all", dict, 0, "truncated: expected 24 bytes of data, found 0");
    expect_header_reject("trailing data", dict, 28, "4 bytes of trailing data after the array");
    expect_header_reject("rank 0 without data", "{'descr': '<i4', 'fortran_order': False, 'shape': ()}", 0,
                         "expected 4 bytes of data, found 0");
    expect_header_reject("zero-size with trailing data", "{'descr': '<i4', 'fortran_order': False, 'shape': (0,)}", 4,
                         "4 bytes of trailing data");
}

static void test_message_buffers(void)
{
    buffer bad = make_raw("nope", 4);
    npy_array a;
    char tiny[8];
    int rc = npy_read_mem(bad.bytes, bad.len, "a-long-source-name", &a, tiny, sizeof tiny);
    check(rc != 0 && strlen(tiny) == sizeof tiny - 1, "message truncated to a tiny buffer", "rc %d msg \"%s\"", rc, tiny);
    rc = npy_read_mem(bad.bytes, bad.len, "x", &a, NULL, 0);
    check(rc != 0 && is_zeroed(&a), "no message buffer", "rc %d", rc);
    char msg[MSG_SIZE];
    rc = npy_read_mem(bad.bytes, bad.len, NULL, &a, msg, sizeof msg);
    check(rc != 0 && strncmp(msg, "<memory>: ", 10) == 0, "NULL source name", "msg \"%s\"", msg);
    rc = npy_read_mem(NULL, 5, "null bytes", &a, msg, sizeof msg);
    check(rc != 0 && msg[0], "NULL bytes with a length", "rc %d", rc);
    rc = npy_read_mem(NULL, 0, "null empty", &a, msg, sizeof msg);
    check(rc != 0 && strstr(msg, "empty file"), "NULL bytes, zero length", "msg \"%s\"", msg);
    npy_array zero = {0};
    npy_free(&zero);
    npy_free(&zero);
    npy_free(NULL);
    check(is_zeroed(&zero), "npy_free on a zeroed struct, twice, and on NULL", "struct changed");
    free(bad.bytes);
}

/* ---- robustness: every prefix, random mutations ------------------------------------- */

static uint64_t xorshift_state = 0x9E3779B97F4A7C15ull;

static uint64_t next_random(void)
{
    uint64_t x = xorshift_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return xorshift_state = x;
}

/* Reads one candidate; returns 1 on success and checks that either outcome is well formed. */
static int read_candidate(const buffer *b, const char *what, char *problem, size_t problem_size)
{
    char msg[MSG_SIZE];
    npy_array a;
    int rc = read_exact_copy(b, what, &a, msg);
    if (rc) {
        const char *p = message_problem(msg, what);
        if (p || !is_zeroed(&a))
            snprintf(problem, problem_size, "%s (\"%s\")", p ? p : "output not zeroed", msg);
        return 0;
    }
    size_t product = 1;
    for (int i = 0; i < a.rank; i++)
        product *= (size_t)a.shape[i];
    if (a.rank < 0 || a.rank > ATTNC_MAX_RANK || a.count != product || (a.count == 0) != (a.data == NULL))
        snprintf(problem, problem_size, "accepted an inconsistent array (rank %d count %zu)", a.rank, a.count);
    npy_free(&a);
    return 1;
}

static void test_every_prefix(const char *name, buffer valid)
{
    char problem[MSG_SIZE + 64] = "";
    size_t accepted_at = SIZE_MAX;
    for (size_t len = 0; len < valid.len && !problem[0]; len++) {
        buffer prefix = {valid.bytes, len, len};
        if (read_candidate(&prefix, "prefix", problem, sizeof problem))
            accepted_at = len;
    }
    if (!problem[0] && accepted_at != SIZE_MAX)
        snprintf(problem, sizeof problem, "accepted a %zu-byte prefix", accepted_at);
    int whole_ok = read_candidate(&valid, "whole", problem, sizeof problem);
    check(!problem[0] && whole_ok, name, "%s", problem[0] ? problem : "whole file rejected");
    free(valid.bytes);
}

static buffer mutate(const buffer *valid, size_t header_end)
{
    static const char interesting[] = "{}()[],:'\" \n0123456789-TrueFalse<>fi48\x80\xff";
    buffer m = {0};
    append(&m, valid->bytes, valid->len);
    int edits = 1 + (int)(next_random() % 3);
    for (int e = 0; e < edits; e++) {
        uint64_t r = next_random();
        size_t at = (r & 3) ? (size_t)(next_random() % header_end) : (size_t)(next_random() % m.len);
        switch ((r >> 2) % 5) {
        case 0: m.bytes[at] = (unsigned char)next_random(); break;
        case 1: m.bytes[at] = (unsigned char)interesting[next_random() % (sizeof interesting - 1)]; break;
        case 2: m.bytes[at] ^= (unsigned char)(1u << (next_random() % 8)); break;
        case 3: m.len = at; break; /* truncate */
        case 4: append(&m, "\0\0\0\0", 1 + next_random() % 4); break;
        }
        if (m.len == 0)
            break;
    }
    return m;
}

static void test_mutations(const char *name, buffer valid, size_t header_end, int rounds)
{
    char problem[MSG_SIZE + 64] = "";
    int accepted = 0;
    for (int i = 0; i < rounds && !problem[0]; i++) {
        buffer m = mutate(&valid, header_end);
        accepted += read_candidate(&m, "mutant", problem, sizeof problem);
        free(m.bytes);
    }
    check(!problem[0], name, "%s", problem);
    printf("# %s: %d of %d mutants were still valid files\n", name, accepted, rounds);
    free(valid.bytes);
}

/* ---- files on disk ------------------------------------------------------------ */

static char temp_dir[4096];

static const char *temp_path(const char *name)
{
    static char paths[8][4096 + 256];
    static int next;
    char *p = paths[next++ % 8];
    snprintf(p, sizeof paths[0], "%s/%s", temp_dir, name);
    return p;
}

static void write_bytes(const char *path, const buffer *b)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(b->bytes, 1, b->len, f) != b->len || fclose(f) != 0) {
        fprintf(stderr, "test_npy: cannot write %s: %s\n", path, strerror(errno));
        exit(1);
    }
}

static buffer slurp(const char *path)
{
    buffer b = {0};
    FILE *f = fopen(path, "rb");
    unsigned char chunk[4096];
    size_t n;
    while (f && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
        append(&b, chunk, n);
    if (f)
        fclose(f);
    return b;
}

static int count_temp_leftovers(const char *dir)
{
    int n = 0;
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));)
        n += strstr(e->d_name, ".tmp") != NULL;
    if (d)
        closedir(d);
    return n;
}

static void remove_temp_dir(void)
{
    DIR *d = opendir(temp_dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        const char *p = temp_path(e->d_name);
        if (unlink(p) != 0)
            rmdir(p);
    }
    if (d)
        closedir(d);
    rmdir(temp_dir);
}

static void fill_pattern(void *data, size_t count)
{
    for (size_t i = 0; i < count * 4; i++)
        ((unsigned char *)data)[i] = data_byte(i);
}

/* What numpy.save writes: v1.0, the dict with ", }", spaces, '\n', data at a multiple of 64. */
static const char *numpy_layout_problem(const buffer *file, const char *expected_dict)
{
    if (file->len < 10 || memcmp(file->bytes, "\x93NUMPY\x01\x00", 8) != 0)
        return "not a v1.0 preamble";
    size_t header_len = file->bytes[8] | (size_t)file->bytes[9] << 8;
    size_t data_start = 10 + header_len;
    if (data_start % 64 != 0 || data_start > file->len)
        return "data does not start at a multiple of 64";
    if (file->bytes[data_start - 1] != '\n')
        return "header does not end with a newline";
    if (strncmp((const char *)file->bytes + 10, expected_dict, strlen(expected_dict)) != 0)
        return "header dict differs from numpy's";
    for (size_t i = 10 + strlen(expected_dict); i < data_start - 1; i++)
        if (file->bytes[i] != ' ')
            return "header padding is not spaces";
    return NULL;
}

static void test_round_trip(const char *name, attnc_dtype dtype, int rank, const int64_t *shape, size_t count,
                            const char *expected_dict)
{
    const char *path = temp_path(name);
    char msg[MSG_SIZE];
    void *data = malloc(count ? count * 4 : 1);
    fill_pattern(data, count);
    int rc = npy_write(path, dtype, rank, shape, count ? data : NULL, msg, sizeof msg);
    free(data);
    if (rc) {
        check(0, name, "write failed: %s", msg);
        return;
    }
    buffer file = slurp(path);
    const char *layout_problem = numpy_layout_problem(&file, expected_dict);
    free(file.bytes);
    if (layout_problem) {
        check(0, name, "%s", layout_problem);
        return;
    }
    npy_array a;
    rc = npy_read(path, &a, msg, sizeof msg);
    check_array(name, rc, msg, &a, dtype, rank, shape, count);
    npy_free(&a);
}

static void test_round_trips(void)
{
    static const int64_t s5[] = {5}, s234[] = {2, 3, 4}, s0x3[] = {0, 3};
    test_round_trip("f4 rank 0", ATTNC_F32, 0, NULL, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }");
    test_round_trip("f4 rank 1", ATTNC_F32, 1, s5, 5, "{'descr': '<f4', 'fortran_order': False, 'shape': (5,), }");
    test_round_trip("f4 rank 3", ATTNC_F32, 3, s234, 24,
                    "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 4), }");
    test_round_trip("i4 rank 0", ATTNC_I32, 0, NULL, 1, "{'descr': '<i4', 'fortran_order': False, 'shape': (), }");
    test_round_trip("i4 rank 1", ATTNC_I32, 1, s5, 5, "{'descr': '<i4', 'fortran_order': False, 'shape': (5,), }");
    test_round_trip("i4 rank 3", ATTNC_I32, 3, s234, 24,
                    "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3, 4), }");
    test_round_trip("f4 zero-size (0, 3)", ATTNC_F32, 2, s0x3, 0,
                    "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 3), }");
    static const float values[5] = {1.5f, -0.25f, 3e38f, 0.0f, -1e-30f};
    char msg[MSG_SIZE];
    npy_array a;
    int rc = npy_write(temp_path("overwrite.npy"), ATTNC_F32, 1, s5, values, msg, sizeof msg);
    static const int64_t s3[] = {3};
    rc = rc || npy_write(temp_path("overwrite.npy"), ATTNC_F32, 1, s3, values, msg, sizeof msg);
    rc = rc || npy_read(temp_path("overwrite.npy"), &a, msg, sizeof msg);
    check(rc == 0 && a.count == 3 && memcmp(a.data, values, 3 * sizeof values[0]) == 0, "overwrite replaces the file",
          "%s", rc ? msg : "wrong contents");
    npy_free(&a);
}

static void expect_write_failure(const char *name, const char *path, attnc_dtype dtype, int rank,
                                 const int64_t *shape, const void *data, const char *expected)
{
    char msg[MSG_SIZE];
    int rc = npy_write(path, dtype, rank, shape, data, msg, sizeof msg);
    const char *problem = rc ? message_problem(msg, path) : "write succeeded";
    if (!problem && !strstr(msg, expected))
        problem = "message lacks the expected text";
    check(!problem, name, "%s: \"%s\" (expected \"%s\")", problem, rc ? msg : "", expected);
}

static void test_write_failures(void)
{
    static const int64_t s2[] = {2}, neg[] = {2, -1}, s9[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    static const float values[2] = {1, 2};
    expect_write_failure("write into a missing directory", temp_path("no/such/dir/x.npy"), ATTNC_F32, 1, s2, values,
                         "cannot create a temporary file");
    check(access(temp_path("no"), F_OK) != 0, "no file left after a failed create", "something was created");
    mkdir(temp_path("a-directory"), 0777);
    expect_write_failure("write over a directory", temp_path("a-directory"), ATTNC_F32, 1, s2, values, "is a directory");
    check(count_temp_leftovers(temp_dir) == 0, "no temp file left after a failed rename", "found a .tmp file");
    expect_write_failure("write rank 9", temp_path("r9.npy"), ATTNC_F32, 9, s9, values, "rank 9");
    expect_write_failure("write negative dim", temp_path("neg.npy"), ATTNC_F32, 2, neg, values, "negative dimension -1");
    expect_write_failure("write bad dtype", temp_path("dt.npy"), (attnc_dtype)7, 1, s2, values, "dtype 7");
    expect_write_failure("write NULL data", temp_path("null.npy"), ATTNC_I32, 1, s2, NULL, "no data");
    check(access(temp_path("r9.npy"), F_OK) != 0 && access(temp_path("null.npy"), F_OK) != 0,
          "no file left after rejected arguments", "a file was created");
}

static void expect_path_reject(const char *name, const char *path, const char *expected)
{
    char msg[MSG_SIZE];
    npy_array a;
    int rc = npy_read(path, &a, msg, sizeof msg);
    const char *problem = rc ? message_problem(msg, path) : "accepted";
    if (!problem && !strstr(msg, expected))
        problem = "message lacks the expected text";
    if (!problem && !is_zeroed(&a))
        problem = "output not zeroed";
    check(!problem, name, "%s: \"%s\" (expected \"%s\")", problem, rc ? msg : "", expected);
    npy_free(&a);
}

static void write_and_expect_path_reject(const char *file_name, buffer b, const char *expected)
{
    const char *path = temp_path(file_name);
    write_bytes(path, &b);
    free(b.bytes);
    char name[256];
    snprintf(name, sizeof name, "read path %s", file_name);
    expect_path_reject(name, path, expected);
}

static void test_paths(void)
{
    const char *dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
    write_and_expect_path_reject("empty.npy", make_raw("", 0), "empty file");
    write_and_expect_path_reject("magic.npy", make_raw("\x93NUMPX\x01\x00", 8), "bad magic");
    write_and_expect_path_reject("short-preamble.npy", make_raw("\x93NUMPY\x02\x00\x01", 9), "truncated .npy preamble");
    write_and_expect_path_reject("v3.npy", make_npy(3, 0, dict, 24), "version 3.0");
    buffer past_end = make_npy(2, 0, dict, 24);
    memcpy(past_end.bytes + 8, "\x00\x00\x00\x40", 4);
    write_and_expect_path_reject("past-eof.npy", past_end, "runs past the end of the file");
    write_and_expect_path_reject("f8.npy", make_npy(1, 0, "{'descr': '<f8', 'fortran_order': False, 'shape': (2,)}", 16),
                                 "dtype '<f8' is not supported");
    write_and_expect_path_reject("truncated.npy", make_npy(1, 0, dict, 23), "truncated: expected 24 bytes of data, found 23");
    write_and_expect_path_reject("trailing.npy", make_npy(1, 0, dict, 30), "6 bytes of trailing data");
    expect_path_reject("read a nonexistent path", temp_path("missing.npy"), "cannot open: No such file or directory");
    expect_path_reject("read a directory", temp_dir, "is a directory");
    expect_path_reject("read /dev/null (not a regular file)", "/dev/null", "empty file");

    static const int64_t s23[] = {2, 3};
    buffer v2 = make_npy(2, 0, dict, 24);
    const char *v2_path = temp_path("v2.npy");
    write_bytes(v2_path, &v2);
    free(v2.bytes);
    char msg[MSG_SIZE];
    npy_array a;
    int rc = npy_read(v2_path, &a, msg, sizeof msg);
    check_array("read path v2.npy", rc, msg, &a, ATTNC_F32, 2, s23, 6);
    npy_free(&a);
}

static void test_robustness(void)
{
    const char *dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }          \n";
    size_t header_end_v1 = 10 + strlen(dict), header_end_v2 = 12 + strlen(dict);
    test_every_prefix("every prefix of a v1.0 file is rejected cleanly", make_npy(1, 0, dict, 24));
    test_every_prefix("every prefix of a v2.0 file is rejected cleanly", make_npy(2, 0, dict, 24));
    test_every_prefix("every prefix of a rank-0 file is rejected cleanly",
                      make_npy(1, 0, "{'descr': '<i4', 'fortran_order': False, 'shape': ()}", 4));
    test_mutations("4000 mutations of a v1.0 file", make_npy(1, 0, dict, 24), header_end_v1, 4000);
    test_mutations("2000 mutations of a v2.0 file", make_npy(2, 0, dict, 24), header_end_v2, 2000);
}

/* ---- --expect mode, for checking files made by npyrand --------------------------------- */

static int parse_shape_arg(const char *text, int *rank, int64_t *shape)
{
    *rank = 0;
    if (*text == '\0' || strcmp(text, "scalar") == 0)
        return 0;
    for (const char *p = text;;) {
        char *end;
        if (*rank == ATTNC_MAX_RANK || *p < '0' || *p > '9')
            return 1;
        shape[(*rank)++] = strtoll(p, &end, 10);
        if (*end == '\0')
            return 0;
        if (*end != ',')
            return 1;
        p = end + 1;
    }
}

static int values_in_range(const npy_array *a, double lo, double hi)
{
    for (size_t i = 0; i < a->count; i++) {
        double v = a->dtype == ATTNC_F32 ? (double)((const float *)a->data)[i] : (double)((const int32_t *)a->data)[i];
        if (!(v >= lo && v < hi))
            return 0;
    }
    return 1;
}

static int run_expect(int argc, char **argv)
{
    if (argc != 5 && argc != 7) {
        fprintf(stderr, "usage: test_npy --expect FILE f4|i4 SHAPE [LO HI]\n");
        return 2;
    }
    int rank;
    int64_t shape[ATTNC_MAX_RANK];
    attnc_dtype dtype = strcmp(argv[3], "f4") == 0 ? ATTNC_F32 : ATTNC_I32;
    if ((strcmp(argv[3], "f4") != 0 && strcmp(argv[3], "i4") != 0) || parse_shape_arg(argv[4], &rank, shape)) {
        fprintf(stderr, "test_npy: bad dtype or shape argument\n");
        return 2;
    }
    char msg[MSG_SIZE];
    npy_array a;
    if (npy_read(argv[2], &a, msg, sizeof msg)) {
        check(0, "expected file reads", "%s", msg);
        return 1;
    }
    check(a.dtype == dtype && shape_equals(&a, rank, shape), "file has the expected dtype and shape",
          "dtype %d rank %d", (int)a.dtype, a.rank);
    if (argc == 7)
        check(values_in_range(&a, strtod(argv[5], NULL), strtod(argv[6], NULL)), "values are in [LO,HI)",
              "a value is out of range");
    npy_free(&a);
    return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--expect") == 0)
        return run_expect(argc, argv);
    const char *tmp = getenv("TMPDIR");
    snprintf(temp_dir, sizeof temp_dir, "%s/test_npy.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(temp_dir)) {
        fprintf(stderr, "test_npy: cannot make a temp dir %s: %s\n", temp_dir, strerror(errno));
        return 1;
    }
    test_valid_headers();
    test_hostile_preambles();
    test_hostile_headers();
    test_hostile_data_sizes();
    test_message_buffers();
    test_round_trips();
    test_write_failures();
    test_paths();
    test_robustness();
    remove_temp_dir();
    printf("%s: %d failure%s\n", failures ? "FAIL" : "ok", failures, failures == 1 ? "" : "s");
    return failures ? 1 : 0;
}
