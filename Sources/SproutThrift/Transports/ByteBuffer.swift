/// A growable run of bytes for transports' pending writes: appends are a `memcpy`, and
/// `removeAll` keeps the storage (shrinking it after an unusually large message).
struct ByteBuffer {
    private(set) var base: UnsafeMutableRawPointer
    private(set) var capacity: Int
    private(set) var count = 0
    private let initialCapacity: Int

    init(capacity: Int) {
        initialCapacity = max(capacity, 16)
        self.capacity = initialCapacity
        base = .allocate(byteCount: initialCapacity, alignment: 16)
    }

    /// Frees the storage; the buffer must not be used afterwards.
    func deallocate() { base.deallocate() }

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    @inline(__always)
    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        let needed = count + bytes.count
        if needed > capacity { grow(to: needed) }
        if let source = bytes.baseAddress { (base + count).copyMemory(from: source, byteCount: bytes.count) }
        count = needed
    }

    /// Appends `byteCount` bytes left for the caller to fill in later (a frame header).
    mutating func reserve(_ byteCount: Int) {
        if count + byteCount > capacity { grow(to: count + byteCount) }
        count += byteCount
    }

    mutating func removeAll() {
        count = 0
        if capacity > 1 << 20 {
            base.deallocate()
            capacity = initialCapacity
            base = .allocate(byteCount: capacity, alignment: 16)
        }
    }

    private mutating func grow(to needed: Int) {
        var newCapacity = capacity * 2
        while newCapacity < needed { newCapacity *= 2 }
        let bigger = UnsafeMutableRawPointer.allocate(byteCount: newCapacity, alignment: 16)
        bigger.copyMemory(from: base, byteCount: count)
        base.deallocate()
        base = bigger
        capacity = newCapacity
    }
}
