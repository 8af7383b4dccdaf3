/* kept_buffers.h — scratch buffers a kernel keeps between its calls
 * (runtime/launch.c's rows of one head in block order and packed K and V rows,
 * launch_grad.c's gradient buffers; rope_sink.c's rotated
 * rows keep their Buffers in its own kept scratch): a call takes them,
 * grows what it needs and puts them back, so that a model's calls of one
 * shape allocate, and fault in, their scratch once instead of every call
 * (natten2d at L = 4096: 2,000 page faults a call before).  One slot, taken
 * and put back by atomic exchange (as map_cache.c): a call that finds it
 * empty makes its own.  Requires nothing; used by runtime/launch.c, made and
 * freed by the library with the kernel. */
#ifndef ATTNC_KEPT_BUFFERS_H
#define ATTNC_KEPT_BUFFERS_H
#include <stddef.h>

#include "attnc.h"

enum { KEPT_BUFFERS_MAX = 12 };

/* A call's buffers: p[i] holds at least cap[i] bytes (NULL and 0 until reserved). */
typedef struct Buffers {
    void *p[KEPT_BUFFERS_MAX];
    size_t cap[KEPT_BUFFERS_MAX];
} Buffers;

typedef struct KeptBuffers KeptBuffers;

/* An empty slot into *out.  ATTNC_ERR_NOMEM or OK. */
attnc_status kept_buffers_new(KeptBuffers **out, attnc_error *err);
/* Free the slot and what it keeps; NULL is ignored. */
void kept_buffers_free(KeptBuffers *k);
/* The kept buffers, or empty ones when the slot is empty or k is NULL; NULL when out of memory. */
Buffers *kept_buffers_take(KeptBuffers *k);
/* Buffer i of b with room for at least `bytes` bytes (its contents not kept), or NULL when out of memory. */
void *buffers_reserve(Buffers *b, int i, size_t bytes);
/* Free what b holds (b itself is the caller's): for Buffers kept inside another scratch (rope_sink.c). */
void buffers_clear(Buffers *b);
/* Put b back into k (whatever k held meanwhile is freed); with k NULL, free b. */
void kept_buffers_put(KeptBuffers *k, Buffers *b);

#endif
