import Glibc
import Sprout
import SproutTestSupport
import Testing

/// `Socket.shortReadsDrain`: after a short read the next read parks first, and still sees
/// every byte and the end of stream.
extension SocketSuites {
    @Suite(.timeLimit(.minutes(1)))
    struct ShortReadTests {
        /// A connected pair: the accepted side has `shortReadsDrain` on.
        func pair() throws -> (server: Socket, client: Socket, listener: Socket) {
            let listener = try Socket.listen(host: "127.0.0.1", port: 0)
            let client = try Socket.connect(host: "127.0.0.1", port: listener.localAddress.port)
            let (server, _) = try listener.accept()
            server.shortReadsDrain = true
            server.timeout = .seconds(5)
            return (server, client, listener)
        }

        @Test func dataThenEndOfStreamInOneGoIsSeen() async throws {
            try await green { () throws in
                let (server, client, listener) = try pair()
                defer { server.close(); listener.close() }
                try client.sendAll("hello")
                client.close()
                try sleep(for: .milliseconds(20))  // data and FIN both queued before the first read
                var buffer = [UInt8](repeating: 0, count: 100)
                let first = try buffer.withUnsafeMutableBytes { try server.recv(into: $0) }
                #expect(first == 5)
                let started = ContinuousClock.now
                let second = try buffer.withUnsafeMutableBytes { try server.recv(into: $0) }
                #expect(second == 0)
                #expect(ContinuousClock.now - started < .seconds(2), "the end of stream waited for the timeout")
            }
        }

        @Test func dataThenEndOfStreamArrivingWhileParkedIsSeen() async throws {
            try await green { () throws in
                let (server, client, listener) = try pair()
                defer { server.close(); listener.close() }
                // The reader parks (registering the socket) before data and FIN arrive together,
                // so epoll reports the hang-up before the short read: it must not mark the
                // socket drained, or the end of stream would wait for the timeout.
                let sender = spawnLater(.milliseconds(20)) {
                    try client.sendAll("hello")
                    client.close()
                }
                var buffer = [UInt8](repeating: 0, count: 100)
                let first = try buffer.withUnsafeMutableBytes { try server.recv(into: $0) }
                try sender.get()
                #expect(first == 5)
                let started = ContinuousClock.now
                let second = try buffer.withUnsafeMutableBytes { try server.recv(into: $0) }
                #expect(second == 0)
                #expect(ContinuousClock.now - started < .seconds(2), "the end of stream waited for the timeout")
            }
        }

        @Test func bytesArrivingWhileNobodyWaitsWakeTheNextRead() async throws {
            try await green { () throws in
                let (server, client, listener) = try pair()
                defer { server.close(); client.close(); listener.close() }
                var buffer = [UInt8](repeating: 0, count: 100)
                for round in 0..<50 {
                    try client.sendAll([UInt8(round)])
                    // Let the hub poll (and record the edge) while no one reads.
                    if round % 2 == 0 { try sleep(for: .milliseconds(1)) }
                    let count = try buffer.withUnsafeMutableBytes { try server.recv(into: $0) }
                    #expect(count == 1 && buffer[0] == UInt8(round))
                }
            }
        }

        @Test func aFullReadDoesNotMarkTheSocketDrained() async throws {
            try await green { () throws in
                let (server, client, listener) = try pair()
                defer { server.close(); client.close(); listener.close() }
                try client.sendAll([UInt8](repeating: 7, count: 10))
                try sleep(for: .milliseconds(10))
                var small = [UInt8](repeating: 0, count: 4)
                var total = 0
                while total < 10 {
                    total += try small.withUnsafeMutableBytes { try server.recv(into: $0) }
                }
                #expect(total == 10)
            }
        }
    }
}
