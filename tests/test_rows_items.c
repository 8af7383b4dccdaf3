/* test_rows_items.c — the tables of Q rows made per work item on the llvm
 * and tcc launches (runtime/rows_items.c, middle/tile_table.c) against the
 * interpreter, which computes every dot product itself: Shaw's clipped band,
 * Music Transformer's unclipped E[q - kv] (top-left and bottom-right
 * aligned, with a window), several tables of Q and K rows together, the
 * paths that fill every column (a table with two leading indices, an index
 * reading a sum variable, a non-monotone index), a q-only index; on shapes
 * with Lq != Lk, odd lengths and D, GQA, decode with packed heads, several
 * q tiles, and split-KV (one work item on two threads), on 1 and 2
 * threads.  A kernel's runtime error through the per-item tables carries
 * the interpreter's message.
 * Usage: test_rows_items (prints one line per failure and a summary). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attnc.h"
#include "support.h"

static const struct {
    const char *name, *spec;
    int lq_le_lk; /* the index is in range only when Lq <= Lk */
} specs[] = {
    {"shaw", "attention a { param M : int = 5; tensor E : float[2 * M + 1, D];\n"
             "  bias dot(Q, E[clamp(kv - q, -M, M) + M]) / sqrt(float(D)); }", 0},
    {"music", "attention a { use causal; tensor E : float[Lk, D]; bias dot(Q, E[q - kv]) / sqrt(float(D)); }", 1},
    {"music-bottom-right-window",
     "attention a { tensor E : float[Lk, D]; let r = q + Lk - Lq - kv; mask r >= 0 && r < 40;\n"
     "  bias dot(Q, E[r]); }", 1},
    {"q-and-k-tables",
     "attention a { param k : int = 4; tensor Pk : float[2 * k, D]; tensor Pq : float[2 * k, D];\n"
     "  tensor E : float[Lk, D]; use causal; let d = clamp(q - kv, -k, k - 1) + k;\n"
     "  bias dot(Q, Pk[d]) + dot(K, Pq[d]) + 0.5 * dot(Q, E[q - kv]); }", 1},
    {"two-leading-indices",
     "attention a { tensor E : float[2, 9, D]; bias dot(Q, E[h % 2, clamp(kv - q, -4, 4) + 4]); }", 0},
    {"sum-variable-index",
     "attention a { tensor E : float[11, D]; bias sum(r < 3) dot(Q, E[clamp(kv - q + r, -4, 4) + 4]); }", 0},
    {"non-monotone", "attention a { tensor E : float[Lk, D]; mask abs(q - kv) < Lk; bias dot(Q, E[abs(q - kv)]); }",
     1},
    {"q-only", "attention a { tensor E : float[Lq, D]; use causal; bias dot(Q, E[q]); }", 0},
};

static const struct {
    const char *what;
    attnc_sizes z;
} shapes[] = {
    {"GQA, Lq != Lk, odd lengths", {2, 4, 2, 70, 133, 16, 8}},
    {"several q tiles, odd D", {1, 2, 1, 130, 130, 33, 7}},
    {"decode, packed heads", {1, 8, 2, 1, 257, 24, 16}},
    {"short prompt, packed heads", {1, 8, 1, 5, 77, 16, 16}},
    {"one item: split-KV on two threads", {1, 1, 1, 37, 300, 17, 5}},
};

static int failures;

/* Compile spec for backend on `threads` threads. */
static attnc_status compile(const char *spec, attnc_backend backend, int threads, attnc_kernel **k, attnc_error *err) {
    attnc_spec *sp = NULL;
    attnc_options opts = {0};
    opts.backend = backend;
    opts.threads = threads;
    attnc_status st = attnc_spec_from_string("rows.attn", spec, strlen(spec), &sp, err);
    if (!st) st = attnc_compile(sp, NULL, &opts, k, err);
    attnc_spec_free(sp);
    return st;
}

typedef struct Call {
    attnc_sizes z;
    float *q, *k, *v;
    attnc_tensor t[8];
    int nt;
} Call;

/* Random Q, K, V and tensors of the shapes kernel k asks for. */
static int make_call(attnc_kernel *k, const attnc_sizes *z, Call *c) {
    memset(c, 0, sizeof *c);
    c->z = *z;
    c->q = random_floats((size_t)(z->B * z->H * z->Lq * z->D) + 1);
    c->k = random_floats((size_t)(z->B * z->Hkv * z->Lk * z->D) + 1);
    c->v = random_floats((size_t)(z->B * z->Hkv * z->Lk * z->Dv) + 1);
    char why[256];
    for (int i = 0; i < attnc_kernel_tensor_count(k) && i < 8; i++, c->nt++)
        if (make_tensor(k, i, z, NULL, 0, NULL, NULL, NULL, 0, &c->t[i], why, sizeof why)) {
            printf("FAIL making a tensor: %s\n", why);
            return 0;
        }
    return 1;
}

static void free_call(Call *c) {
    free(c->q), free(c->k), free(c->v);
    for (int i = 0; i < c->nt; i++) free((void *)c->t[i].data);
}

static attnc_status run(attnc_kernel *k, const Call *c, float *o, float *lse, attnc_error *err) {
    attnc_args a = {c->z, c->q, c->k, c->v, o, lse, NULL, 0, c->t, c->nt};
    return attnc_kernel_run(k, &a, err);
}

/* spec on backend with `threads` against the interpreter on shape z. */
static void check_one(int s, attnc_backend backend, int threads, const attnc_sizes *z, const char *what) {
    attnc_kernel *ref = NULL, *k = NULL;
    attnc_error err = {0}, rerr = {0};
    char buf[1200] = "";
    attnc_status st = compile(specs[s].spec, ATTNC_BACKEND_INTERP, 1, &ref, &err);
    if (!st) st = compile(specs[s].spec, backend, threads, &k, &err);
    Call c;
    size_t rows = (size_t)(z->B * z->H * z->Lq), no = rows * (size_t)z->Dv;
    float *o = calloc(no + 1, sizeof(float)), *lse = calloc(rows + 1, sizeof(float));
    float *ro = calloc(no + 1, sizeof(float)), *rl = calloc(rows + 1, sizeof(float));
    double worst = 0;
    const char *diff = NULL;
    if (!st && make_call(ref, z, &c)) {
        attnc_status rst = run(ref, &c, ro, rl, &rerr);
        st = run(k, &c, o, lse, &err);
        if (st != rst) {
            snprintf(buf, sizeof buf, "status %d (%s), the interpreter's %d (%s)", st, err.message, rst, rerr.message);
            diff = buf;
        } else if (st && strcmp(err.message, rerr.message) != 0) {
            snprintf(buf, sizeof buf, "message '%s', the interpreter's '%s'", err.message, rerr.message);
            diff = buf;
        } else if (!st) {
            diff = compare_outputs(o, lse, ro, rl, no, rows, 2e-5, &worst, buf, sizeof buf);
        }
        free_call(&c);
    } else if (st) {
        snprintf(buf, sizeof buf, "compiling: %s", err.message);
        diff = buf;
    }
    if (diff) {
        printf("FAIL %s on %s, %d thread(s), %s (B=%lld H=%lld Hkv=%lld Lq=%lld Lk=%lld D=%lld Dv=%lld): %s\n",
               specs[s].name, attnc_backend_name(backend), threads, what, (long long)z->B, (long long)z->H,
               (long long)z->Hkv, (long long)z->Lq, (long long)z->Lk, (long long)z->D, (long long)z->Dv, diff);
        failures++;
    }
    free(o), free(lse), free(ro), free(rl);
    attnc_kernel_free(ref);
    attnc_kernel_free(k);
}

int main(void) {
    rng_seed(14);
    static const attnc_backend backends[] = {ATTNC_BACKEND_LLVM, ATTNC_BACKEND_TCC};
    int runs = 0;
    for (size_t b = 0; b < sizeof backends / sizeof backends[0]; b++) {
        if (!attnc_backend_available(backends[b])) continue;
        for (size_t s = 0; s < sizeof specs / sizeof specs[0]; s++)
            for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
                for (int threads = 1; threads <= 2; threads++) {
                    if (specs[s].lq_le_lk && shapes[i].z.Lq > shapes[i].z.Lk) continue;
                    check_one((int)s, backends[b], threads, &shapes[i].z, shapes[i].what);
                    runs++;
                }
        /* a row index out of range (Music with Lq > Lk): the interpreter's message, on both paths of a fault */
        const attnc_sizes z = {1, 2, 2, 70, 60, 8, 8};
        for (int threads = 1; threads <= 2; threads++, runs++)
            check_one(1, backends[b], threads, &z, "an index out of range");
    }
    printf("%d runs, %d failed\n", runs, failures);
    return failures != 0;
}
