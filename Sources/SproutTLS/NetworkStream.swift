import Glibc
public import Sprout

/// The byte stream under a protocol connection, server or client: a plain ``Socket``, or TLS
/// on it. What HTTP, Redis and every later client read and write through.
///
/// A struct of two references with one branch per call, so that plain TCP pays nothing for
/// TLS being possible (no existential, no allocation). Used by one greenlet at a time.
public struct NetworkStream {
    /// The TCP socket (closing it ends the stream; TLS then fails with `EBADF`).
    public let socket: Socket
    /// TLS on ``socket``, once its handshake is done; nil for plain TCP.
    public private(set) var tls: TLSSocket?

    /// A stream over `socket`, secured by `tls` when given (its handshake done).
    public init(socket: Socket, tls: TLSSocket? = nil) {
        self.socket = socket
        self.tls = tls
    }

    /// Bounds each read and each write (`ETIMEDOUT`).
    public var timeout: Duration? {
        get { socket.timeout }
        nonmutating set { socket.timeout = newValue }
    }

    /// True once closed.
    public var isClosed: Bool { socket.isClosed }

    /// Runs the server side of a TLS handshake on the socket.
    /// - Throws: as ``TLSSocket/init(serverOn:context:)``.
    public mutating func acceptTLS(_ context: TLSContext) throws {
        tls = try TLSSocket(serverOn: socket, context: context)
    }

    /// Receives into `buffer`; 0 at end of stream.
    /// - Throws: as ``Socket/recv(into:)`` and ``TLSSocket/recv(into:)``.
    @inlinable
    public func recv(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        if let tls { return try tls.recv(into: buffer) }
        return try socket.recv(into: buffer)
    }

    /// What arrives without waiting: a count (0 at end of stream), or nil when nothing has.
    /// - Throws: as ``recv(into:)``.
    public func tryRecv(into buffer: UnsafeMutableRawBufferPointer) throws -> Int? {
        guard let tls else { return try socket.tryRecv(into: buffer) }
        let saved = socket.timeout
        socket.timeout = .zero
        defer { socket.timeout = saved }
        do {
            return try tls.recv(into: buffer)
        } catch let error as SystemError where error.errno == ETIMEDOUT {
            return nil
        }
    }

    /// Waits until a read would not park. False if `timeout` passed first.
    /// - Throws: as ``Socket/wait(readable:writable:timeout:)``.
    public func waitReadable(timeout: Duration?) throws -> Bool {
        if let tls { return try tls.waitReadable(timeout: timeout) }
        return try socket.wait(readable: true, timeout: timeout)
    }

    /// Sends all of `buffer`.
    /// - Throws: as ``Socket/sendAll(_:)-(UnsafeRawBufferPointer)`` and ``TLSSocket/sendAll(_:)-(UnsafeRawBufferPointer)``.
    @inlinable
    public func sendAll(_ buffer: UnsafeRawBufferPointer) throws {
        if let tls { return try tls.sendAll(buffer) }
        try socket.sendAll(buffer)
    }

    /// Sends all of `bytes`.
    public func sendAll(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try sendAll($0) }
    }

    /// Sends `text` in UTF-8.
    public func sendAll(_ text: String) throws {
        var text = text
        try text.withUTF8 { try sendAll(UnsafeRawBufferPointer($0)) }
    }

    /// Ends the write side: TLS close_notify (if it goes out at once), then a TCP half-close.
    /// - Throws: ``SystemError`` (`ENOTCONN`, `EBADF`).
    public func shutdownWrite() throws {
        if let tls, !tls.isClosed { try? tls.sendCloseNotify() }
        try socket.shutdown(.write)
    }

    /// Closes TLS and the socket.
    public func close() {
        if let tls { tls.close() } else { socket.close() }
    }
}
