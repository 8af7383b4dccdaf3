/* test_tiles.c — the tile analysis against brute force.
 *
 *   test_tiles [EXAMPLE.attn ...]
 *
 * For the prelude attentions, a few hand-written masks and every attention of
 * the given example files (on their `// example-args:` shapes), with several
 * tile sizes (odd ones and edge tiles included): the tile map of the call is
 * compared, tile by tile and for every (b, h), with the masks evaluated at
 * every element by the reference interpreter.
 *   soundness: an EMPTY tile keeps nothing and raises no error; a FULL tile
 *              keeps everything; a PARTIAL tile keeps and raises nothing
 *              outside its keys (TileMap.keys, the range kernels work on)
 *              nor at a key its live set leaves out (TileMap.live);
 *   exactness: a PARTIAL tile really is mixed (or raises an error); on the
 *              block-order maps, every key of a PARTIAL tile's live set is
 *              kept by some row of the q tile (or raises an error).
 * Soundness must always hold; exactness must hold except for the attentions
 * listed in `inexact_ok` (see docs/middle-end.md for why).  Also checks the
 * figures quoted in README: causal, sliding window and 2-D neighborhood
 * attention at 4096 x 4096 with 64 x 64 tiles.
 *
 * Multi-dimensional tiles (middle/grid.h): for the grid attentions of the
 * examples, on grids that divide into the blocks, the block-order plan's tile
 * map is checked the same way, each block-order row mapped back to its grid
 * row (grid_row); a grid that does not divide, or Lq != Lk, must not use it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"
#include "bind.h"
#include "grid.h"
#include "interp.h"
#include "support.h"

static int fails, passes;

/* Attentions whose masks the interval analysis cannot decide exactly on
 * every tile: soundness is still checked.  moa_elastic compares floats, and
 * float comparisons keep a margin for float32 rounding, so elements near the
 * boundary stay undecided. */
static const char *const inexact_ok[] = {"moa_elastic", NULL};

static int allowed_inexact(const char *name) {
    for (int i = 0; inexact_ok[i]; i++)
        if (!strcmp(inexact_ok[i], name)) return 1;
    return 0;
}

/* What the masks say about one element: 1 kept, 0 dropped, -1 runtime error. */
static int brute_keep(InterpEnv *env, const Attention *a) {
    env->failed = 0;
    for (int i = 0; i < a->nmasks; i++) {
        Const m = interp_eval(env, a->masks[i]);
        if (env->failed) return -1;
        if (!m.b) return 0;
    }
    return 1;
}

typedef struct Counts {
    int64_t unsound, inexact, tiles, visited, partial;
    int64_t live_inexact; /* keys of a PARTIAL tile's live set that no row keeps */
} Counts;

/* Rows in block order (a grid plan's tile map): NULL for none. */
typedef struct GridMapping {
    int64_t W, H;
    int qbx, qby, qbz, kbx, kby, kbz;
} GridMapping;

static void check_map(const Plan *p, const BoundCall *bc, const TileMap *tm, Counts *c, char *first, size_t n,
                      const GridMapping *gm) {
    const attnc_sizes *sz = &bc->sz;
    if (tm->nkt <= 0 || tm->nqt <= 0) return;
    InterpEnv *env = calloc(1, sizeof *env);
    char msg[400];
    env->bc = bc;
    env->msg = msg;
    env->msgsize = sizeof msg;
    int64_t group = sz->H / sz->Hkv;
    size_t nkt = (size_t)tm->nkt;
    uint8_t *mode = malloc(nkt + 1);
    int64_t *lo = malloc(sizeof(int64_t) * (nkt + 1)), *hi = malloc(sizeof(int64_t) * (nkt + 1));
    uint16_t *live = malloc(sizeof(uint16_t) * (nkt + 1));
    for (int64_t b = 0; b < sz->B; b++)
        for (int64_t h = 0; h < sz->H; h++) {
            int64_t g = tile_group(p, tm, b, h, sz->H);
            for (int64_t qt = 0; qt < tm->nqt; qt++) {
                for (size_t j = 0; j < nkt; j++) mode[j] = TILE_EMPTY;
                int64_t t = g * tm->nqt + qt;
                for (int64_t e = tm->row_start[t]; e < tm->row_start[t + 1]; e++) {
                    mode[tm->kv[e]] = tm->mode[e];
                    lo[tm->kv[e]] = tm->keys[2 * e], hi[tm->kv[e]] = tm->keys[2 * e + 1];
                    live[tm->kv[e]] = tm->live ? tm->live[e] : 0xffff;
                }
                for (int64_t kt = 0; kt < tm->nkt; kt++) {
                    int kept = 0, dropped = 0, errors = 0, outside = 0; /* kept or raising, outside its keys */
                    uint32_t reached = 0; /* keys of the tile some row keeps or raises at (bk <= 16) */
                    for (int64_t q = qt * p->bq; q < (qt + 1) * p->bq && q < sz->Lq; q++)
                        for (int64_t kv = kt * p->bk; kv < (kt + 1) * p->bk && kv < sz->Lk; kv++) {
                            env->b = b, env->h = h, env->hk = h / group, env->q = q, env->kv = kv;
                            if (gm) env->q = grid_row(gm->W, gm->H, gm->qbx, gm->qby, gm->qbz, q),
                                    env->kv = grid_row(gm->W, gm->H, gm->kbx, gm->kby, gm->kbz, kv);
                            int k = brute_keep(env, p->attn);
                            int64_t j = kv - kt * p->bk;
                            outside += mode[kt] != TILE_EMPTY && k != 0 &&
                                       (j < lo[kt] || j >= hi[kt] || (j < 16 && !(live[kt] >> j & 1)));
                            if (k != 0 && j < 16) reached |= 1u << j;
                            kept += k == 1;
                            dropped += k == 0;
                            errors += k < 0;
                        }
                    int m = mode[kt];
                    int unsound = (m == TILE_EMPTY && (kept || errors)) || (m == TILE_FULL && (dropped || errors)) ||
                                  outside;
                    if (outside && !*first)
                        snprintf(first, n, "b=%lld h=%lld tile (%lld, %lld): %d kept or raising elements outside its keys "
                                 "[%lld, %lld)", (long long)b, (long long)h, (long long)qt, (long long)kt, outside,
                                 (long long)lo[kt], (long long)hi[kt]);
                    int inexact = m == TILE_PARTIAL && !errors && (!kept || !dropped);
                    if ((unsound || inexact) && !*first)
                        snprintf(first, n, "b=%lld h=%lld tile (%lld, %lld) is %s but has %d kept, %d dropped, %d errors",
                                 (long long)b, (long long)h, (long long)qt, (long long)kt,
                                 m == TILE_EMPTY ? "EMPTY" : m == TILE_FULL ? "FULL" : "PARTIAL", kept, dropped, errors);
                    c->unsound += unsound;
                    c->inexact += inexact;
                    if (tm->live && m == TILE_PARTIAL)
                        for (int64_t j = 0; j < p->bk; j++) c->live_inexact += (live[kt] >> j & 1) && !(reached >> j & 1);
                    c->tiles++;
                    c->visited += m != TILE_EMPTY;
                    c->partial += m == TILE_PARTIAL;
                }
            }
        }
    free(mode);
    free(lo), free(hi);
    free(live);
    free(env);
}

/* tile_map_transpose lists exactly tm's tiles, with their modes, by kv
 * tile, q tiles increasing: both as dense [group][q tile][kv tile] grids. */
static int check_transpose(const TileMap *tm, char *why, size_t n) {
    TileMap tt;
    attnc_error err = {0};
    if (tile_map_transpose(tm, &tt, &err)) return snprintf(why, n, "transpose: %.200s", err.message), 1;
    int64_t cells = tm->ngroups * tm->nqt * tm->nkt;
    uint8_t *a = calloc((size_t)cells + 1, 1), *b = calloc((size_t)cells + 1, 1);
    int bad = !a || !b || tt.nqt != tm->nkt || tt.nkt != tm->nqt || tt.visited != tm->visited ||
              tt.row_start[tt.ngroups * tt.nqt] != tm->visited;
    for (int64_t g = 0; !bad && g < tm->ngroups; g++) {
        for (int64_t i = 0; i < tm->nqt; i++)
            for (int64_t e = tm->row_start[g * tm->nqt + i]; e < tm->row_start[g * tm->nqt + i + 1]; e++)
                a[(g * tm->nqt + i) * tm->nkt + tm->kv[e]] = tm->mode[e];
        for (int64_t j = 0; j < tt.nqt; j++)
            for (int64_t e = tt.row_start[g * tt.nqt + j]; e < tt.row_start[g * tt.nqt + j + 1]; e++) {
                if (e > tt.row_start[g * tt.nqt + j] && tt.kv[e] <= tt.kv[e - 1]) bad = 1;
                b[(g * tm->nqt + tt.kv[e]) * tm->nkt + j] = tt.mode[e];
            }
    }
    if (!bad && memcmp(a, b, (size_t)cells)) bad = 1;
    if (bad) snprintf(why, n, "the transposed tile map differs from the tile map");
    free(a), free(b);
    tile_map_free(&tt);
    return bad;
}

/* Compile `variant` of spec with tiles bq x bk and make ea's call into c;
 * 0 (reported as a failure) when that fails. */
static int open_case(ExampleCall *c, const attnc_spec *spec, const char *variant, ExampleArgs *ea, int bq, int bk,
                     char *label, size_t n, const char *prefix) {
    attnc_options opts = {.backend = ATTNC_BACKEND_REFPLAN, .tile_q = bq, .tile_k = bk};
    char why[700];
    snprintf(label, n, "%s%s %lldx%lld tiles %dx%d", prefix, variant, (long long)ea->sz.Lq, (long long)ea->sz.Lk, bq,
             bk);
    if (!example_call_open(c, spec, variant, &opts, ea, why, sizeof why)) return 1;
    printf("FAIL %s: %s\n", label, why);
    fails++;
    example_call_close(c);
    return 0;
}

/* Compile `variant` of spec with tiles bq x bk, bind the example's call, compare. */
static void run_case(const attnc_spec *spec, const char *variant, ExampleArgs *ea, int bq, int bk) {
    ExampleCall c;
    char label[160];
    if (!open_case(&c, spec, variant, ea, bq, bk, label, sizeof label, "")) return;
    attnc_error err = {0};
    BoundCall bc;
    TileMap tm;
    const Plan *p = attnc_kernel_plan(c.k);
    if (bind_call(p->attn, attnc_kernel_fixed(c.k), &c.args, &bc, &err)) {
        printf("FAIL %s: bind: %s\n", label, err.message);
        fails++;
    } else {
        if (tile_map_build(p, &bc, &tm, &err)) {
            printf("FAIL %s: %s\n", label, err.message);
            fails++;
        } else {
            Counts cn = {0};
            char first[300] = "";
            check_map(p, &bc, &tm, &cn, first, sizeof first, NULL);
            if (!*first && check_transpose(&tm, first, sizeof first)) cn.unsound++;
            int bad = cn.unsound || (cn.inexact && !allowed_inexact(variant));
            printf("%s %s: %lld tiles, %lld visited, %lld partial; unsound %lld, inexact %lld%s%s\n", bad ? "FAIL" : "ok",
                   label, (long long)cn.tiles, (long long)cn.visited, (long long)cn.partial, (long long)cn.unsound,
                   (long long)cn.inexact, *first ? "; first: " : "", first);
            bad ? fails++ : passes++;
            tile_map_free(&tm);
        }
        bind_release(&bc);
    }
    example_call_close(&c);
}

/* The block-order plan of `variant` with tiles bq x bk on the call of ea:
 * `divides` 1: the call must use it, and its tile map is checked against
 * brute force; 0: the call must not use it (the 1-D plan runs). */
static void run_grid_case(const attnc_spec *spec, const char *variant, ExampleArgs *ea, int bq, int bk, int divides) {
    ExampleCall c;
    char label[160];
    if (!open_case(&c, spec, variant, ea, bq, bk, label, sizeof label, "grid ")) return;
    attnc_error err = {0};
    const Plan *p = attnc_kernel_plan(c.k);
    BoundCall bc;
    int64_t W = 0, H = 0;
    if (!p->grid) {
        printf("FAIL %s: no block-order plan (the grid was not recognised)\n", label);
        fails++;
    } else if (bind_call(p->attn, attnc_kernel_fixed(c.k), &c.args, &bc, &err)) {
        printf("FAIL %s: bind: %s\n", label, err.message);
        fails++;
    } else {
        int applies = grid_applies(p, p->grid, &bc, &W, &H);
        TileMap tm;
        if (applies != divides) {
            printf("FAIL %s: the call %s the block-order plan\n", label, applies ? "uses" : "does not use");
            fails++;
        } else if (!applies) {
            printf("ok %s: falls back to 1-D tiles\n", label);
            passes++;
        } else if (tile_map_build(p->grid->plan, &bc, &tm, &err)) {
            printf("FAIL %s: %s\n", label, err.message);
            fails++;
        } else {
            const GridTiling *g = p->grid;
            GridMapping gm = {W, H, g->qbx, g->qby, g->qbz, g->kbx, g->kby, g->kbz};
            Counts cn = {0};
            char first[300] = "";
            check_map(g->plan, &bc, &tm, &cn, first, sizeof first, &gm);
            int bad = cn.unsound || cn.inexact || cn.live_inexact;
            printf("%s %s (blocks %dx%dx%d, %dx%dx%d): %lld tiles, %lld visited, %lld partial; unsound %lld, inexact %lld, "
                   "live keys no row keeps %lld%s%s\n",
                   bad ? "FAIL" : "ok", label, g->qbx, g->qby, g->qbz, g->kbx, g->kby, g->kbz, (long long)cn.tiles,
                   (long long)cn.visited, (long long)cn.partial, (long long)cn.unsound, (long long)cn.inexact,
                   (long long)cn.live_inexact, *first ? "; first: " : "", first);
            bad ? fails++ : passes++;
            tile_map_free(&tm);
        }
        bind_release(&bc);
    }
    example_call_close(&c);
}

/* ATTNC_OPT_NO_GRID_TILES: the kernel has no block-order plan, so no call can run it (runtime/launch.c). */
static void run_grid_off_case(const attnc_spec *spec, const char *variant, ExampleArgs *ea) {
    attnc_options opts = {.backend = ATTNC_BACKEND_REFPLAN, .flags = ATTNC_OPT_NO_GRID_TILES};
    ExampleCall c;
    char why[700];
    int bad = example_call_open(&c, spec, variant, &opts, ea, why, sizeof why);
    if (!bad && attnc_kernel_plan(c.k)->grid) bad = 1, snprintf(why, sizeof why, "the kernel has a block-order plan");
    printf("%s grid %s with ATTNC_OPT_NO_GRID_TILES%s%s\n", bad ? "FAIL" : "ok", variant, bad ? ": " : "",
           bad ? why : "");
    bad ? fails++ : passes++;
    example_call_close(&c);
}

/* Grid shapes that divide into 8 x 8, 4 x 4 and 8 x 4 blocks (and two that
 * do not), for the grid attentions of the examples. */
static const struct {
    const char *file, *variant, *args;
    int divides;
} grid_cases[] = {
    {"neighborhood_2d.attn", "na2d", "--shape B=1,H=2,Hkv=1,Lq=256,Lk=256,D=4,Dv=4 --param width=16 --param kernel=5", 1},
    {"neighborhood_2d.attn", "na2d_dilated",
     "--shape B=1,H=1,Hkv=1,Lq=256,Lk=256,D=4,Dv=4 --param width=16 --param kernel=3 --param dilation=2", 1},
    {"neighborhood_2d.attn", "gna2d",
     "--shape B=1,H=1,Hkv=1,Lq=256,Lk=256,D=4,Dv=4 --param width=16 --param kernel=4 --param stride=2", 1},
    {"neighborhood_3d.attn", "na3d",
     "--shape B=1,H=1,Hkv=1,Lq=256,Lk=256,D=4,Dv=4 --param width=8 --param height=8 --param kernel_t=3"
     " --param kernel_y=3 --param kernel_x=3", 1},
    {"neighborhood_3d.attn", "na3d_causal_t",
     "--shape B=1,H=1,Hkv=1,Lq=256,Lk=256,D=4,Dv=4 --param width=8 --param height=8 --param kernel_t=2"
     " --param kernel_y=3 --param kernel_x=3", 1},
    {"window_2d.attn", "swin_window", "--shape B=1,H=1,Hkv=1,Lq=256,Lk=256,D=4,Dv=4 --param width=16 --param win=4", 1},
    {"window_2d.attn", "swin_shifted_window",
     "--shape B=1,H=1,Hkv=1,Lq=256,Lk=256,D=4,Dv=4 --param width=16 --param win=4 --param shift=2", 1},
    {"relative_bias_2d.attn", "nat_rpb", "--shape B=1,H=2,Hkv=2,Lq=256,Lk=256,D=4,Dv=4 --param width=16 --param kernel=5", 1},
    {"halo.attn", "halo2d", "--shape B=1,H=1,Hkv=1,Lq=256,Lk=256,D=4,Dv=4 --param width=16 --param block=4 --param halo=2", 1},
    {"axial.attn", "axial_union", "--shape B=1,H=1,Hkv=1,Lq=256,Lk=256,D=4,Dv=4 --param width=16", 1},
    {"axial.attn", "axial_per_head", "--shape B=1,H=2,Hkv=1,Lq=256,Lk=256,D=4,Dv=4 --param width=16", 1},
    {"crossformer_lda.attn", "crossformer_lda", "--shape B=1,H=1,Hkv=1,Lq=256,Lk=256,D=4,Dv=4 --param width=16 --param interval=4", 1},
    {"neighborhood_2d.attn", "na2d", "--shape B=1,H=1,Hkv=1,Lq=100,Lk=100,D=4,Dv=4 --param width=10 --param kernel=5", 0},
    {"halo.attn", "halo2d", "--shape B=1,H=1,Hkv=1,Lq=256,Lk=512,D=4,Dv=4 --param width=16 --param block=4 --param halo=2", 0},
};

static void run_grid_cases(int argc, char **argv) {
    static const int tiles[][2] = {{64, 16}, {16, 64}, {32, 32}, {16, 16}};
    for (size_t i = 0; i < sizeof grid_cases / sizeof grid_cases[0]; i++) {
        const char *path = NULL;
        for (int a = 1; a < argc; a++) {
            const char *base = strrchr(argv[a], '/');
            if (!strcmp(base ? base + 1 : argv[a], grid_cases[i].file)) path = argv[a];
        }
        if (!path) continue; /* not among the files asked for */
        size_t len;
        char *text = read_file(path, &len);
        attnc_spec *spec = NULL;
        attnc_error err = {0};
        ExampleArgs ea;
        char line[1024];
        snprintf(line, sizeof line, "%s", grid_cases[i].args);
        if (!text || attnc_spec_from_string(path, text, len, &spec, &err) || !parse_args(line, &ea)) {
            printf("FAIL grid %s: cannot read the case\n", grid_cases[i].variant);
            fails++;
        } else {
            for (size_t t = 0; t < sizeof tiles / sizeof tiles[0]; t++)
                run_grid_case(spec, grid_cases[i].variant, &ea, tiles[t][0], tiles[t][1], grid_cases[i].divides);
            if (grid_cases[i].divides) run_grid_off_case(spec, grid_cases[i].variant, &ea);
        }
        attnc_spec_free(spec);
        free(text);
    }
}

static const char *current_file;

static void check_example(const attnc_spec *spec, const char *variant, ExampleArgs *ea) {
    static const int tiles[][2] = {{8, 8}, {7, 5}, {16, 4}};
    if (!ea) {
        printf("FAIL %s: no usable example-args line for %s\n", current_file, variant);
        fails++;
        return;
    }
    for (size_t t = 0; t < sizeof tiles / sizeof tiles[0]; t++) run_case(spec, variant, ea, tiles[t][0], tiles[t][1]);
}

static void run_spec_text(const char *file, const char *text, size_t len) {
    char why[1200];
    current_file = file;
    if (for_each_example(file, text, len, check_example, why, sizeof why)) {
        printf("FAIL %s: %s", file, why);
        fails++;
    }
}

/* The prelude and a few masks the spec's examples use, on shapes of their own. */
static const char builtin_cases[] =
    "// example-args[p_causal]: --shape B=1,H=2,Hkv=1,Lq=61,Lk=61,D=4,Dv=4\n"
    "attention p_causal { use causal; }\n"
    "// example-args[p_bottom_right]: --shape B=1,H=1,Hkv=1,Lq=23,Lk=70,D=4,Dv=4\n"
    "attention p_bottom_right { use causal_bottom_right; }\n"
    "// example-args[p_bottom_right_tall]: --shape B=1,H=1,Hkv=1,Lq=70,Lk=23,D=4,Dv=4\n"
    "attention p_bottom_right_tall { use causal_bottom_right; }\n"
    "// example-args[p_window]: --shape B=1,H=1,Hkv=1,Lq=80,Lk=80,D=4,Dv=4 --param window=13\n"
    "attention p_window { use sliding_window; }\n"
    "// example-args[p_prefix]: --shape B=1,H=1,Hkv=1,Lq=64,Lk=64,D=4,Dv=4 --param prefix=19\n"
    "attention p_prefix { use prefix_lm; }\n"
    "// example-args[p_document]: --shape B=1,H=1,Hkv=1,Lq=64,Lk=64,D=4,Dv=4 --int-range doc=0,3\n"
    "attention p_document { use document; }\n"
    "// example-args[p_alibi]: --shape B=1,H=2,Hkv=2,Lq=20,Lk=20,D=4,Dv=4\n"
    "attention p_alibi { use alibi; use causal; }\n"
    "// example-args[p_softcap]: --shape B=1,H=1,Hkv=1,Lq=20,Lk=33,D=4,Dv=4\n"
    "attention p_softcap { use softcap; }\n"
    "// example-args[sinks]: --shape B=1,H=1,Hkv=1,Lq=90,Lk=90,D=4,Dv=4\n"
    "attention sinks { mask kv <= q && (kv < 4 || q - kv < 16); }\n"
    "// example-args[natten2d]: --shape B=1,H=1,Hkv=1,Lq=99,Lk=99,D=4,Dv=4 --param width=9 --param kernel=5\n"
    "attention natten2d { param width : int; param kernel : int = 7; let r = kernel / 2;\n"
    "  let qx = q % width; let qy = q / width; let kx = kv % width; let ky = kv / width;\n"
    "  let cx = clamp(qx, r, width - 1 - r); let cy = clamp(qy, r, Lq / width - 1 - r);\n"
    "  mask abs(kx - cx) <= r && abs(ky - cy) <= r; }\n"
    "// example-args[blocked]: --shape B=1,H=1,Hkv=1,Lq=96,Lk=96,D=4,Dv=4\n"
    "attention blocked { mask q / 12 == kv / 12; }\n"
    "// example-args[dual]: --shape B=1,H=4,Hkv=2,Lq=40,Lk=40,D=4,Dv=4\n"
    "attention dual { mask h < H / 2 ? kv <= q : kv >= q; }\n";

/* The figures README and issue 3 quote, at full size (no brute force). */
static void figure(const char *what, const char *text, int64_t want_visited, int64_t want_partial) {
    attnc_spec *spec = NULL;
    attnc_kernel *k = NULL;
    attnc_error err = {0};
    attnc_options opts = {.backend = ATTNC_BACKEND_REFPLAN, .tile_q = 64, .tile_k = 64};
    char *out = NULL;
    static const float dummy = 0;
    attnc_args call = {{1, 1, 1, 4096, 4096, 64, 64}, &dummy, &dummy, &dummy, (float *)&dummy, NULL, NULL, 0, NULL, 0};
    if (attnc_spec_from_string("fig.attn", text, strlen(text), &spec, &err) ||
        attnc_compile(spec, NULL, &opts, &k, &err) || attnc_kernel_emit(k, "ir", &call, 0, &out, &err)) {
        printf("FAIL figure %s: %s\n", what, err.message);
        fails++;
    } else {
        char want[128];
        snprintf(want, sizeof want, "visited %lld (full %lld, partial %lld)", (long long)want_visited,
                 (long long)(want_visited - want_partial), (long long)want_partial);
        int ok = strstr(out, want) != NULL;
        printf("%s figure %s: expect \"%s\"\n", ok ? "ok" : "FAIL", what, want);
        if (!ok) printf("%s", out);
        ok ? passes++ : fails++;
    }
    attnc_free(out);
    attnc_kernel_free(k);
    attnc_spec_free(spec);
}

int main(int argc, char **argv) {
    run_spec_text("builtin", builtin_cases, strlen(builtin_cases));
    for (int i = 1; i < argc; i++) {
        size_t len;
        char *text = read_file(argv[i], &len);
        if (!text) {
            printf("FAIL cannot read %s\n", argv[i]);
            fails++;
            continue;
        }
        run_spec_text(argv[i], text, len);
        free(text);
    }
    run_grid_cases(argc, argv);
    figure("causal 4096x4096", "attention a { use causal; }", 2080, 64);
    /* per q tile i >= 4: tiles i-4 (partial), i-3..i-1 (full), i (diagonal, partial) */
    figure("sliding window 256, 4096x4096", "attention a { use sliding_window(window = 256); }", 310, 124);
    /* 64 x 64 grid, 7 x 7 kernel: one grid row per tile, 7 kv rows each, never full */
    figure("2-D neighborhood 7x7 on a 64x64 grid",
           "attention a { param width : int = 64; param kernel : int = 7; let r = kernel / 2;"
           " let qx = q % width; let qy = q / width; let kx = kv % width; let ky = kv / width;"
           " let cx = clamp(qx, r, width - 1 - r); let cy = clamp(qy, r, Lq / width - 1 - r);"
           " mask abs(kx - cx) <= r && abs(ky - cy) <= r; }",
           448, 448);
    printf("%d passed, %d failed\n", passes, fails);
    return fails != 0;
}
