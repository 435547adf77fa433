// sleep, usleep, nanosleep, clock_nanosleep: from a greenlet they park it for the time asked
// and the hub runs the others. A kill or an expired withTimeout ends the sleep early, as a
// signal would: the call reports EINTR (ETIMEDOUT, ECANCELED: see CSproutPatch.h) and the
// time left.
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "patch_internal.h"

/// A timespec in nanoseconds, saturating (a sleep of LONG_MAX seconds is for ever, not a wrap).
static uint64_t timespec_nanos(const struct timespec *value) {
    if ((uint64_t)value->tv_sec >= UINT64_MAX / 1000000000ull - 1) return UINT64_MAX - 1;
    return (uint64_t)value->tv_sec * 1000000000ull + (uint64_t)value->tv_nsec;
}

/// Parks for `nanos`; 0, or -1 with errno and the nanoseconds left in `left`.
static int park_for(uint64_t nanos, uint64_t *left) {
    uint64_t start = sprout_patch_now();
    uint64_t deadline = start > UINT64_MAX - nanos ? UINT64_MAX - 1 : start + nanos;
    if (sprout_patch_rt->sleep_until(deadline) >= 0) return 0;
    uint64_t now = sprout_patch_now();
    if (left) *left = deadline > now ? deadline - now : 0;
    return -1;
}

SPROUT_EXPORT unsigned int sleep(unsigned int seconds) {
    if (!sprout_cooperative()) return REAL(sleep)(seconds);
    uint64_t left = 0;
    if (park_for((uint64_t)seconds * 1000000000ull, &left) == 0) return 0;
    return (unsigned int)((left + 999999999ull) / 1000000000ull);
}

SPROUT_EXPORT int usleep(useconds_t microseconds) {
    if (!sprout_cooperative()) return REAL(usleep)(microseconds);
    return park_for((uint64_t)microseconds * 1000ull, NULL);
}

SPROUT_EXPORT int nanosleep(const struct timespec *request, struct timespec *remaining) {
    if (!sprout_cooperative() || !request || request->tv_nsec < 0 || request->tv_nsec >= 1000000000L || request->tv_sec < 0)
        return REAL(nanosleep)(request, remaining);
    uint64_t left = 0;
    if (park_for(timespec_nanos(request), &left) == 0) return 0;
    if (remaining) {
        remaining->tv_sec = (time_t)(left / 1000000000ull);
        remaining->tv_nsec = (long)(left % 1000000000ull);
    }
    return -1;
}

SPROUT_EXPORT int clock_nanosleep(clockid_t clock, int flags, const struct timespec *request, struct timespec *remaining) {
    if (!sprout_cooperative() || (clock != CLOCK_MONOTONIC && clock != CLOCK_REALTIME) || !request
        || request->tv_nsec < 0 || request->tv_nsec >= 1000000000L || request->tv_sec < 0)
        return REAL(clock_nanosleep)(clock, flags, request, remaining);
    uint64_t nanos = timespec_nanos(request);
    if (flags & TIMER_ABSTIME) {
        struct timespec now;
        clock_gettime(clock, &now);
        uint64_t current = timespec_nanos(&now);
        nanos = nanos > current ? nanos - current : 0;
    }
    uint64_t left = 0;
    int saved_errno = errno;
    if (park_for(nanos, &left) == 0) return 0;
    int error = errno;
    errno = saved_errno;
    if (remaining && !(flags & TIMER_ABSTIME)) {
        remaining->tv_sec = (time_t)(left / 1000000000ull);
        remaining->tv_nsec = (long)(left % 1000000000ull);
    }
    return error;   // clock_nanosleep returns the error number
}
