import Glibc
import Sprout
import Testing

/// Runs `body` as the main greenlet of a fresh green thread, with a fine-grained deadline:
/// a scheduling bug fails the test with a `Timeout` instead of hanging it.
func green(timeout: Duration = .seconds(30), _ body: @escaping @Sendable () throws -> Void) async throws {
    try await GreenThread.run {
        try withTimeout(timeout) {
            try body()
        }
    }
}

/// Spawns `count` greenlets running `body(index)`.
func spawnMany<T>(_ count: Int, _ body: @escaping (Int) throws -> T) -> [Greenlet<T>] {
    (0..<count).map { index in spawn { try body(index) } }
}

/// Stack-pool and greenlet counters of the calling thread's hub, for leak checks.
struct HubCounters: Equatable {
    let stacksInUse: Int
    let liveGreenlets: Int

    static var current: HubCounters {
        let hub = Hub.current
        return HubCounters(stacksInUse: hub.stacksInUse, liveGreenlets: hub.liveGreenletCount)
    }
}

/// Runs the hub until every finished greenlet has been reclaimed, then checks that no
/// greenlet or stack outlived the test body.
func expectNoLeaks(since before: HubCounters, sourceLocation: SourceLocation = #_sourceLocation) throws {
    for _ in 0..<5 { try sleep(for: .zero) }
    let after = HubCounters.current
    #expect(after == before, "leaked greenlets or stacks", sourceLocation: sourceLocation)
}

/// A distinct error for tests.
struct TestError: Error, Equatable {
    let code: Int
}

/// A one-time signal between OS threads (a POSIX semaphore): `wait` blocks the calling thread.
final class OneShotSignal: @unchecked Sendable {
    private let semaphore = UnsafeMutablePointer<sem_t>.allocate(capacity: 1)
    init() { sem_init(semaphore, 0, 0) }
    deinit {
        sem_destroy(semaphore)
        semaphore.deallocate()
    }
    func signal() { sem_post(semaphore) }
    func wait() { while sem_wait(semaphore) != 0 {} }
}
