import Glibc
public import Logging
public import Sprout
public import SproutTLS

/// An HTTP/1.1 server: one greenlet per connection, handlers written as plain blocking code.
///
/// ```swift
/// let router = Router()
/// router.get("/") { _ in .text("Hello, World!") }
/// router.get("/feed/:user") { request in .text("feed of \(request.parameters["user"]!)") }
/// let server = HTTPServer(configuration: .init(port: 8080), responder: router)
/// try server.serveForever()   // stop(timeout:) from another greenlet, e.g. on SIGTERM
/// ```
///
/// Requests on a connection are served in order (pipelining included); keep-alive is the
/// default for HTTP/1.1. Each phase has its own timeout (see ``Configuration``). When
/// ``Configuration/maxConnections`` are open, the connection idle the longest is closed to admit a
/// new one, and only when none is idle does accepting wait. Parse errors are answered with
/// their status (400, 408, 413, 414, 417, 431, 501, 505) and close the connection; a handler's
/// error becomes a 500 with a generic body and one log line. Use the server from the thread
/// (hub) that started it.
public final class HTTPServer {
    /// What a server does, with the defaults `sprout serve` uses.
    public struct Configuration: Sendable {
        /// The address to bind (`"127.0.0.1"`, `"0.0.0.0"`, `"::"`).
        public var host: String
        /// The port; 0 picks a free one (read ``HTTPServer/port`` after ``HTTPServer/start()``).
        public var port: Int
        /// The kernel's queue of connections not yet accepted.
        public var backlog: Int32
        /// The most connections open at once.
        public var maxConnections: Int
        /// Time from a request's first byte (or a connection's opening) to its complete head;
        /// bytes that trickle in do not extend it. 408, then close.
        public var headerTimeout: Duration
        /// How long a kept-alive connection may wait for its next request.
        public var idleTimeout: Duration
        /// The longest wait for more body bytes while a handler reads (408, then close).
        public var bodyReadTimeout: Duration
        /// The longest one write of a response may take (the head with a small body, a large
        /// body, or one piece of a stream); a client that stops reading is cut off.
        public var writeTimeout: Duration
        /// The default body limit of a route (413 beyond).
        public var maxBodySize: Int
        /// Request line, head and field-count limits (414, 431).
        public var headLimits: HeadLimits
        /// Logs one line per request (method, target, status, bytes, duration) at `info`.
        public var accessLog: Bool
        /// An unread body up to this size is read and dropped so that the connection can carry
        /// the next request; a larger one closes the connection.
        public var maxDiscardedBodyBytes: Int
        /// How long an idle connection keeps its buffer before giving it back (and its stack
        /// pages); under steady load the next request usually arrives first.
        public var idleGrace: Duration
        /// How long a closing connection reads and drops what the client still sends, so that
        /// the response is not lost to a reset.
        public var lingerTimeout: Duration
        /// Stack bytes of each connection's greenlet (handlers with deep recursion or large
        /// frames need more); nil for the default 256 KiB.
        public var connectionStackSize: Int?
        /// Serves HTTPS with this configuration (certificate, key, ALPN, handshake timeout);
        /// nil serves plain HTTP. The handshake runs in the connection's greenlet: one that
        /// fails or stalls (cut at the handshake timeout) never holds up other connections.
        public var tls: TLSConfiguration?
        /// Binds with `SO_REUSEPORT`, so that several servers (one per hub or per process) can
        /// listen on the same port, the kernel spreading connections over them.
        public var reusePort: Bool
        /// When ``maxConnections`` are open and a new client waits, close the connection idle
        /// the longest to admit it (the default, nginx's reuse of keep-alive connections). Set
        /// it false for a strict limit: accepting then waits until a connection ends, and a
        /// connection waiting for its first request is never closed for a newcomer.
        public var evictsIdleConnections = true
        /// Records swift-metrics (requests by method, route and status, their durations, open
        /// and idle connections, bytes in and out; see the "Serving HTTP" article) when a
        /// metrics backend has been bootstrapped before ``HTTPServer/start()``. With no backend
        /// nothing is recorded and nothing is paid. Set false for a server that should not
        /// count itself, such as the one serving a metrics endpoint.
        public var recordsMetrics = true
        /// Dimensions added to every metric this server records (`[("worker", "3")]`). Give
        /// every server of a process the same dimension names: swift-prometheus stops the
        /// process when one metric has series both with and without labels.
        public var metricsDimensions: [(String, String)] = []

        /// A configuration with the documented defaults: port 8080, 10,000 connections,
        /// header timeout 10 s, idle 10 s, body read 30 s, write 30 s, 2 MiB bodies.
        public init(host: String = "127.0.0.1", port: Int = 8080, backlog: Int32 = 1024, maxConnections: Int = 10_000,
                    headerTimeout: Duration = .seconds(10), idleTimeout: Duration = .seconds(10),
                    bodyReadTimeout: Duration = .seconds(30), writeTimeout: Duration = .seconds(30),
                    maxBodySize: Int = 2 << 20, headLimits: HeadLimits = HeadLimits(), accessLog: Bool = false,
                    maxDiscardedBodyBytes: Int = 256 * 1024, idleGrace: Duration = .milliseconds(50),
                    lingerTimeout: Duration = .milliseconds(500), connectionStackSize: Int? = nil,
                    tls: TLSConfiguration? = nil, reusePort: Bool = false) {
            self.host = host
            self.port = port
            self.backlog = backlog
            self.maxConnections = maxConnections
            self.headerTimeout = headerTimeout
            self.idleTimeout = idleTimeout
            self.bodyReadTimeout = bodyReadTimeout
            self.writeTimeout = writeTimeout
            self.maxBodySize = maxBodySize
            self.headLimits = headLimits
            self.accessLog = accessLog
            self.maxDiscardedBodyBytes = maxDiscardedBodyBytes
            self.idleGrace = idleGrace
            self.lingerTimeout = lingerTimeout
            self.connectionStackSize = connectionStackSize
            self.tls = tls
            self.reusePort = reusePort
        }
    }

    private enum State { case created, serving, draining, stopped }

    /// The configuration the server was created with.
    public let configuration: Configuration
    /// Where handler failures, rejected requests (debug) and the access log go.
    public var logger: Logger
    let responder: any HTTPResponder
    let bufferPool = BufferPool(bufferSize: 16 * 1024, hotLimit: 64)
    let dateCache = DateCache()
    /// Made from ``Configuration/tls`` by ``start()``.
    private(set) var tlsContext: TLSContext?
    /// Made by ``start()`` when a metrics backend is bootstrapped.
    private(set) var metrics: HTTPServerMetrics?
    @exclusivity(unchecked) private var state = State.created
    private var listener: Socket?
    private var providedListener: Socket?
    private var acceptor: Greenlet<Void>?
    private let handlers = Group()
    private let stopped = Event()
    private let capacityChanged = Event()
    @exclusivity(unchecked) private var acceptorWaits = false
    @exclusivity(unchecked) private var openCount = 0
    /// The most connections open since memory was last handed back (see `connectionEnded`).
    @exclusivity(unchecked) private var peakOpenCount = 0
    // Unowned, as the connections' own links (see HTTPConnection).
    @exclusivity(unchecked) private unowned(unsafe) var idleOldest: HTTPConnection?
    @exclusivity(unchecked) private unowned(unsafe) var idleNewest: HTTPConnection?
    /// Connections waiting for a request now.
    @exclusivity(unchecked) public private(set) var idleConnectionCount = 0
    /// Idle connections closed to admit new ones since the server started.
    public private(set) var evictedConnectionCount = 0

    /// Creates a server that answers with `responder`. Nothing is bound until ``start()``.
    /// - Precondition: `configuration.maxConnections` is at least 1.
    public init(configuration: Configuration = Configuration(), logger: Logger = Logger(label: "sprout.http"),
                responder: any HTTPResponder) {
        precondition(configuration.maxConnections >= 1, "HTTPServer: maxConnections must be at least 1")
        self.configuration = configuration
        self.logger = logger
        self.responder = responder
    }

    /// Creates a server that answers with `responder` on `listener`, a listening socket of this
    /// thread's hub, instead of binding ``Configuration/host`` and ``Configuration/port``: one
    /// adopted from a descriptor that a ``Supervisor`` or systemd passed down
    /// (``Socket/init(fileDescriptor:)``), or bound by the caller. The server closes it when it
    /// stops.
    /// - Precondition: `configuration.maxConnections` is at least 1.
    public convenience init(configuration: Configuration = Configuration(), listener: Socket,
                            logger: Logger = Logger(label: "sprout.http"), responder: any HTTPResponder) {
        self.init(configuration: configuration, logger: logger, responder: responder)
        self.providedListener = listener
    }

    /// Creates a server that answers every request with `handler`.
    public convenience init(configuration: Configuration = Configuration(), logger: Logger = Logger(label: "sprout.http"),
                            handler: @escaping (Request) throws -> Response) {
        self.init(configuration: configuration, logger: logger, responder: HTTPHandler(handler))
    }

    /// The bound port (after ``start()``), 0 before.
    public var port: Int { listener?.localAddress.port ?? 0 }
    /// Connections open now.
    public var connectionCount: Int { openCount }
    /// True between ``start()`` and ``stop(timeout:)``.
    public var isServing: Bool { state == .serving }
    /// True while a graceful stop is finishing in-flight requests.
    public var isDraining: Bool { state == .draining || state == .stopped }

    /// Binds, listens and starts accepting in a new greenlet; returns at once. Raises the
    /// process's open-file limit to its hard limit first.
    ///
    /// - Throws: ``SystemError`` (`EADDRINUSE`, …), ``ResolverError``; ``TLSError`` for a
    ///   certificate or key that does not load; ``ServerError/alreadyStarted`` if started before.
    public func start() throws {
        guard state == .created else { throw ServerError.alreadyStarted }
        if let tls = configuration.tls { tlsContext = try TLSContext(configuration: tls) }
        metrics = HTTPServerMetrics.makeIfBootstrapped(configuration: configuration)
        _ = try? raiseOpenFileLimit()
        let listener = try providedListener
            ?? Socket.listen(host: configuration.host, port: configuration.port, backlog: configuration.backlog,
                             reusePort: configuration.reusePort)
        providedListener = nil
        self.listener = listener
        state = .serving
        acceptor = spawn(name: "HTTPServer accept \(listener.localAddress)") { [self] in
            try acceptLoop(listener)
        }
        logger.debug("serving", metadata: ["address": "\(listener.localAddress)"])
    }

    /// Starts the server if needed and waits until ``stop(timeout:)`` has finished.
    ///
    /// - Throws: What ``start()`` throws; `GreenletExit` or an enclosing `Timeout`, after
    ///   stopping the server with a one-second grace period.
    /// - Note: A switch point.
    public func serveForever() throws {
        if state == .created { try start() }
        do {
            try stopped.wait()
        } catch {
            stop(timeout: .seconds(1))
            throw error
        }
    }

    /// Stops gracefully: stops accepting, closes idle connections at once (answering a request
    /// that has already arrived on one), lets in-flight requests finish with `Connection: close`
    /// for up to `timeout`, then kills what is left. Idempotent; returns when done.
    ///
    /// - Note: A switch point while requests finish.
    public func stop(timeout: Duration = .seconds(10)) {
        guard state == .serving else {
            if state == .created { state = .stopped; stopped.set() }
            return
        }
        state = .draining
        acceptor?.kill()
        acceptQueuedClients()
        listener?.close()
        var idle = idleOldest
        while let connection = idle {
            idle = connection.idleNext
            connection.wakeForDrain()
        }
        // A handler that stops its own server cannot wait for itself: it is left out, and its
        // response goes out with `Connection: close` once it returns.
        let me = Greenlet.current
        let others = handlers.greenlets.filter { $0 !== me }
        if !others.isEmpty {
            do {
                _ = try joinAll(others, timeout: timeout)
            } catch {
                // Interrupted while waiting: finish at once.
            }
            if !killAll(others, timeout: .seconds(1)) {
                logger.error("a connection handler did not end within 1 s of being killed (it caught GreenletExit); stopping without it")
            }
        }
        state = .stopped
        stopped.set()
        logger.debug("stopped")
    }

    // MARK: Accepting

    private func acceptLoop(_ listener: Socket) throws {
        while state == .serving {
            try waitForCapacity(listener)
            guard let (socket, peer) = try listener.acceptRetrying(logger: logger, while: { state == .serving }) else {
                return
            }
            startConnection(socket, peer: peer)
        }
    }

    /// Before the listener closes in a graceful stop: clients the kernel has already queued
    /// would be reset by the close; take them in (as many as there is room for) and answer their
    /// first request with `Connection: close`.
    private func acceptQueuedClients() {
        guard let listener else { return }
        while openCount < configuration.maxConnections, let (socket, peer) = try? listener.acceptIfPending() {
            startConnection(socket, peer: peer)
        }
    }

    private func startConnection(_ socket: Socket, peer: SocketAddress) {
        openCount += 1
        if openCount > peakOpenCount { peakOpenCount = openCount }
        metrics?.recordOpenConnections(openCount)
        let connection = HTTPConnection(socket: socket, peer: peer, server: self)
        let greenlet = spawn(name: "http connection", stackSize: configuration.connectionStackSize) {
            try connection.run()
        }
        if greenlet.isReady {
            logger.error("cannot start a connection handler", metadata: ["error": "\(greenlet.error.map { "\($0)" } ?? "?")"])
            socket.close()
            openCount -= 1
            metrics?.recordOpenConnections(openCount)
            return
        }
        connection.greenlet = greenlet
        handlers.add(greenlet)
    }

    /// Returns once a connection may be accepted: at once below the limit; else, once a new
    /// client is waiting in the backlog, after closing the oldest idle connection (nginx's reuse
    /// of keep-alive connections), or after waiting for one to end or become idle.
    private func waitForCapacity(_ listener: Socket) throws {
        while openCount >= configuration.maxConnections {
            // Wait for a client only when there is an idle connection to make room for it: on a
            // listener shared with other processes or hubs, the kernel wakes one waiter per
            // connection (EPOLLEXCLUSIVE), and a full acceptor that took the wake-up without
            // accepting would leave the client queued while others could serve it.
            guard configuration.evictsIdleConnections, idleOldest != nil else {
                try waitForCapacityChange()
                continue
            }
            // Evict only for a client that is actually waiting.
            _ = try listener.wait(readable: true)
            if openCount < configuration.maxConnections { return }
            if let victim = idleOldest {
                if evictedConnectionCount == 0 {
                    logger.warning("connection limit reached; closing idle keep-alive connections to admit new ones",
                                   metadata: ["maxConnections": "\(configuration.maxConnections)"])
                }
                evictedConnectionCount += 1
                removeIdle(victim)
                victim.isEvicted = true
                openCount -= 1
                metrics?.recordOpenConnections(openCount)
                victim.socket.close()
                continue
            }
            try waitForCapacityChange()
        }
    }

    /// Parks until a connection ends or becomes idle.
    private func waitForCapacityChange() throws {
        capacityChanged.clear()
        acceptorWaits = true
        defer { acceptorWaits = false }
        _ = try capacityChanged.wait()
    }

    // MARK: Connection bookkeeping (called by HTTPConnection)

    func connectionEnded(_ connection: HTTPConnection) {
        removeIdle(connection)
        if !connection.isEvicted {
            openCount -= 1
            metrics?.recordOpenConnections(openCount)
        }
        // After a spike of connections has ended, glibc keeps their freed objects' pages;
        // hand them back once (malloc_trim releases whole free pages anywhere in the heap).
        if peakOpenCount >= 1024 && openCount <= peakOpenCount / 8 {
            peakOpenCount = openCount
            releaseFreeHeapMemory()
        }
        connection.greenlet = nil
        if acceptorWaits { capacityChanged.set() }
    }

    func becameIdle(_ connection: HTTPConnection) {
        guard !connection.isIdle else { return }
        connection.isIdle = true
        connection.idlePrevious = idleNewest
        connection.idleNext = nil
        if let idleNewest { idleNewest.idleNext = connection } else { idleOldest = connection }
        idleNewest = connection
        idleConnectionCount += 1
        metrics?.recordIdleConnections(idleConnectionCount)
        if acceptorWaits { capacityChanged.set() }
    }

    func becameBusy(_ connection: HTTPConnection) {
        removeIdle(connection)
    }

    private func removeIdle(_ connection: HTTPConnection) {
        guard connection.isIdle else { return }
        connection.isIdle = false
        if let previous = connection.idlePrevious { previous.idleNext = connection.idleNext } else { idleOldest = connection.idleNext }
        if let next = connection.idleNext { next.idlePrevious = connection.idlePrevious } else { idleNewest = connection.idlePrevious }
        connection.idlePrevious = nil
        connection.idleNext = nil
        idleConnectionCount -= 1
        metrics?.recordIdleConnections(idleConnectionCount)
    }
}
