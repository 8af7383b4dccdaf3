/* c_emit_v2.c — the ahead-of-time entry point of a version-2 attention
 * (spec 9.2–9.4): NAME_attention does, in generated C, what libattnc does
 * around a compiled kernel (api/api_rope_sink.c, api/api_rows.c):
 *
 *  - rotary: Q and K rows widened to float32 copies and rotated once per
 *    call, each by its position (the schedule's standalone blocks SB_ROPE,
 *    SB_QPOS, SB_KVPOS, printed by cemit_v2_functions), angles in float64,
 *    cos and sin rounded to float32, the rotation in float32 — the rule of
 *    runtime/rope_sink.c;
 *  - dot products of rows: the per-call tables T[b, h, q, i...] =
 *    dot(Q[b, h, q, :], E[i..., :]) (or of K rows) the rewritten plan reads
 *    (middle/rows_table.h), float32 products;
 *  - sink: every row's sink (SB_SINK) evaluated before the kernel runs, the
 *    kernel's O and LSE written to private float32 buffers, then merged with
 *    the sink's term (attnc_merge's rule) into O and LSE.
 *
 * The entry evaluates every row's position and sink, where the spec's lazy
 * evaluation only needs those of rows it reads: a position that raises a
 * runtime error fails the call (status 1) even when no kept element needs
 * that row (libattnc asks its interpreter in that case).
 * Requires: a Plan of a version-2 attention (cemit_plan_is_v2).
 * Produces: cemit_v2_entry (c_emit.h). */
#include <string.h>

#include "c_emit.h"
#include "rows_table.h"

int cemit_plan_is_v2(const Plan *p) { return p->attn->rotary || p->attn->sink || (p->rows && rows_extra(p->rows) > 0); }

int cemit_user_tensors(const Plan *p) { return p->rows ? p->rows->ntensors_before : p->attn->ntensors; }

/* The helpers of the entry: typed element access, widening rows, rotating
 * them, filling a table, merging a sink. */
static void emit_v2_helpers(const Plan *p, int need_rows, StrBuf *out) {
    if (need_rows)
        sb_printf(out,
              "/* element i of a tensor of element type elem (0 float32, 1 f16, 2 bf16), as float32 */\n"
              "static float attnc_v2_get(const void *x, int32_t elem, int64_t i) {\n"
              "    if (elem == 1) return attnc_f16_to_f32(((const uint16_t *)x)[i]);\n"
              "    if (elem == 2) return attnc_bf16_to_f32(((const uint16_t *)x)[i]);\n"
              "    return ((const float *)x)[i];\n"
              "}\n\n"
              "/* rows [B][heads][L][D] of x (element type elem, strides st) as float32, contiguous */\n"
              "static void attnc_v2_widen(const void *x, int32_t elem, const int64_t *st, int64_t B, int64_t heads,\n"
              "                           int64_t L, int64_t D, float *out) {\n"
              "    for (int64_t b = 0; b < B; b++)\n"
              "        for (int64_t h = 0; h < heads; h++)\n"
              "            for (int64_t r = 0; r < L; r++)\n"
              "                for (int64_t d = 0; d < D; d++)\n"
              "                    out[((b * heads + h) * L + r) * D + d] =\n"
              "                        attnc_v2_get(x, elem, b * st[0] + h * st[1] + r * st[2] + d);\n"
              "}\n\n");
    if (p->attn->rotary)
        sb_printf(out,
                  "/* the rows of x (float32 [B][heads][L][D]) rotated by their positions\n"
                  " * (spec 9.3), or by minus them (inverse: R^T, the backward's); 1 when a\n"
                  " * position raises a runtime error, 3 out of memory */\n"
                  "static int attnc_v2_rotate(const AttnCall *c, float *x, int64_t heads, int64_t L, int is_q,\n"
                  "                           int64_t dims, double base, int interleaved, int inverse) {\n"
                  "    int64_t half = dims / 2, group = c->H / c->Hkv;\n"
                  "    double *theta = (double *)malloc(sizeof(double) * (size_t)(half + 1));\n"
                  "    if (!theta) return 3;\n"
                  "    for (int64_t i = 0; i < half; i++) theta[i] = pow(base, -2.0 * (double)i / (double)dims);\n"
                  "    for (int64_t b = 0; b < c->B; b++)\n"
                  "        for (int64_t h = 0; h < heads; h++)\n"
                  "            for (int64_t r = 0; r < L; r++) {\n"
                  "                int64_t pos = 0;\n"
                  "                int fault = is_q ? attnc_v2_qpos(c, b, h, h / group, r, 0, &pos)\n"
                  "                                 : attnc_v2_kvpos(c, b, h * group, h, 0, r, &pos);\n"
                  "                if (fault) {\n"
                  "                    free(theta);\n"
                  "                    return 1;\n"
                  "                }\n"
                  "                float *row = x + ((b * heads + h) * L + r) * c->D;\n"
                  "                for (int64_t i = 0; i < half; i++) {\n"
                  "                    double angle = (double)pos * theta[i];\n"
                  "                    float cs = (float)cos(angle), sn = (float)sin(angle);\n"
                  "                    if (inverse) sn = -sn; /* sin is odd: the sine of minus the angle */\n"
                  "                    int64_t j = interleaved ? 2 * i : i, k = interleaved ? 2 * i + 1 : i + half;\n"
                  "                    float xj = row[j], xk = row[k];\n"
                  "                    row[j] = xj * cs - xk * sn;\n"
                  "                    row[k] = xk * cs + xj * sn;\n"
                  "                }\n"
                  "            }\n"
                  "    free(theta);\n"
                  "    return 0;\n"
                  "}\n\n");
    if (p->rows && p->rows->ntables > 0)
        sb_printf(out, "/* t[r][i] = dot(x[r, :], e[i, :]) over rows r < n_rows of x and i < n of e, D long */\n"
                       "static void attnc_v2_table(const float *x, int64_t n_rows, const float *e, int64_t n, int64_t D,\n"
                       "                           float *t) {\n"
                       "    for (int64_t r = 0; r < n_rows; r++)\n"
                       "        for (int64_t i = 0; i < n; i++) {\n"
                       "            float s = 0.0f;\n"
                       "            for (int64_t d = 0; d < D; d++) s += x[r * D + d] * e[i * D + d];\n"
                       "            t[r * n + i] = s;\n"
                       "        }\n"
                       "}\n\n");
    if (p->attn->sink)
        sb_printf(out,
                  "/* row r of the kernel's float32 result (o32, lse32) merged with the\n"
                  " * sink's term, a key of score s and value 0, into O (its type, at) and LSE */\n"
                  "static void attnc_v2_merge_sink(const float *o32, float lse32, double s, int64_t Dv, void *o,\n"
                  "                                int32_t o_elem, int64_t at, float *lse) {\n"
                  "    double l = lse32, m = l > s ? l : s;\n"
                  "    double total = m == -HUGE_VAL ? -HUGE_VAL : s == HUGE_VAL ? HUGE_VAL\n"
                  "                                              : m + log(exp(l - m) + exp(s - m));\n"
                  "    double scale = total == -HUGE_VAL || total == HUGE_VAL ? 0.0 : exp(l - total);\n"
                  "    for (int64_t d = 0; d < Dv; d++) {\n"
                  "        float v = (float)((double)o32[d] * scale);\n"
                  "        if (o_elem == 1) ((uint16_t *)o)[at + d] = attnc_f32_to_f16(v);\n"
                  "        else if (o_elem == 2) ((uint16_t *)o)[at + d] = attnc_f32_to_bf16(v);\n"
                  "        else ((float *)o)[at + d] = v;\n"
                  "    }\n"
                  "    if (lse) *lse = (float)total;\n"
                  "}\n\n");
}

/* Q's or K's float32 rows (rotated with a rotary), into X##f, when a rotary
 * or a table reads them. */
static void emit_rows(const Plan *p, int is_k, StrBuf *out) {
    const char *x = is_k ? "k" : "q", *heads = is_k ? "a->Hkv" : "a->H", *L = is_k ? "a->Lk" : "a->Lq";
    sb_printf(out,
              "    if (!status) {\n"
              "        %sf = (float *)malloc(sizeof(float) * (size_t)(a->B * %s * %s * a->D + 1));\n"
              "        if (!%sf) status = 3;\n"
              "        else attnc_v2_widen(a->%s, c.%s_elem, c.%s_stride, a->B, %s, %s, a->D, %sf);\n",
              x, heads, L, x, x, x, x, heads, L, x);
    if (p->attn->rotary)
        sb_printf(out, "        if (!status) status = attnc_v2_rotate(&c, %sf, %s, %s, %d, dims, base, interleaved, 0);\n", x,
                  heads, L, !is_k);
    sb_printf(out, "    }\n");
    if (p->attn->rotary)
        sb_printf(out,
                  "    if (!status) { /* the kernel reads the rotated rows */\n"
                  "        c.%s = %sf;\n"
                  "        c.%s_elem = 0;\n"
                  "        c.%s_stride[3] = 1, c.%s_stride[2] = a->D, c.%s_stride[1] = %s * a->D, c.%s_stride[0] = %s * %s * a->D;\n"
                  "    }\n",
                  x, x, x, x, x, x, L, x, heads, L);
}

void cemit_v2_table_count(const Decl *E, StrBuf *out) {
    sb_printf(out, "        int64_t n = 1;\n");
    for (int i = 0; i < E->ndims - 1; i++) sb_printf(out, "        n *= a->shape_%s[%d];\n", E->name, i);
}

/* The tables of the plan's dot products of rows: tensor nu + t of the plan. */
static void emit_tables(const Plan *p, StrBuf *out) {
    const RowsRewrite *rw = p->rows;
    int nu = rw->ntensors_before;
    for (int t = 0; t < rw->ntables; t++) {
        const RowTable *rt = &rw->tables[t];
        const Decl *E = rt->tensor;
        int lead = E->ndims - 1;
        sb_printf(out, "    if (!status) { /* %s */\n", rt->decl->name);
        sb_printf(out, "        if (a->shape_%s[%d] != a->D) status = 1; /* a row paired with %s must have D elements */\n",
                  E->name, lead, rt->is_k ? "K" : "Q");
        cemit_v2_table_count(E, out);
        const char *heads = rt->is_k ? "a->Hkv" : "a->H", *L = rt->is_k ? "a->Lk" : "a->Lq";
        sb_printf(out,
                  "        int64_t rows = a->B * %s * %s;\n"
                  "        if (!status && !(tables[%d] = (float *)malloc(sizeof(float) * (size_t)(rows * n + 1)))) status = 3;\n"
                  "        if (!status) attnc_v2_table(%sf, rows, a->tensor_%s, n, a->D, tables[%d]);\n"
                  "        tensor_data[%d] = tables[%d];\n"
                  "        tensor_shape[%d][0] = a->B, tensor_shape[%d][1] = %s, tensor_shape[%d][2] = %s;\n",
                  heads, L, t, rt->is_k ? "k" : "q", E->name, t, nu + t, t, nu + t, nu + t, heads, nu + t, L);
        for (int i = 0; i < lead; i++)
            sb_printf(out, "        tensor_shape[%d][%d] = a->shape_%s[%d];\n", nu + t, 3 + i, E->name, i);
        sb_printf(out, "    }\n");
    }
}

/* The sinks, evaluated first (an error leaves O and LSE untouched), and the
 * kernel's outputs redirected to float32 buffers. */
static void emit_sink_setup(StrBuf *out) {
    sb_printf(out,
              "    int64_t c_o_stride[4], c_lse_stride[3]; /* the caller's O and LSE */\n"
              "    memcpy(c_o_stride, c.o_stride, sizeof c_o_stride);\n"
              "    memcpy(c_lse_stride, c.lse_stride, sizeof c_lse_stride);\n"
              "    const int64_t rows_o = a->B * a->H * a->Lq;\n"
              "    if (!status) {\n"
              "        sinks = (double *)malloc(sizeof(double) * (size_t)(rows_o + 1));\n"
              "        o32 = (float *)malloc(sizeof(float) * (size_t)(rows_o * a->Dv + 1));\n"
              "        lse32 = (float *)malloc(sizeof(float) * (size_t)(rows_o + 1));\n"
              "        if (!sinks || !o32 || !lse32) status = 3;\n"
              "    }\n"
              "    for (int64_t b = 0; b < a->B && !status; b++)\n"
              "        for (int64_t h = 0; h < a->H && !status; h++)\n"
              "            for (int64_t q = 0; q < a->Lq && !status; q++) {\n"
              "                float s = 0.0f;\n"
              "                status = attnc_v2_sink(&c, b, h, h / (a->H / a->Hkv), q, 0, &s);\n"
              "                sinks[(b * a->H + h) * a->Lq + q] = s;\n"
              "            }\n"
              "    if (!status) {\n"
              "        c.o = o32, c.lse = lse32, c.o_elem = 0;\n"
              "        c.o_stride[3] = 1, c.o_stride[2] = a->Dv, c.o_stride[1] = a->Lq * a->Dv, c.o_stride[0] = a->H * a->Lq * a->Dv;\n"
              "        c.lse_stride[2] = 1, c.lse_stride[1] = a->Lq, c.lse_stride[0] = a->H * a->Lq;\n"
              "    }\n");
}

/* rows(Q) and rows(K) (middle/rows_table.h): the float32 rows, rotated with a
 * rotary, bound as the tensors the plan's sums read. */
static void emit_row_tensors(const Plan *p, StrBuf *out) {
    for (int is_k = 0; is_k < 2 && p->rows; is_k++) {
        int i = p->rows->row_tensor[is_k];
        if (i < 0) continue;
        sb_printf(out,
                  "    tensor_data[%d] = %sf; /* rows(%s) */\n"
                  "    tensor_shape[%d][0] = a->B, tensor_shape[%d][1] = %s, tensor_shape[%d][2] = %s, "
                  "tensor_shape[%d][3] = a->D;\n",
                  i, is_k ? "k" : "q", is_k ? "K" : "Q", i, i, is_k ? "a->Hkv" : "a->H", i, is_k ? "a->Lk" : "a->Lq", i);
    }
}

void cemit_v2_prepare(const Plan *p, StrBuf *out) {
    int ntables = p->rows ? p->rows->ntables : 0, need_q, need_k;
    rows_needed(p->rows, p->attn->rotary != NULL, &need_q, &need_k);
    sb_printf(out, "    float *qf = 0, *kf = 0;\n    (void)qf, (void)kf;\n");
    sb_printf(out, "    float *tables[%d];\n    for (int t = 0; t < %d; t++) tables[t] = 0;\n", ntables + 1, ntables + 1);
    if (p->attn->rotary)
        sb_printf(out, "    int64_t dims = 0;\n    float base = 0.0f;\n    int interleaved = 0;\n"
                       "    if (attnc_v2_rope(&c, 0, 0, 0, 0, 0, &dims, &base, &interleaved)) return 1;\n"
                       "    if (dims < 0 || dims %% 2 != 0 || dims > a->D) return 1; /* spec 9.3: an error of the call */\n");
    if (need_q) emit_rows(p, 0, out);
    if (need_k) emit_rows(p, 1, out);
    if (ntables) emit_tables(p, out);
    emit_row_tensors(p, out);
}

void cemit_v2_entry(const Plan *p, const char *used, StrBuf *out) {
    const Attention *at = p->attn;
    const char *N = at->name;
    int ntables = p->rows ? p->rows->ntables : 0, need_q, need_k;
    rows_needed(p->rows, p->attn->rotary != NULL, &need_q, &need_k);
    emit_v2_helpers(p, need_q || need_k, out);
    sb_printf(out, "int %s_attention(const %s_args *a) {\n", N, N);
    cemit_call_setup(p, used, out);
    sb_printf(out, "    if (a->B * a->H * a->Lq == 0) return 0; /* no output rows */\n");
    sb_printf(out, "    int status = 0;\n    float *o32 = 0, *lse32 = 0;\n    double *sinks = 0;\n");
    sb_printf(out, "    (void)o32, (void)lse32, (void)sinks;\n");
    cemit_v2_prepare(p, out);
    if (at->sink) emit_sink_setup(out);
    sb_printf(out,
              "    void *scratch = 0;\n"
              "    if (!status && !(scratch = malloc((size_t)attnc_scratch_bytes(&c) + 64))) status = 3;\n"
              "    for (int64_t b = 0; b < a->B && !status; b++)\n"
              "        for (int64_t h = 0; h < a->H && !status; h++)\n"
              "            for (int64_t qt = 0; qt < c.nqt && !status; qt++)\n"
              "                status = attnc_tile(&c, b, h, qt, scratch);\n"
              "    free(scratch);\n");
    if (at->sink)
        sb_printf(out,
                  "    for (int64_t r = 0; r < rows_o && !status; r++) {\n"
                  "        int64_t b = r / (a->H * a->Lq), h = r / a->Lq %% a->H, q = r %% a->Lq;\n"
                  "        int64_t oat = b * c_o_stride[0] + h * c_o_stride[1] + q * c_o_stride[2];\n"
                  "        float *lse = a->lse ? a->lse + b * c_lse_stride[0] + h * c_lse_stride[1] + q * c_lse_stride[2] : 0;\n"
                  "        attnc_v2_merge_sink(o32 + r * a->Dv, lse32[r], sinks[r], a->Dv, a->o, a->o_elem, oat, lse);\n"
                  "    }\n");
    sb_printf(out, "    for (int t = 0; t < %d; t++) free(tables[t]);\n", ntables + 1);
    sb_printf(out, "    free(qf), free(kf), free(o32), free(lse32), free(sinks);\n    return status;\n}\n");
}
