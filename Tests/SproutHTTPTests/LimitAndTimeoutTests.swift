import Glibc
import Sprout
import SproutHTTP
import Testing

/// Each limit and each timeout, separately.
extension HTTPSuites {
    @Suite(.timeLimit(.minutes(1)))
    struct LimitAndTimeoutTests {
        @Test func requestLineOverEightKibibytesIs414() async throws {
            try await green { () throws in
                try withServer { port, _ throws in
                    let (response, closed) = try exchange(port, "GET /\(String(repeating: "a", count: 8200)) HTTP/1.1\r\nHost: a\r\n\r\n")
                    #expect(response.status == 414 && closed)
                    // At the limit it is served (404: no such path).
                    let (fits, _) = try exchange(port, "GET /\(String(repeating: "a", count: 8000)) HTTP/1.1\r\nHost: a\r\n\r\n")
                    #expect(fits.status == 404)
                }
            }
        }

        @Test func headOverSixtyFourKibibytesIs431() async throws {
            try await green { () throws in
                try withServer { port, _ throws in
                    let filler = (0..<80).map { "X-Filler-\($0): \(String(repeating: "v", count: 900))\r\n" }.joined()
                    let (response, closed) = try exchange(port, "GET / HTTP/1.1\r\nHost: a\r\n\(filler)\r\n")
                    #expect(response.status == 431 && closed)
                    // 60 KiB of fields still fits, in a buffer larger than the pooled one.
                    let fits = (0..<60).map { "X-Filler-\($0): \(String(repeating: "v", count: 900))\r\n" }.joined()
                    let (ok, _) = try exchange(port, "GET / HTTP/1.1\r\nHost: a\r\n\(fits)\r\n")
                    #expect(ok.status == 200)
                }
            }
        }

        @Test func bodyOverTheRouteLimitIs413() async throws {
            try await green { () throws in
                let router = Router()
                router.post("/small", maxBodySize: 10) { request in .text("\(try request.body.readAll().count)") }
                router.post("/default") { request in .text("\(try request.body.readAll().count)") }
                try withServer(responder: router) { port, _ throws in
                    let (declared, closed) = try exchange(port, "POST /small HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world")
                    #expect(declared.status == 413 && closed)
                    let (chunked, _) = try exchange(port, "POST /small HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n")
                    #expect(chunked.status == 413)
                    let (fits, _) = try exchange(port, "POST /small HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nhelloworld")
                    #expect(fits.text == "10")
                    // The default limit is 2 MiB: exactly 2 MiB is accepted, one byte more is not.
                    let client = try RawClient(port: port)
                    try client.send("POST /default HTTP/1.1\r\nHost: a\r\nContent-Length: \(2 << 20)\r\n\r\n")
                    try client.send([UInt8](repeating: 120, count: 2 << 20))
                    #expect(try client.readResponse().text == "\(2 << 20)")
                    let (over, _) = try exchange(port, "POST /default HTTP/1.1\r\nHost: a\r\nContent-Length: \((2 << 20) + 1)\r\n\r\n")
                    #expect(over.status == 413)
                }
            }
        }

        @Test func trickledHeadIsCutAtTheHeaderDeadlineWith408() async throws {
            try await green { () throws in
                try withServer(testConfiguration { $0.headerTimeout = .milliseconds(400) }) { port, _ throws in
                    let client = try RawClient(port: port)
                    let started = ContinuousClock.now
                    // One byte every 50 ms would reset a per-read timeout for ever; the deadline holds.
                    let trickle = spawn {
                        for byte in Array("GET / HTTP/1.1\r\nHost: a\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".utf8) {
                            try client.send([byte])
                            try sleep(for: .milliseconds(50))
                        }
                    }
                    let response = try client.readResponse()
                    trickle.kill()
                    #expect(response.status == 408)
                    #expect(ContinuousClock.now - started < .seconds(3))
                }
            }
        }

        @Test func silentNewConnectionIsClosedAtTheHeaderTimeout() async throws {
            try await green { () throws in
                try withServer(testConfiguration { $0.headerTimeout = .milliseconds(300) }) { port, _ throws in
                    let client = try RawClient(port: port)
                    #expect(try client.isClosedByServer(timeout: .seconds(5)))
                }
            }
        }

        @Test func idleKeepAliveConnectionIsClosedAtTheIdleTimeout() async throws {
            try await green { () throws in
                try withServer(testConfiguration { $0.idleTimeout = .milliseconds(300) }) { port, server throws in
                    let client = try RawClient(port: port)
                    try client.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
                    _ = try client.readResponse()
                    #expect(server.idleConnectionCount == 1)
                    let started = ContinuousClock.now
                    #expect(try client.isClosedByServer(timeout: .seconds(5)))
                    #expect(ContinuousClock.now - started >= .milliseconds(250))
                }
            }
        }

        @Test func stalledBodyIsCutAtTheBodyReadTimeout() async throws {
            try await green { () throws in
                try withServer(testConfiguration { $0.bodyReadTimeout = .milliseconds(300) }) { port, _ throws in
                    let client = try RawClient(port: port)
                    try client.send("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
                    let response = try client.readResponse()
                    #expect(response.status == 408)
                    #expect(try client.isClosedByServer())
                }
            }
        }

        @Test func clientThatStopsReadingIsCutAtTheWriteTimeout() async throws {
            try await green(timeout: .seconds(40)) { () throws in
                try withServer(testConfiguration { $0.writeTimeout = .milliseconds(300) }) { port, server throws in
                    let client = try RawClient(port: port)
                    // Millions of chunks, never read: the server's writes stall, then it gives up.
                    try client.send("GET /stream?n=1000000 HTTP/1.1\r\nHost: a\r\n\r\n")
                    var waited = 0
                    while server.connectionCount > 0 && waited < 300 {
                        try sleep(for: .milliseconds(100))
                        waited += 1
                    }
                    #expect(server.connectionCount == 0, "the stalled connection is still open")
                }
            }
        }
    }
}
