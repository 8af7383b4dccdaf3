/* show_cmd.c — `attnc show FILE --shape ... -o mask.png`: what the masks
 * keep for one (b, h), and beside it the kernel's tile map, as a PNG
 * (attention-gym's pictures; attnc_kernel_picture computes them).
 *
 * Left panel: one pixel per block of (q, kv) pairs, query rows down, keys
 * across; its darkness is the fraction of the block's pairs kept (black:
 * all, white: none), so a downsampled picture of a long sequence is honest.
 * Right panel: the tile map there: white EMPTY (never visited), green FULL
 * (no mask evaluated), orange PARTIAL (masks evaluated per element),
 * darkened by the same fraction.  Small calls are scaled up by a whole
 * factor so that each pair stays a square.  Tensors not given with --tensor
 * are made up as diff and bench make them (--int-range, --seed). */
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "made_call.h"
#include "show_cmd.h"

enum { GAP = 8 }; /* white pixels between the panels */

typedef struct Png {
    outfile *f;
    char msg[400];
    int failed;
} Png;

static void png_write_data(png_structp png, png_bytep data, png_size_t n) {
    Png *p = png_get_io_ptr(png);
    if (!p->failed && outfile_write(p->f, data, n, p->msg, sizeof p->msg)) p->failed = 1;
}

static void png_flush_data(png_structp png) { (void)png; }

/* One RGB pixel of the picture at panel pixel (r, c). */
static void colour(const float *kept, const uint8_t *tiles, int cols, int r, int c, int right, png_bytep px) {
    float f = kept[r * cols + c];
    if (!right) {
        png_byte g = (png_byte)(255.0f * (1.0f - f) + 0.5f);
        px[0] = px[1] = px[2] = g;
        return;
    }
    static const png_byte modes[3][3] = {{255, 255, 255}, {120, 200, 120}, {245, 170, 80}};
    const png_byte *m = modes[tiles[r * cols + c] < 3 ? tiles[r * cols + c] : 2];
    for (int i = 0; i < 3; i++) px[i] = (png_byte)((float)m[i] * (1.0f - 0.6f * f) + 0.5f);
}

/* The two panels, each rows x cols pixels scaled by s, as an RGB PNG into f. */
static int write_png(outfile *f, const float *kept, const uint8_t *tiles, int rows, int cols, int s, char *msg,
                     size_t n) {
    Png io = {f, "", 0};
    int width = 2 * cols * s + GAP, height = rows * s;
    png_bytep line = malloc((size_t)width * 3);
    png_structp png = line ? png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL) : NULL;
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        free(line);
        snprintf(msg, n, "out of memory for the picture");
        return 1;
    }
    if (setjmp(png_jmpbuf(png))) { /* libpng's own errors land here */
        png_destroy_write_struct(&png, &info);
        free(line);
        snprintf(msg, n, "%s: libpng could not write the picture", outfile_path(f));
        return 1;
    }
    png_set_write_fn(png, &io, png_write_data, png_flush_data);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < height && !io.failed; y++) {
        memset(line, 255, (size_t)width * 3);
        for (int x = 0; x < cols * s; x++) {
            colour(kept, tiles, cols, y / s, x / s, 0, line + 3 * x);
            colour(kept, tiles, cols, y / s, x / s, 1, line + 3 * (cols * s + GAP + x));
        }
        png_write_row(png, line);
    }
    if (!io.failed) png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(line);
    if (io.failed) snprintf(msg, n, "%s", io.msg);
    return io.failed;
}

int cmd_show(const Options *o) {
    attnc_spec *spec = NULL;
    attnc_kernel *kern = NULL;
    Call *c = calloc(1, sizeof *c);
    const attnc_sizes *sz = &o->sizes;
    int rc = c ? load_spec(o, &spec) : fail(EXIT_RUNTIME, "out of memory", NULL, NULL);
    if (!rc) rc = compile_for(o, spec, ATTNC_BACKEND_REFPLAN, 1, &kern);
    if (!rc) rc = make_call(o, kern, sz, c);
    if (!rc && (o->at_b >= sz->B || o->at_h >= sz->H))
        rc = fail(EXIT_USAGE, "--at %s: outside the call's B and H", o->at, NULL);
    if (!rc && (sz->Lq == 0 || sz->Lk == 0)) rc = fail(EXIT_USAGE, "--shape: Lq and Lk must be positive to draw", NULL, NULL);
    int rows = 0, cols = 0;
    float *kept = NULL;
    uint8_t *tiles = NULL;
    if (!rc) {
        rows = (int)(sz->Lq < o->pixels ? sz->Lq : o->pixels);
        cols = (int)(sz->Lk < o->pixels ? sz->Lk : o->pixels);
        kept = malloc(sizeof(float) * (size_t)rows * (size_t)cols);
        tiles = malloc((size_t)rows * (size_t)cols);
        if (!kept || !tiles) rc = fail(EXIT_RUNTIME, "out of memory for the picture", NULL, NULL);
    }
    if (!rc) {
        attnc_error err = {0};
        attnc_status st = attnc_kernel_picture(kern, &c->args, o->at_b, o->at_h, rows, cols, kept, tiles, &err);
        if (st) rc = fail(status_exit(st), "%s", err.message, NULL);
    }
    if (!rc) {
        int longest = rows > cols ? rows : cols, scale = o->pixels / longest;
        outfile *f = NULL;
        char msg[600];
        if (open_outputs(&o->o, 1, &f)) {
            rc = EXIT_RUNTIME;
        } else if (write_png(f, kept, tiles, rows, cols, scale < 1 ? 1 : scale, msg, sizeof msg) ||
                   outfile_commit(&f, 1, msg, sizeof msg)) {
            rc = fail(EXIT_RUNTIME, "%s", msg, NULL);
            outfile_discard(f);
        } else {
            outfile_discard(f);
        }
    }
    free(kept);
    free(tiles);
    if (c) call_free(c);
    free(c);
    attnc_kernel_free(kern);
    attnc_spec_free(spec);
    return rc;
}
