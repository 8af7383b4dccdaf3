/* c_emit.c — a kernel plan as C: IR + plan -> one self-contained C99
 * translation unit; and the file assembly the CUDA emitter shares (filling
 * a template's holes, pasting the sections of templates/support.h).
 *
 * Requires: a Plan (plan.h) whose IR has been through the middle end; the
 * hole code of backends/c/c_holes.c (cemit_holes); templates/tile.c,
 * templates/dense.c, templates/support.h and middle/kernel_abi.h,
 * embedded in the library at build time (cmake/embed.cmake).
 *
 * Produces text in four parts:
 *   1. the header of the ahead-of-time entry point (NAME_args and
 *      NAME_attention) between CEMIT_HEADER_BEGIN and CEMIT_HEADER_END; when
 *      ATTNC_JIT is defined (libtcc) a few typedefs stand in for it, so the
 *      JIT needs no system header;
 *   2. kernel_abi.h (AttnCall), declarations of the libm functions the code
 *      calls, the helpers of templates/support.h the code calls, and the
 *      dense loops of templates/dense.c (only their prototypes under
 *      ATTNC_JIT: the JIT binds them to libattnc's vectorised copies);
 *   3. templates/tile.c with its holes filled by cemit_holes;
 *   4. the entry point, which runs every work item on the calling thread
 *      (not under ATTNC_JIT); with a backward schedule, templates/tile_bwd.c
 *      filled by cemit_grad_holes and the backward entry point NAME_backward. */
#include "c_emit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const char attnc_tile_template[];
extern const unsigned long attnc_tile_template_len;
extern const char attnc_tile_bwd_template[];
extern const unsigned long attnc_tile_bwd_template_len;
extern const char attnc_dense_template[];
extern const unsigned long attnc_dense_template_len;
extern const char attnc_kernel_abi_text[];
extern const unsigned long attnc_kernel_abi_text_len;
extern const char attnc_support_text[];
extern const unsigned long attnc_support_text_len;
extern const char attnc_half_text[];
extern const unsigned long attnc_half_text_len;

/* ---- templates/support.h ------------------------------------------------ */

/* Append len bytes of s with every `from` replaced by `to`. */
static void put_replaced(StrBuf *out, const char *s, size_t len, const char *from, const char *to) {
    size_t fl = strlen(from);
    while (len > 0) {
        const char *hit = NULL;
        for (size_t k = 0; k + fl <= len; k++)
            if (!memcmp(s + k, from, fl)) {
                hit = s + k;
                break;
            }
        size_t n = hit ? (size_t)(hit - s) : len;
        sb_printf(out, "%.*s", (int)n, s);
        if (!hit) break;
        sb_printf(out, "%s", to);
        s += n + fl;
        len -= n + fl;
    }
}

/* templates/support.h is cut into sections rather than pasted whole with
 * each helper under an #ifdef: the generated text then holds only the
 * helpers its code calls, as a reader (and a compiler warning about unused
 * static functions) expects, and adding a helper touches that file alone. */

/* One section of templates/support.h: the lines between its KIND NAME
 * marker line and the next end marker line (the file says how they look). */
typedef struct Section {
    const char *kind, *name, *text; /* not NUL-terminated: the lengths below */
    size_t kind_len, name_len, len;
} Section;

/* The section at or after *at (advanced past it); 0 when there is none. */
static int next_section(const char **at, Section *s) {
    const char *t = *at, *end = attnc_support_text + attnc_support_text_len;
    const char *body = NULL;
    while (t < end) {
        const char *eol = memchr(t, '\n', (size_t)(end - t));
        size_t len = eol ? (size_t)(eol - t) : (size_t)(end - t);
        const char *next = t + len + (eol != NULL);
        int marker = len > 6 && !memcmp(t, "/*@", 3) && !memcmp(t + len - 3, "@*/", 3);
        if (marker && body && len == 9 && !memcmp(t, "/*@end@*/", 9)) {
            s->text = body;
            s->len = (size_t)(t - body);
            *at = next;
            return 1;
        }
        if (marker && !body) {
            const char *sp = memchr(t + 3, ' ', len - 6);
            if (sp) {
                s->kind = t + 3;
                s->kind_len = (size_t)(sp - s->kind);
                s->name = sp + 1;
                s->name_len = (size_t)(t + len - 3 - s->name);
                body = next;
            }
        }
        t = next;
    }
    return 0;
}

static int kind_is(const Section *s, const char *kind) {
    return s->kind_len == strlen(kind) && !memcmp(s->kind, kind, s->kind_len);
}

/* Append a section's text, with `static inline` replaced by qualifier
 * when qualifier is not NULL. */
static void put_section(const Section *s, const char *qualifier, StrBuf *out) {
    if (qualifier) put_replaced(out, s->text, s->len, "static inline", qualifier);
    else sb_printf(out, "%.*s", (int)s->len, s->text);
}

int cemit_put_support(const char *name, const char *qualifier, StrBuf *out) {
    const char *at = attnc_support_text;
    Section s;
    while (next_section(&at, &s))
        if (kind_is(&s, "section") && s.name_len == strlen(name) && !memcmp(s.name, name, s.name_len)) {
            put_section(&s, qualifier, out);
            return 1;
        }
    return 0;
}

/* Whether any hole's code (the backward's too, when g is not NULL) calls
 * the function named by the len bytes at name. */
static int holes_call(const CEmitHoles *h, const CEmitGradHoles *g, const StrBuf *v2, const char *name, size_t len) {
    char call[128];
    if (len + 2 > sizeof call) return 1; /* a name this long cannot be checked: keep the helper */
    memcpy(call, name, len);
    memcpy(call + len, "(", 2);
    const StrBuf *code[] = {&h->head, &h->row, &h->col, &h->scratch, &h->elem_partial, &h->elem_full, &h->diag};
    for (size_t i = 0; i < sizeof code / sizeof code[0]; i++)
        if (code[i]->p && strstr(code[i]->p, call)) return 1;
    if (v2 && v2->p && strstr(v2->p, call)) return 1;
    if (!g) return 0;
    const StrBuf *gcode[] = {&g->item, &g->col, &g->row, &g->pre, &g->fault, &g->keep, &g->value, &g->terms};
    for (size_t i = 0; i < sizeof gcode / sizeof gcode[0]; i++)
        if (gcode[i]->p && strstr(gcode[i]->p, call)) return 1;
    return 0;
}

static void put_helpers(const CEmitHoles *h, const CEmitGradHoles *g, const StrBuf *v2, const char *qualifier,
                        StrBuf *out) {
    const char *at = attnc_support_text;
    Section s;
    while (next_section(&at, &s))
        if (kind_is(&s, "helper") && holes_call(h, g, v2, s.name, s.name_len))
            put_section(&s, qualifier, out);
}

void cemit_put_helpers(const CEmitHoles *h, const char *qualifier, StrBuf *out) {
    put_helpers(h, NULL, NULL, qualifier, out);
}

void cemit_put_helpers_v2(const CEmitHoles *h, const StrBuf *v2, const char *qualifier, StrBuf *out) {
    put_helpers(h, NULL, v2, qualifier, out);
}

void cemit_put_kernel_abi(StrBuf *out) {
    const char *abi = attnc_kernel_abi_text, *inc = strstr(abi, "#include <stdint.h>\n");
    if (inc) sb_printf(out, "%.*s%s\n", (int)(inc - abi), abi, inc + strlen("#include <stdint.h>\n"));
    else sb_printf(out, "%s\n", abi);
}

void cemit_put_half(const char *qualifier, StrBuf *out) {
    const char *t = attnc_half_text, *end = t + attnc_half_text_len;
    while (t < end) {
        const char *eol = memchr(t, '\n', (size_t)(end - t));
        size_t len = eol ? (size_t)(eol - t) + 1 : (size_t)(end - t);
        if (*t != '#') {
            if (qualifier) put_replaced(out, t, len, "static inline", qualifier);
            else sb_printf(out, "%.*s", (int)len, t);
        }
        t += len;
    }
}

/* ---- the templates' holes ----------------------------------------------- */

/* tmpl with each line that is exactly holes[k] (indented) replaced by code[k]; 0 when a hole is missing. */
static int fill_holes(const char *tmpl, size_t tmpl_len, const char *const *holes, const StrBuf *const *code, int NHOLES,
                      const char *name, StrBuf *out) {
    int filled = 0;
    const char *t = tmpl, *end = t + tmpl_len;
    while (t < end) {
        const char *eol = memchr(t, '\n', (size_t)(end - t));
        size_t len = eol ? (size_t)(eol - t) : (size_t)(end - t);
        size_t indent = strspn(t, " ");
        if (indent > len) indent = len;
        int hole = -1;
        for (int k = 0; k < NHOLES; k++)
            if (len - indent == strlen(holes[k]) && !memcmp(t + indent, holes[k], len - indent)) hole = k;
        if (hole < 0) {
            if (name) put_replaced(out, t, len, "@NAME@", name);
            else sb_printf(out, "%.*s", (int)len, t);
            sb_printf(out, "\n");
        } else {
            filled++;
            const char *s = code[hole]->p ? code[hole]->p : "";
            while (*s) {
                size_t n = strcspn(s, "\n");
                sb_printf(out, "%*s%.*s\n", (int)indent, "", (int)n, s);
                s += n + (s[n] == '\n');
            }
        }
        t += len + 1;
    }
    return filled == NHOLES;
}

int cemit_fill_template(const char *tmpl, size_t tmpl_len, const CEmitHoles *h, const char *name, StrBuf *out) {
    static const char *const holes[] = {"/*@SCRATCH@*/", "/*@HEAD@*/",         "/*@SLOTS@*/",     "/*@ROW@*/",
                                        "/*@COL@*/",     "/*@ELEM_PARTIAL@*/", "/*@ELEM_FULL@*/", "/*@DIAG@*/"};
    const StrBuf *const code[] = {&h->scratch,      &h->head,      &h->slots, &h->row, &h->col,
                                  &h->elem_partial, &h->elem_full, &h->diag};
    return fill_holes(tmpl, tmpl_len, holes, code, 8, name, out);
}

/* templates/tile_bwd.c with its holes filled from g. */
static int fill_grad_template(const CEmitGradHoles *g, StrBuf *out) {
    static const char *const holes[] = {"/*@GRAD_ITEM@*/", "/*@GRAD_SLOTS@*/", "/*@GRAD_COL@*/",
                                        "/*@GRAD_ROW@*/",  "/*@GRAD_PRE@*/",   "/*@GRAD_FAULT@*/",
                                        "/*@GRAD_KEEP@*/", "/*@GRAD_VALUE@*/", "/*@GRAD_TERMS@*/"};
    const StrBuf *const code[] = {&g->item, &g->slots, &g->col,   &g->row,  &g->pre,
                                  &g->fault, &g->keep, &g->value, &g->terms};
    return fill_holes(attnc_tile_bwd_template, attnc_tile_bwd_template_len, holes, code, 9, NULL, out);
}

/* ---- the translation unit ----------------------------------------------- */

/* Which params the kernel reads (after -D specialisation folded the fixed
 * ones); 0 when out of memory. */
static int params_read(const Plan *p, char *used) {
    const IrModule *m = p->ir;
    const IrFunc *f = p->f;
    char *live = calloc((size_t)m->n + 1, 1);
    if (!live) return 0;
    IrRef roots[] = {f->keep,      f->scale,     f->bias,      f->score,     f->weight,     f->fault,
                     f->lse_offset, f->rope_dims, f->rope_base, f->rope_fault, f->rope_interleaved,
                     f->qpos,       f->qpos_fault, f->kvpos,    f->kvpos_fault, f->sink,      f->sink_fault};
    for (size_t i = 0; i < sizeof roots / sizeof roots[0]; i++)
        if (roots[i] != IR_NONE) live[roots[i]] = 1;
    for (int g = 0; g < f->nlowrank; g++) live[f->lowrank_count[g]] = live[f->lowrank_q[g]] = live[f->lowrank_k[g]] = 1;
    for (int i = m->n - 1; i >= 0; i--) {
        if (!live[i]) continue;
        for (int a = 0; a < m->nodes[i].nargs; a++) live[m->nodes[i].args[a]] = 1;
        if (m->nodes[i].op == IR_PARAM) used[m->nodes[i].aux] = 1;
    }
    free(live);
    /* the backward plan's module (its own IR) reads params the same way */
    const IrModule *gm = p->grad_sched ? p->grad_sched->base.m : NULL;
    for (int i = 0; gm && i < gm->n; i++)
        if (gm->nodes[i].op == IR_PARAM) used[gm->nodes[i].aux] = 1;
    return 1;
}

/* Part 1: the ahead-of-time header, between CEMIT_HEADER_BEGIN and CEMIT_HEADER_END. */
/* The backward entry point's part of the header. */
static void emit_grad_header(const Plan *p, StrBuf *out) {
    const Attention *a = p->attn;
    const char *N = a->name;
    sb_printf(out,
              "/* The backward pass (attn-language.md 9.5): the gradients of\n"
              " * L = sum(O * dO) + sum(LSE * dLSE) for the forward call `args` (its Q,\n"
              " * K, V, params and tensors, and the O and LSE %s_attention wrote: both\n"
              " * required).  Every array here is float32, row-major, contiguous: dO\n"
              " * [B,H,Lq,Dv] and dLSE [B,H,Lq] (NULL: zero); dQ [B,H,Lq,D], dK\n"
              " * [B,Hkv,Lk,D], dV [B,Hkv,Lk,Dv] (with GQA summed over each group's query\n"
              " * heads) and the gradient of each float tensor, with its shape (NULL: not\n"
              " * wanted).  Outputs are overwritten, on success only.  Like\n"
              " * %s_attention it runs on the calling thread without a tile map. */\n",
              N, N);
    sb_printf(out, "typedef struct %s_grad {\n", N);
    sb_printf(out, "    const float *dout, *dlse;\n    float *dq, *dk, *dv;\n");
    for (int i = 0; i < cemit_user_tensors(p); i++)
        if (a->tensors[i]->type == T_FLOAT) sb_printf(out, "    float *dtensor_%s;\n", a->tensors[i]->name);
    sb_printf(out, "} %s_grad;\n\n", N);
    sb_printf(out, "/* 0 ok, 1 runtime error of the spec, 2 invalid sizes or pointers, 3 out of memory. */\n");
    sb_printf(out, "int %s_backward(const %s_args *args, const %s_grad *grad);\n\n", N, N, N);
}

static void emit_header(const Plan *p, int with_grad, const char *used, StrBuf *out) {
    const Attention *a = p->attn;
    const char *N = a->name;
    sb_printf(out, "%s\n", CEMIT_HEADER_BEGIN);
    sb_printf(out,
              "/* %s.h: attention %s, compiled ahead of time by attnc %s (generated: do not edit).\n"
              " *\n"
              " * Add %s.c to a C99 build (link with -lm) and call\n"
              " *\n"
              " *     %s_args a = {0};\n"
              " *     a.B = ...; a.H = ...; a.Hkv = ...; a.Lq = ...; a.Lk = ...; a.D = ...; a.Dv = ...;\n"
              " *     a.q = Q; a.k = K; a.v = V; a.o = O; a.lse = LSE;  (LSE may be NULL)\n"
              " *     ... the param_ and tensor_/shape_ fields below ...\n"
              " *     int status = %s_attention(&a);\n"
              " *\n"
              " * Arrays are by default float32, row-major and contiguous: Q[B,H,Lq,D],\n"
              " * K[B,Hkv,Lk,D], V[B,Hkv,Lk,Dv], O[B,H,Lq,Dv], LSE[B,H,Lq].  The fields\n"
              " * X_elem and X_stride (X = q, k, v, o; lse_stride) describe other storage:\n"
              " * X_elem 0 float32, 1 f16 (IEEE binary16), 2 bf16 (16-bit data: cast its\n"
              " * pointer to the field's type; LSE is always float32); X_stride the\n"
              " * distances in elements between neighbours along [B, H, L, D] (K and V:\n"
              " * Hkv, Lk; LSE: [B, H, Lq]), all zero: contiguous; rows must be\n"
              " * contiguous (the D stride is taken as 1), so [B,L,H,D] views and slices\n"
              " * of a fused QKV buffer work without a copy.  Products accumulate in\n"
              " * float32; O is rounded once to its type (to nearest even); only O's\n"
              " * elements are written (gaps between strided rows stay untouched).  Tensors\n"
              " * are row-major with the shape given in shape_NAME (the shape the spec\n"
              " * declares).  Query head h reads key/value head h / (H / Hkv).\n"
              " *\n"
              " * %s_attention runs every (batch, head, %d-row query tile) on the calling\n"
              " * thread and keeps no state, so several threads may call it at once.  It\n"
              " * has no tile map (libattnc classifies tiles per call and skips those the\n"
              " * masks prove empty): it evaluates the masks on every tile, which gives\n"
              " * the same result with more work.  It never packs the query heads that\n"
              " * share a kv head into one work item (libattnc does, for short Lq), so\n"
              " * with GQA each K and V tile is read once per query head.  K and V are\n"
              " * dense [B, Hkv, Lk, D] views (strided): this entry reads no paged KV\n"
              " * cache (gather a sequence's pages first; libattnc reads them in place).\n"
              " *\n"
              " * Returns 0 when O and LSE are written; 1 on a runtime error of the spec\n"
              " * (a tensor index out of range or an int division by zero where the spec\n"
              " * evaluates it; O and LSE are then unspecified; libattnc's interpreter\n"
              " * names the element); 2 when the sizes or pointers are invalid (negative,\n"
              " * H not a multiple of Hkv, an element type other than 0, 1, 2, a negative\n"
              " * stride); 3 when out of memory. */\n",
              N, N, ATTNC_VERSION_TEXT, N, N, N, N, p->bq);
    if (cemit_plan_is_v2(p))
        sb_printf(out, "/* Version 2 (spec 9): %s_attention also does what libattnc does around\n"
                       " * its kernels: it rotates Q and K rows (rotary) into float32 copies, computes\n"
                       " * the tables of dot products of rows (a tensor row paired with Q or K must\n"
                       " * have D elements), evaluates every row's sink before the kernel and merges\n"
                       " * it into O and LSE after it; it allocates what these need (status 3).  Every\n"
                       " * row's position is evaluated, so a position that raises a runtime error\n"
                       " * gives status 1 even for a row no kept element reads (libattnc's\n"
                       " * interpreter decides that case); so does rotary's dims odd, negative or\n"
                       " * over D.  %s_backward (below, when the attention has one) does the same\n"
                       " * around the kernel's backward: dQ and dK are those of the rows as given\n"
                       " * (the rotation undone), a tensor row's gradient includes its dot\n"
                       " * products' share, and a sink's tensors get the sink's share. */\n",
                  N, N);
    sb_printf(out, "#ifndef ATTNC_%s_H\n#define ATTNC_%s_H\n#include <stdint.h>\n\n", N, N);
    sb_printf(out, "typedef struct %s_args {\n", N);
    sb_printf(out, "    int64_t B, H, Hkv, Lq, Lk, D, Dv;\n");
    sb_printf(out, "    const float *q, *k, *v;\n");
    sb_printf(out, "    float *o, *lse;\n");
    sb_printf(out, "    int32_t q_elem, k_elem, v_elem, o_elem; /* 0 float32 (default), 1 f16, 2 bf16 */\n");
    sb_printf(out, "    /* in elements along [B, H, L, D] (LSE: [B, H, Lq]); all zero: contiguous */\n");
    sb_printf(out, "    int64_t q_stride[4], k_stride[4], v_stride[4], o_stride[4], lse_stride[3];\n");
    for (int i = 0; i < a->nparams; i++) {
        if (!used[i]) continue;
        const Decl *d = a->params[i];
        char def[80] = "";
        if (d->init && d->init->kind == X_CONST && !(d->init->deps & (DEP_SIZE | DEP_PARAM))) {
            if (d->type == T_INT) snprintf(def, sizeof def, ", default %lld", (long long)d->init->c.i);
            else if (d->type == T_FLOAT) snprintf(def, sizeof def, ", default %.17g", d->init->c.f);
            else snprintf(def, sizeof def, ", default %s", d->init->c.b ? "1" : "0");
        }
        sb_printf(out, "    %s param_%s; /* %s param %s%s%s */\n",
                  d->type == T_INT ? "int64_t" : d->type == T_FLOAT ? "double" : "int", d->name, type_name(d->type),
                  d->name, def, d->type == T_BOOL ? " (0 or 1)" : "");
    }
    for (int i = 0; i < cemit_user_tensors(p); i++) {
        const Decl *t = a->tensors[i];
        sb_printf(out, "    const %s *tensor_%s; /* %s tensor %s of rank %d */\n", t->type == T_INT ? "int32_t" : "float",
                  t->name, type_name(t->type), t->name, t->ndims);
        sb_printf(out, "    int64_t shape_%s[%d];\n", t->name, t->ndims);
    }
    sb_printf(out, "} %s_args;\n\n", N);
    sb_printf(out, "/* O and LSE of attention %s for the call `args` describes: 0 ok, 1 runtime\n"
                   " * error of the spec, 2 invalid sizes or pointers, 3 out of memory. */\n", N);
    sb_printf(out, "int %s_attention(const %s_args *args);\n\n", N, N);
    if (with_grad) emit_grad_header(p, out);
    sb_printf(out, "#endif\n%s\n", CEMIT_HEADER_END);
}

/* The body's first part in both entry points: `a` checked (return 2) and
 * the AttnCall `c` of the call, without a tile map. */
void cemit_call_setup(const Plan *p, const char *used, StrBuf *out) {
    const Attention *a = p->attn;
    sb_printf(out, "    if (!a || !a->q || !a->k || !a->v || !a->o) return 2;\n"
                   "    if (a->B < 0 || a->H < 0 || a->Hkv <= 0 || a->Lq < 0 || a->Lk < 0 || a->D < 0 || a->Dv < 0 ||\n"
                   "        a->H %% a->Hkv != 0)\n"
                   "        return 2;\n"
                   "    const int32_t elems[4] = {a->q_elem, a->k_elem, a->v_elem, a->o_elem};\n"
                   "    for (int t = 0; t < 4; t++)\n"
                   "        if (elems[t] < 0 || elems[t] > 2) return 2;\n");
    sb_printf(out, "    AttnValue params[%d];\n", a->nparams + 1);
    sb_printf(out, "    const void *tensor_data[%d];\n", a->ntensors + 1);
    sb_printf(out, "    int64_t tensor_shape[%d][ATTNC_ABI_MAX_RANK];\n", a->ntensors + 1);
    sb_printf(out, "    for (int i = 0; i < %d; i++) params[i].i = 0;\n", a->nparams + 1);
    sb_printf(out, "    for (int i = 0; i < %d; i++) {\n"
                   "        tensor_data[i] = (const void *)0;\n"
                   "        for (int d = 0; d < ATTNC_ABI_MAX_RANK; d++) tensor_shape[i][d] = 0;\n"
                   "    }\n", a->ntensors + 1);
    for (int i = 0; i < a->nparams; i++) {
        if (!used[i]) continue;
        const Decl *d = a->params[i];
        if (d->type == T_FLOAT) sb_printf(out, "    params[%d].f = a->param_%s;\n", i, d->name);
        else if (d->type == T_INT) sb_printf(out, "    params[%d].i = a->param_%s;\n", i, d->name);
        else sb_printf(out, "    params[%d].i = a->param_%s != 0;\n", i, d->name);
    }
    for (int i = 0; i < cemit_user_tensors(p); i++) { /* the rest: version 2's tables, filled by the entry */
        const Decl *t = a->tensors[i];
        sb_printf(out, "    tensor_data[%d] = a->tensor_%s;\n", i, t->name);
        sb_printf(out, "    for (int d = 0; d < %d; d++) {\n", t->ndims);
        sb_printf(out, "        if (a->shape_%s[d] < 0) return 2;\n", t->name);
        sb_printf(out, "        tensor_shape[%d][d] = a->shape_%s[d];\n    }\n", i, t->name);
    }
    sb_printf(out,
              "    AttnCall c;\n"
              "    memset(&c, 0, sizeof c);\n"
              "    c.B = a->B, c.H = a->H, c.Hkv = a->Hkv, c.Lq = a->Lq, c.Lk = a->Lk, c.D = a->D, c.Dv = a->Dv;\n"
              "    c.q = a->q, c.k = a->k, c.v = a->v, c.o = a->o, c.lse = a->lse;\n"
              "    c.q_elem = a->q_elem, c.k_elem = a->k_elem, c.v_elem = a->v_elem, c.o_elem = a->o_elem;\n"
              "    const int64_t qn[4] = {a->B, a->H, a->Lq, a->D}, kn[4] = {a->B, a->Hkv, a->Lk, a->D};\n"
              "    const int64_t vn[4] = {a->B, a->Hkv, a->Lk, a->Dv}, on[4] = {a->B, a->H, a->Lq, a->Dv};\n"
              "    if (!attnc_aot_strides(a->q_stride, 4, qn, c.q_stride) ||\n"
              "        !attnc_aot_strides(a->k_stride, 4, kn, c.k_stride) ||\n"
              "        !attnc_aot_strides(a->v_stride, 4, vn, c.v_stride) ||\n"
              "        !attnc_aot_strides(a->o_stride, 4, on, c.o_stride) ||\n"
              "        !attnc_aot_strides(a->lse_stride, 3, on, c.lse_stride))\n"
              "        return 2;\n"
              "    c.params = params;\n"
              "    c.tensor_data = tensor_data;\n"
              "    c.tensor_shape = (const int64_t(*)[ATTNC_ABI_MAX_RANK])tensor_shape;\n"
              "    c.bq = ATTNC_BQ, c.bk = ATTNC_BK;\n"
              "    c.nqt = (a->Lq + ATTNC_BQ - 1) / ATTNC_BQ, c.nkt = (a->Lk + ATTNC_BK - 1) / ATTNC_BK;\n"
              "    c.row_start = (const int64_t *)0; /* no tile map: every kv tile, masks evaluated */\n"
              "    c.tile_kv = (const int32_t *)0;\n"
              "    c.tile_mode = (const uint8_t *)0;\n"
              "    c.group_stride_b = 0, c.group_stride_h = 0;\n"
              "    c.kernel_data = (const void *)0;\n"
              "    c.check_faults = 1;\n"
              "    c.pack = 0; /* one query head per work item: this entry never packs heads */\n"
              "    c.kv_page = (const int32_t *)0, c.page_rows = 0; /* dense K and V: never paged */\n"
              "    c.k_page_stride = 0, c.v_page_stride = 0;\n");
}

/* Part 4: NAME_attention, which runs every work item on the calling thread
 * (a version-2 attention's: c_emit_v2.c, after the functions v2 prints). */
static void emit_entry(const Plan *p, const char *used, const StrBuf *v2, StrBuf *out) {
    const Attention *a = p->attn;
    const char *N = a->name;
    sb_printf(out, "\n#ifndef ATTNC_JIT\n#include <math.h>\n#include <stdlib.h>\n#include <string.h>\n\n");
    sb_printf(out,
              "/* A tensor's strides: the given ones, or with all zero those of a contiguous\n"
              " * tensor of sizes n; rows are contiguous (the last is 1 for rank 4); 0 when\n"
              " * one is negative. */\n"
              "static int attnc_aot_strides(const int64_t *given, int rank, const int64_t *n, int64_t *out) {\n"
              "    int zero = 1;\n"
              "    for (int d = 0; d < rank; d++) {\n"
              "        if (given[d] < 0) return 0;\n"
              "        zero = zero && given[d] == 0;\n"
              "    }\n"
              "    int64_t s = 1;\n"
              "    for (int d = rank - 1; d >= 0; d--) {\n"
              "        out[d] = zero ? s : given[d];\n"
              "        s *= n[d];\n"
              "    }\n"
              "    if (rank == 4) out[3] = 1;\n"
              "    return 1;\n"
              "}\n\n");
    if (cemit_plan_is_v2(p)) {
        sb_printf(out, "%s\n", v2->p ? v2->p : "");
        cemit_v2_entry(p, used, out);
        sb_printf(out, "#endif\n");
        return;
    }
    sb_printf(out, "int %s_attention(const %s_args *a) {\n", N, N);
    cemit_call_setup(p, used, out);
    sb_printf(out,
              "    int64_t bytes = attnc_scratch_bytes(&c);\n"
              "    void *scratch = malloc((size_t)bytes + 64);\n"
              "    if (!scratch) return 3;\n"
              "    int status = 0;\n"
              "    for (int64_t b = 0; b < a->B && !status; b++)\n"
              "        for (int64_t h = 0; h < a->H && !status; h++)\n"
              "            for (int64_t qt = 0; qt < c.nqt && !status; qt++)\n"
              "                status = attnc_tile(&c, b, h, qt, scratch);\n"
              "    free(scratch);\n"
              "    return status;\n"
              "}\n#endif\n");
}

/* Part 4 (backward): NAME_backward, the driver of runtime/launch_grad.c on
 * one thread: delta per row, dO as float32, accumulators, every work item
 * (b, hk, kv tile) in order, the outputs copied on success. */
static void emit_backward_entry(const Plan *p, const char *used, StrBuf *out) {
    const Attention *a = p->attn;
    const char *N = a->name;
    int nt = a->ntensors, v2 = cemit_plan_is_v2(p), nu = cemit_user_tensors(p);
    sb_printf(out, "\n#ifndef ATTNC_JIT\n");
    if (v2) cemit_v2_backward_helpers(p, out);
    sb_printf(out, "/* O element i as float32, of its element type */\n"
                   "static float attnc_aot_o(const %s_args *a, int64_t i) {\n"
                   "    if (a->o_elem == 1) return attnc_f16_to_f32(((const uint16_t *)a->o)[i]);\n"
                   "    if (a->o_elem == 2) return attnc_bf16_to_f32(((const uint16_t *)a->o)[i]);\n"
                   "    return a->o[i];\n}\n\n", N);
    sb_printf(out, "int %s_backward(const %s_args *a, const %s_grad *g) {\n", N, N, N);
    cemit_call_setup(p, used, out);
    sb_printf(out, "    if (!g || !a->lse) return 2;\n    int status = 0;\n");
    /* version 2: rows rotated and tables filled as the forward's kernel read them (tensor_shape of the tables too) */
    if (v2) cemit_v2_prepare(p, out);
    sb_printf(out, "    const int64_t rows = a->B * a->H * a->Lq, Dv = a->Dv;\n"
                   "    const int64_t nq = rows * a->D, nk = a->B * a->Hkv * a->Lk * a->D, nv = a->B * a->Hkv * a->Lk * Dv;\n"
                   "    float *delta = (float *)malloc(sizeof(float) * (size_t)(rows + 1));\n"
                   "    float *dout = (float *)malloc(sizeof(float) * (size_t)(rows * Dv + 1));\n"
                   "    float *dq = (float *)calloc((size_t)nq + 1, sizeof(float));\n"
                   "    float *dk = (float *)calloc((size_t)nk + 1, sizeof(float));\n"
                   "    float *dv = (float *)calloc((size_t)nv + 1, sizeof(float));\n"
                   "    void *scratch = malloc((size_t)attnc_grad_scratch_bytes(&c) + 64);\n"
                   "    if (!status && (!delta || !dout || !dq || !dk || !dv || !scratch)) status = 3;\n");
    sb_printf(out, "    float *dtensor[%d], *want[%d];\n    int64_t tn[%d];\n", nt + 1, nt + 1, nt + 1);
    for (int t = 0; t < nt; t++) {
        const Decl *d = a->tensors[t];
        if (d->type == T_FLOAT && t < nu) sb_printf(out, "    want[%d] = g->dtensor_%s;\n", t, d->name);
        else sb_printf(out, "    want[%d] = (float *)0;\n", t);
    }
    for (int t = 0; t < nt; t++) {
        sb_printf(out, "    tn[%d] = 1;\n", t);
        for (int d = 0; d < a->tensors[t]->ndims; d++) sb_printf(out, "    tn[%d] *= tensor_shape[%d][%d];\n", t, t, d);
    }
    /* a version-2 table's gradient (tensors nu...) is always needed: dT gives dQ, dK and dE */
    char tables[40] = "";
    if (nu < nt) snprintf(tables, sizeof tables, " || t >= %d", nu);
    sb_printf(out, "    for (int t = 0; t < %d; t++) {\n"
                   "        const int need = want[t] != 0%s;\n"
                   "        dtensor[t] = need ? (float *)calloc((size_t)tn[t] + 1, sizeof(float)) : (float *)0;\n"
                   "        if (need && !dtensor[t]) status = 3;\n"
                   "    }\n", nt, tables);
    /* delta: softmax rowsum(dO * O) - dLSE; weight -dLSE * exp(-LSE) (0 where dLSE is 0) */
    sb_printf(out, "    for (int64_t b = 0; b < a->B && !status; b++)\n"
                   "        for (int64_t h = 0; h < a->H; h++)\n"
                   "            for (int64_t q = 0; q < a->Lq; q++) {\n"
                   "                const int64_t row = (b * a->H + h) * a->Lq + q;\n"
                   "                const int64_t oat = b * c.o_stride[0] + h * c.o_stride[1] + q * c.o_stride[2];\n"
                   "                const float dl = g->dlse ? g->dlse[row] : 0.0f;\n"
                   "                const float lse = c.lse[b * c.lse_stride[0] + h * c.lse_stride[1] + q * c.lse_stride[2]];\n"
                   "                double dot = 0;\n"
                   "                for (int64_t d = 0; d < Dv; d++) {\n"
                   "                    dout[row * Dv + d] = g->dout ? g->dout[row * Dv + d] : 0.0f;\n"
                   "                    dot += (double)dout[row * Dv + d] * attnc_aot_o(a, oat + d);\n"
                   "                }\n"
                   "                (void)lse;\n");
    if (p->sched->softmax) sb_printf(out, "                delta[row] = (float)(dot - dl);\n");
    else sb_printf(out, "                (void)dot;\n                delta[row] = dl == 0 ? 0.0f : -dl * expf(-lse);\n");
    sb_printf(out, "            }\n"
                   "    AttnGradCall gc;\n"
                   "    memset(&gc, 0, sizeof gc);\n"
                   "    gc.f = c, gc.delta = delta, gc.dout = dout, gc.dq = dq, gc.dk = dk, gc.dv = dv;\n"
                   "    for (int64_t b = 0; b < a->B && !status; b++)\n"
                   "        for (int64_t hk = 0; hk < a->Hkv && !status; hk++)\n"
                   "            for (int64_t kt = 0; kt < c.nkt && !status; kt++)\n"
                   "                status = attnc_grad_tile(&gc, b, hk, kt, dtensor, scratch);\n");
    if (v2) cemit_v2_backward_after(p, out); /* the tables', the sink's and the rotation's terms */
    sb_printf(out, "    if (!status) {\n"
                   "        if (g->dq) memcpy(g->dq, dq, sizeof(float) * (size_t)nq);\n"
                   "        if (g->dk) memcpy(g->dk, dk, sizeof(float) * (size_t)nk);\n"
                   "        if (g->dv) memcpy(g->dv, dv, sizeof(float) * (size_t)nv);\n"
                   "        for (int t = 0; t < %d; t++)\n"
                   "            if (want[t]) memcpy(want[t], dtensor[t], sizeof(float) * (size_t)tn[t]);\n"
                   "    }\n"
                   "    for (int t = 0; t < %d; t++) free(dtensor[t]);\n"
                   "    free(delta), free(dout), free(dq), free(dk), free(dv), free(scratch);\n", nt, nt);
    if (v2) cemit_v2_backward_free(p, out);
    sb_printf(out, "    return status;\n}\n#endif\n");
}

/* Parts 1 and 2 of the text: the header (or the JIT's types), the kernel
 * ABI, libm, the helpers the holes call and the dense loops; 0 when
 * templates/support.h lacks a section. */
static int emit_prologue(const Plan *p, const CEmitHoles *h, const CEmitGradHoles *g, const StrBuf *v2, int aot_grad,
                         const char *used, StrBuf *out) {
    const char *N = p->attn->name;
    sb_printf(out, "/* %s.c: attention %s as a fused, tiled FlashAttention kernel in C99,\n"
                   " * generated by attnc %s from templates/tile.c (do not edit).\n"
                   " * Compiled ahead of time it provides %s_attention (and %s_backward when\n"
                   " * the attention has a backward pass; see the header part);\n"
                   " * compiled with ATTNC_JIT defined (attnc's libtcc backend) it provides\n"
                   " * attnc_tile and attnc_scratch_bytes (and attnc_grad_tile) of middle/kernel_abi.h. */\n",
              N, N, ATTNC_VERSION_TEXT, N, N);
    sb_printf(out, "#ifdef ATTNC_JIT\n");
    int ok = cemit_put_support("jit_types", NULL, out);
    sb_printf(out, "#else\n");
    emit_header(p, aot_grad, used, out);
    sb_printf(out, "#endif\n\n");
    cemit_put_kernel_abi(out);
    ok = ok && cemit_put_support("libm", NULL, out);
    sb_printf(out, "\n");
    ok = ok && cemit_put_support("inf", NULL, out);
    /* templates/tile.c's band of keys (ATTNC_BAND), pasted only where a schedule has one, as helpers are */
    if (p->sched->band_lo != IR_NONE) ok = ok && cemit_put_support("band_keys", NULL, out);
    put_helpers(h, g, v2, NULL, out);
    sb_printf(out, "\n");
    /* the dense loops: compiled here ahead of time; the JIT calls libattnc's -O3 copies */
    sb_printf(out, "#ifdef ATTNC_JIT\n#define ATTNC_DENSE_API\n#define ATTNC_DENSE_PROTOTYPES_ONLY\n#else\n"
                   "#define ATTNC_DENSE_API static inline\n"
                   "#endif\n");
    /* base/half.h, which the dense loops' definitions call to widen and round 16-bit tensors */
    sb_printf(out, "#ifndef ATTNC_JIT\n");
    cemit_put_half(NULL, out);
    sb_printf(out, "#endif\n%.*s\n", (int)attnc_dense_template_len, attnc_dense_template);
    return ok;
}

/* The backward kernel (templates/tile_bwd.c); only for the JIT when the
 * ahead-of-time text has no NAME_backward. */
static int emit_backward(const CEmitGradHoles *g, int aot_grad, StrBuf *out) {
    sb_printf(out, "\n#define ATTNC_GRAD_ROW_SLOTS %d\n#define ATTNC_GRAD_COL_SLOTS %d\n", g->nrow_slots,
              g->ncol_slots);
    if (!aot_grad) sb_printf(out, "#ifdef ATTNC_JIT /* no NAME_backward calls it ahead of time */\n");
    int ok = fill_grad_template(g, out);
    if (!aot_grad) sb_printf(out, "#endif\n");
    return ok;
}

/* The backward's holes when the plan has a backward schedule the emitter
 * can express (*have = 1); otherwise the text has no backward kernel and
 * only out of memory is an error. */
static attnc_status grad_holes(const Plan *p, CEmitGradHoles *g, int *have, attnc_error *err) {
    *have = 0;
    memset(g, 0, sizeof *g);
    if (!p->grad_sched || p->grad_sched->base.why[0]) return ATTNC_OK;
    attnc_error gerr = {0};
    attnc_status st = cemit_grad_holes(p, g, &gerr);
    if (st == ATTNC_ERR_NOMEM) return set_error(err, st, "%s", gerr.message);
    *have = st == ATTNC_OK;
    return ATTNC_OK;
}

attnc_status cemit_source(const Plan *p, StrBuf *out, attnc_error *err) {
    CEmitHoles h;
    CEmitGradHoles g;
    int have_grad = 0;
    memset(&g, 0, sizeof g); /* freed whatever happens below */
    StrBuf v2 = {0};
    attnc_status st = cemit_holes(p, &h, err);
    if (!st) st = grad_holes(p, &g, &have_grad, err);
    if (!st) st = cemit_v2_functions(p, &v2, err);
    /* a version-2 attention's NAME_backward runs its kernel's backward with the sink's terms
     * (c_emit_v2_grad.c); without them there is no NAME_backward, the rest stands */
    int aot_grad = have_grad;
    if (!st && have_grad && cemit_plan_is_v2(p)) {
        StrBuf dsink = {0};
        attnc_error gerr = {0};
        attnc_status gst = cemit_v2_grad_functions(p, &dsink, &gerr);
        if (gst == ATTNC_ERR_NOMEM) st = set_error(err, gst, "%s", gerr.message);
        else if (gst) aot_grad = 0;
        else sb_printf(&v2, "%s", dsink.p ? dsink.p : "");
        sb_free(&dsink);
    }
    char *used = calloc((size_t)p->attn->nparams + 1, 1);
    if (!st && (!used || !params_read(p, used)))
        st = set_error(err, ATTNC_ERR_NOMEM, "out of memory while emitting C");
    if (!st) {
        int ok = emit_prologue(p, &h, have_grad ? &g : NULL, &v2, aot_grad, used, out);
        cemit_put_schedule_macros(p->sched, out);
        sb_printf(out, "#ifdef ATTNC_JIT\n#define ATTNC_LINKAGE\n#else\n#define ATTNC_LINKAGE static\n#endif\n\n");
        if (!ok)
            st = set_error(err, ATTNC_ERR_INTERNAL, "cannot emit C for attention '%s': %s", p->attn->name,
                           "the embedded templates/support.h lacks a section");
        else if (!cemit_fill_template(attnc_tile_template, attnc_tile_template_len, &h, NULL, out))
            st = set_error(err, ATTNC_ERR_INTERNAL, "cannot emit C for attention '%s': %s", p->attn->name,
                           "the embedded template lacks a hole");
        else if (have_grad && !emit_backward(&g, aot_grad, out))
            st = set_error(err, ATTNC_ERR_INTERNAL, "cannot emit C for attention '%s': %s", p->attn->name,
                           "the embedded backward template lacks a hole");
        else {
            emit_entry(p, used, &v2, out);
            if (aot_grad) emit_backward_entry(p, used, out);
        }
        if (!st && out->failed) st = set_error(err, ATTNC_ERR_NOMEM, "out of memory while emitting C");
    }
    free(used);
    sb_free(&v2);
    cemit_holes_free(&h);
    cemit_grad_holes_free(&g);
    return st;
}
