/// A counting semaphore for greenlets (gevent's `Semaphore`).
///
/// Waiters are served strictly in FIFO order: ``release()`` hands the permit to the first
/// parked waiter, and a newcomer never overtakes a parked one. A waiter that is killed or
/// times out after being handed a permit passes it on. Greenlet-safe, not thread-safe.
public class Semaphore {
    /// Permits currently available.
    @exclusivity(unchecked) public private(set) var value: Int
    let waiters = WaiterList()

    /// Creates a semaphore with `value` permits.
    /// - Precondition: `value >= 0`.
    public init(_ value: Int = 1) {
        precondition(value >= 0, "Semaphore: the initial value must not be negative (got \(value))")
        self.value = value
    }

    /// True if no permit is available.
    public var isLocked: Bool { value == 0 }

    /// Takes a permit, waiting for one if none is available.
    ///
    /// - Parameter timeout: The longest wait; `nil` waits for ever; `.zero` does not park.
    /// - Returns: True if a permit was taken, false if the timeout passed first.
    /// - Throws: `GreenletExit` if the caller is killed, an enclosing `Timeout`, or
    ///   ``HubError`` (from the hub's loop; a wait that can never end).
    /// - Note: A switch point when no permit is available.
    @discardableResult
    public func acquire(timeout: Duration? = nil) throws -> Bool {
        // While a permit is free nobody is parked (a release hands permits to parked waiters).
        if value > 0 {
            value -= 1
            return true
        }
        if let timeout, timeout <= .zero { return false }
        let hub = Hub.current
        return try waiters.wait(hub: hub, on: "Semaphore.acquire", deadline: timeout.map { hub.deadline(after: $0) },
                                handOn: { release() })
    }

    /// Returns a permit: hands it to the first parked waiter, or adds it to ``value``.
    /// - Note: Not a switch point.
    public func release() {
        if waiters.isEmpty || !waiters.wakeFirst(hub: Hub.current) {
            value += 1
        }
    }

    /// Runs `body` holding a permit, released however `body` ends.
    ///
    /// - Throws: What ``acquire(timeout:)`` throws while waiting; what `body` throws.
    public func withLock<R>(_ body: () throws -> R) throws -> R {
        try acquire()
        defer { release() }
        return try body()
    }
}

/// A semaphore that traps if released more often than acquired (gevent's `BoundedSemaphore`).
public final class BoundedSemaphore: Semaphore {
    /// The initial, and largest, number of permits.
    public let bound: Int

    /// Creates a semaphore with `value` permits, which is also its bound.
    public override init(_ value: Int = 1) {
        bound = value
        super.init(value)
    }

    /// Returns a permit.
    /// - Precondition: Fewer permits are available than the bound: a release without a
    ///   matching acquire is a programming error.
    public override func release() {
        precondition(value < bound, "BoundedSemaphore released more times than it was acquired (bound \(bound))")
        super.release()
    }
}
