/* merge.h — the log-sum-exp merge of partial attention results (issue 11).
 * Requires: nothing but <stdint.h>.
 * Produces: one output row from the rows of calls over disjoint key sets:
 * split-KV work items (runtime/launch.c) and attnc_merge (api/api_merge.c).
 * docs/merge.md gives the semantics and why they are exact. */
#ifndef ATTNC_MERGE_H
#define ATTNC_MERGE_H
#include <stdint.h>

/* Merge n partial results of one output row (each over a disjoint set of
 * keys) into the row one call over all those keys gives.  Part i's O row is
 * the dv floats at o + i * o_step, its LSE lse[i * lse_step].  softmax: the
 * LSE-weighted mean; else (a `weight` attention) the sum.  Parts are combined
 * in index order (deterministic).
 *
 * softmax (lse and out_lse required): M = max_i LSE_i.  Any LSE NaN: O and
 * LSE NaN.  M = -inf (every part empty): O = 0, LSE = -inf.  Otherwise
 * w_i = exp(LSE_i - M), O = sum w_i O_i / sum w_i, LSE = M + log(sum w_i); a
 * part with LSE = -inf (empty) is skipped, whatever its O holds.  M = +inf
 * (degenerate: an infinite LSE): the parts with LSE = +inf get weight 1, the
 * others 0, and LSE = +inf.
 * weight: O = sum_i O_i; LSE = log(sum_i exp(LSE_i)), computed stably as the
 * softmax LSE above (NaN if any is NaN).  Exact when each part's sum of
 * weights is >= 0; lse and out_lse may be NULL (O only).
 * Sums and weights are double; O is rounded to float once.  `out` may be
 * part 0's row (o) and out_lse part 0's LSE (in place); n >= 0. */
void merge_row(int softmax, int n, const float *o, int64_t o_step, const float *lse, int64_t lse_step, int64_t dv,
               float *out, float *out_lse);

#endif
