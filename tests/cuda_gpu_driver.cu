/* tests/cuda_gpu_driver.cu — runs one kernel of `attnc emit --target cuda` on
 * the GPU and compares it with the interpreter's O (tests/cuda_gpu.sh).
 *
 * Requires: nvcc; compiled together with the emitted NAME.cu and
 * -DATTNC_LAUNCH=NAME_cuda_launch; a kernel that reads no params and no
 * tensors at run time (params fixed with -D when emitting).
 * Usage: driver B H Hkv Lq Lk D Dv BQ BK Q.npy K.npy V.npy REF_O.npy [f16|bf16]
 * With f16 or bf16, Q, K, V and O are stored in that type (contiguous; the
 * inputs rounded to it on the host) and REF_O is the interpreter's O for
 * `--dtype` of that type.
 * Exit: 0 agree, 1 differ or fail, 77 no GPU (ctest SKIP_RETURN_CODE). */
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "half.h"
#include "kernel_abi.h"

extern "C" int ATTNC_LAUNCH(const AttnCall *call, int *fault, cudaStream_t stream);

/* The float32 data of a .npy file of n elements (v1/v2 header skipped), or NULL. */
static float *read_npy(const char *path, size_t n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    unsigned char head[12];
    float *data = NULL;
    if (fread(head, 1, 10, f) == 10 && !memcmp(head, "\x93NUMPY", 6)) {
        long len = head[8] | (head[9] << 8);
        if (head[6] >= 2 && fread(head + 10, 1, 2, f) == 2) len |= (long)head[10] << 16 | (long)head[11] << 24;
        if (fseek(f, len, SEEK_CUR) == 0 && (data = (float *)malloc(n * sizeof(float) + 1)) != NULL &&
            fread(data, sizeof(float), n, f) != n) {
            free(data);
            data = NULL;
        }
    }
    fclose(f);
    return data;
}

/* x rounded in place to elem (0: float32 as is; 1 f16, 2 bf16: packed 16-bit words at x). */
static void *to_elem(float *x, size_t n, int elem) {
    uint16_t *h = (uint16_t *)x;
    for (size_t i = 0; elem && i < n; i++) h[i] = elem == 1 ? attnc_f32_to_f16(x[i]) : attnc_f32_to_bf16(x[i]);
    return x;
}

/* The inverse, widening n packed 16-bit words in place (from the end, so nothing is overwritten early). */
static void from_elem(float *x, size_t n, int elem) {
    const uint16_t *h = (const uint16_t *)x;
    for (size_t i = n; elem && i-- > 0;) x[i] = elem == 1 ? attnc_f16_to_f32(h[i]) : attnc_bf16_to_f32(h[i]);
}

#define CHECK(x)                                                                          \
    do {                                                                                  \
        cudaError_t e_ = (x);                                                             \
        if (e_ != cudaSuccess) {                                                          \
            fprintf(stderr, "%s: %s\n", #x, cudaGetErrorString(e_));                      \
            return 1;                                                                     \
        }                                                                                 \
    } while (0)

int main(int argc, char **argv) {
    if (argc != 14 && argc != 15) {
        fprintf(stderr, "usage: %s B H Hkv Lq Lk D Dv BQ BK Q.npy K.npy V.npy REF_O.npy [f16|bf16]\n", argv[0]);
        return 1;
    }
    int elem = argc == 15 ? (!strcmp(argv[14], "f16") ? 1 : !strcmp(argv[14], "bf16") ? 2 : -1) : 0;
    if (elem < 0) {
        fprintf(stderr, "unknown element type '%s'\n", argv[14]);
        return 1;
    }
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
        printf("no CUDA device: skipped\n");
        return 77;
    }
    AttnCall c;
    memset(&c, 0, sizeof c);
    int64_t *sz[] = {&c.B, &c.H, &c.Hkv, &c.Lq, &c.Lk, &c.D, &c.Dv, &c.bq, &c.bk};
    for (int i = 0; i < 9; i++) *sz[i] = atoll(argv[1 + i]);
    size_t nq = (size_t)(c.B * c.H * c.Lq * c.D), nk = (size_t)(c.B * c.Hkv * c.Lk * c.D),
           nv = (size_t)(c.B * c.Hkv * c.Lk * c.Dv), no = (size_t)(c.B * c.H * c.Lq * c.Dv);
    float *q = read_npy(argv[10], nq), *k = read_npy(argv[11], nk), *v = read_npy(argv[12], nv),
          *ref = read_npy(argv[13], no), *o = (float *)malloc(no * sizeof(float) + 1);
    if (!q || !k || !v || !ref || !o) {
        fprintf(stderr, "cannot read the inputs\n");
        return 1;
    }
    float *dq, *dk, *dv, *dout;
    int *dfault, fault = 0;
    CHECK(cudaMalloc(&dq, nq * 4 + 4));
    CHECK(cudaMalloc(&dk, nk * 4 + 4));
    CHECK(cudaMalloc(&dv, nv * 4 + 4));
    CHECK(cudaMalloc(&dout, no * 4 + 4));
    CHECK(cudaMalloc(&dfault, sizeof(int)));
    size_t eb = elem ? 2 : 4; /* bytes per element of Q, K, V, O */
    CHECK(cudaMemcpy(dq, to_elem(q, nq, elem), nq * eb, cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(dk, to_elem(k, nk, elem), nk * eb, cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(dv, to_elem(v, nv, elem), nv * eb, cudaMemcpyHostToDevice));
    c.q_elem = c.k_elem = c.v_elem = c.o_elem = elem;
    CHECK(cudaMemset(dfault, 0, sizeof(int)));
    static AttnValue params[64];             /* all zero: the params are fixed with -D */
    static const void *tensor_data[8];
    static int64_t tensor_shape[8][ATTNC_ABI_MAX_RANK];
    c.q = dq, c.k = dk, c.v = dv, c.o = dout, c.lse = NULL;
    c.params = params;
    c.tensor_data = tensor_data;
    c.tensor_shape = (const int64_t(*)[ATTNC_ABI_MAX_RANK])tensor_shape;
    c.nqt = (c.Lq + c.bq - 1) / c.bq, c.nkt = (c.Lk + c.bk - 1) / c.bk;
    /* float32 (elem 0, from the memset), contiguous: the launcher takes every stride as given */
    const int64_t qs[4] = {c.H * c.Lq * c.D, c.Lq * c.D, c.D, 1}, ks[4] = {c.Hkv * c.Lk * c.D, c.Lk * c.D, c.D, 1};
    const int64_t vs[4] = {c.Hkv * c.Lk * c.Dv, c.Lk * c.Dv, c.Dv, 1};
    const int64_t os[4] = {c.H * c.Lq * c.Dv, c.Lq * c.Dv, c.Dv, 1};
    const int64_t ls[3] = {c.H * c.Lq, c.Lq, 1};
    memcpy(c.q_stride, qs, sizeof qs);
    memcpy(c.k_stride, ks, sizeof ks);
    memcpy(c.v_stride, vs, sizeof vs);
    memcpy(c.o_stride, os, sizeof os);
    memcpy(c.lse_stride, ls, sizeof ls);
    c.row_start = NULL; /* no tile map: every tile visited, masks evaluated */
    c.check_faults = 1;
    int rc = ATTNC_LAUNCH(&c, dfault, 0);
    if (rc != 0) {
        fprintf(stderr, "launch: %s\n", cudaGetErrorString((cudaError_t)rc));
        return 1;
    }
    CHECK(cudaDeviceSynchronize());
    CHECK(cudaMemcpy(o, dout, no * eb, cudaMemcpyDeviceToHost));
    from_elem(o, no, elem);
    CHECK(cudaMemcpy(&fault, dfault, sizeof(int), cudaMemcpyDeviceToHost));
    if (fault) {
        fprintf(stderr, "the kernel reports a runtime error\n");
        return 1;
    }
    double worst = 0, tol = elem == 2 ? 1.6e-2 : 2e-3; /* bf16: two units of 2^-7 */
    for (size_t i = 0; i < no; i++) {
        double e = fabs((double)o[i] - (double)ref[i]) / (1.0 + fabs((double)ref[i]));
        if (!(e <= tol)) {
            fprintf(stderr, "O[%zu] = %.9g but the interpreter gives %.9g\n", i, o[i], ref[i]);
            return 1;
        }
        worst = e > worst ? e : worst;
    }
    printf("ok: max relative error %.3g over %zu outputs\n", worst, no);
    return 0;
}
