public import Sprout

/// Pooled clients of one Thrift service: each greenlet that calls gets a client on a
/// connection of its own for the length of its body, so any number of greenlets can call one
/// service at once and no two share a connection.
///
/// ```swift
/// let follow = ThriftClientPool<FollowServiceClient>(host: "127.0.0.1", port: 9090)
/// let following = try follow.withClient { try $0.isFollowing(a: 1, b: 2) }
/// ```
///
/// A connection on which a call failed in the transport or the protocol (or was killed or
/// timed out mid-call, even if the body caught that) is closed, never reused: a half-read
/// reply never reaches the next caller, and a reply to another method is refused. Declared exceptions and ``TApplicationError``s leave it in use: the reply was read
/// whole. Like ``ConnectionPool``, a pool belongs to the hub that created it.
public final class ThriftClientPool<Client: TClient> {
    /// Where and how clients connect.
    public struct Configuration: Sendable {
        /// The protocol the service speaks.
        public var protocolKind: ThriftProtocolKind
        /// The transport the service speaks.
        public var transportKind: ThriftTransportKind
        /// The longest frame or string accepted in a reply.
        public var maxFrameSize: Int
        /// The longest a connect may take; nil waits for ever.
        public var connectTimeout: Duration?
        /// The longest one ``ThriftClientPool/withClient(_:)`` body (a call, or several) may
        /// take; nil for no limit. Past it the body gets `Timeout` and the connection is closed.
        public var callTimeout: Duration?
        /// Connections kept and opened at most, and how long a caller waits for one.
        public var pool: ConnectionPool<PooledThriftClient<Client>>.Configuration

        /// Creates a configuration (binary over framed, 20 connections).
        public init(protocolKind: ThriftProtocolKind = .binary, transportKind: ThriftTransportKind = .framed,
                    maxFrameSize: Int = 16 << 20, connectTimeout: Duration? = .seconds(5),
                    callTimeout: Duration? = .seconds(30),
                    pool: ConnectionPool<PooledThriftClient<Client>>.Configuration = .init(maxOpen: 20)) {
            self.protocolKind = protocolKind
            self.transportKind = transportKind
            self.maxFrameSize = maxFrameSize
            self.connectTimeout = connectTimeout
            self.callTimeout = callTimeout
            self.pool = pool
        }
    }

    /// The service's host.
    public let host: String
    /// The service's port.
    public let port: Int
    /// How clients connect.
    public let configuration: Configuration
    private let connections: ConnectionPool<PooledThriftClient<Client>>

    /// A pool of clients of the service at `host:port`; nothing connects until the first call.
    public init(host: String, port: Int, configuration: Configuration = Configuration()) {
        self.host = host
        self.port = port
        self.configuration = configuration
        connections = ConnectionPool(configuration: configuration.pool, open: {
            let socket = try Socket.connect(host: host, port: port, timeout: configuration.connectTimeout)
            try? socket.setNoDelay(true)
            let wire = ThriftWire(socket: socket, protocolKind: configuration.protocolKind,
                                  transportKind: configuration.transportKind, maxFrameSize: configuration.maxFrameSize)
            return PooledThriftClient(wire: wire, client: Client(inoutProtocol: wire.proto))
        }, close: { $0.socket.close() }, isReusable: { $0.isBetweenCalls }, isBroken: { error in
            // A declared exception (a generated struct) or an application error came in a reply
            // read whole; anything else leaves the connection's position unknown.
            !(error is TApplicationError || error is any TStruct)
        })
    }

    /// Runs `body` with a client of its own (a pooled connection), within the call timeout.
    ///
    /// - Returns: What `body` returns.
    /// - Throws: What `body` throws (the service's declared exceptions, ``TApplicationError``,
    ///   ``TTransportError``, ``TProtocolError``, the socket's `SystemError`); `Timeout` past
    ///   ``Configuration/callTimeout``; ``ConnectionPoolError`` when no connection comes in
    ///   time; what connecting throws.
    /// - Note: A switch point.
    public func withClient<R>(_ body: (Client) throws -> R) throws -> R {
        try withTimeout(configuration.callTimeout) {
            try connections.withConnection { try body($0.client) }
        }
    }

    /// Counters of the underlying pool.
    public var statistics: ConnectionPoolStatistics { connections.statistics }

    /// Closes idle connections and refuses further calls.
    public func close() { connections.close() }
}

/// A client and the connection it owns, as the pool keeps them.
public final class PooledThriftClient<Client: TClient> {
    /// The generated client on it.
    public let client: Client
    let wire: ThriftWire

    /// The connection.
    public var socket: Socket { wire.base.socket }

    init(wire: ThriftWire, client: Client) {
        self.wire = wire
        self.client = client
    }

    /// True when no call awaits its reply and no byte is left unread or unsent: only then can
    /// the next caller use the connection (a body that swallowed a mid-call error fails this).
    var isBetweenCalls: Bool {
        wire.proto.record.awaitedReply == nil && wire.base.bufferedCount == 0 && wire.base.pendingWriteCount == 0
            && (wire.framed.map { $0.remainingInFrame == 0 && $0.pendingWriteCount == 0 } ?? true)
    }
}
