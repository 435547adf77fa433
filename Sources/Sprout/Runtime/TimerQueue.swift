import HeapModule

/// What a timer does when it expires.
enum TimerAction {
    /// Wake the greenlet if it is still parked in the wait numbered `token` (its own deadline).
    case wake(TimerTarget, token: UInt64)
    /// Throw `Timeout` into the greenlet if its `withTimeout` block `id` is still active.
    case timeout(TimerTarget, id: UInt64, duration: Duration)
    /// Run the callback registered under `id`, unless it was cancelled.
    case callback(id: UInt64)
}

/// What a greenlet's timer entries hold instead of the greenlet: cancellation is lazy, so an
/// entry may outlive its greenlet by the whole duration (an hour-long sleep that was killed),
/// and a strong reference would keep the finished greenlet alive that long. The greenlet lets
/// go of it when it finishes; a stale entry then finds `greenlet` nil.
final class TimerTarget {
    unowned(unsafe) var greenlet: AnyGreenlet?

    init(_ greenlet: AnyGreenlet) { self.greenlet = greenlet }
}

/// The hub's timers: a binary heap ordered by deadline, then by insertion.
///
/// Cancellation is lazy and O(1): a cancelled or outdated entry stays in the heap and is
/// skipped when it surfaces. ``noteCancelled()`` counts such entries; once they outnumber the
/// live ones (and there are many), the heap is rebuilt without them, so a loop of short
/// `withTimeout` blocks with long durations cannot grow it without bound.
struct TimerQueue {
    struct Entry: Comparable {
        let deadline: UInt64
        let sequence: UInt64
        let action: TimerAction

        static func < (lhs: Entry, rhs: Entry) -> Bool {
            lhs.deadline != rhs.deadline ? lhs.deadline < rhs.deadline : lhs.sequence < rhs.sequence
        }
        static func == (lhs: Entry, rhs: Entry) -> Bool { lhs.sequence == rhs.sequence }
    }

    private var heap = Heap<Entry>()
    private var sequence: UInt64 = 0
    private var cancelled = 0

    var isEmpty: Bool { heap.isEmpty }
    var count: Int { heap.count }
    var nextDeadline: UInt64? { heap.min?.deadline }
    /// The earliest entry.
    var first: Entry? { heap.min }
    /// Removes the earliest entry.
    mutating func popFirst() -> Entry? { heap.popMin() }

    mutating func schedule(at deadline: UInt64, _ action: TimerAction) {
        sequence &+= 1
        heap.insert(Entry(deadline: deadline, sequence: sequence, action: action))
    }

    /// Removes and returns the earliest entry if it is due at `now`.
    mutating func popExpired(now: UInt64) -> Entry? {
        guard let first = heap.min, first.deadline <= now else { return nil }
        return heap.removeMin()
    }

    /// Records that one entry became stale; compacts when stale entries dominate.
    mutating func noteCancelled(isLive: (TimerAction) -> Bool) {
        cancelled += 1
        if cancelled > 1024 && cancelled * 2 > heap.count {
            heap = Heap(heap.unordered.filter { isLive($0.action) })
            cancelled = 0
        }
    }

    /// Records that a stale entry has left the heap.
    mutating func noteStaleRemoved() {
        if cancelled > 0 { cancelled -= 1 }
    }
}
