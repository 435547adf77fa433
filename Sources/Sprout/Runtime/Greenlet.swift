import CSproutContext
import CSproutSystem

// Exclusivity: the runtime's own hot fields are marked `@exclusivity(unchecked)`. They are
// only touched by their hub's thread in short, non-overlapping accesses (never across a
// switch), so the dynamic checks would cost a TLS lookup each and find nothing.

/// A green thread: a function running on its own stack, switched cooperatively by its hub.
///
/// `AnyGreenlet` is the type-erased face of ``Greenlet``: what ``Greenlet/current`` returns and
/// what ``joinAll(_:timeout:)`` and ``killAll(_:block:)`` take. Greenlets belong to the hub of
/// the thread that spawned them and never move to another thread; use them only from there.
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
    public internal(set) var id: UInt64 = 0
    /// The name given at spawn, or `Greenlet-<id>`.
    public var name: String { extrasIfAny?.name ?? "Greenlet-\(id)" }

    /// State most greenlets never need, kept out of line so that spawning and freeing a
    /// greenlet touches (and releases) as few fields as possible.
    final class Extras {
        var name: String?
        var cName: UnsafeMutablePointer<CChar>?
        /// Greenlets waiting in `join`/`kill` after the first (see `soleJoiner`).
        var joiners: WaiterList?
        var linkCallbacks: [() -> Void] = []
        /// Active `withTimeout` blocks, innermost last.
        var activeTimeouts: [UInt64] = []
        /// Greenlet-local values (``GreenletLocal``).
        var locals: [UInt64: Any] = [:]
        /// The timer that will start a `spawnLater` greenlet.
        var startTimer: UInt64?
        /// What the greenlet's timer entries point at (see ``AnyGreenlet/timerTarget``).
        var timerTarget: TimerTarget?

        deinit { cName?.deallocate() }
    }
    @exclusivity(unchecked) var extrasIfAny: Extras?
    var extras: Extras {
        if let extrasIfAny { return extrasIfAny }
        let extras = Extras()
        extrasIfAny = extras
        return extras
    }

    /// The hub the greenlet belongs to, for its whole life (a `let`: reading it needs no retain).
    let hub: Hub
    @exclusivity(unchecked) var context: UnsafeMutablePointer<sprout_context_t>!
    @exclusivity(unchecked) var stack: Stack?

    /// Usable bytes of this greenlet's stack while it has one (from start to finish); nil for a
    /// thread's main greenlet and for greenlets not started or finished.
    public var stackSize: Int? { stack?.size }
    @exclusivity(unchecked) var state: State = .scheduled
    /// True if `context` was allocated on the heap for this greenlet (not on its stack).
    var ownsContextAllocation = false

    /// Runs the typed body of the ``Greenlet`` it is given and stores the outcome. In code
    /// specialised for a concrete `Value` it captures nothing, so setting it allocates nothing.
    /// Nil once run or cancelled.
    @exclusivity(unchecked) @usableFromInline var runner: ((AnyGreenlet) -> Void)?
    /// The value the body returned, boxed (nil for `Void` bodies and failures).
    @exclusivity(unchecked) @usableFromInline var resultBox: AnyObject?

    // Parking. Only the hub's thread touches these.
    /// True while parked and not yet woken.
    @exclusivity(unchecked) var isParked = false
    /// Numbers the greenlet's waits, so that a timer of an earlier wait is recognised as stale.
    @exclusivity(unchecked) var waitToken: UInt64 = 0
    /// What the current or last wait was for, for deadlock reports.
    @exclusivity(unchecked) var waitingOn: StaticString = "nothing"
    /// Whether the last park ended by a wake (true) or its deadline (false).
    @exclusivity(unchecked) var wokenNormally = false
    /// An error to throw from the park that is being resumed (kill, timeout, deadlock).
    @exclusivity(unchecked) var resumeError: (any Error)?
    /// An error to throw at the next switch point (delivered while the greenlet was running).
    @exclusivity(unchecked) var pendingError: (any Error)?
    /// SproutPatch's state (``PatchedCallState``): parked inside a patched C call, and whether
    /// an interruption has already been reported to the C code.
    @exclusivity(unchecked) var patchedCall: PatchedCallState = []

    // Membership of one primitive's waiter list (a greenlet waits on one thing at a time).
    @exclusivity(unchecked) var waitNext: Unmanaged<AnyGreenlet>?
    @exclusivity(unchecked) var waitPrev: Unmanaged<AnyGreenlet>?
    @exclusivity(unchecked) var isInWaitList = false
    /// Set by a primitive that handed this waiter what it waited for (a permit, an item, a
    /// slot); if the waiter then throws instead of taking it, the primitive passes it on.
    @exclusivity(unchecked) var isGranted = false

    // The hub's registry of live greenlets.
    @exclusivity(unchecked) var registryNext: Unmanaged<AnyGreenlet>?
    @exclusivity(unchecked) var registryPrev: Unmanaged<AnyGreenlet>?

    // Completion.
    /// The first greenlet waiting in `join`/`kill`: the common case needs no list.
    @exclusivity(unchecked) var soleJoiner: Unmanaged<AnyGreenlet>?
    var joiners: WaiterList {
        if let list = extras.joiners { return list }
        let list = WaiterList()
        extras.joiners = list
        return list
    }
    /// When it was spawned (the hub's cached time of that loop turn), for run-info dumps.
    let bornAt: UInt64
    /// What this greenlet's timer entries point at (made on its first timed wait); cut loose
    /// when it finishes, so that stale entries do not keep it alive.
    var timerTarget: TimerTarget {
        let extras = self.extras
        if let target = extras.timerTarget { return target }
        let target = TimerTarget(self)
        extras.timerTarget = target
        return target
    }
    @exclusivity(unchecked) var failureObserved = false
    @exclusivity(unchecked) @usableFromInline var storedError: (any Error)?
    @usableFromInline
    init(hub: Hub) {
        self.hub = hub
        bornAt = hub.now
    }

    /// A greenlet that runs on memory the hub provides itself (the main and hub greenlets).
    init(hub: Hub, id: UInt64, name: String, context: UnsafeMutablePointer<sprout_context_t>) {
        self.hub = hub
        bornAt = hub.now
        self.context = context
        assignIdentity(id: id, name: name)
    }

    /// Sets the id and name, also in the C context read by the overflow handler.
    func assignIdentity(id: UInt64, name: String?) {
        self.id = id
        context.pointee.id = id
        context.pointee.name = nil
        if let name {
            let extras = self.extras
            extras.name = name
            extras.cName = copyCString(name)
            context.pointee.name = UnsafePointer(extras.cName)
        }
    }

    deinit {
        if ownsContextAllocation { context.deallocate() }
    }

    /// Runs the body once.
    func runBody() {
        guard let runner else { return }
        self.runner = nil
        runner(self)
    }

    /// Marks a greenlet that never started as finished by `error`.
    func cancelBeforeStart(_ error: any Error) {
        runner = nil
        dropBody()
        storedError = error
    }

    /// Releases the body of a greenlet that will never run; overridden by ``Greenlet``.
    func dropBody() {}

    /// Runs the registered link callbacks (on the hub's loop, once the greenlet is dead).
    func fireLinks() {
        guard let extras = extrasIfAny else { return }
        let callbacks = extras.linkCallbacks
        extras.linkCallbacks = []
        for callback in callbacks { callback() }
    }

    /// Whether link callbacks are registered.
    var hasLinks: Bool { !(extrasIfAny?.linkCallbacks.isEmpty ?? true) }

    /// Registers a completion callback, run on the hub's loop once the greenlet is dead.
    func rawLink(_ callback: @escaping () -> Void) {
        if state == .dead {
            hub.callSoon(callback)
        } else {
            extras.linkCallbacks.append(callback)
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
    ///   ``HubError`` if called from the hub's loop, from another thread, or if the wait can
    ///   never end.
    /// - Note: A switch point (unless already finished).
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
        return try waitForEnd(on: "Greenlet.join", deadline: deadline)
    }

    /// Parks the current greenlet until this one is dead or the deadline passes.
    private func waitForEnd(on what: StaticString, deadline: UInt64?) throws -> Bool {
        guard soleJoiner == nil else {
            _ = try joiners.wait(hub: hub, on: what, deadline: deadline)
            return state == .dead
        }
        let me = hub.currentNode!
        soleJoiner = me
        defer {
            if soleJoiner?.toOpaque() == me.toOpaque() { soleJoiner = nil }
        }
        _ = try hub.park(on: what, deadline: deadline)
        return state == .dead
    }

    /// Wakes everyone waiting for this greenlet to end.
    func wakeJoiners() {
        if let sole = soleJoiner {
            soleJoiner = nil
            hub.wake(sole.takeUnretainedValue())
        }
        extrasIfAny?.joiners?.wakeAll(hub: hub)
    }

    /// Whether any greenlet is waiting for this one to end.
    var hasJoiners: Bool { soleJoiner != nil || !(extrasIfAny?.joiners?.isEmpty ?? true) }

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

    /// Throws `error` into the greenlet at its switch point and waits at most `timeout` for it
    /// to end (a greenlet that catches the error and goes on may never end).
    ///
    /// - Parameters:
    ///   - error: What to throw; `GreenletExit` by default.
    ///   - timeout: The longest wait; `nil` waits for ever.
    /// - Returns: True if the greenlet has ended; false if the timeout passed first, if called
    ///   from the hub's loop or by the greenlet itself (nothing to wait for there), or if the
    ///   caller was interrupted meanwhile (that interruption is then delivered at its next
    ///   switch point).
    /// - Note: A switch point while waiting.
    @discardableResult
    public func kill(error: any Error = GreenletExit(), timeout: Duration?) -> Bool {
        guard state != .dead else { return true }
        hub.throwInto(self, error)
        return awaitEndAfterKill(deadline: timeout.map { hub.deadline(after: $0) })
    }

    func kill(with error: any Error, block: Bool) {
        guard state != .dead else { return }
        hub.throwInto(self, error)
        if block { awaitEndAfterKill() }
    }

    /// Waits for a greenlet that was already told to die, without telling it again (a second
    /// `GreenletExit` would land in its cleanup). Returns true once it has ended; false if
    /// `deadline` passed, if there is no waiting (the hub's loop, the greenlet itself), or if
    /// the waiter was interrupted: that interruption is delivered at the waiter's next switch
    /// point (without replacing one already waiting there).
    @discardableResult
    func awaitEndAfterKill(deadline: UInt64? = nil) -> Bool {
        guard state != .dead else { return true }
        guard hub.current !== hub.hubGreenlet, hub.current !== self else { return false }
        do {
            return try waitForEnd(on: "Greenlet.kill", deadline: deadline)
        } catch {
            let me = hub.current!
            if me.pendingError == nil { me.pendingError = error }
            return false
        }
    }
}

private func copyCString(_ name: String) -> UnsafeMutablePointer<CChar> {
    let utf8 = Array(name.utf8.prefix(120))
    let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: utf8.count + 1)
    for (index, byte) in utf8.enumerated() {
        buffer[index] = CChar(bitPattern: byte)
    }
    buffer[utf8.count] = 0
    return buffer
}

/// The boxed return value of a greenlet.
@usableFromInline
final class ResultBox<Value> {
    @usableFromInline let value: Value
    @usableFromInline init(_ value: Value) { self.value = value }
}

/// A greenlet whose body returns a `Value`.
///
/// Create one with ``spawn(name:stackSize:_:)`` or ``spawnLater(_:name:stackSize:_:)``. The
/// class has no stored properties of its own: its outcome lives in ``AnyGreenlet``, so the
/// runtime never needs `Value`'s metadata on the spawn, switch or finish paths.
public final class Greenlet<Value>: AnyGreenlet {
    @exclusivity(unchecked) @usableFromInline var body: (() throws -> Value)?

    /// Creates an unstarted greenlet for `body`; the hub gives it a stack and queues it.
    @inlinable
    init(hub: Hub, body: @escaping () throws -> Value) {
        self.body = body
        super.init(hub: hub)
        runner = { greenlet in unsafeDowncast(greenlet, to: Greenlet<Value>.self).runTyped() }
    }

    @inlinable
    func runTyped() {
        guard let body else { return }
        self.body = nil
        do {
            let value = try body()
            if Value.self != Void.self { resultBox = ResultBox(value) }
        } catch {
            storedError = error
        }
    }

    override func dropBody() {
        body = nil
    }

    /// The value the greenlet returned, waiting for it to finish if needed.
    ///
    /// - Returns: The body's return value.
    /// - Throws: The error the body threw (`GreenletExit` if it was killed); while waiting,
    ///   as ``AnyGreenlet/join()``.
    /// - Note: A switch point unless the greenlet has finished.
    public func get() throws -> Value {
        try join()
        if let error = storedError { throw error }
        return finishedValue!
    }

    /// The value, if the greenlet finished successfully.
    public var value: Value? {
        guard state == .dead, storedError == nil else { return nil }
        return finishedValue
    }

    private var finishedValue: Value? {
        if let box = resultBox { return (box as! ResultBox<Value>).value }
        return () as? Value
    }

    /// Registers `callback` to run on the hub's loop once the greenlet has finished (right away,
    /// on the next loop turn, if it already has). Linking marks a failure as observed, so it is
    /// not printed.
    ///
    /// The callback runs in the hub: it must not block (a switch point there throws
    /// ``HubError/blockingInHub(_:)``); spawn a greenlet from it for blocking work.
    public func link(_ callback: @escaping (Greenlet<Value>) -> Void) {
        failureObserved = true
        rawLink { callback(self) }
    }
}

extension Greenlet where Value == Void {
    /// The greenlet running on the calling thread: a spawned greenlet, or the thread's main
    /// greenlet (its own stack). Creates the thread's hub on first use.
    public static var current: AnyGreenlet { Hub.current.current }
}
