public import Logging
public import Sprout
import Glibc

/// A Thrift server on ``StreamServer``: one greenlet per connection, the requests of a
/// connection processed in order by a generated `Processor`, whose handler may block
/// (sleep, call other services, query databases) without holding up other connections.
///
/// ```swift
/// let processor = FollowServiceProcessor(service: MyFollowService())
/// let server = ThriftServer(configuration: .init(port: 9090), processor: processor)
/// try server.serveForever()
/// ```
///
/// - Errors a handler throws that the IDL declares are sent as results by the generated code.
///   Any other error (once the arguments were read whole: a timeout or a failed call to another
///   service included) becomes a ``TApplicationError`` (`internalError`, naming the method but
///   not the error) for the caller and one `error` log line with the error; the connection
///   serves on. A oneway call is never answered, whatever its handler throws.
/// - A request that does not parse (``TProtocolError``) is answered with a `protocolError`
///   ``TApplicationError`` when its header was read; with the framed transport the
///   connection then serves on from the next frame, with the buffered one it is closed.
/// - A transport failure (a frame over ``Configuration/maxFrameSize``, a connection closed
///   mid-message, a read timeout) closes that connection with a `warning` log line naming the
///   peer and the reason. The server serves on.
/// - ``stop(timeout:)`` (graceful drain): stops accepting, closes idle connections at once,
///   lets calls in progress finish and send their reply for up to `timeout`, then kills the rest.
public final class ThriftServer {
    /// How a server listens and speaks.
    public struct Configuration: Sendable {
        /// The address to bind.
        public var host: String
        /// The port (0 picks a free one: read ``ThriftServer/port`` after start).
        public var port: Int
        /// The protocol every connection speaks.
        public var protocolKind: ThriftProtocolKind
        /// The transport every connection speaks.
        public var transportKind: ThriftTransportKind
        /// The longest frame (framed) or string, binary or container (both) accepted.
        public var maxFrameSize: Int
        /// How long a connection may wait for its next request before it is closed; nil waits for ever.
        public var idleTimeout: Duration?
        /// How long each read or write of a request in progress may wait; nil waits for ever.
        public var readTimeout: Duration?
        /// The most connections served at once (accepting pauses at the limit).
        public var maxConnections: Int?
        /// The listen backlog.
        public var backlog: Int32
        /// Refuse binary-protocol messages without a version header.
        public var strictRead: Bool
        /// Stack bytes of each connection's greenlet.
        public var stackSize: Int?

        /// Creates a configuration (binary over framed by default, as Python's and Finagle's
        /// non-blocking servers speak).
        public init(host: String = "127.0.0.1", port: Int = 9090, protocolKind: ThriftProtocolKind = .binary,
                    transportKind: ThriftTransportKind = .framed, maxFrameSize: Int = 16 << 20,
                    idleTimeout: Duration? = .seconds(120), readTimeout: Duration? = .seconds(30),
                    maxConnections: Int? = 10_000, backlog: Int32 = 1024, strictRead: Bool = false,
                    stackSize: Int? = nil) {
            precondition(maxFrameSize > 0 && maxFrameSize <= Int(Int32.max), "ThriftServer: maxFrameSize must be in 1...\(Int32.max)")
            self.host = host
            self.port = port
            self.protocolKind = protocolKind
            self.transportKind = transportKind
            self.maxFrameSize = maxFrameSize
            self.idleTimeout = idleTimeout
            self.readTimeout = readTimeout
            self.maxConnections = maxConnections
            self.backlog = backlog
            self.strictRead = strictRead
            self.stackSize = stackSize
        }
    }

    /// The server's configuration.
    public let configuration: Configuration
    /// Where connection failures and handler errors are logged.
    public let logger: Logger
    private let processor: any TProcessor
    private var server: StreamServer!
    /// The connection handler's way back to this server: a strong reference while serving (the
    /// server lives as long as it accepts, even if its creator lets go of it), dropped by
    /// ``stop(timeout:)`` to break the cycle.
    private let handlerTarget = HandlerTarget()
    @exclusivity(unchecked) private var connections: [ObjectIdentifier: ThriftConnectionState] = [:]
    @exclusivity(unchecked) private var isDraining = false

    /// Creates a server that binds `configuration.host:port` when started.
    public init(configuration: Configuration = Configuration(), processor: any TProcessor,
                logger: Logger = Logger(label: "sprout.thrift")) {
        self.configuration = configuration
        self.processor = processor
        self.logger = logger
        server = StreamServer(host: configuration.host, port: configuration.port,
                              maxConnections: configuration.maxConnections, backlog: configuration.backlog,
                              stackSize: configuration.stackSize, logger: logger) { [handlerTarget] socket, peer in
            try handlerTarget.server?.serve(socket, peer: peer)
        }
        handlerTarget.server = self
    }

    /// Creates a server that accepts on `listener` (a socket inherited from a ``Supervisor``'s
    /// master); `configuration.host`, `port` and `backlog` are not used.
    public init(configuration: Configuration = Configuration(), listener: Socket, processor: any TProcessor,
                logger: Logger = Logger(label: "sprout.thrift")) {
        self.configuration = configuration
        self.processor = processor
        self.logger = logger
        server = StreamServer(listener: listener, maxConnections: configuration.maxConnections,
                              stackSize: configuration.stackSize, logger: logger) { [handlerTarget] socket, peer in
            try handlerTarget.server?.serve(socket, peer: peer)
        }
        handlerTarget.server = self
    }

    /// The bound address (after ``start()``).
    public var address: SocketAddress? { server.address }
    /// The bound port (after ``start()``).
    public var port: Int { server.port }
    /// Connections open now.
    public var connectionCount: Int { server.connectionCount }

    /// Binds and starts accepting; returns at once.
    /// - Throws: What ``StreamServer/start()`` throws (`EADDRINUSE`, …).
    public func start() throws { try server.start() }

    /// Starts if needed and serves until ``stop(timeout:)``.
    /// - Throws: What ``start()`` throws; `GreenletExit` or `Timeout` after stopping.
    public func serveForever() throws { try server.serveForever() }

    /// Drains: stops accepting, closes idle connections, lets calls in progress finish for up
    /// to `timeout`, then kills the rest. Idempotent.
    /// - Note: A switch point while calls finish.
    public func stop(timeout: Duration = .seconds(10)) {
        isDraining = true
        for state in connections.values where state.isIdle {
            try? state.socket.shutdown(.read)
        }
        server.stop(timeout: timeout)
        handlerTarget.server = nil
    }

    // MARK: One connection

    private func serve(_ socket: Socket, peer: SocketAddress) throws {
        try? socket.setNoDelay(true)
        let wire = ThriftWire(socket: socket, protocolKind: configuration.protocolKind,
                              transportKind: configuration.transportKind, maxFrameSize: configuration.maxFrameSize,
                              strictRead: configuration.strictRead)
        let state = ThriftConnectionState(socket: socket)
        let key = ObjectIdentifier(state)
        connections[key] = state
        defer { connections[key] = nil }
        while !isDraining {
            state.isIdle = true
            socket.timeout = configuration.idleTimeout
            let hasRequest: Bool
            do {
                hasRequest = try wire.base.waitForData()
            } catch let error as TTransportError where error.error == .timedOut {
                logger.debug("closing an idle connection", metadata: ["peer": "\(peer)"])
                return
            } catch let error as SystemError where isDraining || error.errno == ECONNRESET {
                return
            }
            state.isIdle = false
            guard hasRequest else { return }
            socket.timeout = configuration.readTimeout
            wire.framed?.skipRestOfFrame()
            wire.proto.record.reset()
            do {
                try processor.process(on: wire.proto, outProtocol: wire.proto)
                if let sent = wire.proto.record.sentApplicationError, let header = wire.proto.record.header {
                    logger.notice("answered a call with an application error",
                                  metadata: ["peer": "\(peer)", "method": "\(header.name)", "error": "\(sent)"])
                }
            } catch {
                guard try handle(error, wire: wire, peer: peer) else { return }
            }
        }
    }

    /// Answers or logs what `process` threw; true when the connection can go on.
    private func handle(_ error: any Error, wire: ThriftWire, peer: SocketAddress) throws -> Bool {
        let record = wire.proto.record
        let header = record.header
        let method = header?.name ?? "?"
        if error is GreenletExit { throw error }
        if let refused = error as? OnewayReplyRefused {
            // A oneway handler threw a TApplicationError (or the method is unknown): the caller
            // reads no reply, so none may be sent.
            wire.discardPendingWrites()
            logger.notice("dropped the reply to a oneway call",
                          metadata: ["peer": "\(peer)", "method": "\(refused.method)",
                                     "error": "\(record.sentApplicationError.map { "\($0)" } ?? "?")"])
            return true
        }
        if record.phase == .handling {
            // The arguments were read whole and the handler threw something the IDL does not
            // declare (its own bug, or a failure of a service it called): the caller gets an
            // internal error without the details, the log gets them once. The connection is fine.
            logger.error("handler threw an undeclared error",
                         metadata: ["peer": "\(peer)", "method": "\(method)", "error": "\(error)"])
            if let header, header.type != .oneway {
                try answer(header, with: TApplicationError(error: .internalError, message: "internal error processing \(method)"),
                           wire: wire)
            }
            return true
        }
        switch error {
        case is Timeout:
            throw error
        case let error as SystemError where error.errno == ECONNRESET || error.errno == EPIPE:
            throw error
        case let error as TTransportError where record.phase == .replying && wire.framed != nil:
            // The reply could not be framed (larger than the maximum frame): say so instead.
            logger.error("could not send a reply", metadata: ["peer": "\(peer)", "method": "\(method)", "reason": "\(error)"])
            if let header {
                try answer(header, with: TApplicationError(error: .internalError, message: "the reply to \(method) is too large"),
                           wire: wire)
            }
            return true
        case let error as TTransportError:
            logger.warning("closing the connection", metadata: ["peer": "\(peer)", "reason": "\(error)"])
            return false
        case let error as SystemError:
            logger.warning("closing the connection", metadata: ["peer": "\(peer)", "reason": "\(error)"])
            return false
        case let error as TProtocolError:
            let canGoOn = wire.framed != nil
            logger.warning(canGoOn ? "refusing a malformed request" : "refusing a malformed request and closing the connection",
                           metadata: ["peer": "\(peer)", "method": "\(method)", "reason": "\(error)"])
            if let header, header.type != .oneway {
                try answer(header, with: TApplicationError(error: .protocolError, message: error.description), wire: wire)
            }
            return canGoOn
        default:
            logger.error("failed to process a request", metadata: ["peer": "\(peer)", "method": "\(method)", "error": "\(error)"])
            if let header, header.type != .oneway {
                try answer(header, with: TApplicationError(error: .internalError, message: "internal error processing \(method)"),
                           wire: wire)
            }
            return wire.framed != nil
        }
    }

    private func answer(_ header: MessageHeader, with error: TApplicationError, wire: ThriftWire) throws {
        wire.discardPendingWrites()
        do {
            try wire.proto.writeException(messageName: header.name, sequenceID: header.sequenceID, ex: error)
            try wire.proto.transport.flush()
        } catch let failure as SystemError where failure.errno == ECONNRESET || failure.errno == EPIPE {
            throw failure
        }
    }
}

/// The connection handler's reference to its server (see `handlerTarget`).
private final class HandlerTarget {
    var server: ThriftServer?
}

/// What the server knows of one connection: whether it waits between requests.
final class ThriftConnectionState {
    let socket: Socket
    @exclusivity(unchecked) var isIdle = true

    init(socket: Socket) { self.socket = socket }
}
