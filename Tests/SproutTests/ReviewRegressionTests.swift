import Glibc
import Sprout
import Testing

/// Regressions for defects found in review: each test failed (or hung, or crashed) before its fix.
@Suite(.timeLimit(.minutes(1)))
struct ReviewRegressionTests {
    @Test func greenThreadsWithFinishedTimeoutsFreeTheirHubs() async {
        // Each hub owns an epoll descriptor and an eventfd; a hub kept alive by a stale timer
        // entry leaks both. Counted in a child process: other tests open descriptors too.
        await #expect(processExitsWith: .success) {
            func openDescriptors() -> Int {
                var count = 0
                for fd in 0..<4096 where fcntl(Int32(fd), F_GETFD) >= 0 { count += 1 }
                return count
            }
            let before = openDescriptors()
            for _ in 0..<200 {
                _ = try? GreenThread.run {
                    try withTimeout(.seconds(60)) { try sleep(for: .zero) }
                    _ = try Event().wait(timeout: .milliseconds(1))
                }
            }
            exit(openDescriptors() <= before + 2 ? 0 : 1)
        }
    }

    @Test func hugeDurationsDoNotOverflowThePollTimeout() async throws {
        // No outer withTimeout: its nearer deadline would hide the huge ones from the poll.
        try await GreenThread.run { () throws in
            let sleeper = spawn { try sleep(for: .seconds(Int64.max / 4)) }
            let waiter = spawn { try Event().wait(timeout: .seconds(10_000_000_000)) }
            // Wait with no timer of our own, so the hub computes its poll timeout from theirs.
            _ = try ThreadPool.shared.run { usleep(100_000) }
            killAll([sleeper, waiter])
            #expect(sleeper.isReady && waiter.isReady)
        }
    }

    @Test func threadPoolRunsMoreThanTwoBlockingJobsAtOnce() async throws {
        try await green { () throws in
            // Two jobs block until a third runs: a pool that starts too few threads deadlocks.
            let gate = UnsafeMutablePointer<sem_t>.allocate(capacity: 1)
            sem_init(gate, 0, 0)
            defer { sem_destroy(gate); gate.deallocate() }
            let address = Int(bitPattern: gate)
            let blocked = spawnMany(2) { _ in
                try ThreadPool.shared.run {
                    let gate = UnsafeMutablePointer<sem_t>(bitPattern: address)!
                    while sem_wait(gate) != 0 {}
                }
            }
            try sleep(for: .milliseconds(5))
            try withTimeout(.seconds(10)) {
                try ThreadPool.shared.run {
                    let gate = UnsafeMutablePointer<sem_t>(bitPattern: address)!
                    sem_post(gate)
                    sem_post(gate)
                }
                try joinAll(blocked)
            }
        }
    }

    @Test func conditionNotifyGrantedToAKilledWaiterPassesOn() async throws {
        try await green { () throws in
            let condition = Condition()
            let first = spawn { try condition.lock.withLock { _ = try condition.wait() } }
            let second = spawn { () throws -> Bool in
                try condition.lock.withLock { try condition.wait(timeout: .seconds(5)) }
            }
            try sleep(for: .zero)
            try condition.lock.withLock { condition.notify() }   // granted to `first`...
            first.kill(block: false)                             // ...which dies before running
            #expect(try second.get(), "the notify went on to the second waiter")
        }
    }

    @Test func killedKillerKeepsItsOwnPendingKill() async throws {
        try await green { () throws in
            let stubborn = spawn {
                do { try sleep(for: .seconds(60)) } catch {}
                try sleep(for: .milliseconds(50))
            }
            try sleep(for: .zero)
            var outcome = ""
            let killer = spawn {
                do {
                    try withTimeout(.milliseconds(5)) { stubborn.kill() }
                    try sleep(for: .seconds(60))
                    outcome = "survived"
                } catch is GreenletExit {
                    outcome = "killed"
                    throw GreenletExit()
                } catch {
                    outcome = "other: \(error)"
                }
            }
            try sleep(for: .milliseconds(1))
            killer.kill(block: false)
            try killer.join()
            #expect(outcome == "killed")
            stubborn.kill()
        }
    }
}

extension SocketSuites {
    @Suite(.timeLimit(.minutes(1)))
    struct ReviewSocketRegressionTests {
        @Test func waitReportsReadinessThatAlreadyExists() async throws {
            try await green { () throws in
                try withEchoServer { port, _ in
                    let socket = try Socket.connect(host: "127.0.0.1", port: port)
                    defer { socket.close() }
                    // connect consumed the writable edge; the socket is writable all the same.
                    #expect(try socket.wait(writable: true, timeout: .seconds(2)))
                    try socket.sendAll("abcdef")
                    _ = try receive(socket, exactly: 1)
                    try sleep(for: .milliseconds(5))
                    // Five bytes are still buffered: readable now, no new edge will come.
                    #expect(try socket.wait(readable: true, timeout: .seconds(2)))
                }
            }
        }

        @Test func closingWhileWaitingFreesTheSlotForAReusedDescriptor() async throws {
            try await green { () throws in
                try withEchoServer { port, _ in
                    let first = try Socket.connect(host: "127.0.0.1", port: port)
                    let oldFD = first.fileDescriptor
                    let reader = spawn { try first.recv(maxLength: 1) }
                    try sleep(for: .zero)
                    first.close()   // `reader` is woken but has not run yet
                    let second = try Socket.connect(host: "127.0.0.1", port: port)
                    defer { second.close() }
                    try #require(second.fileDescriptor == oldFD, "the descriptor number was not reused")
                    second.timeout = .milliseconds(5)
                    #expect(throws: SystemError.self) { _ = try second.recv(maxLength: 1) }   // ETIMEDOUT, not concurrentWait
                    #expect(throws: SystemError.self) { _ = try reader.get() }
                }
            }
        }
    }
}

@Suite(.timeLimit(.minutes(1)))
struct SignalRestoreTests {
    @Test func cancellingTheLastHandlerRestoresTheDefaultAction() async {
        await #expect(processExitsWith: .signal(SIGUSR1)) {
            _ = try? GreenThread.run {
                let handler = try onSignal(SIGUSR1) {}
                handler.cancel()
            }
            kill(getpid(), SIGUSR1)   // default action again: the process ends by the signal
            sleep(5)
        }
    }
}
