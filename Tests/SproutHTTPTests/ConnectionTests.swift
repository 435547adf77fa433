import Glibc
import HTTPTypes
import Logging
import Sprout
import SproutHTTP
import Testing

/// Records log messages, for checking what the server logs.
final class LogRecorder: @unchecked Sendable {
    private let lock = NSLockLike()
    private var lines: [String] = []

    func append(_ line: String) { lock.withLock { lines.append(line) } }
    var all: [String] { lock.withLock { lines } }

    func logger() -> Logger {
        Logger(label: "test") { _ in RecordingHandler(recorder: self) }
    }

    struct RecordingHandler: LogHandler {
        let recorder: LogRecorder
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .info
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            let fields = (event.metadata ?? [:]).map { "\($0.key)=\($0.value)" }.sorted().joined(separator: " ")
            recorder.append("\(event.level) \(event.message) \(fields)")
        }
    }
}

/// A pthread mutex (the tests may not use Foundation).
final class NSLockLike: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    init() { pthread_mutex_init(&mutex, nil) }
    func withLock<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return body()
    }
}

/// Connections under pressure: many at once, idle ones, the limit, bad clients, failing handlers.
extension HTTPSuites {
    @Suite(.timeLimit(.minutes(2)))
    struct ConnectionTests {
        @Test func twoThousandIdleKeepAliveConnectionsDoNotDelayANewOne() async throws {
            try await green(timeout: .seconds(90)) { () throws in
                _ = try raiseOpenFileLimit()
                try withServer(testConfiguration { $0.idleTimeout = .seconds(60) }) { port, server throws in
                    let idle = try (0..<2000).map { _ -> RawClient in
                        let client = try RawClient(port: port)
                        try client.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
                        return client
                    }
                    for client in idle { _ = try client.readResponse() }
                    try sleep(for: .milliseconds(100))  // past the idle grace: buffers given back
                    #expect(server.idleConnectionCount == 2000)
                    let started = ContinuousClock.now
                    let (response, _) = try exchange(port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
                    #expect(response.status == 200)
                    #expect(ContinuousClock.now - started < .seconds(2))
                    // Every idle connection still works.
                    for client in idle.prefix(50) {
                        try client.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
                        #expect(try client.readResponse().text == "Hello, World!")
                    }
                }
            }
        }

        @Test func fullServerAdmitsNewClientsByClosingTheOldestIdle() async throws {
            try await green { () throws in
                try withServer(testConfiguration { $0.maxConnections = 3; $0.idleTimeout = .seconds(60) }) { port, server throws in
                    let clients = try (0..<3).map { _ -> RawClient in
                        let client = try RawClient(port: port)
                        try client.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
                        _ = try client.readResponse()
                        try sleep(for: .milliseconds(5))  // a clear idle order
                        return client
                    }
                    #expect(server.connectionCount == 3)
                    let (fresh, _) = try exchange(port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
                    #expect(fresh.status == 200)
                    #expect(server.evictedConnectionCount >= 1)
                    #expect(try clients[0].isClosedByServer(timeout: .seconds(2)), "the oldest idle connection was not closed")
                    try clients[2].send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
                    #expect(try clients[2].readResponse().status == 200, "a newer idle connection was closed instead")
                }
            }
        }

        @Test func fullServerOfBusyConnectionsWaitsInsteadOfEvicting() async throws {
            try await green { () throws in
                try withServer(testConfiguration { $0.maxConnections = 2 }) { port, server throws in
                    let busy = try (0..<2).map { _ -> RawClient in
                        let client = try RawClient(port: port)
                        try client.send("GET /sleep?ms=300 HTTP/1.1\r\nHost: a\r\n\r\n")
                        return client
                    }
                    try sleep(for: .milliseconds(50))
                    let started = ContinuousClock.now
                    let (late, _) = try exchange(port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
                    #expect(late.status == 200)
                    #expect(ContinuousClock.now - started >= .milliseconds(150), "admitted past the limit")
                    for client in busy { #expect(try client.readResponse().text == "slept") }
                }
            }
        }

        @Test func fiveHundredConcurrentSleepsAreAllAnsweredTogether() async throws {
            try await green(timeout: .seconds(60)) { () throws in
                _ = try raiseOpenFileLimit()
                try withServer { port, _ throws in
                    let started = ContinuousClock.now
                    let clients = (0..<500).map { _ in
                        spawn { () throws -> Int in
                            let (response, _) = try exchange(port, "GET /sleep?ms=200 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
                            return response.status
                        }
                    }
                    let statuses = try clients.map { try $0.get() }
                    #expect(statuses.allSatisfy { $0 == 200 })
                    #expect(ContinuousClock.now - started < .seconds(5))
                }
            }
        }

        @Test func failingHandlerAnswers500WithoutInternalsAndLogsTheRoute() async throws {
            try await green { () throws in
                struct SecretFailure: Error { let detail = "database password is hunter2" }
                let router = Router()
                router.get("/boom/:id") { _ in throw SecretFailure() }
                router.get("/") { _ in .text("fine") }
                let recorder = LogRecorder()
                let server = HTTPServer(configuration: testConfiguration(), logger: recorder.logger(), responder: router)
                try server.start()
                defer { server.stop() }
                let client = try RawClient(port: server.port)
                try client.send("GET /boom/7 HTTP/1.1\r\nHost: a\r\n\r\n")
                let response = try client.readResponse()
                #expect(response.status == 500)
                #expect(!response.text.contains("hunter2") && !response.text.contains("SecretFailure"))
                try client.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
                #expect(try client.readResponse().text == "fine", "the connection survives a handler failure")
                let lines = recorder.all.filter { $0.contains("handler failed") }
                #expect(lines.count == 1)
                #expect(lines.first?.contains("GET /boom/:id") == true)
            }
        }

        @Test func accessLogNamesMethodTargetStatusAndBytes() async throws {
            try await green { () throws in
                let recorder = LogRecorder()
                let server = HTTPServer(configuration: testConfiguration { $0.accessLog = true }, logger: recorder.logger(),
                                        responder: DemoApp.router())
                try server.start()
                defer { server.stop() }
                _ = try exchange(server.port, "GET /?x=1 HTTP/1.1\r\nHost: a\r\n\r\n")
                #expect(recorder.all.contains { $0.contains("GET /?x=1 200 13B") })
            }
        }

        @Test func badClientsDisturbNoOne() async throws {
            try await green(timeout: .seconds(60)) { () throws in
                try withServer { port, _ throws in
                    // A steady client, while others misbehave around it.
                    let steady = spawn { () throws -> Int in
                        let client = try RawClient(port: port)
                        var served = 0
                        for _ in 0..<200 {
                            try client.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
                            if try client.readResponse().text == "Hello, World!" { served += 1 }
                            try sleep(for: .milliseconds(1))
                        }
                        return served
                    }
                    let vandals = (0..<60).map { index in
                        spawn { () throws in
                            let socket = try Socket.connect(host: "127.0.0.1", port: port)
                            defer { socket.close() }
                            switch index % 4 {
                            case 0: try socket.sendAll("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nhalf")  // then vanish
                            case 1: try socket.sendAll([UInt8](repeating: 0xFF, count: 3000))                               // garbage
                            case 2: try socket.sendAll("GET /stream?n=100000 HTTP/1.1\r\nHost: a\r\n\r\n")                 // leave mid-response
                                _ = try socket.recv(maxLength: 100)
                            default: try socket.sendAll("GET / HTTP/1.1\r\nHo")                                              // leave mid-head
                            }
                        }
                    }
                    for vandal in vandals { _ = try vandal.join() }
                    #expect(try steady.get() == 200)
                }
            }
        }
    }
}
