/* tile_picture.c — what the masks keep for one (b, h) of a call, as a
 * picture: per pixel, the fraction of its (q, kv) pairs kept and the tile
 * map's mode there (attnc_kernel_picture, `attnc show`).
 *
 * Work follows the tile map: EMPTY tiles are never
 * looked at, FULL tiles add whole rows of pairs, PARTIAL tiles evaluate the
 * mask per element (the IR evaluator on the plan's `keep`).  A pixel covers
 * the pairs with q * rows / Lq == r and kv * cols / Lk == c, so every pair
 * falls in exactly one pixel and a pixel's fraction is exact.
 * Requires: a Plan, the call's BoundCall and its TileMap.
 * Produces: tile_picture (plan.h). */
#include <stdlib.h>
#include <string.h>

#include "tile_ival.h"

typedef struct Picture {
    int64_t Lq, Lk;
    int rows, cols;
    int64_t *count; /* [rows * cols] kept pairs */
    uint8_t *tiles; /* [rows * cols] highest mode, or NULL */
} Picture;

static int64_t pixel_row(const Picture *pic, int64_t q) { return q * pic->rows / pic->Lq; }
static int64_t pixel_col(const Picture *pic, int64_t kv) { return kv * pic->cols / pic->Lk; }

/* Pairs (q, kv0 .. kv1 - 1) kept: added to their pixels, a run per pixel column. */
static void add_run(Picture *pic, int64_t q, int64_t kv0, int64_t kv1) {
    int64_t *row = pic->count + pixel_row(pic, q) * pic->cols;
    while (kv0 < kv1) {
        int64_t c = pixel_col(pic, kv0);
        int64_t end = ((c + 1) * pic->Lk + pic->cols - 1) / pic->cols; /* the first kv of column c + 1 */
        if (end > kv1) end = kv1;
        row[c] += end - kv0;
        kv0 = end;
    }
}

/* The tile [q0, q1) x [k0, k1) in mode m: the highest mode of each pixel it touches. */
static void mark_tile(Picture *pic, int64_t q0, int64_t q1, int64_t k0, int64_t k1, uint8_t m) {
    if (!pic->tiles) return;
    for (int64_t r = pixel_row(pic, q0); r <= pixel_row(pic, q1 - 1); r++)
        for (int64_t c = pixel_col(pic, k0); c <= pixel_col(pic, k1 - 1); c++)
            if (pic->tiles[r * pic->cols + c] < m) pic->tiles[r * pic->cols + c] = m;
}

/* The pixel areas: pairs of pixel (r, c). */
static void fractions(const Picture *pic, float *kept) {
    for (int r = 0; r < pic->rows; r++) {
        int64_t qa = ((int64_t)r * pic->Lq + pic->rows - 1) / pic->rows;
        int64_t qb = ((int64_t)(r + 1) * pic->Lq + pic->rows - 1) / pic->rows;
        for (int c = 0; c < pic->cols; c++) {
            int64_t ka = ((int64_t)c * pic->Lk + pic->cols - 1) / pic->cols;
            int64_t kb = ((int64_t)(c + 1) * pic->Lk + pic->cols - 1) / pic->cols;
            int64_t area = (qb - qa) * (kb - ka);
            kept[r * pic->cols + c] = area > 0 ? (float)((double)pic->count[r * pic->cols + c] / (double)area) : 0.0f;
        }
    }
}

int tile_picture(const Plan *p, const BoundCall *bc, const TileMap *tm, int64_t b, int64_t h, int rows, int cols,
                 float *kept, uint8_t *tiles, const TileFaultHook *hook) {
    const attnc_sizes *sz = &bc->sz;
    size_t n = (size_t)rows * (size_t)cols;
    /* the modes are drawn privately: a mask's runtime error leaves the caller's pixels as they were */
    Picture pic = {sz->Lq, sz->Lk, rows, cols, calloc(n, sizeof(int64_t)), tiles ? calloc(n, 1) : NULL};
    IrEval ev;
    int64_t(*dims)[ATTNC_MAX_RANK];
    if (!pic.count || (tiles && !pic.tiles) || !tile_mask_eval_init(p, bc, &ev, &dims)) {
        free(pic.count);
        free(pic.tiles);
        return 0;
    }
    int status = 1;
    ev.b = b, ev.h = h, ev.hk = h / (sz->H / sz->Hkv);
    const int64_t *rs = tm->row_start + tile_group(p, tm, b, h, sz->H) * tm->nqt;
    for (int64_t qt = 0; qt < tm->nqt; qt++) {
        int64_t q0 = qt * tm->bq, q1 = q0 + tm->bq < sz->Lq ? q0 + tm->bq : sz->Lq;
        for (int64_t e = rs[qt]; e < rs[qt + 1]; e++) {
            int64_t k0 = (int64_t)tm->kv[e] * tm->bk, k1 = k0 + tm->bk < sz->Lk ? k0 + tm->bk : sz->Lk;
            mark_tile(&pic, q0, q1, k0, k1, tm->mode[e]);
            for (ev.q = q0; ev.q < q1; ev.q++) {
                if (tm->mode[e] == TILE_FULL) {
                    add_run(&pic, ev.q, k0, k1);
                    continue;
                }
                for (ev.kv = k0; ev.kv < k1; ev.kv++) {
                    int k = tile_element_kept(p, tm, &ev, hook);
                    if (k < 0) {
                        status = -2;
                        goto done;
                    }
                    if (k) add_run(&pic, ev.q, ev.kv, ev.kv + 1);
                }
            }
        }
    }
    fractions(&pic, kept);
    if (tiles) memcpy(tiles, pic.tiles, n);
done:
    ir_eval_free(&ev);
    free(dims);
    free(pic.count);
    free(pic.tiles);
    return status;
}
