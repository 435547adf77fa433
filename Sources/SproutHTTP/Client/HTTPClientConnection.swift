import Glibc
import HTTPTypes
import Sprout
import SproutTLS

/// One kept-alive connection of an ``HTTPClient``'s pool: its transport, its unread input, and
/// the timeouts of the request it carries now. Used by one greenlet at a time (the pool's rule).
final class HTTPClientConnection {
    /// Where this connection goes; it connects on its first request.
    let url: ClientURL
    /// Set once connected.
    @exclusivity(unchecked) var transport: NetworkStream!
    @exclusivity(unchecked) var input = ReadBuffer()
    let buffers: BufferPool
    /// False once the connection cannot carry another request.
    @exclusivity(unchecked) var isReusable = true
    /// Responses completed on this connection.
    @exclusivity(unchecked) var exchanges = 0
    /// Whether a byte of the current response has arrived (a reused connection that fails
    /// before one did was closed by the server while idle: a stale connection).
    @exclusivity(unchecked) var receivedResponseBytes = false

    @exclusivity(unchecked) var readTimeout: Duration = .seconds(30)
    @exclusivity(unchecked) var deadline: ContinuousClock.Instant?

    init(url: ClientURL, buffers: BufferPool) {
        self.url = url
        self.buffers = buffers
    }

    var isConnected: Bool { transport != nil }

    /// Connects to the origin: TCP, then TLS for https, all within `connectTimeout` (and the
    /// request's deadline).
    func connect(connectTimeout: Duration, tls: TLSContext?) throws {
        transport = try Self.open(to: url, connectTimeout: connectTimeout, deadline: deadline, tls: tls)
    }

    private static func open(to url: ClientURL, connectTimeout: Duration, deadline: ContinuousClock.Instant?,
                             tls: TLSContext?) throws -> NetworkStream {
        var timeout = connectTimeout
        if let deadline {
            let remaining = deadline - .now
            guard remaining > .zero else { throw HTTPClientError(.deadlineExceeded, "deadline passed before connecting to \(url.origin)") }
            timeout = min(timeout, remaining)
        }
        let started = ContinuousClock.now
        let socket: Socket
        do {
            socket = try Socket.connect(host: url.host, port: url.port, timeout: timeout)
        } catch let error as SystemError where error.errno == ETIMEDOUT {
            throw timedOutConnecting(url, timeout, deadline)
        } catch let error as ConnectError where error.failures.contains(where: { ($0.error as? SystemError)?.errno == ETIMEDOUT }) {
            throw timedOutConnecting(url, timeout, deadline)
        }
        try? socket.setNoDelay(true)
        // A response never comes back at once after its request: after a short read the next
        // read parks without the certain EAGAIN (a peer sending urgent data delays only itself).
        socket.shortReadsDrain = true
        guard let tls else { return NetworkStream(socket: socket) }
        do {
            // The handshake shares the connect timeout.
            let left = timeout - (ContinuousClock.now - started)
            guard left > .zero else { throw timedOutConnecting(url, timeout, deadline) }
            let secured = try TLSSocket(clientOn: socket, context: tls, serverName: url.host, handshakeTimeout: left)
            return NetworkStream(socket: socket, tls: secured)
        } catch let error as TLSError where error.kind == .handshakeTimedOut {
            socket.close()
            throw timedOutConnecting(url, timeout, deadline)
        } catch {
            socket.close()
            throw error
        }
    }

    private static func timedOutConnecting(_ url: ClientURL, _ timeout: Duration, _ deadline: ContinuousClock.Instant?) -> HTTPClientError {
        if let deadline, ContinuousClock.now >= deadline {
            return HTTPClientError(.deadlineExceeded, "the request's deadline passed while connecting to \(url.origin)")
        }
        return HTTPClientError(.connectTimedOut, "no connection to \(url.origin) within \(timeout)")
    }

    func close() {
        input.release(to: buffers)
        transport?.close()
    }

    /// True if the server has sent something (or closed) while the connection sat idle: such
    /// a connection is not used again. One `poll`, no read.
    var hasUnexpectedInput: Bool {
        guard let transport else { return false }
        if input.count > 0 || transport.tls?.hasBufferedInput == true { return true }
        var descriptor = pollfd(fd: transport.socket.fileDescriptor, events: Int16(POLLIN), revents: 0)
        return poll(&descriptor, 1, 0) != 0
    }

    // MARK: Timeouts

    /// Sets the transport's timeout for the next read or write: the read timeout, or what is
    /// left of the deadline if that is sooner.
    private func armTimeout() throws {
        var timeout = readTimeout
        if let deadline {
            let remaining = deadline - .now
            guard remaining > .zero else { throw HTTPClientError(.deadlineExceeded, "the request's deadline passed") }
            timeout = min(timeout, remaining)
        }
        transport.timeout = timeout
    }

    private func timeoutError(_ operation: String) -> HTTPClientError {
        if let deadline, ContinuousClock.now >= deadline {
            return HTTPClientError(.deadlineExceeded, "the request's deadline passed while \(operation)")
        }
        return HTTPClientError(.readTimedOut, "nothing \(operation == "sending the request" ? "sent" : "received") for \(readTimeout) while \(operation)")
    }

    // MARK: Writing

    func write(_ buffer: UnsafeRawBufferPointer) throws {
        try armTimeout()
        do {
            try transport.sendAll(buffer)
        } catch let error as SystemError where error.errno == ETIMEDOUT {
            throw timeoutError("sending the request")
        }
    }

    func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    // MARK: Reading

    /// Receives more bytes into `input`. False at end of stream.
    func receiveMore() throws -> Bool {
        guard let space = try input.receiveSpace(limit: 64 * 1024 + 1, pool: buffers) else {
            throw HTTPClientError.malformed("a response head larger than 64 KiB")
        }
        try armTimeout()
        let count: Int
        do {
            count = try transport.recv(into: space)
        } catch let error as SystemError where error.errno == ETIMEDOUT {
            throw timeoutError("waiting for the response")
        }
        if count > 0 { receivedResponseBytes = true }
        input.didReceive(count)
        return count > 0
    }

    /// Copies buffered body bytes into `buffer`, or receives directly into it. 0 at end of stream.
    func readBody(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        if input.count > 0 {
            let count = min(buffer.count, input.count)
            memcpy(buffer.baseAddress!, input.readable.baseAddress!, count)
            input.consume(count)
            return count
        }
        try armTimeout()
        do {
            return try transport.recv(into: buffer)
        } catch let error as SystemError where error.errno == ETIMEDOUT {
            throw timeoutError("reading the response body")
        }
    }

    /// Reads the final response head, skipping interim (1xx) responses.
    func readHead(method: HTTPRequest.Method) throws -> ParsedResponseHead {
        var scanner = HeadScanner()
        let limits = HeadLimits(maxRequestLineLength: 8192, maxHeadLength: 64 * 1024, maxFieldCount: 200)
        while true {
            let length: Int
            do {
                length = try scanHead(&scanner, limits)
            } catch let error as HTTPParseError {
                throw HTTPClientError.malformed(error.statusCode == 431 ? "response head too large" : error.reason)
            }
            let head = try ResponseHeadParser.parse(UnsafeRawBufferPointer(rebasing: input.readable[..<length]),
                                                    requestMethod: method)
            input.consume(length)
            let code = head.status.code
            if code >= 200 { return head }
            if code == 101 { throw HTTPClientError.malformed("101 Switching Protocols without an Upgrade request") }
            scanner.reset()
        }
    }

    private func scanHead(_ scanner: inout HeadScanner, _ limits: HeadLimits) throws -> Int {
        while true {
            if input.count > 0 {
                switch try scanner.scan(input.readable, limits: limits) {
                case .complete(let length): return length
                case .leadingEmptyLine: throw HTTPClientError.malformed("an empty line before the status line")
                case .needMore: break
                }
            }
            guard try receiveMore() else {
                throw HTTPClientError(.connectionClosed, input.count == 0 && !receivedResponseBytes
                    ? "the server closed the connection without responding"
                    : "the server closed the connection in the middle of the response head")
            }
        }
    }
}
