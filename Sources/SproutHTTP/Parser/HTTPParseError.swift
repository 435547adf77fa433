/// Why a request could not be parsed, and the status the server answers it with.
///
/// Every parse error ends the connection after its response: once framing is in doubt, the
/// rest of the byte stream cannot be trusted (RFC 9112 §11.2).
public struct HTTPParseError: Error, Equatable, CustomStringConvertible, Sendable {
    /// The response status code: 400, 408, 413, 414, 417, 431, 501 or 505.
    public let statusCode: Int
    /// What was wrong, for logs (never sent with internals).
    public let reason: String

    /// Creates an error answered with `statusCode`.
    public init(statusCode: Int, reason: String) {
        self.statusCode = statusCode
        self.reason = reason
    }

    public var description: String { "\(statusCode): \(reason)" }

    static func badRequest(_ reason: String) -> HTTPParseError { HTTPParseError(statusCode: 400, reason: reason) }
    static let uriTooLong = HTTPParseError(statusCode: 414, reason: "request line too long")
    static let headersTooLarge = HTTPParseError(statusCode: 431, reason: "request header fields too large")
    static let tooManyFields = HTTPParseError(statusCode: 431, reason: "too many header fields")
    static func notImplemented(_ reason: String) -> HTTPParseError { HTTPParseError(statusCode: 501, reason: reason) }
    static let versionNotSupported = HTTPParseError(statusCode: 505, reason: "HTTP version not supported")
    static let expectationFailed = HTTPParseError(statusCode: 417, reason: "unsupported expectation")
}
