/// Why a TLS operation failed, in words a user can act on.
public struct TLSError: Error, Equatable, CustomStringConvertible {
    /// The kinds of failure.
    public enum Kind: Sendable, Equatable {
        /// A context could not be made (an unreadable certificate or key, a key that does not
        /// match its certificate, a CA file that does not load).
        case configuration
        /// The peer's certificate was refused; ``TLSError/reason`` says why (expired,
        /// self-signed, issued for another host, …).
        case certificateRefused
        /// The handshake failed (no shared version or cipher, the peer hung up, an alert).
        case handshakeFailed
        /// The handshake did not finish within its timeout.
        case handshakeTimedOut
        /// The peer broke the protocol after the handshake (a bad record, an alert).
        case protocolError
    }

    /// What failed.
    public let kind: Kind
    /// OpenSSL's or Sprout's words for the cause.
    public let reason: String

    /// Creates an error.
    public init(_ kind: Kind, _ reason: String) {
        self.kind = kind
        self.reason = reason
    }

    public var description: String {
        switch kind {
        case .configuration: "TLS configuration: \(reason)"
        case .certificateRefused: "TLS: certificate refused: \(reason)"
        case .handshakeFailed: "TLS handshake failed: \(reason)"
        case .handshakeTimedOut: "TLS handshake timed out: \(reason)"
        case .protocolError: "TLS error: \(reason)"
        }
    }
}
