/* api_merge.c — attnc_merge (include/attnc.h): the checks of the public
 * call, then runtime/merge.h row by row.  The two parts live in separate
 * buffers, so each row is merged in column chunks copied side by side (no
 * pointer arithmetic across objects, no allocation, and in-place outputs
 * are read before they are written). */
#include <stdint.h>
#include <string.h>

#include "attnc.h"
#include "merge.h"
#include "status.h"

enum { CHUNK = 256 }; /* columns merged per merge_row call */

/* [p, p + n floats) as addresses, for overlap checks between caller buffers. */
typedef struct Span {
    const char *name;
    uintptr_t first, end;
} Span;

static Span span(const char *name, const float *p, int64_t n) {
    uintptr_t a = (uintptr_t)p;
    return (Span){name, a, p ? a + (uintptr_t)n * sizeof(float) : a};
}

static int overlaps(Span a, Span b) { return a.first < a.end && b.first < b.end && a.first < b.end && b.first < a.end; }

/* An output overlaps an input or the other output other than by exact aliasing of its own kind. */
static attnc_status check_overlaps(const Span out[2], const Span in[4], attnc_error *err) {
    if (overlaps(out[0], out[1])) return set_error(err, ATTNC_ERR_USAGE, "attnc_merge: o overlaps lse in memory");
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 4; j++) {
            int same_kind = (j < 2) == (i == 0); /* o with o1/o2, lse with lse1/lse2 */
            if (same_kind && out[i].first == in[j].first && out[i].end == in[j].end) continue; /* in place */
            if (overlaps(out[i], in[j]))
                return set_error(err, ATTNC_ERR_USAGE,
                                 "attnc_merge: %s overlaps %s in memory (in place, %s may be exactly %s or %s)",
                                 out[i].name, in[j].name, out[i].name, i ? "lse1" : "o1", i ? "lse2" : "o2");
        }
    return ATTNC_OK;
}

static attnc_status check_args(attnc_merge_kind kind, int64_t rows, int64_t dv, const float *o1, const float *lse1,
                               const float *o2, const float *lse2, float *o, float *lse, attnc_error *err) {
    if (kind != ATTNC_MERGE_SOFTMAX && kind != ATTNC_MERGE_WEIGHT)
        return set_error(err, ATTNC_ERR_USAGE, "attnc_merge: unknown kind %d (ATTNC_MERGE_SOFTMAX or _WEIGHT)",
                         (int)kind);
    if (rows < 0 || dv < 0)
        return set_error(err, ATTNC_ERR_USAGE, "attnc_merge: rows (%lld) and dv (%lld) must not be negative",
                         (long long)rows, (long long)dv);
    if (dv && rows > (int64_t)(PTRDIFF_MAX / sizeof(float)) / dv)
        return set_error(err, ATTNC_ERR_USAGE, "attnc_merge: rows * dv (%lld * %lld) is too large", (long long)rows,
                         (long long)dv);
    if (!o1 || !o2 || !o) return set_error(err, ATTNC_ERR_USAGE, "attnc_merge: o1, o2 and o must not be NULL");
    int nlse = !!lse1 + !!lse2 + !!lse;
    if (kind == ATTNC_MERGE_SOFTMAX && nlse < 3)
        return set_error(err, ATTNC_ERR_USAGE, "attnc_merge: a softmax merge needs lse1, lse2 and lse (not NULL)");
    if (nlse != 0 && nlse != 3)
        return set_error(err, ATTNC_ERR_USAGE, "attnc_merge: give lse1, lse2 and lse all, or (weight) none");
    const Span out[2] = {span("o", o, rows * dv), span("lse", lse, rows)};
    const Span in[4] = {span("o1", o1, rows * dv), span("o2", o2, rows * dv), span("lse1", lse1, rows),
                        span("lse2", lse2, rows)};
    return check_overlaps(out, in, err);
}

attnc_status attnc_merge(attnc_merge_kind kind, int64_t rows, int64_t dv, const float *o1, const float *lse1,
                         const float *o2, const float *lse2, float *o, float *lse, attnc_error *err) {
    attnc_status st = check_args(kind, rows, dv, o1, lse1, o2, lse2, o, lse, err);
    if (st) return st;
    int softmax = kind == ATTNC_MERGE_SOFTMAX;
    float parts[2 * CHUNK]; /* part 0's chunk, then part 1's */
    for (int64_t r = 0; r < rows; r++) {
        /* both LSEs read before lse[r] (maybe lse1[r]) is written */
        float part_lse[2] = {lse ? lse1[r] : 0, lse ? lse2[r] : 0}, row_lse = 0;
        int64_t d = 0;
        do { /* once even when dv == 0: the LSE still merges */
            int64_t n = dv - d < CHUNK ? dv - d : CHUNK;
            memcpy(parts, o1 + r * dv + d, (size_t)n * sizeof(float));
            memcpy(parts + CHUNK, o2 + r * dv + d, (size_t)n * sizeof(float));
            merge_row(softmax, 2, parts, CHUNK, lse ? part_lse : NULL, 1, n, o + r * dv + d,
                      lse ? &row_lse : NULL);
            d += n;
        } while (d < dv);
        if (lse) lse[r] = row_lse;
    }
    if (err) err->status = ATTNC_OK, err->message[0] = 0;
    return ATTNC_OK;
}
