// Backtraces of greenlets: of a parked one from the frame its last switch left, and of the
// running one from a signal sent to its thread (the blocked-hub monitor, run-info dumps).
//
// A parked greenlet's stack is walked along its frame-pointer chain (Swift keeps frame
// pointers on Linux; the switch asks for one), reading only inside that stack's bounds, so a
// broken chain ends the walk instead of faulting. A running one is unwound by libgcc from
// inside the signal handler, through the signal frame, with DWARF call-frame information, so
// that a function without a frame (a leaf, a sanitizer's runtime) does not hide its caller;
// the frame-pointer walk from the interrupted registers is the fallback. The handler does not
// allocate (the unwinder is loaded when the sampler is installed) and hands the result back
// with one sem_post; the unwinder does take the dynamic loader's lock, so a thread sampled
// while inside dlopen would hold the monitor until it returns.

#include "CSproutContext.h"

#include <errno.h>
#include <stdlib.h>
#include <execinfo.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <ucontext.h>

static void walk(uintptr_t pc, uintptr_t fp, uintptr_t low, uintptr_t high, sprout_backtrace_t *out) {
    out->count = 0;
    out->truncated = 0;
    if (pc) out->pcs[out->count++] = pc;
    while (low && fp >= low && fp + 16 <= high && (fp & 7) == 0) {
        if (out->count == SPROUT_BACKTRACE_MAX) {
            out->truncated = 1;
            return;
        }
        uintptr_t next = ((const uintptr_t *)fp)[0];
        uintptr_t ret = ((const uintptr_t *)fp)[1];
        if (ret == 0) return;
        out->pcs[out->count++] = ret;
        if (next <= fp) return;   // frames go up the stack; anything else is not a frame
        fp = next;
    }
}

/// For overflow.c's fatal-fault report: the frame-pointer walk above, from a fault's registers.
void sprout_walk_frames_for_fault(uintptr_t pc, uintptr_t fp, uintptr_t low, uintptr_t high, sprout_backtrace_t *out) {
    walk(pc, fp, low, high, out);
}

static void copy_identity(const sprout_context_t *ctx, sprout_backtrace_t *out) {
    out->greenlet_id = ctx ? ctx->id : 0;
    size_t n = 0;
    if (ctx && ctx->name) {
        while (ctx->name[n] && n + 1 < sizeof out->greenlet_name) {
            out->greenlet_name[n] = ctx->name[n];
            n++;
        }
    }
    out->greenlet_name[n] = 0;
}

void sprout_context_backtrace(const sprout_context_t *ctx, sprout_backtrace_t *out) {
    copy_identity(ctx, out);
    uintptr_t sp = (uintptr_t)ctx->sp;
    if (!sp || sp < ctx->walk_low || sp + 96 > ctx->walk_high) {
        out->count = 0;
        out->truncated = 0;
        return;
    }
    // The frame of sprout_context_switch that suspended it: its saved frame pointer and its
    // return address lead into the greenlet's own frames. (The registers sprout_stack_switch
    // pushed are no help where C is built without frame pointers: rbp may be any value there.)
    uintptr_t fp = ctx->switch_fp;
    if (fp < ctx->walk_low || fp + 16 > ctx->walk_high) {
        out->count = 0;
        out->truncated = 0;
        return;
    }
    uintptr_t pc = ((const uintptr_t *)fp)[1];
    fp = ((const uintptr_t *)fp)[0];
    walk(pc, fp, ctx->walk_low, ctx->walk_high, out);
}

__attribute__((noinline)) void sprout_current_backtrace(sprout_backtrace_t *out) {
    const sprout_context_t *ctx = sprout_context_current();
    copy_identity(ctx, out);
    uintptr_t fp = (uintptr_t)__builtin_frame_address(0);
    uintptr_t low = ctx ? ctx->walk_low : 0, high = ctx ? ctx->walk_high : 0;
    // Start at the caller: this function's own frame is not interesting.
    if (low && fp >= low && fp + 16 <= high) {
        walk(((const uintptr_t *)fp)[1], ((const uintptr_t *)fp)[0], low, high, out);
    } else {
        out->count = 0;
        out->truncated = 0;
    }
}

// The one outstanding sample request: set by the requester (under request_lock), filled by
// the handler on the target thread, handed back through `sample_done`.
static pthread_mutex_t request_lock = PTHREAD_MUTEX_INITIALIZER;
static sem_t sample_done;
static sprout_backtrace_t *volatile sample_target;
static pthread_once_t sampler_once = PTHREAD_ONCE_INIT;
static int sampler_signo;
static int sampler_error;

// The unwinder of libgcc (through glibc's backtrace) follows the DWARF call-frame information
// every function carries, through the signal frame into the interrupted code: unlike a
// frame-pointer walk it also sees a leaf or runtime function without a frame of its own. Its
// first use loads libgcc_s (which allocates), so the sampler makes that first call when it is
// installed; later calls allocate nothing. It stops at a greenlet's first frame, whose return
// address the trampoline marks undefined.
static int unwind_through_signal_frame(uintptr_t pc, sprout_backtrace_t *out) {
    void *frames[SPROUT_BACKTRACE_MAX + 8];
    int n = backtrace(frames, SPROUT_BACKTRACE_MAX + 8);
    int start = -1;
    for (int i = 0; i < n; i++) {
        if ((uintptr_t)frames[i] == pc) {
            start = i;
            break;
        }
    }
#if defined(__has_feature)
#  if __has_feature(thread_sanitizer)
    // ThreadSanitizer defers asynchronous signals to its next runtime call, and runs the
    // handler from there: the interrupted pc is then not on the live stack, but the live stack
    // (below this handler and TSan's delivery frames) is where the thread was.
    if (start < 0 && n > 2) start = 2;
#  endif
#endif
    if (start < 0) return 0;   // the unwinder did not get through the signal frame
    out->count = 0;
    out->truncated = 0;
    for (int i = start; i < n; i++) {
        if (out->count == SPROUT_BACKTRACE_MAX) {
            out->truncated = 1;
            break;
        }
        out->pcs[out->count++] = (uint64_t)(uintptr_t)frames[i];
    }
    if (n == SPROUT_BACKTRACE_MAX + 8) out->truncated = 1;
    return 1;
}

static void on_sample(int sig, siginfo_t *info, void *uctx) {
    (void)sig;
    (void)info;
    int saved_errno = errno;
    sprout_backtrace_t *out = __atomic_exchange_n(&sample_target, NULL, __ATOMIC_ACQ_REL);
    if (out) {
        const ucontext_t *uc = uctx;
        const sprout_context_t *ctx = sprout_context_current();
#if defined(__x86_64__)
        uintptr_t pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
        uintptr_t fp = (uintptr_t)uc->uc_mcontext.gregs[REG_RBP];
#elif defined(__aarch64__)
        uintptr_t pc = (uintptr_t)uc->uc_mcontext.pc;
        uintptr_t fp = (uintptr_t)uc->uc_mcontext.regs[29];
#else
        uintptr_t pc = 0, fp = 0;
#endif
        copy_identity(ctx, out);
        if (!unwind_through_signal_frame(pc, out)) {
            if (ctx) {
                walk(pc, fp, ctx->walk_low, ctx->walk_high, out);
            } else {
                out->count = 0;
                out->truncated = 0;
                if (pc) out->pcs[out->count++] = pc;
            }
        }
        sem_post(&sample_done);
    }
    errno = saved_errno;
}

static void sampler_setup(void) {
    void *warm[4];
    (void)backtrace(warm, 4);   // loads the unwinder now, not inside a signal handler
    if (sem_init(&sample_done, 0, 0) != 0) {
        sampler_error = errno;
        return;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sample;
    // SA_RESTART: most system calls the sampled code is in resume rather than fail with EINTR.
    sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    if (sigaction(sampler_signo, &sa, NULL) != 0) sampler_error = errno;
}

int sprout_sampler_install(int signo) {
    if (!sampler_signo) sampler_signo = signo;
    if (sampler_signo != signo) return EINVAL;
    pthread_once(&sampler_once, sampler_setup);
    return sampler_error;
}

void sprout_sampler_accept_on_this_thread(int signo) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, signo);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

int sprout_sample_thread(pthread_t thread, int signo, sprout_backtrace_t *out, int64_t timeout_ns) {
    int rc = sprout_sampler_install(signo);
    if (rc) return rc;
    pthread_mutex_lock(&request_lock);
    while (sem_trywait(&sample_done) == 0) {}   // a late answer to an abandoned request
    __atomic_store_n(&sample_target, out, __ATOMIC_RELEASE);
    rc = pthread_kill(thread, signo);
    if (rc == 0) {
        struct timespec deadline;
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += timeout_ns / 1000000000;
        deadline.tv_nsec += timeout_ns % 1000000000;
        if (deadline.tv_nsec >= 1000000000) {
            deadline.tv_sec += 1;
            deadline.tv_nsec -= 1000000000;
        }
        while ((rc = sem_timedwait(&sample_done, &deadline)) != 0 && errno == EINTR) {}
        if (rc != 0) rc = errno;
    }
    if (rc != 0 && __atomic_exchange_n(&sample_target, NULL, __ATOMIC_ACQ_REL) == NULL) {
        // The handler took the request just as we gave up: wait for it to finish writing.
        while (sem_wait(&sample_done) != 0 && errno == EINTR) {}
        rc = 0;
    }
    pthread_mutex_unlock(&request_lock);
    return rc;
}

// Where errors are thrown. Swift calls swift_willThrow at every `throw` (for debuggers' error
// breakpoints); the runtime lets a handler be installed there. The stack is still intact at
// that point, unlike when the error reaches the greenlet's entry.
extern void _swift_setWillThrowHandler(void (*handler)(void *error)) __attribute__((weak));
extern void (*_swift_willThrow)(void *error) __attribute__((weak));
static void (*previous_will_throw)(void *error);
static pthread_once_t throw_once = PTHREAD_ONCE_INIT;
static int throw_tracing;

__attribute__((noinline)) static void on_will_throw(void *error) {
    sprout_context_t *ctx = sprout_context_current();
    if (ctx && ctx->walk_low) {
        if (!ctx->last_throw) ctx->last_throw = calloc(1, sizeof *ctx->last_throw);
        sprout_backtrace_t *out = ctx->last_throw;
        if (out) {
            copy_identity(ctx, out);
            uintptr_t fp = (uintptr_t)__builtin_frame_address(0);
            // From this hook's caller (swift_willThrow), whose caller is the throwing function.
            if (fp >= ctx->walk_low && fp + 16 <= ctx->walk_high) {
                walk(((const uintptr_t *)fp)[1], ((const uintptr_t *)fp)[0], ctx->walk_low, ctx->walk_high, out);
            } else {
                out->count = 0;
            }
        }
    }
    if (previous_will_throw) previous_will_throw(error);
}

static void throw_tracing_setup(void) {
    if (!&_swift_setWillThrowHandler || !&_swift_willThrow) return;
    previous_will_throw = __atomic_load_n(&_swift_willThrow, __ATOMIC_ACQUIRE);
    _swift_setWillThrowHandler(on_will_throw);
    throw_tracing = 1;
}

int sprout_throw_tracing_install(void) {
    pthread_once(&throw_once, throw_tracing_setup);
    return throw_tracing;
}
