// Shared by the hook files: the real libc functions, the descriptor table and the test of
// whether a call may take the cooperative path.
#ifndef SPROUT_PATCH_INTERNAL_H
#define SPROUT_PATCH_INTERNAL_H

#include "CSproutPatch.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdint.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define SPROUT_EXPORT __attribute__((visibility("default")))

// MARK: - The real functions

/// Pointers to the functions the hooks stand in for, resolved once (a constructor, or the
/// first hook that runs before it). Under a sanitizer they point at its interceptors, so that
/// AddressSanitizer still checks buffers and ThreadSanitizer still sees descriptor syncs.
typedef struct sprout_real_functions {
    int (*socket)(int, int, int);
    int (*socketpair)(int, int, int, int[2]);
    int (*pipe)(int[2]);
    int (*pipe2)(int[2], int);
    int (*connect)(int, const struct sockaddr *, socklen_t);
    int (*accept)(int, struct sockaddr *, socklen_t *);
    int (*accept4)(int, struct sockaddr *, socklen_t *, int);
    ssize_t (*read)(int, void *, size_t);
    ssize_t (*write)(int, const void *, size_t);
    ssize_t (*readv)(int, const struct iovec *, int);
    ssize_t (*writev)(int, const struct iovec *, int);
    ssize_t (*recv)(int, void *, size_t, int);
    ssize_t (*recvfrom)(int, void *, size_t, int, struct sockaddr *, socklen_t *);
    ssize_t (*recvmsg)(int, struct msghdr *, int);
    ssize_t (*send)(int, const void *, size_t, int);
    ssize_t (*sendto)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
    ssize_t (*sendmsg)(int, const struct msghdr *, int);
    int (*poll)(struct pollfd *, nfds_t, int);
    int (*ppoll)(struct pollfd *, nfds_t, const struct timespec *, const sigset_t *);
    int (*select)(int, fd_set *, fd_set *, fd_set *, struct timeval *);
    int (*close)(int);
    int (*dup)(int);
    int (*dup2)(int, int);
    int (*dup3)(int, int, int);
    int (*fcntl)(int, int, ...);
    int (*ioctl)(int, unsigned long, ...);
    int (*setsockopt)(int, int, int, const void *, socklen_t);
    unsigned int (*sleep)(unsigned int);
    int (*usleep)(useconds_t);
    int (*nanosleep)(const struct timespec *, struct timespec *);
    int (*clock_nanosleep)(clockid_t, int, const struct timespec *, struct timespec *);
    int (*getaddrinfo)(const char *, const char *, const struct addrinfo *, struct addrinfo **);
    struct hostent *(*gethostbyname)(const char *);
    int (*gethostbyname_r)(const char *, struct hostent *, char *, size_t, struct hostent **, int *);
    int (*pthread_mutex_lock)(pthread_mutex_t *);
    int (*pthread_mutex_trylock)(pthread_mutex_t *);
    int (*fclose)(FILE *);
} sprout_real_functions_t;

extern sprout_real_functions_t sprout_real;
/// Resolves `sprout_real` (idempotent, thread-safe).
void sprout_real_resolve(void);
#define REAL(name) (__builtin_expect(sprout_real.name != NULL, 1) ? sprout_real.name : (sprout_real_resolve(), sprout_real.name))

// MARK: - Whether to cooperate

extern int sprout_patch_on;                          // read relaxed
extern const sprout_patch_runtime_t *sprout_patch_rt; // set once, before patching can matter
extern __thread int sprout_patch_suspended;

/// True when the calling code may park: patching on, a runtime attached, not suspended here,
/// and running in a greenlet.
static inline int sprout_cooperative(void) {
    if (__builtin_expect(!__atomic_load_n(&sprout_patch_on, __ATOMIC_RELAXED), 1)) return 0;
    const sprout_patch_runtime_t *rt = __atomic_load_n(&sprout_patch_rt, __ATOMIC_ACQUIRE);
    if (!rt || sprout_patch_suspended) return 0;
    return rt->in_greenlet();
}

// MARK: - Descriptors

enum {
    SPROUT_FD_UNKNOWN = 0,
    SPROUT_FD_SOCKET = 1,
    SPROUT_FD_PIPE = 2,
    SPROUT_FD_OTHER = 3,
};
enum {
    /// The owner asked for O_NONBLOCK (fcntl, ioctl FIONBIO, SOCK_NONBLOCK, O_NONBLOCK on pipe2).
    SPROUT_FD_OWNER_NONBLOCK = 1u << 8,
    /// The hooks set O_NONBLOCK on the open file themselves (pipes they created) and hide it.
    SPROUT_FD_KERNEL_NONBLOCK_OURS = 1u << 9,
    /// Created by a hooked call in this process (pipe, pipe2): the hooks may switch it.
    SPROUT_FD_CREATED_HERE = 1u << 10,
    /// A stream socket (SOCK_STREAM or SOCK_SEQPACKET): writes and MSG_WAITALL move everything.
    SPROUT_FD_STREAM = 1u << 11,
    /// Its open file may be shared with another descriptor (dup'ed, or of unknown origin): an
    /// O_NONBLOCK change must be looked for on the others.
    SPROUT_FD_MAY_SHARE = 1u << 12,
};

typedef struct sprout_fd_entry {
    uint32_t state;           ///< kind | flags, atomically
    uint32_t generation;      ///< bumped whenever the number changes hands (epoll registrations check it)
    int64_t receive_timeout;  ///< SO_RCVTIMEO in ns, 0 none
    int64_t send_timeout;     ///< SO_SNDTIMEO in ns, 0 none
} sprout_fd_entry_t;

/// The entry of `fd`, classifying it (fstat, fcntl, getsockopt: once) if it is new; NULL if
/// `fd` is negative or beyond the table.
sprout_fd_entry_t *sprout_fd_entry(int fd);
/// The entry's kind and flags.
static inline uint32_t sprout_fd_state(const sprout_fd_entry_t *entry) {
    return __atomic_load_n(&entry->state, __ATOMIC_RELAXED);
}
/// Records what a creating call (socket, accept4, pipe2…) knows of a new descriptor.
void sprout_fd_created(int fd, uint32_t kind, int owner_nonblocking);
/// Forgets `fd` (it is being closed, or replaced by dup2).
void sprout_fd_forget(int fd);
/// Records the owner's O_NONBLOCK choice for `fd` (and every descriptor sharing its open file).
void sprout_fd_set_owner_nonblocking(int fd, int nonblocking);
/// Makes `fd` share `from`'s record (dup).
void sprout_fd_copy(int fd, int from);

/// The descriptor's entry if IO on it should take the cooperative path now, else NULL.
static inline sprout_fd_entry_t *sprout_cooperative_fd(int fd) {
    if (!sprout_cooperative()) return NULL;
    sprout_fd_entry_t *entry = sprout_fd_entry(fd);
    if (!entry) return NULL;
    uint32_t state = sprout_fd_state(entry);
    uint32_t kind = state & 0xff;
    if ((kind != SPROUT_FD_SOCKET && kind != SPROUT_FD_PIPE) || (state & SPROUT_FD_OWNER_NONBLOCK)) return NULL;
    return entry;
}

// MARK: - Time

uint64_t sprout_patch_now(void);
/// `now + nanos` saturating; UINT64_MAX for a negative or zero timeout meaning "none".
uint64_t sprout_patch_deadline_after(int64_t nanos);

/// Parks until `fd` is ready for `events` or `deadline`: 1 ready, 0 deadline, -1 interrupted.
/// `after_eagain`: the caller just saw EAGAIN (else readiness is checked before parking).
int sprout_patch_wait(int fd, short events, uint64_t deadline, int after_eagain);

/// The generation of `fd`'s entry (0 beyond the table).
uint32_t sprout_fd_generation(int fd);

/// Atomically sets / clears flag bits of an entry.
static inline void sprout_fd_set_bits(sprout_fd_entry_t *entry, uint32_t bits) { __atomic_fetch_or(&entry->state, bits, __ATOMIC_RELAXED); }
static inline void sprout_fd_clear_bits(sprout_fd_entry_t *entry, uint32_t bits) { __atomic_fetch_and(&entry->state, ~bits, __ATOMIC_RELAXED); }

/// Marks `bits` on every other descriptor that shares `fd`'s open file (if it may share one).
void sprout_fd_propagate(int fd, uint32_t bits, int set);

#endif
