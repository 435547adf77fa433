import Sprout

/// Runs `body` as a Swift concurrency task and parks only the calling greenlet until it
/// finishes: the way from green code into async libraries (postgres-nio, async-http-client).
///
/// The hub keeps serving its other greenlets meanwhile. The task's result or error comes
/// back through the hub's inbox, and the hub knows it is coming (a pending post is not a
/// deadlock). If the greenlet is killed or an enclosing ``withTimeout(_:_:)`` fires while it
/// waits, the task is cancelled (it sees `Task.isCancelled`, and `Task.sleep` throws) and
/// the kill or timeout is thrown here; whatever the task returns afterwards is dropped.
///
/// ```swift
/// let rows = try awaitAsync { try await client.query("SELECT 1") }
/// ```
///
/// - Parameters:
///   - priority: The task's priority.
///   - body: The async work. It runs on the bridge's own task executor (two threads that
///     spin briefly for work; see `BridgeExecutor`), or wherever the actors it awaits run,
///     never on the hub's thread. Blocking calls inside it hold one of those two threads.
/// - Returns: What `body` returned.
/// - Throws: What `body` threw, unchanged; `GreenletExit` or `Timeout` if the greenlet was
///   interrupted while waiting; ``HubError`` from the hub's loop (a callback cannot wait).
/// - Note: A switch point.
public func awaitAsync<T: Sendable>(priority: TaskPriority? = nil,
                                    _ body: @escaping @Sendable () async throws -> T) throws -> T {
    let hub = Hub.current
    let outcome = AsyncResult<T>()
    let expected = hub.expectPost()
    let delivery = Delivery(outcome: outcome, expected: expected)
    let inbox = hub.inboxHandle
    let task = Task(executorPreference: BridgeExecutor.shared, priority: priority) {
        let result: Result<T, any Error>
        do {
            result = .success(try await body())
        } catch {
            result = .failure(error)
        }
        // If the hub has ended meanwhile (its thread exited), there is nobody to tell.
        _ = inbox.post { delivery.deliver(result) }
    }
    do {
        _ = try outcome.wait()
    } catch {
        task.cancel()
        throw error
    }
    return try outcome.get()
}

/// Hands a task's result to the greenlet waiting for it. Created and used on the hub's
/// thread only: the task merely carries it to the hub's inbox and back, so it is marked
/// `Sendable` by hand.
private final class Delivery<T>: @unchecked Sendable {
    private let outcome: AsyncResult<T>
    private let expected: ExpectedPost

    init(outcome: AsyncResult<T>, expected: ExpectedPost) {
        self.outcome = outcome
        self.expected = expected
    }

    /// Runs on the hub's thread, as posted work.
    func deliver(_ result: Result<T, any Error>) {
        expected.fulfill()
        switch result {
        case .success(let value): outcome.set(value)
        case .failure(let error): outcome.fail(error)
        }
    }
}
