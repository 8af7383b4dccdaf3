/* test_nomem.c — every allocation failure along compile and run surfaces as
 * ATTNC_ERR_NOMEM, with no crash and no leak (the sanitizer build's leak
 * checker sees leaks), and leaves nothing behind that a retry would trip on.
 *
 * The executable is linked with -Wl,--wrap=malloc,... (tests/nomem.cmake), so
 * every allocation made by libattnc's objects (and Flex/Bison's generated
 * code) goes through the __wrap_* functions below: they count allocations and
 * fail the Nth one when armed.  LLVM is a shared library and keeps its own
 * allocations; libtcc is linked statically, so its allocations would be
 * wrapped too, but libtcc does not survive a failed allocation: the libtcc
 * entry points attnc calls are wrapped as well and allocations inside them
 * are neither counted nor failed.
 *
 * For each spec and each backend of the build: a reference run with nothing
 * failing, then for N = 1, 2, ... the whole sequence (spec from text,
 * compile, params from text, tensor shapes, run with LSE, kept pairs, for
 * the cases that ask (Case.backward) two backward calls on the kernel (Q, K
 * and V with rows apart, then plain, into the buffers the first kept), emit
 * ir/c/cuda, and llvm-ir for the cases that ask: Case.llvm_text) with the Nth allocation failing, until a sequence
 * completes without reaching N.  The call during which the failure fired
 * must return ATTNC_ERR_NOMEM (and say so in err) and then succeed when
 * called again; every other call must give the reference's status and output
 * exactly.  The allocations every backend makes alike (reading and parsing the
 * text; emit ir's second run of the middle end) are failed on the case's first
 * backend only.  The LLVM backend caches compiled kernels, so before the reference
 * a "cold" pass fails every allocation of the first compile (those of the
 * lowering included, which a cached compile skips); its kernel must then
 * agree with the interpreter, which a failed compile left in the cache would
 * break.  Test allocations go through __real_malloc and are not counted. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attnc.h"
#include "launch_stats.h"

/* ---- the fault-injecting allocator ------------------------------------- */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);

static atomic_long alloc_count; /* allocations made by attnc since the last arm() */
static atomic_long fail_at;     /* the allocation to fail (1-based); 0: none */
static atomic_int fired;        /* the failure happened */
static _Thread_local int in_tcc; /* inside a libtcc call: not counted, never failed */

static int should_fail(void) {
    if (in_tcc) return 0;
    long n = atomic_fetch_add(&alloc_count, 1) + 1;
    if (n != atomic_load(&fail_at)) return 0;
    atomic_store(&fired, 1);
    return 1;
}

void *__wrap_malloc(size_t n) { return should_fail() ? NULL : __real_malloc(n); }
void *__wrap_calloc(size_t n, size_t size) { return should_fail() ? NULL : __real_calloc(n, size); }
void *__wrap_realloc(void *p, size_t n) { return should_fail() ? NULL : __real_realloc(p, n); }
char *__wrap_strdup(const char *s) { return should_fail() ? NULL : __real_strdup(s); }
char *__wrap_strndup(const char *s, size_t n) { return should_fail() ? NULL : __real_strndup(s, n); }

static void arm(long n) {
    atomic_store(&alloc_count, 0);
    atomic_store(&fired, 0);
    atomic_store(&fail_at, n);
}

#ifdef NOMEM_WRAP_TCC
#include <libtcc.h>
#define EXEMPT(call) \
    do {             \
        in_tcc++;    \
        call;        \
        in_tcc--;    \
    } while (0)
TCCState *__real_tcc_new(void);
void __real_tcc_delete(TCCState *s);
void __real_tcc_set_error_func(TCCState *s, void *opaque, void (*f)(void *, const char *));
int __real_tcc_set_options(TCCState *s, const char *str);
int __real_tcc_set_output_type(TCCState *s, int type);
void __real_tcc_define_symbol(TCCState *s, const char *sym, const char *value);
int __real_tcc_compile_string(TCCState *s, const char *buf);
int __real_tcc_add_symbol(TCCState *s, const char *name, const void *val);
int __real_tcc_relocate(TCCState *s, void *ptr);
void *__real_tcc_get_symbol(TCCState *s, const char *name);
TCCState *__wrap_tcc_new(void);
void __wrap_tcc_delete(TCCState *s);
void __wrap_tcc_set_error_func(TCCState *s, void *opaque, void (*f)(void *, const char *));
int __wrap_tcc_set_options(TCCState *s, const char *str);
int __wrap_tcc_set_output_type(TCCState *s, int type);
void __wrap_tcc_define_symbol(TCCState *s, const char *sym, const char *value);
int __wrap_tcc_compile_string(TCCState *s, const char *buf);
int __wrap_tcc_add_symbol(TCCState *s, const char *name, const void *val);
int __wrap_tcc_relocate(TCCState *s, void *ptr);
void *__wrap_tcc_get_symbol(TCCState *s, const char *name);

TCCState *__wrap_tcc_new(void) {
    TCCState *r;
    EXEMPT(r = __real_tcc_new());
    return r;
}
void __wrap_tcc_delete(TCCState *s) { EXEMPT(__real_tcc_delete(s)); }
void __wrap_tcc_set_error_func(TCCState *s, void *opaque, void (*f)(void *, const char *)) {
    EXEMPT(__real_tcc_set_error_func(s, opaque, f));
}
int __wrap_tcc_set_options(TCCState *s, const char *str) {
    int r;
    EXEMPT(r = __real_tcc_set_options(s, str));
    return r;
}
int __wrap_tcc_set_output_type(TCCState *s, int type) {
    int r;
    EXEMPT(r = __real_tcc_set_output_type(s, type));
    return r;
}
void __wrap_tcc_define_symbol(TCCState *s, const char *sym, const char *value) {
    EXEMPT(__real_tcc_define_symbol(s, sym, value));
}
int __wrap_tcc_compile_string(TCCState *s, const char *buf) {
    int r;
    EXEMPT(r = __real_tcc_compile_string(s, buf));
    return r;
}
int __wrap_tcc_add_symbol(TCCState *s, const char *name, const void *val) {
    int r;
    EXEMPT(r = __real_tcc_add_symbol(s, name, val));
    return r;
}
int __wrap_tcc_relocate(TCCState *s, void *ptr) {
    int r;
    EXEMPT(r = __real_tcc_relocate(s, ptr));
    return r;
}
void *__wrap_tcc_get_symbol(TCCState *s, const char *name) {
    void *r;
    EXEMPT(r = __real_tcc_get_symbol(s, name));
    return r;
}
#endif

/* The test's own memory: not counted, never failed. */
static void *xalloc(size_t n) {
    void *p = __real_calloc(n ? n : 1, 1);
    if (!p) {
        fprintf(stderr, "test_nomem: out of memory\n");
        exit(1);
    }
    return p;
}
static char *xstrdup(const char *s) { return strcpy(xalloc(strlen(s) + 1), s); }

/* ---- the specs --------------------------------------------------------- */

typedef struct Case {
    const char *name, *text, *variant;
    const char *param_name, *param_text; /* one param given as text, or NULL */
    attnc_define define;                 /* one param fixed at compile time, or {NULL} */
    int flags;                           /* attnc_options.flags */
    attnc_status spec_status, run_status; /* what the calls say with nothing failing */
    /* emit llvm-ir under each failure too (llvm backend): an O3 compile and a printed module each time, ~80% of
     * the test's time when every case did it (~370 s in the sanitizer build); its lowering is the compile's,
     * which every case's cold compiles fail allocation by allocation anyway */
    int llvm_text;
    const attnc_sizes *shape; /* the call's sizes, or NULL: default_sizes */
    int grid;                 /* the compiled backends must run it in block order (launch_grid) */
    int backward;             /* run two backward calls too (where the backend has a backward pass) */
} Case;

static const attnc_sizes default_sizes = {2, 2, 1, 9, 11, 8, 4};
/* a 2-D neighbourhood on an 8 x 8 grid: the block-order plan and its kept row buffers (runtime/kept_buffers.c) */
static const attnc_sizes grid_sizes = {1, 2, 1, 64, 64, 8, 4};

static Case cases[] = {
    {"plain", "attention plain { }\n", NULL, NULL, NULL, {NULL, NULL}, 0, ATTNC_OK, ATTNC_OK, 0, NULL, 0, 0},
    {"causal_alibi", "attention causal_alibi {\n    use causal;\n    use alibi;\n}\n", NULL, NULL, NULL,
     {"alibi_max", "4.0"}, ATTNC_OPT_SEPARABLE_BIAS, ATTNC_OK, ATTNC_OK, 0, NULL, 0, 0},
    {"tensor_lowrank",
     "attention lowrank {\n"
     "    param rank : int = 8;\n"
     "    tensor U : float[B, H, Lq, rank];\n"
     "    tensor W : float[B, H, Lk, rank];\n"
     "    tensor keep : int[B, Lk];\n"
     "    mask keep[b, kv] != 0;\n"
     "    bias sum(r < rank) U[b, h, q, r] * W[b, h, kv, r];\n"
     "}\n",
     NULL, "rank", "3", {NULL, NULL}, 0, ATTNC_OK, ATTNC_OK, 1, NULL, 0, 0},
    {"diagnostics",
     "attention broken {\n"
     "    param p : int = q;\n"
     "    mask nope > 1;\n"
     "    bias 1.0 +;\n"
     "}\n"
     "attention also_broken { bias true; scale q; }\n",
     NULL, NULL, NULL, {NULL, NULL}, 0, ATTNC_ERR_SPEC, ATTNC_OK, 0, NULL, 0, 0},
    /* a runtime error: the compiled backends' fault path asks the interpreter for the message */
    {"runtime_error", "attention out_of_range {\n    tensor T : float[Lk];\n    bias T[kv + 1];\n}\n", NULL, NULL,
     NULL, {NULL, NULL}, 0, ATTNC_OK, ATTNC_ERR_RUNTIME, 0, NULL, 0, 0},
    {"use_in_file",
     "// two attentions, the second built on the first\n"
     "attention banded {\n"
     "    param w : int = 4;\n"
     "    mask kv <= q && q - kv < w;\n"
     "}\n"
     "attention top {\n"
     "    param t : float = 2.0;\n"
     "    use banded(w = 3);\n"
     "    use softcap(cap = 30.0);\n"
     "    bias 0.1 * float(h) / t;\n"
     "}\n",
     "top", "t", "1.5", {NULL, NULL}, 0, ATTNC_OK, ATTNC_OK, 0, NULL, 0, 0},
    {"grid_na2d",
     "attention na2d {\n"
     "    param width : int;\n"
     "    let qx = q % width;  let qy = q / width;\n"
     "    let kx = kv % width; let ky = kv / width;\n"
     "    mask abs(kx - clamp(qx, 1, width - 2)) <= 1 && abs(ky - clamp(qy, 1, Lk / width - 2)) <= 1;\n"
     "}\n",
     NULL, "width", "8", {NULL, NULL}, 0, ATTNC_OK, ATTNC_OK, 0, &grid_sizes, 1, 0},
    /* version 2: Q and K rotated once per call into kept rows (runtime/rope_sink.c), a sink merged into O */
    {"rotary_sink", "attention rope {\n    use causal;\n    rotary(base = 10000.0);\n    sink 0.5;\n}\n", NULL,
     NULL, NULL, {NULL, NULL}, 0, ATTNC_OK, ATTNC_OK, 0, NULL, 0, 0},
    /* the backward pass twice on one kernel: its buffers kept between calls (runtime/launch_grad.c), Q, K and V
     * whose rows lie apart copied (the first call), a float tensor's gradient */
    {"backward",
     "attention train {\n    use causal;\n    use softcap(cap = 20.0);\n    tensor T : float[H, Lk];\n"
     "    bias T[h, kv];\n}\n",
     NULL, NULL, NULL, {NULL, NULL}, 0, ATTNC_OK, ATTNC_OK, 0, NULL, 0, 1},
    /* nesting past Bison's first 200 stack entries: the parser's stack is malloc'd (made in main) */
    {"deep_nesting", NULL, NULL, NULL, NULL, {NULL, NULL}, 0, ATTNC_OK, ATTNC_OK, 0, NULL, 0, 0},
};

static attnc_sizes sizes; /* the case's (main) */

/* ---- one sequence of calls --------------------------------------------- */

enum {
    S_FILE, S_SPEC, S_COMPILE, S_PARAM, S_SHAPE, S_RUN, S_KEPT, S_BACKWARD, S_BACKWARD2, S_EMIT_IR, S_EMIT_C,
    S_EMIT_CUDA, S_EMIT_LLVM, S_COUNT
};
static const char *const step_names[S_COUNT] = {"spec_from_file", "spec_from_string", "compile", "param_from_text",
                                                "tensor_shape", "run", "kept_pairs", "backward (rows apart)",
                                                "backward again", "emit ir", "emit c", "emit cuda", "emit llvm-ir"};
enum { MAX_TENSORS = 4, GAP = 3 /* elements between Q's, K's and V's rows in the first backward call */ };
enum { G_DQ, G_DK, G_DV, G_DT, G_COUNT }; /* a backward call's outputs (G_DT: tensor 0's gradient) */

/* What a sequence produced (test memory). */
typedef struct Result {
    attnc_status st[S_COUNT];
    char *diag, *file_diag;
    char message[S_COUNT][512]; /* err.message of a call that failed */
    char *emit[S_COUNT];
    float *o, *lse;
    float *grad[2][G_COUNT]; /* the backward steps' outputs */
    int64_t kept;
    int ntensors;
    int64_t shape[MAX_TENSORS][ATTNC_MAX_RANK];
    long allocs, compile_allocs;
    long step_start[S_COUNT]; /* allocations made before each step began (the reference run's) */
} Result;

/* The inputs of a case, made during its reference run. */
typedef struct Inputs {
    float *q, *k, *v, *o; /* o: for the calls that take an attnc_args but write nothing */
    float *qg, *kg, *vg;  /* Q, K and V again with rows GAP elements apart (gapped_layout) */
    float *dout, *dlse;
    attnc_tensor tensors[MAX_TENSORS];
    int ntensors;
} Inputs;

typedef struct Seq {
    const Case *c;
    attnc_backend backend;
    Inputs *in;
    attnc_spec *spec;
    attnc_kernel *kernel;
    attnc_param param;
    int nparams;
    Result *r;
    attnc_error err;
} Seq;

static int failures;
static char spec_path[64]; /* the case's text as a file */

static void fail(const Seq *s, const char *fmt, const char *a, const char *b) {
    fprintf(stderr, "FAIL %s/%s (allocation %ld): ", s->c->name, attnc_backend_name(s->backend),
            atomic_load(&fail_at));
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, "\n");
    failures++;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float uniform(void) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng >> 40) * (1.0 / 16777216.0)) * 2 - 1;
}
static float *random_floats(size_t n) {
    float *p = xalloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) p[i] = uniform();
    return p;
}

static size_t rows(void) { return (size_t)(sizes.B * sizes.H * sizes.Lq); }

/* Data for tensor i of the shape the reference found. */
static void make_tensor(Seq *s, int i) {
    attnc_tensor *t = &s->in->tensors[i];
    attnc_dtype dtype;
    t->name = xstrdup(attnc_kernel_tensor_info(s->kernel, i, &dtype, &t->rank)); /* outlives the kernel */
    t->dtype = dtype;
    size_t n = 1;
    for (int d = 0; d < t->rank; d++) n *= (size_t)(t->shape[d] = s->r->shape[i][d]);
    if (dtype == ATTNC_F32) {
        t->data = random_floats(n);
    } else {
        int32_t *v = xalloc(sizeof(int32_t) * n);
        for (size_t j = 0; j < n; j++) v[j] = uniform() > -0.6f; /* mostly kept */
        t->data = v;
    }
}

static const int64_t *dims_of(int which) { /* Q, K, V: 0, 1, 2 */
    static int64_t d[3][4];
    int64_t q[4] = {sizes.B, sizes.H, sizes.Lq, sizes.D}, k[4] = {sizes.B, sizes.Hkv, sizes.Lk, sizes.D},
            v[4] = {sizes.B, sizes.Hkv, sizes.Lk, sizes.Dv};
    memcpy(d[0], q, sizeof q);
    memcpy(d[1], k, sizeof k);
    memcpy(d[2], v, sizeof v);
    return d[which];
}
static size_t elements(int which) {
    const int64_t *d = dims_of(which);
    return (size_t)(d[0] * d[1] * d[2] * d[3]);
}

/* Rows GAP elements apart. */
static attnc_layout gapped_layout(int which) {
    const int64_t *d = dims_of(which);
    attnc_layout l = {ATTNC_ELEM_F32, {d[1] * d[2] * (d[3] + GAP), d[2] * (d[3] + GAP), d[3] + GAP, 1}, 0};
    return l;
}

/* x (contiguous) copied with rows GAP elements apart. */
static float *gapped_copy(const float *x, int which) {
    const int64_t *d = dims_of(which);
    int64_t rows = d[0] * d[1] * d[2];
    float *out = random_floats((size_t)(rows * (d[3] + GAP))); /* the gaps hold noise */
    for (int64_t r = 0; r < rows; r++) memcpy(out + r * (d[3] + GAP), x + r * d[3], sizeof(float) * (size_t)d[3]);
    return out;
}

static size_t grad_elements(const Result *r, int g) {
    if (g < G_DT) return elements(g);
    size_t n = r->ntensors > 0 ? 1 : 0;
    for (int d = 0; n && d < ATTNC_MAX_RANK && r->shape[0][d]; d++) n *= (size_t)r->shape[0][d];
    return n;
}

static attnc_args call_args(Seq *s, float *o, float *lse) {
    attnc_args a = {sizes, s->in->q, s->in->k, s->in->v, o, lse, &s->param, s->nparams,
                    s->in->tensors, s->in->ntensors};
    return a;
}

static attnc_status do_step(Seq *s, int step, Result *r) {
    attnc_error *err = &s->err;
    memset(err, 0, sizeof *err);
    switch (step) {
    case S_FILE: { /* the file's reading and parsing; the sequence goes on from the string */
        attnc_spec *spec = NULL;
        attnc_status st = attnc_spec_from_file(spec_path, &spec, err);
        free(r->file_diag);
        r->file_diag = spec ? xstrdup(attnc_spec_diagnostics(spec)) : NULL;
        attnc_spec_free(spec);
        return st;
    }
    case S_SPEC: {
        attnc_spec_free(s->spec);
        s->spec = NULL;
        attnc_status st = attnc_spec_from_string(s->c->name, s->c->text, strlen(s->c->text), &s->spec, err);
        free(r->diag);
        r->diag = s->spec ? xstrdup(attnc_spec_diagnostics(s->spec)) : NULL;
        return st;
    }
    case S_COMPILE: {
        attnc_kernel_free(s->kernel);
        s->kernel = NULL;
        attnc_options opts = {s->backend, 2, &s->c->define, s->c->define.name != NULL, 4, 4, s->c->flags};
        long before = atomic_load(&alloc_count);
        attnc_status st = attnc_compile(s->spec, s->c->variant, &opts, &s->kernel, err);
        r->compile_allocs = atomic_load(&alloc_count) - before;
        return st;
    }
    case S_PARAM:
        memset(&s->param, 0, sizeof s->param);
        s->nparams = 0;
        if (!s->c->param_name) return ATTNC_OK;
        s->nparams = 1;
        return attnc_kernel_param_from_text(s->kernel, s->c->param_name, s->c->param_text, &s->param, err);
    case S_SHAPE:
        r->ntensors = attnc_kernel_tensor_count(s->kernel);
        for (int i = 0; i < r->ntensors && i < MAX_TENSORS; i++) {
            attnc_status st =
                attnc_kernel_tensor_shape(s->kernel, i, &sizes, &s->param, s->nparams, r->shape[i], err);
            if (st) return st;
        }
        return ATTNC_OK;
    case S_RUN: {
        free(r->o);
        free(r->lse);
        r->o = xalloc(sizeof(float) * rows() * (size_t)sizes.Dv);
        r->lse = xalloc(sizeof(float) * rows());
        attnc_args a = call_args(s, r->o, r->lse);
        return attnc_kernel_run(s->kernel, &a, err);
    }
    case S_KEPT: {
        attnc_args a = call_args(s, s->in->o, NULL);
        return attnc_kernel_kept_pairs(s->kernel, &a, &r->kept, err);
    }
    case S_BACKWARD:
    case S_BACKWARD2: { /* of the run step's O and LSE; the first with Q, K, V rows apart, the second with dLSE */
        int second = step == S_BACKWARD2;
        attnc_args a = call_args(s, r->o, r->lse);
        attnc_layouts lay = {0};
        if (!second) {
            a.q = s->in->qg, a.k = s->in->kg, a.v = s->in->vg;
            lay.q = gapped_layout(0), lay.k = gapped_layout(1), lay.v = gapped_layout(2);
        }
        float **g = r->grad[second];
        for (int i = 0; i < G_COUNT; i++) {
            free(g[i]);
            g[i] = xalloc(sizeof(float) * (grad_elements(r, i) + 1));
        }
        attnc_tensor_grad dt = {s->in->ntensors ? s->in->tensors[0].name : NULL, g[G_DT]};
        attnc_grad gr = {.dout = s->in->dout, .dlse = second ? s->in->dlse : NULL, .dq = g[G_DQ], .dk = g[G_DK],
                         .dv = g[G_DV], .dtensors = &dt, .n_dtensors = s->in->ntensors ? 1 : 0};
        return attnc_kernel_backward(s->kernel, &a, &lay, &gr, err);
    }
    default: {
        static const char *const targets[] = {"ir", "c", "cuda", "llvm-ir"};
        char *text = NULL;
        attnc_args a = call_args(s, s->in->o, NULL);
        attnc_status st = attnc_kernel_emit(s->kernel, targets[step - S_EMIT_IR], step == S_EMIT_IR ? &a : NULL,
                                            step == S_EMIT_IR ? ATTNC_EMIT_PASSES : 0, &text, err);
        free(r->emit[step]);
        r->emit[step] = text ? xstrdup(text) : NULL;
        attnc_free(text);
        return st;
    }
    }
}

static int same_text(const char *a, const char *b) { return (!a && !b) || (a && b && strcmp(a, b) == 0); }

/* Step's output against the reference's. */
static void compare_output(Seq *s, int step, const Result *ref, int now) {
    const Result *r = s->r;
    int before = failures;
    size_t no = rows() * (size_t)sizes.Dv;
    switch (step) {
    case S_FILE:
        if (!same_text(r->file_diag, ref->file_diag)) fail(s, "diagnostics differ:\n%s\n-- reference --\n%s", r->file_diag, ref->file_diag);
        break;
    case S_SPEC:
        if (!same_text(r->diag, ref->diag)) fail(s, "diagnostics differ:\n%s\n-- reference --\n%s", r->diag, ref->diag);
        break;
    case S_SHAPE:
        if (memcmp(r->shape, ref->shape, sizeof r->shape) != 0) fail(s, "tensor shapes differ%s%s", "", "");
        break;
    case S_RUN:
        if (memcmp(r->o, ref->o, sizeof(float) * no) || memcmp(r->lse, ref->lse, sizeof(float) * rows()))
            fail(s, "O or LSE differs from the reference run%s%s", "", "");
        break;
    case S_KEPT:
        if (r->kept != ref->kept) fail(s, "kept pairs differ%s%s", "", "");
        break;
    case S_BACKWARD:
    case S_BACKWARD2:
        for (int i = 0; i < G_COUNT; i++)
            if (memcmp(r->grad[step == S_BACKWARD2][i], ref->grad[step == S_BACKWARD2][i],
                       sizeof(float) * grad_elements(ref, i)))
                fail(s, "%s: a gradient differs from the reference run%s", step_names[step], "");
        break;
    case S_PARAM:
    case S_COMPILE:
        break;
    default:
        if (!same_text(r->emit[step], ref->emit[step])) fail(s, "%s: text differs from the reference%s", step_names[step], "");
    }
    if (failures > before && now) fprintf(stderr, "  (the failure fired in %s, which returned ATTNC_OK)\n", step_names[step]);
}

/* Whether step applies to this case and backend, given what came before. */
static int applies(const Seq *s, int step, int failure_fired) {
    if (step == S_SPEC || step == S_FILE) return 1;
    if (step == S_COMPILE) return s->spec != NULL;
    if (!s->kernel) return 0;
    if (step == S_BACKWARD || step == S_BACKWARD2) return s->c->backward && attnc_kernel_has_backward(s->kernel);
    if (step == S_EMIT_LLVM) /* an O3 compile each time: only where the failure is still to come */
        return s->backend == ATTNC_BACKEND_LLVM && s->c->llvm_text && !failure_fired;
    return 1;
}

/* Run the sequence; with ref, check it against ref.  Returns whether the
 * armed failure fired. */
static int run_sequence(Seq *s, const Result *ref) {
    int any = 0;
    for (int step = 0; step < S_COUNT; step++) {
        if (!applies(s, step, any)) {
            s->r->st[step] = -1;
            continue;
        }
        int before = atomic_load(&fired);
        s->r->step_start[step] = atomic_load(&alloc_count);
        attnc_status st = do_step(s, step, s->r);
        int now = !before && atomic_load(&fired);
        any |= now;
        if (!ref) {
            memcpy(s->r->message[step], s->err.message, sizeof s->err.message);
            s->r->st[step] = st;
            if (step == S_SHAPE && st == ATTNC_OK && !s->in->q) { /* the reference run makes the inputs */
                s->in->q = random_floats((size_t)(sizes.B * sizes.H * sizes.Lq * sizes.D));
                s->in->k = random_floats((size_t)(sizes.B * sizes.Hkv * sizes.Lk * sizes.D));
                s->in->v = random_floats((size_t)(sizes.B * sizes.Hkv * sizes.Lk * sizes.Dv));
                s->in->o = random_floats(rows() * (size_t)sizes.Dv);
                s->in->qg = gapped_copy(s->in->q, 0);
                s->in->kg = gapped_copy(s->in->k, 1);
                s->in->vg = gapped_copy(s->in->v, 2);
                s->in->dout = random_floats(rows() * (size_t)sizes.Dv);
                s->in->dlse = random_floats(rows());
                s->in->ntensors = s->r->ntensors;
                for (int i = 0; i < s->r->ntensors; i++) make_tensor(s, i);
            }
            continue;
        }
        if (now && st == ATTNC_ERR_NOMEM) {
            if (s->err.status != ATTNC_ERR_NOMEM || !s->err.message[0])
                fail(s, "%s: NOMEM without its message in err (\"%s\")", step_names[step], s->err.message);
            if (step == S_COMPILE && s->kernel) fail(s, "compile: a kernel with ATTNC_ERR_NOMEM%s%s", "", "");
            st = do_step(s, step, s->r); /* the failure is spent: the call must now succeed */
        }
        if (st != ref->st[step]) {
            char got[64], want[64];
            snprintf(got, sizeof got, "%d", (int)st);
            snprintf(want, sizeof want, "%d", (int)ref->st[step]);
            fail(s, "status %s, the reference says %s", got, want);
            fprintf(stderr, "  in %s%s: %s\n", step_names[step], now ? " (the failure fired here)" : "",
                    s->err.message);
            break;
        }
        if (st != ATTNC_OK && strcmp(s->err.message, ref->message[step]) != 0)
            fail(s, "the message differs: \"%s\", the reference says \"%s\"", s->err.message, ref->message[step]);
        compare_output(s, step, ref, now);
    }
    s->r->allocs = atomic_load(&alloc_count);
    attnc_kernel_free(s->kernel);
    attnc_spec_free(s->spec);
    s->kernel = NULL;
    s->spec = NULL;
    return atomic_load(&fired);
}

static void result_free(Result *r) {
    free(r->diag);
    free(r->file_diag);
    for (int i = 0; i < S_COUNT; i++) free(r->emit[i]);
    free(r->o);
    free(r->lse);
    for (int i = 0; i < 2; i++)
        for (int g = 0; g < G_COUNT; g++) free(r->grad[i][g]);
    memset(r, 0, sizeof *r);
}

/* The LLVM backend's first compile of a plan, failing each of its allocations
 * in turn (nothing is cached until one succeeds).  Returns the allocations of
 * the compile that succeeded. */
static long cold_llvm_compiles(Seq *s) {
    Result tmp = {0}, *keep = s->r;
    s->r = &tmp;
    long allocs = 0;
    for (long n = 1;; n++) {
        arm(n);
        attnc_status st = do_step(s, S_SPEC, s->r);
        if (st == ATTNC_OK) st = do_step(s, S_COMPILE, s->r);
        int hit = atomic_load(&fired);
        allocs = tmp.compile_allocs;
        attnc_kernel_free(s->kernel);
        attnc_spec_free(s->spec);
        s->kernel = NULL;
        s->spec = NULL;
        if (st != (hit ? ATTNC_ERR_NOMEM : ATTNC_OK)) {
            fail(s, "uncached compile: wrong status (%s)%s", s->err.message, "");
            break;
        }
        if (!hit) break;
    }
    arm(0);
    result_free(&tmp);
    s->r = keep;
    return allocs;
}

static int close_to(const float *got, const float *want, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float d = got[i] - want[i], m = want[i] < 0 ? -want[i] : want[i];
        if (!(d <= 1e-3f * (1 + m) && -d <= 1e-3f * (1 + m)) && !(got[i] == want[i])) return 0;
    }
    return 1;
}

static int front_end_done; /* the case's text has had each of its front-end allocations failed (main resets it) */

static void test_case(const Case *c, attnc_backend backend, const Result *interp_ref, Result *ref, Inputs *in) {
    Seq s = {c, backend, in, NULL, NULL, {0}, 0, ref, {0, {0}}};
    long cold = 0;
    long long grid_calls = launch_grid_calls();
    if (backend == ATTNC_BACKEND_LLVM && c->spec_status == ATTNC_OK) cold = cold_llvm_compiles(&s);
    arm(0);
    memset(ref, 0, sizeof *ref);
    run_sequence(&s, NULL);
    for (int step = 0; step < S_COUNT; step++) { /* a reference that failed would make the test vacuous */
        attnc_status want = step <= S_COMPILE ? c->spec_status : step == S_RUN ? c->run_status : ATTNC_OK;
        if (ref->st[step] != want && (int)ref->st[step] != -1) fail(&s, "the reference run fails in %s%s", step_names[step], "");
    }
    if (interp_ref && ref->st[S_RUN] == ATTNC_OK && interp_ref->st[S_RUN] == ATTNC_OK &&
        (!close_to(ref->o, interp_ref->o, rows() * (size_t)sizes.Dv) || !close_to(ref->lse, interp_ref->lse, rows())))
        fail(&s, "the reference run disagrees with the interpreter%s%s", "", "");
    for (int i = 0; interp_ref && c->backward && i < 2 * G_COUNT; i++) {
        const float *got = ref->grad[i / G_COUNT][i % G_COUNT], *want = interp_ref->grad[i / G_COUNT][i % G_COUNT];
        if (got && want && !close_to(got, want, grad_elements(ref, i % G_COUNT)))
            fail(&s, "the reference run's %s disagrees with the interpreter's%s", step_names[S_BACKWARD + i / G_COUNT],
                 "");
    }
    if (cold && cold <= ref->compile_allocs)
        fail(&s, "the cold LLVM compile made no more allocations than a cached one%s%s", "", "");
    Result r = {0};
    s.r = &r;
    int no_grid = backend == ATTNC_BACKEND_INTERP || backend == ATTNC_BACKEND_CUDA_EMU; /* no block-order plan */
    if (c->grid && !no_grid && grid_calls == launch_grid_calls())
        fail(&s, "the reference run did not run in block order (launch_grid)%s%s", "", "");
    /* the block-order run's allocations (runtime/launch.c, kept_buffers.c) are the same for every backend that has
     * one: failed in turn on one of them (llvm, else refplan); the others' reference runs only (~1 min of the
     * sanitizer build's CPU less) */
    attnc_backend grid_backend = attnc_backend_available(ATTNC_BACKEND_LLVM) ? ATTNC_BACKEND_LLVM : ATTNC_BACKEND_REFPLAN;
    if (c->grid && backend != grid_backend) {
        printf("%-15s %-9s %4ld allocations: the reference run only\n", c->name, attnc_backend_name(backend), ref->allocs);
        return;
    }
    /* Allocations every backend makes alike are failed in turn on the case's first backend only; the others
     * skip them (~30% of this test's CPU): reading and parsing the text (spec_from_file, spec_from_string), and
     * emit ir's second run of the middle end with its dumps (each backend's compile fails the middle end's
     * allocations in turn already) */
    long skip_from[2] = {0, 0}, skip_to[2] = {0, 0}; /* allocations skip_from+1 .. skip_to */
    if (front_end_done) {
        skip_to[0] = (int)ref->st[S_COMPILE] != -1 ? ref->step_start[S_COMPILE] : ref->allocs;
        if ((int)ref->st[S_EMIT_IR] != -1 && (int)ref->st[S_EMIT_C] != -1) {
            skip_from[1] = ref->step_start[S_EMIT_IR];
            skip_to[1] = ref->step_start[S_EMIT_C];
        }
    }
    front_end_done = 1;
    long n = 1, tried = 0;
    int before = failures;
    for (;; n++) {
        for (int i = 0; i < 2; i++)
            if (n > skip_from[i] && n <= skip_to[i]) n = skip_to[i] + 1;
        arm(n);
        int hit = run_sequence(&s, ref);
        arm(0);
        result_free(&r);
        if (!hit || failures > before + 5) break;
        tried++;
    }
    char uncached[48] = "", from[48] = "";
    if (cold) snprintf(uncached, sizeof uncached, ", %ld uncached", cold);
    if (tried < ref->allocs) snprintf(from, sizeof from, " (%ld of them here)", tried);
    printf("%-15s %-9s %4ld allocations (compile %ld%s), each failed in turn%s: %s\n", c->name,
           attnc_backend_name(backend), ref->allocs, ref->compile_allocs, uncached, from,
           failures == before ? "ok" : "FAILED");
}

int main(int argc, char **argv) { /* argv[1]: one case's name (all cases without) */
    static const attnc_backend backends[] = {ATTNC_BACKEND_INTERP, ATTNC_BACKEND_REFPLAN, ATTNC_BACKEND_TCC,
                                             ATTNC_BACKEND_CUDA_EMU, ATTNC_BACKEND_LLVM};
    enum { NB = sizeof backends / sizeof backends[0] };
    setvbuf(stdout, NULL, _IOLBF, 0); /* each case's line as it ends (ctest's log of a run that timed out) */
    snprintf(spec_path, sizeof spec_path, "test_nomem_%ld.attn", (long)getpid());
    enum { DEPTH = 250 }; /* the language allows 256 */
    char deep[64 + 2 * DEPTH];
    int len = snprintf(deep, sizeof deep, "attention deep { bias ");
    for (int i = 0; i < DEPTH; i++) deep[len++] = '(';
    deep[len++] = '1';
    for (int i = 0; i < DEPTH; i++) deep[len++] = ')';
    snprintf(deep + len, sizeof deep - (size_t)len, "; }\n");
    cases[sizeof cases / sizeof cases[0] - 1].text = deep;
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        if (argc > 1 && strcmp(argv[1], cases[ci].name) != 0) continue;
        sizes = cases[ci].shape ? *cases[ci].shape : default_sizes;
        FILE *f = fopen(spec_path, "wb");
        if (!f || fputs(cases[ci].text, f) < 0 || fclose(f) != 0) {
            fprintf(stderr, "test_nomem: cannot write %s\n", spec_path);
            return 1;
        }
        Inputs in = {0};
        front_end_done = 0;
        Result refs[NB];
        memset(refs, 0, sizeof refs);
        for (int b = 0; b < NB; b++) {
            if (!attnc_backend_available(backends[b])) continue;
            test_case(&cases[ci], backends[b], b ? &refs[0] : NULL, &refs[b], &in);
        }
        for (int b = 0; b < NB; b++) result_free(&refs[b]);
        free(in.q);
        free(in.k);
        free(in.v);
        free(in.o);
        free(in.qg);
        free(in.kg);
        free(in.vg);
        free(in.dout);
        free(in.dlse);
        for (int i = 0; i < in.ntensors; i++) {
            free((void *)in.tensors[i].name);
            free((void *)in.tensors[i].data);
        }
    }
    remove(spec_path);
    if (failures) fprintf(stderr, "%d failure%s\n", failures, failures == 1 ? "" : "s");
    return failures ? 1 : 0;
}
