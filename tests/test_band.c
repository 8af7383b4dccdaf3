/* test_band.c — each query row's band of keys (middle/pass_band.c) against
 * brute force.
 *
 *   test_band [EXAMPLE.attn ...]
 *
 * For a few masks of its own and every attention of the given example files
 * (on their `// example-args:` shapes, and on shapes with Lq != Lk, odd
 * lengths and decode rows), at every (b, h, q) the band [lo, hi] is
 * evaluated and compared with the masks at every kv:
 *   soundness: every kept element (that raises no error) lies in the band;
 *   tightness: for the attentions in `tight` (masks that are nothing but
 *              band conjuncts), the band is exactly [first kept, last kept]
 *              within [0, Lk), and empty (lo > hi there) for rows that keep
 *              nothing.
 * Also that the band exists where it must (`tight`, and the examples in
 * `banded`): a pass that finds none would pass soundness trivially. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"
#include "bind.h"
#include "support.h"
#include "tile_ival.h"

static int fails, passes;

/* Masks that are a conjunction of band conjuncts only: the band is exact. */
static const char *const tight[] = {"b_causal", "b_bottom_right", "b_window", "b_diag", "b_neg", "b_head_window", "b_sym",
                                    "sliding_window_causal", "causal_top_left", "causal_bottom_right_aligned", NULL};
/* Examples whose masks include a band conjunct. */
static const char *const banded[] = {"gemma2_local", "dilated_sliding_window", "moa_window", NULL};

static int listed(const char *const *list, const char *name) {
    for (int i = 0; list[i]; i++)
        if (!strcmp(list[i], name)) return 1;
    return 0;
}

typedef struct Counts {
    int64_t rows, unsound, loose;
} Counts;

static void check_rows(const Plan *p, const BoundCall *bc, int exact, Counts *c, char *first, size_t n) {
    const attnc_sizes *sz = &bc->sz;
    IrEval ev;
    int64_t(*dims)[ATTNC_MAX_RANK] = NULL;
    if (!tile_mask_eval_init(p, bc, &ev, &dims)) {
        snprintf(first, n, "out of memory");
        c->unsound++;
        return;
    }
    int64_t group = sz->Hkv ? sz->H / sz->Hkv : 1;
    for (int64_t b = 0; b < sz->B; b++)
        for (int64_t h = 0; h < sz->H; h++)
            for (int64_t q = 0; q < sz->Lq; q++) {
                ev.b = b, ev.h = h, ev.hk = h / (group ? group : 1), ev.q = q, ev.kv = 0;
                ir_eval_reset(&ev);
                int64_t lo = ir_eval(&ev, p->band_lo).i, hi = ir_eval(&ev, p->band_hi).i;
                int64_t first_kept = -1, last_kept = -1;
                for (int64_t kv = 0; kv < sz->Lk; kv++) {
                    ev.kv = kv;
                    ir_eval_reset(&ev);
                    if (ir_eval(&ev, p->f->fault).b || !ir_eval(&ev, p->f->keep).b) continue;
                    if (first_kept < 0) first_kept = kv;
                    last_kept = kv;
                    if (kv < lo || kv > hi) {
                        if (!*first)
                            snprintf(first, n, "b=%lld h=%lld q=%lld keeps kv=%lld outside its band [%lld, %lld]",
                                     (long long)b, (long long)h, (long long)q, (long long)kv, (long long)lo,
                                     (long long)hi);
                        c->unsound++;
                    }
                }
                c->rows++;
                if (!exact) continue;
                int64_t l = lo < 0 ? 0 : lo, u = hi > sz->Lk - 1 ? sz->Lk - 1 : hi;
                int ok = first_kept < 0 ? l > u : l == first_kept && u == last_kept;
                if (!ok) {
                    if (!*first)
                        snprintf(first, n, "b=%lld h=%lld q=%lld keeps [%lld, %lld] but its band is [%lld, %lld]",
                                 (long long)b, (long long)h, (long long)q, (long long)first_kept, (long long)last_kept,
                                 (long long)lo, (long long)hi);
                    c->loose++;
                }
            }
    ir_eval_free(&ev);
    free(dims);
}

/* Compile `variant` of spec, bind the example's call (its shape replaced by
 * *sz when not NULL), compare. */
static void run_case(const attnc_spec *spec, const char *variant, ExampleArgs *ea, const attnc_sizes *sz) {
    attnc_options opts = {.backend = ATTNC_BACKEND_REFPLAN};
    attnc_error err = {0};
    ExampleArgs e = *ea;
    if (sz) e.sz = *sz;
    char label[200], why[700];
    snprintf(label, sizeof label, "%s B=%lld H=%lld Lq=%lld Lk=%lld", variant, (long long)e.sz.B, (long long)e.sz.H,
             (long long)e.sz.Lq, (long long)e.sz.Lk);
    ExampleCall c;
    if (example_call_open(&c, spec, variant, &opts, &e, why, sizeof why)) {
        printf("FAIL %s: %s\n", label, why);
        fails++;
        example_call_close(&c);
        return;
    }
    const Plan *p = attnc_kernel_plan(c.k);
    BoundCall bc;
    if (p->band_lo == IR_NONE) {
        if (listed(tight, variant) || listed(banded, variant)) {
            printf("FAIL %s: no band found\n", label);
            fails++;
        }
    } else if (bind_call(p->attn, attnc_kernel_fixed(c.k), &c.args, &bc, &err)) {
        printf("FAIL %s: bind: %s\n", label, err.message);
        fails++;
    } else {
        Counts cn = {0};
        char first[300] = "";
        int exact = listed(tight, variant);
        check_rows(p, &bc, exact, &cn, first, sizeof first);
        int bad = cn.unsound || cn.loose;
        printf("%s %s: %lld rows, %lld unsound, %lld loose%s%s%s\n", bad ? "FAIL" : "ok", label, (long long)cn.rows,
               (long long)cn.unsound, (long long)cn.loose, exact ? " (exact)" : "", *first ? "; first: " : "", first);
        bad ? fails++ : passes++;
        bind_release(&bc);
    }
    example_call_close(&c);
}

static void check_example(const attnc_spec *spec, const char *variant, ExampleArgs *ea) {
    if (!ea) return; /* the prelude's helpers and examples without a call of their own */
    run_case(spec, variant, ea, NULL);
    /* Lq != Lk both ways, odd lengths, decode rows */
    attnc_sizes shapes[3] = {ea->sz, ea->sz, ea->sz};
    shapes[0].Lq = 37, shapes[0].Lk = 71;
    shapes[1].Lq = 71, shapes[1].Lk = 29;
    shapes[2].Lq = 3, shapes[2].Lk = 53;
    for (int s = 0; s < 3; s++) run_case(spec, variant, ea, &shapes[s]);
}

static void run_spec_text(const char *file, const char *text, size_t len) {
    char why[1200];
    if (for_each_example(file, text, len, check_example, why, sizeof why)) {
        printf("FAIL %s: %s", file, why);
        fails++;
    }
}

/* Band masks of the prelude and of the pass's cases, with rows that keep nothing. */
static const char builtin_cases[] =
    "// example-args[b_causal]: --shape B=1,H=2,Hkv=1,Lq=61,Lk=61,D=4,Dv=4\n"
    "attention b_causal { use causal; }\n"
    "// example-args[b_bottom_right]: --shape B=1,H=1,Hkv=1,Lq=70,Lk=23,D=4,Dv=4\n"
    "attention b_bottom_right { use causal_bottom_right; }\n"
    "// example-args[b_window]: --shape B=1,H=1,Hkv=1,Lq=80,Lk=80,D=4,Dv=4 --param window=13\n"
    "attention b_window { use sliding_window; }\n"
    "// example-args[b_diag]: --shape B=1,H=1,Hkv=1,Lq=40,Lk=33,D=4,Dv=4\n"
    "attention b_diag { mask kv == q - 2; }\n"
    "// example-args[b_neg]: --shape B=1,H=1,Hkv=1,Lq=40,Lk=40,D=4,Dv=4 --param w=5\n"
    "attention b_neg { param w : int; mask -(kv - q) < w && -kv > -q - w; }\n"
    "// example-args[b_head_window]: --shape B=1,H=4,Hkv=2,Lq=40,Lk=40,D=4,Dv=4\n"
    "attention b_head_window { mask kv <= q && q < kv + 3 * (h + 1); }\n"
    "// example-args[b_sym]: --shape B=1,H=1,Hkv=1,Lq=40,Lk=35,D=4,Dv=4\n"
    "attention b_sym { mask abs(q - kv) < 4 && abs(kv - q + 1) <= 5; }\n"
    "// example-args[b_huge]: --shape B=1,H=1,Hkv=1,Lq=30,Lk=30,D=4,Dv=4 --param w=-9223372036854775807\n"
    "attention b_huge { param w : int; mask q - kv < w - 2 && kv <= q; }\n"
    "// example-args[b_mixed]: --shape B=1,H=1,Hkv=1,Lq=50,Lk=50,D=4,Dv=4 --int-range doc=0,3\n"
    "attention b_mixed { tensor doc : int[Lk]; mask doc[q] == doc[kv] && kv <= q && q - kv < 9; }\n";

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
    printf("%d passed, %d failed\n", passes, fails);
    return fails != 0;
}
