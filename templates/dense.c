/* templates/dense.c — the dense loops of the attention kernel, the same for
 * every attention: the Q.K^T and P.V tile products, the transposed copy of
 * a K tile, and the online-softmax update of a tile's rows.
 *
 * Ahead of time, backends/c/c_emit.c pastes this file into the generated C
 * (ATTNC_DENSE_API `static`), for the user's compiler to vectorise with the
 * rest.  libattnc compiles it at -O3 (backends/c/jit_dense.c, which includes
 * it twice: portable and AVX2+FMA) and the code libtcc compiles calls those
 * copies (it sees only the prototypes: ATTNC_DENSE_PROTOTYPES_ONLY):
 * libtcc neither vectorises nor keeps values in registers, and these loops
 * are where the time goes, while only the element code differs between
 * attentions.  Before this text: int64_t, int32_t, uint16_t, exp2f, attnc_inf(),
 * ATTNC_DENSE_API and (for the definitions) base/half.h's conversions.
 *
 * Q, K and V may be stored as f16 or bf16 (elem 1 or 2, attnc.h's
 * attnc_elem) and with a row stride other than their width: the tile
 * routines take a leading dimension, and the 16-bit formats are widened to
 * float32 once per tile (attnc_dense_widen, or the transpose of K), so the
 * products always run over float32. */

/* dst[c * ld_dst + r] = src[r * ld_src + c] for r < rows, 0 for rows <= r <
 * ld_dst; src holds float32 (elem 0) or f16 / bf16 (elem 1 / 2) values,
 * widened exactly. */
ATTNC_DENSE_API void attnc_dense_transpose(const void *src, int32_t elem, int64_t rows, int64_t cols, int64_t ld_src,
                                           int64_t ld_dst, float *dst);

/* dst[r * cols + c] = src[r * ld_src + c] widened to float32 for r < rows and
 * c < cols; src holds f16 (elem 1) or bf16 (elem 2) values. */
ATTNC_DENSE_API void attnc_dense_widen(const uint16_t *src, int32_t elem, int64_t rows, int64_t cols, int64_t ld_src,
                                       float *dst);

/* dst[c] = src[c] rounded to f16 (elem 1) or bf16 (elem 2), to nearest even, for c < n. */
ATTNC_DENSE_API void attnc_dense_narrow(const float *src, int64_t n, int32_t elem, uint16_t *dst);

/* s[i * ld + j] = sum over d < depth of a[i * lda + d] * bt[d * ld + j], for
 * i < nr and j < ld (bt is B transposed: the products run along j). */
ATTNC_DENSE_API void attnc_dense_qk(const float *a, int64_t lda, int64_t nr, int64_t depth, const float *bt, int64_t ld,
                                    float *s);

/* attnc_dense_qk over the keys [lo[i], hi[i]) of each row i < nr (a PARTIAL
 * tile's band, templates/tile.c: in groups of ATTNC_DENSE_ROWS rows over
 * the union of their keys); s's entries past those may change too. */
ATTNC_DENSE_API void attnc_dense_qk_rows(const float *a, int64_t lda, int64_t nr, int64_t depth, const float *bt,
                                         int64_t ld, float *s, const int64_t *lo, const int64_t *hi);

/* Online softmax over the first nc scores of rows i < nr of s (log2 domain,
 * masked scores -inf): when a row's max grows, rescale its l and acc; then
 * turn each score into exp2(score - max) and add them to l.  A row whose
 * max is still -inf keeps nothing (its p are set to 0). */
ATTNC_DENSE_API void attnc_dense_softmax(float *s, int64_t nr, int64_t nc, int64_t ld, float *m, float *l, float *acc,
                                         int64_t dv);

/* l[i] += the first nc weights of row i of s (a `weight` clause). */
ATTNC_DENSE_API void attnc_dense_weights(const float *s, int64_t nr, int64_t nc, int64_t ld, float *l);

/* acc[i * dv + d] += sum over j < nc of p[i * ld + j] * v[j * ldv + d]. */
ATTNC_DENSE_API void attnc_dense_pv(const float *p, int64_t nr, int64_t nc, int64_t ld, const float *v, int64_t ldv,
                                    int64_t dv, float *acc);

#ifndef ATTNC_DENSE_PROTOTYPES_ONLY

ATTNC_DENSE_API void attnc_dense_transpose(const void *src, int32_t elem, int64_t rows, int64_t cols, int64_t ld_src,
                                           int64_t ld_dst, float *dst) {
    const float *f = (const float *)src;
    const uint16_t *h = (const uint16_t *)src;
    for (int64_t c = 0; c < cols; c++) {
        float *out = dst + c * ld_dst;
        if (elem == 0)
            for (int64_t r = 0; r < rows; r++) out[r] = f[r * ld_src + c];
        else if (elem == 1)
            for (int64_t r = 0; r < rows; r++) out[r] = attnc_f16_to_f32(h[r * ld_src + c]);
        else
            for (int64_t r = 0; r < rows; r++) out[r] = attnc_bf16_to_f32(h[r * ld_src + c]);
        for (int64_t r = rows; r < ld_dst; r++) out[r] = 0.0f;
    }
}

ATTNC_DENSE_API void attnc_dense_widen(const uint16_t *src, int32_t elem, int64_t rows, int64_t cols, int64_t ld_src,
                                       float *dst) {
    for (int64_t r = 0; r < rows; r++) {
        const uint16_t *in = src + r * ld_src;
        float *out = dst + r * cols;
        if (elem == 1)
            for (int64_t c = 0; c < cols; c++) out[c] = attnc_f16_to_f32(in[c]);
        else
            for (int64_t c = 0; c < cols; c++) out[c] = attnc_bf16_to_f32(in[c]);
    }
}

ATTNC_DENSE_API void attnc_dense_narrow(const float *src, int64_t n, int32_t elem, uint16_t *dst) {
    if (elem == 1)
        for (int64_t c = 0; c < n; c++) dst[c] = attnc_f32_to_f16(src[c]);
    else
        for (int64_t c = 0; c < n; c++) dst[c] = attnc_f32_to_bf16(src[c]);
}

#ifndef ATTNC_DENSE_HELPERS /* what a second inclusion (backends/c/jit_dense.c) must not repeat */
#define ATTNC_DENSE_HELPERS
/* Blocks of 4 rows by 16 columns stay in registers (eight 256-bit or
 * sixteen 128-bit vector registers); reductions run in 8 lanes, so they
 * vectorise without reassociating floats. */
enum { ATTNC_DENSE_ROWS = 4, ATTNC_DENSE_COLS = 16, ATTNC_DENSE_LANES = 8 };

/* 2^x for x <= 0 (and NaN) in a form compilers vectorise, where libm's
 * exp2f is a call per element: Cephes' exp2f polynomial on [-0.5, 0.5]
 * times 2^n built from its bits.  Relative error at most 1.2e-7 (checked
 * against exp2f on every float in [-126, 0]); 0 below -126, where exp2f
 * would give denormals that no sum can feel.  gcc vectorises the loops that
 * call it only with -fno-trapping-math (libattnc's copy is compiled so);
 * clang does by default. */
static inline float attnc_exp2_nonpositive(float x) {
    union {
        int32_t i;
        float f;
    } rounded, scale;
    const float xc = x > -126.0f ? x : -126.0f; /* -inf and NaN too (NaN is patched at the end) */
    rounded.f = xc + 12582912.0f;               /* + 1.5 * 2^23 rounds xc to an integer n ... */
    const float fn = rounded.f - 12582912.0f;
    const int32_t n = rounded.i - 0x4B400000;   /* ... which sits in the low bits of the sum */
    const float f = xc - fn;                    /* in [-0.5, 0.5] */
    const float poly = 1.0f + f * (6.931472028550421e-1f + f * (2.402264791363012e-1f + f * (5.550332471162809e-2f +
                       f * (9.618437357674640e-3f + f * (1.339887440266574e-3f + f * 1.535336188319500e-4f)))));
    scale.i = (n + 127) << 23;
    const float r = x > -126.0f ? poly * scale.f : 0.0f;
    return x == x ? r : x;
}
#endif

/* S = A . B^T, the 4 x 16 blocks accumulating over d in order. */
/* Rows i .. i + ROWS - 1 of attnc_dense_qk over the columns [j0, j1) only. */
ATTNC_DENSE_API void attnc_dense_qk_block(const float *a, int64_t lda, int64_t i, int64_t depth, const float *bt,
                                          int64_t ld, float *s, int64_t j0, int64_t j1) {
    const float *a0 = a + i * lda, *a1 = a0 + lda, *a2 = a1 + lda, *a3 = a2 + lda;
    const int64_t blocked = j1 - (j1 - j0) % ATTNC_DENSE_COLS;
    for (int64_t j = j0; j < blocked; j += ATTNC_DENSE_COLS) {
        float c0[ATTNC_DENSE_COLS], c1[ATTNC_DENSE_COLS], c2[ATTNC_DENSE_COLS], c3[ATTNC_DENSE_COLS];
        for (int k = 0; k < ATTNC_DENSE_COLS; k++) c0[k] = c1[k] = c2[k] = c3[k] = 0.0f;
        for (int64_t d = 0; d < depth; d++) {
            const float *b = bt + d * ld + j;
            const float x0 = a0[d], x1 = a1[d], x2 = a2[d], x3 = a3[d];
            for (int k = 0; k < ATTNC_DENSE_COLS; k++) {
                c0[k] += x0 * b[k];
                c1[k] += x1 * b[k];
                c2[k] += x2 * b[k];
                c3[k] += x3 * b[k];
            }
        }
        for (int k = 0; k < ATTNC_DENSE_COLS; k++) {
            s[i * ld + j + k] = c0[k];
            s[(i + 1) * ld + j + k] = c1[k];
            s[(i + 2) * ld + j + k] = c2[k];
            s[(i + 3) * ld + j + k] = c3[k];
        }
    }
    for (int r = 0; r < ATTNC_DENSE_ROWS && blocked < j1; r++) { /* columns past the last block */
        const float *arow = a + (i + r) * lda;
        float *srow = s + (i + r) * ld;
        for (int64_t j = blocked; j < j1; j++) {
            float c = 0.0f;
            for (int64_t d = 0; d < depth; d++) c += arow[d] * bt[d * ld + j];
            srow[j] = c;
        }
    }
}

/* Row i of attnc_dense_qk over the columns [j0, j1) only. */
ATTNC_DENSE_API void attnc_dense_qk_row(const float *a, int64_t lda, int64_t i, int64_t depth, const float *bt,
                                        int64_t ld, float *s, int64_t j0, int64_t j1) {
    float *restrict s0 = s + i * ld;
    const float *a0 = a + i * lda;
    for (int64_t j = j0; j < j1; j++) s0[j] = 0.0f;
    for (int64_t d = 0; d < depth; d++) {
        const float *restrict b = bt + d * ld;
        const float x0 = a0[d];
        for (int64_t j = j0; j < j1; j++) s0[j] += x0 * b[j];
    }
}

ATTNC_DENSE_API void attnc_dense_qk(const float *a, int64_t lda, int64_t nr, int64_t depth, const float *bt, int64_t ld,
                                    float *s) {
    int64_t i = 0;
    for (; i + ATTNC_DENSE_ROWS <= nr; i += ATTNC_DENSE_ROWS) attnc_dense_qk_block(a, lda, i, depth, bt, ld, s, 0, ld);
    for (; i < nr; i++) attnc_dense_qk_row(a, lda, i, depth, bt, ld, s, 0, ld);
}

ATTNC_DENSE_API void attnc_dense_qk_rows(const float *a, int64_t lda, int64_t nr, int64_t depth, const float *bt,
                                         int64_t ld, float *s, const int64_t *lo, const int64_t *hi) {
    int64_t i = 0;
    for (; i + ATTNC_DENSE_ROWS <= nr; i += ATTNC_DENSE_ROWS) { /* the group's keys: the union of its rows' */
        int64_t j0 = ld, j1 = 0;
        for (int r = 0; r < ATTNC_DENSE_ROWS; r++)
            if (lo[i + r] < hi[i + r]) {
                j0 = lo[i + r] < j0 ? lo[i + r] : j0;
                j1 = hi[i + r] > j1 ? hi[i + r] : j1;
            }
        if (j0 >= j1) continue;
        /* whole blocks of columns (a last, partial block's columns would each take a strided dot product) */
        j0 -= j0 % ATTNC_DENSE_COLS;
        j1 = j1 + (ATTNC_DENSE_COLS - 1 - (j1 - j0 + ATTNC_DENSE_COLS - 1) % ATTNC_DENSE_COLS);
        attnc_dense_qk_block(a, lda, i, depth, bt, ld, s, j0, j1 < ld ? j1 : ld);
    }
    for (; i < nr; i++) attnc_dense_qk_row(a, lda, i, depth, bt, ld, s, lo[i], hi[i]);
}

ATTNC_DENSE_API void attnc_dense_softmax(float *s, int64_t nr, int64_t nc, int64_t ld, float *m, float *l, float *acc,
                                         int64_t dv) {
    const float minus_inf = -attnc_inf();
    for (int64_t i = 0; i < nr; i++) {
        float *p = s + i * ld;
        float lane[ATTNC_DENSE_LANES];
        for (int k = 0; k < ATTNC_DENSE_LANES; k++) lane[k] = minus_inf;
        int64_t j = 0;
        for (; j + ATTNC_DENSE_LANES <= nc; j += ATTNC_DENSE_LANES)
            for (int k = 0; k < ATTNC_DENSE_LANES; k++) lane[k] = p[j + k] > lane[k] ? p[j + k] : lane[k];
        float tile_max = minus_inf; /* NaN scores never win a comparison: they are not the max */
        for (int k = 0; k < ATTNC_DENSE_LANES; k++) tile_max = lane[k] > tile_max ? lane[k] : tile_max;
        for (; j < nc; j++) tile_max = p[j] > tile_max ? p[j] : tile_max;
        const float m_old = m[i];
        const float m_new = tile_max > m_old ? tile_max : m_old;
        if (m_new == minus_inf) { /* nothing kept yet, or only -inf scores */
            for (j = 0; j < nc; j++) p[j] = 0.0f;
            continue;
        }
        if (m_new != m_old) {
            const float rescale = exp2f(m_old - m_new);
            float *a = acc + i * dv;
            l[i] *= rescale;
            for (int64_t d = 0; d < dv; d++) a[d] *= rescale;
            m[i] = m_new;
        }
        for (j = 0; j < nc; j++) p[j] = attnc_exp2_nonpositive(p[j] - m_new);
        for (int k = 0; k < ATTNC_DENSE_LANES; k++) lane[k] = 0.0f;
        for (j = 0; j + ATTNC_DENSE_LANES <= nc; j += ATTNC_DENSE_LANES)
            for (int k = 0; k < ATTNC_DENSE_LANES; k++) lane[k] += p[j + k];
        float sum = 0.0f;
        for (int k = 0; k < ATTNC_DENSE_LANES; k++) sum += lane[k];
        for (; j < nc; j++) sum += p[j];
        l[i] += sum;
    }
}

ATTNC_DENSE_API void attnc_dense_weights(const float *s, int64_t nr, int64_t nc, int64_t ld, float *l) {
    for (int64_t i = 0; i < nr; i++) {
        float sum = 0.0f;
        for (int64_t j = 0; j < nc; j++) sum += s[i * ld + j];
        l[i] += sum;
    }
}

/* A block of 4 rows by 16 columns of acc stays in registers while j runs;
 * a key whose p is 0 in all four rows (masked) is skipped. */
ATTNC_DENSE_API void attnc_dense_pv(const float *p, int64_t nr, int64_t nc, int64_t ld, const float *v, int64_t ldv,
                                    int64_t dv, float *acc) {
    int64_t i = 0;
    for (; i + ATTNC_DENSE_ROWS <= nr; i += ATTNC_DENSE_ROWS) {
        const float *p0 = p + i * ld, *p1 = p0 + ld, *p2 = p1 + ld, *p3 = p2 + ld;
        const int64_t blocked = dv - dv % ATTNC_DENSE_COLS;
        for (int64_t d = 0; d < blocked; d += ATTNC_DENSE_COLS) {
            float c0[ATTNC_DENSE_COLS], c1[ATTNC_DENSE_COLS], c2[ATTNC_DENSE_COLS], c3[ATTNC_DENSE_COLS];
            for (int k = 0; k < ATTNC_DENSE_COLS; k++) {
                c0[k] = acc[i * dv + d + k];
                c1[k] = acc[(i + 1) * dv + d + k];
                c2[k] = acc[(i + 2) * dv + d + k];
                c3[k] = acc[(i + 3) * dv + d + k];
            }
            for (int64_t j = 0; j < nc; j++) {
                const float x0 = p0[j], x1 = p1[j], x2 = p2[j], x3 = p3[j];
                if (x0 == 0.0f && x1 == 0.0f && x2 == 0.0f && x3 == 0.0f) continue;
                const float *w = v + j * ldv + d;
                for (int k = 0; k < ATTNC_DENSE_COLS; k++) {
                    c0[k] += x0 * w[k];
                    c1[k] += x1 * w[k];
                    c2[k] += x2 * w[k];
                    c3[k] += x3 * w[k];
                }
            }
            for (int k = 0; k < ATTNC_DENSE_COLS; k++) {
                acc[i * dv + d + k] = c0[k];
                acc[(i + 1) * dv + d + k] = c1[k];
                acc[(i + 2) * dv + d + k] = c2[k];
                acc[(i + 3) * dv + d + k] = c3[k];
            }
        }
        for (int r = 0; r < ATTNC_DENSE_ROWS && blocked < dv; r++) { /* columns past the last block */
            const float *prow = p + (i + r) * ld;
            float *arow = acc + (i + r) * dv;
            for (int64_t d = blocked; d < dv; d++) {
                float c = arow[d];
                for (int64_t j = 0; j < nc; j++)
                    if (prow[j] != 0.0f) c += prow[j] * v[j * ldv + d];
                arow[d] = c;
            }
        }
    }
    for (; i < nr; i++) {
        float *restrict o = acc + i * dv;
        const float *prow = p + i * ld;
        for (int64_t j = 0; j < nc; j++) {
            const float x = prow[j];
            if (x == 0.0f) continue;
            const float *restrict w = v + j * ldv;
            for (int64_t k = 0; k < dv; k++) o[k] += x * w[k];
        }
    }
}

#endif
