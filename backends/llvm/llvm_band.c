/* llvm_band.c — the band of keys (middle/pass_band.c, the schedule's
 * band_lo and band_hi) in the LLVM kernel's PARTIAL tiles.
 * Requires: the lowering state inside the tile function and the tile state
 * (llvm_tile.h); a schedule with a band.  Produces: per row vector, the keys
 * its rows' bands reach (the element pass runs only over those and stores
 * the others masked); per pair of row vectors, the QK and PV products over
 * only those keys (wide version).  The band bounds the mask: inside it
 * keep is still evaluated (docs/band-masks.md). */
#include <stdint.h>

#include "llvm_node.h"
#include "llvm_steps.h"
#include "llvm_tile.h"

/* The keys [*a, *z) of the tile that some row of the row vector may keep:
 * its rows' bands (the schedule's band_lo, band_hi, per row) joined, within
 * [k0, k1); empty when no lane holds a row of the item. */
void lower_band_range(Lower *L, Tile *T, LLVMValueRef *a, LLVMValueRef *z) {
    LLVMBuilderRef b = L->bd;
    LLVMValueRef lo = lower_node(L, L->s->band_lo), hi = lower_node(L, L->s->band_hi);
    if (is_vec(lo)) {
        LLVMTypeRef vt = LLVMTypeOf(lo);
        lo = LLVMBuildSelect(b, L->valid, lo, splat(L, ci64(L, INT64_MAX)), "");
        lo = intrinsic(L, "llvm.vector.reduce.smin", &vt, 1, &lo, 1);
    }
    if (is_vec(hi)) {
        LLVMTypeRef vt = LLVMTypeOf(hi);
        hi = LLVMBuildSelect(b, L->valid, hi, splat(L, ci64(L, INT64_MIN)), "");
        hi = intrinsic(L, "llvm.vector.reduce.smax", &vt, 1, &hi, 1);
    }
    /* no valid lane: lo = INT64_MAX, so [kz, kz); bands are clamped to [-1, 2^41]: hi + 1 never wraps */
    *a = smin(L, smax(L, lo, T->ka), T->kz);
    *z = smax(L, smin(L, LLVMBuildAdd(b, hi, ci64(L, 1), ""), T->kz), *a);
}

/* S at keys [from, to) of the row vector: masked (-inf, or weight 0), nothing evaluated. */
void lower_fill_masked(Lower *L, Tile *T, LLVMValueRef from, LLVMValueRef to, LLVMValueRef col) {
    LLVMBuilderRef b = L->bd;
    Loop lk;
    LLVMValueRef kv = loop_begin(L, &lk, from, to, ci64(L, 1), "elem.outside");
    LLVMValueRef at = LLVMBuildAdd(b, LLVMBuildMul(b, LLVMBuildSub(b, kv, T->k0, ""), ci64(L, L->QB), ""), col, "");
    store_fvec(L, L->s->softmax ? splat(L, cf32(L, -INFINITY)) : LLVMConstNull(L->vf32), T->rg.s, at);
    loop_end(L, &lk);
}

/* Whether PARTIAL tiles take the banded products: a band, and the wide
 * version (decode blocks take their own narrow micro-kernels). */
static int banded_products(const Lower *L) {
    return L->s->band_lo != IR_NONE && L->s->needs_mask && !(L->variant & LLVM_VARIANT_NARROW) && L->C >= 2;
}

/* Per row vector c of the block (lower_kv_product_banded), the keys
 * [va[c], vz[c]) of the tile its rows' bands reach, relative to k0
 * (lower_band_range; vz <= va when none). */
static void vector_ranges(Lower *L, Tile *T, LLVMValueRef *va, LLVMValueRef *vz) {
    LLVMBuilderRef b = L->bd;
    for (int c = 0; c < L->C; c++) {
        scope_push(L);
        rows_enter(L, &T->rows, T->qb0, ci64(L, c));
        lower_load_row_slots(L);
        LLVMValueRef ca, cz;
        lower_band_range(L, T, &ca, &cz);
        va[c] = LLVMBuildSub(b, ca, T->k0, "");
        vz[c] = LLVMBuildSub(b, cz, T->k0, "");
        rows_leave(L, &T->rows);
        scope_pop(L);
    }
}

int lower_ranged_products(const Lower *L) {
    return L->s->band_lo == IR_NONE && L->s->needs_mask && !(L->variant & LLVM_VARIANT_NARROW);
}

/* lower_kv_product, or on a PARTIAL tile with banded products only over
 * the keys its row vectors' bands reach within the tile's range, or (no
 * band) over the tile's range when the map narrowed it. */
void lower_kv_product_tile(Lower *L, Tile *T, int which, LLVMValueRef mode, LLVMValueRef dense,
                           const Prefetch *pf, const KvRows *kv, LLVMValueRef Bm, LLVMValueRef Out) {
    LLVMBuilderRef b = L->bd;
    int banded = banded_products(L), ranged = !banded && lower_ranged_products(L);
    if (ranged) { /* the usual product over the keys [ka, kz) of the tile (all of a FULL one): no other code */
        LLVMValueRef a = LLVMBuildSub(b, T->ka, T->k0, ""), z = LLVMBuildSub(b, T->kz, T->k0, "");
        /* QK in whole blocks: of R keys, or of R / 2 with a half block where R x CQ would leave 8 or more
         * accumulators for it (one row vector: a 2-D neighbourhood's block-order tiles, 12 keys of 16) */
        int half = !which && L->R >= 8;
        if (!which) lower_pad_keys(L, half ? L->R / 2 : L->R, kv->nk, &a, &z);
        KvRows sub = *kv;
        LLVMValueRef esz = which ? T->vesz : T->kesz;
        if (kv->map) sub.map = gep(L, L->i64, kv->map, a);
        else sub.src = gep(L, L->i8, kv->src, LLVMBuildMul(b, LLVMBuildMul(b, a, kv->stride, ""), esz, ""));
        sub.nk = LLVMBuildSub(b, z, a, "");
        LLVMValueRef at = gep(L, L->f32, which ? Bm : Out, LLVMBuildMul(b, a, ci64(L, L->QB), ""));
        L->half_block = half;
        lower_kv_product(L, which, dense, pf, &sub, which ? at : Bm, which ? Out : at);
        L->half_block = 0;
        return;
    }
    if (!banded) {
        lower_kv_product(L, which, dense, pf, kv, Bm, Out);
        return;
    }
    LLVMBasicBlockRef band = block(L, "band.product"), full = block(L, "product"), join = block(L, "product.done");
    LLVMBuildCondBr(b, LLVMBuildICmp(b, LLVMIntEQ, mode, LLVMConstInt(L->i8, TILE_PARTIAL, 0), ""), band, full);
    LLVMPositionBuilderAtEnd(b, band);
    LLVMValueRef va[MAX_LANES], vz[MAX_LANES];
    vector_ranges(L, T, va, vz);
    lower_kv_product_banded(L, which, kv, Bm, Out, va, vz);
    LLVMBuildBr(b, join);
    LLVMPositionBuilderAtEnd(b, full);
    lower_kv_product(L, which, dense, pf, kv, Bm, Out);
    LLVMBuildBr(b, join);
    LLVMPositionBuilderAtEnd(b, join);
}

