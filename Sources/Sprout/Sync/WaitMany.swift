/// Something a greenlet can wait to become ready: a finished greenlet, a set ``Event``, an
/// ``AsyncResult`` that has its outcome. What ``waitAny(_:timeout:)``, ``wait(for:count:timeout:)``
/// and ``iwait(_:timeout:)`` take.
public protocol Waitable: AnyObject {
    /// True when waiting on it would return at once.
    var isReady: Bool { get }
    /// Parks until it is ready or `timeout` passes.
    ///
    /// - Returns: True if ready, false if the timeout passed first.
    /// - Throws: `GreenletExit`, an enclosing `Timeout`, ``HubError``.
    func waitUntilReady(timeout: Duration?) throws -> Bool
}

extension AnyGreenlet: Waitable {
    /// Joins without rethrowing the greenlet's error: ready means finished, however it ended.
    public func waitUntilReady(timeout: Duration?) throws -> Bool { try join(timeout: timeout) }
}

extension Event: Waitable {
    /// True while the flag is set.
    public var isReady: Bool { isSet }
    public func waitUntilReady(timeout: Duration?) throws -> Bool { try wait(timeout: timeout) }
}

extension AsyncResult: Waitable {
    public func waitUntilReady(timeout: Duration?) throws -> Bool { try wait(timeout: timeout) }
}

/// Yields the indices of `objects` as they become ready (gevent's `iwait`): those ready at the
/// call first, in order, then the others in the order they get ready. Ends when every object
/// has been yielded or when `timeout` (for the whole iteration) has passed.
///
/// Each object not yet ready is watched by a small greenlet of the caller's hub, which ends
/// when its object is ready or when the iterator is released.
///
/// - Note: `next()` is a switch point while nothing is ready; it throws `GreenletExit`, an
///   enclosing `Timeout` or ``HubError`` from that wait.
public func iwait(_ objects: [any Waitable], timeout: Duration? = nil) -> ReadyIterator {
    ReadyIterator(objects, timeout: timeout)
}

/// Waits until one of `objects` is ready (gevent's `wait(objects, count=1)`).
///
/// - Returns: The index of the first object ready (the lowest among those ready at the call);
///   nil if `timeout` passed first or `objects` is empty.
/// - Throws: `GreenletExit`, an enclosing `Timeout` or ``HubError`` while waiting.
/// - Note: A switch point unless one is ready at the call.
public func waitAny(_ objects: [any Waitable], timeout: Duration? = nil) throws -> Int? {
    if let ready = objects.firstIndex(where: { $0.isReady }) { return ready }
    var iterator = iwait(objects, timeout: timeout)
    return try iterator.nextReady()
}

/// Waits until `count` of `objects` (all of them by default) are ready, or `timeout` passes
/// (gevent's `wait(objects, count, timeout)`).
///
/// - Returns: The indices of the objects that became ready, in the order they did; fewer than
///   `count` if the timeout passed first.
/// - Throws: `GreenletExit`, an enclosing `Timeout` or ``HubError`` while waiting.
/// - Note: A switch point unless enough are ready at the call.
public func wait(for objects: [any Waitable], count: Int? = nil, timeout: Duration? = nil) throws -> [Int] {
    let wanted = min(count ?? objects.count, objects.count)
    var ready: [Int] = []
    var iterator = iwait(objects, timeout: timeout)
    while ready.count < wanted, let index = try iterator.nextReady() {
        ready.append(index)
    }
    return ready
}

/// The iterator ``iwait(_:timeout:)`` returns. Single-pass; use it on the hub that made it.
public struct ReadyIterator: Sequence, IteratorProtocol {
    private let state: State

    /// What the watchers share with the iterator; when the last copy of the iterator goes,
    /// the watchers still running are killed.
    private final class State {
        let readyIndices = Queue<Int>()
        var watchers: [AnyGreenlet] = []
        var remaining: Int
        let deadline: ContinuousClock.Instant?

        init(count: Int, deadline: ContinuousClock.Instant?) {
            remaining = count
            self.deadline = deadline
        }

        deinit { killAll(watchers.filter { !$0.isReady }, block: false) }
    }

    init(_ objects: [any Waitable], timeout: Duration?) {
        state = State(count: objects.count, deadline: timeout.map { ContinuousClock.now + $0 })
        for (index, object) in objects.enumerated() {
            if object.isReady {
                try? state.readyIndices.put(index)
                continue
            }
            let queue = state.readyIndices
            state.watchers.append(spawn(name: "iwait watcher") {
                // Only a real readiness is reported: a kill (the iterator went away) is not.
                if try object.waitUntilReady(timeout: nil) { try queue.put(index) }
            })
        }
    }

    /// The next ready index, waiting for one; nil once all were yielded or the timeout passed.
    ///
    /// - Throws: `GreenletExit`, an enclosing `Timeout` or ``HubError`` while waiting.
    public mutating func nextReady() throws -> Int? {
        guard state.remaining > 0 else { return nil }
        var left: Duration?
        if let deadline = state.deadline {
            left = Swift.max(deadline - ContinuousClock.now, .zero)
        }
        do {
            let index = try state.readyIndices.get(timeout: left)
            state.remaining -= 1
            return index
        } catch let error as QueueError where error == .empty {
            return nil
        }
    }

    /// As ``nextReady()``, for `for index in iwait(…)`; an error thrown while waiting ends the
    /// iteration (use ``nextReady()`` to see it).
    public mutating func next() -> Int? {
        try? nextReady()
    }
}
