import Glibc
import Sprout
import Testing

/// `ThreadResult`: a reply sent from a plain OS thread to one waiting greenlet.
@Suite struct ThreadResultTests {
    struct Failure: Error, Equatable { let code: Int }

    /// Runs `send` on a new OS thread after `delayMicros`.
    static func onThread(after delayMicros: UInt32, _ send: @escaping @Sendable () -> Void) -> pthread_t {
        final class Job { let run: () -> Void; init(_ run: @escaping () -> Void) { self.run = run } }
        let job = Unmanaged.passRetained(Job { usleep(delayMicros); send() }).toOpaque()
        var thread = pthread_t()
        pthread_create(&thread, nil, { raw in
            Unmanaged<Job>.fromOpaque(raw!).takeRetainedValue().run()
            return nil
        }, job)
        return thread
    }

    @Test func aValueAndAnErrorCrossFromAnotherThreadWhileTheHubServesOthers() async throws {
        try await GreenThread.run { () throws in
            let ticks = spawn { () throws -> Int in
                var count = 0
                for _ in 0..<5 { try sleep(for: .milliseconds(5)); count += 1 }
                return count
            }
            let value = ThreadResult<Int>()
            let thread = Self.onThread(after: 40_000) { value.send(.success(42)) }
            defer { pthread_join(thread, nil) }
            #expect(try value.wait() == 42)
            #expect(try ticks.get() == 5, "the other greenlet ran while this one waited")

            let failure = ThreadResult<Int>()
            let second = Self.onThread(after: 1_000) { failure.send(.failure(Failure(code: 7))) }
            defer { pthread_join(second, nil) }
            #expect(throws: Failure(code: 7)) { try failure.wait() }
        }
    }

    @Test func aReplyThatCameBeforeTheWaitIsReturnedAtOnce() async throws {
        try await GreenThread.run { () throws in
            let early = ThreadResult<String>()
            let thread = Self.onThread(after: 0) { early.send(.success("early")) }
            pthread_join(thread, nil)
            try sleep(for: .milliseconds(1))   // the post is drained
            #expect(early.isReady)
            #expect(try early.wait() == "early")
        }
    }

    @Test func aKilledWaiterStopsAtOnceAndTheLateReplyIsDropped() async throws {
        try await GreenThread.run { () throws in
            let made = AsyncResult<ThreadResult<Int>>()
            let waiter = spawn { () throws -> Int in
                let reply = ThreadResult<Int>()   // made by the greenlet that waits
                made.set(reply)
                return try reply.wait()
            }
            let reply = try made.get()
            try sleep(for: .milliseconds(5))
            waiter.kill()
            #expect(waiter.error is GreenletExit)
            #expect(reply.isAbandonedByWaiter)
            let thread = Self.onThread(after: 10_000) { reply.send(.success(1)) }
            defer { pthread_join(thread, nil) }
            // The hub still owes the reply: waiting for something else is not a deadlock.
            let later = ThreadResult<Int>()
            let other = Self.onThread(after: 30_000) { later.send(.success(2)) }
            defer { pthread_join(other, nil) }
            #expect(try later.wait() == 2)
        }
    }

    @Test func waitingFromTheHubsLoopThrowsInsteadOfBlocking() async throws {
        try await GreenThread.run { () throws in
            let thrown = Event()
            let outcome = AsyncResult<Bool>()
            Hub.current.callSoon {
                let reply = ThreadResult<Int>()
                reply.send(.success(0))   // settles what the hub is owed
                do { _ = try reply.wait(); outcome.set(false) } catch is HubError { outcome.set(true) } catch { outcome.set(false) }
                thrown.set()
            }
            try thrown.wait()
            #expect(try outcome.get())
        }
    }
}
