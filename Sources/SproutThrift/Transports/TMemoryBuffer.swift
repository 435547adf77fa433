/// A transport over bytes in memory: for serializing a value to bytes and back (tests,
/// caches, messages on a queue).
public final class TMemoryBuffer: TTransport {
    /// What was written (flushing changes nothing).
    public private(set) var written: [UInt8] = []
    private var input: [UInt8]
    private var offset = 0
    public var maxMessageSize: Int

    /// A buffer that reads `input`.
    public init(input: [UInt8] = [], maxMessageSize: Int = 16 << 20) {
        self.input = input
        self.maxMessageSize = maxMessageSize
    }

    /// Bytes of the input not read yet.
    public var remaining: Int { input.count - offset }

    public func readExactly(into buffer: UnsafeMutableRawBufferPointer) throws {
        guard buffer.count <= input.count - offset else {
            throw TTransportError(error: .endOfFile, message: "a read of \(buffer.count) bytes with \(input.count - offset) left")
        }
        if buffer.count == 0 { return }
        input.withUnsafeBytes { bytes in
            buffer.baseAddress!.copyMemory(from: bytes.baseAddress! + offset, byteCount: buffer.count)
        }
        offset += buffer.count
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        written.append(contentsOf: bytes)
    }

    public func flush() throws {}
}
