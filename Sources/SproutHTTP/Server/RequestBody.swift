public import HTTPTypes
import Glibc
import Sprout

/// A request's body, read from the connection only when asked (`Content-Length` or chunked).
///
/// For a request that sent `Expect: 100-continue`, the interim `100 Continue` goes out on the
/// first read, so a handler that answers without reading never invites the upload. Reading
/// past ``limit`` throws a 413 ``HTTPError``; a read that waits longer than the server's body
/// read timeout throws a 408. Either closes the connection after the answer. Belongs to the
/// connection's greenlet: read it from the handler (or its stream writer) only.
public final class RequestBody {
    private enum Mode {
        case none
        case length(remaining: Int)
        case chunked
        case failed
    }

    unowned(unsafe) let connection: HTTPConnection
    @exclusivity(unchecked) private var mode = Mode.none
    @exclusivity(unchecked) private var decoder = ChunkedDecoder()
    @exclusivity(unchecked) private var expectContinue = false
    @exclusivity(unchecked) private(set) var continueSent = false

    /// The most body bytes ``read(into:)`` and ``readAll(limit:)`` accept (the route's limit;
    /// the server's `maxBodySize` by default).
    @exclusivity(unchecked) public var limit: Int
    /// The declared `Content-Length`, or nil for a chunked body or none.
    @exclusivity(unchecked) public private(set) var expectedLength: Int?
    /// Body bytes delivered so far.
    @exclusivity(unchecked) public private(set) var bytesRead = 0
    /// Trailer fields of a chunked body, once it has been read to its end.
    @exclusivity(unchecked) public private(set) var trailers: HTTPFields = [:]

    init(connection: HTTPConnection, limit: Int) {
        self.connection = connection
        self.limit = limit
    }

    /// True once the whole body has been read (at once for requests without a body).
    public var isComplete: Bool {
        if case .none = mode { return true }
        return false
    }

    /// True if the request has a body (possibly empty when chunked).
    @exclusivity(unchecked) public private(set) var isPresent = false

    func reset(framing: ParsedRequestHead.BodyFraming, expectContinue: Bool, limit: Int) {
        self.limit = limit
        self.expectContinue = expectContinue
        continueSent = false
        bytesRead = 0
        if !trailers.isEmpty { trailers = [:] }
        switch framing {
        case .none:
            mode = .none
            expectedLength = nil
            isPresent = false
        case .length(let length):
            mode = .length(remaining: length)
            expectedLength = length
            isPresent = true
        case .chunked:
            mode = .chunked
            decoder = ChunkedDecoder()
            expectedLength = nil
            isPresent = true
        }
    }

    /// Reads body bytes into `buffer`.
    ///
    /// - Returns: The number of bytes written; 0 once the body has ended.
    /// - Throws: ``HTTPError`` 413 past ``limit``, 408 on a read timeout, 400 if the client
    ///   closed the connection before the body ended; ``HTTPParseError`` for bad chunked
    ///   framing; `GreenletExit` or an enclosing `Timeout`.
    /// - Note: A switch point when no body bytes are buffered.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard buffer.count > 0 else { return 0 }
        switch mode {
        case .none:
            return 0
        case .failed:
            throw HTTPError.closing(.badRequest, message: "the request body could not be read")
        case .length(let remaining):
            if bytesRead == 0 && remaining > limit { throw fail(.closing(.contentTooLarge)) }
            try sendContinueIfNeeded()
            let count = try connection.readBodyBytes(into: buffer, atMost: remaining)
            guard count > 0 else { throw fail(.closing(.badRequest, message: "request body truncated")) }
            bytesRead += count
            mode = remaining == count ? .none : .length(remaining: remaining - count)
            return count
        case .chunked:
            try sendContinueIfNeeded()
            while true {
                var consumed = 0
                let step: ChunkedDecoder.Step
                do {
                    step = try decoder.decode(connection.input.readable, consumed: &consumed, maxData: buffer.count)
                } catch {
                    mode = .failed
                    throw error
                }
                switch step {
                case .data(let span):
                    guard bytesRead + span.count <= limit else { throw fail(.closing(.contentTooLarge)) }
                    memcpy(buffer.baseAddress!, connection.input.readable.baseAddress! + span.start, span.count)
                    connection.input.consume(consumed)
                    bytesRead += span.count
                    return span.count
                case .end:
                    connection.input.consume(consumed)
                    mode = .none
                    collectTrailers()
                    return 0
                case .needMore:
                    connection.input.consume(consumed)
                    guard try connection.receiveBodyBytes() else {
                        throw fail(.closing(.badRequest, message: "request body truncated"))
                    }
                }
            }
        }
    }

    /// Reads the whole body.
    ///
    /// - Parameter limit: The most bytes to accept; ``limit`` when nil. A smaller value than
    ///   the route's is honoured; a larger one is capped at it.
    /// - Returns: The body's bytes (empty for a request without a body).
    /// - Throws: as ``read(into:)``.
    /// - Note: A switch point.
    public func readAll(limit: Int? = nil) throws -> [UInt8] {
        let cap = min(limit ?? self.limit, self.limit)
        if let expectedLength, bytesRead == 0, expectedLength > cap { throw fail(.closing(.contentTooLarge)) }
        var result: [UInt8] = []
        if let expectedLength { result.reserveCapacity(expectedLength) }
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let count = try chunk.withUnsafeMutableBytes { try read(into: $0) }
            if count == 0 { return result }
            guard result.count + count <= cap else { throw fail(.closing(.contentTooLarge)) }
            result.append(contentsOf: chunk[..<count])
        }
    }

    /// Reads the whole body as UTF-8 text (invalid sequences replaced).
    /// - Throws: as ``readAll(limit:)``.
    public func readAllString(limit: Int? = nil) throws -> String {
        String(decoding: try readAll(limit: limit), as: UTF8.self)
    }

    /// Reads and drops what is left of the body, up to `maxBytes`; false if more remained, the
    /// client was waiting for `100 Continue`, or reading failed.
    func discardRemainder(maxBytes: Int) -> Bool {
        if isComplete { return true }
        if case .failed = mode { return false }
        if expectContinue && !continueSent { return false }
        if let expectedLength, expectedLength - bytesRead > maxBytes { return false }
        let savedLimit = limit
        limit = bytesRead + maxBytes
        defer { limit = savedLimit }
        var scratch: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
        return withUnsafeMutableBytes(of: &scratch) { buffer in
            do {
                while try read(into: buffer) > 0 {}
                return true
            } catch {
                return false
            }
        }
    }

    private func fail(_ error: HTTPError) -> HTTPError {
        mode = .failed
        return error
    }

    private func sendContinueIfNeeded() throws {
        guard expectContinue && !continueSent else { return }
        continueSent = true
        try connection.sendContinue()
    }

    private func collectTrailers() {
        var fields = HTTPFields()
        for trailer in decoder.trailers {
            if let name = HTTPField.Name(String(decoding: trailer.name, as: UTF8.self)) {
                fields.append(HTTPField(name: name, value: trailer.value))
            }
        }
        trailers = fields
    }
}
