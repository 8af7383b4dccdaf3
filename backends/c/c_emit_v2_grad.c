/* c_emit_v2_grad.c — the ahead-of-time backward of a version-2 attention
 * (spec 9.5): NAME_backward does, in generated C, what api/api_grad_v2.c
 * does around the kernel's backward (docs/gradients.md says why each step
 * is right):
 *
 *  - before the kernel's backward, the forward's preparation, printed by the
 *    same code (c_emit_v2.c, cemit_v2_prepare): Q and K rows widened and
 *    rotated, the tables of dot products of rows filled from them, so the
 *    kernel's backward sees the rows and tables the forward's kernel saw; it
 *    is fed the caller's O and LSE, those after the sink merge, which makes
 *    it exact for Q, K and V with a sink (one more softmax term of value 0);
 *  - after it (in this order, into float32 accumulators):
 *      tables: dX += dT E and dE += dT^T X (X the rows the table was filled
 *        from, rotated; dE summed in float64 and rounded once), dT the
 *        table's gradient the kernel's backward gave (a table is one of its
 *        captured float tensors) — runtime/rows_grad.c's rule;
 *      sink: each row's seed dL/dsink = P_sink (dLSE - rowsum(dO * O)),
 *        P_sink = exp(sink - LSE), through the sink's expression to the
 *        float tensors it reads (attnc_v2_dsink, printed by c_holes.c from
 *        the backward plan's sink terms) — interp_sink_backward's rule;
 *      rotary: dQ and dK rotated back, dX = R^T dX_rot (the rotation by
 *        minus the position: the forward's float32 cos, its sin negated) —
 *        rope_unrotate's rule.
 * Every output is written only when all of it succeeded.
 * Requires: a Plan of a version-2 attention with a backward schedule;
 * c_emit.c's NAME_backward around these parts (cemit_v2_prepare, then
 * cemit_v2_backward_*). */
#include "c_emit.h"
#include "rows_table.h"

void cemit_v2_backward_helpers(const Plan *p, StrBuf *out) {
    if (!p->rows || p->rows->ntables == 0) return;
    sb_printf(out,
              "/* the backward of attnc_v2_table for one table t = x e^T (x: n_rows rows, e: n rows,\n"
              " * D long): dx (NULL: not wanted) += dt e, de (float64; NULL: not wanted) += dt^T x */\n"
              "static void attnc_v2_table_grad(const float *x, int64_t n_rows, const float *e, int64_t n, int64_t D,\n"
              "                                const float *dt, float *dx, double *de) {\n"
              "    for (int64_t r = 0; r < n_rows; r++)\n"
              "        for (int64_t i = 0; i < n; i++) {\n"
              "            const float g = dt[r * n + i];\n"
              "            if (g == 0) continue; /* e.g. a masked pair: as in the reference, no term at all */\n"
              "            for (int64_t d = 0; dx && d < D; d++) dx[r * D + d] += g * e[i * D + d];\n"
              "            for (int64_t d = 0; de && d < D; d++) de[i * D + d] += (double)g * x[r * D + d];\n"
              "        }\n"
              "}\n\n");
}

/* dX += dT E and dE += dT^T X for each table (dtensor[nu + t]: its gradient). */
static void emit_tables_grad(const Plan *p, StrBuf *out) {
    const RowsRewrite *rw = p->rows;
    int nu = rw->ntensors_before;
    for (int t = 0; t < rw->ntables; t++) {
        const RowTable *rt = &rw->tables[t];
        const Decl *E = rt->tensor;
        int ei = E->index;
        const char *x = rt->is_k ? "k" : "q", *heads = rt->is_k ? "a->Hkv" : "a->H", *L = rt->is_k ? "a->Lk" : "a->Lq";
        sb_printf(out, "    if (!status) { /* %s: the rows of %s against %s */\n", rt->decl->name, rt->is_k ? "K" : "Q",
                  E->name);
        cemit_v2_table_count(E, out);
        sb_printf(out,
                  "        double *de = dtensor[%d] ? (double *)calloc((size_t)(n * a->D) + 1, sizeof(double)) : 0;\n"
                  "        if (dtensor[%d] && !de) status = 3;\n"
                  "        else attnc_v2_table_grad(%sf, a->B * %s * %s, a->tensor_%s, n, a->D, dtensor[%d], d%s, de);\n"
                  "        for (int64_t i = 0; de && i < n * a->D; i++) dtensor[%d][i] += (float)de[i];\n"
                  "        free(de);\n"
                  "    }\n",
                  ei, ei, x, heads, L, E->name, nu + t, x, ei);
    }
}

/* Each row's sink seed through the sink's expression (its runtime error: status 1). */
static void emit_sink_grad(StrBuf *out) {
    sb_printf(out,
              "    for (int64_t b = 0; b < a->B && !status; b++)\n"
              "        for (int64_t h = 0; h < a->H && !status; h++)\n"
              "            for (int64_t q = 0; q < a->Lq && !status; q++) {\n"
              "                const int64_t row = (b * a->H + h) * a->Lq + q, hk = h / (a->H / a->Hkv);\n"
              "                float s = 0.0f;\n"
              "                if ((status = attnc_v2_sink(&c, b, h, hk, q, 0, &s))) break;\n"
              "                const double lse = c.lse[b * c.lse_stride[0] + h * c.lse_stride[1] + q * c.lse_stride[2]];\n"
              "                /* P_sink = exp(sink - LSE); a sink of +inf takes the whole row */\n"
              "                const double psink = s == HUGE_VALF ? 1.0 : lse == -HUGE_VAL ? 0.0 : exp((double)s - lse);\n"
              "                /* delta[row] = rowsum(dO * O) - dLSE: the seed is P_sink (dLSE - rowsum(dO * O)) */\n"
              "                const float seed = (float)(-psink * (double)delta[row]);\n"
              "                if (seed != 0) attnc_v2_dsink(&c, b, h, hk, q, 0, seed, dtensor);\n"
              "            }\n");
}

/* The gradients of rows(Q) and rows(K) (the sums of dot(Q, K) and its kind
 * read the rows as tensors) are terms of dQ and dK: both float32 [B, heads,
 * L, D], contiguous, before the rotation is undone. */
static void emit_row_tensors_grad(const Plan *p, StrBuf *out) {
    for (int is_k = 0; is_k < 2; is_k++) {
        int i = p->rows->row_tensor[is_k];
        if (i < 0) continue;
        const char *x = is_k ? "k" : "q";
        sb_printf(out, "    for (int64_t j = 0; !status && j < n%s; j++) d%s[j] += dtensor[%d][j]; /* rows(%s) */\n", x, x,
                  i, is_k ? "K" : "Q");
    }
}

void cemit_v2_backward_after(const Plan *p, StrBuf *out) {
    const Attention *at = p->attn;
    if (p->rows && p->rows->ntables) emit_tables_grad(p, out);
    if (p->rows) emit_row_tensors_grad(p, out);
    if (at->sink && p->grad_sched->gp->nsink_terms > 0) emit_sink_grad(out); /* else it reads no float tensor */
    if (at->rotary)
        sb_printf(out, "    /* dQ and dK of the given rows: the rotation undone (R^T) */\n"
                       "    if (!status) status = attnc_v2_rotate(&c, dq, a->H, a->Lq, 1, dims, base, interleaved, 1);\n"
                       "    if (!status) status = attnc_v2_rotate(&c, dk, a->Hkv, a->Lk, 0, dims, base, interleaved, 1);\n");
}

void cemit_v2_backward_free(const Plan *p, StrBuf *out) {
    int ntables = p->rows ? p->rows->ntables : 0;
    sb_printf(out, "    for (int t = 0; t < %d; t++) free(tables[t]);\n    free(qf), free(kf);\n", ntables + 1);
}
