public import HTTPTypes

/// What a handler answers: a status, header fields, and a body.
///
/// The server adds `Date`, the framing (`Content-Length`, or chunked for a stream of unknown
/// length) and `Connection`; framing fields set by the handler are replaced, except a
/// `Content-Length` on a ``ResponseBody/stream(length:_:)`` body with no length, which is taken
/// as its length.
public struct Response {
    /// The status and header fields.
    public var head: HTTPResponse
    /// The body.
    public var body: ResponseBody

    /// Creates a response.
    public init(status: HTTPResponse.Status = .ok, headerFields: HTTPFields = [:], body: ResponseBody = .empty) {
        head = HTTPResponse(status: status, headerFields: headerFields)
        self.body = body
    }

    /// The status.
    public var status: HTTPResponse.Status {
        get { head.status }
        set { head.status = newValue }
    }

    /// The header fields.
    public var headerFields: HTTPFields {
        get { head.headerFields }
        set { head.headerFields = newValue }
    }

    /// A `text/plain; charset=utf-8` response.
    public static func text(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headerFields: textFields, body: .string(text))
    }

    /// Built once: a field literal per response costs an allocation and a validation.
    private static let textFields: HTTPFields = [.contentType: "text/plain; charset=utf-8"]

    /// A response with `bytes` as its body and the given content type.
    public static func bytes(_ bytes: [UInt8], contentType: String = "application/octet-stream",
                             status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headerFields: [.contentType: contentType], body: .bytes(bytes))
    }
}

/// A response body.
public enum ResponseBody {
    /// No body (`Content-Length: 0` where a body is allowed).
    case empty
    /// These bytes.
    case bytes([UInt8])
    /// This text, UTF-8 encoded.
    case string(String)
    /// Bytes produced by a closure that writes them as they are ready, after the handler has
    /// returned. With a `length`, exactly that many bytes must be written; without one the body
    /// is chunked for HTTP/1.1 clients and ends with the connection for HTTP/1.0 clients.
    case stream(length: Int? = nil, _ write: (ResponseBodyWriter) throws -> Void)
}
