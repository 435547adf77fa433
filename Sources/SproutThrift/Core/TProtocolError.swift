/// A malformed or over-limit message: what a protocol throws while reading or writing.
///
/// After one of these the connection's position in the byte stream is unknown (unless the
/// transport is framed), so servers and pooled clients close the connection.
public struct TProtocolError: Error, CustomStringConvertible, Sendable {
    /// What went wrong.
    public enum Code: Sendable, Equatable {
        case unknown
        /// Bytes that cannot be a Thrift value here (an unknown type, a bad enum value, …).
        case invalidData
        /// A negative string, binary or container size.
        case negativeSize
        /// A size past a limit (the transport's ``TTransport/maxMessageSize``).
        case sizeLimit(limit: Int, got: Int)
        /// A message header of another protocol or version.
        case badVersion(expected: String, got: String)
        /// Structs and containers nested deeper than the protocol allows.
        case depthLimit
        case notImplemented
    }

    /// What went wrong.
    public var error: Code
    /// Details for the log.
    public var message: String?

    /// Creates an error.
    public init(error: Code = .unknown, message: String? = nil) {
        self.error = error
        self.message = message
    }

    public var description: String {
        let what: String
        switch error {
        case .unknown: what = "protocol error"
        case .invalidData: what = "invalid data"
        case .negativeSize: what = "negative size"
        case .sizeLimit(let limit, let got): what = "size \(got) exceeds the limit \(limit)"
        case .badVersion(let expected, let got): what = "bad version (expected \(expected), got \(got))"
        case .depthLimit: what = "nesting too deep"
        case .notImplemented: what = "not implemented"
        }
        return message.map { "TProtocolError: \(what): \($0)" } ?? "TProtocolError: \(what)"
    }
}
