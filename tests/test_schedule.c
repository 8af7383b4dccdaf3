/* test_schedule.c — the schedule's verifier can fail, and the schedule
 * builder satisfies it.
 *
 *   test_schedule EXAMPLE.attn ...
 *
 * For every attention of the given files (and a few hand-written ones with
 * nested and sibling sums, low-rank terms, faults): the schedule that
 * plan_compile built passed sched_verify (else its `why` says so); then every
 * single step is deleted in turn and sched_verify must reject the result —
 * every step of a schedule is there because something reads what it makes,
 * so a schedule missing any one of them is broken, and a verifier that
 * accepted one would not be checking anything.  The same for the backward
 * schedule (schedule_grad.h) and sched_verify_grad: its blocks and each
 * tensor term's coef, chain-level and index blocks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"
#include "schedule_grad.h"
#include "support.h"

static int fails, checked, mutations;

/* Delete each step of each block in turn: sched_verify must reject every one. */
static void mutate(const char *label, Schedule *s, const IrFunc *f) {
    char why[200];
    for (int b = 0; b < SB_COUNT; b++) {
        SchedBlock *blk = &s->block[b];
        for (int i = 0; i < blk->nsteps; i++) {
            SchedStep saved = blk->steps[i];
            if (saved.op == STEP_LOWRANK_LIMIT) continue; /* a check, not a value anyone reads */
            memmove(blk->steps + i, blk->steps + i + 1, sizeof(SchedStep) * (size_t)(blk->nsteps - i - 1));
            blk->nsteps--;
            int rc = sched_verify(s, f, why, sizeof why);
            blk->nsteps++;
            memmove(blk->steps + i + 1, blk->steps + i, sizeof(SchedStep) * (size_t)(blk->nsteps - i - 1));
            blk->steps[i] = saved;
            mutations++;
            if (rc != 1) {
                printf("FAIL %s: block %s without step %d (op %d, %%%d) passes the verifier\n", label,
                       sched_block_name((SchedBlockId)b), i, (int)saved.op, saved.node);
                fails++;
                return;
            }
        }
    }
    if (sched_verify(s, f, why, sizeof why) != 0) {
        printf("FAIL %s: the restored schedule fails: %s\n", label, why);
        fails++;
    }
}

/* Delete step i of blk: sched_verify_grad must reject it; 0 when it did not. */
static int grad_rejects(const GradSchedule *gs, SchedBlock *blk, int i) {
    char why[200];
    SchedStep saved = blk->steps[i];
    memmove(blk->steps + i, blk->steps + i + 1, sizeof(SchedStep) * (size_t)(blk->nsteps - i - 1));
    blk->nsteps--;
    int rc = sched_verify_grad(gs, why, sizeof why);
    blk->nsteps++;
    memmove(blk->steps + i + 1, blk->steps + i, sizeof(SchedStep) * (size_t)(blk->nsteps - i - 1));
    blk->steps[i] = saved;
    mutations++;
    return rc == 1;
}

/* Every step of the backward schedule, deleted in turn. */
static void mutate_grad(const char *label, GradSchedule *gs) {
    char why[200];
    int nblocks = SB_COUNT + gs->gp->nterms * (GRAD_MAX_CHAIN + 2);
    for (int b = 0; b < nblocks; b++) {
        SchedBlock *blk;
        if (b < SB_COUNT) blk = &gs->base.block[b];
        else {
            GradTermSched *ts = &gs->terms[(b - SB_COUNT) / (GRAD_MAX_CHAIN + 2)];
            int k = (b - SB_COUNT) % (GRAD_MAX_CHAIN + 2);
            blk = k == 0 ? &ts->coef : k == 1 ? &ts->index : &ts->level[k - 2];
        }
        for (int i = 0; i < blk->nsteps; i++)
            if (!grad_rejects(gs, blk, i)) {
                printf("FAIL %s: the backward schedule without step %d (op %d, %%%d) of block %d passes the verifier\n",
                       label, i, (int)blk->steps[i].op, blk->steps[i].node, b);
                fails++;
                return;
            }
    }
    if (sched_verify_grad(gs, why, sizeof why) != 0) {
        printf("FAIL %s: the restored backward schedule fails: %s\n", label, why);
        fails++;
    }
}

static void check_variant(const attnc_spec *spec, const char *variant, const char *file) {
    attnc_options opts = {.backend = ATTNC_BACKEND_REFPLAN};
    attnc_kernel *k = NULL;
    attnc_error err = {0};
    char label[200];
    snprintf(label, sizeof label, "%s:%s", file, variant);
    if (attnc_compile(spec, variant, &opts, &k, &err)) {
        printf("FAIL %s: compile: %s\n", label, err.message);
        fails++;
        return;
    }
    const Plan *p = attnc_kernel_plan(k);
    if (p->sched->why[0]) {
        printf("FAIL %s: no schedule: %s\n", label, p->sched->why);
        fails++;
    } else {
        mutate(label, p->sched, p->f);
        checked++;
    }
    if (!p->grad_sched || p->grad_sched->base.why[0]) {
        printf("FAIL %s: no backward schedule: %s\n", label,
               p->grad_sched ? p->grad_sched->base.why : p->grad_error ? p->grad_error : "?");
        fails++;
    } else {
        mutate_grad(label, (GradSchedule *)p->grad_sched);
        checked++;
    }
    attnc_kernel_free(k);
}

static void check_spec(const char *name, const char *text, size_t len) {
    attnc_spec *spec = NULL;
    attnc_error err = {0};
    if (attnc_spec_from_string(name, text, len, &spec, &err)) {
        printf("FAIL %s: %s%s\n", name, err.message, spec ? attnc_spec_diagnostics(spec) : "");
        fails++;
        attnc_spec_free(spec);
        return;
    }
    for (int i = 0; i < attnc_spec_variant_count(spec); i++) check_variant(spec, attnc_spec_variant_name(spec, i), name);
    attnc_spec_free(spec);
}

static const char *const hand_written =
    "attention nested { tensor t : float[Lk, D]; bias sum(j < Lk) sum(d < D) t[j, d]; }\n"
    "attention siblings { tensor t : float[Lq, Lk]; param R : int = 3;\n"
    "  bias (sum(r < R) t[q, (kv + r) % Lk]) + (sum(s < R) t[(q + s) % Lq, kv]); }\n"
    "attention inner_varies { tensor t : float[Lk, 8]; bias sum(j < 8) t[kv, j] * sum(i < j) float(i + q); }\n"
    "attention lowrank { param R : int = 4; tensor U : float[H, Lq, R]; tensor W : float[H, Lk, R];\n"
    "  bias sum(r < R) U[h, q, r] * W[h, kv, r]; use softcap(cap = 30.0); }\n"
    "attention faults { param p : int; tensor t : float[Lk]; mask kv <= q;\n"
    "  score score < 0.5 ? t[q % p] : score; }\n"
    "attention weighted { mask kv <= q; weight sigmoid(score); }\n";

int main(int argc, char **argv) {
    check_spec("hand_written", hand_written, strlen(hand_written));
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (!f) {
            printf("FAIL %s: cannot open\n", argv[i]);
            fails++;
            continue;
        }
        static char buf[1 << 20];
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = 0;
        check_spec(argv[i], buf, n);
    }
    printf("%d schedules verified, %d single-step deletions all rejected; %d failures\n", checked, mutations, fails);
    return fails ? 1 : 0;
}
