/* cuda_backend.c — backend "cuda": the CUDA C of backends/cuda compiled at
 * run time by NVRTC for the first CUDA device and run there (docs/cuda.md
 * "The cuda backend").  The driver and NVRTC are loaded with dlopen
 * (cuda_driver.c); without them attnc_compile fails with one line.
 *
 * Per call (cuda_launch, reached through runtime/launch_device.c, which owns
 * the device memory and the copies): the tensor-core kernel
 * (templates/cuda_fa2.cu) when the plan and the call allow it
 * (cuda_fa2_plan_ok, cuda_fa2_call_ok: the one rule) and its dynamic shared
 * memory fits the device, else the scaffold (templates/cuda_tile.cu).  Each
 * kernel text is compiled when a call first needs it — the scaffold once per
 * kernel, the tensor-core kernel once per (D, Dv, type) — into a cubin for
 * the device's sm_XY, loaded as a module and kept in the kernel's state
 * (at most CUDA_VERSIONS).  The launch geometry (blocks, threads, dynamic
 * shared memory) is the templates' own rule (attnc_cuda_geometry,
 * attnc_fa2_geometry), run on the device by a one-thread kernel of the
 * same module, since NVRTC compiles no host code and the low-rank sizes may
 * read the call's tensors.
 *
 * Requires: libcuda.so.1 and libnvrtc at run time (neither at build time).
 * Produces: backend_cuda (backend.h); cuda_rt_compile for the tests. */
#include "cuda_backend.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "cuda_driver.h"
#include "cuda_emit.h"
#include "cuda_fa2_emit.h"
#include "c_emit.h"
#include "rows_table.h"

enum { CUDA_VERSIONS = 16, NAME_MAX_CHARS = 200 };

int cuda_rt_break_source_for_tests = 0;

/* One compiled kernel text: the scaffold (fa2 = 0) or a tensor-core
 * specialisation, its module, kernel and geometry kernel. */
typedef struct CudaVersion {
    int fa2, D, Dv, type; /* type: cuda_fa2_type (f16, bf16, float32 through TF32) */
    CUmodule mod;
    CUfunction kernel, geometry;
    CUfunction v2[4]; /* the scaffold's version-2 kernels (cuda_emit_v2.c): rows, table, sinks, merge; NULL if none */
} CudaVersion;

typedef struct CudaState {
    const Plan *p;
    const CudaDevice *dev;
    int fa2_plan; /* cuda_fa2_plan_ok */
    int flags;    /* the kernel's attnc_options flags (ATTNC_OPT_EXACT_F32) */
    pthread_mutex_t lock;
    int n;
    CudaVersion v[CUDA_VERSIONS];
} CudaState;

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* ---- NVRTC ---------------------------------------------------------------- */

/* The text's file name, for NVRTC's messages and the dump. */
static void text_name(const Plan *p, int fa2, int D, int Dv, int type, int arch, char *out, size_t n) {
    static const char *const types[] = {"f16", "bf16", "tf32"};
    if (fa2) snprintf(out, n, "%s_fa2_%d_%d_%s_sm%d", p->attn->name, D, Dv, types[type], arch);
    else snprintf(out, n, "%s_cuda_sm%d", p->attn->name, arch);
}

/* ATTNC_CUDA_DUMP=DIR: the source and NVRTC's whole log, for a failed compile. */
static void dump_failure(const char *name, const char *src, const char *log) {
    const char *dir = getenv("ATTNC_CUDA_DUMP");
    if (!dir || !*dir) return;
    const char *ext[2] = {"cu", "log"}, *text[2] = {src, log};
    for (int i = 0; i < 2; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s.%s", dir, name, ext[i]);
        FILE *f = fopen(path, "w");
        if (f) {
            fputs(text[i], f);
            fclose(f);
        }
    }
}

/* NVRTC's log of prog (malloc'd, "" when it has none). */
static char *program_log(const CudaNvrtc *nv, nvrtcProgram prog) {
    size_t n = 0;
    if (nv->nvrtcGetProgramLogSize(prog, &n) != 0) n = 0;
    char *log = calloc(n + 1, 1);
    if (log && n && nv->nvrtcGetProgramLog(prog, log) != 0) log[0] = 0;
    return log;
}

/* The log's first line naming an error (or its first line), into out. */
static void first_error(const char *log, char *out, size_t n) {
    const char *at = strstr(log, "error");
    if (at) {
        while (at > log && at[-1] != '\n') at--;
    } else {
        at = log;
    }
    size_t len = strcspn(at, "\n");
    snprintf(out, n, "%.*s", (int)(len < 300 ? len : 300), at);
}

/* Compile src with NVRTC; the kernel names (lowered) into lowered[]. */
static attnc_status nvrtc_compile(const char *src, const char *name, const char *const *kernels, int nkernels,
                                  char lowered[][NAME_MAX_CHARS], int arch, int ptx, char **image, size_t *size,
                                  attnc_error *err) {
    const CudaNvrtc *nv;
    attnc_status st = cuda_nvrtc_load(&nv, err);
    if (st) return st;
    nvrtcProgram prog = NULL;
    char file[NAME_MAX_CHARS + 4], archopt[64], callopt[64];
    snprintf(file, sizeof file, "%s.cu", name);
    snprintf(archopt, sizeof archopt, "--gpu-architecture=%s_%d", ptx ? "compute" : "sm", arch);
    /* the kernel arguments are this library's AttnCall bytes: support.h checks the size */
    snprintf(callopt, sizeof callopt, "-DATTNC_HOST_CALL_BYTES=%zu", sizeof(AttnCall));
    const char *opts[] = {archopt, "-std=c++17", callopt};
    int rc = nv->nvrtcCreateProgram(&prog, src, file, 0, NULL, NULL);
    if (rc) return set_error(err, ATTNC_ERR_RUNTIME, "backend cuda: nvrtcCreateProgram: %s", nv->nvrtcGetErrorString(rc));
    for (int i = 0; i < nkernels && !rc; i++) rc = nv->nvrtcAddNameExpression(prog, kernels[i]);
    int compiled = rc ? rc : nv->nvrtcCompileProgram(prog, 3, opts);
    if (compiled) {
        char *log = program_log(nv, prog);
        char first[400];
        first_error(log ? log : "", first, sizeof first);
        dump_failure(name, src, log ? log : "");
        st = set_error(err, ATTNC_ERR_RUNTIME,
                       "backend cuda: NVRTC cannot compile %s.cu (%s): %s (ATTNC_CUDA_DUMP=DIR writes the source and "
                       "the whole log)",
                       name, nv->nvrtcGetErrorString(compiled), first);
        free(log);
    }
    for (int i = 0; i < nkernels && !st; i++) {
        const char *low = NULL;
        if (nv->nvrtcGetLoweredName(prog, kernels[i], &low) || !low)
            st = set_error(err, ATTNC_ERR_INTERNAL, "backend cuda: NVRTC does not name kernel %s", kernels[i]);
        else snprintf(lowered[i], NAME_MAX_CHARS, "%s", low);
    }
    if (!st) {
        size_t n = 0;
        rc = ptx ? nv->nvrtcGetPTXSize(prog, &n) : nv->nvrtcGetCUBINSize(prog, &n);
        *image = rc ? NULL : malloc(n + 1);
        if (!rc && !*image) st = set_error(err, ATTNC_ERR_NOMEM, "out of memory for a CUDA image");
        else if (!rc) rc = ptx ? nv->nvrtcGetPTX(prog, *image) : nv->nvrtcGetCUBIN(prog, *image);
        if (rc && !st)
            st = set_error(err, ATTNC_ERR_RUNTIME, "backend cuda: NVRTC gives no image: %s", nv->nvrtcGetErrorString(rc));
        if (!st) {
            (*image)[n] = 0;
            *size = n;
        } else {
            free(*image);
            *image = NULL;
        }
    }
    nv->nvrtcDestroyProgram(&prog);
    return st;
}

/* The kernel text of (p, fa2, D, Dv, type) and its kernels' names. */
static attnc_status kernel_text(const Plan *p, int fa2, int D, int Dv, int type, StrBuf *src, char names[2][NAME_MAX_CHARS],
                                attnc_error *err) {
    attnc_status st = fa2 ? cuda_fa2_emit_source(p, D, Dv, type, src, err) : cuda_emit_source(p, src, err);
    if (!st && cuda_rt_break_source_for_tests) sb_printf(src, "\nthis line is not CUDA C;\n");
    if (!st && src->failed) st = set_error(err, ATTNC_ERR_NOMEM, "out of memory while emitting CUDA C");
    snprintf(names[0], NAME_MAX_CHARS, "%s_%s_kernel", p->attn->name, fa2 ? "fa2" : "cuda");
    snprintf(names[1], NAME_MAX_CHARS, "%s_%s_geometry", p->attn->name, fa2 ? "fa2" : "cuda");
    return st;
}

attnc_status cuda_rt_compile(const Plan *p, int fa2, int D, int Dv, int type, int arch, int ptx, char **image,
                             size_t *size, double *secs, attnc_error *err) {
    StrBuf src = {0};
    char names[2][NAME_MAX_CHARS], lowered[2][NAME_MAX_CHARS], name[NAME_MAX_CHARS];
    const char *kernels[2] = {names[0], names[1]};
    *image = NULL;
    attnc_status st = kernel_text(p, fa2, D, Dv, type, &src, names, err);
    text_name(p, fa2, D, Dv, type, arch, name, sizeof name);
    double t0 = now_seconds();
    if (!st) st = nvrtc_compile(src.p, name, kernels, 2, lowered, arch, ptx, image, size, err);
    *secs = now_seconds() - t0;
    sb_free(&src);
    return st;
}

/* ---- the kernel's versions -------------------------------------------------- */

/* The scaffold module's version-2 kernels (extern "C": their names are not
 * lowered); those the attention lacks (a table, the sinks) stay NULL. */
static CUresult v2_functions(const CudaDriver *d, const Plan *p, CudaVersion *v) {
    static const char *const kinds[4] = {"rows", "table", "sinks", "merge"};
    int want[4] = {1, p->rows && p->rows->ntables > 0, p->attn->sink != NULL, p->attn->sink != NULL};
    for (int i = 0; i < 4; i++) {
        char name[NAME_MAX_CHARS];
        snprintf(name, sizeof name, "%s_v2_%s", p->attn->name, kinds[i]);
        CUresult rc = want[i] ? d->cuModuleGetFunction(&v->v2[i], v->mod, name) : CUDA_SUCCESS;
        if (rc != CUDA_SUCCESS) return rc;
    }
    return CUDA_SUCCESS;
}

/* The version (fa2, D, Dv, type), compiled and loaded when first asked for;
 * NULL with *st = ATTNC_OK when the cache is full (the tensor-core kernel's
 * specialisations never take the scaffold's room).  Under s->lock. */
static CudaVersion *version_locked(CudaState *s, int fa2, int D, int Dv, int type, attnc_status *st,
                                   attnc_error *err) {
    *st = ATTNC_OK;
    for (int i = 0; i < s->n; i++)
        if (s->v[i].fa2 == fa2 && s->v[i].D == D && s->v[i].Dv == Dv && s->v[i].type == type) return &s->v[i];
    if (s->n == CUDA_VERSIONS - fa2) return NULL; /* the last slot is the scaffold's */
    StrBuf src = {0};
    char names[2][NAME_MAX_CHARS], lowered[2][NAME_MAX_CHARS], name[NAME_MAX_CHARS], *image = NULL;
    const char *kernels[2] = {names[0], names[1]};
    size_t size = 0;
    const CudaDriver *d = s->dev->d;
    CudaVersion *v = &s->v[s->n];
    memset(v, 0, sizeof *v);
    text_name(s->p, fa2, D, Dv, type, s->dev->arch, name, sizeof name);
    *st = kernel_text(s->p, fa2, D, Dv, type, &src, names, err);
    if (!*st) *st = nvrtc_compile(src.p, name, kernels, 2, lowered, s->dev->arch, 0, &image, &size, err);
    sb_free(&src);
    CUresult rc = CUDA_SUCCESS;
    const char *what = "cuModuleLoadData";
    if (!*st && (rc = d->cuModuleLoadData(&v->mod, image)) == CUDA_SUCCESS) {
        what = "cuModuleGetFunction";
        rc = d->cuModuleGetFunction(&v->kernel, v->mod, lowered[0]);
        if (rc == CUDA_SUCCESS) rc = d->cuModuleGetFunction(&v->geometry, v->mod, lowered[1]);
        if (rc == CUDA_SUCCESS && !fa2 && cuda_plan_is_v2(s->p)) rc = v2_functions(d, s->p, v);
        if (rc != CUDA_SUCCESS) d->cuModuleUnload(v->mod);
    }
    free(image);
    if (!*st && rc != CUDA_SUCCESS) *st = cuda_fail(s->dev, err, rc, what);
    if (*st) return NULL;
    v->fa2 = fa2, v->D = D, v->Dv = Dv, v->type = type;
    s->n++;
    return v;
}

static attnc_status version_get(CudaState *s, int fa2, int D, int Dv, int type, CudaVersion **out,
                                attnc_error *err) {
    attnc_status st;
    pthread_mutex_lock(&s->lock);
    *out = version_locked(s, fa2, D, Dv, type, &st, err);
    pthread_mutex_unlock(&s->lock);
    return st;
}

/* ---- a launch ----------------------------------------------------------------- */

/* The bytes of templates/support.h's AttnCudaConsts for call c of p (its
 * static_assert holds the struct to this layout); the size in *n. */
static unsigned char *consts_fill(const Plan *p, const AttnCall *c, size_t *n) {
    const int np = p->attn->nparams, nt = p->attn->ntensors;
    *n = (size_t)8 * ((size_t)np + 1 + ((size_t)nt + 1) * (1 + ATTNC_ABI_MAX_RANK));
    unsigned char *b = calloc(1, *n), *at = b;
    if (!b) return NULL;
    memcpy(at, c->params, sizeof(AttnValue) * (size_t)np);
    at += sizeof(AttnValue) * ((size_t)np + 1);
    memcpy(at, c->tensor_data, sizeof(void *) * (size_t)nt);
    at += sizeof(void *) * ((size_t)nt + 1);
    memcpy(at, c->tensor_shape, sizeof(int64_t) * ATTNC_ABI_MAX_RANK * (size_t)nt);
    return b;
}

/* The kernel's arguments: the scaffold's (AttnCall, AttnCudaConsts, int *)
 * or the tensor-core kernel's AttnFa2Args {AttnCall, AttnCudaConsts,
 * int64_t first_item, int *fault}, as one buffer; argv[] points into it
 * (argv[last] at the geometry kernel's int64_t *, which follows). */
typedef struct LaunchArgs {
    unsigned char *buf;
    void *argv[4];
    int argc;
} LaunchArgs;

static int launch_args(const Plan *p, int fa2, const AttnCall *c, CUdeviceptr fault, CUdeviceptr geometry,
                       LaunchArgs *a) {
    size_t nc = 0, call = sizeof(AttnCall);
    unsigned char *consts = consts_fill(p, c, &nc);
    a->buf = consts ? malloc(call + nc + 32) : NULL;
    if (!a->buf) {
        free(consts);
        return 0;
    }
    int64_t first_item = 0;
    memcpy(a->buf, c, call);
    memcpy(a->buf + call, consts, nc);
    free(consts);
    if (fa2) {
        memcpy(a->buf + call + nc, &first_item, 8);
        memcpy(a->buf + call + nc + 8, &fault, 8);
        a->argv[0] = a->buf;
        a->argc = 1;
    } else {
        memcpy(a->buf + call + nc, &fault, 8);
        a->argv[0] = a->buf, a->argv[1] = a->buf + call, a->argv[2] = a->buf + call + nc;
        a->argc = 3;
    }
    memcpy(a->buf + call + nc + 16, &geometry, 8);
    a->argv[a->argc] = a->buf + call + nc + 16;
    return 1;
}

/* g[0 .. 3] of the call, from the version's geometry kernel. */
static attnc_status run_geometry(const CudaDevice *dev, const CudaVersion *v, const LaunchArgs *a, CUstream stream,
                                 CUdeviceptr dg, int64_t g[4], attnc_error *err) {
    const CudaDriver *d = dev->d;
    void *argv[4] = {a->argv[0], a->argv[1], a->argv[2], a->argv[3]};
    if (v->fa2) argv[1] = a->argv[a->argc]; /* (AttnFa2Args, int64_t *) */
    else argv[2] = a->argv[a->argc];        /* (AttnCall, AttnCudaConsts, int64_t *) */
    CUresult rc = d->cuLaunchKernel(v->geometry, 1, 1, 1, 1, 1, 1, 0, stream, argv, NULL);
    if (rc) return cuda_fail(dev, err, rc, "cuLaunchKernel (the geometry)");
    rc = d->cuMemcpyDtoHAsync(g, dg, 4 * sizeof(int64_t), stream);
    if (!rc) rc = d->cuStreamSynchronize(stream);
    return rc ? cuda_fail(dev, err, rc, "the geometry kernel") : ATTNC_OK;
}

/* The version for call c and its geometry: the tensor-core kernel when it
 * takes c and its shared memory fits the device, else the scaffold. */
static attnc_status choose(CudaState *s, const AttnCall *c, CUstream stream, CUdeviceptr fault, CUdeviceptr dg,
                           CudaVersion **out, LaunchArgs *a, int64_t g[4], attnc_error *err) {
    attnc_status st = ATTNC_OK;
    *out = NULL;
    if (s->fa2_plan && cuda_fa2_takes(s->p, c, s->flags)) {
        st = version_get(s, 1, (int)c->D, (int)c->Dv, cuda_fa2_type(c->q_elem), out, err);
        if (!st && *out && !launch_args(s->p, 1, c, fault, dg, a)) st = set_error(err, ATTNC_ERR_NOMEM, "out of memory");
        if (!st && *out) st = run_geometry(s->dev, *out, a, stream, dg, g, err);
        if (!st && *out && (g[3] != 0 || g[2] > s->dev->smem_optin)) *out = NULL; /* the scaffold's call */
        if (!*out) free(a->buf), a->buf = NULL;
    }
    if (st || *out) return st;
    st = version_get(s, 0, 0, 0, 0, out, err);
    if (!st && !*out) st = set_error(err, ATTNC_ERR_INTERNAL, "backend cuda: no room for the scaffold kernel");
    if (!st && !launch_args(s->p, 0, c, fault, dg, a)) st = set_error(err, ATTNC_ERR_NOMEM, "out of memory");
    if (!st) st = run_geometry(s->dev, *out, a, stream, dg, g, err);
    if (!st && g[3] == 2)
        st = set_error(err, ATTNC_ERR_NOMEM, "backend cuda: the call needs %lld blocks of %lld bytes of shared memory",
                       (long long)g[0], (long long)g[2]);
    if (!st && g[3]) st = set_error(err, ATTNC_ERR_INTERNAL, "backend cuda: the scaffold kernel refuses the call");
    if (!st && g[2] > s->dev->smem_optin)
        st = set_error(err, ATTNC_ERR_RUNTIME,
                       "backend cuda: the call needs %lld bytes of shared memory per block, the device has %d",
                       (long long)g[2], s->dev->smem_optin);
    return st;
}

static attnc_status cuda_launch_ctx(CudaState *s, const AttnCall *c, CUstream stream, void *scratch, int *faulted,
                                    attnc_error *err) {
    const CudaDriver *d = s->dev->d;
    CUdeviceptr fault = (CUdeviceptr)(uintptr_t)scratch, dg = fault + 8;
    CudaVersion *v = NULL;
    LaunchArgs a;
    int64_t g[4] = {0, 0, 0, 0};
    int flag = 0;
    memset(&a, 0, sizeof a);
    CUresult rc = d->cuMemsetD8Async(fault, 0, 4, stream);
    attnc_status st = rc ? cuda_fail(s->dev, err, rc, "cuMemsetD8Async") : choose(s, c, stream, fault, dg, &v, &a, g, err);
    if (!st && g[0] > 0) {
        if (g[2] > 48 * 1024 &&
            (rc = d->cuFuncSetAttribute(v->kernel, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, (int)g[2])))
            st = cuda_fail(s->dev, err, rc, "cuFuncSetAttribute");
        else if ((rc = d->cuLaunchKernel(v->kernel, (unsigned)g[0], 1, 1, (unsigned)g[1], 1, 1, (unsigned)g[2], stream,
                                         a.argv, NULL)))
            st = cuda_fail(s->dev, err, rc, "cuLaunchKernel");
        else if ((rc = d->cuMemcpyDtoHAsync(&flag, fault, sizeof flag, stream)) ||
                 (rc = d->cuStreamSynchronize(stream)))
            st = cuda_fail(s->dev, err, rc, "the kernel");
    }
    free(a.buf);
    *faulted = !st && flag != 0;
    return st;
}

/* DeviceOps.launch */
static attnc_status cuda_launch(const CompiledKernel *ck, const AttnCall *c, void *stream, void *scratch,
                                int *faulted, attnc_error *err) {
    CudaState *s = (CudaState *)ck->kernel_data;
    *faulted = 0;
    attnc_status st = cuda_ctx_push(s->dev, err);
    if (st) return st;
    st = cuda_launch_ctx(s, c, (CUstream)stream, scratch, faulted, err);
    cuda_ctx_pop(s->dev);
    return st;
}

/* Threads one version-2 kernel of p covers (each strides over the grid past 65535 blocks): a row of Q or
 * K (rows), an element of table arg (the rows it pairs times the rows of its tensor E), an output row. */
static int64_t v2_items(const Plan *p, const AttnCall *c, int which, int arg) {
    if (which >= 2) return c->B * c->H * c->Lq;
    const RowTable *rt = which == 1 ? &p->rows->tables[arg] : NULL;
    int is_k = rt ? rt->is_k : arg;
    int64_t n = is_k ? c->B * c->Hkv * c->Lk : c->B * c->H * c->Lq;
    for (int d = 0; rt && d + 1 < rt->tensor->ndims; d++) n *= c->tensor_shape[rt->tensor->index][d];
    return n;
}

/* DeviceOps.v2_launch: (AttnCall, AttnCudaConsts, int or pointer, pointer, pointer) as one buffer. */
static attnc_status cuda_v2_launch(const CompiledKernel *ck, int which, const AttnCall *c, int arg, void *p0, void *p1,
                                   void *p2, void *stream, attnc_error *err) {
    CudaState *s = (CudaState *)ck->kernel_data;
    CudaVersion *v = NULL;
    attnc_status st = cuda_ctx_push(s->dev, err);
    if (st) return st;
    st = version_get(s, 0, 0, 0, 0, &v, err);
    if (!st && (!v || !v->v2[which]))
        st = set_error(err, ATTNC_ERR_INTERNAL, "backend cuda: attention '%s' has no version-2 kernel %d",
                       s->p->attn->name, which);
    size_t nc = 0, call = sizeof(AttnCall);
    unsigned char *consts = st ? NULL : consts_fill(s->p, c, &nc), *buf = consts ? malloc(call + nc + 32) : NULL;
    if (!st && !buf) st = set_error(err, ATTNC_ERR_NOMEM, "out of memory");
    if (!st) {
        int64_t n = v2_items(s->p, c, which, arg);
        void *argv[5] = {buf, buf + call, buf + call + nc, buf + call + nc + 8, buf + call + nc + 16};
        memcpy(buf, c, call);
        memcpy(buf + call, consts, nc);
        void *ptrs[3] = {p0, p1, p2};
        int first = which <= 1; /* rows and table take an int first */
        if (first) memcpy(buf + call + nc, &arg, sizeof arg);
        for (int i = 0; i < 3 - first; i++) memcpy(buf + call + nc + 8 * (i + first), &ptrs[i], 8);
        unsigned blocks = n <= 0 ? 1u : n > 128LL * 65535 ? 65535u : (unsigned)((n + 127) / 128);
        CUresult rc = s->dev->d->cuLaunchKernel(v->v2[which], blocks, 1, 1, 128, 1, 1, 0, (CUstream)stream, argv, NULL);
        if (rc) st = cuda_fail(s->dev, err, rc, "cuLaunchKernel (a version-2 kernel)");
    }
    free(consts);
    free(buf);
    cuda_ctx_pop(s->dev);
    return st;
}

/* ---- device memory -------------------------------------------------------------- */

static attnc_status cuda_alloc(size_t n, void **out, attnc_error *err) {
    const CudaDevice *dev;
    attnc_status st = cuda_device_get(&dev, err);
    *out = NULL;
    if (st || (st = cuda_ctx_push(dev, err))) return st;
    CUdeviceptr p = 0;
    CUresult rc = dev->d->cuMemAlloc(&p, n ? n : 1);
    cuda_ctx_pop(dev);
    if (rc) return cuda_fail(dev, err, rc, "cuMemAlloc");
    *out = (void *)(uintptr_t)p;
    return ATTNC_OK;
}

static void cuda_free(void *p) {
    const CudaDevice *dev;
    if (!p || cuda_device_get(&dev, NULL) || cuda_ctx_push(dev, NULL)) return;
    dev->d->cuMemFree((CUdeviceptr)(uintptr_t)p);
    cuda_ctx_pop(dev);
}

static attnc_status cuda_copy(void *dst, const void *src, size_t n, int to_device, void *stream, attnc_error *err) {
    const CudaDevice *dev;
    attnc_status st = cuda_device_get(&dev, err);
    if (st || n == 0 || (st = cuda_ctx_push(dev, err))) return st;
    const CudaDriver *d = dev->d;
    CUresult rc = to_device ? d->cuMemcpyHtoDAsync((CUdeviceptr)(uintptr_t)dst, src, n, (CUstream)stream)
                            : d->cuMemcpyDtoHAsync(dst, (CUdeviceptr)(uintptr_t)src, n, (CUstream)stream);
    if (!rc) rc = d->cuStreamSynchronize((CUstream)stream);
    cuda_ctx_pop(dev);
    return rc ? cuda_fail(dev, err, rc, to_device ? "cuMemcpyHtoD" : "cuMemcpyDtoH") : ATTNC_OK;
}

static const DeviceOps cuda_ops = {
    .alloc = cuda_alloc, .free = cuda_free, .copy = cuda_copy, .launch = cuda_launch, .v2_launch = cuda_v2_launch};

/* ---- the backend ------------------------------------------------------------------ */

static attnc_status cuda_probe(attnc_error *err) {
    const CudaDevice *dev;
    const CudaNvrtc *nv;
    attnc_status st = cuda_device_get(&dev, err);
    return st ? st : cuda_nvrtc_load(&nv, err);
}

static void cuda_release(void *state) {
    CudaState *s = state;
    if (!s) return;
    if (s->n && !cuda_ctx_push(s->dev, NULL)) {
        for (int i = 0; i < s->n; i++) s->dev->d->cuModuleUnload(s->v[i].mod);
        cuda_ctx_pop(s->dev);
    }
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static attnc_status cuda_compile(const Plan *p, const attnc_options *opts, CompiledKernel *ck, void **state,
                                 attnc_error *err) {
    *state = NULL;
    attnc_status st = cuda_probe(err);
    if (st) return st;
    CudaState *s = calloc(1, sizeof *s);
    if (!s) return set_error(err, ATTNC_ERR_NOMEM, "out of memory");
    cuda_device_get(&s->dev, NULL);
    pthread_mutex_init(&s->lock, NULL);
    s->p = p;
    s->fa2_plan = cuda_fa2_plan_ok(p);
    s->flags = opts ? opts->flags : 0;
    ck->kernel_data = s;
    *state = s;
    return ATTNC_OK;
}

static attnc_status cuda_emit(const Plan *p, const attnc_options *opts, const char *target, StrBuf *out,
                              attnc_error *err) {
    (void)opts;
    if (strcmp(target, "cuda") != 0)
        return set_error(err, ATTNC_ERR_USAGE, "backend 'cuda' emits target 'cuda', not '%s'", target);
    return cuda_emit_source(p, out, err);
}

const BackendImpl backend_cuda = {
    .id = ATTNC_BACKEND_CUDA,
    .probe = cuda_probe,
    .device = &cuda_ops,
    .can_run = 1,
    .compile = cuda_compile,
    .release = cuda_release,
    .emit = cuda_emit,
    .layouts = 1, /* f16 / bf16 and strides: templates/cuda_tile.cu and cuda_fa2.cu */
    .toeplitz = TABLES_DISTANCE, /* the DIAG hole of templates/cuda_tile.cu and cuda_fa2.cu (backends/c/c_holes.c) */
};
