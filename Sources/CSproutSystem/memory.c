// Handing freed heap memory back to the kernel, and reading what the process holds.

#include "CSproutSystem.h"

#include <stdio.h>
#include <unistd.h>

#include <malloc.h>

int sprout_heap_trim(void) { return malloc_trim(0); }

long sprout_resident_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return -1;
    long size = 0, resident = 0;
    if (fscanf(f, "%ld %ld", &size, &resident) != 2) resident = -1;
    fclose(f);
    return resident < 0 ? -1 : resident * sysconf(_SC_PAGESIZE);
}
