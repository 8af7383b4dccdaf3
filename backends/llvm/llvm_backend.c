/* llvm_backend.c — the LLVM backend: plan -> LLVM IR (backends/llvm/llvm_lower.c)
 * -> the new pass manager at O3 for the host CPU -> ORC LLJIT -> an AttnTileFn.
 * Requires: LLVM >= 14 (C API only).  Produces: `backend_llvm` (backend.h).
 *
 * One LLJIT per process, created on first use and kept for the life of the
 * process; each compiled kernel owns a ResourceTracker, so releasing it frees
 * its code.  Compiled kernels are cached in process, keyed by an exact
 * serialisation of the plan (every IR node, root and plan field), the vector
 * width and the host CPU name and features: compiling the same spec with the
 * same options twice returns the first result.  Unreferenced entries stay
 * cached (up to MAX_IDLE or $ATTNC_LLVM_IDLE_KERNELS, least recently used dropped first), so compile,
 * free, compile again is free too.  One mutex guards the JIT and the cache;
 * each compile builds its module in its own LLVMContext.
 *
 * A kernel has versions (llvm_lower.h's LLVM_VARIANTS: by the element types
 * of Q, K, V and O, and wide row blocks for prefill or narrow ones for
 * decode), each a module of its own in the kernel's tracker.  Compiling
 * builds the float32 prefill version; the others are built on first use, by
 * the launch's prepare hook (so that a failure is that call's error), under
 * the mutex and once: a call from several threads at once waits for the one
 * build.  The kernel's tile and scratch functions are llvm_tile and
 * llvm_scratch here, which pick the call's version (call->kernel_data is
 * the kernel's state).
 *
 * The vector width is the plan's (Plan.vec_width, printed with its
 * schedule); llvm_vector_width() says what it should be for this host: 16
 * lanes with AVX-512, 8 with AVX2, else 4, or ATTNC_LLVM_VECTOR_WIDTH=4|8|16
 * (to test the other code paths on one machine).  A plan whose width is not
 * 4, 8 or 16 gets the host's. */
#include <llvm-c/Analysis.h>
#include <llvm-c/Core.h>
#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <llvm-c/OrcEE.h>
#include <llvm-c/ExecutionEngine.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "llvm_lower.h"
#include "schedule_grad.h"

enum { MAX_IDLE = 32 };

/* One version of a kernel, built on first use. */
typedef struct Version {
    _Atomic(AttnTileFn) tile; /* NULL until built; stored last (release), after scratch */
    AttnScratchFn scratch;
} Version;

typedef struct CacheEntry {
    struct CacheEntry *next;
    unsigned char *key;
    size_t keylen;
    uint64_t hash;
    LLVMOrcResourceTrackerRef tracker; /* every version's module */
    int width, C;                      /* lanes, and vectors per row block (llvm_call_variant) */
    Version v[LLVM_VARIANTS];
    /* the backward kernel (llvm_grad.c), built on the first backward call;
     * grad_tile stored last (release), after grad_scratch */
    _Atomic(AttnGradTileFn) grad_tile;
    AttnScratchFn grad_scratch;
    int refs;
    uint64_t last_use;
} CacheEntry;

/* A compiled kernel's state (and its call->kernel_data): its entry, and
 * its plan, which the versions built later are lowered from. */
typedef struct KernelState {
    CacheEntry *ce;
    const Plan *p;
} KernelState;

static struct {
    pthread_once_t once;
    pthread_mutex_t lock; /* the JIT and the cache */
    char *cpu, *features; /* the host's, from LLVM */
    int host_width;
    int soft_f16; /* no F16C: f16 conversions in integer lanes (llvm_soft_f16) */
    LLVMOrcLLJITRef jit;
    LLVMTargetMachineRef tm; /* for the O3 pipeline of JIT compiles (used under lock) */
    char passes[1024];       /* that pipeline: "default<O3>", or $ATTNC_LLVM_PASSES (README) */
    int max_idle;            /* unreferenced kernels kept: MAX_IDLE, or $ATTNC_LLVM_IDLE_KERNELS (README) */
    LLVMCodeGenOptLevel codegen; /* the code generator's level: Aggressive, or $ATTNC_LLVM_CODEGEN (README) */
    char init_error[400];
    CacheEntry *entries;
    uint64_t clock;  /* for least-recently-used eviction */
    unsigned serial; /* unique symbol names within the one JITDylib */
    unsigned long built; /* versions built, for tests (llvm_versions_built) */
} G = {PTHREAD_ONCE_INIT, PTHREAD_MUTEX_INITIALIZER, NULL, NULL, 0, 0, NULL, NULL, "", MAX_IDLE, LLVMCodeGenLevelAggressive,
       "", NULL, 0, 0, 0};

/* The message of an LLVMErrorRef (which this consumes) into buf. */
static void error_text(LLVMErrorRef e, char *buf, size_t n) {
    char *msg = LLVMGetErrorMessage(e);
    snprintf(buf, n, "%s", msg);
    LLVMDisposeErrorMessage(msg);
}

int llvm_has_feature(const char *features, const char *name) {
    size_t n = strlen(name);
    for (const char *p = features; p && *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n + 1 && p[0] == '+' && memcmp(p + 1, name, n) == 0) return 1;
        p = end ? end + 1 : p + len;
    }
    return 0;
}

/* A target machine for the host CPU at O3; NULL with a message. */
static LLVMTargetMachineRef host_machine(char *why, size_t n) {
    char *triple = LLVMGetDefaultTargetTriple();
    LLVMTargetRef target;
    char *msg = NULL;
    LLVMTargetMachineRef tm = NULL;
    if (LLVMGetTargetFromTriple(triple, &target, &msg)) {
        snprintf(why, n, "no LLVM target for %s: %s", triple, msg ? msg : "");
    } else {
        tm = LLVMCreateTargetMachine(target, triple, G.cpu, G.features, G.codegen, LLVMRelocDefault,
                                     LLVMCodeModelJITDefault);
        if (!tm) snprintf(why, n, "LLVM cannot make a target machine for %s", triple);
    }
    if (msg) LLVMDisposeMessage(msg);
    LLVMDisposeMessage(triple);
    return tm;
}

/* Functions generated code may call: defined up front so that they resolve
 * whether or not the process exports them (a static build, -Wl,--as-needed). */
static LLVMErrorRef define_runtime_symbols(LLVMOrcJITDylibRef jd) {
    static const struct {
        const char *name;
        uintptr_t addr;
    } syms[] = {
        {"powf", (uintptr_t)&powf},     {"erff", (uintptr_t)&erff},       {"fmodf", (uintptr_t)&fmodf},
        {"floorf", (uintptr_t)&floorf}, {"ceilf", (uintptr_t)&ceilf},     {"rintf", (uintptr_t)&rintf},
        {"sqrtf", (uintptr_t)&sqrtf},   {"fmaf", (uintptr_t)&fmaf},       {"memset", (uintptr_t)&memset},
        {"memcpy", (uintptr_t)&memcpy}, {"memmove", (uintptr_t)&memmove}, {"sinf", (uintptr_t)&sinf},
        {"cosf", (uintptr_t)&cosf},
    };
    enum { N = sizeof syms / sizeof syms[0] };
    /* the pair's type is spelt differently across LLVM versions; the pointer
     * typedef is not.  On the stack: this runs once per process, and a failed
     * allocation here would leave the backend unusable for good. */
    max_align_t storage[(N * sizeof *(LLVMOrcCSymbolMapPairs)0 + sizeof(max_align_t) - 1) / sizeof(max_align_t)];
    LLVMOrcCSymbolMapPairs pairs = (LLVMOrcCSymbolMapPairs)storage;
    for (int i = 0; i < N; i++) {
        pairs[i].Name = LLVMOrcLLJITMangleAndIntern(G.jit, syms[i].name);
        pairs[i].Sym.Address = (LLVMOrcExecutorAddress)syms[i].addr;
        pairs[i].Sym.Flags.GenericFlags = LLVMJITSymbolGenericFlagsExported | LLVMJITSymbolGenericFlagsCallable;
        pairs[i].Sym.Flags.TargetFlags = 0;
    }
    LLVMOrcMaterializationUnitRef mu = LLVMOrcAbsoluteSymbols(pairs, N);
    LLVMErrorRef e = LLVMOrcJITDylibDefine(jd, mu);
    if (e) LLVMOrcDisposeMaterializationUnit(mu);
    return e;
}

/* ATTNC_LLVM_PERF=1: the JIT's object layer, RuntimeDyld with LLVM's perf listener (ctx, made once by
 * init_once), which writes jit-PID.dump for `perf record -k 1` + `perf inject --jit` (README): kernels
 * get names and instructions in perf's reports. */
static LLVMOrcObjectLayerRef perf_object_layer(void *ctx, LLVMOrcExecutionSessionRef es, const char *triple) {
    (void)triple;
    LLVMOrcObjectLayerRef layer = LLVMOrcCreateRTDyldObjectLinkingLayerWithSectionMemoryManager(es);
    LLVMOrcRTDyldObjectLinkingLayerRegisterJITEventListener(layer, (LLVMJITEventListenerRef)ctx);
    return layer;
}

static void init_once(void) {
    if (LLVMInitializeNativeTarget() || LLVMInitializeNativeAsmPrinter()) {
        snprintf(G.init_error, sizeof G.init_error, "LLVM has no native target in this build");
        return;
    }
    G.cpu = LLVMGetHostCPUName();
    G.features = LLVMGetHostCPUFeatures();
    G.host_width = llvm_has_feature(G.features, "avx512f") ? 16 : llvm_has_feature(G.features, "avx2") ? 8 : 4;
    const char *soft = getenv("ATTNC_LLVM_SOFT_F16");
    G.soft_f16 = (soft && !strcmp(soft, "1")) || !(llvm_has_feature(G.features, "f16c") || llvm_has_feature(G.features, "avx512f"));
    /* a cheaper pipeline where only the code around the kernels is under test (the sanitizer build's suite) */
    const char *passes = getenv("ATTNC_LLVM_PASSES");
    /* a copy (the environment may change later) without an allocation, whose failure would last the process */
    if (snprintf(G.passes, sizeof G.passes, "%s", passes && *passes ? passes : "default<O3>") >= (int)sizeof G.passes) {
        snprintf(G.init_error, sizeof G.init_error, "ATTNC_LLVM_PASSES is longer than %zu characters", sizeof G.passes - 1);
        return;
    }
    /* the cache's size (a test of eviction needs fewer compiles with a smaller one) */
    const char *idle = getenv("ATTNC_LLVM_IDLE_KERNELS");
    G.max_idle = MAX_IDLE;
    if (idle && *idle) {
        char *end;
        long n = strtol(idle, &end, 10);
        if (*end || n < 0 || n > 4096) {
            snprintf(G.init_error, sizeof G.init_error, "ATTNC_LLVM_IDLE_KERNELS must be a count from 0 to 4096, not '%.40s'",
                     idle);
            return;
        }
        G.max_idle = (int)n;
    }
    /* the same for the code generator: 0 (LLVM's -O0: fast instruction selection and register allocation) to 3 */
    const char *codegen = getenv("ATTNC_LLVM_CODEGEN");
    if (codegen && *codegen) {
        if (codegen[1] || codegen[0] < '0' || codegen[0] > '3') {
            snprintf(G.init_error, sizeof G.init_error, "ATTNC_LLVM_CODEGEN must be 0, 1, 2 or 3, not '%.40s'", codegen);
            return;
        }
        static const LLVMCodeGenOptLevel levels[4] = {LLVMCodeGenLevelNone, LLVMCodeGenLevelLess,
                                                      LLVMCodeGenLevelDefault, LLVMCodeGenLevelAggressive};
        G.codegen = levels[codegen[0] - '0'];
    }
    LLVMTargetMachineRef tm = host_machine(G.init_error, sizeof G.init_error);
    if (!tm) return;
    G.tm = host_machine(G.init_error, sizeof G.init_error);
    if (!G.tm) {
        LLVMDisposeTargetMachine(tm);
        return;
    }
    LLVMOrcLLJITBuilderRef builder = LLVMOrcCreateLLJITBuilder();
    /* the JIT's code generator: the host CPU and features, at O3 */
    LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(builder, LLVMOrcJITTargetMachineBuilderCreateFromTargetMachine(tm));
    const char *perf = getenv("ATTNC_LLVM_PERF");
    if (perf && *perf && strcmp(perf, "0") && strcmp(perf, "1")) {
        snprintf(G.init_error, sizeof G.init_error, "ATTNC_LLVM_PERF must be 0 or 1, not '%.40s'", perf);
        LLVMOrcDisposeLLJITBuilder(builder);
        return;
    }
    if (perf && !strcmp(perf, "1")) {
        LLVMJITEventListenerRef listener = LLVMCreatePerfJITEventListener(); /* NULL: LLVM built without it */
        if (!listener) {
            snprintf(G.init_error, sizeof G.init_error, "ATTNC_LLVM_PERF=1: this LLVM was built without perf support");
            LLVMOrcDisposeLLJITBuilder(builder);
            return;
        }
        LLVMOrcLLJITBuilderSetObjectLinkingLayerCreator(builder, perf_object_layer, listener);
    }
    LLVMErrorRef e = LLVMOrcCreateLLJIT(&G.jit, builder);
    if (e) {
        char msg[300];
        error_text(e, msg, sizeof msg);
        snprintf(G.init_error, sizeof G.init_error, "cannot create the LLVM JIT: %s", msg);
        G.jit = NULL;
        return;
    }
    LLVMOrcJITDylibRef jd = LLVMOrcLLJITGetMainJITDylib(G.jit);
    LLVMOrcDefinitionGeneratorRef gen = NULL;
    e = LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(&gen, LLVMOrcLLJITGetGlobalPrefix(G.jit), NULL, NULL);
    if (!e) LLVMOrcJITDylibAddGenerator(jd, gen);
    if (!e) e = define_runtime_symbols(jd);
    if (e) {
        char msg[300];
        error_text(e, msg, sizeof msg);
        snprintf(G.init_error, sizeof G.init_error, "cannot set up the LLVM JIT's symbols: %s", msg);
    }
}

/* The LLVM state of the process, or an error. */
static attnc_status ensure_llvm(attnc_error *err) {
    pthread_once(&G.once, init_once);
    if (G.init_error[0]) return set_error(err, ATTNC_ERR_INTERNAL, "%s", G.init_error);
    return ATTNC_OK;
}

/* The width the plans of this backend should have (llvm_lower.h). */
int llvm_vector_width(void) {
    const char *env = getenv("ATTNC_LLVM_VECTOR_WIDTH");
    if (env && (!strcmp(env, "4") || !strcmp(env, "8") || !strcmp(env, "16"))) return atoi(env);
    pthread_once(&G.once, init_once);
    return G.host_width ? G.host_width : 4;
}

int llvm_soft_f16(void) {
    pthread_once(&G.once, init_once);
    return G.soft_f16;
}

/* ---- the cache key -------------------------------------------------------- */

typedef struct Key {
    unsigned char *p;
    size_t len, cap;
    int failed;
} Key;

static void key_put(Key *k, const void *data, size_t n) {
    if (k->failed || n == 0) return;
    if (k->len + n > k->cap) {
        size_t cap = k->cap ? k->cap * 2 : 4096;
        while (cap < k->len + n) cap *= 2;
        unsigned char *p = realloc(k->p, cap);
        if (!p) {
            k->failed = 1;
            return;
        }
        k->p = p;
        k->cap = cap;
    }
    memcpy(k->p + k->len, data, n);
    k->len += n;
}
static void key_int(Key *k, int64_t v) { key_put(k, &v, sizeof v); }

/* The nodes of module m, exactly (float constants by their bits). */
static void key_nodes(const IrModule *m, Key *k) {
    key_int(k, m->n);
    for (int i = 0; i < m->n; i++) {
        const IrNode *n = &m->nodes[i];
        int64_t h[5] = {n->op, n->type, n->aux, n->nargs, 0};
        memcpy(&h[4], &n->c, sizeof n->c < sizeof h[4] ? sizeof n->c : sizeof h[4]);
        key_put(k, h, sizeof h);
        key_put(k, n->args, sizeof(IrRef) * (size_t)n->nargs);
    }
}

/* The backward kernel's plan (its own module: the forward's rewrites may
 * make two plans' forward IR equal where their gradients differ); the
 * schedule is a function of it and of the forward's fields. */
static void key_grad(const Plan *p, Key *k) {
    const GradSchedule *gs = p->grad_sched;
    key_int(k, gs && !gs->base.why[0]);
    if (!gs || gs->base.why[0]) return;
    const GradPlan *gp = gs->gp;
    const IrFunc *f = gp->f;
    key_nodes(gp->ir, k);
    int64_t roots[] = {f->keep, f->scale, f->bias, f->score, f->weight, f->fault, gp->value, gp->dvalue_dpre,
                       gp->nterms, gs->base.bq, gs->base.bk, gs->base.softmax};
    key_put(k, roots, sizeof roots);
    for (int i = 0; i < gp->nterms; i++) {
        const GradTerm *t = &gp->terms[i];
        int64_t h[5] = {t->tensor, t->load, t->dvalue, t->dbias, t->nsums};
        key_put(k, h, sizeof h);
        key_put(k, t->sums, sizeof(IrRef) * (size_t)t->nsums);
        key_put(k, t->inner, sizeof(IrRef) * (size_t)t->nsums);
    }
}

/* Everything the generated code depends on, exactly (float constants by their bits). */
static void make_key(const Plan *p, int width, Key *k) {
    const IrModule *m = p->ir;
    const IrFunc *f = p->f;
    const Attention *a = p->attn;
    key_put(k, "attnc-llvm-1", 12);
    key_put(k, G.cpu, strlen(G.cpu) + 1);
    key_put(k, G.features, strlen(G.features) + 1);
    int64_t fields[] = {width, p->bq, p->bk, p->needs_mask, p->needs_fault, p->softmax, a->nparams, a->ntensors, m->n};
    key_put(k, fields, sizeof fields);
    for (int i = 0; i < a->nparams; i++) key_int(k, a->params[i]->type);
    for (int i = 0; i < a->ntensors; i++) key_int(k, a->tensors[i]->type * 100 + a->tensors[i]->ndims);
    key_nodes(m, k);
    int64_t roots[] = {f->keep, f->scale, f->bias, f->score, f->weight, f->fault, f->lse_offset, f->nlowrank};
    key_put(k, roots, sizeof roots);
    for (int g = 0; g < f->nlowrank; g++) {
        int64_t r[3] = {f->lowrank_count[g], f->lowrank_q[g], f->lowrank_k[g]};
        key_put(k, r, sizeof r);
    }
    key_grad(p, k);
}

static uint64_t hash_bytes(const unsigned char *p, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

/* ---- compiling ------------------------------------------------------------ */

/* The host's triple and data layout on a fresh module. */
static void set_target(LLVMModuleRef mod, LLVMTargetMachineRef tm) {
    char *triple = LLVMGetTargetMachineTriple(tm);
    LLVMSetTarget(mod, triple);
    LLVMDisposeMessage(triple);
    LLVMTargetDataRef dl = LLVMCreateTargetDataLayout(tm);
    LLVMSetModuleDataLayout(mod, dl);
    LLVMDisposeTargetData(dl);
}

static attnc_status finish_module(LLVMModuleRef mod, LLVMTargetMachineRef tm, int optimise, StrBuf *before,
                                  attnc_error *err);

/* Lower into mod versions[i] of p as the function names[i] for i < n, and
 * its scratch function (with the first); verify the module, and (when
 * optimise) run default<O3>.  When `before` is not NULL it receives the IR
 * as lowered. */
static attnc_status build_module(const Plan *p, int width, LLVMModuleRef mod, LLVMTargetMachineRef tm,
                                 const int *versions, const char *const *names, int n, const char *scratch,
                                 int optimise, StrBuf *before, attnc_error *err) {
    set_target(mod, tm);
    attnc_status st = ATTNC_OK;
    for (int i = 0; i < n && !st; i++) {
        LlvmTarget target = {width, G.cpu, G.features, versions[i]};
        st = llvm_lower_plan(p, &target, mod, names[i], i ? NULL : scratch, err);
    }
    if (st) return st;
    return finish_module(mod, tm, optimise, before, err);
}

/* Verify mod, and (when optimise) run default<O3>; `before` (or NULL)
 * receives the IR as lowered. */
static attnc_status finish_module(LLVMModuleRef mod, LLVMTargetMachineRef tm, int optimise, StrBuf *before,
                                  attnc_error *err) {
    attnc_status st;
    char *msg = NULL;
    if (LLVMVerifyModule(mod, LLVMReturnStatusAction, &msg)) {
        st = set_error(err, ATTNC_ERR_INTERNAL, "LLVM backend: the generated IR does not verify: %.300s",
                       msg ? msg : "");
        LLVMDisposeMessage(msg);
        return st;
    }
    if (msg) LLVMDisposeMessage(msg);
    if (before) {
        char *text = LLVMPrintModuleToString(mod);
        sb_printf(before, "%s", text);
        LLVMDisposeMessage(text);
    }
    if (!optimise) return ATTNC_OK;
    LLVMPassBuilderOptionsRef opts = LLVMCreatePassBuilderOptions();
    /* The lowering already vectorises and unrolls where it pays (the R x CQ
     * register blocks); LLVM's unroller and vectorisers would only multiply
     * the code, and with it the compile time (about 3x at D=128). */
    LLVMPassBuilderOptionsSetLoopUnrolling(opts, 0);
    LLVMPassBuilderOptionsSetLoopVectorization(opts, 0);
    LLVMPassBuilderOptionsSetSLPVectorization(opts, 0);
    LLVMErrorRef e = LLVMRunPasses(mod, G.passes, tm, opts);
    LLVMDisposePassBuilderOptions(opts);
    if (e) {
        char text[300];
        error_text(e, text, sizeof text);
        return set_error(err, ATTNC_ERR_INTERNAL, "LLVM backend: optimisation failed: %s", text);
    }
    return ATTNC_OK;
}

/* Build version v of entry ce from plan p into the entry's tracker (G.lock
 * held).  A module that fails in the JIT stays in the tracker until the
 * entry is freed (its symbols are unique; nothing calls them). */
static attnc_status compile_version(const Plan *p, CacheEntry *ce, int v, attnc_error *err) {
    char why[300];
    unsigned id = ++G.serial;
    char tile[48], scratch[48];
    snprintf(tile, sizeof tile, "attnc_tile_%u", id);
    snprintf(scratch, sizeof scratch, "attnc_scratch_%u", id);
    const char *names[1] = {tile};
    LLVMOrcThreadSafeContextRef tsc = LLVMOrcCreateNewThreadSafeContext();
    LLVMModuleRef mod = LLVMModuleCreateWithNameInContext("attnc", LLVMOrcThreadSafeContextGetContext(tsc));
    attnc_status st = build_module(p, ce->width, mod, G.tm, &v, names, 1, scratch, 1, NULL, err);
    if (st) {
        LLVMDisposeModule(mod);
        LLVMOrcDisposeThreadSafeContext(tsc);
        return st;
    }
    LLVMOrcThreadSafeModuleRef tsm = LLVMOrcCreateNewThreadSafeModule(mod, tsc);
    LLVMOrcDisposeThreadSafeContext(tsc); /* the module keeps the context alive */
    if (!ce->tracker) ce->tracker = LLVMOrcJITDylibCreateResourceTracker(LLVMOrcLLJITGetMainJITDylib(G.jit));
    LLVMErrorRef e = LLVMOrcLLJITAddLLVMIRModuleWithRT(G.jit, ce->tracker, tsm);
    LLVMOrcExecutorAddress tile_addr = 0, scratch_addr = 0;
    if (!e) e = LLVMOrcLLJITLookup(G.jit, &tile_addr, tile); /* the code is generated here */
    if (!e) e = LLVMOrcLLJITLookup(G.jit, &scratch_addr, scratch);
    if (e) {
        error_text(e, why, sizeof why);
        return set_error(err, ATTNC_ERR_INTERNAL, "LLVM backend: JIT compilation failed: %s", why);
    }
    ce->v[v].scratch = (AttnScratchFn)(uintptr_t)scratch_addr;
    atomic_store_explicit(&ce->v[v].tile, (AttnTileFn)(uintptr_t)tile_addr, memory_order_release);
    G.built++;
    return ATTNC_OK;
}

/* Build the backward kernel of entry ce from plan p into the entry's
 * tracker (G.lock held), as compile_version does a version. */
static attnc_status compile_grad(const Plan *p, CacheEntry *ce, attnc_error *err) {
    char why[300];
    unsigned id = ++G.serial;
    char tile[48], scratch[48];
    snprintf(tile, sizeof tile, "attnc_grad_tile_%u", id);
    snprintf(scratch, sizeof scratch, "attnc_grad_scratch_%u", id);
    LLVMOrcThreadSafeContextRef tsc = LLVMOrcCreateNewThreadSafeContext();
    LLVMModuleRef mod = LLVMModuleCreateWithNameInContext("attnc_grad", LLVMOrcThreadSafeContextGetContext(tsc));
    set_target(mod, G.tm);
    LlvmTarget target = {ce->width, G.cpu, G.features, 0};
    attnc_status st = llvm_lower_grad(p, &target, mod, tile, scratch, err);
    if (!st) st = finish_module(mod, G.tm, 1, NULL, err);
    if (st) {
        LLVMDisposeModule(mod);
        LLVMOrcDisposeThreadSafeContext(tsc);
        return st;
    }
    LLVMOrcThreadSafeModuleRef tsm = LLVMOrcCreateNewThreadSafeModule(mod, tsc);
    LLVMOrcDisposeThreadSafeContext(tsc);
    if (!ce->tracker) ce->tracker = LLVMOrcJITDylibCreateResourceTracker(LLVMOrcLLJITGetMainJITDylib(G.jit));
    LLVMErrorRef e = LLVMOrcLLJITAddLLVMIRModuleWithRT(G.jit, ce->tracker, tsm);
    LLVMOrcExecutorAddress tile_addr = 0, scratch_addr = 0;
    if (!e) e = LLVMOrcLLJITLookup(G.jit, &tile_addr, tile);
    if (!e) e = LLVMOrcLLJITLookup(G.jit, &scratch_addr, scratch);
    if (e) {
        error_text(e, why, sizeof why);
        return set_error(err, ATTNC_ERR_INTERNAL, "LLVM backend: JIT compilation failed: %s", why);
    }
    ce->grad_scratch = (AttnScratchFn)(uintptr_t)scratch_addr;
    atomic_store_explicit(&ce->grad_tile, (AttnGradTileFn)(uintptr_t)tile_addr, memory_order_release);
    G.built++;
    return ATTNC_OK;
}

/* Version v in words, into buf. */
static void version_name(int v, char *buf, size_t n) {
    static const char *const elem[3] = {"f32", "f16", "bf16"};
    snprintf(buf, n, "%s version for Q %s, K %s, V %s, O %s%s", v & LLVM_VARIANT_NARROW ? "decode" : "prefill",
             elem[llvm_variant_elem(v, 0)], elem[llvm_variant_elem(v, 1)], elem[llvm_variant_elem(v, 2)],
             elem[llvm_variant_elem(v, 3)], llvm_variant_maps_kv(v) ? ", keys through a row map" : "");
}

/* What `attnc emit` shows: the float32 and the f16 versions, prefill and decode. */
enum { NEMIT = 4 };
static const int emit_versions[NEMIT] = {0, LLVM_VARIANT_NARROW, 2 * (1 + 3 * (1 + 3 * (1 + 3 * 1))),
                                         LLVM_VARIANT_NARROW + 2 * (1 + 3 * (1 + 3 * (1 + 3 * 1)))};
static const char *const emit_names[NEMIT] = {"attnc_tile", "attnc_tile_decode", "attnc_tile_f16",
                                              "attnc_tile_decode_f16"};
#define VERSIONS                                                                                                  \
    "versions (the JIT builds each on first use, per element types of Q, K, V, O): attnc_tile (float32), "       \
    "attnc_tile_decode (float32, narrow row blocks), attnc_tile_f16 and attnc_tile_decode_f16 (f16); bf16 and " \
    "mixed types alike\n"

/* Version v of the kernel, built unless it is.  Once: a thread that finds
 * it being built waits on G.lock, then finds it built.  A build that fails
 * (out of memory, say) is tried again by the next call. */
static attnc_status ensure_version(const KernelState *ks, int v, attnc_error *err) {
    Version *ver = &ks->ce->v[v];
    if (atomic_load_explicit(&ver->tile, memory_order_acquire)) return ATTNC_OK;
    pthread_mutex_lock(&G.lock);
    attnc_status st = ATTNC_OK;
    if (!atomic_load_explicit(&ver->tile, memory_order_relaxed)) { /* not built while this thread waited */
        attnc_error e = {0};
        st = compile_version(ks->p, ks->ce, v, &e);
        if (st) {
            char name[80];
            version_name(v, name, sizeof name);
            set_error(err, st, "LLVM backend: cannot build the %s of the kernel: %.400s", name, e.message);
        }
    }
    pthread_mutex_unlock(&G.lock);
    return st;
}

static int call_version(const KernelState *ks, const AttnCall *c) {
    return llvm_call_variant(ks->ce->C, ks->ce->width, c);
}

/* The kernel's AttnTileFn: the call's version.  The launch built it
 * (llvm_prepare); a caller that did not gets it built here, and a failure
 * flagged as a runtime error of the item (the launch then asks the
 * interpreter). */
static int llvm_tile(const AttnCall *c, int64_t b, int64_t h, int64_t qt, void *scratch) {
    const KernelState *ks = c->kernel_data;
    int v = call_version(ks, c);
    AttnTileFn fn = atomic_load_explicit(&ks->ce->v[v].tile, memory_order_acquire);
    if (!fn) {
        if (ensure_version(ks, v, NULL)) return 1;
        fn = atomic_load_explicit(&ks->ce->v[v].tile, memory_order_acquire);
    }
    return fn(c, b, h, qt, scratch);
}

/* The kernel's AttnScratchFn (the same layout in every version); a size
 * no machine has when the version cannot be built (the launch refuses it). */
static int64_t llvm_scratch(const AttnCall *c) {
    const KernelState *ks = c->kernel_data;
    int v = call_version(ks, c);
    if (ensure_version(ks, v, NULL)) return (int64_t)1 << 40;
    return ks->ce->v[v].scratch(c);
}

/* CompiledKernel.prepare: the version the launch's calls need. */
static attnc_status llvm_prepare(const AttnCall *c, attnc_error *err) {
    const KernelState *ks = c->kernel_data;
    return ensure_version(ks, call_version(ks, c), err);
}

/* The backward kernel, built unless it is: once, as ensure_version. */
static attnc_status ensure_grad(const KernelState *ks, attnc_error *err) {
    if (atomic_load_explicit(&ks->ce->grad_tile, memory_order_acquire)) return ATTNC_OK;
    pthread_mutex_lock(&G.lock);
    attnc_status st = ATTNC_OK;
    if (!atomic_load_explicit(&ks->ce->grad_tile, memory_order_relaxed)) {
        attnc_error e = {0};
        st = compile_grad(ks->p, ks->ce, &e);
        if (st) set_error(err, st, "LLVM backend: cannot build the backward kernel: %.400s", e.message);
    }
    pthread_mutex_unlock(&G.lock);
    return st;
}

/* CompiledKernel.grad_tile: the backward kernel, which the launch built
 * (llvm_grad_prepare); a caller that did not gets it built here, a failure
 * flagged as a runtime error of the item. */
static int llvm_grad_tile(const AttnGradCall *c, int64_t b, int64_t hk, int64_t kt, float *const *dtensor,
                          void *scratch) {
    const KernelState *ks = c->f.kernel_data;
    AttnGradTileFn fn = atomic_load_explicit(&ks->ce->grad_tile, memory_order_acquire);
    if (!fn) {
        if (ensure_grad(ks, NULL)) return 1;
        fn = atomic_load_explicit(&ks->ce->grad_tile, memory_order_acquire);
    }
    return fn(c, b, hk, kt, dtensor, scratch);
}

static int64_t llvm_grad_scratch(const AttnCall *c) {
    const KernelState *ks = c->kernel_data;
    if (ensure_grad(ks, NULL)) return (int64_t)1 << 40;
    return ks->ce->grad_scratch(c);
}

/* CompiledKernel.grad_prepare: the backward kernel, on the first backward call. */
static attnc_status llvm_grad_prepare(const AttnCall *c, attnc_error *err) {
    return ensure_grad(c->kernel_data, err);
}

unsigned long llvm_versions_built(void) {
    pthread_mutex_lock(&G.lock);
    unsigned long n = G.built;
    pthread_mutex_unlock(&G.lock);
    return n;
}

static void entry_free(CacheEntry *ce) {
    if (ce->tracker) {
        LLVMErrorRef e = LLVMOrcResourceTrackerRemove(ce->tracker);
        if (e) LLVMConsumeError(e);
        LLVMOrcReleaseResourceTracker(ce->tracker);
    }
    free(ce->key);
    free(ce);
}

/* Drop the least recently used unreferenced entries beyond G.max_idle (G.lock held). */
static void evict_idle(void) {
    for (;;) {
        int idle = 0;
        CacheEntry **oldest = NULL;
        for (CacheEntry **pp = &G.entries; *pp; pp = &(*pp)->next)
            if ((*pp)->refs == 0) {
                idle++;
                if (!oldest || (*pp)->last_use < (*oldest)->last_use) oldest = pp;
            }
        if (idle <= G.max_idle) return;
        CacheEntry *ce = *oldest;
        *oldest = ce->next;
        entry_free(ce);
    }
}

/* A new entry for p (G.lock held), its first version built. */
static attnc_status new_entry(const Plan *p, int width, Key *key, uint64_t hash, CacheEntry **out,
                              attnc_error *err) {
    CacheEntry *ce = calloc(1, sizeof *ce);
    if (!ce) return set_error(err, ATTNC_ERR_NOMEM, "out of memory");
    ce->key = key->p;
    ce->keylen = key->len;
    ce->hash = hash;
    ce->width = width;
    ce->C = llvm_row_vectors(p, width);
    key->p = NULL;
    /* the version of the commonest call, float32 prefill, now: what compiling
     * has always cost, and the lowering's errors are the compile's */
    attnc_status st = compile_version(p, ce, 0, err);
    if (st) {
        entry_free(ce);
        return st;
    }
    ce->next = G.entries;
    G.entries = ce;
    *out = ce;
    return ATTNC_OK;
}

static attnc_status llvm_compile(const Plan *p, const attnc_options *opts, CompiledKernel *ck, void **state,
                                 attnc_error *err) {
    (void)opts; /* tile sizes are in the plan; threads do not change the code */
    *state = NULL;
    attnc_status st = ensure_llvm(err);
    if (st) return st;
    int width = llvm_kernel_width(p, llvm_vector_width());
    Key key = {0};
    make_key(p, width, &key);
    KernelState *ks = malloc(sizeof *ks);
    if (key.failed || !ks) {
        free(key.p);
        free(ks);
        return set_error(err, ATTNC_ERR_NOMEM, "out of memory");
    }
    uint64_t hash = hash_bytes(key.p, key.len);
    pthread_mutex_lock(&G.lock);
    CacheEntry *ce = G.entries;
    while (ce && !(ce->hash == hash && ce->keylen == key.len && memcmp(ce->key, key.p, key.len) == 0)) ce = ce->next;
    if (!ce && (st = new_entry(p, width, &key, hash, &ce, err))) {
        pthread_mutex_unlock(&G.lock);
        free(key.p);
        free(ks);
        return st;
    }
    free(key.p);
    ce->refs++;
    ce->last_use = ++G.clock;
    pthread_mutex_unlock(&G.lock);
    ks->ce = ce;
    ks->p = p;
    ck->tile = llvm_tile;
    ck->scratch_bytes = llvm_scratch;
    ck->prepare = llvm_prepare;
    ck->kernel_data = ks;
    ck->packs = 1; /* packed heads: llvm_rows.c */
    ck->widens = 1; /* 16-bit kv tiles into Kc, Vc: llvm_tensor.c */
    ck->maps_rows = 1; /* AttnCall.q_rows: llvm_rows.c, rows_offset */
    ck->maps_kv_rows = 1; /* AttnCall.kv_rows: llvm_lower.c, tile_rows (a version of its own) */
    ck->pages = 1; /* a paged K and V read in place: the tile's first row, llvm_tensor.c's lower_page_row */
    ck->short_kv_tiles = 1; /* llvm_lower.c: a tile's keys are min(AttnCall.bk, BK) */
    if (p->grad_sched && !p->grad_sched->base.why[0]) { /* the backward kernel, built on first use */
        ck->grad_tile = llvm_grad_tile;
        ck->grad_scratch_bytes = llvm_grad_scratch;
        ck->grad_prepare = llvm_grad_prepare;
    }
    *state = ks;
    return ATTNC_OK;
}

static void llvm_release(void *state) {
    KernelState *ks = state;
    if (!ks) return;
    pthread_mutex_lock(&G.lock);
    ks->ce->refs--;
    ks->ce->last_use = ++G.clock;
    evict_idle();
    pthread_mutex_unlock(&G.lock);
    free(ks);
}

/* "llvm-ir": the module as lowered, then after default<O3>; "asm": the
 * host assembly; four versions of the kernel in one module (VERSIONS).
 * Built in a private context: no lock, no JIT. */
static attnc_status llvm_emit(const Plan *p, const attnc_options *opts, const char *target, StrBuf *out,
                              attnc_error *err) {
    (void)opts;
    int ir = strcmp(target, "llvm-ir") == 0, asm_text = strcmp(target, "asm") == 0;
    if (!ir && !asm_text) return set_error(err, ATTNC_ERR_USAGE, "the LLVM backend emits llvm-ir and asm only");
    attnc_status st = ensure_llvm(err);
    if (st) return st;
    char why[300];
    LLVMTargetMachineRef tm = host_machine(why, sizeof why);
    if (!tm) return set_error(err, ATTNC_ERR_INTERNAL, "LLVM backend: %s", why);
    int width = llvm_kernel_width(p, llvm_vector_width());
    LLVMContextRef ctx = LLVMContextCreate();
    LLVMModuleRef mod = LLVMModuleCreateWithNameInContext("attnc", ctx);
    StrBuf before = {0};
    st = build_module(p, width, mod, tm, emit_versions, emit_names, NEMIT, "attnc_scratch", 1, ir ? &before : NULL,
                      err);
    if (!st && ir) {
        char *after = LLVMPrintModuleToString(mod);
        sb_printf(out, "; ==== attention %s: LLVM IR as lowered (%d-lane vectors, before optimisation) ====\n",
                  p->attn->name, width);
        sb_printf(out, "; %s", VERSIONS);
        sb_printf(out, "%s", before.p ? before.p : "");
        sb_printf(out, "\n; ==== attention %s: LLVM IR after default<O3> for %s ====\n", p->attn->name, G.cpu);
        sb_printf(out, "%s", after);
        LLVMDisposeMessage(after);
    } else if (!st) {
        char *msg = NULL;
        LLVMMemoryBufferRef buf = NULL;
        if (LLVMTargetMachineEmitToMemoryBuffer(tm, mod, LLVMAssemblyFile, &msg, &buf)) {
            st = set_error(err, ATTNC_ERR_INTERNAL, "LLVM backend: cannot emit assembly: %.300s", msg ? msg : "");
        } else {
            sb_printf(out, "# attention %s: %d-lane vectors, %s\n", p->attn->name, width, G.cpu);
            sb_printf(out, "; %s", VERSIONS);
            sb_printf(out, "%.*s", (int)LLVMGetBufferSize(buf), LLVMGetBufferStart(buf));
            LLVMDisposeMemoryBuffer(buf);
        }
        if (msg) LLVMDisposeMessage(msg);
    }
    int lost = before.failed; /* the IR as lowered did not fit in memory */
    sb_free(&before);
    LLVMDisposeModule(mod);
    LLVMContextDispose(ctx);
    LLVMDisposeTargetMachine(tm);
    if (!st && (out->failed || lost)) st = set_error(err, ATTNC_ERR_NOMEM, "out of memory");
    return st;
}

const BackendImpl backend_llvm = {
    .id = ATTNC_BACKEND_LLVM,
    .can_run = 1,
    .compile = llvm_compile,
    .release = llvm_release,
    .emit = llvm_emit,
    .vec_width = llvm_vector_width,
    .layouts = 1, /* Q, K, V, O and LSE as the call holds them (llvm_lower.c, llvm_tensor.c) */
    .toeplitz = TABLES_DISTANCE | TABLES_GRID, /* builds SB_DIAG per row block and kv tile (llvm_lower.c: diag_fill) */
};
