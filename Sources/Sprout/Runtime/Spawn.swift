/// Starts `body` in a new greenlet of the calling thread's hub.
///
/// The greenlet first runs on the hub's next turn, after the greenlets already ready: the
/// caller keeps running until its next switch point. Its stack comes from the hub's pool.
///
/// - Parameters:
///   - name: A name for diagnostics (stack overflows, failure reports); default `Greenlet-<id>`.
///   - stackSize: Usable stack bytes, rounded up to pages (at least 32 KiB); default 256 KiB.
///     Every stack also gets a guard region below it: 1 MiB on Linux 6.13+ (free there), 64 KiB
///     on older kernels.
///   - body: The greenlet's work. Its value or error is kept for ``Greenlet/get()``; an error
///     that nobody joins or links is printed once on stderr with the greenlet's name.
/// - Returns: The new greenlet. If no stack could be mapped, a greenlet that is already
///   finished with the ``SystemError``.
/// - Note: Not a switch point. Call it from the thread that is to run the greenlet.
@discardableResult @inlinable
public func spawn<Value>(name: String? = nil, stackSize: Int? = nil,
                         _ body: @escaping () throws -> Value) -> Greenlet<Value> {
    let hub = Hub.current
    let greenlet = Greenlet(hub: hub, body: body)
    hub.start(greenlet, name: name, stackSize: stackSize, queue: true)
    return greenlet
}

/// Starts `body` in a new greenlet after `delay` (gevent's `spawn_later`).
///
/// Until then the greenlet exists but has not started: killing it means it never runs.
/// Parameters and result as ``spawn(name:stackSize:_:)``.
@discardableResult
public func spawnLater<Value>(_ delay: Duration, name: String? = nil, stackSize: Int? = nil,
                              _ body: @escaping () throws -> Value) -> Greenlet<Value> {
    Hub.current.spawnLater(delay, name: name, stackSize: stackSize, body)
}

/// Waits until every greenlet in `greenlets` has finished, or `timeout` passes.
///
/// Never rethrows the greenlets' errors: inspect ``AnyGreenlet/error`` or call `get()`.
///
/// - Returns: True if all finished, false if the timeout passed first.
/// - Throws: `GreenletExit` or an outer `Timeout` delivered to the caller while waiting;
///   ``HubError`` from the hub's loop or on a deadlock.
/// - Note: A switch point.
@discardableResult
public func joinAll(_ greenlets: [AnyGreenlet], timeout: Duration? = nil) throws -> Bool {
    let hub = Hub.current
    let deadline = timeout.map { hub.deadline(after: $0) }
    for greenlet in greenlets {
        guard try greenlet.join(deadline: deadline) else { return false }
    }
    return true
}

/// Kills every greenlet in `greenlets` (each receives `GreenletExit` at its switch point, all
/// before any is waited for), then waits for them all to finish.
///
/// Greenlets that have not started never run. See ``AnyGreenlet/kill(block:)``.
public func killAll(_ greenlets: [AnyGreenlet], block: Bool = true) {
    for greenlet in greenlets {
        greenlet.kill(block: false)
    }
    guard block else { return }
    for greenlet in greenlets {
        // Wait only: each was killed once above, and may be cleaning up through switch points.
        guard greenlet.awaitEndAfterKill() else { return }
    }
}

/// Kills every greenlet in `greenlets` (all before any is waited for) and waits at most
/// `timeout` in all for them to end.
///
/// - Returns: True if all have ended; false if one was still running when the timeout passed
///   (it caught `GreenletExit` and went on), or the caller was interrupted meanwhile.
/// - Note: A switch point while waiting.
@discardableResult
public func killAll(_ greenlets: [AnyGreenlet], timeout: Duration) -> Bool {
    for greenlet in greenlets {
        greenlet.kill(block: false)
    }
    let deadline = Hub.current.deadline(after: timeout)
    for greenlet in greenlets {
        guard greenlet.awaitEndAfterKill(deadline: deadline) else { return false }
    }
    return true
}

extension Hub {
    func spawnLater<Value>(_ delay: Duration, name: String?, stackSize: Int?,
                           _ body: @escaping () throws -> Value) -> Greenlet<Value> {
        let greenlet = Greenlet(hub: self, body: body)
        start(greenlet, name: name, stackSize: stackSize, queue: false)
        guard greenlet.state == .scheduled else { return greenlet }
        greenlet.extras.startTimer = callLater(delay) { [self] in
            greenlet.extras.startTimer = nil
            if greenlet.state == .scheduled { ready.push(.passUnretained(greenlet)) }
        }
        return greenlet
    }
}
