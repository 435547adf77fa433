public import Sprout
public import SproutTLS

/// A greenlet-safe Redis client: commands go through a ``ConnectionPool`` of
/// ``RedisConnection``s, one greenlet per connection at a time.
///
/// ```swift
/// let redis = RedisClient(configuration: .init(host: "127.0.0.1", port: 6379))
/// try redis.set("greeting", "hello", expiration: .seconds(60))
/// let greeting = try redis.getString("greeting")          // "hello"
/// let replies = try redis.pipeline((0..<100).map { RedisCommand("INCR").with("counter") })
/// ```
///
/// A connection that saw an IO, protocol or timeout error (or a kill landing mid-command) is
/// discarded; an error reply (`-ERR`, `-WRONGTYPE`) is thrown as
/// ``RedisError/server(code:message:)`` and leaves the connection in the pool. `AUTH` and
/// `SELECT` (or `HELLO 3`) run on every new connection. The client belongs to the hub (thread)
/// of its first command.
public final class RedisClient: RedisCommands {
    /// Which RESP version connections speak.
    public enum ProtocolVersion: Sendable {
        /// RESP2: every server; maps come back as flat arrays.
        case resp2
        /// RESP3 (`HELLO 3`, Redis 6+): maps, doubles, booleans and nulls as such.
        case resp3
    }

    /// Where the server is and how connections behave.
    public struct Configuration: Sendable {
        /// The server's host name or address.
        public var host: String
        /// The server's port.
        public var port: Int
        /// The ACL user (Redis 6+); nil with a password is the `default` user.
        public var username: String?
        /// Sent with `AUTH` (or `HELLO 3 AUTH`) on every new connection.
        public var password: String?
        /// `SELECT`ed on every new connection.
        public var database: Int
        /// RESP2 or RESP3.
        public var protocolVersion: ProtocolVersion
        /// TLS to the server (`redis-server --tls-port`); nil for plain TCP.
        public var tls: TLSConfiguration?
        /// The name the server's certificate must carry; `host` by default.
        public var tlsServerName: String?
        /// The most connections open at once.
        public var maxConnections: Int
        /// The longest a TCP connect (and TLS handshake) may take.
        public var connectTimeout: Duration
        /// The longest a command's reply may take (each read and write).
        public var commandTimeout: Duration
        /// The longest a command waits for a free connection.
        public var checkoutTimeout: Duration
        /// Idle connections unused this long are closed.
        public var idleTimeout: Duration

        /// A configuration with the documented defaults (127.0.0.1:6379, RESP2, 20 connections,
        /// timeouts of 5 s).
        public init(host: String = "127.0.0.1", port: Int = 6379, username: String? = nil, password: String? = nil,
                    database: Int = 0, protocolVersion: ProtocolVersion = .resp2, tls: TLSConfiguration? = nil,
                    tlsServerName: String? = nil, maxConnections: Int = 20, connectTimeout: Duration = .seconds(5),
                    commandTimeout: Duration = .seconds(5), checkoutTimeout: Duration = .seconds(5),
                    idleTimeout: Duration = .seconds(60)) {
            self.host = host
            self.port = port
            self.username = username
            self.password = password
            self.database = database
            self.protocolVersion = protocolVersion
            self.tls = tls
            self.tlsServerName = tlsServerName
            self.maxConnections = maxConnections
            self.connectTimeout = connectTimeout
            self.commandTimeout = commandTimeout
            self.checkoutTimeout = checkoutTimeout
            self.idleTimeout = idleTimeout
        }
    }

    /// The client's configuration.
    public let configuration: Configuration
    private var pool: ConnectionPool<RedisConnection>?
    private var tlsContext: TLSContext?

    /// Creates a client; nothing is opened until the first command.
    /// - Precondition: `maxConnections >= 1`.
    public init(configuration: Configuration = Configuration()) {
        precondition(configuration.maxConnections >= 1, "RedisClient: maxConnections must be at least 1")
        self.configuration = configuration
    }

    /// Sends `command` on a pooled connection and returns its reply.
    /// - Throws: ``RedisError``; ``ConnectError`` when the server cannot be reached;
    ///   ``ConnectionPoolError`` when no connection is free within the checkout timeout;
    ///   `GreenletExit` or an enclosing `Timeout`.
    /// - Note: A switch point.
    public func send(_ command: RedisCommand) throws -> RESPValue {
        try connections().withConnection { try $0.send(command) }
    }

    /// Sends every command in one write on one connection and returns the replies in order
    /// (error replies as ``RESPValue/error(_:)``).
    /// - Throws: as ``send(_:)`` for IO errors.
    public func pipeline(_ commands: [RedisCommand]) throws -> [RESPValue] {
        try connections().withConnection { try $0.pipeline(commands) }
    }

    /// Runs `commands` in `MULTI`/`EXEC` on one connection; see
    /// ``RedisConnection/transaction(_:)``. For `WATCH`, use ``withConnection(_:)``.
    public func transaction(_ commands: [RedisCommand]) throws -> [RESPValue]? {
        try connections().withConnection { try $0.transaction(commands) }
    }

    /// Runs `body` with one connection held for it alone: for `WATCH` … `MULTI`/`EXEC`, or for
    /// commands whose state lives in the connection. A connection left watching is sent
    /// `UNWATCH` before it goes back to the pool; one left in a MULTI, or changed for good
    /// (`SELECT`, `CLIENT …`, `SUBSCRIBE`), or whose body threw, is closed instead.
    /// - Throws: what checking out a connection throws (see ``send(_:)``), and what `body` throws.
    public func withConnection<R>(_ body: (RedisConnection) throws -> R) throws -> R {
        try connections().withConnection { connection in
            let result: R
            do {
                result = try body(connection)
            } catch {
                // Whatever state the body left (a MULTI, a WATCH), nobody else gets it.
                connection.changedSession = true
                throw error
            }
            if connection.isWatching && !connection.isBroken { try connection.unwatch() }
            return result
        }
    }

    /// Subscribes to `channels` and `patterns` on a dedicated connection (not from the pool: a
    /// subscribed connection can do nothing else). Read messages with
    /// ``RedisSubscription/next(timeout:)`` in the greenlet that handles them.
    /// - Throws: as ``send(_:)``.
    public func subscribe(channels: [String], patterns: [String] = []) throws -> RedisSubscription {
        let connection = try RedisConnection.open(configuration, tls: try tls())
        do {
            return try RedisSubscription(connection: connection, channels: channels, patterns: patterns)
        } catch {
            connection.close()
            throw error
        }
    }

    /// The pool's counters (open, idle, in use, waiting, created, discarded).
    public var statistics: ConnectionPoolStatistics? { pool?.statistics }

    /// Closes idle connections and refuses later commands.
    public func close() {
        pool?.close()
    }

    private func tls() throws -> TLSContext? {
        guard let tls = configuration.tls else { return nil }
        if let tlsContext { return tlsContext }
        let context = try TLSContext(configuration: tls)
        tlsContext = context
        return context
    }

    @inline(__always)
    private func connections() throws -> ConnectionPool<RedisConnection> {
        if let pool { return pool }
        let configuration = configuration
        let tls = try tls()
        let pool = ConnectionPool<RedisConnection>(
            configuration: .init(maxOpen: configuration.maxConnections, checkoutTimeout: configuration.checkoutTimeout,
                                 idleExpiry: configuration.idleTimeout),
            open: { try RedisConnection.open(configuration, tls: tls) },
            close: { $0.close() },
            isReusable: { $0.isReusable },
            isBroken: { error in (error as? RedisError)?.breaksConnection ?? true })
        self.pool = pool
        return pool
    }
}

extension RedisCommand {
    /// This command with one more argument: `RedisCommand("GET").with("key")`.
    public func with(_ argument: some RedisArgument) -> RedisCommand {
        var command = self
        command.append(argument)
        return command
    }
}
