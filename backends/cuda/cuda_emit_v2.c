/* cuda_emit_v2.c — the CUDA text of a version-2 attention (spec 9.2–9.4):
 * what api/api_rope_sink.c and api/api_rows.c do on the host around a
 * kernel, as device kernels of the same translation unit:
 *
 *  - NAME_v2_rows: one thread per row of Q (is_k 0) or K, the row widened to
 *    float32 (f32, f16, bf16 input) and, with a rotary, rotated by its
 *    position (the schedule's standalone blocks SB_ROPE, SB_QPOS, SB_KVPOS
 *    printed by c_holes.c's cemit_v2_functions_as), angles pos * theta_i in
 *    float64, cos and sin rounded to float32, the rotation in float32
 *    (products rounded apart, never contracted: runtime/rope_sink.c's
 *    arithmetic);
 *  - NAME_v2_table: one thread per element of a table of dot products
 *    T[r, i] = dot(row r, E[i]) (middle/rows_table.h), float32 sums;
 *  - NAME_v2_sinks: one thread per output row, its sink (SB_SINK);
 *  - NAME_v2_merge: one thread per output row, the kernel's float32 O and
 *    LSE merged with the sink's term into O (its type and strides) and LSE
 *    (runtime/rope_sink.c's sink_merge: LSE' = logaddexp(LSE, sink),
 *    O' = O exp(LSE - LSE'); a row that kept nothing: O = 0, LSE = sink).
 *
 * Under nvcc they are `extern "C" __global__` kernels taking the call by
 * value with its AttnCudaConsts (the cuda backend launches them through
 * NVRTC), each thread striding over the grid, and NAME_cuda_launch does
 * scratch (cudaMallocAsync), rows, tables, sinks, the attention kernel
 * (templates/cuda_tile.cu's launcher, renamed NAME_cuda_kernel_launch under
 * ATTNC_V2), merge, free, all on the caller's stream.  Without __CUDACC__
 * (cuda-emu) the same names are C functions over every index, which
 * api/api_cuda_v2.c calls in the same order around the emulated kernel.
 * Requires: a Plan with cemit_plan_is_v2 (c_emit.h).
 * Produces: cuda_emit_v2 (cuda_emit.h). */
#include <string.h>

#include "c_emit.h"
#include "cuda_emit.h"
#include "rows_table.h"

/* How the kernels are declared and how their threads cover n indexes. */
static void emit_macros(StrBuf *out) {
    sb_printf(out,
              "#ifdef __CUDACC__\n"
              "#define ATTNC_V2_KERNEL(name, ...) extern \"C\" __global__ void name(AttnCall call, AttnCudaConsts consts, "
              "__VA_ARGS__)\n"
              "#define ATTNC_V2_ENTER attnc_cuda_use_consts(&call, &consts); const AttnCall *c = &call;\n"
              "#define ATTNC_V2_FOR(i, n) for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); "
              "i += (int64_t)gridDim.x * blockDim.x)\n"
              "#define ATTNC_V2_FAULT(f) atomicOr((f), 1)\n"
              "#else\n"
              "#define ATTNC_V2_KERNEL(name, ...) ATTNC_LINKAGE void name(const AttnCall *c, __VA_ARGS__)\n"
              "#define ATTNC_V2_ENTER\n"
              "#define ATTNC_V2_FOR(i, n) for (int64_t i = 0; i < (n); i++)\n"
              "#define ATTNC_V2_FAULT(f) (*(f) |= 1)\n"
              "#if defined(ATTNC_JIT)\n"
              "double cos(double);\ndouble sin(double);\ndouble pow(double, double);\ndouble exp(double);\n"
              "double log(double);\n"
              "#endif\n"
              "#endif\n"
              "/* a float32 product rounded on its own (nvcc would fuse it into an fma: the host's rotation does not) */\n"
              "#ifdef __CUDA_ARCH__\n#define ATTNC_V2_MUL(a, b) __fmul_rn((a), (b))\n"
              "#else\n#define ATTNC_V2_MUL(a, b) ((a) * (b))\n#endif\n\n");
}

/* Element access, rows and their rotation. */
static void emit_rows(const Plan *p, StrBuf *out) {
    sb_printf(out,
              "/* element i of x (element type elem: 0 float32, 1 f16, 2 bf16) as float32 */\n"
              "ATTNC_DEV float attnc_v2_get(const void *x, int32_t elem, int64_t i) {\n"
              "    if (elem == 1) return attnc_f16_to_f32(((const uint16_t *)x)[i]);\n"
              "    if (elem == 2) return attnc_bf16_to_f32(((const uint16_t *)x)[i]);\n"
              "    return ((const float *)x)[i];\n"
              "}\n\n"
              "/* rows of Q (is_k 0: [B][H][Lq]) or K ([B][Hkv][Lk]) */\n"
              "ATTNC_DEV int64_t attnc_v2_nrows(const AttnCall *c, int is_k) {\n"
              "    return is_k ? c->B * c->Hkv * c->Lk : c->B * c->H * c->Lq;\n"
              "}\n\n"
              "/* row r of Q or K as float32 at out + r * D, rotated by its position with a rotary; 1: a runtime\n"
              " * error of the spec (a position's or the rotary's arguments') */\n"
              "ATTNC_DEV int attnc_v2_row(const AttnCall *c, int is_k, int64_t r, float *out) {\n"
              "    const int64_t heads = is_k ? c->Hkv : c->H, L = is_k ? c->Lk : c->Lq, D = c->D;\n"
              "    const int64_t b = r / (heads * L), hh = r / L %% heads, row = r %% L;\n"
              "    const int64_t *st = is_k ? c->k_stride : c->q_stride;\n"
              "    const void *x = is_k ? (const void *)c->k : (const void *)c->q;\n"
              "    const int32_t elem = is_k ? c->k_elem : c->q_elem;\n"
              "    float *o = out + r * D;\n"
              "    for (int64_t d = 0; d < D; d++) o[d] = attnc_v2_get(x, elem, b * st[0] + hh * st[1] + row * st[2] + d);\n");
    if (p->attn->rotary)
        sb_printf(out,
                  "    int64_t dims = 0, pos = 0;\n"
                  "    float base = 0.0f;\n"
                  "    int interleaved = 0;\n"
                  "    const int64_t group = c->H / c->Hkv;\n"
                  "    if (attnc_v2_rope(c, 0, 0, 0, 0, 0, &dims, &base, &interleaved) || dims < 0 || dims %% 2 != 0 || "
                  "dims > D)\n"
                  "        return 1;\n"
                  "    if (is_k ? attnc_v2_kvpos(c, b, hh * group, hh, 0, row, &pos)\n"
                  "             : attnc_v2_qpos(c, b, hh, hh / group, row, 0, &pos))\n"
                  "        return 1;\n"
                  "    const int64_t half = dims / 2;\n"
                  "    for (int64_t i = 0; i < half; i++) {\n"
                  "        const double angle = (double)pos * pow((double)base, -2.0 * (double)i / (double)dims);\n"
                  "        const float cs = (float)cos(angle), sn = (float)sin(angle);\n"
                  "        const int64_t j = interleaved ? 2 * i : i, k = interleaved ? 2 * i + 1 : i + half;\n"
                  "        const float xj = o[j], xk = o[k];\n"
                  "        o[j] = ATTNC_V2_MUL(xj, cs) - ATTNC_V2_MUL(xk, sn);\n"
                  "        o[k] = ATTNC_V2_MUL(xk, cs) + ATTNC_V2_MUL(xj, sn);\n"
                  "    }\n");
    sb_printf(out,
              "    return 0;\n"
              "}\n\n"
              "ATTNC_V2_KERNEL(%s_v2_rows, int is_k, float *out, int *fault) {\n"
              "    ATTNC_V2_ENTER\n"
              "    ATTNC_V2_FOR(r, attnc_v2_nrows(c, is_k)) if (attnc_v2_row(c, is_k, r, out)) ATTNC_V2_FAULT(fault);\n"
              "}\n\n",
              p->attn->name);
}

/* The tables of dot products of rows: which tensor E each reads, and one
 * element per thread. */
/* `ATTNC_DEV int NAME(int t)`: what of table t `what` gives (0 its tensor E's index, 1 whether it pairs K
 * rows, 2 E's leading dims); a function rather than an array, which device code could not read. */
static void emit_table_fact(const RowsRewrite *rw, const char *name, int what, StrBuf *out) {
    sb_printf(out, "ATTNC_DEV int %s(int t) {\n    switch (t) {\n", name);
    for (int t = 0; t < rw->ntables; t++) {
        const RowTable *rt = &rw->tables[t];
        sb_printf(out, "    case %d: return %d;\n", t, what == 0 ? rt->tensor->index : what == 1 ? rt->is_k : rt->tensor->ndims - 1);
    }
    sb_printf(out, "    }\n    return 0;\n}\n\n");
}

static void emit_tables(const Plan *p, StrBuf *out) {
    const RowsRewrite *rw = p->rows;
    sb_printf(out, "/* table t's tensor E (its index), whether it pairs K rows, E's leading dims */\n");
    emit_table_fact(rw, "attnc_v2_table_tensor", 0, out);
    emit_table_fact(rw, "attnc_v2_table_is_k", 1, out);
    emit_table_fact(rw, "attnc_v2_table_lead", 2, out);
    sb_printf(out,
              "/* the rows of E table t pairs with each row (the product of E's leading dims) */\n"
              "ATTNC_DEV int64_t attnc_v2_table_cols(const AttnCall *c, int t) {\n"
              "    int64_t n = 1;\n"
              "    for (int d = 0; d < attnc_v2_table_lead(t); d++) n *= c->tensor_shape[attnc_v2_table_tensor(t)][d];\n"
              "    return n;\n"
              "}\n\n"
              "/* table t: T[r][i] = dot(x[r, :], E[i, :]) for every row r of x (Q's or K's float32 rows) and row i\n"
              " * of E, D long (E's last dim, checked by the launcher); one element a thread */\n"
              "ATTNC_V2_KERNEL(%s_v2_table, int t, const float *x, float *table) {\n"
              "    ATTNC_V2_ENTER\n"
              "    const int64_t n = attnc_v2_table_cols(c, t), D = c->D;\n"
              "    const float *e = (const float *)c->tensor_data[attnc_v2_table_tensor(t)];\n"
              "    ATTNC_V2_FOR(at, attnc_v2_nrows(c, attnc_v2_table_is_k(t)) * n) {\n"
              "        const float *xr = x + at / n * D, *er = e + at %% n * D;\n"
              "        float s = 0.0f;\n"
              "        for (int64_t d = 0; d < D; d++) s += ATTNC_V2_MUL(xr[d], er[d]);\n"
              "        table[at] = s;\n"
              "    }\n"
              "}\n\n",
              p->attn->name);
}

/* The sinks, and their merge into O and LSE. */
static void emit_sinks(const Plan *p, StrBuf *out) {
    const char *N = p->attn->name;
    sb_printf(out,
              "/* sinks[r] for every output row r = (b * H + h) * Lq + q */\n"
              "ATTNC_V2_KERNEL(%s_v2_sinks, float *sinks, int *fault) {\n"
              "    ATTNC_V2_ENTER\n"
              "    ATTNC_V2_FOR(r, c->B * c->H * c->Lq) {\n"
              "        const int64_t b = r / (c->H * c->Lq), h = r / c->Lq %% c->H, q = r %% c->Lq;\n"
              "        float s = 0.0f;\n"
              "        if (attnc_v2_sink(c, b, h, h / (c->H / c->Hkv), q, 0, &s)) ATTNC_V2_FAULT(fault);\n"
              "        sinks[r] = s;\n"
              "    }\n"
              "}\n\n"
              "/* row r of the kernel's float32 result (o32 [B][H][Lq][Dv], lse32) merged with its sink, a key of\n"
              " * score sinks[r] and value 0, into the call's O and LSE */\n"
              "ATTNC_V2_KERNEL(%s_v2_merge, const float *o32, const float *lse32, const float *sinks) {\n"
              "    ATTNC_V2_ENTER\n"
              "    const double inf = (double)attnc_inf();\n"
              "    ATTNC_V2_FOR(r, c->B * c->H * c->Lq) {\n"
              "        const int64_t b = r / (c->H * c->Lq), h = r / c->Lq %% c->H, q = r %% c->Lq;\n"
              "        const double l = lse32[r], s = sinks[r], m = l > s ? l : s;\n"
              "        const double total = m == -inf ? -inf : s == inf ? inf : m + log(exp(l - m) + exp(s - m));\n"
              "        const double scale = total == -inf || total == inf ? 0.0 : exp(l - total);\n"
              "        const int64_t at = b * c->o_stride[0] + h * c->o_stride[1] + q * c->o_stride[2];\n"
              "        for (int64_t d = 0; d < c->Dv; d++) {\n"
              "            const float v = (float)((double)o32[r * c->Dv + d] * scale);\n"
              "            if (c->o_elem == 1) ((uint16_t *)c->o)[at + d] = attnc_f32_to_f16(v);\n"
              "            else if (c->o_elem == 2) ((uint16_t *)c->o)[at + d] = attnc_f32_to_bf16(v);\n"
              "            else c->o[at + d] = v;\n"
              "        }\n"
              "        if (c->lse) c->lse[b * c->lse_stride[0] + h * c->lse_stride[1] + q * c->lse_stride[2]] = (float)total;\n"
              "    }\n"
              "}\n\n",
              N, N);
}
int cuda_plan_is_v2(const Plan *p) { return cemit_plan_is_v2(p); } /* the same constructs: the text prints them all */

/* Q's or K's rows (is_k) into scratch at X##f, for the rotary and the tables
 * that read them; the kernel's call reads the rotated rows. */
static void emit_launch_rows(const Plan *p, int is_k, StrBuf *out) {
    const char *x = is_k ? "k" : "q";
    sb_printf(out, "    float *%sf = (float *)(scratch + at_%s);\n", x, x);
    sb_printf(out, "    %s_v2_rows<<<attnc_v2_blocks(attnc_v2_nrows(&c, %d)), 128, 0, stream>>>(c, consts, %d, %sf, fault);\n",
              p->attn->name, is_k, is_k, x);
    if (p->attn->rotary)
        sb_printf(out,
                  "    kc.%s = %sf, kc.%s_elem = 0;\n"
                  "    kc.%s_stride[3] = 1, kc.%s_stride[2] = c.D, kc.%s_stride[1] = c.%s * c.D, kc.%s_stride[0] = c.%s * c.%s * c.D;\n",
                  x, x, x, x, x, x, is_k ? "Lk" : "Lq", x, is_k ? "Hkv" : "H", is_k ? "Lk" : "Lq");
}

/* extern "C" NAME_cuda_launch under nvcc: the whole call on `stream`. */
static void emit_launcher(const Plan *p, int need_q, int need_k, StrBuf *out) {
    const char *N = p->attn->name;
    int nt = p->rows ? p->rows->ntables : 0, nu = cemit_user_tensors(p), sink = p->attn->sink != NULL;
    sb_printf(out,
              "#if defined(__CUDACC__) && !defined(__CUDACC_RTC__)\n"
              "static unsigned attnc_v2_blocks(int64_t n) { return n <= 0 ? 1u : n > 128 * 65535 ? 65535u : (unsigned)((n + 127) / 128); }\n"
              "static size_t attnc_v2_align(int64_t bytes) { return ((size_t)bytes + 255) / 256 * 256; }\n\n"
              "/* The call: tensor_data and tensor_shape hold the attention's %d tensors (host arrays); the\n"
              " * launcher adds the tables of dot products.  Scratch from cudaMallocAsync on `stream`, freed there. */\n"
              "extern \"C\" int %s_cuda_launch(const AttnCall *call, int *fault, cudaStream_t stream) {\n"
              "    if (!call || !fault || call->H <= 0 || call->Hkv <= 0 || call->H %% call->Hkv != 0)\n"
              "        return (int)cudaErrorInvalidValue;\n"
              "    if (call->B * call->H * call->Lq == 0) return 0;\n"
              "    AttnCall c = *call;\n"
              "    const void *td[ATTNC_NTENSORS + 1];\n"
              "    int64_t ts[ATTNC_NTENSORS + 1][ATTNC_ABI_MAX_RANK];\n"
              "    memset(td, 0, sizeof td);\n"
              "    memset(ts, 0, sizeof ts);\n"
              "    for (int i = 0; i < %d; i++) {\n"
              "        td[i] = call->tensor_data[i];\n"
              "        for (int d = 0; d < ATTNC_ABI_MAX_RANK; d++) ts[i][d] = call->tensor_shape[i][d];\n"
              "    }\n"
              "    c.tensor_data = td;\n"
              "    c.tensor_shape = (const int64_t(*)[ATTNC_ABI_MAX_RANK])ts;\n"
              "    size_t at = 0;\n",
              nu, N, nu);
    if (need_q) sb_printf(out, "    size_t at_q = 0;\n");
    if (need_k) sb_printf(out, "    size_t at_k = 0;\n");
    if (nt) sb_printf(out, "    size_t at_t[%d];\n", nt);
    if (sink) sb_printf(out, "    const int64_t rows_o = c.B * c.H * c.Lq;\n    size_t at_sinks = 0, at_o = 0, at_lse = 0;\n");
    if (need_q) sb_printf(out, "    at_q = at, at += attnc_v2_align(4 * attnc_v2_nrows(&c, 0) * c.D);\n");
    if (need_k) sb_printf(out, "    at_k = at, at += attnc_v2_align(4 * attnc_v2_nrows(&c, 1) * c.D);\n");
    if (nt)
        sb_printf(out,
                  "    for (int t = 0; t < %d; t++) {\n"
                  "        const int e = attnc_v2_table_tensor(t), lead = attnc_v2_table_lead(t), is_k = attnc_v2_table_is_k(t);\n"
                  "        if (ts[e][lead] != c.D) { /* a row paired with Q or K must have D elements: an error of the call */\n"
                  "            static const int one = 1;\n"
                  "            return (int)cudaMemcpyAsync(fault, &one, sizeof one, cudaMemcpyHostToDevice, stream);\n"
                  "        }\n"
                  "        int64_t *shape = ts[%d + t];\n"
                  "        shape[0] = c.B, shape[1] = is_k ? c.Hkv : c.H, shape[2] = is_k ? c.Lk : c.Lq;\n"
                  "        for (int d = 0; d < lead; d++) shape[3 + d] = ts[e][d];\n"
                  "        at_t[t] = at, at += attnc_v2_align(4 * attnc_v2_nrows(&c, is_k) * attnc_v2_table_cols(&c, t));\n"
                  "    }\n",
                  nt, nu);
    for (int i = 0; p->rows && i < 2; i++) /* rows(Q), rows(K): the rows computed below */
        if (p->rows->row_tensor[i] >= 0)
            sb_printf(out, "    ts[%d][0] = c.B, ts[%d][1] = c.%s, ts[%d][2] = c.%s, ts[%d][3] = c.D;\n", p->rows->row_tensor[i],
                      p->rows->row_tensor[i], i ? "Hkv" : "H", p->rows->row_tensor[i], i ? "Lk" : "Lq",
                      p->rows->row_tensor[i]);
    if (sink)
        sb_printf(out, "    at_sinks = at, at += attnc_v2_align(4 * rows_o);\n"
                       "    at_o = at, at += attnc_v2_align(4 * rows_o * c.Dv);\n"
                       "    at_lse = at, at += attnc_v2_align(4 * rows_o);\n");
    sb_printf(out,
              "    char *scratch = NULL;\n"
              "    cudaError_t e = cudaMallocAsync((void **)&scratch, at + 256, stream);\n"
              "    if (e != cudaSuccess) return (int)e;\n");
    if (nt) sb_printf(out, "    for (int t = 0; t < %d; t++) td[%d + t] = scratch + at_t[t];\n", nt, nu);
    for (int i = 0; p->rows && i < 2; i++)
        if (p->rows->row_tensor[i] >= 0) sb_printf(out, "    td[%d] = scratch + at_%s;\n", p->rows->row_tensor[i], i ? "k" : "q");
    sb_printf(out,
              "    AttnCudaConsts consts;\n"
              "    AttnCall view;\n"
              "    attnc_cuda_consts(&c, &consts, &view);\n"
              "    AttnCall kc = c; /* the attention kernel's call */\n");
    if (need_q) emit_launch_rows(p, 0, out);
    if (need_k) emit_launch_rows(p, 1, out);
    for (int t = 0; t < nt; t++) {
        int is_k = p->rows->tables[t].is_k;
        sb_printf(out,
                  "    %s_v2_table<<<attnc_v2_blocks(attnc_v2_nrows(&c, %d) * attnc_v2_table_cols(&c, %d)), 128, 0, stream>>>(\n"
                  "        c, consts, %d, %sf, (float *)(scratch + at_t[%d]));\n",
                  N, is_k, t, t, is_k ? "k" : "q", t);
    }
    if (sink)
        sb_printf(out,
                  "    float *sinks = (float *)(scratch + at_sinks), *o32 = (float *)(scratch + at_o), *lse32 = "
                  "(float *)(scratch + at_lse);\n"
                  "    %s_v2_sinks<<<attnc_v2_blocks(rows_o), 128, 0, stream>>>(c, consts, sinks, fault);\n"
                  "    kc.o = o32, kc.lse = lse32, kc.o_elem = 0;\n"
                  "    kc.o_stride[3] = 1, kc.o_stride[2] = c.Dv, kc.o_stride[1] = c.Lq * c.Dv, kc.o_stride[0] = c.H * c.Lq * c.Dv;\n"
                  "    kc.lse_stride[2] = 1, kc.lse_stride[1] = c.Lq, kc.lse_stride[0] = c.H * c.Lq;\n",
                  N);
    sb_printf(out, "    e = cudaGetLastError();\n    if (e == cudaSuccess) e = (cudaError_t)%s_cuda_kernel_launch(&kc, fault, stream);\n",
              N);
    if (sink)
        sb_printf(out, "    if (e == cudaSuccess) %s_v2_merge<<<attnc_v2_blocks(rows_o), 128, 0, stream>>>(c, consts, o32, lse32, sinks);\n",
                  N);
    sb_printf(out,
              "    if (e == cudaSuccess) e = cudaGetLastError();\n"
              "    cudaError_t f = cudaFreeAsync(scratch, stream);\n"
              "    return (int)(e != cudaSuccess ? e : f);\n"
              "}\n"
              "#endif\n");
}

attnc_status cuda_emit_v2(const Plan *p, const StrBuf *functions, StrBuf *out, attnc_error *err) {
    int nt = p->rows ? p->rows->ntables : 0, need_q, need_k;
    rows_needed(p->rows, p->attn->rotary != NULL, &need_q, &need_k);
    sb_printf(out, "\n/* ---- version 2 (spec 9.2-9.4) around the kernel: backends/cuda/cuda_emit_v2.c ---- */\n\n");
    emit_macros(out);
    sb_printf(out, "%s\n", functions->p ? functions->p : "");
    emit_rows(p, out);
    if (nt) emit_tables(p, out);
    if (p->attn->sink) emit_sinks(p, out);
    emit_launcher(p, need_q, need_k, out);
    return out->failed ? set_error(err, ATTNC_ERR_NOMEM, "out of memory while emitting CUDA C") : ATTNC_OK;
}
