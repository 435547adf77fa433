/// A request head as spans into the buffer it was parsed from: nothing is copied until a
/// caller asks for a string.
public struct ParsedRequestHead {
    /// The methods this server knows by name (RFC 9110 §9 and PATCH).
    public enum KnownMethod: UInt8, Sendable {
        case get, head, post, put, delete, connect, options, trace, patch
    }

    /// How the body is framed (RFC 9112 §6.3).
    public enum BodyFraming: Equatable, Sendable {
        /// No body.
        case none
        /// Exactly this many bytes (`Content-Length`).
        case length(Int)
        /// `Transfer-Encoding: chunked`.
        case chunked
    }

    /// Headers the server itself reads, recognised while scanning so framing needs no lookup.
    public enum FieldKind: UInt8, Sendable {
        case other, host, contentLength, transferEncoding, connection, expect, contentType, userAgent, accept
    }

    /// One header field line.
    public struct Field {
        /// The name's bytes, as sent.
        public var name: ByteSpan
        /// The value's bytes, surrounding whitespace trimmed.
        public var value: ByteSpan
        /// The name recognised, or `.other`.
        public var kind: FieldKind
    }

    /// The method's bytes.
    public var method = ByteSpan.empty
    /// The method if it is one this server knows; nil for extension methods.
    public var knownMethod: KnownMethod?
    /// The request-target's bytes, as sent.
    public var target = ByteSpan.empty
    /// The path and query (origin-form), taken from an absolute-form target too; empty for `*`
    /// and authority-form.
    public var pathAndQuery = ByteSpan.empty
    /// For an absolute-form target: its scheme and authority.
    public var absoluteScheme: ByteSpan?
    /// For an absolute-form or authority-form target: the authority.
    public var targetAuthority: ByteSpan?
    /// 0 for HTTP/1.0, 1 for HTTP/1.1 (and later 1.x minors, processed as 1.1).
    public var minorVersion = 1
    /// Every field line in order.
    public var fields: [Field] = []
    /// The `Host` field's value, if any.
    public var host: ByteSpan?
    /// How the body is framed.
    public var framing = BodyFraming.none
    /// False when the connection must close after this request (RFC 9112 §9.3).
    public var keepAlive = true
    /// True for an HTTP/1.1 request with `Expect: 100-continue`.
    public var expectContinue = false
    /// The head's length in bytes, final CRLF included.
    public var length = 0

    /// An empty head, to be filled by ``RequestHeadParser``.
    public init() {}

    mutating func reset() {
        method = .empty
        knownMethod = nil
        target = .empty
        pathAndQuery = .empty
        absoluteScheme = nil
        targetAuthority = nil
        minorVersion = 1
        fields.removeAll(keepingCapacity: true)
        host = nil
        framing = .none
        keepAlive = true
        expectContinue = false
        length = 0
    }
}
