import CSproutContext
import CSproutSystem

// Work that is not a greenlet: callbacks at the next turn, timers, and posts from other
// threads through the inbox.

extension Hub {
    /// Runs `callback` on this hub's loop at the start of its next turn, in FIFO order.
    ///
    /// The callback runs in the hub, not in a greenlet: it must not block (a switch point there
    /// throws ``HubError/blockingInHub(_:)``). Call it from the hub's own thread; other threads
    /// use ``post(_:)``.
    public func callSoon(_ callback: @escaping () -> Void) {
        callbacks.append(callback)
    }

    /// Runs `callback` on this hub's loop after `delay`. Returns an id for ``cancelTimer(_:)``.
    @discardableResult
    func callLater(_ delay: Duration, _ callback: @escaping () -> Void) -> UInt64 {
        nextTimerID &+= 1
        timerCallbacks[nextTimerID] = callback
        timers.schedule(at: deadline(after: delay), .callback(id: nextTimerID))
        return nextTimerID
    }

    func cancelTimer(_ id: UInt64) {
        if timerCallbacks.removeValue(forKey: id) != nil {
            timers.noteCancelled(isLive: isLive)
        }
    }

    /// A new identity for a `withTimeout` block.
    func nextTimeoutID() -> UInt64 {
        nextTimerID &+= 1
        return nextTimerID
    }

    func noteTimeoutCancelled() {
        timers.noteCancelled(isLive: isLive)
    }

    /// The monotonic time `duration` from now, in nanoseconds (saturating).
    func deadline(after duration: Duration) -> UInt64 {
        let start = sprout_now_ns()
        let nanos = duration.nanoseconds
        return start > UInt64.max - nanos ? UInt64.max : start + nanos
    }

    /// Throws ``HubError/wrongThread(_:)`` unless called on this hub's thread.
    func checkThread(_ what: StaticString) throws {
        guard sprout_hub_get() == Unmanaged.passUnretained(self).toOpaque() else {
            throw HubError.wrongThread(what.description)
        }
    }

    // MARK: - Other threads

    /// Runs `work` on this hub's loop; callable from any thread. Returns false if the hub has
    /// ended (its thread exited), in which case `work` is dropped.
    @discardableResult
    public func post(_ work: @escaping @Sendable () -> Void) -> Bool {
        inbox.post(work)
    }

    /// A handle through which any thread can post work to this hub.
    public var inboxHandle: HubInbox { inbox }

    func drainInbox() {
        inbox.drain { callbacks.append($0) }
    }
}
