// Finding the real functions, and the switches: enable, attach, suspend.
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "patch_internal.h"

#include <dlfcn.h>
#include <sys/syscall.h>
#include <stdlib.h>
#include <string.h>

sprout_real_functions_t sprout_real;
int sprout_patch_on;
const sprout_patch_runtime_t *sprout_patch_rt;
__thread int sprout_patch_suspended;

// A sanitizer's interceptor of `name`, if the process has one: sanitizers define libc's names
// as weak aliases of these, which the hooks' strong definitions replace, so the hooks call
// them to keep the sanitizer's view (ASan's buffer checks, TSan's descriptor syncs).
//
// Not in the LD_PRELOAD build (scripts/build-patch-preload defines SPROUT_PATCH_PRELOAD): there
// a sanitizer's interceptors find *these* hooks as their "real" functions (RTLD_NEXT from the
// program is the preloaded library), and calling back into them would never end.
#ifdef SPROUT_PATCH_PRELOAD
#define SANITIZER_INTERCEPTOR(ret, name, ...) static ret (*const __interceptor_##name)(__VA_ARGS__) = 0;
#else
#define SANITIZER_INTERCEPTOR(ret, name, ...) extern ret __interceptor_##name(__VA_ARGS__) __attribute__((weak));
#endif
SANITIZER_INTERCEPTOR(int, socket, int, int, int)
SANITIZER_INTERCEPTOR(int, socketpair, int, int, int, int[2])
SANITIZER_INTERCEPTOR(int, pipe, int[2])
SANITIZER_INTERCEPTOR(int, pipe2, int[2], int)
SANITIZER_INTERCEPTOR(int, connect, int, const struct sockaddr *, socklen_t)
SANITIZER_INTERCEPTOR(int, accept, int, struct sockaddr *, socklen_t *)
SANITIZER_INTERCEPTOR(int, accept4, int, struct sockaddr *, socklen_t *, int)
SANITIZER_INTERCEPTOR(ssize_t, read, int, void *, size_t)
SANITIZER_INTERCEPTOR(ssize_t, write, int, const void *, size_t)
SANITIZER_INTERCEPTOR(ssize_t, readv, int, const struct iovec *, int)
SANITIZER_INTERCEPTOR(ssize_t, writev, int, const struct iovec *, int)
SANITIZER_INTERCEPTOR(ssize_t, recv, int, void *, size_t, int)
SANITIZER_INTERCEPTOR(ssize_t, recvfrom, int, void *, size_t, int, struct sockaddr *, socklen_t *)
SANITIZER_INTERCEPTOR(ssize_t, recvmsg, int, struct msghdr *, int)
SANITIZER_INTERCEPTOR(ssize_t, send, int, const void *, size_t, int)
SANITIZER_INTERCEPTOR(ssize_t, sendto, int, const void *, size_t, int, const struct sockaddr *, socklen_t)
SANITIZER_INTERCEPTOR(ssize_t, sendmsg, int, const struct msghdr *, int)
SANITIZER_INTERCEPTOR(int, poll, struct pollfd *, nfds_t, int)
SANITIZER_INTERCEPTOR(int, ppoll, struct pollfd *, nfds_t, const struct timespec *, const sigset_t *)
SANITIZER_INTERCEPTOR(int, select, int, fd_set *, fd_set *, fd_set *, struct timeval *)
SANITIZER_INTERCEPTOR(int, close, int)
SANITIZER_INTERCEPTOR(int, dup, int)
SANITIZER_INTERCEPTOR(int, dup2, int, int)
SANITIZER_INTERCEPTOR(int, dup3, int, int, int)
SANITIZER_INTERCEPTOR(int, fcntl, int, int, ...)
SANITIZER_INTERCEPTOR(int, ioctl, int, unsigned long, ...)
SANITIZER_INTERCEPTOR(int, setsockopt, int, int, int, const void *, socklen_t)
SANITIZER_INTERCEPTOR(unsigned int, sleep, unsigned int)
SANITIZER_INTERCEPTOR(int, usleep, useconds_t)
SANITIZER_INTERCEPTOR(int, nanosleep, const struct timespec *, struct timespec *)
SANITIZER_INTERCEPTOR(int, clock_nanosleep, clockid_t, int, const struct timespec *, struct timespec *)
SANITIZER_INTERCEPTOR(int, getaddrinfo, const char *, const char *, const struct addrinfo *, struct addrinfo **)
SANITIZER_INTERCEPTOR(struct hostent *, gethostbyname, const char *)
SANITIZER_INTERCEPTOR(int, gethostbyname_r, const char *, struct hostent *, char *, size_t, struct hostent **, int *)
SANITIZER_INTERCEPTOR(int, pthread_mutex_lock, pthread_mutex_t *)
SANITIZER_INTERCEPTOR(int, pthread_mutex_trylock, pthread_mutex_t *)
SANITIZER_INTERCEPTOR(int, fclose, FILE *)

static void fail_resolving(const char *name) {
    // No stdio here: it may be what is being resolved.
    static const char prefix[] = "sprout patch: cannot find the real libc function ";
    static const char suffix[] = " (is libc linked statically? interposition needs the dynamic libc)\n";
    syscall(SYS_write, 2, prefix, sizeof prefix - 1);
    syscall(SYS_write, 2, name, strlen(name));
    syscall(SYS_write, 2, suffix, sizeof suffix - 1);
    abort();
}

static void *find_real(const char *name, void *interceptor) {
    if (interceptor) return interceptor;
    void *found = dlsym(RTLD_NEXT, name);
    if (!found) fail_resolving(name);
    return found;
}

static pthread_once_t resolve_once = PTHREAD_ONCE_INIT;

#define RESOLVE(name) \
    __atomic_store_n((void **)&sprout_real.name, find_real(#name, (void *)__interceptor_##name), __ATOMIC_RELEASE)

static void resolve_all(void) {
    RESOLVE(socket); RESOLVE(socketpair); RESOLVE(pipe); RESOLVE(pipe2);
    RESOLVE(connect); RESOLVE(accept); RESOLVE(accept4);
    RESOLVE(read); RESOLVE(write); RESOLVE(readv); RESOLVE(writev);
    RESOLVE(recv); RESOLVE(recvfrom); RESOLVE(recvmsg);
    RESOLVE(send); RESOLVE(sendto); RESOLVE(sendmsg);
    RESOLVE(poll); RESOLVE(ppoll); RESOLVE(select);
    RESOLVE(close); RESOLVE(dup); RESOLVE(dup2); RESOLVE(dup3);
    RESOLVE(fcntl); RESOLVE(ioctl); RESOLVE(setsockopt);
    RESOLVE(sleep); RESOLVE(usleep); RESOLVE(nanosleep); RESOLVE(clock_nanosleep);
    RESOLVE(getaddrinfo); RESOLVE(gethostbyname); RESOLVE(gethostbyname_r);
    RESOLVE(pthread_mutex_lock); RESOLVE(pthread_mutex_trylock);
    RESOLVE(fclose);
}

void sprout_real_resolve(void) { pthread_once(&resolve_once, resolve_all); }

// Early, so that hooks called while other libraries initialise find the real functions
// without going through pthread_once.
__attribute__((constructor(101))) static void resolve_at_load(void) {
    sprout_real_resolve();
    // Loaded with LD_PRELOAD: the user asked for patching without calling patchAll().
    const char *preload = getenv("LD_PRELOAD");
    if (preload && strstr(preload, "libSproutPatch")) sprout_patch_enable();
}

SPROUT_EXPORT void sprout_patch_attach(const sprout_patch_runtime_t *runtime) {
    const sprout_patch_runtime_t *expected = NULL;
    __atomic_compare_exchange_n(&sprout_patch_rt, &expected, runtime, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

SPROUT_EXPORT int sprout_patch_enable(void) {
    sprout_real_resolve();
    return __atomic_exchange_n(&sprout_patch_on, 1, __ATOMIC_ACQ_REL) == 0;
}

SPROUT_EXPORT int sprout_patch_enabled(void) { return __atomic_load_n(&sprout_patch_on, __ATOMIC_ACQUIRE); }

SPROUT_EXPORT int sprout_patch_runtime_attached(void) { return __atomic_load_n(&sprout_patch_rt, __ATOMIC_ACQUIRE) != NULL; }

SPROUT_EXPORT int sprout_patch_suspend_on_this_thread(int depth_change) {
    sprout_patch_suspended += depth_change;
    if (sprout_patch_suspended < 0) sprout_patch_suspended = 0;
    return sprout_patch_suspended;
}

SPROUT_EXPORT int sprout_patch_real_poll(struct pollfd *fds, nfds_t count, int timeout) {
    return REAL(poll)(fds, count, timeout);
}

uint64_t sprout_patch_now(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
}

uint64_t sprout_patch_deadline_after(int64_t nanos) {
    if (nanos <= 0) return UINT64_MAX;
    uint64_t now = sprout_patch_now();
    return now > UINT64_MAX - (uint64_t)nanos ? UINT64_MAX : now + (uint64_t)nanos;
}

int sprout_patch_wait(int fd, short events, uint64_t deadline, int after_eagain) {
    return sprout_patch_rt->wait_fd(fd, events, deadline, after_eagain, sprout_fd_generation(fd));
}
