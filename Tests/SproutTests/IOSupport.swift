import SproutTestSupport
import Testing
import Glibc
import Sprout

/// Every test that opens sockets, run one after the other: each counts the process's open
/// sockets before and after, which socket tests running at the same time would disturb.
@Suite(.serialized, .countsSockets)
enum SocketSuites {}


/// Runs `body` with an echo server on a free loopback port and checks afterwards that every
/// socket opened meanwhile was closed.
func withEchoServer(maxConnections: Int? = nil, _ body: (_ port: Int, _ server: StreamServer) throws -> Void) throws {
    let before = openSocketCount()
    let server = StreamServer(port: 0, maxConnections: maxConnections) { connection, _ in
        try echoBack(connection)
    }
    try server.start()
    defer {
        server.stop(timeout: .seconds(1))
    }
    try body(server.port, server)
    server.stop(timeout: .seconds(1))
    try sleep(for: .milliseconds(1))
    let after = openSocketCount()
    if after != before {
        throw LeakError(description: "open sockets: \(before) before, \(after) after")
    }
}

struct LeakError: Error, CustomStringConvertible {
    let description: String
}

/// Echoes until end of stream.
func echoBack(_ connection: Socket) throws {
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = try buffer.withUnsafeMutableBytes { try connection.recv(into: $0) }
        if count == 0 { return }
        try buffer.withUnsafeBytes { try connection.sendAll(UnsafeRawBufferPointer(rebasing: $0[..<count])) }
    }
}

/// Reads exactly `count` bytes or throws at end of stream.
func receive(_ socket: Socket, exactly count: Int) throws -> [UInt8] {
    var received: [UInt8] = []
    received.reserveCapacity(count)
    while received.count < count {
        let chunk = try socket.recv(maxLength: min(65536, count - received.count))
        if chunk.isEmpty { throw LeakError(description: "end of stream after \(received.count) of \(count) bytes") }
        received += chunk
    }
    return received
}

/// Deterministic test bytes.
func pattern(_ count: Int, seed: Int) -> [UInt8] {
    (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ seed &* 7) }
}

/// Raises the soft descriptor limit to the hard one and, if that is below `wanted` and the
/// process may (root), the hard limit too. Returns the soft limit in force.
func raiseOpenFileLimitForTests(to wanted: Int) throws -> Int {
    var limit = rlimit()
    if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 && limit.rlim_max < rlim_t(wanted) {
        limit.rlim_max = rlim_t(wanted)
        limit.rlim_cur = rlim_t(wanted)
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)   // fails without privilege: fine
    }
    return try raiseOpenFileLimit()
}
