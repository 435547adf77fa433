/// A mutual-exclusion lock for greenlets (gevent's `lock.Semaphore(1)` used as a lock).
///
/// Unlike `Synchronization.Mutex` or a pthread mutex, a greenlet may park while holding it:
/// other greenlets wanting it park too, and the hub keeps running. Any greenlet may release
/// it (as with `threading.Lock`). Waiters are served FIFO. Greenlet-safe, not thread-safe.
public final class Lock {
    private let semaphore = BoundedSemaphore(1)

    /// Creates an unlocked lock.
    public init() {}

    /// True while held.
    public var isLocked: Bool { semaphore.isLocked }

    /// Takes the lock, waiting while another greenlet holds it.
    ///
    /// - Returns: True if taken, false if `timeout` passed first.
    /// - Throws: as ``Semaphore/acquire(timeout:)``.
    /// - Note: A switch point while the lock is held. A greenlet that already holds it
    ///   deadlocks (reported as ``HubError/wouldBlockForever(_:)`` if nothing else can run);
    ///   use ``RLock`` for re-entry.
    @discardableResult
    public func acquire(timeout: Duration? = nil) throws -> Bool {
        try semaphore.acquire(timeout: timeout)
    }

    /// Releases the lock, handing it to the first parked waiter.
    /// - Precondition: The lock is held.
    public func release() {
        precondition(semaphore.isLocked, "Lock released while not locked")
        semaphore.release()
    }

    /// Runs `body` holding the lock.
    /// - Throws: What ``acquire(timeout:)`` throws while waiting; what `body` throws.
    public func withLock<R>(_ body: () throws -> R) throws -> R {
        try acquire()
        defer { release() }
        return try body()
    }
}

/// A re-entrant lock owned by a greenlet (gevent's `RLock`).
///
/// The owning greenlet may acquire it again; it is released when released as many times.
/// Greenlet-safe, not thread-safe.
public final class RLock {
    private let semaphore = Semaphore(1)
    private var owner: ObjectIdentifier?
    private var depth = 0

    /// Creates an unlocked lock.
    public init() {}

    /// True while some greenlet holds it.
    public var isLocked: Bool { owner != nil }

    /// Takes the lock, or deepens the hold of the greenlet that already owns it.
    ///
    /// - Returns: True if held, false if `timeout` passed first.
    /// - Throws: as ``Semaphore/acquire(timeout:)``.
    /// - Note: A switch point while another greenlet holds the lock.
    @discardableResult
    public func acquire(timeout: Duration? = nil) throws -> Bool {
        let me = ObjectIdentifier(Hub.current.current!)
        if owner == me {
            depth += 1
            return true
        }
        guard try semaphore.acquire(timeout: timeout) else { return false }
        owner = me
        depth = 1
        return true
    }

    /// Undoes one ``acquire(timeout:)``; the last one frees the lock for the first waiter.
    /// - Precondition: The calling greenlet owns the lock.
    public func release() {
        precondition(owner == ObjectIdentifier(Hub.current.current!),
                     "RLock released by a greenlet that does not own it")
        depth -= 1
        if depth == 0 {
            owner = nil
            semaphore.release()
        }
    }

    /// Runs `body` holding the lock.
    /// - Throws: What ``acquire(timeout:)`` throws while waiting; what `body` throws.
    public func withLock<R>(_ body: () throws -> R) throws -> R {
        try acquire()
        defer { release() }
        return try body()
    }
}
