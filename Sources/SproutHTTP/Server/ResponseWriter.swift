import Glibc
import HTTPTypes
import Sprout
import SproutTLS

/// Frames and writes a response (RFC 9112 §6): the head and a small body in one `send`.
///
/// The ladder: HEAD, 1xx, 204 and 304 carry no body; a known length is sent as
/// `Content-Length`; a stream of unknown length is chunked for HTTP/1.1 and close-delimited
/// for HTTP/1.0. Framing fields from the handler are replaced.
enum ResponseWriter {
    /// Bodies up to this size are copied behind the head and sent with it.
    static let inlineBodyLimit = 16 * 1024

    /// Writes `response`; returns the body bytes sent. Sets `keepAlive` false when the
    /// connection cannot carry another request (close-delimited or short stream, handler asked).
    static func write(_ response: Response, on connection: HTTPConnection, isHead: Bool, minorVersion: Int,
                      keepAlive: inout Bool) throws -> Int {
        let socket = connection.transport
        socket.timeout = connection.configuration.writeTimeout
        var out = try OutputBuffer(pool: connection.pool)
        var ownsOut = true
        defer { if ownsOut { out.release(to: connection.pool) } }
        let code = response.head.status.code
        let bodyForbidden = code == 204 || code == 304 || code < 200
        let sendsBody = !isHead && !bodyForbidden

        StatusLine.append(response.head.status, to: &out)
        var declaredLength: Int?
        for field in response.head.headerFields {
            switch field.name {
            case .contentLength:
                declaredLength = Int(field.value)
                continue
            case .transferEncoding, .date:
                continue
            case .connection:
                if field.value.lowercased().contains("close") { keepAlive = false }
                continue
            default:
                out.append(field.name.rawName)
                out.append(": ")
                field.withUnsafeBytesOfValue { out.append(UnsafeRawBufferPointer($0)) }
                out.append("\r\n")
            }
        }
        connection.server.dateCache.withLine { out.append($0) }

        var chunked = false
        var length: Int?
        switch response.body {
        case .empty: length = 0
        case .bytes(let bytes): length = bytes.count
        case .string(let text): length = text.utf8.count
        case .stream(let streamLength, _): length = streamLength ?? declaredLength
        }
        if !bodyForbidden {
            if let length {
                out.append("Content-Length: ")
                out.appendDecimal(length)
                out.append("\r\n")
            } else if minorVersion == 1 {
                out.append("Transfer-Encoding: chunked\r\n")
                chunked = true
            } else if sendsBody {
                keepAlive = false  // close-delimited
            }
        }
        if !keepAlive {
            out.append("Connection: close\r\n")
        } else if minorVersion == 0 {
            out.append("Connection: keep-alive\r\n")
        }
        out.append("\r\n")
        let headCount = out.count

        guard sendsBody else {
            try socket.sendAll(out.bytes)
            connection.sentTotal &+= headCount
            return 0
        }
        switch response.body {
        case .empty:
            try socket.sendAll(out.bytes)
            connection.sentTotal &+= headCount
            return 0
        case .bytes(let bytes):
            try bytes.withUnsafeBytes { try sendHeadAndBody(&out, $0, socket) }
            connection.sentTotal &+= headCount &+ bytes.count
            return bytes.count
        case .string(var text):
            try text.withUTF8 { try sendHeadAndBody(&out, UnsafeRawBufferPointer($0), socket) }
            connection.sentTotal &+= headCount &+ (length ?? 0)
            return length ?? 0
        case .stream(_, let produce):
            let writer = ResponseBodyWriter(socket: socket, head: out, chunked: chunked, declaredLength: length)
            ownsOut = false  // the writer owns the head's buffer now
            defer {
                writer.releaseBuffer(to: connection.pool)
                connection.sentTotal &+= (writer.headSent ? headCount : 0) &+ writer.bytesWritten
            }
            do {
                try produce(writer)
                try writer.finish()
            } catch {
                keepAlive = false
                if error is GreenletExit || error is SystemError { throw error }
                connection.server.logger.error("response stream failed", metadata: ["error": "\(error)"])
                // Nothing sent yet: the failure can still be answered properly.
                guard writer.headSent else {
                    return try write(HTTPError(.internalServerError).response, on: connection, isHead: false,
                                     minorVersion: minorVersion, keepAlive: &keepAlive)
                }
                return writer.bytesWritten
            }
            if !writer.isLengthSatisfied { keepAlive = false }
            return writer.bytesWritten
        }
    }

    @inline(__always)
    private static func sendHeadAndBody(_ out: inout OutputBuffer, _ body: UnsafeRawBufferPointer, _ socket: NetworkStream) throws {
        if body.count <= inlineBodyLimit {
            out.append(body)
            try socket.sendAll(out.bytes)
        } else {
            try socket.sendAll(out.bytes)
            try socket.sendAll(body)
        }
    }
}

/// Writes a streamed response body: each ``write(_:)`` goes out at once (as one chunk when
/// the body is chunked), the head with the first one.
///
/// Handed to a ``ResponseBody/stream(length:_:)`` closure; valid only while it runs.
public final class ResponseBodyWriter {
    private let socket: NetworkStream
    private var out: OutputBuffer
    private let chunked: Bool
    private let declaredLength: Int?
    private var released = false
    /// True once the head has gone out.
    public private(set) var headSent = false
    /// Body bytes written so far (chunk framing excluded).
    public private(set) var bytesWritten = 0

    init(socket: NetworkStream, head: OutputBuffer, chunked: Bool, declaredLength: Int?) {
        self.socket = socket
        out = head
        self.chunked = chunked
        self.declaredLength = declaredLength
    }

    var isLengthSatisfied: Bool { declaredLength.map { $0 == bytesWritten } ?? true }

    /// Writes `bytes` to the client now.
    ///
    /// - Throws: ``ResponseBodyWriter/LengthExceeded`` past a declared length; ``SystemError``
    ///   if the client has gone (`EPIPE`, `ECONNRESET`) or stopped reading for longer than the
    ///   write timeout (`ETIMEDOUT`); `GreenletExit` or an enclosing `Timeout`.
    /// - Note: A switch point when the client's window is full.
    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard bytes.count > 0 else { return }
        if let declaredLength, bytesWritten + bytes.count > declaredLength {
            throw LengthExceeded(declaredLength: declaredLength)
        }
        if chunked {
            out.appendHex(bytes.count)
            out.append("\r\n")
        }
        if out.count + bytes.count <= ResponseWriter.inlineBodyLimit {
            out.append(bytes)
            if chunked { out.append("\r\n") }
            try flush()
        } else {
            try flush()
            try socket.sendAll(bytes)
            if chunked { out.append("\r\n") }
        }
        bytesWritten += bytes.count
    }

    /// Writes `bytes`; see ``write(_:)-(UnsafeRawBufferPointer)``.
    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    /// Writes `text`, UTF-8 encoded; see ``write(_:)-(UnsafeRawBufferPointer)``.
    public func write(_ text: String) throws {
        var text = text
        try text.withUTF8 { try write(UnsafeRawBufferPointer($0)) }
    }

    /// Writing past a declared `Content-Length`.
    public struct LengthExceeded: Error, CustomStringConvertible {
        /// The length the response declared.
        public let declaredLength: Int
        public var description: String { "response body longer than its Content-Length \(declaredLength)" }
    }

    private func flush() throws {
        guard out.count > 0 else { return }
        try socket.sendAll(out.bytes)
        out.removeAll()
        headSent = true
    }

    func finish() throws {
        if chunked { out.append("0\r\n\r\n") }
        try flush()
    }

    func releaseBuffer(to pool: BufferPool) {
        guard !released else { return }
        released = true
        out.release(to: pool)
    }
}
