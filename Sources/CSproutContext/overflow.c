// Stack overflow diagnosis: a fault in (or just below) the running greenlet's guard region ends
// the process with a message naming the greenlet, instead of an anonymous segfault.

#include "CSproutContext.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

void sprout_walk_frames_for_fault(uintptr_t pc, uintptr_t fp, uintptr_t low, uintptr_t high, sprout_backtrace_t *out);

#define ALT_STACK_SIZE (64 * 1024)

static struct sigaction previous_segv, previous_bus;
static pthread_once_t handler_once = PTHREAD_ONCE_INIT;
static __thread int thread_has_alt_stack;
static __thread void *thread_alt_stack_memory;

static size_t append(char *buf, size_t at, size_t cap, const char *s) {
    while (*s && at + 1 < cap) buf[at++] = *s++;
    return at;
}

static size_t append_u64(char *buf, size_t at, size_t cap, uint64_t v) {
    char digits[24];
    int n = 0;
    do { digits[n++] = (char)('0' + v % 10); v /= 10; } while (v && n < 24);
    while (n && at + 1 < cap) buf[at++] = digits[--n];
    return at;
}

static size_t append_hex(char *buf, size_t at, size_t cap, uint64_t v) {
    static const char digits[] = "0123456789abcdef";
    at = append(buf, at, cap, "0x");
    int shift = 60;
    while (shift > 0 && ((v >> shift) & 0xf) == 0) shift -= 4;
    for (; shift >= 0 && at + 1 < cap; shift -= 4) buf[at++] = digits[(v >> shift) & 0xf];
    return at;
}

/// A fault that no handler takes and that is no stack overflow: the process is about to die of
/// it. Says where (address, program counter, greenlet, return addresses of its frames), which
/// a bare "signal 11" does not, and which a sanitizer's own report would have said had this
/// handler not stood in front of it. Async-signal-safe: write(2) only.
static void report_fatal_fault(int sig, const siginfo_t *info, void *uctx, const sprout_context_t *ctx) {
    char msg[2048];
    size_t n = 0;
    n = append(msg, n, sizeof msg, sig == SIGBUS ? "sprout: fatal SIGBUS" : "sprout: fatal SIGSEGV");
    n = append(msg, n, sizeof msg, " at address ");
    n = append_hex(msg, n, sizeof msg, (uint64_t)(uintptr_t)info->si_addr);
    uintptr_t pc = 0, fp = 0;
#if defined(__x86_64__)
    pc = (uintptr_t)((const ucontext_t *)uctx)->uc_mcontext.gregs[REG_RIP];
    fp = (uintptr_t)((const ucontext_t *)uctx)->uc_mcontext.gregs[REG_RBP];
#elif defined(__aarch64__)
    pc = (uintptr_t)((const ucontext_t *)uctx)->uc_mcontext.pc;
    fp = (uintptr_t)((const ucontext_t *)uctx)->uc_mcontext.regs[29];
#endif
    n = append(msg, n, sizeof msg, ", pc ");
    n = append_hex(msg, n, sizeof msg, pc);
    if (ctx) {
        n = append(msg, n, sizeof msg, ", in greenlet ");
        n = append_u64(msg, n, sizeof msg, ctx->id);
        if (ctx->name) {
            n = append(msg, n, sizeof msg, " '");
            n = append(msg, n, sizeof msg, ctx->name);
            n = append(msg, n, sizeof msg, "'");
        }
        sprout_backtrace_t frames;
        uintptr_t low = ctx->stack_low ? ctx->stack_low : ctx->walk_low;
        uintptr_t high = ctx->stack_low ? ctx->stack_high : ctx->walk_high;
        sprout_walk_frames_for_fault(pc, fp, low, high, &frames);
        n = append(msg, n, sizeof msg, "; frames:");
        for (uint32_t i = 0; i < frames.count && n + 24 < sizeof msg; i++) {
            n = append(msg, n, sizeof msg, " ");
            n = append_hex(msg, n, sizeof msg, frames.pcs[i]);
        }
    }
    n = append(msg, n, sizeof msg, "\n");
    ssize_t ignored = write(2, msg, n);
    (void)ignored;
}

static void on_fault(int sig, siginfo_t *info, void *uctx) {
    sprout_context_t *ctx = sprout_context_current();
    uintptr_t addr = (uintptr_t)info->si_addr;
    // Swift emits no stack probes, so a large frame may land anywhere below the stack's low
    // end; a fault in the guard [guard_low, stack_low), or up to 1 MiB below it, is taken as
    // this stack's overflow. The guard is 1 MiB where MADV_GUARD_INSTALL makes it free (64 KiB
    // with mprotect guards): a single frame larger than that could still jump it into the
    // neighbouring stack, which is mapped, and that write would not fault.
    if (ctx && ctx->stack_low && addr < ctx->stack_low &&
        addr + (1u << 20) >= ctx->guard_low) {
        char msg[256];
        size_t n = 0;
        n = append(msg, n, sizeof msg, "sprout: stack overflow in greenlet '");
        if (ctx->name) {
            n = append(msg, n, sizeof msg, ctx->name);
        } else {
            n = append(msg, n, sizeof msg, "Greenlet-");
            n = append_u64(msg, n, sizeof msg, ctx->id);
        }
        n = append(msg, n, sizeof msg, "' (stack size ");
        n = append_u64(msg, n, sizeof msg, (ctx->stack_high - ctx->stack_low + 1023) / 1024);
        n = append(msg, n, sizeof msg, " KiB); give it a larger stack with spawn(stackSize:)\n");
        ssize_t ignored = write(2, msg, n);
        (void)ignored;
        signal(SIGABRT, SIG_DFL);
        abort();
    }
    // Not ours: chain to whoever was installed before us, and stay installed, so that a fault
    // a program's own handler repairs does not leave later overflows undiagnosed.
    struct sigaction *prev = sig == SIGBUS ? &previous_bus : &previous_segv;
    if (prev->sa_flags & SA_SIGINFO) {
        if (prev->sa_sigaction) {
            prev->sa_sigaction(sig, info, uctx);
            return;
        }
    } else if (prev->sa_handler != SIG_DFL && prev->sa_handler != SIG_IGN) {
        prev->sa_handler(sig);
        return;
    }
    // The default action: say where, put it back and return; the faulting instruction runs
    // again under it and the process ends as it would have without Sprout.
    report_fatal_fault(sig, info, uctx, ctx);
    sigaction(sig, prev, NULL);
}

static void install_handler(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &previous_segv);
    sigaction(SIGBUS, &sa, &previous_bus);
}

void sprout_overflow_handler_install_for_thread(void) {
    pthread_once(&handler_once, install_handler);
    if (thread_has_alt_stack) return;
    stack_t current;
    if (sigaltstack(NULL, &current) == 0 && !(current.ss_flags & SS_DISABLE) && current.ss_size >= ALT_STACK_SIZE) {
        thread_has_alt_stack = 1;   // someone (the Swift backtracer, say) already gave us one
        return;
    }
    void *mem = mmap(NULL, ALT_STACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) return;
    stack_t ss = { .ss_sp = mem, .ss_size = ALT_STACK_SIZE, .ss_flags = 0 };
    if (sigaltstack(&ss, NULL) == 0) {
        thread_has_alt_stack = 1;
        thread_alt_stack_memory = mem;
    } else {
        munmap(mem, ALT_STACK_SIZE);
    }
}

size_t sprout_stack_used(void) {
    sprout_context_t *ctx = sprout_context_current();
    if (!ctx || !ctx->stack_high) return 0;
    // The frame address, not a local's: under AddressSanitizer locals may live on a fake stack.
    uintptr_t sp = (uintptr_t)__builtin_frame_address(0);
    return sp < ctx->stack_high && sp >= ctx->stack_low ? ctx->stack_high - sp : 0;
}

void sprout_overflow_handler_release_for_thread(void) {
    if (!thread_alt_stack_memory) return;
    stack_t off = { .ss_sp = NULL, .ss_size = 0, .ss_flags = SS_DISABLE };
    if (sigaltstack(&off, NULL) == 0) {
        munmap(thread_alt_stack_memory, ALT_STACK_SIZE);
        thread_alt_stack_memory = NULL;
        thread_has_alt_stack = 0;
    }
}
