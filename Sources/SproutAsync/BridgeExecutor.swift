import Sprout

/// The task executor that ``awaitAsync(priority:_:)`` prefers for its tasks: jobs run on a
/// small ``ThreadPool`` of its own, whose idle worker spins briefly before sleeping, so the
/// hop from a greenlet into a task and back does not wait for Swift concurrency's global pool
/// to wake a thread (several microseconds each way on a VM).
///
/// Only a preference: what the task awaits on an actor or another executor runs there, and
/// comes back here when it resumes.
final class BridgeExecutor: TaskExecutor {
    static let shared = BridgeExecutor()

    /// Two threads: the bridge's jobs are short (the task's synchronous slices); blocking
    /// work belongs in ``ThreadPool/shared``.
    private let pool = ThreadPool(size: 2)

    func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        do {
            try pool.execute { unowned.runSynchronously(on: executor) }
        } catch {
            // No thread could be started for the pool: run it on the caller's thread rather
            // than lose it (a lost job would leave its greenlet waiting for ever).
            unowned.runSynchronously(on: executor)
        }
    }
}
