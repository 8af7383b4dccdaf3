/* launch.c — the per-call driver shared by every compiled backend.
 * Requires: a Plan, a compiled tile function, a BoundCall.
 * Produces: O and LSE.  Builds the tile map, fills the AttnCall, orders the
 * work items (b, h, q tile) head by head and heaviest first within a head
 * (see order_items), runs them on the thread pool, and turns a
 * kernel's fault flag into the interpreter's precise error message.  When
 * the plan can fault, results go to a private buffer first, so a failed
 * call leaves O and LSE untouched. */
#include "launch.h"

#include <stdlib.h>
#include <string.h>

#include "interp.h"
#include "threads.h"

typedef struct Launch {
    const CompiledKernel *ck;
    AttnCall call;
    int64_t *order; /* work items in the order they are handed out */
    char *scratch;
    int64_t scratch_bytes;
    volatile int fault; /* set by any item; read after the pool joins */
} Launch;

/* Copy the [B, H, Lq, row] elements of a contiguous buffer into a strided
 * one (the private O or LSE of a call that can fault, once it has not). */
static void copy_out(const attnc_sizes *sz, int64_t row, int elem_bytes, const char *from, char *to,
                     const int64_t *stride) {
    for (int64_t b = 0; b < sz->B; b++)
        for (int64_t h = 0; h < sz->H; h++)
            for (int64_t q = 0; q < sz->Lq; q++) {
                const char *src = from + (((b * sz->H + h) * sz->Lq + q) * row) * elem_bytes;
                memcpy(to + (b * stride[0] + h * stride[1] + q * stride[2]) * elem_bytes, src, (size_t)(row * elem_bytes));
            }
}

/* The layouts of the call in its AttnCall; `private_out`: O and LSE go to
 * contiguous private buffers. */
static void set_layouts(AttnCall *c, const BoundCall *bc, int private_out) {
    const BoundLayout *L = bc->layout;
    c->q_elem = L[BT_Q].elem, c->k_elem = L[BT_K].elem, c->v_elem = L[BT_V].elem, c->o_elem = L[BT_O].elem;
    memcpy(c->q_stride, L[BT_Q].stride, sizeof c->q_stride);
    memcpy(c->k_stride, L[BT_K].stride, sizeof c->k_stride);
    memcpy(c->v_stride, L[BT_V].stride, sizeof c->v_stride);
    memcpy(c->o_stride, L[BT_O].stride, sizeof c->o_stride);
    memcpy(c->lse_stride, L[BT_LSE].stride, sizeof c->lse_stride);
    if (private_out) {
        const attnc_sizes *s = &bc->sz;
        int64_t o[4] = {s->H * s->Lq * s->Dv, s->Lq * s->Dv, s->Dv, 1}, lse[3] = {s->H * s->Lq, s->Lq, 1};
        memcpy(c->o_stride, o, sizeof o);
        memcpy(c->lse_stride, lse, sizeof lse);
    }
}

static void run_item(void *ctx, int64_t i, int thread) {
    Launch *l = ctx;
    const AttnCall *c = &l->call;
    int64_t item = l->order[i];
    int64_t qt = item % c->nqt, bh = item / c->nqt;
    if (l->ck->tile(c, bh / c->H, bh % c->H, qt, l->scratch + (int64_t)thread * l->scratch_bytes)) l->fault = 1;
}

/* Work items head by head, and within a head the heaviest q tiles first.
 * Head-major keeps one (b, h)'s K and V hot in cache while both threads
 * work on it; heaviest first lets the light tiles at the end of each head
 * fill the gaps that unequal tiles (causal, windows) leave.  Within a head
 * the cost of a q tile is the number of kv tiles it visits (counting sort:
 * O(items + tiles)). */
static int64_t *order_items(const AttnCall *c, const Plan *p, const TileMap *tm) {
    int64_t n = c->B * c->H * c->nqt;
    int64_t *order = malloc(sizeof(int64_t) * (size_t)(n + 1));
    int64_t *count = calloc((size_t)(tm->nkt + 2), sizeof(int64_t));
    if (!order || !count) {
        free(order);
        free(count);
        return NULL;
    }
    int64_t k = 0;
    for (int64_t bh = 0; bh < c->B * c->H; bh++) {
        int64_t g = tile_group(p, tm, bh / c->H, bh % c->H, c->H);
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

attnc_status launch_run(const Plan *p, const CompiledKernel *ck, const BoundCall *bc, const attnc_args *args,
                        int threads, attnc_error *err) {
    const attnc_sizes *sz = &bc->sz;
    const Attention *a = p->attn;
    TileMap tm;
    attnc_status st = tile_map_build(p, bc, &tm, err);
    if (st) return st;
    Launch l = {0};
    l.ck = ck;
    AttnValue *params = calloc((size_t)a->nparams + 1, sizeof *params);
    const void **tdata = calloc((size_t)a->ntensors + 1, sizeof *tdata);
    int64_t(*tshape)[ATTNC_ABI_MAX_RANK] = calloc((size_t)a->ntensors + 1, sizeof *tshape);
    size_t rows = (size_t)(sz->B * sz->H * sz->Lq), no = rows * (size_t)sz->Dv;
    float *o = args->o, *lse = args->lse;
    int o_bytes = bc->layout[BT_O].elem == ATTNC_ELEM_F32 ? 4 : 2;
    if (tm.check_faults) { /* a fault midway must not leave O half written */
        o = malloc((size_t)o_bytes * (no + 1));
        lse = args->lse ? malloc(sizeof(float) * (rows + 1)) : NULL;
    }
    if (!params || !tdata || !tshape || !o || (args->lse && !lse)) {
        st = set_error(err, ATTNC_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int i = 0; i < a->nparams; i++) {
        Type t = a->params[i]->type;
        if (t == T_FLOAT) params[i].f = bc->params[i].f;
        else params[i].i = t == T_BOOL ? bc->params[i].b : bc->params[i].i;
    }
    for (int i = 0; i < a->ntensors; i++) {
        tdata[i] = bc->tensors[i]->data;
        for (int d = 0; d < bc->tensors[i]->rank; d++) tshape[i][d] = bc->tensors[i]->shape[d];
    }
    int64_t gsb, gsh; /* the tile group of (b, h) */
    sched_group_strides(p->sched, sz->H, &gsb, &gsh);
    l.call = (AttnCall){.B = sz->B, .H = sz->H, .Hkv = sz->Hkv, .Lq = sz->Lq, .Lk = sz->Lk, .D = sz->D,
                        .Dv = sz->Dv, .q = args->q, .k = args->k, .v = args->v, .o = o, .lse = lse,
                        .params = params, .tensor_data = tdata,
                        .tensor_shape = (const int64_t(*)[ATTNC_ABI_MAX_RANK])tshape, .bq = p->bq, .bk = p->bk,
                        .nqt = tm.nqt, .nkt = tm.nkt, .row_start = tm.row_start, .tile_kv = tm.kv,
                        .tile_mode = tm.mode, .group_stride_b = gsb, .group_stride_h = gsh,
                        .kernel_data = ck->kernel_data, .check_faults = tm.check_faults};
    set_layouts(&l.call, bc, tm.check_faults);
    int64_t items = sz->B * sz->H * tm.nqt;
    if (threads <= 0) threads = pool_cores();
    if (threads > items) threads = items > 0 ? (int)items : 1;
    l.scratch_bytes = (ck->scratch_bytes(&l.call) + 63) / 64 * 64;
    /* kernels answer 2^40 (or more) for a size no machine has: never ask malloc for it */
    if (l.scratch_bytes < 0 || l.scratch_bytes > ((int64_t)1 << 39) / threads) {
        st = set_error(err, ATTNC_ERR_NOMEM, "out of memory: %d threads' scratch would need %lld bytes each", threads,
                       (long long)l.scratch_bytes);
        goto done;
    }
    l.order = order_items(&l.call, p, &tm);
    l.scratch = malloc((size_t)(l.scratch_bytes * threads) + 64);
    if (!l.order || !l.scratch) {
        st = set_error(err, ATTNC_ERR_NOMEM, "out of memory for %d threads' scratch", threads);
        goto done;
    }
    pool_run(threads, items, run_item, &l);
    if (l.fault) { /* the interpreter reads Q, K, V at their layouts and names the element at fault */
        st = interp_run(bc, args->q, args->k, args->v, NULL, NULL, err);
        if (st == ATTNC_OK)
            st = set_error(err, ATTNC_ERR_INTERNAL, "the kernel flagged a runtime error the interpreter does not see");
        goto done;
    }
    if (o != args->o) copy_out(sz, sz->Dv, o_bytes, (const char *)o, (char *)args->o, bc->layout[BT_O].stride);
    if (lse != args->lse && args->lse)
        copy_out(sz, 1, 4, (const char *)lse, (char *)args->lse, bc->layout[BT_LSE].stride);
done:
    if (o != args->o) free(o);
    if (lse != args->lse) free(lse);
    free(params);
    free(tdata);
    free(tshape);
    free(l.order);
    free(l.scratch);
    tile_map_free(&tm);
    return st;
}
