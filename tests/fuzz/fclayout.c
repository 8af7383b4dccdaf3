/* fclayout.c — a fuzz case's call with its element type and layout
 * (FuzzCase.elem, .layout): Q, K and V packed into buffers of that type and
 * those strides, O and LSE into buffers with gaps, and back.  The
 * reference (the interpreter) runs on the same values in float32,
 * contiguous: fc_run rounds the inputs to the element type first, so both
 * sides see the same numbers and O differs by at most its own rounding.
 *
 * Layouts: 0 [B,H,L,D]; 1 [B,L,H,D] (LSE [B,Lq,H]); 2 Q, K and V as slices
 * of one [B,L,H+2Hkv,D] buffer when Lq = Lk and D = Dv (else layout 1), O
 * and LSE with gaps between rows and heads; 3 (one sequence, B = 1) K and V
 * in a paged cache read through a shuffled block table
 * (attnc_kernel_run_batch): pages of the kernel's kv tile (or twice it,
 * read in place) or of an odd size (gathered), Q, O and LSE as layout 0;
 * 4 the B sequences as a ragged batch (fcbatch.c). */
#include "fclayout.h"

#include <stdlib.h>
#include <string.h>

#include "half.h"


size_t fcl_elem_bytes(int elem) { return elem ? 2 : 4; }

void fcl_round(int elem, float *x, size_t n) {
    for (size_t i = 0; x && elem && i < n; i++)
        x[i] = elem == 1 ? attnc_f16_to_f32(attnc_f32_to_f16(x[i])) : attnc_bf16_to_f32(attnc_f32_to_bf16(x[i]));
}

void fcl_put(void *base, int elem, int64_t at, float x) {
    if (elem == 0) ((float *)base)[at] = x;
    else ((uint16_t *)base)[at] = elem == 1 ? attnc_f32_to_f16(x) : attnc_f32_to_bf16(x);
}

float fcl_get(const void *base, int elem, int64_t at) {
    if (elem == 0) return ((const float *)base)[at];
    uint16_t h = ((const uint16_t *)base)[at];
    return elem == 1 ? attnc_f16_to_f32(h) : attnc_bf16_to_f32(h);
}

/* Offset of element (b, h, l, d) under strides st. */
static int64_t at(const int64_t st[4], int64_t b, int64_t h, int64_t l, int64_t d) {
    return b * st[0] + h * st[1] + l * st[2] + d * st[3];
}

/* Elements a buffer needs for dims under strides (0 when any dim is 0). */
static int64_t extent(const int64_t dims[4], const int64_t st[4]) {
    int64_t last = 0;
    for (int i = 0; i < 4; i++) {
        if (dims[i] == 0) return 0;
        last += (dims[i] - 1) * st[i];
    }
    return last + 1;
}

/* Copy the contiguous float32 tensor x of dims into buf at strides st, as elem. */
static void pack(const float *x, const int64_t dims[4], void *buf, int elem, const int64_t st[4]) {
    int64_t i = 0;
    for (int64_t b = 0; b < dims[0]; b++)
        for (int64_t h = 0; h < dims[1]; h++)
            for (int64_t l = 0; l < dims[2]; l++)
                for (int64_t d = 0; d < dims[3]; d++) fcl_put(buf, elem, at(st, b, h, l, d), x[i++]);
}

static void strides_of(int layout, const int64_t dims[4], int64_t st[4]) {
    int64_t B = dims[0], H = dims[1], L = dims[2], D = dims[3];
    (void)B;
    if (layout == 0) {
        int64_t s[4] = {H * L * D, L * D, D, 1};
        memcpy(st, s, sizeof s);
    } else {
        int64_t s[4] = {L * H * D, D, H * D, 1};
        memcpy(st, s, sizeof s);
    }
}

int fcl_layout(const FuzzCase *c) {
    const attnc_sizes *s = &c->sz;
    if (c->layout == 2 && (s->Lq != s->Lk || s->D != s->Dv)) return 1;
    if (c->layout == 3 && (s->B != 1 || s->Lk < 1 || s->H < 1 || s->Hkv < 1)) return 0; /* a batch needs heads */
    if (c->layout == 4 && !fcb_applies(c)) return 0;
    return c->layout;
}

/* Layout 3: K and V (contiguous float32, B = 1) into pages of P rows,
 * [pages, P, Hkv, D], page i of the sequence stored at a shuffled place. */
static int make_pages(const FuzzCase *c, const float *k, const float *v, FcLayoutCall *L) {
    const attnc_sizes *s = &c->sz;
    uint64_t seed = c->data_seed * 0x9E3779B97F4A7C15ull + 7;
    int64_t bk = c->tile_k > 0 ? c->tile_k : 64;
    int64_t P = seed % 3 == 0 ? 1 + (int64_t)(seed >> 8) % 40 : bk * (1 + (int64_t)(seed >> 8) % 2);
    int64_t per_seq = (s->Lk + P - 1) / P, n = per_seq + 1; /* one page more than needed: never read */
    L->table = malloc(sizeof(int32_t) * (size_t)per_seq);
    L->k = calloc((size_t)(n * P * s->Hkv * s->D) + 1, fcl_elem_bytes(c->elem));
    L->v = calloc((size_t)(n * P * s->Hkv * s->Dv) + 1, fcl_elem_bytes(c->elem));
    int32_t *perm = malloc(sizeof(int32_t) * (size_t)n);
    if (!L->table || !L->k || !L->v || !perm) return free(perm), -1;
    for (int64_t i = 0; i < n; i++) perm[i] = (int32_t)i;
    for (int64_t i = n - 1; i > 0; i--) { /* Fisher-Yates with a splitmix step */
        seed += 0x9E3779B97F4A7C15ull;
        uint64_t z = (seed ^ (seed >> 30)) * 0xBF58476D1CE4E5B9ull;
        int64_t j = (int64_t)((z ^ (z >> 27)) % (uint64_t)(i + 1));
        int32_t t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
    memcpy(L->table, perm, sizeof(int32_t) * (size_t)per_seq);
    free(perm);
    for (int64_t h = 0; h < s->Hkv; h++)
        for (int64_t kv = 0; kv < s->Lk; kv++) {
            int64_t row = (int64_t)L->table[kv / P] * P + kv % P;
            for (int64_t d = 0; d < s->D; d++)
                fcl_put(L->k, c->elem, (row * s->Hkv + h) * s->D + d, k ? k[(h * s->Lk + kv) * s->D + d] : 0);
            for (int64_t d = 0; d < s->Dv; d++)
                fcl_put(L->v, c->elem, (row * s->Hkv + h) * s->Dv + d, v ? v[(h * s->Lk + kv) * s->Dv + d] : 0);
        }
    L->kv_len = s->Lk;
    L->batch = (attnc_batch){.page_size = P, .num_pages = n, .pages_per_seq = per_seq, .block_table = L->table,
                             .kv_len = &L->kv_len};
    memset(L->lay.k.stride, 0, sizeof L->lay.k.stride), memset(L->lay.v.stride, 0, sizeof L->lay.v.stride);
    return 0;
}

int fcl_prepare(const FuzzCase *c, const float *q, const float *k, const float *v, int with_lse, FcLayoutCall *L) {
    memset(L, 0, sizeof *L);
    const attnc_sizes *s = &c->sz;
    int layout = fcl_layout(c);
    int e = c->elem;
    int64_t dq[4] = {s->B, s->H, s->Lq, s->D}, dk[4] = {s->B, s->Hkv, s->Lk, s->D}, dv[4] = {s->B, s->Hkv, s->Lk, s->Dv};
    int64_t dout[4] = {s->B, s->H, s->Lq, s->Dv}, dlse[4] = {s->B, s->H, s->Lq, 1};
    if (layout == 4) return fcb_prepare(c, q, k, v, with_lse, L);
    attnc_layout *lay[4] = {&L->lay.q, &L->lay.k, &L->lay.v, &L->lay.o};
    for (int t = 0; t < 4; t++) lay[t]->elem = (attnc_elem)e;
    if (layout == 2) { /* one [B, L, H + 2 Hkv, D] buffer */
        int64_t heads = s->H + 2 * s->Hkv, n = s->B * s->Lq * heads * s->D;
        int64_t st[4] = {s->Lq * heads * s->D, s->D, heads * s->D, 1};
        L->fused = calloc((size_t)n + 1, fcl_elem_bytes(e));
        if (!L->fused) return -1;
        memcpy(L->lay.q.stride, st, sizeof st), memcpy(L->lay.k.stride, st, sizeof st), memcpy(L->lay.v.stride, st, sizeof st);
        L->q = L->fused;
        L->k = (char *)L->fused + (size_t)(s->H * s->D) * fcl_elem_bytes(e);
        L->v = (char *)L->fused + (size_t)((s->H + s->Hkv) * s->D) * fcl_elem_bytes(e);
        /* O: rows of Dv + 3, heads 5 apart beyond; LSE: every other float, heads 1 apart beyond */
        int64_t os[4] = {s->H * (s->Lq * (s->Dv + 3) + 5), s->Lq * (s->Dv + 3) + 5, s->Dv + 3, 1};
        int64_t ls[4] = {s->H * (2 * s->Lq + 1), 2 * s->Lq + 1, 2, 1};
        memcpy(L->lay.o.stride, os, sizeof os), memcpy(L->lay.lse.stride, ls, sizeof ls);
    } else if (layout == 3) {
        strides_of(0, dq, L->lay.q.stride);
        strides_of(0, dout, L->lay.o.stride);
        int64_t ls[4] = {s->H * s->Lq, s->Lq, 1, 1};
        memcpy(L->lay.lse.stride, ls, sizeof ls);
        L->q = calloc((size_t)extent(dq, L->lay.q.stride) + 1, fcl_elem_bytes(e));
        if (!L->q || make_pages(c, k, v, L)) return -1;
        k = v = NULL; /* packed above */
    } else {
        strides_of(layout, dq, L->lay.q.stride);
        strides_of(layout, dk, L->lay.k.stride);
        strides_of(layout, dv, L->lay.v.stride);
        strides_of(layout, dout, L->lay.o.stride);
        int64_t ls[4] = {s->H * s->Lq, s->Lq, 1, 1}, lt[4] = {s->Lq * s->H, 1, s->H, 1};
        memcpy(L->lay.lse.stride, layout ? lt : ls, sizeof ls);
        L->q = calloc((size_t)extent(dq, L->lay.q.stride) + 1, fcl_elem_bytes(e));
        L->k = calloc((size_t)extent(dk, L->lay.k.stride) + 1, fcl_elem_bytes(e));
        L->v = calloc((size_t)extent(dv, L->lay.v.stride) + 1, fcl_elem_bytes(e));
        if (!L->q || !L->k || !L->v) return -1;
    }
    L->lay.lse.stride[3] = 0;
    if (q) pack(q, dq, L->q, e, L->lay.q.stride);
    if (k) pack(k, dk, L->k, e, L->lay.k.stride);
    if (v) pack(v, dv, L->v, e, L->lay.v.stride);
    L->obytes = (size_t)extent(dout, L->lay.o.stride) * fcl_elem_bytes(e);
    int64_t lst[4] = {L->lay.lse.stride[0], L->lay.lse.stride[1], L->lay.lse.stride[2], 1};
    L->lbytes = with_lse ? (size_t)extent(dlse, lst) * 4 : 0;
    L->o = malloc(L->obytes + 8);
    L->lse = with_lse ? malloc(L->lbytes + 8) : NULL;
    if (!L->o || (with_lse && !L->lse)) return -1;
    memset(L->o, FCL_FILL, L->obytes + 8);
    if (L->lse) memset(L->lse, FCL_FILL, L->lbytes + 8);
    return 0;
}

/* Whether n bytes at p are all FCL_FILL. */
static int all_fill(const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != FCL_FILL) return 0;
    return 1;
}

int fcl_untouched(const FcLayoutCall *L) {
    return all_fill(L->o, L->obytes + 8) && (!L->lse || all_fill(L->lse, L->lbytes + 8));
}

int fcl_extract(const FuzzCase *c, FcLayoutCall *L, float *o, float *lse) {
    const attnc_sizes *s = &c->sz;
    int e = c->elem;
    size_t i = 0, r = 0;
    if (fcl_layout(c) == 4) {
        fcb_extract(c, L, o, lse);
        return fcl_untouched(L) ? 0 : 1;
    }
    for (int64_t b = 0; b < s->B; b++)
        for (int64_t h = 0; h < s->H; h++)
            for (int64_t q = 0; q < s->Lq; q++) {
                for (int64_t d = 0; d < s->Dv; d++) {
                    int64_t x = at(L->lay.o.stride, b, h, q, d);
                    o[i++] = fcl_get(L->o, e, x);
                    memset((char *)L->o + (size_t)x * fcl_elem_bytes(e), FCL_FILL, fcl_elem_bytes(e)); /* seen: now a gap */
                }
                if (L->lse) {
                    int64_t x = b * L->lay.lse.stride[0] + h * L->lay.lse.stride[1] + q * L->lay.lse.stride[2];
                    lse[r] = L->lse[x];
                    memset(&L->lse[x], FCL_FILL, 4);
                }
                r++;
            }
    /* everything that is not an element must still be what it was before the call */
    return fcl_untouched(L) ? 0 : 1;
}

void fcl_free(FcLayoutCall *L) {
    free(L->table);
    free(L->lq);
    if (L->fused) free(L->fused);
    else free(L->q), free(L->k), free(L->v);
    free(L->o);
    free(L->lse);
    memset(L, 0, sizeof *L);
}

/* ---- the backward call ---------------------------------------------------------- */

/* A float32 buffer for dims at strides st holding x (contiguous; NULL: NaN everywhere). */
static float *f32_at(const float *x, const int64_t dims[4], const int64_t st[4]) {
    size_t n = (size_t)extent(dims, st) + 1;
    float *p = malloc(sizeof(float) * n);
    if (!p) return NULL;
    memset(p, 0xff, sizeof(float) * n);
    if (x) pack(x, dims, p, 0, st);
    return p;
}

/* Buffer p of dims at strides st back into contiguous x. */
static void unpack_f32(const float *p, const int64_t dims[4], const int64_t st[4], float *x) {
    size_t i = 0;
    for (int64_t b = 0; b < dims[0]; b++)
        for (int64_t h = 0; h < dims[1]; h++)
            for (int64_t l = 0; l < dims[2]; l++)
                for (int64_t d = 0; d < dims[3]; d++) x[i++] = p[at(st, b, h, l, d)];
}

int fcl_grad_prepare(const FuzzCase *c, const float *q, const float *k, const float *v, const float *o,
                     const float *lse, const float *dout, FcGradCall *G) {
    memset(G, 0, sizeof *G);
    const attnc_sizes *s = &c->sz;
    if (fcl_prepare(c, q, k, v, 1, &G->f)) return -1;
    FcLayoutCall *L = &G->f;
    int64_t dq[4] = {s->B, s->H, s->Lq, s->D}, dk[4] = {s->B, s->Hkv, s->Lk, s->D}, dv[4] = {s->B, s->Hkv, s->Lk, s->Dv};
    int64_t dout_dims[4] = {s->B, s->H, s->Lq, s->Dv}, dlse[4] = {s->B, s->H, s->Lq, 1};
    int64_t lst[4] = {L->lay.lse.stride[0], L->lay.lse.stride[1], L->lay.lse.stride[2], 1};
    L->lay.o.elem = ATTNC_ELEM_F32; /* the forward's O exactly: a 16-bit O would move Delta by its rounding */
    G->o = f32_at(o, dout_dims, L->lay.o.stride);
    G->lse = f32_at(lse, dlse, lst);
    G->dout = f32_at(dout, dout_dims, L->lay.o.stride);
    G->dq = f32_at(NULL, dq, L->lay.q.stride);
    G->dk = f32_at(NULL, dk, L->lay.k.stride);
    G->dv = f32_at(NULL, dv, L->lay.v.stride);
    if (!G->o || !G->lse || !G->dout || !G->dq || !G->dk || !G->dv) return -1;
    G->grad.dout = G->dout, G->grad.dq = G->dq, G->grad.dk = G->dk, G->grad.dv = G->dv;
    G->grad.dout_layout = L->lay.o;
    G->grad.dq_layout = L->lay.q, G->grad.dk_layout = L->lay.k, G->grad.dv_layout = L->lay.v;
    G->grad.dq_layout.elem = G->grad.dk_layout.elem = G->grad.dv_layout.elem = ATTNC_ELEM_F32;
    return 0;
}

void fcl_grad_extract(const FuzzCase *c, const FcGradCall *G, float *dq, float *dk, float *dv) {
    const attnc_sizes *s = &c->sz;
    int64_t q[4] = {s->B, s->H, s->Lq, s->D}, k[4] = {s->B, s->Hkv, s->Lk, s->D}, v[4] = {s->B, s->Hkv, s->Lk, s->Dv};
    unpack_f32(G->dq, q, G->grad.dq_layout.stride, dq);
    unpack_f32(G->dk, k, G->grad.dk_layout.stride, dk);
    unpack_f32(G->dv, v, G->grad.dv_layout.stride, dv);
}

void fcl_grad_free(FcGradCall *G) {
    fcl_free(&G->f);
    free(G->o), free(G->lse), free(G->dout), free(G->dq), free(G->dk), free(G->dv);
    memset(G, 0, sizeof *G);
}
