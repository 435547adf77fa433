// getaddrinfo and gethostbyname: glibc's resolver makes its own calls inside libc (socket,
// poll, recvmsg on hidden aliases) that no hook sees, so a greenlet's lookup runs on Sprout's
// thread pool instead, and only that greenlet waits. The job lives on the heap, owned by
// whoever finishes last: a greenlet killed while waiting leaves, and the pool thread frees
// what it produced.
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "patch_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct lookup_job {
    int references;             // the greenlet's and the pool thread's
    char *node;
    char *service;
    struct addrinfo hints;
    int has_hints;
    struct addrinfo *result;
    int status;
    int error;                  // errno after EAI_SYSTEM
} lookup_job_t;

static void lookup_release(lookup_job_t *job) {
    if (__atomic_sub_fetch(&job->references, 1, __ATOMIC_ACQ_REL) != 0) return;
    if (job->result) freeaddrinfo(job->result);
    free(job->node);
    free(job->service);
    free(job);
}

static void lookup_run(void *argument) {
    lookup_job_t *job = argument;
    job->status = REAL(getaddrinfo)(job->node, job->service, job->has_hints ? &job->hints : NULL, &job->result);
    job->error = errno;
    lookup_release(job);
}

SPROUT_EXPORT int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints, struct addrinfo **result) {
    if (!sprout_cooperative()) return REAL(getaddrinfo)(node, service, hints, result);
    lookup_job_t *job = calloc(1, sizeof *job);
    if (!job) return EAI_MEMORY;
    job->references = 2;
    job->node = node ? strdup(node) : NULL;
    job->service = service ? strdup(service) : NULL;
    if ((node && !job->node) || (service && !job->service)) { free(job->node); free(job->service); free(job); return EAI_MEMORY; }
    if (hints) {
        // Only the fields getaddrinfo reads from hints; its pointers must be NULL anyway.
        job->has_hints = 1;
        job->hints.ai_flags = hints->ai_flags;
        job->hints.ai_family = hints->ai_family;
        job->hints.ai_socktype = hints->ai_socktype;
        job->hints.ai_protocol = hints->ai_protocol;
    }
    int queued = sprout_patch_rt->run_on_pool(lookup_run, job);
    if (queued != 0) {
        int error = errno;
        if (queued == -2) lookup_release(job);   // never queued: the pool's reference too
        lookup_release(job);                      // else the pool thread frees the rest when done
        errno = error;
        return EAI_SYSTEM;
    }
    int status = job->status;
    *result = job->result;
    job->result = NULL;
    if (status == EAI_SYSTEM) errno = job->error;
    lookup_release(job);
    return status;
}

typedef struct host_job {
    int references;
    char *name;
    struct hostent host;
    struct hostent *found;
    int host_error;
    size_t capacity;
    char *buffer;
} host_job_t;

static void host_release(host_job_t *job) {
    if (__atomic_sub_fetch(&job->references, 1, __ATOMIC_ACQ_REL) != 0) return;
    free(job->buffer);
    free(job->name);
    free(job);
}

static void host_run(void *argument) {
    host_job_t *job = argument;
    for (job->capacity = 1024;; job->capacity *= 2) {
        free(job->buffer);
        job->buffer = malloc(job->capacity);
        if (!job->buffer) { job->found = NULL; job->host_error = NO_RECOVERY; break; }
        int rc = REAL(gethostbyname_r)(job->name, &job->host, job->buffer, job->capacity, &job->found, &job->host_error);
        if (rc != ERANGE || job->capacity >= (1u << 20)) break;
    }
    host_release(job);
}

/// The calling thread's answer: gethostbyname's result stays valid until the thread's next
/// call, as glibc's static one does. Each answer is copied here (never freed, only grown, so a
/// greenlet still reading an earlier answer reads stale data at worst, never freed memory).
static __thread struct hostent answer;
static __thread char *answer_buffer;
static __thread size_t answer_capacity;

/// `pointer` (into the job's buffer) moved into the thread's answer buffer.
static void *rebased(const host_job_t *job, const void *pointer) {
    if (!pointer) return NULL;
    return answer_buffer + ((const char *)pointer - job->buffer);
}

/// Copies the job's answer into the thread's storage; NULL if memory ran out.
static struct hostent *keep_answer(const host_job_t *job) {
    if (answer_capacity < job->capacity) {
        char *grown = malloc(job->capacity);
        if (!grown) return NULL;
        // The old buffer is left alone: an earlier answer's pointers may still be read.
        answer_buffer = grown;
        answer_capacity = job->capacity;
    }
    memcpy(answer_buffer, job->buffer, job->capacity);
    answer = job->host;
    answer.h_name = rebased(job, job->host.h_name);
    answer.h_aliases = rebased(job, job->host.h_aliases);
    answer.h_addr_list = rebased(job, job->host.h_addr_list);
    for (char **alias = answer.h_aliases; alias && *alias; alias++) *alias = rebased(job, *alias);
    for (char **address = answer.h_addr_list; address && *address; address++) *address = rebased(job, *address);
    return &answer;
}

SPROUT_EXPORT struct hostent *gethostbyname(const char *name) {
    if (!sprout_cooperative()) return REAL(gethostbyname)(name);
    host_job_t *job = calloc(1, sizeof *job);
    if (!job) { h_errno = NO_RECOVERY; return NULL; }
    job->references = 2;
    job->name = strdup(name ? name : "");
    if (!job->name) { free(job); h_errno = NO_RECOVERY; return NULL; }
    int queued = sprout_patch_rt->run_on_pool(host_run, job);
    if (queued != 0) {
        if (queued == -2) host_release(job);
        host_release(job);
        h_errno = TRY_AGAIN;
        return NULL;
    }
    struct hostent *result = NULL;
    if (!job->found) h_errno = job->host_error;
    else if (!(result = keep_answer(job))) h_errno = NO_RECOVERY;
    host_release(job);
    return result;
}
