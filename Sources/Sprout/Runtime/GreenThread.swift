import CSproutSystem
import Glibc

/// Runs green code on an OS thread of its own, with its own hub: the way in from code that is
/// not already on a hub thread (tests, apps that also use Swift concurrency).
///
/// The body runs as the new thread's main greenlet; it can spawn greenlets, sleep and wait
/// like any greenlet. When it returns, greenlets it left running are killed (their `defer`
/// blocks run), the hub's stacks are freed and the thread exits.
public enum GreenThread {
    /// Runs `body` on a new OS thread with its own hub and returns its result, blocking the
    /// calling thread until it is done. From a greenlet, only the calling greenlet waits: its
    /// hub keeps running the others.
    ///
    /// - Parameter stackSize: The new thread's own stack, in bytes (default 8 MiB).
    /// - Returns: What `body` returns.
    /// - Throws: What `body` throws; ``SystemError`` if the thread cannot be created;
    ///   ``HubError/blockingInHub(_:)`` from the hub's loop (a `callSoon` or `link` callback).
    public static func run<T: Sendable>(stackSize: Int = 8 << 20,
                                        _ body: @escaping @Sendable () throws -> T) throws -> T {
        if let hub = Hub.existing {
            // From the hub's loop (a `callSoon` or `link` callback), waiting would block every
            // greenlet of the thread.
            guard hub.current !== hub.hubGreenlet else { throw HubError.blockingInHub("GreenThread.run") }
            return try runParkingGreenlet(hub: hub, stackSize: stackSize, body)
        }
        let done = Completion<T>()
        let thread = try start(stackSize: stackSize, body) { result in done.complete(result) }
        let result = done.wait()
        pthread_join(thread, nil)
        return try result.get()
    }

    /// Runs `body` on a new OS thread with its own hub and returns its result, suspending the
    /// calling task (not blocking a Swift concurrency thread) until it is done.
    ///
    /// - Throws: What `body` throws; ``SystemError`` if the thread cannot be created.
    public static func run<T: Sendable>(stackSize: Int = 8 << 20,
                                        _ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            do {
                let thread = try start(stackSize: stackSize, body) { result in
                    continuation.resume(with: result)
                }
                pthread_detach(thread)
            } catch {
                continuation.resume(throwing: error)
            }
        }
    }

    private static func runParkingGreenlet<T: Sendable>(hub: Hub, stackSize: Int,
                                                        _ body: @escaping @Sendable () throws -> T) throws -> T {
        let waiter = UncheckedBox(hub.current!)
        let result = UncheckedBox<Result<T, any Error>?>(nil)
        let inbox = hub.inboxHandle
        let thread = try start(stackSize: stackSize, body) { outcome in
            inbox.post {
                result.value = outcome
                let greenlet = waiter.value
                greenlet.isGranted = true
                greenlet.hub.wake(greenlet)
            }
        }
        hub.expectedPosts += 1
        defer { hub.expectedPosts -= 1 }
        while result.value == nil {
            do {
                _ = try hub.park(on: "GreenThread.run", deadline: nil)
            } catch {
                // The thread cannot be stopped from here; wait for it, then deliver the error.
                while result.value == nil { _ = try? hub.park(on: "GreenThread.run", deadline: nil) }
                pthread_join(thread, nil)
                throw error
            }
        }
        pthread_join(thread, nil)
        return try result.value!.get()
    }

    /// Starts the thread; `finished` is called on it once the body is done and its hub ended.
    private static func start<T: Sendable>(stackSize: Int, _ body: @escaping @Sendable () throws -> T,
                                           finished: @escaping @Sendable (Result<T, any Error>) -> Void) throws -> pthread_t {
        let job = Unmanaged.passRetained(ThreadJob {
            _ = Hub.current
            let result = Result { try body() }
            if let hub = Hub.existing { hub.shutdown() }
            finished(result)
        })
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setstacksize(&attributes, max(stackSize, 256 << 10))
        var thread = pthread_t()
        let rc = pthread_create(&thread, &attributes, { arg in
            let job = Unmanaged<ThreadJob>.fromOpaque(arg!).takeRetainedValue()
            sprout_thread_set_name("sprout-green")
            job.run()
            return nil
        }, job.toOpaque())
        guard rc == 0 else {
            job.release()
            throw SystemError(errno: rc, operation: "pthread_create")
        }
        return thread
    }
}

private final class ThreadJob: @unchecked Sendable {
    let run: () -> Void
    init(_ run: @escaping () -> Void) { self.run = run }
}

/// A value handed between threads whose access is ordered by other means (the hub's inbox).
final class UncheckedBox<Value>: @unchecked Sendable {
    var value: Value
    init(_ value: Value) { self.value = value }
}

/// A one-shot result that an OS thread (not a greenlet) blocks on.
private final class Completion<T: Sendable>: @unchecked Sendable {
    // `result` is written once before `sem_post` and read after `sem_wait`.
    private var result: Result<T, any Error>?
    private let semaphore = UnsafeMutablePointer<sem_t>.allocate(capacity: 1)

    init() { sem_init(semaphore, 0, 0) }

    deinit {
        sem_destroy(semaphore)
        semaphore.deallocate()
    }

    func complete(_ result: Result<T, any Error>) {
        self.result = result
        sem_post(semaphore)
    }

    func wait() -> Result<T, any Error> {
        while sem_wait(semaphore) != 0 {}
        return result!
    }
}
