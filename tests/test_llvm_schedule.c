/* test_llvm_schedule.c — the LLVM lowering translates the plan's schedule and
 * derives nothing of its own (issue 9, item 1), white box.
 *
 * For a few attentions whose values live in every loop (item, row, col,
 * element, sums, low-rank columns):
 *   - the plan's schedule lowers (llvm_lower_plan, ATTNC_OK);
 *   - with one step of a block taken out of a copy of the schedule, the
 *     lowering refuses it (ATTNC_ERR_INTERNAL, "the schedule did not
 *     provide"): a value no step computes is never recomputed behind the
 *     schedule's back (the old lowering placed and computed every value
 *     itself, so it lowered such a schedule);
 *   - the kernel's vectors have the plan's width (Plan.vec_width), whatever
 *     the target's (the old lowering took the target's and ignored the plan's).
 * Exit 0 when everything passes, 77 when the build has no LLVM backend. */
#include <llvm-c/Core.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"
#include "llvm_lower.h"
#include "check.h"


static const char *const SPECS[] = {
    /* kv values (col slots), row values (row slots), a mask, an item-level sum */
    "attention t { tensor dq : int[Lq]; tensor dk : int[Lk]; tensor w : float[H, 4];"
    " mask dq[q] == dk[kv]; bias float(dk[kv] * 3) * 0.5 + sum(i < 4) w[h, i]; }",
    /* low-rank columns (row and col blocks), sums in the element loop */
    "attention lr { param rank : int = 3; tensor U : float[B, H, Lq, rank]; tensor W : float[B, H, Lk, rank];"
    " bias (sum(r < rank) U[b, h, q, r] * W[b, h, kv, r]) + sum(j < 3) float((q + 2 * kv + j) % 5) * 0.1; }",
};

/* Lower versions of plan p (llvm_lower.h's LLVM_VARIANTS: float32 prefill
 * and decode, mixed element types prefill and decode) at `target_width`
 * lanes into a fresh module; the module's text into *text when text is not
 * NULL (free it). */
static attnc_status lower(const Plan *p, int target_width, attnc_error *err, char **text) {
    LLVMContextRef ctx = LLVMContextCreate();
    LLVMModuleRef mod = LLVMModuleCreateWithNameInContext("test", ctx);
    attnc_status st = ATTNC_OK;
    /* Q bf16, K f16, V f32, O bf16 */
    const int mixed = 2 * (2 + 3 * (1 + 3 * (0 + 3 * 2)));
    const int versions[4] = {0, LLVM_VARIANT_NARROW, mixed, mixed + LLVM_VARIANT_NARROW};
    for (int i = 0; i < 4 && !st; i++) {
        LlvmTarget target = {target_width, NULL, NULL, versions[i]};
        char name[16];
        snprintf(name, sizeof name, "tile%d", versions[i]);
        st = llvm_lower_plan(p, &target, mod, name, i ? NULL : "scratch", err);
    }
    if (text) *text = st ? NULL : LLVMPrintModuleToString(mod);
    LLVMDisposeModule(mod);
    LLVMContextDispose(ctx);
    return st;
}

/* Every schedule with one STEP_VALUE taken out of block `b` is refused. */
static void check_missing_steps(const Plan *p, const char *name) {
    for (int b = 0; b < SB_COUNT; b++) {
        /* the LLVM kernel checks faults in a pass of its own, after PRE (SB_FAULT), never after KEEP */
        if (b == SB_FAULT_PARTIAL) continue;
        const SchedBlock *blk = &p->sched->block[b];
        for (int i = 0; i < blk->nsteps; i++) {
            if (blk->steps[i].op != STEP_VALUE) continue;
            Schedule s = *p->sched;
            SchedStep *steps = malloc(sizeof(SchedStep) * (size_t)blk->nsteps);
            if (!steps) abort();
            memcpy(steps, blk->steps, sizeof(SchedStep) * (size_t)i);
            memcpy(steps + i, blk->steps + i + 1, sizeof(SchedStep) * (size_t)(blk->nsteps - i - 1));
            s.block[b].steps = steps;
            s.block[b].nsteps = blk->nsteps - 1;
            Plan copy = *p;
            copy.sched = &s;
            attnc_error err = {0};
            attnc_status st = lower(&copy, 16, &err, NULL);
            CHECK(st == ATTNC_ERR_INTERNAL && strstr(err.message, "the schedule did not provide"),
                  "%s: without step %d of block %s (%%%d) the lowering gave status %d '%s'", name, i,
                  sched_block_name((SchedBlockId)b), blk->steps[i].node, st, err.message);
            free(steps);
        }
    }
}

/* Whether `text` holds a float vector `vec` ("<T x float>") other than the
 * decode micro-kernel's widened halves (W/4 lanes: fpext, then a bitcast to
 * integers; llvm_gemm.c's spread), which a plan of 16 lanes has at 4. */
static int stray_vectors(const char *text, const char *vec) {
    for (const char *at = strstr(text, vec); at; at = strstr(at + 1, vec)) {
        const char *line = at;
        while (line > text && line[-1] != '\n') line--;
        const char *end = strchr(at, '\n');
        char buf[512];
        snprintf(buf, sizeof buf, "%.*s", (int)((end ? end : at + strlen(at)) - line), line);
        char cast[48];
        snprintf(cast, sizeof cast, "= bitcast %s", vec);
        if (!strstr(buf, "= fpext <") && !strstr(buf, cast)) return 1;
    }
    return 0;
}

/* The kernel's vectors are the plan's width, not the target's. */
static void check_width(const Plan *p, const char *name) {
    static const int widths[3] = {4, 8, 16};
    for (int w = 0; w < 3; w++) {
        Plan copy = *p;
        copy.vec_width = widths[w];
        int target = widths[(w + 1) % 3];
        char *text = NULL, want[32], other[32];
        attnc_error err = {0};
        attnc_status st = lower(&copy, target, &err, &text);
        CHECK(st == ATTNC_OK, "%s: plan width %d: %s", name, widths[w], err.message);
        if (!text) continue;
        snprintf(want, sizeof want, "<%d x float>", widths[w]);
        snprintf(other, sizeof other, "<%d x float>", target);
        int stray = stray_vectors(text, other);
        CHECK(strstr(text, want) && !stray, "%s: a plan of %d lanes lowered at %d (target %d)", name, widths[w],
              stray ? target : 0, target);
        LLVMDisposeMessage(text);
    }
}

int main(void) {
    attnc_options opts = {0};
    opts.backend = ATTNC_BACKEND_INTERP; /* only its plan is needed: no JIT */
    for (size_t i = 0; i < sizeof SPECS / sizeof SPECS[0]; i++) {
        attnc_spec *spec = NULL;
        attnc_kernel *k = NULL;
        attnc_error err = {0};
        if (attnc_spec_from_string("spec.attn", SPECS[i], strlen(SPECS[i]), &spec, &err) ||
            attnc_compile(spec, NULL, &opts, &k, &err)) {
            printf("FAIL: spec %zu: %s\n", i, err.message);
            failures++;
            attnc_spec_free(spec);
            continue;
        }
        const Plan *p = attnc_kernel_plan(k);
        const char *name = attnc_kernel_variant(k);
        attnc_status st = lower(p, 16, &err, NULL);
        CHECK(st == ATTNC_OK, "%s: the plan's own schedule: %s", name, err.message);
        CHECK(p->sched->nrow_slots + p->sched->ncol_slots > 0, "%s: no slots to test", name);
        check_missing_steps(p, name);
        check_width(p, name);
        attnc_kernel_free(k);
        attnc_spec_free(spec);
    }
    printf("%s\n", failures ? "FAILED" : "ok");
    return failures ? 1 : 0;
}
