/* test_map_cache.c — a kernel keeps its last tile map for the next call of
 * the same shape (runtime/map_cache.h): calls that change a param the masks
 * read, the sizes, or a mask tensor's contents between calls, and calls from
 * two threads at once with different params, must each give the
 * interpreter's answer; a bias table read through bounds checks (its map is
 * kept too: the checks read the table's shape, not its contents) gets the
 * runtime error when a shorter table makes an index fall outside it, and
 * new contents are read; a mask tensor with the last call's contents reuses
 * the map, and one changed in place gets a new one.  On every CPU backend of the build; the grid
 * attention runs its block-order kernel (whose map is kept apart), whose
 * rows in block order live in buffers the kernel keeps (runtime/kept_buffers.h):
 * its calls grow them (more rows, a wider head) and two threads call it at once.
 * Runtime error checks a clean call ran are dropped from the kept map
 * (map_cache_ran_clean): an index tensor read at every kept key drops them
 * after one call; the same ids changed in place so that a kept key's index
 * falls outside its table is still the interpreter's error, one at a
 * masked key none; checks that read the scores (not in the key) are never
 * dropped, and a call whose larger scores index outside the table fails.
 * One kernel reading pages of several sizes (some shorter than its kv tile,
 * read in shorter tiles) keeps a map per kv tile size. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attnc.h"
#include "launch_stats.h"

static const char *spec_text =
    "attention band { param w : int = 4; mask kv <= q && q - kv < w; }\n"
    "attention grid {\n"
    "    param width : int; param r : int = 1;\n"
    "    mask abs(kv % width - q % width) <= r && abs(kv / width - q / width) <= r;\n"
    "}\n"
    "attention doc { tensor d : int[Lk]; mask d[q] == d[kv]; }\n"
    "attention table { param n : int; tensor T : float[H, n]; mask kv <= q && q - kv < 8; bias T[h, kv]; }\n"
    "attention ids { tensor J : int[Lk]; tensor T : float[H, 8]; mask kv <= q && q - kv < 4 && kv != 20;\n"
    "                bias T[h, J[kv] + (q - kv)]; }\n"
    "attention scored { tensor T : float[H, 8]; score score + T[h, int(abs(score))]; }\n";

static int failures;

static float *randoms(size_t n, unsigned *seed) {
    float *p = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) *seed = *seed * 1103515245u + 12345u, p[i] = (float)(*seed >> 8) / 16777216.0f - 0.5f;
    return p;
}

typedef struct Call {
    attnc_sizes sz;
    const char *pname; /* NULL: none */
    int64_t pval;
    int32_t *doc;      /* the doc tensor's data (Lk ints), or NULL */
} Call;

/* O of one call on kernel k (inputs from a fixed seed); NULL on error (printed). */
static float *run(const attnc_kernel *k, const Call *c) {
    unsigned seed = 7;
    const attnc_sizes *s = &c->sz;
    float *q = randoms((size_t)(s->B * s->H * s->Lq * s->D), &seed);
    float *kk = randoms((size_t)(s->B * s->Hkv * s->Lk * s->D), &seed);
    float *v = randoms((size_t)(s->B * s->Hkv * s->Lk * s->Dv), &seed);
    float *o = calloc((size_t)(s->B * s->H * s->Lq * s->Dv), sizeof(float));
    attnc_param p = {c->pname, ATTNC_INT, c->pval, 0, 0};
    attnc_tensor t = {"d", ATTNC_I32, 1, {s->Lk}, c->doc};
    attnc_args a = {*s, q, kk, v, o, NULL, &p, c->pname ? 1 : 0, &t, c->doc ? 1 : 0};
    attnc_error err = {0};
    if (attnc_kernel_run(k, &a, &err)) printf("FAIL run: %s\n", err.message), failures++, free(o), o = NULL;
    free(q), free(kk), free(v);
    return o;
}

static int close_enough(const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!(fabsf(a[i] - b[i]) <= 1e-4f + 1e-4f * fabsf(b[i]))) return 0;
    return 1;
}

/* The call on k and on the interpreter's kernel ref: the same O. */
static void check(const attnc_kernel *k, const attnc_kernel *ref, const Call *c, const char *what) {
    float *got = run(k, c), *want = run(ref, c);
    size_t n = (size_t)(c->sz.B * c->sz.H * c->sz.Lq * c->sz.Dv);
    if (got && want && !close_enough(got, want, n)) {
        printf("FAIL %s/%s: %s differs from the interpreter\n", attnc_backend_name(attnc_kernel_backend(k)),
               attnc_kernel_variant(k), what);
        failures++;
    }
    free(got), free(want);
}

/* One call with params p and tensors t on k and on the interpreter's ref (64 rows, inputs from a fixed
 * seed, Q scaled by qs): the same status (ATTNC_ERR_RUNTIME expected when `fails`) and, when both succeed,
 * the same O; `what` names the call in a failure. */
static void check_call(const attnc_kernel *k, const attnc_kernel *ref, const attnc_param *p, int np,
                       const attnc_tensor *t, int nt, float qs, int fails, const char *what) {
    attnc_sizes s = {1, 2, 1, 64, 64, 8, 8};
    float *o[2] = {NULL, NULL};
    attnc_status st[2];
    for (int i = 0; i < 2; i++) {
        unsigned in_seed = 7;
        float *q = randoms((size_t)(s.H * s.Lq * s.D), &in_seed), *kk = randoms((size_t)(s.Lk * s.D), &in_seed);
        float *v = randoms((size_t)(s.Lk * s.Dv), &in_seed);
        for (int64_t x = 0; x < s.H * s.Lq * s.D; x++) q[x] *= qs;
        o[i] = calloc((size_t)(s.H * s.Lq * s.Dv), sizeof(float));
        attnc_args a = {s, q, kk, v, o[i], NULL, p, np, t, nt};
        attnc_error err = {0};
        st[i] = attnc_kernel_run(i ? ref : k, &a, &err);
        free(q), free(kk), free(v);
    }
    const char *name = attnc_backend_name(attnc_kernel_backend(k));
    if (st[0] != (fails ? ATTNC_ERR_RUNTIME : ATTNC_OK) || st[1] != st[0]) {
        printf("FAIL %s/%s: %s: status %d, the interpreter's %d\n", name, attnc_kernel_variant(k), what, st[0], st[1]);
        failures++;
    } else if (!st[0] && !close_enough(o[0], o[1], (size_t)(s.H * s.Lq * s.Dv))) {
        printf("FAIL %s/%s: %s: O differs from the interpreter\n", name, attnc_kernel_variant(k), what);
        failures++;
    }
    free(o[0]), free(o[1]);
}

/* The table attention's call of n entries per head (values from seed). */
static void check_table(const attnc_kernel *k, const attnc_kernel *ref, int64_t n, unsigned seed, int fails) {
    float *table = randoms((size_t)(2 * n), &seed);
    attnc_param p = {"n", ATTNC_INT, n, 0, 0};
    attnc_tensor t = {"T", ATTNC_F32, 2, {2, n}, table};
    char what[32];
    snprintf(what, sizeof what, "n = %lld", (long long)n);
    check_call(k, ref, &p, 1, &t, 1, 1.0f, fails, what);
    free(table);
}

/* One call of the ids (J: 64 ints) or scored (J NULL) attention, Q scaled by qs. */
static void check_checks(const attnc_kernel *k, const attnc_kernel *ref, const int32_t *J, float qs, int fails,
                         const char *what) {
    unsigned tseed = 5;
    float *table = randoms(2 * 8, &tseed);
    attnc_tensor t[2] = {{"T", ATTNC_F32, 2, {2, 8}, table}, {"J", ATTNC_I32, 1, {64}, J}};
    check_call(k, ref, NULL, 0, t, J ? 2 : 1, qs, fails, what);
    free(table);
}

/* Whether the checks dropped from kept maps since `before` are `want` more; a failure otherwise. */
static void expect_dropped(const attnc_kernel *k, long long before, long long want, const char *what) {
    if (map_cache_checks_dropped() - before != want) {
        printf("FAIL %s/%s: %s: %lld kept maps dropped their checks, expected %lld\n",
               attnc_backend_name(attnc_kernel_backend(k)), attnc_kernel_variant(k), what,
               map_cache_checks_dropped() - before, want);
        failures++;
    }
}

typedef struct Job {
    const attnc_kernel *k, *ref;
    Call c;
} Job;

static void *job(void *arg) {
    Job *j = arg;
    for (int i = 0; i < 20; i++) check(j->k, j->ref, &j->c, "a call beside another thread's");
    return NULL;
}

/* The band attention as one paged sequence (Lq = Lk = 96, H = 2, Hkv = 1, zero strides: THD rows, NHD pages in
 * reverse order) on one kernel of 32-key tiles and on the interpreter, with pages of 32, 32, 8, 8, 16 and 32 rows:
 * the kernel reads pages of 8 and 16 rows in kv tiles of 8 and 16 keys, with a tile map of its own (kept maps are
 * keyed by their kv tile: the map of 32-key tiles read with pages of 8 rows would read past a page), and a page
 * size again right after itself reuses the kept map.  Each call's O must be the interpreter's. */
static void check_page_sizes(const attnc_spec *spec, attnc_backend be) {
    enum { L = 96, NH = 2, DD = 8 };
    attnc_options o = {.backend = be, .threads = 1, .tile_q = 16, .tile_k = 32};
    attnc_options oi = {.backend = ATTNC_BACKEND_INTERP, .threads = 1};
    attnc_kernel *k = NULL, *ref = NULL;
    attnc_error err = {0};
    if (attnc_compile(spec, "band", &o, &k, &err) || attnc_compile(spec, "band", &oi, &ref, &err)) {
        printf("FAIL compile band for pages: %s\n", err.message), failures++;
        attnc_kernel_free(k);
        return;
    }
    unsigned seed = 11;
    float *q = randoms((size_t)(L * NH * DD), &seed), *kk = randoms((size_t)(L * DD), &seed);
    float *v = randoms((size_t)(L * DD), &seed);
    float *pk = malloc(sizeof(float) * (size_t)(L * DD)), *pv = malloc(sizeof(float) * (size_t)(L * DD));
    float *out[2] = {malloc(sizeof(float) * (size_t)(L * NH * DD)), malloc(sizeof(float) * (size_t)(L * NH * DD))};
    int32_t table[L];
    static const int64_t pages[] = {32, 32, 8, 8, 16, 32};
    long long short0 = launch_short_tile_calls(), reuses = map_cache_masked_reuses();
    for (size_t i = 0; i < sizeof pages / sizeof pages[0]; i++) {
        int64_t P = pages[i], n = L / P;
        for (int64_t j = 0; j < n; j++) table[j] = (int32_t)(n - 1 - j);
        for (int64_t r = 0; r < L; r++) { /* key r: row r % P of page table[r / P] */
            memcpy(pk + (table[r / P] * P + r % P) * DD, kk + r * DD, sizeof(float) * DD);
            memcpy(pv + (table[r / P] * P + r % P) * DD, v + r * DD, sizeof(float) * DD);
        }
        attnc_batch b = {.page_size = P, .num_pages = n, .pages_per_seq = n, .block_table = table};
        attnc_status st[2];
        for (int w = 0; w < 2; w++) {
            attnc_args a = {{1, NH, 1, L, L, DD, DD}, q, pk, pv, out[w], NULL, NULL, 0, NULL, 0};
            attnc_layouts lay;
            memset(&lay, 0, sizeof lay);
            st[w] = attnc_kernel_run_batch(w ? ref : k, &a, &lay, &b, &err);
            if (st[w]) printf("FAIL %s: pages of %lld: %s\n", attnc_backend_name(be), (long long)P, err.message);
        }
        if (st[0] || st[1]) failures++;
        else if (!close_enough(out[0], out[1], (size_t)(L * NH * DD))) {
            printf("FAIL %s/band: pages of %lld rows (call %zu) differ from the interpreter\n", attnc_backend_name(be),
                   (long long)P, i);
            failures++;
        }
    }
    if (launch_short_tile_calls() - short0 != 3)
        printf("FAIL %s/band: %lld calls read pages in short kv tiles, expected 3\n", attnc_backend_name(be),
               launch_short_tile_calls() - short0),
            failures++;
    if (map_cache_masked_reuses() - reuses < 2)
        printf("FAIL %s/band: pages of one size twice did not reuse the kept map\n", attnc_backend_name(be)), failures++;
    free(q), free(kk), free(v), free(pk), free(pv), free(out[0]), free(out[1]);
    attnc_kernel_free(k), attnc_kernel_free(ref);
}

/* tiles of 16 rows: calls of 64 and 128 rows have several, whose classes the params and sizes change */
static attnc_kernel *compile(const attnc_spec *spec, const char *variant, attnc_backend b) {
    attnc_options o = {.backend = b, .threads = 1, .tile_q = 16, .tile_k = 16};
    attnc_kernel *k = NULL;
    attnc_error err = {0};
    if (attnc_compile(spec, variant, &o, &k, &err)) printf("FAIL compile %s: %s\n", variant, err.message), failures++;
    return k;
}

int main(void) {
    attnc_spec *spec = NULL;
    attnc_error err = {0};
    if (attnc_spec_from_string("map_cache.attn", spec_text, strlen(spec_text), &spec, &err)) {
        printf("FAIL spec: %s\n", err.message);
        return 1;
    }
    attnc_sizes s64 = {1, 2, 1, 64, 64, 8, 8}, s128 = {1, 2, 1, 128, 128, 8, 8}, wide = {1, 2, 1, 128, 128, 16, 24};
    static const attnc_backend backends[] = {ATTNC_BACKEND_REFPLAN, ATTNC_BACKEND_TCC, ATTNC_BACKEND_LLVM};
    int32_t doc_a[128], doc_b[128];
    for (int i = 0; i < 128; i++) doc_a[i] = i / 16, doc_b[i] = i / 40;
    for (size_t bi = 0; bi < sizeof backends / sizeof backends[0]; bi++) {
        if (!attnc_backend_available(backends[bi])) continue;
        attnc_kernel *k = compile(spec, "band", backends[bi]), *ref = compile(spec, "band", ATTNC_BACKEND_INTERP);
        attnc_kernel *g = compile(spec, "grid", backends[bi]), *gref = compile(spec, "grid", ATTNC_BACKEND_INTERP);
        attnc_kernel *d = compile(spec, "doc", backends[bi]), *dref = compile(spec, "doc", ATTNC_BACKEND_INTERP);
        if (!k || !ref || !g || !gref || !d || !dref) return 1;
        /* a param the mask reads, then the sizes, then back */
        const Call band[] = {{s64, "w", 4, NULL}, {s64, "w", 4, NULL}, {s64, "w", 40, NULL},
                             {s128, "w", 40, NULL}, {s64, "w", 4, NULL}};
        for (size_t i = 0; i < sizeof band / sizeof band[0]; i++) check(k, ref, &band[i], "a band call");
        /* the grid's width (8 x 8, then 16 x 4 cells: both divide into the block-order plan's blocks); the rows
         * grow from 64 to 128, then D and Dv (an ASan build sees a kept buffer that did not grow) */
        const Call grid[] = {{s64, "width", 16, NULL},  {s128, "width", 8, NULL}, {s128, "width", 8, NULL},
                             {s128, "width", 16, NULL}, {s64, "width", 16, NULL}, {wide, "width", 8, NULL},
                             {s128, "width", 8, NULL}};
        long long mapped = launch_grid_kv_mapped_calls();
        for (size_t i = 0; i < sizeof grid / sizeof grid[0]; i++) check(g, gref, &grid[i], "a grid call");
        /* llvm reads float32 K and V in place through the block order's row map (AttnCall.kv_rows); the others
         * copy them into block order */
        long long want = backends[bi] == ATTNC_BACKEND_LLVM ? (long long)(sizeof grid / sizeof grid[0]) : 0;
        if (launch_grid_kv_mapped_calls() - mapped != want)
            printf("FAIL %s/grid: %lld calls read K and V through kv_rows, expected %lld\n",
                   attnc_backend_name(backends[bi]), launch_grid_kv_mapped_calls() - mapped, want),
                failures++;
        /* the mask tensor's contents change, its shape does not */
        const Call doc[] = {{s128, NULL, 0, doc_a}, {s128, NULL, 0, doc_b}, {s128, NULL, 0, doc_a}};
        for (size_t i = 0; i < sizeof doc / sizeof doc[0]; i++) check(d, dref, &doc[i], "a document call");
        /* the same contents again: the kept map (a copy of the ids is in its key); then the caller's buffer
         * changed in place: a new map */
        int32_t doc_c[128];
        memcpy(doc_c, doc_a, sizeof doc_c);
        long long reuses = map_cache_masked_reuses();
        check(d, dref, &(Call){s128, NULL, 0, doc_c}, "a document call with the last call's ids");
        if (map_cache_masked_reuses() == reuses) {
            printf("FAIL %s/doc: the same ids again did not reuse the kept map\n", attnc_backend_name(backends[bi]));
            failures++;
        }
        for (int i = 64; i < 128; i++) doc_c[i] = 7 + i / 8;
        check(d, dref, &(Call){s128, NULL, 0, doc_c}, "a document call after its ids changed in place");
        /* a bias table: Lk entries a head (no index can fall outside: the map says no checks), new contents,
         * Lk - 1 (key 63 falls outside: the map must be rebuilt, with checks, and name the error), Lk again */
        attnc_kernel *t = compile(spec, "table", backends[bi]), *tref = compile(spec, "table", ATTNC_BACKEND_INTERP);
        if (!t || !tref) return 1;
        check_table(t, tref, 64, 1, 0);
        check_table(t, tref, 64, 2, 0);
        check_table(t, tref, 63, 3, 1);
        check_table(t, tref, 64, 4, 0);
        attnc_kernel_free(t), attnc_kernel_free(tref);
        /* runtime error checks dropped after a clean call, and what must still fail */
        attnc_kernel *ids = compile(spec, "ids", backends[bi]), *idsref = compile(spec, "ids", ATTNC_BACKEND_INTERP);
        attnc_kernel *sc = compile(spec, "scored", backends[bi]), *scref = compile(spec, "scored", ATTNC_BACKEND_INTERP);
        if (!ids || !idsref || !sc || !scref) return 1;
        int32_t J[64];
        for (int i = 0; i < 64; i++) J[i] = i % 5; /* + q - kv (0 .. 3): inside T's 8, which intervals cannot show */
        long long dropped = map_cache_checks_dropped();
        check_checks(ids, idsref, J, 1.0f, 0, "ids in range");
        expect_dropped(ids, dropped, 1, "a clean call");
        check_checks(ids, idsref, J, 1.0f, 0, "ids in range again (no checks)");
        J[10] = 9; /* a kept key's index outside the table: the ids are in the key, so the checks run again */
        check_checks(ids, idsref, J, 1.0f, 1, "a kept key's id out of range");
        J[10] = 2, J[20] = 99; /* only at the masked key */
        check_checks(ids, idsref, J, 1.0f, 0, "a masked key's id out of range");
        dropped = map_cache_checks_dropped();
        check_checks(sc, scref, NULL, 1.0f, 0, "small scores");
        expect_dropped(sc, dropped, 0, "checks that read the scores");
        check_checks(sc, scref, NULL, 400.0f, 1, "scores past the table");
        attnc_kernel_free(ids), attnc_kernel_free(idsref), attnc_kernel_free(sc), attnc_kernel_free(scref);
        check_page_sizes(spec, backends[bi]);
        /* two threads, one kernel, two params */
        Job j1 = {k, ref, {s64, "w", 3, NULL}}, j2 = {k, ref, {s64, "w", 40, NULL}};
        pthread_t t1, t2;
        pthread_create(&t1, NULL, job, &j1);
        pthread_create(&t2, NULL, job, &j2);
        pthread_join(t1, NULL);
        pthread_join(t2, NULL);
        Job g1 = {g, gref, {s128, "width", 8, NULL}}, g2 = {g, gref, {wide, "width", 16, NULL}};
        pthread_create(&t1, NULL, job, &g1);
        pthread_create(&t2, NULL, job, &g2);
        pthread_join(t1, NULL);
        pthread_join(t2, NULL);
        printf("%s: %s\n", attnc_backend_name(backends[bi]), failures ? "FAILED" : "ok");
        attnc_kernel_free(k), attnc_kernel_free(ref), attnc_kernel_free(g), attnc_kernel_free(gref);
        attnc_kernel_free(d), attnc_kernel_free(dref);
    }
    attnc_spec_free(spec);
    return failures != 0;
}
