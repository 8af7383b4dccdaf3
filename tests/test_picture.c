/* test_picture.c — attnc_kernel_picture and `attnc show` against masks
 * written out in this file.
 *
 *   test_picture                 the C API: every pixel's fraction against a
 *                                brute-force count of the mask (full size and
 *                                downsampled, odd sizes), tile modes consistent
 *                                with the fractions, bad arguments refused
 *   test_picture --png FILE.png  a picture `attnc show` drew for the call below
 *                                (tests/picture_cli.sh): decodes it with libpng
 *                                and checks every pixel of both panels */
#include <png.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attnc.h"
#include "check.h"

/* causal bottom-right with a window: what `attnc show` draws in picture_cli.sh */
static const char *spec_text = "attention band { param w : int = 5; mask kv <= q + (Lk - Lq) && kv > q + (Lk - Lq) - w; }\n"
                               "attention doc { tensor d : int[Lk]; mask d[kv] == d[q % Lk]; }\n";

static int band(int64_t q, int64_t kv, int64_t Lq, int64_t Lk, int64_t w) {
    return kv <= q + (Lk - Lq) && kv > q + (Lk - Lq) - w;
}

static attnc_kernel *compile(const char *variant, int tile) {
    attnc_spec *spec = NULL;
    attnc_kernel *k = NULL;
    attnc_error err = {0};
    attnc_options opts = {.backend = ATTNC_BACKEND_REFPLAN, .tile_q = tile, .tile_k = tile};
    if (attnc_spec_from_string("picture.attn", spec_text, strlen(spec_text), &spec, &err) ||
        attnc_compile(spec, variant, &opts, &k, &err))
        printf("FAIL compile %s: %s\n", variant, err.message), failures++;
    attnc_spec_free(spec);
    return k;
}

/* Every pixel of a rows x cols picture of the band against the brute-force fraction. */
static void check_band(int64_t Lq, int64_t Lk, int64_t w, int rows, int cols, int tile) {
    attnc_kernel *k = compile("band", tile);
    if (!k) return;
    static float dummy[1];
    attnc_param p = {"w", ATTNC_INT, w, 0, 0};
    attnc_args call = {{1, 2, 1, Lq, Lk, 4, 4}, dummy, dummy, dummy, dummy, NULL, &p, 1, NULL, 0};
    float *kept = malloc(sizeof(float) * (size_t)(rows * cols));
    uint8_t *tiles = malloc((size_t)(rows * cols));
    attnc_error err = {0};
    attnc_status st = attnc_kernel_picture(k, &call, 0, 1, rows, cols, kept, tiles, &err);
    CHECK(st == ATTNC_OK, "picture %lldx%lld at %dx%d: %s", (long long)Lq, (long long)Lk, rows, cols, err.message);
    for (int r = 0; !st && r < rows; r++)
        for (int c = 0; c < cols; c++) {
            int64_t n = 0, in = 0;
            for (int64_t q = 0; q < Lq; q++)
                for (int64_t kv = 0; kv < Lk; kv++)
                    if (q * rows / Lq == r && kv * cols / Lk == c) n++, in += band(q, kv, Lq, Lk, w);
            float want = n ? (float)((double)in / (double)n) : 0.0f, got = kept[r * cols + c];
            CHECK(got == want, "%lldx%lld at %dx%d pixel (%d, %d): %g kept, want %g", (long long)Lq, (long long)Lk,
                  rows, cols, r, c, (double)got, (double)want);
            /* a kept pair lies in a visited tile; a FULL tile keeps every pair */
            CHECK(!(in > 0 && tiles[r * cols + c] == 0), "pixel (%d, %d) keeps pairs but no tile is visited", r, c);
            if (rows == Lq && cols == Lk)
                CHECK(!(tiles[r * cols + c] == 1 && in == 0), "pixel (%d, %d) in a FULL tile keeps nothing", r, c);
        }
    free(kept);
    free(tiles);
    attnc_kernel_free(k);
}

static void check_refusals(void) {
    attnc_kernel *k = compile("band", 8);
    if (!k) return;
    static float dummy[1];
    float kept[64];
    attnc_args call = {{2, 2, 1, 8, 8, 4, 4}, dummy, dummy, dummy, dummy, NULL, NULL, 0, NULL, 0};
    struct {
        int64_t b, h;
        int rows, cols;
        const char *want;
    } bad[] = {{2, 0, 8, 8, "outside B"}, {0, -1, 8, 8, "outside B"}, {0, 0, 9, 8, "each side"}, {0, 0, 8, 0, "each side"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        attnc_error err = {0};
        attnc_status st = attnc_kernel_picture(k, &call, bad[i].b, bad[i].h, bad[i].rows, bad[i].cols, kept, NULL, &err);
        CHECK(st == ATTNC_ERR_USAGE && strstr(err.message, bad[i].want), "refusal %zu: %d '%s'", i, (int)st, err.message);
    }
    attnc_error err = {0};
    CHECK(attnc_kernel_picture(k, &call, 0, 0, 8, 8, NULL, NULL, &err) == ATTNC_ERR_USAGE, "NULL kept refused");
    /* a tensor the mask reads, missing: the library's message, nothing computed */
    attnc_kernel *d = compile("doc", 8);
    if (d) {
        attnc_status st = attnc_kernel_picture(d, &call, 0, 0, 8, 8, kept, NULL, &err);
        CHECK(st != ATTNC_OK && strstr(err.message, "d"), "missing tensor: %d '%s'", (int)st, err.message);
        int32_t ids[8] = {0, 0, 0, 1, 1, 2, 2, 2};
        attnc_tensor t = {"d", ATTNC_I32, 1, {8}, ids};
        call.tensors = &t, call.n_tensors = 1;
        st = attnc_kernel_picture(d, &call, 1, 1, 8, 8, kept, NULL, &err);
        CHECK(st == ATTNC_OK, "documents: %s", err.message);
        for (int q = 0; !st && q < 8; q++)
            for (int kv = 0; kv < 8; kv++)
                CHECK(kept[q * 8 + kv] == (ids[q] == ids[kv] ? 1.0f : 0.0f), "document pixel (%d, %d)", q, kv);
        /* Q, K, V and O are not read (attnc.h): NULL is accepted, and so are the kept pairs */
        attnc_args no_data = call;
        no_data.q = no_data.k = no_data.v = NULL;
        no_data.o = NULL;
        float again[64];
        st = attnc_kernel_picture(d, &no_data, 1, 1, 8, 8, again, NULL, &err);
        CHECK(st == ATTNC_OK && !memcmp(again, kept, sizeof again), "picture with NULL Q/K/V/O: %d '%s'", (int)st,
              err.message);
        int64_t pairs = -1;
        st = attnc_kernel_kept_pairs(d, &no_data, &pairs, &err);
        CHECK(st == ATTNC_OK && pairs == 2 * 2 * (9 + 4 + 9), "kept pairs with NULL Q/K/V/O: %d %lld '%s'", (int)st,
              (long long)pairs, err.message);
    }
    attnc_kernel_free(d);
    attnc_kernel_free(k);
}

/* The PNG of `attnc show picture.attn --variant band --shape B=1,H=2,Hkv=1,Lq=20,Lk=30,D=4
 * --param w=5 --at 0,1 --size 60 --tile 8x8` (picture_cli.sh): 20 x 30 pixels per panel
 * scaled by 2, 8 white pixels between the panels. */
static void check_png(const char *path) {
    FILE *f = fopen(path, "rb");
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    CHECK(f && info, "cannot open %s", path);
    if (!f || !info || setjmp(png_jmpbuf(png))) {
        CHECK(0, "%s does not decode as a PNG", path);
        if (f) fclose(f);
        png_destroy_read_struct(&png, &info, NULL);
        return;
    }
    png_init_io(png, f);
    png_read_png(png, info, PNG_TRANSFORM_IDENTITY, NULL);
    png_uint_32 width = png_get_image_width(png, info), height = png_get_image_height(png, info);
    CHECK(width == 2 * 30 * 2 + 8 && height == 20 * 2 && png_get_color_type(png, info) == PNG_COLOR_TYPE_RGB,
          "picture is %ux%u, colour type %d", (unsigned)width, (unsigned)height, png_get_color_type(png, info));
    png_bytepp rows = png_get_rows(png, info);
    for (png_uint_32 y = 0; failures == 0 && y < height; y++)
        for (png_uint_32 x = 0; x < 60; x++) {
            int q = (int)y / 2, kv = (int)x / 2;
            png_bytep left = rows[y] + 3 * x, right = rows[y] + 3 * (60 + 8 + x);
            int kept = band(q, kv, 20, 30, 5);
            CHECK(left[0] == (kept ? 0 : 255) && left[1] == left[0] && left[2] == left[0],
                  "left pixel (%u, %u) is %d, want %s", (unsigned)x, (unsigned)y, left[0], kept ? "black" : "white");
            /* right: white only where no tile is visited, which keeps nothing */
            int white = right[0] == 255 && right[1] == 255 && right[2] == 255;
            CHECK(!(kept && white), "right pixel (%u, %u) is white where a pair is kept", (unsigned)x, (unsigned)y);
        }
    for (png_uint_32 y = 0; y < height; y++)
        for (png_uint_32 x = 60; x < 68; x++)
            CHECK(rows[y][3 * x] == 255, "gap pixel (%u, %u) is not white", (unsigned)x, (unsigned)y);
    png_destroy_read_struct(&png, &info, NULL);
    fclose(f);
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--png")) {
        check_png(argv[2]);
    } else {
        check_band(20, 30, 5, 20, 30, 8);  /* full size */
        check_band(37, 23, 9, 37, 23, 16); /* full size, Lq > Lk: empty rows */
        check_band(37, 53, 9, 10, 7, 8);   /* downsampled, blocks of unequal sizes */
        check_band(64, 64, 64, 1, 1, 16);  /* one pixel */
        check_refusals();
    }
    if (failures) printf("%d failures\n", failures);
    else printf("ok\n");
    return failures != 0;
}
