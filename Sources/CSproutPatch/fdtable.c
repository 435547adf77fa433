// The descriptor table: what each descriptor is (socket, pipe, other), whether its owner made
// it non-blocking, and its socket timeouts. Entries are classified lazily, once, by fstat, so
// that descriptors created anywhere (before patching, by unhooked calls, inherited) count,
// and reset when the descriptor is closed through a hook.
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "patch_internal.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>

static sprout_fd_entry_t *table;
static int table_size;
static pthread_once_t table_once = PTHREAD_ONCE_INIT;
/// The highest descriptor ever recorded: scans of the table stop there.
static int high_water;

static void note_in_use(int fd) {
    int seen = __atomic_load_n(&high_water, __ATOMIC_RELAXED);
    while (fd > seen && !__atomic_compare_exchange_n(&high_water, &seen, fd, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {}
}

#define MAX_TABLE_SIZE (1 << 22)

static void table_create(void) {
    struct rlimit limit;
    rlim_t wanted = 65536;
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
        // The hard limit: the soft one may be raised later (Sprout's FileLimit does).
        wanted = limit.rlim_max == RLIM_INFINITY ? MAX_TABLE_SIZE : limit.rlim_max;
        if (wanted < limit.rlim_cur) wanted = limit.rlim_cur;
    }
    if (wanted > MAX_TABLE_SIZE) wanted = MAX_TABLE_SIZE;
    if (wanted < 1024) wanted = 1024;
    // Untouched pages cost nothing: only entries of descriptors in use are ever written.
    void *memory = mmap(NULL, (size_t)wanted * sizeof(sprout_fd_entry_t), PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (memory == MAP_FAILED) return;   // table_size stays 0: every call is the real one
    table = memory;
    __atomic_store_n(&table_size, (int)wanted, __ATOMIC_RELEASE);
}

static inline sprout_fd_entry_t *slot(int fd) {
    if (__builtin_expect(table == NULL, 0)) pthread_once(&table_once, table_create);
    if (fd < 0 || fd >= __atomic_load_n(&table_size, __ATOMIC_ACQUIRE)) return NULL;
    return &table[fd];
}

static int64_t timeval_nanos(const struct timeval *value) {
    return (int64_t)value->tv_sec * 1000000000ll + (int64_t)value->tv_usec * 1000ll;
}

static void read_socket_timeouts(int fd, sprout_fd_entry_t *entry) {
    struct timeval value;
    socklen_t length = sizeof value;
    if (getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &value, &length) == 0)
        __atomic_store_n(&entry->receive_timeout, timeval_nanos(&value), __ATOMIC_RELAXED);
    length = sizeof value;
    if (getsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &value, &length) == 0)
        __atomic_store_n(&entry->send_timeout, timeval_nanos(&value), __ATOMIC_RELAXED);
}

static int is_stream(int fd) {
    int type = 0;
    socklen_t length = sizeof type;
    return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) == 0 && (type == SOCK_STREAM || type == SOCK_SEQPACKET);
}

uint32_t sprout_fd_generation(int fd) {
    sprout_fd_entry_t *entry = slot(fd);
    return entry ? __atomic_load_n(&entry->generation, __ATOMIC_RELAXED) : 0;
}

sprout_fd_entry_t *sprout_fd_entry(int fd) {
    sprout_fd_entry_t *entry = slot(fd);
    if (!entry) return NULL;
    if (__builtin_expect(sprout_fd_state(entry) != SPROUT_FD_UNKNOWN, 1)) return entry;
    struct stat info;
    if (fstat(fd, &info) != 0) return NULL;   // not open: the real call reports EBADF
    uint32_t kind = S_ISSOCK(info.st_mode) ? SPROUT_FD_SOCKET
                  : S_ISFIFO(info.st_mode) ? SPROUT_FD_PIPE : SPROUT_FD_OTHER;
    // Of unknown origin: it may share its open file with another descriptor (inherited, dup'ed
    // by a call no hook saw).
    uint32_t state = kind | SPROUT_FD_MAY_SHARE;
    if (kind != SPROUT_FD_OTHER) {
        int flags = REAL(fcntl)(fd, F_GETFL);
        if (flags >= 0 && (flags & O_NONBLOCK)) state |= SPROUT_FD_OWNER_NONBLOCK;
        if (kind == SPROUT_FD_SOCKET) {
            read_socket_timeouts(fd, entry);
            if (is_stream(fd)) state |= SPROUT_FD_STREAM;
        }
    }
    note_in_use(fd);
    __atomic_fetch_add(&entry->generation, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&entry->state, state, __ATOMIC_RELAXED);
    return entry;
}

void sprout_fd_created(int fd, uint32_t kind, int owner_nonblocking) {
    sprout_fd_entry_t *entry = slot(fd);
    if (!entry) return;
    __atomic_store_n(&entry->receive_timeout, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&entry->send_timeout, 0, __ATOMIC_RELAXED);
    uint32_t state = kind | (owner_nonblocking ? SPROUT_FD_OWNER_NONBLOCK : 0);
    if (kind == SPROUT_FD_SOCKET && is_stream(fd)) state |= SPROUT_FD_STREAM;
    // A pipe the hooks saw created is theirs to make non-blocking, at its first cooperative
    // use (not now: one end often goes to a child process, which must find it blocking).
    if (kind == SPROUT_FD_PIPE) state |= SPROUT_FD_CREATED_HERE;
    note_in_use(fd);
    __atomic_fetch_add(&entry->generation, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&entry->state, state, __ATOMIC_RELAXED);
}

void sprout_fd_forget(int fd) {
    sprout_fd_entry_t *entry = slot(fd);
    if (!entry) return;
    __atomic_fetch_add(&entry->generation, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&entry->state, SPROUT_FD_UNKNOWN, __ATOMIC_RELAXED);
    __atomic_store_n(&entry->receive_timeout, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&entry->send_timeout, 0, __ATOMIC_RELAXED);
}

void sprout_fd_copy(int fd, int from) {
    sprout_fd_entry_t *target = slot(fd);
    sprout_fd_entry_t *source = sprout_fd_entry(from);
    if (!target) return;
    if (!source) { sprout_fd_forget(fd); return; }
    __atomic_store_n(&target->receive_timeout, __atomic_load_n(&source->receive_timeout, __ATOMIC_RELAXED), __ATOMIC_RELAXED);
    __atomic_store_n(&target->send_timeout, __atomic_load_n(&source->send_timeout, __ATOMIC_RELAXED), __ATOMIC_RELAXED);
    note_in_use(fd);
    __atomic_fetch_add(&target->generation, 1, __ATOMIC_RELAXED);
    // Both now share one open file.
    sprout_fd_set_bits(source, SPROUT_FD_MAY_SHARE);
    __atomic_store_n(&target->state, sprout_fd_state(source) | SPROUT_FD_MAY_SHARE, __ATOMIC_RELAXED);
}

/// True if `a` and `b` are one open file: kcmp where the kernel allows it, else the same
/// inode and the same status flags (the ends of a pipe share an inode, not an open file).
static int same_open_file(int a, const struct stat *a_info, int b) {
    long rc = syscall(SYS_kcmp, (long)getpid(), (long)getpid(), 0 /* KCMP_FILE */, (long)a, (long)b);
    if (rc >= 0) return rc == 0;
    struct stat b_info;
    if (fstat(b, &b_info) != 0 || b_info.st_ino != a_info->st_ino || b_info.st_dev != a_info->st_dev) return 0;
    int a_flags = REAL(fcntl)(a, F_GETFL), b_flags = REAL(fcntl)(b, F_GETFL);
    return a_flags >= 0 && a_flags == b_flags;
}

void sprout_fd_propagate(int fd, uint32_t bits, int set) {
    sprout_fd_entry_t *entry = slot(fd);
    if (!entry || !(sprout_fd_state(entry) & SPROUT_FD_MAY_SHARE)) return;
    struct stat mine;
    if (fstat(fd, &mine) != 0) return;
    int limit = __atomic_load_n(&high_water, __ATOMIC_RELAXED);
    for (int other = 0; other <= limit; other++) {
        uint32_t state = sprout_fd_state(&table[other]);
        if (other == fd || state == SPROUT_FD_UNKNOWN || !(state & SPROUT_FD_MAY_SHARE)) continue;
        if (!same_open_file(fd, &mine, other)) continue;
        if (set) sprout_fd_set_bits(&table[other], bits); else sprout_fd_clear_bits(&table[other], bits);
    }
}

void sprout_fd_set_owner_nonblocking(int fd, int nonblocking) {
    sprout_fd_entry_t *entry = sprout_fd_entry(fd);
    if (!entry) return;
    uint32_t before = sprout_fd_state(entry);
    if (nonblocking) sprout_fd_set_bits(entry, SPROUT_FD_OWNER_NONBLOCK);
    else sprout_fd_clear_bits(entry, SPROUT_FD_OWNER_NONBLOCK);
    if (((before & SPROUT_FD_OWNER_NONBLOCK) != 0) == (nonblocking != 0)) return;
    // O_NONBLOCK belongs to the open file, which dup'ed descriptors share.
    sprout_fd_propagate(fd, SPROUT_FD_OWNER_NONBLOCK, nonblocking);
}

SPROUT_EXPORT int sprout_patch_descriptor_kind(int fd) {
    sprout_fd_entry_t *entry = slot(fd);
    if (!entry) return -1;
    return (int)(sprout_fd_state(entry) & 0xff);
}

SPROUT_EXPORT int sprout_patch_descriptor_owner_nonblocking(int fd) {
    sprout_fd_entry_t *entry = slot(fd);
    return entry && (sprout_fd_state(entry) & SPROUT_FD_OWNER_NONBLOCK) ? 1 : 0;
}

SPROUT_EXPORT int sprout_patch_descriptor_table_size(void) {
    (void)slot(0);
    return __atomic_load_n(&table_size, __ATOMIC_ACQUIRE);
}
