/* options.c — the command line into Options (shared/spec/interfaces.md
 * section 1), with no printing, no exiting and no files touched, so the
 * parser can be fuzzed (tests/fuzz/fuzz_cli.c).  Every value that does not
 * depend on the spec is checked here: flags per command, counts, --shape
 * sizes (bounded like the .npy data `run` reads), --tile, --seed,
 * --int-range.  Failures return EXIT_USAGE with a one-line message. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npy.h"
#include "options.h"

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int usage_error(char *msg, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, n, fmt, ap);
    va_end(ap);
    /* one printable line even when an argument quoted in it holds a newline */
    for (char *p = msg; n && *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
    return EXIT_USAGE;
}

/* A whole decimal integer (optional sign, no spaces): 0, or ERANGE, or EINVAL. */
static int parse_int64(const char *s, int64_t *v) {
    if (!((*s >= '0' && *s <= '9') || ((*s == '-' || *s == '+') && s[1] >= '0' && s[1] <= '9'))) return EINVAL;
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (*end) return EINVAL;
    if (errno == ERANGE) return ERANGE;
    *v = x;
    return 0;
}

int cli_parse_threads(const char *s, int *out, char *msg, size_t n) {
    int64_t v;
    if (parse_int64(s, &v) || v < 0 || v > 4096)
        return usage_error(msg, n, "--threads: '%s' is not a thread count (0-4096)", s);
    *out = (int)v;
    return 0;
}

int cli_parse_tile(const char *text, int *tile_q, int *tile_k, char *msg, size_t n) {
    const char *x = strchr(text, 'x');
    char first[32];
    int64_t a, b;
    if (!x || (size_t)(x - text) >= sizeof first)
        return usage_error(msg, n, "--tile '%s': expected BQxBK, e.g. 64x64", text);
    memcpy(first, text, (size_t)(x - text));
    first[x - text] = 0;
    if (parse_int64(first, &a) || parse_int64(x + 1, &b) || a < 1 || b < 1 || a > 4096 || b > 4096)
        return usage_error(msg, n, "--tile '%s': expected BQxBK with sizes 1 to 4096, e.g. 64x64", text);
    *tile_q = (int)a;
    *tile_k = (int)b;
    return 0;
}

/* ---- --shape ---------------------------------------------------------------- */

/* The largest tensor a shape may describe: what a .npy file may hold
 * (NPY_MAX_DATA_BYTES), as `run` reads it, in floats. */
static const uint64_t MAX_TENSOR_ELEMENTS = NPY_MAX_DATA_BYTES / sizeof(float);

/* Elements of a [d0, d1, d2, d3] tensor, or UINT64_MAX when that overflows. */
static uint64_t tensor_elements(const int64_t dims[4]) {
    uint64_t count = 1;
    for (int i = 0; i < 4; i++)
        if (dims[i] == 0) return 0;
    for (int i = 0; i < 4; i++) {
        if (count > UINT64_MAX / (uint64_t)dims[i]) return UINT64_MAX;
        count *= (uint64_t)dims[i];
    }
    return count;
}

/* Q, K, V and O (and the LSE) are what diff and bench allocate: each must fit
 * in a .npy file, and so must all of them together. */
static int check_shape_bounds(const char *text, const attnc_sizes *s, char *msg, size_t n) {
    static const char *const names[4] = {"Q", "K", "V", "O"}, *const dims_text[4] = {
                                                                 "B, H, Lq, D", "B, Hkv, Lk, D", "B, Hkv, Lk, Dv",
                                                                 "B, H, Lq, Dv"};
    const int64_t dims[4][4] = {{s->B, s->H, s->Lq, s->D},
                                {s->B, s->Hkv, s->Lk, s->D},
                                {s->B, s->Hkv, s->Lk, s->Dv},
                                {s->B, s->H, s->Lq, s->Dv}};
    uint64_t total = tensor_elements((const int64_t[4]){s->B, s->H, s->Lq, 1}); /* the LSE */
    for (int t = 0; t < 4; t++) {
        uint64_t count = tensor_elements(dims[t]);
        if (count > MAX_TENSOR_ELEMENTS)
            return usage_error(msg, n,
                               "--shape: %s [%s] = [%" PRId64 ", %" PRId64 ", %" PRId64 ", %" PRId64
                               "] has more than %" PRIu64 " floats (the 16 GiB limit of a .npy file)",
                               names[t], dims_text[t], dims[t][0], dims[t][1], dims[t][2], dims[t][3],
                               MAX_TENSOR_ELEMENTS);
        total += count; /* each <= 2^32: no overflow */
    }
    if (total > MAX_TENSOR_ELEMENTS)
        return usage_error(msg, n,
                           "--shape '%s': Q, K, V, O and LSE have %" PRIu64
                           " floats together, more than %" PRIu64 " (the 16 GiB limit of a .npy file)",
                           text, total, MAX_TENSOR_ELEMENTS);
    return 0;
}

/* One "NAME=VALUE" item of --shape, `len` bytes of `item`, into values[]. */
static int shape_item(const char *text, const char *item, size_t len, int64_t values[7], char *msg, size_t n) {
    static const char *const names[7] = {"B", "H", "Hkv", "Lq", "Lk", "D", "Dv"};
    char buf[64];
    if (len >= sizeof buf) return usage_error(msg, n, "--shape '%s': item '%.*s...' is too long", text, 20, item);
    memcpy(buf, item, len);
    buf[len] = 0;
    char *eq = strchr(buf, '=');
    if (!eq) return usage_error(msg, n, "--shape '%s': expected NAME=INT,... with B H Hkv Lq Lk D Dv", text);
    *eq = 0;
    int which = -1;
    for (int i = 0; i < 7; i++)
        if (!strcmp(buf, names[i])) which = i;
    if (which < 0) return usage_error(msg, n, "--shape: unknown size '%s' (B H Hkv Lq Lk D Dv)", buf);
    if (values[which] >= 0) return usage_error(msg, n, "--shape: size %s is given twice", buf);
    int64_t v;
    int e = parse_int64(eq + 1, &v);
    if (e == EINVAL) return usage_error(msg, n, "--shape: size %s='%s' is not an integer", buf, eq + 1);
    if (e == ERANGE || v > INT64_MAX / 2) return usage_error(msg, n, "--shape: size %s=%s is too large", buf, eq + 1);
    if (v < 0) return usage_error(msg, n, "--shape: size %s=%s is negative", buf, eq + 1);
    values[which] = v;
    return 0;
}

int cli_parse_shape(const char *text, attnc_sizes *sz, char *msg, size_t n) {
    int64_t v[7] = {-1, -1, -1, -1, -1, -1, -1}; /* -1: not given */
    for (const char *p = text;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (shape_item(text, p, len, v, msg, n)) return EXIT_USAGE;
        if (!comma) break;
        p = comma + 1;
    }
    int64_t B = v[0] < 0 ? 1 : v[0], H = v[1] < 0 ? 1 : v[1], Lq = v[3] < 0 ? 128 : v[3], D = v[5] < 0 ? 64 : v[5];
    *sz = (attnc_sizes){B, H, v[2] < 0 ? H : v[2], Lq, v[4] < 0 ? Lq : v[4], D, v[6] < 0 ? D : v[6]};
    return check_shape_bounds(text, sz, msg, n);
}

/* ---- NAME=VALUE options ------------------------------------------------------- */

const char *split_assignment(const char *s, char *name, size_t n) {
    const char *eq = strchr(s, '=');
    if (!eq || eq == s || (size_t)(eq - s) >= n) return NULL;
    memcpy(name, s, (size_t)(eq - s));
    name[eq - s] = 0;
    return eq + 1;
}

int cli_parse_int_range(const char *text, char *name, size_t name_size, int64_t *lo, int64_t *hi, char *msg,
                        size_t n) {
    const char *val = split_assignment(text, name, name_size);
    const char *comma = val ? strchr(val, ',') : NULL;
    char first[32];
    int bad = !comma || (size_t)(comma - val) >= sizeof first;
    if (!bad) {
        memcpy(first, val, (size_t)(comma - val));
        first[comma - val] = 0;
        /* hi - lo must fit: the values are drawn as lo + random % (hi - lo) */
        bad = parse_int64(first, lo) || parse_int64(comma + 1, hi) || *hi <= *lo || *lo < INT32_MIN ||
              *hi > (int64_t)INT32_MAX + 1;
    }
    if (bad)
        return usage_error(msg, n, "--int-range '%s': expected NAME=LO,HI with LO < HI within int32", text);
    return 0;
}

/* ---- flags -------------------------------------------------------------------- */

int cli_known_command(const char *cmd) {
    static const char *const cmds[] = {"check", "run", "grad", "emit", "diff", "bench", "merge", "show"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (!strcmp(cmd, cmds[i])) return 1;
    return 0;
}

/* Which flags each command takes. */
static int flag_allowed(const char *cmd, const char *flag) {
    static const struct {
        const char *cmd, *flags;
    } table[] = {
        {"check", " --variant "},
        {"run", " --variant --q --k --v -o --lse --param --tensor --backend --threads --dtype --layout --q-start --k-start "},
        {"grad", " --variant --q --k --v --do --dlse --dq --dk --dv --dtensor --param --tensor --backend --threads "
                 "--dtype --layout "},
        {"emit", " --variant --target -D -o --shape --param --tensor --tile --dump-passes --separable-bias --dtype "
                 "--head-dim "},
        {"diff", " --variant --shape --param --tensor --seed --backends --threads --int-range --separable-bias "
                 "--dtype --layout --grad --tile "},
        {"bench", " --variant --shape --backend --threads --param --tensor --reps --tile --int-range --separable-bias --paged "
                  "--page-layout --dtype --layout --grad "},
        {"merge", " --o1 --lse1 --o2 --lse2 -o --lse --weight "},
        {"show", " --variant --shape --param --tensor --tile --int-range --seed -o --at --size "},
    };
    if (strchr(flag, ' ') || strlen(flag) > 32) return 0;
    char key[40];
    snprintf(key, sizeof key, " %s ", flag);
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(table[i].cmd, cmd) == 0) return strstr(table[i].flags, key) != NULL;
    return 0;
}

static int push(const char **list, int *count, const char *v, const char *flag, char *msg, size_t n) {
    if (*count == MAX_REPEATED) return usage_error(msg, n, "too many %s options (at most %d)", flag, MAX_REPEATED);
    list[(*count)++] = v;
    return 0;
}

/* Store the value v of flag a (a flag that flag_allowed let through). */
static int take_value(Options *o, const char *a, const char *v, char *msg, size_t n) {
    const char **slot = !strcmp(a, "--variant")    ? &o->variant
                        : !strcmp(a, "--q")        ? &o->q
                        : !strcmp(a, "--k")        ? &o->k
                        : !strcmp(a, "--v")        ? &o->v
                        : !strcmp(a, "-o")         ? &o->o
                        : !strcmp(a, "--lse")      ? &o->lse
                        : !strcmp(a, "--backend")  ? &o->backend
                        : !strcmp(a, "--threads")  ? &o->threads
                        : !strcmp(a, "--target")   ? &o->target
                        : !strcmp(a, "--shape")    ? &o->shape
                        : !strcmp(a, "--tile")     ? &o->tile
                        : !strcmp(a, "--seed")     ? &o->seed
                        : !strcmp(a, "--backends") ? &o->backends
                        : !strcmp(a, "--reps")     ? &o->reps
                        : !strcmp(a, "--dtype")    ? &o->dtype
                        : !strcmp(a, "--layout")   ? &o->layout
                        : !strcmp(a, "--o1")       ? &o->o1
                        : !strcmp(a, "--lse1")     ? &o->lse1
                        : !strcmp(a, "--o2")       ? &o->o2
                        : !strcmp(a, "--lse2")     ? &o->lse2
                        : !strcmp(a, "--q-start")  ? &o->q_start
                        : !strcmp(a, "--k-start")  ? &o->k_start
                        : !strcmp(a, "--paged")    ? &o->paged
                        : !strcmp(a, "--page-layout") ? &o->page_layout
                        : !strcmp(a, "--head-dim") ? &o->head_dim
                        : !strcmp(a, "--do")       ? &o->dout
                        : !strcmp(a, "--dlse")     ? &o->dlse
                        : !strcmp(a, "--dq")       ? &o->dq
                        : !strcmp(a, "--dk")       ? &o->dk
                        : !strcmp(a, "--dv")       ? &o->dv
                        : !strcmp(a, "--at")       ? &o->at
                        : !strcmp(a, "--size")     ? &o->size
                                                   : NULL;
    if (slot) {
        *slot = v;
        return 0;
    }
    if (!strcmp(a, "--int-range")) return push(o->int_ranges, &o->nint_ranges, v, a, msg, n);
    if (!strcmp(a, "--param")) return push(o->params, &o->nparams, v, a, msg, n);
    if (!strcmp(a, "--tensor")) return push(o->tensors, &o->ntensors, v, a, msg, n);
    if (!strcmp(a, "-D")) return push(o->defines, &o->ndefines, v, a, msg, n);
    if (!strcmp(a, "--dtensor")) return push(o->dtensors, &o->ndtensors, v, a, msg, n);
    return usage_error(msg, n, "internal error: option '%s' has no slot", a);
}

/* --dtype and --layout (shared/spec/interfaces.md section 4.2). */
static int parse_storage(Options *o, char *msg, size_t n) {
    static const char *const elems[] = {"f32", "f16", "bf16"}; /* in attnc_elem order */
    o->elem = ATTNC_ELEM_F32;
    if (o->dtype) {
        int found = 0;
        for (int i = 0; i < 3; i++)
            if (!strcmp(o->dtype, elems[i])) o->elem = (attnc_elem)i, found = 1;
        if (!found) return usage_error(msg, n, "--dtype '%s': expected f32, f16 or bf16", o->dtype);
    }
    if (o->layout && strcmp(o->layout, "bhld") && strcmp(o->layout, "blhd"))
        return usage_error(msg, n, "--layout '%s': expected bhld or blhd", o->layout);
    o->blhd = o->layout && !strcmp(o->layout, "blhd");
    return 0;
}

/* merge: both parts and -o; the LSEs of both parts (a softmax merge needs
 * them; a --weight merge may merge O alone), and --lse only with them. */
static int check_merge(const Options *o, char *msg, size_t n) {
    if (!o->o1 || !o->o2 || !o->o) return usage_error(msg, n, "merge needs --o1, --o2 and -o");
    if (!o->weight && (!o->lse1 || !o->lse2))
        return usage_error(msg, n, "merge needs --lse1 and --lse2 (only a --weight merge may go without)");
    if (!o->lse1 != !o->lse2) return usage_error(msg, n, "merge: give --lse1 and --lse2 both, or neither");
    if (o->lse && !o->lse1) return usage_error(msg, n, "merge: --lse needs --lse1 and --lse2");
    return 0;
}

/* emit --target cuda --dtype f16|bf16 --head-dim D[,Dv] (or --shape's D and Dv): the tensor-core kernel's
 * specialisation (docs/cuda.md), whose head sizes are multiples of 16 up to 256 and whose tiles are 64 x 64. */
static int check_emit_fa2(Options *o, char *msg, size_t n) {
    if (!o->dtype && !o->head_dim) return 0;
    if (!o->target || strcmp(o->target, "cuda"))
        return usage_error(msg, n, "emit: --dtype and --head-dim go with --target cuda (the tensor-core kernel)");
    if (!o->dtype) return usage_error(msg, n, "emit --head-dim: give the tensor-core kernel's --dtype (f16 or bf16)");
    if (o->elem == ATTNC_ELEM_F32)
        return usage_error(msg, n, "emit --target cuda --dtype: the tensor-core kernel takes f16 or bf16 "
                                   "(without --dtype: the scaffold, every type)");
    if (!o->head_dim && !o->shape)
        return usage_error(msg, n, "emit --target cuda --dtype %s: give the head size, --head-dim D[,Dv]", o->dtype);
    int64_t d = o->sizes.D, dv = o->sizes.Dv;
    if (o->head_dim) {
        const char *comma = strchr(o->head_dim, ',');
        size_t len = comma ? (size_t)(comma - o->head_dim) : strlen(o->head_dim);
        char first[32];
        int bad = len >= sizeof first;
        if (!bad) {
            snprintf(first, sizeof first, "%.*s", (int)len, o->head_dim);
            bad = parse_int64(first, &d) || (comma ? parse_int64(comma + 1, &dv) : (dv = d, 0));
        }
        if (bad) return usage_error(msg, n, "--head-dim '%s': expected D or D,Dv, e.g. 128", o->head_dim);
    }
    if (d < 16 || dv < 16 || d % 16 || dv % 16 || d > 256 || dv > 256)
        return usage_error(msg, n, "emit --target cuda --dtype %s: the tensor-core kernel takes D and Dv multiples of "
                                   "16 up to 256, not D = %lld, Dv = %lld", o->dtype, (long long)d, (long long)dv);
    if (o->tile && (o->tile_q != 64 || o->tile_k != 64))
        return usage_error(msg, n, "emit --target cuda --dtype %s: the tensor-core kernel has 64x64 tiles, not --tile %s",
                           o->dtype, o->tile);
    o->fa2_d = (int)d, o->fa2_dv = (int)dv;
    return 0;
}

/* show: --shape and -o; --at B,H within int64, --size 16 to 4096 pixels. */
static int check_show(Options *o, char *msg, size_t n) {
    if (!o->shape || !o->o) return usage_error(msg, n, "show needs --shape and -o (a .png file)");
    int64_t v = 512;
    if (o->size && (parse_int64(o->size, &v) || v < 16 || v > 4096))
        return usage_error(msg, n, "--size '%s': expected the picture's side in pixels, 16 to 4096", o->size);
    o->pixels = (int)v;
    o->at_b = o->at_h = 0;
    if (o->at) {
        const char *comma = strchr(o->at, ',');
        char first[32];
        int bad = !comma || (size_t)(comma - o->at) >= sizeof first;
        if (!bad) {
            snprintf(first, sizeof first, "%.*s", (int)(comma - o->at), o->at);
            bad = parse_int64(first, &o->at_b) || parse_int64(comma + 1, &o->at_h) || o->at_b < 0 || o->at_h < 0;
        }
        if (bad) return usage_error(msg, n, "--at '%s': expected B,H (a batch and a query head, from 0)", o->at);
    }
    return 0;
}

/* The values that do not depend on the spec, and what each command needs. */
static int check_values(Options *o, char *msg, size_t n) {
    if (parse_storage(o, msg, n)) return EXIT_USAGE;
    if (o->threads && cli_parse_threads(o->threads, &o->nthreads, msg, n)) return EXIT_USAGE;
    if (o->tile && cli_parse_tile(o->tile, &o->tile_q, &o->tile_k, msg, n)) return EXIT_USAGE;
    if (o->shape && cli_parse_shape(o->shape, &o->sizes, msg, n)) return EXIT_USAGE;
    int64_t v = 1;
    if (o->reps && (parse_int64(o->reps, &v) || v < 1 || v > 1000000))
        return usage_error(msg, n, "--reps '%s': expected a positive count (at most 1000000)", o->reps);
    o->nreps = o->reps ? (int)v : 0;
    if (o->paged && (parse_int64(o->paged, &v) || v < 1 || v > 65536))
        return usage_error(msg, n, "--paged '%s': expected a page size in rows (1 to 65536)", o->paged);
    o->page_rows = o->paged ? (int)v : 0;
    if (o->page_layout && strcmp(o->page_layout, "nhd") && strcmp(o->page_layout, "hnd"))
        return usage_error(msg, n, "--page-layout '%s': expected nhd or hnd", o->page_layout);
    if (o->page_layout && !o->paged) return usage_error(msg, n, "--page-layout goes with --paged ROWS");
    o->page_hnd = o->page_layout && !strcmp(o->page_layout, "hnd");
    if (o->seed && (parse_int64(o->seed, &v) || v < 0))
        return usage_error(msg, n, "--seed '%s': expected a non-negative integer", o->seed);
    o->seed_value = o->seed ? (uint64_t)v : 1;
    for (int i = 0; i < o->nint_ranges; i++) {
        char name[128];
        int64_t lo, hi;
        if (cli_parse_int_range(o->int_ranges[i], name, sizeof name, &lo, &hi, msg, n)) return EXIT_USAGE;
    }
    if (!strcmp(o->cmd, "run") && (!o->q || !o->k || !o->v || !o->o))
        return usage_error(msg, n, "run needs --q, --k, --v and -o");
    if (!strcmp(o->cmd, "grad") && (!o->q || !o->k || !o->v || !o->dout || !o->dq || !o->dk || !o->dv))
        return usage_error(msg, n, "grad needs --q, --k, --v, --do, --dq, --dk and --dv");
    if (o->grad && o->page_rows) return usage_error(msg, n, "bench --grad: --paged does not apply (no paged backward)");
    if (!o->q_start != !o->k_start) return usage_error(msg, n, "run: --q-start and --k-start go together");
    if (!strcmp(o->cmd, "emit") && !o->target)
        return usage_error(msg, n, "emit needs --target (ir, llvm-ir, asm, c, cuda)");
    if (!strcmp(o->cmd, "emit") && check_emit_fa2(o, msg, n)) return EXIT_USAGE;
    if (!strcmp(o->cmd, "emit") && !o->shape && (o->nparams || o->ntensors))
        return usage_error(msg, n, "--param and --tensor describe a call: give its --shape too");
    if (!strcmp(o->cmd, "bench") && !o->shape)
        return usage_error(msg, n, "bench needs --shape (e.g. B=1,H=8,Lq=4096,Lk=4096,D=64)");
    if (!strcmp(o->cmd, "merge")) return check_merge(o, msg, n);
    if (!strcmp(o->cmd, "show")) return check_show(o, msg, n);
    return 0;
}

int cli_parse_args(int argc, char **argv, Options *o, char *msg, size_t n) {
    memset(o, 0, sizeof *o);
    if (n) msg[0] = 0;
    if (argc < 2) return usage_error(msg, n, "no command (see attnc --help)");
    o->cmd = argv[1];
    if (!cli_known_command(o->cmd)) return usage_error(msg, n, "unknown command '%s' (see attnc --help)", o->cmd);
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || a[1] == 0) {
            if (!strcmp(o->cmd, "merge")) return usage_error(msg, n, "unexpected argument '%s' (merge takes no FILE)", a);
            if (o->file) return usage_error(msg, n, "unexpected argument '%s' (only one FILE)", a);
            o->file = a;
            continue;
        }
        if (!flag_allowed(o->cmd, a))
            return usage_error(msg, n, "unknown option '%s' for '%s' (see attnc --help)", a, o->cmd);
        if (!strcmp(a, "--dump-passes") || !strcmp(a, "--separable-bias") || !strcmp(a, "--weight") ||
            !strcmp(a, "--grad")) {
            if (a[2] == 'd') o->dump_passes = 1;
            else if (a[2] == 's') o->separable_bias = 1;
            else if (a[2] == 'w') o->weight = 1;
            else o->grad = 1;
            continue;
        }
        if (i + 1 >= argc) return usage_error(msg, n, "option '%s' needs a value", a);
        if (take_value(o, a, argv[++i], msg, n)) return EXIT_USAGE;
    }
    if (!o->file && strcmp(o->cmd, "merge")) return usage_error(msg, n, "'%s' needs a FILE (see attnc --help)", o->cmd);
    return check_values(o, msg, n);
}
