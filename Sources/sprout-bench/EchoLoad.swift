import Sprout
import Synchronization

/// A ping-pong load on an echo server: `connections` greenlets, each sending `messageSize`
/// bytes and reading them back, for `duration`.
struct EchoLoad: Sendable {
    let host: String
    let port: Int
    let connections: Int
    let messageSize: Int
    let duration: Duration

    /// Round trips per second, measured after every connection is established.
    /// Runs on the calling green thread.
    func run() throws -> Double {
        var stop = false
        var roundTrips = 0
        var errors: [any Error] = []
        let started = Event()
        var ready = 0
        let all = Event()
        let clients = (0..<connections).map { index in
            spawn(name: "echo client \(index)") {
                do {
                    let socket = try Socket.connect(host: host, port: port, timeout: .seconds(10))
                    defer { socket.close() }
                    socket.timeout = .seconds(10)
                    let message = [UInt8](repeating: UInt8(truncatingIfNeeded: index), count: messageSize)
                    var buffer = [UInt8](repeating: 0, count: messageSize)
                    ready += 1
                    if ready == connections { all.set() }
                    try started.wait()
                    while !stop {
                        try socket.sendAll(message)
                        var received = 0
                        while received < messageSize {
                            let count = try buffer.withUnsafeMutableBytes { raw in
                                try socket.recv(into: UnsafeMutableRawBufferPointer(rebasing: raw[received...]))
                            }
                            if count == 0 { throw EchoLoadError.closedByServer }
                            received += count
                        }
                        roundTrips += 1
                    }
                } catch {
                    errors.append(error)
                    ready += 1
                    if ready == connections { all.set() }
                }
            }
        }
        guard try all.wait(timeout: .seconds(30)) else { throw EchoLoadError.connectTimeout }
        if let first = errors.first { throw first }
        let clock = ContinuousClock()
        let begin = clock.now
        started.set()
        try sleep(for: duration)
        stop = true
        let counted = roundTrips
        let elapsed = clock.now - begin
        try joinAll(clients, timeout: .seconds(15))
        if let first = errors.first { throw first }
        return Double(counted) / (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
    }
}

enum EchoLoadError: Error, CustomStringConvertible {
    case closedByServer, connectTimeout
    var description: String {
        switch self {
        case .closedByServer: return "the echo server closed a connection"
        case .connectTimeout: return "the clients could not all connect within 30 s"
        }
    }
}
