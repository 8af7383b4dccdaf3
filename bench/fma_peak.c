/* fma_peak.c — the single-core float FMA peak of this machine, for the
 * "fraction of peak" column of bench/run.sh.  Independent accumulator chains
 * hide the FMA latency; vectors are as wide as -march=native allows. */
#include <stdio.h>
#include <time.h>

#if defined(__AVX512F__)
#define LANES 16
#elif defined(__AVX__)
#define LANES 8
#else
#define LANES 4
#endif
typedef float vec __attribute__((vector_size(LANES * 4)));
enum { CHAINS = 12 };

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(void) {
    vec acc[CHAINS], a, b;
    for (int i = 0; i < LANES; i++) {
        a[i] = 0.999999f;
        b[i] = 1e-7f;
    }
    for (int c = 0; c < CHAINS; c++) acc[c] = a * (float)(c + 1);
    long iters = 200000000 / CHAINS;
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        double t = now();
        for (long i = 0; i < iters; i++)
            for (int c = 0; c < CHAINS; c++) acc[c] = acc[c] * a + b; /* contracted to FMA */
        t = now() - t;
        double gflops = 2.0 * LANES * CHAINS * (double)iters / t * 1e-9;
        best = gflops > best ? gflops : best;
    }
    float sink = 0;
    for (int c = 0; c < CHAINS; c++)
        for (int i = 0; i < LANES; i++) sink += acc[c][i];
    printf("%.2f GFLOP/s single-core FMA peak (%d lanes; checksum %g)\n", best, LANES, (double)sink);
    return 0;
}
