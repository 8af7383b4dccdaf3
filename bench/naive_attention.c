/* naive_attention.c — the baseline bench/run.sh compares kernels with: plain
 * C attention as one would write it first, compiled -O3 -march=native.
 * For each (b, h, q) it materialises the row of scores, takes its softmax
 * and multiplies by V.  Dense or causal.
 *   naive_attention B H L D [causal]   -> prints milliseconds per call */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void attention(int B, int H, int L, int D, int causal, const float *q, const float *k, const float *v,
                      float *o, float *s) {
    float scale = 1.0f / sqrtf((float)D);
    for (int bh = 0; bh < B * H; bh++)
        for (int i = 0; i < L; i++) {
            const float *qi = q + ((size_t)bh * L + i) * D;
            int n = causal ? i + 1 : L;
            float m = -INFINITY;
            for (int j = 0; j < n; j++) {
                const float *kj = k + ((size_t)bh * L + j) * D;
                float dot = 0;
                for (int d = 0; d < D; d++) dot += qi[d] * kj[d];
                s[j] = dot * scale;
                m = s[j] > m ? s[j] : m;
            }
            float l = 0;
            for (int j = 0; j < n; j++) {
                s[j] = expf(s[j] - m);
                l += s[j];
            }
            float *oi = o + ((size_t)bh * L + i) * D;
            memset(oi, 0, sizeof(float) * (size_t)D);
            for (int j = 0; j < n; j++) {
                const float *vj = v + ((size_t)bh * L + j) * D;
                for (int d = 0; d < D; d++) oi[d] += s[j] / l * vj[d];
            }
        }
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: naive_attention B H L D [causal]\n");
        return 2;
    }
    int B = atoi(argv[1]), H = atoi(argv[2]), L = atoi(argv[3]), D = atoi(argv[4]);
    int causal = argc > 5 && !strcmp(argv[5], "causal");
    size_t n = (size_t)B * H * L * D;
    float *q = malloc(n * 4), *k = malloc(n * 4), *v = malloc(n * 4), *o = malloc(n * 4), *s = malloc((size_t)L * 4);
    if (!q || !k || !v || !o || !s) return 1;
    unsigned x = 1;
    for (size_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        q[i] = (float)(x >> 8) / 16777216.0f - 0.5f;
        k[i] = q[i] * 0.5f;
        v[i] = -q[i];
    }
    double best = 1e30;
    for (int rep = 0; rep < 2; rep++) {
        double t = now();
        attention(B, H, L, D, causal, q, k, v, o, s);
        t = now() - t;
        best = t < best ? t : best;
    }
    printf("%.3f ms (checksum %g)\n", best * 1e3, (double)o[n / 2]);
    free(q), free(k), free(v), free(o), free(s);
    return 0;
}
