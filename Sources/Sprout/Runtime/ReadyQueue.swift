/// The hub's FIFO of greenlets that can run, as unretained references.
///
/// A ring buffer of `Unmanaged` references: pushing and popping touch no reference count and
/// allocate only when the ring grows. Every greenlet in it is kept alive by the hub's registry.
struct ReadyQueue {
    private var storage: UnsafeMutablePointer<Unmanaged<AnyGreenlet>>
    private var capacity: Int
    private var head = 0
    private(set) var count = 0

    init(capacity: Int = 256) {
        self.capacity = capacity
        storage = .allocate(capacity: capacity)
    }

    var isEmpty: Bool { count == 0 }

    mutating func push(_ greenlet: Unmanaged<AnyGreenlet>) {
        if count == capacity { grow() }
        var tail = head + count
        if tail >= capacity { tail -= capacity }
        storage[tail] = greenlet
        count += 1
    }

    mutating func pop() -> Unmanaged<AnyGreenlet>? {
        guard count > 0 else { return nil }
        let greenlet = storage[head]
        head += 1
        if head == capacity { head = 0 }
        count -= 1
        return greenlet
    }

    private mutating func grow() {
        let newCapacity = capacity * 2
        let newStorage = UnsafeMutablePointer<Unmanaged<AnyGreenlet>>.allocate(capacity: newCapacity)
        for index in 0..<count {
            var source = head + index
            if source >= capacity { source -= capacity }
            newStorage[index] = storage[source]
        }
        storage.deallocate()
        storage = newStorage
        capacity = newCapacity
        head = 0
    }

    func deallocate() {
        storage.deallocate()
    }
}
