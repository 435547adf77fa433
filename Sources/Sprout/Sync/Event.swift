/// A flag that greenlets can wait for (gevent's `Event`).
///
/// Greenlet-safe, not thread-safe: use it from one hub's greenlets.
public final class Event {
    /// Whether the flag is set.
    public private(set) var isSet = false
    private let waiters = WaiterList()

    /// Creates a cleared event.
    public init() {}

    /// Sets the flag and wakes every waiting greenlet, in the order they started waiting.
    /// Greenlets that wait while it stays set return at once.
    /// - Note: Not a switch point: the woken greenlets run on the hub's next turn.
    public func set() {
        isSet = true
        if !waiters.isEmpty { waiters.wakeAll(hub: Hub.current) }
    }

    /// Clears the flag. Greenlets already woken by ``set()`` still return true.
    public func clear() {
        isSet = false
    }

    /// Waits until the flag is set or `timeout` passes.
    ///
    /// - Parameter timeout: The longest wait; `nil` waits for ever; `.zero` does not park.
    /// - Returns: True if the flag was set (at the call or by a ``set()`` during the wait),
    ///   false if the timeout passed first.
    /// - Throws: `GreenletExit` if the caller is killed, an enclosing `Timeout`, or
    ///   ``HubError`` (from the hub's loop; a wait that can never end).
    /// - Note: A switch point unless the flag is set.
    @discardableResult
    public func wait(timeout: Duration? = nil) throws -> Bool {
        if isSet { return true }
        if let timeout, timeout <= .zero { return false }
        let hub = Hub.current
        let woken = try waiters.wait(hub: hub, on: "Event.wait", deadline: timeout.map { hub.deadline(after: $0) })
        // A set() that came after the deadline woke us but before we ran still counts (gevent
        // returns the flag).
        return woken || isSet
    }
}

/// A one-shot value or error that greenlets can wait for (gevent's `AsyncResult`).
///
/// Greenlet-safe, not thread-safe. Setting it a second time replaces nothing: the first
/// outcome stays (a precondition in debug builds).
public final class AsyncResult<Value> {
    private var outcome: Result<Value, any Error>?
    private let waiters = WaiterList()

    /// Creates an empty result.
    public init() {}

    /// True once a value or an error has been set.
    public var isReady: Bool { outcome != nil }

    /// The value, if one was set.
    public var value: Value? {
        if case .success(let value)? = outcome { return value }
        return nil
    }

    /// The error, if one was set.
    public var error: (any Error)? {
        if case .failure(let error)? = outcome { return error }
        return nil
    }

    /// Stores `value` and wakes every waiter. Ignored (and a precondition failure in debug
    /// builds) if already set.
    public func set(_ value: Value) {
        complete(.success(value))
    }

    /// Stores `error`, which ``get(timeout:)`` then throws, and wakes every waiter.
    public func fail(_ error: any Error) {
        complete(.failure(error))
    }

    private func complete(_ result: Result<Value, any Error>) {
        assert(outcome == nil, "AsyncResult was set twice")
        guard outcome == nil else { return }
        outcome = result
        if !waiters.isEmpty { waiters.wakeAll(hub: Hub.current) }
    }

    /// Waits for the outcome and returns the value.
    ///
    /// - Parameter timeout: The longest wait; `nil` waits for ever.
    /// - Returns: The value set.
    /// - Throws: The error set with ``fail(_:)``; ``Timeout`` if `timeout` passes first;
    ///   while waiting, `GreenletExit`, an enclosing `Timeout` or ``HubError``.
    /// - Note: A switch point unless ready.
    public func get(timeout: Duration? = nil) throws -> Value {
        guard try wait(timeout: timeout) else {
            throw Timeout(duration: timeout ?? .zero, id: 0)
        }
        return try outcome!.get()
    }

    /// Waits until ready or `timeout` passes; never throws the stored error.
    ///
    /// - Returns: True if ready.
    /// - Throws: as ``Event/wait(timeout:)``.
    @discardableResult
    public func wait(timeout: Duration? = nil) throws -> Bool {
        if outcome != nil { return true }
        if let timeout, timeout <= .zero { return false }
        let hub = Hub.current
        _ = try waiters.wait(hub: hub, on: "AsyncResult.get", deadline: timeout.map { hub.deadline(after: $0) })
        return outcome != nil
    }
}
