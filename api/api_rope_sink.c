/* api_rope_sink.c — running a compiled kernel of an attention with `rotary`
 * or `sink` (spec 9.3, 9.4): the kernel itself knows neither; Q and K are
 * rotated before it and the sinks merged into its O and LSE after it
 * (runtime/rope_sink.c says how and why).
 * Requires: a bound call of a kernel with a plan (not the interpreter's).
 * Produces: api_run_rope_sink (api_kernel.h). */
#include <stdlib.h>
#include <string.h>

#include "api_kernel.h"
#include "interp.h"
#include "rope_sink.h"
#include "threads.h"

BoundLayout api_contiguous_f32(int64_t heads, int64_t rows, int64_t n) {
    BoundLayout l = {ATTNC_ELEM_F32, {heads * rows * n, rows * n, n, 1}};
    return l;
}

attnc_status api_run_rope_sink(const attnc_kernel *k, BoundCall *bc, const attnc_args *args, int threads,
                               const LaunchPages *pages, ApiRunFn run, attnc_error *err) {
    const Attention *at = bc->attn;
    const attnc_sizes *sz = &bc->sz;
    /* never met through the API: attnc_kernel_page_tile is 0 for a
     * rotary kernel, so api_batch.c gathers a paged sequence's K and V
     * first; the kernel reads the rotated copy, not the pages */
    if (pages && at->rotary)
        return set_error(err, ATTNC_ERR_INTERNAL, "attention '%s' has a rotary: its K must be gathered from the "
                         "pages before the call", at->name);
    /* the kernel's own view: the attention without them, so that the
     * launcher's rerun on the interpreter (to name a fault) does not apply
     * them a second time */
    Attention plain = *at;
    plain.rotary = NULL;
    plain.sink = NULL;
    BoundLayout saved[BT_COUNT];
    memcpy(saved, bc->layout, sizeof saved);
    attnc_args a = *args;
    const float *qr = NULL, *kr = NULL;
    float *o32 = NULL, *lse32 = NULL;
    attnc_status st = ATTNC_OK;
    /* the kernel's scratch is no part of what the caller sees of it (which
     * stays const): taken and given back atomically, safe across threads */
    RopeScratch *_Atomic *slot = &((attnc_kernel *)k)->rope, *scratch = NULL;
    if (at->rotary) {
        int fault = 0;
        scratch = rope_scratch_take(slot);
        st = !scratch ? set_error(err, ATTNC_ERR_NOMEM, "out of memory rotating Q and K")
                      : rope_rotate(bc, args->q, args->k, threads > 0 ? threads : pool_cores(), scratch, &qr, &kr,
                                    &fault, err);
        if (!st && fault) { /* a position's runtime error: the interpreter knows whether a kept element needs it */
            rope_scratch_keep(slot, scratch);
            return interp_run(bc, args->q, args->k, args->v, args->o, args->lse, err);
        }
        a.q = qr, a.k = kr;
        bc->layout[BT_Q] = api_contiguous_f32(sz->H, sz->Lq, sz->D);
        bc->layout[BT_K] = api_contiguous_f32(sz->Hkv, sz->Lk, sz->D);
    }
    if (!st && at->sink) {
        size_t rows = (size_t)(sz->B * sz->H * sz->Lq);
        o32 = malloc(sizeof(float) * rows * (size_t)sz->Dv + 1);
        lse32 = malloc(sizeof(float) * rows + 1);
        if (!o32 || !lse32) st = set_error(err, ATTNC_ERR_NOMEM, "out of memory");
        a.o = o32, a.lse = lse32;
        bc->layout[BT_O] = api_contiguous_f32(sz->H, sz->Lq, sz->Dv);
        bc->layout[BT_LSE] = api_contiguous_f32(sz->H, sz->Lq, 1);
    }
    if (!st) {
        bc->attn = &plain;
        st = run(k, bc, &a, threads, pages, err);
        bc->attn = at;
    }
    memcpy(bc->layout, saved, sizeof saved);
    if (!st && at->sink) st = sink_merge(bc, &saved[BT_O], &saved[BT_LSE], o32, lse32, args->o, args->lse, err);
    if (scratch) rope_scratch_keep(slot, scratch);
    free(o32);
    free(lse32);
    return st;
}
