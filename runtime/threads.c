/* threads.c — persistent worker threads, started on first use and kept for
 * the life of the process.  Requires: pthreads.  Produces: pool_run. */
#include "threads.h"

#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

enum { MAX_WORKERS = 256 };

typedef struct Job {
    PoolWork work;
    void *ctx;
    int64_t n;
    atomic_llong next;
    int threads;
} Job;

static struct {
    pthread_mutex_t busy; /* one job at a time */
    pthread_mutex_t lock;
    pthread_cond_t start, done;
    Job *job;
    unsigned generation;
    int started;          /* workers created */
    int active;           /* workers still inside the current job */
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
          PTHREAD_COND_INITIALIZER, NULL, 0, 0, 0};

int pool_cores(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > MAX_WORKERS ? MAX_WORKERS : (int)n;
}

static void drain(Job *job, int thread) {
    for (;;) {
        int64_t i = atomic_fetch_add(&job->next, 1);
        if (i >= job->n) return;
        job->work(job->ctx, i, thread);
    }
}

static void *worker(void *arg) {
    int id = (int)(intptr_t)arg;
    unsigned seen = 0;
    pthread_mutex_lock(&pool.lock);
    for (;;) {
        while (pool.generation == seen) pthread_cond_wait(&pool.start, &pool.lock);
        seen = pool.generation;
        Job *job = pool.job;
        if (id < job->threads) {
            pthread_mutex_unlock(&pool.lock);
            drain(job, id);
            pthread_mutex_lock(&pool.lock);
        }
        if (--pool.active == 0) pthread_cond_signal(&pool.done);
    }
    return NULL;
}

/* Create workers 1..want-1 (the caller is thread 0); returns how many threads exist. */
static int ensure_workers(int want) {
    while (pool.started + 1 < want) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int rc = pthread_create(&t, &attr, worker, (void *)(intptr_t)(pool.started + 1));
        pthread_attr_destroy(&attr);
        if (rc != 0) break;
        pool.started++;
    }
    return pool.started + 1;
}

int pool_run(int threads, int64_t n, PoolWork work, void *ctx) {
    if (threads <= 0) threads = pool_cores();
    if (threads > MAX_WORKERS) threads = MAX_WORKERS;
    if (threads > n) threads = n > 0 ? (int)n : 1;
    Job job = {work, ctx, n, 0, 1};
    if (threads == 1 || pthread_mutex_trylock(&pool.busy) != 0) {
        drain(&job, 0);
        return 1;
    }
    pthread_mutex_lock(&pool.lock);
    int workers = ensure_workers(threads) - 1;
    job.threads = workers + 1 < threads ? workers + 1 : threads;
    pool.job = &job;
    pool.active = workers;
    pool.generation++;
    pthread_cond_broadcast(&pool.start);
    pthread_mutex_unlock(&pool.lock);
    drain(&job, 0);
    pthread_mutex_lock(&pool.lock);
    while (pool.active > 0) pthread_cond_wait(&pool.done, &pool.lock);
    pthread_mutex_unlock(&pool.lock);
    pthread_mutex_unlock(&pool.busy);
    return job.threads;
}
