// The C transfer between greenlets: swaps the Swift runtime's per-thread state that must follow
// a greenlet (the exclusivity access set, errno), then the registers and stack.

#include "CSproutContext.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <unistd.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

// Sanitizer annotations: compiled in only when the C code is built with the sanitizer
// (SwiftPM's --sanitize passes it to C targets too), so they cost nothing otherwise.
#if defined(__has_feature)
#  if __has_feature(address_sanitizer)
#    define SPROUT_ASAN 1
#  endif
#  if __has_feature(thread_sanitizer)
#    define SPROUT_TSAN 1
#  endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#  define SPROUT_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#  define SPROUT_TSAN 1
#endif
#ifdef SPROUT_TSAN
#include <signal.h>
void *__tsan_get_current_fiber(void);
void *__tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void *fiber);
void __tsan_switch_to_fiber(void *fiber, unsigned flags);

// Destroying a fiber runs TSan's thread-finish code, during which a signal (the blocked-hub
// monitor's SIGURG sample, a test's) trips a CHECK in TSan's signal interceptor ("thr->slot !=
// 0"): signals are held off around it. Two syscalls per retired greenlet, under TSan only.
static void tsan_destroy_fiber_masked(void *fiber) {
    sigset_t all, previous;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &previous);
    __tsan_destroy_fiber(fiber);
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
}
#endif

#ifdef SPROUT_ASAN
void __sanitizer_start_switch_fiber(void **fake_stack_save, const void *bottom, size_t size);
void __sanitizer_finish_switch_fiber(void *fake_stack_save, const void **bottom_old, size_t *size_old);
#endif

// Exported by libswiftCore and called by Swift concurrency around every task it runs
// (AsyncTask::flagAsRunning / flagAsSuspended). Declared weak so that a runtime without them
// still loads; `sprout_exclusivity_hooks_available` then turns checking off instead.
extern void swift_task_enterThreadLocalContext(char *state) __attribute__((weak));
extern void swift_task_exitThreadLocalContext(char *state) __attribute__((weak));
// Exported by libswiftCore for debuggers: when true, swift_beginAccess records nothing.
extern _Bool _swift_disableExclusivityChecking __attribute__((weak));

static int hooks_state; // 0 unknown, 1 available, 2 missing
static pthread_once_t hooks_once = PTHREAD_ONCE_INIT;

static void hooks_probe(void) {
    void *enter = dlsym(RTLD_DEFAULT, "swift_task_enterThreadLocalContext");
    void *exit_ = dlsym(RTLD_DEFAULT, "swift_task_exitThreadLocalContext");
    if (enter && exit_ && &swift_task_enterThreadLocalContext && &swift_task_exitThreadLocalContext) {
        hooks_state = 1;
        return;
    }
    hooks_state = 2;
    if (&_swift_disableExclusivityChecking) {
        _swift_disableExclusivityChecking = 1;
    }
    fputs("sprout: warning: the Swift runtime does not export swift_task_{enter,exit}ThreadLocalContext;"
          " dynamic exclusivity checking is switched off for this process so that greenlets can switch"
          " inside accesses\n", stderr);
}

int sprout_exclusivity_hooks_available(void) {
    pthread_once(&hooks_once, hooks_probe);
    return hooks_state == 1;
}

// The running context of this thread. Initial-exec TLS: one move through %fs, no call.
static __thread sprout_context_t *current_context __attribute__((tls_model("initial-exec")));

sprout_context_t *sprout_context_current(void) { return current_context; }
void sprout_context_set_current(sprout_context_t *ctx) { current_context = ctx; }

static __thread sprout_context_t *hub_loop_context __attribute__((tls_model("initial-exec")));
void sprout_context_set_hub_loop(sprout_context_t *ctx) { hub_loop_context = ctx; }

void sprout_context_init_main(sprout_context_t *ctx) {
    memset(ctx, 0, sizeof *ctx);
#ifdef SPROUT_TSAN
    ctx->tsan_fiber = __tsan_get_current_fiber();
#endif

    pthread_attr_t attributes;
    if (pthread_getattr_np(pthread_self(), &attributes) == 0) {
        void *low = NULL;
        size_t size = 0;
        if (pthread_attr_getstack(&attributes, &low, &size) == 0) {
            ctx->walk_low = (uintptr_t)low;
            ctx->walk_high = (uintptr_t)low + size;
        }
        pthread_attr_destroy(&attributes);
    }
}

void sprout_context_init(sprout_context_t *ctx, void *stack_low, void *stack_high, void *guard_low,
                         void (*entry)(void *arg), void *arg) {
    ctx->exclusivity[0] = NULL;
    ctx->exclusivity[1] = NULL;
    ctx->saved_errno = 0;
    ctx->asan_fake_stack = NULL;
    if (ctx->last_throw) {   // a stack given back with its pages zeroed reads NULL here
        free(ctx->last_throw);
        ctx->last_throw = NULL;
    }
#ifdef SPROUT_TSAN
    // A fiber per greenlet: one reused across greenlets would keep the frames of each finished
    // one on its shadow stack (their last switch never returns) until it overflowed.
    if (ctx->tsan_fiber) tsan_destroy_fiber_masked(ctx->tsan_fiber);
    ctx->tsan_fiber = __tsan_create_fiber(0);
#endif

    ctx->stack_low = (uintptr_t)stack_low;
    ctx->stack_high = (uintptr_t)stack_high;
    ctx->guard_low = (uintptr_t)guard_low;
    ctx->walk_low = (uintptr_t)stack_low;
    ctx->walk_high = (uintptr_t)stack_high;
    ctx->sp = sprout_stack_init(stack_high, entry, arg);
}


// A macro, not a function: nothing may run between telling the sanitizer about the switch and
// making it (a helper's return would).
#ifdef SPROUT_ASAN
#  define SANITIZER_ASAN_START(from, to, final) do { \
        uintptr_t low_ = (to)->stack_low ? (to)->stack_low : (to)->walk_low; \
        uintptr_t high_ = (to)->stack_low ? (to)->stack_high : (to)->walk_high; \
        __sanitizer_start_switch_fiber((final) ? NULL : &(from)->asan_fake_stack, (const void *)low_, high_ - low_); \
    } while (0)
#else
#  define SANITIZER_ASAN_START(from, to, final) do { } while (0)
#endif
#ifdef SPROUT_TSAN
// A switch is a synchronisation point: what `from` did happens before what `to` does next.
#  define SANITIZER_TSAN_SWITCH(to) __tsan_switch_to_fiber((to)->tsan_fiber, 0)
#else
#  define SANITIZER_TSAN_SWITCH(to) do { } while (0)
#endif

static inline void sanitizer_after_switch(sprout_context_t *self) {
#ifdef SPROUT_ASAN
    __sanitizer_finish_switch_fiber(self->asan_fake_stack, NULL, NULL);
#endif
    (void)self;
}

_Static_assert(sizeof(sprout_context_t) <= 128, "a context must fit the slot at the top of its stack");

void sprout_context_retire(sprout_context_t *ctx) {
    if (ctx->last_throw) {
        free(ctx->last_throw);
        ctx->last_throw = NULL;
    }
#ifdef SPROUT_TSAN
    // A thread's own context keeps the thread's fiber, which is not ours to destroy.
    if (ctx->tsan_fiber && ctx->stack_low) tsan_destroy_fiber_masked(ctx->tsan_fiber);
    ctx->tsan_fiber = NULL;
#endif
    (void)ctx;
}

#if defined(SPROUT_ASAN) || defined(SPROUT_TSAN)
const int sprout_context_sanitized = 1;
#else
const int sprout_context_sanitized = 0;
#endif

void sprout_context_entered(void) {
    // The first code of a new greenlet: the switch that started it has to be finished here.
#ifdef SPROUT_ASAN
    __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
}

// What both switches do just before the stack changes: detach the outgoing greenlet's open
// Swift accesses from the thread's list and splice in the incoming one's (a zeroed segment on
// first exit claims everything then open, which is right for a thread's main context: its
// accesses were all begun by its own frames), record the running context, and tell TSan. A
// macro for the reason given above SANITIZER_ASAN_START: nothing may return after the TSan
// switch.
#define HAND_OVER(from, to) do { \
        if (__builtin_expect(hooks_state == 1, 1)) { \
            swift_task_exitThreadLocalContext((char *)(from)->exclusivity); \
            swift_task_enterThreadLocalContext((char *)(to)->exclusivity); \
        } \
        current_context = (to); \
        SANITIZER_TSAN_SWITCH(to); \
    } while (0)

void sprout_context_switch_final(sprout_context_t *from, sprout_context_t *to) {
    SANITIZER_ASAN_START(from, to, 1);
    HAND_OVER(from, to);
    sprout_stack_switch(&from->sp, to->sp);
    __builtin_unreachable();
}

void sprout_context_switch(sprout_context_t *from, sprout_context_t *to) {
    SANITIZER_ASAN_START(from, to, 0);
    from->saved_errno = errno;
    // This frame's own frame pointer (asking for it makes the compiler keep one even where it
    // omits them), so that a parked greenlet's stack can be walked from here (run-info dumps).
    from->switch_fp = (uintptr_t)__builtin_frame_address(0);
    HAND_OVER(from, to);
    sprout_stack_switch(&from->sp, to->sp);
    // Back in `from`, possibly much later.
    sanitizer_after_switch(from);
    errno = from->saved_errno;
}




// The hub of this thread, as an opaque pointer owned by Swift.
static __thread void *current_hub __attribute__((tls_model("initial-exec")));
void *sprout_hub_get(void) { return current_hub; }

int sprout_context_in_greenlet(void) {
    sprout_context_t *running = current_context;
    return running != NULL && running != hub_loop_context && current_hub != NULL;
}

// A hub that a thread still has when it exits (one created on a thread Sprout does not own,
// by ThreadPool.run or a primitive) is ended by this callback, from a pthread key destructor.
static pthread_key_t hub_exit_key;
static pthread_once_t hub_exit_once = PTHREAD_ONCE_INIT;
static void (*hub_exit_callback)(void *hub);

static void hub_exit_destructor(void *hub) {
    void (*callback)(void *) = __atomic_load_n(&hub_exit_callback, __ATOMIC_ACQUIRE);
    if (hub && callback && current_hub == hub) callback(hub);
}

// In a forked child, only the forking thread goes on, and the hub it had belongs to the
// parent: its epoll and eventfd descriptors are shared with the parent's, its greenlets are
// the parent's. The child forgets it (leaking it, never freeing what the parent owns) and gets
// a fresh hub on first use.
static void *forgotten_hub;

void *sprout_hub_forgotten_after_fork(void) {
    void *hub = forgotten_hub;
    forgotten_hub = NULL;
    return hub;
}

static void hub_forget_in_child(void) {
    forgotten_hub = current_hub;
    current_hub = NULL;
    current_context = NULL;
}

static void hub_exit_key_create(void) {
    pthread_key_create(&hub_exit_key, hub_exit_destructor);
    pthread_atfork(NULL, NULL, hub_forget_in_child);
}

// Set by every thread that creates a hub (always to the same function): atomically.
void sprout_hub_set_exit_callback(void (*callback)(void *hub)) {
    __atomic_store_n(&hub_exit_callback, callback, __ATOMIC_RELEASE);
}

void sprout_hub_set(void *hub) {
    current_hub = hub;
    pthread_once(&hub_exit_once, hub_exit_key_create);
    pthread_setspecific(hub_exit_key, hub);
}


void sprout_testsonly_set_exclusivity_hooks(int enabled) {
    pthread_once(&hooks_once, hooks_probe);
    if (enabled) {
        if (&swift_task_enterThreadLocalContext && &swift_task_exitThreadLocalContext) hooks_state = 1;
    } else {
        hooks_state = 3;   // neither called nor compensated: only for tests proving they matter
    }
}



