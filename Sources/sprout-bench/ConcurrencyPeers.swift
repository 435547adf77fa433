import Dispatch
@_spi(Benchmarks) import Sprout
import Synchronization

/// The same work done with Swift concurrency, the peer of each micro-benchmark.
enum ConcurrencyPeers {
    /// ns per one-way hand-off between two tasks resuming each other's `CheckedContinuation`.
    static func continuationPingPong(_ iterations: Int) async -> Double {
        let ping = Baton()
        let pong = Baton()
        let clock = ContinuousClock()
        let start = clock.now
        async let partner: Void = {
            for _ in 0..<iterations {
                await ping.wait()
                pong.signal()
            }
        }()
        for _ in 0..<iterations {
            ping.signal()
            await pong.wait()
        }
        await partner
        return (clock.now - start).nanoseconds / Double(2 * iterations)
    }

    /// ns per `addTask` + `next()` of an empty child task.
    static func taskGroupSpawnJoin(_ iterations: Int) async -> Double {
        let clock = ContinuousClock()
        let start = clock.now
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<iterations {
                group.addTask {}
                await group.next()
            }
        }
        return (clock.now - start).nanoseconds / Double(iterations)
    }

    /// ns per item through an `AsyncStream` from one task to another.
    static func asyncStreamHandoff(_ items: Int) async -> Double {
        let (stream, continuation) = AsyncStream.makeStream(of: Int.self, bufferingPolicy: .unbounded)
        let clock = ContinuousClock()
        let start = clock.now
        async let consumer: Int = {
            var sum = 0
            for await item in stream { sum &+= item }
            return sum
        }()
        for item in 0..<items { continuation.yield(item) }
        continuation.finish()
        _ = await consumer
        return (clock.now - start).nanoseconds / Double(items)
    }

    /// ns per `Task.yield()` with `tasks` tasks yielding at once.
    static func taskYield(tasks: Int, total: Int) async -> Double {
        let perTask = max(1, total / tasks)
        let clock = ContinuousClock()
        let start = clock.now
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<tasks {
                group.addTask {
                    for _ in 0..<perTask { await Task.yield() }
                }
            }
        }
        return (clock.now - start).nanoseconds / Double(perTask * tasks)
    }

    /// ns per hop to a Dispatch global queue and back through a continuation: how async code
    /// runs blocking work off its own threads.
    static func dispatchRoundTrip(_ iterations: Int) async -> Double {
        let clock = ContinuousClock()
        let start = clock.now
        for index in 0..<iterations {
            _ = await withCheckedContinuation { (continuation: CheckedContinuation<Int, Never>) in
                DispatchQueue.global().async { continuation.resume(returning: index) }
            }
        }
        return (clock.now - start).nanoseconds / Double(iterations)
    }

    /// Resident bytes per task suspended on a continuation, with `count` suspended at once.
    static func parkedTaskRSS(_ count: Int) async -> Double {
        let gate = Gate()
        let before = RuntimeBenchmarks.residentBytes()
        var after = before
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<count {
                group.addTask { await gate.wait() }
            }
            while gate.waiting < count { await Task.yield() }
            after = RuntimeBenchmarks.residentBytes()
            gate.open()
        }
        return Double(after - before) / Double(count)
    }
}

/// A one-shot signal between two tasks, built on `CheckedContinuation`.
final class Baton: Sendable {
    private let state = Mutex<(waiter: CheckedContinuation<Void, Never>?, signalled: Bool)>((nil, false))

    func wait() async {
        await withCheckedContinuation { continuation in
            let resumeNow = state.withLock { state -> Bool in
                if state.signalled {
                    state.signalled = false
                    return true
                }
                state.waiter = continuation
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }

    func signal() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.signalled = true
            return nil
        }
        waiter?.resume()
    }
}

/// Many tasks suspended until `open()`.
final class Gate: Sendable {
    private let state = Mutex<(waiters: [CheckedContinuation<Void, Never>], isOpen: Bool)>(([], false))

    var waiting: Int { state.withLock { $0.waiters.count } }

    func wait() async {
        await withCheckedContinuation { continuation in
            let resumeNow = state.withLock { state -> Bool in
                if state.isOpen { return true }
                state.waiters.append(continuation)
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }

    func open() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.isOpen = true
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }
}
