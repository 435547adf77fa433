import Glibc
import Sprout

/// A connection's unread input: a pooled buffer while the connection is busy, none while it
/// idles (so ten thousand idle keep-alive connections hold no buffers).
///
/// Bytes live in `[start, end)`. A head that does not fit the pooled buffer moves to a larger
/// `malloc`ed one, up to the head limit, which is freed once it is empty.
struct ReadBuffer {
    private(set) var base: UnsafeMutableRawPointer?
    private(set) var capacity = 0
    private(set) var start = 0
    private(set) var end = 0
    private var isLarge = false

    /// Unread bytes.
    @inline(__always) var count: Int { end - start }
    /// True while a buffer is held.
    var isHeld: Bool { base != nil }

    /// The unread bytes. Valid until the next receive or compaction.
    @inline(__always) var readable: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: base.map { $0 + start }, count: end - start)
    }

    /// Takes a buffer from `pool` if none is held.
    @inline(__always)
    mutating func hold(from pool: BufferPool) throws {
        if base == nil {
            base = try pool.take()
            capacity = pool.bufferSize
            start = 0
            end = 0
            isLarge = false
        }
    }

    /// Gives the buffer back; unread bytes are dropped.
    mutating func release(to pool: BufferPool) {
        guard let base else { return }
        if isLarge { free(base) } else { pool.give(base) }
        self.base = nil
        capacity = 0
        start = 0
        end = 0
    }

    /// Marks `n` unread bytes as consumed.
    @inline(__always)
    mutating func consume(_ n: Int) {
        start += n
        if start == end {
            start = 0
            end = 0
        }
    }

    /// Space to receive into after the unread bytes, compacting or growing (up to `limit`
    /// bytes in all) when the tail is full; nil if `limit` bytes are already unread.
    mutating func receiveSpace(limit: Int, pool: BufferPool) throws -> UnsafeMutableRawBufferPointer? {
        try hold(from: pool)
        if end == capacity && start > 0 {
            memmove(base!, base! + start, end - start)
            end -= start
            start = 0
        }
        if end == capacity {
            guard capacity < limit else { return nil }
            guard let larger = malloc(limit) else { throw SystemError(errno: ENOMEM, operation: "malloc (request head buffer)") }
            memcpy(larger, base!, end)
            if isLarge { free(base) } else { pool.give(base!) }
            base = larger
            capacity = limit
            isLarge = true
        }
        return UnsafeMutableRawBufferPointer(start: base! + end, count: capacity - end)
    }

    /// Records `n` bytes received into the space ``receiveSpace(limit:pool:)`` returned.
    @inline(__always)
    mutating func didReceive(_ n: Int) {
        end += n
        receivedTotal &+= n
    }

    /// Bytes received into this buffer over the connection's life (for metrics).
    private(set) var receivedTotal = 0

    /// Moves a large buffer's unread bytes back into a pooled one when they fit, so that one
    /// large head does not pin 64 KiB for the connection's life.
    mutating func shrinkIfLarge(pool: BufferPool) throws {
        guard isLarge, count <= pool.bufferSize else { return }
        let pooled = try pool.take()
        memcpy(pooled, base! + start, count)
        free(base)
        end = count
        start = 0
        base = pooled
        capacity = pool.bufferSize
        isLarge = false
    }
}

/// Bytes being prepared for one write: a pooled buffer that moves to `malloc`ed memory if a
/// response head (or a small body copied after it) outgrows it.
struct OutputBuffer {
    private(set) var base: UnsafeMutableRawPointer
    private(set) var capacity: Int
    private(set) var count = 0
    private var isLarge = false

    init(pool: BufferPool) throws {
        base = try pool.take()
        capacity = pool.bufferSize
    }

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }
    var freeSpace: Int { capacity - count }

    mutating func removeAll() { count = 0 }

    @inline(__always)
    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        if count + bytes.count > capacity { grow(to: count + bytes.count) }
        memcpy(base + count, bytes.baseAddress!, bytes.count)
        count += bytes.count
    }

    @inline(__always)
    mutating func append(_ text: StaticString) {
        append(UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    @inline(__always)
    mutating func append(_ byte: UInt8) {
        if count == capacity { grow(to: count + 1) }
        base.storeBytes(of: byte, toByteOffset: count, as: UInt8.self)
        count += 1
    }

    mutating func append(_ text: String) {
        var text = text
        text.withUTF8 { append(UnsafeRawBufferPointer($0)) }
    }

    /// Appends `value` in decimal.
    mutating func appendDecimal(_ value: Int) {
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0) // 24 bytes of scratch
        withUnsafeMutableBytes(of: &digits) { scratch in
            var v = UInt(max(value, 0))
            var i = scratch.count
            repeat {
                i -= 1
                scratch[i] = UInt8(48 + v % 10)
                v /= 10
            } while v > 0
            append(UnsafeRawBufferPointer(rebasing: scratch[i...]))
        }
    }

    /// Appends `value` in lowercase hexadecimal.
    mutating func appendHex(_ value: Int) {
        var digits: (UInt64, UInt64) = (0, 0)
        withUnsafeMutableBytes(of: &digits) { scratch in
            var v = UInt(max(value, 0))
            var i = scratch.count
            repeat {
                i -= 1
                let d = UInt8(v & 15)
                scratch[i] = d < 10 ? 48 + d : 87 + d
                v >>= 4
            } while v > 0
            append(UnsafeRawBufferPointer(rebasing: scratch[i...]))
        }
    }

    private mutating func grow(to needed: Int) {
        let newCapacity = max(needed, capacity * 2)
        if isLarge {
            base = realloc(base, newCapacity)!
        } else {
            let larger = malloc(newCapacity)!
            memcpy(larger, base, count)
            pooledOrigin = base  // given back with the rest in release(to:)
            base = larger
            isLarge = true
        }
        capacity = newCapacity
    }

    /// The pooled buffer a grown output buffer started from, returned on release.
    private var pooledOrigin: UnsafeMutableRawPointer?

    mutating func release(to pool: BufferPool) {
        if isLarge {
            free(base)
            if let pooledOrigin { pool.give(pooledOrigin) }
        } else {
            pool.give(base)
        }
        count = 0
    }
}
