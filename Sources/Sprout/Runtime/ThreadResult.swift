/// A one-shot result that another thread sends and one greenlet waits for (gevent's
/// `ThreadResult`): the building block of ``ThreadPool/run(_:)`` and of bridges into other
/// runtimes (Swift concurrency tasks, callbacks of C libraries' own threads).
///
/// Create it in the greenlet that will wait; hand it to the other thread, which calls
/// ``send(_:)`` exactly once; ``wait()`` parks only that greenlet meanwhile, and the hub,
/// knowing that a reply is owed, does not report a deadlock while it waits. The reply comes
/// back through the hub's inbox and costs no allocation beyond this object.
///
/// ```swift
/// let reply = ThreadResult<Int>()
/// startWorkerThread { reply.send(.success(compute())) }
/// let answer = try reply.wait()
/// ```
///
/// A waiter that is killed or timed out stops waiting at once; the reply, when it comes, is
/// dropped. Until it comes the hub still counts it as owed, so a result that is never sent
/// keeps the hub from reporting deadlocks: send exactly once.
public class ThreadResult<Value: Sendable>: @unchecked Sendable {
    // `sent` is written by the sending thread before it posts and read on the hub after the
    // post is drained: the inbox's lock orders the two. Everything else is the hub's.
    // Inlinable, so that callers in other modules get it specialized for their `Value`; the
    // hub's side is in the non-generic hooks below.
    @usableFromInline final let hub: Hub
    @usableFromInline final let waiter: AnyGreenlet
    @exclusivity(unchecked) @usableFromInline final var sent: Result<Value, any Error>?
    @exclusivity(unchecked) @usableFromInline final var outcome: Result<Value, any Error>?
    @exclusivity(unchecked) @usableFromInline final var isWaiting = false
    @exclusivity(unchecked) @usableFromInline final var isAbandoned = false

    /// Creates a result for the current greenlet to wait on, and tells the hub a reply is owed.
    /// - Precondition: Called on a hub's thread (in a greenlet, or the hub's loop).
    @inlinable
    public init() {
        hub = Hub.current
        waiter = hub.oweReply()
    }

    /// Sends the outcome to the waiting greenlet. Callable from any thread, once.
    ///
    /// If the hub has ended meanwhile (its thread exited), there is nobody to tell and the
    /// outcome is dropped.
    @inlinable
    public final func send(_ result: Result<Value, any Error>) {
        sent = result
        _ = hub.inboxHandle.post { self.deliver() }
    }

    /// Waits for the outcome. Returns at once if it has arrived already.
    ///
    /// - Returns: The value sent.
    /// - Throws: The error sent; `GreenletExit` or an enclosing `Timeout` if the greenlet was
    ///   interrupted while waiting (the outcome is then dropped); ``HubError/blockingInHub(_:)``
    ///   from the hub's loop.
    /// - Precondition: Called by the greenlet that created it.
    /// - Note: A switch point.
    @inlinable
    public final func wait() throws -> Value {
        try hub.checkReplyWaiter(waiter)
        isWaiting = true
        defer { isWaiting = false }
        while outcome == nil {
            do {
                try hub.parkForReply()
            } catch {
                isAbandoned = true
                throw error
            }
        }
        return try outcome!.get()
    }

    /// True once the outcome has arrived on the hub (on the hub's thread).
    @inlinable
    public final var isReady: Bool { outcome != nil }

    /// True if the waiter stopped waiting before the outcome came (killed, timed out): the
    /// sender may skip work whose result nobody will read. Read on the hub's thread.
    @inlinable
    public final var isAbandonedByWaiter: Bool { isAbandoned }

    /// On the hub's thread, as posted work.
    @inlinable
    final func deliver() {
        hub.settleReply()
        outcome = sent
        sent = nil
        if isWaiting && !isAbandoned { hub.wake(replyWaiter: waiter) }
    }
}

// The hub's side of ThreadResult: not generic, so compiled once, here.
extension Hub {
    /// Counts a reply owed by another thread; returns the greenlet that will wait for it.
    @usableFromInline
    func oweReply() -> AnyGreenlet {
        expectedPosts += 1
        return current!
    }

    /// The owed reply has arrived (on the hub's thread).
    @usableFromInline
    func settleReply() {
        expectedPosts -= 1
    }

    /// Throws unless `waiter` is the running greenlet and not the hub's loop.
    @usableFromInline
    func checkReplyWaiter(_ waiter: AnyGreenlet) throws {
        precondition(current === waiter, "ThreadResult.wait() must be called by the greenlet that created it")
        if waiter === hubGreenlet { throw HubError.blockingInHub("ThreadResult.wait") }
    }

    /// Parks the running greenlet until woken (or interrupted).
    @usableFromInline
    func parkForReply() throws {
        _ = try park(on: "ThreadResult.wait", deadline: nil)
    }

    /// Wakes the greenlet waiting for a reply.
    @usableFromInline
    func wake(replyWaiter: AnyGreenlet) {
        wake(replyWaiter)
    }
}
