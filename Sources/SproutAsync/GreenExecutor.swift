import DequeModule
import Sprout

/// A long-lived green thread that async code hands blocking-style work to, many times,
/// without starting a thread each time (the async `GreenThread.run` starts one per call): the
/// way from async code into greenlets.
///
/// Each submitted body runs in a greenlet of the executor's hub, so bodies that wait (on
/// sockets, sleeps, Sprout's primitives) overlap. At most `maxInFlight` run at once; further
/// submissions wait, suspending their task (not a thread), until one finishes: back-pressure.
///
/// ```swift
/// let executor = try await GreenExecutor.start()
/// let page = try await executor.run { try fetchWithABlockingClient() }
/// await executor.shutdown()
/// ```
public final class GreenExecutor: Sendable {
    private let inbox: HubInbox
    private let loop: UncheckedSendable<ExecutorLoop>
    private let slots: AsyncSlots
    private let stopped = ThreadLock(false)
    private let ended: Task<Void, any Error>

    private init(inbox: HubInbox, loop: UncheckedSendable<ExecutorLoop>, slots: AsyncSlots, ended: Task<Void, any Error>) {
        self.inbox = inbox
        self.loop = loop
        self.slots = slots
        self.ended = ended
    }

    /// Starts the executor's thread and hub.
    ///
    /// - Parameters:
    ///   - maxInFlight: The most bodies running at once (at least 1).
    ///   - stackSize: The stack of each body's greenlet (default 256 KiB).
    /// - Throws: ``SystemError`` if the thread cannot be started.
    public static func start(maxInFlight: Int = 1024, stackSize: Int? = nil) async throws -> GreenExecutor {
        precondition(maxInFlight >= 1, "GreenExecutor: maxInFlight must be at least 1")
        let ready = AsyncHandoff<(HubInbox, UncheckedSendable<ExecutorLoop>)>()
        let ended = Task.detached {
            do {
                try await GreenThread.run {
                    let hub = Hub.current
                    let loop = ExecutorLoop(stackSize: stackSize)
                    // An idle executor waits for posts: that is not a deadlock.
                    let expected = hub.expectPost()
                    ready.deliver((hub.inboxHandle, UncheckedSendable(loop)))
                    try loop.quit.wait()
                    _ = try loop.running.join()
                    expected.fulfill()
                }
            } catch {
                ready.fail(error)
                throw error
            }
        }
        let (inbox, loop) = try await ready.value()
        return GreenExecutor(inbox: inbox, loop: loop, slots: AsyncSlots(maxInFlight), ended: ended)
    }

    /// Runs `body` in a greenlet of the executor and returns its result.
    ///
    /// - Returns: What `body` returned.
    /// - Throws: What `body` threw, unchanged; ``GreenExecutorError/shutDown`` if the executor
    ///   was shut down before the body could start.
    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        guard !stopped.withLock({ $0 }) else { throw GreenExecutorError.shutDown }
        await slots.acquire()
        defer { slots.release() }
        let loop = self.loop
        return try await withCheckedThrowingContinuation { continuation in
            let posted = inbox.post {
                // On the executor's thread: the loop may be touched here.
                guard !loop.value.quit.isSet else {
                    continuation.resume(throwing: GreenExecutorError.shutDown)
                    return
                }
                loop.value.running.spawn(stackSize: loop.value.stackSize) {
                    continuation.resume(with: Result { try body() })
                }
            }
            if !posted { continuation.resume(throwing: GreenExecutorError.shutDown) }
        }
    }

    /// Stops taking work, lets the bodies already running finish, and ends the thread.
    /// Idempotent.
    public func shutdown() async {
        let first = stopped.withLock { state -> Bool in
            defer { state = true }
            return !state
        }
        let loop = self.loop
        if first {
            _ = inbox.post { loop.value.quit.set() }
        }
        _ = try? await ended.value
    }
}

/// Errors of ``GreenExecutor``.
public enum GreenExecutorError: Error, Equatable {
    /// The executor was shut down.
    case shutDown
}

/// The executor thread's own state. Touched only on that thread (in posted work).
private final class ExecutorLoop {
    let quit = Event()
    let running = Group()
    let stackSize: Int?

    init(stackSize: Int?) { self.stackSize = stackSize }
}

/// A value whose accesses are ordered by other means (here: only the executor's thread).
struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

/// One value handed from a thread to a waiting task.
private final class AsyncHandoff<Value: Sendable>: Sendable {
    private let state = ThreadLock<(result: Result<Value, any Error>?, waiter: CheckedContinuation<Value, any Error>?)>((nil, nil))

    func deliver(_ value: Value) { finish(.success(value)) }
    func fail(_ error: any Error) { finish(.failure(error)) }

    private func finish(_ result: Result<Value, any Error>) {
        let waiter = state.withLock { state -> CheckedContinuation<Value, any Error>? in
            guard state.result == nil else { return nil }
            state.result = result
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(with: result)
    }

    func value() async throws -> Value {
        try await withCheckedThrowingContinuation { continuation in
            let ready = state.withLock { state -> Result<Value, any Error>? in
                if let result = state.result { return result }
                state.waiter = continuation
                return nil
            }
            if let ready { continuation.resume(with: ready) }
        }
    }
}

/// A counting semaphore for tasks: ``acquire()`` suspends while none is free.
private final class AsyncSlots: Sendable {
    private let state: ThreadLock<(free: Int, waiters: Deque<CheckedContinuation<Void, Never>>)>

    init(_ count: Int) { state = ThreadLock((count, [])) }

    func acquire() async {
        await withCheckedContinuation { continuation in
            let granted = state.withLock { state -> Bool in
                if state.free > 0 {
                    state.free -= 1
                    return true
                }
                state.waiters.append(continuation)
                return false
            }
            if granted { continuation.resume() }
        }
    }

    func release() {
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if let first = state.waiters.popFirst() { return first }
            state.free += 1
            return nil
        }
        next?.resume()
    }
}
