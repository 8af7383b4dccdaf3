/* layouts.c — see layouts.h. */
#include "layouts.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "half.h"

const char layout_names[] = "f16, bf16, blhd, blhd_bf16, fused, fused_f16, gaps, gaps_mixed";

/* Bytes written into every buffer before the call: an element a kernel
 * must not touch (gaps, padding) still holds it afterwards (the check is
 * on bytes, whatever value they would make). */
enum { SENTINEL = 0x5b };

static size_t elem_bytes(attnc_elem e) { return e == ATTNC_ELEM_F32 ? 4 : 2; }

/* Strides of a contiguous tensor of sizes n (rank 4; LSE has n[3] = 1). */
static void contiguous(const int64_t n[4], int64_t s[4]) {
    s[3] = 1;
    for (int d = 2; d >= 0; d--) s[d] = s[d + 1] * n[d + 1];
}

/* [B, L, H, D] storage of a [B, H, L, D] tensor; heads_total: the heads of
 * the buffer's H axis (more than n[1] for a fused buffer). */
static void blhd(const int64_t n[4], int64_t heads_total, int64_t s[4]) {
    s[3] = 1;
    s[1] = n[3];
    s[2] = heads_total * n[3];
    s[0] = n[2] * s[2];
}

/* Elements from [0,0,0,0] to the last element, plus one. */
static int64_t extent(const int64_t n[4], const int64_t s[4]) {
    int64_t e = 1;
    for (int d = 0; d < 4; d++) {
        if (n[d] == 0) return 0;
        e += (n[d] - 1) * s[d];
    }
    return e;
}

static attnc_layout *layout_of(TestLayout *tl, int t) {
    attnc_layout *all[TL_COUNT] = {&tl->L.q, &tl->L.k, &tl->L.v, &tl->L.o, &tl->L.lse};
    return all[t];
}
static const attnc_layout *layout_of_c(const TestLayout *tl, int t) { return layout_of((TestLayout *)tl, t); }

/* Set the elem types of Q, K, V and O. */
static void set_elems(TestLayout *tl, attnc_elem q, attnc_elem k, attnc_elem v, attnc_elem o) {
    tl->L.q.elem = q, tl->L.k.elem = k, tl->L.v.elem = v, tl->L.o.elem = o;
}

/* Row gaps: row stride width + pad, head stride rows * that + 1, batch
 * stride heads * that + 3 (no two neighbours touch). */
static void gapped(const int64_t n[4], int64_t pad, int64_t s[4]) {
    s[3] = 1;
    s[2] = n[3] + pad;
    s[1] = n[2] * s[2] + 1;
    s[0] = n[1] * s[1] + 3;
}

int layout_make(const char *name, const attnc_sizes *sz, TestLayout *tl, char *why, size_t n) {
    memset(tl, 0, sizeof *tl);
    const int64_t dims[TL_COUNT][4] = {{sz->B, sz->H, sz->Lq, sz->D},
                                       {sz->B, sz->Hkv, sz->Lk, sz->D},
                                       {sz->B, sz->Hkv, sz->Lk, sz->Dv},
                                       {sz->B, sz->H, sz->Lq, sz->Dv},
                                       {sz->B, sz->H, sz->Lq, 1}};
    memcpy(tl->n, dims, sizeof dims);
    for (int t = 0; t < TL_COUNT; t++) contiguous(tl->n[t], layout_of(tl, t)->stride);
    const attnc_elem F32 = ATTNC_ELEM_F32, F16 = ATTNC_ELEM_F16, BF16 = ATTNC_ELEM_BF16;
    if (!strcmp(name, "f16") || !strcmp(name, "bf16")) {
        attnc_elem e = name[0] == 'f' ? F16 : BF16;
        set_elems(tl, e, e, e, e);
    } else if (!strcmp(name, "blhd") || !strcmp(name, "blhd_bf16")) {
        attnc_elem e = strchr(name, '_') ? BF16 : F32;
        set_elems(tl, e, e, e, e);
        for (int t = TL_Q; t <= TL_O; t++) blhd(tl->n[t], tl->n[t][1], layout_of(tl, t)->stride);
        int64_t *ls = tl->L.lse.stride; /* LSE as [B, Lq, H] */
        ls[1] = 1, ls[2] = sz->H, ls[0] = sz->Lq * sz->H;
    } else if (!strcmp(name, "fused") || !strcmp(name, "fused_f16")) {
        if (sz->Lq != sz->Lk || sz->D != sz->Dv) {
            snprintf(why, n, "layout %s needs Lq == Lk and D == Dv", name);
            return 0;
        }
        attnc_elem e = strchr(name, '_') ? F16 : F32;
        set_elems(tl, e, e, e, e);
        const int64_t heads = sz->H + 2 * sz->Hkv; /* [B, L, H + 2 Hkv, D]: Q's heads, K's, V's */
        for (int t = TL_Q; t <= TL_O; t++) blhd(tl->n[t], t == TL_O ? sz->H : heads, layout_of(tl, t)->stride);
        tl->fused = 1;
    } else if (!strcmp(name, "gaps") || !strcmp(name, "gaps_mixed")) {
        if (name[4]) set_elems(tl, F16, BF16, F32, BF16);
        for (int t = 0; t < TL_COUNT; t++) gapped(tl->n[t], t == TL_LSE ? 1 : 2 + t, layout_of(tl, t)->stride);
    } else {
        snprintf(why, n, "unknown layout '%s' (known: %s)", name, layout_names);
        return 0;
    }
    for (int t = 0; t < TL_COUNT; t++) layout_of(tl, t)->extent = extent(tl->n[t], layout_of(tl, t)->stride);
    if (tl->fused) { /* K and V start H and H + Hkv heads into the rows; each runs to the buffer's end */
        int64_t all = extent(tl->n[TL_Q], tl->L.q.stride) + 2 * sz->Hkv * sz->D;
        tl->L.q.extent = all;
        tl->L.k.extent = all - sz->H * sz->D;
        tl->L.v.extent = all - (sz->H + sz->Hkv) * sz->D;
    }
    return 1;
}

/* Visit every element of tensor t: f(index in the strided buffer, index in the contiguous array). */
#define FOR_ELEMENTS(tl, t, at, flat)                                                                       \
    for (int64_t b_ = 0, flat = 0; b_ < (tl)->n[t][0]; b_++)                                                \
        for (int64_t h_ = 0; h_ < (tl)->n[t][1]; h_++)                                                      \
            for (int64_t l_ = 0; l_ < (tl)->n[t][2]; l_++)                                                  \
                for (int64_t d_ = 0, at = b_ * layout_of_c(tl, t)->stride[0] + h_ * layout_of_c(tl, t)->stride[1] + \
                                          l_ * layout_of_c(tl, t)->stride[2];                               \
                     d_ < (tl)->n[t][3]; d_++, at++, flat++)

static float widen(attnc_elem e, const void *buf, int64_t at) {
    if (e == ATTNC_ELEM_F32) return ((const float *)buf)[at];
    uint16_t h = ((const uint16_t *)buf)[at];
    return e == ATTNC_ELEM_F16 ? attnc_f16_to_f32(h) : attnc_bf16_to_f32(h);
}

static void store(attnc_elem e, void *buf, int64_t at, float x) {
    if (e == ATTNC_ELEM_F32) ((float *)buf)[at] = x;
    else ((uint16_t *)buf)[at] = e == ATTNC_ELEM_F16 ? attnc_f32_to_f16(x) : attnc_f32_to_bf16(x);
}

int layout_store_inputs(TestLayout *tl, float *q, float *k, float *v) {
    for (int t = 0; t < TL_COUNT; t++) {
        if (tl->fused && (t == TL_K || t == TL_V)) continue;
        size_t bytes = (size_t)layout_of(tl, t)->extent * elem_bytes(layout_of(tl, t)->elem) + 1;
        tl->buf[t] = malloc(bytes);
        if (!tl->buf[t]) return 0;
        memset(tl->buf[t], SENTINEL, bytes);
        tl->at[t] = tl->buf[t];
    }
    if (tl->fused) {
        size_t eb = elem_bytes(tl->L.q.elem);
        tl->at[TL_K] = (const char *)tl->buf[TL_Q] + (size_t)(tl->n[TL_Q][1] * tl->n[TL_Q][3]) * eb;
        tl->at[TL_V] = (const char *)tl->at[TL_K] + (size_t)(tl->n[TL_K][1] * tl->n[TL_K][3]) * eb;
    }
    float *x[3] = {q, k, v};
    for (int t = TL_Q; t <= TL_V; t++) {
        attnc_elem e = layout_of(tl, t)->elem;
        void *buf = (void *)tl->at[t];
        FOR_ELEMENTS(tl, t, at, flat) {
            store(e, buf, at, x[t][flat]);
            x[t][flat] = widen(e, buf, at);
        }
    }
    return 1;
}

/* The first byte of [p, p + len) that is not the sentinel, or -1. */
static int64_t touched(const unsigned char *p, size_t len) {
    for (size_t i = 0; i < len; i++)
        if (p[i] != SENTINEL) return (int64_t)i;
    return -1;
}

/* Copy tensor t out of its buffer, resetting each element's bytes to the
 * sentinel so that only the gaps are left to check. */
static const char *load(const TestLayout *tl, int t, float *out, char *why, size_t n) {
    const attnc_layout *l = layout_of_c(tl, t);
    unsigned char *buf = tl->buf[t];
    size_t eb = elem_bytes(l->elem);
    FOR_ELEMENTS(tl, t, at, flat) {
        out[flat] = widen(l->elem, buf, at);
        memset(buf + (size_t)at * eb, SENTINEL, eb);
    }
    int64_t bad = touched(buf, (size_t)l->extent * eb);
    if (bad < 0) return NULL;
    snprintf(why, n, "%s: byte %lld of its buffer, outside its elements, was written", t == TL_O ? "O" : "LSE",
             (long long)bad);
    return why;
}

const char *layout_load_outputs(const TestLayout *tl, float *o, float *lse, char *why, size_t n) {
    const char *bad = load(tl, TL_O, o, why, n);
    return bad ? bad : load(tl, TL_LSE, lse, why, n);
}

/* x rounded to elem, widened back. */
static float rounded(int elem, float x) {
    return elem == ATTNC_ELEM_F16 ? attnc_f16_to_f32(attnc_f32_to_f16(x)) : attnc_bf16_to_f32(attnc_f32_to_bf16(x));
}

/* The float32 error of a kernel against the float64 reference, relative to
 * 1 + |value| (O's error follows V's scale, not O's): far above what they
 * show (about 5e-7), far below half a unit in the last place of f16 or bf16
 * for values above 0.01: a kernel that rounds O toward zero, or twice,
 * misses the nearest value for about half of them. */
static const double F32_ERROR = 4e-6;

const char *layout_compare_o(int elem, const float *o, const float *ref_o, size_t no, size_t *mismatches, char *why,
                             size_t n) {
    *mismatches = 0;
    for (size_t i = 0; i < no; i++) {
        const double ref = ref_o[i], err = F32_ERROR * (1 + fabs(ref));
        const float want = rounded(elem, ref_o[i]), got = o[i];
        if (got == want || (got != got && want != want)) continue;
        /* rounding is monotone: a float32 result within err of ref rounds into [lo, hi] */
        const float lo = rounded(elem, (float)(ref - err)), hi = rounded(elem, (float)(ref + err));
        if (got >= lo && got <= hi) {
            ++*mismatches;
            continue;
        }
        snprintf(why, n, "O[%zu] = %.9g, the reference %.9g rounds to %.9g (%s; within float32 error: %.9g .. %.9g)",
                 i, (double)got, ref, (double)want, elem == ATTNC_ELEM_F16 ? "f16" : "bf16", (double)lo, (double)hi);
        return why;
    }
    return NULL;
}

void layout_free(TestLayout *tl) {
    for (int t = 0; t < TL_COUNT; t++) free(tl->buf[t]);
    memset(tl->buf, 0, sizeof tl->buf);
}
