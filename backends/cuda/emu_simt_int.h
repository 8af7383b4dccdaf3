/* emu_simt_int.h — the state of the SIMT emulation shared by its scheduler
 * (emu_simt.c: blocks, fibers, barriers, shared memory, faults) and its warp
 * operations (emu_simt_ops.c: shuffles, votes, mma, ldmatrix, cp.async).
 * Not part of the emulation's interface (emu_simt.h). */
#ifndef ATTNC_EMU_SIMT_INT_H
#define ATTNC_EMU_SIMT_INT_H
#include <stdint.h>

#include "emu_fiber.h"
#include "emu_simt.h"

enum { T_RUNNABLE, T_RUNNING, T_WARP, T_BARRIER, T_EXITED };
enum { OP_SYNCWARP, OP_SHFL, OP_BALLOT, OP_MMA, OP_LDMATRIX };

/* One lane's arrival at a warp collective: what it asks and where its result goes. */
typedef struct LaneOp {
    int32_t kind, sub, line; /* sub: the variant (shuffle mode and clamp, mma type, ldmatrix count and .trans) */
    uint32_t mask;
    uint32_t u[6];    /* the lane's register operands */
    float f[4];       /* the mma's C fragment */
    const void *addr; /* ldmatrix: the row this lane addresses */
    void *out;        /* the lane's result registers (on its own stack, which waits) */
} LaneOp;

/* A cp.async in flight: done at the wait_group that covers its group. */
typedef struct CpCopy {
    char *dst;
    const char *src;
    int32_t size, src_size;
    uint64_t group;
} CpCopy;

typedef struct SimtBlock SimtBlock;

typedef struct SimtThread {
    SimtBlock *blk;
    Fiber *fiber;
    int32_t tid, state, line; /* line: where it waits at a barrier */
    LaneOp op;
    CpCopy *cp; /* pending copies, oldest first */
    int32_t ncp, cpcap;
    uint64_t committed; /* commit_groups so far: the open group's number */
} SimtThread;

typedef struct StaticAlloc { /* a static __shared__ variable of the block */
    int64_t bytes, offset;
    int32_t line;
    const char *name; /* the declaration's: a string of the kernel's code */
} StaticAlloc;

struct SimtBlock {
    const SimtLaunch *l;
    int32_t nthreads;
    size_t stack;  /* each fiber's stack */
    int used;      /* the fibers ran a block: rewind them before the next */
    int64_t index; /* linear block index */
    int32_t bid[3];
    SimtThread *t;
    Fiber *sched;   /* the OS thread's stack, which runs the scheduler */
    int32_t *queue; /* runnable threads, a ring of nthreads */
    int32_t qhead, qlen, running;
    int depth_first; /* SIMT_SCHEDULE_DEPTH_FIRST once the block's threads have started */
    uint32_t arrived[32], exited[32], live[32]; /* per warp: lanes waiting at a collective, exited, existing */
    int32_t nexited, nbar, bar_line, bar_first;
    char *smem;       /* shared memory: dynamic at 0, then the static allocations */
    uint8_t *pending; /* per 16 bytes of smem: cp.async copies not yet waited for */
    int64_t smem_cap, smem_end, smem_hwm;
    StaticAlloc *statics;
    int32_t nstatics, capstatics;
    int fault;
    char msg[400];
    SimtStats stats;
};

/* The calling fiber's thread (the running block is thread-local). */
SimtThread *simt_self(void);

/* Stop the block with the message "cuda-emu: block B thread T (warp W lane
 * L): <fmt>"; the calling fiber never runs again. */
_Noreturn void simt_fault(SimtThread *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Arrive at the warp collective described by t->op; returns once every lane
 * of its mask has arrived with the same operation and `complete` (run by the
 * last one to arrive) has written every lane's result. */
typedef void (*SimtComplete)(SimtBlock *b, int32_t warp, uint32_t mask);
void simt_arrive(SimtThread *t, SimtComplete complete);

/* Whether [p, p + n) lies in the block's shared memory. */
int simt_in_smem(const SimtBlock *b, const void *p, int64_t n);

/* "mma.sync", "shfl.sync (bfly)" ... for messages. */
const char *simt_op_name(const LaneOp *op);

/* Drop a thread's cp.async copies that no wait covered (it exits): their
 * destinations stay poisoned. */
void simt_cp_drop(SimtThread *t);

#endif
