import Glibc
public import Logging

/// A TCP (or Unix-domain) server that runs a handler in a new greenlet for every connection
/// (gevent's `StreamServer`).
///
/// An accept loop runs in a greenlet of its own. The connection is closed when the handler
/// returns or throws; a handler's error is logged and never stops the server. With
/// `maxConnections`, accepting pauses while that many handlers run, leaving new connections
/// in the kernel's backlog. Use the server from the thread that started it.
///
/// ```swift
/// let server = StreamServer(port: 9000) { connection, peer in
///     var buffer = [UInt8](repeating: 0, count: 65536)
///     while true {
///         let count = try buffer.withUnsafeMutableBytes { try connection.recv(into: $0) }
///         if count == 0 { return }
///         try buffer.withUnsafeBytes { try connection.sendAll(UnsafeRawBufferPointer(rebasing: $0[..<count])) }
///     }
/// }
/// try server.serveForever()
/// ```
public final class StreamServer {
    /// Handles one connection; returning (or throwing) closes it.
    public typealias Handler = (_ connection: Socket, _ peer: SocketAddress) throws -> Void

    private enum State { case created, serving, stopped }

    /// The host the server binds.
    public let host: String
    /// The most connections handled at once, or `nil` for no limit.
    public let maxConnections: Int?
    /// The listen backlog.
    public let backlog: Int32
    /// Stack bytes of each connection's greenlet; nil for the default.
    public let stackSize: Int?
    /// Where handler errors and accept failures are logged.
    public var logger: Logger
    private let requestedPort: Int
    private let unixPath: String?
    private let handler: Handler
    private var state = State.created
    private var listener: Socket?
    private var adoptedListener: Socket?
    private var acceptor: Greenlet<Void>?
    private let handlers = Group()
    private let slots: Semaphore?
    private let stopped = Event()
    private var peakConnections = 0

    /// Creates a server for `host:port` (port 0 picks a free port: read ``port`` after
    /// ``start()``). Nothing is bound until ``start()``.
    ///
    /// - Precondition: `maxConnections`, if given, is at least 1.
    /// - Parameter stackSize: Stack bytes of each connection's greenlet (see
    ///   ``spawn(name:stackSize:_:)``); the default 256 KiB when nil.
    public convenience init(host: String = "127.0.0.1", port: Int, maxConnections: Int? = nil, backlog: Int32 = 1024,
                            stackSize: Int? = nil, logger: Logger = Logger(label: "sprout.StreamServer"),
                            handler: @escaping Handler) {
        self.init(host: host, port: port, unixPath: nil, maxConnections: maxConnections, backlog: backlog,
                  stackSize: stackSize, logger: logger, handler: handler)
    }

    /// Creates a server on the Unix-domain socket `path` (which must not exist yet).
    ///
    /// - Precondition: `maxConnections`, if given, is at least 1.
    public convenience init(unixPath path: String, maxConnections: Int? = nil, backlog: Int32 = 1024,
                            stackSize: Int? = nil, logger: Logger = Logger(label: "sprout.StreamServer"),
                            handler: @escaping Handler) {
        self.init(host: path, port: 0, unixPath: path, maxConnections: maxConnections, backlog: backlog,
                  stackSize: stackSize, logger: logger, handler: handler)
    }

    /// Creates a server that accepts on `listener`, a socket already listening (one inherited
    /// from a ``Supervisor``'s master, or bound with options of the caller's).
    ///
    /// - Precondition: `maxConnections`, if given, is at least 1.
    public convenience init(listener: Socket, maxConnections: Int? = nil, stackSize: Int? = nil,
                            logger: Logger = Logger(label: "sprout.StreamServer"), handler: @escaping Handler) {
        self.init(host: "\(listener.localAddress)", port: listener.localAddress.port, unixPath: nil,
                  maxConnections: maxConnections, backlog: 0, stackSize: stackSize, logger: logger, handler: handler)
        adoptedListener = listener
    }

    private init(host: String, port: Int, unixPath: String?, maxConnections: Int?, backlog: Int32,
                 stackSize: Int?, logger: Logger, handler: @escaping Handler) {
        self.stackSize = stackSize
        if let maxConnections {
            precondition(maxConnections >= 1, "StreamServer: maxConnections must be at least 1 (got \(maxConnections))")
        }
        self.host = host
        self.requestedPort = port
        self.unixPath = unixPath
        self.maxConnections = maxConnections
        self.backlog = backlog
        self.logger = logger
        self.handler = handler
        slots = maxConnections.map { Semaphore($0) }
    }

    /// The bound address (after ``start()``).
    public var address: SocketAddress? { listener?.localAddress }
    /// The bound port (after ``start()``), 0 before.
    public var port: Int { listener?.localAddress.port ?? 0 }
    /// Connections being handled now.
    public var connectionCount: Int { handlers.count }
    /// True between ``start()`` and ``stop(timeout:)``.
    public var isServing: Bool { state == .serving }

    /// Binds, listens and starts accepting in a new greenlet; returns at once. Raises the
    /// process's open-file limit to its hard limit first.
    ///
    /// - Throws: ``SystemError`` (`EADDRINUSE`, …), ``ResolverError``, ``SocketAddressError``;
    ///   ``ServerError/alreadyStarted`` if started before.
    public func start() throws {
        guard state == .created else { throw ServerError.alreadyStarted }
        _ = try? raiseOpenFileLimit()
        let listener = try adoptedListener ?? unixPath.map { try Socket.listen(unixPath: $0, backlog: backlog) }
            ?? Socket.listen(host: host, port: requestedPort, backlog: backlog)
        adoptedListener = nil
        self.listener = listener
        state = .serving
        acceptor = spawn(name: "StreamServer accept \(listener.localAddress)") { [self] in
            try acceptLoop(listener)
        }
        logger.debug("serving", metadata: ["address": "\(listener.localAddress)"])
    }

    /// Starts the server if needed and waits until ``stop(timeout:)`` is called.
    ///
    /// - Throws: What ``start()`` throws; `GreenletExit` or an enclosing `Timeout` while
    ///   serving, after stopping the server (with a one-second grace period).
    /// - Note: A switch point.
    public func serveForever() throws {
        if state == .created { try start() }
        try ServerLifecycle.serve(until: stopped) { stop(timeout: $0) }
    }

    /// Stops accepting, closes the listening socket, lets running handlers finish for up to
    /// `timeout`, then kills the rest (their connections close). Idempotent.
    ///
    /// - Note: A switch point while handlers finish. If the caller is killed meanwhile, the
    ///   remaining handlers are killed at once and the kill is delivered at the caller's next
    ///   switch point.
    public func stop(timeout: Duration = .seconds(1)) {
        guard state == .serving else {
            state = .stopped
            return
        }
        state = .stopped
        acceptor?.kill()
        listener?.close()
        // The socket file would keep the path taken (bind fails with EADDRINUSE next time).
        if let unixPath { unlink(unixPath) }
        ServerLifecycle.drain(handlers, timeout: timeout)
        stopped.set()
        logger.debug("stopped")
    }

    private func acceptLoop(_ listener: Socket) throws {
        while state == .serving {
            if let slots { try slots.acquire() }
            guard let (connection, peer) = try listener.acceptRetrying(logger: logger, while: { state == .serving }) else {
                slots?.release()
                return
            }
            let greenlet = spawn(name: "connection \(peer)", stackSize: stackSize) { [self, handler, logger, slots] in
                defer {
                    connection.close()
                    slots?.release()
                    connectionEnded()
                }
                do {
                    try handler(connection, peer)
                } catch is GreenletExit {
                    throw GreenletExit()
                } catch let error as SystemError where error.errno == ECONNRESET || error.errno == EPIPE {
                    // The peer went away: its business, not a handler bug (gevent ignores these too).
                    logger.debug("connection reset by peer", metadata: ["peer": "\(peer)", "error": "\(error)"])
                } catch {
                    logger.error("connection handler failed", metadata: ["peer": "\(peer)", "error": "\(error)"])
                }
            }
            if greenlet.isReady {
                // No stack could be mapped: the body never ran, so clean up for it.
                logger.error("cannot start a connection handler", metadata: ["peer": "\(peer)", "error": "\(greenlet.error.map { "\($0)" } ?? "?")"])
                connection.close()
                slots?.release()
                continue
            }
            handlers.add(greenlet)
            if handlers.count > peakConnections { peakConnections = handlers.count }
        }
    }

    /// After a spike of connections has ended, hands the C heap's free pages back once (glibc
    /// keeps them otherwise, and resident memory stays at its peak).
    private func connectionEnded() {
        if peakConnections >= 1024 && handlers.count <= peakConnections / 8 {
            peakConnections = handlers.count
            releaseFreeHeapMemory()
        }
    }
}

/// Misuse of a server.
public struct ServerError: Error, Equatable, CustomStringConvertible {
    public let description: String

    /// ``StreamServer/start()`` or ``DatagramServer/start()`` was called twice.
    public static let alreadyStarted = ServerError(description: "the server was already started")
}
