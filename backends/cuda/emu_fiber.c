/* emu_fiber.c — cooperative fibers for the SIMT emulation (emu_fiber.h).
 *
 * Why not only ucontext: glibc's swapcontext saves and restores the signal
 * mask with a system call on every switch, and the emulation switches for
 * every lane at every warp collective (32 switches per mma.sync); measured
 * on this machine it is several times slower than the assembly below
 * (docs/cuda-emu.md has the figures).  setjmp/longjmp between stacks is not
 * an option either: _FORTIFY_SOURCE's longjmp refuses to jump to another
 * stack.  So x86-64 switches with a dozen instructions that save what the
 * SysV ABI says a callee keeps: rbx, rbp, r12-r15.  Not the MXCSR and x87
 * control words (restoring MXCSR costs more than the rest of the switch):
 * all fibers of an OS thread share its floating-point environment, which
 * neither the kernels nor the emulation change.  Other machines, or
 * -DATTNC_FIBER_UCONTEXT, use swapcontext.
 *
 * AddressSanitizer must be told about every switch, or it takes the fiber's
 * stack for a stack overflow of the thread and reports false positives
 * (__sanitizer_start/finish_switch_fiber, both methods); valgrind gets the
 * stacks registered (VALGRIND_STACK_REGISTER) when its header is installed. */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS, ucontext */
#include "emu_fiber.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#if !defined(ATTNC_FIBER_UCONTEXT) && !(defined(__x86_64__) && defined(__ELF__) && defined(__GNUC__))
#define ATTNC_FIBER_UCONTEXT 1
#endif
#ifdef ATTNC_FIBER_UCONTEXT
#include <ucontext.h>
#endif

#if defined(__SANITIZE_ADDRESS__)
#define FIBER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FIBER_ASAN 1
#endif
#endif
#ifdef FIBER_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define FIBER_VALGRIND 1
#endif
#endif

struct Fiber {
    void *sp; /* the saved stack pointer (assembly switch) */
#ifdef ATTNC_FIBER_UCONTEXT
    ucontext_t uc;
#endif
    char *map; /* the mapping: guard page, then the stack; NULL for a thread's own stack */
    size_t map_bytes;
    const void *stack_lo; /* the stack's bounds, for AddressSanitizer (learnt on the first switch for a thread) */
    size_t stack_size;
    FiberFn fn;
    void *arg;
    void *fake_stack; /* AddressSanitizer's fake stack of a suspended fiber */
    unsigned valgrind_id;
};

/* The fiber being left by the switch in progress on this OS thread: its stack
 * bounds, unknown for a thread's own stack, are what AddressSanitizer reports
 * once the switch lands. */
static _Thread_local Fiber *switching_from;

static void landed(void *fake_stack) {
#ifdef FIBER_ASAN
    const void *lo = NULL;
    size_t size = 0;
    __sanitizer_finish_switch_fiber(fake_stack, &lo, &size);
    if (switching_from && !switching_from->map) switching_from->stack_lo = lo, switching_from->stack_size = size;
#else
    (void)fake_stack;
#endif
}

void fiber_started(Fiber *self) {
    (void)self;
    landed(NULL);
}

#ifdef ATTNC_FIBER_UCONTEXT

const char *fiber_method(void) { return "ucontext"; }

static void ucontext_entry(unsigned hi, unsigned lo) {
    Fiber *f = (Fiber *)(((uintptr_t)hi << 16 << 16) | (uintptr_t)lo);
    f->fn(f->arg);
    abort(); /* unreachable: FiberFn never returns (emu_fiber.h) */
}

static void fiber_prepare(Fiber *f) {
    getcontext(&f->uc);
    f->uc.uc_stack.ss_sp = f->map + f->map_bytes - f->stack_size;
    f->uc.uc_stack.ss_size = f->stack_size;
    f->uc.uc_link = NULL;
    uintptr_t p = (uintptr_t)f;
    makecontext(&f->uc, (void (*)(void))ucontext_entry, 2, (unsigned)(p >> 16 >> 16), (unsigned)p);
}

static void fiber_swap(Fiber *from, Fiber *to) { swapcontext(&from->uc, &to->uc); }

#else /* x86-64 SysV */

/* attnc_fiber_swap(&from->sp, to->sp): push the callee-saved registers, save
 * rsp, load the other fiber's rsp, pop its registers and return into it.  attnc_fiber_boot is where a new fiber's
 * first "return" lands: r12 holds its Fiber; rsp is 16-byte aligned there, so
 * the call gives attnc_fiber_entry the ABI's alignment. */
void attnc_fiber_swap(void **save_sp, void *new_sp);
void attnc_fiber_boot(void);
void attnc_fiber_entry(Fiber *f) __attribute__((visibility("hidden")));
__asm__(".text\n"
        ".p2align 4\n"
        ".globl attnc_fiber_swap\n"
        ".hidden attnc_fiber_swap\n"
        ".type attnc_fiber_swap,@function\n"
        "attnc_fiber_swap:\n"
        "  pushq %rbp\n"
        "  pushq %rbx\n"
        "  pushq %r12\n"
        "  pushq %r13\n"
        "  pushq %r14\n"
        "  pushq %r15\n"
        "  movq %rsp, (%rdi)\n"
        "  movq %rsi, %rsp\n"
        "  popq %r15\n"
        "  popq %r14\n"
        "  popq %r13\n"
        "  popq %r12\n"
        "  popq %rbx\n"
        "  popq %rbp\n"
        "  ret\n"
        ".size attnc_fiber_swap, .-attnc_fiber_swap\n"
        ".p2align 4\n"
        ".globl attnc_fiber_boot\n"
        ".hidden attnc_fiber_boot\n"
        ".type attnc_fiber_boot,@function\n"
        "attnc_fiber_boot:\n"
        "  movq %r12, %rdi\n"
        "  call attnc_fiber_entry\n"
        "  ud2\n"
        ".size attnc_fiber_boot, .-attnc_fiber_boot\n");

const char *fiber_method(void) { return "asm"; }

void attnc_fiber_entry(Fiber *f) {
    f->fn(f->arg);
    abort(); /* unreachable: FiberFn never returns (emu_fiber.h) */
}

static void fiber_prepare(Fiber *f) {
    uint64_t *s = (uint64_t *)(void *)(f->map + f->map_bytes); /* page-aligned top */
    *--s = (uint64_t)(uintptr_t)attnc_fiber_boot;              /* where the first switch returns */
    *--s = 0;                                                  /* rbp */
    *--s = 0;                                                  /* rbx */
    *--s = (uint64_t)(uintptr_t)f;                             /* r12: the boot's argument */
    *--s = 0;                                                  /* r13 */
    *--s = 0;                                                  /* r14 */
    *--s = 0;                                                  /* r15 */
    f->sp = s;
}

static void fiber_swap(Fiber *from, Fiber *to) { attnc_fiber_swap(&from->sp, to->sp); }

#endif

Fiber *fiber_new(size_t stack_bytes, FiberFn fn, void *arg) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t size = (stack_bytes + page - 1) / page * page;
    Fiber *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->map_bytes = size + page;
    void *m = mmap(NULL, f->map_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
        free(f);
        return NULL;
    }
    f->map = m;
    mprotect(f->map, page, PROT_NONE); /* the guard: stacks grow down into it */
    f->stack_lo = f->map + page;
    f->stack_size = size;
    f->fn = fn;
    f->arg = arg;
#ifdef FIBER_VALGRIND
    f->valgrind_id = VALGRIND_STACK_REGISTER(f->map + page, f->map + f->map_bytes);
#endif
    fiber_prepare(f);
    return f;
}

void fiber_restart(Fiber *f) {
#ifdef FIBER_ASAN
    /* a fiber abandoned mid-call (a fault) leaves its frames' redzones poisoned */
    __asan_unpoison_memory_region(f->stack_lo, f->stack_size);
#endif
    f->fake_stack = NULL;
    fiber_prepare(f);
}

size_t fiber_default_stack(void) {
#ifdef FIBER_ASAN
    return 256 * 1024;
#else
    return 64 * 1024;
#endif
}

Fiber *fiber_of_thread(void) { return calloc(1, sizeof(Fiber)); }

void fiber_switch(Fiber *from, Fiber *to, int last) {
#ifdef FIBER_ASAN
    __sanitizer_start_switch_fiber(last ? NULL : &from->fake_stack, to->stack_lo, to->stack_size);
#else
    (void)last;
#endif
    switching_from = from;
    fiber_swap(from, to);
    landed(from->fake_stack);
}

void fiber_free(Fiber *f) {
    if (!f) return;
    if (f->map) {
#ifdef FIBER_VALGRIND
        VALGRIND_STACK_DEREGISTER(f->valgrind_id);
#endif
#ifdef FIBER_ASAN
        __asan_unpoison_memory_region(f->stack_lo, f->stack_size); /* the shadow outlives the mapping */
#endif
        munmap(f->map, f->map_bytes);
    }
    free(f);
}
