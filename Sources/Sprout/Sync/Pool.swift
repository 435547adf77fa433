/// A set of greenlets managed together (gevent's `Group`): spawn into it, join or kill them
/// all, map work over them. Finished greenlets leave the group by themselves.
///
/// Greenlet-safe, not thread-safe.
public final class Group {
    let members = GroupMembers()

    /// Creates an empty group.
    public init() {}

    /// Greenlets in the group that have not finished.
    public var count: Int { members.count }
    /// Always `Int.max`: a group has no size limit (see ``Pool``).
    public var freeCount: Int { .max }

    /// Spawns `body` in a new greenlet that belongs to the group.
    /// - Note: Not a switch point. See ``spawn(name:stackSize:_:)`` (for `stackSize` too).
    @discardableResult
    public func spawn<Value>(name: String? = nil, stackSize: Int? = nil,
                             _ body: @escaping () throws -> Value) -> Greenlet<Value> {
        let greenlet = Sprout.spawn(name: name, stackSize: stackSize, body)
        members.add(greenlet)
        return greenlet
    }

    /// Adds an existing greenlet to the group.
    public func add(_ greenlet: AnyGreenlet) { members.add(greenlet) }

    /// The members that have not finished, oldest first.
    public var greenlets: [AnyGreenlet] { members.all }

    /// Waits until every member has finished.
    /// - Returns: True if all finished, false if `timeout` passed first.
    /// - Throws: `GreenletExit`, an enclosing `Timeout` or ``HubError`` while waiting.
    @discardableResult
    public func join(timeout: Duration? = nil) throws -> Bool { try members.join(timeout: timeout) }

    /// Kills every member (see ``killAll(_:block:)``).
    public func kill(block: Bool = true) { killAll(members.all, block: block) }

    /// Runs `transform` on every item in its own greenlet and returns the results in order.
    /// - Throws: The first error (in item order) that a `transform` threw; errors while waiting.
    public func map<S: Sequence, R>(_ items: S, _ transform: @escaping (S.Element) throws -> R) throws -> [R] {
        try imap(items, transform).collect()
    }

    /// Runs `transform` on every item in its own greenlet; iterate the results in item order.
    public func imap<S: Sequence, R>(_ items: S, _ transform: @escaping (S.Element) throws -> R) -> MapIterator<R> {
        MapIterator(items: items, ordered: true, transform: transform) { body in self.spawn(body) }
    }

    /// Like ``imap(_:_:)``, but results come in the order they finish.
    public func imapUnordered<S: Sequence, R>(_ items: S, _ transform: @escaping (S.Element) throws -> R) -> MapIterator<R> {
        MapIterator(items: items, ordered: false, transform: transform) { body in self.spawn(body) }
    }
}

/// A group with at most `size` greenlets running at once (gevent's `Pool`): ``spawn(name:_:)``
/// waits for a free place.
///
/// Greenlet-safe, not thread-safe.
public final class Pool {
    let members = GroupMembers()
    /// The most greenlets that run at once.
    public let size: Int
    private let slots: Semaphore

    /// Creates a pool of `size` places.
    /// - Precondition: `size >= 1`.
    public init(size: Int) {
        precondition(size >= 1, "Pool: size must be at least 1 (got \(size))")
        self.size = size
        slots = Semaphore(size)
    }

    /// Greenlets in the pool that have not finished.
    public var count: Int { members.count }
    /// Places free right now.
    public var freeCount: Int { slots.value }
    /// True if every place is taken.
    public var isFull: Bool { slots.value == 0 }

    /// Spawns `body` in a new greenlet, first waiting for a free place (`stackSize` as in
    /// ``spawn(name:stackSize:_:)``).
    /// - Throws: `GreenletExit`, an enclosing `Timeout` or ``HubError`` while waiting for a
    ///   place (then nothing is spawned).
    /// - Note: A switch point while the pool is full.
    @discardableResult
    public func spawn<Value>(name: String? = nil, stackSize: Int? = nil,
                             _ body: @escaping () throws -> Value) throws -> Greenlet<Value> {
        try slots.acquire()
        let greenlet = Sprout.spawn(name: name, stackSize: stackSize, body)
        members.add(greenlet) { [slots] in slots.release() }
        return greenlet
    }

    /// Waits until a place is free.
    /// - Returns: True if one is, false if `timeout` passed first.
    @discardableResult
    public func waitAvailable(timeout: Duration? = nil) throws -> Bool {
        guard try slots.acquire(timeout: timeout) else { return false }
        slots.release()
        return true
    }

    /// Waits until every member has finished.
    /// - Returns: True if all finished, false if `timeout` passed first.
    @discardableResult
    public func join(timeout: Duration? = nil) throws -> Bool { try members.join(timeout: timeout) }

    /// Kills every member (see ``killAll(_:block:)``).
    public func kill(block: Bool = true) { killAll(members.all, block: block) }

    /// Runs `transform` on every item, at most ``size`` at once, and returns the results in order.
    /// - Throws: The first error (in item order) that a `transform` threw; errors while waiting.
    public func map<S: Sequence, R>(_ items: S, _ transform: @escaping (S.Element) throws -> R) throws -> [R] {
        try imap(items, transform).collect()
    }

    /// Runs `transform` on every item, at most ``size`` at once; iterate the results in order.
    public func imap<S: Sequence, R>(_ items: S, _ transform: @escaping (S.Element) throws -> R) -> MapIterator<R> {
        MapIterator(items: items, ordered: true, transform: transform) { body in try self.spawn(body) }
    }

    /// Like ``imap(_:_:)``, but results come in the order they finish.
    public func imapUnordered<S: Sequence, R>(_ items: S, _ transform: @escaping (S.Element) throws -> R) -> MapIterator<R> {
        MapIterator(items: items, ordered: false, transform: transform) { body in try self.spawn(body) }
    }
}

/// The membership shared by ``Group`` and ``Pool``.
final class GroupMembers {
    private var greenlets: [ObjectIdentifier: AnyGreenlet] = [:]
    private let empty = Event()

    init() { empty.set() }

    var count: Int { greenlets.count }
    var all: [AnyGreenlet] { greenlets.values.sorted { $0.id < $1.id } }

    func add(_ greenlet: AnyGreenlet, onFinish: (() -> Void)? = nil) {
        guard !greenlet.isReady else {
            onFinish?()
            return
        }
        greenlets[ObjectIdentifier(greenlet)] = greenlet
        empty.clear()
        greenlet.rawLink { [weak self] in
            onFinish?()
            guard let self else { return }
            self.greenlets[ObjectIdentifier(greenlet)] = nil
            if self.greenlets.isEmpty { self.empty.set() }
        }
    }

    func join(timeout: Duration?) throws -> Bool {
        try empty.wait(timeout: timeout)
    }
}

/// The results of ``Group/imap(_:_:)`` and friends: call ``next()`` until it returns nil.
///
/// The work runs in greenlets spawned by a feeder greenlet; ``next()`` parks until the next
/// result is there. If a `transform` threw, ``next()`` throws that error at its place in the
/// order and the iteration ends. Abandoning the iterator leaves the work running.
public final class MapIterator<Result> {
    private let results = Queue<(index: Int, outcome: Swift.Result<Result, any Error>)>()
    private var buffered: [Int: Swift.Result<Result, any Error>] = [:]
    private let ordered: Bool
    private var nextIndex = 0
    private var total: Int?
    private var delivered = 0
    private var finished = false
    private var feeder: Greenlet<Void>?
    private let feedError = UncheckedBox<(any Error)?>(nil)

    init<S: Sequence>(items: S, ordered: Bool, transform: @escaping (S.Element) throws -> Result,
                      spawn: @escaping (@escaping () throws -> Void) throws -> AnyGreenlet) {
        self.ordered = ordered
        let results = self.results
        let feedError = self.feedError
        feeder = Sprout.spawn(name: "imap feeder") { [weak self] in
            var index = 0
            do {
                for item in items {
                    let myIndex = index
                    _ = try spawn {
                        let outcome = Swift.Result { try transform(item) }
                        try results.put((myIndex, outcome))
                    }
                    index += 1
                }
                self?.total = index
            } catch {
                feedError.value = error
            }
            try? results.put((-1, .failure(GreenletExit())))   // marks the end of feeding
        }
    }

    /// The next result.
    /// - Returns: The next value, or nil once every item's result has been returned.
    /// - Throws: The error a `transform` threw (ending the iteration); the feeder's error (a
    ///   kill while waiting for a pool place); errors while waiting.
    /// - Note: A switch point while the next result is not ready.
    public func next() throws -> Result? {
        while !finished {
            if let total, delivered == total {
                finished = true
                break
            }
            if ordered, let outcome = buffered.removeValue(forKey: nextIndex) {
                nextIndex += 1
                delivered += 1
                return try deliver(outcome)
            }
            let (index, outcome) = try results.get()
            if index < 0 {
                if let error = feedError.value {
                    finished = true
                    throw error
                }
                continue
            }
            if ordered {
                buffered[index] = outcome
            } else {
                delivered += 1
                return try deliver(outcome)
            }
        }
        return nil
    }

    private func deliver(_ outcome: Swift.Result<Result, any Error>) throws -> Result {
        do {
            return try outcome.get()
        } catch {
            finished = true
            throw error
        }
    }

    /// Every remaining result, in iteration order.
    /// - Throws: as ``next()``.
    public func collect() throws -> [Result] {
        var all: [Result] = []
        while let value = try next() { all.append(value) }
        return all
    }
}
