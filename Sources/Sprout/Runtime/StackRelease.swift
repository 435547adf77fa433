import CSproutContext

/// Gives back to the kernel the pages of the running greenlet's stack that lie more than
/// `keepingBelow` bytes below the caller's frame.
///
/// A greenlet that is about to park for a long time (an idle keep-alive connection) keeps every
/// stack page its deepest call ever touched; this returns them, so that thousands of parked
/// greenlets cost only the frames they park in. The pages read as zero when touched again, which
/// is safe because nothing lives below the running frame. Costs one `madvise` system call: call
/// it before a long wait, not on every request.
///
/// - Parameter keepingBelow: Bytes below the caller's frame to keep (the calls that park it).
/// - Returns: The number of bytes given back; 0 on a thread's own stack.
@discardableResult
public func releaseUnusedStackPages(keepingBelow: Int = 2048) -> Int {
    Int(sprout_stack_release_unused(keepingBelow))
}

/// Bytes of the running greenlet's stack in use below its top (0 on a thread's own stack), for
/// diagnostics.
public func stackBytesInUse() -> Int {
    Int(sprout_stack_used())
}
