import Sprout
import Testing

@Suite(.timeLimit(.minutes(1)))
struct SyncTests {
    @Test func eventWakesAllWaitersInFIFOOrder() async throws {
        try await green { () throws in
            let event = Event()
            var order: [Int] = []
            let waiters = spawnMany(200) { index in
                try event.wait()
                order.append(index)
            }
            try sleep(for: .zero)
            #expect(order.isEmpty)
            event.set()
            try joinAll(waiters)
            #expect(order == Array(0..<200))
            #expect(try event.wait(timeout: .zero))
            event.clear()
            #expect(try event.wait(timeout: .milliseconds(2)) == false)
        }
    }

    @Test func asyncResultDeliversValueAndError() async throws {
        try await green { () throws in
            let result = AsyncResult<String>()
            let readers = spawnMany(50) { _ in try result.get() }
            spawn { result.set("hello") }
            for reader in readers { #expect(try reader.get() == "hello") }
            let failing = AsyncResult<Int>()
            spawn { failing.fail(TestError(code: 3)) }
            #expect(throws: TestError(code: 3)) { try failing.get() }
            let never = AsyncResult<Int>()
            #expect(throws: Timeout.self) { try never.get(timeout: .milliseconds(2)) }
        }
    }

    @Test func semaphoreLimitsConcurrencyAndIsFair() async throws {
        try await green { () throws in
            let semaphore = Semaphore(3)
            var inside = 0
            var most = 0
            var order: [Int] = []
            let all = spawnMany(300) { index in
                try semaphore.withLock {
                    order.append(index)
                    inside += 1
                    most = max(most, inside)
                    try sleep(for: .zero)
                    inside -= 1
                }
            }
            try joinAll(all)
            #expect(most == 3)
            #expect(order == Array(0..<300), "waiters are served FIFO")
            #expect(semaphore.value == 3)
        }
    }

    @Test func semaphoreAcquireTimesOut() async throws {
        try await green { () throws in
            let semaphore = Semaphore(0)
            #expect(try semaphore.acquire(timeout: .zero) == false)
            #expect(try semaphore.acquire(timeout: .milliseconds(2)) == false)
            semaphore.release()
            #expect(try semaphore.acquire(timeout: .milliseconds(2)))
        }
    }

    @Test func lockSerialisesAcrossSwitchPoints() async throws {
        try await green { () throws in
            let lock = Lock()
            var shared = 0
            let all = spawnMany(100) { _ in
                try lock.withLock {
                    let seen = shared
                    try sleep(for: .zero)
                    shared = seen + 1
                }
            }
            try joinAll(all)
            #expect(shared == 100)
            #expect(!lock.isLocked)
        }
    }

    @Test func rlockIsReentrantForItsOwnerOnly() async throws {
        try await green { () throws in
            let lock = RLock()
            try lock.acquire()
            try lock.acquire()
            let other = spawn { try lock.acquire(timeout: .milliseconds(5)) }
            #expect(try other.get() == false)
            lock.release()
            #expect(lock.isLocked)
            lock.release()
            #expect(!lock.isLocked)
            let again = spawn { () throws -> Bool in
                let got = try lock.acquire(timeout: .seconds(1))
                lock.release()
                return got
            }
            #expect(try again.get())
        }
    }

    @Test func conditionNotifiesWaitersInOrder() async throws {
        try await green { () throws in
            let condition = Condition()
            var ready = false
            var woke: [Int] = []
            let waiters = spawnMany(20) { index in
                try condition.lock.withLock {
                    while !ready { try condition.wait() }
                    woke.append(index)
                }
            }
            try sleep(for: .zero)
            try condition.lock.withLock {
                ready = true
                condition.notifyAll()
            }
            try joinAll(waiters)
            #expect(woke == Array(0..<20))
            try condition.lock.withLock {
                let notified = try condition.wait(timeout: .milliseconds(2))
                #expect(!notified)
                #expect(condition.lock.isLocked, "the lock is held again after a timed-out wait")
            }
        }
    }
}
