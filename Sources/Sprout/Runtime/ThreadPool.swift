import CSproutContext
import DequeModule
import Glibc
import Synchronization

/// A fixed set of OS threads for work that cannot yield: blocking C calls, `getaddrinfo`,
/// heavy computation (gevent's `ThreadPool`).
///
/// ``run(_:)`` parks only the calling greenlet; its hub keeps running the others, and the
/// result comes back through the hub's thread-safe inbox. Threads start on demand, up to
/// ``size``, and live as long as the process. Thread-safe: any hub may share a pool.
public final class ThreadPool: Sendable {
    /// The process-wide pool (10 threads, like gevent's hub pool).
    public static let shared = ThreadPool(size: 10)

    /// The most threads the pool runs.
    public let size: Int
    private let state = Mutex<State>(State())
    // A POSIX semaphore is itself thread-safe; the pointer never changes.
    nonisolated(unsafe) private let pending: UnsafeMutablePointer<sem_t>

    private struct State {
        var jobs = Deque<@Sendable () -> Void>()
        var threads = 0
        var idle = 0
    }

    /// Creates a pool of at most `size` threads.
    /// - Precondition: `size >= 1`.
    public init(size: Int) {
        precondition(size >= 1, "ThreadPool: size must be at least 1 (got \(size))")
        self.size = size
        pending = .allocate(capacity: 1)
        sem_init(pending, 0, 0)
    }

    deinit {
        // Pools are normally process-wide; a private pool's threads keep it alive while they run.
        sem_destroy(pending)
        pending.deallocate()
    }

    /// Runs `work` on one of the pool's threads and returns its result.
    ///
    /// From a greenlet, only that greenlet parks. If it is killed or its timeout expires, it
    /// stops waiting at once; the work still runs to completion on its thread and its result is
    /// dropped. From a thread without a hub, the thread blocks until the result is there.
    ///
    /// - Returns: What `work` returns.
    /// - Throws: What `work` throws; while waiting, `GreenletExit`, an enclosing `Timeout`;
    ///   ``HubError/blockingInHub(_:)`` from the hub's loop; ``SystemError`` if no thread can
    ///   be started.
    /// - Note: A switch point.
    public func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) throws -> T {
        guard let hub = Hub.existing else {
            return try runBlockingThread(work)
        }
        let waiter = hub.current!
        if waiter === hub.hubGreenlet { throw HubError.blockingInHub("ThreadPool.run") }
        let outcome = UncheckedBox<Result<T, any Error>?>(nil)
        let abandoned = UncheckedBox(false)
        let hubBox = UncheckedBox(hub)
        let waiterBox = UncheckedBox(waiter)
        let inbox = hub.inboxHandle
        try submit {
            let result = Result { try work() }
            inbox.post {
                hubBox.value.expectedPosts -= 1
                outcome.value = result
                if !abandoned.value { hubBox.value.wake(waiterBox.value) }
            }
        }
        hub.expectedPosts += 1
        do {
            while outcome.value == nil {
                _ = try hub.park(on: "ThreadPool.run", deadline: nil)
            }
        } catch {
            abandoned.value = true
            throw error
        }
        return try outcome.value!.get()
    }

    private func runBlockingThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) throws -> T {
        let done = UnsafeMutablePointer<sem_t>.allocate(capacity: 1)
        sem_init(done, 0, 0)
        defer {
            sem_destroy(done)
            done.deallocate()
        }
        let outcome = UncheckedBox<Result<T, any Error>?>(nil)
        let signal = UncheckedBox(done)
        try submit {
            outcome.value = Result { try work() }
            sem_post(signal.value)
        }
        while sem_wait(done) != 0 {}
        return try outcome.value!.get()
    }

    private func submit(_ job: @escaping @Sendable () -> Void) throws {
        let startThread = state.withLock { state -> Bool in
            state.jobs.append(job)
            if state.idle == 0 && state.threads < size {
                state.threads += 1
                return true
            }
            if state.idle > 0 { state.idle -= 1 }
            return false
        }
        if startThread {
            do {
                try spawnWorker()
            } catch {
                state.withLock { $0.threads -= 1 }
                throw error
            }
        }
        sem_post(pending)
    }

    private func spawnWorker() throws {
        let context = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        let rc = pthread_create(&thread, &attributes, { arg in
            let pool = Unmanaged<ThreadPool>.fromOpaque(arg!).takeRetainedValue()
            sprout_thread_set_name("sprout-pool")
            pool.workLoop()
            return nil
        }, context)
        guard rc == 0 else {
            Unmanaged<ThreadPool>.fromOpaque(context).release()
            throw SystemError(errno: rc, operation: "pthread_create (thread pool)")
        }
    }

    private func workLoop() -> Never {
        while true {
            while sem_wait(pending) != 0 {}
            let job = state.withLock { state -> (@Sendable () -> Void)? in
                state.jobs.popFirst()
            }
            job?()
            state.withLock { $0.idle += 1 }
        }
    }
}
