/* tcc_backend.c — backend "tcc": the plan's C (backends/c/c_emit.c) compiled
 * in memory by libtcc, run by launch.c like every compiled backend (same
 * threads, tile map and per-call binding).
 *
 * Requires: a Plan; libtcc 0.9.27 when built with ATTNC_TCC_JIT.  Debian's
 * libtcc is only a non-position-independent static archive, so the shared
 * library is built without the JIT: there the backend still emits C, and
 * compiling says that the JIT is in libattnc.a only.
 * Produces: a CompiledKernel whose code lives in memory libtcc owns (freed
 * with the kernel).  The generated C includes no header and needs no runtime
 * library (-nostdlib); each libm function it calls is bound to the host's,
 * and its dense loops (templates/dense.c) to libattnc's vectorised copies
 * (jit_dense.c): libtcc compiles only what differs between attentions.
 * libtcc 0.9.27 keeps global state while compiling, so compiles take a
 * mutex; the compiled code itself is reentrant. */
#include "tcc_backend.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "c_emit.h"
#include "jit_dense.h"

#ifdef ATTNC_TCC_JIT
#include <libtcc.h>
#include <pthread.h>

struct JitKernel {
    TCCState *tcc;
    double compile_ms;
};

static pthread_mutex_t tcc_lock = PTHREAD_MUTEX_INITIALIZER;

/* libtcc's messages: keep the first error (warnings only when nothing else). */
typedef struct JitMessages {
    char first[400];
    int have_error;
} JitMessages;

static void collect_message(void *opaque, const char *msg) {
    JitMessages *m = opaque;
    int is_error = strstr(msg, "error") != NULL;
    if (m->have_error || (m->first[0] && !is_error)) return;
    snprintf(m->first, sizeof m->first, "%s", msg);
    m->have_error = is_error;
}

#define BIND_EXTERNAL(name) {#name, (const void *)name},
static const struct {
    const char *name;
    const void *addr;
} externals[] = {CEMIT_EXTERNAL_FUNCTIONS(BIND_EXTERNAL)};
#define DENSE_NAME(name) #name,
static const char *const dense_functions[] = {CEMIT_DENSE_FUNCTIONS(DENSE_NAME)};

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

attnc_status jit_compile_c(const char *source, const char *what, JitKernel **out, CompiledKernel *ck,
                           attnc_error *err) {
    return jit_compile_c_with(source, what, NULL, 0, out, ck, err);
}

attnc_status jit_compile_c_with(const char *source, const char *what, const JitSymbol *extra, size_t nextra,
                                JitKernel **out, CompiledKernel *ck, attnc_error *err) {
    *out = NULL;
    JitKernel *k = calloc(1, sizeof *k);
    if (!k) return set_error(err, ATTNC_ERR_NOMEM, "out of memory");
    JitMessages msgs = {{0}, 0};
    const char *step = "create a libtcc state";
    double t0 = now_ms();
    pthread_mutex_lock(&tcc_lock);
    k->tcc = tcc_new();
    int ok = k->tcc != NULL;
    if (ok) {
        tcc_set_error_func(k->tcc, &msgs, collect_message);
        tcc_set_options(k->tcc, "-nostdlib"); /* no crt, no libc, no libtcc1: nothing to look for on disk */
        tcc_set_output_type(k->tcc, TCC_OUTPUT_MEMORY);
        tcc_define_symbol(k->tcc, CEMIT_JIT_MACRO, "1");
        step = "compile";
        ok = tcc_compile_string(k->tcc, source) == 0;
    }
    for (size_t i = 0; ok && i < sizeof externals / sizeof externals[0]; i++)
        tcc_add_symbol(k->tcc, externals[i].name, externals[i].addr);
    for (size_t i = 0; ok && i < nextra; i++) tcc_add_symbol(k->tcc, extra[i].name, extra[i].addr);
    for (size_t i = 0; ok && i < sizeof dense_functions / sizeof dense_functions[0]; i++)
        tcc_add_symbol(k->tcc, dense_functions[i], jit_dense_function(dense_functions[i]));
    if (ok) {
        step = "link";
        ok = tcc_relocate(k->tcc, TCC_RELOCATE_AUTO) >= 0;
    }
    if (ok) {
        step = "find the kernel functions of";
        ck->tile = (AttnTileFn)tcc_get_symbol(k->tcc, CEMIT_TILE_SYMBOL);
        ck->scratch_bytes = (AttnScratchFn)tcc_get_symbol(k->tcc, CEMIT_SCRATCH_SYMBOL);
        ck->kernel_data = NULL;
        ok = ck->tile && ck->scratch_bytes;
        /* NULL when the text has no backward kernel (templates/tile_bwd.c) */
        ck->grad_tile = (AttnGradTileFn)tcc_get_symbol(k->tcc, CEMIT_GRAD_TILE_SYMBOL);
        ck->grad_scratch_bytes = (AttnScratchFn)tcc_get_symbol(k->tcc, CEMIT_GRAD_SCRATCH_SYMBOL);
        if (!ck->grad_tile || !ck->grad_scratch_bytes) ck->grad_tile = NULL, ck->grad_scratch_bytes = NULL;
    }
    pthread_mutex_unlock(&tcc_lock);
    k->compile_ms = now_ms() - t0;
    if (!ok) {
        jit_kernel_free(k);
        return set_error(err, ATTNC_ERR_INTERNAL,
                         "libtcc could not %s the C generated for attention '%s' (a bug in attnc; please report "
                         "it): %s; `attnc emit FILE --variant %s --target c` prints that C",
                         step, what, msgs.first[0] ? msgs.first : "no message", what);
    }
    *out = k;
    return ATTNC_OK;
}

double jit_compile_ms(const JitKernel *k) { return k ? k->compile_ms : 0; }

void *jit_symbol(JitKernel *k, const char *name) {
    if (!k || !k->tcc) return NULL;
    pthread_mutex_lock(&tcc_lock); /* libtcc's global state */
    void *f = tcc_get_symbol(k->tcc, name);
    pthread_mutex_unlock(&tcc_lock);
    return f;
}

void jit_kernel_free(JitKernel *k) {
    if (!k) return;
    if (k->tcc) {
        pthread_mutex_lock(&tcc_lock);
        tcc_delete(k->tcc);
        pthread_mutex_unlock(&tcc_lock);
    }
    free(k);
}

#else /* no JIT in this library */

attnc_status jit_compile_c_with(const char *source, const char *what, const JitSymbol *extra, size_t nextra,
                                JitKernel **out, CompiledKernel *ck, attnc_error *err) {
    (void)extra;
    (void)nextra;
    return jit_compile_c(source, what, out, ck, err);
}

attnc_status jit_compile_c(const char *source, const char *what, JitKernel **out, CompiledKernel *ck,
                           attnc_error *err) {
    (void)source;
    (void)ck;
    *out = NULL;
    return set_error(err, ATTNC_ERR_USAGE,
                     "backend 'tcc' cannot compile attention '%s' in the shared libattnc: libtcc is only available "
                     "as a static archive that is not position-independent; link libattnc.a, or use `attnc emit "
                     "--target c` and a C compiler",
                     what);
}

double jit_compile_ms(const JitKernel *k) {
    (void)k;
    return 0;
}

void jit_kernel_free(JitKernel *k) { (void)k; }

void *jit_symbol(JitKernel *k, const char *name) {
    (void)k;
    (void)name;
    return NULL;
}

#endif

static attnc_status tcc_backend_compile(const Plan *p, const attnc_options *opts, CompiledKernel *ck, void **state,
                                        attnc_error *err) {
    (void)opts;
    StrBuf src = {0};
    JitKernel *k = NULL;
    attnc_status st = cemit_source(p, &src, err);
    if (!st) st = jit_compile_c(src.p, p->attn->name, &k, ck, err);
    ck->packs = 1; /* templates/tile.c computes work items of packed heads */
    ck->pages = 1; /* templates/tile.c reads a paged K and V in place (AttnCall.kv_page) */
    ck->short_kv_tiles = 1; /* and takes kv tiles of AttnCall.bk keys below ATTNC_BK */
    sb_free(&src);
    *state = k;
    return st;
}

static void tcc_backend_release(void *state) { jit_kernel_free(state); }

static attnc_status tcc_backend_emit(const Plan *p, const attnc_options *opts, const char *target, StrBuf *out,
                                     attnc_error *err) {
    (void)opts;
    if (strcmp(target, "c") != 0)
        return set_error(err, ATTNC_ERR_USAGE, "backend 'tcc' emits target 'c', not '%s'", target);
    return cemit_source(p, out, err);
}

#ifdef ATTNC_TCC_JIT
enum { TCC_CAN_RUN = 1 };
#else
enum { TCC_CAN_RUN = 0 };
#endif
const BackendImpl backend_tcc = {
    .id = ATTNC_BACKEND_TCC,
    .can_run = TCC_CAN_RUN,
    .compile = tcc_backend_compile,
    .release = tcc_backend_release,
    .emit = tcc_backend_emit,
    .layouts = 1, /* f16 / bf16 and strides: templates/tile.c */
    /* the DIAG hole of templates/tile.c (backends/c/c_holes.c); no grid tables: nat_rpb took 1.35x the time of
     * its terms per element (tcc, 2026-12-03) */
    .toeplitz = TABLES_DISTANCE,
};
