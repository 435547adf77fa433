import CSproutSystem

/// The monotonic clock in nanoseconds, for inlinable code (the C shim is an internal import).
@usableFromInline
func monotonicNanoseconds() -> UInt64 { sprout_now_ns() }

extension Duration {
    /// Whole nanoseconds, clamped at zero (``Duration``'s own components, for inlinable code).
    @inlinable
    var wholeNanoseconds: UInt64 {
        let (seconds, attoseconds) = components
        if seconds < 0 || (seconds == 0 && attoseconds <= 0) { return 0 }
        let whole = UInt64(seconds).multipliedReportingOverflow(by: 1_000_000_000)
        if whole.overflow { return UInt64.max }
        return whole.partialValue &+ UInt64(attoseconds / 1_000_000_000)
    }
}

/// A pool of connections shared by the greenlets of one hub: each connection is used by one
/// greenlet at a time, which is what makes a client greenlet-safe.
///
/// ```swift
/// let pool = ConnectionPool(configuration: .init(maxOpen: 20)) {
///     try Socket.connect(host: "127.0.0.1", port: 6379, timeout: .seconds(2))
/// } close: { $0.close() }
/// let reply = try pool.withConnection { socket in
///     try socket.sendAll("PING\r\n")
///     return try socket.recv(maxLength: 64)
/// }
/// ```
///
/// - Checkout: ``withConnection(_:)`` reuses the most recently returned idle connection, or
///   opens one while fewer than ``Configuration/maxOpen`` are open, or waits (FIFO, for at most
///   ``Configuration/checkoutTimeout``). A waiter that is killed or times out never takes a
///   connection with it: its turn passes to the next waiter.
/// - Return: a connection goes back to the idle list only if its body returned normally (or
///   threw an error that `isBroken` says leaves it usable) and `isReusable` says it can carry
///   another request. A kill or a timeout landing mid-use always discards it: its protocol
///   state is unknown.
/// - Expiry: idle connections older than ``Configuration/idleExpiry`` or
///   ``Configuration/maxLifetime`` are closed when the pool is next used (no background
///   greenlet); one idle longer than ``Configuration/healthCheckAfterIdle`` is checked before
///   it is handed out.
///
/// A pool belongs to the hub (thread) that created it; using it from another throws
/// ``HubError/wrongThread(_:)``. Greenlet-safe, not thread-safe: give each hub its own pool.
public final class ConnectionPool<Connection> {
    /// Limits and expiry of a pool.
    public struct Configuration: Sendable {
        /// The most connections open at once, idle and in use together.
        public var maxOpen: Int
        /// The most idle connections kept; a connection returned beyond this is closed.
        public var maxIdle: Int
        /// The longest a checkout waits for a connection; nil waits for ever.
        public var checkoutTimeout: Duration?
        /// An idle connection unused for this long is closed; nil keeps it.
        public var idleExpiry: Duration?
        /// A connection older than this (since it was opened) is closed instead of reused.
        public var maxLifetime: Duration?
        /// A connection idle longer than this is health-checked before it is handed out
        /// (when the pool has a health check); nil checks never.
        public var healthCheckAfterIdle: Duration?

        /// Creates a configuration.
        /// - Precondition: `maxOpen > 0`, `maxIdle >= 0`.
        public init(maxOpen: Int = 10, maxIdle: Int? = nil, checkoutTimeout: Duration? = .seconds(30),
                    idleExpiry: Duration? = .seconds(60), maxLifetime: Duration? = nil,
                    healthCheckAfterIdle: Duration? = nil) {
            precondition(maxOpen > 0, "ConnectionPool: maxOpen must be positive (got \(maxOpen))")
            self.maxOpen = maxOpen
            self.maxIdle = maxIdle ?? maxOpen
            precondition(self.maxIdle >= 0, "ConnectionPool: maxIdle must not be negative")
            self.checkoutTimeout = checkoutTimeout
            self.idleExpiry = idleExpiry
            self.maxLifetime = maxLifetime
            self.healthCheckAfterIdle = healthCheckAfterIdle
        }
    }

    /// Counters of a pool, for logs and metrics.
    public typealias Statistics = ConnectionPoolStatistics

    @usableFromInline
    struct Idle {
        @usableFromInline let connection: Connection
        @usableFromInline let opened: UInt64
        @usableFromInline let returned: UInt64

        @inlinable init(connection: Connection, opened: UInt64, returned: UInt64) {
            self.connection = connection
            self.opened = opened
            self.returned = returned
        }
    }

    /// The pool's configuration.
    public let configuration: Configuration
    @usableFromInline let open: () throws -> Connection
    @usableFromInline let closeConnection: (Connection) -> Void
    @usableFromInline let isReusable: (Connection) -> Bool
    @usableFromInline let healthCheck: ((Connection) -> Bool)?
    @usableFromInline let isBroken: (any Error) -> Bool
    @usableFromInline let hub: Hub
    /// One permit per connection that may still be handed out: `maxOpen` minus those in use.
    @usableFromInline let slots: Semaphore
    /// Oldest first; checkout takes from the end (the warmest connection).
    @usableFromInline @exclusivity(unchecked) var idle: [Idle] = []
    @usableFromInline @exclusivity(unchecked) var inUse = 0
    @usableFromInline @exclusivity(unchecked) var created = 0
    @usableFromInline @exclusivity(unchecked) var discarded = 0
    @usableFromInline @exclusivity(unchecked) var isClosed = false

    /// Creates a pool.
    ///
    /// - Parameters:
    ///   - configuration: Limits and expiry.
    ///   - open: Opens a new connection (runs in the checking-out greenlet; may wait). What it
    ///     throws is thrown by ``withConnection(_:)``, and the slot is freed.
    ///   - close: Closes a connection the pool discards; must not wait.
    ///   - isReusable: Asked when a body returns: false discards the connection (say, a peer
    ///     that sent `Connection: close`).
    ///   - healthCheck: Asked before handing out a connection idle longer than
    ///     ``Configuration/healthCheckAfterIdle``: false discards it and checkout goes on.
    ///   - isBroken: Asked when a body throws: true (the default, for every error) discards
    ///     the connection. Kills and timeouts discard it whatever this says.
    public init(configuration: Configuration = Configuration(),
                open: @escaping () throws -> Connection,
                close: @escaping (Connection) -> Void = { _ in },
                isReusable: @escaping (Connection) -> Bool = { _ in true },
                healthCheck: ((Connection) -> Bool)? = nil,
                isBroken: @escaping (any Error) -> Bool = { _ in true }) {
        self.configuration = configuration
        self.open = open
        closeConnection = close
        self.isReusable = isReusable
        self.healthCheck = healthCheck
        self.isBroken = isBroken
        hub = Hub.current
        slots = Semaphore(configuration.maxOpen)
    }

    /// The pool's counters now.
    public var statistics: Statistics {
        Statistics(open: idle.count + inUse, idle: idle.count, inUse: inUse, waiting: slots.waiters.count,
                   created: created, discarded: discarded)
    }

    /// Runs `body` with a connection that no other greenlet uses meanwhile, then returns the
    /// connection to the pool (or discards it; see the type's documentation).
    ///
    /// - Throws: ``ConnectionPoolError/checkoutTimedOut(_:)`` if no connection came within
    ///   the checkout timeout, ``ConnectionPoolError/closed`` after ``close()``, what `open`
    ///   throws, `GreenletExit` or an enclosing `Timeout` while waiting, ``HubError`` if used
    ///   from another thread; and what `body` throws.
    /// - Note: A switch point when it waits for a connection or opens one.
    @inlinable @discardableResult
    public func withConnection<R>(_ body: (Connection) throws -> R) throws -> R {
        try withConnection(fresh: false, checkoutTimeout: configuration.checkoutTimeout, body)
    }

    /// ``withConnection(_:)`` with a connection opened for this call (`fresh`: an idle one is
    /// closed to make room, so the limit holds), or with its own checkout timeout.
    ///
    /// A client retrying on a new connection after a reused one turned out dead uses `fresh`.
    /// - Throws: as ``withConnection(_:)``.
    @inlinable @discardableResult
    public func withConnection<R>(fresh: Bool, checkoutTimeout: Duration?, _ body: (Connection) throws -> R) throws -> R {
        let lease = try checkOut(fresh: fresh, timeout: checkoutTimeout)
        let result: R
        do {
            result = try body(lease.connection)
        } catch {
            let keep = !(error is GreenletExit) && !(error is Timeout) && !isBroken(error)
            checkIn(lease, keep: keep)
            throw error
        }
        checkIn(lease, keep: true)
        return result
    }

    /// Closes the idle connections past their idle expiry or lifetime now (checkouts and returns
    /// do it too; a pool nobody uses needs this, from its owner, to let go of its sockets).
    public func closeExpiredConnections() {
        expireIdle(now: monotonicNanoseconds())
    }

    /// Closes the idle connections and refuses later checkouts; connections in use are closed
    /// as they come back. Waiting greenlets are woken with ``ConnectionPoolError/closed``.
    public func close() {
        isClosed = true
        while let entry = idle.popLast() { discard(entry.connection) }
        // Every waiter takes a slot and finds the pool closed.
        for _ in 0..<slots.waiters.count { slots.release() }
    }

    // MARK: Checkout and return

    @usableFromInline
    struct Lease {
        @usableFromInline let connection: Connection
        @usableFromInline let opened: UInt64

        @inlinable init(connection: Connection, opened: UInt64) {
            self.connection = connection
            self.opened = opened
        }
    }

    @inlinable
    func checkOut(fresh: Bool, timeout: Duration?) throws -> Lease {
        guard Hub.current === hub else { throw HubError.wrongThread("ConnectionPool used from another thread than its own") }
        guard !isClosed else { throw ConnectionPoolError.closed }
        if let timeout {
            guard try slots.acquire(timeout: timeout) else { throw ConnectionPoolError.checkoutTimedOut(timeout) }
        } else {
            try slots.acquire()
        }
        guard !isClosed else {
            slots.release()
            throw ConnectionPoolError.closed
        }
        inUse += 1
        var slotHeld = true
        defer {
            if !slotHeld {
                inUse -= 1
                slots.release()
            }
        }
        let now = monotonicNanoseconds()
        expireIdle(now: now)
        if fresh, let entry = idle.popLast() { discard(entry.connection) }
        while !fresh, let entry = idle.popLast() {
            if isExpired(entry, now: now) {
                discard(entry.connection)
                continue
            }
            if let threshold = configuration.healthCheckAfterIdle, let healthCheck,
               now &- entry.returned >= threshold.wholeNanoseconds, !healthCheck(entry.connection) {
                discard(entry.connection)
                continue
            }
            return Lease(connection: entry.connection, opened: entry.opened)
        }
        do {
            let connection = try open()
            created += 1
            return Lease(connection: connection, opened: monotonicNanoseconds())
        } catch {
            slotHeld = false
            throw error
        }
    }

    @inlinable
    func checkIn(_ lease: Lease, keep: Bool) {
        inUse -= 1
        let now = monotonicNanoseconds()
        let tooOld = configuration.maxLifetime.map { now &- lease.opened >= $0.wholeNanoseconds } ?? false
        if keep && !isClosed && !tooOld && idle.count < configuration.maxIdle && isReusable(lease.connection) {
            idle.append(Idle(connection: lease.connection, opened: lease.opened, returned: now))
        } else {
            discard(lease.connection)
        }
        expireIdle(now: now)
        slots.release()
    }

    /// Closes idle connections past their idle expiry or lifetime. The list is ordered by
    /// return time, so only its front is looked at (a connection past its lifetime further in
    /// is caught when it is checked out).
    @inlinable
    func expireIdle(now: UInt64) {
        while let first = idle.first, isExpired(first, now: now) {
            idle.removeFirst()
            discard(first.connection)
        }
    }

    @inlinable
    func isExpired(_ entry: Idle, now: UInt64) -> Bool {
        if let expiry = configuration.idleExpiry, now &- entry.returned >= expiry.wholeNanoseconds { return true }
        if let lifetime = configuration.maxLifetime, now &- entry.opened >= lifetime.wholeNanoseconds { return true }
        return false
    }

    @inlinable
    func discard(_ connection: Connection) {
        discarded += 1
        closeConnection(connection)
    }
}

/// Errors of ``ConnectionPool``.
public enum ConnectionPoolError: Error, Equatable, CustomStringConvertible {
    /// No connection became free within the checkout timeout.
    case checkoutTimedOut(Duration)
    /// The pool was closed.
    case closed

    public var description: String {
        switch self {
        case .checkoutTimedOut(let timeout): "no pooled connection became free within \(timeout)"
        case .closed: "the connection pool is closed"
        }
    }
}

/// Counters of a pool, for logs and metrics.
public struct ConnectionPoolStatistics: Sendable, Equatable, CustomStringConvertible {
    /// Connections open now (idle plus in use).
    public var open: Int
    /// Open connections waiting in the idle list.
    public var idle: Int
    /// Connections held by greenlets now.
    public var inUse: Int
    /// Greenlets waiting for a connection now.
    public var waiting: Int
    /// Connections opened since the pool was created.
    public var created: Int
    /// Connections closed by the pool since it was created (broken, expired, failed a
    /// health check, not reusable, beyond `maxIdle`, or closed with the pool).
    public var discarded: Int

    /// Creates counters (for comparisons in tests and logs).
    public init(open: Int, idle: Int, inUse: Int, waiting: Int, created: Int, discarded: Int) {
        self.open = open
        self.idle = idle
        self.inUse = inUse
        self.waiting = waiting
        self.created = created
        self.discarded = discarded
    }

    public var description: String {
        "open \(open) (idle \(idle), in use \(inUse)), waiting \(waiting), created \(created), discarded \(discarded)"
    }
}
