// Greenlet stacks: slabs of lazily committed memory with a guard region below each stack.
//
// Guards are installed with madvise(MADV_GUARD_INSTALL) (Linux 6.13+), which marks page-table
// entries instead of splitting the mapping, so a hundred thousand guarded stacks still cost a
// handful of kernel mappings (vm.max_map_count defaults to 65,530). Older kernels get
// mprotect(PROT_NONE) guards, which cost one mapping each; a warning says so once.

#include "CSproutContext.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102   // not yet in glibc's headers
#endif

static sprout_guard_mode_t guard_mode;
static pthread_once_t guard_once = PTHREAD_ONCE_INIT;

static void guard_probe(void) {
    long page = sysconf(_SC_PAGESIZE);
    void *probe = mmap(NULL, (size_t)page * 2, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (probe != MAP_FAILED && madvise(probe, (size_t)page, MADV_GUARD_INSTALL) == 0) {
        guard_mode = SPROUT_GUARD_MADVISE;
    } else {
        guard_mode = SPROUT_GUARD_MPROTECT;
        fputs("sprout: warning: this kernel lacks MADV_GUARD_INSTALL (Linux 6.13+); stack guards use"
              " mprotect, which costs a kernel mapping each: about 32,000 greenlets fit under the"
              " default vm.max_map_count of 65530\n", stderr);
    }
    if (probe != MAP_FAILED) munmap(probe, (size_t)page * 2);
}

sprout_guard_mode_t sprout_guard_mode(void) {
    pthread_once(&guard_once, guard_probe);
    return guard_mode;
}

int sprout_slab_create(sprout_slab_t *slab, size_t stack_size, size_t guard_size, size_t count) {
    sprout_guard_mode_t mode = sprout_guard_mode();
    size_t stride = stack_size + guard_size;
    size_t length = stride * count;
    void *base = mmap(NULL, length, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (base == MAP_FAILED) return errno;
    // Huge pages would make every touched stack cost 2 MiB of memory.
    (void)madvise(base, length, MADV_NOHUGEPAGE);
    for (size_t i = 0; i < count; i++) {
        char *guard = (char *)base + i * stride;
        int rc = mode == SPROUT_GUARD_MADVISE ? madvise(guard, guard_size, MADV_GUARD_INSTALL)
                                              : mprotect(guard, guard_size, PROT_NONE);
        if (rc != 0) {
            int err = errno;
            munmap(base, length);
            return err;
        }
    }
    slab->base = base;
    slab->length = length;
    slab->stack_size = stack_size;
    slab->guard_size = guard_size;
    slab->count = count;
    return 0;
}

void sprout_slab_destroy(sprout_slab_t *slab) {
    if (slab->base) munmap(slab->base, slab->length);
    slab->base = NULL;
}

void sprout_slab_stack(const sprout_slab_t *slab, size_t index, void **low, void **high, void **guard_low) {
    char *guard = (char *)slab->base + index * (slab->stack_size + slab->guard_size);
    *guard_low = guard;
    *low = guard + slab->guard_size;
    *high = guard + slab->guard_size + slab->stack_size;
}

void sprout_stack_discard(void *low, size_t length) {
    (void)madvise(low, length, MADV_DONTNEED);
}

size_t sprout_stack_release_unused(size_t keep_below) {
    sprout_context_t *ctx = sprout_context_current();
    if (ctx == NULL || ctx->stack_low == 0) return 0;
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t sp = (uintptr_t)__builtin_frame_address(0);
    if (sp <= ctx->stack_low + keep_below) return 0;
    uintptr_t end = (sp - keep_below) & ~(page - 1);
    if (end <= ctx->stack_low) return 0;
    size_t length = end - ctx->stack_low;
    (void)madvise((void *)ctx->stack_low, length, MADV_DONTNEED);
    return length;
}
