// CSproutContext: the context switch, greenlet stacks and their guards, the per-thread hub
// pointer, stack-overflow diagnosis and stack sampling: everything that knows a greenlet's
// machine state. The system-call shims the hub and sockets use live in CSproutSystem.
//
// Everything in this target is plain C and assembly working on raw pointers: no Swift
// globals, ARC or dynamic exclusivity checks run on the switch path.
#ifndef CSPROUT_CONTEXT_H
#define CSPROUT_CONTEXT_H

#include <stddef.h>
#include <stdint.h>
#include <pthread.h>

#ifdef __cplusplus
extern "C" {
#endif

/// The machine state of one greenlet while it is not running.
///
/// `exclusivity` is the greenlet's segment of Swift's dynamic exclusivity access set; it
/// must start zeroed and stay at a stable address for the greenlet's whole life.
typedef struct sprout_context {
    void *sp;                 ///< Saved stack pointer while suspended.
    // Written on every switch: kept in the first cache line with `sp` and `exclusivity`.
    uintptr_t switch_fp;      ///< Frame pointer of the switch that suspended it (for backtraces).
    void *exclusivity[2];     ///< Swift access-set segment (head, tail), zeroed at creation.
    int saved_errno;          ///< The greenlet's errno while it is suspended.
    int reserved;
    uintptr_t stack_low;      ///< Lowest usable stack address (0 for a thread's own stack).
    uintptr_t stack_high;     ///< One past the highest usable stack address.
    uintptr_t guard_low;      ///< Lowest address of the guard region below the stack.
    uint64_t id;              ///< Small unique number, for diagnostics.
    const char *name;         ///< NUL-terminated name or NULL, for diagnostics.
    uintptr_t walk_low;       ///< Bounds a frame-pointer walk of this context may read
    uintptr_t walk_high;      ///< (the thread's own stack for a main context).
    void *tsan_fiber;         ///< ThreadSanitizer's fiber for this context (TSan builds only).
    void *asan_fake_stack;    ///< AddressSanitizer's fake stack while suspended (ASan builds only).
    struct sprout_backtrace *last_throw; ///< Where code on this context last threw (see sprout_throw_tracing_install).
} sprout_context_t;

/// Zeroes `ctx` so that it describes a thread's own (main) stack, and records that stack's
/// bounds for backtraces. Call it on the thread it describes.
void sprout_context_init_main(sprout_context_t *ctx);

/// Prepares `ctx` to start `entry(arg)` on the stack whose usable range is
/// [`stack_low`, `stack_high`) with a guard region starting at `guard_low`.
/// `entry` must never return: a greenlet ends by switching away for the last time.
void sprout_context_init(sprout_context_t *ctx, void *stack_low, void *stack_high, void *guard_low,
                         void (*entry)(void *arg), void *arg);

/// Saves the running greenlet into `from` and resumes `to`; returns when something switches
/// back to `from`. Swaps the Swift exclusivity access set and errno. Never allocates, locks or
/// makes a syscall. Under AddressSanitizer or ThreadSanitizer (and only there) it also tells
/// the sanitizer that the stack changes, so that it follows greenlets as it follows threads
/// (ThreadSanitizer sees each greenlet as a fiber, and each switch as a synchronisation).
/// A greenlet's last switch (it has finished) goes through `sprout_context_switch_final`.
void sprout_context_switch(sprout_context_t *from, sprout_context_t *to);

/// As `sprout_context_switch` for a greenlet that has finished and will never be resumed: the
/// sanitizers forget its stack.
__attribute__((noreturn)) void sprout_context_switch_final(sprout_context_t *from, sprout_context_t *to);

/// Releases what a sanitizer keeps for a finished greenlet's context (its ThreadSanitizer
/// fiber). Called on another context before the stack is reused or given back.
void sprout_context_retire(sprout_context_t *ctx);

/// 1 when the C code is built under a sanitizer that follows greenlets (AddressSanitizer or
/// ThreadSanitizer): then `sprout_context_entered` and `sprout_context_retire` must be
/// called; 0 otherwise, and the runtime skips those calls (but for a throw trace to free).
extern const int sprout_context_sanitized;

/// Called first thing by a new greenlet's entry function (completes the sanitizers' view of
/// the switch that started it; does nothing in other builds).
void sprout_context_entered(void);

/// The context running on this thread, as last set by `sprout_context_switch` or
/// `sprout_context_set_current`; NULL on threads without greenlets.
sprout_context_t *sprout_context_current(void);

/// Records `ctx` as the context running on this thread (used once, for the thread's main context).
void sprout_context_set_current(sprout_context_t *ctx);

/// Records the context of this thread's hub loop (NULL when the hub ends).
void sprout_context_set_hub_loop(sprout_context_t *ctx);

/// 1 if the caller runs in a greenlet of this thread's live hub, other than the hub's loop:
/// code that may park. No call into Swift, no syscall (two thread-local loads).
int sprout_context_in_greenlet(void);

/// 1 if libswiftCore exports the exclusivity hooks Swift concurrency uses, and the switch calls
/// them; 0 if they are missing, in which case dynamic exclusivity checking has been switched off
/// for the process (a warning is printed once).
int sprout_exclusivity_hooks_available(void);

/// Tests only: stops (0) or resumes (1) calling the exclusivity hooks, without switching
/// checking off, to show what goes wrong without them.
void sprout_testsonly_set_exclusivity_hooks(int enabled);

/// Low-level assembly entry points (one file per architecture). `sprout_stack_switch` stores
/// the current stack pointer through `save_sp` and continues on `load_sp`, saving and restoring
/// exactly the callee-saved registers (and the FP control state) of the platform ABI.
void sprout_stack_switch(void **save_sp, void *load_sp);
/// Builds the first frame on a new stack whose 16-byte-aligned top is `top`, so that switching
/// to the returned stack pointer calls `entry(arg)` with a zero frame pointer and a correctly
/// aligned stack, and the FP control state of the caller.
void *sprout_stack_init(void *top, void (*entry)(void *arg), void *arg);

// MARK: - Stacks

/// A slab of stacks carved from one anonymous mapping.
typedef struct sprout_slab {
    void *base;               ///< Start of the mapping.
    size_t length;            ///< Length of the mapping.
    size_t stack_size;        ///< Usable bytes per stack.
    size_t guard_size;        ///< Guard bytes below each stack.
    size_t count;             ///< Number of stacks in the slab.
} sprout_slab_t;

/// How guard regions are installed; decided once per process.
typedef enum sprout_guard_mode {
    SPROUT_GUARD_MADVISE = 1,   ///< madvise(MADV_GUARD_INSTALL): no extra kernel mapping per guard.
    SPROUT_GUARD_MPROTECT = 2,  ///< mprotect(PROT_NONE): one extra mapping per guard.
} sprout_guard_mode_t;

/// Maps a slab of `count` stacks of `stack_size` usable bytes, each with `guard_size` bytes of
/// guard below it (sizes must be page multiples). Returns 0, or an errno value.
int sprout_slab_create(sprout_slab_t *slab, size_t stack_size, size_t guard_size, size_t count);
/// Unmaps a slab. Every stack in it must be unused.
void sprout_slab_destroy(sprout_slab_t *slab);
/// The usable range and guard of stack `index` of `slab`.
void sprout_slab_stack(const sprout_slab_t *slab, size_t index, void **low, void **high, void **guard_low);
/// Gives the pages of a stack that is no longer used back to the kernel (they read as zero later).
void sprout_stack_discard(void *low, size_t length);
/// Gives back to the kernel the pages of the running greenlet's stack that lie more than
/// `keep_below` bytes below the caller's frame: pages a deeper call touched earlier and that a
/// parked greenlet does not need. They read as zero when touched again. Returns the number of
/// bytes released; 0 on a thread's own stack or when nothing lies that deep.
size_t sprout_stack_release_unused(size_t keep_below);
/// The guard mode in effect (probing it on first use).
sprout_guard_mode_t sprout_guard_mode(void);

// MARK: - Stack overflow diagnosis

/// Installs (once per process) a SIGSEGV/SIGBUS handler that recognises faults in a greenlet's
/// guard region and ends the process with a message naming the greenlet and its stack size,
/// and gives this thread an alternate signal stack for it to run on. Other faults go to the
/// previously installed handler. Safe to call repeatedly, from any thread.
void sprout_overflow_handler_install_for_thread(void);

/// Removes and frees the alternate signal stack that `sprout_overflow_handler_install_for_thread`
/// gave this thread, if it gave one. Called before a thread that ran greenlets exits.
void sprout_overflow_handler_release_for_thread(void);

/// Returns the current thread's number of used bytes of the running greenlet's stack
/// (for diagnostics and tests); 0 on a thread's own stack.
size_t sprout_stack_used(void);

// MARK: - Backtraces

/// Most frames one backtrace keeps.
#define SPROUT_BACKTRACE_MAX 64

/// Return addresses walked through frame pointers, innermost first (`pcs[0]` is the program
/// counter itself), and the greenlet they belong to.
typedef struct sprout_backtrace {
    uint32_t count;           ///< Entries of `pcs` in use.
    uint32_t truncated;       ///< 1 if the walk stopped at SPROUT_BACKTRACE_MAX.
    uint64_t greenlet_id;     ///< `id` of the running context (0 if the thread has none).
    char greenlet_name[64];   ///< Its name, NUL-terminated ("" if unnamed).
    uint64_t pcs[SPROUT_BACKTRACE_MAX];
} sprout_backtrace_t;

/// The backtrace of a suspended context (a parked greenlet), walked from the registers it
/// saved when it switched away. Reads only inside the context's stack. Call it on the thread
/// that owns the context, never on the running one.
void sprout_context_backtrace(const sprout_context_t *ctx, sprout_backtrace_t *out);

/// The backtrace of the caller, on the running context's stack (from the caller's frame).
void sprout_current_backtrace(sprout_backtrace_t *out);

/// Installs (once per process) the handler of `signo` that samples the running code of the
/// thread it is sent to. Returns 0 or an errno value.
int sprout_sampler_install(int signo);

/// Unblocks `signo` in the calling thread, which may have inherited a mask that blocks it
/// (threads started from Dispatch or Swift concurrency workers do), so that it can be sampled.
void sprout_sampler_accept_on_this_thread(int signo);

/// Interrupts `thread` with the sampling signal and waits up to `timeout_ns` for the handler,
/// run on that thread, to fill `out` with the backtrace of the code it interrupted (its
/// program counter, then the frame-pointer chain of the running greenlet's stack). One sample
/// at a time per process. Returns 0, ETIMEDOUT, or the error of pthread_kill.
int sprout_sample_thread(pthread_t thread, int signo, sprout_backtrace_t *out, int64_t timeout_ns);

/// Installs (once per process) a hook on Swift's `swift_willThrow`, which every `throw`
/// calls: on a greenlet's context it records the backtrace of the throw in `last_throw`
/// (allocated on the context's first throw, freed by `sprout_context_retire`), so that a
/// greenlet that dies of an error can say where it was thrown. Any previous hook still runs.
/// Returns 0 if the runtime has no such hook.
int sprout_throw_tracing_install(void);

/// The calling thread's hub (an opaque pointer owned by Swift), or NULL.
void *sprout_hub_get(void);
/// Sets the calling thread's hub (NULL once it has ended).
void sprout_hub_set(void *hub);
/// Registers the function that ends a hub its thread still has when the thread exits.
void sprout_hub_set_exit_callback(void (*callback)(void *hub));
/// In a forked child: the hub the forking thread had in the parent (once; NULL after, or if
/// it had none). The child's hub pointer was cleared by an atfork handler.
void *sprout_hub_forgotten_after_fork(void);

#ifdef __cplusplus
}
#endif

#endif
