/* c_holes.h — the per-attention C code of a kernel plan, for the holes of
 * the kernel templates (backends/c/c_holes.c): the one element-code
 * generator behind the C emitter (backends/c/c_emit.c) and the CUDA emitter
 * (backends/cuda/cuda_emit.c). */
#ifndef ATTNC_C_HOLES_H
#define ATTNC_C_HOLES_H
#include "attnc.h"
#include "plan.h"
#include "schedule_grad.h"

/* The code of each hole of templates/tile.c (and templates/cuda_tile.cu).
 * Each hole's code reads the names templates/tile.c documents (c, b, h, hk,
 * q, kv, i, j, srow, lrow, check_faults, lowrank_cols, sc.row_slots,
 * sc.col_slots, sc.qlr, sc.klr, sc.lse_off), declares elem_* results as
 * tile.c says, and calls the helpers of templates/support.h by name. */
typedef struct CEmitHoles {
    StrBuf scratch, head, slots, row, col, elem_partial, elem_full;
    /* DIAG: the schedule's diag block, run once per entry de of the tables
     * with q, kv and hr bound (schedule.h, SB_DIAG; templates/tile.c);
     * empty without diagonal tables */
    StrBuf diag;
    int nrow_slots, ncol_slots; /* the slots the SLOTS hole declares */
} CEmitHoles;

/* Fill h (overwritten) with the hole code of p.  Returns ATTNC_OK, or
 * ATTNC_ERR_INTERNAL (the plan holds something the emitter cannot express)
 * or ATTNC_ERR_NOMEM with err filled.  Free with cemit_holes_free, whatever
 * the result. */
attnc_status cemit_holes(const Plan *p, CEmitHoles *h, attnc_error *err);

/* The template's macros that state the schedule's rules and sizes (tile
 * sizes, normalisation, LSE offset, slots, low-rank columns and their limit). */
void cemit_put_schedule_macros(const Schedule *s, StrBuf *out);

/* Free what cemit_holes filled in. */
void cemit_holes_free(CEmitHoles *h);

/* Version 2's values around the kernel (spec 9.3, 9.4), as C functions
 * appended to out, each `static int NAME(const AttnCall *c, int64_t b,
 * int64_t h, int64_t hk, int64_t q, int64_t kv, T *out...)` returning 1 on a
 * runtime error of the spec: attnc_v2_rope (int64_t dims, float base, int
 * interleaved) and attnc_v2_qpos / attnc_v2_kvpos (int64_t) when p's
 * attention has a rotary, attnc_v2_sink (float) when it has a sink. */
attnc_status cemit_v2_functions(const Plan *p, StrBuf *out, attnc_error *err);

/* The same functions declared `QUALIFIER int NAME(...)` instead of `static
 * int NAME(...)`: the CUDA text's are host and device functions
 * (qualifier "ATTNC_DEV"; backends/cuda/cuda_emit_v2.c). */
attnc_status cemit_v2_functions_as(const Plan *p, const char *qualifier, StrBuf *out, attnc_error *err);

/* The code of each hole of templates/tile_bwd.c (GRAD_ITEM, GRAD_SLOTS,
 * GRAD_COL, GRAD_ROW, GRAD_PRE, GRAD_FAULT, GRAD_KEEP, GRAD_VALUE,
 * GRAD_TERMS), printed from the plan's backward schedule (schedule_grad.h):
 * the names tile_bwd.c documents (c, b, hk, hr, q, kv, i, j, dot, mode,
 * check_faults, g, gpre, dtensor, sc.row_slots, sc.col_slots). */
typedef struct CEmitGradHoles {
    StrBuf item, slots, col, row, pre, fault, keep, value, terms;
    int nrow_slots, ncol_slots;
} CEmitGradHoles;

/* Fill h (overwritten) from p->grad_sched: ATTNC_OK, or ATTNC_ERR_INTERNAL
 * (no backward schedule, or one the emitter cannot express) or
 * ATTNC_ERR_NOMEM.  Free with cemit_grad_holes_free, whatever the result. */
attnc_status cemit_grad_holes(const Plan *p, CEmitGradHoles *h, attnc_error *err);
void cemit_grad_holes_free(CEmitGradHoles *h);

/* Version 2's backward around the kernel: when p's attention has a sink
 * that reads float tensors and a backward schedule, appends `static void attnc_v2_dsink(const AttnCall
 * *c, int64_t b, int64_t h, int64_t hk, int64_t q, int64_t kv, float g,
 * float *const *dtensor)`, which adds g * d sink / d T[i] for row (b, h, q)
 * into dtensor[t][i] of every float tensor T the sink reads (dtensor[t]
 * NULL: not wanted); the sink must not raise a runtime error there. */
attnc_status cemit_v2_grad_functions(const Plan *p, StrBuf *out, attnc_error *err);

#endif
