// poll, ppoll, select: from a greenlet, with a timeout that is not zero, they park whatever
// mode the descriptors are in. This is where libraries doing their own non-blocking IO wait
// (libpq's pqSocketPoll, libmemcached's io_wait, hiredis' redisContextWaitReady), so it is
// the hook that makes them cooperative. Each round asks the kernel with a zero timeout (one
// syscall: exact revents, POLLNVAL, select's EBADF), and parks only when nothing is ready;
// the descriptors stay registered with the hub's epoll between calls.
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "patch_internal.h"

#include <stdlib.h>
#include <string.h>

/// Seconds and nanoseconds (both non-negative) as nanoseconds, saturating.
static int64_t saturating_nanos(int64_t seconds, int64_t nanos) {
    if (seconds >= INT64_MAX / 1000000000ll - 1) return INT64_MAX;
    return seconds * 1000000000ll + nanos;
}

/// The generations of `fds`' descriptors, for the runtime's registrations.
static void fill_generations(const struct pollfd *fds, nfds_t count, uint32_t *generations) {
    for (nfds_t index = 0; index < count; index++) generations[index] = sprout_fd_generation(fds[index].fd);
}

/// Polls `fds` until something is ready or `deadline` (UINT64_MAX: none).
static int cooperative_poll(struct pollfd *fds, nfds_t count, uint64_t deadline) {
    int saved_errno = errno;
    uint32_t small[16];
    uint32_t *generations = count <= 16 ? small : malloc(sizeof *generations * count);
    if (!generations) { errno = ENOMEM; return -1; }
    fill_generations(fds, count, generations);
    int result;
    for (;;) {
        int ready = REAL(poll)(fds, count, 0);
        if (ready != 0) {
            result = ready;
            break;
        }
        if (deadline != UINT64_MAX && sprout_patch_now() >= deadline) { result = 0; break; }
        int woken = count == 0 ? sprout_patch_rt->sleep_until(deadline)
                               : sprout_patch_rt->wait_poll(fds, count, deadline, generations);
        if (woken < 0) { result = -1; break; }   // interrupted: errno says how
    }
    int error = errno;
    if (generations != small) free(generations);
    errno = result >= 0 ? saved_errno : error;
    return result;
}

SPROUT_EXPORT int poll(struct pollfd *fds, nfds_t count, int timeout) {
    if (timeout == 0 || !sprout_cooperative()) return REAL(poll)(fds, count, timeout);
    return cooperative_poll(fds, count, timeout < 0 ? UINT64_MAX : sprout_patch_deadline_after((int64_t)timeout * 1000000ll));
}

SPROUT_EXPORT int __poll(struct pollfd *fds, nfds_t count, int timeout) { return poll(fds, count, timeout); }

SPROUT_EXPORT int ppoll(struct pollfd *fds, nfds_t count, const struct timespec *timeout, const sigset_t *mask) {
    if ((timeout && timeout->tv_sec == 0 && timeout->tv_nsec == 0) || !sprout_cooperative())
        return REAL(ppoll)(fds, count, timeout, mask);
    if (timeout && (timeout->tv_sec < 0 || timeout->tv_nsec < 0 || timeout->tv_nsec >= 1000000000L)) {
        errno = EINVAL;
        return -1;
    }
    // The signal mask cannot follow a parked greenlet (signals reach the hub's handlers): it is
    // not applied while parking.
    uint64_t deadline = timeout ? sprout_patch_deadline_after(saturating_nanos(timeout->tv_sec, timeout->tv_nsec)) : UINT64_MAX;
    return cooperative_poll(fds, count, deadline);
}

SPROUT_EXPORT int select(int count, fd_set *readable, fd_set *writable, fd_set *exceptional, struct timeval *timeout) {
    if ((timeout && timeout->tv_sec == 0 && timeout->tv_usec == 0) || !sprout_cooperative() || count < 0 || count > FD_SETSIZE)
        return REAL(select)(count, readable, writable, exceptional, timeout);
    if (timeout && (timeout->tv_sec < 0 || timeout->tv_usec < 0)) { errno = EINVAL; return -1; }
    int saved_errno = errno;
    uint64_t deadline = timeout ? sprout_patch_deadline_after(saturating_nanos(timeout->tv_sec, (int64_t)timeout->tv_usec * 1000)) : UINT64_MAX;
    fd_set read_in, write_in, except_in;
    if (readable) read_in = *readable;
    if (writable) write_in = *writable;
    if (exceptional) except_in = *exceptional;
    // The descriptors to park on, once.
    struct pollfd small[16];
    struct pollfd *watched = small;
    nfds_t watched_count = 0;
    for (int fd = 0; fd < count; fd++) {
        short events = (short)((readable && FD_ISSET(fd, &read_in) ? POLLIN : 0)
                             | (writable && FD_ISSET(fd, &write_in) ? POLLOUT : 0)
                             | (exceptional && FD_ISSET(fd, &except_in) ? POLLPRI : 0));
        if (!events) continue;
        if (watched_count == 16 && watched == small) {
            watched = malloc(sizeof *watched * (size_t)count);
            if (!watched) { errno = ENOMEM; return -1; }
            memcpy(watched, small, sizeof small);
        }
        watched[watched_count++] = (struct pollfd){ .fd = fd, .events = events };
    }
    int result;
    int error = 0;
    for (;;) {
        struct timeval zero = { 0, 0 };
        if (readable) *readable = read_in;
        if (writable) *writable = write_in;
        if (exceptional) *exceptional = except_in;
        result = REAL(select)(count, readable, writable, exceptional, &zero);
        if (result < 0) error = errno;
        if (result != 0) break;
        uint64_t now = sprout_patch_now();
        if (deadline != UINT64_MAX && now >= deadline) break;
        uint32_t generations[watched_count ? watched_count : 1];
        fill_generations(watched, watched_count, generations);
        int woken = watched_count == 0 ? sprout_patch_rt->sleep_until(deadline)
                                       : sprout_patch_rt->wait_poll(watched, watched_count, deadline, generations);
        if (woken < 0) { result = -1; error = errno; break; }
    }
    if (watched != small) free(watched);
    if (timeout) {
        // Linux leaves the time not slept in the timeout.
        uint64_t now = sprout_patch_now();
        uint64_t left = deadline > now ? deadline - now : 0;
        timeout->tv_sec = (time_t)(left / 1000000000ull);
        timeout->tv_usec = (suseconds_t)((left % 1000000000ull) / 1000ull);
    }
    errno = result >= 0 ? saved_errno : error;
    return result;
}
