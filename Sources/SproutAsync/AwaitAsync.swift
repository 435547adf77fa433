public import Sprout

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
/// Task-locals do not cross into the task by themselves: a greenlet is not a task, so it has
/// none to inherit. Give the ones the async code reads (a request id, a tracing context) as
/// `taskLocals`, and they are bound around `body` inside the task:
///
/// ```swift
/// enum Request { @TaskLocal static var id: String? }
/// let rows = try awaitAsync(taskLocals: [TaskLocalBinding(Request.$id, "req-42")]) {
///     try await client.query("SELECT 1")     // Request.id == "req-42" in here
/// }
/// ```
///
/// - Parameters:
///   - priority: The task's priority.
///   - taskLocals: Task-local values bound inside the task, outermost first.
///   - body: The async work. It runs on the bridge's own task executor (two threads that
///     spin briefly for work; see `BridgeExecutor`), or wherever the actors it awaits run,
///     never on the hub's thread. Blocking calls inside it hold one of those two threads.
/// - Returns: What `body` returned.
/// - Throws: What `body` threw, unchanged; `GreenletExit` or `Timeout` if the greenlet was
///   interrupted while waiting; ``HubError`` from the hub's loop (a callback cannot wait).
/// - Note: A switch point.
@inlinable  // specialized in the caller: no generic metadata looked up per call
public func awaitAsync<T: Sendable>(priority: TaskPriority? = nil, taskLocals: [TaskLocalBinding] = [],
                                    _ body: @escaping @Sendable () async throws -> T) throws -> T {
    let reply = ThreadResult<T>()
    let task = Task(executorPreference: BridgeExecutor.shared, priority: priority) {
        let result: Result<T, any Error>
        do {
            if taskLocals.isEmpty {
                result = .success(try await body())
            } else {
                result = .success(try await TaskLocalBinding.run(taskLocals, body))
            }
        } catch {
            result = .failure(error)
        }
        reply.send(result)
    }
    do {
        return try reply.wait()
    } catch {
        // Interrupted while waiting (or the body's own error): cancelling a finished task is harmless.
        if !reply.isReady { task.cancel() }
        throw error
    }
}

/// One task-local value for ``awaitAsync(priority:taskLocals:_:)`` to bind inside its task.
public struct TaskLocalBinding: Sendable {
    private let bind: @Sendable (@Sendable () async throws -> any Sendable) async throws -> any Sendable

    /// Binds `local` (`MyContext.$requestID`) to `value` around the task's body.
    public init<Value: Sendable>(_ local: TaskLocal<Value>, _ value: Value) {
        bind = { operation in try await local.withValue(value) { try await operation() } }
    }

    /// Runs `body` inside every binding, the first outermost.
    @usableFromInline
    static func run<T: Sendable>(_ bindings: [TaskLocalBinding], _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        @Sendable func nest(_ index: Int) async throws -> any Sendable {
            if index == bindings.count { return try await body() }
            return try await bindings[index].bind { try await nest(index + 1) }
        }
        return try await nest(0) as! T
    }
}
