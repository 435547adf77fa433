/// Parks the calling greenlet for `duration`; `.zero` (or less) yields to every other ready
/// greenlet and continues on the hub's next turn, after it has polled for IO.
///
/// - Throws: `GreenletExit` if the caller is killed while asleep; a `Timeout` of an enclosing
///   ``withTimeout(_:_:)`` that expires; ``HubError/blockingInHub(_:)`` from the hub's loop.
/// - Note: A switch point. On the thread's main greenlet, the hub runs while it sleeps.
public func sleep(for duration: Duration) throws {
    let hub = Hub.current
    if duration <= .zero {
        try hub.yield()
    } else {
        _ = try hub.park(on: "sleep", deadline: hub.deadline(after: duration))
    }
}
