import Glibc

/// A pool of fixed-size IO buffers whose memory goes back to the kernel after a spike.
///
/// Buffers are carved from anonymous mappings, so that freeing one can return its pages with
/// `madvise(MADV_DONTNEED)` (memory from `malloc` would stay with the process after ten thousand
/// connections have come and gone). The pool keeps at most ``hotLimit`` free buffers with their
/// pages resident, so that take/give cycles under steady load make no system call; buffers
/// given back beyond that have their pages released and are reused later, faulting in again.
///
/// Belongs to one hub's thread (create one per server or per hub); not thread-safe.
public final class BufferPool {
    /// Bytes in every buffer (a multiple of the page size).
    public let bufferSize: Int
    /// Free buffers kept with their pages resident.
    public let hotLimit: Int
    private let buffersPerSlab: Int
    private var slabs: [(base: UnsafeMutableRawPointer, length: Int)] = []
    @exclusivity(unchecked) private var hot: [UnsafeMutableRawPointer] = []
    @exclusivity(unchecked) private var cold: [UnsafeMutableRawPointer] = []
    @exclusivity(unchecked) private var fresh: (slab: Int, next: Int)?
    /// Buffers taken and not yet given back.
    public private(set) var outstanding = 0

    /// Creates an empty pool; nothing is mapped until the first ``take()``.
    ///
    /// - Parameters:
    ///   - bufferSize: Bytes per buffer, rounded up to whole pages.
    ///   - hotLimit: Free buffers kept resident; the rest give their pages back.
    /// - Precondition: `bufferSize` is positive and `hotLimit` is not negative.
    public init(bufferSize: Int = 16 * 1024, hotLimit: Int = 128) {
        precondition(bufferSize > 0 && hotLimit >= 0, "BufferPool: bufferSize must be positive, hotLimit not negative")
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        self.bufferSize = (bufferSize + page - 1) / page * page
        self.hotLimit = hotLimit
        buffersPerSlab = max(1, (1 << 20) / self.bufferSize)
    }

    deinit {
        for slab in slabs { munmap(slab.base, slab.length) }
    }

    /// Free buffers whose pages are resident now.
    public var residentFreeCount: Int { hot.count }

    /// Takes a buffer of ``bufferSize`` bytes. Its contents are unspecified.
    ///
    /// - Throws: ``SystemError`` (`ENOMEM`) if no address space can be mapped.
    @inline(__always)
    public func take() throws -> UnsafeMutableRawPointer {
        outstanding += 1
        if let buffer = hot.popLast() { return buffer }
        if let buffer = cold.popLast() { return buffer }
        do {
            return try carve()
        } catch {
            outstanding -= 1
            throw error
        }
    }

    /// Returns a buffer that came from ``take()`` of this pool.
    @inline(__always)
    public func give(_ buffer: UnsafeMutableRawPointer) {
        outstanding -= 1
        if hot.count < hotLimit {
            hot.append(buffer)
        } else {
            _ = madvise(buffer, bufferSize, MADV_DONTNEED)
            cold.append(buffer)
        }
    }

    private func carve() throws -> UnsafeMutableRawPointer {
        if let cursor = fresh {
            let buffer = slabs[cursor.slab].base + cursor.next * bufferSize
            fresh = cursor.next + 1 < buffersPerSlab ? (cursor.slab, cursor.next + 1) : nil
            return buffer
        }
        let length = buffersPerSlab * bufferSize
        let base = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        guard let base, base != UnsafeMutableRawPointer(bitPattern: -1) else {
            throw SystemError(errno: errno, operation: "mmap (buffer pool slab)")
        }
        slabs.append((base, length))
        fresh = (slabs.count - 1, 0)
        return try carve()
    }
}
