/* rope_sink.h — `rotary` and `sink` (spec 9.3, 9.4) applied around a
 * compiled kernel: Q and K rotated once before it, each row's sink merged
 * into (O, LSE) after it (rope_sink.c). */
#ifndef ATTNC_ROPE_SINK_H
#define ATTNC_ROPE_SINK_H
#include "call.h"
#include "status.h"

/* A kernel's rotation buffers (the rotated copies, the angle table, the
 * position ids), kept across its calls in a slot of the kernel: a call
 * takes it (a new one when another call holds it or none was kept) and
 * gives it back when done, so that calls on several threads at once are
 * safe; the one returned last is kept, the other freed. */
typedef struct RopeScratch RopeScratch;
RopeScratch *rope_scratch_take(RopeScratch *_Atomic *slot); /* NULL: out of memory */
void rope_scratch_keep(RopeScratch *_Atomic *slot, RopeScratch *s);
void rope_scratch_free(RopeScratch *s);

/* Q and K of the call rotated by bc's rotary (on `threads` threads of the
 * pool) into s's float32 copies, contiguous [B, H, Lq, D] and [B, Hkv, Lk, D]
 * (valid until s is freed or used again).  *fault = 1 (and no copies) when a
 * position raises a runtime error: whether the call does depends on which
 * rows its masks use, which the interpreter decides. */
attnc_status rope_rotate(const BoundCall *bc, const void *q, const void *k, int threads, RopeScratch *s,
                         const float **q_rot, const float **k_rot, int *fault, attnc_error *err);

/* The kernel's O (float32, contiguous [B, H, Lq, Dv]) and LSE ([B, H, Lq])
 * merged with each row's sink, written to o and lse (may be NULL) at their
 * layouts; nothing written on a runtime error of a sink. */
attnc_status sink_merge(const BoundCall *bc, const BoundLayout *o_layout, const BoundLayout *lse_layout,
                        const float *o32, const float *lse32, void *o, float *lse, attnc_error *err);

/* The backward of rope_rotate (spec 9.5): the gradients of the rotated rows
 * (float32, contiguous, as rope_rotate lays them out; NULL: not wanted)
 * rotated back, dX = R^T dX_rot, written to dq and dk at their layouts.
 * Only after rope_rotate succeeded on the same call (positions cannot fail). */
attnc_status rope_unrotate(const BoundCall *bc, const float *dq_rot, const float *dk_rot, int threads, void *dq,
                           const BoundLayout *lq, void *dk, const BoundLayout *lk, attnc_error *err);

#endif
