import CSproutSystem

/// Returns the free pages of the C heap to the kernel (glibc's `malloc_trim(0)`).
///
/// After thousands of connections have come and gone, glibc keeps the pages of their freed
/// objects for reuse, so resident memory stays at its peak. Servers call this once a spike has
/// passed. It walks the heap (milliseconds for a large one): call it rarely, not per request.
public func releaseFreeHeapMemory() {
    _ = sprout_heap_trim()
}
