public import Sprout

/// Thrift's framed transport: every message travels as a 4-byte big-endian length and that
/// many bytes. It is what non-blocking servers speak (Python's `TNonblockingServer`, Finagle,
/// C++'s `TNonblockingServer`).
///
/// A frame longer than ``maxFrameSize``, or of length zero or negative, is refused with a
/// ``TTransportError`` before any of it is read, so a hostile length cannot make the reader
/// allocate. A read past the end of a frame (a string whose length runs past it) throws a
/// ``TProtocolError``: the frame was whole, the message in it is malformed.
public final class TFramedTransport: TTransport {
    /// Where frames are read from and written to.
    public let base: TSocketTransport
    /// The longest frame accepted (default 16 MiB, Apache's default).
    public let maxFrameSize: Int
    /// The current frame's bytes (reused from frame to frame; shrunk after a large one).
    @exclusivity(unchecked) private var frame: UnsafeMutableRawPointer
    @exclusivity(unchecked) private var frameCapacity = 4096
    @exclusivity(unchecked) private var frameLength = 0
    @exclusivity(unchecked) private var frameOffset = 0
    /// A new frame may be read: a message starts (after ``flush()`` or ``skipRestOfFrame()``).
    /// Reaching the end of a frame inside a message is a malformed message, never a reason to
    /// read the next one (which belongs to the next message).
    @exclusivity(unchecked) private var messageMayStart = true
    /// The frame being written, after 4 bytes left for its length.
    @exclusivity(unchecked) private var writeBuffer = ByteBuffer(capacity: 4096)

    /// A framed transport over `base`.
    public init(base: TSocketTransport, maxFrameSize: Int = 16 << 20) {
        precondition(maxFrameSize > 0 && maxFrameSize <= Int(Int32.max), "TFramedTransport: maxFrameSize must be in 1...\(Int32.max)")
        self.base = base
        self.maxFrameSize = maxFrameSize
        frame = .allocate(byteCount: frameCapacity, alignment: 16)
        writeBuffer.reserve(4)
    }

    deinit {
        frame.deallocate()
        writeBuffer.deallocate()
    }

    /// A framed transport over a new buffered transport on `socket`.
    public convenience init(socket: Socket, maxFrameSize: Int = 16 << 20) {
        self.init(base: TSocketTransport(socket: socket, maxMessageSize: maxFrameSize), maxFrameSize: maxFrameSize)
    }

    public var maxMessageSize: Int { maxFrameSize }

    /// Bytes of the current frame not read yet.
    public var remainingInFrame: Int { frameLength - frameOffset }

    /// Bytes written and not yet flushed.
    public var pendingWriteCount: Int { writeBuffer.count - 4 }

    /// Forgets what is left of the current frame (a message that did not read it all) and lets
    /// the next read start a new frame: call it before reading each message that does not
    /// follow a ``flush()`` (a server does, before each request).
    public func skipRestOfFrame() {
        frameOffset = frameLength
        messageMayStart = true
    }

    public func readExactly(into buffer: UnsafeMutableRawBufferPointer) throws {
        let wanted = buffer.count
        if frameOffset == frameLength && wanted > 0 {
            guard messageMayStart else {
                throw TProtocolError(error: .invalidData, message: "the message runs past the end of its frame")
            }
            try readFrame()
            messageMayStart = false
        }
        guard wanted <= frameLength - frameOffset else {
            // The frame arrived whole, so the message inside it is what is malformed (a string
            // whose length runs past it): a protocol error, after which the next frame is fine.
            throw TProtocolError(error: .invalidData,
                                 message: "a read of \(wanted) bytes runs past the end of the frame (\(frameLength - frameOffset) left)")
        }
        if wanted == 0 { return }
        buffer.baseAddress!.copyMemory(from: frame + frameOffset, byteCount: wanted)
        frameOffset += wanted
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        writeBuffer.append(bytes)
    }

    /// Sends what was written as one frame.
    /// - Throws: ``TTransportError`` for a frame over ``maxFrameSize``; the socket's errors.
    public func flush() throws {
        let length = writeBuffer.count - 4
        defer {
            writeBuffer.removeAll()
            writeBuffer.reserve(4)
        }
        guard length > 0 else { return }
        guard length <= maxFrameSize else {
            throw TTransportError(error: .sizeLimit(limit: maxFrameSize, got: length), message: "refusing to send it")
        }
        writeBuffer.base.storeBytes(of: UInt32(length).bigEndian, as: UInt32.self)
        try base.write(writeBuffer.bytes)
        try base.flush()
        // What comes back answers what was sent: a new message.
        frameOffset = frameLength
        messageMayStart = true
    }

    /// Drops what was written since the last flush.
    public func discardPendingWrites() {
        writeBuffer.removeAll()
        writeBuffer.reserve(4)
        base.discardPendingWrites()
    }

    private func readFrame() throws {
        var header: UInt32 = 0
        try withUnsafeMutableBytes(of: &header) { try base.readExactly(into: $0) }
        let length = Int(UInt32(bigEndian: header))
        if length == 0 { throw TTransportError(error: .negativeSize, message: "an empty frame") }
        if length > maxFrameSize {
            throw TTransportError(error: .sizeLimit(limit: maxFrameSize, got: length))
        }
        frameOffset = 0
        frameLength = 0
        let wanted = length > 1 << 20 ? length : max(length, 4096)
        if wanted != frameCapacity && (length > frameCapacity || frameCapacity > 1 << 20) {
            frame.deallocate()
            frame = .allocate(byteCount: wanted, alignment: 16)
            frameCapacity = wanted
        }
        do {
            try base.readExactly(into: UnsafeMutableRawBufferPointer(start: frame, count: length))
            frameLength = length
        } catch let error as TTransportError where error.error == .endOfFile {
            throw TTransportError(error: .endOfFile, message: "the connection closed inside a frame of \(length) bytes")
        }
    }
}
