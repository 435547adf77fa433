public import HTTPTypes

/// A response read whole by ``HTTPClient``.
public struct HTTPClientResponse: Sendable {
    /// The status and header fields, as the server sent them (after decompression too: then
    /// `Content-Encoding` and `Content-Length` describe the compressed body).
    public var head: HTTPResponse
    /// The body (decompressed when the client decompresses and the server sent gzip).
    public var body: [UInt8]
    /// The URL that answered, after any redirects.
    public var url: String

    /// Creates a response.
    public init(head: HTTPResponse, body: [UInt8], url: String) {
        self.head = head
        self.body = body
        self.url = url
    }

    /// The status (`response.status.code == 200`).
    public var status: HTTPResponse.Status { head.status }
    /// The header fields (`response.headerFields[.contentType]`).
    public var headerFields: HTTPFields { head.headerFields }
    /// The body decoded as UTF-8 (invalid sequences replaced).
    public var text: String { String(decoding: body, as: UTF8.self) }
}
