public import FoundationEssentials

/// Bytes in and out of a connection (or memory): what a ``TProtocol`` reads and writes
/// through. Writes are buffered until ``flush()``.
public protocol TTransport: AnyObject {
    /// Fills `buffer` completely.
    /// - Throws: ``TTransportError`` (`endOfFile` when the peer closed first, `timedOut`), a
    ///   frame error for framed transports; `GreenletExit` or `Timeout` from the waiting greenlet.
    func readExactly(into buffer: UnsafeMutableRawBufferPointer) throws
    /// Buffers `bytes` for the next ``flush()``.
    func write(_ bytes: UnsafeRawBufferPointer) throws
    /// Sends what was written.
    /// - Throws: ``TTransportError``, the socket's `SystemError`.
    func flush() throws
    /// The largest string, binary or container size a protocol accepts from this transport
    /// (for a framed transport, its maximum frame size).
    var maxMessageSize: Int { get }
}

extension TTransport {
    /// Reads exactly `size` bytes.
    /// - Throws: What ``readExactly(into:)`` throws.
    public func readAll(size: Int) throws -> Data {
        var data = Data(count: size)
        try data.withUnsafeMutableBytes { try readExactly(into: $0) }
        return data
    }

    /// Buffers `data` for the next ``flush()``.
    public func write(data: Data) throws {
        try data.withUnsafeBytes { try write($0) }
    }
}
