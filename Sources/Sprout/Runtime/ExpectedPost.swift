import CSproutContext

/// A promise that another thread will post work to a hub (gevent's ref'd async watcher).
///
/// A hub reports `HubError.wouldBlockForever` when nothing it knows of can wake a parked
/// greenlet: no timer, no descriptor, no signal. Work that another thread will post through
/// ``Hub/post(_:)`` is invisible to it; while an `ExpectedPost` is pending, the hub waits for
/// such work instead. Call ``fulfill()`` on the hub's thread, typically in the posted closure.
///
/// ```swift
/// let expected = Hub.current.expectPost()
/// let hub = Hub.current
/// startWorkerThread {
///     let answer = compute()
///     hub.post { result.set(answer); expected.fulfill() }
/// }
/// let answer = try result.get()
/// ```
///
/// `GreenThread.run` and `ThreadPool.run` do this themselves.
public final class ExpectedPost: @unchecked Sendable {
    private let hub: Hub
    private var pending = true

    init(hub: Hub) {
        self.hub = hub
        hub.expectedPosts += 1
    }

    /// The hub no longer needs to wait for this post. Idempotent.
    ///
    /// - Precondition: Called on the hub's thread.
    public func fulfill() {
        precondition(sprout_hub_get() == Unmanaged.passUnretained(hub).toOpaque(),
                     "ExpectedPost.fulfill() must run on its hub's thread (inside the posted work)")
        guard pending else { return }
        pending = false
        hub.expectedPosts -= 1
    }

    /// True until ``fulfill()``.
    public var isPending: Bool { pending }
}

extension Hub {
    /// Tells this hub that another thread will post work to it, so that greenlets waiting for
    /// what that work does are not reported as deadlocked. Call on the hub's thread.
    ///
    /// - Returns: The promise; ``ExpectedPost/fulfill()`` it (on this thread) once the work has run.
    public func expectPost() -> ExpectedPost {
        ExpectedPost(hub: self)
    }
}
