/* difffuzz.c — attnc-fuzz, the differential fuzzer (issue 8): random
 * well-typed specs (specgen.c) on random calls, every backend against the
 * reference interpreter through the public C API (fuzzcase.c); on a
 * mismatch, a minimised reproducer directory.
 *
 *   attnc-fuzz --seed N --count M [--backends llvm,tcc,refplan,cuda-emu]
 *              [--out DIR] [--replay DIR] [--verbose] [--lse-always]
 *              [--fork | --no-fork] [--timeout S] [--max-threads N]
 *
 * A call passes LSE = NULL (optional in the API) one time in five, unless
 * --lse-always; the backend runs on 1 to N threads (--max-threads, 3 by default).  With --fork (the
 * default for more than one spec) each spec runs in a child process: a
 * crash, an exit or a case running more than S seconds (--timeout, 60 by
 * default, 0 for none) is a finding of kind `crash` and the run goes on.
 * Without it a crash stops the run; --verbose names the case first.
 * --replay DIR runs the case a reproducer directory records, on its backend
 * or on those --backends names, in this process; exit status 1 while it
 * still mismatches (a crash crashes).
 *
 * One run in three also compares the backward pass (dQ, dK, dV and every
 * float tensor's gradient from the interpreter's O and LSE, random dO and
 * dLSE) where the backend has one, with Q, K and V in the case's element
 * type and layout and O, dO, dQ, dK and dV at their strides.
 * Each spec is run on every backend twice: with random tile sizes, and with a
 * random subset of its params fixed as defines (-D) and, half the time,
 * ATTNC_OPT_SEPARABLE_BIAS; the interpreter with the same defines is
 * checked against itself.  Exit status: 0 no mismatch and no generator
 * failure, 1 otherwise, 2 a bad command line. */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS (glibc); -std=c11 hides it */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if !defined(MAP_ANONYMOUS) && defined(MAP_ANON)
#define MAP_ANONYMOUS MAP_ANON
#endif

#include "attnc.h"
#include "fuzzcase.h"
#include "launch_stats.h"
#include "specgen.h"

enum { MAX_BACKENDS = 8, MAX_KEYS = 64, MINIMISE_RUNS = 400, SHARED_TEXT = 1 << 20, TRIAL_SECONDS = 10 };

typedef struct Opts {
    uint64_t seed;
    int count, verbose, backends_given, lse_always;
    int fork;         /* 1 --fork, 0 --no-fork, -1 not given */
    unsigned timeout; /* seconds per case in a child, 0 none */
    int max_threads;  /* a backend's call runs on 1..max_threads threads */
    attnc_backend backends[MAX_BACKENDS];
    int nb;
    const char *out, *replay;
} Opts;

/* Totals for the summary line. */
typedef struct Stats {
    int specs, runs, mismatches, crashes, genfail, skipped, runtime_errors, empty_rows;
    int fa2_runs; /* cuda-emu runs whose call went through the tensor-core kernel (cuda_emu_fa2_stats) */
    int grid_runs; /* runs whose call went through the block-order plan (multi-dimensional tiles) */
    int grid_mapped_runs; /* of those, runs whose kernel read K and V through the row map (AttnCall.kv_rows) */
    int grid_table_runs;  /* of those, runs that read terms of the cells' offsets from grid tables */
    int dropped_runs;     /* runs whose kept tile map dropped its runtime error checks after them */
    int kept_runs; /* runs whose second call ran on a kept tile map that skips or masks tiles */
    int chunk_runs; /* runs whose call cut its keys into chunks (kv heads interleaved) */
    int packed_runs; /* runs whose call read K and V packed head by head (rows apart, prefill) */
    int widened_runs; /* of those, runs whose 16-bit K or V were widened into float32 on the way */
    char key[MAX_KEYS][96];
    int key_count[MAX_KEYS], nkeys;
    double seconds[MAX_BACKENDS + 1];
    int backend_runs[MAX_BACKENDS + 1];
    int diag_runs[MAX_BACKENDS + 1]; /* of those, runs on tables of kv - q (1-D plans) */
    int band_runs[MAX_BACKENDS + 1]; /* ... and on plans with a band of keys per row */
    int live_runs[MAX_BACKENDS + 1]; /* ... and handed live key sets narrower than their tiles' ranges */
    int short_runs[MAX_BACKENDS + 1]; /* ... and reading pages in place with kv tiles shorter than the plan's */
} Stats;

/* What a child running one spec shares with its parent: the totals, and the case it runs (a crash's
 * reproducer).  The parent's own copy when nothing is forked. */
typedef struct Shared {
    Stats st;
    int has_case;   /* cur and text hold the case being run */
    int minimising; /* ... which is a minimiser's trial, not the generated spec */
    FuzzCase cur;
    char text[SHARED_TEXT];
} Shared;

static Shared *sh;
static int in_child;          /* this process runs one spec for its parent */
static unsigned case_seconds; /* the alarm of each case in a child */
static int threads_high;       /* the most threads a call of this process asked for (the pool keeps them) */

/* c as a reproducer must have it: with a first call on as many threads as this process has used. */
static FuzzCase as_met(const FuzzCase *c) {
    FuzzCase m = *c;
    if (threads_high > (c->threads > 0 ? c->threads : 1)) m.warm_threads = threads_high;
    return m;
}

static uint64_t next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static int pick(uint64_t *s, int n) { return (int)(next(s) % (uint64_t)n); }

static int usage(const char *why) {
    fprintf(stderr, "attnc-fuzz: %s\nusage: attnc-fuzz --seed N --count M [--backends llvm,tcc,refplan,cuda-emu] "
                    "[--out DIR] [--replay DIR] [--verbose] [--lse-always] [--fork | --no-fork] [--timeout S]\n"
                    "       [--max-threads N]\n",
            why);
    return 2;
}

static int parse_backends(const char *list, Opts *o) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", list);
    o->nb = 0;
    for (char *t = strtok(buf, ","); t; t = strtok(NULL, ",")) {
        if (o->nb == MAX_BACKENDS || !attnc_backend_parse(t, &o->backends[o->nb])) return -1;
        if (attnc_backend_available(o->backends[o->nb])) o->nb++;
        else fprintf(stderr, "attnc-fuzz: backend '%s' is not in this build: skipped\n", t);
    }
    return 0;
}

static int parse_opts(int argc, char **argv, Opts *o) {
    memset(o, 0, sizeof *o);
    o->count = 100;
    o->fork = -1;
    o->timeout = 60;
    o->max_threads = 3;
    parse_backends("llvm,tcc,refplan,cuda-emu", o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--verbose") || !strcmp(a, "--lse-always")) {
            *(a[2] == 'v' ? &o->verbose : &o->lse_always) = 1;
            continue;
        }
        if (!strcmp(a, "--fork") || !strcmp(a, "--no-fork")) {
            o->fork = a[2] == 'f';
            continue;
        }
        if (!v) return usage("an option without its value");
        char *end;
        errno = 0;
        if (!strcmp(a, "--seed")) o->seed = strtoull(v, &end, 10);
        else if (!strcmp(a, "--count")) o->count = (int)strtol(v, &end, 10);
        else if (!strcmp(a, "--timeout")) o->timeout = (unsigned)strtoul(v, &end, 10);
        else if (!strcmp(a, "--max-threads")) o->max_threads = (int)strtol(v, &end, 10);
        else if (!strcmp(a, "--backends")) end = (char *)v + strlen(v) + (parse_backends(v, o) ? -1 : 0), o->backends_given = 1;
        else if (!strcmp(a, "--out")) o->out = v, end = (char *)v + strlen(v);
        else if (!strcmp(a, "--replay")) o->replay = v, end = (char *)v + strlen(v);
        else return usage("unknown option");
        if (*end || errno || o->count < 0 || (!strcmp(a, "--timeout") && (*v == '-' || o->timeout > 86400)) ||
            o->max_threads < 1 || o->max_threads > 64)
            return usage("a bad option value");
        i++;
    }
    return 0;
}

/* ---- cases ------------------------------------------------------------------- */

/* Random sizes; now and then one of them 0 (empty outputs, a fully masked Lk = 0; D = 0 needs a finite `scale`,
 * else the call fails: such calls are drawn more often for a spec with one, and the interpreter says which). */
static void random_shape(uint64_t *s, const GenSpec *gs, FuzzCase *c) {
    static const int dims[] = {1, 2, 3, 5, 7, 8, 12, 16, 17, 24, 31, 33, 48, 64};
    int64_t hkv = 1 + pick(s, 3), g = 1 + pick(s, 4); /* g = 2 or 4 divides the q tile: heads may be packed */
    int64_t lq = pick(s, 40) == 0 ? 0 : pick(s, 3) == 0 ? 1 + pick(s, 9) : 9 + pick(s, 72);
    int64_t lk = pick(s, 40) == 0 ? 0 : pick(s, 3) == 0 ? 1 + pick(s, 9) : 9 + pick(s, 90);
    if (gs->square && pick(s, 5)) lk = lq;
    c->sz = (attnc_sizes){1 + (pick(s, 2) ? pick(s, 3) : 0), g * hkv, hkv, lq, lk, dims[pick(s, 14)], dims[pick(s, 14)]};
    int z = pick(s, 100);
    if (z < 3) c->sz.B = 0;
    else if (z < 5) c->sz.H = c->sz.Hkv = 0;
    else if (z < 7) c->sz.H = 0; /* a multiple of any Hkv */
    else if (z < 10) c->sz.Dv = 0;
    else if (z < (gs->has_scale ? 24 : 12)) c->sz.D = 0;
    int64_t work = 24000 / (1 + gs->chain_terms / 50); /* a long chain is evaluated per pair */
    while (c->sz.B * c->sz.H * c->sz.Lq * c->sz.Lk > work) { /* bounded work per call */
        if (c->sz.Lq > c->sz.Lk) c->sz.Lq = c->sz.Lq * 2 / 3;
        else c->sz.Lk = c->sz.Lk * 2 / 3;
    }
    if (gs->grid_w && pick(s, 4)) { /* a grid of whole 8 x 8 blocks: the block-order plan runs (multidim tiles) */
        c->sz.Lq = c->sz.Lk = gs->grid_w == 8 ? 64 * (1 + pick(s, 2)) : 128;
        c->sz.B = 1, c->sz.Hkv = 1, c->sz.H = c->sz.Lq == 64 ? 1 + pick(s, 4) : 1;
    }
}

/* Random tile sizes, now and then no LSE buffer, and in one case of four
 * each f16 or bf16 storage and a [B,L,H,D], fused and gapped, paged or ragged batch layout. */
static void random_tiles(uint64_t *s, FuzzCase *c) {
    static const int tiles[] = {1, 2, 3, 4, 5, 7, 8, 13, 16, 32, 64};
    c->no_lse = pick(s, 5) == 0;
    c->tile_q = pick(s, 5) < 2 ? 0 : tiles[pick(s, 11)];
    c->tile_k = pick(s, 5) < 2 ? 0 : tiles[pick(s, 11)];
    c->elem = pick(s, 4) == 0 ? 1 + (int)pick(s, 2) : 0;
    static const int layouts[12] = {1, 2, 3, 3, 4, 4}; /* 3: paged K and V (one sequence); 4: a ragged batch */
    c->layout = layouts[pick(s, 12)];
    /* a page of the kernel's kv tile (fclayout.c) is read in place: give the tile */
    if (((c->layout == 3 && c->sz.B == 1) || c->layout == 4) && pick(s, 2)) c->tile_k = tiles[4 + pick(s, 7)];
}

static void value_text(uint64_t *s, const SgDomain *d, attnc_type ty, char *out, size_t n) {
    if (ty == ATTNC_BOOL) {
        snprintf(out, n, "%s", pick(s, 2) ? "true" : "false");
    } else if (ty == ATTNC_INT) {
        int64_t lo = d ? d->lo : -3, hi = d ? d->hi : 6, v = lo + (int64_t)(next(s) % (uint64_t)(hi - lo + 1));
        if (v == 0 && pick(s, 100) >= (d ? d->zero_percent : 10)) v = lo + (int64_t)(next(s) % (uint64_t)(hi - lo + 1));
        snprintf(out, n, "%lld", (long long)v);
    } else { /* eighths: exact in binary32 */
        int64_t lo = d ? d->lo : -16, hi = d ? d->hi : 16;
        snprintf(out, n, "%g", (double)(lo + (int64_t)(next(s) % (uint64_t)(hi - lo + 1))) / 8.0);
    }
}

/* The call: every param of the reference kernel without a default, and most of those with one. */
static int choose_params(const GenSpec *g, const attnc_spec *spec, uint64_t *s, FuzzCase *c) {
    attnc_kernel *k = NULL;
    attnc_error err = {0};
    attnc_options ro = {.backend = ATTNC_BACKEND_INTERP, .threads = 1};
    if (attnc_compile(spec, c->variant, &ro, &k, &err)) return -1;
    c->nparams = 0;
    for (int i = 0; i < attnc_kernel_param_count(k) && c->nparams < FC_MAX; i++) {
        attnc_type ty;
        int has_default;
        const char *name = attnc_kernel_param_info(k, i, &ty, &has_default, NULL);
        if (has_default && pick(s, 100) < 35) continue;
        FcNamed *p = &c->params[c->nparams++];
        snprintf(p->name, sizeof p->name, "%s", name);
        value_text(s, specgen_domain(g, name), ty, p->text, sizeof p->text);
    }
    attnc_kernel_free(k);
    c->nranges = 0;
    for (int i = 0; i < g->ndomains && c->nranges < FC_MAX; i++)
        if (g->domains[i].is_tensor)
            c->ranges[c->nranges++] = (FcRange){"", g->domains[i].lo, g->domains[i].hi},
            snprintf(c->ranges[c->nranges - 1].name, 32, "%s", g->domains[i].name);
    return 0;
}

/* ---- running cases, in a child or not ------------------------------------------- */

/* Leave case c where the parent finds it if this child dies. */
static void record_case(const FuzzCase *c) {
    if (!in_child) return;
    size_t n = c->len < SHARED_TEXT ? c->len : SHARED_TEXT - 1;
    memcpy(sh->text, c->text, n);
    sh->text[n] = 0;
    sh->cur = as_met(c);
    sh->cur.text = NULL, sh->cur.len = n;
    sh->has_case = 1;
}

/* fc_run, recorded first, and in a child under an alarm that ends a case that hangs. */
static void run_case(const FuzzCase *c, FcResult *r) {
    record_case(c);
    if (in_child) alarm(case_seconds);
    fc_run(c, r);
    if (in_child) alarm(0);
    threads_high = c->threads > threads_high ? c->threads : threads_high;
}

/* How a child ended: "SIGSEGV", "timeout" (its alarm), "exit 3". */
static void exit_text(int status, char *out, size_t n) {
    static const struct { int sig; const char *name; } names[] = {
        {SIGSEGV, "SIGSEGV"}, {SIGABRT, "SIGABRT"}, {SIGBUS, "SIGBUS"}, {SIGFPE, "SIGFPE"},
        {SIGILL, "SIGILL"},   {SIGKILL, "SIGKILL"}, {SIGTRAP, "SIGTRAP"}, {SIGALRM, "timeout"}};
    if (WIFEXITED(status)) {
        snprintf(out, n, "exit %d", WEXITSTATUS(status));
        return;
    }
    int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    snprintf(out, n, "signal %d", sig);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].sig == sig) snprintf(out, n, "%s", names[i].name);
}

static int wait_child(pid_t pid) {
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return 0;
    return status;
}

/* The minimiser's trial of a crash: c in a child of its own, for at most TRIAL_SECONDS; FC_CRASH with how the
 * child ended in ref_message (what same_failure compares), or FC_SAME. */
static void crash_trial(const FuzzCase *c, FcResult *r) {
    memset(r, 0, sizeof *r);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(TRIAL_SECONDS);
        FcResult x;
        fc_run(c, &x);
        _exit(0);
    }
    int status = pid > 0 ? wait_child(pid) : 0;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return;
    r->kind = FC_CRASH;
    exit_text(status, r->ref_message, sizeof r->ref_message);
}

/* ---- findings ------------------------------------------------------------------ */

/* What makes two mismatches the same finding: backend, kind and, for a status, the message without names and numbers. */
static void finding_key(const FuzzCase *c, const FcResult *r, char *key, size_t n) {
    char norm[28] = "";
    if (r->kind == FC_STATUS) { /* the backend's message, past "compile: "/"run: ", without quoted names and digits */
        const char *m = strstr(r->detail, "; ");
        m = m ? strstr(m, ": ") : NULL;
        size_t j = 0;
        int quoted = 0;
        for (m = m ? m + 2 : NULL; m && *m && j + 1 < sizeof norm; m++) {
            if (*m == '\'') quoted = !quoted;
            else if (!quoted && isalpha((unsigned char)*m)) norm[j++] = *m;
            else if (!quoted && *m == ' ' && j && norm[j - 1] != '_') norm[j++] = '_';
        }
        norm[j] = 0;
    } else if (r->kind == FC_CRASH) { /* how the child ended: SIGSEGV, timeout, exit_3 */
        snprintf(norm, sizeof norm, "%.27s", r->ref_message);
        for (char *p = norm; *p; p++) *p = *p == ' ' ? '_' : *p;
    }
    snprintf(key, n, "%s/%s%s%s%s%s", attnc_backend_name(c->backend), c->ndefines ? "D/" : "", fc_kind_name(r->kind),
             r->kind == FC_STATUS ? (r->ref_failed ? "/ref-fails" : "/ref-ok") : "", norm[0] ? "/" : "", norm);
}

static int count_key(Stats *st, const char *key) {
    for (int i = 0; i < st->nkeys; i++)
        if (!strcmp(st->key[i], key)) return ++st->key_count[i];
    if (st->nkeys == MAX_KEYS) return 2;
    snprintf(st->key[st->nkeys], sizeof st->key[0], "%.*s", (int)sizeof st->key[0] - 1, key); /* truncating is fine */
    st->key_count[st->nkeys++] = 1;
    return 1;
}

/* A message without its position, names and numbers: "index is out of range in dimension of tensor". */
static void message_class(const char *m, char *out, size_t n) {
    const char *e = strstr(m, "error: "), *p = strstr(m, ": ");
    m = e ? e + 7 : p && strstr(m, ".attn:") ? p + 2 : m;
    size_t j = 0;
    int quoted = 0;
    for (; *m && j + 1 < n; m++) {
        if (*m == '\'' || *m == '(') quoted = !quoted || *m == '(';
        else if (!quoted && isalpha((unsigned char)*m)) out[j++] = *m;
    }
    out[j] = 0;
}

/* The minimiser keeps a change only if case a fails as b did: same kind, same reason for a failing
 * reference, and on cuda-emu's tensor-core kernel if b ran there (else smaller sizes, other tiles or float32
 * move the case to the scaffold, another kernel with its own findings). */
static int same_failure(const FcResult *a, const FcResult *b) {
    char x[160], y[160];
    message_class(a->ref_message, x, sizeof x);
    message_class(b->ref_message, y, sizeof y);
    return a->kind == b->kind && a->ref_failed == b->ref_failed && !strcmp(x, y) && (a->tensor_core || !b->tensor_core);
}

/* Run c with the text of g; 1 if it fails as `want` does. */
static int still_fails(const GenSpec *g, FuzzCase *c, const FcResult *want, char **text) {
    size_t len;
    char *t = specgen_render(g, &len);
    c->text = t, c->len = len;
    FcResult r;
    if (want->kind == FC_CRASH) crash_trial(c, &r);
    else run_case(c, &r);
    if (same_failure(&r, want)) {
        free(*text);
        *text = t;
        return 1;
    }
    free(t);
    return 0;
}

/* Smaller sizes, default tiles, no flags, fewer defines and params, while the failure stays. */
static int shrink_case(FuzzCase *c, int step) {
    attnc_sizes *z = &c->sz;
    switch (step) {
    case 0: return z->B > 1 ? (z->B = 1) : 0;
    case 1: return z->H > z->Hkv ? (z->H = z->Hkv) : 0;
    case 2: return z->Hkv > 1 ? (z->H /= z->Hkv, z->Hkv = 1) : 0;
    case 3: return z->Lq > 1 ? (z->Lq = (z->Lq + 1) / 2) : 0;
    case 4: return z->Lk > 1 ? (z->Lk = (z->Lk + 1) / 2) : 0;
    case 5: return z->Lq > 1 ? (z->Lq -= 1) : 0;
    case 6: return z->Lk > 1 ? (z->Lk -= 1) : 0;
    case 7: return z->D > 1 ? (z->D = (z->D + 1) / 2) : 0;
    case 8: return z->Dv > 1 ? (z->Dv = (z->Dv + 1) / 2) : 0;
    case 9: return c->tile_q || c->tile_k ? (c->tile_q = c->tile_k = 0, 1) : 0;
    case 10: return c->flags || c->no_lse || c->elem || c->layout ? (c->flags = c->no_lse = c->elem = c->layout = 0, 1) : 0;
    case 11: return c->ndefines ? (c->ndefines--, 1) : 0;
    default: {
        int i = step - 12;
        if (i >= c->nparams) return -1; /* no more steps */
        /* a param left to its default; if it has none the call fails differently and the step is undone */
        c->params[i] = c->params[--c->nparams];
        return 1;
    }
    }
}

static void minimise(GenSpec *g, FuzzCase *c, const FcResult *want, char **text) {
    int runs = 0, changed = 1;
    static GenSpec trial;
    while (changed && runs < MINIMISE_RUNS) {
        changed = 0;
        for (int i = 0; i < specgen_step_count(g) && runs < MINIMISE_RUNS; i++) {
            trial = *g;
            if (!specgen_apply_step(&trial, i)) continue;
            size_t len;
            char *t = specgen_render(&trial, &len);
            int same = strlen(*text) == len && !memcmp(t, *text, len);
            free(t);
            if (same) continue; /* a node no longer in the text */
            runs++;
            if (still_fails(&trial, c, want, text)) *g = trial, changed = 1;
        }
        for (int step = 0; runs < MINIMISE_RUNS; step++) {
            FuzzCase saved = *c;
            int r = shrink_case(c, step);
            if (r < 0) break;
            if (!r) continue;
            runs++;
            if (still_fails(g, c, want, text)) {
                changed = 1;
                step--; /* the same step again: halve once more */
            } else {
                *c = saved;
            }
        }
    }
    c->text = *text, c->len = strlen(*text);
}

static int write_file(const char *path, const char *text, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    fwrite(text, 1, len, f);
    return fclose(f);
}

/* DIR/spec.attn, DIR/case.txt and DIR/replay.txt (this program's command and an `attnc diff` line). */
static void write_reproducer(const Opts *o, uint64_t seed, const FuzzCase *c, const FcResult *r, const char *key,
                             const char *how) {
    char dir[512], path[600], name[128];
    snprintf(name, sizeof name, "%s-seed%" PRIu64, key, seed);
    for (char *p = name; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-') *p = '_';
    snprintf(dir, sizeof dir, "%s/%s", o->out, name);
    mkdir(o->out, 0777);
    mkdir(dir, 0777);
    snprintf(path, sizeof path, "%s/spec.attn", dir);
    write_file(path, c->text, c->len);
    char comment[900];
    snprintf(comment, sizeof comment, "attnc-fuzz --seed %" PRIu64 " (%s): %s: %s", seed, how, key, r->detail);
    for (char *p = comment; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    snprintf(path, sizeof path, "%s/case.txt", dir);
    fc_write(c, path, comment);
    snprintf(path, sizeof path, "%s/replay.txt", dir);
    FILE *f = fopen(path, "w");
    if (!f) return;
    fprintf(f, "# %s\nattnc-fuzz --replay %s\n", comment, dir);
    fprintf(f, "# the whole spec as the run met it (every backend, the cases before this one):\n"
               "attnc-fuzz --seed %" PRIu64 " --count 1 --no-fork --verbose --backends ", seed);
    for (int b = 0; b < o->nb; b++) fprintf(f, "%s%s", b ? "," : "", attnc_backend_name(o->backends[b]));
    fprintf(f, "%s\n", o->lse_always ? " --lse-always" : "");
    if (r->kind == FC_CRASH)
        fprintf(f, "# a heap overflow may abort in one process and not in another: valgrind shows it every time\n"
                   "valgrind attnc-fuzz --replay %s\n", dir);
    fprintf(f, "# roughly (other random inputs, no tile sizes, defines given as params):\nattnc diff %s/spec.attn "
               "--variant %s --shape B=%lld,H=%lld,Hkv=%lld,Lq=%lld,Lk=%lld,D=%lld,Dv=%lld --backends %s%s",
            dir, c->variant, (long long)c->sz.B, (long long)c->sz.H, (long long)c->sz.Hkv, (long long)c->sz.Lq,
            (long long)c->sz.Lk, (long long)c->sz.D, (long long)c->sz.Dv,
            c->backend == ATTNC_BACKEND_INTERP ? "refplan" : attnc_backend_name(c->backend),
            c->flags & ATTNC_OPT_SEPARABLE_BIAS ? " --separable-bias" : "");
    if (c->elem) fprintf(f, " --dtype %s", c->elem == 1 ? "f16" : "bf16");
    if (c->layout == 1) fprintf(f, " --layout blhd");
    for (int i = 0; i < c->nparams; i++) fprintf(f, " --param %s=%s", c->params[i].name, c->params[i].text);
    for (int i = 0; i < c->nranges; i++)
        fprintf(f, " --int-range %s=%lld,%lld", c->ranges[i].name, (long long)c->ranges[i].lo, (long long)c->ranges[i].hi);
    fprintf(f, "\n");
    fclose(f);
    printf("  reproducer: %s\n", dir);
}

/* ---- the run --------------------------------------------------------------------- */

/* A mismatch or a crash: counted by key, and the first of each key (-D or not) minimised into a reproducer when
 * `minimisable` (a timeout is not: each trial could take as long). */
static void report(const Opts *o, Stats *st, uint64_t seed, GenSpec *g, FuzzCase *c, const FcResult *r,
                   int minimisable) {
    char key[96];
    finding_key(c, r, key, sizeof key);
    *(r->kind == FC_CRASH ? &st->crashes : &st->mismatches) += 1;
    count_key(st, key);
    printf("%s seed %" PRIu64 " %s: %s\n", r->kind == FC_CRASH ? "CRASH" : "MISMATCH", seed, key, r->detail);
    char base[112];
    snprintf(base, sizeof base, "reproducer %s", key);
    char *d = strstr(base, "/D/");
    if (d) memmove(d, d + 2, strlen(d + 2) + 1);
    if (count_key(st, base) > 1 || !o->out) return; /* one reproducer of each kind, -D or not */
    static GenSpec mg;
    mg = *g;
    FuzzCase mc = as_met(c);
    char *text = malloc(c->len + 1);
    memcpy(text, c->text, c->len);
    text[c->len] = 0;
    const char *how = minimisable ? "minimised" : "not minimised";
    FcResult alone;
    if (minimisable && r->kind == FC_CRASH && (crash_trial(&mc, &alone), !same_failure(&alone, r)))
        minimisable = 0, how = "not minimised: it does not recur alone in a fresh process";
    if (minimisable) {
        sh->minimising = 1; /* a crash now is in a trial, not in the case recorded last */
        minimise(&mg, &mc, r, &text);
        sh->minimising = 0;
    }
    write_reproducer(o, seed, &mc, r, key, how);
    free(text);
}

/* One configuration of one spec; counts it and reports a mismatch. */
static void run_one(const Opts *o, Stats *st, uint64_t seed, GenSpec *g, FuzzCase *c, int slot) {
    FcResult r;
    if (o->verbose) /* before the run: a crash names the case */
        printf("  %-8s defines=%d tiles=%dx%d flags=%d lse=%s threads=%d elem=%d layout=%d grad=%d ...\n",
               attnc_backend_name(c->backend), c->ndefines, c->tile_q, c->tile_k, c->flags, c->no_lse ? "NULL" : "yes",
               c->threads, c->elem, c->layout, c->grad);
    run_case(c, &r);
    st->fa2_runs += r.tensor_core;
    st->grid_runs += r.grid;
    st->grid_mapped_runs += r.grid_mapped;
    st->grid_table_runs += r.grid_tables;
    st->dropped_runs += r.checks_dropped;
    st->kept_runs += r.kept_map;
    st->chunk_runs += r.chunked;
    st->packed_runs += r.packed;
    st->widened_runs += r.widened;
    st->runs++;
    st->seconds[slot] += r.seconds;
    st->backend_runs[slot]++;
    st->diag_runs[slot] += r.diag_tables;
    st->band_runs[slot] += r.band;
    st->live_runs[slot] += r.live_keys;
    st->short_runs[slot] += r.short_tiles;
    if (o->verbose)
        printf("  %-8s %s defines=%d tiles=%dx%d flags=%d: %s%s%s\n", attnc_backend_name(c->backend),
               r.ref_failed ? "(ref fails)" : "", c->ndefines, c->tile_q, c->tile_k, c->flags, fc_kind_name(r.kind),
               r.kind ? ": " : "", r.kind ? r.detail : "");
    if (r.kind >= FC_STATUS) report(o, st, seed, g, c, &r, 1);
}

/* Random tiles, LSE or not, threads, and packed heads and split keys (on
 * by default: off in one run of four each) for one run of a backend. */
static void random_config(const Opts *o, uint64_t *s, FuzzCase *c) {
    random_tiles(s, c);
    c->no_lse &= !o->lse_always;
    c->threads = 1 + pick(s, o->max_threads); /* results must not depend on it */
    if (pick(s, 4) == 0) c->threads = 4 + pick(s, 13); /* more threads than items: the keys are split */
    c->flags &= ATTNC_OPT_SEPARABLE_BIAS;
    if (pick(s, 4) == 0) c->flags |= ATTNC_OPT_NO_PACK_HEADS;
    if (pick(s, 4) == 0) c->flags |= ATTNC_OPT_NO_KV_SPLIT;
    c->grad = pick(s, 3) == 0; /* and the backward pass, where the backend has one */
}

/* Half of cuda-emu's runs made eligible for its tensor-core kernel (cuda_fa2_call_ok): D and Dv multiples of
 * 16, 64 x 64 tiles, Q, K, V in f16 or bf16, one query head per work item, a layout whose rows are 16-byte
 * aligned (not paged).  Drawn from a stream of their own (`t`), so the other backends' cases, and every
 * draw the runs before made, stay what they were for a seed. */
static void tensor_core_config(uint64_t *t, FuzzCase *c) {
    static const int heads[] = {16, 16, 32, 32, 48, 64, 64, 80, 128};
    static const int layouts[] = {0, 0, 1, 2, 4}; /* 2 needs Lq = Lk and D = Dv, else it is 1 (fclayout.c) */
    if (pick(t, 2)) return;
    c->sz.D = c->sz.D == 0 && pick(t, 2) ? 0 : heads[pick(t, 9)]; /* D = 0 (with a `scale`): the scaffold */
    c->sz.Dv = pick(t, 3) ? c->sz.D : heads[pick(t, 9)];
    if (c->sz.Dv == 0) c->sz.Dv = 16;
    c->tile_q = c->tile_k = 64;
    c->elem = 1 + pick(t, 2);
    c->layout = layouts[pick(t, 5)];
    c->flags |= ATTNC_OPT_NO_PACK_HEADS;
}

static void fuzz_spec(const Opts *o, Stats *st, uint64_t seed, GenSpec *g) {
    st->specs++;
    specgen_generate(g, seed);
    size_t len;
    char *text = specgen_render(g, &len);
    FuzzCase c = {.text = text, .len = len, .backend = ATTNC_BACKEND_INTERP, .threads = 1};
    snprintf(c.variant, sizeof c.variant, "%s", specgen_variant(g));
    uint64_t s = seed ^ 0x5DEECE66Dull;
    c.data_seed = next(&s);
    random_shape(&s, g, &c);
    record_case(&c); /* a crash in the front end: this spec on the interpreter */
    attnc_spec *spec = NULL;
    attnc_error err = {0};
    if (attnc_spec_from_string("fuzz.attn", text, len, &spec, &err) || choose_params(g, spec, &s, &c)) {
        st->genfail++;
        printf("GENERATOR FAILURE seed %" PRIu64 ": %s\n%s\n", seed, spec ? attnc_spec_diagnostics(spec) : err.message,
               text);
        attnc_spec_free(spec);
        free(text);
        return;
    }
    attnc_spec_free(spec);
    if (o->verbose)
        printf("spec seed %" PRIu64 ", B=%lld,H=%lld,Hkv=%lld,Lq=%lld,Lk=%lld,D=%lld,Dv=%lld:\n%s", seed,
               (long long)c.sz.B, (long long)c.sz.H, (long long)c.sz.Hkv, (long long)c.sz.Lq, (long long)c.sz.Lk,
               (long long)c.sz.D, (long long)c.sz.Dv, text);
    FuzzCase fixed = c; /* a random subset of the given params as defines, for every backend and the interpreter */
    for (int i = 0; i < c.nparams; i++)
        if (pick(&s, 2)) fixed.defines[fixed.ndefines++] = c.params[i];
    fixed.flags = pick(&s, 2) ? ATTNC_OPT_SEPARABLE_BIAS : 0;
    uint64_t t = seed ^ 0xFA2C0DEull; /* tensor_core_config's own stream */
    for (int b = 0; b < o->nb; b++) {
        c.backend = fixed.backend = o->backends[b];
        random_config(o, &s, &c);
        random_config(o, &s, &fixed);
        FuzzCase cb = c, fb = fixed; /* the spec's shape stays for the next backends */
        if (c.backend == ATTNC_BACKEND_CUDA_EMU) tensor_core_config(&t, &cb), tensor_core_config(&t, &fb);
        run_one(o, st, seed, g, &cb, b);
        run_one(o, st, seed, g, &fb, b);
    }
    if (fixed.ndefines) {
        fixed.backend = ATTNC_BACKEND_INTERP;
        fixed.tile_q = fixed.tile_k = 0;
        fixed.threads = 1 + pick(&s, o->max_threads);
        run_one(o, st, seed, g, &fixed, MAX_BACKENDS);
    }
    /* how often calls fail and rows are empty: the generator must produce both, but not too often */
    FcResult r;
    c.backend = ATTNC_BACKEND_INTERP, c.ndefines = 0, c.threads = 1;
    run_case(&c, &r);
    st->runtime_errors += r.ref_failed;
    st->empty_rows += r.empty_rows > 0;
    free(text);
}

/* A child that did not exit 0: a crash finding for the case it recorded last. */
static void child_died(const Opts *o, uint64_t seed, GenSpec *g, int status) {
    FcResult r = {.kind = FC_CRASH};
    exit_text(status, r.ref_message, sizeof r.ref_message);
    if (!sh->has_case) { /* before any case: in the generator */
        sh->st.crashes++;
        count_key(&sh->st, "generator/crash");
        printf("CRASH seed %" PRIu64 " generator/crash: %s while generating the spec; replay: attnc-fuzz --seed %" PRIu64
               " --count 1 --no-fork\n", seed, r.ref_message, seed);
        return;
    }
    FuzzCase c = sh->cur;
    c.text = sh->text;
    int timeout = !strcmp(r.ref_message, "timeout");
    snprintf(r.detail, sizeof r.detail, "%s%s on %s%s", timeout ? "no result within the timeout" : r.ref_message,
             sh->minimising ? " in a minimiser's trial" : "", attnc_backend_name(c.backend),
             c.ndefines ? " with defines" : "");
    /* the spec again, to minimise against; a trial's text is not it */
    specgen_generate(g, seed);
    size_t len;
    char *text = specgen_render(g, &len);
    int same = len == c.len && !memcmp(text, c.text, len);
    free(text);
    report(o, &sh->st, seed, g, &c, &r, same && !timeout && !sh->minimising);
}

/* fuzz_spec in a child process: a crash, an exit or a hang is a finding and the run goes on. */
static void fuzz_forked(const Opts *o, uint64_t seed, GenSpec *g) {
    sh->has_case = sh->minimising = 0;
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) { /* no child to be had: this process then */
        fuzz_spec(o, &sh->st, seed, g);
        return;
    }
    if (pid == 0) {
        in_child = 1;
        fuzz_spec(o, &sh->st, seed, g);
        fflush(stdout);
        _exit(0);
    }
    int status = wait_child(pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status)) child_died(o, seed, g, status);
}

static int replay(const Opts *o) {
    char path[600];
    FuzzCase c = {0};
    size_t len = 0;
    snprintf(path, sizeof path, "%s/case.txt", o->replay);
    if (fc_read(&c, path)) return usage("cannot read DIR/case.txt");
    snprintf(path, sizeof path, "%s/spec.attn", o->replay);
    FILE *f = fopen(path, "rb");
    char *text = f ? malloc(1 << 20) : NULL;
    if (text) len = fread(text, 1, (1 << 20) - 1, f);
    if (f) fclose(f);
    if (!text) return usage("cannot read DIR/spec.attn");
    c.text = text, c.len = len;
    /* the recorded backend, or those --backends names (to check a fix on every backend) */
    int bad = 0, n = o->backends_given ? o->nb : 1;
    for (int i = 0; i < n; i++) {
        if (o->backends_given) c.backend = o->backends[i];
        FcResult r;
        fc_run(&c, &r);
        printf("%s%s: %s%s%s\n", attnc_backend_name(c.backend), r.tensor_core ? " (tensor-core kernel)" : "",
               fc_kind_name(r.kind), r.kind ? ": " : "", r.kind ? r.detail : "");
        bad |= r.kind != FC_SAME;
    }
    free(text);
    return bad;
}

/* " (llvm/O 2, tcc/D/status/ref-ok/... 1)": the counts of the keys of crashes (or of the other findings). */
static void print_keys(const Stats *st, int crashes) {
    int shown = 0;
    for (int k = 0; k < st->nkeys; k++)
        if (strncmp(st->key[k], "reproducer ", 11) && !!strstr(st->key[k], "crash") == crashes)
            printf("%s%s %d", shown++ ? ", " : " (", st->key[k], st->key_count[k]);
    printf("%s", shown ? ")" : "");
}

/* The summary line that README quotes: specs, backends, runs, mismatches, crashes, generator failures. */
static void summary(const Opts *o, const Stats *st, long seconds) {
    printf("attnc-fuzz: seeds %" PRIu64 "..%" PRIu64 ": %d specs, backends", o->seed, o->seed + (uint64_t)o->count - 1,
           st->specs);
    for (int b = 0; b < o->nb; b++) printf("%s%s", b ? "," : " ", attnc_backend_name(o->backends[b]));
    printf(", %d runs, %d mismatches", st->runs, st->mismatches);
    print_keys(st, 0);
    printf(", %d crashes", st->crashes);
    print_keys(st, 1);
    printf(", %d generator failures; %d cuda-emu runs on the tensor-core kernel, %d runs on multi-dimensional tiles "
           "(%d reading K and V through the row map, %d reading grid tables), %d on a kept masked tile map, %d that dropped their kept map's checks, %d on keys in chunks, %d on packed K and V (%d widened); %d%% of specs raise a runtime error, %d%% have fully "
           "masked rows; %lds\n",
           st->genfail, st->fa2_runs, st->grid_runs, st->grid_mapped_runs, st->grid_table_runs, st->kept_runs, st->dropped_runs, st->chunk_runs, st->packed_runs, st->widened_runs,
           st->specs ? 100 * st->runtime_errors / st->specs : 0,
           st->specs ? 100 * st->empty_rows / st->specs : 0, seconds);
    for (int b = 0; b <= o->nb; b++) {
        int slot = b == o->nb ? MAX_BACKENDS : b;
        if (st->backend_runs[slot])
            printf("  %-9s %5d runs, %.1f ms per run (compile + call), %d on tables of kv - q, %d with a band of keys, "
                   "%d on live key sets, %d on pages in short kv tiles\n",
                   b == o->nb ? "interp+D" : attnc_backend_name(o->backends[b]), st->backend_runs[slot],
                   1000 * st->seconds[slot] / st->backend_runs[slot], st->diag_runs[slot], st->band_runs[slot],
                   st->live_runs[slot], st->short_runs[slot]);
    }
}

int main(int argc, char **argv) {
    Opts o;
    int rc = parse_opts(argc, argv, &o);
    if (rc) return rc;
    setvbuf(stdout, NULL, _IOLBF, 0); /* what came before a crash stays on the screen */
    launch_set_chunk_bytes(16 << 10); /* the fuzzer's shapes are small: 16 KiB chunks reach kv_chunks (8 MiB would not) */
    if (o.replay) return replay(&o);
    /* shared with the children when forking (mapped anyway: one code path) */
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED) {
        fprintf(stderr, "attnc-fuzz: cannot map %zu bytes of shared memory\n", sizeof *sh);
        return 2;
    }
    int forking = o.fork < 0 ? o.count > 1 : o.fork;
    case_seconds = o.timeout;
    static GenSpec g;
    time_t t0 = time(NULL);
    for (int i = 0; i < o.count; i++) {
        if (forking) fuzz_forked(&o, o.seed + (uint64_t)i, &g);
        else fuzz_spec(&o, &sh->st, o.seed + (uint64_t)i, &g);
    }
    summary(&o, &sh->st, (long)(time(NULL) - t0));
    return sh->st.mismatches || sh->st.crashes || sh->st.genfail ? 1 : 0;
}
