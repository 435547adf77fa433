import Sprout
import Testing

/// The README's example, run as written (with the print replaced by a check).
@Suite(.timeLimit(.minutes(1)))
struct ReadmeExampleTests {
    @Test func readmeExampleRuns() throws {
        let answer = try GreenThread.run { () throws -> Int in
            let results = Queue<Int>()
            let workers = (1...3).map { n in
                spawn(name: "worker-\(n)") {
                    try sleep(for: .milliseconds(10 * n))   // parks this greenlet, the others run
                    try results.put(n * n)
                }
            }
            try joinAll(workers, timeout: .seconds(1))
            return try withTimeout(.seconds(1)) { try results.get() }
        }
        #expect(answer == 1)
    }
}

extension SocketSuites {
    /// The README's line-echo server, as written (on a free port), with a client.
    @Suite(.timeLimit(.minutes(1)))
    struct ReadmeServerExampleTests {
        @Test func readmeLineEchoServerServes() async throws {
            try await green { () throws in
                let server = StreamServer(host: "127.0.0.1", port: 0, maxConnections: 10_000) { connection, peer in
                    let reader = SocketReader(connection)
                    while let line = try reader.readLine(limit: 8192) {
                        try connection.sendAll(line + [UInt8(ascii: "\n")])
                    }
                }
                let serving = spawn { try server.serveForever() }
                try sleep(for: .zero)
                let client = try Socket.connect(host: "127.0.0.1", port: server.port)
                try client.sendAll("hello\r\nworld\n")
                let reader = SocketReader(client)
                #expect(try reader.readLine() == Array("hello".utf8))
                #expect(try reader.readLine() == Array("world".utf8))
                client.close()
                server.stop()
                try serving.join()
            }
        }
    }
}
