import Glibc
@_spi(Testing) import Sprout
import Testing

/// Burns the CPU for `duration` without a switch point.
func burnCPU(for duration: Duration) {
    let end = ContinuousClock.now + duration
    while ContinuousClock.now < end {}
}

/// More defects of issue 7 §1, each test written to fail before its fix.
@Suite(.timeLimit(.minutes(1)))
struct ReviewDefectTests {
    @Test func aTurnOfSlowGreenletsEndsNearItsBudgetNotAfterSixtyFourOfThem() async throws {
        try await green { () throws in
            // 100 greenlets that each burn 2 ms between switches, all ready in one turn. The
            // turn budget is 5 ms: the hub must get to poll for IO and timers after a handful
            // of them, not after the 64 that a budget check every 64 hand-offs lets through.
            var hogsPerTurn: [Int: Int] = [:]
            let hogs = spawnMany(100) { _ in
                try sleep(for: .zero)
                burnCPU(for: .milliseconds(2))
                hogsPerTurn[RuntimeTesting.loopTurns, default: 0] += 1
                try sleep(for: .zero)
            }
            _ = try joinAll(hogs)
            let most = hogsPerTurn.values.max() ?? 0
            #expect(most > 0)
            #expect(most < 20, "\(most) greenlets of 2 ms ran in one turn of a 5 ms budget")
        }
    }

    @Test func aKilledSleeperIsFreedAlthoughItsTimerEntryIsStillQueued() async throws {
        try await green { () throws in
            weak var freed: AnyGreenlet?
            do {
                let sleeper = spawn { try sleep(for: .seconds(3600)) }
                freed = sleeper
                try sleep(for: .milliseconds(1))   // parked with its hour-long timer
                sleeper.kill()
                let timed = spawn { try withTimeout(.seconds(3600)) { try sleep(for: .milliseconds(1)) } }
                try timed.join()
                freed = freed ?? timed
            }
            try sleep(for: .milliseconds(1))   // the hub reclaims the dead ones
            #expect(RuntimeTesting.timerEntries >= 1, "the stale entry is still queued")
            #expect(freed == nil, "a stale timer entry keeps the finished greenlet alive")
        }
    }

    @Test func conditionWaitThatCannotRetakeItsLockThrowsInsteadOfSpinning() async throws {
        // No outer timeout: its pending timer would keep the hub from seeing the deadlock.
        try await GreenThread.run {
            let condition = Condition()
            let never = Event()
            try condition.lock.acquire()
            // Takes the lock as soon as the waiter releases it, and keeps it for ever.
            let holder = spawn {
                try condition.lock.acquire()
                try never.wait()
            }
            var reportedDeadlock = false
            do {
                try condition.wait(timeout: .milliseconds(5))
            } catch let error as HubError {
                reportedDeadlock = error.isWouldBlockForever
            }
            // Nothing can ever release the lock: the re-acquire reports the deadlock once
            // instead of retrying it at 100% CPU.
            #expect(reportedDeadlock)
            let holderStillWaits = !holder.isReady
            #expect(holderStillWaits)
            holder.kill()
        }
    }
}
