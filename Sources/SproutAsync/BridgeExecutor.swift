import DequeModule
import Sprout

/// The task executor that ``awaitAsync(priority:taskLocals:_:)`` prefers for its tasks: jobs
/// run on a small ``ThreadPool`` of its own, whose idle worker spins briefly before sleeping,
/// so the hop from a greenlet into a task and back does not wait for Swift concurrency's
/// global pool to wake a thread (several microseconds each way on a VM).
///
/// Jobs wait in a queue of the executor's own and the pool is handed one capture-free
/// closure per job, so enqueueing allocates nothing.
///
/// Only a preference: what the task awaits on an actor or another executor runs there, and
/// comes back here when it resumes.
@usableFromInline
final class BridgeExecutor: TaskExecutor {
    @usableFromInline static let shared = BridgeExecutor()

    /// Two threads: the bridge's jobs are short (the task's synchronous slices); blocking
    /// work belongs in ``ThreadPool/shared``.
    private let pool = ThreadPool(size: 2)
    private let jobs = ThreadLock<Deque<UnownedJob>>(Deque(minimumCapacity: 64))
    private static let runOne: @Sendable () -> Void = { BridgeExecutor.shared.runNext() }

    @usableFromInline
    func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        jobs.withLock { $0.append(unowned) }
        do {
            try pool.execute(BridgeExecutor.runOne)
        } catch {
            // No thread could be started for the pool: run it on the caller's thread rather
            // than lose it (a lost job would leave its greenlet waiting for ever).
            runNext()
        }
    }

    /// Runs the oldest queued job (one per closure handed to the pool).
    private func runNext() {
        guard let job = jobs.withLock({ $0.popFirst() }) else { return }
        job.runSynchronously(on: asUnownedTaskExecutor())
    }
}
