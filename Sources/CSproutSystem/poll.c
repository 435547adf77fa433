// epoll_wait with a nanosecond timeout, and the process-wide signal relay.

#include "CSproutSystem.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static atomic_int pwait2_missing;

int sprout_epoll_wait_ns(int epfd, struct epoll_event *events, int max, int64_t timeout_ns) {
    if (timeout_ns < 0) return epoll_wait(epfd, events, max, -1);
    if (timeout_ns == 0) return epoll_wait(epfd, events, max, 0);
    if (!atomic_load_explicit(&pwait2_missing, memory_order_relaxed)) {
        struct timespec ts = { .tv_sec = timeout_ns / 1000000000, .tv_nsec = timeout_ns % 1000000000 };
        int n = (int)syscall(SYS_epoll_pwait2, epfd, events, max, &ts, NULL, 0);
        if (n >= 0 || errno != ENOSYS) return n;
        atomic_store_explicit(&pwait2_missing, 1, memory_order_relaxed);
    }
    int64_t ms = (timeout_ns + 999999) / 1000000;   // round up: never wake before the deadline
    if (ms > 0x7fffffff) ms = 0x7fffffff;
    return epoll_wait(epfd, events, max, (int)ms);
}

// Signals: one handler per signal number relays the signal to every hub that watches it by
// writing the signal number into that hub's non-blocking pipe (async-signal-safe), whichever
// thread the kernel delivered it to.
#define MAX_SIGNAL 65
#define MAX_WATCHERS 32
static atomic_int watcher_fds[MAX_SIGNAL][MAX_WATCHERS];
static atomic_int watcher_init;

static void relay(int signo) {
    int saved = errno;
    unsigned char byte = (unsigned char)signo;
    for (int i = 0; i < MAX_WATCHERS; i++) {
        int fd = atomic_load(&watcher_fds[signo][i]);
        if (fd > 0) { ssize_t ignored = write(fd, &byte, 1); (void)ignored; }
    }
    errno = saved;
}

static struct sigaction previous_actions[MAX_SIGNAL];
static atomic_int watcher_counts[MAX_SIGNAL];

int sprout_signal_watch(int signo, int fd) {
    if (signo <= 0 || signo >= MAX_SIGNAL || signo == SIGKILL || signo == SIGSTOP) return EINVAL;
    for (int i = 0; i < MAX_WATCHERS; i++) {
        if (atomic_load(&watcher_fds[signo][i]) == fd) return 0;   // already relayed there
    }
    for (int i = 0; i < MAX_WATCHERS; i++) {
        int expected = 0;
        if (atomic_compare_exchange_strong(&watcher_fds[signo][i], &expected, fd)) {
            if (atomic_fetch_add(&watcher_counts[signo], 1) == 0) {
                struct sigaction sa;
                memset(&sa, 0, sizeof sa);
                sa.sa_handler = relay;
                sa.sa_flags = SA_RESTART;
                sigemptyset(&sa.sa_mask);
                if (sigaction(signo, &sa, &previous_actions[signo]) != 0) {
                    int error = errno;
                    atomic_fetch_sub(&watcher_counts[signo], 1);
                    atomic_store(&watcher_fds[signo][i], 0);
                    return error;
                }
            }
            return 0;
        }
    }
    return ENOSPC;
}

void sprout_signal_unwatch(int signo, int fd) {
    if (signo <= 0 || signo >= MAX_SIGNAL) return;
    for (int i = 0; i < MAX_WATCHERS; i++) {
        int expected = fd;
        if (atomic_compare_exchange_strong(&watcher_fds[signo][i], &expected, 0)) {
            // The last watcher gone: give the signal back to whoever handled it before.
            if (atomic_fetch_sub(&watcher_counts[signo], 1) == 1) {
                sigaction(signo, &previous_actions[signo], NULL);
            }
        }
    }
}

// In a forked child (from fork.c's atfork handler): the relay pipes belong to the parent's
// hubs, so every relay is dropped and each signal gets back the action it had before Sprout
// watched it. Async-signal-safe, as a child of a multi-threaded parent requires.
void sprout_signal_forget_after_fork(void) {
    for (int signo = 1; signo < MAX_SIGNAL; signo++) {
        if (atomic_load(&watcher_counts[signo]) == 0) continue;
        for (int i = 0; i < MAX_WATCHERS; i++) atomic_store(&watcher_fds[signo][i], 0);
        atomic_store(&watcher_counts[signo], 0);
        sigaction(signo, &previous_actions[signo], NULL);
    }
}
