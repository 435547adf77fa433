// CSproutSystem: the small system-call shims the hub, its poller and sockets need (epoll
// waits with nanosecond timeouts, signal relays, socket and rlimit calls, clocks, heap trims),
// kept in C where Swift cannot express them without extra cost (errno, variadic calls,
// macros). Nothing here knows about greenlets.
#ifndef CSPROUT_SYSTEM_H
#define CSPROUT_SYSTEM_H

#include <stddef.h>
#include <stdint.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <sys/un.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

// MARK: - Polling and signals

/// epoll_wait with a timeout in nanoseconds (negative: forever), using epoll_pwait2 where the
/// kernel has it and rounding up to milliseconds where it does not.
int sprout_epoll_wait_ns(int epfd, struct epoll_event *events, int max, int64_t timeout_ns);
/// Relays signal `signo` to `fd` (a non-blocking pipe's write end): the process-wide handler
/// writes the signal number there as one byte. Returns 0 or an errno value.
int sprout_signal_watch(int signo, int fd);
/// Stops relaying `signo` to `fd`; when no descriptor is left, the action that was in place
/// before the first watch is restored.
void sprout_signal_unwatch(int signo, int fd);

// MARK: - Sockets

/// socket(2) with SOCK_NONBLOCK | SOCK_CLOEXEC. Returns the descriptor or -1 with errno set.
int sprout_socket(int domain, int type);
/// accept4(2) with SOCK_NONBLOCK | SOCK_CLOEXEC; `length` is set to the address length.
int sprout_accept(int fd, struct sockaddr_storage *address, socklen_t *length);
/// setsockopt(2) of an int option. Returns 0 or -1 with errno set.
int sprout_set_int_option(int fd, int level, int name, int value);
/// The pending error of a socket (SO_ERROR), or the errno of getsockopt.
int sprout_socket_error(int fd);
/// Raises the soft RLIMIT_NOFILE to the hard limit; stores the new soft limit. Returns 0 or errno.
int sprout_raise_nofile_limit(long *soft_after);

// MARK: - Small helpers that Swift cannot express without extra cost

/// Monotonic clock in nanoseconds (CLOCK_MONOTONIC).
uint64_t sprout_now_ns(void);
/// The kernel's tick-granular monotonic clock (CLOCK_MONOTONIC_COARSE): a few nanoseconds to
/// read, but it advances only once per tick (1–4 ms).
uint64_t sprout_coarse_now_ns(void);
/// pipe2 with O_NONBLOCK | O_CLOEXEC. Returns 0 or -1 with errno set.
int sprout_pipe_nonblocking(int fds[2]);
/// Resident set size of the process in bytes, or -1.
long sprout_resident_bytes(void);
/// Starts a detached thread running `entry(arg)`. Returns 0 or an errno value.
int sprout_thread_start_detached(void *(*entry)(void *arg), void *arg);
/// Names the calling thread (at most 15 bytes are kept), for debuggers and profilers.
void sprout_thread_set_name(const char *name);
/// A spin-wait hint to the CPU (pause / yield).
void sprout_cpu_relax(void);
/// errno of the calling thread.
int sprout_errno(void);
/// Sets errno of the calling thread.
void sprout_set_errno(int value);

// MARK: - Processes (fork safety and worker supervision)

/// Records one of a hub's own descriptors (epoll, eventfd, signal pipe), so that a forked
/// child closes its copy (the first call installs the `pthread_atfork` child handler, which
/// also drops the signal relays and bumps the fork generation).
void sprout_hub_descriptor_track(int fd);
/// Stops tracking `fd` (before the hub closes it).
void sprout_hub_descriptor_untrack(int fd);
/// How many times this process's line has forked: 0 in a process that is no forked child.
uint64_t sprout_fork_generation(void);
/// fork(2), with the child handlers installed first. Returns the pid, 0 in the child, or -1.
pid_t sprout_fork(void);
/// Forks; in the child, sets the parent-death signal (if not 0), then runs `body(arg)` on a new
/// thread with a `stack_size` stack and exits with what it returns (127 if the thread cannot
/// start). Returns the child's pid, or -1 with errno set, in the parent; never returns in the
/// child.
pid_t sprout_fork_running(int (*body)(void *), void *arg, size_t stack_size, int parent_death_signal);
/// `bytes` of zeroed memory shared with children forked later (MAP_SHARED | MAP_ANONYMOUS);
/// NULL on failure.
void *sprout_shared_memory(size_t bytes);
/// Unmaps memory from sprout_shared_memory.
void sprout_shared_memory_release(void *memory, size_t bytes);
/// Release-store / acquire-load of a 64-bit word that other processes read or write.
void sprout_shared_store(uint64_t *slot, uint64_t value);
uint64_t sprout_shared_load(const uint64_t *slot);
/// Compare-and-swap of a shared 64-bit word: 1 if `*slot` was `expected` and is now `desired`.
int sprout_shared_compare_exchange(uint64_t *slot, uint64_t expected, uint64_t desired);
/// waitpid(pid, status, WNOHANG), retried on EINTR: the pid, 0 if it still runs, or -1.
int sprout_wait_child(pid_t pid, int *status);
/// The exit code of a wait status, or -1 if the process did not exit normally.
int sprout_exit_code(int status);
/// CPUs in this process's affinity mask, or -1.
int sprout_usable_cpu_count(void);
/// The signal that ended a process (wait status), or 0.
int sprout_exit_signal(int status);

// MARK: - Memory

/// malloc_trim(0): returns the free pages of glibc's heaps to the kernel. 1 if any were released.
int sprout_heap_trim(void);

// MARK: - libc hooks (SproutPatch)

/// What the runtime lends SproutPatch's libc hooks: the same layout as
/// `sprout_patch_runtime_t` in CSproutPatch.h, which this target does not import (the hooks
/// are linked only into programs that ask for them). See that header for each function.
typedef struct sprout_green_runtime {
    int (*in_greenlet)(void);
    int (*wait_fd)(int fd, short events, uint64_t deadline, int after_eagain, uint32_t generation);
    int (*wait_poll)(const struct pollfd *fds, unsigned long count, uint64_t deadline, const uint32_t *generations);
    int (*sleep_until)(uint64_t deadline);
    int (*run_on_pool)(void (*work)(void *argument), void *argument);
    void (*forget_fd)(int fd);
} sprout_green_runtime_t;

/// Hands `runtime` to SproutPatch's hooks if this process has them (linked in, or loaded with
/// LD_PRELOAD): 1 if it did, 0 if there are none.
int sprout_green_runtime_offer(const sprout_green_runtime_t *runtime);

#ifdef __cplusplus
}
#endif

#endif
