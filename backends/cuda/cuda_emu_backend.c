/* cuda_emu_backend.c — backend "cuda-emu": the CUDA C of backends/cuda run on
 * the CPU.  Two kernels, both compiled by libtcc (backends/c/tcc_backend.c):
 *
 *  - the tensor-core kernel (templates/cuda_fa2.cu, FlashAttention-2's
 *    design, cuda_fa2_emit.c), run on the strict SIMT emulation
 *    (emu_simt.h: one emulated block of 128 threads per work item; the JIT
 *    binds SIMT_EXTERNAL_FUNCTIONS), for every call it handles
 *    (fa2_call_ok, cuda_fa2_call_ok): 64 x 64 tiles, Q, K, V all f16, all
 *    bf16 (D and Dv multiples of 16 up to 256) or all float32 (through
 *    TF32, up to 128), one query head per work item, no paged K/V, Q, K, V
 *    16-byte aligned with strides multiples of 16 bytes, low-rank
 *    columns that fit in shared memory with the tiles (else attnc_tile
 *    answers 3 and the item runs on the scaffold).  One
 *    specialisation per (D, Dv, type), compiled by the launch's prepare hook
 *    and kept with the kernel (at most FA2_VERSIONS);
 *  - the scaffold (templates/cuda_tile.cu, cuda_emit.c): every other call,
 *    each phase of a thread block a loop over its threads.
 *
 * The choice is per call, from the AttnCall alone, so every work item of a
 * launch runs the same kernel.  A version-2 attention's kernels around the
 * kernel (rows, tables, sinks, merge: cuda_emit_v2.c) are the scaffold
 * text's too, handed to api/api_cuda_v2.c as CompiledKernel.v2.  It also serves `attnc emit --target cuda` (the scaffold) and
 * `--target cuda:TYPE:D:DV` (the tensor-core kernel's specialisation: cuda_emu_emit).
 *
 * Requires: libtcc (ATTNC_HAVE_TCC); compiled twice like tcc_backend.c, with
 * ATTNC_TCC_JIT only in the variant that can run kernels.
 * Produces: backend_cuda_emu (backend.h); cuda_emu_fa2_stats for the tests. */
#include "cuda_emu_backend.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "c_emit.h"
#include "cuda_emit.h"
#include "cuda_fa2_emit.h"
#include "rows_table.h"
#include "emu_simt.h"
#include "tcc_backend.h"

enum { FA2_VERSIONS = 8, FA2_MESSAGE = 512 };

typedef struct Fa2Version {
    int D, Dv, type; /* CUDA_FA2_* */
    JitKernel *jit;
    AttnTileFn tile;
} Fa2Version;

typedef struct CudaEmuState {
    const Plan *p;
    JitKernel *scaffold;
    AttnTileFn scaffold_tile;
    AttnScratchFn scaffold_scratch;
    int fa2_plan;  /* cuda_fa2_plan_ok */
    int exact_f32; /* ATTNC_OPT_EXACT_F32: float32 calls on the scaffold, not through TF32 */
    V2Kernels v2;  /* a version-2 attention's kernels of the scaffold's text (cuda_emit_v2.c) */
    pthread_mutex_t lock;
    atomic_int nversions; /* v[0 .. nversions - 1] are built and never change */
    Fa2Version v[FA2_VERSIONS];
} CudaEmuState;

/* what the tests read (cuda_emu_fa2_stats) */
static atomic_llong fa2_items;
static pthread_mutex_t fa2_fault_lock = PTHREAD_MUTEX_INITIALIZER;
static char fa2_fault[FA2_MESSAGE];

void cuda_emu_fa2_stats(long long *items, char *fault, size_t n) {
    *items = atomic_load(&fa2_items);
    pthread_mutex_lock(&fa2_fault_lock);
    if (fault && n) snprintf(fault, n, "%s", fa2_fault);
    pthread_mutex_unlock(&fa2_fault_lock);
}

/* Whether the tensor-core kernel computes call c (the plan and the options allowing it). */
static int fa2_call_ok(const CudaEmuState *s, const AttnCall *c) {
    return s->fa2_plan && cuda_fa2_takes(s->p, c, s->exact_f32 ? ATTNC_OPT_EXACT_F32 : 0);
}

/* The built specialisation for c, or NULL. */
static AttnTileFn fa2_find(const CudaEmuState *s, const AttnCall *c) {
    int n = atomic_load_explicit(&((CudaEmuState *)s)->nversions, memory_order_acquire);
    int type = cuda_fa2_type(c->q_elem);
    for (int i = 0; i < n; i++)
        if (s->v[i].D == c->D && s->v[i].Dv == c->Dv && s->v[i].type == type) return s->v[i].tile;
    return NULL;
}

#define BIND_SIMT(name) {#name, (const void *)name},
static const JitSymbol simt_symbols[] = {SIMT_EXTERNAL_FUNCTIONS(BIND_SIMT)};

/* Build c's specialisation unless it is (or the cache is full: then c runs on the scaffold). */
static attnc_status fa2_build(CudaEmuState *s, const AttnCall *c, attnc_error *err) {
    attnc_status st = ATTNC_OK;
    pthread_mutex_lock(&s->lock);
    int n = atomic_load_explicit(&s->nversions, memory_order_relaxed);
    if (!fa2_find(s, c) && n < FA2_VERSIONS) {
        Fa2Version *v = &s->v[n];
        StrBuf src = {0};
        CompiledKernel ck;
        memset(&ck, 0, sizeof ck);
        v->D = (int)c->D, v->Dv = (int)c->Dv, v->type = cuda_fa2_type(c->q_elem);
        st = cuda_fa2_emit_source(s->p, v->D, v->Dv, v->type, &src, err);
        if (!st)
            st = jit_compile_c_with(src.p, s->p->attn->name, simt_symbols, sizeof simt_symbols / sizeof simt_symbols[0],
                                    &v->jit, &ck, err);
        sb_free(&src);
        if (!st) {
            v->tile = ck.tile;
            atomic_store_explicit(&s->nversions, n + 1, memory_order_release);
        }
    }
    pthread_mutex_unlock(&s->lock);
    return st;
}

/* CompiledKernel.prepare: the tensor-core specialisation the launch's calls need. */
static attnc_status cuda_emu_prepare(const AttnCall *c, attnc_error *err) {
    CudaEmuState *s = (CudaEmuState *)c->kernel_data;
    return fa2_call_ok(s, c) ? fa2_build(s, c, err) : ATTNC_OK;
}

/* CompiledKernel.tile: the tensor-core kernel when it handles c and was
 * built (and the call's low-rank columns fit), else the scaffold.  A refusal of the SIMT emulation (a bug of the
 * device code) is kept for cuda_emu_fa2_stats and fails the work item. */
static int cuda_emu_tile(const AttnCall *c, int64_t b, int64_t h, int64_t qt, void *scratch) {
    const CudaEmuState *s = c->kernel_data;
    AttnTileFn fn = fa2_call_ok(s, c) ? fa2_find(s, c) : NULL;
    int r = fn ? fn(c, b, h, qt, scratch) : 3;
    if (r == 3) return s->scaffold_tile(c, b, h, qt, scratch); /* not for this kernel, or too many low-rank columns */
    atomic_fetch_add(&fa2_items, 1);
    if (r == 2) {
        pthread_mutex_lock(&fa2_fault_lock);
        snprintf(fa2_fault, sizeof fa2_fault, "%.*s", FA2_MESSAGE - 1, (const char *)scratch);
        pthread_mutex_unlock(&fa2_fault_lock);
    }
    return r != 0;
}

static int64_t cuda_emu_scratch(const AttnCall *c) {
    const CudaEmuState *s = c->kernel_data;
    int64_t n = s->scaffold_scratch(c);
    return n > FA2_MESSAGE ? n : FA2_MESSAGE;
}

static void cuda_emu_release(void *state) {
    CudaEmuState *s = state;
    if (!s) return;
    jit_kernel_free(s->scaffold);
    for (int i = 0; i < atomic_load(&s->nversions); i++) jit_kernel_free(s->v[i].jit);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

/* float64 libm of the version-2 kernels (angles, the sinks' merge), bound by name like the C emitter's */
static const JitSymbol v2_libm[] = {{"cos", (const void *)cos}, {"sin", (const void *)sin}, {"pow", (const void *)pow},
                                    {"exp", (const void *)exp}, {"log", (const void *)log}};

/* The version-2 kernels of the scaffold's text (those the attention has: rows always). */
static attnc_status v2_find(CudaEmuState *s, attnc_error *err) {
    const char *N = s->p->attn->name;
    char name[4][160];
    const char *what[4] = {"rows", "table", "sinks", "merge"};
    void *f[4];
    for (int i = 0; i < 4; i++) {
        snprintf(name[i], sizeof name[i], "%s_v2_%s", N, what[i]);
        f[i] = jit_symbol(s->scaffold, name[i]);
    }
    *(void **)&s->v2.rows = f[0], *(void **)&s->v2.table = f[1], *(void **)&s->v2.sinks = f[2];
    *(void **)&s->v2.merge = f[3];
    int tables = s->p->rows && s->p->rows->ntables > 0;
    if (!f[0] || (tables && !f[1]) || (s->p->attn->sink && (!f[2] || !f[3])))
        return set_error(err, ATTNC_ERR_INTERNAL, "the CUDA text of attention '%s' lacks its version-2 kernels", N);
    return ATTNC_OK;
}

static attnc_status cuda_emu_compile(const Plan *p, const attnc_options *opts, CompiledKernel *ck, void **state,
                                     attnc_error *err) {
    StrBuf src = {0};
    *state = NULL;
    CudaEmuState *s = calloc(1, sizeof *s);
    if (!s) return set_error(err, ATTNC_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&s->lock, NULL);
    atomic_init(&s->nversions, 0);
    s->p = p;
    s->fa2_plan = cuda_fa2_plan_ok(p);
    s->exact_f32 = opts && (opts->flags & ATTNC_OPT_EXACT_F32);
    attnc_status st = cuda_emit_source(p, &src, err);
    if (!st) st = jit_compile_c_with(src.p, p->attn->name, v2_libm, sizeof v2_libm / sizeof v2_libm[0], &s->scaffold, ck, err);
    sb_free(&src);
    if (!st && cuda_plan_is_v2(p)) st = v2_find(s, err);
    if (st) {
        cuda_emu_release(s);
        return st;
    }
    s->scaffold_tile = ck->tile;
    s->scaffold_scratch = ck->scratch_bytes;
    ck->tile = cuda_emu_tile;
    ck->scratch_bytes = cuda_emu_scratch;
    ck->prepare = cuda_emu_prepare;
    ck->kernel_data = s;
    ck->v2 = cuda_plan_is_v2(p) ? &s->v2 : NULL;
    ck->packs = 1; /* templates/cuda_tile.cu computes work items of packed heads */
    ck->pages = 1; /* templates/cuda_tile.cu reads a paged K and V in place (AttnCall.kv_page) */
    ck->short_kv_tiles = 1; /* and takes kv tiles of AttnCall.bk keys below ATTNC_BK (the tensor-core kernel
                             * takes no pages: cuda_fa2_emit.c) */
    *state = s;
    return ATTNC_OK;
}

/* A head size of a "cuda:TYPE:D:DV" target: a multiple of 16 up to CUDA_FA2_MAX_HEAD, then `end`; NULL if not. */
static const char *fa2_head(const char *s, char end, int *out) {
    char *after;
    long v = s[0] >= '1' && s[0] <= '9' ? strtol(s, &after, 10) : 0;
    if (v <= 0 || v % 16 || v > CUDA_FA2_MAX_HEAD || *after != end) return NULL;
    *out = (int)v;
    return after + (end ? 1 : 0);
}

/* "cuda:f16:D:DV" or "cuda:bf16:D:DV" into its type and head sizes; 0 if the target is not one. */
static int fa2_target(const char *target, int *D, int *Dv, int *bf16) {
    const char *s = target;
    if (strncmp(s, "cuda:", 5) != 0) return 0;
    s += 5;
    *bf16 = strncmp(s, "bf16:", 5) == 0;
    if (!*bf16 && strncmp(s, "f16:", 4) != 0) return 0;
    s += *bf16 ? 5 : 4;
    return (s = fa2_head(s, ':', D)) != NULL && fa2_head(s, 0, Dv) != NULL;
}

/* Target "cuda": the scaffold (every call).  Target "cuda:TYPE:D:DV" (TYPE f16 or bf16, D and Dv multiples
 * of 16 up to 256, e.g. "cuda:bf16:128:128"): the tensor-core kernel's specialisation for those calls, the
 * text cuda-emu runs (entry point NAME_fa2_launch under nvcc).  The emit hook sees no call, so the
 * specialisation is named in the target (`attnc emit --target cuda --dtype bf16 --head-dim 128`;
 * docs/cuda.md). */
static attnc_status cuda_emu_emit(const Plan *p, const attnc_options *opts, const char *target, StrBuf *out,
                                  attnc_error *err) {
    (void)opts;
    int D, Dv, bf16;
    if (!strcmp(target, "cuda")) return cuda_emit_source(p, out, err);
    if (!fa2_target(target, &D, &Dv, &bf16))
        return set_error(err, ATTNC_ERR_USAGE, "backend 'cuda-emu' emits target 'cuda' or 'cuda:f16|bf16:D:DV' "
                         "(D, DV multiples of 16 up to %d), not '%s'", CUDA_FA2_MAX_HEAD, target);
    if (!cuda_fa2_plan_ok(p))
        return set_error(err, ATTNC_ERR_RUNTIME, "attention '%s' has no tensor-core kernel: %s", p->attn->name,
                         p->bq != 64 || p->bk != 64 ? "it needs 64 x 64 tiles" : p->sched->why);
    return cuda_fa2_emit_source(p, D, Dv, bf16, out, err);
}

#ifdef ATTNC_TCC_JIT
enum { CUDA_EMU_CAN_RUN = 1 };
#else
enum { CUDA_EMU_CAN_RUN = 0 };
#endif
const BackendImpl backend_cuda_emu = {
    .id = ATTNC_BACKEND_CUDA_EMU,
    .can_run = CUDA_EMU_CAN_RUN,
    .compile = cuda_emu_compile,
    .release = cuda_emu_release,
    .emit = cuda_emu_emit,
    .layouts = 1, /* f16 / bf16 and strides: templates/cuda_tile.cu and cuda_fa2.cu */
    .toeplitz = TABLES_DISTANCE, /* the DIAG hole of templates/cuda_tile.cu and cuda_fa2.cu (backends/c/c_holes.c) */
};
