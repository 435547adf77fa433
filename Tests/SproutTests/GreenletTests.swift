import Sprout
import Testing

@Suite(.timeLimit(.minutes(3)))
struct GreenletTests {
    @Test func spawnRunsAndGetReturnsValue() async throws {
        try await green { () throws in
            let g: Greenlet<Int> = spawn { 40 + 2 }
            #expect(!g.isReady)
            let value = try g.get()
            #expect(value == 42)
            #expect(g.isReady && g.isSuccessful && g.error == nil)
            #expect(g.value == 42)
        }
    }

    @Test func blockingSyncFormWorksFromAPlainThread() throws {
        let value = try GreenThread.run { () throws -> Int in
            let g = spawn { () throws -> Int in
                try sleep(for: .milliseconds(1))
                return 7
            }
            return try g.get()
        }
        #expect(value == 7)
    }

    @Test func getRethrowsJoinDoesNot() async throws {
        try await green { () throws in
            let g = spawn { () throws -> Int in throw TestError(code: 1) }
            try g.join()
            #expect(g.isReady && !g.isSuccessful)
            #expect(g.error as? TestError == TestError(code: 1))
            #expect(throws: TestError(code: 1)) { try g.get() }
        }
    }

    @Test func spawnedGreenletsRunInFIFOOrder() async throws {
        try await green { () throws in
            var order: [Int] = []
            let all = (0..<100).map { index in spawn { order.append(index) } }
            try joinAll(all)
            #expect(order == Array(0..<100))
        }
    }

    @Test func tenThousandGreenletsSleepAndFinish() async throws {
        try await green(timeout: .seconds(150)) { () throws in
            let before = HubCounters.current
            var finished = 0
            let all = spawnMany(10_000) { index in
                try sleep(for: .milliseconds(Int64(index % 7)))
                finished += 1
            }
            #expect(try joinAll(all, timeout: .seconds(20)))
            #expect(finished == 10_000)
            try expectNoLeaks(since: before)
        }
    }

    @Test func joinWithTimeoutReturnsFalseThenTrue() async throws {
        try await green { () throws in
            let g = spawn { try sleep(for: .milliseconds(50)) }
            let early = try g.join(timeout: .milliseconds(5))
            let late = try g.join(timeout: .seconds(5))
            #expect(!early && late)
        }
    }

    @Test func killThrowsGreenletExitAtTheSwitchPoint() async throws {
        try await green { () throws in
            var sawExit = false
            var cleanedUp = false
            let g = spawn {
                defer { cleanedUp = true }
                do {
                    try sleep(for: .seconds(60))
                } catch is GreenletExit {
                    sawExit = true
                    throw GreenletExit()
                }
            }
            try sleep(for: .zero)   // let it start and park
            g.kill()
            #expect(g.isReady && sawExit && cleanedUp)
            #expect(g.isSuccessful, "a killed greenlet counts as successful, as in gevent")
            #expect(g.error is GreenletExit)
            #expect(throws: GreenletExit.self) { try g.get() }
        }
    }

    @Test func killBeforeStartMeansItNeverRuns() async throws {
        try await green { () throws in
            let before = HubCounters.current
            var ran = false
            let g = spawn { ran = true }
            g.kill()
            #expect(g.isReady)
            try sleep(for: .milliseconds(1))
            #expect(!ran)
            let later = spawnLater(.seconds(60)) { ran = true }
            later.kill()
            #expect(later.isReady && !ran)
            try expectNoLeaks(since: before)
        }
    }

    @Test func killNonBlockingReturnsAtOnce() async throws {
        try await green { () throws in
            let g = spawn { try sleep(for: .seconds(60)) }
            try sleep(for: .zero)
            g.kill(block: false)
            #expect(!g.isReady)
            try g.join()
            #expect(g.isReady)
        }
    }

    @Test func spawnLaterStartsAfterTheDelay() async throws {
        try await green { () throws in
            let start = ContinuousClock.now
            let g = spawnLater(.milliseconds(20)) { ContinuousClock.now }
            let startedAt = try g.get()
            #expect(startedAt - start >= .milliseconds(20))
        }
    }

    @Test func linkCallbackRunsOnceFinished() async throws {
        try await green { () throws in
            let done = Event()
            var seen: Int?
            let g = spawn { 5 }
            g.link { finished in
                seen = finished.value
                done.set()
            }
            try done.wait()
            #expect(seen == 5)
            // Linking after the end still fires.
            let again = Event()
            g.link { _ in again.set() }
            #expect(try again.wait(timeout: .seconds(1)))
        }
    }

    @Test func blockingInsideTheHubIsAnError() async throws {
        try await green { () throws in
            let done = Event()
            var caught: (any Error)?
            let g = spawn { 1 }
            g.link { _ in
                do {
                    try sleep(for: .milliseconds(1))
                } catch {
                    caught = error
                }
                done.set()
            }
            try done.wait()
            let error = try #require(caught as? HubError)
            #expect("\(error)".contains("hub"))
        }
    }

    @Test func waitThatCanNeverEndThrowsWouldBlockForever() async throws {
        // No outer withTimeout here: its timer would (rightly) keep the wait alive.
        try await GreenThread.run {
            let never = Event()
            do {
                try never.wait()
                Issue.record("wait returned")
            } catch let error as HubError {
                #expect(error.isWouldBlockForever)
                #expect("\(error)".contains("Event.wait"))
            }
        }
    }

    @Test func currentNamesTheRunningGreenlet() async throws {
        try await green { () throws in
            #expect(Greenlet.current.name == "main")
            let g = spawn(name: "worker") { Greenlet.current.name }
            let name = try g.get()
            #expect(name == "worker")
            let unnamed = spawn { Greenlet.current.name }
            let defaultName = try unnamed.get()
            #expect(defaultName.hasPrefix("Greenlet-"))
        }
    }

    @Test func killAllKillsEveryone() async throws {
        try await green { () throws in
            let all: [AnyGreenlet] = spawnMany(100) { _ in try sleep(for: .seconds(60)) }
            try sleep(for: .zero)
            killAll(all)
            #expect(all.allSatisfy { $0.isReady })
        }
    }

    @Test func greenThreadKillsLeftoversAtExit() async throws {
        final class Flag: @unchecked Sendable { var value = false }
        let cleaned = Flag()
        try await GreenThread.run {
            spawn {
                defer { cleaned.value = true }
                try sleep(for: .seconds(60))
            }
            try sleep(for: .zero)
        }
        #expect(cleaned.value)
    }

    @Test func errorsCrossBackFromGreenThread() async throws {
        await #expect(throws: TestError(code: 9)) {
            try await GreenThread.run { throw TestError(code: 9) }
        }
    }

    @Test func nestedGreenThreadParksOnlyTheCaller() async throws {
        try await green { () throws in
            // The other thread returns only after the caller's ticker has run to the end: if
            // the caller's hub stopped while it waited, this would never finish.
            let ticked = OneShotSignal()
            var ticks = 0
            let ticker = spawn {
                for _ in 0..<5 {
                    try sleep(for: .milliseconds(2))
                    ticks += 1
                }
                ticked.signal()
            }
            let value = try GreenThread.run { () throws -> Int in
                ticked.wait()
                return 3
            }
            #expect(value == 3)
            #expect(ticks == 5)
            try ticker.join()
        }
    }

    @Test func greenletLocalsAreSeparate() async throws {
        try await green { () throws in
            let local = GreenletLocal(0)
            local.value = 1
            let others = spawnMany(10) { index -> Int in
                #expect(local.value == 0)
                local.value = index + 100
                try sleep(for: .milliseconds(1))
                return local.value
            }
            let values = try others.map { try $0.get() }
            #expect(values == (0..<10).map { $0 + 100 })
            #expect(local.value == 1)
        }
    }
}

@Suite(.timeLimit(.minutes(1)))
struct FailureReportTests {
    @Test func unobservedFailureIsPrintedOnceWithTheName() async {
        let result = await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
            _ = try? GreenThread.run {
                spawn(name: "lonely") { () throws -> Void in throw TestError(code: 7) }
                let joined = spawn(name: "joined") { () throws -> Void in throw TestError(code: 8) }
                try joined.join()
                let linked = spawn(name: "linked") { () throws -> Void in throw TestError(code: 9) }
                linked.link { _ in }
                try sleep(for: .milliseconds(5))
            }
        }
        let stderr = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(stderr.split(separator: "\n").filter { $0.contains("greenlet 'lonely' failed") }.count == 1, "printed exactly once")
        #expect(stderr.contains("TestError(code: 7)"))
        #expect(!stderr.contains("'joined'"))
        #expect(!stderr.contains("'linked'"))
    }

    /// Issue 7 §3: the report says where the error was thrown, not only what it was.
    @Test func unobservedFailureIsPrintedWithWhereItWasThrown() async {
        let result = await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
            _ = try? GreenThread.run {
                spawn(name: "thrower") { try failDeepInsideAKnownFunction(3) }
                try sleep(for: .milliseconds(5))
            }
        }
        let stderr = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(stderr.contains("greenlet 'thrower' failed: TestError(code: 3)"), "\(stderr)")
        #expect(stderr.contains("last thrown at:"), "\(stderr)")
        #expect(stderr.contains("failDeepInsideAKnownFunction"), "\(stderr)")
    }
}

@inline(never)
func failDeepInsideAKnownFunction(_ code: Int) throws {
    if code > 0 { throw TestError(code: code) }
    print("not reached")
}
