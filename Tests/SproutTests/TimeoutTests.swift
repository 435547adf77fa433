import Glibc
@_spi(Testing) import Sprout
import Testing

@Suite(.timeLimit(.minutes(1)))
struct TimeoutTests {
    @Test func timeoutFiresAtTheSwitchPoint() async throws {
        try await green { () throws in
            let start = ContinuousClock.now
            #expect(throws: Timeout.self) {
                try withTimeout(.milliseconds(10)) { try sleep(for: .seconds(10)) }
            }
            let elapsed = ContinuousClock.now - start
            #expect(elapsed >= .milliseconds(10), "not before the deadline")
        }
    }

    @Test func blockThatEndsInTimeIsNotInterruptedLater() async throws {
        try await green { () throws in
            let value = try withTimeout(.milliseconds(5)) { 42 }
            #expect(value == 42)
            try sleep(for: .milliseconds(20))   // the cancelled timer must not fire here
        }
    }

    @Test func nilTimeoutNeverFires() async throws {
        try await green { () throws in
            try withTimeout(nil) { try sleep(for: .milliseconds(5)) }
        }
    }

    @Test func nestedTimeoutsFireAsThemselves() async throws {
        try await green { () throws in
            // The outer expires first, inside the inner block: the outer's Timeout escapes.
            do {
                try withTimeout(.milliseconds(10)) {
                    try withTimeout(.seconds(10)) { try sleep(for: .seconds(20)) }
                }
                Issue.record("no timeout")
            } catch let timeout as Timeout {
                #expect(timeout.duration == .milliseconds(10))
            }
            // The inner expires first: the inner's Timeout; the outer block can catch it and go on.
            var innerCaught = false
            try withTimeout(.seconds(10)) {
                do {
                    try withTimeout(.milliseconds(5)) { try sleep(for: .seconds(20)) }
                } catch let timeout as Timeout {
                    #expect(timeout.duration == .milliseconds(5))
                    innerCaught = true
                }
                try sleep(for: .milliseconds(1))
            }
            #expect(innerCaught)
        }
    }

    @Test func timeoutThatFiresAfterAWakeIsDroppedWhenTheBlockEnds() async throws {
        try await green { () throws in
            // The timeout fires while the greenlet is already woken but has not run yet; the
            // block then ends without another switch point, so the Timeout must not leak out.
            let event = Event()
            let g = spawn { () -> String in
                let inBlock: String
                do {
                    try withTimeout(.milliseconds(1)) { _ = try event.wait() }
                    inBlock = "woken"
                } catch is Timeout {
                    inBlock = "timed out"
                } catch {
                    return "unexpected \(error)"
                }
                // A stale Timeout of the ended block would surface at this switch point.
                do {
                    try sleep(for: .milliseconds(1))
                } catch {
                    return "stale \(error) after the block"
                }
                return inBlock
            }
            try sleep(for: .zero)
            event.set()
            let spin = ContinuousClock.now
            while ContinuousClock.now - spin < .milliseconds(3) {}   // let the deadline pass
            // Either outcome of the block is allowed by gevent's semantics; a Timeout after it is not.
            let outcome = try g.get()
            #expect(outcome == "woken" || outcome == "timed out", "\(outcome)")
        }
    }

    @Test func manyShortTimeoutsDoNotAccumulate() async throws {
        try await green { () throws in
            let before = RuntimeTesting.timerEntries
            for _ in 0..<50_000 {
                _ = try withTimeout(.seconds(60)) { 1 }
            }
            try sleep(for: .milliseconds(1))
            // Each block left a stale entry; the heap compacts once they outnumber live ones.
            #expect(RuntimeTesting.timerEntries - before <= 2 * 1024 + 2,
                    "\(RuntimeTesting.timerEntries - before) timer entries left by 50,000 ended blocks")
        }
    }

    @Test func sleepZeroLetsOthersRunAndIOPolls() async throws {
        try await green { () throws in
            var order: [String] = []
            let a = spawn {
                for _ in 0..<3 {
                    order.append("a")
                    try sleep(for: .zero)
                }
            }
            let b = spawn {
                for _ in 0..<3 {
                    order.append("b")
                    try sleep(for: .zero)
                }
            }
            try joinAll([a, b])
            #expect(order == ["a", "b", "a", "b", "a", "b"])
        }
    }

    @Test func sleepZeroStormDoesNotStarveTimers() async throws {
        try await green { () throws in
            var stop = false
            let spinners = spawnMany(100) { _ in
                while !stop { try sleep(for: .zero) }
            }
            // The timer fires although a hundred greenlets yield without pause (a starved
            // timer would leave them spinning until the test's time limit).
            try sleep(for: .milliseconds(10))
            stop = true
            try joinAll(spinners)
        }
    }
}

@Suite(.timeLimit(.minutes(1)))
struct SignalTests {
    @Test func signalHandlerRunsInAGreenletOfTheWatchingHub() async throws {
        try await green { () throws in
            let received = Event()
            var ranOn: String?
            let handler = try onSignal(SIGUSR2) {
                ranOn = Greenlet.current.name
                received.set()
            }
            defer { handler.cancel() }
            kill(getpid(), SIGUSR2)   // whichever thread the kernel picks, the relay brings it here
            #expect(try received.wait(timeout: .seconds(5)))
            #expect(ranOn?.hasPrefix("signal") == true)
            #expect(throws: SystemError.self) { try onSignal(SIGKILL) {} }
        }
    }
}
