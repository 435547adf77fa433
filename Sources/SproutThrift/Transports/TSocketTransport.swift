public import Sprout
import Glibc

/// Thrift's buffered transport over a green ``Socket``: reads are served from a buffer that
/// is refilled by `recv` (parking only the calling greenlet), writes collect until ``flush()``.
///
/// This is the unframed transport (Apache's `TBufferedTransport` over a `TSocket`); it is
/// also what ``TFramedTransport`` reads frames from. The socket's ``Socket/timeout`` bounds
/// each wait.
public final class TSocketTransport: TTransport {
    /// The connection.
    public let socket: Socket
    /// The largest string, binary or container accepted (default 16 MiB).
    public var maxMessageSize: Int
    private let capacity: Int
    private let readBuffer: UnsafeMutableRawPointer
    @exclusivity(unchecked) private var readStart = 0
    @exclusivity(unchecked) private var readEnd = 0
    @exclusivity(unchecked) private var writeBuffer: ByteBuffer

    /// A transport over `socket`, with a read buffer of `bufferSize` bytes.
    public init(socket: Socket, bufferSize: Int = 16 * 1024, maxMessageSize: Int = 16 << 20) {
        precondition(bufferSize > 0, "TSocketTransport: bufferSize must be positive")
        self.socket = socket
        self.capacity = bufferSize
        self.maxMessageSize = maxMessageSize
        readBuffer = .allocate(byteCount: bufferSize, alignment: 16)
        writeBuffer = ByteBuffer(capacity: bufferSize)
    }

    deinit {
        readBuffer.deallocate()
        writeBuffer.deallocate()
    }

    /// Bytes received and not yet read.
    public var bufferedCount: Int { readEnd - readStart }

    /// Bytes written and not yet flushed.
    public var pendingWriteCount: Int { writeBuffer.count }

    /// Waits until at least one byte can be read.
    ///
    /// - Returns: false if the peer closed the connection first (a clean end between messages).
    /// - Throws: `SystemError` (`ETIMEDOUT` after the socket's timeout, `ECONNRESET`), `GreenletExit`, `Timeout`.
    public func waitForData() throws -> Bool {
        if readEnd > readStart { return true }
        return try refill()
    }

    public func readExactly(into buffer: UnsafeMutableRawBufferPointer) throws {
        let wanted = buffer.count
        let available = readEnd - readStart
        if available >= wanted {
            if wanted > 0 { buffer.baseAddress!.copyMemory(from: readBuffer + readStart, byteCount: wanted) }
            readStart += wanted
            return
        }
        var copied = 0
        if available > 0 {
            buffer.baseAddress!.copyMemory(from: readBuffer + readStart, byteCount: available)
            copied = available
        }
        readStart = 0
        readEnd = 0
        while copied < wanted {
            let left = wanted - copied
            if left >= capacity {
                // Large reads go straight into the destination.
                let count = try receive(into: UnsafeMutableRawBufferPointer(rebasing: buffer[copied...]))
                if count == 0 { throw endOfStream(copied, of: wanted) }
                copied += count
                continue
            }
            guard try refill() else { throw endOfStream(copied, of: wanted) }
            let take = min(left, readEnd - readStart)
            (buffer.baseAddress! + copied).copyMemory(from: readBuffer + readStart, byteCount: take)
            readStart += take
            copied += take
        }
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        writeBuffer.append(bytes)
    }

    /// Sends the buffered writes.
    /// - Throws: The socket's `SystemError` (`EPIPE`, `ECONNRESET`, `ETIMEDOUT`), `GreenletExit`, `Timeout`.
    public func flush() throws {
        guard writeBuffer.count > 0 else { return }
        defer { writeBuffer.removeAll() }
        try socket.sendAll(writeBuffer.bytes)
    }

    /// Drops what was written since the last flush (a reply abandoned half-written).
    public func discardPendingWrites() {
        writeBuffer.removeAll()
    }

    /// Closes the socket.
    public func close() { socket.close() }

    private func refill() throws -> Bool {
        readStart = 0
        readEnd = try receive(into: UnsafeMutableRawBufferPointer(start: readBuffer, count: capacity))
        return readEnd > 0
    }

    private func receive(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        do {
            return try socket.recv(into: buffer)
        } catch let error as SystemError where error.errno == ETIMEDOUT {
            throw TTransportError(error: .timedOut, message: "no data for \(socket.timeout.map { "\($0)" } ?? "?")")
        }
    }

    private func endOfStream(_ received: Int, of wanted: Int) -> TTransportError {
        TTransportError(error: .endOfFile, message: "the peer closed the connection after \(received) of \(wanted) bytes")
    }
}
