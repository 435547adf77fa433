import ArgumentParser
import Glibc
import Sprout

@main
struct SproutCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sprout",
        abstract: "Sprout: gevent's model in Swift — green threads on an epoll hub per thread.",
        subcommands: [Serve.self, Request.self, Load.self, Echo.self, FollowCommand.self, Version.self]
    )
}

struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print Sprout's version.")
    func run() {
        print("sprout \(Sprout.version)")
    }
}

struct Echo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "A TCP echo server on StreamServer: one greenlet per connection.")

    @Option(help: "Address to bind.")
    var host = "127.0.0.1"

    @Option(help: "Port to listen on (0 picks a free one).")
    var port: Int

    @Option(help: "Most connections served at once (default: no limit).")
    var maxConnections: Int?

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be in 0...65535") }
        if let maxConnections, maxConnections < 1 { throw ValidationError("--max-connections must be at least 1") }
    }

    func run() throws {
        // Buffers from a pool: only the pages a connection's data touches become resident, and
        // the pool gives surplus pages back once a spike of connections has passed.
        let buffers = BufferPool(bufferSize: 16 * 1024, hotLimit: 64)
        let server = StreamServer(host: host, port: port, maxConnections: maxConnections) { connection, _ in
            try echo(connection, buffers: buffers)
        }
        try server.start()
        print("sprout echo: serving on \(server.address!)")
        fflush(nil)  // stdout may be a pipe: whoever started us waits for this line
        for signal in [SIGINT, SIGTERM] {
            try onSignal(signal) { server.stop(timeout: .seconds(1)) }
        }
        try server.serveForever()
    }
}

/// Sends back everything `connection` receives until the peer closes its side.
func echo(_ connection: Socket, buffers: BufferPool) throws {
    let buffer = UnsafeMutableRawBufferPointer(start: try buffers.take(), count: buffers.bufferSize)
    defer { buffers.give(buffer.baseAddress!) }
    while true {
        let count = try connection.recv(into: buffer)
        if count == 0 { return }
        try connection.sendAll(UnsafeRawBufferPointer(rebasing: buffer[..<count]))
    }
}
