import Sprout
import SproutAsync
import Testing

/// Issue 13, the way from async code into greenlets.
@Suite(.timeLimit(.minutes(1)))
struct GreenExecutorTests {
    @Test func bodiesRunInGreenletsThatOverlap() async throws {
        let executor = try await GreenExecutor.start()
        let start = ContinuousClock.now
        let results = try await withThrowingTaskGroup(of: Int.self) { group in
            for index in 0..<200 {
                group.addTask {
                    try await executor.run {
                        try sleep(for: .milliseconds(100))   // a blocking-style wait, in a greenlet
                        return index
                    }
                }
            }
            return try await group.reduce(into: Set<Int>()) { $0.insert($1) }
        }
        #expect(results == Set(0..<200))
        // Serially this would take 20 s; overlapping, about one sleep.
        #expect(ContinuousClock.now - start < .seconds(10))
        await executor.shutdown()
    }

    @Test func errorsCrossUnchangedAndShutdownRefusesNewWork() async throws {
        let executor = try await GreenExecutor.start()
        await #expect(throws: BridgeError(code: 9)) {
            try await executor.run { () throws -> Int in throw BridgeError(code: 9) }
        }
        await executor.shutdown()
        await #expect(throws: GreenExecutorError.shutDown) {
            try await executor.run { 1 }
        }
        await executor.shutdown()   // idempotent
    }

    @Test func atMostMaxInFlightRunAtOnce() async throws {
        let executor = try await GreenExecutor.start(maxInFlight: 3)
        let peak = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<12 {
                group.addTask {
                    try await executor.run { () throws -> Int in
                        InFlight.count += 1
                        let now = InFlight.count
                        try sleep(for: .milliseconds(20))
                        InFlight.count -= 1
                        return now
                    }
                }
            }
            return try await group.reduce(0) { max($0, $1) }
        }
        #expect(peak == 3)
        await executor.shutdown()
    }

    @Test func shutdownLetsRunningBodiesFinish() async throws {
        let executor = try await GreenExecutor.start()
        async let slow = executor.run { () throws -> String in
            try sleep(for: .milliseconds(100))
            return "finished"
        }
        try await Task.sleep(for: .milliseconds(20))
        await executor.shutdown()
        #expect(try await slow == "finished")
    }
}

/// Bodies run on the executor's one thread, so a plain counter is safe there.
enum InFlight {
    nonisolated(unsafe) static var count = 0
}
