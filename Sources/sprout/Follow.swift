import ArgumentParser
import Follow
import Glibc
import Sprout
import SproutThrift

/// `sprout follow`: the follow service of Examples/follow.thrift, from memory.
struct FollowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "follow",
        abstract: "The Thrift follow service of Examples/follow.thrift, served from memory on ThriftServer.",
        discussion: """
            follow(follower, followee) records an edge; followers(user, limit) lists who follows user \
            in the order they first followed (NotFound if user has no edge); isFollowing(a, b); \
            sleep(ms) parks the call cooperatively; ping() is oneway. SIGTERM or SIGINT drains: calls \
            in progress finish, idle connections close. With --workers N (N > 0) a master supervises N \
            worker processes sharing the port, each with a graph of its own.
            """)

    @Option(help: "Address to bind.")
    var host = "127.0.0.1"

    @Option(help: "Port to listen on (0 picks a free one).")
    var port: Int

    @Option(name: .customLong("protocol"), help: "binary or compact.")
    var protocolName = "binary"

    @Option(name: .customLong("transport"), help: "framed or buffered.")
    var transportName = "framed"

    @Option(help: "Largest frame (or string) accepted, in bytes.")
    var maxFrameSize = 16 << 20

    @Option(help: "Most connections served at once.")
    var maxConnections = 10_000

    @Option(help: "Seconds a drain waits for calls in progress.")
    var drainTimeout: Double = 10

    @Option(help: "Worker processes under a supervising master (0: serve in this process).")
    var workers = 0

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be in 0...65535") }
        guard ThriftProtocolKind(rawValue: protocolName) != nil else { throw ValidationError("--protocol must be binary or compact") }
        guard ThriftTransportKind(rawValue: transportName) != nil else { throw ValidationError("--transport must be framed or buffered") }
        guard maxFrameSize >= 64 && maxFrameSize <= Int(Int32.max) else { throw ValidationError("--max-frame-size must be in 64...\(Int32.max)") }
        guard maxConnections >= 1 else { throw ValidationError("--max-connections must be at least 1") }
        guard (0.0...3600).contains(drainTimeout) else { throw ValidationError("--drain-timeout must be in 0...3600 seconds") }
        guard (0...Supervisor.maxWorkers).contains(workers) else { throw ValidationError("--workers must be in 0...\(Supervisor.maxWorkers)") }
    }

    func run() throws {
        let configuration = ThriftServer.Configuration(
            host: host, port: port, protocolKind: ThriftProtocolKind(rawValue: protocolName)!,
            transportKind: ThriftTransportKind(rawValue: transportName)!, maxFrameSize: maxFrameSize,
            maxConnections: maxConnections)
        let drain = Duration.milliseconds(Int(drainTimeout * 1000))
        guard workers > 0 else {
            let server = ThriftServer(configuration: configuration, processor: FollowServiceProcessor(service: InMemoryFollowService()))
            try server.start()
            announce(server.address!)
            for signal in [SIGINT, SIGTERM] { try onSignal(signal) { server.stop(timeout: drain) } }
            try server.serveForever()
            return
        }
        let listener = try Socket.listen(host: host, port: port, backlog: configuration.backlog)
        announce(listener.localAddress)
        let supervisor = Supervisor(configuration: .init(workers: workers, gracefulTimeout: drain + .seconds(5))) { worker in
            let socket = try Socket(fileDescriptor: listener.fileDescriptor)
            socket.isSharedListener = true
            let server = ThriftServer(configuration: configuration, listener: socket,
                                      processor: FollowServiceProcessor(service: InMemoryFollowService()))
            try worker.onStop { server.stop(timeout: drain) }
            try server.serveForever()
        }
        supervisor.willStop = { listener.close() }
        try supervisor.run()
    }

    private func announce(_ address: SocketAddress) {
        print("sprout follow: serving \(protocolName) over \(transportName) on \(address)")
        fflush(nil)  // stdout may be a pipe: whoever started us waits for this line
    }
}
