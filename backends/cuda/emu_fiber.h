/* emu_fiber.h — the fibers the SIMT emulation (emu_simt.c) runs CUDA threads
 * on: each emulated thread runs the kernel body on its own stack, and
 * switches to the block's scheduler when it waits at a collective.
 *
 * Requires: nothing but libc (mmap for the stacks).  On x86-64 with gcc or
 * clang the switch is a few instructions of assembly (emu_fiber.c says
 * why); elsewhere, or with -DATTNC_FIBER_UCONTEXT, it is swapcontext.
 * Produces: fiber stacks with a guard page (an overflow faults instead of
 * corrupting a neighbour), started on a function, switched cooperatively,
 * announced to AddressSanitizer and valgrind when those are in use.
 * Not thread-safe per fiber; fibers never move between OS threads. */
#ifndef ATTNC_EMU_FIBER_H
#define ATTNC_EMU_FIBER_H
#include <stddef.h>

typedef struct Fiber Fiber;
typedef void (*FiberFn)(void *arg);

/* A fiber that runs fn(arg) on a stack of `stack_bytes` (rounded up to pages,
 * plus a guard page).  NULL when out of memory.  fn must never return: it
 * ends by fiber_switch(self, someone, 1). */
Fiber *fiber_new(size_t stack_bytes, FiberFn fn, void *arg);

/* Rewind f to the start of its function (for reuse on the next block); f
 * must not be running. */
void fiber_restart(Fiber *f);

/* The fiber of the calling OS thread's own stack (the scheduler), to switch
 * back to.  Free with fiber_free. */
Fiber *fiber_of_thread(void);

/* Save the running fiber `from` and run `to` until something switches back.
 * `last`: `from` will never run again (it exited or faulted), which lets
 * AddressSanitizer drop its fake stack. */
void fiber_switch(Fiber *from, Fiber *to, int last);

/* Call at the top of a fiber's function, before anything else (AddressSanitizer
 * bookkeeping of the first switch into it). */
void fiber_started(Fiber *self);

/* Free a fiber that is not running (its stack included); NULL is ignored. */
void fiber_free(Fiber *f);

/* The stack a fiber of the emulation gets by default: 64 KiB, 256 KiB under
 * AddressSanitizer (its redzones make frames larger). */
size_t fiber_default_stack(void);

/* "asm" or "ucontext": how this build switches (docs, benchmarks). */
const char *fiber_method(void);

#endif
