import Glibc
@_spi(Testing) import Sprout
import SproutAsync
import Testing

struct BridgeError: Error, Equatable {
    let code: Int
}

/// A flag set by a task and read by a greenlet's thread.
final class CrossThreadFlag: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    private var value = false
    init() { pthread_mutex_init(&mutex, nil) }
    func set() {
        pthread_mutex_lock(&mutex)
        value = true
        pthread_mutex_unlock(&mutex)
    }
    var isSet: Bool {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return value
    }
}

/// Threads of this process, from /proc.
func threadCount() -> Int {
    guard let dir = opendir("/proc/self/task") else { return -1 }
    defer { closedir(dir) }
    var count = 0
    while let entry = readdir(dir) {
        let first = withUnsafeBytes(of: entry.pointee.d_name) { $0.first ?? 0 }
        if first != UInt8(ascii: ".") { count += 1 }
    }
    return count
}

enum BridgeContext {
    @TaskLocal static var requestID: String?
    @TaskLocal static var depth = 0
}

/// Issue 13, the bridge from greenlets into async code.
@Suite(.timeLimit(.minutes(1)))
struct AwaitAsyncTests {
    @Test func taskLocalsGivenAtTheCallAreSetInsideTheTask() async throws {
        try await GreenThread.run {
            let seen = try awaitAsync(taskLocals: [TaskLocalBinding(BridgeContext.$requestID, "req-42"),
                                                   TaskLocalBinding(BridgeContext.$depth, 3)]) { () async -> String in
                // Child tasks inherit them as usual.
                let child = await Task { "\(BridgeContext.requestID ?? "none")/\(BridgeContext.depth)" }.value
                return "\(BridgeContext.requestID ?? "none") \(BridgeContext.depth) \(child)"
            }
            #expect(seen == "req-42 3 req-42/3")
            // Without bindings the task sees the defaults: nothing leaks from an earlier call.
            let plain = try awaitAsync { () async -> String in "\(BridgeContext.requestID ?? "none") \(BridgeContext.depth)" }
            #expect(plain == "none 0")
        }
    }

    @Test func theHubKeepsServingWhileOneGreenletAwaitsATask() async throws {
        let allDone = CrossThreadFlag()
        try await GreenThread.run {
            var finished = 0
            let others = (0..<1000).map { _ in
                spawn {
                    for _ in 0..<10 { try sleep(for: .milliseconds(1)) }
                    finished += 1
                    if finished == 1000 { allDone.set() }
                }
            }
            // The task waits until the 1,000 greenlets have run their timers, which they can
            // only do if the hub keeps serving while this greenlet is parked in awaitAsync.
            let answer = try awaitAsync { () async throws -> String in
                let deadline = ContinuousClock.now + .seconds(20)
                while !allDone.isSet {
                    if ContinuousClock.now > deadline { return "the hub stopped while waiting" }
                    try await Task.sleep(for: .milliseconds(2))
                }
                return "served"
            }
            #expect(answer == "served")
            _ = try joinAll(others)
        }
    }

    @Test func errorsCrossUnchanged() async throws {
        try await GreenThread.run {
            var caught: BridgeError?
            do {
                _ = try awaitAsync { () async throws -> Int in throw BridgeError(code: 5) }
            } catch let error as BridgeError {
                caught = error
            }
            #expect(caught == BridgeError(code: 5))
        }
    }

    @Test func aKillCancelsTheTask() async throws {
        let cancelled = CrossThreadFlag()
        try await GreenThread.run {
            let waiter = spawn {
                _ = try awaitAsync { () async throws -> Int in
                    do {
                        try await Task.sleep(for: .seconds(30))
                    } catch is CancellationError {
                        if Task.isCancelled { cancelled.set() }
                        throw CancellationError()
                    }
                    return 1
                }
            }
            try sleep(for: .milliseconds(20))
            waiter.kill()
            #expect(waiter.error is GreenletExit)
            let deadline = ContinuousClock.now + .seconds(10)
            while !cancelled.isSet && ContinuousClock.now < deadline { try sleep(for: .milliseconds(5)) }
        }
        #expect(cancelled.isSet, "the task never saw its cancellation")
    }

    @Test func aTimeoutCancelsTheTask() async throws {
        let cancelled = CrossThreadFlag()
        try await GreenThread.run {
            var timedOut = false
            do {
                try withTimeout(.milliseconds(20)) {
                    _ = try awaitAsync { () async throws -> Int in
                        do {
                            try await Task.sleep(for: .seconds(30))
                        } catch {
                            if Task.isCancelled { cancelled.set() }
                            throw error
                        }
                        return 1
                    }
                }
            } catch is Timeout {
                timedOut = true
            }
            #expect(timedOut)
            let deadline = ContinuousClock.now + .seconds(10)
            while !cancelled.isSet && ContinuousClock.now < deadline { try sleep(for: .milliseconds(5)) }
        }
        #expect(cancelled.isSet, "the task never saw its cancellation")
    }

    @Test func tenThousandRoundTripsLeaveNothingBehind() async throws {
        let threadsBefore = threadCount()
        try await GreenThread.run {
            let greenletsBefore = Hub.current.liveGreenletCount
            var sum = 0
            for index in 0..<10_000 {
                sum += try awaitAsync { index }
            }
            #expect(sum == (0..<10_000).reduce(0, +))
            try sleep(for: .milliseconds(1))
            #expect(Hub.current.liveGreenletCount == greenletsBefore, "a greenlet was left behind")
        }
        // Other suites start and end threads meanwhile, and pools keep theirs: what must not
        // happen is a thread per call, which would show as thousands.
        #expect(threadCount() < threadsBefore + 100, "threads: \(threadsBefore) before, \(threadCount()) after")
    }

    @Test func aHubCallbackCannotWait() async throws {
        try await GreenThread.run {
            var thrown: (any Error)?
            let done = Event()
            Hub.current.callSoon {
                do {
                    _ = try awaitAsync { 1 }
                } catch {
                    thrown = error
                }
                done.set()
            }
            try done.wait()
            #expect(thrown is HubError)
        }
    }
}
