// CSproutSystem: the small system-call shims the hub, its poller and sockets need (epoll
// waits with nanosecond timeouts, signal relays, socket and rlimit calls, clocks, heap trims),
// kept in C where Swift cannot express them without extra cost (errno, variadic calls,
// macros). Nothing here knows about greenlets.
#ifndef CSPROUT_SYSTEM_H
#define CSPROUT_SYSTEM_H

#include <stddef.h>
#include <stdint.h>
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

// MARK: - Memory

/// malloc_trim(0): returns the free pages of glibc's heaps to the kernel. 1 if any were released.
int sprout_heap_trim(void);

#ifdef __cplusplus
}
#endif

#endif
