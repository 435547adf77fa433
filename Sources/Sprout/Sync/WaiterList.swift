/// A FIFO of parked greenlets: the waiter list behind every Sprout primitive.
///
/// Intrusive: the links live in the greenlets themselves (a greenlet waits on one thing at a
/// time), so adding and removing a waiter allocates nothing and removal is O(1). The list
/// holds unretained references; a parked greenlet is kept alive by its hub's registry.
///
/// The protocol, shared by all primitives: a waiter appends itself and parks; a waker pops
/// the first waiter that is still parked, marks it granted (it now owns a permit, an item or a
/// slot) and wakes it. A waiter whose park throws (kill, timeout) after being granted must
/// hand the grant on; one that was not granted just leaves the list.
///
/// A class, not a struct, on purpose: waiting parks inside a method of the list, and a
/// mutating method of a struct stored in a primitive would hold an `inout` access to the
/// primitive's storage across the switch, which Swift's exclusivity rules forbid.
final class WaiterList {
    private var head: Unmanaged<AnyGreenlet>?
    private var tail: Unmanaged<AnyGreenlet>?
    private(set) var count = 0

    var isEmpty: Bool { count == 0 }

    func append(_ greenlet: AnyGreenlet) {
        let node = Unmanaged.passUnretained(greenlet)
        greenlet.waitNext = nil
        greenlet.waitPrev = tail
        greenlet.isInWaitList = true
        greenlet.isGranted = false
        if let tail {
            tail.takeUnretainedValue().waitNext = node
        } else {
            head = node
        }
        tail = node
        count += 1
    }

    func remove(_ greenlet: AnyGreenlet) {
        guard greenlet.isInWaitList else { return }
        let next = greenlet.waitNext
        let prev = greenlet.waitPrev
        if let prev { prev.takeUnretainedValue().waitNext = next } else { head = next }
        if let next { next.takeUnretainedValue().waitPrev = prev } else { tail = prev }
        greenlet.waitNext = nil
        greenlet.waitPrev = nil
        greenlet.isInWaitList = false
        count -= 1
    }

    /// Removes and returns the first waiter that is still parked; waiters that already woke
    /// for another reason (their deadline, a kill) are dropped on the way.
    func popParked() -> AnyGreenlet? {
        while let first = head {
            let greenlet = first.takeUnretainedValue()
            remove(greenlet)
            if greenlet.isParked { return greenlet }
        }
        return nil
    }

    /// Grants and wakes the first parked waiter. Returns false if there was none.
    @discardableResult
    func wakeFirst(hub: Hub) -> Bool {
        guard let greenlet = popParked() else { return false }
        greenlet.isGranted = true
        hub.wake(greenlet)
        return true
    }

    /// Grants and wakes every parked waiter, in FIFO order.
    func wakeAll(hub: Hub) {
        while wakeFirst(hub: hub) {}
    }

    /// Appends the current greenlet and parks it until granted, the deadline passes, or an
    /// error is thrown into it.
    ///
    /// - Parameter handOn: Called when the wait throws after the greenlet was granted: what it
    ///   was granted (a permit, an item, a slot) must go to the next waiter, or it is lost.
    ///   The grant is cleared first.
    /// - Returns: True if granted, false if the deadline passed first.
    /// - Throws: whatever was thrown into the greenlet.
    func wait(hub: Hub, on what: StaticString, deadline: UInt64?, handOn: () -> Void) throws -> Bool {
        append(hub.current!)
        return try waitAppended(hub: hub, on: what, deadline: deadline, handOn: handOn)
    }

    /// As ``wait(hub:on:deadline:handOn:)`` for a greenlet that appended itself already.
    func waitAppended(hub: Hub, on what: StaticString, deadline: UInt64?, handOn: () -> Void) throws -> Bool {
        let greenlet = hub.current!
        do {
            _ = try hub.park(on: what, deadline: deadline)
        } catch {
            remove(greenlet)
            if greenlet.isGranted {
                greenlet.isGranted = false
                handOn()
            }
            throw error
        }
        remove(greenlet)
        return greenlet.isGranted
    }

    /// As ``wait(hub:on:deadline:handOn:)`` for a waiter that is never granted anything it
    /// could lose (an event's waiters all wake together).
    func wait(hub: Hub, on what: StaticString, deadline: UInt64?) throws -> Bool {
        try wait(hub: hub, on: what, deadline: deadline, handOn: {})
    }
}
