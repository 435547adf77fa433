// read, write, readv, writev, recv, recvfrom, recvmsg, send, sendto, sendmsg: on a blocking
// socket or pipe in a greenlet, each tries without blocking and parks on EAGAIN, so that the
// call behaves as the blocking one does (including SO_RCVTIMEO/SO_SNDTIMEO, partial counts
// after a timeout or an interruption, and errno) while the hub runs other greenlets.
//
// Sockets are never switched to O_NONBLOCK: each try passes MSG_DONTWAIT. Pipes the hooks saw
// created are switched (lazily, at their first cooperative use) and their owner still sees the
// blocking mode; a pipe of unknown origin stays blocking and is waited on before each call.
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "patch_internal.h"

#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

enum io_kind { IO_READ, IO_WRITE, IO_READV, IO_WRITEV, IO_RECV, IO_RECVFROM, IO_RECVMSG, IO_SEND, IO_SENDTO, IO_SENDMSG };

typedef struct io_call {
    enum io_kind kind;
    int fd;
    void *buffer;              // read/write/recv/send/recvfrom/sendto
    size_t count;
    int flags;                 // the caller's MSG_* flags
    struct iovec *iov;         // readv/writev (a copy the loop may advance)
    int iovcnt;
    struct sockaddr *from;     // recvfrom
    socklen_t *from_length;
    const struct sockaddr *to; // sendto
    socklen_t to_length;
    struct msghdr *message;    // recvmsg/sendmsg (sendmsg: a copy the loop may advance)
} io_call_t;

static inline int is_write(enum io_kind kind) {
    return kind == IO_WRITE || kind == IO_WRITEV || kind == IO_SEND || kind == IO_SENDTO || kind == IO_SENDMSG;
}

/// One try. `socket_nowait`: a socket, tried with MSG_DONTWAIT (read/write become recv/send).
static ssize_t attempt(io_call_t *call, int socket_nowait) {
    int nowait = socket_nowait ? MSG_DONTWAIT : 0;
    switch (call->kind) {
    case IO_READ:
        return socket_nowait ? REAL(recv)(call->fd, call->buffer, call->count, nowait) : REAL(read)(call->fd, call->buffer, call->count);
    case IO_WRITE:
        return socket_nowait ? REAL(send)(call->fd, call->buffer, call->count, nowait) : REAL(write)(call->fd, call->buffer, call->count);
    case IO_READV:
        if (socket_nowait) {
            struct msghdr message = { .msg_iov = call->iov, .msg_iovlen = (size_t)call->iovcnt };
            return REAL(recvmsg)(call->fd, &message, nowait);
        }
        return REAL(readv)(call->fd, call->iov, call->iovcnt);
    case IO_WRITEV:
        if (socket_nowait) {
            struct msghdr message = { .msg_iov = call->iov, .msg_iovlen = (size_t)call->iovcnt };
            return REAL(sendmsg)(call->fd, &message, nowait);
        }
        return REAL(writev)(call->fd, call->iov, call->iovcnt);
    case IO_RECV:
        return REAL(recv)(call->fd, call->buffer, call->count, (call->flags & ~MSG_WAITALL) | nowait);
    case IO_RECVFROM:
        return REAL(recvfrom)(call->fd, call->buffer, call->count, call->flags | nowait, call->from, call->from_length);
    case IO_RECVMSG:
        return REAL(recvmsg)(call->fd, call->message, call->flags | nowait);
    case IO_SEND:
        return REAL(send)(call->fd, call->buffer, call->count, call->flags | nowait);
    case IO_SENDTO:
        return REAL(sendto)(call->fd, call->buffer, call->count, call->flags | nowait, call->to, call->to_length);
    case IO_SENDMSG:
        return REAL(sendmsg)(call->fd, call->message, call->flags | nowait);
    }
    errno = EINVAL;
    return -1;
}

/// Moves the call past `done` transferred bytes (a blocking write, or recv with MSG_WAITALL,
/// goes on until everything has moved). Returns 1 if bytes remain.
static int advance(io_call_t *call, size_t done) {
    switch (call->kind) {
    case IO_WRITE: case IO_SEND: case IO_SENDTO: case IO_RECV:
        call->buffer = (char *)call->buffer + done;
        call->count -= done;
        return call->count > 0;
    case IO_WRITEV: case IO_SENDMSG: {
        struct iovec **iov = call->kind == IO_WRITEV ? &call->iov : &call->message->msg_iov;
        size_t left = call->kind == IO_WRITEV ? (size_t)call->iovcnt : call->message->msg_iovlen;
        while (left > 0 && done >= (*iov)->iov_len) { done -= (*iov)->iov_len; (*iov)++; left--; }
        if (left > 0) { (*iov)->iov_base = (char *)(*iov)->iov_base + done; (*iov)->iov_len -= done; }
        while (left > 0 && (*iov)->iov_len == 0) { (*iov)++; left--; }
        if (call->kind == IO_WRITEV) call->iovcnt = (int)left; else call->message->msg_iovlen = left;
        if (call->kind == IO_SENDMSG) { call->message->msg_control = NULL; call->message->msg_controllen = 0; }
        return left > 0;
    }
    default:
        return 0;
    }
}

/// Makes a pipe the hooks created non-blocking at its first cooperative use (see fdtable.c).
/// Returns 1 if tries on it will not block.
static int pipe_tries_without_blocking(int fd, sprout_fd_entry_t *entry) {
    uint32_t state = sprout_fd_state(entry);
    if (state & SPROUT_FD_KERNEL_NONBLOCK_OURS) return 1;
    if (!(state & SPROUT_FD_CREATED_HERE)) return 0;
    int flags = REAL(fcntl)(fd, F_GETFL);
    if (flags < 0 || REAL(fcntl)(fd, F_SETFL, flags | O_NONBLOCK) != 0) return 0;
    sprout_fd_set_bits(entry, SPROUT_FD_KERNEL_NONBLOCK_OURS);
    sprout_fd_propagate(fd, SPROUT_FD_KERNEL_NONBLOCK_OURS, 1);
    return 1;
}

/// A try on a pipe of unknown origin, which stays blocking: after poll said "writable", a write
/// of at most PIPE_BUF bytes does not block, so a larger one is cut to that.
static ssize_t attempt_on_blocking_pipe(io_call_t *call) {
    if (call->kind == IO_WRITE && call->count > PIPE_BUF) {
        size_t rest = call->count;
        call->count = PIPE_BUF;
        ssize_t done = attempt(call, 0);
        call->count = rest;
        return done;
    }
    if (call->kind == IO_WRITEV) {
        struct iovec *iov = call->iov;
        int count = call->iovcnt;
        size_t total = 0;
        int used = 0;
        while (used < count && total + iov[used].iov_len <= PIPE_BUF) total += iov[used++].iov_len;
        if (used == count) return attempt(call, 0);
        // Up to PIPE_BUF bytes: whole vectors, then part of the next (restored after).
        size_t saved_length = iov[used].iov_len;
        iov[used].iov_len = PIPE_BUF - total;
        call->iovcnt = used + 1;
        ssize_t done = attempt(call, 0);
        iov[used].iov_len = saved_length;
        call->iovcnt = count;
        return done;
    }
    return attempt(call, 0);
}

/// The cooperative body shared by every IO hook.
static ssize_t cooperate(sprout_fd_entry_t *entry, io_call_t *call) {
    int saved_errno = errno;
    uint32_t state = sprout_fd_state(entry);
    uint32_t kind = state & 0xff;
    int writing = is_write(call->kind);
    int socket_nowait = kind == SPROUT_FD_SOCKET;
    int tries_safe = socket_nowait || pipe_tries_without_blocking(call->fd, entry);
    int64_t timeout = kind == SPROUT_FD_SOCKET
        ? __atomic_load_n(writing ? &entry->send_timeout : &entry->receive_timeout, __ATOMIC_RELAXED) : 0;
    // A write on a stream (or a pipe) and recv(MSG_WAITALL) on a stream move everything before
    // they return; a datagram goes, or comes, in one piece.
    int stream = kind == SPROUT_FD_PIPE || (state & SPROUT_FD_STREAM);
    int peek = (call->kind == IO_RECV || call->kind == IO_RECVFROM) && (call->flags & MSG_PEEK);
    int wait_all = call->kind == IO_RECV && (call->flags & MSG_WAITALL) && stream;
    int whole = stream && (writing || (wait_all && !peek));
    uint64_t deadline = 0;
    size_t moved = 0;
    for (;;) {
        if (!tries_safe) {
            uint64_t until = deadline ? deadline : (deadline = sprout_patch_deadline_after(timeout));
            int ready = sprout_patch_wait(call->fd, writing ? POLLOUT : POLLIN, until, 0);
            if (ready < 0) goto stopped;
            if (ready == 0) { errno = EAGAIN; goto stopped; }
        }
        ssize_t done = tries_safe ? attempt(call, socket_nowait) : attempt_on_blocking_pipe(call);
        if (done >= 0) {
            // MSG_PEEK|MSG_WAITALL: look again, from the start, until the whole count is there.
            if (wait_all && peek && done > 0 && (size_t)done < call->count) goto wait;
            moved += (size_t)done;
            if (!whole || done == 0 || !advance(call, (size_t)done)) break;
            continue;
        }
        if (errno == ENOTSOCK && socket_nowait) {
            // A stale record (the number was reused by a call no hook saw): start afresh.
            sprout_fd_forget(call->fd);
            return moved > 0 ? (ssize_t)moved : attempt(call, 0);
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK) goto stopped;
        if (!tries_safe) continue;   // someone else took what poll saw: wait again
    wait:
        if (!deadline) deadline = sprout_patch_deadline_after(timeout);
        int ready = sprout_patch_wait(call->fd, writing ? POLLOUT : POLLIN, deadline, 1);
        if (ready < 0) goto stopped;
        if (ready == 0) { errno = EAGAIN; goto stopped; }   // SO_RCVTIMEO/SO_SNDTIMEO expired
    }
    errno = saved_errno;
    return (ssize_t)moved;
stopped:
    // As the kernel does: bytes already moved are reported, the error is not.
    if (moved > 0) { errno = saved_errno; return (ssize_t)moved; }
    return -1;
}

/// A pipe the hooks switched to O_NONBLOCK, used by code that must not park (another thread,
/// the hub, withoutPatching): it still blocks as its owner expects, in the real poll.
static ssize_t real_on_switched_pipe(io_call_t *call) {
    int writing = is_write(call->kind);
    for (;;) {
        ssize_t done = attempt(call, 0);
        if (done >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) return done;
        struct pollfd entry = { .fd = call->fd, .events = (short)(writing ? POLLOUT : POLLIN) };
        if (REAL(poll)(&entry, 1, -1) < 0 && errno != EINTR) return -1;
    }
}

/// The entry of a descriptor whose IO takes the cooperative path now; NULL for the real call.
/// `switched` is set when the real call must still block on a pipe the hooks switched.
static inline sprout_fd_entry_t *cooperative_or_switched(int fd, int *switched) {
    *switched = 0;
    if (__builtin_expect(!__atomic_load_n(&sprout_patch_on, __ATOMIC_RELAXED), 1)) return NULL;
    sprout_fd_entry_t *entry = sprout_cooperative_fd(fd);
    if (entry) return entry;
    if (fd >= 0 && fd < sprout_patch_descriptor_table_size()) {
        sprout_fd_entry_t *known = sprout_fd_entry(fd);
        uint32_t state = known ? sprout_fd_state(known) : 0;
        *switched = known && (state & SPROUT_FD_KERNEL_NONBLOCK_OURS) && !(state & SPROUT_FD_OWNER_NONBLOCK);
    }
    return NULL;
}

#define COOPERATIVE_OR_REAL(fd, real_call) \
    sprout_fd_entry_t *entry = sprout_cooperative_fd(fd); \
    if (__builtin_expect(entry == NULL, 1)) return real_call;

/// For the calls a pipe takes (read, write, readv, writev): as above, and a pipe the hooks
/// switched still blocks for callers that do not cooperate.
#define COOPERATIVE_SWITCHED_OR_REAL(fd, real_call, call_initialiser) \
    int switched; \
    sprout_fd_entry_t *entry = cooperative_or_switched(fd, &switched); \
    if (__builtin_expect(entry == NULL, 1)) { \
        if (!switched) return real_call; \
        io_call_t blocking = call_initialiser; \
        return real_on_switched_pipe(&blocking); \
    }

SPROUT_EXPORT ssize_t read(int fd, void *buffer, size_t count) {
    COOPERATIVE_SWITCHED_OR_REAL(fd, REAL(read)(fd, buffer, count), ((io_call_t){ .kind = IO_READ, .fd = fd, .buffer = buffer, .count = count }))
    io_call_t call = { .kind = IO_READ, .fd = fd, .buffer = buffer, .count = count };
    return cooperate(entry, &call);
}

SPROUT_EXPORT ssize_t write(int fd, const void *buffer, size_t count) {
    COOPERATIVE_SWITCHED_OR_REAL(fd, REAL(write)(fd, buffer, count), ((io_call_t){ .kind = IO_WRITE, .fd = fd, .buffer = (void *)buffer, .count = count }))
    io_call_t call = { .kind = IO_WRITE, .fd = fd, .buffer = (void *)buffer, .count = count };
    return cooperate(entry, &call);
}

/// readv/writev/sendmsg advance their iovec array: they work on a copy (on the stack when
/// small), never on the caller's.
#define IOV_COPY_ON_STACK 16

SPROUT_EXPORT ssize_t readv(int fd, const struct iovec *iov, int iovcnt) {
    if (iovcnt < 0 || iovcnt > IOV_MAX) return REAL(readv)(fd, iov, iovcnt);   // its EINVAL
    COOPERATIVE_SWITCHED_OR_REAL(fd, REAL(readv)(fd, iov, iovcnt), ((io_call_t){ .kind = IO_READV, .fd = fd, .iov = (struct iovec *)iov, .iovcnt = iovcnt }))
    io_call_t call = { .kind = IO_READV, .fd = fd, .iov = (struct iovec *)iov, .iovcnt = iovcnt };
    return cooperate(entry, &call);
}

SPROUT_EXPORT ssize_t writev(int fd, const struct iovec *iov, int iovcnt) {
    if (iovcnt < 0 || iovcnt > IOV_MAX) return REAL(writev)(fd, iov, iovcnt);   // its EINVAL
    COOPERATIVE_SWITCHED_OR_REAL(fd, REAL(writev)(fd, iov, iovcnt), ((io_call_t){ .kind = IO_WRITEV, .fd = fd, .iov = (struct iovec *)iov, .iovcnt = iovcnt }))
    struct iovec small[IOV_COPY_ON_STACK];
    struct iovec *copy = iovcnt <= IOV_COPY_ON_STACK ? small : malloc(sizeof *copy * (size_t)iovcnt);
    if (!copy) { errno = ENOMEM; return -1; }
    memcpy(copy, iov, sizeof *copy * (size_t)iovcnt);
    io_call_t call = { .kind = IO_WRITEV, .fd = fd, .iov = copy, .iovcnt = iovcnt };
    ssize_t result = cooperate(entry, &call);
    if (copy != small) { int saved = errno; free(copy); errno = saved; }
    return result;
}

SPROUT_EXPORT ssize_t recv(int fd, void *buffer, size_t count, int flags) {
    if (flags & MSG_DONTWAIT) return REAL(recv)(fd, buffer, count, flags);
    COOPERATIVE_OR_REAL(fd, REAL(recv)(fd, buffer, count, flags))
    io_call_t call = { .kind = IO_RECV, .fd = fd, .buffer = buffer, .count = count, .flags = flags };
    return cooperate(entry, &call);
}

SPROUT_EXPORT ssize_t recvfrom(int fd, void *buffer, size_t count, int flags, struct sockaddr *from, socklen_t *from_length) {
    if (flags & MSG_DONTWAIT) return REAL(recvfrom)(fd, buffer, count, flags, from, from_length);
    COOPERATIVE_OR_REAL(fd, REAL(recvfrom)(fd, buffer, count, flags, from, from_length))
    io_call_t call = { .kind = IO_RECVFROM, .fd = fd, .buffer = buffer, .count = count, .flags = flags,
                       .from = from, .from_length = from_length };
    return cooperate(entry, &call);
}

SPROUT_EXPORT ssize_t recvmsg(int fd, struct msghdr *message, int flags) {
    if ((flags & MSG_DONTWAIT) || !message) return REAL(recvmsg)(fd, message, flags);
    COOPERATIVE_OR_REAL(fd, REAL(recvmsg)(fd, message, flags))
    io_call_t call = { .kind = IO_RECVMSG, .fd = fd, .message = message, .flags = flags };
    return cooperate(entry, &call);
}

SPROUT_EXPORT ssize_t send(int fd, const void *buffer, size_t count, int flags) {
    if (flags & MSG_DONTWAIT) return REAL(send)(fd, buffer, count, flags);
    COOPERATIVE_OR_REAL(fd, REAL(send)(fd, buffer, count, flags))
    io_call_t call = { .kind = IO_SEND, .fd = fd, .buffer = (void *)buffer, .count = count, .flags = flags };
    return cooperate(entry, &call);
}

SPROUT_EXPORT ssize_t sendto(int fd, const void *buffer, size_t count, int flags, const struct sockaddr *to, socklen_t to_length) {
    if (flags & MSG_DONTWAIT) return REAL(sendto)(fd, buffer, count, flags, to, to_length);
    COOPERATIVE_OR_REAL(fd, REAL(sendto)(fd, buffer, count, flags, to, to_length))
    io_call_t call = { .kind = IO_SENDTO, .fd = fd, .buffer = (void *)buffer, .count = count, .flags = flags,
                       .to = to, .to_length = to_length };
    return cooperate(entry, &call);
}

SPROUT_EXPORT ssize_t sendmsg(int fd, const struct msghdr *message, int flags) {
    if ((flags & MSG_DONTWAIT) || !message) return REAL(sendmsg)(fd, message, flags);
    COOPERATIVE_OR_REAL(fd, REAL(sendmsg)(fd, message, flags))
    size_t count = message->msg_iovlen;
    if (count > IOV_MAX) return REAL(sendmsg)(fd, message, flags);   // its EMSGSIZE
    struct iovec small[IOV_COPY_ON_STACK];
    struct iovec *copy = count <= IOV_COPY_ON_STACK ? small : malloc(sizeof *copy * (count ? count : 1));
    if (!copy) { errno = ENOMEM; return -1; }
    if (count) memcpy(copy, message->msg_iov, sizeof *copy * count);
    struct msghdr local = *message;
    local.msg_iov = copy;
    io_call_t call = { .kind = IO_SENDMSG, .fd = fd, .message = &local, .flags = flags };
    ssize_t result = cooperate(entry, &call);
    if (copy != small) { int saved = errno; free(copy); errno = saved; }
    return result;
}
