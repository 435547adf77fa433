// Calls that create, configure, connect and close descriptors: they keep the descriptor table
// true (kind, the owner's O_NONBLOCK, socket timeouts) and make connect and accept park.
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "patch_internal.h"

#include <fcntl.h>
#include <stdarg.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>

static inline int patching(void) { return __builtin_expect(__atomic_load_n(&sprout_patch_on, __ATOMIC_RELAXED), 0); }

SPROUT_EXPORT int socket(int domain, int type, int protocol) {
    int fd = REAL(socket)(domain, type, protocol);
    if (fd >= 0 && patching()) sprout_fd_created(fd, SPROUT_FD_SOCKET, (type & SOCK_NONBLOCK) != 0);
    return fd;
}

SPROUT_EXPORT int socketpair(int domain, int type, int protocol, int fds[2]) {
    int rc = REAL(socketpair)(domain, type, protocol, fds);
    if (rc == 0 && patching()) {
        sprout_fd_created(fds[0], SPROUT_FD_SOCKET, (type & SOCK_NONBLOCK) != 0);
        sprout_fd_created(fds[1], SPROUT_FD_SOCKET, (type & SOCK_NONBLOCK) != 0);
    }
    return rc;
}

SPROUT_EXPORT int pipe(int fds[2]) {
    int rc = REAL(pipe)(fds);
    if (rc == 0 && patching()) {
        sprout_fd_created(fds[0], SPROUT_FD_PIPE, 0);
        sprout_fd_created(fds[1], SPROUT_FD_PIPE, 0);
    }
    return rc;
}

SPROUT_EXPORT int pipe2(int fds[2], int flags) {
    int rc = REAL(pipe2)(fds, flags);
    if (rc == 0 && patching()) {
        sprout_fd_created(fds[0], SPROUT_FD_PIPE, (flags & O_NONBLOCK) != 0);
        sprout_fd_created(fds[1], SPROUT_FD_PIPE, (flags & O_NONBLOCK) != 0);
    }
    return rc;
}

/// Runs `operation` with O_NONBLOCK set on the open file for the moment (connect and accept
/// have no MSG_DONTWAIT), then puts the owner's flags back.
static int with_nonblocking(int fd, int *flags_out) {
    int flags = REAL(fcntl)(fd, F_GETFL);
    if (flags < 0) return -1;
    *flags_out = flags;
    return REAL(fcntl)(fd, F_SETFL, flags | O_NONBLOCK);
}

SPROUT_EXPORT int connect(int fd, const struct sockaddr *address, socklen_t length) {
    sprout_fd_entry_t *entry = sprout_cooperative_fd(fd);
    if (!entry || (sprout_fd_state(entry) & 0xff) != SPROUT_FD_SOCKET) return REAL(connect)(fd, address, length);
    int saved_errno = errno;
    // The kernel bounds a blocking connect by SO_SNDTIMEO, and says EINPROGRESS when it expires.
    uint64_t deadline = sprout_patch_deadline_after(__atomic_load_n(&entry->send_timeout, __ATOMIC_RELAXED));
    for (;;) {
        int flags;
        if (with_nonblocking(fd, &flags) != 0) return REAL(connect)(fd, address, length);
        int rc = REAL(connect)(fd, address, length);
        int error = errno;
        // Back to blocking, as the owner has it (on this path it never asked for O_NONBLOCK):
        // not to what F_GETFL said, which another thread's connect may have changed meanwhile.
        REAL(fcntl)(fd, F_SETFL, flags & ~O_NONBLOCK);
        if (rc == 0) { errno = saved_errno; return 0; }
        if (error == EAGAIN && address && address->sa_family == AF_UNIX) {
            // A Unix listener's backlog is full: the blocking call would wait for room.
            if (sprout_patch_now() >= deadline) { errno = EAGAIN; return -1; }
            if (sprout_patch_rt->sleep_until(sprout_patch_deadline_after(1000000)) < 0) return -1;
            continue;
        }
        if (error != EINPROGRESS) { errno = error; return -1; }
        break;
    }
    int ready = sprout_patch_wait(fd, POLLOUT, deadline, 1);
    if (ready < 0) return -1;   // EINTR: the connection goes on in the background, as after a signal
    if (ready == 0) { errno = EINPROGRESS; return -1; }
    int result = 0;
    socklen_t result_length = sizeof result;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &result, &result_length) != 0) return -1;
    if (result != 0) { errno = result; return -1; }
    errno = saved_errno;
    return 0;
}

static int cooperative_accept(int fd, struct sockaddr *address, socklen_t *length, int flags) {
    sprout_fd_entry_t *entry = sprout_cooperative_fd(fd);
    if (!entry || (sprout_fd_state(entry) & 0xff) != SPROUT_FD_SOCKET) {
        int client = REAL(accept4)(fd, address, length, flags);
        if (client >= 0 && patching()) sprout_fd_created(client, SPROUT_FD_SOCKET, (flags & SOCK_NONBLOCK) != 0);
        return client;
    }
    int saved_errno = errno;
    uint64_t deadline = 0;
    for (;;) {
        int owner_flags;
        if (with_nonblocking(fd, &owner_flags) != 0) return REAL(accept4)(fd, address, length, flags);
        int client = REAL(accept4)(fd, address, length, flags);
        int error = errno;
        REAL(fcntl)(fd, F_SETFL, owner_flags & ~O_NONBLOCK);   // as in connect
        if (client >= 0) {
            sprout_fd_created(client, SPROUT_FD_SOCKET, (flags & SOCK_NONBLOCK) != 0);
            errno = saved_errno;
            return client;
        }
        if (error != EAGAIN && error != EWOULDBLOCK) { errno = error; return -1; }
        if (!deadline) deadline = sprout_patch_deadline_after(__atomic_load_n(&entry->receive_timeout, __ATOMIC_RELAXED));
        int ready = sprout_patch_wait(fd, POLLIN, deadline, 1);
        if (ready < 0) return -1;
        if (ready == 0) { errno = EAGAIN; return -1; }
    }
}

SPROUT_EXPORT int accept(int fd, struct sockaddr *address, socklen_t *length) {
    return cooperative_accept(fd, address, length, 0);
}

SPROUT_EXPORT int accept4(int fd, struct sockaddr *address, socklen_t *length, int flags) {
    return cooperative_accept(fd, address, length, flags);
}

/// Before `fd` closes: waiters on it are woken (with an error) and its epoll registration
/// dropped, so that a new descriptor with the same number starts clean.
static void forgetting(int fd) {
    if (!patching()) return;
    const sprout_patch_runtime_t *rt = __atomic_load_n(&sprout_patch_rt, __ATOMIC_ACQUIRE);
    if (rt) rt->forget_fd(fd);
    sprout_fd_forget(fd);
}

SPROUT_EXPORT int close(int fd) {
    forgetting(fd);
    return REAL(close)(fd);
}

SPROUT_EXPORT int close_range(unsigned int first, unsigned int last, int flags) {
    // CLOSE_RANGE_CLOEXEC (4) only marks them; anything else closes them.
    if (patching() && !(flags & 4)) {
        int limit = sprout_patch_descriptor_table_size();
        for (unsigned int fd = first; fd <= last && fd < (unsigned int)limit; fd++) {
            if (sprout_patch_descriptor_kind((int)fd) != SPROUT_FD_UNKNOWN) forgetting((int)fd);
        }
    }
    return (int)syscall(SYS_close_range, first, last, flags);
}

SPROUT_EXPORT int fclose(FILE *stream) {
    if (stream && patching()) forgetting(fileno(stream));
    return REAL(fclose)(stream);
}

SPROUT_EXPORT int dup(int fd) {
    int copy = REAL(dup)(fd);
    if (copy >= 0 && patching()) sprout_fd_copy(copy, fd);
    return copy;
}

SPROUT_EXPORT int dup2(int fd, int target) {
    if (fd != target) forgetting(target);
    int copy = REAL(dup2)(fd, target);
    if (copy >= 0 && fd != target && patching()) sprout_fd_copy(copy, fd);
    return copy;
}

SPROUT_EXPORT int dup3(int fd, int target, int flags) {
    if (fd != target) forgetting(target);
    int copy = REAL(dup3)(fd, target, flags);
    if (copy >= 0 && patching()) sprout_fd_copy(copy, fd);
    return copy;
}

static int hooked_fcntl(int fd, int command, void *argument) {
    if (!patching()) return REAL(fcntl)(fd, command, argument);
    switch (command) {
    case F_GETFL: {
        int flags = REAL(fcntl)(fd, command);
        sprout_fd_entry_t *entry = flags >= 0 ? sprout_fd_entry(fd) : NULL;
        if (entry) {
            uint32_t state = sprout_fd_state(entry);
            // O_NONBLOCK the hooks set is theirs: the owner sees the mode it chose.
            if ((state & SPROUT_FD_KERNEL_NONBLOCK_OURS) && !(state & SPROUT_FD_OWNER_NONBLOCK)) flags &= ~O_NONBLOCK;
        }
        return flags;
    }
    case F_SETFL: {
        int wanted = (int)(intptr_t)argument;
        sprout_fd_entry_t *entry = sprout_fd_entry(fd);
        int kernel = wanted;
        if (entry && (sprout_fd_state(entry) & SPROUT_FD_KERNEL_NONBLOCK_OURS)) kernel |= O_NONBLOCK;
        int rc = REAL(fcntl)(fd, command, kernel);
        if (rc == 0 && entry && (sprout_fd_state(entry) & 0xff) != SPROUT_FD_OTHER)
            sprout_fd_set_owner_nonblocking(fd, (wanted & O_NONBLOCK) != 0);
        return rc;
    }
    case F_DUPFD:
    case F_DUPFD_CLOEXEC: {
        int copy = REAL(fcntl)(fd, command, argument);
        if (copy >= 0) sprout_fd_copy(copy, fd);
        return copy;
    }
    default:
        return REAL(fcntl)(fd, command, argument);
    }
}

// The third argument is an int or a pointer, by command; either fits in a pointer-sized
// register and is passed on as it came.
SPROUT_EXPORT int fcntl(int fd, int command, ...) {
    va_list arguments;
    va_start(arguments, command);
    void *argument = va_arg(arguments, void *);
    va_end(arguments);
    return hooked_fcntl(fd, command, argument);
}

SPROUT_EXPORT int fcntl64(int fd, int command, ...) {
    va_list arguments;
    va_start(arguments, command);
    void *argument = va_arg(arguments, void *);
    va_end(arguments);
    return hooked_fcntl(fd, command, argument);
}

SPROUT_EXPORT int ioctl(int fd, unsigned long request, ...) {
    va_list arguments;
    va_start(arguments, request);
    void *argument = va_arg(arguments, void *);
    va_end(arguments);
    if (request != FIONBIO || !patching() || !argument) return REAL(ioctl)(fd, request, argument);
    int wanted = *(int *)argument;
    sprout_fd_entry_t *entry = sprout_fd_entry(fd);
    if (entry && (sprout_fd_state(entry) & SPROUT_FD_KERNEL_NONBLOCK_OURS) && !wanted) {
        // Already non-blocking for the hooks' sake: only the owner's choice changes.
        sprout_fd_set_owner_nonblocking(fd, 0);
        return 0;
    }
    int rc = REAL(ioctl)(fd, request, argument);
    if (rc == 0 && entry && (sprout_fd_state(entry) & 0xff) != SPROUT_FD_OTHER) sprout_fd_set_owner_nonblocking(fd, wanted != 0);
    return rc;
}

SPROUT_EXPORT int setsockopt(int fd, int level, int name, const void *value, socklen_t length) {
    int rc = REAL(setsockopt)(fd, level, name, value, length);
    // SO_RCVTIMEO_NEW/SO_SNDTIMEO_NEW (66, 67) carry the same 64-bit layout on 64-bit systems.
    if (rc == 0 && patching() && level == SOL_SOCKET && length >= (socklen_t)sizeof(struct timeval)
        && (name == SO_RCVTIMEO || name == SO_SNDTIMEO || name == 66 || name == 67)) {
        sprout_fd_entry_t *entry = sprout_fd_entry(fd);
        if (entry) {
            const struct timeval *timeout = value;
            int64_t nanos = (int64_t)timeout->tv_sec * 1000000000ll + (int64_t)timeout->tv_usec * 1000ll;
            int receive = name == SO_RCVTIMEO || name == 66;
            __atomic_store_n(receive ? &entry->receive_timeout : &entry->send_timeout, nanos, __ATOMIC_RELAXED);
        }
    }
    return rc;
}
