import DequeModule

/// A rendezvous between greenlets (gevent's `Channel`): ``put(_:timeout:)`` waits until a
/// getter takes the item.
///
/// Putters and getters are each served FIFO. An item handed to a getter that is killed before
/// it runs goes to the next getter (or waits for one); it is never lost. Greenlet-safe, not
/// thread-safe.
public final class Channel<Element> {
    private let getters = WaiterList()
    private let putters = WaiterList()
    /// Items of parked putters, in the putters' order.
    private var offers = Deque<(putter: ObjectIdentifier, item: Element)>()
    /// Items handed over (to granted getters, or left by a getter that was killed).
    private var handedOver = Deque<Element>()
    private var reservedItems = 0

    /// Creates a channel.
    public init() {}

    /// Items waiting in the channel outside a rendezvous: 0 unless a getter was killed after an
    /// item was handed to it and no other getter has come yet.
    public var count: Int { handedOver.count - reservedItems }

    /// Parked putters minus parked getters (gevent's `balance`).
    public var balance: Int { putters.count - getters.count }

    /// Hands `item` to a getter, waiting until one takes it.
    ///
    /// - Parameter timeout: The longest wait; `nil` waits for ever; `.zero` does not park.
    /// - Throws: ``QueueError/full`` if no getter takes it within `timeout` (the item is
    ///   withdrawn); `GreenletExit`, an enclosing `Timeout` or ``HubError`` while waiting.
    /// - Note: A switch point unless a getter is already waiting.
    public func put(_ item: Element, timeout: Duration? = nil) throws {
        let hub = Hub.current
        if !getters.isEmpty && getters.wakeFirst(hub: hub) {
            handedOver.append(item)
            reservedItems += 1
            return
        }
        if let timeout, timeout <= .zero { throw QueueError.full }
        let me = hub.current!
        let key = ObjectIdentifier(me)
        offers.append((key, item))
        // A putter is granted when a getter has taken its item: interrupted then, the item
        // was still delivered and must not be withdrawn.
        var delivered = false
        do {
            guard try putters.wait(hub: hub, on: "Channel.put", deadline: timeout.map { hub.deadline(after: $0) },
                                   handOn: { delivered = true }) else {
                withdraw(key)
                throw QueueError.full
            }
        } catch {
            if !delivered { withdraw(key) }
            throw error
        }
    }

    /// Hands `item` to a getter that is already waiting, without parking.
    /// - Throws: ``QueueError/full`` if no getter is waiting.
    public func tryPut(_ item: Element) throws {
        try put(item, timeout: .zero)
    }

    /// Takes an item from a putter, waiting until one comes.
    ///
    /// - Returns: The first parked putter's item.
    /// - Throws: ``QueueError/empty`` if none comes within `timeout`; `GreenletExit`, an
    ///   enclosing `Timeout` or ``HubError`` while waiting.
    /// - Note: A switch point unless a putter is already waiting.
    public func get(timeout: Duration? = nil) throws -> Element {
        if handedOver.count > reservedItems {
            return handedOver.removeFirst()
        }
        let hub = Hub.current
        if let item = takeOffer(hub) { return item }
        if let timeout, timeout <= .zero { throw QueueError.empty }
        // A getter granted an item but interrupted leaves it for the next getter.
        let granted = try getters.wait(hub: hub, on: "Channel.get", deadline: timeout.map { hub.deadline(after: $0) },
                                       handOn: {
                                           reservedItems -= 1
                                           if getters.wakeFirst(hub: hub) { reservedItems += 1 }
                                       })
        guard granted else { throw QueueError.empty }
        reservedItems -= 1
        return handedOver.removeFirst()
    }

    /// Takes an item from a putter that is already waiting, without parking.
    /// - Throws: ``QueueError/empty`` if no putter is waiting.
    public func tryGet() throws -> Element {
        try get(timeout: .zero)
    }

    private func takeOffer(_ hub: Hub) -> Element? {
        guard let putter = putters.popParked() else { return nil }
        let key = ObjectIdentifier(putter)
        guard let index = offers.firstIndex(where: { $0.putter == key }) else { return nil }
        let item = offers.remove(at: index).item
        putter.isGranted = true
        hub.wake(putter)
        return item
    }

    private func withdraw(_ key: ObjectIdentifier) {
        if let index = offers.firstIndex(where: { $0.putter == key }) {
            offers.remove(at: index)
        }
    }
}
