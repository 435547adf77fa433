import Sprout
import Testing

/// Every blocking operation, parked on by many greenlets at once, then interrupted by kills and
/// by timeouts: the interrupted ones see the right error, the others are unaffected, the
/// primitive still works, and no greenlet or stack is leaked.
@Suite(.timeLimit(.minutes(1)))
struct InterruptionTests {
    enum Operation: String, CaseIterable, CustomTestStringConvertible {
        case sleep, join, event, asyncResult, semaphore, lock, condition, queueGet, queuePut, channelGet, channelPut
        var testDescription: String { rawValue }
    }

    /// The objects one operation blocks on, and how to let the survivors through afterwards.
    final class Fixture {
        let event = Event()
        let result = AsyncResult<Int>()
        let semaphore = Semaphore(0)
        let lock = Lock()
        let condition = Condition()
        let queue = Queue<Int>(maxSize: 1)
        let channel = Channel<Int>()
        var blocker: Greenlet<Void>?

        init(_ operation: Operation) throws {
            switch operation {
            case .join: blocker = spawn { try sleep(for: .seconds(60)) }
            case .lock: try lock.acquire()
            case .queuePut: try queue.put(-1)
            default: break
            }
        }

        /// Blocks the calling greenlet in `operation`.
        func block(in operation: Operation) throws {
            switch operation {
            case .sleep: try Sprout.sleep(for: .seconds(60))
            case .join: try blocker!.join()
            case .event: try event.wait()
            case .asyncResult: _ = try result.get()
            case .semaphore: try semaphore.acquire()
            case .lock: try lock.acquire(); lock.release()
            case .condition: try condition.lock.withLock { _ = try condition.wait() }
            case .queueGet: _ = try queue.get()
            case .queuePut: try queue.put(1)
            case .channelGet: _ = try channel.get()
            case .channelPut: try channel.put(1)
            }
        }

        /// Lets `survivors` greenlets blocked in `operation` through.
        func release(_ operation: Operation, survivors: Int) throws {
            switch operation {
            case .sleep: break   // they are killed at the end instead
            case .join: blocker!.kill()
            case .event: event.set()
            case .asyncResult: result.set(1)
            case .semaphore: for _ in 0..<survivors { semaphore.release() }
            case .lock: lock.release()
            case .condition: try condition.lock.withLock { condition.notifyAll() }
            case .queueGet: for item in 0..<survivors { try queue.put(item) }
            case .queuePut: for _ in 0...survivors { _ = try queue.get() }
            case .channelGet: for item in 0..<survivors { try channel.put(item) }
            case .channelPut: for _ in 0..<survivors { _ = try channel.get() }
            }
        }
    }

    @Test(arguments: Operation.allCases)
    func killsAndTimeoutsLandInEveryBlockingOperation(_ operation: Operation) async throws {
        try await green { () throws in
            let before = HubCounters.current
            let fixture = try Fixture(operation)
            var outcomes: [String] = Array(repeating: "", count: 300)
            let greenlets = (0..<300).map { index in
                spawn {
                    do {
                        if index % 3 == 1 {
                            try withTimeout(.milliseconds(5)) { try fixture.block(in: operation) }
                        } else {
                            try fixture.block(in: operation)
                        }
                        outcomes[index] = "done"
                    } catch is GreenletExit {
                        outcomes[index] = "killed"
                        throw GreenletExit()
                    } catch is Timeout {
                        outcomes[index] = "timeout"
                    }
                }
            }
            try sleep(for: .milliseconds(1))
            // Kill every third greenlet (index % 3 == 0) while parked.
            killAll(greenlets.enumerated().filter { $0.offset % 3 == 0 }.map(\.element))
            try sleep(for: .milliseconds(20))   // let the timeouts fire
            let survivors = greenlets.enumerated().filter { $0.offset % 3 == 2 }.map(\.element)
            if operation == .sleep {
                killAll(survivors)
            } else {
                try fixture.release(operation, survivors: survivors.count)
                #expect(try joinAll(survivors, timeout: .seconds(10)))
            }
            for index in 0..<300 {
                switch index % 3 {
                case 0: #expect(outcomes[index] == "killed", "greenlet \(index)")
                case 1: #expect(outcomes[index] == "timeout", "greenlet \(index)")
                default: #expect(outcomes[index] == (operation == .sleep ? "killed" : "done"), "greenlet \(index)")
                }
            }
            #expect(greenlets.allSatisfy { $0.isReady && $0.isSuccessful })
            if let blocker = fixture.blocker { blocker.kill() }
            try expectNoLeaks(since: before)
        }
    }

    @Test func grantedWaiterKilledBeforeRunningPassesThePermitOn() async throws {
        try await green { () throws in
            let semaphore = Semaphore(0)
            let first = spawn { try semaphore.acquire() }
            let second = spawn { try semaphore.acquire() }
            try sleep(for: .zero)
            semaphore.release()      // granted to `first`, which has not run yet
            first.kill(block: false) // ...and is killed before it runs
            #expect(try second.join(timeout: .seconds(1)), "the permit went to the next waiter")
            #expect(semaphore.value == 0)
        }
    }

    @Test func itemHandedToAKilledGetterIsNotLost() async throws {
        try await green { () throws in
            let queue = Queue<Int>()
            let channel = Channel<Int>()
            let doomedQueueGetter = spawn { try queue.get() }
            let doomedChannelGetter = spawn { try channel.get() }
            try sleep(for: .zero)
            try queue.put(7)
            try channel.put(8)
            doomedQueueGetter.kill(block: false)
            doomedChannelGetter.kill(block: false)
            try sleep(for: .zero)
            #expect(try queue.get(timeout: .seconds(1)) == 7)
            #expect(try channel.get(timeout: .seconds(1)) == 8)
        }
    }

    @Test func killedKillerIsInterruptedAtItsNextSwitchPoint() async throws {
        try await green { () throws in
            let target = spawn {
                // Refuses to die quickly.
                do { try sleep(for: .seconds(60)) } catch {}
                try sleep(for: .milliseconds(30))
            }
            let killer = spawn {
                target.kill()                       // waits for the target...
                try sleep(for: .seconds(60))        // ...its own kill lands here at the latest
            }
            try sleep(for: .milliseconds(1))
            killer.kill()
            #expect(killer.isReady)
            target.kill()
        }
    }

    @Test func timeoutInsideJoinAllAndGreenThread() async throws {
        try await green { () throws in
            let slow = spawn { try sleep(for: .seconds(60)) }
            #expect(throws: Timeout.self) {
                try withTimeout(.milliseconds(5)) { try joinAll([slow]) }
            }
            slow.kill()
            #expect(throws: Timeout.self) {
                try withTimeout(.milliseconds(5)) {
                    _ = try GreenThread.run { try sleep(for: .milliseconds(40)) }
                }
            }
        }
    }
}
