/* test_cuda_nvrtc.c — the `cuda` backend's NVRTC compile, without a GPU
 * (tests/cuda_rt.cmake: `cuda/nvrtc/<example>`), and its errors.
 *
 *   test_cuda_nvrtc FILE.attn WORKDIR
 *     Every attention of the file, through the library's own compile
 *     (cuda_rt_compile, what the backend loads, here as PTX): the
 *     tensor-core kernel in bf16 at D = Dv = 64 and 128 for sm_90, at 128 for sm_80,
 *     must compile, its PTX hold mma.sync m16n8k16 bf16; then ptxas -v on
 *     that PTX: 0 bytes of spill stores and loads, static + dynamic shared
 *     memory within the architecture's limit (sm_80 163 KiB, sm_90 227 KiB),
 *     and the SASS (cuobjdump -sass, when there is one) holds HMMA.  The
 *     scaffold must compile for sm_80 too.  Prints each NVRTC compile's time.  Exit 77 (skipped)
 *     without NVRTC; without ptxas after the NVRTC checks passed.
 *   test_cuda_nvrtc FILE.attn WORKDIR --one-arch
 *     the same with the tensor-core kernel at D = 128 for sm_90 only (the
 *     most registers and shared memory; the text is the same for every arch
 *     and D) and the scaffold for sm_80 (and sm_90 for version 2): half the
 *     compiles, for the examples that do not get the whole matrix.
 *   test_cuda_nvrtc FILE.attn WORKDIR --broken
 *     a text NVRTC refuses (cuda_rt_break_source_for_tests): a runtime error
 *     of one line holding NVRTC's first error, and with ATTNC_CUDA_DUMP the
 *     source and the whole log in WORKDIR.  77 without NVRTC.
 *   test_cuda_nvrtc FILE.attn WORKDIR --no-nvrtc
 *     ATTNC_NVRTC_LIBRARY naming no file: "NVRTC not found", one line.
 *   test_cuda_nvrtc FILE.attn WORKDIR --no-driver
 *     ATTNC_CUDA_DRIVER naming no file: the backend is not available,
 *     attnc_compile and attnc_cuda_alloc fail with ATTNC_ERR_RUNTIME and
 *     "backend cuda: no CUDA driver (...)", one line; attnc_kernel_run_cuda
 *     refuses a kernel of another backend. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api_internal.h"
#include "attnc.h"
#include "cuda_backend.h"
#include "cuda_fa2_emit.h"
#include "rows_table.h"

static int one_line(const char *m) { return m[0] && !strchr(m, '\n'); }

static const char *find_tool(const char *name, char *buf, size_t n) {
    const char *env = getenv(strcmp(name, "ptxas") ? "ATTNC_CUOBJDUMP" : "ATTNC_PTXAS");
    if (env && *env) return access(env, X_OK) == 0 ? env : NULL;
    snprintf(buf, n, "/usr/local/cuda/bin/%s", name);
    if (access(buf, X_OK) == 0) return buf;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "command -v %s 2>/dev/null", name);
    FILE *p = popen(cmd, "r");
    int found = p && fgets(buf, (int)n, p) != NULL;
    if (p) pclose(p);
    buf[strcspn(buf, "\n")] = 0;
    return found && buf[0] ? buf : NULL;
}

/* ptxas -v on a PTX file: every kernel without spills, shared memory within
 * the limit (static + dyn); the cubin's SASS with HMMA.  0 pass, 1 fail. */
static int check_ptxas(const char *ptxas, const char *cuobjdump, const char *ptx, int arch, long dyn) {
    char cmd[4096], line[1024], cubin[1024];
    snprintf(cubin, sizeof cubin, "%.1000s.cubin", ptx);
    snprintf(cmd, sizeof cmd, "'%.500s' -arch=sm_%d -v '%.1000s' -o '%.1100s' 2>&1", ptxas, arch, ptx, cubin);
    FILE *p = popen(cmd, "r");
    int bad = !p, lines = 0;
    long limit = arch >= 90 ? 227 * 1024 : 163 * 1024, smem = 0;
    while (p && fgets(line, sizeof line, p)) {
        long st = -1, ld = -1;
        const char *at = strstr(line, "bytes spill stores");
        if (at) {
            const char *c = strchr(line, ',');
            if (c && sscanf(c + 1, "%ld bytes spill stores, %ld bytes spill loads", &st, &ld) == 2 && (st || ld)) {
                printf("FAIL sm_%d %s: %s", arch, ptx, line);
                bad = 1;
            }
            lines++;
        }
        at = strstr(line, "bytes smem");
        if (at) {
            const char *c = at;
            while (c > line && c[-1] != ',' && c[-1] != ':') c--;
            long s = atol(c);
            if (s > smem) smem = s;
        }
        if (strstr(line, "error")) {
            printf("FAIL ptxas: %s", line);
            bad = 1;
        }
    }
    if (p && pclose(p) != 0) bad = 1;
    if (!lines) {
        printf("FAIL sm_%d %s: ptxas reported no function\n", arch, ptx);
        bad = 1;
    }
    if (smem + dyn > limit) {
        printf("FAIL sm_%d %s: %ld + %ld bytes of shared memory, the limit is %ld\n", arch, ptx, smem, dyn, limit);
        bad = 1;
    }
    if (!bad && !cuobjdump) printf("  ptxas sm_%d: 0 spills, %ld + %ld bytes smem (no cuobjdump: SASS not read)\n", arch, smem, dyn);
    if (!bad && cuobjdump) {
        snprintf(cmd, sizeof cmd, "'%s' -sass '%s' | grep -c HMMA", cuobjdump, cubin);
        p = popen(cmd, "r");
        long hmma = 0;
        if (p && fgets(line, sizeof line, p)) hmma = atol(line);
        if (p) pclose(p);
        if (hmma <= 0) {
            printf("FAIL sm_%d %s: no HMMA in the SASS\n", arch, ptx);
            bad = 1;
        } else {
            printf("  ptxas sm_%d: 0 spills, %ld + %ld bytes smem, %ld HMMA\n", arch, smem, dyn, hmma);
        }
    }
    return bad;
}

static int write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) return 0;
    fputs(text, f);
    return fclose(f) == 0;
}

/* A version-2 attention's scaffold PTX: its kernels around the attention kernel
 * (backends/cuda/cuda_emit_v2.c) are entries of the module.  1 fail. */
static int check_v2_entries(const Plan *p, const char *ptx, int arch) {
    const char *kinds[4] = {"rows", "table", "sinks", "merge"};
    int want[4] = {1, p->rows && p->rows->ntables > 0, p->attn->sink != NULL, p->attn->sink != NULL}, fail = 0;
    for (int i = 0; i < 4; i++) {
        char entry[256];
        snprintf(entry, sizeof entry, ".entry %s_v2_%s(", p->attn->name, kinds[i]);
        if (want[i] != (strstr(ptx, entry) != NULL))
            printf("FAIL %s sm_%d: the PTX %s %s\n", p->attn->name, arch, want[i] ? "lacks" : "has", entry), fail = 1;
    }
    if (!fail) printf("  sm_%d: the version-2 kernels are entries of the module\n", arch);
    return fail;
}

/* Every check of one attention; 1 fail, 0 pass, 77 NVRTC missing. */
static int check_attention(const attnc_kernel *k, const char *work, const char *ptxas, const char *cuobjdump,
                           int one_arch, double *total) {
    const Plan *p = attnc_kernel_plan(k);
    const char *name = attnc_kernel_variant(k);
    static const int archs[2] = {80, 90}, heads[2] = {64, 128};
    attnc_error err = {0};
    int fail = 0, v2 = p->attn->rotary || p->attn->sink || (p->rows && p->rows->ntables > 0);
    if (!cuda_fa2_plan_ok(p)) {
        printf("FAIL %s: the tensor-core kernel cannot compute it\n", name);
        return 1;
    }
    for (int a = 0; a < 2; a++) {
        char *img = NULL;
        size_t n = 0;
        double secs = 0;
        /* the scaffold once (sm_80; a version-2 attention's, with its kernels around the attention
         * kernel, for each arch), the tensor-core kernel for each arch */
        attnc_status st = a && !v2 ? ATTNC_OK : cuda_rt_compile(p, 0, 0, 0, 0, archs[a], 1, &img, &n, &secs, &err);
        if (st && strstr(err.message, "NVRTC not found")) {
            printf("SKIP: %s\n", err.message);
            return 77;
        }
        if (st) printf("FAIL %s scaffold sm_%d: %s\n", name, archs[a], err.message), fail = 1;
        else if (!a || v2) printf("%s scaffold sm_%d: NVRTC %.2f s\n", name, archs[a], secs);
        if (!st && v2) fail |= check_v2_entries(p, img, archs[a]);
        *total += a ? 0 : secs;
        free(img);
        for (int d = 0; d < 2; d++) {
            int D = heads[d];
            /* sm_80 at D = 64 adds nothing D = 128 does not check harder (fewer registers, less shared
             * memory; the same text), and CI's 30 minutes are short */
            if (archs[a] == 80 && D == 64) continue;
            if (one_arch && (archs[a] != 90 || D != 128)) continue;
            st = cuda_rt_compile(p, 1, D, D, 1, archs[a], 1, &img, &n, &secs, &err);
            *total += secs;
            if (st) {
                printf("FAIL %s fa2 D=%d sm_%d: %s\n", name, D, archs[a], err.message);
                fail = 1;
                continue;
            }
            int mma = strstr(img, "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32") != NULL;
            printf("%s fa2 D=%d bf16 sm_%d: NVRTC %.2f s, %zu bytes of PTX%s\n", name, D, archs[a], secs, n,
                   mma ? ", mma.sync" : "");
            if (!mma) printf("FAIL %s fa2 D=%d sm_%d: the PTX has no mma.sync bf16\n", name, D, archs[a]), fail = 1;
            char path[1024];
            snprintf(path, sizeof path, "%s/%s_%d_sm%d.ptx", work, name, D, archs[a]);
            if (!write_text(path, img)) printf("FAIL cannot write %s\n", path), fail = 1;
            else if (ptxas) fail |= check_ptxas(ptxas, cuobjdump, path, archs[a], (3L * 64 * (D + 8) + 2L * 64 * (D + 8)) * 2);
            free(img);
        }
    }
    return fail;
}

static int compile_all(const char *file, const char *work, int one_arch) {
    attnc_spec *spec = NULL;
    attnc_error err = {0};
    if (attnc_spec_from_file(file, &spec, &err)) {
        printf("FAIL %s\n", err.message);
        return 1;
    }
    char b1[512], b2[512];
    const char *ptxas = find_tool("ptxas", b1, sizeof b1), *cuobjdump = find_tool("cuobjdump", b2, sizeof b2);
    int fail = 0, skip = 0;
    double total = 0;
    for (int i = 0; i < attnc_spec_variant_count(spec) && !skip; i++) {
        attnc_options o = {.backend = ATTNC_BACKEND_INTERP}; /* the plan the cuda backend builds too */
        attnc_kernel *k = NULL;
        attnc_status st = attnc_compile(spec, attnc_spec_variant_name(spec, i), &o, &k, &err);
        if (!st && !attnc_kernel_plan(k)) { /* version 2 on the interpreter has no plan: refplan's (with its tables) */
            attnc_kernel_free(k);
            o.backend = ATTNC_BACKEND_REFPLAN;
            st = attnc_compile(spec, attnc_spec_variant_name(spec, i), &o, &k, &err);
        }
        if (st) {
            printf("FAIL %s\n", err.message);
            fail = 1;
            continue;
        }
        int r = check_attention(k, work, ptxas, cuobjdump, one_arch, &total);
        if (r == 77) skip = 1;
        else fail |= r;
        attnc_kernel_free(k);
    }
    attnc_spec_free(spec);
    if (skip) return 77;
    printf("NVRTC: %.2f s in all\n", total);
    if (!fail && !ptxas) {
        printf("SKIP: the NVRTC checks passed; no ptxas for the spill and shared-memory checks\n");
        return 77;
    }
    return fail;
}

/* The first attention of file compiled for the interpreter (a plan). */
static attnc_kernel *first_kernel(const char *file, attnc_backend backend, attnc_error *err) {
    attnc_spec *spec = NULL;
    attnc_kernel *k = NULL;
    attnc_options o = {.backend = backend};
    if (!attnc_spec_from_file(file, &spec, err)) attnc_compile(spec, attnc_spec_variant_name(spec, 0), &o, &k, err);
    attnc_spec_free(spec);
    return k;
}

static int broken(const char *file, const char *work) {
    setenv("ATTNC_CUDA_DUMP", work, 1);
    attnc_error err = {0};
    attnc_kernel *k = first_kernel(file, ATTNC_BACKEND_INTERP, &err);
    if (!k) return printf("FAIL %s\n", err.message), 1;
    cuda_rt_break_source_for_tests = 1;
    char *img = NULL;
    size_t n = 0;
    double secs;
    attnc_status st = cuda_rt_compile(attnc_kernel_plan(k), 1, 64, 64, 1, 80, 1, &img, &n, &secs, &err);
    int fail = 0;
    if (st && strstr(err.message, "NVRTC not found")) {
        printf("SKIP: %s\n", err.message);
        attnc_kernel_free(k);
        return 77;
    }
    printf("%s\n", err.message);
    if (st != ATTNC_ERR_RUNTIME || !one_line(err.message) || !strstr(err.message, "NVRTC cannot compile") ||
        !strstr(err.message, "error"))
        printf("FAIL: expected a one-line NVRTC error with its log's first error (status %d)\n", st), fail = 1;
    char path[1024];
    struct stat sb;
    const char *ext[2] = {"cu", "log"};
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s_fa2_64_64_bf16_sm80.%s", work, attnc_kernel_variant(k), ext[i]);
        if (stat(path, &sb) != 0 || sb.st_size == 0) printf("FAIL: ATTNC_CUDA_DUMP wrote no %s\n", path), fail = 1;
    }
    free(img);
    attnc_kernel_free(k);
    return fail;
}

static int no_nvrtc(const char *file) {
    setenv("ATTNC_NVRTC_LIBRARY", "/nonexistent/libnvrtc.so", 1);
    attnc_error err = {0};
    attnc_kernel *k = first_kernel(file, ATTNC_BACKEND_INTERP, &err);
    if (!k) return printf("FAIL %s\n", err.message), 1;
    char *img = NULL;
    size_t n = 0;
    double secs;
    attnc_status st = cuda_rt_compile(attnc_kernel_plan(k), 0, 0, 0, 0, 80, 1, &img, &n, &secs, &err);
    printf("%s\n", err.message);
    attnc_kernel_free(k);
    int ok = st == ATTNC_ERR_RUNTIME && !img && one_line(err.message) &&
             strstr(err.message, "backend cuda: NVRTC not found (") && strstr(err.message, "/nonexistent/libnvrtc.so");
    if (!ok) printf("FAIL: expected 'backend cuda: NVRTC not found (...)' (status %d)\n", st);
    return !ok;
}

static int no_driver(const char *file) {
    setenv("ATTNC_CUDA_DRIVER", "/nonexistent/libcuda.so.1", 1);
    attnc_error err = {0};
    int fail = 0;
    attnc_backend b;
    if (!attnc_backend_parse("cuda", &b) || b != ATTNC_BACKEND_CUDA || strcmp(attnc_backend_name(b), "cuda"))
        printf("FAIL: 'cuda' does not parse to ATTNC_BACKEND_CUDA\n"), fail = 1;
    if (attnc_backend_available(ATTNC_BACKEND_CUDA)) printf("FAIL: cuda available without a driver\n"), fail = 1;
    attnc_kernel *k = first_kernel(file, ATTNC_BACKEND_CUDA, &err);
    printf("attnc_compile: %s\n", err.message);
    if (k || err.status != ATTNC_ERR_RUNTIME || !one_line(err.message) ||
        !strstr(err.message, "backend cuda: no CUDA driver (") || !strstr(err.message, "/nonexistent/libcuda.so.1"))
        printf("FAIL: expected ATTNC_ERR_RUNTIME 'backend cuda: no CUDA driver (...)'\n"), fail = 1;
    attnc_kernel_free(k);
    void *d = (void *)1;
    memset(&err, 0, sizeof err);
    attnc_status st = attnc_cuda_alloc(64, &d, &err);
    if (st != ATTNC_ERR_RUNTIME || d || !strstr(err.message, "no CUDA driver"))
        printf("FAIL: attnc_cuda_alloc: %d %s\n", st, err.message), fail = 1;
    attnc_cuda_free(NULL);
    k = first_kernel(file, ATTNC_BACKEND_INTERP, &err);
    attnc_args args;
    memset(&args, 0, sizeof args);
    st = attnc_kernel_run_cuda(k, &args, NULL, NULL, &err);
    printf("attnc_kernel_run_cuda (interp kernel): %s\n", err.message);
    if (st != ATTNC_ERR_USAGE) printf("FAIL: attnc_kernel_run_cuda took an interp kernel\n"), fail = 1;
    attnc_kernel_free(k);
    return fail;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: test_cuda_nvrtc FILE.attn WORKDIR [--broken|--no-nvrtc|--no-driver|--one-arch]\n");
        return 2;
    }
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", argv[2]);
    for (char *c = dir + 1; *c; c++) /* mkdir -p */
        if (*c == '/') *c = 0, mkdir(dir, 0777), *c = '/';
    mkdir(dir, 0777);
    const char *mode = argc > 3 ? argv[3] : "";
    int rc = !strcmp(mode, "--broken")      ? broken(argv[1], argv[2])
             : !strcmp(mode, "--no-nvrtc")  ? no_nvrtc(argv[1])
             : !strcmp(mode, "--no-driver") ? no_driver(argv[1])
             : !strcmp(mode, "--one-arch")  ? compile_all(argv[1], argv[2], 1)
                                            : compile_all(argv[1], argv[2], 0);
    printf("%s\n", rc == 0 ? "PASS" : rc == 77 ? "SKIPPED" : "FAIL");
    return rc;
}
