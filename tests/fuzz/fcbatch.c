/* fcbatch.c — layout 4 of a fuzz case: its B sequences as one ragged batch
 * (attnc_kernel_run_batch).  Sequence b keeps the first lq[b] query rows
 * and the first lk[b] keys of batch entry b of the case's inputs, each
 * count either the whole Lq (Lk) or drawn in [0, Lq] ([0, Lk]).  Q is
 * packed THD (`q_start`), O THD with gaps between rows and heads half the
 * time, LSE [H, rows] likewise; K and V either THD (`k_start`) or in a
 * paged cache: every sequence's pages drawn from one shuffled pool, of one
 * or two of the kernel's kv tiles (read in place), half or a quarter of one
 * or an odd size (read in place in shorter kv tiles when a size of 8 or
 * more divides it, else gathered), with page ids past a sequence's keys
 * sometimes -1 (never read, so never checked), the pages [rows, Hkv, D]
 * (vLLM) or head-major [Hkv, rows, D] (page strides).
 *
 * The reference is the interpreter run on each sequence as a call of its
 * own (B = 1, its Lq and Lk: the batch's meaning, docs/decode.md), written
 * into the case's dense [B, H, Lq, Dv] O and [B, H, Lq] LSE; rows a
 * sequence does not have are 0 on both sides. */
#include "fclayout.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static uint64_t mix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}


int fcb_applies(const FuzzCase *c) {
    const attnc_sizes *s = &c->sz;
    return s->B > 0 && s->H > 0 && s->Hkv > 0 && s->Lq > 0 && s->Lk > 0 && s->D > 0 && s->Dv > 0;
}

void fcb_lengths(const FuzzCase *c, int64_t *lq, int64_t *lk) {
    uint64_t s = c->data_seed * 0xD1B54A32D192ED03ull + 13;
    int all_q = mix(&s) % 2, all_k = mix(&s) % 2;
    for (int64_t b = 0; b < c->sz.B; b++) {
        lq[b] = all_q ? c->sz.Lq : (int64_t)(mix(&s) % (uint64_t)(c->sz.Lq + 1));
        lk[b] = all_k ? c->sz.Lk : (int64_t)(mix(&s) % (uint64_t)(c->sz.Lk + 1));
    }
}

/* Rows [0, n) of head h of batch entry b of a dense [B, heads, L, row] tensor into out [heads, n, row]. */
static void take_rows(const float *x, int64_t b, int64_t heads, int64_t L, int64_t row, int64_t n, float *out) {
    for (int64_t h = 0; h < heads; h++)
        memcpy(out + h * n * row, x + ((b * heads + h) * L) * row, sizeof(float) * (size_t)(n * row));
}

attnc_status fcb_reference(const attnc_kernel *k, const FuzzCase *c, const attnc_args *dense, float *o, float *lse,
                           attnc_error *err) {
    const attnc_sizes *s = &c->sz;
    int64_t *lq = malloc(sizeof(int64_t) * (size_t)s->B), *lk = malloc(sizeof(int64_t) * (size_t)s->B);
    float *q = malloc(sizeof(float) * (size_t)(s->H * s->Lq * s->D + 1));
    float *kk = malloc(sizeof(float) * (size_t)(s->Hkv * s->Lk * s->D + 1));
    float *v = malloc(sizeof(float) * (size_t)(s->Hkv * s->Lk * s->Dv + 1));
    float *so = malloc(sizeof(float) * (size_t)(s->H * s->Lq * s->Dv + 1));
    float *sl = malloc(sizeof(float) * (size_t)(s->H * s->Lq + 1));
    size_t no = (size_t)(s->B * s->H * s->Lq * s->Dv), nl = (size_t)(s->B * s->H * s->Lq);
    float *all_o = calloc(no + 1, sizeof(float)), *all_l = calloc(nl + 1, sizeof(float)); /* o, lse on success only */
    attnc_status st = ATTNC_OK;
    if (!lq || !lk || !q || !kk || !v || !so || !sl || !all_o || !all_l) {
        snprintf(err->message, sizeof err->message, "out of memory for the batch's reference");
        st = ATTNC_ERR_NOMEM;
    } else {
        fcb_lengths(c, lq, lk);
    }
    for (int64_t b = 0; !st && b < s->B; b++) {
        take_rows(dense->q, b, s->H, s->Lq, s->D, lq[b], q);
        take_rows(dense->k, b, s->Hkv, s->Lk, s->D, lk[b], kk);
        take_rows(dense->v, b, s->Hkv, s->Lk, s->Dv, lk[b], v);
        attnc_args a = *dense;
        a.sizes.B = 1, a.sizes.Lq = lq[b], a.sizes.Lk = lk[b];
        a.q = q, a.k = kk, a.v = v, a.o = so, a.lse = lse ? sl : NULL;
        if ((st = attnc_kernel_run(k, &a, err))) break;
        for (int64_t h = 0; h < s->H; h++)
            for (int64_t r = 0; r < lq[b]; r++) {
                memcpy(all_o + (((b * s->H + h) * s->Lq) + r) * s->Dv, so + (h * lq[b] + r) * s->Dv,
                       sizeof(float) * (size_t)s->Dv);
                if (lse) all_l[(b * s->H + h) * s->Lq + r] = sl[h * lq[b] + r];
            }
    }
    if (!st) memcpy(o, all_o, sizeof(float) * no);
    if (!st && lse) memcpy(lse, all_l, sizeof(float) * nl);
    free(lq), free(lk), free(q), free(kk), free(v), free(so), free(sl), free(all_o), free(all_l);
    return st;
}

/* K or V (dense [B, Hkv, Lk, row]) into the batch's THD rows or pages: key kv of sequence b goes to row
 * dest(b, kv) of a [rows, Hkv, row] buffer. */
static void pack_keys(const FuzzCase *c, const float *x, int64_t row, const FcLayoutCall *L, void *out) {
    const attnc_sizes *s = &c->sz;
    for (int64_t b = 0; b < s->B; b++)
        for (int64_t kv = 0; kv < L->lk[b]; kv++) {
            int64_t P = L->batch.page_size, page = P ? L->table[b * L->batch.pages_per_seq + kv / P] : 0;
            int64_t dst = P ? page * P + kv % P : L->k_start[b] + kv;
            for (int64_t h = 0; h < s->Hkv; h++) {
                int64_t at = L->batch.k_page_stride ? ((page * s->Hkv + h) * P + kv % P) * row /* head-major pages */
                                                    : (dst * s->Hkv + h) * row;
                for (int64_t d = 0; d < row; d++)
                    fcl_put(out, c->elem, at + d, x[((b * s->Hkv + h) * s->Lk + kv) * row + d]);
            }
        }
}

/* The paged cache: pages of P rows, each sequence's from one shuffled pool of B * per_seq + 1 pages. */
static int make_table(const FuzzCase *c, uint64_t *seed, FcLayoutCall *L) {
    const attnc_sizes *s = &c->sz;
    int64_t bk = c->tile_k > 0 ? c->tile_k : 64, most = 1;
    /* an odd size, half or a quarter of the kv tile (read in shorter kv tiles), or one or two kv tiles */
    int64_t r = (int64_t)(mix(seed) % 4), part = bk / (2 + 2 * (int64_t)(mix(seed) % 2));
    int64_t P = r == 0 ? 1 + (int64_t)(mix(seed) % 40) : r == 1 && part >= 1 ? part : bk * (1 + (int64_t)(mix(seed) % 2));
    for (int64_t b = 0; b < s->B; b++) most = L->lk[b] > most ? L->lk[b] : most;
    int64_t per_seq = (most + P - 1) / P, n = s->B * per_seq + 1;
    int32_t *perm = malloc(sizeof(int32_t) * (size_t)n);
    L->table = malloc(sizeof(int32_t) * (size_t)(s->B * per_seq));
    if (!perm || !L->table) return free(perm), -1;
    for (int64_t i = 0; i < n; i++) perm[i] = (int32_t)i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(mix(seed) % (uint64_t)(i + 1));
        int32_t t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
    int unused_bad = mix(seed) % 2;
    for (int64_t b = 0; b < s->B; b++)
        for (int64_t p = 0; p < per_seq; p++) {
            int used = p * P < L->lk[b];
            L->table[b * per_seq + p] = !used && unused_bad ? -1 : perm[b * per_seq + p];
        }
    free(perm);
    L->batch.page_size = P, L->batch.num_pages = n, L->batch.pages_per_seq = per_seq;
    L->batch.block_table = L->table, L->batch.kv_len = L->lk;
    return 0;
}

int fcb_prepare(const FuzzCase *c, const float *q, const float *k, const float *v, int with_lse, FcLayoutCall *L) {
    const attnc_sizes *s = &c->sz;
    size_t eb = fcl_elem_bytes(c->elem);
    uint64_t seed = c->data_seed * 0xA24BAED4963EE407ull + 5;
    L->lq = malloc(sizeof(int64_t) * (size_t)(4 * s->B + 2));
    if (!L->lq) return -1;
    L->lk = L->lq + s->B, L->q_start = L->lk + s->B, L->k_start = L->q_start + s->B + 1;
    fcb_lengths(c, L->lq, L->lk);
    L->q_start[0] = L->k_start[0] = 0;
    for (int64_t b = 0; b < s->B; b++)
        L->q_start[b + 1] = L->q_start[b] + L->lq[b], L->k_start[b + 1] = L->k_start[b] + L->lk[b];
    int64_t rows = L->q_start[s->B], keys = L->k_start[s->B];
    int paged = mix(&seed) % 2, gaps = mix(&seed) % 2;
    L->batch = (attnc_batch){.q_start = L->q_start, .k_start = paged ? NULL : L->k_start};
    if (paged && make_table(c, &seed, L)) return -1;
    if (paged && mix(&seed) % 2) { /* head-major pages [pages, Hkv, page_size, D]: page strides (API 0.3) */
        L->batch.k_page_stride = s->Hkv * L->batch.page_size * s->D;
        L->batch.v_page_stride = s->Hkv * L->batch.page_size * s->Dv;
    }
    int64_t krows = paged ? L->batch.num_pages * L->batch.page_size : keys;
    L->q = calloc((size_t)(rows * s->H * s->D) + 1, eb);
    L->k = calloc((size_t)(krows * s->Hkv * s->D) + 1, eb);
    L->v = calloc((size_t)(krows * s->Hkv * s->Dv) + 1, eb);
    if (!L->q || !L->k || !L->v) return -1;
    for (int64_t b = 0; b < s->B; b++)
        for (int64_t r = 0; r < L->lq[b]; r++)
            for (int64_t h = 0; h < s->H; h++)
                for (int64_t d = 0; d < s->D; d++)
                    fcl_put(L->q, c->elem, ((L->q_start[b] + r) * s->H + h) * s->D + d, q[((b * s->H + h) * s->Lq + r) * s->D + d]);
    pack_keys(c, k, s->D, L, L->k);
    pack_keys(c, v, s->Dv, L, L->v);
    attnc_layout *lay[4] = {&L->lay.q, &L->lay.k, &L->lay.v, &L->lay.o};
    for (int t = 0; t < 4; t++) memset(lay[t]->stride, 0, sizeof lay[t]->stride), lay[t]->elem = (attnc_elem)c->elem;
    memset(L->lay.lse.stride, 0, sizeof L->lay.lse.stride);
    if (L->batch.k_page_stride) { /* one page of K and V: [Hkv, page_size, D] */
        int64_t P = L->batch.page_size, ks[4] = {0, P * s->D, s->D, 1}, vs[4] = {0, P * s->Dv, s->Dv, 1};
        memcpy(L->lay.k.stride, ks, sizeof ks), memcpy(L->lay.v.stride, vs, sizeof vs);
    }
    int64_t ohead = s->Dv + (gaps ? 1 : 0), orow = s->H * ohead + (gaps ? 3 : 0), lhead = rows + (gaps ? 2 : 0);
    if (gaps) { /* [rows, H, Dv] with gaps; LSE [H, rows] with gaps */
        L->lay.o.stride[1] = ohead, L->lay.o.stride[2] = orow, L->lay.o.stride[3] = 1;
        L->lay.lse.stride[1] = lhead, L->lay.lse.stride[2] = 1;
    }
    L->obytes = (size_t)(rows ? (rows - 1) * orow + (s->H - 1) * ohead + s->Dv : 0) * eb;
    L->lbytes = with_lse ? (size_t)(rows ? (s->H - 1) * lhead + rows : 0) * 4 : 0;
    L->o = malloc(L->obytes + 8);
    L->lse = with_lse ? malloc(L->lbytes + 8) : NULL;
    if (!L->o || (with_lse && !L->lse)) return -1;
    memset(L->o, FCL_FILL, L->obytes + 8);
    if (L->lse) memset(L->lse, FCL_FILL, L->lbytes + 8);
    L->ostride_row = orow, L->ostride_head = ohead, L->lstride_head = lhead;
    return 0;
}

void fcb_extract(const FuzzCase *c, FcLayoutCall *L, float *o, float *lse) {
    const attnc_sizes *s = &c->sz;
    size_t eb = fcl_elem_bytes(c->elem);
    memset(o, 0, sizeof(float) * (size_t)(s->B * s->H * s->Lq * s->Dv));
    if (L->lse) memset(lse, 0, sizeof(float) * (size_t)(s->B * s->H * s->Lq));
    for (int64_t b = 0; b < s->B; b++)
        for (int64_t h = 0; h < s->H; h++)
            for (int64_t r = 0; r < L->lq[b]; r++) {
                int64_t row = L->q_start[b] + r;
                for (int64_t d = 0; d < s->Dv; d++) {
                    int64_t x = row * L->ostride_row + h * L->ostride_head + d;
                    o[((b * s->H + h) * s->Lq + r) * s->Dv + d] = fcl_get(L->o, c->elem, x);
                    memset((char *)L->o + (size_t)x * eb, FCL_FILL, eb); /* seen: now a gap */
                }
                if (L->lse) {
                    int64_t x = h * L->lstride_head + row;
                    lse[(b * s->H + h) * s->Lq + r] = L->lse[x];
                    memset(&L->lse[x], FCL_FILL, 4);
                }
            }
}
