/* merge.h — merging partial attention results over disjoint sets of keys
 * (split-KV, attnc_merge). */
#ifndef ATTNC_MERGE_H
#define ATTNC_MERGE_H
#include <stdint.h>

/* Merge n partial results of one output row (each over a disjoint set of
 * keys) into the row one call over all those keys gives.  Part i's O row is
 * the dv floats at o + i * o_step, its LSE lse[i * lse_step].  softmax: the
 * LSE-weighted mean; else (a `weight` attention) the sum.  Parts are combined
 * in index order (deterministic). */
void merge_row(int softmax, int n, const float *o, int64_t o_step, const float *lse, int64_t lse_step, int64_t dv,
               float *out, float *out_lse);

#endif
