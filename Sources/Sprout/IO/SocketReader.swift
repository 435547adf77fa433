/// A buffered reader over a stream ``Socket`` for protocol code: lines and exact lengths.
///
/// Reads from the socket in chunks of up to ``chunkSize`` bytes and serves requests from its
/// buffer; bytes it has read stay buffered for the next call. Not safe for two greenlets at
/// once (as the socket itself).
public final class SocketReader {
    /// The socket read from.
    public let socket: Socket
    /// The most bytes asked of the socket in one `recv`.
    public let chunkSize: Int
    private var buffer: [UInt8] = []
    private var start = 0

    /// Creates a reader of `socket`.
    public init(_ socket: Socket, chunkSize: Int = 65536) {
        precondition(chunkSize > 0, "SocketReader: chunkSize must be positive")
        self.socket = socket
        self.chunkSize = chunkSize
    }

    /// Bytes read from the socket but not yet returned.
    public var bufferedCount: Int { buffer.count - start }

    /// Reads up to and including the next `\n`, and returns the line without it (and without a
    /// `\r` before it).
    ///
    /// - Parameter limit: The longest line accepted, terminator excluded.
    /// - Returns: The line; `nil` at end of stream when no bytes are left. A last line without
    ///   a terminator is returned as is.
    /// - Throws: ``SocketReaderError/lineTooLong(_:)`` past `limit` (the buffered bytes stay);
    ///   errors of ``Socket/recv(into:)``.
    /// - Note: A switch point when the buffer holds no full line.
    public func readLine(limit: Int = 65536) throws -> [UInt8]? {
        // Bytes after `start` already searched; an offset, since `fill` may compact the buffer.
        var searched = 0
        while true {
            if let newline = buffer[(start + searched)...].firstIndex(of: UInt8(ascii: "\n")) {
                var end = newline
                if end > start && buffer[end - 1] == UInt8(ascii: "\r") { end -= 1 }
                guard end - start <= limit else { throw SocketReaderError.lineTooLong(limit) }
                let line = Array(buffer[start..<end])
                start = newline + 1
                return line
            }
            searched = bufferedCount
            guard searched <= limit + 1 else { throw SocketReaderError.lineTooLong(limit) }
            if try fill() == 0 {
                guard bufferedCount > 0 else { return nil }
                let line = Array(buffer[start...])
                start = buffer.count
                return line
            }
        }
    }

    /// Reads exactly `count` bytes.
    ///
    /// - Throws: ``SocketReaderError/unexpectedEndOfStream(expected:received:)`` if the peer
    ///   closes first (the partial bytes are consumed); errors of ``Socket/recv(into:)``.
    /// - Note: A switch point when fewer than `count` bytes are buffered.
    public func readExactly(_ count: Int) throws -> [UInt8] {
        precondition(count >= 0, "readExactly: count must not be negative")
        while bufferedCount < count {
            if try fill() == 0 {
                let received = bufferedCount
                start = buffer.count
                throw SocketReaderError.unexpectedEndOfStream(expected: count, received: received)
            }
        }
        let bytes = Array(buffer[start..<(start + count)])
        start += count
        return bytes
    }

    /// Returns whatever is buffered, or reads once if nothing is (empty at end of stream).
    public func readAvailable() throws -> [UInt8] {
        if bufferedCount == 0 {
            let received = try fill()
            if received == 0 { return [] }
        }
        let bytes = Array(buffer[start...])
        start = buffer.count
        return bytes
    }

    /// Reads one chunk from the socket into the buffer. Returns the byte count (0: end).
    private func fill() throws -> Int {
        if start > 0 && start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        } else if start > chunkSize {
            buffer.removeFirst(start)
            start = 0
        }
        let oldCount = buffer.count
        buffer.append(contentsOf: repeatElement(0, count: chunkSize))
        let received: Int
        do {
            received = try buffer.withUnsafeMutableBytes { raw in
                try socket.recv(into: UnsafeMutableRawBufferPointer(rebasing: raw[oldCount...]))
            }
        } catch {
            buffer.removeLast(chunkSize)
            throw error
        }
        buffer.removeLast(chunkSize - received)
        return received
    }
}

/// Errors of ``SocketReader``.
public struct SocketReaderError: Error, Equatable, CustomStringConvertible {
    public let description: String

    /// A line was longer than the limit.
    public static func lineTooLong(_ limit: Int) -> SocketReaderError {
        SocketReaderError(description: "line longer than \(limit) bytes")
    }
    /// The stream ended before the bytes asked for arrived.
    public static func unexpectedEndOfStream(expected: Int, received: Int) -> SocketReaderError {
        SocketReaderError(description: "stream ended after \(received) of \(expected) bytes")
    }
}
