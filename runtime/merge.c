/* merge.c — the log-sum-exp merge of partial results (merge.h).
 * A part over keys S_i holds O_i = sum_{S_i} p V / sum_{S_i} p and
 * LSE_i = log sum_{S_i} p (p = exp(s), the max cancels), so the call over
 * the union has sum p = sum_i exp(LSE_i) and O = sum_i exp(LSE_i) O_i /
 * sum_i exp(LSE_i); subtracting M = max LSE_i keeps every exp <= 1.  A
 * `weight` part holds the unnormalised sum, so its O simply adds. */
#include "merge.h"

#include <math.h>

/* max_i LSE_i, NaN if any is NaN (-inf when n == 0). */
static double max_lse(int n, const float *lse, int64_t step) {
    double m = -INFINITY;
    for (int i = 0; i < n; i++) {
        double x = lse[i * step];
        if (isnan(x)) return NAN;
        if (x > m) m = x;
    }
    return m;
}

/* exp(LSE_i - M): the weight of part i relative to the largest.  With
 * M = +inf only the parts at +inf count (each 1); an empty part is 0. */
static double part_weight(double x, double m) {
    if (isinf(m) && m > 0) return x == m ? 1.0 : 0.0;
    return x == -INFINITY ? 0.0 : exp(x - m);
}

/* log sum_i exp(LSE_i), from M and sum_i exp(LSE_i - M). */
static float merged_lse(double m, double sum) {
    if (isnan(m) || isinf(m)) return (float)m;
    return (float)(m + log(sum));
}

/* Weights merge_softmax keeps rather than recomputes per element: as many as
 * the runtime cuts keys into (runtime/launch.c, MAX_SPLITS). */
enum { KEPT_WEIGHTS = 256 };

static void merge_softmax(int n, const float *o, int64_t o_step, const float *lse, int64_t lse_step, int64_t dv,
                          float *out, float *out_lse) {
    double m = max_lse(n, lse, lse_step);
    if (isnan(m) || m == -INFINITY) {
        /* NaN in any part poisons the row; no part with keys: the empty row */
        for (int64_t d = 0; d < dv; d++) out[d] = isnan(m) ? NAN : 0.0f;
        *out_lse = (float)m;
        return;
    }
    double w[KEPT_WEIGHTS], sum = 0; /* the weights, kept when they fit (the common case) */
    for (int i = 0; i < n; i++) {
        double wi = part_weight(lse[i * lse_step], m);
        if (i < KEPT_WEIGHTS) w[i] = wi;
        sum += wi;
    }
    /* element d of every part is read before out[d] is written: out may be part 0 */
    for (int64_t d = 0; d < dv; d++) {
        double acc = 0;
        for (int i = 0; i < n; i++) {
            if (lse[i * lse_step] == -INFINITY) continue; /* empty: its O is not read */
            acc += (i < KEPT_WEIGHTS ? w[i] : part_weight(lse[i * lse_step], m)) * (double)o[i * o_step + d];
        }
        out[d] = (float)(acc / sum);
    }
    *out_lse = merged_lse(m, sum);
}

static void merge_weight(int n, const float *o, int64_t o_step, const float *lse, int64_t lse_step, int64_t dv,
                         float *out, float *out_lse) {
    double m = lse ? max_lse(n, lse, lse_step) : 0, sum = 0;
    for (int i = 0; lse && !isnan(m) && !isinf(m) && i < n; i++) sum += part_weight(lse[i * lse_step], m);
    /* every part's O adds, an "empty" one too: weights summing to 0 may still move O */
    for (int64_t d = 0; d < dv; d++) {
        double acc = 0;
        for (int i = 0; i < n; i++) acc += (double)o[i * o_step + d];
        out[d] = (float)acc;
    }
    if (lse && out_lse) *out_lse = merged_lse(m, sum);
}

void merge_row(int softmax, int n, const float *o, int64_t o_step, const float *lse, int64_t lse_step, int64_t dv,
               float *out, float *out_lse) {
    if (softmax) merge_softmax(n, o, o_step, lse, lse_step, dv, out, out_lse);
    else merge_weight(n, o, o_step, lse, lse_step, dv, out, out_lse);
}
