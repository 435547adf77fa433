import Sprout
import Testing

/// `waitAny`, `wait(for:count:timeout:)` and `iwait` over greenlets, events and results.
@Suite(.timeLimit(.minutes(1)))
struct WaitManyTests {
    @Test func iwaitYieldsTheReadyFirstThenInTheOrderTheyGetReady() async throws {
        try await green { () throws in
            // The order is made by events, not by sleeps of different lengths: under a
            // sanitizer on a loaded machine two greenlets' sleeps can start far apart.
            let gate = Event()
            let slow = spawn { try gate.wait() }
            let fast = spawn { try sleep(for: .milliseconds(1)) }
            let event = Event()
            event.set()
            var ready = iwait([slow, fast, event])
            var order: [Int] = []
            while let index = try ready.nextReady() {
                order.append(index)
                if index == 1 { gate.set() }   // the slow one gets ready only after the fast one
            }
            #expect(order == [2, 1, 0])
        }
    }

    @Test func waitAnyReturnsTheFirstReadyOrNilAtTheTimeout() async throws {
        try await green { () throws in
            let never = Event()
            let result = AsyncResult<Int>()
            let setter = spawn {
                try sleep(for: .milliseconds(5))
                result.set(42)
            }
            #expect(try waitAny([never, result]) == 1)
            #expect(try waitAny([never], timeout: .milliseconds(5)) == nil)
            #expect(try waitAny([]) == nil)
            try setter.join()
        }
    }

    @Test func waitForCountStopsAtTheCountOrTheTimeoutAndLeavesNoWatcherBehind() async throws {
        try await green { () throws in
            let quick = spawnMany(3) { index in try sleep(for: .milliseconds(2 * (index + 1))) }
            let never = Event()
            let before = Hub.current.liveGreenletCount
            #expect(try wait(for: quick + [never], count: 2).count == 2)
            _ = try joinAll(quick)   // no race with the timeout below, however slow the machine
            let all = try wait(for: quick + [never], timeout: .milliseconds(20))
            #expect(Set(all) == [0, 1, 2], "the three finished greenlets, not the unset event")
            try sleep(for: .milliseconds(5))   // killed watchers are reclaimed
            #expect(Hub.current.liveGreenletCount <= before, "a watcher greenlet was left running")
        }
    }

    @Test func aKilledWaiterDoesNotReportReadiness() async throws {
        try await green { () throws in
            let never = Event()
            let waiter = spawn { try waitAny([never]) }
            try sleep(for: .milliseconds(2))
            waiter.kill()
            #expect(waiter.error is GreenletExit)
            never.set()
        }
    }
}
