import CSproutSystem
import DequeModule
import Glibc
import Synchronization

/// A fixed set of OS threads for work that cannot yield: blocking C calls, `getaddrinfo`,
/// heavy computation (gevent's `ThreadPool`).
///
/// ``run(_:)`` parks only the calling greenlet; its hub keeps running the others, and the
/// result comes back through the hub's thread-safe inbox. Threads start on demand, up to
/// ``size``, and live as long as the process. Thread-safe: any hub may share a pool.
///
/// After `fork()`, ``shared`` starts afresh in the child (its threads are the parent's); a
/// pool of your own made before the fork must not be used in the child.
public final class ThreadPool: Sendable {
    /// The process-wide pool (10 threads, like gevent's hub pool).
    public static let shared = ThreadPool(size: 10)

    /// The most threads the pool runs.
    public let size: Int
    private let state = ThreadLock<State>(State())
    // A POSIX semaphore is itself thread-safe; the pointer never changes.
    nonisolated(unsafe) private let pending: UnsafeMutablePointer<sem_t>
    /// Held by the one idle worker allowed to spin.
    private let spinner = Atomic<Bool>(false)

    private struct State {
        var jobs = Deque<@Sendable () -> Void>()
        var threads = 0
        /// Workers running a job now.
        var busy = 0
    }
    /// Jobs queued and not yet taken (read without the lock by a spinning worker).
    private let queued = Atomic<Int>(0)

    /// Jobs waiting for a free thread now: a pool that is too small shows as a queue that
    /// does not drain. A snapshot, for metrics and diagnostics.
    public var queuedJobCount: Int { max(0, queued.load(ordering: .relaxed)) }

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

    /// In a forked child: the pool's threads stayed in the parent. Queued jobs are dropped
    /// (whoever waited for them is in the parent too) and threads start afresh on demand.
    func resetAfterFork() {
        _ = state.reinitializeAfterFork(State())
        queued.store(0, ordering: .sequentiallyConsistent)
        spinner.store(false, ordering: .sequentiallyConsistent)
        sem_init(pending, 0, 0)
    }

    /// Runs `work` on one of the pool's threads and returns its result.
    ///
    /// From a greenlet, only that greenlet parks. If it is killed or its timeout expires, it
    /// stops waiting at once; the work still runs to completion on its thread and its result is
    /// dropped. From a Swift concurrency task (a thread that must not get a hub), the thread
    /// blocks until the result is there.
    ///
    /// - Returns: What `work` returns.
    /// - Throws: What `work` throws; while waiting, `GreenletExit`, an enclosing `Timeout`;
    ///   ``HubError/blockingInHub(_:)`` from the hub's loop; ``SystemError`` if no thread can
    ///   be started.
    /// - Note: A switch point.
    public func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) throws -> T {
        guard let hub = Hub.existing ?? Hub.currentUnlessInTask else {
            return try runBlockingThread(work)
        }
        if hub.current === hub.hubGreenlet { throw HubError.blockingInHub("ThreadPool.run") }
        let call = PoolCall(work: work)
        do {
            try submit { call.execute() }
        } catch {
            call.send(.failure(error))  // no thread could start: the error settles what is owed
        }
        return try call.wait()
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

    /// Runs `job` on one of the pool's threads and returns at once, without waiting for it:
    /// callable from any thread, greenlet or not (``run(_:)`` is the waiting form for greenlets).
    /// An idle worker spins briefly before sleeping, so jobs that arrive close together start
    /// in well under a microsecond.
    ///
    /// - Throws: ``SystemError`` if the pool has no thread and none can be started.
    public func execute(_ job: @escaping @Sendable () -> Void) throws {
        try submit(job)
    }

    private func submit(_ job: @escaping @Sendable () -> Void) throws {
        let startThread = state.withLock { state -> Bool in
            state.jobs.append(job)
            // Start a thread while queued jobs outnumber the workers free to take them.
            if state.threads < size && state.jobs.count > state.threads - state.busy {
                state.threads += 1
                return true
            }
            return false
        }
        queued.add(1, ordering: .sequentiallyConsistent)
        if startThread {
            do {
                try spawnWorker()
            } catch {
                let stranded = state.withLock { state -> Bool in
                    state.threads -= 1
                    // With no worker at all the job would never run: take it back.
                    guard state.threads == 0 else { return false }
                    state.jobs.removeLast()
                    return true
                }
                if stranded {
                    queued.subtract(1, ordering: .sequentiallyConsistent)
                    throw error
                }
            }
        }
        // A spinning worker will see the job; otherwise wake a sleeping one. The spinner
        // re-checks `queued` after giving up, so a job is never stranded between the two.
        if !spinner.load(ordering: .sequentiallyConsistent) {
            sem_post(pending)
        }
    }

    private func popJob() -> (@Sendable () -> Void)? {
        guard queued.load(ordering: .acquiring) > 0 else { return nil }
        let job = state.withLock { state -> (@Sendable () -> Void)? in
            let job = state.jobs.popFirst()
            if job != nil { state.busy += 1 }
            return job
        }
        guard let job else { return nil }
        // Jobs queued while a spinner was about (they posted no wake-up) must not wait behind
        // this one: wake another worker.
        if queued.subtract(1, ordering: .sequentiallyConsistent).newValue > 0 {
            sem_post(pending)
        }
        return job
    }

    private func finishedJob() {
        state.withLock { $0.busy -= 1 }
    }

    /// Waits until a job may be queued. One worker at a time spins briefly (a job often
    /// follows soon, and waking a sleeping thread costs microseconds); the others sleep on the
    /// semaphore, so spinning never takes more than one core. Wake-ups may be spurious.
    private func waitForWork() {
        if spinner.compareExchange(expected: false, desired: true, ordering: .sequentiallyConsistent).exchanged {
            let limit = sprout_now_ns() &+ 50_000
            var rounds = 0
            while queued.load(ordering: .relaxed) == 0 {
                rounds &+= 1
                if rounds & 63 == 0 && sprout_now_ns() > limit { break }
                sprout_cpu_relax()
            }
            spinner.store(false, ordering: .sequentiallyConsistent)
            if queued.load(ordering: .sequentiallyConsistent) > 0 { return }
        }
        while sem_wait(pending) != 0 {}
    }

    private func spawnWorker() throws {
        let context = Unmanaged.passRetained(self).toOpaque()
        let rc = sprout_thread_start_detached({ arg in
            let pool = Unmanaged<ThreadPool>.fromOpaque(arg!).takeRetainedValue()
            sprout_thread_set_name("sprout-pool")
            pool.workLoop()
        }, context)
        guard rc == 0 else {
            Unmanaged<ThreadPool>.fromOpaque(context).release()
            throw SystemError(errno: rc, operation: "pthread_create (thread pool)")
        }
    }

    private func workLoop() -> Never {
        while true {
            if let job = popJob() {
                job()
                finishedJob()
            } else {
                waitForWork()
            }
        }
    }
}

/// One `ThreadPool.run` from a greenlet: the work and the result its greenlet waits for.
private final class PoolCall<T: Sendable>: ThreadResult<T>, @unchecked Sendable {
    let work: @Sendable () throws -> T

    init(work: @escaping @Sendable () throws -> T) {
        self.work = work
    }

    /// On a pool thread: runs the work and sends the result back to the hub.
    func execute() {
        send(Result { try work() })
    }
}
