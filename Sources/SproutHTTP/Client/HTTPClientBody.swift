import Glibc
import Sprout

/// The body of a request ``HTTPClient`` sends.
///
/// Bytes are sent with `Content-Length`; a stream of unknown length is sent chunked, one chunk
/// per ``HTTPClientBodyWriter/write(_:)-(UnsafeRawBufferPointer)``.
public struct HTTPClientRequestBody {
    enum Storage {
        case none
        case bytes([UInt8])
        case stream(length: Int?, (HTTPClientBodyWriter) throws -> Void)
    }

    let storage: Storage

    /// No body (no `Content-Length` either, except `Content-Length: 0` for POST, PUT and PATCH).
    public static var none: HTTPClientRequestBody { HTTPClientRequestBody(storage: .none) }

    /// These bytes, with `Content-Length`.
    public static func bytes(_ bytes: [UInt8]) -> HTTPClientRequestBody { HTTPClientRequestBody(storage: .bytes(bytes)) }

    /// This text in UTF-8, with `Content-Length`.
    public static func string(_ text: String) -> HTTPClientRequestBody { .bytes(Array(text.utf8)) }

    /// A body written piece by piece by `produce` while the request is sent: chunked when
    /// `length` is nil, else exactly `length` bytes with `Content-Length` (writing a different
    /// number fails the request). A streamed body is never replayed, so a request carrying one
    /// is not retried on a stale kept-alive connection, nor re-sent on a 307/308 redirect.
    public static func stream(length: Int? = nil, _ produce: @escaping (HTTPClientBodyWriter) throws -> Void) -> HTTPClientRequestBody {
        precondition(length.map { $0 >= 0 } ?? true, "HTTPClientRequestBody.stream: length must not be negative")
        return HTTPClientRequestBody(storage: .stream(length: length, produce))
    }

    var isReplayable: Bool {
        if case .stream = storage { return false }
        return true
    }

    var isEmpty: Bool {
        switch storage {
        case .none: true
        case .bytes(let bytes): bytes.isEmpty
        case .stream: false
        }
    }
}

/// Writes a streamed request body (see ``HTTPClientRequestBody/stream(length:_:)``).
/// Valid only inside the body's `produce` closure.
public final class HTTPClientBodyWriter {
    private let connection: HTTPClientConnection
    private let chunked: Bool
    private let declaredLength: Int?
    /// Body bytes written so far.
    public private(set) var bytesWritten = 0

    init(connection: HTTPClientConnection, chunked: Bool, declaredLength: Int?) {
        self.connection = connection
        self.chunked = chunked
        self.declaredLength = declaredLength
    }

    /// Sends `buffer` as the next piece of the body (a chunk, when chunked).
    /// - Throws: ``HTTPClientError`` (timeouts, more bytes than the declared length);
    ///   ``SystemError`` if the connection fails; `GreenletExit` or an enclosing `Timeout`.
    /// - Note: A switch point when the socket's buffer is full.
    public func write(_ buffer: UnsafeRawBufferPointer) throws {
        guard buffer.count > 0 else { return }
        if let declaredLength, bytesWritten + buffer.count > declaredLength {
            throw HTTPClientError(.invalidRequest, "the body stream wrote more than its declared \(declaredLength) bytes")
        }
        if chunked {
            var line = Array(String(buffer.count, radix: 16).utf8)
            line += [0x0D, 0x0A]
            try connection.write(line)
            try connection.write(buffer)
            try connection.write([0x0D, 0x0A])
        } else {
            try connection.write(buffer)
        }
        bytesWritten += buffer.count
    }

    /// Sends `bytes`; see ``write(_:)-(UnsafeRawBufferPointer)``.
    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    /// Sends `text` in UTF-8; see ``write(_:)-(UnsafeRawBufferPointer)``.
    public func write(_ text: String) throws {
        var text = text
        try text.withUTF8 { try write(UnsafeRawBufferPointer($0)) }
    }

    func finish() throws {
        if chunked {
            try connection.write(Array("0\r\n\r\n".utf8))
        } else if let declaredLength, bytesWritten != declaredLength {
            throw HTTPClientError(.invalidRequest, "the body stream wrote \(bytesWritten) of its declared \(declaredLength) bytes")
        }
    }
}

/// The body of a response, read as it arrives (``HTTPClient/withResponse(_:body:_:)``).
///
/// Valid only inside the closure it was passed to. What the closure leaves unread is read and
/// dropped when it returns (up to 256 KiB, so that the connection can be reused), or the
/// connection is closed.
public final class HTTPClientResponseBody {
    private let connection: HTTPClientConnection
    private let framing: ParsedResponseHead.Framing
    @exclusivity(unchecked) private var remaining: Int
    @exclusivity(unchecked) private var decoder = ChunkedDecoder()
    @exclusivity(unchecked) private var gzip: GzipDecoder?
    /// True once the whole body has been read.
    @exclusivity(unchecked) public private(set) var isComplete: Bool
    @exclusivity(unchecked) var isValid = true

    init(connection: HTTPClientConnection, framing: ParsedResponseHead.Framing, gunzip: Bool) {
        self.connection = connection
        self.framing = framing
        if case .length(let length) = framing { remaining = length } else { remaining = 0 }
        isComplete = framing == .none
        gzip = gunzip ? GzipDecoder() : nil
    }

    /// Reads the next bytes of the body into `buffer` (decompressed, when the client
    /// decompresses and the body is gzip).
    ///
    /// - Returns: The count written to `buffer`; 0 once the body is complete.
    /// - Throws: ``HTTPClientError`` (``HTTPClientError/Kind/readTimedOut``,
    ///   ``HTTPClientError/Kind/connectionClosed`` for a body cut short, bad chunked framing as
    ///   ``HTTPClientError/Kind/malformedResponse``, ``HTTPClientError/Kind/decompressionFailed``);
    ///   ``SystemError``, ``TLSError``; `GreenletExit` or an enclosing `Timeout`.
    /// - Note: A switch point when nothing is buffered.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        precondition(isValid, "HTTPClientResponseBody used after its closure returned")
        guard buffer.count > 0 else { return 0 }
        if gzip != nil { return try readDecompressed(into: buffer) }
        return try readRaw(into: buffer)
    }

    /// Reads up to `maxLength` bytes; empty once the body is complete.
    /// - Throws: as ``read(into:)``.
    public func read(maxLength: Int = 65536) throws -> [UInt8] {
        precondition(maxLength > 0, "read: maxLength must be positive")
        var bytes = [UInt8](repeating: 0, count: maxLength)
        let count = try bytes.withUnsafeMutableBytes { try read(into: $0) }
        bytes.removeLast(maxLength - count)
        return bytes
    }

    /// Reads the rest of the body.
    /// - Throws: ``HTTPClientError/Kind/bodyTooLarge`` beyond `limit` bytes; as ``read(into:)``.
    public func readAll(limit: Int) throws -> [UInt8] {
        if case .length(let length) = framing, gzip == nil {
            guard length <= limit else { throw HTTPClientError(.bodyTooLarge, "the body's \(length) bytes exceed the limit of \(limit)") }
        }
        if case .length = framing, gzip == nil, remaining <= 1 << 20 {
            // Straight into the array: one allocation, no copy through a scratch buffer. (Larger
            // bodies grow as they arrive: a declared length alone never reserves much memory.)
            let wanted = remaining
            return try [UInt8](unsafeUninitializedCapacity: wanted) { storage, count in
                while count < wanted {
                    let received = try read(into: UnsafeMutableRawBufferPointer(UnsafeMutableBufferPointer(rebasing: storage[count..<wanted])))
                    guard received > 0 else { break }
                    count += received
                }
            }
        }
        var bytes: [UInt8] = []
        try withUnsafeTemporaryAllocation(byteCount: 16 * 1024, alignment: 16) { chunk in
            while true {
                let count = try read(into: chunk)
                if count == 0 { return }
                guard bytes.count + count <= limit else {
                    throw HTTPClientError(.bodyTooLarge, "the body exceeds the limit of \(limit) bytes")
                }
                bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: chunk[..<count]))
            }
        }
        return bytes
    }

    /// Reads and drops the rest, up to `maxBytes`; true if the body is then complete, false if
    /// it is longer or the connection failed (it is then not reused).
    /// - Throws: `GreenletExit` or an enclosing `Timeout` landing meanwhile.
    func discardRemainder(maxBytes: Int) throws -> Bool {
        if isComplete { return true }
        return try withUnsafeTemporaryAllocation(byteCount: 16 * 1024, alignment: 16) { chunk in
            var dropped = 0
            while dropped <= maxBytes {
                let count: Int
                do {
                    count = try readRaw(into: chunk)
                } catch let error where error is GreenletExit || error is Timeout {
                    throw error   // a kill or a deadline is never swallowed
                } catch {
                    return false
                }
                if count == 0 { return isComplete }
                dropped += count
            }
            return false
        }
    }

    private func readRaw(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        if isComplete { return 0 }
        switch framing {
        case .none:
            return 0
        case .length:
            let count = try connection.readBody(into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<min(buffer.count, remaining)]))
            guard count > 0 else {
                throw HTTPClientError(.connectionClosed, "the connection closed with \(remaining) bytes of the body still to come")
            }
            remaining -= count
            if remaining == 0 { isComplete = true }
            return count
        case .untilClose:
            let count = try connection.readBody(into: buffer)
            if count == 0 {
                // Over TLS the end of such a body must be the server's close_notify: a bare TCP
                // close may be an attacker cutting the body short.
                if connection.transport.tls?.endedWithoutCloseNotify == true {
                    throw HTTPClientError(.connectionClosed,
                                          "the server closed the connection without TLS close_notify: the body (delimited by the close) may be truncated")
                }
                isComplete = true
            }
            return count
        case .chunked:
            while true {
                if connection.input.count > 0 {
                    var consumed = 0
                    let step: ChunkedDecoder.Step
                    do {
                        step = try decoder.decode(connection.input.readable, consumed: &consumed, maxData: buffer.count)
                    } catch {
                        throw HTTPClientError.malformed("chunked body: \(error.reason)")
                    }
                    switch step {
                    case .data(let span):
                        memcpy(buffer.baseAddress!, connection.input.readable.baseAddress! + span.start, span.count)
                        connection.input.consume(consumed)
                        return span.count
                    case .end:
                        connection.input.consume(consumed)
                        isComplete = true
                        return 0
                    case .needMore:
                        connection.input.consume(consumed)
                    }
                }
                guard try connection.receiveMore() else {
                    throw HTTPClientError(.connectionClosed, "the connection closed in the middle of a chunked body")
                }
            }
        }
    }

    private func readDecompressed(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard let gzip else { return 0 }
        while true {
            if !gzip.hasInput {
                let count = try gzip.withInputSpace { try readRaw(into: $0) }
                if count == 0 {
                    if gzip.isFinished { return 0 }
                    throw HTTPClientError(.decompressionFailed, "the gzip body ended before its end of stream")
                }
            }
            // A gzip file may hold several members one after another (RFC 1952 §2.2).
            if gzip.isFinished { try gzip.startNextMember() }
            let produced = try gzip.inflate(into: buffer)
            if produced > 0 { return produced }
        }
    }
}
