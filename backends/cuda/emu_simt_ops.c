/* emu_simt_ops.c — the warp operations of the SIMT emulation (emu_simt.h):
 * __syncwarp, shfl.sync, vote.sync.ballot, mma.sync.m16n8k16 (f16, bf16) and
 * m16n8k8 (tf32), ldmatrix, cp.async with its commit and wait groups, and
 * the checked 32-bit shared load.  Each collective records the
 * calling lane's operands (simt_arrive), and the last lane to arrive computes
 * the result of every lane from all of them, with the PTX ISA's semantics.
 *
 * Sources (PTX ISA, NVIDIA, "Parallel Thread Execution ISA", versions 7.0 and
 * later; section names, since the numbers move between versions):
 *  - shfl.sync: "Data Movement and Conversion Instructions: shfl.sync" (the
 *    pseudo-code of lane, segmask, maxLane and the four modes);
 *  - mma: "Warp Level Matrix Multiply-Accumulate Instructions" → "Matrix
 *    Fragments for mma.m16n8k16 with floating point type" (the A, B and C/D
 *    fragment tables: groupID = laneid >> 2, threadID_in_group = laneid % 4),
 *    and "Matrix Fragments for mma.m16n8k8" with .tf32 (the same tables as
 *    CUTLASS's cute/atom/mma_traits_sm80.hpp SM80_16x8x8_F32TF32TF32F32_TN:
 *    A ((4,8),(2,2)):((16,1),(8,64)), B ((4,8),2):((8,1),32) over m + 16 k, n + 8 k);
 *  - ldmatrix: "Warp-level matrix load instruction: ldmatrix" (lanes 8q .. 8q+7
 *    give the rows of matrix q; lane 4r + c receives row r's elements 2c, 2c+1);
 *  - cp.async, cp.async.commit_group, cp.async.wait_group: "Data Movement and
 *    Conversion Instructions: cp.async" (a thread's groups complete in order;
 *    wait_group N waits until at most N of its most recent groups are pending). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "emu_simt_int.h"
#include "half.h"

/* ---- __syncwarp and vote ---- */

static void complete_nothing(SimtBlock *b, int32_t warp, uint32_t mask) { (void)b, (void)warp, (void)mask; }

void attnc_simt_syncwarp(uint32_t mask, int32_t line) {
    SimtThread *t = simt_self();
    t->op = (LaneOp){.kind = OP_SYNCWARP, .mask = mask, .line = line};
    simt_arrive(t, complete_nothing);
}

static void complete_ballot(SimtBlock *b, int32_t warp, uint32_t mask) {
    uint32_t bits = 0;
    for (uint32_t m = mask; m; m &= m - 1)
        bits |= (uint32_t)(b->t[warp * 32 + __builtin_ctz(m)].op.u[0] != 0) << __builtin_ctz(m);
    for (uint32_t m = mask; m; m &= m - 1) *(uint32_t *)b->t[warp * 32 + __builtin_ctz(m)].op.out = bits;
}

uint32_t attnc_simt_ballot(uint32_t mask, int32_t pred, int32_t line) {
    SimtThread *t = simt_self();
    uint32_t r;
    t->op = (LaneOp){.kind = OP_BALLOT, .mask = mask, .line = line, .u = {(uint32_t)pred}, .out = &r};
    simt_arrive(t, complete_ballot);
    return r;
}

/* ---- shfl.sync: d = value of lane j, with PTX's j and clamp (sub = mode | c << 2) ---- */

static void complete_shfl(SimtBlock *b, int32_t warp, uint32_t mask) {
    SimtThread *w = b->t + warp * 32;
    uint32_t got[32];
    for (uint32_t m = mask; m; m &= m - 1) {
        const int32_t lane = __builtin_ctz(m), mode = w[lane].op.sub & 3, c = w[lane].op.sub >> 2;
        const int32_t bval = (int32_t)(w[lane].op.u[1] & 31), cval = c & 31, segmask = (c >> 8) & 31;
        const int32_t maxl = (lane & segmask) | (cval & ~segmask), minl = lane & segmask;
        int32_t j = lane, ok = 0;
        switch (mode) {
        case SIMT_SHFL_UP: j = lane - bval, ok = j >= maxl; break;
        case SIMT_SHFL_DOWN: j = lane + bval, ok = j <= maxl; break;
        case SIMT_SHFL_BFLY: j = lane ^ bval, ok = j <= maxl; break;
        default: j = minl | (bval & ~segmask), ok = j <= maxl; break;
        }
        if (!ok) j = lane; /* out of the segment: the lane's own value */
        if (!(mask >> j & 1))
            simt_fault(simt_self(),
                       "shfl.sync (line %d) with mask 0x%08x: lane %d reads lane %d, which is not in the "
                       "mask (the value would be undefined)",
                       w[lane].op.line, mask, lane, j);
        got[lane] = w[j].op.u[0];
    }
    for (uint32_t m = mask; m; m &= m - 1) *(uint32_t *)w[__builtin_ctz(m)].op.out = got[__builtin_ctz(m)];
}

/* mode: SIMT_SHFL_*; b: the lane, delta or xor mask; c: PTX's clamp operand
 * ((32 - width) << 8, | 31 except for up), as CUDA's __shfl_*_sync pass it. */
uint32_t attnc_simt_shfl(uint32_t mask, uint32_t value, int32_t b, int32_t c, int32_t mode, int32_t line) {
    SimtThread *t = simt_self();
    uint32_t r;
    if (mode < 0 || mode > 3 || c < 0 || c > 0x1fff)
        simt_fault(t, "shfl.sync (line %d) with mode %d clamp 0x%x", line, mode, c);
    t->op = (LaneOp){
        .kind = OP_SHFL, .sub = mode | c << 2, .mask = mask, .line = line, .u = {value, (uint32_t)b}, .out = &r};
    simt_arrive(t, complete_shfl);
    return r;
}

/* ---- mma.sync.aligned.m16n8k16.row.col.f32.{f16,bf16}.{f16,bf16}.f32 ----
 * The fragments, from the PTX ISA's tables (g = lane >> 2, q = lane % 4; the
 * element with the lower index sits in the lower 16 bits of a register):
 *   A (16 x 16, row major), a0..a7 in 4 registers:
 *     row = g for a0, a1, a4, a5; g + 8 for a2, a3, a6, a7
 *     col = 2q + (i & 1) for a0..a3; 2q + (i & 1) + 8 for a4..a7
 *   B (16 x 8, "col": K by N), b0..b3 in 2 registers:
 *     row (k) = 2q + (i & 1) for b0, b1; 2q + (i & 1) + 8 for b2, b3;  col (n) = g
 *   C, D (16 x 8 float32), c0..c3:
 *     row = g for c0, c1; g + 8 for c2, c3;  col = 2q + (i & 1)
 * Arithmetic: the 16-bit inputs widen exactly; each product is exact in
 * float32 (11 x 11 or 8 x 8 significant bits); D[r][n] = C[r][n] + A[r][0]B[0][n]
 * + ... + A[r][15]B[15][n] summed in float32 in that order, each sum rounded
 * to nearest even.  Tensor cores sum in another order, with other internal
 * rounding, so a GPU's D may differ in the last bits (docs/cuda-emu.md). */

/* The 16-bit elements of one operand, widened exactly, the type's test out of the loop. */
static void widen_all(int32_t type, const uint16_t *h, float *f, int32_t n) {
    if (type == SIMT_MMA_F16)
        for (int32_t i = 0; i < n; i++) f[i] = attnc_f16_to_f32(h[i]);
    else
        for (int32_t i = 0; i < n; i++) f[i] = attnc_bf16_to_f32(h[i]);
}

static void complete_mma(SimtBlock *b, int32_t warp, uint32_t mask) {
    (void)mask; /* all 32 lanes */
    b->stats.mmas++;
    const SimtThread *w = b->t + warp * 32;
    uint16_t a16[16][16], b16[16][8];
    float A[16][16], B[16][8], C[16][8];
    for (int32_t lane = 0; lane < 32; lane++) {
        const int32_t g = lane >> 2, q = lane & 3;
        const LaneOp *op = &w[lane].op;
        for (int32_t i = 0; i < 8; i++) /* element i: bits 16 (i & 1) of register i / 2 */
            a16[g + 8 * ((i >> 1) & 1)][2 * q + (i & 1) + 8 * (i >= 4)] = (uint16_t)(op->u[i >> 1] >> (16 * (i & 1)));
        for (int32_t i = 0; i < 4; i++)
            b16[2 * q + (i & 1) + 8 * (i >= 2)][g] = (uint16_t)(op->u[4 + (i >> 1)] >> (16 * (i & 1)));
        for (int32_t i = 0; i < 4; i++) C[g + 8 * (i >= 2)][2 * q + (i & 1)] = op->f[i];
    }
    widen_all(w[0].op.sub, &a16[0][0], &A[0][0], 256);
    widen_all(w[0].op.sub, &b16[0][0], &B[0][0], 128);
    /* k outermost per row, the 8 columns side by side: each D[r][n] still sums k = 0 .. 15 in order */
    for (int32_t r = 0; r < 16; r++) {
        float acc[8];
        memcpy(acc, C[r], sizeof acc);
        for (int32_t k = 0; k < 16; k++)
            for (int32_t n = 0; n < 8; n++) acc[n] += A[r][k] * B[k][n]; /* exact product: fused or not, the same */
        memcpy(C[r], acc, sizeof acc);
    }
    for (int32_t lane = 0; lane < 32; lane++) {
        const int32_t g = lane >> 2, q = lane & 3;
        float *d = w[lane].op.out;
        for (int32_t i = 0; i < 4; i++) d[i] = C[g + 8 * (i >= 2)][2 * q + (i & 1)];
    }
}

/* The calling lane's arrival at an mma of type `type` (SIMT_MMA_*, the
 * collective's variant) with fragments a[4], b[2], c[4]; d[4] = its D (d may be c). */
static void mma_arrive(SimtThread *t, int32_t type, SimtComplete complete, float *d, const uint32_t *a,
                       const uint32_t *b, const float *c, int32_t line) {
    float out[4];
    t->op = (LaneOp){.kind = OP_MMA, .sub = type, .mask = 0xffffffffu, .line = line, .out = out};
    memcpy(t->op.u, a, 4 * sizeof *a);
    memcpy(t->op.u + 4, b, 2 * sizeof *b);
    memcpy(t->op.f, c, 4 * sizeof *c);
    simt_arrive(t, complete);
    memcpy(d, out, sizeof out);
}

/* d[4] = A b + c for the calling lane's fragments a[4], b[2], c[4]; d may be c. */
void attnc_simt_mma16816(int32_t type, float *d, const uint32_t *a, const uint32_t *b, const float *c, int32_t line) {
    SimtThread *t = simt_self();
    if (type != SIMT_MMA_F16 && type != SIMT_MMA_BF16)
        simt_fault(t, "mma.sync (line %d) of unknown type %d", line, type);
    mma_arrive(t, type, complete_mma, d, a, b, c, line);
}

/* ---- mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 ----
 * The fragments (g = lane >> 2, q = lane % 4; one 32-bit element a register):
 *   A (16 x 8, row major), a0..a3:  row g for a0, a2; g + 8 for a1, a3;  col q for a0, a1; q + 4 for a2, a3
 *   B (8 x 8, "col": K by N), b0, b1:  row (k) q for b0, q + 4 for b1;  col (n) g
 *   C, D (16 x 8 float32): as m16n8k16
 * Operands: tf32 values, float32 bit patterns whose low 13 bits are zero (as
 * cvt.rna.tf32.f32 leaves them).  The PTX ISA does not say what a tensor core
 * does with other bits (truncate, round, use them), so an operand with any of
 * them set is a fault: the kernel forgot a conversion.  Arithmetic as
 * m16n8k16's: each product exact (11 x 11 significant bits; fmaf keeps it
 * exact even where it would be subnormal), D[r][n] = C[r][n] + A[r][0]B[0][n]
 * + ... + A[r][7]B[7][n] summed in float32 in that order, each sum rounded to
 * nearest even. */

static void complete_mma_tf32(SimtBlock *b, int32_t warp, uint32_t mask) {
    (void)mask; /* all 32 lanes */
    b->stats.mmas++;
    const SimtThread *w = b->t + warp * 32;
    float A[16][8], B[8][8], C[16][8];
    for (int32_t lane = 0; lane < 32; lane++) {
        const int32_t g = lane >> 2, q = lane & 3;
        const LaneOp *op = &w[lane].op;
        for (int32_t i = 0; i < 6; i++)
            if (op->u[i] & 0x1fffu)
                simt_fault(simt_self(),
                           "mma.sync.m16n8k8.tf32 (line %d): lane %d's %c register %d is 0x%08x, whose low 13 bits "
                           "are not zero: not a tf32 value (a missing cvt.rna.tf32.f32; what a GPU does with those "
                           "bits is unspecified)",
                           op->line, lane, i < 4 ? 'a' : 'b', i < 4 ? i : i - 4, op->u[i]);
        for (int32_t i = 0; i < 4; i++) /* a_i: row g + 8 (i & 1), col q + 4 (i >> 1) */
            A[g + 8 * (i & 1)][q + 4 * (i >> 1)] = attnc_f32_from_bits(op->u[i]);
        for (int32_t i = 0; i < 2; i++) B[q + 4 * i][g] = attnc_f32_from_bits(op->u[4 + i]);
        for (int32_t i = 0; i < 4; i++) C[g + 8 * (i >= 2)][2 * q + (i & 1)] = op->f[i];
    }
    for (int32_t r = 0; r < 16; r++)
        for (int32_t k = 0; k < 8; k++)
            for (int32_t n = 0; n < 8; n++) C[r][n] = fmaf(A[r][k], B[k][n], C[r][n]);
    for (int32_t lane = 0; lane < 32; lane++) {
        const int32_t g = lane >> 2, q = lane & 3;
        float *d = w[lane].op.out;
        for (int32_t i = 0; i < 4; i++) d[i] = C[g + 8 * (i >= 2)][2 * q + (i & 1)];
    }
}

/* d[4] = A b + c for the calling lane's tf32 fragments a[4], b[2] and c[4]; d may be c. */
void attnc_simt_mma1688_tf32(float *d, const uint32_t *a, const uint32_t *b, const float *c, int32_t line) {
    mma_arrive(simt_self(), SIMT_MMA_TF32, complete_mma_tf32, d, a, b, c, line);
}

/* ---- ld.shared.b32: a thread's own load, checked as ldmatrix checks its rows ---- */

uint32_t attnc_simt_lds32(const void *p, int32_t line) {
    SimtThread *t = simt_self();
    SimtBlock *b = t->blk;
    const char *at = p;
    uint32_t v;
    if (!simt_in_smem(b, at, 4)) simt_fault(t, "ld.shared.b32 (line %d): %p is not in shared memory", line, p);
    if (((uintptr_t)at & 3) != 0) simt_fault(t, "ld.shared.b32 (line %d): %p is not 4-byte aligned", line, p);
    if (b->pending[(at - b->smem) / 16])
        simt_fault(t,
                   "ld.shared.b32 (line %d): %p holds bytes of a cp.async not yet waited for (a missing "
                   "cp.async.wait_group, or a buffer refilled before every thread left it: a missing __syncthreads)",
                   line, p);
    memcpy(&v, at, 4);
    return v;
}

/* ---- ldmatrix.sync.aligned.m8n8.{x1,x2,x4}{,.trans}.shared.b16 (sub = num | trans << 3) ---- */

static void complete_ldmatrix(SimtBlock *b, int32_t warp, uint32_t mask) {
    (void)mask;
    const SimtThread *w = b->t + warp * 32;
    const int32_t num = w[0].op.sub & 7, trans = w[0].op.sub >> 3;
    uint16_t M[4][8][8];
    for (int32_t src = 0; src < 8 * num; src++) {
        const char *row = w[src].op.addr;
        const char *why = !simt_in_smem(b, row, 16)    ? "is not in shared memory"
                          : ((uintptr_t)row & 15) != 0 ? "is not 16-byte aligned"
                          : b->pending[(row - b->smem) / 16]
                              ? "holds bytes of a cp.async not yet waited for (a missing cp.async.wait_group, or a "
                                "buffer refilled before every thread left it: a missing __syncthreads)"
                              : NULL;
        if (why)
            simt_fault(simt_self(), "ldmatrix (line %d): the row address %p of lane %d (matrix %d row %d) %s",
                       w[src].op.line, (const void *)row, src, src / 8, src % 8, why);
        memcpy(M[src / 8][src % 8], row, 16);
    }
    for (int32_t lane = 0; lane < 32; lane++) {
        const int32_t r = lane >> 2, c = 2 * (lane & 3);
        uint32_t *out = w[lane].op.out;
        for (int32_t m = 0; m < num; m++)
            out[m] = trans ? (uint32_t)M[m][c][r] | (uint32_t)M[m][c + 1][r] << 16
                           : (uint32_t)M[m][r][c] | (uint32_t)M[m][r][c + 1] << 16;
    }
}

/* r[0 .. num-1]: the lane's registers of `num` 8x8 matrices of 16-bit
 * elements; row: the shared address of row (lane % 8) of matrix lane / 8,
 * for lanes below 8 * num (the other lanes' addresses are not read). */
void attnc_simt_ldmatrix(int32_t num, int32_t trans, uint32_t *r, const void *row, int32_t line) {
    SimtThread *t = simt_self();
    if (num != 1 && num != 2 && num != 4) simt_fault(t, "ldmatrix (line %d) of %d matrices (1, 2 or 4)", line, num);
    uint32_t out[4];
    t->op = (LaneOp){
        .kind = OP_LDMATRIX, .sub = num | (trans ? 8 : 0), .mask = 0xffffffffu, .line = line, .addr = row, .out = out};
    simt_arrive(t, complete_ldmatrix);
    memcpy(r, out, (size_t)num * sizeof *out);
}

/* ---- cp.async.{ca,cg}.shared.global [dst], [src], cp_size, src_size ----
 * The copy is deferred to the wait_group that covers it; until then its
 * destination holds the poison (0xff bytes: NaN as f16, bf16 or f32) and is
 * marked pending, which ldmatrix refuses to read. */

static void mark(SimtBlock *b, const CpCopy *c, int delta) {
    for (int64_t g = (c->dst - b->smem) / 16; g <= (c->dst - b->smem + c->size - 1) / 16; g++)
        b->pending[g] = (uint8_t)(b->pending[g] + delta);
}

void attnc_simt_cp_async(void *dst, const void *src, int32_t cp_size, int32_t src_size, int32_t line) {
    SimtThread *t = simt_self();
    SimtBlock *b = t->blk;
    if (cp_size != 4 && cp_size != 8 && cp_size != 16)
        simt_fault(t, "cp.async (line %d) of %d bytes (4, 8 or 16)", line, cp_size);
    if (src_size < 0 || src_size > cp_size)
        simt_fault(t, "cp.async (line %d) with src-size %d for a %d-byte copy", line, src_size, cp_size);
    if (!simt_in_smem(b, dst, cp_size))
        simt_fault(t, "cp.async (line %d): destination %p is not in the block's shared memory", line, dst);
    if (((uintptr_t)dst % (uintptr_t)cp_size) != 0)
        simt_fault(t, "cp.async (line %d): destination %p is not %d-byte aligned", line, dst, cp_size);
    if (src_size > 0 && (!src || ((uintptr_t)src % (uintptr_t)cp_size) != 0))
        simt_fault(t, "cp.async (line %d): source %p is not %d-byte aligned", line, src, cp_size);
    if (t->ncp == t->cpcap) {
        int32_t cap = t->cpcap ? 2 * t->cpcap : 64;
        CpCopy *c = realloc(t->cp, (size_t)cap * sizeof *c);
        if (!c) simt_fault(t, "out of memory");
        t->cp = c, t->cpcap = cap;
    }
    CpCopy *c = &t->cp[t->ncp++];
    *c = (CpCopy){dst, src, cp_size, src_size, t->committed};
    for (int32_t g = (int32_t)((c->dst - b->smem) / 16); g <= (c->dst - b->smem + c->size - 1) / 16; g++)
        if (b->pending[g] == 255) simt_fault(t, "cp.async (line %d): 255 copies to the same bytes in flight", line);
    memset(dst, 0xff, (size_t)cp_size);
    mark(b, c, 1);
}

void attnc_simt_cp_async_commit(int32_t line) {
    (void)line;
    simt_self()->committed++;
}

/* cp.async.wait_group n: complete every copy of the groups but the n most
 * recently committed (copies not yet committed stay in flight). */
void attnc_simt_cp_async_wait(int32_t n, int32_t line) {
    SimtThread *t = simt_self();
    if (n < 0) simt_fault(t, "cp.async.wait_group (line %d) %d", line, n);
    int32_t kept = 0;
    for (int32_t i = 0; i < t->ncp; i++) {
        CpCopy *c = &t->cp[i];
        if (c->group + (uint64_t)n < t->committed) {
            mark(t->blk, c, -1);
            if (c->src_size) memcpy(c->dst, c->src, (size_t)c->src_size);
            memset(c->dst + c->src_size, 0, (size_t)(c->size - c->src_size)); /* src-size < cp-size: zero fill */
        } else {
            t->cp[kept++] = *c;
        }
    }
    t->ncp = kept;
}

void simt_cp_drop(SimtThread *t) {
    for (int32_t i = 0; i < t->ncp; i++) mark(t->blk, &t->cp[i], -1);
    t->ncp = 0;
}
