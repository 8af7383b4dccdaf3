/* cuda_driver.h — the CUDA driver API (libcuda.so.1) and NVRTC (libnvrtc.so),
 * loaded with dlopen when first needed: the library has no link-time
 * dependency on either, so it builds and runs where they are absent (then the
 * `cuda` backend says so; docs/cuda.md "The cuda backend").
 *
 * Only what backends/cuda/cuda_backend.c uses, with the driver's own types
 * written out (the handles are opaque pointers, CUresult an int): this file
 * compiles without the CUDA toolkit.  Every failure becomes an attnc status
 * with one line of text (cuda_fail); nothing here prints.
 *
 * Overrides (for tests and unusual installs): ATTNC_CUDA_DRIVER names the
 * driver library to load instead of libcuda.so.1, ATTNC_NVRTC_LIBRARY the
 * NVRTC library instead of the search below (cuda_nvrtc_load). */
#ifndef ATTNC_CUDA_DRIVER_H
#define ATTNC_CUDA_DRIVER_H
#include <stddef.h>

#include "attnc.h"

typedef int CUresult;
typedef int CUdevice;
typedef unsigned long long CUdeviceptr;
typedef struct CUctx_st *CUcontext;
typedef struct CUmod_st *CUmodule;
typedef struct CUfunc_st *CUfunction;
typedef struct CUstream_st *CUstream;
typedef struct _nvrtcProgram *nvrtcProgram;

enum {
    CUDA_SUCCESS = 0,
    CUDA_ERROR_OUT_OF_MEMORY = 2,
    CUDA_ERROR_NO_DEVICE = 100,
    CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75,
    CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76,
    CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN = 97,
    CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8
};

/* The driver functions (the _v2 entry points cuda.h's macros name). */
typedef struct CudaDriver {
    CUresult (*cuInit)(unsigned);
    CUresult (*cuGetErrorName)(CUresult, const char **);
    CUresult (*cuDeviceGetCount)(int *);
    CUresult (*cuDeviceGet)(CUdevice *, int);
    CUresult (*cuDeviceGetAttribute)(int *, int, CUdevice);
    CUresult (*cuDevicePrimaryCtxRetain)(CUcontext *, CUdevice);
    CUresult (*cuDevicePrimaryCtxRelease)(CUdevice);
    CUresult (*cuCtxPushCurrent)(CUcontext);
    CUresult (*cuCtxPopCurrent)(CUcontext *);
    CUresult (*cuModuleLoadData)(CUmodule *, const void *);
    CUresult (*cuModuleUnload)(CUmodule);
    CUresult (*cuModuleGetFunction)(CUfunction *, CUmodule, const char *);
    CUresult (*cuFuncSetAttribute)(CUfunction, int, int);
    CUresult (*cuLaunchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                               CUstream, void **, void **);
    CUresult (*cuMemAlloc)(CUdeviceptr *, size_t);
    CUresult (*cuMemFree)(CUdeviceptr);
    CUresult (*cuMemcpyHtoDAsync)(CUdeviceptr, const void *, size_t, CUstream);
    CUresult (*cuMemcpyDtoHAsync)(void *, CUdeviceptr, size_t, CUstream);
    CUresult (*cuMemsetD8Async)(CUdeviceptr, unsigned char, size_t, CUstream);
    CUresult (*cuStreamSynchronize)(CUstream);
} CudaDriver;

/* NVRTC's functions (nvrtcResult is an int). */
typedef struct CudaNvrtc {
    const char *(*nvrtcGetErrorString)(int);
    int (*nvrtcVersion)(int *, int *);
    int (*nvrtcCreateProgram)(nvrtcProgram *, const char *, const char *, int, const char *const *,
                              const char *const *);
    int (*nvrtcDestroyProgram)(nvrtcProgram *);
    int (*nvrtcCompileProgram)(nvrtcProgram, int, const char *const *);
    int (*nvrtcAddNameExpression)(nvrtcProgram, const char *);
    int (*nvrtcGetLoweredName)(nvrtcProgram, const char *, const char **);
    int (*nvrtcGetProgramLogSize)(nvrtcProgram, size_t *);
    int (*nvrtcGetProgramLog)(nvrtcProgram, char *);
    int (*nvrtcGetPTXSize)(nvrtcProgram, size_t *);
    int (*nvrtcGetPTX)(nvrtcProgram, char *);
    int (*nvrtcGetCUBINSize)(nvrtcProgram, size_t *);
    int (*nvrtcGetCUBIN)(nvrtcProgram, char *);
} CudaNvrtc;

/* The first CUDA device, its primary context, compute capability (major *
 * 10 + minor) and the dynamic shared memory a block may opt in to. */
typedef struct CudaDevice {
    const CudaDriver *d;
    CUdevice dev;
    CUcontext ctx;
    int arch;
    int smem_optin;
} CudaDevice;

/* The driver loaded, initialised, and its first device's primary context
 * retained (once per process; later calls return the first answer):
 * ATTNC_OK, or ATTNC_ERR_RUNTIME "backend cuda: no CUDA driver (...)" /
 * "backend cuda: no CUDA device" with err filled (err may be NULL). */
attnc_status cuda_device_get(const CudaDevice **out, attnc_error *err);

/* NVRTC loaded (once per process): ATTNC_OK, or ATTNC_ERR_RUNTIME
 * "backend cuda: NVRTC not found (...)".  Tried in order:
 * $ATTNC_NVRTC_LIBRARY alone when set; else libnvrtc.so, libnvrtc.so.13,
 * .so.12, .so.11.2, then /usr/local/cuda/lib64/libnvrtc.so. */
attnc_status cuda_nvrtc_load(const CudaNvrtc **out, attnc_error *err);

/* Make the device's context current on this thread (cuda_ctx_pop undoes it). */
attnc_status cuda_ctx_push(const CudaDevice *dev, attnc_error *err);
void cuda_ctx_pop(const CudaDevice *dev);

/* One line for a failed driver call: "backend cuda: WHAT: CUDA_ERROR_X".
 * ATTNC_ERR_NOMEM for CUDA_ERROR_OUT_OF_MEMORY ("out of device memory"),
 * else ATTNC_ERR_RUNTIME.  rc must not be CUDA_SUCCESS. */
attnc_status cuda_fail(const CudaDevice *dev, attnc_error *err, CUresult rc, const char *what);

#endif
