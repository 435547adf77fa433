// What a forked child must not inherit from its parent's hubs, and the process calls that the
// worker supervisor needs (fork, parent-death signal, memory shared with the workers).

#include "CSproutSystem.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <sched.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

void sprout_signal_forget_after_fork(void);   // poll.c

// The hubs' own descriptors (epoll instances, eventfds, signal pipes), so that a forked child
// can close its copies: the epoll instance and the eventfd are the parent's objects, and a
// child that waited on them would see the parent's events. A slot holds fd + 1; 0 is free.
#define TRACKED_MAX 4096
static atomic_int tracked[TRACKED_MAX];
static atomic_ullong generation;
static pthread_once_t install_once = PTHREAD_ONCE_INIT;

static void close_inherited_in_child(void) {
    atomic_fetch_add(&generation, 1);
    sprout_signal_forget_after_fork();
    for (int i = 0; i < TRACKED_MAX; i++) {
        int value = atomic_exchange(&tracked[i], 0);
        if (value > 0) close(value - 1);
    }
}

static void install(void) { pthread_atfork(NULL, NULL, close_inherited_in_child); }

void sprout_hub_descriptor_track(int fd) {
    pthread_once(&install_once, install);
    if (fd < 0) return;
    for (int i = 0; i < TRACKED_MAX; i++) {
        int expected = 0;
        if (atomic_compare_exchange_strong(&tracked[i], &expected, fd + 1)) return;
    }
    // Full (thousands of live hubs): the child merely keeps this descriptor open.
}

void sprout_hub_descriptor_untrack(int fd) {
    for (int i = 0; i < TRACKED_MAX; i++) {
        int expected = fd + 1;
        if (atomic_compare_exchange_strong(&tracked[i], &expected, 0)) return;
    }
}

uint64_t sprout_fork_generation(void) {
    pthread_once(&install_once, install);
    return atomic_load(&generation);
}

pid_t sprout_fork(void) {
    pthread_once(&install_once, install);
    return fork();
}

struct child_start {
    int (*body)(void *);
    void *arg;
};

static void *child_thread(void *start) {
    struct child_start *s = start;
    int status = s->body(s->arg);
    fflush(NULL);
    return (void *)(intptr_t)status;
}

// In the child, the forking thread keeps thread-local state of the parent's thread that
// nothing resets: the Swift runtime's futex locks cache the thread id (ulock_get_tid), so on
// that thread they would record the parent's id as their owner, and a second thread
// contending for one would spin for ever. The child's Swift code therefore runs on a thread
// of its own, whose thread-locals start empty; the forking thread only waits for it.
pid_t sprout_fork_running(int (*body)(void *), void *arg, size_t stack_size, int parent_death_signal) {
    pid_t parent = getpid();
    // What the parent buffered in stdio would be written twice, once by each process.
    fflush(NULL);
    // No signal handler may run in the child before the atfork handler has dropped the
    // relays: it would write into the parent's signal pipe, as if the parent had the signal.
    sigset_t all, previous;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &previous);
    pid_t pid = sprout_fork();
    int error = errno;
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
    if (pid != 0) {
        errno = error;
        return pid;
    }
    if (parent_death_signal) {
        // Asked of the child's first thread: the kernel signals the task its parent forked.
        prctl(PR_SET_PDEATHSIG, (unsigned long)parent_death_signal, 0, 0, 0);
        if (getppid() != parent) _exit(0);   // the parent died before the line above
    }
    struct child_start start = { body, arg };
    pthread_attr_t attributes;
    pthread_attr_init(&attributes);
    pthread_attr_setstacksize(&attributes, stack_size);
    pthread_t thread;
    if (pthread_create(&thread, &attributes, child_thread, &start) != 0) _exit(127);
    void *status = NULL;
    pthread_join(thread, &status);
    _exit((int)(intptr_t)status);
}


void *sprout_shared_memory(size_t bytes) {
    void *memory = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    return memory == MAP_FAILED ? NULL : memory;
}

void sprout_shared_memory_release(void *memory, size_t bytes) { munmap(memory, bytes); }

void sprout_shared_store(uint64_t *slot, uint64_t value) {
    __atomic_store_n(slot, value, __ATOMIC_RELEASE);
}

uint64_t sprout_shared_load(const uint64_t *slot) { return __atomic_load_n(slot, __ATOMIC_ACQUIRE); }

int sprout_shared_compare_exchange(uint64_t *slot, uint64_t expected, uint64_t desired) {
    return __atomic_compare_exchange_n(slot, &expected, desired, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

int sprout_wait_child(pid_t pid, int *status) {
    for (;;) {
        pid_t rc = waitpid(pid, status, WNOHANG);
        if (rc >= 0) return (int)rc;
        if (errno != EINTR) return -1;
    }
}

int sprout_exit_code(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : -1; }
int sprout_exit_signal(int status) { return WIFSIGNALED(status) ? WTERMSIG(status) : 0; }

int sprout_usable_cpu_count(void) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0) return -1;
    return CPU_COUNT(&set);
}
