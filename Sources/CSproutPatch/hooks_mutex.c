// pthread_mutex_lock: the one hazard of cooperative C libraries that can be caught. A library
// that holds its own mutex while doing IO parks the greenlet with the mutex held; a second
// greenlet of the same thread that enters the library would then block the whole thread on
// a mutex only a parked greenlet can release: the hub deadlocks. Here such a lock ends the
// process at once with a message instead of hanging it. The rule that avoids it: one
// connection (one library handle) per greenlet at a time, through a pool.
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "patch_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>

SPROUT_EXPORT int pthread_mutex_lock(pthread_mutex_t *mutex) {
    if (__builtin_expect(!sprout_cooperative(), 1)) return REAL(pthread_mutex_lock)(mutex);
    int rc = REAL(pthread_mutex_trylock)(mutex);
    if (rc != EBUSY) return rc;
    // glibc records the owning thread in __data.__owner; ours means a greenlet of this thread
    // (parked, or this one again) holds it, and waiting would never end.
    // An error-checking mutex says EDEADLK itself; a recursive one never gets here for its owner.
    if ((mutex->__data.__kind & 3) == PTHREAD_MUTEX_ERRORCHECK_NP) return REAL(pthread_mutex_lock)(mutex);
    if (mutex->__data.__owner == (int)syscall(SYS_gettid)) {
        fprintf(stderr, "sprout patch: deadlock: a greenlet would wait for a pthread mutex that is held on its own "
                        "thread, by a greenlet parked inside a patched C call (or by itself). A C library that holds a "
                        "lock while doing IO must be used by one greenlet at a time: give each greenlet its own "
                        "connection, through a pool (see SproutPatch's documentation).\n");
        abort();
    }
    return REAL(pthread_mutex_lock)(mutex);
}
