import Glibc

/// A value guarded by a pthread mutex, for state shared between OS threads (never held across
/// a greenlet switch).
///
/// Used instead of `Synchronization.Mutex` because ThreadSanitizer intercepts pthread
/// mutexes but cannot see inside `Mutex`'s uninstrumented futex code, and reports every access
/// it guards as a race: with this lock, `swift test --sanitize=thread` checks Sprout's
/// cross-thread code for real. Visible to the package's other modules (SproutAsync,
/// SproutLifecycle) for the same reason.
package final class ThreadLock<Value>: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private var value: Value

    package init(_ value: Value) {
        self.value = value
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// In a forked child only: the mutex may have been held by a thread that does not exist
    /// here; make it a fresh, unlocked one and give the value a new start. Returns the old value.
    @discardableResult
    func reinitializeAfterFork(_ value: Value) -> Value {
        let old = self.value
        pthread_mutex_init(mutex, nil)
        self.value = value
        return old
    }

    /// Runs `body` with exclusive access to the value.
    package func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
