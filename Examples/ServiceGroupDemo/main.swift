// A Sprout HTTP server and an async service side by side in one swift-service-lifecycle
// ServiceGroup: SIGTERM (or SIGINT) drains both, the server finishing its in-flight requests.
//
//   swift run service-group-demo [--port N] [--drain-seconds S]
//
// GET /ticks         how many times the async ticker has ticked, read through awaitAsync
// GET /slow?ms=N     answers after N ms of green sleep (a request in flight during a drain)

import Glibc
import Logging
import ServiceLifecycle
import Sprout
import SproutAsync
import SproutHTTP
import SproutLifecycle

/// The async half: an actor-held count, advanced every 50 ms until the group shuts down.
actor TickCount {
    private(set) var ticks = 0
    func tick() { ticks += 1 }
}

struct TickerService: Service {
    let count: TickCount

    func run() async throws {
        // cancelWhenGracefulShutdown: the sleep ends at once when the group drains.
        for await _ in AsyncTimerSequence.every(.milliseconds(50)).cancelOnGracefulShutdown() {
            await count.tick()
        }
    }
}

/// An `AsyncSequence` firing every `interval` until cancelled.
struct AsyncTimerSequence: AsyncSequence, Sendable {
    let interval: Duration
    static func every(_ interval: Duration) -> AsyncTimerSequence { AsyncTimerSequence(interval: interval) }

    struct AsyncIterator: AsyncIteratorProtocol {
        let interval: Duration
        mutating func next() async -> Void? {
            do { try await Task.sleep(for: interval) } catch { return nil }
            return ()
        }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(interval: interval) }
}

func option(_ name: String, default value: Int) -> Int {
    let arguments = CommandLine.arguments
    guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count else { return value }
    guard let number = Int(arguments[index + 1]), number >= 0 else {
        Usage.fail("\(name) takes a whole number, got '\(arguments[index + 1])'")
    }
    return number
}

enum Usage {
    static func fail(_ message: String) -> Never {
        printError(message)
        exit(2)
    }
}

func printError(_ message: String) {
    let line = "service-group-demo: \(message)\n"
    _ = line.utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
}

let port = option("--port", default: 8080)
let drainSeconds = option("--drain-seconds", default: 10)
var logger = Logger(label: "service-group-demo")
logger.logLevel = .info

let count = TickCount()
let http = HTTPServerService(configuration: .init(port: port), drainTimeout: .seconds(drainSeconds)) {
    let router = Router()
    router.get("/ticks") { _ in
        let ticks = try awaitAsync { await count.ticks }
        return .text("\(ticks)\n")
    }
    router.get("/slow") { request in
        let milliseconds = request.query["ms"].flatMap { Int($0) } ?? 1000
        try sleep(for: .milliseconds(min(milliseconds, 60_000)))
        return .text("slept \(milliseconds) ms\n")
    }
    return router
}

let group = ServiceGroup(configuration: .init(
    services: [.init(service: TickerService(count: count)), .init(service: http)],
    gracefulShutdownSignals: [.sigterm, .sigint],
    logger: logger))

Task {
    let bound = try await http.listeningPort()
    print("service-group-demo: listening on http://127.0.0.1:\(bound)")
    fflush(nil)
}
do {
    try await group.run()
    print("service-group-demo: stopped")
} catch {
    printError("\(error)")
    exit(1)
}
