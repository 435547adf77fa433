import Glibc
import Logging
import ServiceLifecycle
import Sprout
import SproutHTTP
import SproutLifecycle
import SproutTestSupport
import Synchronization
import Testing

/// `HTTPServerService` in a `ServiceGroup`: graceful shutdown drains in-flight requests, both
/// when triggered in process and from SIGTERM to the example's process.
@Suite(.serialized, .timeLimit(.minutes(2)), .countsSockets)
struct HTTPServerServiceTests {
    /// A server whose `GET /slow` counts its arrivals and answers after `slowMilliseconds`, or,
    /// when that is nil, once the test releases it.
    static func service(slowMilliseconds: Int?, arrived: Arrivals, drain: Duration = .seconds(5)) -> HTTPServerService {
        HTTPServerService(configuration: .init(port: 0), drainTimeout: drain) {
            let router = Router()
            router.get("/slow") { _ in
                arrived.increment()
                if let slowMilliseconds {
                    try sleep(for: .milliseconds(slowMilliseconds))
                } else {
                    while !arrived.isReleased { try sleep(for: .milliseconds(5)) }
                }
                return .text("done")
            }
            router.get("/") { _ in .text("hello") }
            return router
        }
    }

    @Test func gracefulShutdownDrainsInFlightRequestsAndEndsRun() async throws {
        let arrived = Arrivals()
        // The request stays in flight until the server is seen draining, however slow the
        // machine: then it must be answered, with `Connection: close`. The drain timeout is
        // long because on a loaded 2-core CI machine the test's own tasks (on Swift's
        // cooperative pool, shared with synchronous tests) can be starved for seconds between
        // the shutdown and the release; a 5 s drain once expired there first.
        let http = Self.service(slowMilliseconds: nil, arrived: arrived, drain: .seconds(120))
        let group = ServiceGroup(configuration: .init(services: [.init(service: http)], logger: Logger(label: "test")))
        let running = Task { try await group.run() }
        let port = try await http.listeningPort()
        let url = "http://127.0.0.1:\(port)"

        let slow = Task {
            try await GreenThread.run { () throws -> (Int, String?, String) in
                let client = HTTPClient()
                defer { client.close() }
                let response = try client.get(url + "/slow")
                return (response.status.code, response.headerFields[.connection], response.text)
            }
        }
        try await waitUntil { arrived.value == 1 }
        await group.triggerGracefulShutdown()
        // Draining: the listener is closed, so a new client is refused.
        try await waitUntilRefused(port)
        let releasedAt = ContinuousClock.now
        arrived.release()
        let (status, connection, text) = try await slow.value
        #expect(status == 200 && text == "done", "the request in flight finished")
        #expect(connection == "close", "and was told the connection closes")
        try await running.value
        #expect(ContinuousClock.now - releasedAt < .seconds(30), "run() returned once the request was done, not after the drain timeout")
    }

    /// Waits (up to 60 s) until connecting to `port` is refused.
    func waitUntilRefused(_ port: Int) async throws {
        let deadline = ContinuousClock.now + .seconds(60)
        while true {
            let refused = try await GreenThread.run { () -> Bool in
                do {
                    let socket = try Socket.connect(host: "127.0.0.1", port: port, timeout: .seconds(1))
                    socket.close()
                    return false
                } catch { return true }
            }
            if refused { return }
            guard ContinuousClock.now < deadline else { throw TestSupportError(description: "port \(port) still accepts") }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    @Test func shutdownBeforeListeningStillStopsAndCancellationStopsAtOnce() async throws {
        let arrived = Arrivals()
        // Cancelled while a 10 s request is in flight: no grace period, so run() ends quickly.
        let http = Self.service(slowMilliseconds: 10_000, arrived: arrived, drain: .seconds(30))
        let running = Task { try await http.run() }
        let port = try await http.listeningPort()
        let slow = Task {
            try await GreenThread.run { () -> Bool in
                let client = HTTPClient()
                defer { client.close() }
                return (try? client.get("http://127.0.0.1:\(port)/slow")) == nil
            }
        }
        try await waitUntil { arrived.value == 1 }
        let cancelledAt = ContinuousClock.now
        running.cancel()
        try await running.value
        #expect(ContinuousClock.now - cancelledAt < .seconds(5), "cancellation did not wait for the drain timeout")
        #expect(try await slow.value, "the killed request got no answer")

        // A service whose group shuts down before it has even started serving.
        let early = Self.service(slowMilliseconds: 1, arrived: Arrivals())
        let group = ServiceGroup(configuration: .init(services: [.init(service: early)], logger: Logger(label: "test")))
        let run = Task { try await group.run() }
        await group.triggerGracefulShutdown()
        try await run.value
    }

    @Test func addressInUseIsThrownFromRunAndFromListeningPort() async throws {
        // A listener of plain libc's holds a port.
        let held = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(held) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(held, $0, length) == 0 && listen(held, 8) == 0 && getsockname(held, $0, &length) == 0
            }
        }
        #expect(bound)
        let port = Int(UInt16(bigEndian: address.sin_port))
        let http = HTTPServerService(configuration: .init(port: port)) { Router() }
        await #expect(throws: SystemError.self) { try await http.run() }
        await #expect(throws: SystemError.self) { _ = try await http.listeningPort() }
    }

    @Test func sigtermToTheExampleServiceGroupDrainsInFlightRequests() async throws {
        try await GreenThread.run {
            try withTimeout(.seconds(60)) {
                let demo = String(sproutExecutable().dropLast("sprout".count)) + "service-group-demo"
                let child = try ChildProcess([demo, "--port", "0", "--drain-seconds", "5"])
                let line = try child.waitForLine(containing: "listening on")
                guard let port = Int(line.split(separator: ":").last ?? "") else {
                    throw TestSupportError(description: "no port in \(line)")
                }
                let url = "http://127.0.0.1:\(port)"
                let client = HTTPClient()
                defer { client.close() }
                try sleep(for: .milliseconds(300))
                let ticks = Int(try client.get(url + "/ticks").text.filter(\.isNumber)) ?? -1
                #expect(ticks > 0, "the async ticker runs beside the server and the handler reads it through awaitAsync")

                // In flight well before the signal, and long after it.
                let slow = spawn { try client.get(url + "/slow?ms=2500") }
                try sleep(for: .milliseconds(800))
                kill(child.pid, SIGTERM)
                let response = try slow.get()
                #expect(response.status == .ok && response.text == "slept 2500 ms\n", "the request in flight at SIGTERM finished")
                let exit = try child.waitForExit(timeout: .seconds(10))
                #expect(exit == 0, "the group stopped cleanly (status \(String(describing: exit)))")
                #expect(try child.readToEnd(timeout: .seconds(2)).contains("stopped"))
            }
        }
    }
}

/// Polls `condition` every 10 ms for up to 10 s.
func waitUntil(_ condition: () -> Bool) async throws {
    let deadline = ContinuousClock.now + .seconds(10)
    while !condition() {
        guard ContinuousClock.now < deadline else { throw TestSupportError(description: "condition not met in 10 s") }
        try await Task.sleep(for: .milliseconds(10))
    }
}

/// A count shared between a handler's thread and the test.
final class Arrivals: Sendable {
    private let count = Atomic<Int>(0)
    private let released = Atomic<Bool>(false)
    func increment() { count.add(1, ordering: .relaxed) }
    var value: Int { count.load(ordering: .relaxed) }
    func release() { released.store(true, ordering: .relaxed) }
    var isReleased: Bool { released.load(ordering: .relaxed) }
}
