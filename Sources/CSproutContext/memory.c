// Handing freed heap memory back to the kernel.

#include "CSproutContext.h"

#include <malloc.h>

int sprout_heap_trim(void) { return malloc_trim(0); }
