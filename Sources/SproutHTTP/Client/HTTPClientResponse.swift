public import HTTPTypes

/// A response read whole by ``HTTPClient``.
///
/// The header fields are kept as the bytes the server sent and made into `HTTPFields` when
/// ``head`` or ``headerFields`` is read (on each read: keep a copy to look at many fields), so
/// a caller that needs only the status and the body pays for no field objects.
public struct HTTPClientResponse: Sendable {
    /// The status (`response.status.code == 200`).
    public var status: HTTPResponse.Status
    private var fieldLines: [UInt8]
    private var replacedFields: HTTPFields?
    /// The body (decompressed when the client decompresses and the server sent gzip).
    public var body: [UInt8]
    /// The URL that answered, after any redirects.
    public var url: String

    /// Creates a response.
    public init(head: HTTPResponse, body: [UInt8], url: String) {
        status = head.status
        fieldLines = []
        replacedFields = head.headerFields
        self.body = body
        self.url = url
    }

    init(status: HTTPResponse.Status, fieldLines: [UInt8], body: [UInt8], url: String) {
        self.status = status
        self.fieldLines = fieldLines
        self.body = body
        self.url = url
    }

    /// The status and header fields, as the server sent them (after decompression too: then
    /// `Content-Encoding` and `Content-Length` describe the compressed body).
    public var head: HTTPResponse {
        get { HTTPResponse(status: status, headerFields: headerFields) }
        set {
            status = newValue.status
            replacedFields = newValue.headerFields
        }
    }

    /// The header fields (`response.headerFields[.contentType]`).
    public var headerFields: HTTPFields {
        get { replacedFields ?? ResponseHeadParser.fields(fieldLines) }
        set { replacedFields = newValue }
    }

    /// The body decoded as UTF-8 (invalid sequences replaced).
    public var text: String { String(decoding: body, as: UTF8.self) }
}
