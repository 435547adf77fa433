/// Why an ``HTTPClient`` request failed (other than the errors it passes through unchanged:
/// ``ConnectError`` when no address accepted the connection, ``TLSError`` when the
/// handshake or a certificate failed, `GreenletExit` and enclosing `Timeout`s).
public struct HTTPClientError: Error, Equatable, CustomStringConvertible {
    /// The kinds of failure.
    public enum Kind: Sendable, Equatable {
        /// The URL cannot be requested (not http/https, no host, a bad port, spaces).
        case invalidURL
        /// The request cannot be sent as given (a header value with CR or LF, a body on a
        /// method that forbids one).
        case invalidRequest
        /// The TCP connection (and TLS handshake) did not complete within the connect timeout.
        case connectTimedOut
        /// The server sent nothing for longer than the read timeout.
        case readTimedOut
        /// The whole request, redirects included, ran past its deadline.
        case deadlineExceeded
        /// The connection ended before a complete response arrived (a POST on a kept-alive
        /// connection the server had closed is never retried: it may have been processed).
        case connectionClosed
        /// The response broke HTTP/1.1's grammar or framing.
        case malformedResponse
        /// The body was larger than the limit.
        case bodyTooLarge
        /// More redirects than allowed.
        case tooManyRedirects
        /// A `gzip` body that does not decompress.
        case decompressionFailed
    }

    /// What failed.
    public let kind: Kind
    /// The details, in words.
    public let message: String

    /// Creates an error.
    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }

    static func invalidURL(_ url: String, _ reason: String) -> HTTPClientError {
        HTTPClientError(.invalidURL, "invalid URL \(url): \(reason)")
    }

    static func malformed(_ reason: String) -> HTTPClientError {
        HTTPClientError(.malformedResponse, "malformed response: \(reason)")
    }
}
