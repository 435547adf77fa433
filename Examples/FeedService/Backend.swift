import ArgumentParser
import Glibc
import HTTPTypes
import Logging
import Sprout
import SproutHTTP

/// The backend's behaviour, changeable while it runs (`PUT /control`).
final class BackendBehaviour {
    /// Milliseconds every call takes.
    var latency: Int
    /// The fraction of calls that take ``slowLatency`` instead.
    var slowFraction: Double
    /// Milliseconds a slow call takes.
    var slowLatency: Int
    /// Calls answered since start.
    var calls = 0
    private var random: UInt64

    init(latency: Int, slowFraction: Double, slowLatency: Int) {
        self.latency = latency
        self.slowFraction = slowFraction
        self.slowLatency = slowLatency
        random = UInt64(truncatingIfNeeded: getpid()) &* 0x9E37_79B9_7F4A_7C15 | 1
    }

    /// How long the next call takes (xorshift: no system call per request).
    func nextLatency() -> Int {
        random ^= random << 13
        random ^= random >> 7
        random ^= random << 17
        let draw = Double(random >> 11) / Double(1 << 53)
        return draw < slowFraction ? slowLatency : latency
    }

    var json: String {
        "{\"latency_ms\":\(latency),\"slow_fraction\":\(slowFraction),\"slow_ms\":\(slowLatency),\"calls\":\(calls)}"
    }
}

/// `feed-service backend`: the slow backend of the seed scenario.
struct RunBackend: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backend",
        abstract: "The backend: GET /users/<id> and GET /pins/<id> answer small JSON records after --latency-ms.",
        discussion: """
            A fraction --slow of the calls take --slow-ms instead. PUT /control?latency_ms=L&slow=F&slow_ms=S \
            changes them while it runs (any subset; the spike of `sprout-bench seed`), GET /control shows them \
            with the number of calls answered so far. SIGTERM or SIGINT stops it.
            """)

    @Option(help: "Address to bind.")
    var host = "127.0.0.1"

    @Option(help: "Port to listen on (0 picks a free one).")
    var port = 9000

    @Option(help: "Milliseconds every call takes.")
    var latencyMs = 50

    @Option(help: "The fraction of calls (0...1) that take --slow-ms instead.")
    var slow = 0.0

    @Option(help: "Milliseconds a slow call takes.")
    var slowMs = 2000

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be in 0...65535") }
        guard (0...600_000).contains(latencyMs), (0...600_000).contains(slowMs) else {
            throw ValidationError("--latency-ms and --slow-ms must be in 0...600000")
        }
        guard (0...1).contains(slow) else { throw ValidationError("--slow must be in 0...1") }
    }

    func run() throws {
        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        try GreenThread.run { [host, port, latencyMs, slow, slowMs] in
            let behaviour = BackendBehaviour(latency: latencyMs, slowFraction: slow, slowLatency: slowMs)
            let server = HTTPServer(configuration: .init(host: host, port: port, maxConnections: 20_000, idleTimeout: .seconds(120)),
                                    responder: Self.router(behaviour))
            try server.start()
            print("feed-service backend: listening on http://\(host):\(server.port)")
            fflush(nil)
            for signal in [SIGINT, SIGTERM] { try onSignal(signal) { server.stop(timeout: .seconds(1)) } }
            try server.serveForever()
        }
    }

    /// The backend's routes, answering as `behaviour` says.
    static func router(_ behaviour: BackendBehaviour) -> Router {
        let router = Router()
        router.get("/users/:id") { request in
            let id = try Self.identifier(request)
            try Self.wait(behaviour)
            return .json("{\"id\":\"\(id)\",\"name\":\"User \(id)\",\"followers\":\(id.utf8.count * 37)}")
        }
        router.get("/pins/:id") { request in
            let id = try Self.identifier(request)
            try Self.wait(behaviour)
            return .json("{\"id\":\"\(id)\",\"title\":\"Pin \(id)\",\"image\":\"https://img.example/\(id).jpg\"}")
        }
        router.get("/control") { _ in .json(behaviour.json) }
        router.put("/control") { request in
            let query = request.query
            // Every parameter checked before any is applied: a 400 changes nothing.
            func milliseconds(_ name: String) throws -> Int? {
                guard let text = query[name] else { return nil }
                guard let value = Int(text), (0...600_000).contains(value) else {
                    throw HTTPError(.badRequest, message: "\(name) must be 0...600000 milliseconds")
                }
                return value
            }
            let latency = try milliseconds("latency_ms")
            let slowLatency = try milliseconds("slow_ms")
            var slowFraction: Double?
            if let text = query["slow"] {
                guard let value = Double(text), (0...1).contains(value) else {
                    throw HTTPError(.badRequest, message: "slow must be a fraction in 0...1")
                }
                slowFraction = value
            }
            if let latency { behaviour.latency = latency }
            if let slowLatency { behaviour.slowLatency = slowLatency }
            if let slowFraction { behaviour.slowFraction = slowFraction }
            return .json(behaviour.json)
        }
        return router
    }

    private static func identifier(_ request: SproutHTTP.Request) throws -> Substring {
        let id = request.parameters["id"] ?? ""
        guard !id.isEmpty, id.utf8.count <= 80, id.utf8.allSatisfy(isIdentifierByte) else {
            throw HTTPError(.badRequest, message: "bad id")
        }
        return id
    }

    private static func wait(_ behaviour: BackendBehaviour) throws {
        behaviour.calls += 1
        let milliseconds = behaviour.nextLatency()
        if milliseconds > 0 { try sleep(for: .milliseconds(milliseconds)) }
    }
}

extension Response {
    /// A 200 `application/json` response.
    static func json(_ text: String) -> Response {
        Response(headerFields: [.contentType: "application/json"], body: .bytes(Array(text.utf8)))
    }
}
