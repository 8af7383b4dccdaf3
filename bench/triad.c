/* triad.c — a STREAM-like triad, a[i] = b[i] + s * c[i], over arrays far
 * larger than the caches: the memory bandwidth that decode (a stream over
 * the KV cache) can hope for on this machine (bench/decode.sh).
 *
 *   bench_triad THREADS [MIB_PER_ARRAY]
 *
 * Prints the best of 5 runs in GB/s, counting STREAM's way: 3 x 4 bytes per
 * element (two reads, one write). */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef struct Part {
    float *a, *b, *c;
    size_t lo, hi;
} Part;

static void *triad(void *arg) {
    Part *p = arg;
    for (size_t i = p->lo; i < p->hi; i++) p->a[i] = p->b[i] + 3.0f * p->c[i];
    return NULL;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    size_t mib = argc > 2 ? (size_t)atol(argv[2]) : 256;
    if (threads < 1 || threads > 64 || mib < 1) {
        fprintf(stderr, "usage: bench_triad THREADS [MIB_PER_ARRAY]\n");
        return 2;
    }
    size_t n = mib * 1024 * 1024 / sizeof(float);
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *c = malloc(n * sizeof *c);
    if (!a || !b || !c) {
        fprintf(stderr, "bench_triad: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < n; i++) a[i] = 0.0f, b[i] = 1.0f, c[i] = 2.0f; /* touch every page first */
    pthread_t tid[64];
    Part part[64];
    double best = 0;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = now();
        for (int t = 0; t < threads; t++) {
            part[t] = (Part){a, b, c, n * (size_t)t / (size_t)threads, n * (size_t)(t + 1) / (size_t)threads};
            pthread_create(&tid[t], NULL, triad, &part[t]);
        }
        for (int t = 0; t < threads; t++) pthread_join(tid[t], NULL);
        double gbs = 3.0 * 4.0 * (double)n / (now() - t0) * 1e-9;
        if (gbs > best) best = gbs;
    }
    printf("%.2f\n", best);
    free(a), free(b), free(c);
    return 0;
}
