/// Runs `body`, throwing ``Timeout`` at the switch point that is running when `duration` has
/// passed (gevent's `Timeout` used as a context manager).
///
/// The timer is cancelled when `body` ends, however it ends. Nested blocks each fire as
/// themselves: when an outer deadline passes inside an inner block, the outer `Timeout`
/// propagates through the inner one. A timeout only fires at a switch point: code that never
/// parks cannot be interrupted. `nil` runs `body` with no deadline and allocates nothing.
///
/// - Returns: What `body` returns.
/// - Throws: ``Timeout`` when the deadline passes; whatever `body` throws.
/// - Note: Call it from a greenlet (the thread's main greenlet included), not the hub's loop.
public func withTimeout<T>(_ duration: Duration?, _ body: () throws -> T) throws -> T {
    guard let duration else { return try body() }
    let hub = Hub.current
    let greenlet = hub.current!
    let id = hub.nextTimeoutID()
    let extras = greenlet.extras
    extras.activeTimeouts.append(id)
    hub.timers.schedule(at: hub.deadline(after: duration), .timeout(greenlet.timerTarget, id: id, duration: duration))
    defer {
        if let index = extras.activeTimeouts.lastIndex(of: id) {
            // Ended before the deadline: the timer entry is now stale.
            extras.activeTimeouts.remove(at: index)
            hub.noteTimeoutCancelled()
        }
        // Fired but not yet delivered (the block ended first): it must not leak out later.
        if let pending = greenlet.pendingError as? Timeout, pending.id == id {
            greenlet.pendingError = nil
        }
    }
    let value = try body()
    // It expired inside a patched C call, which the C library saw fail (ETIMEDOUT) and
    // returned from: the block timed out all the same.
    if greenlet.patchedCall.contains(.interrupted), let pending = greenlet.pendingError as? Timeout, pending.id == id {
        greenlet.pendingError = nil
        greenlet.patchedCall = []
        throw pending
    }
    return value
}
