import Synchronization

/// A tiny OS-thread lock for the benchmark's own bookkeeping (never held across a switch).
final class NSLockLite: Sendable {
    private let mutex = Mutex<Void>(())
    func withLock<R>(_ body: () throws -> R) rethrows -> R {
        try mutex.withLock { _ in try body() }
    }
}
