import ArgumentParser
import Glibc
import Logging
import Sprout
import SproutHTTP

/// How the service serves: Sprout's model, or the pre-gevent one.
enum ServingModel: String, ExpressibleByArgument, CaseIterable {
    /// Every connection a greenlet, every backend call of a feed a greenlet of a shared pool.
    case green
    /// One request at a time per process, its backend calls one after another, the connection
    /// closed after each response (gunicorn's sync worker).
    case sync
}

/// `feed-service serve`: the API service.
struct ServeFeed: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "The API service: GET /feed/<user> fetches the user and --pins pin records from the backend and merges them.",
        discussion: """
            --model green (the default) serves every connection in a greenlet and makes a feed's backend calls \
            at once, from a shared pool of greenlets, through one pooled HTTPClient. --model sync is the \
            pre-gevent model built from the same code: each process serves one connection at a time (its \
            server admits a single connection, answers with Connection: close, as gunicorn's sync worker does) \
            and makes the backend calls one after another over one keep-alive connection; run many processes \
            with --workers. With --workers N a master binds the port and supervises N worker processes; \
            --workers 0 serves in this one process. SIGTERM or SIGINT drains and stops.
            """)

    @Option(help: "Address to bind.")
    var host = "127.0.0.1"

    @Option(help: "Port to listen on (0 picks a free one).")
    var port = 8000

    @Option(help: "The backend's base URL.")
    var backend = "http://127.0.0.1:9000"

    @Option(help: "Pin records per feed (each one backend call, besides the user's).")
    var pins = 3

    @Option(help: "green (greenlets, parallel backend calls) or sync (one request at a time, calls in sequence).")
    var model = ServingModel.green

    @Option(help: "Worker processes under a master (0: serve in this process).")
    var workers = 0

    @Option(help: "Seconds a backend call may take.")
    var backendTimeout: Double = 10

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be in 0...65535") }
        guard (0...64).contains(pins) else { throw ValidationError("--pins must be in 0...64") }
        guard (0...Supervisor.maxWorkers).contains(workers) else { throw ValidationError("--workers must be in 0...\(Supervisor.maxWorkers)") }
        guard backend.hasPrefix("http://") || backend.hasPrefix("https://") else { throw ValidationError("--backend must be an http(s) URL") }
        guard backendTimeout > 0, backendTimeout <= 3600 else { throw ValidationError("--backend-timeout must be in (0, 3600]") }
    }

    func run() throws {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .warning
            return handler
        }
        signal(SIGPIPE, SIG_IGN)
        guard workers > 0 else {
            try GreenThread.run { [self] in
                let listener = try Socket.listen(host: host, port: port, backlog: 4096)
                announce(port: listener.localAddress.port)
                try serve(on: listener, worker: nil)
            }
            return
        }
        try GreenThread.run { [self] in
            let listener = try Socket.listen(host: host, port: port, backlog: 4096)
            announce(port: listener.localAddress.port)
            let descriptor = listener.fileDescriptor
            let supervisor = Supervisor(configuration: .init(workers: workers, workerTimeout: nil,
                                                             gracefulTimeout: .seconds(Int64(backendTimeout) + 5))) { worker in
                let copy = dup(descriptor)
                guard copy >= 0 else { throw SystemError(errno: errno, operation: "dup of the listening socket") }
                close(descriptor)
                let socket = try Socket(fileDescriptor: copy)
                socket.isSharedListener = true
                try serve(on: socket, worker: worker)
            }
            supervisor.willStop = { listener.close() }
            try supervisor.run()
        }
    }

    private func announce(port: Int) {
        print("feed-service serve (\(model.rawValue)): listening on http://\(host):\(port)")
        fflush(nil)
    }

    private func serve(on listener: Socket, worker: Worker?) throws {
        let timeout = Duration.milliseconds(Int64(backendTimeout * 1000))
        let green = model == .green
        let client = HTTPClient(configuration: .init(
            connectTimeout: timeout, readTimeout: timeout, maxConnectionsPerHost: green ? 4096 : 1,
            idleTimeout: .seconds(120)))
        defer { client.close() }
        let builder = FeedBuilder(client: client, backend: backend, pins: pins,
                                  fanOut: green ? Pool(size: 4096) : nil)
        var configuration = HTTPServer.Configuration(host: host, port: port, maxConnections: green ? 10_000 : 1,
                                                     idleTimeout: .seconds(60))
        // One connection at a time, never cut short for the next one: a sync worker.
        configuration.evictsIdleConnections = green
        let server = HTTPServer(
            configuration: configuration,
            listener: listener, responder: FeedBuilder.router(builder, closeEachConnection: !green))
        try server.start()
        let stop = { server.stop(timeout: timeout + .seconds(1)) }
        if let worker {
            try worker.onStop(stop)
        } else {
            for signal in [SIGINT, SIGTERM] { try onSignal(signal, stop) }
        }
        try server.serveForever()
    }
}
