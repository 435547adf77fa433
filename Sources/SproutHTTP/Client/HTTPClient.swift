import Glibc
public import HTTPTypes
public import Sprout
public import SproutTLS

/// A greenlet-safe HTTP/1.1 client with a keep-alive pool per origin, HTTPS through
/// ``SproutTLS``, and timeouts for every phase.
///
/// ```swift
/// let client = HTTPClient()
/// let page = try client.get("https://example.com/")
/// print(page.status.code, page.text)
/// let created = try client.post("http://127.0.0.1:8080/items", body: .string(#"{"name":"x"}"#),
///                               headers: [.contentType: "application/json"])
/// ```
///
/// - Pools: connections to one scheme, host and port are reused through a ``ConnectionPool``
///   of ``Configuration/maxConnectionsPerHost``; a greenlet holds a connection for one
///   request and response, never two greenlets at once.
/// - Stale connections: a kept-alive connection the server closed while it idled is
///   detected before use when it has idled for ``Configuration/staleCheckAfterIdle`` (one
///   `poll`), and otherwise when the request fails before any response byte arrives: then an
///   idempotent request (GET, HEAD, PUT, DELETE, OPTIONS, TRACE) with a replayable body is
///   retried once on a fresh connection; a POST or PATCH fails with
///   ``HTTPClientError/Kind/connectionClosed``, as it may have been processed.
/// - Fields sent as curl does: `Host`, `User-Agent`, `Accept: */*`, `Content-Length` (or
///   chunked for a stream), and `Accept-Encoding: gzip` when ``Configuration/decompress`` is on.
/// - Redirects are followed only when ``Configuration/redirectLimit`` (or the call's
///   `redirectLimit`) is above 0: 301, 302 and 303 become GET without a body (HEAD stays
///   HEAD), 307 and 308 repeat the method and body; `Authorization` and `Cookie` are not
///   sent to another origin.
///
/// A client belongs to the hub (thread) of its first request; using it from another throws
/// ``HubError/wrongThread(_:)``. Give each hub its own client.
public final class HTTPClient {
    /// Timeouts, limits and behaviour of a client.
    public struct Configuration: Sendable {
        /// The longest a TCP connect plus TLS handshake may take.
        public var connectTimeout: Duration
        /// The longest the server may stay silent while a response is read (or a request
        /// written): an idle timeout per read, not a limit on a slow but steady body.
        public var readTimeout: Duration
        /// The longest a whole request may take, connect, redirects and body included; nil for
        /// none. A call's `deadline` argument overrides it.
        public var deadline: Duration?
        /// The most connections open to one origin (scheme, host, port).
        public var maxConnectionsPerHost: Int
        /// The longest a request waits for one of those connections.
        public var checkoutTimeout: Duration
        /// Idle connections unused this long are closed.
        public var idleTimeout: Duration
        /// A connection idle longer than this is checked (one `poll`) before reuse; nil never.
        public var staleCheckAfterIdle: Duration?
        /// How many redirects to follow; 0 returns 3xx responses as they are.
        public var redirectLimit: Int
        /// Asks for gzip and decompresses gzip bodies.
        public var decompress: Bool
        /// The most body bytes a whole-body call reads (after decompression).
        public var maxBodySize: Int
        /// `User-Agent` unless the request has its own.
        public var userAgent: String
        /// How https servers are verified (the system's trust store by default).
        public var tls: TLSConfiguration

        /// A configuration with the documented defaults.
        public init(connectTimeout: Duration = .seconds(10), readTimeout: Duration = .seconds(30), deadline: Duration? = nil,
                    maxConnectionsPerHost: Int = 20, checkoutTimeout: Duration = .seconds(30),
                    idleTimeout: Duration = .seconds(60), staleCheckAfterIdle: Duration? = .seconds(2),
                    redirectLimit: Int = 0, decompress: Bool = false, maxBodySize: Int = 64 << 20,
                    userAgent: String = "sprout/\(Sprout.version)", tls: TLSConfiguration = .client()) {
            self.connectTimeout = connectTimeout
            self.readTimeout = readTimeout
            self.deadline = deadline
            self.maxConnectionsPerHost = maxConnectionsPerHost
            self.checkoutTimeout = checkoutTimeout
            self.idleTimeout = idleTimeout
            self.staleCheckAfterIdle = staleCheckAfterIdle
            self.redirectLimit = redirectLimit
            self.decompress = decompress
            self.maxBodySize = maxBodySize
            self.userAgent = userAgent
            self.tls = tls
        }
    }

    /// The client's configuration.
    public let configuration: Configuration
    @exclusivity(unchecked) private var pools: [String: ConnectionPool<HTTPClientConnection>] = [:]
    @exclusivity(unchecked) private var tlsContext: TLSContext?
    private let buffers = BufferPool(bufferSize: 16 * 1024, hotLimit: 64)
    @exclusivity(unchecked) private var hub: Hub?
    @exclusivity(unchecked) private var isClosed = false

    /// Creates a client; nothing is opened until the first request.
    /// - Precondition: `maxConnectionsPerHost >= 1`, `redirectLimit >= 0`.
    public init(configuration: Configuration = Configuration()) {
        precondition(configuration.maxConnectionsPerHost >= 1, "HTTPClient: maxConnectionsPerHost must be at least 1")
        precondition(configuration.redirectLimit >= 0, "HTTPClient: redirectLimit must not be negative")
        self.configuration = configuration
    }

    // MARK: Requests read whole

    /// GET `url`, the body read whole. See ``send(_:_:headers:body:redirectLimit:deadline:)``.
    @discardableResult
    public func get(_ url: String, headers: HTTPFields = [:]) throws -> HTTPClientResponse {
        try send(.get, url, headers: headers)
    }

    /// HEAD `url`.
    @discardableResult
    public func head(_ url: String, headers: HTTPFields = [:]) throws -> HTTPClientResponse {
        try send(.head, url, headers: headers)
    }

    /// POST `body` to `url`.
    @discardableResult
    public func post(_ url: String, body: HTTPClientRequestBody, headers: HTTPFields = [:]) throws -> HTTPClientResponse {
        try send(.post, url, headers: headers, body: body)
    }

    /// PUT `body` at `url`.
    @discardableResult
    public func put(_ url: String, body: HTTPClientRequestBody, headers: HTTPFields = [:]) throws -> HTTPClientResponse {
        try send(.put, url, headers: headers, body: body)
    }

    /// PATCH `url` with `body`.
    @discardableResult
    public func patch(_ url: String, body: HTTPClientRequestBody, headers: HTTPFields = [:]) throws -> HTTPClientResponse {
        try send(.patch, url, headers: headers, body: body)
    }

    /// DELETE `url`.
    @discardableResult
    public func delete(_ url: String, headers: HTTPFields = [:]) throws -> HTTPClientResponse {
        try send(.delete, url, headers: headers)
    }

    /// Sends a request and reads the whole response.
    ///
    /// - Parameters:
    ///   - redirectLimit: Overrides ``Configuration/redirectLimit`` for this call.
    ///   - deadline: Overrides ``Configuration/deadline`` for this call.
    /// - Returns: The response, whatever its status (a 404 is a response, not an error).
    /// - Throws: ``HTTPClientError`` (invalid URL, timeouts, a closed or stale connection,
    ///   a malformed response, a body over ``Configuration/maxBodySize``, too many redirects);
    ///   ``ConnectError`` when no address accepts the connection; ``TLSError`` (a refused
    ///   certificate, with the reason); ``SystemError`` (resets); ``ConnectionPoolError``
    ///   (no connection free within the checkout timeout); ``HubError`` from another thread;
    ///   `GreenletExit` or an enclosing `Timeout`.
    /// - Note: A switch point.
    @discardableResult
    public func send(_ method: HTTPRequest.Method, _ url: String, headers: HTTPFields = [:],
                     body: HTTPClientRequestBody = .none, redirectLimit: Int? = nil,
                     deadline: Duration? = nil) throws -> HTTPClientResponse {
        let limit = configuration.maxBodySize
        return try execute(method: method, url: try parsed(url), headers: headers, body: body,
                           redirectLimit: redirectLimit, deadline: deadline) { head, body, finalURL in
            HTTPClientResponse(status: head.status, fieldLines: head.fieldLines, body: try body.readAll(limit: limit),
                               url: finalURL.description)
        }
    }

    /// Sends `request` (its scheme, authority and path say where) and reads the whole response.
    /// - Throws: as ``send(_:_:headers:body:redirectLimit:deadline:)``.
    @discardableResult
    public func send(_ request: HTTPRequest, body: HTTPClientRequestBody = .none) throws -> HTTPClientResponse {
        try send(request.method, try Self.url(of: request), headers: request.headerFields, body: body)
    }

    // MARK: Streamed responses

    /// Sends `request` and passes the response head and its body, unread, to `handle`, which
    /// reads the body as it arrives.
    ///
    /// - Returns: What `handle` returns.
    /// - Throws: as ``send(_:_:headers:body:redirectLimit:deadline:)``, and what `handle` throws.
    public func withResponse<R>(_ request: HTTPRequest, body: HTTPClientRequestBody = .none,
                                _ handle: (HTTPResponse, HTTPClientResponseBody) throws -> R) throws -> R {
        try execute(method: request.method, url: try ClientURL(try Self.url(of: request)), headers: request.headerFields,
                    body: body, redirectLimit: nil, deadline: nil) { head, body, _ in try handle(head.response, body) }
    }

    /// Counters of each origin's pool (`"https://host:port"` → counters).
    public var statistics: [String: ConnectionPoolStatistics] {
        pools.mapValues { $0.statistics }
    }

    /// Closes every idle connection and refuses later requests; connections in use close as
    /// their requests end.
    public func close() {
        isClosed = true
        lastPool = nil
        for pool in pools.values { pool.close() }
    }

    // MARK: The exchange

    /// The last URL parsed: a client usually calls the same few URLs again and again.
    @exclusivity(unchecked) private var lastURL: (text: String, parsed: ClientURL)?

    private func parsed(_ text: String) throws(HTTPClientError) -> ClientURL {
        if let lastURL, lastURL.text == text { return lastURL.parsed }
        let url = try ClientURL(text)
        lastURL = (text, url)
        return url
    }

    private static func url(of request: HTTPRequest) throws -> String {
        guard let authority = request.authority else {
            throw HTTPClientError(.invalidRequest, "the request has no authority (host) to send it to")
        }
        return "\(request.scheme ?? "http")://\(authority)\(request.path ?? "/")"
    }

    private func execute<R>(method: HTTPRequest.Method, url: ClientURL, headers: HTTPFields, body: HTTPClientRequestBody,
                            redirectLimit: Int?, deadline: Duration?,
                            _ handle: (ParsedResponseHead, HTTPClientResponseBody, ClientURL) throws -> R) throws -> R {
        if let hub {
            guard hub === Hub.current else { throw HubError.wrongThread("HTTPClient used from another thread than its own") }
        } else {
            hub = Hub.current
        }
        guard !isClosed else { throw HTTPClientError(.invalidRequest, "the client is closed") }
        try Self.validate(headers)
        sweepPoolsNowAndThen()
        let endTime = (deadline ?? configuration.deadline).map { ContinuousClock.now + $0 }
        let limit = redirectLimit ?? configuration.redirectLimit
        var followed = 0
        var method = method
        var url = url
        var headers = headers
        var body = body
        while true {
            let outcome = try exchangeRetryingStale(method: method, url: url, headers: headers, body: body,
                                                    endTime: endTime, followRedirect: limit > 0, handle)
            switch outcome {
            case .done(let result):
                return result
            case .redirect(let status, let location):
                guard followed < limit else {
                    throw HTTPClientError(.tooManyRedirects, "more than \(limit) redirects (the last to \(location))")
                }
                followed += 1
                let next = try url.resolving(location)
                if status == 307 || status == 308 {
                    guard body.isReplayable else {
                        throw HTTPClientError(.invalidRequest, "a \(status) redirect needs the body again, and a streamed body cannot be replayed")
                    }
                } else {
                    if method != .head { method = .get }
                    body = .none
                    headers[.contentType] = nil
                }
                if next.origin != url.origin {
                    headers[.authorization] = nil
                    headers[.cookie] = nil
                }
                url = next
            }
        }
    }

    private enum Outcome<R> {
        case done(R)
        case redirect(Int, String)
    }

    /// A reused connection failed before any byte of the response came: the server had
    /// closed it while it idled.
    private struct StaleConnection: Error {
        let underlying: any Error
    }

    private func exchangeRetryingStale<R>(method: HTTPRequest.Method, url: ClientURL, headers: HTTPFields,
                                          body: HTTPClientRequestBody, endTime: ContinuousClock.Instant?,
                                          followRedirect: Bool,
                                          _ handle: (ParsedResponseHead, HTTPClientResponseBody, ClientURL) throws -> R) throws -> Outcome<R> {
        let pool = self.pool(for: url, endTime: endTime)
        var fresh = false
        while true {
            do {
                return try pool.withConnection(fresh: fresh, checkoutTimeout: checkoutTimeout(endTime)) { connection in
                    connection.deadline = endTime
                    connection.readTimeout = configuration.readTimeout
                    return try exchange(on: connection, method: method, url: url, headers: headers, body: body,
                                        followRedirect: followRedirect, handle)
                }
            } catch let stale as StaleConnection {
                let idempotent = [.get, .head, .put, .delete, .options, .trace].contains(method)
                guard !fresh, idempotent, body.isReplayable else {
                    let why = idempotent ? "its streamed body cannot be sent again" : "\(method) is not idempotent"
                    throw HTTPClientError(.connectionClosed,
                                          "the server closed the kept-alive connection before responding (\(stale.underlying)); not retried: \(why)")
                }
                fresh = true
            } catch let error as ConnectionPoolError {
                if case .checkoutTimedOut = error, let endTime, ContinuousClock.now >= endTime {
                    throw HTTPClientError(.deadlineExceeded, "the request's deadline passed waiting for a connection to \(url.origin)")
                }
                throw error
            }
        }
    }

    private func checkoutTimeout(_ endTime: ContinuousClock.Instant?) -> Duration {
        guard let endTime else { return configuration.checkoutTimeout }
        return max(.zero, min(configuration.checkoutTimeout, endTime - .now))
    }

    private func exchange<R>(on connection: HTTPClientConnection, method: HTTPRequest.Method, url: ClientURL,
                             headers: HTTPFields, body: HTTPClientRequestBody, followRedirect: Bool,
                             _ handle: (ParsedResponseHead, HTTPClientResponseBody, ClientURL) throws -> R) throws -> Outcome<R> {
        let reused = connection.exchanges > 0
        connection.receivedResponseBytes = false
        if !connection.isConnected {
            try connection.connect(connectTimeout: configuration.connectTimeout,
                                   tls: url.scheme == .https ? try tlsContextForClient() : nil)
        }
        let head: ParsedResponseHead
        do {
            try writeRequest(on: connection, method: method, url: url, headers: headers, body: body)
            head = try connection.readHead(method: method)
        } catch let error where reused && !connection.receivedResponseBytes && Self.isStaleSign(error) {
            throw StaleConnection(underlying: error)
        }
        connection.isReusable = head.keepAlive
        let code = head.status.code
        let gunzip = configuration.decompress && head.contentEncoding?.lowercased().trimmingSpaces == "gzip"
        let reader = HTTPClientResponseBody(connection: connection, framing: head.framing, gunzip: gunzip)
        defer { reader.isValid = false }
        let outcome: Outcome<R>
        if followRedirect, Self.isRedirect(code), let location = head.location {
            outcome = .redirect(code, location)
        } else {
            outcome = .done(try handle(head, reader, url))
        }
        if try !reader.discardRemainder(maxBytes: 256 * 1024) { connection.isReusable = false }
        connection.exchanges += 1
        return outcome
    }

    private static func isRedirect(_ code: Int) -> Bool {
        switch code {
        case 301, 302, 303, 307, 308: true
        default: false
        }
    }

    /// End of stream before the response, a reset or a broken pipe.
    private static func isStaleSign(_ error: any Error) -> Bool {
        if let error = error as? HTTPClientError { return error.kind == .connectionClosed }
        if let error = error as? SystemError { return [ECONNRESET, EPIPE, ECONNABORTED].contains(error.errno) }
        return false
    }

    private func writeRequest(on connection: HTTPClientConnection, method: HTTPRequest.Method, url: ClientURL,
                              headers: HTTPFields, body: HTTPClientRequestBody) throws {
        var out = try OutputBuffer(pool: buffers)
        defer { out.release(to: buffers) }
        out.append(method.rawValue)
        out.append(" ")
        out.append(url.target)
        out.append(" HTTP/1.1\r\nHost: ")
        out.append(url.authority)
        out.append("\r\n")
        var hasUserAgent = false
        var hasAccept = false
        var hasAcceptEncoding = false
        for field in headers {
            // `Host` comes from the URL (swift-http-types keeps it as the request's authority).
            if field.name.canonicalName == "host" { continue }
            switch field.name {
            case .contentLength, .transferEncoding: continue
            case .userAgent: hasUserAgent = true
            case .accept: hasAccept = true
            case .acceptEncoding: hasAcceptEncoding = true
            default: break
            }
            out.append(field.name.rawName)
            out.append(": ")
            out.append(field.value)
            out.append("\r\n")
        }
        if !hasUserAgent {
            out.append("User-Agent: ")
            out.append(configuration.userAgent)
            out.append("\r\n")
        }
        if !hasAccept { out.append("Accept: */*\r\n") }
        if configuration.decompress && !hasAcceptEncoding { out.append("Accept-Encoding: gzip\r\n") }
        switch body.storage {
        case .none:
            if method == .post || method == .put || method == .patch { out.append("Content-Length: 0\r\n") }
            out.append("\r\n")
            try connection.write(out.bytes)
        case .bytes(let bytes):
            out.append("Content-Length: ")
            out.appendDecimal(bytes.count)
            out.append("\r\n\r\n")
            // Head and a small body in one write (no Nagle or delayed-ACK stall between them).
            if bytes.count <= 16 * 1024 {
                bytes.withUnsafeBytes { out.append($0) }
                try connection.write(out.bytes)
            } else {
                try connection.write(out.bytes)
                try connection.write(bytes)
            }
        case .stream(let length, let produce):
            if let length {
                out.append("Content-Length: ")
                out.appendDecimal(length)
                out.append("\r\n\r\n")
            } else {
                out.append("Transfer-Encoding: chunked\r\n\r\n")
            }
            try connection.write(out.bytes)
            let writer = HTTPClientBodyWriter(connection: connection, chunked: length == nil, declaredLength: length)
            try produce(writer)
            try writer.finish()
        }
    }

    /// Field values with CR, LF or NUL would let a value inject a header or a request.
    private static func validate(_ headers: HTTPFields) throws {
        for field in headers {
            let bad = field.value.utf8.contains { $0 == 0x0D || $0 == 0x0A || $0 == 0 }
            if bad { throw HTTPClientError(.invalidRequest, "the value of \(field.name) contains CR, LF or NUL") }
        }
    }

    // MARK: Pools

    @exclusivity(unchecked) private var lastPool: (origin: String, pool: ConnectionPool<HTTPClientConnection>)?

    private func pool(for url: ClientURL, endTime: ContinuousClock.Instant?) -> ConnectionPool<HTTPClientConnection> {
        let origin = url.origin
        if let lastPool, lastPool.origin == origin { return lastPool.pool }
        if let pool = pools[origin] {
            lastPool = (origin, pool)
            return pool
        }
        let buffers = buffers
        let pool = ConnectionPool<HTTPClientConnection>(
            configuration: .init(maxOpen: configuration.maxConnectionsPerHost, checkoutTimeout: configuration.checkoutTimeout,
                                 idleExpiry: configuration.idleTimeout, healthCheckAfterIdle: configuration.staleCheckAfterIdle),
            // Connecting happens in the first exchange, under that request's deadline. Any error
            // of an exchange (the caller's own included, thrown mid-body) discards the connection.
            open: { HTTPClientConnection(url: url, buffers: buffers) },
            close: { $0.close() },
            isReusable: { $0.isReusable },
            healthCheck: { !$0.hasUnexpectedInput })
        pools[origin] = pool
        lastPool = (origin, pool)
        return pool
    }

    @exclusivity(unchecked) private var lastSweep = ContinuousClock.now

    /// At most once a second: closes expired idle connections in every pool (a pool only
    /// expires its own when it is used) and forgets pools with nothing open, so that a client
    /// calling many hosts does not keep their sockets for ever.
    private func sweepPoolsNowAndThen() {
        let now = ContinuousClock.now
        guard now - lastSweep >= .seconds(1), pools.count > 1 || lastPool == nil else { return }
        lastSweep = now
        for (origin, pool) in pools {
            pool.closeExpiredConnections()
            let statistics = pool.statistics
            if statistics.open == 0 && statistics.waiting == 0 && lastPool?.origin != origin {
                pools[origin] = nil
            }
        }
    }

    private func tlsContextForClient() throws -> TLSContext {
        if let tlsContext { return tlsContext }
        let context = try TLSContext(configuration: configuration.tls)
        tlsContext = context
        return context
    }
}
