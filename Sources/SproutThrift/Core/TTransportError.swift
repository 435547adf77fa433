/// A transport that cannot carry a message: the peer closed mid-message, a frame over the
/// limit, a timeout. The connection is unusable afterwards.
public struct TTransportError: Error, CustomStringConvertible, Sendable {
    /// What went wrong.
    public enum Code: Sendable, Equatable {
        case unknown
        case notOpen
        /// The peer closed the connection (mid-message when bytes were expected).
        case endOfFile
        case timedOut
        /// A frame length that is negative or zero.
        case negativeSize
        /// A frame longer than the transport's maximum.
        case sizeLimit(limit: Int, got: Int)
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
        case .unknown: what = "transport error"
        case .notOpen: what = "not open"
        case .endOfFile: what = "end of file"
        case .timedOut: what = "timed out"
        case .negativeSize: what = "bad frame size"
        case .sizeLimit(let limit, let got): what = "frame of \(got) bytes exceeds the maximum \(limit)"
        }
        return message.map { "TTransportError: \(what): \($0)" } ?? "TTransportError: \(what)"
    }
}
