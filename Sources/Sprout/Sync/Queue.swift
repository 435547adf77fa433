import DequeModule
import HeapModule

/// Errors of queues and channels.
public struct QueueError: Error, Equatable, CustomStringConvertible {
    private enum Kind { case empty, full, tooManyTaskDone }
    private let kind: Kind

    /// No item arrived within the timeout (or `tryGet()` found none).
    public static let empty = QueueError(kind: .empty)
    /// No slot freed within the timeout (or `tryPut(_:)` found the queue full).
    public static let full = QueueError(kind: .full)
    /// ``JoinableQueue/taskDone()`` was called more times than items were put.
    public static let tooManyTaskDone = QueueError(kind: .tooManyTaskDone)

    public var description: String {
        switch kind {
        case .empty: return "QueueError.empty: no item was available"
        case .full: return "QueueError.full: no free slot was available"
        case .tooManyTaskDone: return "QueueError.tooManyTaskDone: taskDone() called more times than items were put"
        }
    }
}

/// A first-in first-out queue between greenlets (gevent's `Queue`), optionally bounded.
///
/// Parked getters and putters are served in the order they arrived; a newcomer never
/// overtakes a parked greenlet. An item handed to a parked getter that is then killed or times
/// out is given to the next getter, never lost. Greenlet-safe, not thread-safe.
public class Queue<Element> {
    /// The capacity, or `nil` for unbounded.
    public let maxSize: Int?
    private let getters = WaiterList()
    private let putters = WaiterList()
    /// Items already promised to woken getters that have not run yet.
    private var reservedItems = 0
    /// Slots already promised to woken putters that have not run yet.
    private var reservedSlots = 0

    /// Creates a queue holding at most `maxSize` items (`nil`: unbounded).
    /// - Precondition: `maxSize` is nil or at least 1 (a zero-capacity rendezvous is ``Channel``).
    public init(maxSize: Int? = nil) {
        if let maxSize {
            precondition(maxSize >= 1, "Queue: maxSize must be at least 1 (got \(maxSize)); use Channel for a rendezvous")
        }
        self.maxSize = maxSize
    }

    // Storage, overridden by the LIFO and priority variants.
    private var fifo = Deque<Element>()
    var storedCount: Int { fifo.count }
    func store(_ item: Element) { fifo.append(item) }
    func takeNext() -> Element { fifo.removeFirst() }
    func peekNext() -> Element? { fifo.first }

    /// Items in the queue.
    public var count: Int { storedCount }
    /// True if the queue holds no item.
    public var isEmpty: Bool { storedCount == 0 }
    /// True if a bounded queue has no free slot.
    public var isFull: Bool { maxSize.map { storedCount + reservedSlots >= $0 } ?? false }

    private var hasFreeSlot: Bool { maxSize.map { storedCount + reservedSlots < $0 } ?? true }
    private var hasFreeItem: Bool { storedCount > reservedItems }

    /// Adds `item`, waiting for a free slot if the queue is bounded and full.
    ///
    /// - Parameter timeout: The longest wait; `nil` waits for ever; `.zero` does not park.
    /// - Throws: ``QueueError/full`` if no slot frees within `timeout` (the item is not added);
    ///   `GreenletExit`, an enclosing `Timeout` or ``HubError`` while waiting.
    /// - Note: A switch point only when full.
    public func put(_ item: Element, timeout: Duration? = nil) throws {
        if hasFreeSlot {
            insert(item)
            return
        }
        if let timeout, timeout <= .zero { throw QueueError.full }
        let hub = Hub.current
        let granted = try putters.wait(hub: hub, on: "Queue.put", deadline: timeout.map { hub.deadline(after: $0) },
                                       handOn: { reservedSlots -= 1; grantSlots(hub) })
        guard granted else { throw QueueError.full }
        reservedSlots -= 1
        insert(item)
    }

    /// Adds `item` if a slot is free, without parking.
    /// - Throws: ``QueueError/full`` if the queue is full.
    public func tryPut(_ item: Element) throws {
        try put(item, timeout: .zero)
    }

    /// Removes and returns the next item, waiting for one if the queue is empty.
    ///
    /// - Parameter timeout: The longest wait; `nil` waits for ever; `.zero` does not park.
    /// - Returns: The oldest item (the newest for ``LifoQueue``, the smallest for
    ///   ``PriorityQueue``).
    /// - Throws: ``QueueError/empty`` if no item arrives within `timeout`; `GreenletExit`,
    ///   an enclosing `Timeout` or ``HubError`` while waiting.
    /// - Note: A switch point only when empty.
    public func get(timeout: Duration? = nil) throws -> Element {
        if hasFreeItem {
            return remove()
        }
        if let timeout, timeout <= .zero { throw QueueError.empty }
        let hub = Hub.current
        let granted = try getters.wait(hub: hub, on: "Queue.get", deadline: timeout.map { hub.deadline(after: $0) },
                                       handOn: { reservedItems -= 1; grantItems(hub) })
        guard granted else { throw QueueError.empty }
        reservedItems -= 1
        return remove()
    }

    /// Removes and returns the next item if there is one, without parking.
    /// - Throws: ``QueueError/empty`` if the queue is empty.
    public func tryGet() throws -> Element {
        try get(timeout: .zero)
    }

    /// The next item, without removing it; nil if none is free.
    public func peek() -> Element? {
        hasFreeItem ? peekNext() : nil
    }

    private func insert(_ item: Element) {
        store(item)
        didPut()
        if !getters.isEmpty { grantItems(Hub.current) }
    }

    private func remove() -> Element {
        let item = takeNext()
        if !putters.isEmpty { grantSlots(Hub.current) }
        return item
    }

    /// Promises free items to parked getters, FIFO.
    private func grantItems(_ hub: Hub) {
        while hasFreeItem && getters.wakeFirst(hub: hub) { reservedItems += 1 }
    }

    /// Promises free slots to parked putters, FIFO.
    private func grantSlots(_ hub: Hub) {
        while hasFreeSlot && putters.wakeFirst(hub: hub) { reservedSlots += 1 }
    }

    /// Hook for ``JoinableQueue``.
    func didPut() {}
}

/// A last-in first-out queue between greenlets (gevent's `LifoQueue`).
public final class LifoQueue<Element>: Queue<Element> {
    private var stack: [Element] = []
    override var storedCount: Int { stack.count }
    override func store(_ item: Element) { stack.append(item) }
    override func takeNext() -> Element { stack.removeLast() }
    override func peekNext() -> Element? { stack.last }
}

/// A queue that returns its smallest item first (gevent's `PriorityQueue`).
///
/// - Complexity: `put` and `get` are O(log n).
public final class PriorityQueue<Element: Comparable>: Queue<Element> {
    private var heap = Heap<Element>()
    override var storedCount: Int { heap.count }
    override func store(_ item: Element) { heap.insert(item) }
    override func takeNext() -> Element { heap.removeMin() }
    override func peekNext() -> Element? { heap.min }
}

/// A FIFO queue that also counts unfinished work: ``join(timeout:)`` waits until every item
/// put has been matched by a ``taskDone()`` (gevent's `JoinableQueue`).
public final class JoinableQueue<Element>: Queue<Element> {
    /// Items put and not yet marked done.
    public private(set) var unfinishedTasks = 0
    private let finished = Event()

    /// Creates a queue; see ``Queue/init(maxSize:)``.
    public override init(maxSize: Int? = nil) {
        super.init(maxSize: maxSize)
        finished.set()
    }

    override func didPut() {
        unfinishedTasks += 1
        finished.clear()
    }

    /// Marks one item as processed; the last one wakes ``join(timeout:)``.
    /// - Throws: ``QueueError/tooManyTaskDone`` if more calls than items put.
    public func taskDone() throws {
        guard unfinishedTasks > 0 else { throw QueueError.tooManyTaskDone }
        unfinishedTasks -= 1
        if unfinishedTasks == 0 { finished.set() }
    }

    /// Waits until every item put has been marked done.
    /// - Returns: True if all are done, false if `timeout` passed first.
    /// - Throws: `GreenletExit`, an enclosing `Timeout` or ``HubError`` while waiting.
    /// - Note: A switch point while work is unfinished.
    @discardableResult
    public func join(timeout: Duration? = nil) throws -> Bool {
        try finished.wait(timeout: timeout)
    }
}
