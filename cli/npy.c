/* npy.c — NumPy .npy reader and writer for attnc's tensors.
 *
 * Requires: a little-endian host (checked at compile time) and POSIX files.
 * Reads format 1.0 and 2.0 files (or bytes in memory) whose header dict
 * describes a C-order '<f4' or '<i4' array (npy_read_f16: '<f2' too) of rank <= ATTNC_MAX_RANK with at
 * most 16 GiB of data, and whose data is exactly that size.
 * Produces: an npy_array with malloc'd native-order data, or a nonzero return
 * with a one-line "SOURCE: problem" message.  Writes version 1.0 files laid
 * out as numpy.save lays them out (header padded so data is 64-byte aligned),
 * through outfile.c (a temp file and a rename, or straight to a device).
 *
 * Every length in a file is untrusted: each is checked against the bytes
 * actually present before anything is read, so no input can cause a read
 * out of bounds or an allocation larger than the file.
 *
 * Writing goes through outfile.c: a temporary file renamed into place, or
 * straight through to a device or FIFO, never replacing a device or a link.
 */
#define _POSIX_C_SOURCE 200809L
#define _FILE_OFFSET_BITS 64

#include "npy.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "npy.c copies '<f4'/'<i4' data without byte swapping, so it needs a little-endian host"
#endif

#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAGIC_LEN 6
#define NPY_LONGEST_PREAMBLE 12 /* magic, 2 version bytes, 4-byte header length (v2.0) */
#define NPY_ALIGN 64
#define NPY_TOKEN_QUOTE_MAX 40 /* longest header text quoted back in a message */

/* ---- messages ------------------------------------------------------------ */

typedef struct reporter {
    char *msg;
    size_t size;
    const char *what;
    int allow_f16; /* npy_read_f16: '<f2' data is welcome */
} reporter;

static reporter make_reporter(char *msg, size_t size, const char *what)
{
    reporter r = {msg, size, what, 0};
    if (msg && size > 0)
        msg[0] = '\0';
    return r;
}

/* Messages must stay one line even when a path or header text has control characters. */
static void flatten_to_one_line(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = '?';
}

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static int npy_fail(const reporter *r, const char *fmt, ...)
{
    if (!r->msg || r->size == 0)
        return 1;
    int n = snprintf(r->msg, r->size, "%s: ", r->what);
    if (n >= 0 && (size_t)n < r->size) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->msg + n, r->size - (size_t)n, fmt, ap);
        va_end(ap);
    }
    flatten_to_one_line(r->msg);
    return 1;
}

/* ---- the array a header describes ------------------------------------------ */

typedef struct npy_layout {
    attnc_dtype dtype;
    int f16; /* '<f2': dtype is ATTNC_F32, items are 2 bytes */
    int rank;
    int64_t shape[ATTNC_MAX_RANK];
    size_t count;
} npy_layout;

static const char *dtype_descr(const npy_layout *layout)
{
    return layout->f16 ? "<f2" : layout->dtype == ATTNC_F32 ? "<f4" : "<i4";
}

static size_t item_size(const npy_layout *layout)
{
    return layout->f16 ? 2 : 4;
}

/* Long enough for "(" + 8 x ", -9223372036854775808" + ",)". */
#define NPY_SHAPE_TEXT_MAX 256

/* Python's tuple repr: "()", "(5,)", "(2, 3)". */
static void format_shape(const int64_t *shape, int rank, char *buf)
{
    size_t used = (size_t)snprintf(buf, NPY_SHAPE_TEXT_MAX, "(");
    for (int i = 0; i < rank; i++)
        used += (size_t)snprintf(buf + used, NPY_SHAPE_TEXT_MAX - used, i == 0 ? "%" PRId64 : ", %" PRId64, shape[i]);
    snprintf(buf + used, NPY_SHAPE_TEXT_MAX - used, rank == 1 ? ",)" : ")");
}

/* Sets layout->count, refusing products that overflow or pass the data size limit. */
static int count_elements(npy_layout *layout, const reporter *r)
{
    char shape_text[NPY_SHAPE_TEXT_MAX];
    uint64_t product = 1;
    int overflow = 0;
    for (int i = 0; i < layout->rank; i++) {
        uint64_t dim = (uint64_t)layout->shape[i];
        if (dim == 0) {
            layout->count = 0;
            return 0;
        }
        if (product > UINT64_MAX / dim)
            overflow = 1;
        else
            product *= dim;
    }
    format_shape(layout->shape, layout->rank, shape_text);
    if (overflow)
        return npy_fail(r, "shape %s has too many elements (the product of its dimensions overflows 64 bits)",
                    shape_text);
    if (product > NPY_MAX_DATA_BYTES / item_size(layout))
        return npy_fail(r, "shape %s has %" PRIu64 " elements (%" PRIu64 " bytes of data), more than the 16 GiB limit",
                    shape_text, product, product * item_size(layout));
#if SIZE_MAX < UINT64_MAX
    if (product > SIZE_MAX / item_size(layout))
        return npy_fail(r, "shape %s has too many elements for this machine's address space", shape_text);
#endif
    layout->count = (size_t)product;
    return 0;
}

/* ---- preamble: magic, version, header length -------------------------------- */

typedef struct npy_preamble {
    size_t header_start;
    uint64_t header_len;
} npy_preamble;

static uint64_t read_le(const unsigned char *b, int nbytes)
{
    uint64_t v = 0;
    for (int i = nbytes - 1; i >= 0; i--)
        v = (v << 8) | b[i];
    return v;
}

/* `b` holds min(total, NPY_LONGEST_PREAMBLE) bytes of a source `total` bytes long. */
static int parse_preamble(const unsigned char *b, uint64_t total, npy_preamble *pre, const reporter *r)
{
    if (total == 0)
        return npy_fail(r, "empty file, not a .npy file");
    size_t magic_bytes = total < NPY_MAGIC_LEN ? (size_t)total : NPY_MAGIC_LEN;
    if (memcmp(b, NPY_MAGIC, magic_bytes) != 0)
        return npy_fail(r, "not a .npy file (bad magic: it does not start with \\x93NUMPY)");
    if (total < NPY_MAGIC_LEN + 2)
        return npy_fail(r, "truncated .npy preamble: the file has only %" PRIu64 " bytes", total);
    int major = b[6], minor = b[7];
    if (!((major == 1 || major == 2) && minor == 0))
        return npy_fail(r, "unsupported .npy format version %d.%d (only 1.0 and 2.0 are supported)", major, minor);
    int length_bytes = major == 1 ? 2 : 4;
    pre->header_start = NPY_MAGIC_LEN + 2 + (size_t)length_bytes;
    if (total < pre->header_start)
        return npy_fail(r, "truncated .npy preamble: the file has only %" PRIu64 " bytes", total);
    pre->header_len = read_le(b + NPY_MAGIC_LEN + 2, length_bytes);
    if (pre->header_len > total - pre->header_start)
        return npy_fail(r, "header length %" PRIu64 " runs past the end of the file (only %" PRIu64
                       " bytes follow the preamble)",
                    pre->header_len, total - pre->header_start);
    return 0;
}

/* ---- header dict tokenizer ------------------------------------------------ */

typedef enum token_kind { TOK_END, TOK_STRING, TOK_INT, TOK_NAME, TOK_PUNCT, TOK_BAD } token_kind;

typedef struct token {
    token_kind kind;
    const char *text; /* a string's text excludes its quotes */
    size_t len;
} token;

typedef struct lexer {
    const char *p, *end;
    const reporter *r;
} lexer;

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}
static int is_name_char(char c)
{
    return c == '_' || is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int lex_string(lexer *lx, token *t)
{
    char quote = *lx->p++;
    t->kind = TOK_STRING;
    t->text = lx->p;
    while (lx->p < lx->end && *lx->p != quote) {
        if (*lx->p == '\n')
            break;
        if (*lx->p == '\\')
            return npy_fail(lx->r, "escape sequences in header strings are not supported");
        lx->p++;
    }
    if (lx->p >= lx->end || *lx->p != quote)
        return npy_fail(lx->r, "unterminated string in header");
    t->len = (size_t)(lx->p - t->text);
    lx->p++;
    return 0;
}

static int lex_int(lexer *lx, token *t)
{
    t->kind = TOK_INT;
    t->text = lx->p;
    if (*lx->p == '-' || *lx->p == '+')
        lx->p++;
    while (lx->p < lx->end && is_digit(*lx->p))
        lx->p++;
    t->len = (size_t)(lx->p - t->text);
    if (lx->p < lx->end && is_name_char(*lx->p)) {
        while (lx->p < lx->end && is_name_char(*lx->p))
            lx->p++;
        int shown = (int)(lx->p - t->text < NPY_TOKEN_QUOTE_MAX ? lx->p - t->text : NPY_TOKEN_QUOTE_MAX);
        return npy_fail(lx->r, "malformed number '%.*s' in header", shown, t->text);
    }
    return 0;
}

static int next_token(lexer *lx, token *t)
{
    while (lx->p < lx->end && is_space(*lx->p))
        lx->p++;
    if (lx->p >= lx->end) {
        t->kind = TOK_END;
        t->text = lx->end;
        t->len = 0;
        return 0;
    }
    char c = *lx->p;
    if (c == '\'' || c == '"')
        return lex_string(lx, t);
    int signed_number = (c == '-' || c == '+') && lx->p + 1 < lx->end && is_digit(lx->p[1]);
    if (is_digit(c) || signed_number)
        return lex_int(lx, t);
    t->text = lx->p;
    if (is_name_char(c)) {
        t->kind = TOK_NAME;
        while (lx->p < lx->end && is_name_char(*lx->p))
            lx->p++;
        t->len = (size_t)(lx->p - t->text);
        return 0;
    }
    t->kind = c != '\0' && strchr("{}()[],:", c) ? TOK_PUNCT : TOK_BAD; /* strchr finds the terminator too */
    t->len = 1;
    lx->p++;
    return 0;
}

static int token_is(const token *t, token_kind kind, const char *text)
{
    return t->kind == kind && strlen(text) == t->len && memcmp(t->text, text, t->len) == 0;
}

static int is_punct(const token *t, char c)
{
    return t->kind == TOK_PUNCT && t->text[0] == c;
}

static void describe_token(const token *t, char *buf, size_t size)
{
    int shown = (int)(t->len < NPY_TOKEN_QUOTE_MAX ? t->len : NPY_TOKEN_QUOTE_MAX);
    const char *more = t->len > NPY_TOKEN_QUOTE_MAX ? "..." : "";
    unsigned char c = t->len ? (unsigned char)t->text[0] : 0;
    switch (t->kind) {
    case TOK_END: snprintf(buf, size, "the end of the header"); break;
    case TOK_STRING: snprintf(buf, size, "'%.*s%s'", shown, t->text, more); break;
    case TOK_INT:
    case TOK_NAME: snprintf(buf, size, "%.*s%s", shown, t->text, more); break;
    case TOK_PUNCT: snprintf(buf, size, "'%c'", c); break;
    case TOK_BAD:
        if (c > 0x20 && c < 0x7f)
            snprintf(buf, size, "'%c'", c);
        else
            snprintf(buf, size, "byte 0x%02x", c);
        break;
    }
}

/* ---- header dict parser -------------------------------------------------- */

enum header_key { KEY_DESCR, KEY_FORTRAN_ORDER, KEY_SHAPE, KEY_COUNT };
static const char *const header_key_names[KEY_COUNT] = {"descr", "fortran_order", "shape"};

static int fail_at(lexer *lx, const token *t, const char *expected)
{
    char found[NPY_TOKEN_QUOTE_MAX + 16];
    describe_token(t, found, sizeof found);
    return npy_fail(lx->r, "bad header: expected %s, found %s", expected, found);
}

static int parse_descr(lexer *lx, npy_layout *layout)
{
    token t;
    if (next_token(lx, &t))
        return 1;
    if (is_punct(&t, '['))
        return npy_fail(lx->r, "structured dtypes are not supported (need '<f4' float32 or '<i4' int32)");
    if (t.kind != TOK_STRING)
        return fail_at(lx, &t, "a dtype string such as '<f4' for 'descr'");
    if (token_is(&t, TOK_STRING, "<f4"))
        layout->dtype = ATTNC_F32;
    else if (token_is(&t, TOK_STRING, "<f2") && lx->r->allow_f16)
        layout->dtype = ATTNC_F32, layout->f16 = 1;
    else if (token_is(&t, TOK_STRING, "<i4"))
        layout->dtype = ATTNC_I32;
    else {
        char shown[NPY_TOKEN_QUOTE_MAX + 16];
        describe_token(&t, shown, sizeof shown);
        return npy_fail(lx->r, "dtype %s is not supported (need '<f4' float32 or '<i4' int32)", shown);
    }
    return 0;
}

static int parse_fortran_order(lexer *lx)
{
    token t;
    if (next_token(lx, &t))
        return 1;
    if (token_is(&t, TOK_NAME, "True"))
        return npy_fail(lx->r, "Fortran order is not supported (fortran_order is True; need a C-order array)");
    if (!token_is(&t, TOK_NAME, "False"))
        return fail_at(lx, &t, "True or False for 'fortran_order'");
    return 0;
}

static int parse_dimension(lexer *lx, const token *t, int64_t *dim)
{
    const char *digits = t->text, *end = t->text + t->len;
    int negative = *digits == '-';
    if (*digits == '-' || *digits == '+')
        digits++;
    uint64_t value = 0;
    for (const char *d = digits; d < end; d++) {
        if (value > ((uint64_t)INT64_MAX - (uint64_t)(*d - '0')) / 10) {
            char shown[NPY_TOKEN_QUOTE_MAX + 16];
            describe_token(t, shown, sizeof shown);
            return npy_fail(lx->r, "dimension %s in 'shape' is too large", shown);
        }
        value = value * 10 + (uint64_t)(*d - '0');
    }
    if (negative && value > 0)
        return npy_fail(lx->r, "negative dimension -%" PRIu64 " in 'shape'", value);
    *dim = (int64_t)value;
    return 0;
}

/* A Python tuple of ints: (), (5,), (2, 3) or (2, 3,). */
static int parse_shape(lexer *lx, npy_layout *layout)
{
    token t;
    if (next_token(lx, &t))
        return 1;
    if (!is_punct(&t, '('))
        return fail_at(lx, &t, "a tuple such as (2, 3) for 'shape'");
    uint64_t ndims = 0;
    int ends_with_comma = 0;
    for (;;) {
        if (next_token(lx, &t))
            return 1;
        if (is_punct(&t, ')'))
            break;
        if (t.kind != TOK_INT)
            return fail_at(lx, &t, "a dimension or ')' in 'shape'");
        int64_t dim = 0;
        if (parse_dimension(lx, &t, &dim))
            return 1;
        if (ndims < ATTNC_MAX_RANK)
            layout->shape[ndims] = dim;
        ndims++;
        if (next_token(lx, &t))
            return 1;
        ends_with_comma = is_punct(&t, ',');
        if (is_punct(&t, ')'))
            break;
        if (!ends_with_comma)
            return fail_at(lx, &t, "',' or ')' in 'shape'");
    }
    if (ndims == 1 && !ends_with_comma)
        return npy_fail(lx->r, "'shape' (%" PRId64 ") is a number, not a tuple; a rank-1 shape is written (%" PRId64 ",)",
                    layout->shape[0], layout->shape[0]);
    if (ndims > ATTNC_MAX_RANK)
        return npy_fail(lx->r, "rank %" PRIu64 " is more than the maximum of %d", ndims, ATTNC_MAX_RANK);
    layout->rank = (int)ndims;
    return 0;
}

static int parse_value(lexer *lx, enum header_key key, npy_layout *layout)
{
    switch (key) {
    case KEY_DESCR: return parse_descr(lx, layout);
    case KEY_FORTRAN_ORDER: return parse_fortran_order(lx);
    case KEY_SHAPE: return parse_shape(lx, layout);
    case KEY_COUNT: break;
    }
    return npy_fail(lx->r, "internal error: unknown header key");
}

static int lookup_key(lexer *lx, const token *t, const int *seen, enum header_key *key)
{
    for (int k = 0; k < KEY_COUNT; k++) {
        if (!token_is(t, TOK_STRING, header_key_names[k]))
            continue;
        if (seen[k])
            return npy_fail(lx->r, "duplicate key '%s' in header", header_key_names[k]);
        *key = (enum header_key)k;
        return 0;
    }
    char shown[NPY_TOKEN_QUOTE_MAX + 16];
    describe_token(t, shown, sizeof shown);
    return npy_fail(lx->r, "unknown key %s in header (expected 'descr', 'fortran_order' and 'shape')", shown);
}

/* The dict body after '{': entries "'key': value" separated by commas, an optional trailing comma, '}'. */
static int parse_dict_entries(lexer *lx, npy_layout *layout)
{
    int seen[KEY_COUNT] = {0};
    token t;
    for (;;) {
        if (next_token(lx, &t))
            return 1;
        if (is_punct(&t, '}'))
            break;
        if (t.kind != TOK_STRING)
            return fail_at(lx, &t, "a quoted key or '}' in the header dict");
        enum header_key key = KEY_DESCR;
        if (lookup_key(lx, &t, seen, &key))
            return 1;
        seen[key] = 1;
        if (next_token(lx, &t))
            return 1;
        if (!is_punct(&t, ':'))
            return fail_at(lx, &t, "':' after a key in the header dict");
        if (parse_value(lx, key, layout))
            return 1;
        if (next_token(lx, &t))
            return 1;
        if (is_punct(&t, '}'))
            break;
        if (!is_punct(&t, ','))
            return fail_at(lx, &t, "',' or '}' after a value in the header dict");
    }
    for (int k = 0; k < KEY_COUNT; k++)
        if (!seen[k])
            return npy_fail(lx->r, "header has no '%s' key", header_key_names[k]);
    return 0;
}

static int check_ascii(const char *text, size_t len, size_t file_offset, const reporter *r)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)text[i] >= 0x80)
            return npy_fail(r, "non-ASCII byte 0x%02x in header at byte %zu of the file", (unsigned char)text[i],
                        file_offset + i);
    return 0;
}

/* Parses `len` bytes of header text that started at `file_offset`; fills *layout including count. */
static int parse_header(const char *text, size_t len, size_t file_offset, npy_layout *layout, const reporter *r)
{
    memset(layout, 0, sizeof *layout);
    if (check_ascii(text, len, file_offset, r))
        return 1;
    lexer lx = {text, text + len, r};
    token t;
    if (next_token(&lx, &t))
        return 1;
    if (!is_punct(&t, '{')) {
        char found[NPY_TOKEN_QUOTE_MAX + 16];
        describe_token(&t, found, sizeof found);
        return npy_fail(r, "header is not a dict: expected '{', found %s", found);
    }
    if (parse_dict_entries(&lx, layout))
        return 1;
    if (next_token(&lx, &t))
        return 1;
    if (t.kind != TOK_END)
        return fail_at(&lx, &t, "only spaces after the header dict");
    return count_elements(layout, r);
}

static int check_data_length(const npy_layout *layout, uint64_t found, const reporter *r)
{
    uint64_t expected = (uint64_t)layout->count * item_size(layout);
    char shape_text[NPY_SHAPE_TEXT_MAX];
    format_shape(layout->shape, layout->rank, shape_text);
    if (found < expected)
        return npy_fail(r, "truncated: expected %" PRIu64 " bytes of data, found %" PRIu64 " (shape %s of '%s')",
                    expected, found, shape_text, dtype_descr(layout));
    if (found > expected)
        return npy_fail(r, "%" PRIu64 " bytes of trailing data after the array (shape %s of '%s' needs %" PRIu64 ")",
                    found - expected, shape_text, dtype_descr(layout), expected);
    return 0;
}

static void fill_array(npy_array *out, const npy_layout *layout, void *data)
{
    memset(out, 0, sizeof *out);
    out->dtype = layout->dtype;
    out->f16 = layout->f16;
    out->rank = layout->rank;
    memcpy(out->shape, layout->shape, sizeof out->shape);
    out->count = layout->count;
    out->data = data;
}

/* ---- reading ---------------------------------------------------------------- */

static int parse_bytes(const unsigned char *b, size_t len, npy_array *out, const reporter *r)
{
    npy_preamble pre = {0, 0};
    if (parse_preamble(b, len, &pre, r))
        return 1;
    npy_layout layout;
    if (parse_header((const char *)b + pre.header_start, (size_t)pre.header_len, pre.header_start, &layout, r))
        return 1;
    size_t data_offset = pre.header_start + (size_t)pre.header_len;
    if (check_data_length(&layout, len - data_offset, r))
        return 1;
    size_t nbytes = layout.count * item_size(&layout);
    void *data = NULL;
    if (nbytes > 0) {
        data = malloc(nbytes);
        if (!data)
            return npy_fail(r, "out of memory reading %zu bytes of data", nbytes);
        memcpy(data, b + data_offset, nbytes);
    }
    fill_array(out, &layout, data);
    return 0;
}

int npy_read_mem(const void *bytes, size_t len, const char *what, npy_array *out, char *msg, size_t msgsize)
{
    reporter r = make_reporter(msg, msgsize, what ? what : "<memory>");
    if (!out)
        return npy_fail(&r, "no output array given");
    memset(out, 0, sizeof *out);
    if (!bytes && len > 0)
        return npy_fail(&r, "no bytes given");
    return parse_bytes(bytes, len, out, &r);
}

/* `part` names what was being read, for the message. */
static int read_fully(FILE *f, void *buf, size_t n, const char *part, const reporter *r)
{
    if (fread(buf, 1, n, f) == n)
        return 0;
    if (ferror(f))
        return npy_fail(r, "read error in the %s: %s", part, strerror(errno));
    return npy_fail(r, "the file ended early while reading the %s (did it change while being read?)", part);
}

static int read_and_parse_header(FILE *f, const npy_preamble *pre, npy_layout *layout, const reporter *r)
{
    char *header = malloc(pre->header_len > 0 ? (size_t)pre->header_len : 1);
    if (!header)
        return npy_fail(r, "out of memory reading a %" PRIu64 "-byte header", pre->header_len);
    int bad;
    if (fseek(f, (long)pre->header_start, SEEK_SET) != 0)
        bad = npy_fail(r, "cannot seek: %s", strerror(errno));
    else
        bad = read_fully(f, header, (size_t)pre->header_len, "header", r)
              || parse_header(header, (size_t)pre->header_len, pre->header_start, layout, r);
    free(header);
    return bad;
}

/* Reads piece by piece, after checking each length against the file size, so that a
 * hostile header never makes us allocate more than the file holds. */
static int read_regular_file(FILE *f, uint64_t size, npy_array *out, const reporter *r)
{
    unsigned char preamble_bytes[NPY_LONGEST_PREAMBLE];
    size_t first = size < sizeof preamble_bytes ? (size_t)size : sizeof preamble_bytes;
    npy_preamble pre = {0, 0};
    npy_layout layout;
    if (read_fully(f, preamble_bytes, first, "preamble", r) || parse_preamble(preamble_bytes, size, &pre, r)
        || read_and_parse_header(f, &pre, &layout, r)
        || check_data_length(&layout, size - pre.header_start - pre.header_len, r))
        return 1;
    size_t nbytes = layout.count * item_size(&layout);
    void *data = NULL;
    if (nbytes > 0) {
        data = malloc(nbytes);
        if (!data)
            return npy_fail(r, "out of memory reading %zu bytes of data", nbytes);
        if (read_fully(f, data, nbytes, "data", r)) {
            free(data);
            return 1;
        }
    }
    fill_array(out, &layout, data);
    return 0;
}

/* Pipes and devices have no size up front, so read them whole (bounded) and parse in memory. */
static int read_stream(FILE *f, npy_array *out, const reporter *r)
{
    const size_t limit = (size_t)(NPY_MAX_DATA_BYTES < SIZE_MAX / 2 ? NPY_MAX_DATA_BYTES : SIZE_MAX / 2) + (1u << 20);
    size_t len = 0, cap = 1u << 16;
    unsigned char *buf = malloc(cap);
    while (buf) {
        len += fread(buf + len, 1, cap - len, f);
        int not_npy = len >= NPY_MAGIC_LEN && memcmp(buf, NPY_MAGIC, NPY_MAGIC_LEN) != 0;
        if (len < cap || cap >= limit || not_npy) /* no need to swallow a stream that is not .npy */
            break;
        cap = cap > limit / 2 ? limit : cap * 2;
        unsigned char *grown = realloc(buf, cap);
        if (!grown)
            free(buf);
        buf = grown;
    }
    int rc;
    if (!buf)
        rc = npy_fail(r, "out of memory reading the file");
    else if (ferror(f))
        rc = npy_fail(r, "read error: %s", strerror(errno));
    else if (len == limit)
        rc = npy_fail(r, "more than %zu bytes: too large for a .npy file within the 16 GiB limit", limit);
    else
        rc = parse_bytes(buf, len, out, r);
    free(buf);
    return rc;
}

static int read_path(const char *path, int allow_f16, npy_array *out, char *msg, size_t msgsize)
{
    reporter r = make_reporter(msg, msgsize, path ? path : "<no path>");
    r.allow_f16 = allow_f16;
    if (!out)
        return npy_fail(&r, "no output array given");
    memset(out, 0, sizeof *out);
    if (!path)
        return npy_fail(&r, "no path given");
    FILE *f = fopen(path, "rb");
    if (!f)
        return npy_fail(&r, "cannot open: %s", strerror(errno));
    struct stat st;
    int rc;
    if (fstat(fileno(f), &st) != 0)
        rc = npy_fail(&r, "cannot stat: %s", strerror(errno));
    else if (S_ISDIR(st.st_mode))
        rc = npy_fail(&r, "is a directory, not a .npy file");
    else if (S_ISREG(st.st_mode))
        rc = read_regular_file(f, (uint64_t)st.st_size, out, &r);
    else
        rc = read_stream(f, out, &r);
    fclose(f);
    return rc;
}

int npy_read(const char *path, npy_array *out, char *msg, size_t msgsize)
{
    return read_path(path, 0, out, msg, msgsize);
}

int npy_read_f16(const char *path, npy_array *out, char *msg, size_t msgsize)
{
    return read_path(path, 1, out, msg, msgsize);
}

void npy_free(npy_array *a)
{
    if (!a)
        return;
    free(a->data);
    memset(a, 0, sizeof *a);
}

/* ---- writing ---------------------------------------------------------------- */

static int layout_from_args(attnc_dtype dtype, int rank, const int64_t *shape, npy_layout *layout,
                            const reporter *r)
{
    memset(layout, 0, sizeof *layout);
    if (dtype != ATTNC_F32 && dtype != ATTNC_I32)
        return npy_fail(r, "cannot write dtype %d (need ATTNC_F32 or ATTNC_I32)", (int)dtype);
    if (rank < 0 || rank > ATTNC_MAX_RANK)
        return npy_fail(r, "cannot write rank %d (need 0 to %d)", rank, ATTNC_MAX_RANK);
    if (rank > 0 && !shape)
        return npy_fail(r, "no shape given for a rank-%d array", rank);
    for (int i = 0; i < rank; i++) {
        if (shape[i] < 0)
            return npy_fail(r, "cannot write negative dimension %" PRId64 " (dimension %d)", shape[i], i);
        layout->shape[i] = shape[i];
    }
    layout->dtype = dtype;
    layout->rank = rank;
    return count_elements(layout, r);
}

/* Preamble, dict, space padding and '\n', as numpy.save writes them; returns the total size. */
static size_t format_file_header(const npy_layout *layout, char *buf, size_t size)
{
    char shape_text[NPY_SHAPE_TEXT_MAX];
    format_shape(layout->shape, layout->rank, shape_text);
    const size_t preamble = NPY_MAGIC_LEN + 4;
    int dict_len = snprintf(buf + preamble, size - preamble, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
                            dtype_descr(layout), shape_text);
    size_t unpadded = preamble + (size_t)dict_len + 1;
    size_t total = (unpadded + NPY_ALIGN - 1) / NPY_ALIGN * NPY_ALIGN;
    memset(buf + preamble + dict_len, ' ', total - unpadded);
    buf[total - 1] = '\n';
    size_t header_len = total - preamble;
    memcpy(buf, NPY_MAGIC, NPY_MAGIC_LEN);
    buf[6] = 1;
    buf[7] = 0;
    buf[8] = (char)(header_len & 0xff);
    buf[9] = (char)(header_len >> 8);
    return total;
}

int npy_write_to(outfile *f, attnc_dtype dtype, int rank, const int64_t *shape, const void *data, char *msg,
                 size_t msgsize)
{
    reporter r = make_reporter(msg, msgsize, f ? outfile_path(f) : "<no file>");
    if (!f)
        return npy_fail(&r, "no file given");
    npy_layout layout;
    if (layout_from_args(dtype, rank, shape, &layout, &r))
        return 1;
    if (layout.count > 0 && !data)
        return npy_fail(&r, "no data given for %zu elements", layout.count);
    char header[512];
    size_t header_size = format_file_header(&layout, header, sizeof header);
    return outfile_write(f, header, header_size, msg, msgsize)
           || (layout.count > 0 && outfile_write(f, data, layout.count * item_size(&layout), msg, msgsize));
}

int npy_write(const char *path, attnc_dtype dtype, int rank, const int64_t *shape, const void *data, char *msg,
              size_t msgsize)
{
    outfile *f = NULL;
    int rc = outfile_open(path, &f, msg, msgsize) || npy_write_to(f, dtype, rank, shape, data, msg, msgsize)
             || outfile_commit(&f, 1, msg, msgsize);
    outfile_discard(f);
    return rc;
}
