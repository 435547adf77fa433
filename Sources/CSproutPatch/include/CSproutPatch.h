// CSproutPatch: libc functions interposed so that C libraries which block inside C (libpq,
// libmemcached, hiredis, anything calling read/poll/connect/sleep) park only the calling
// greenlet. The functions keep libc's names; the real ones are reached with dlsym(RTLD_NEXT).
//
// Every hook first asks whether to take the cooperative path: patching is enabled, a Sprout
// runtime is attached, the caller runs in a greenlet that is not its hub's loop, patching is
// not suspended on this thread, and (for IO on one descriptor) the descriptor is a socket or
// a pipe that its owner did not make non-blocking. Otherwise the real call runs unchanged.
#ifndef CSPROUT_PATCH_H
#define CSPROUT_PATCH_H

#include <stddef.h>
#include <stdint.h>
#include <poll.h>

#ifdef __cplusplus
extern "C" {
#endif

/// What the Sprout runtime lends the hooks: how to tell a greenlet, park it and run work off
/// the hub. Filled by the runtime (module Sprout) and handed over with `sprout_patch_attach`.
///
/// The `wait` functions return 1 when woken (the descriptor may be ready), 0 when the
/// deadline passed, and -1 with `errno` set when the greenlet was interrupted: `EINTR` for a
/// kill (`ECANCELED` on later calls while that kill is still pending) and `ETIMEDOUT` for an
/// expired `withTimeout`. The interruption stays pending and is thrown at the greenlet's
/// next Sprout switch point. Deadlines are CLOCK_MONOTONIC nanoseconds; `UINT64_MAX` is none.
typedef struct sprout_patch_runtime {
    /// 1 if the caller runs in a greenlet (not its hub's loop) of a live hub.
    int (*in_greenlet)(void);
    /// Parks until `fd` is readable (`events` has POLLIN) or writable (POLLOUT), or `deadline`.
    /// `after_eagain` 1: the caller just saw EAGAIN, so an edge will come (no check first).
    /// `generation`: as for `wait_poll`.
    int (*wait_fd)(int fd, short events, uint64_t deadline, int after_eagain, uint32_t generation);
    /// Parks until one of `fds` may be ready (per its `events`), or `deadline`. Descriptors stay
    /// registered with the hub's epoll between calls; `forget_fd` drops one. `generations[i]`
    /// is the table's generation of `fds[i].fd`: a registration made under another generation
    /// (the number was closed and reused meanwhile, perhaps on another thread) is made afresh.
    int (*wait_poll)(const struct pollfd *fds, nfds_t count, uint64_t deadline, const uint32_t *generations);
    /// Parks until `deadline`: 1 (or 0) when it has passed, -1 if interrupted.
    int (*sleep_until)(uint64_t deadline);
    /// Runs `work(argument)` on Sprout's thread pool, parking the caller until it has run.
    /// Returns 0; -1 if interrupted (errno as for waits; `work` still runs, later, on its
    /// thread); -2 if it could not be queued (errno set; `work` never runs).
    int (*run_on_pool)(void (*work)(void *argument), void *argument);
    /// The descriptor is being closed: wake its waiters with an error, drop its registration.
    void (*forget_fd)(int fd);
} sprout_patch_runtime_t;

/// Hands the runtime to the hooks (the Sprout module calls it when it creates its first hub;
/// later calls are ignored).
void sprout_patch_attach(const sprout_patch_runtime_t *runtime);

/// Turns the cooperative path on for the whole process (`patchAll()`). Returns 1 the first
/// time, 0 if it was already on. Loading the library with LD_PRELOAD turns it on by itself.
int sprout_patch_enable(void);

/// 1 once patching is on.
int sprout_patch_enabled(void);

/// 1 if a runtime is attached.
int sprout_patch_runtime_attached(void);

/// Suspends (`depth_change` +1) or resumes (-1) the cooperative path on the calling thread;
/// nests. Returns the new depth.
int sprout_patch_suspend_on_this_thread(int depth_change);

/// What the hooks know of descriptor `fd`: 0 not yet seen, 1 a socket, 2 a pipe or FIFO,
/// 3 something else (regular file, terminal, device: always the real call), -1 beyond the
/// table. For tests and diagnostics.
int sprout_patch_descriptor_kind(int fd);

/// 1 if the descriptor's owner made it non-blocking (so the hooks leave its IO alone).
int sprout_patch_descriptor_owner_nonblocking(int fd);

/// Entries in the descriptor table (from RLIMIT_NOFILE's hard limit, at most 1 << 22).
int sprout_patch_descriptor_table_size(void);

/// The real libc `poll`, bypassing the hook (for the runtime's own non-parking checks).
int sprout_patch_real_poll(struct pollfd *fds, nfds_t count, int timeout);

#ifdef __cplusplus
}
#endif

#endif
