import ArgumentParser
import Glibc
import Logging
import Sprout
import SproutHTTP
import SproutTLS
import Synchronization

/// Set by the first hub that is asked to stop, for hubs that start listening for the signal later.
private let stopRequested = Atomic<Bool>(false)

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The demo HTTP/1.1 server (GET /, POST /echo, GET /stream, GET /sleep, GET /spin, GET /libc-sleep, GET /headers, GET /whoami).",
        discussion: """
            SIGTERM or SIGINT stops gracefully: in-flight requests finish, idle connections close, exit 0. \
            SIGUSR1 prints every greenlet (state, what it waits on, age, backtrace) to stderr. \
            A request that computes without yielding for longer than --block-threshold (GET /spin?ms=500 does) \
            is reported on stderr with its backtrace. \
            With --workers N (default: one per CPU) a master binds the port and supervises N worker processes: \
            SIGHUP replaces them gracefully, SIGTTIN/SIGTTOU add or remove one, SIGQUIT stops at once, \
            a worker that dies is replaced and one whose hub stops turning for --worker-timeout is killed. \
            --workers 0 serves in this one process. \
            --metrics-port N serves Prometheus metrics (requests by method, route and status, durations, \
            connections, bytes, greenlets, loop lag, blocked-hub episodes) at GET /metrics on a listener of its own; \
            with workers, worker i serves them on N + i, labelled worker="i".
            """)

    @Option(help: "Address to bind.")
    var host = "127.0.0.1"

    @Option(help: "Port to listen on (0 picks a free one).")
    var port = 8080

    @Option(help: "Most connections open at once; idle keep-alive ones are closed to admit new ones.")
    var maxConnections = 10_000

    @Option(help: "Seconds from a request's first byte to its complete head (408 after).")
    var headerTimeout: Double = 10

    @Option(help: "Seconds an idle keep-alive connection is kept.")
    var idleTimeout: Double = 10

    @Option(help: "Seconds a graceful stop waits for in-flight requests.")
    var drainTimeout: Double = 10

    @Flag(help: "Log one line per request.")
    var accessLog = false

    @Option(help: "Milliseconds a hub may go without turning before the monitor reports it (0: no monitor).")
    var blockThreshold = 100

    @Option(help: "PEM file of the certificate chain: serve HTTPS (with --tls-key).")
    var tlsCert: String?

    @Option(help: "PEM file of the private key of --tls-cert.")
    var tlsKey: String?

    @Option(help: "Seconds a client has to finish its TLS handshake.")
    var tlsHandshakeTimeout: Double = 10

    @Option(help: "Worker processes under a supervising master (default: one per CPU; 0: serve in this process).")
    var workers = min(Supervisor.processorCount, Supervisor.maxWorkers)

    @Option(help: "Hubs (threads) per process, each with its own accept loop; handlers run on the hub that accepted.")
    var threads = 1

    @Option(help: "Seconds a worker's hub may go without turning before the master kills and replaces it (0: never).")
    var workerTimeout: Double = 30

    @Option(help: "Serve Prometheus metrics at GET /metrics on this port (worker i of --workers on port + i).")
    var metricsPort: Int?

    @Option(help: "Address the metrics listener binds.")
    var metricsHost = "127.0.0.1"

    @Flag(help: "Each hub binds its own SO_REUSEPORT listener (the kernel spreads connections by address hash) instead of all sharing the master's.")
    var reusePort = false

    func validate() throws {
        guard (tlsCert == nil) == (tlsKey == nil) else { throw ValidationError("--tls-cert and --tls-key go together") }
        guard tlsHandshakeTimeout > 0 else { throw ValidationError("--tls-handshake-timeout must be positive") }
        guard (0...65535).contains(port) else { throw ValidationError("--port must be in 0...65535") }
        guard maxConnections >= 1 else { throw ValidationError("--max-connections must be at least 1") }
        guard blockThreshold >= 0 else { throw ValidationError("--block-threshold must be 0 or more") }
        guard headerTimeout > 0, idleTimeout > 0, drainTimeout >= 0 else {
            throw ValidationError("timeouts must be positive")
        }
        guard (0...Supervisor.maxWorkers).contains(workers) else {
            throw ValidationError("--workers must be in 0...\(Supervisor.maxWorkers)")
        }
        guard (1...31).contains(threads) else { throw ValidationError("--threads must be in 1...31") }
        if let metricsPort {
            let last = metricsPort == 0 ? 0 : metricsPort + max(workers, 1) - 1
            guard (0...65535).contains(metricsPort), last <= 65535 else {
                throw ValidationError("--metrics-port must be in 0...65535, and leave room for one port per worker")
            }
            guard metricsPort == 0 || port == 0 || !(metricsPort...last).contains(port) else {
                throw ValidationError("--metrics-port must not be the application's --port: metrics have a listener of their own")
            }
        }
        guard workerTimeout == 0 || (0.01...86_400).contains(workerTimeout) else {
            throw ValidationError("--worker-timeout must be 0 (never) or 0.01...86400 seconds")
        }
        for (name, value) in [("--header-timeout", headerTimeout), ("--idle-timeout", idleTimeout),
                              ("--drain-timeout", drainTimeout), ("--tls-handshake-timeout", tlsHandshakeTimeout)]
        where value > 86_400 {
            throw ValidationError("\(name) must be at most 86400 seconds")
        }
    }

    func run() throws {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .info
            return handler
        }
        // Before any worker forks: each inherits the backend with an empty registry of its own.
        if metricsPort != nil { MetricsEndpoint.bootstrap() }
        if let tls = configuration.tls {
            // Checked once here, so that a bad certificate stops us before any worker starts.
            do { _ = try TLSContext(configuration: tls) } catch let error as TLSError { throw ValidationError("\(error)") }
        }
        guard workers > 0 else {
            try serveHubs(sharedListener: nil, port: port, worker: nil)
            return
        }
        // The master binds, so that a port taken is reported at once and workers inherit the
        // socket; with --reuse-port it only finds the port (for --port 0) and each hub binds its own.
        let listener = try Socket.listen(host: host, port: port, backlog: configuration.backlog, reusePort: reusePort)
        let boundPort = listener.localAddress.port
        let shared: Int32? = reusePort ? nil : listener.fileDescriptor
        if reusePort { listener.close() }
        announce(port: boundPort)
        let supervisor = Supervisor(configuration: .init(
            workers: workers, workerTimeout: workerTimeout > 0 ? .milliseconds(Int(workerTimeout * 1000)) : nil,
            gracefulTimeout: drain + .seconds(5))) { worker in
            try serveHubs(sharedListener: shared, port: boundPort, worker: worker)
        }
        supervisor.willStop = { listener.close() }
        try supervisor.run()
    }

    private var drain: Duration { .milliseconds(Int(drainTimeout * 1000)) }

    private var configuration: HTTPServer.Configuration {
        var configuration = HTTPServer.Configuration(
            host: host, port: port, maxConnections: maxConnections,
            headerTimeout: .milliseconds(Int(headerTimeout * 1000)), idleTimeout: .milliseconds(Int(idleTimeout * 1000)),
            accessLog: accessLog)
        if let tlsCert, let tlsKey {
            configuration.tls = .server(certificateChainFile: tlsCert, privateKeyFile: tlsKey,
                                        applicationProtocols: ["http/1.1"],
                                        handshakeTimeout: .milliseconds(Int(tlsHandshakeTimeout * 1000)))
        }
        return configuration
    }

    private func announce(port: Int) {
        print("sprout serve: listening on \(tlsCert == nil ? "http" : "https")://\(host):\(port)")
        fflush(nil)
    }

    /// Serves on `threads` hubs of this process: the calling thread's and `threads - 1` more.
    /// Each hub accepts from a copy of `sharedListener` (the master's, inherited by this
    /// worker), or else from a listener of its own (`SO_REUSEPORT` when there are several).
    private func serveHubs(sharedListener: Int32?, port: Int, worker: Worker?) throws {
        if blockThreshold > 0 {
            try BlockedHubMonitor.start(threshold: .milliseconds(blockThreshold))
        }
        // One listening descriptor per hub, all bound before anything is announced (a client
        // must not find a hub's SO_REUSEPORT listener missing); each hub adopts its own.
        let descriptors: [Int32]
        if let sharedListener {
            // Copies of the master's socket, and none left over: an inherited descriptor nobody
            // accepts from would keep the socket listening after a drain, and the clients the
            // kernel queued there would be reset when the worker exits.
            descriptors = try (0..<threads).map { _ in try duplicate(sharedListener) }
            close(sharedListener)
        } else {
            var bindPort = port
            descriptors = try (0..<threads).map { _ in
                let socket = try Socket.listen(host: host, port: bindPort, backlog: configuration.backlog,
                                               reusePort: threads > 1 || reusePort)
                defer { socket.close() }
                bindPort = socket.localAddress.port
                return try duplicate(socket.fileDescriptor)
            }
        }
        let shared = sharedListener != nil
        let first = try adopt(descriptors[0], shared: shared)
        if worker == nil { announce(port: first.localAddress.port) }
        let others = (1..<threads).map { hub in
            spawn(name: "hub thread \(hub)") { [descriptors] in
                try GreenThread.run { [self] in
                    try serve(on: try adopt(descriptors[hub], shared: shared), hub: hub, worker: worker)
                }
            }
        }
        try serve(on: first, hub: 0, worker: worker)
        for thread in others { try thread.get() }
    }

    private func duplicate(_ descriptor: Int32) throws -> Int32 {
        let copy = dup(descriptor)
        guard copy >= 0 else { throw SystemError(errno: errno, operation: "dup of the listening socket") }
        return copy
    }

    private func adopt(_ descriptor: Int32, shared: Bool) throws -> Socket {
        let socket = try Socket(fileDescriptor: descriptor)
        socket.isSharedListener = shared
        return socket
    }

    private func serve(on listener: Socket, hub: Int, worker: Worker?) throws {
        var configuration = configuration
        let dimensions = worker.map { [("worker", "\($0.index)")] } ?? []
        configuration.metricsDimensions = dimensions
        let server = HTTPServer(configuration: configuration, listener: listener, responder: DemoApp.router())
        try server.start()
        var metricsServer: HTTPServer?
        if let metricsPort, hub == 0 {
            let port = metricsPort == 0 ? 0 : metricsPort + (worker?.index ?? 0)
            let endpoint = try MetricsEndpoint.start(host: metricsHost, port: port)
            print("sprout serve: metrics on http://\(metricsHost):\(endpoint.port)/metrics")
            fflush(nil)
            metricsServer = endpoint
        }
        let sampler = metricsPort == nil ? nil : RuntimeMetrics.startSampling(dimensions: dimensions)
        defer {
            sampler?.kill()
            metricsServer?.stop(timeout: .seconds(1))
        }
        let stop = { [drain] in
            stopRequested.store(true, ordering: .sequentiallyConsistent)
            server.stop(timeout: drain)
        }
        if let worker {
            if hub > 0 { try worker.watchThisHub() }
            try worker.onStop(stop)
        } else {
            for signal in [SIGINT, SIGTERM] { try onSignal(signal, stop) }
        }
        // A stop signal that came before this hub listened for it (the other hubs start after
        // the first) was seen by the first hub only.
        if stopRequested.load(ordering: .sequentiallyConsistent) { stop() }
        if hub == 0 {
            try onSignal(SIGUSR1) {
                Hub.runInfo().writeToStandardError()
            }
        }
        try server.serveForever()
    }
}
