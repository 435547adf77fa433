import CSproutContext

/// A green thread: a function running on its own stack, switched cooperatively by its hub.
///
/// `AnyGreenlet` is the type-erased face of ``Greenlet``: what ``Greenlet/current`` returns and
/// what ``joinAll(_:timeout:)`` and ``killAll(_:)`` take. Greenlets belong to the hub of the
/// thread that spawned them and never move to another thread; use them only from that thread.
public class AnyGreenlet {
    enum State {
        /// Spawned, waiting for its first turn.
        case scheduled
        /// Started: running now, or suspended at a switch point.
        case started
        /// Finished (returned, threw, or was killed).
        case dead
    }

    /// A small number unique within the process's run, for diagnostics.
    public let id: UInt64
    private var _name: String?
    /// The name given at spawn, or `Greenlet-<id>`.
    public var name: String { _name ?? "Greenlet-\(id)" }

    unowned(unsafe) let hub: Hub
    let context: UnsafeMutablePointer<sprout_context_t>
    var stack: Stack?
    var state: State = .scheduled
    private var cName: UnsafeMutablePointer<CChar>?
    /// True if `context` was allocated on the heap for this greenlet (not on its stack).
    var ownsContextAllocation = false

    // Parking. Only the hub's thread touches these.
    /// True while parked and not yet woken.
    var isParked = false
    /// Numbers the greenlet's waits, so that a timer of an earlier wait is recognised as stale.
    var waitToken: UInt64 = 0
    /// What the current or last wait was for, for deadlock reports.
    var waitingOn: StaticString = "nothing"
    /// Whether the last park ended by a wake (true) or its deadline (false).
    var wokenNormally = false
    /// An error to throw from the park that is being resumed (kill, timeout, deadlock).
    var resumeError: (any Error)?
    /// An error to throw at the next switch point (delivered while the greenlet was running).
    var pendingError: (any Error)?
    /// Active `withTimeout` blocks, innermost last.
    var activeTimeouts: [UInt64] = []

    // Membership of one primitive's waiter list (a greenlet waits on one thing at a time).
    var waitNext: Unmanaged<AnyGreenlet>?
    var waitPrev: Unmanaged<AnyGreenlet>?
    var isInWaitList = false
    /// Set by a primitive that handed this waiter what it waited for (a permit, an item, a
    /// slot); if the waiter then throws instead of taking it, the primitive passes it on.
    var isGranted = false

    // The hub's registry of live greenlets.
    var registryNext: Unmanaged<AnyGreenlet>?
    var registryPrev: Unmanaged<AnyGreenlet>?

    // Completion.
    /// Greenlets waiting in `join`/`kill`; created on first use.
    var joinersIfAny: WaiterList?
    var joiners: WaiterList {
        if let joinersIfAny { return joinersIfAny }
        let list = WaiterList()
        joinersIfAny = list
        return list
    }
    var linkCallbacks: [() -> Void] = []
    var failureObserved = false
    var storedError: (any Error)?
    var wasKilled = false
    /// The timer that will start a `spawnLater` greenlet.
    var startTimer: UInt64?

    /// Greenlet-local values (``GreenletLocal``).
    var locals: [UInt64: Any] = [:]

    init(hub: Hub, id: UInt64, name: String?, context: UnsafeMutablePointer<sprout_context_t>) {
        self.hub = hub
        self.id = id
        self._name = name
        self.context = context
        context.pointee.id = id
        context.pointee.name = nil
        if let name {
            cName = strdupName(name)
            context.pointee.name = UnsafePointer(cName)
        }
    }

    deinit {
        cName?.deallocate()
        if ownsContextAllocation { context.deallocate() }
    }

    /// Marks a greenlet that never started as finished by `error`; overridden by ``Greenlet``.
    func cancelBeforeStart(_ error: any Error) {
        storedError = error
    }

    /// Whether link callbacks are registered; overridden by ``Greenlet``.
    var hasLinks: Bool { !linkCallbacks.isEmpty }

    /// Runs the body; overridden by ``Greenlet``.
    func runBody() {}

    /// Runs the registered link callbacks (on the hub's loop, once the greenlet is dead).
    func fireLinks() {
        let callbacks = linkCallbacks
        linkCallbacks = []
        for callback in callbacks { callback() }
    }

    /// Registers an internal completion callback, run on the hub's loop (see `fireLinks`).
    func rawLink(_ callback: @escaping () -> Void) {
        if state == .dead {
            hub.callSoon(callback)
        } else {
            linkCallbacks.append(callback)
        }
    }

    // MARK: Public state

    /// True once the greenlet has finished, by returning, throwing or being killed.
    public var isReady: Bool { state == .dead }

    /// True if the greenlet finished without an error (being killed counts as success, as in
    /// gevent).
    public var isSuccessful: Bool {
        state == .dead && (storedError == nil || storedError is GreenletExit)
    }

    /// The error the greenlet ended with, if it ended with one (including `GreenletExit`).
    public var error: (any Error)? { storedError }

    // MARK: Waiting and killing

    /// Waits until the greenlet has finished. Never rethrows the greenlet's error.
    ///
    /// - Throws: `GreenletExit` or an outer `Timeout` delivered to the caller while it waits;
    ///   ``HubError`` if called from the hub's loop or the wait can never end.
    /// - Note: A switch point (unless already finished). Call it from the greenlet's own thread.
    public func join() throws {
        _ = try join(deadline: nil)
    }

    /// Waits at most `timeout` for the greenlet to finish.
    ///
    /// - Returns: True if it finished, false if the timeout passed first.
    /// - Throws: as ``join()``.
    public func join(timeout: Duration?) throws -> Bool {
        try join(deadline: timeout.map { hub.deadline(after: $0) })
    }

    func join(deadline: UInt64?) throws -> Bool {
        failureObserved = true
        if state == .dead { return true }
        try hub.checkThread("Greenlet.join")
        return try joiners.wait(hub: hub, on: "Greenlet.join", deadline: deadline)
    }

    /// Kills the greenlet: throws `GreenletExit` inside it at its current switch point and, if
    /// `block` is true, waits for it to finish.
    ///
    /// A greenlet that has not started yet never runs; a finished one is left alone. A
    /// greenlet that catches `GreenletExit` and goes on runs until it finishes by itself.
    /// Killing the running greenlet itself delivers `GreenletExit` at its next switch point.
    ///
    /// - Parameter block: Wait for the greenlet to finish (the default). From the hub's loop,
    ///   or if the caller is itself killed while waiting, the kill is only requested; the
    ///   caller's own kill or timeout is then delivered at its next switch point.
    public func kill(block: Bool = true) {
        kill(with: GreenletExit(), block: block)
    }

    func kill(with error: any Error, block: Bool) {
        guard state != .dead else { return }
        wasKilled = true
        hub.throwInto(self, error)
        guard block, state != .dead, hub.current !== hub.hubGreenlet, hub.current !== self else { return }
        do {
            _ = try joiners.wait(hub: hub, on: "Greenlet.kill", deadline: nil)
        } catch {
            // The killer was itself interrupted; deliver that at its next switch point.
            hub.current.pendingError = error
        }
    }
}

private func strdupName(_ name: String) -> UnsafeMutablePointer<CChar> {
    let utf8 = Array(name.utf8.prefix(120))
    let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: utf8.count + 1)
    for (index, byte) in utf8.enumerated() {
        buffer[index] = CChar(bitPattern: byte)
    }
    buffer[utf8.count] = 0
    return buffer
}

/// A greenlet whose body returns a `Value`.
///
/// Create one with ``spawn(name:stackSize:_:)`` or ``spawnLater(_:name:stackSize:_:)``.
public final class Greenlet<Value>: AnyGreenlet {
    private var body: (() throws -> Value)?
    private var result: Result<Value, any Error>?
    private var typedLinks: [(Greenlet<Value>) -> Void] = []

    init(hub: Hub, id: UInt64, name: String?, context: UnsafeMutablePointer<sprout_context_t>,
         body: @escaping () throws -> Value) {
        self.body = body
        super.init(hub: hub, id: id, name: name, context: context)
    }

    override func runBody() {
        guard let body else { return }
        self.body = nil
        do {
            result = .success(try body())
        } catch {
            result = .failure(error)
            storedError = error
        }
    }

    override func cancelBeforeStart(_ error: any Error) {
        body = nil
        result = .failure(error)
        storedError = error
    }

    override var hasLinks: Bool { super.hasLinks || !typedLinks.isEmpty }

    override func fireLinks() {
        super.fireLinks()
        let callbacks = typedLinks
        typedLinks = []
        for callback in callbacks { callback(self) }
    }

    /// The value the greenlet returned, waiting for it to finish if needed.
    ///
    /// - Returns: The body's return value.
    /// - Throws: The error the body threw (`GreenletExit` if it was killed); while waiting,
    ///   as ``AnyGreenlet/join()``.
    /// - Note: A switch point unless the greenlet has finished.
    public func get() throws -> Value {
        try join()
        return try result!.get()
    }

    /// The value, if the greenlet finished successfully.
    public var value: Value? {
        if case .success(let value)? = result { return value }
        return nil
    }

    /// Registers `callback` to run on the hub's loop once the greenlet has finished (right away,
    /// on the next loop turn, if it already has). Linking marks a failure as observed, so it is
    /// not printed.
    ///
    /// The callback runs in the hub: it must not block (a switch point there throws
    /// ``HubError/blockingInHub(_:)``); spawn a greenlet from it for blocking work.
    public func link(_ callback: @escaping (Greenlet<Value>) -> Void) {
        failureObserved = true
        if state == .dead {
            hub.callSoon { callback(self) }
        } else {
            typedLinks.append(callback)
        }
    }
}

extension Greenlet where Value == Void {
    /// The greenlet running on the calling thread: a spawned greenlet, or the thread's main
    /// greenlet (its own stack). Creates the thread's hub on first use.
    public static var current: AnyGreenlet { Hub.current.current }
}
