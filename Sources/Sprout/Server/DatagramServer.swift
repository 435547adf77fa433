import Glibc
public import Logging

/// A UDP server that runs a handler in a new greenlet for every datagram (gevent's
/// `DatagramServer`). Replies go through ``sendTo(_:address:)``, which serialises writers.
public final class DatagramServer {
    /// Handles one datagram from `peer`.
    public typealias Handler = (_ datagram: [UInt8], _ peer: SocketAddress, _ server: DatagramServer) throws -> Void

    /// The host the server binds.
    public let host: String
    /// The largest datagram received whole; longer ones are truncated by the kernel.
    public let maxDatagramSize: Int
    /// The most handlers running at once. At the limit the server stops reading: new datagrams
    /// wait in the kernel's receive queue, which drops them when it is full (UDP's back-pressure).
    public let maxConcurrentHandlers: Int
    /// Stack bytes of each handler's greenlet; nil for the default.
    public let stackSize: Int?
    /// Where handler errors are logged.
    public var logger: Logger
    private let requestedPort: Int
    private let handler: Handler
    private var socket: Socket?
    private var receiver: Greenlet<Void>?
    private let handlers = Group()
    private let sendLock = Lock()
    private let slots: Semaphore
    private let stopped = Event()
    private var isStarted = false

    /// Creates a server for `host:port` (port 0 picks a free one). Nothing is bound until
    /// ``start()``.
    ///
    /// - Precondition: `maxDatagramSize` and `maxConcurrentHandlers` are positive.
    public init(host: String = "127.0.0.1", port: Int, maxDatagramSize: Int = 65507, maxConcurrentHandlers: Int = 1024,
                stackSize: Int? = nil, logger: Logger = Logger(label: "sprout.DatagramServer"),
                handler: @escaping Handler) {
        precondition(maxDatagramSize > 0, "DatagramServer: maxDatagramSize must be positive")
        precondition(maxConcurrentHandlers > 0, "DatagramServer: maxConcurrentHandlers must be positive")
        self.maxConcurrentHandlers = maxConcurrentHandlers
        self.stackSize = stackSize
        slots = Semaphore(maxConcurrentHandlers)
        self.host = host
        self.requestedPort = port
        self.maxDatagramSize = maxDatagramSize
        self.logger = logger
        self.handler = handler
    }

    /// The bound port (after ``start()``), 0 before.
    public var port: Int { socket?.localAddress.port ?? 0 }
    /// The bound address (after ``start()``).
    public var address: SocketAddress? { socket?.localAddress }

    /// Binds and starts receiving in a new greenlet; returns at once.
    /// - Throws: ``SystemError``, ``ResolverError``; ``ServerError/alreadyStarted``.
    public func start() throws {
        guard !isStarted else { throw ServerError.alreadyStarted }
        isStarted = true
        let socket = try Socket.udp(host: host, port: requestedPort)
        self.socket = socket
        receiver = spawn(name: "DatagramServer \(socket.localAddress)") { [self] in
            while !socket.isClosed {
                try slots.acquire()
                let (datagram, peer): ([UInt8], SocketAddress)
                do {
                    (datagram, peer) = try socket.recvFrom(maxLength: maxDatagramSize)
                } catch let error as SystemError {
                    slots.release()
                    if socket.isClosed { return }
                    logger.warning("recvfrom failed", metadata: ["error": "\(error)"])
                    try sleep(for: .milliseconds(10))
                    continue
                }
                let greenlet = handlers.spawn(stackSize: stackSize) { [self] in
                    defer { slots.release() }
                    do {
                        try handler(datagram, peer, self)
                    } catch is GreenletExit {
                        throw GreenletExit()
                    } catch {
                        logger.error("datagram handler failed", metadata: ["peer": "\(peer)", "error": "\(error)"])
                    }
                }
                if greenlet.isReady {
                    // No stack could be mapped: the body never ran to release its slot.
                    logger.error("cannot start a datagram handler", metadata: ["error": "\(greenlet.error.map { "\($0)" } ?? "?")"])
                    slots.release()
                }
            }
        }
    }

    /// Sends `bytes` to `address` from the server's socket; greenlets sending at once take turns.
    /// - Throws: ``SystemError``; ``ServerError`` if not started; errors while waiting.
    /// - Note: A switch point.
    @discardableResult
    public func sendTo(_ bytes: [UInt8], address: SocketAddress) throws -> Int {
        guard let socket else { throw ServerError(description: "the datagram server is not started") }
        return try sendLock.withLock { try socket.sendTo(bytes, address: address) }
    }

    /// Starts the server if needed and waits until ``stop(timeout:)``.
    /// - Throws: as ``start()``; `GreenletExit` or a `Timeout` while serving (after stopping).
    public func serveForever() throws {
        if !isStarted { try start() }
        try ServerLifecycle.serve(until: stopped) { stop(timeout: $0) }
    }

    /// Stops receiving, lets handlers finish for up to `timeout`, kills the rest. Idempotent.
    public func stop(timeout: Duration = .seconds(1)) {
        guard let socket, !socket.isClosed else { return }
        receiver?.kill()
        socket.close()
        ServerLifecycle.drain(handlers, timeout: timeout)
        stopped.set()
    }
}
