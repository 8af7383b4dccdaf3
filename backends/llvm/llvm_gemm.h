/* llvm_gemm.h — the register-blocked micro-kernels of the LLVM kernel
 * (backends/llvm/llvm_gemm.c).  Internal to backends/llvm/llvm_*.c. */
#ifndef ATTNC_LLVM_GEMM_H
#define ATTNC_LLVM_GEMM_H
#include "llvm_build.h"

/* The largest register block: LLVM_MAX_R rows of A by LLVM_MAX_CQ vectors. */
enum { LLVM_MAX_R = 8, LLVM_MAX_CQ = 4 };

/* A region to pull into L2 while a micro-kernel runs, one 64-byte line per
 * iteration of its inner loop.  Work items arrive heaviest first, which
 * interleaves heads, so K and V usually come from memory; prefetches spread
 * through the FMAs hide that, where a burst of them would stall on the
 * line-fill buffers. */
typedef struct Prefetch {
    LLVMValueRef base;  /* i8* */
    LLVMValueRef bytes; /* dense (stride NULL): the region's bytes, line after line */
    /* rows apart (stride not NULL): line l is line l' & mask of row
     * l' >> shift, rows `stride` bytes apart, l' = min(l, last) (last >= 0:
     * the last row's last line): the lines a strided or half-precision
     * tensor's rows occupy, and up to mask - (lines of a row - 1) lines past
     * each row (prefetches never fault; one clamp is 5 instructions fewer
     * per prefetch than clamping the row and the line apart) */
    LLVMValueRef stride, shift, mask, last;
    /* NULL, or (rows apart) an i64 pointer: row r of the region lies map[r]
     * rows from base (AttnCall.kv_rows) */
    LLVMValueRef map;
} Prefetch;

/* The region of `nrows` rows of `row` elements of `esz` bytes each, the
 * first at byte `base`, `stride` elements apart (all i64; base an i8
 * pointer); dense: as one block of nrows * row elements (the caller knows
 * stride == row), else as rows apart. */
Prefetch lower_prefetch_rows(Lower *L, LLVMValueRef base, LLVMValueRef nrows, LLVMValueRef row, LLVMValueRef stride,
                             LLVMValueRef esz, int dense);

/* Prefetch (into L2) line `line` of the region, its last line once past its end. */
void lower_prefetch_line(Lower *L, const Prefetch *pf, LLVMValueRef line);

/* Out[row][0..QB) = (or += when accumulate) sum over k < depth of
 * A[row*ars + k*aks] * Bm[k][0..QB), for rows 0..nrows; pf (may be NULL): a
 * region prefetched one line per inner iteration. */
void lower_gemm(Lower *L, LLVMValueRef A, LLVMValueRef ars, LLVMValueRef aks, LLVMValueRef nrows, LLVMValueRef Bm,
                LLVMValueRef depth, LLVMValueRef Out, int accumulate, const Prefetch *pf);

/* lower_gemm over L->gemm_cols vectors with Bm's rows ldb floats apart and
 * Out's ldo apart (i64; lower_gemm: both QB). */
void lower_gemm_ld(Lower *L, LLVMValueRef A, LLVMValueRef ars, LLVMValueRef aks, LLVMValueRef nrows, LLVMValueRef Bm,
                   LLVMValueRef ldb, LLVMValueRef depth, LLVMValueRef Out, LLVMValueRef ldo, int accumulate,
                   const Prefetch *pf);

/* lower_gemm over a row block's vectors: in the wide version (L->variant),
 * all C of them (L->C) with CQ-wide register blocks; in the narrow one,
 * L->nvec vectors one at a time with 8 rows per register block; pf NULL:
 * no prefetching, else pf[1] (the region as one block) when dense (i1)
 * holds, pf[0] (rows apart) when not (the narrow version: pf[0] always). */
void lower_gemm_versions(Lower *L, LLVMValueRef dense, const Prefetch *pf, LLVMValueRef A, LLVMValueRef ars,
                         LLVMValueRef aks, LLVMValueRef nrows, LLVMValueRef Bm, LLVMValueRef depth, LLVMValueRef Out,
                         int accumulate);

/* v[c][r] = v[r][c] for W vectors of W float lanes (v[0..W)), in registers:
 * log2(W) rounds of W two-vector shuffles. */
void lower_transpose_regs(Lower *L, LLVMValueRef *v);

/* dst[c*ds + r] = src[r*ss + c] for r < rows, c < cols (i64, multiples of
 * W; strides in floats): W x W blocks, each W vector loads, log2(W) rounds
 * of W two-vector shuffles and W vector stores. */
void lower_transpose(Lower *L, LLVMValueRef src, LLVMValueRef ss, LLVMValueRef rows, LLVMValueRef cols,
                     LLVMValueRef dst, LLVMValueRef ds);

/* A kv tile's rows of K or V as the call holds them: elem (i32, ELEM_*) and
 * f32 (i1: elem is f32), src (i8 pointer to the first row), stride (between
 * rows, in elements), n (D or Dv), nk (the tile's rows), scratch (floats:
 * nk * n of them for converted rows); map: NULL, or (float32 only) an i64
 * pointer, row j then at src + map[j] elements (AttnCall.kv_rows[k0 + j] *
 * stride, made once per tile) and read in place through it. */
typedef struct KvRows {
    LLVMValueRef elem, f32, src, stride, n, nk, scratch, map;
} KvRows;

/* [*r0, *r1) (keys of a tile of nk, i64) widened to a multiple of m keys
 * inside [0, nk), moving *r0 back where the end would pass nk (an empty
 * range stays empty): QK's keys in whole register blocks, where the keys
 * after the last block ran one at a time at a fraction of the FMA rate.
 * The element pass masks every key outside a vector's band and the tile's
 * range, so the extra scores are never read. */
void lower_pad_keys(Lower *L, int m, LLVMValueRef nk, LLVMValueRef *r0, LLVMValueRef *r1);

/* lower_kv_product of a wide row block's PARTIAL tile over only the keys
 * its rows' bands reach: row vector c (c < C) over the keys [va[c], vz[c])
 * of the tile (i64, relative to its first key; empty when vz <= va), the
 * keys both vectors of a pair reach in 2 x 8 register blocks, the others
 * one vector at a time, without prefetching.  QK (which 0) leaves S's
 * other keys of a vector as they were (the element pass masks them); PV
 * (which 1) reads P only at a vector's keys. */
void lower_kv_product_banded(Lower *L, int which, const KvRows *kv, LLVMValueRef Bm, LLVMValueRef Out,
                             const LLVMValueRef *va, const LLVMValueRef *vz);

/* S = K Qt (which 0: Bm = Qt[D][QB], Out = S[BK][QB]) or OT += V^T P
 * (which 1: Bm = P[BK][QB], Out = OT[Dv][QB]) over the tile's rows kv,
 * with lower_gemm_versions' arguments (dense, pf); in the narrow version a
 * block of at most 4 rows (L->nblock) takes the quad micro-kernel, which
 * reads f16 and bf16 rows in place. */
void lower_kv_product(Lower *L, int which, LLVMValueRef dense, const Prefetch *pf, const KvRows *kv, LLVMValueRef Bm,
                      LLVMValueRef Out);

#endif
