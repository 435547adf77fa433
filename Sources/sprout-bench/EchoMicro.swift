import Sprout

/// The `echo` micro row: Sprout's StreamServer and a Sprout load generator in one process,
/// each on its own green thread; the peer is the same load against a minimal C epoll echo
/// server running on a thread of this process.
enum EchoMicro {
    static let connections = 100
    static let messageSize = 64
    static let duration: Duration = .seconds(2)

    static let row = MicroBenchmark(name: "echo", unit: "round_trips/s") { options in
        let sprout = try await median(max(1, options.samples / 2)) {
            try await measureAgainstSproutServer()
        }
        var peers: [(String, Double)] = []
        if options.peers {
            peers.append(("c_epoll_server", try await median(max(1, options.samples / 2)) {
                try await measureAgainstCServer()
            }))
        }
        return BenchmarkRow(name: "echo", unit: "round_trips/s", sprout: sprout, peers: peers)
    }

    private static func load(port: Int) -> EchoLoad {
        EchoLoad(host: "127.0.0.1", port: port, connections: connections, messageSize: messageSize, duration: duration)
    }

    /// Runs a StreamServer echo on one green thread and the load on another.
    static func measureAgainstSproutServer() async throws -> Double {
        let portBox = PortHandoff()
        async let server: Void = GreenThread.run {
            let server = StreamServer(port: 0) { connection, _ in
                var buffer = [UInt8](repeating: 0, count: 65536)
                while true {
                    let count = try buffer.withUnsafeMutableBytes { try connection.recv(into: $0) }
                    if count == 0 { return }
                    try buffer.withUnsafeBytes { try connection.sendAll(UnsafeRawBufferPointer(rebasing: $0[..<count])) }
                }
            }
            try server.start()
            let inbox = Hub.current.inboxHandle
            let handle = UncheckedSendable(server)
            portBox.publish(server.port) { inbox.post { spawn { handle.value.stop(timeout: .seconds(1)) } } }
            try server.serveForever()
        }
        let (port, stop) = await portBox.wait()
        let rate = try await GreenThread.run { try load(port: port).run() }
        stop()
        try await server
        return rate
    }

    static func measureAgainstCServer() async throws -> Double {
        let server = try CEchoServer()
        defer { server.stop() }
        return try await GreenThread.run { try load(port: server.port).run() }
    }
}

/// Hands the server's port, and a way to stop it, from its green thread to the benchmark.
final class PortHandoff: @unchecked Sendable {
    private var continuation: CheckedContinuation<(Int, @Sendable () -> Void), Never>?
    private var value: (Int, @Sendable () -> Void)?
    private let lock = NSLockLite()

    func publish(_ port: Int, stop: @escaping @Sendable () -> Void) {
        let waiter: CheckedContinuation<(Int, @Sendable () -> Void), Never>? = lock.withLock {
            if let continuation { self.continuation = nil; return continuation }
            value = (port, stop)
            return nil
        }
        waiter?.resume(returning: (port, stop))
    }

    func wait() async -> (Int, @Sendable () -> Void) {
        await withCheckedContinuation { continuation in
            let ready: (Int, @Sendable () -> Void)? = lock.withLock {
                if let value { return value }
                self.continuation = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }
}

/// A value moved between threads whose access is ordered by other means.
final class UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
