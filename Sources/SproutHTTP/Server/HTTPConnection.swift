import Glibc
import HTTPTypes
import Logging
import Sprout
import SproutTLS

/// One client connection: reads requests in order, hands each to the responder, writes its
/// response, and waits for the next one (keep-alive) in the connection's own greenlet.
///
/// While it waits between requests it is on the server's idle list (the oldest idle connection
/// is closed to admit a new one when the server is full), and after a short grace period it
/// gives back its read buffer and the stack pages its last request touched.
final class HTTPConnection {
    /// The socket, or TLS on it once the handshake is done.
    @exclusivity(unchecked) var transport: NetworkStream
    var socket: Socket { transport.socket }
    let peer: SocketAddress
    /// The server outlives every connection it serves (stop joins them), so no reference count.
    unowned(unsafe) let server: HTTPServer
    let configuration: HTTPServer.Configuration
    let pool: BufferPool
    @exclusivity(unchecked) var input = ReadBuffer()
    @exclusivity(unchecked) private var head = ParsedRequestHead()
    @exclusivity(unchecked) private var scanner = HeadScanner()
    @exclusivity(unchecked) private var body: RequestBody!
    @exclusivity(unchecked) private var requestCount = 0
    @exclusivity(unchecked) var greenlet: AnyGreenlet?

    // The server's idle list (oldest first), intrusive so that joining and leaving it is O(1).
    // Unowned: a connection leaves the list before it ends (`run`'s defer), and its greenlet
    // keeps it alive until then; joining and leaving the list costs no reference counting.
    @exclusivity(unchecked) unowned(unsafe) var idlePrevious: HTTPConnection?
    @exclusivity(unchecked) unowned(unsafe) var idleNext: HTTPConnection?
    @exclusivity(unchecked) var isIdle = false
    /// Closed by the server to admit a newer connection; its slot is already counted free.
    @exclusivity(unchecked) var isEvicted = false
    @exclusivity(unchecked) private var drainWoken = false

    // Metrics (read only when the server records them).
    /// The route pattern the router matched for the request being served (its metrics label).
    @exclusivity(unchecked) var routeLabel: String?
    /// Body bytes received straight into a handler's buffer, bypassing `input`.
    @exclusivity(unchecked) private var directlyReceived = 0
    /// Response bytes (heads and bodies) written so far.
    @exclusivity(unchecked) var sentTotal = 0
    @exclusivity(unchecked) private var reportedReceived = 0
    @exclusivity(unchecked) private var reportedSent = 0

    init(socket: Socket, peer: SocketAddress, server: HTTPServer) {
        transport = NetworkStream(socket: socket)
        // A client that sends urgent data only delays its own connection (up to its timeouts).
        socket.shortReadsDrain = true
        self.peer = peer
        self.server = server
        configuration = server.configuration
        pool = server.bufferPool
        body = RequestBody(connection: self, limit: configuration.maxBodySize)
    }

    /// Serves requests until the connection ends; never throws but `GreenletExit`.
    func run() throws {
        defer {
            if server.metrics != nil { reportBytes() }
            input.release(to: pool)
            server.connectionEnded(self)
            transport.close()
        }
        do {
            if let context = server.tlsContext {
                // While it handshakes, a connection is as evictable as an idle one: clients that
                // connect and say nothing cannot hold every slot for the handshake timeout.
                server.becameIdle(self)
                defer { server.becameBusy(self) }
                do {
                    try transport.acceptTLS(context)
                } catch let error as TLSError {
                    // Stalled, broken or plain-text clients: their business, one debug line each.
                    server.logger.debug("TLS handshake failed", metadata: ["peer": "\(peer)", "error": "\(error)"])
                    return
                }
            }
            try serve()
        } catch is GreenletExit {
            throw GreenletExit()
        } catch let error as SystemError {
            // Resets, broken pipes, eviction (EBADF) and timeouts while writing: the client's
            // business, not a server fault.
            server.logger.debug("connection ended", metadata: ["peer": "\(peer)", "error": "\(error)"])
        } catch {
            server.logger.error("connection failed", metadata: ["peer": "\(peer)", "error": "\(error)"])
        }
    }

    private func serve() throws {
        while true {
            // The idle wait runs from this shallow frame so that a parked idle connection keeps
            // as few stack pages as possible.
            if input.count == 0 {
                guard try waitForNextRequest() else { return }
            }
            let headLength: Int
            do {
                guard let length = try readHead() else { return }
                headLength = length
            } catch let error as HTTPParseError {
                try answerAndClose(statusCode: error.statusCode, reason: error.reason)
                return
            }
            guard try handleRequest(headLength: headLength) else { return }
        }
    }

    // MARK: Reading the head

    /// Reads until a whole head is buffered. Returns its length, or nil if the connection
    /// should close quietly (end of stream, idle timeout, eviction, drain).
    @inline(never)
    private func readHead() throws -> Int? {
        scanner.reset()
        var deadline: ContinuousClock.Instant?
        var skippedEmptyLine = false
        while true {
            if input.count == 0 {
                guard try waitForNextRequest() else { return nil }
                continue
            }
            switch try scanner.scan(input.readable, limits: configuration.headLimits) {
            case .complete(let length):
                return length
            case .leadingEmptyLine:
                guard !skippedEmptyLine else { throw HTTPParseError.badRequest("empty lines before the request line") }
                skippedEmptyLine = true
                input.consume(2)
                scanner.reset()
                continue
            case .needMore:
                // The clock is read only for heads that do not arrive in one piece.
                if deadline == nil { deadline = .now + configuration.headerTimeout }
            }
            guard let space = try input.receiveSpace(limit: configuration.headLimits.maxHeadLength + 1, pool: pool) else {
                throw HTTPParseError.headersTooLarge
            }
            let remaining = deadline! - .now
            guard remaining > .zero else { throw HTTPParseError(statusCode: 408, reason: "request head not received in time") }
            transport.timeout = remaining
            let count: Int
            do {
                count = try transport.recv(into: space)
            } catch let error as SystemError where error.errno == ETIMEDOUT {
                throw HTTPParseError(statusCode: 408, reason: "request head not received in time")
            }
            if count == 0 { return nil }
            input.didReceive(count)
        }
    }

    /// Waits for the first bytes of a request. True once some are buffered.
    private func waitForNextRequest() throws -> Bool {
        let isFirst = requestCount == 0
        if server.isDraining && !isFirst { return false }
        // A client taken in while the server drains has only a moment to send its request.
        let idleTimeout = !isFirst ? configuration.idleTimeout
            : server.isDraining ? min(configuration.headerTimeout, HTTPConnection.firstRequestGraceOnDrain)
            : configuration.headerTimeout
        server.becameIdle(self)
        defer { server.becameBusy(self) }
        do {
            let grace = min(configuration.idleGrace, idleTimeout)
            guard let space = try input.receiveSpace(limit: configuration.headLimits.maxHeadLength + 1, pool: pool) else {
                return false
            }
            transport.timeout = grace
            do {
                let count = try transport.recv(into: space)
                if count == 0 { return false }
                input.didReceive(count)
                return true
            } catch let error as SystemError where error.errno == ETIMEDOUT {}
            // A long wait: hold no buffer and no stack pages below this frame while parked.
            input.release(to: pool)
            releaseUnusedStackPages()
            guard try transport.waitReadable(timeout: idleTimeout - grace) else { return false }
            // Over TLS, readable may mean only part of a record: wait for the rest (bounded by
            // the header timeout) instead of taking "nothing decrypted yet" for an end.
            if transport.tls != nil { return try receiveTLSRecord() }
            return try receiveNow()
        } catch is GreenletExit where server.isDraining && !drainWoken {
            // Woken by a graceful stop: answer a request that is already here, else close. A
            // client that has only just connected has sent nothing yet but is about to: it gets
            // a moment, or the close would lose its request.
            drainWoken = true
            if isFirst && transport.tls == nil {
                guard try transport.waitReadable(timeout: HTTPConnection.firstRequestGraceOnDrain) else { return false }
            }
            return try receiveNow()
        }
    }

    /// Receives the first decrypted bytes of a request whose TLS record has begun to arrive.
    private func receiveTLSRecord() throws -> Bool {
        guard let space = try input.receiveSpace(limit: configuration.headLimits.maxHeadLength + 1, pool: pool) else {
            return false
        }
        transport.timeout = configuration.headerTimeout
        do {
            let count = try transport.recv(into: space)
            if count == 0 { return false }
            input.didReceive(count)
            return true
        } catch let error as SystemError where error.errno == ETIMEDOUT {
            return false
        }
    }

    private func receiveNow() throws -> Bool {
        guard let space = try input.receiveSpace(limit: configuration.headLimits.maxHeadLength + 1, pool: pool) else {
            return false
        }
        guard let count = try transport.tryRecv(into: space), count > 0 else { return false }
        input.didReceive(count)
        return true
    }

    /// How long a graceful stop waits for the first request of a connection that has sent
    /// nothing yet.
    static let firstRequestGraceOnDrain: Duration = .milliseconds(250)

    /// Wakes this connection out of its idle wait so that it closes (graceful stop).
    func wakeForDrain() {
        guard let greenlet, !drainWoken else { return }
        greenlet.kill(block: false)
    }

    // MARK: One request

    /// Parses the head, runs the responder, writes the response. True to read another request.
    /// Never inlined: its large frame must not sit under the idle wait's parked frames.
    @inline(never)
    private func handleRequest(headLength: Int) throws -> Bool {
        let metrics = server.metrics
        let started = configuration.accessLog || metrics != nil ? ContinuousClock.now : nil
        do {
            try RequestHeadParser.parse(UnsafeRawBufferPointer(rebasing: input.readable[..<headLength]), into: &head,
                                        limits: configuration.headLimits)
        } catch {
            try answerAndClose(statusCode: error.statusCode, reason: error.reason)
            return false
        }
        let httpRequest = HeadConversion.request(from: head, in: input.readable)
        let method = head.knownMethod
        let minorVersion = head.minorVersion
        var keepAlive = head.keepAlive && !server.isDraining
        input.consume(headLength)
        body.reset(framing: head.framing, expectContinue: head.expectContinue, limit: configuration.maxBodySize)
        let request = Request(head: httpRequest, body: body, peer: peer, minorVersion: minorVersion,
                              isKnownMethod: method != nil)

        var response: Response
        do {
            response = try server.responder.respond(to: request)
        } catch let error as HTTPError {
            response = error.response
            if error.closesConnection { keepAlive = false }
        } catch let error as HTTPParseError {
            try answerAndClose(statusCode: error.statusCode, reason: error.reason)
            return false
        } catch is GreenletExit {
            throw GreenletExit()
        } catch let error as SystemError where error.errno == ECONNRESET || error.errno == EPIPE || error.errno == EBADF {
            throw error
        } catch {
            logHandlerFailure(error, httpRequest)
            response = HTTPError(.internalServerError).response
        }

        if server.isDraining { keepAlive = false }
        // The body must be consumed (or the connection closed) before another request can be
        // framed (RFC 9112 §9.3).
        if keepAlive && !body.isComplete && !body.discardRemainder(maxBytes: configuration.maxDiscardedBodyBytes) {
            keepAlive = false
        }
        if metrics != nil { routeLabel = routeLabel ?? "other" }
        let written = try ResponseWriter.write(response, on: self, isHead: method == .head, minorVersion: minorVersion,
                                               keepAlive: &keepAlive)
        if let metrics, let started {
            let elapsed = (ContinuousClock.now - started).nanoseconds
            metrics.recordRequest(method: method == nil ? "_OTHER" : httpRequest.method.rawValue, route: routeLabel!,
                                  status: response.status.code, nanoseconds: elapsed)
            routeLabel = nil
            reportBytes()
        }
        if configuration.accessLog, let started {
            let micros = (ContinuousClock.now - started).nanoseconds / 1000
            server.logger.info("\(httpRequest.method) \(httpRequest.path ?? "") \(response.status.code) \(written)B \(micros)us",
                               metadata: ["peer": "\(peer)"])
        }
        requestCount += 1
        if !keepAlive {
            lingeringClose()
            return false
        }
        try input.shrinkIfLarge(pool: pool)
        return true
    }

    private func logHandlerFailure(_ error: any Error, _ request: HTTPRequest) {
        if let failure = error as? RouteHandlerError {
            server.logger.error("handler failed", metadata: ["route": "\(failure.route)", "error": "\(failure.underlying)"])
        } else {
            server.logger.error("handler failed",
                                metadata: ["route": "\(request.method) \(request.path ?? "")", "error": "\(error)"])
        }
    }

    // MARK: Body IO (for RequestBody)

    /// Copies buffered body bytes into `buffer`, or receives directly into it when nothing is
    /// buffered. Returns 0 at end of stream.
    func readBodyBytes(into buffer: UnsafeMutableRawBufferPointer, atMost limit: Int) throws -> Int {
        let wanted = min(buffer.count, limit)
        if input.count > 0 {
            let count = min(wanted, input.count)
            memcpy(buffer.baseAddress!, input.readable.baseAddress!, count)
            input.consume(count)
            return count
        }
        transport.timeout = configuration.bodyReadTimeout
        do {
            let count = try transport.recv(into: UnsafeMutableRawBufferPointer(rebasing: buffer[..<wanted]))
            directlyReceived &+= count
            return count
        } catch let error as SystemError where error.errno == ETIMEDOUT {
            throw HTTPError.closing(.requestTimeout, message: "request body not received in time")
        }
    }

    /// Receives more bytes into the input buffer for the chunked decoder. False at end of stream.
    func receiveBodyBytes() throws -> Bool {
        guard let space = try input.receiveSpace(limit: pool.bufferSize, pool: pool) else { return true }
        transport.timeout = configuration.bodyReadTimeout
        do {
            let count = try transport.recv(into: space)
            input.didReceive(count)
            return count > 0
        } catch let error as SystemError where error.errno == ETIMEDOUT {
            throw HTTPError.closing(.requestTimeout, message: "request body not received in time")
        }
    }

    func sendContinue() throws {
        transport.timeout = configuration.writeTimeout
        try transport.sendAll("HTTP/1.1 100 Continue\r\n\r\n")
    }

    /// Adds the bytes received and sent since the last report to the server's counters.
    private func reportBytes() {
        guard let metrics = server.metrics else { return }
        let received = input.receivedTotal &+ directlyReceived
        if received != reportedReceived {
            metrics.receivedBytes.increment(by: received &- reportedReceived)
            reportedReceived = received
        }
        if sentTotal != reportedSent {
            metrics.sentBytes.increment(by: sentTotal &- reportedSent)
            reportedSent = sentTotal
        }
    }

    // MARK: Errors and closing

    /// Answers a request that cannot be served (parse errors, limits, timeouts), then closes.
    @inline(never)
    private func answerAndClose(statusCode: Int, reason: String) throws {
        server.logger.debug("rejected request", metadata: ["peer": "\(peer)", "status": "\(statusCode)", "reason": "\(reason)"])
        var keepAlive = false
        let status = HTTPResponse.Status(code: statusCode)
        _ = try? ResponseWriter.write(HTTPError(status).response, on: self, isHead: false, minorVersion: 1,
                                      keepAlive: &keepAlive)
        // Not timed: the request's start is not known when its head never parsed.
        server.metrics?.recordRequest(method: "_INVALID", route: "rejected", status: statusCode, nanoseconds: 0)
        lingeringClose()
    }

    /// Half-closes, then reads and drops what the client still sends for a moment, so that
    /// the response is not destroyed by a reset (RFC 9112 §9.6).
    private func lingeringClose() {
        guard !transport.isClosed else { return }
        try? transport.shutdownWrite()
        transport.timeout = configuration.lingerTimeout
        var discarded = 0
        while discarded < 256 * 1024 {
            input.consume(input.count)
            guard let space = try? input.receiveSpace(limit: pool.bufferSize, pool: pool),
                  let count = try? transport.recv(into: space), count > 0 else { break }
            discarded += count
        }
        input.consume(input.count)
        transport.close()
    }
}

extension Duration {
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
