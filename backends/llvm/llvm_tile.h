/* llvm_tile.h — what the LLVM kernel's tile function shares between its
 * files: the scratch regions of a work item and the state of the tile loop
 * (built by llvm_lower.c), the transposed reads of Q and writes of O
 * (llvm_rowio.c) and the band of keys on PARTIAL tiles (llvm_band.c).
 * Internal to backends/llvm/llvm_*.c. */
#ifndef ATTNC_LLVM_TILE_H
#define ATTNC_LLVM_TILE_H
#include "llvm_build.h"
#include "llvm_gemm.h"
#include "llvm_rows.h"

/* Scratch regions of one work item, as pointers (tile function) or byte sizes. */
typedef struct Regions {
    LLVMValueRef qt;              /* Qt[D][QB]: Q rows of the block, transposed, times scale */
    LLVMValueRef qx;              /* Qx[Rt][QB]: low-rank q-side columns */
    LLVMValueRef kx;              /* Kx[BK][Rt]: low-rank k-side columns of the tile */
    LLVMValueRef s;               /* S[BK][QB]: scores, then log2-domain scores, then P */
    LLVMValueRef ot;              /* OT[Dv][QB]: the output accumulator, transposed; O rows [QB][Dv] (L->orow) */
    LLVMValueRef m, l, any, tmax; /* [QB] each: running max, sum, kept-anything, tile max */
    LLVMValueRef lse_off;         /* [QB]: the row's LSE offset (STEP_LSE_OFFSET) */
    LLVMValueRef rows;            /* [nrow_slots][QB] 8-byte lanes: the schedule's row slots */
    LLVMValueRef cols;            /* [ncol_slots][BK] 8-byte lanes: its col slots */
    LLVMValueRef map;             /* the row map (llvm_rows.c) */
    LLVMValueRef kc, vc;          /* Kc[BK][D], Vc[BK][Dv]: f16/bf16 K and V rows of the tile as floats */
    LLVMValueRef diag;            /* [ndiag][diag_stride(L)] floats: the diagonal tables (L->diag) */
} Regions;

/* What the tile loop shares. */
typedef struct Tile {
    Regions rg;
    LLVMValueRef qbh, kbh, vbh, obh; /* i8 pointers to Q[b, h, 0, 0], K and V [b, hk, 0, 0], O[b, h, 0, 0] */
    LLVMValueRef lse_row;            /* &LSE[b, h, 0] */
    LLVMValueRef q_elem, k_elem, v_elem, o_elem; /* i32: the version's element types (constants) */
    LLVMValueRef qs, ks, vs, os, ls;             /* elements from one row (q or kv) to the next */
    LLVMValueRef kesz, vesz;                     /* bytes per element of K and V */
    LLVMValueRef k_f32, v_f32;     /* i1: read in place (else converted into Kc, Vc per tile) */
    LLVMValueRef k_dense, v_dense; /* i1: rows back to back (prefetch the tile as one block) */
    LLVMValueRef has_lse;                     /* i1: the call passed an LSE buffer */
    LLVMValueRef scale, rt; /* the scores' scale (Q is scaled once); low-rank columns */
    RowMap rows;               /* the work item's rows: which query row of which head a lane holds */
    LLVMValueRef qb0;          /* the row block's first row */
    LLVMValueRef e0, e1;       /* the item's entries of the tile map */
    LLVMValueRef tile_kv, tile_mode, tile_keys, bk; /* the tile map (tile_keys may be NULL) */
    LLVMValueRef k0, k1;       /* the kv tile */
    LLVMValueRef ka, kz;       /* its keys that need work: the map's range on PARTIAL tiles, else k0, k1 */
    LLVMValueRef kr0, vr0;     /* where its first row lies in K and V (in its page when paged) */
    LLVMValueRef kv_page, page_rows, kps, vps; /* the call's page table and page strides (kernel ABI) */
    LLVMValueRef kv_rows;      /* the call's kv_rows (i64 pointer) in the version that maps keys, else NULL */
    LLVMValueRef koff, voff;   /* with kv_rows: [BK] i64, where the tile's keys lie in K and V (elements) */
    LLVMValueRef tile_live;    /* with sel: the call's tile_live (i16 pointer, may be NULL) */
    LLVMValueRef sel;          /* NULL, or [2 BK] i32 (live_order): the tile's keys, those that need work first; slot
                                * j of S, P, koff and voff holds key k0 + sel[j] */
    LLVMValueRef fault;        /* local i1: an element raised a runtime error */
    LLVMValueRef checks;       /* i1: the call checks faults (its check_faults) */
    Prefetch first_k, first_v; /* K and V rows of the row block's first tile (base NULL: none, prefill) */
    /* a vector of zeros that a row vector's missing rows read, and a vector their stores write
     * (llvm_rowio.c: plain loads and stores from a selected address, not masked ones) */
    LLVMValueRef spare_in, spare_out;
} Tile;

typedef struct PackQ {
    Tile *T;
    LLVMValueRef c, col; /* the row vector, and its first lane in the block */
} PackQ;

typedef struct StoreO {
    Tile *T;
    LLVMValueRef col;  /* the row vector's first lane in the block */
    LLVMValueRef inv;  /* 1 / l (softmax), or NULL */
    LLVMValueRef zero; /* lanes whose row is empty: O = 0 */
} StoreO;

/* Qt[d][col + lane] = scale * Q[b, h, q, d] for the row vector's rows (ctx:
 * a PackQ; elem: Q's element type, for lower_elem_switch). */
void lower_pack_q(Lower *L, void *ctx, int elem);

/* O[b, h, q, dv] of the row vector's rows from OT (ctx: a StoreO; elem: O's
 * element type, for lower_elem_switch). */
void lower_store_o(Lower *L, void *ctx, int elem);

/* O and LSE of the row block's valid rows from the accumulator and the
 * row statistics (after the tile loop). */
void lower_write_rows(Lower *L, Tile *T);

/* The keys [*a, *z) of the tile's range T->ka..kz that some row of the
 * current row vector may keep by the schedule's band (row slots loaded). */
void lower_band_range(Lower *L, Tile *T, LLVMValueRef *a, LLVMValueRef *z);

/* Whether the products run over the tile's range T->ka..kz (plans without
 * a band, the wide version): the usual products over a sub-range of keys. */
int lower_ranged_products(const Lower *L);

/* S at keys [from, to) of the row vector whose first lane is col: masked
 * (-inf, or weight 0), nothing evaluated. */
void lower_fill_masked(Lower *L, Tile *T, LLVMValueRef from, LLVMValueRef to, LLVMValueRef col);

/* lower_kv_product over the tile (which 0: S = K Qt, 1: OT += V^T P), in
 * the wide version only over the keys that need work: on a PARTIAL tile
 * (mode, i8) with a band, each pair of row vectors' bands within the
 * tile's range (lower_kv_product_banded); without a band, the tile's range
 * T->ka..kz (all keys of a FULL tile) through lower_kv_product itself. */
void lower_kv_product_tile(Lower *L, Tile *T, int which, LLVMValueRef mode, LLVMValueRef dense, const Prefetch *pf,
                           const KvRows *kv, LLVMValueRef Bm, LLVMValueRef Out);

#endif
