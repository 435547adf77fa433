import COpenSSL
import CSproutTLS
import Glibc
public import Sprout

/// TLS over a green ``Socket``: the handshake and every read and write park only the calling
/// greenlet (`SSL_ERROR_WANT_READ`/`WANT_WRITE` wait on the descriptor), so one hub serves
/// thousands of TLS connections.
///
/// ```swift
/// let context = try TLSContext(configuration: .client())
/// let tls = try TLSSocket.connect(host: "example.com", port: 443, context: context)
/// defer { tls.close() }
/// try tls.sendAll(Array("GET / HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n".utf8))
/// let reply = try tls.recv(maxLength: 4096)
/// ```
///
/// The socket's ``Socket/timeout`` bounds each read and write as it does for plain sockets
/// (`ETIMEDOUT`). Like a socket, a `TLSSocket` is used by one greenlet at a time; it owns its
/// socket and closes it in ``close()``.
public final class TLSSocket {
    /// The TCP socket underneath.
    public let socket: Socket
    private let context: TLSContext
    private var ssl: OpaquePointer?
    private var sentCloseNotify = false
    /// The ALPN protocol both sides agreed on, if any.
    public private(set) var negotiatedProtocol: String?
    /// True once a read met the peer's TCP close without its TLS close_notify first. Reads
    /// then return end of stream; a protocol whose message ends at the close (an HTTP body
    /// without length) must treat the message as possibly truncated by an attacker.
    public private(set) var endedWithoutCloseNotify = false

    /// The longest each read or write waits (the socket's timeout).
    public var timeout: Duration? {
        get { socket.timeout }
        set { socket.timeout = newValue }
    }

    /// True once ``close()`` ran (or the socket was closed).
    public var isClosed: Bool { ssl == nil || socket.isClosed }

    /// Connects to `host:port` and runs the client handshake.
    ///
    /// - Parameters:
    ///   - serverName: The name sent as SNI and checked against the certificate; `host` by
    ///     default (an IP address is checked against the certificate's addresses, no SNI).
    ///   - timeout: For the TCP connect; the handshake has the context's handshake timeout.
    /// - Throws: ``ConnectError`` or ``SystemError`` from the connect; ``TLSError`` from the
    ///   handshake (``TLSError/Kind/certificateRefused`` with the reason); `GreenletExit` or
    ///   an enclosing `Timeout`.
    public static func connect(host: String, port: Int, context: TLSContext, serverName: String? = nil,
                               timeout: Duration? = nil) throws -> TLSSocket {
        let socket = try Socket.connect(host: host, port: port, timeout: timeout)
        do {
            return try TLSSocket(clientOn: socket, context: context, serverName: serverName ?? host)
        } catch {
            socket.close()
            throw error
        }
    }

    /// Runs the client handshake on a connected socket.
    ///
    /// - Parameters:
    ///   - serverName: SNI and the name the certificate must carry; nil sends no SNI and checks
    ///     no name (only with ``TLSConfiguration/CertificateVerification/none`` does that make
    ///     sense).
    ///   - handshakeTimeout: Overrides the context's handshake timeout for this connection.
    /// - Throws: ``TLSError``; `GreenletExit` or an enclosing `Timeout`. The socket is left
    ///   open on failure; the caller closes it.
    public init(clientOn socket: Socket, context: TLSContext, serverName: String?, handshakeTimeout: Duration? = nil) throws {
        precondition(context.configuration.side == .client, "TLSSocket(clientOn:) needs a client context")
        self.socket = socket
        self.context = context
        ssl = try makeSSL()
        if let serverName {
            let isAddress = (try? SocketAddress(ip: serverName, port: 0)) != nil
            let verifies = context.configuration.certificateVerification == .full
            guard sprout_tls_set_peer_name(ssl, serverName, isAddress ? 1 : 0, 1) == 1 || !verifies else {
                throw TLSError(.configuration, "cannot use \(serverName) as the server's name: \(takeOpenSSLError() ?? "unknown")")
            }
            _ = takeOpenSSLError()
        }
        SSL_set_connect_state(ssl)
        try handshake(limit: handshakeTimeout ?? context.configuration.handshakeTimeout)
    }

    /// Runs the server handshake on an accepted socket.
    ///
    /// - Throws: ``TLSError`` (a client that does not speak TLS, has no shared version, or is
    ///   too slow: ``TLSError/Kind/handshakeTimedOut``); `GreenletExit`. The socket is left
    ///   open on failure; the caller closes it.
    public init(serverOn socket: Socket, context: TLSContext) throws {
        precondition(context.configuration.side == .server, "TLSSocket(serverOn:) needs a server context")
        self.socket = socket
        self.context = context
        ssl = try makeSSL()
        SSL_set_accept_state(ssl)
        try handshake(limit: context.configuration.handshakeTimeout)
    }

    deinit {
        if let ssl { SSL_free(ssl) }
    }

    private func makeSSL() throws -> OpaquePointer {
        guard !socket.isClosed, let ssl = sprout_tls_new(context.pointer, socket.fileDescriptor) else {
            throw TLSError(.configuration, "SSL_new failed: \(takeOpenSSLError() ?? "closed socket")")
        }
        return ssl
    }

    // MARK: Handshake

    private func handshake(limit: Duration) throws {
        let deadline = ContinuousClock.now + limit
        while true {
            let ssl = try open("handshake")
            // The error queue is per thread, shared by every greenlet of the hub.
            ERR_clear_error()
            let result = SSL_do_handshake(ssl)
            if result == 1 { break }
            let error = SSL_get_error(ssl, result)
            let readable: Bool
            switch error {
            case SSL_ERROR_WANT_READ: readable = true
            case SSL_ERROR_WANT_WRITE: readable = false
            default: throw handshakeFailure(ssl, error)
            }
            let remaining = deadline - .now
            guard remaining > .zero,
                  try socket.wait(readable: readable, writable: !readable, timeout: remaining) else {
                throw TLSError(.handshakeTimedOut, "no complete handshake within \(limit)")
            }
        }
        var name: UnsafePointer<UInt8>?
        var length: UInt32 = 0
        SSL_get0_alpn_selected(ssl, &name, &length)
        if let name, length > 0 {
            negotiatedProtocol = String(decoding: UnsafeBufferPointer(start: name, count: Int(length)), as: UTF8.self)
        }
    }

    private func handshakeFailure(_ ssl: OpaquePointer, _ error: Int32) -> any Error {
        let queued = takeOpenSSLError()
        if sprout_tls_saw_eof(ssl) == 1 && SSL_get_verify_result(ssl) == X509_V_OK {
            return TLSError(.handshakeFailed, "the peer closed the connection during the handshake")
        }
        let verification = SSL_get_verify_result(ssl)
        if verification != X509_V_OK {
            let reason = String(cString: X509_verify_cert_error_string(verification))
            return TLSError(.certificateRefused, reason)
        }
        if error == SSL_ERROR_SYSCALL || queued == nil {
            let code = sprout_tls_last_errno(ssl)
            if code != 0 && code != EAGAIN { return SystemError(errno: code, operation: "TLS handshake") }
            return TLSError(.handshakeFailed, "the peer closed the connection during the handshake")
        }
        return TLSError(.handshakeFailed, queued ?? "error \(error)")
    }

    // MARK: Reading and writing

    /// Receives decrypted bytes into `buffer`.
    ///
    /// - Returns: The number of bytes written to `buffer`; 0 at end of stream (the peer's
    ///   close_notify, or its TCP close).
    /// - Throws: ``SystemError`` (`ECONNRESET`, `ETIMEDOUT` after ``timeout``, `EBADF` once
    ///   closed); ``TLSError`` for a broken record or an alert; `GreenletExit` or an
    ///   enclosing `Timeout`.
    /// - Note: A switch point when nothing is buffered.
    public func recv(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard buffer.count > 0 else { return 0 }
        var deadline: ContinuousClock.Instant?
        // The last read left the kernel's buffer empty and OpenSSL holds nothing: a read now
        // would be a certain EAGAIN, so park first.
        if socket.isDrained && !hasBufferedInput {
            try park(readable: true, "recv", deadline: &deadline, afterEAGAIN: true)
        }
        while true {
            let ssl = try open("recv")
            let count = SSL_read(ssl, buffer.baseAddress, Int32(clamping: buffer.count))
            if sprout_tls_take_short_read(ssl) == 1 { socket.markDrained() }
            if count > 0 { return Int(count) }
            let error = SSL_get_error(ssl, count)
            switch error {
            case SSL_ERROR_ZERO_RETURN:
                return 0
            case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
                try park(readable: error == SSL_ERROR_WANT_READ, "recv", deadline: &deadline,
                         afterEAGAIN: error == SSL_ERROR_WANT_READ)
            default:
                if sprout_tls_saw_eof(ssl) == 1 {
                    // TCP closed without close_notify ("unexpected eof while reading").
                    _ = takeOpenSSLError()
                    endedWithoutCloseNotify = true
                    return 0
                }
                throw ioFailure(ssl, error, "recv")
            }
        }
    }

    /// Receives up to `maxLength` decrypted bytes; empty at end of stream.
    /// - Throws: as ``recv(into:)``.
    public func recv(maxLength: Int) throws -> [UInt8] {
        precondition(maxLength > 0, "recv: maxLength must be positive")
        var bytes = [UInt8](repeating: 0, count: maxLength)
        let count = try bytes.withUnsafeMutableBytes { try recv(into: $0) }
        bytes.removeLast(maxLength - count)
        return bytes
    }

    /// Encrypts and sends all of `buffer`.
    ///
    /// - Throws: ``SystemError`` (`EPIPE`, `ECONNRESET`, `ETIMEDOUT`, `EBADF`), ``TLSError``;
    ///   `GreenletExit` or an enclosing `Timeout`. After an error the connection is unusable.
    /// - Note: A switch point when the send buffer fills.
    public func sendAll(_ buffer: UnsafeRawBufferPointer) throws {
        var offset = 0
        var deadline: ContinuousClock.Instant?
        while offset < buffer.count {
            let ssl = try open("send")
            let count = SSL_write(ssl, buffer.baseAddress! + offset, Int32(clamping: buffer.count - offset))
            if count > 0 {
                offset += Int(count)
                continue
            }
            let error = SSL_get_error(ssl, count)
            switch error {
            case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
                try park(readable: error == SSL_ERROR_WANT_READ, "send", deadline: &deadline)
            default:
                throw ioFailure(ssl, error, "send")
            }
        }
    }

    /// Encrypts and sends all of `bytes`; see ``sendAll(_:)-(UnsafeRawBufferPointer)``.
    public func sendAll(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try sendAll($0) }
    }

    /// True when decrypted bytes wait inside OpenSSL: a read returns them without touching
    /// the socket (wait on the socket only when this is false).
    public var hasBufferedInput: Bool {
        guard let ssl else { return false }
        return SSL_has_pending(ssl) == 1
    }

    /// Waits until a read would not park (bytes buffered or the socket readable).
    /// - Returns: False if `timeout` passed first.
    /// - Throws: as ``Socket/wait(readable:writable:timeout:)``.
    public func waitReadable(timeout: Duration?) throws -> Bool {
        if hasBufferedInput { return true }
        return try socket.wait(readable: true, timeout: timeout)
    }

    /// Parks until the socket is ready. `afterEAGAIN`: the BIO has just seen the socket empty,
    /// so no readiness poll is needed first.
    private func park(readable: Bool, _ operation: String, deadline: inout ContinuousClock.Instant?,
                      afterEAGAIN: Bool = false) throws {
        var remaining: Duration?
        if let timeout = socket.timeout {
            if deadline == nil { deadline = .now + timeout }
            remaining = deadline! - .now
            guard remaining! > .zero else { throw SystemError(errno: ETIMEDOUT, operation: operation) }
        }
        let ready = afterEAGAIN ? try socket.waitReadableAfterEAGAIN(timeout: remaining)
            : try socket.wait(readable: readable, writable: !readable, timeout: remaining)
        guard ready else { throw SystemError(errno: ETIMEDOUT, operation: operation) }
    }

    private func ioFailure(_ ssl: OpaquePointer, _ error: Int32, _ operation: String) -> any Error {
        let queued = takeOpenSSLError()
        if error == SSL_ERROR_SYSCALL || queued == nil {
            let code = sprout_tls_last_errno(ssl)
            return SystemError(errno: code == 0 || code == EAGAIN ? ECONNRESET : code, operation: operation)
        }
        return TLSError(.protocolError, queued ?? "error \(error)")
    }

    /// The SSL object, or EBADF once closed: the descriptor number may already belong to
    /// another connection, so OpenSSL must never touch it again.
    @inline(__always)
    private func open(_ operation: String) throws -> OpaquePointer {
        guard let ssl, !socket.isClosed else { throw SystemError(errno: EBADF, operation: operation) }
        return ssl
    }

    // MARK: Closing

    /// Sends TLS's close_notify alert (the peer reads end of stream), if the socket takes it at
    /// once: never waits. Reading stays possible.
    /// - Throws: ``SystemError`` (`EBADF`) once closed.
    public func sendCloseNotify() throws {
        let ssl = try open("shutdown")
        guard !sentCloseNotify, SSL_is_init_finished(ssl) == 1 else { return }
        sentCloseNotify = true
        _ = SSL_shutdown(ssl)
        _ = takeOpenSSLError()
    }

    /// Sends close_notify if the socket takes it at once (never waits), frees the TLS state
    /// and closes the socket. Safe to call more than once.
    public func close() {
        if let ssl {
            if !socket.isClosed && !sentCloseNotify && SSL_is_init_finished(ssl) == 1 {
                _ = SSL_shutdown(ssl)
            }
            _ = takeOpenSSLError()
            SSL_free(ssl)
            self.ssl = nil
        }
        socket.close()
    }
}
