import Glibc
import Logging
@_spi(Testing) import Sprout
import SproutTestSupport
import Testing

/// Computes for `duration` without a switch point, reading the clock rarely so that a sample
/// almost always lands in this function's own code.
@inline(never)
func hogTheHubWithoutYielding(for duration: Duration, until done: () -> Bool = { false }) -> UInt64 {
    let end = ContinuousClock.now + duration
    var state: UInt64 = 0x9E37_79B9_7F4A_7C15
    while true {
        // A plain counter, not `for _ in 0..<n`: in debug builds a range loop calls into the
        // standard library, whose frameless leaf functions would hide this frame from a sample.
        var round = 0
        while round < 20_000 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            round &+= 1
        }
        if ContinuousClock.now >= end || done() { return state }
    }
}

@inline(never)
func parkedInAlphaFunction(_ event: Event) throws {
    let woke = try event.wait()
    if !woke { print("unreachable") }   // not a tail call: the frame stays on the stack
}

@inline(never)
func parkedInBetaFunction(_ queue: Queue<Int>) throws {
    let item = try queue.get()
    if item < 0 { print("unreachable") }
}

@inline(never)
func parkedInGammaFunction(_ event: Event) throws {
    // Not the same body as parkedInAlphaFunction: identical functions may be merged in release.
    let woke = try event.wait(timeout: .seconds(60))
    if !woke { print("gamma timed out") }
}

/// Collects what the monitor reports, from its thread.
final class ReportBox: @unchecked Sendable {
    private let lock = NSLockish()
    private var reports: [BlockedHubMonitor.Report] = []
    private var messages: [String] = []

    func add(_ report: BlockedHubMonitor.Report) { lock.locked { reports.append(report) } }
    func add(message: String) { lock.locked { messages.append(message) } }
    var all: [BlockedHubMonitor.Report] { lock.locked { reports } }
    var logged: [String] { lock.locked { messages } }
}

/// A pthread mutex (Foundation is not imported by these tests).
final class NSLockish: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    init() { pthread_mutex_init(&mutex, nil) }
    func locked<R>(_ body: () -> R) -> R {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return body()
    }
}

/// A log handler that hands each message to a box.
struct CapturingLogHandler: LogHandler {
    let box: ReportBox
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(event: LogEvent) {
        box.add(message: "\(event.level) \(event.message) \(event.metadata ?? [:])")
    }
}

/// Issue 7 §2 and §3: the blocked-hub monitor and run-info dumps. Serialized: the monitor is
/// one per process.
/// Exclusive with the scale and socket suites (`.countsSockets`): a dump walks every greenlet
/// of the process, and 100,000 of them parked elsewhere would turn it into a load test.
@Suite(.serialized, .timeLimit(.minutes(1)), .countsSockets)
struct DiagnosticsTests {
    @Test func theMonitorReportsACPUHogWithItsNameAndAFrameOfItsFunction() async throws {
        let box = ReportBox()
        let logger = Logger(label: "sprout.monitor.test") { _ in CapturingLogHandler(box: box) }
        try BlockedHubMonitor.start(threshold: .milliseconds(50), logger: logger) { box.add($0) }
        defer { BlockedHubMonitor.stop() }
        try await green { () throws in
            // Hogs until its report is in (or 20 s): on a loaded machine, or under a sanitizer,
            // the monitor may take a while to get an answer from the thread.
            let hog = spawn(name: "cpu-hog") {
                hogTheHubWithoutYielding(for: .seconds(20)) { box.all.contains { $0.greenletName == "cpu-hog" } }
            }
            _ = try hog.get()
            // Reports are named and delivered on a thread of their own: wait for ours.
            let deadline = ContinuousClock.now + .seconds(20)
            while box.all.allSatisfy({ $0.greenletName != "cpu-hog" }) && ContinuousClock.now < deadline {
                try sleep(for: .milliseconds(10))
            }
            try sleep(for: .milliseconds(100))   // a second report would come now
        }
        let mine = box.all.filter { $0.greenletName == "cpu-hog" }
        #expect(mine.count == 1, "one report per episode; got \(box.all.map(\.greenletName))")
        let report = try #require(mine.first)
        #expect(report.blockedFor >= .milliseconds(50))
        let backtrace = try #require(report.backtrace)
        #expect(backtrace.contains(symbol: "hogTheHubWithoutYielding"), "\(backtrace)")
        #expect(box.logged.contains { $0.contains("warning") && $0.contains("'cpu-hog'") && $0.contains("hogTheHubWithoutYielding") })
    }

    @Test func theMonitorDoesNotReportAHubThatSleepsOrTurns() async throws {
        let box = ReportBox()
        // A generous threshold: on a loaded two-core machine the OS alone can keep a thread
        // off the CPU for tens of milliseconds, which the monitor cannot tell from a hog.
        try BlockedHubMonitor.start(threshold: .milliseconds(400), logger: Logger(label: "quiet") { _ in SwiftLogNoOpLogHandler() }) { box.add($0) }
        defer { BlockedHubMonitor.stop() }
        let hub = try await GreenThread.run { () throws -> Int in
            try sleep(for: .milliseconds(600))   // asleep in epoll_wait
            let busy = spawnMany(4) { _ in       // busy, but switching every 2 ms
                for _ in 0..<80 {
                    burnCPU(for: .milliseconds(2))
                    try sleep(for: .zero)
                }
            }
            _ = try joinAll(busy)
            return RuntimeTesting.hubNumber
        }
        #expect(box.all.filter { $0.hubNumber == hub }.isEmpty, "\(box.all)")
    }

    @Test func runInfoFindsParkedGreenletsInTheFunctionsTheyWaitIn() async throws {
        let otherParked = Event.ThreadSafeFlag()
        let releaseOther = Event.ThreadSafeFlag()
        async let other: Void = GreenThread.run {
            let event = Event()
            let gamma = spawn(name: "parked-gamma") { try parkedInGammaFunction(event) }
            otherParked.set()
            while !releaseOther.isSet { try sleep(for: .milliseconds(1)) }
            event.set()
            try gamma.join()
        }
        try await green { () throws in
            let event = Event()
            let queue = Queue<Int>()
            let alpha = spawn(name: "parked-alpha") { try parkedInAlphaFunction(event) }
            let beta = spawn(name: "parked-beta") { try parkedInBetaFunction(queue) }
            try sleep(for: .milliseconds(1))
            while !otherParked.isSet { try sleep(for: .milliseconds(1)) }
            try sleep(for: .milliseconds(5))
            let info = Hub.runInfo()
            let text = info.description
            let byName = Dictionary(info.greenlets.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
            for (name, function) in [("parked-alpha", "parkedInAlphaFunction"), ("parked-beta", "parkedInBetaFunction"),
                                     ("parked-gamma", "parkedInGammaFunction")] {
                let greenlet = try #require(byName[name], "\(name) missing from\n\(text)")
                #expect(greenlet.state == .parked)
                #expect(greenlet.backtrace?.contains(symbol: function) == true, "\(name): \(greenlet)")
            }
            #expect(byName["parked-alpha"]?.waitingOn == "Event.wait")
            #expect(byName["parked-beta"]?.waitingOn?.hasPrefix("Queue") == true)
            #expect(text.contains("parked-gamma"))
            #expect(info.greenlets.contains { $0.state == .running && $0.name == "main" })
            releaseOther.set()
            event.set()
            try queue.put(1)
            try alpha.join()
            try beta.join()
        }
        try await other
    }

    @Test func runInfoSamplesAHubThatDoesNotAnswer() async throws {
        let hogging = Event.ThreadSafeFlag()
        async let blocked: Void = GreenThread.run {
            let hog = spawn(name: "unanswering-hog") {
                hogging.set()
                _ = hogTheHubWithoutYielding(for: .milliseconds(1500))
            }
            try hog.join()
        }
        try await green { () throws in
            while !hogging.isSet { try sleep(for: .milliseconds(1)) }
            let info = Hub.runInfo(timeout: .milliseconds(200))
            let culprit = try #require(info.hubs.compactMap(\.blocked).first { $0.name == "unanswering-hog" }, "\(info)")
            #expect(culprit.backtrace?.contains(symbol: "hogTheHubWithoutYielding") == true, "\(culprit)")
        }
        try await blocked
    }
}

extension Event {
    /// A flag set on one thread and read on another (tests only).
    final class ThreadSafeFlag: @unchecked Sendable {
        private let lock = NSLockish()
        private var value = false
        func set() { lock.locked { value = true } }
        var isSet: Bool { lock.locked { value } }
    }
}
