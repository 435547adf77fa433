// The link to SproutPatch's libc hooks. A weak reference: when the hooks are linked into the
// program it resolves at link time; when they come with LD_PRELOAD the dynamic linker binds it
// to the preloaded library; otherwise it stays NULL and nothing is patched.
#include "CSproutSystem.h"

extern void sprout_patch_attach(const void *runtime) __attribute__((weak));

int sprout_green_runtime_offer(const sprout_green_runtime_t *runtime) {
    if (!sprout_patch_attach) return 0;
    sprout_patch_attach(runtime);
    return 1;
}
