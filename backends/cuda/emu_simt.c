/* emu_simt.c — the SIMT emulation's scheduler (emu_simt.h): one fiber per
 * CUDA thread, a run queue per block, barriers, shared memory, faults and
 * deadlock detection.  The warp operations are in emu_simt_ops.c.
 *
 * Scheduling: a thread runs until it waits (a collective others have not
 * reached, a barrier) or exits, and then switches to the next runnable thread
 * of the block's queue; the OS thread's own stack starts the block and gets
 * control back when no thread can run.
 * The last lane to reach a collective computes it for all and goes on
 * running; the others become runnable.  Threads run in order of their index
 * between waits, which is one legal GPU schedule; a kernel that is correct
 * only under another order (a race) is not guaranteed to be caught, except
 * where the poison of shared memory and of cp.async destinations shows it.
 * When no thread can run and some have not exited, the block is deadlocked:
 * a fault that says who waits for whom, never a hang.  A spin loop on memory
 * does hang (the fibers are cooperative); GPU kernels here never spin. */
#include "emu_simt_int.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "status.h"

enum { SIMT_DEFAULT_SMEM = 227 * 1024, SIMT_SMEM_ALIGN = 128, SIMT_POISON = 0xff };

static _Thread_local SimtBlock *current;

SimtThread *simt_self(void) { return current->t + current->running; }

/* Keep the block's first fault: "cuda-emu: block B thread T (warp W lane L): ...". */
static void record(SimtBlock *b, const SimtThread *t, const char *fmt, va_list ap) {
    if (b->fault) return;
    int n = snprintf(b->msg, sizeof b->msg, "cuda-emu: block %lld thread %d (warp %d lane %d): ", (long long)b->index,
                     t->tid, t->tid / 32, t->tid % 32);
    if (n > 0 && (size_t)n < sizeof b->msg) vsnprintf(b->msg + n, sizeof b->msg - (size_t)n, fmt, ap);
    b->fault = 1;
}

_Noreturn void simt_fault(SimtThread *t, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    record(t->blk, t, fmt, ap);
    va_end(ap);
    t->state = T_EXITED;
    fiber_switch(t->fiber, t->blk->sched, 1);
    abort(); /* unreachable: the scheduler never resumes a thread once the block faulted */
}

/* A fault found by the scheduler itself (on its own stack): no switch. */
static void sched_fault(SimtBlock *b, const SimtThread *t, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void sched_fault(SimtBlock *b, const SimtThread *t, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    record(b, t, fmt, ap);
    va_end(ap);
}

static void wake(SimtBlock *b, int32_t tid) {
    b->t[tid].state = T_RUNNABLE;
    if (b->depth_first) { /* runs next (SIMT_SCHEDULE_DEPTH_FIRST) */
        b->qhead = (b->qhead + b->nthreads - 1) % b->nthreads;
        b->queue[b->qhead] = tid;
        b->qlen++;
    } else {
        b->queue[(b->qhead + b->qlen++) % b->nthreads] = tid;
    }
}

/* Leave the calling thread for the next runnable one, directly (one switch,
 * not two through the scheduler), or for the scheduler when none is left
 * (the block is done or deadlocked). */
static void run_next(SimtThread *t, int last) {
    SimtBlock *b = t->blk;
    Fiber *to = b->sched;
    if (b->qlen) {
        b->running = b->queue[b->qhead];
        b->qhead = (b->qhead + 1) % b->nthreads;
        b->qlen--;
        b->t[b->running].state = T_RUNNING;
        to = b->t[b->running].fiber;
    }
    b->stats.switches++;
    fiber_switch(t->fiber, to, last);
}

/* Suspend the calling thread in `state` until something wakes it. */
static void wait_as(SimtThread *t, int32_t state) {
    t->state = state;
    run_next(t, 0);
}

/* The same collective: kind, variant and mask; for mma.sync and ldmatrix,
 * whose .aligned qualifier requires every lane to run the same instruction,
 * also the same source line (a stand-in for "instruction"). */
static int same_op(const LaneOp *a, const LaneOp *b) {
    return a->kind == b->kind && a->sub == b->sub && a->mask == b->mask &&
           (a->line == b->line || (a->kind != OP_MMA && a->kind != OP_LDMATRIX));
}

const char *simt_op_name(const LaneOp *op) {
    static const char *const names[] = {"__syncwarp", "shfl.sync", "vote.sync.ballot", "mma.sync", "ldmatrix"};
    return names[op->kind];
}

static _Noreturn void mismatch(SimtThread *t, const SimtThread *o) {
    simt_fault(t,
               "%s (line %d) with mask 0x%08x, but lane %d of the warp waits at %s (line %d) with mask 0x%08x: "
               "the lanes of a warp collective must all run the same one",
               simt_op_name(&t->op), t->op.line, t->op.mask, o->tid % 32, simt_op_name(&o->op), o->op.line, o->op.mask);
}

void simt_arrive(SimtThread *t, SimtComplete complete) {
    SimtBlock *b = t->blk;
    const int32_t w = t->tid / 32, lane = t->tid % 32;
    const uint32_t mask = t->op.mask, me = 1u << lane;
    if (!(mask & me))
        simt_fault(t, "%s (line %d) with mask 0x%08x, which omits the calling lane", simt_op_name(&t->op), t->op.line,
                   mask);
    if (mask & ~b->live[w])
        simt_fault(t, "%s (line %d) with mask 0x%08x names lanes the warp does not have (lanes 0x%08x exist)",
                   simt_op_name(&t->op), t->op.line, mask, b->live[w]);
    if (mask & b->exited[w])
        simt_fault(t, "%s (line %d) with mask 0x%08x waits for lane %d, which has exited", simt_op_name(&t->op),
                   t->op.line, mask, __builtin_ctz(mask & b->exited[w]));
    uint32_t waiting = b->arrived[w] & mask;
    if (waiting && !same_op(&b->t[w * 32 + __builtin_ctz(waiting)].op, &t->op))
        mismatch(t, &b->t[w * 32 + __builtin_ctz(waiting)]);
    if ((waiting | me) != mask) {
        b->arrived[w] |= me;
        wait_as(t, T_WARP);
        return;
    }
    for (uint32_t m = waiting; m; m &= m - 1) /* a lane of the mask may wait with another mask that overlaps */
        if (!same_op(&b->t[w * 32 + __builtin_ctz(m)].op, &t->op)) mismatch(t, &b->t[w * 32 + __builtin_ctz(m)]);
    complete(b, w, mask);
    b->arrived[w] &= ~mask;
    for (uint32_t m = waiting; m; m &= m - 1) wake(b, w * 32 + __builtin_ctz(m));
    b->stats.collectives++;
}

void attnc_simt_syncthreads(int32_t line) {
    SimtThread *t = simt_self();
    SimtBlock *b = t->blk;
    if (b->nexited) {
        int32_t gone = 0;
        while (b->t[gone].state != T_EXITED) gone++;
        simt_fault(t, "__syncthreads (line %d) after thread %d exited: every thread of the block must reach it", line,
                   gone);
    }
    if (b->nbar && b->bar_line != line)
        simt_fault(t, "__syncthreads at line %d while thread %d waits at the one of line %d: divergent barriers", line,
                   b->bar_first, b->bar_line);
    if (b->nbar == 0) b->bar_line = line, b->bar_first = t->tid;
    if (++b->nbar < b->nthreads) {
        t->line = line;
        wait_as(t, T_BARRIER);
        return;
    }
    b->nbar = 0;
    for (int32_t i = 0; i < b->nthreads; i++)
        if (b->t[i].state == T_BARRIER) wake(b, i);
    b->stats.barriers++;
}

/* The kernel returned: no one may still wait for this thread. */
static _Noreturn void thread_exit(SimtThread *t) {
    SimtBlock *b = t->blk;
    const int32_t w = t->tid / 32;
    const uint32_t me = 1u << (t->tid % 32);
    simt_cp_drop(t);
    if (b->nbar)
        simt_fault(t, "exits while thread %d waits at __syncthreads (line %d): every thread of the block must reach it",
                   b->bar_first, b->bar_line);
    for (uint32_t m = b->arrived[w]; m; m &= m - 1) {
        const SimtThread *o = &b->t[w * 32 + __builtin_ctz(m)];
        if (o->op.mask & me)
            simt_fault(t, "exits while lane %d waits for it at %s (line %d) with mask 0x%08x", o->tid % 32,
                       simt_op_name(&o->op), o->op.line, o->op.mask);
    }
    t->state = T_EXITED;
    b->nexited++;
    b->exited[w] |= me;
    run_next(t, 1);
    abort(); /* unreachable: an exited thread is never resumed */
}

static void thread_main(void *arg) {
    SimtThread *t = arg;
    fiber_started(t->fiber);
    t->blk->l->kernel(t->blk->l->args);
    thread_exit(t);
}

/* No thread can run, some have not exited: say who waits for whom. */
static void deadlock(SimtBlock *b) {
    for (int32_t i = 0; i < b->nthreads; i++) {
        const SimtThread *t = &b->t[i];
        if (t->state != T_WARP) continue;
        const int32_t w = i / 32;
        uint32_t missing = t->op.mask & ~b->arrived[w];
        const SimtThread *o = &b->t[w * 32 + __builtin_ctz(missing ? missing : 1)];
        if (o->state == T_BARRIER)
            sched_fault(b, t,
                        "deadlock: waits at %s (line %d) with mask 0x%08x for lane %d, which waits at "
                        "__syncthreads (line %d) for this one",
                        simt_op_name(&t->op), t->op.line, t->op.mask, o->tid % 32, o->line);
        else
            sched_fault(b, t, "deadlock: waits at %s (line %d) with mask 0x%08x, and no thread can go on",
                        simt_op_name(&t->op), t->op.line, t->op.mask);
        return;
    }
    snprintf(b->msg, sizeof b->msg,
             "cuda-emu: block %lld: deadlock: %d threads wait at __syncthreads (line %d), "
             "the others cannot reach it",
             (long long)b->index, b->nbar, b->bar_line);
    b->fault = 1;
}

int simt_in_smem(const SimtBlock *b, const void *p, int64_t n) {
    /* as integers: comparing pointers into different objects is undefined */
    const uintptr_t at = (uintptr_t)p, lo = (uintptr_t)b->smem;
    return at >= lo && n >= 0 && n <= b->smem_end && at - lo <= (uintptr_t)(b->smem_end - n);
}

int32_t attnc_simt_id(int32_t which) {
    SimtThread *t = simt_self();
    const SimtLaunch *l = t->blk->l;
    switch (which) {
    case 0: return t->tid % l->block[0];
    case 1: return t->tid / l->block[0] % l->block[1];
    case 2: return t->tid / (l->block[0] * l->block[1]);
    case 3:
    case 4:
    case 5: return t->blk->bid[which - 3];
    case 6:
    case 7:
    case 8: return l->block[which - 6];
    case 9:
    case 10:
    case 11: return l->grid[which - 9];
    default: simt_fault(t, "asks for built-in variable %d, which does not exist", which);
    }
}

void *attnc_simt_dynamic_shared(void) { return current->smem; }

/* The static __shared__ variable `name` declared at `line`: one object per
 * declaration for the whole block, as in CUDA (a device function that
 * declares one and is called twice sees the same memory both times). */
void *attnc_simt_shared(int64_t bytes, const char *name, int32_t line) {
    SimtThread *t = simt_self();
    SimtBlock *b = t->blk;
    for (int32_t k = 0; k < b->nstatics; k++) {
        const StaticAlloc *a = &b->statics[k];
        if (a->line != line || strcmp(a->name, name) != 0) continue;
        if (a->bytes != bytes)
            simt_fault(t, "shared variable '%s' (line %d) of %lld bytes, %lld bytes in another thread", name, line,
                       (long long)bytes, (long long)a->bytes);
        return b->smem + a->offset;
    }
    int64_t at = (b->smem_end + SIMT_SMEM_ALIGN - 1) / SIMT_SMEM_ALIGN * SIMT_SMEM_ALIGN;
    if (bytes < 0 || at + bytes > b->smem_cap)
        simt_fault(t, "shared variable '%s' (line %d) of %lld bytes exceeds the block's %lld bytes of shared memory",
                   name, line, (long long)bytes, (long long)b->smem_cap);
    if (b->nstatics == b->capstatics) {
        int32_t cap = b->capstatics ? 2 * b->capstatics : 8;
        StaticAlloc *a = realloc(b->statics, (size_t)cap * sizeof *a);
        if (!a) simt_fault(t, "out of memory");
        b->statics = a, b->capstatics = cap;
    }
    b->statics[b->nstatics++] = (StaticAlloc){bytes, at, line, name};
    b->smem_end = at + bytes;
    if (b->smem_end > b->smem_hwm) b->smem_hwm = b->smem_end;
    memset(b->smem + at, SIMT_POISON, (size_t)bytes); /* uninitialised shared memory reads as NaN */
    return b->smem + at;
}

/* Run one block to its end, or its first fault. */
static void run_block(SimtBlock *b, int64_t index) {
    const SimtLaunch *l = b->l;
    b->index = index;
    b->bid[0] = (int32_t)(index % l->grid[0]);
    b->bid[1] = (int32_t)(index / l->grid[0] % l->grid[1]);
    b->bid[2] = (int32_t)(index / ((int64_t)l->grid[0] * l->grid[1]));
    b->qhead = b->qlen = 0;
    b->depth_first = 0; /* the threads start in index order */
    b->nexited = b->nbar = 0;
    b->nstatics = 0;
    b->smem_end = l->dynamic_smem;
    memset(b->smem, SIMT_POISON, (size_t)b->smem_hwm); /* GPUs do not clear shared memory */
    memset(b->pending, 0, (size_t)(b->smem_cap / 16));
    memset(b->arrived, 0, sizeof b->arrived);
    memset(b->exited, 0, sizeof b->exited);
    for (int32_t i = 0; i < b->nthreads; i++) {
        SimtThread *t = &b->t[i];
        if (b->used) fiber_restart(t->fiber);
        t->ncp = 0;
        t->committed = 0;
        wake(b, i);
    }
    b->used = 1;
    b->depth_first = l->schedule == SIMT_SCHEDULE_DEPTH_FIRST;
    /* the threads switch among themselves, and back here only when none can run */
    while (!b->fault && b->qlen) {
        b->running = b->queue[b->qhead];
        b->qhead = (b->qhead + 1) % b->nthreads;
        b->qlen--;
        b->t[b->running].state = T_RUNNING;
        b->stats.switches++;
        fiber_switch(b->sched, b->t[b->running].fiber, 0);
    }
    if (!b->fault && b->nexited < b->nthreads) deadlock(b);
}

static void block_free(SimtBlock *b) {
    for (int32_t i = 0; b->t && i < b->nthreads; i++) {
        fiber_free(b->t[i].fiber);
        free(b->t[i].cp);
    }
    free(b->t);
    fiber_free(b->sched);
    free(b->queue);
    free(b->smem);
    free(b->pending);
    free(b->statics);
    memset(b, 0, sizeof *b);
}

/* The fibers, queue and shared memory of blocks of `nthreads` threads. */
static attnc_status block_init(SimtBlock *b, int32_t nthreads, int64_t smem_cap, size_t stack, attnc_error *err) {
    memset(b, 0, sizeof *b);
    b->nthreads = nthreads;
    b->smem_cap = smem_cap;
    b->stack = stack;
    for (int32_t i = 0; i < b->nthreads; i++) b->live[i / 32] |= 1u << (i % 32);
    b->t = calloc((size_t)b->nthreads, sizeof *b->t);
    b->queue = malloc((size_t)b->nthreads * sizeof *b->queue);
    b->smem = malloc((size_t)b->smem_cap);
    b->pending = malloc((size_t)(b->smem_cap / 16 + 1));
    b->sched = fiber_of_thread();
    int ok = b->t && b->queue && b->smem && b->pending && b->sched;
    for (int32_t i = 0; ok && i < b->nthreads; i++) {
        b->t[i].blk = b;
        b->t[i].tid = i;
        b->t[i].fiber = fiber_new(stack, thread_main, &b->t[i]);
        ok = b->t[i].fiber != NULL;
    }
    if (!ok) block_free(b);
    return ok ? ATTNC_OK : set_error(err, ATTNC_ERR_NOMEM, "cuda-emu: out of memory for %d threads' stacks", nthreads);
}

/* Each OS thread keeps the block it last ran (its fibers above all: a
 * hundred mmaps a block otherwise), freed when the thread exits. */
static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

static void cache_free(void *p) {
    if (p) block_free(p);
    free(p);
}

static void cache_create(void) { pthread_key_create(&cache_key, cache_free); }

static attnc_status cached_block(const SimtLaunch *l, SimtBlock **out, attnc_error *err) {
    const int32_t n = l->block[0] * l->block[1] * l->block[2];
    const int64_t cap = l->smem_limit ? l->smem_limit : SIMT_DEFAULT_SMEM;
    const size_t stack = l->stack_bytes ? (size_t)l->stack_bytes : fiber_default_stack();
    pthread_once(&cache_once, cache_create);
    SimtBlock *b = pthread_getspecific(cache_key);
    if (b && (b->nthreads != n || b->smem_cap != cap || b->stack != stack)) {
        pthread_setspecific(cache_key, NULL);
        cache_free(b);
        b = NULL;
    }
    if (!b) {
        b = malloc(sizeof *b);
        if (!b) return set_error(err, ATTNC_ERR_NOMEM, "cuda-emu: out of memory");
        attnc_status st = block_init(b, n, cap, stack, err);
        if (st) {
            free(b);
            return st;
        }
        pthread_setspecific(cache_key, b);
    }
    b->l = l;
    b->fault = 0;
    memset(&b->stats, 0, sizeof b->stats);
    if (b->smem_hwm < l->dynamic_smem) b->smem_hwm = l->dynamic_smem;
    *out = b;
    return ATTNC_OK;
}

static attnc_status check_launch(const SimtLaunch *l, attnc_error *err) {
    int64_t threads = 1, blocks = 1;
    for (int i = 0; i < 3; i++) {
        if (l->block[i] < 1 || l->grid[i] < 1)
            return set_error(err, ATTNC_ERR_USAGE, "cuda-emu: grid and block dimensions must be at least 1");
        threads *= l->block[i];
        blocks *= l->grid[i];
    }
    if (!l->kernel) return set_error(err, ATTNC_ERR_USAGE, "cuda-emu: no kernel to launch");
    if (threads > 1024)
        return set_error(err, ATTNC_ERR_USAGE, "cuda-emu: %lld threads per block (at most 1024)", (long long)threads);
    int64_t cap = l->smem_limit ? l->smem_limit : SIMT_DEFAULT_SMEM;
    if (l->schedule != SIMT_SCHEDULE_ROUND_ROBIN && l->schedule != SIMT_SCHEDULE_DEPTH_FIRST)
        return set_error(err, ATTNC_ERR_USAGE, "cuda-emu: schedule %d is not one of SIMT_SCHEDULE_*", (int)l->schedule);
    if (l->dynamic_smem < 0 || l->dynamic_smem > cap || l->smem_limit < 0 || l->stack_bytes < 0)
        return set_error(err, ATTNC_ERR_USAGE, "cuda-emu: %lld bytes of dynamic shared memory (the limit is %lld)",
                         (long long)l->dynamic_smem, (long long)cap);
    (void)blocks;
    return ATTNC_OK;
}

static _Atomic uint64_t mmas_total;

uint64_t simt_mmas_total(void) { return atomic_load(&mmas_total); }

attnc_status simt_run(const SimtLaunch *l, int64_t first, int64_t count, SimtStats *stats, attnc_error *err) {
    attnc_status st = check_launch(l, err);
    if (st) return st;
    int64_t blocks = (int64_t)l->grid[0] * l->grid[1] * l->grid[2];
    if (first < 0 || count < 0 || first > blocks - count)
        return set_error(err, ATTNC_ERR_USAGE, "cuda-emu: blocks %lld .. %lld of a grid of %lld", (long long)first,
                         (long long)(first + count - 1), (long long)blocks);
    if (current) /* the cached block is running this very call */
        return set_error(err, ATTNC_ERR_USAGE, "cuda-emu: a kernel cannot launch another (no dynamic parallelism)");
    SimtBlock *b = NULL;
    st = cached_block(l, &b, err);
    if (st) return st;
    current = b;
    for (int64_t i = 0; !st && i < count; i++) {
        run_block(b, first + i);
        if (b->fault) st = set_error(err, ATTNC_ERR_RUNTIME, "%s", b->msg);
    }
    current = NULL;
    atomic_fetch_add(&mmas_total, b->stats.mmas);
    if (stats) {
        stats->switches += b->stats.switches;
        stats->collectives += b->stats.collectives;
        stats->barriers += b->stats.barriers;
        stats->mmas += b->stats.mmas;
    }
    b->l = NULL;
    return st;
}

/* simt_run for generated code, which has no attnc.h: dims = grid x, y, z,
 * block x, y, z.  Returns 0, or the attnc_status with its message in
 * message[message_bytes]. */
static atomic_int default_schedule;

void simt_set_default_schedule(int32_t schedule) { atomic_store(&default_schedule, schedule); }

int32_t attnc_simt_launch(SimtKernelFn kernel, const void *args, const int32_t *dims, int64_t dynamic_smem,
                          int64_t first, int64_t count, char *message, int32_t message_bytes) {
    SimtLaunch l = {.kernel = kernel, .args = args, .dynamic_smem = dynamic_smem,
                    .schedule = atomic_load(&default_schedule)};
    memcpy(l.grid, dims, sizeof l.grid);
    memcpy(l.block, dims + 3, sizeof l.block);
    attnc_error err = {0};
    attnc_status st = simt_run(&l, first, count, NULL, &err);
    if (st && message && message_bytes > 0) snprintf(message, (size_t)message_bytes, "%s", err.message);
    return (int32_t)st;
}
