/* threads.h — a small persistent pthread pool shared by every compiled
 * backend.  Work items are handed out dynamically (an atomic counter), so
 * unequal items (causal and windowed rows) balance themselves. */
#ifndef ATTNC_THREADS_H
#define ATTNC_THREADS_H
#include <stdint.h>

typedef void (*PoolWork)(void *ctx, int64_t item, int thread);

/* Cores online (at least 1). */
int pool_cores(void);

/* Run work(ctx, i, t) for every i in [0, n) on `threads` threads (the caller
 * is one of them; t < threads).  If the pool is busy with another call, the
 * caller runs everything itself.  Returns the number of threads used. */
int pool_run(int threads, int64_t n, PoolWork work, void *ctx);

#endif
