/* cuda_driver.c — libcuda.so.1 and libnvrtc loaded with dlopen (cuda_driver.h).
 * Each is loaded once per process under pthread_once; the answer (the
 * tables, or the one line saying why not) is kept, so that every later call
 * fails the same way without touching the file system again.  The libraries
 * stay loaded until the process ends (the driver does not support being
 * unloaded while contexts exist). */
#include "cuda_driver.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "status.h"

typedef struct Loaded {
    pthread_once_t once;
    attnc_status st;
    char why[400];
} Loaded;

static CudaDevice device;
static CudaDriver driver;
static CudaNvrtc nvrtc;
static Loaded driver_loaded = {PTHREAD_ONCE_INIT, ATTNC_OK, ""};
static Loaded nvrtc_loaded = {PTHREAD_ONCE_INIT, ATTNC_OK, ""};

/* Bind `name` from lib into *slot; 0 when missing (why says so). */
static int bind(void *lib, const char *name, void *slot, Loaded *l, const char *what) {
    void *f = dlsym(lib, name);
    if (!f) {
        snprintf(l->why, sizeof l->why, "backend cuda: %s lacks %s (too old?)", what, name);
        l->st = ATTNC_ERR_RUNTIME;
        return 0;
    }
    *(void **)slot = f;
    return 1;
}

static int bind_driver(void *lib) {
    Loaded *l = &driver_loaded;
    CudaDriver *d = &driver;
    const char *w = "the CUDA driver";
    return bind(lib, "cuInit", &d->cuInit, l, w) && bind(lib, "cuGetErrorName", &d->cuGetErrorName, l, w) &&
           bind(lib, "cuDeviceGetCount", &d->cuDeviceGetCount, l, w) &&
           bind(lib, "cuDeviceGet", &d->cuDeviceGet, l, w) &&
           bind(lib, "cuDeviceGetAttribute", &d->cuDeviceGetAttribute, l, w) &&
           bind(lib, "cuDevicePrimaryCtxRetain", &d->cuDevicePrimaryCtxRetain, l, w) &&
           bind(lib, "cuDevicePrimaryCtxRelease_v2", &d->cuDevicePrimaryCtxRelease, l, w) &&
           bind(lib, "cuCtxPushCurrent_v2", &d->cuCtxPushCurrent, l, w) &&
           bind(lib, "cuCtxPopCurrent_v2", &d->cuCtxPopCurrent, l, w) &&
           bind(lib, "cuModuleLoadData", &d->cuModuleLoadData, l, w) &&
           bind(lib, "cuModuleUnload", &d->cuModuleUnload, l, w) &&
           bind(lib, "cuModuleGetFunction", &d->cuModuleGetFunction, l, w) &&
           bind(lib, "cuFuncSetAttribute", &d->cuFuncSetAttribute, l, w) &&
           bind(lib, "cuLaunchKernel", &d->cuLaunchKernel, l, w) && bind(lib, "cuMemAlloc_v2", &d->cuMemAlloc, l, w) &&
           bind(lib, "cuMemFree_v2", &d->cuMemFree, l, w) &&
           bind(lib, "cuMemcpyHtoDAsync_v2", &d->cuMemcpyHtoDAsync, l, w) &&
           bind(lib, "cuMemcpyDtoHAsync_v2", &d->cuMemcpyDtoHAsync, l, w) &&
           bind(lib, "cuMemsetD8Async", &d->cuMemsetD8Async, l, w) &&
           bind(lib, "cuStreamSynchronize", &d->cuStreamSynchronize, l, w);
}

static const char *error_name(const CudaDriver *d, CUresult rc) {
    const char *name = NULL;
    if (d && d->cuGetErrorName && d->cuGetErrorName(rc, &name) == CUDA_SUCCESS && name) return name;
    return "an unknown CUDA error";
}

static void load_driver(void) {
    Loaded *l = &driver_loaded;
    const char *path = getenv("ATTNC_CUDA_DRIVER");
    if (!path || !*path) path = "libcuda.so.1";
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        const char *e = dlerror();
        snprintf(l->why, sizeof l->why, "backend cuda: no CUDA driver (%s)", e ? e : path);
        l->st = ATTNC_ERR_RUNTIME;
        return;
    }
    if (!bind_driver(lib)) return;
    CudaDevice *dv = &device;
    dv->d = &driver;
    int n = 0;
    CUresult rc = driver.cuInit(0);
    if (rc == CUDA_SUCCESS) rc = driver.cuDeviceGetCount(&n);
    if (rc == CUDA_ERROR_NO_DEVICE || (rc == CUDA_SUCCESS && n == 0)) {
        snprintf(l->why, sizeof l->why, "backend cuda: no CUDA device (the driver found none)");
        l->st = ATTNC_ERR_RUNTIME;
        return;
    }
    int major = 0, minor = 0;
    if (rc == CUDA_SUCCESS) rc = driver.cuDeviceGet(&dv->dev, 0);
    if (rc == CUDA_SUCCESS)
        rc = driver.cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dv->dev);
    if (rc == CUDA_SUCCESS)
        rc = driver.cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dv->dev);
    if (rc == CUDA_SUCCESS)
        rc = driver.cuDeviceGetAttribute(&dv->smem_optin, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN,
                                         dv->dev);
    if (rc == CUDA_SUCCESS) rc = driver.cuDevicePrimaryCtxRetain(&dv->ctx, dv->dev);
    if (rc != CUDA_SUCCESS) {
        snprintf(l->why, sizeof l->why, "backend cuda: the CUDA driver cannot open the first device (%s)",
                 error_name(&driver, rc));
        l->st = ATTNC_ERR_RUNTIME;
        return;
    }
    dv->arch = major * 10 + minor;
}

attnc_status cuda_device_get(const CudaDevice **out, attnc_error *err) {
    pthread_once(&driver_loaded.once, load_driver);
    *out = driver_loaded.st ? NULL : &device;
    if (driver_loaded.st) return set_error(err, driver_loaded.st, "%s", driver_loaded.why);
    return ATTNC_OK;
}

static int bind_nvrtc(void *lib) {
    Loaded *l = &nvrtc_loaded;
    CudaNvrtc *n = &nvrtc;
    const char *w = "NVRTC";
    return bind(lib, "nvrtcGetErrorString", &n->nvrtcGetErrorString, l, w) &&
           bind(lib, "nvrtcVersion", &n->nvrtcVersion, l, w) &&
           bind(lib, "nvrtcCreateProgram", &n->nvrtcCreateProgram, l, w) &&
           bind(lib, "nvrtcDestroyProgram", &n->nvrtcDestroyProgram, l, w) &&
           bind(lib, "nvrtcCompileProgram", &n->nvrtcCompileProgram, l, w) &&
           bind(lib, "nvrtcAddNameExpression", &n->nvrtcAddNameExpression, l, w) &&
           bind(lib, "nvrtcGetLoweredName", &n->nvrtcGetLoweredName, l, w) &&
           bind(lib, "nvrtcGetProgramLogSize", &n->nvrtcGetProgramLogSize, l, w) &&
           bind(lib, "nvrtcGetProgramLog", &n->nvrtcGetProgramLog, l, w) &&
           bind(lib, "nvrtcGetPTXSize", &n->nvrtcGetPTXSize, l, w) && bind(lib, "nvrtcGetPTX", &n->nvrtcGetPTX, l, w) &&
           bind(lib, "nvrtcGetCUBINSize", &n->nvrtcGetCUBINSize, l, w) &&
           bind(lib, "nvrtcGetCUBIN", &n->nvrtcGetCUBIN, l, w);
}

static void load_nvrtc(void) {
    static const char *const names[] = {"libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2",
                                        "/usr/local/cuda/lib64/libnvrtc.so"};
    Loaded *l = &nvrtc_loaded;
    const char *only = getenv("ATTNC_NVRTC_LIBRARY");
    void *lib = NULL;
    char first[300] = "";
    size_t n = only && *only ? 1 : sizeof names / sizeof names[0];
    for (size_t i = 0; i < n && !lib; i++) {
        lib = dlopen(n == 1 ? only : names[i], RTLD_NOW | RTLD_LOCAL);
        const char *e = lib ? NULL : dlerror();
        if (!lib && !first[0]) snprintf(first, sizeof first, "%s", e ? e : names[i]);
    }
    if (!lib) {
        snprintf(l->why, sizeof l->why, "backend cuda: NVRTC not found (%s)", first);
        l->st = ATTNC_ERR_RUNTIME;
        return;
    }
    bind_nvrtc(lib);
}

attnc_status cuda_nvrtc_load(const CudaNvrtc **out, attnc_error *err) {
    pthread_once(&nvrtc_loaded.once, load_nvrtc);
    *out = nvrtc_loaded.st ? NULL : &nvrtc;
    if (nvrtc_loaded.st) return set_error(err, nvrtc_loaded.st, "%s", nvrtc_loaded.why);
    return ATTNC_OK;
}

attnc_status cuda_fail(const CudaDevice *dev, attnc_error *err, CUresult rc, const char *what) {
    const char *name = error_name(dev ? dev->d : NULL, rc);
    if (rc == CUDA_ERROR_OUT_OF_MEMORY)
        return set_error(err, ATTNC_ERR_NOMEM, "backend cuda: out of device memory (%s: %s)", what, name);
    return set_error(err, ATTNC_ERR_RUNTIME, "backend cuda: %s: %s", what, name);
}

attnc_status cuda_ctx_push(const CudaDevice *dev, attnc_error *err) {
    CUresult rc = dev->d->cuCtxPushCurrent(dev->ctx);
    return rc ? cuda_fail(dev, err, rc, "cuCtxPushCurrent") : ATTNC_OK;
}

void cuda_ctx_pop(const CudaDevice *dev) {
    CUcontext c;
    dev->d->cuCtxPopCurrent(&c);
}
