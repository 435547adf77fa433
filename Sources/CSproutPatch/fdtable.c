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

sprout_fd_entry_t *sprout_fd_entry(int fd) {
    sprout_fd_entry_t *entry = slot(fd);
    if (!entry) return NULL;
    if (__builtin_expect(sprout_fd_state(entry) != SPROUT_FD_UNKNOWN, 1)) return entry;
    struct stat info;
    if (fstat(fd, &info) != 0) return NULL;   // not open: the real call reports EBADF
    uint32_t kind = S_ISSOCK(info.st_mode) ? SPROUT_FD_SOCKET
                  : S_ISFIFO(info.st_mode) ? SPROUT_FD_PIPE : SPROUT_FD_OTHER;
    uint32_t state = kind;
    if (kind != SPROUT_FD_OTHER) {
        int flags = REAL(fcntl)(fd, F_GETFL);
        if (flags >= 0 && (flags & O_NONBLOCK)) state |= SPROUT_FD_OWNER_NONBLOCK;
        if (kind == SPROUT_FD_SOCKET) read_socket_timeouts(fd, entry);
    }
    note_in_use(fd);
    __atomic_store_n(&entry->state, state, __ATOMIC_RELAXED);
    return entry;
}

void sprout_fd_created(int fd, uint32_t kind, int owner_nonblocking) {
    sprout_fd_entry_t *entry = slot(fd);
    if (!entry) return;
    __atomic_store_n(&entry->receive_timeout, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&entry->send_timeout, 0, __ATOMIC_RELAXED);
    uint32_t state = kind | (owner_nonblocking ? SPROUT_FD_OWNER_NONBLOCK : 0);
    // A pipe the hooks saw created is theirs to make non-blocking, at its first cooperative
    // use (not now: one end often goes to a child process, which must find it blocking).
    if (kind == SPROUT_FD_PIPE) state |= SPROUT_FD_CREATED_HERE;
    note_in_use(fd);
    __atomic_store_n(&entry->state, state, __ATOMIC_RELAXED);
}

void sprout_fd_forget(int fd) {
    sprout_fd_entry_t *entry = slot(fd);
    if (!entry) return;
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
    __atomic_store_n(&target->state, sprout_fd_state(source), __ATOMIC_RELAXED);
}

static void set_owner_flag(sprout_fd_entry_t *entry, int nonblocking) {
    uint32_t state = sprout_fd_state(entry);
    uint32_t updated = nonblocking ? (state | SPROUT_FD_OWNER_NONBLOCK) : (state & ~(uint32_t)SPROUT_FD_OWNER_NONBLOCK);
    __atomic_store_n(&entry->state, updated, __ATOMIC_RELAXED);
}

void sprout_fd_set_owner_nonblocking(int fd, int nonblocking) {
    sprout_fd_entry_t *entry = sprout_fd_entry(fd);
    if (!entry) return;
    uint32_t before = sprout_fd_state(entry);
    set_owner_flag(entry, nonblocking);
    if (((before & SPROUT_FD_OWNER_NONBLOCK) != 0) == (nonblocking != 0)) return;
    // O_NONBLOCK belongs to the open file, which dup'ed descriptors share: find them by inode
    // (a flag change is rare, a scan of the descriptors in use is cheap).
    struct stat mine;
    if (fstat(fd, &mine) != 0) return;
    int limit = __atomic_load_n(&high_water, __ATOMIC_RELAXED);
    for (int other = 0; other <= limit; other++) {
        if (other == fd || sprout_fd_state(&table[other]) == SPROUT_FD_UNKNOWN) continue;
        struct stat theirs;
        if (fstat(other, &theirs) == 0 && theirs.st_ino == mine.st_ino && theirs.st_dev == mine.st_dev)
            set_owner_flag(&table[other], nonblocking);
    }
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
