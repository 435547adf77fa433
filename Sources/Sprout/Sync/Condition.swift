/// A condition variable for greenlets, bound to a ``Lock`` (as `threading.Condition`).
///
/// Greenlet-safe, not thread-safe.
public final class Condition {
    /// The lock that must be held around ``wait(timeout:)`` and ``notify(_:)``.
    public let lock: Lock
    private let waiters = WaiterList()

    /// Creates a condition over `lock` (a new one by default).
    public init(lock: Lock = Lock()) {
        self.lock = lock
    }

    /// Releases the lock, waits for a ``notify(_:)`` or the timeout, and takes the lock again
    /// before returning (also when it throws).
    ///
    /// - Returns: True if notified, false if `timeout` passed first.
    /// - Throws: `GreenletExit` or an enclosing `Timeout`, with the lock held again even then;
    ///   ``HubError`` (``HubError/wouldBlockForever(_:)`` when the lock can never be retaken),
    ///   in which case the lock is *not* held.
    /// - Precondition: The lock is held by the caller.
    /// - Note: A switch point.
    @discardableResult
    public func wait(timeout: Duration? = nil) throws -> Bool {
        precondition(lock.isLocked, "Condition.wait called without holding its lock")
        let hub = Hub.current
        waitersAppendAndRelease(hub)
        var notified = false
        var failure: (any Error)?
        do {
            // A notify that reached us as we were interrupted belongs to the next waiter.
            notified = try waiters.waitAppended(hub: hub, on: "Condition.wait",
                                               deadline: timeout.map { hub.deadline(after: $0) },
                                               handOn: { waiters.wakeFirst(hub: hub) })
        } catch {
            failure = error
        }
        // Re-acquire even if interrupted: a kill or timeout landing in this wait is delivered
        // once it holds the lock again. A HubError is not an interruption but a verdict (nothing
        // can ever release the lock, or this is the hub): retrying it would spin for ever.
        while true {
            do {
                try lock.acquire()
                break
            } catch let error as HubError {
                throw error
            } catch {
                if failure == nil { failure = error }
            }
        }
        if let failure { throw failure }
        return notified
    }

    private func waitersAppendAndRelease(_ hub: Hub) {
        waiters.append(hub.current!)
        lock.release()
    }

    /// Wakes up to `count` waiting greenlets, FIFO. They run once the caller releases the lock.
    public func notify(_ count: Int = 1) {
        guard !waiters.isEmpty else { return }
        let hub = Hub.current
        var left = count
        while left > 0 && waiters.wakeFirst(hub: hub) { left -= 1 }
    }

    /// Wakes every waiting greenlet.
    public func notifyAll() {
        guard !waiters.isEmpty else { return }
        waiters.wakeAll(hub: Hub.current)
    }
}
