/* test_threads.c — the worker pool (runtime/threads.c) against its contract:
 * every item runs exactly once, on a thread index below the count the call
 * asked for, whatever earlier calls asked for.  A call on 2 threads after
 * one on 3 used to run on 3 (the launch driver's per-thread scratch has 2
 * slots: heap corruption, found by attnc-fuzz). */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "threads.h"

enum { ITEMS = 4096, MAX_T = 8 };

typedef struct Ctx {
    int threads;
    atomic_int runs[ITEMS];
    atomic_int bad_thread;
} Ctx;

static void work(void *p, int64_t item, int thread) {
    Ctx *c = p;
    atomic_fetch_add(&c->runs[item], 1);
    if (thread < 0 || thread >= c->threads) atomic_store(&c->bad_thread, thread + 1000);
    for (volatile int spin = 0; spin < 200; spin++) { /* long enough for every worker to join in */
    }
}

int main(void) {
    static const int order[] = {3, 2, 1, 4, 2, 3, 8, 2, 5, 1, 3, 2, 7, 4, 2};
    int fails = 0;
    for (int round = 0; round < 20; round++)
        for (size_t k = 0; k < sizeof order / sizeof order[0]; k++) {
            Ctx *c = calloc(1, sizeof *c);
            if (!c) return 2;
            c->threads = order[k];
            int used = pool_run(c->threads, ITEMS, work, c);
            if (used < 1 || used > c->threads) {
                printf("FAIL: pool_run(%d threads) says it used %d\n", c->threads, used);
                fails++;
            }
            if (atomic_load(&c->bad_thread)) {
                printf("FAIL: pool_run(%d threads) ran an item on thread %d\n", c->threads,
                       atomic_load(&c->bad_thread) - 1000);
                fails++;
            }
            for (int i = 0; i < ITEMS; i++)
                if (atomic_load(&c->runs[i]) != 1) {
                    printf("FAIL: item %d ran %d times on %d threads\n", i, atomic_load(&c->runs[i]), c->threads);
                    fails++;
                    break;
                }
            free(c);
            if (fails > 5) return 1;
        }
    printf("%s\n", fails ? "threads: FAILED" : "threads: ok");
    return fails != 0;
}
