/* launch.c — the per-call driver shared by every compiled backend.
 * Requires: a Plan, a compiled tile function, a BoundCall.
 * Produces: O and LSE.  Chooses how the call is cut into work items
 * (docs/decode.md): how many query heads of one kv head an item packs as
 * rows (AttnCall.pack) and into how many kv splits the keys are cut: when
 * the items are fewer than the threads (split-KV), and into chunks when
 * the rows of several kv heads interleave (kv_chunks); whether a prefill
 * reads K and V rows that lie apart from one kv head's rows packed back to
 * back (pack_head); builds the tile map
 * (one per split), fills the AttnCalls, orders the work items head by head
 * and heaviest first within a head (see order_items), runs them on the
 * thread pool split by split, merges the splits' partial results (runtime/merge.c) and
 * turns a kernel's fault flag into the interpreter's precise error message.
 * When the plan can fault, or the keys are split, results go to private
 * buffers first, so a failed call leaves O and LSE untouched.  A caller
 * may have tensors made per work item (launch_run_items: the tables of Q
 * rows of runtime/rows_items.c): each item then runs on a copy of its
 * split's AttnCall whose tensor_data is its thread's. */
#include "launch.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "grid.h"
#include "interp.h"
#include "kept_buffers.h"
#include "launch_stats.h"
#include "map_cache.h"
#include "merge.h"
#include "tensor_io.h"
#include "threads.h"

enum { MAX_SPLITS = 256 };

typedef struct Launch {
    const CompiledKernel *ck;
    const Plan *p;
    const BoundCall *bc;
    int splits;
    AttnCall *call; /* [splits]: one per kv split, each with its own tile map */
    TileMap *tm;    /* [splits] */
    int64_t items;   /* work items per split */
    int64_t per_run; /* items of one split in one pool run: items, or a head's q tiles with a GridHook */
    int64_t *order;  /* work items in the order they are handed out */
    int64_t first;   /* with a GridHook: the head's first entry of order (its items follow) */
    char *scratch;
    int64_t scratch_bytes;
    volatile int fault; /* set by any item; read after the pool joins */
    /* split-KV: the splits' O rows [splits][B*H*Lq][Dv] and LSE, merged into O and LSE */
    float *part_o, *part_lse;
    float *merged; /* [threads][Dv] one merged row per thread */
    float *o, *lse;  /* where the merged rows go, with the call's O layout */
    const LaunchItemTensors *it; /* NULL, or tensors made per work item */
    const void **tdata;          /* with it: [threads][ntensors] each thread's tensor_data */
    int ntensors;
    int threads;  /* of the pool runs */
} Launch;

void launch_copy_out(const attnc_sizes *sz, int64_t row, int elem_bytes, const char *from, char *to,
                     const int64_t *stride) {
    for (int64_t b = 0; b < sz->B; b++)
        for (int64_t h = 0; h < sz->H; h++)
            for (int64_t q = 0; q < sz->Lq; q++) {
                const char *src = from + (((b * sz->H + h) * sz->Lq + q) * row) * elem_bytes;
                memcpy(to + (b * stride[0] + h * stride[1] + q * stride[2]) * elem_bytes, src, (size_t)(row * elem_bytes));
            }
}

void launch_set_layouts(AttnCall *c, const BoundCall *bc, int private_out, int f32_out) {
    const BoundLayout *L = bc->layout;
    c->q_elem = L[BT_Q].elem, c->k_elem = L[BT_K].elem, c->v_elem = L[BT_V].elem, c->o_elem = L[BT_O].elem;
    memcpy(c->q_stride, L[BT_Q].stride, sizeof c->q_stride);
    memcpy(c->k_stride, L[BT_K].stride, sizeof c->k_stride);
    memcpy(c->v_stride, L[BT_V].stride, sizeof c->v_stride);
    memcpy(c->o_stride, L[BT_O].stride, sizeof c->o_stride);
    memcpy(c->lse_stride, L[BT_LSE].stride, sizeof c->lse_stride);
    if (f32_out) c->o_elem = ATTNC_ELEM_F32;
    if (private_out) {
        const attnc_sizes *s = &bc->sz;
        int64_t o[4] = {s->H * s->Lq * s->Dv, s->Lq * s->Dv, s->Dv, 1}, lse[3] = {s->H * s->Lq, s->Lq, 1};
        memcpy(c->o_stride, o, sizeof o);
        memcpy(c->lse_stride, lse, sizeof lse);
    }
}

/* The work item that item i of a pool run runs (split i / per_run; see run_item). */
static int64_t run_order(const Launch *l, int64_t i) { return l->order[l->first + i % l->per_run]; }

/* Pull the Q rows of work item i of a pool run (when there is one) towards the cache, and its O rows for
 * writing: the item a thread takes after its current one is about `threads` further on.  Items of masks
 * that visit few kv tiles (windows, documents: 5 of 64 at window 256; a 2-D neighbourhood: 9 of 256)
 * read their Q rows from memory once, before any arithmetic, and write O once at the end; a load or a
 * store that misses waits there (a 2-D neighbourhood's kernel spent ~9% of its time on Q's loads, ~6% on
 * O's stores).  The empty volatile asm keeps the calls: GCC counts __builtin_prefetch as free of side
 * effects, so it found this function pure and deleted every call to it (until 2026-12-03 it never ran). */
static void prefetch_rows(const Launch *l, int64_t i) {
    __asm__ volatile("");
    const AttnCall *c = &l->call[0];
    if (i >= l->per_run * l->splits || c->pack > 1) return;
    int64_t item = run_order(l, i);
    int64_t qt = item % c->nqt, bh = item / c->nqt, esz = c->q_elem == ATTNC_ELEM_F32 ? 4 : 2;
    int64_t r0 = qt * c->bq, r1 = r0 + c->bq < c->Lq ? r0 + c->bq : c->Lq;
    int64_t oesz = c->o_elem == ATTNC_ELEM_F32 ? 4 : 2;
    const char *base = (const char *)c->q + (bh / c->H * c->q_stride[0] + bh % c->H * c->q_stride[1]) * esz;
    /* (no O: nothing to prefetch for writing; an offset from NULL would be undefined) */
    const int64_t obytes = c->o ? c->Dv * oesz : 0;
    const char *obase =
        c->o ? (const char *)c->o + (bh / c->H * c->o_stride[0] + bh % c->H * c->o_stride[1]) * oesz : NULL;
    for (int64_t r = r0; r < r1; r++) {
        int64_t row = c->q_rows ? c->q_rows[r] : r;
        const char *qrow = base + row * c->q_stride[2] * esz;
        const char *orow = obase ? obase + row * c->o_stride[2] * oesz : NULL;
        for (int64_t at = 0; at < c->D * esz; at += 64) __builtin_prefetch(qrow + at, 0, 2);
        for (int64_t at = 0; at < obytes; at += 64) __builtin_prefetch(orow + at, 1, 2);
    }
}

/* Work item i of a pool run: split i / per_run of item order[first + i %
 * per_run]: split by split, so that items reading one chunk of keys run
 * together (kv_chunks). */
static void run_item(void *ctx, int64_t i, int thread) {
    Launch *l = ctx;
    int split = (int)(i / l->per_run);
    const AttnCall *c = &l->call[split];
    int64_t item = run_order(l, i);
    int64_t pack = c->pack > 1 ? c->pack : 1, heads = c->H / pack; /* items per b along h */
    int64_t qt = item % c->nqt, bh = item / c->nqt;
    AttnCall mine;
    if (l->it) { /* the item's own tensors: a copy of the call pointing at them */
        const void **td = l->tdata + (int64_t)thread * l->ntensors;
        l->it->item(l->it->ctx, thread, split, item, td);
        mine = *c;
        mine.tensor_data = td;
        c = &mine;
    }
    prefetch_rows(l, i + l->threads);
    if (l->ck->tile(c, bh / heads, bh % heads * pack, qt, l->scratch + (int64_t)thread * l->scratch_bytes))
        l->fault = 1;
}

/* Work items head by head, and within a head the heaviest q tiles first.
 * Head-major keeps one (b, h)'s K and V hot in cache while both threads
 * work on it; heaviest first lets the light tiles at the end of each head
 * fill the gaps that unequal tiles (causal, windows) leave.  Within a head
 * the cost of a q tile is the number of kv tiles it visits (counting sort:
 * O(items + tiles)).  With packed heads a "head" is a pack of them. */
static int64_t *order_items(const AttnCall *c, const Plan *p, const TileMap *tm) {
    int64_t pack = c->pack > 1 ? c->pack : 1, heads = c->H / pack;
    int64_t n = c->B * heads * c->nqt;
    int64_t *order = malloc(sizeof(int64_t) * (size_t)(n + 1));
    int64_t *count = calloc((size_t)(tm->nkt + 2), sizeof(int64_t));
    if (!order || !count) {
        free(order);
        free(count);
        return NULL;
    }
    int64_t k = 0;
    for (int64_t bh = 0; bh < c->B * heads; bh++) {
        int64_t g = tile_group(p, tm, bh / heads, bh % heads * pack, c->H);
        const int64_t *rs = tm->row_start + g * tm->nqt;
        memset(count, 0, sizeof(int64_t) * (size_t)(tm->nkt + 2));
        for (int64_t qt = 0; qt < c->nqt; qt++) count[tm->nkt - (rs[qt + 1] - rs[qt])]++;
        for (int64_t j = 1; j <= tm->nkt + 1; j++) count[j] += count[j - 1];
        for (int64_t qt = c->nqt - 1; qt >= 0; qt--) order[k + --count[tm->nkt - (rs[qt + 1] - rs[qt])]] = bh * c->nqt + qt;
        k += c->nqt;
    }
    free(count);
    return order;
}

/* Query heads per work item: the largest divisor of H / Hkv that divides
 * bq, when the schedule allows packing and a q tile would otherwise hold
 * fewer than bq rows of one head (decode, short prompts); else 1. */
static int64_t heads_per_item(const Plan *p, const CompiledKernel *ck, const attnc_sizes *sz, int flags) {
    if ((flags & ATTNC_OPT_NO_PACK_HEADS) || !ck->packs || !p->sched->pack_heads || sz->Hkv <= 0 || sz->Lq >= p->bq) return 1;
    int64_t group = sz->H / sz->Hkv;
    for (int64_t d = group < p->bq ? group : p->bq; d > 1; d--)
        if (group % d == 0 && p->bq % d == 0) return d;
    return 1;
}

/* kv splits: enough that every thread has an item, when the items are
 * fewer than the threads; each split at least one kv tile.  A weight
 * attention whose LSE is asked for is not split: its LSE is the log of a
 * sum that may be negative, which LSEs cannot merge (docs/merge.md). */
int launch_split_count(int64_t items, int64_t nkt, int threads, int max) {
    if (items <= 0 || items >= threads || nkt < 2) return 1;
    int64_t s = (threads + items - 1) / items;
    if (s > nkt) s = nkt;
    return s > max ? max : (int)s;
}

/* kv chunks of about CHUNK_BYTES of K and V rows (all heads') when the rows
 * of several kv heads interleave in K or V ([B, Lk, Hkv, D], vLLM's pages:
 * stride[1] < stride[2]) and every item reads its kv head's keys once (one
 * q tile: decode).  Such an item reads D elements of every Hkv * D, and
 * alone it streams them at a third of the speed of a head-major cache: the
 * lines of the other heads that the hardware brings along are gone before
 * their items run.  Run split by split, the items of all kv heads read one
 * chunk while it is in cache (docs/decode.md).  At most MAX_PART_BYTES of
 * partial results. */
enum { CHUNK_BYTES = 8 << 20, MAX_PART_BYTES = 32 << 20 };
static atomic_llong chunk_bytes = CHUNK_BYTES;
static int elem_bytes(attnc_elem e) { return e == ATTNC_ELEM_F32 ? 4 : 2; }
void launch_set_chunk_bytes(long long bytes) { atomic_store(&chunk_bytes, bytes > 0 ? bytes : CHUNK_BYTES); }

static int64_t kv_chunks(const BoundCall *bc, int64_t nqt, int64_t bk, int64_t nkt) {
    const BoundLayout *k = &bc->layout[BT_K], *v = &bc->layout[BT_V];
    const attnc_sizes *sz = &bc->sz;
    if (nqt != 1 || sz->Hkv < 2 || bk <= 0 || (k->stride[1] >= k->stride[2] && v->stride[1] >= v->stride[2])) return 1;
    int64_t row_bytes = k->stride[2] * elem_bytes(k->elem) + v->stride[2] * elem_bytes(v->elem);
    int64_t tiles = atomic_load(&chunk_bytes) / (row_bytes > 0 ? row_bytes : 1) / bk; /* kv tiles per chunk */
    if (tiles < 1) tiles = 1;
    int64_t chunks = (nkt + tiles - 1) / tiles;
    int64_t part = sz->B * sz->H * sz->Lq * (sz->Dv + 1) * (int64_t)sizeof(float);
    if (part > 0 && chunks > MAX_PART_BYTES / part) chunks = MAX_PART_BYTES / part;
    return chunks;
}

static atomic_llong chunked_calls; /* launch_stats.h */
long long launch_kv_chunked_calls(void) { return atomic_load(&chunked_calls); }

static int kv_splits(const Plan *p, const BoundCall *bc, const attnc_args *args, int64_t items, int64_t nqt,
                     int64_t bk, int64_t nkt, int threads, int flags) {
    if ((flags & ATTNC_OPT_NO_KV_SPLIT) || (!p->softmax && args->lse)) return 1;
    int64_t s = launch_split_count(items, nkt, threads, MAX_SPLITS), chunks = kv_chunks(bc, nqt, bk, nkt);
    if (chunks > s) s = chunks;
    if (s > nkt) s = nkt;
    if (s > MAX_SPLITS) s = MAX_SPLITS;
    if (chunks > 1) atomic_fetch_add(&chunked_calls, 1); /* into chunks, or into finer splits for the threads */
    return s < 1 ? 1 : (int)s;
}

/* Merge rows [i * chunk, (i + 1) * chunk) of the splits into O and LSE. */
enum { MERGE_CHUNK = 16 };
static void merge_rows(void *ctx, int64_t i, int thread) {
    Launch *l = ctx;
    const attnc_sizes *sz = &l->bc->sz;
    const BoundLayout *L = l->bc->layout;
    int64_t rows = sz->B * sz->H * sz->Lq, dv = sz->Dv;
    float *row = l->merged + (int64_t)thread * (dv + 1);
    for (int64_t r = i * MERGE_CHUNK; r < rows && r < (i + 1) * MERGE_CHUNK; r++) {
        float lse;
        merge_row(l->p->softmax, l->splits, l->part_o + r * dv, rows * dv, l->part_lse + r, rows, dv, row, &lse);
        int64_t b = r / (sz->H * sz->Lq), h = r / sz->Lq % sz->H, q = r % sz->Lq;
        int64_t at = b * L[BT_O].stride[0] + h * L[BT_O].stride[1] + q * L[BT_O].stride[2];
        for (int64_t d = 0; d < dv; d++) tensor_store(l->o, L[BT_O].elem, at + d, row[d]);
        if (l->lse) l->lse[b * L[BT_LSE].stride[0] + h * L[BT_LSE].stride[1] + q * L[BT_LSE].stride[2]] = lse;
    }
}

/* The private buffers of the call: O and LSE of every split, or of the one
 * call when it can fault (a fault midway must not leave O half written). */
static int private_buffers(Launch *l, const attnc_args *args, int check_faults, int threads, float **o, float **lse) {
    const attnc_sizes *sz = &l->bc->sz;
    size_t rows = (size_t)(sz->B * sz->H * sz->Lq), no = rows * (size_t)sz->Dv;
    *o = args->o, *lse = args->lse;
    if (l->splits > 1) {
        l->part_o = malloc(sizeof(float) * (no * (size_t)l->splits + 1));
        l->part_lse = malloc(sizeof(float) * (rows * (size_t)l->splits + 1));
        l->merged = malloc(sizeof(float) * ((size_t)threads * (size_t)(sz->Dv + 1) + 1));
        return l->part_o && l->part_lse && l->merged;
    }
    if (check_faults) {
        int o_bytes = l->bc->layout[BT_O].elem == ATTNC_ELEM_F32 ? 4 : 2;
        *o = malloc((size_t)o_bytes * (no + 1));
        *lse = args->lse ? malloc(sizeof(float) * (rows + 1)) : NULL;
        return *o && (*lse || !args->lse);
    }
    return 1;
}

int launch_values(const BoundCall *bc, LaunchValues *v) {
    const Attention *a = bc->attn;
    v->params = calloc((size_t)a->nparams + 1, sizeof *v->params);
    v->tdata = calloc((size_t)a->ntensors + 1, sizeof *v->tdata);
    v->tshape = calloc((size_t)a->ntensors + 1, sizeof *v->tshape);
    if (!v->params || !v->tdata || !v->tshape) return 0;
    for (int i = 0; i < a->nparams; i++) {
        Type t = a->params[i]->type;
        if (t == T_FLOAT) v->params[i].f = bc->params[i].f;
        else v->params[i].i = t == T_BOOL ? bc->params[i].b : bc->params[i].i;
    }
    for (int i = 0; i < a->ntensors; i++) {
        v->tdata[i] = bc->tensors[i]->data;
        for (int d = 0; d < bc->tensors[i]->rank; d++) v->tshape[i][d] = bc->tensors[i]->shape[d];
    }
    return 1;
}

void launch_values_free(LaunchValues *v) {
    free(v->params);
    free(v->tdata);
    free(v->tshape);
    memset(v, 0, sizeof *v);
}

attnc_status launch_run(const Plan *p, const CompiledKernel *ck, const BoundCall *bc, const attnc_args *args,
                        int threads, int flags, const LaunchPages *pages, attnc_error *err) {
    return launch_run_items(p, ck, bc, args, threads, flags, pages, NULL, err);
}

/* Each thread's copy of the call's tensor_data, and the items' own tensors planned. */
static attnc_status begin_items(Launch *l, const LaunchItemTensors *it, const void **tdata, int64_t pack, int threads,
                                attnc_error *err) {
    l->it = it;
    l->ntensors = l->bc->attn->ntensors;
    l->tdata = malloc(sizeof(void *) * (size_t)(threads * l->ntensors) + 1);
    if (!l->tdata) return set_error(err, ATTNC_ERR_NOMEM, "out of memory");
    for (int t = 0; t < threads; t++) memcpy(l->tdata + t * l->ntensors, tdata, sizeof(void *) * (size_t)l->ntensors);
    return it->begin(it->ctx, l->p, l->bc, l->tm, l->splits, pack, threads, err);
}

/* A run head by head (launch_grid, packed K and V): begin once the tile
 * map says whether the call checks faults; head before the items of (b, h)
 * run, done after them (when nothing faulted).  With `outputs`, the kernel
 * writes O and LSE only where the hook said, and done puts them in the
 * caller's (launch_grid); without, O and LSE are the call's as usual.
 * With `names_faults` a fault is ATTNC_ERR_RUNTIME here and the caller
 * names it (the kernel's rows are not the caller's call).  q_rows, kv_rows:
 * the calls' AttnCall.q_rows and kv_rows.  Needs one head per item and no
 * kv split. */
typedef struct GridHook {
    attnc_status (*begin)(void *ctx, int check_faults, attnc_error *err);
    void (*head)(void *ctx, int64_t b, int64_t h);
    void (*done)(void *ctx, int64_t b, int64_t h);
    void *ctx;
    int outputs, names_faults;
    const int64_t *q_rows, *kv_rows;
} GridHook;

static attnc_status launch_grid(const Plan *p, const CompiledKernel *ck, const BoundCall *bc, const attnc_args *args,
                                int threads, int flags, int64_t W, int64_t H, attnc_error *err);
static attnc_status launch_tiles(const Plan *p, const CompiledKernel *ck, const BoundCall *bc, const attnc_args *args,
                                 int threads, int flags, const LaunchPages *pages, const LaunchItemTensors *it,
                                 const GridHook *gh, attnc_error *err);

static atomic_llong grid_calls, grid_kv_mapped_calls, grid_table_calls, diag_calls, band_calls; /* launch_stats.h */
static atomic_llong live_key_calls, short_tile_calls;

long long launch_grid_calls(void) { return atomic_load(&grid_calls); }
long long launch_grid_table_calls(void) { return atomic_load(&grid_table_calls); }
long long launch_grid_kv_mapped_calls(void) { return atomic_load(&grid_kv_mapped_calls); }
long long launch_diag_table_calls(void) { return atomic_load(&diag_calls); }
long long launch_band_calls(void) { return atomic_load(&band_calls); }
long long launch_live_key_calls(void) { return atomic_load(&live_key_calls); }
long long launch_short_tile_calls(void) { return atomic_load(&short_tile_calls); }

attnc_status launch_run_items(const Plan *p, const CompiledKernel *ck, const BoundCall *bc, const attnc_args *args,
                              int threads, int flags, const LaunchPages *pages, const LaunchItemTensors *it,
                              attnc_error *err) {
    int64_t W, H;
    int grid = p->grid && ck->grid && !pages && !it && !(flags & ATTNC_OPT_NO_GRID_TILES)
                   ? grid_applies(p, p->grid, bc, &W, &H)
                   : 0;
    if (grid < 0) return set_error(err, ATTNC_ERR_NOMEM, "out of memory");
    if (grid) {
        atomic_fetch_add(&grid_calls, 1);
        if (p->grid->plan->sched->ndiag && p->grid->plan->sched->diag_grid[0]) atomic_fetch_add(&grid_table_calls, 1);
        return launch_grid(p, ck, bc, args, threads, flags, W, H, err);
    }
    if (p->sched->ndiag) atomic_fetch_add(&diag_calls, 1);
    if (p->sched->band_lo != IR_NONE) atomic_fetch_add(&band_calls, 1);
    return launch_tiles(p, ck, bc, args, threads, flags, pages, it, NULL, err);
}

/* Rows of one (b, h): row i of `near` (contiguous rows of row_bytes) is
 * row perm[i] of `far` (rows `stride` elements of elem_bytes apart); the
 * other way round when `scatter`. */
static void permute_rows(char *far, int64_t stride, int64_t L, const int64_t *perm, int64_t row_bytes,
                         int elem_bytes, char *near, int scatter) {
    for (int64_t i = 0; i < L; i++) {
        char *f = far + perm[i] * stride * elem_bytes, *n = near + i * row_bytes;
        if (scatter) memcpy(f, n, (size_t)row_bytes);
        else memcpy(n, f, (size_t)row_bytes);
    }
}


/* One call in block order, head by head (launch_grid). */
typedef struct GridRun {
    const BoundCall *bc;
    const attnc_args *args;
    const int64_t *qperm, *kperm;
    int qe, ke, ve, oe;
    char *q, *k, *v, *o; /* one head's rows in block order */
    float *lse;
    int64_t hk_loaded;   /* b * Hkv + hk whose K and V rows are in k and v; -1: none */
    int threads;         /* of the copies (grid_rows) */
    int64_t b, h, hk;    /* the head being copied (grid_head) */
    int copy_kv;         /* grid_head: the head's kv head is not yet in k and v */
    char *out_o;         /* where O goes: the caller's, or a private contiguous copy when the call can fault */
    float *out_lse;
    int64_t out_stride[4], lse_stride[3];
} GridRun;

static attnc_status grid_begin(void *ctx, int check_faults, attnc_error *err) {
    GridRun *g = ctx;
    const attnc_sizes *sz = &g->bc->sz;
    const BoundLayout *L = g->bc->layout;
    if (!check_faults) { /* nothing can fail after the first head: write the caller's rows directly */
        g->out_o = (char *)g->args->o, g->out_lse = g->args->lse;
        memcpy(g->out_stride, L[BT_O].stride, sizeof g->out_stride);
        memcpy(g->lse_stride, L[BT_LSE].stride, sizeof g->lse_stride);
        return ATTNC_OK;
    }
    size_t rows = (size_t)(sz->B * sz->H * sz->Lq);
    g->out_o = malloc(rows * (size_t)(sz->Dv * g->oe) + 1);
    g->out_lse = g->args->lse ? malloc(sizeof(float) * rows + 1) : NULL;
    if (!g->out_o || (g->args->lse && !g->out_lse)) return set_error(err, ATTNC_ERR_NOMEM, "out of memory");
    int64_t so[4] = {sz->H * sz->Lq * sz->Dv, sz->Lq * sz->Dv, sz->Dv, 1}, sl[3] = {sz->H * sz->Lq, sz->Lq, 1};
    memcpy(g->out_stride, so, sizeof so);
    memcpy(g->lse_stride, sl, sizeof sl);
    return ATTNC_OK;
}

/* Rows [i * GRID_ROWS, (i + 1) * GRID_ROWS) of the head's Q (unless read
 * in place: q NULL) and
 * of its kv head's K and V (copy_kv) into block order, on the pool's
 * threads (one thread copied while the others waited: natten2d on two
 * threads took 0.909 of the time once they share the copies). */
enum { GRID_ROWS = 256 };
static void grid_rows(void *ctx, int64_t i, int thread) {
    (void)thread;
    GridRun *g = ctx;
    const attnc_sizes *sz = &g->bc->sz;
    const BoundLayout *L = g->bc->layout;
    const int64_t *qs = L[BT_Q].stride, *ks = L[BT_K].stride, *vs = L[BT_V].stride;
    int64_t r0 = i * GRID_ROWS, n = r0 + GRID_ROWS < sz->Lq ? GRID_ROWS : sz->Lq - r0;
    if (g->q)
        permute_rows((char *)g->args->q + (g->b * qs[0] + g->h * qs[1]) * g->qe, qs[2], n, g->qperm + r0,
                     sz->D * g->qe, g->qe, g->q + r0 * sz->D * g->qe, 0);
    if (!g->copy_kv) return;
    permute_rows((char *)g->args->k + (g->b * ks[0] + g->hk * ks[1]) * g->ke, ks[2], n, g->kperm + r0, sz->D * g->ke,
                 g->ke, g->k + r0 * sz->D * g->ke, 0);
    permute_rows((char *)g->args->v + (g->b * vs[0] + g->hk * vs[1]) * g->ve, vs[2], n, g->kperm + r0, sz->Dv * g->ve,
                 g->ve, g->v + r0 * sz->Dv * g->ve, 0);
}

static void grid_head(void *ctx, int64_t b, int64_t h) {
    GridRun *g = ctx;
    const attnc_sizes *sz = &g->bc->sz;
    int64_t hk = h / (sz->H / sz->Hkv);
    g->b = b, g->h = h, g->hk = hk;
    g->copy_kv = g->k && g->hk_loaded != b * sz->Hkv + hk; /* (no k: read through kv_rows) */
    g->hk_loaded = b * sz->Hkv + hk;
    if (g->q || g->copy_kv) pool_run(g->threads, (sz->Lq + GRID_ROWS - 1) / GRID_ROWS, grid_rows, g);
}

static void grid_done(void *ctx, int64_t b, int64_t h) {
    GridRun *g = ctx;
    const attnc_sizes *sz = &g->bc->sz;
    const int64_t *os = g->out_stride, *ls = g->lse_stride;
    permute_rows(g->out_o + (b * os[0] + h * os[1]) * g->oe, os[2], sz->Lq, g->qperm, sz->Dv * g->oe, g->oe, g->o, 1);
    if (g->out_lse)
        permute_rows((char *)(g->out_lse + b * ls[0] + h * ls[1]), ls[2], sz->Lq, g->qperm, 4, 4, (char *)g->lse, 1);
}

/* Multi-dimensional tiles (middle/grid.h): head by head, the rows of Q, K
 * and V copied into block order (one head's, contiguous, their element
 * types: they stay in cache, and no call-sized buffer is faulted in), the
 * block-order plan's kernel run over them, O and LSE scattered back to the
 * caller's rows.  A kernel that maps its query rows (CompiledKernel.
 * maps_rows: AttnCall.q_rows, block order to the caller's rows) reads Q
 * and writes O and LSE in place instead, and only K and V are copied: the
 * copies were ~15% of natten2d's time, bandwidth-bound.  A call whose tile
 * analysis could not rule faults out writes a private O first (nothing is
 * written on error); a fault is named by the interpreter on the caller's
 * own call. */
static attnc_status launch_grid(const Plan *p, const CompiledKernel *ck, const BoundCall *bc, const attnc_args *args,
                                int threads, int flags, int64_t W, int64_t H, attnc_error *err) {
    const attnc_sizes *sz = &bc->sz;
    const GridTiling *gt = p->grid;
    const BoundLayout *L = bc->layout;
    int64_t n = sz->Lq;
    int in_place = ck->grid->maps_rows;
    /* K and V read through kv_rows: float32 ones (16-bit ones are widened once here instead of at every visit) */
    int kv_in_place = in_place && ck->grid->maps_kv_rows && L[BT_K].elem == ATTNC_ELEM_F32 &&
                      L[BT_V].elem == ATTNC_ELEM_F32;
    GridRun g = {.bc = bc, .args = args, .threads = threads > 0 ? threads : pool_cores(),
                 .qe = elem_bytes(L[BT_Q].elem), .ke = elem_bytes(L[BT_K].elem), .ve = elem_bytes(L[BT_V].elem),
                 .oe = elem_bytes(L[BT_O].elem), .hk_loaded = -1};
    /* the rows of one head in block order, in buffers the kernel keeps for its next call */
    enum { BUF_QPERM, BUF_KPERM, BUF_Q, BUF_K, BUF_V, BUF_O, BUF_LSE };
    Buffers *buf = kept_buffers_take(ck->grid_rows);
    int64_t *qperm = NULL, *kperm = NULL;
    if (buf) {
        qperm = buffers_reserve(buf, BUF_QPERM, sizeof(int64_t) * (size_t)n);
        kperm = buffers_reserve(buf, BUF_KPERM, sizeof(int64_t) * (size_t)n);
        if (!kv_in_place) {
            g.k = buffers_reserve(buf, BUF_K, (size_t)(n * sz->D * g.ke));
            g.v = buffers_reserve(buf, BUF_V, (size_t)(n * sz->Dv * g.ve));
        }
        if (!in_place) {
            g.q = buffers_reserve(buf, BUF_Q, (size_t)(n * sz->D * g.qe));
            g.o = buffers_reserve(buf, BUF_O, (size_t)(n * sz->Dv * g.oe));
            g.lse = buffers_reserve(buf, BUF_LSE, sizeof(float) * (size_t)n);
        }
    }
    g.qperm = qperm, g.kperm = kperm;
    attnc_status st = ATTNC_OK;
    if (!buf || !qperm || !kperm || (!kv_in_place && (!g.k || !g.v)) || (!in_place && (!g.q || !g.o || !g.lse))) {
        st = set_error(err, ATTNC_ERR_NOMEM, "out of memory for the rows in block order");
        goto done;
    }
    for (int64_t i = 0; i < n; i++) {
        qperm[i] = grid_row(W, H, gt->qbx, gt->qby, gt->qbz, i);
        kperm[i] = grid_row(W, H, gt->kbx, gt->kby, gt->kbz, i);
    }
    /* the kernel sees every (b, h) at the one head's rows: strides 0 along B and H (in place: Q, O and LSE
     * are the caller's) */
    BoundCall gbc = *bc;
    int64_t rq[4] = {0, 0, sz->D, 1}, rv[4] = {0, 0, sz->Dv, 1}, rl[4] = {0, 0, 1, 0};
    attnc_args ga = *args;
    if (!kv_in_place) {
        memcpy(gbc.layout[BT_K].stride, rq, sizeof rq);
        memcpy(gbc.layout[BT_V].stride, rv, sizeof rv);
        ga.k = (const float *)g.k, ga.v = (const float *)g.v;
    }
    if (!in_place) {
        memcpy(gbc.layout[BT_Q].stride, rq, sizeof rq);
        memcpy(gbc.layout[BT_O].stride, rv, sizeof rv);
        memcpy(gbc.layout[BT_LSE].stride, rl, sizeof rl);
        gbc.layout[BT_LSE].elem = ATTNC_ELEM_F32;
        ga.q = (const float *)g.q, ga.o = (float *)g.o;
        ga.lse = args->lse ? g.lse : NULL;
    }
    /* in place: O and LSE as in a plain run (a private O when the call can fault), the fault named here */
    if (kv_in_place) atomic_fetch_add(&grid_kv_mapped_calls, 1);
    GridHook hook = {.begin = in_place ? NULL : grid_begin, .head = grid_head, .done = in_place ? NULL : grid_done,
                     .ctx = &g, .outputs = !in_place, .names_faults = 1, .q_rows = in_place ? qperm : NULL,
                     .kv_rows = kv_in_place ? kperm : NULL};
    st = launch_tiles(gt->plan, ck->grid, &gbc, &ga, threads, flags | ATTNC_OPT_NO_KV_SPLIT | ATTNC_OPT_NO_PACK_HEADS,
                      NULL, NULL, &hook, err);
    if (st == ATTNC_ERR_RUNTIME) { /* the interpreter names the element on the caller's rows */
        st = interp_run(bc, args->q, args->k, args->v, NULL, NULL, err);
        if (st == ATTNC_OK)
            st = set_error(err, ATTNC_ERR_INTERNAL, "the kernel flagged a runtime error the interpreter does not see");
    }
    if (!st && g.out_o && g.out_o != (char *)args->o) {
        launch_copy_out(sz, sz->Dv, g.oe, g.out_o, (char *)args->o, L[BT_O].stride);
        if (args->lse) launch_copy_out(sz, 1, 4, (const char *)g.out_lse, (char *)args->lse, L[BT_LSE].stride);
    }
done:
    if (g.out_o != (char *)args->o) free(g.out_o);
    if (g.out_lse != args->lse) free(g.out_lse);
    if (buf) kept_buffers_put(ck->grid_rows, buf);
    return st;
}

/* K and V packed head by head.  Where the rows of a kv head lie apart in K
 * or V ([B, L, H, D], slices of a fused QKV projection) and the call reads
 * every kv tile several times (prefill: each q tile of a head that reaches
 * it), the rows of one kv head are copied back to back, by all threads,
 * into a buffer the kernel keeps, and the head's items read them there.
 * Rows H * D floats apart each lie on a page of their own and, for H * D a
 * multiple of 1024, in one set of L1's 64: read in place, blhd prefill took
 * 1.18x bhld's time (docs/layouts.md).  The copy is one pass over the head's
 * K and V and is made once per kv head (GQA's query heads share it).  Not
 * for decode (each row read once: kv_chunks instead), kv splits, packed
 * heads, pages or per-item tensors; at most PACK_MAX_BYTES a head.
 * 16-bit K and V are also widened there, exactly, into float32 (even when
 * their rows are back to back) when the kernel would otherwise widen each
 * kv tile at every visit (CompiledKernel.widens): at most WIDEN_MAX_BYTES
 * of float32 rows a head, so that the head stays in cache and the buffer
 * stays small beside the call's 16-bit K and V (docs/layouts.md). */
enum { PACK_MIN_READS = 4, PACK_ROWS = 64, PACK_MAX_BYTES = 256 << 20, WIDEN_MIN_READS = 8, WIDEN_MAX_BYTES = 32 << 20 };
static atomic_int pack_off;      /* launch_stats.h: launch_set_kv_packing */
static atomic_llong packed_calls, widened_calls; /* launch_stats.h */
void launch_set_kv_packing(int on) { atomic_store(&pack_off, !on); }
long long launch_kv_packed_calls(void) { return atomic_load(&packed_calls); }
long long launch_kv_widened_calls(void) { return atomic_load(&widened_calls); }

typedef struct KvPack {
    const attnc_sizes *sz;
    const BoundLayout *layout; /* the caller's */
    const char *k, *v;         /* the caller's */
    int threads, ke, ve;       /* the caller's element bytes */
    int wk, wv;                /* 1: K (V) widened from 16 bits into float32 */
    char *pk, *pv;             /* one kv head's rows, back to back */
    int64_t b, hk, loaded;     /* the kv head being copied; b * Hkv + hk in pk and pv (-1: none) */
} KvPack;

/* Whether the call reads K and V packed (else in place); *wk, *wv: whether
 * packing widens K, V. */
static int packs_kv(const CompiledKernel *ck, const BoundCall *bc, const TileMap *tm, int64_t pack, int splits,
                    int pages, int items, int *wk, int *wv) {
    const attnc_sizes *sz = &bc->sz;
    const BoundLayout *k = &bc->layout[BT_K], *v = &bc->layout[BT_V];
    *wk = *wv = 0;
    if (atomic_load(&pack_off) || pack > 1 || splits > 1 || pages || items || sz->Lk <= 0 || sz->Hkv <= 0)
        return 0;
    int64_t tiles = tm->ngroups * tm->nkt; /* visited / tiles: the reads of a kv tile */
    if (tm->nkt <= 0 || tm->visited < PACK_MIN_READS * tiles) return 0;
    if (ck->widens && tm->visited >= WIDEN_MIN_READS * tiles &&
        sz->Lk * (sz->D + sz->Dv) * (int64_t)sizeof(float) <= WIDEN_MAX_BYTES)
        *wk = k->elem != ATTNC_ELEM_F32, *wv = v->elem != ATTNC_ELEM_F32;
    if (*wk || *wv) return 1;
    if (k->stride[2] == sz->D && v->stride[2] == sz->Dv) return 0; /* rows back to back already */
    return sz->Lk * (sz->D * elem_bytes(k->elem) + sz->Dv * elem_bytes(v->elem)) <= PACK_MAX_BYTES;
}

/* n rows of `cols` elements of `bytes` each, `stride` elements apart from
 * src, to dst back to back: copied, or widened into float32. */
static void pack_one(char *dst, const char *src, int64_t n, int64_t stride, int64_t cols, int bytes, int widen,
                     attnc_elem e) {
    if (!widen) {
        tensor_copy_rows(dst, src, n, stride * bytes, (size_t)(cols * bytes));
        return;
    }
    for (int64_t r = 0; r < n; r++) tensor_widen((float *)dst + r * cols, (const uint16_t *)src + r * stride, cols, e);
}

/* Rows [i * PACK_ROWS, (i + 1) * PACK_ROWS) of the kv head's K and V. */
static void pack_rows(void *ctx, int64_t i, int thread) {
    (void)thread;
    KvPack *pk = ctx;
    const attnc_sizes *sz = pk->sz;
    const BoundLayout *L = pk->layout;
    const int64_t *ks = L[BT_K].stride, *vs = L[BT_V].stride;
    const char *k = pk->k + (pk->b * ks[0] + pk->hk * ks[1]) * pk->ke;
    const char *v = pk->v + (pk->b * vs[0] + pk->hk * vs[1]) * pk->ve;
    int64_t r0 = i * PACK_ROWS, n = (i + 1) * PACK_ROWS < sz->Lk ? PACK_ROWS : sz->Lk - r0;
    int kb = pk->wk ? 4 : pk->ke, vb = pk->wv ? 4 : pk->ve;
    pack_one(pk->pk + r0 * sz->D * kb, k + r0 * ks[2] * pk->ke, n, ks[2], sz->D, pk->ke, pk->wk, L[BT_K].elem);
    pack_one(pk->pv + r0 * sz->Dv * vb, v + r0 * vs[2] * pk->ve, n, vs[2], sz->Dv, pk->ve, pk->wv, L[BT_V].elem);
}

static void pack_head(void *ctx, int64_t b, int64_t h) {
    KvPack *pk = ctx;
    int64_t hk = h / (pk->sz->H / pk->sz->Hkv);
    if (pk->loaded == b * pk->sz->Hkv + hk) return;
    pk->b = b, pk->hk = hk, pk->loaded = b * pk->sz->Hkv + hk;
    pool_run(pk->threads, (pk->sz->Lk + PACK_ROWS - 1) / PACK_ROWS, pack_rows, pk);
}

/* The calls read K and V at pk's buffers, one kv head's rows back to back
 * (float32 where widened). */
static void pack_calls(Launch *l, KvPack *pk) {
    const attnc_sizes *sz = &l->bc->sz;
    int64_t ks[4] = {0, 0, sz->D, 1}, vs[4] = {0, 0, sz->Dv, 1};
    for (int s = 0; s < l->splits; s++) {
        l->call[s].k = (const float *)pk->pk, l->call[s].v = (const float *)pk->pv;
        memcpy(l->call[s].k_stride, ks, sizeof ks);
        memcpy(l->call[s].v_stride, vs, sizeof vs);
        if (pk->wk) l->call[s].k_elem = ATTNC_ELEM_F32;
        if (pk->wv) l->call[s].v_elem = ATTNC_ELEM_F32;
    }
}

/* The tiled run of launch_run_items, head by head with a GridHook: `gh` in
 * block order (launch_grid: O and LSE go where gh's done puts them, no
 * private buffers here, and a fault is not named here, since the
 * interpreter would read the rows as the caller's: ATTNC_ERR_RUNTIME, and
 * launch_grid names it), or the pack hook this function sets itself
 * (pack_head: O, LSE and faults as in a plain run). */
static attnc_status launch_tiles(const Plan *p, const CompiledKernel *ck, const BoundCall *bc, const attnc_args *args,
                                 int threads, int flags, const LaunchPages *pages, const LaunchItemTensors *it,
                                 const GridHook *gh, attnc_error *err) {
    const attnc_sizes *sz = &bc->sz;
    int64_t pack = heads_per_item(p, ck, sz, flags);
    TileMap full;
    int64_t bk = pages && pages->kv_tile > 0 ? pages->kv_tile : p->bk; /* kv tiles of a page where pages are shorter */
    attnc_status st = map_cache_build(ck->maps, p, bc, p->bq / pack, bk, &full, err);
    if (st) return st;
    if (full.bk < p->bk) atomic_fetch_add(&short_tile_calls, 1);
    Launch *l = calloc(1, sizeof *l);
    LaunchValues vals;
    int have_vals = launch_values(bc, &vals);
    AttnValue *params = vals.params;
    const void **tdata = vals.tdata;
    int64_t(*tshape)[ATTNC_ABI_MAX_RANK] = vals.tshape;
    float *o = NULL, *lse = NULL;
    Buffers *packed = NULL; /* K and V rows of one kv head (pack_head) */
    if (!l || !have_vals) {
        st = set_error(err, ATTNC_ERR_NOMEM, "out of memory");
        goto done;
    }
    l->ck = ck, l->p = p, l->bc = bc;
    l->items = sz->B * (sz->H / pack) * full.nqt;
    if (threads <= 0) threads = pool_cores();
    l->splits = kv_splits(p, bc, args, l->items, full.nqt, full.bk, full.nkt, threads, flags);
    int64_t total = l->items * l->splits;
    if (threads > total) threads = total > 0 ? (int)total : 1;
    l->threads = threads;
    l->call = calloc((size_t)l->splits, sizeof *l->call);
    l->tm = calloc((size_t)l->splits, sizeof *l->tm);
    if (!l->call || !l->tm || !private_buffers(l, args, full.check_faults && !(gh && gh->outputs), threads, &o, &lse)) {
        st = set_error(err, ATTNC_ERR_NOMEM, "out of memory");
        goto done;
    }
    int64_t gsb, gsh; /* the tile group of (b, h) */
    sched_group_strides(p->sched, sz->H, &gsb, &gsh);
    int64_t rows = sz->B * sz->H * sz->Lq;
    /* the live sets are passed only where no fault is checked; the splits' maps share full's cut keys */
    if (!full.check_faults && full.live_cut > 0) atomic_fetch_add(&live_key_calls, 1);
    for (int s = 0; s < l->splits; s++) {
        if (l->splits == 1) {
            l->tm[0] = full;
            memset(&full, 0, sizeof full);
        } else if ((st = tile_map_slice(&full, full.nkt * s / l->splits, full.nkt * (s + 1) / l->splits, &l->tm[s], err))) {
            goto done;
        }
        const TileMap *tm = &l->tm[s];
        float *so = l->splits > 1 ? l->part_o + s * rows * sz->Dv : o;
        float *slse = l->splits > 1 ? l->part_lse + s * rows : lse;
        l->call[s] = (AttnCall){.B = sz->B, .H = sz->H, .Hkv = sz->Hkv, .Lq = sz->Lq, .Lk = sz->Lk, .D = sz->D,
                                .Dv = sz->Dv, .q = args->q, .k = args->k, .v = args->v, .o = so, .lse = slse,
                                .params = params, .tensor_data = tdata,
                                .tensor_shape = (const int64_t(*)[ATTNC_ABI_MAX_RANK])tshape, .bq = p->bq,
                                .bk = tm->bk, .nqt = tm->nqt, .nkt = tm->nkt, .row_start = tm->row_start,
                                .tile_kv = tm->kv, .tile_mode = tm->mode, .tile_keys = tm->keys, .group_stride_b = gsb,
                                .group_stride_h = gsh, .kernel_data = ck->kernel_data,
                                .check_faults = tm->check_faults, .pack = pack,
                                .kv_page = pages ? pages->table : NULL, .page_rows = pages ? pages->page_rows : 0,
                                .k_page_stride = pages ? pages->k_page_stride : 0,
                                .v_page_stride = pages ? pages->v_page_stride : 0, .q_rows = gh ? gh->q_rows : NULL,
                                .kv_rows = gh ? gh->kv_rows : NULL,
                                .tile_live = tm->check_faults ? NULL : tm->live};
        launch_set_layouts(&l->call[s], bc, o != args->o || l->splits > 1, l->splits > 1);
    }
    KvPack kvp = {.sz = sz, .layout = bc->layout, .k = (const char *)args->k, .v = (const char *)args->v,
                  .threads = threads, .ke = elem_bytes(bc->layout[BT_K].elem),
                  .ve = elem_bytes(bc->layout[BT_V].elem), .loaded = -1};
    GridHook pack_hook = {.head = pack_head, .ctx = &kvp};
    if (!gh && packs_kv(ck, bc, &l->tm[0], pack, l->splits, pages != NULL, it != NULL, &kvp.wk, &kvp.wv)) {
        packed = kept_buffers_take(ck->packed_rows);
        kvp.pk = packed ? buffers_reserve(packed, 0, (size_t)(sz->Lk * sz->D * (kvp.wk ? 4 : kvp.ke))) : NULL;
        kvp.pv = packed ? buffers_reserve(packed, 1, (size_t)(sz->Lk * sz->Dv * (kvp.wv ? 4 : kvp.ve))) : NULL;
        if (kvp.pk && kvp.pv) { /* else read in place: packing is only faster */
            pack_calls(l, &kvp);
            gh = &pack_hook;
            atomic_fetch_add(&packed_calls, 1);
            if (kvp.wk || kvp.wv) atomic_fetch_add(&widened_calls, 1);
        }
    }
    if (ck->prepare && (st = ck->prepare(&l->call[0], err))) goto done;
    l->scratch_bytes = (ck->scratch_bytes(&l->call[0]) + 63) / 64 * 64;
    /* kernels answer 2^40 (or more) for a size no machine has: never ask malloc for it */
    if (l->scratch_bytes < 0 || l->scratch_bytes > ((int64_t)1 << 39) / threads) {
        st = set_error(err, ATTNC_ERR_NOMEM, "out of memory: %d threads' scratch would need %lld bytes each", threads,
                       (long long)l->scratch_bytes);
        goto done;
    }
    if (it && (st = begin_items(l, it, tdata, pack, threads, err))) goto done;
    l->order = order_items(&l->call[0], p, &l->tm[0]);
    l->scratch = malloc((size_t)(l->scratch_bytes * threads) + 64);
    if (!l->order || !l->scratch) {
        st = set_error(err, ATTNC_ERR_NOMEM, "out of memory for %d threads' scratch", threads);
        goto done;
    }
    l->per_run = gh ? l->call[0].nqt : l->items; /* a head's q tiles with a hook (grid or packed K and V) */
    if (gh) {
        if (gh->begin && (st = gh->begin(gh->ctx, l->tm[0].check_faults, err))) goto done;
        for (int64_t bh = 0; bh < sz->B * sz->H && !l->fault; bh++) {
            gh->head(gh->ctx, bh / sz->H, bh % sz->H);
            l->first = bh * l->call[0].nqt; /* order_items lists the items head by head */
            pool_run(threads, l->per_run * l->splits, run_item, l);
            if (!l->fault && gh->done) gh->done(gh->ctx, bh / sz->H, bh % sz->H);
        }
    } else pool_run(threads, total, run_item, l);
    if (l->fault && (pages || it || (gh && gh->names_faults))) { /* the interpreter would read K and V as one dense L dimension, or tensors
                                       * that are not there: the caller asks it */
        st = set_error(err, ATTNC_ERR_RUNTIME, "an element of the %scall raised a runtime error", pages ? "paged " : "");
        goto done;
    }
    if (l->fault) { /* the interpreter reads Q, K, V at their layouts and names the element at fault */
        st = interp_run(bc, args->q, args->k, args->v, NULL, NULL, err);
        if (st == ATTNC_OK)
            st = set_error(err, ATTNC_ERR_INTERNAL, "the kernel flagged a runtime error the interpreter does not see");
        goto done;
    }
    /* every kept element checked, none at fault: the key's next calls need no checks (items' own tensors
     * are not in the key) */
    if (l->tm[0].check_faults && !it) map_cache_ran_clean(ck->maps, bc, p->bq / pack, l->tm[0].bk);
    if (l->splits > 1) {
        l->o = args->o, l->lse = args->lse;
        pool_run(threads, (rows + MERGE_CHUNK - 1) / MERGE_CHUNK, merge_rows, l);
        goto done;
    }
    int o_bytes = bc->layout[BT_O].elem == ATTNC_ELEM_F32 ? 4 : 2;
    if (o != args->o) launch_copy_out(sz, sz->Dv, o_bytes, (const char *)o, (char *)args->o, bc->layout[BT_O].stride);
    if (lse != args->lse && args->lse)
        launch_copy_out(sz, 1, 4, (const char *)lse, (char *)args->lse, bc->layout[BT_LSE].stride);
done:
    if (o != args->o) free(o);
    if (lse != args->lse) free(lse);
    if (packed) kept_buffers_put(ck->packed_rows, packed);
    launch_values_free(&vals);
    tile_map_free(&full);
    if (l) {
        for (int s = 0; l->tm && s < l->splits; s++) tile_map_free(&l->tm[s]);
        free(l->tm);
        free(l->call);
        free(l->order);
        free(l->tdata);
        free(l->scratch);
        free(l->part_o);
        free(l->part_lse);
        free(l->merged);
        free(l);
    }
    return st;
}
