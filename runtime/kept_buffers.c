/* kept_buffers.c — a kernel's scratch kept between calls (kept_buffers.h). */
#include "kept_buffers.h"

#include <stdatomic.h>
#include <stdlib.h>

#include "status.h"

struct KeptBuffers {
    Buffers *_Atomic slot;
};

void buffers_clear(Buffers *b) {
    for (int i = 0; i < KEPT_BUFFERS_MAX; i++) free(b->p[i]), b->p[i] = NULL, b->cap[i] = 0;
}

static void buffers_free(Buffers *b) {
    if (!b) return;
    buffers_clear(b);
    free(b);
}

attnc_status kept_buffers_new(KeptBuffers **out, attnc_error *err) {
    *out = calloc(1, sizeof **out);
    if (!*out) return set_error(err, ATTNC_ERR_NOMEM, "out of memory for the kernel's kept buffers");
    atomic_init(&(*out)->slot, NULL);
    return ATTNC_OK;
}

void kept_buffers_free(KeptBuffers *k) {
    if (!k) return;
    buffers_free(atomic_load(&k->slot));
    free(k);
}

Buffers *kept_buffers_take(KeptBuffers *k) {
    Buffers *b = k ? atomic_exchange(&k->slot, NULL) : NULL;
    return b ? b : calloc(1, sizeof *b);
}

void *buffers_reserve(Buffers *b, int i, size_t bytes) {
    if (b->p[i] && b->cap[i] >= bytes) return b->p[i];
    free(b->p[i]);
    b->cap[i] = 0;
    /* +1: a zero-byte request still gets a pointer (NULL means out of memory) */
    if (!(b->p[i] = malloc(bytes + 1))) return NULL;
    b->cap[i] = bytes;
    return b->p[i];
}

void kept_buffers_put(KeptBuffers *k, Buffers *b) {
    /* two calls at once: the one that ends last keeps its buffers */
    if (k) b = atomic_exchange(&k->slot, b);
    buffers_free(b);
}
