import Glibc
import Sprout
import SproutTLS

/// The byte stream under an HTTP connection, server or client: a plain socket, or TLS on it.
///
/// A struct of two references with one branch per call, so that plain HTTP pays nothing for
/// TLS being possible (no existential, no allocation).
struct Transport {
    /// The TCP socket (closed by the server to evict a connection; TLS then fails with EBADF).
    let socket: Socket
    /// TLS on ``socket``, once its handshake is done.
    private(set) var tls: TLSSocket?

    init(socket: Socket, tls: TLSSocket? = nil) {
        self.socket = socket
        self.tls = tls
    }

    /// Bounds each read and each write (ETIMEDOUT).
    var timeout: Duration? {
        get { socket.timeout }
        nonmutating set { socket.timeout = newValue }
    }

    var isClosed: Bool { socket.isClosed }

    /// Runs the server side of a TLS handshake on the socket.
    mutating func acceptTLS(_ context: TLSContext) throws {
        tls = try TLSSocket(serverOn: socket, context: context)
    }

    @inline(__always)
    func recv(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        if let tls { return try tls.recv(into: buffer) }
        return try socket.recv(into: buffer)
    }

    /// What arrives without waiting: a count (0 at end of stream), or nil when nothing has.
    func tryRecv(into buffer: UnsafeMutableRawBufferPointer) throws -> Int? {
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
    func waitReadable(timeout: Duration?) throws -> Bool {
        if let tls { return try tls.waitReadable(timeout: timeout) }
        return try socket.wait(readable: true, timeout: timeout)
    }

    @inline(__always)
    func sendAll(_ buffer: UnsafeRawBufferPointer) throws {
        if let tls { return try tls.sendAll(buffer) }
        try socket.sendAll(buffer)
    }

    func sendAll(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try sendAll($0) }
    }

    func sendAll(_ text: String) throws {
        var text = text
        try text.withUTF8 { try sendAll(UnsafeRawBufferPointer($0)) }
    }

    /// Ends the write side: TLS close_notify (if it goes out at once), then a TCP half-close.
    func shutdownWrite() throws {
        if let tls, !tls.isClosed { try? tls.sendCloseNotify() }
        try socket.shutdown(.write)
    }

    func close() {
        if let tls { tls.close() } else { socket.close() }
    }
}
