/* npyrand — write a .npy file of deterministic pseudo-random values.
 *
 *   npyrand OUT.npy f4|i4 DIM[,DIM...] [--seed N] [--range LO,HI] [--sorted]
 *
 * f4 values are uniform in [LO,HI) (default [-1,1)); i4 values are integers
 * in [LO,HI) (default [0,4)).  A shape of "" or "scalar" makes a rank-0
 * array.  The same arguments always give the same file, on any machine, so
 * tests and scripts can regenerate inputs instead of storing them.
 * Exit status: 0 written, 1 could not write, 2 bad arguments.
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npy.h"

#define USAGE "usage: npyrand OUT.npy f4|i4 DIM[,DIM...] [--seed N] [--range LO,HI] [--sorted]"

typedef struct options {
    const char *out_path;
    attnc_dtype dtype;
    int rank;
    int64_t shape[ATTNC_MAX_RANK];
    size_t count;
    uint64_t seed;
    int has_range;
    int sorted; /* ascending order: i4 ids of packed documents */
    double lo, hi;
} options;

/* `arg` (may be NULL) is the argument at fault. */
static int usage_error(const char *what, const char *arg)
{
    if (arg)
        fprintf(stderr, "npyrand: %s: '%s'\n%s\n", what, arg, USAGE);
    else
        fprintf(stderr, "npyrand: %s\n%s\n", what, USAGE);
    fprintf(stderr, "  DIMs \"\" or \"scalar\" give a rank-0 array; f4 values are uniform in [LO,HI)\n"
                    "  (default -1,1), i4 values are integers in [LO,HI) (default 0,4); --seed defaults to 0.\n");
    return 2;
}

/* splitmix64: tiny, well mixed, and its output is fixed by the seed alone. */
static uint64_t next_random(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int parse_u64(const char *s, uint64_t *out)
{
    if (*s < '0' || *s > '9')
        return 1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return 1;
    *out = v;
    return 0;
}

/* "" or "scalar" is rank 0; otherwise comma-separated non-negative integers. */
static int parse_shape(const char *text, options *o)
{
    o->rank = 0;
    if (*text == '\0' || strcmp(text, "scalar") == 0)
        return 0;
    const char *p = text;
    for (;;) {
        if (o->rank == ATTNC_MAX_RANK || *p < '0' || *p > '9')
            return 1;
        char *end;
        errno = 0;
        long long dim = strtoll(p, &end, 10);
        if (errno)
            return 1;
        o->shape[o->rank++] = dim;
        if (*end == '\0')
            return 0;
        if (*end != ',')
            return 1;
        p = end + 1;
    }
}

static int parse_range(const char *text, options *o)
{
    char *end;
    errno = 0;
    o->lo = strtod(text, &end);
    if (errno || end == text || *end != ',')
        return 1;
    const char *hi_text = end + 1;
    o->hi = strtod(hi_text, &end);
    if (errno || end == hi_text || *end)
        return 1;
    if (!isfinite(o->lo) || !isfinite(o->hi) || !(o->lo < o->hi))
        return 1;
    if (o->dtype == ATTNC_F32) /* the range must survive conversion to float */
        return o->lo < -FLT_MAX || o->hi > FLT_MAX || !((float)o->lo < (float)o->hi);
    if (o->lo < INT32_MIN || o->hi > (double)INT32_MAX + 1) /* before the casts below, which need range */
        return 1;
    return o->lo != (double)(int64_t)o->lo || o->hi != (double)(int64_t)o->hi;
}

/* "--name VALUE" or "--name=VALUE"; returns the value or NULL if argv[*i] is not that option. */
static const char *option_value(int argc, char **argv, int *i, const char *name, int *missing)
{
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) != 0)
        return NULL;
    if (argv[*i][n] == '=')
        return argv[*i] + n + 1;
    if (argv[*i][n] != '\0')
        return NULL;
    if (*i + 1 >= argc) {
        *missing = 1;
        return NULL;
    }
    return argv[++*i];
}

/* Product of the shape, or 0 with *too_big set past npy's 16 GiB limit. */
static size_t element_count(const options *o, int *too_big)
{
    const uint64_t max_count = ((uint64_t)16 << 30) / 4;
    uint64_t count = 1;
    *too_big = 0;
    for (int i = 0; i < o->rank; i++)
        if (o->shape[i] == 0)
            return 0;
    for (int i = 0; i < o->rank; i++) {
        if ((uint64_t)o->shape[i] > max_count / count || (uint64_t)o->shape[i] * count > SIZE_MAX / 4) {
            *too_big = 1;
            return 0;
        }
        count *= (uint64_t)o->shape[i];
    }
    return (size_t)count;
}

static int parse_args(int argc, char **argv, options *o)
{
    const char *positional[3];
    const char *range_text = NULL;
    int npositional = 0;
    memset(o, 0, sizeof *o);
    for (int i = 1; i < argc; i++) {
        int missing = 0;
        if (strcmp(argv[i], "--sorted") == 0) {
            o->sorted = 1;
            continue;
        }
        const char *seed = option_value(argc, argv, &i, "--seed", &missing);
        const char *range = seed ? NULL : option_value(argc, argv, &i, "--range", &missing);
        if (missing)
            return usage_error("missing value for option", argv[i]);
        if (seed && parse_u64(seed, &o->seed))
            return usage_error("bad --seed (need a non-negative integer)", seed);
        if (range)
            range_text = range;
        if (seed || range)
            continue;
        if (strncmp(argv[i], "--", 2) == 0)
            return usage_error("unknown option", argv[i]);
        if (npositional == 3)
            return usage_error("too many arguments", argv[i]);
        positional[npositional++] = argv[i];
    }
    if (npositional < 3)
        return usage_error("need OUT.npy, a dtype and a shape", NULL);
    o->out_path = positional[0];
    if (strcmp(positional[1], "f4") == 0)
        o->dtype = ATTNC_F32;
    else if (strcmp(positional[1], "i4") == 0)
        o->dtype = ATTNC_I32;
    else
        return usage_error("bad dtype (need f4 or i4)", positional[1]);
    if (parse_shape(positional[2], o))
        return usage_error("bad shape (need DIM[,DIM...] of up to 8 non-negative integers, or scalar)", positional[2]);
    int too_big;
    o->count = element_count(o, &too_big);
    if (too_big)
        return usage_error("the shape has too many elements (more than 16 GiB of data)", positional[2]);
    o->lo = o->dtype == ATTNC_F32 ? -1.0 : 0.0;
    o->hi = o->dtype == ATTNC_F32 ? 1.0 : 4.0;
    if (range_text && parse_range(range_text, o))
        return usage_error(o->dtype == ATTNC_F32 ? "bad --range (need float32 LO,HI with LO < HI)"
                                                 : "bad --range (need int32 LO,HI with LO < HI)",
                           range_text);
    return 0;
}

static float random_float(uint64_t *state, float lo, float hi)
{
    for (;;) {
        double unit = (double)(next_random(state) >> 40) * 0x1p-24; /* [0, 1) */
        float v = (float)((double)lo + ((double)hi - (double)lo) * unit);
        if (v < hi) /* rounding to float can land on hi; draw again to keep the interval half-open */
            return v;
    }
}

static int32_t random_int(uint64_t *state, int64_t lo, int64_t hi)
{
    uint64_t span = (uint64_t)(hi - lo); /* at most 2^32 */
    return (int32_t)(lo + (int64_t)(((next_random(state) >> 32) * span) >> 32));
}

static int compare_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return x < y ? -1 : x > y;
}

static int compare_f32(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

static void *fill_random(const options *o, size_t count)
{
    void *data = malloc(count ? count * 4 : 1);
    uint64_t state = o->seed;
    for (size_t i = 0; data && i < count; i++) {
        if (o->dtype == ATTNC_F32)
            ((float *)data)[i] = random_float(&state, (float)o->lo, (float)o->hi);
        else
            ((int32_t *)data)[i] = random_int(&state, (int64_t)o->lo, (int64_t)o->hi);
    }
    if (data && o->sorted)
        qsort(data, count, 4, o->dtype == ATTNC_F32 ? compare_f32 : compare_i32);
    return data;
}

int main(int argc, char **argv)
{
    options o;
    int rc = parse_args(argc, argv, &o);
    if (rc)
        return rc;
    void *data = fill_random(&o, o.count);
    if (!data) {
        fprintf(stderr, "npyrand: %s: out of memory for %zu elements\n", o.out_path, o.count);
        return 1;
    }
    char msg[512];
    rc = npy_write(o.out_path, o.dtype, o.rank, o.shape, data, msg, sizeof msg);
    free(data);
    if (rc) {
        fprintf(stderr, "npyrand: %s\n", msg);
        return 1;
    }
    return 0;
}
