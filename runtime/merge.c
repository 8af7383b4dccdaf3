/* merge.c — see merge.h.  (Provisional: the split-KV merge; attnc_merge's
 * full rules land with it.) */
#include "merge.h"

#include <math.h>

void merge_row(int softmax, int n, const float *o, int64_t o_step, const float *lse, int64_t lse_step, int64_t dv,
               float *out, float *out_lse) {
    double m = -INFINITY;
    for (int i = 0; i < n; i++) {
        double x = lse[i * lse_step];
        if (isnan(x) || x > m) m = x;
        if (isnan(m)) break;
    }
    double w[64], sum = 0.0;
    for (int i = 0; i < n && i < 64; i++) {
        double x = lse[i * lse_step];
        w[i] = !softmax ? 1.0 : m == INFINITY ? (x == INFINITY ? 1.0 : 0.0) : m == -INFINITY ? 0.0 : exp(x - m);
        sum += softmax ? w[i] : exp(x - (m == -INFINITY || isinf(m) ? 0.0 : m));
    }
    for (int64_t d = 0; d < dv; d++) {
        double acc = 0.0;
        for (int i = 0; i < n && i < 64; i++)
            if (w[i] != 0.0) acc += w[i] * o[i * o_step + d];
        out[d] = (float)(softmax ? (m == -INFINITY ? 0.0 : isnan(m) ? NAN : acc / sum) : acc);
    }
    if (softmax) *out_lse = (float)(m == -INFINITY || isnan(m) || m == INFINITY ? m : m + log(sum));
    else *out_lse = (float)(isinf(m) || isnan(m) ? m : m + log(sum));
}
