import Glibc
import HTTPTypes
import Sprout
import SproutHTTP
import SproutTestSupport
import Testing

/// The example API service of Examples/FeedService, run as the processes users run, against
/// its backend. It opens hundreds of sockets: never while a socket-counting suite counts.
@Suite(.serialized, .timeLimit(.minutes(3)), .countsSockets)
struct FeedServiceTests {
    @Test func fansOutInParallelWhileTheSyncModelWaitsForEachCall() async throws {
        try await GreenThread.run {
            try withTimeout(.seconds(60)) {
                // 300 ms a call and 4 calls a feed (the user and 3 pins): in parallel about
                // 300 ms, one after another at least 1,200 ms.
                let backend = try FeedProcess(["backend", "--port", "0", "--latency-ms", "300"])
                let green = try FeedProcess(["serve", "--port", "0", "--backend", backend.url(""), "--pins", "3"])
                let sync = try FeedProcess(["serve", "--port", "0", "--backend", backend.url(""), "--pins", "3", "--model", "sync"])
                let client = HTTPClient()
                defer { client.close() }

                let before = try calls(client, backend)
                var fastest = Duration.seconds(100)
                for attempt in 0..<3 {
                    let started = ContinuousClock.now
                    let response = try client.get(green.url("/feed/u\(attempt)"))
                    fastest = min(fastest, ContinuousClock.now - started)
                    #expect(response.status == .ok)
                    #expect(response.text == expectedFeed("u\(attempt)", pins: 3))
                    #expect(response.headerFields[.contentType] == "application/json")
                }
                #expect(try calls(client, backend) - before == 12, "4 backend calls a feed")
                #expect(fastest >= .milliseconds(300) && fastest < .milliseconds(900),
                        "a feed of 4 parallel 300 ms calls took \(fastest)")

                let started = ContinuousClock.now
                let response = try client.get(sync.url("/feed/s1"))
                let sequential = ContinuousClock.now - started
                #expect(response.text == expectedFeed("s1", pins: 3))
                #expect(response.headerFields[.connection] == "close")
                #expect(sequential >= .milliseconds(1200), "the sync model made its 4 calls in \(sequential)")
            }
        }
    }

    @Test func servesFiveHundredConcurrentClientsCorrectly() async throws {
        try await GreenThread.run {
            try withTimeout(.seconds(90)) {
                _ = try raiseOpenFileLimit()
                let backend = try FeedProcess(["backend", "--port", "0", "--latency-ms", "50"])
                let service = try FeedProcess(["serve", "--port", "0", "--backend", backend.url(""), "--pins", "3"])
                let client = HTTPClient(configuration: .init(maxConnectionsPerHost: 500))
                defer { client.close() }
                let clients = (0..<500).map { index in
                    spawn { () throws -> Bool in
                        let user = "user-\(index)"
                        var correct = true
                        for _ in 0..<3 {
                            let response = try client.get(service.url("/feed/\(user)"))
                            correct = correct && response.status == .ok && response.text == expectedFeed(user, pins: 3)
                        }
                        return correct
                    }
                }
                var right = 0
                var failures: [String] = []
                for greenlet in clients {
                    do { if try greenlet.get() { right += 1 } } catch { failures.append("\(error)") }
                }
                #expect(right == 500, "\(right) of 500 clients got their own feeds; failures: \(failures.prefix(3))")
                #expect((client.statistics.values.first?.open ?? 0) > 100, "the clients ran at once")
                #expect(try calls(client, backend) == 500 * 3 * 4)
            }
        }
    }

    @Test func answersBadInputAndBackendFailuresClearly() async throws {
        try await GreenThread.run {
            try withTimeout(.seconds(60)) {
                let backend = try FeedProcess(["backend", "--port", "0", "--latency-ms", "1"])
                let service = try FeedProcess(["serve", "--port", "0", "--backend", backend.url(""), "--backend-timeout", "2"])
                let client = HTTPClient()
                defer { client.close() }
                #expect(try client.get(service.url("/feed/a%20b")).status == .badRequest)
                #expect(try client.get(service.url("/feed/" + String(repeating: "x", count: 65))).status == .badRequest)
                #expect(try client.get(service.url("/nothing")).status == .notFound)
                #expect(try client.send(.post, service.url("/feed/u")).status == .methodNotAllowed)
                #expect(try client.get(service.url("/feed/ok")).status == .ok)

                // The backend gone: 502 naming it, the service serving on.
                backend.stop()
                let gone = try client.get(service.url("/feed/u"))
                #expect(gone.status == .badGateway)
                #expect(gone.text.contains("backend"))
                #expect(try runCommand([feedServiceExecutable(), "serve", "--pins", "-1"]).status != 0)
                #expect(try runCommand([feedServiceExecutable(), "backend", "--slow", "2"]).status != 0)
            }
        }
    }
}

/// The feed the service must answer for `user`, as the backend's records spliced together.
func expectedFeed(_ user: String, pins: Int) -> String {
    let pinRecords = (0..<pins).map { "{\"id\":\"\(user)-\($0)\",\"title\":\"Pin \(user)-\($0)\",\"image\":\"https://img.example/\(user)-\($0).jpg\"}" }
    return "{\"user\":{\"id\":\"\(user)\",\"name\":\"User \(user)\",\"followers\":\(user.utf8.count * 37)},\"pins\":[\(pinRecords.joined(separator: ","))]}"
}

/// The backend's count of calls answered, from GET /control.
func calls(_ client: HTTPClient, _ backend: FeedProcess) throws -> Int {
    let text = try client.get(backend.url("/control")).text
    guard let range = text.firstRange(of: "\"calls\":") else { return -1 }
    return Int(text[range.upperBound...].prefix { $0.isNumber }) ?? -1
}

/// The `feed-service` executable built beside this test bundle.
func feedServiceExecutable() -> String {
    let sprout = sproutExecutable()
    return String(sprout.dropLast("sprout".count)) + "feed-service"
}

/// `feed-service` running as a child process, stopped (SIGTERM, then SIGKILL) when released.
final class FeedProcess {
    let child: ChildProcess
    let port: Int
    private var stopped = false

    init(_ arguments: [String]) throws {
        child = try ChildProcess([feedServiceExecutable()] + arguments)
        let line = try child.waitForLine(containing: "listening on")
        guard let port = Int(line.split(separator: ":").last ?? "") else {
            throw TestSupportError(description: "no port in \(line)")
        }
        self.port = port
    }

    func url(_ path: String) -> String { "http://127.0.0.1:\(port)\(path)" }

    func stop() {
        guard !stopped else { return }
        stopped = true
        kill(child.pid, SIGTERM)
        if (try? child.waitForExit(timeout: .seconds(5))) ?? nil == nil {
            kill(child.pid, SIGKILL)
            _ = try? child.waitForExit(timeout: .seconds(5))
        }
    }

    deinit { stop() }
}
