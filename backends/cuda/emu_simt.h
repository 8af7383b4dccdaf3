/* emu_simt.h — a strict SIMT emulation of CUDA thread blocks on the CPU, for
 * the tensor-core kernels' device code (templates/cuda_mma.h) compiled as C
 * (libtcc, or any C compiler) without __CUDACC__.  docs/cuda-emu.md describes
 * the model.
 *
 * Every CUDA thread of a block runs the kernel body on its own fiber
 * (emu_fiber.h); collectives are real rendezvous: mma.sync, ldmatrix,
 * shfl.sync, vote and __syncwarp complete when every lane of their mask has
 * arrived with the same operation, __syncthreads when every thread of the
 * block has.  Anything a GPU would not do the same way (divergent barriers,
 * mismatched masks, a lane that exits while others wait for it, reading a
 * cp.async destination before its wait_group, a deadlock) stops the launch
 * with ATTNC_ERR_RUNTIME and a one-line message naming the block, thread and
 * source line; nothing is printed.
 *
 * Requires: emu_fiber.h; base/half.h for the mma's inputs.
 * Produces: simt_run (blocks of a launch on the calling OS thread) and the
 * device-side entry points attnc_simt_* that templates/cuda_mma.h calls in
 * the emulation; SIMT_EXTERNAL_FUNCTIONS lists them for a JIT to bind.
 * Thread-safe: each simt_run is independent (the running block is found
 * through a thread-local pointer), so OS threads may run disjoint blocks of
 * one launch at the same time. */
#ifndef ATTNC_EMU_SIMT_H
#define ATTNC_EMU_SIMT_H
#include <stdint.h>

#include "attnc.h"

/* The kernel as the emulation calls it: the body of one CUDA thread. */
typedef void (*SimtKernelFn)(const void *args);

typedef struct SimtLaunch {
    SimtKernelFn kernel;
    const void *args;     /* passed to every thread unchanged */
    int32_t grid[3];      /* blocks per dimension (gridDim) */
    int32_t block[3];     /* threads per dimension (blockDim), at most 1024 in all */
    int64_t dynamic_smem; /* bytes of dynamic shared memory (attnc_dynamic_smem) */
    int64_t smem_limit;   /* bytes of shared memory a block may use, static + dynamic; 0: 227 KiB (sm_90) */
    int64_t stack_bytes;  /* each thread's stack; 0: 64 KiB (256 KiB under AddressSanitizer) */
    int32_t schedule;     /* SIMT_SCHEDULE_*: the order in which runnable threads run */
} SimtLaunch;

/* Two legal GPU schedules.  ROUND_ROBIN: a thread that becomes runnable
 * queues behind the others, so warps advance collective by collective,
 * nearly in step.  DEPTH_FIRST: it runs next, so a warp runs ahead of the
 * others until it waits at a barrier: a race between warps that a missing
 * __syncthreads leaves (a buffer refilled by cp.async while another warp
 * still reads it) shows as reads of pending copies. */
enum { SIMT_SCHEDULE_ROUND_ROBIN = 0, SIMT_SCHEDULE_DEPTH_FIRST = 1 };

/* The schedule of launches made by generated code (attnc_simt_launch),
 * for the whole process: ROUND_ROBIN unless a test sets it. */
void simt_set_default_schedule(int32_t schedule);

/* What a run did (for docs/cuda-emu.md's performance figures and the tests). */
typedef struct SimtStats {
    uint64_t switches;    /* fiber switches */
    uint64_t collectives; /* warp collectives completed */
    uint64_t barriers;    /* __syncthreads completed */
    uint64_t mmas;        /* warp-level mma.sync completed (of them) */
} SimtStats;

/* The warp-level mma.sync instructions every run of this process has
 * completed (launches by generated code included, which pass no stats): how
 * tests/test_cuda_fa2.c sees the steps a band of keys skips. */
uint64_t simt_mmas_total(void);

/* Run blocks first .. first + count - 1 of the launch (linear block index,
 * x fastest) on the calling OS thread, one block at a time.  The OS thread
 * keeps the fibers for its next run of blocks of the same size (freed when
 * it exits); a kernel cannot launch (ATTNC_ERR_USAGE).  Returns ATTNC_OK,
 * ATTNC_ERR_RUNTIME for a fault of the device code (message: the first
 * fault), ATTNC_ERR_USAGE for a bad launch, ATTNC_ERR_NOMEM.  stats may be
 * NULL; it is added to. */
attnc_status simt_run(const SimtLaunch *l, int64_t first, int64_t count, SimtStats *stats, attnc_error *err);

/* ---- the device side: what templates/cuda_mma.h calls in the emulation ----
 * (that text repeats these declarations: keep them in step; the test
 * includes both.)  `line` is the caller's __LINE__, for messages.  The argument conventions are
 * PTX's: documented at each function in emu_simt.c / emu_simt_ops.c. */
enum { SIMT_SHFL_IDX = 0, SIMT_SHFL_UP = 1, SIMT_SHFL_DOWN = 2, SIMT_SHFL_BFLY = 3 };
enum { SIMT_MMA_F16 = 0, SIMT_MMA_BF16 = 1, SIMT_MMA_TF32 = 2 };

int32_t attnc_simt_id(int32_t which);
void *attnc_simt_shared(int64_t bytes, const char *name, int32_t line);
void *attnc_simt_dynamic_shared(void);
void attnc_simt_syncthreads(int32_t line);
void attnc_simt_syncwarp(uint32_t mask, int32_t line);
uint32_t attnc_simt_shfl(uint32_t mask, uint32_t value, int32_t b, int32_t c, int32_t mode, int32_t line);
uint32_t attnc_simt_ballot(uint32_t mask, int32_t pred, int32_t line);
void attnc_simt_mma16816(int32_t type, float *d, const uint32_t *a, const uint32_t *b, const float *c, int32_t line);
void attnc_simt_mma1688_tf32(float *d, const uint32_t *a, const uint32_t *b, const float *c, int32_t line);
uint32_t attnc_simt_lds32(const void *p, int32_t line);
void attnc_simt_ldmatrix(int32_t num, int32_t trans, uint32_t *r, const void *row, int32_t line);
void attnc_simt_cp_async(void *dst, const void *src, int32_t cp_size, int32_t src_size, int32_t line);
void attnc_simt_cp_async_commit(int32_t line);
void attnc_simt_cp_async_wait(int32_t n, int32_t line);
/* simt_run for generated code: dims = grid x, y, z, block x, y, z; returns 0
 * or the status, its message in message[message_bytes]. */
int32_t attnc_simt_launch(SimtKernelFn kernel, const void *args, const int32_t *dims, int64_t dynamic_smem,
                          int64_t first, int64_t count, char *message, int32_t message_bytes);

/* X(name) for each device entry point: a JIT binds them by name. */
#define SIMT_EXTERNAL_FUNCTIONS(X)                                                                                     \
    X(attnc_simt_id)                                                                                                   \
    X(attnc_simt_shared)                                                                                               \
    X(attnc_simt_dynamic_shared)                                                                                       \
    X(attnc_simt_syncthreads)                                                                                          \
    X(attnc_simt_syncwarp)                                                                                             \
    X(attnc_simt_shfl)                                                                                                 \
    X(attnc_simt_ballot)                                                                                               \
    X(attnc_simt_mma16816)                                                                                             \
    X(attnc_simt_mma1688_tf32)                                                                                         \
    X(attnc_simt_lds32)                                                                                                \
    X(attnc_simt_ldmatrix)                                                                                             \
    X(attnc_simt_cp_async)                                                                                             \
    X(attnc_simt_cp_async_commit)                                                                                      \
    X(attnc_simt_cp_async_wait)                                                                                        \
    X(attnc_simt_launch)

#endif
