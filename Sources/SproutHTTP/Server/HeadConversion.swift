import HTTPTypes

/// Builds swift-http-types' `HTTPRequest` from a parsed head: the one place strings are made.
///
/// As in swift-http-types' model (and NIOHTTPTypes), `Host` becomes the request's `authority`
/// and is not repeated among the header fields.
enum HeadConversion {
    static func request(from head: ParsedRequestHead, in bytes: UnsafeRawBufferPointer) -> HTTPRequest {
        let method = self.method(head, bytes)
        var scheme: String?
        if let span = head.absoluteScheme { scheme = bytes.equalsCaseInsensitive(span, "https") ? "https" : "http" }
        let authority = (head.targetAuthority ?? head.host).map { string(bytes, $0) }
        var path: String?
        if head.knownMethod != .connect {
            let raw = head.pathAndQuery
            if head.absoluteScheme != nil && (raw.count == 0 || bytes[raw.start] == UInt8(ascii: "?")) {
                path = "/" + string(bytes, raw)
            } else {
                path = string(bytes, raw)
            }
        }
        var fields = HTTPFields()
        fields.reserveCapacity(head.fields.count)
        for field in head.fields where field.kind != .host {
            let value = UnsafeRawBufferPointer(rebasing: bytes[field.value.start..<field.value.end])
            fields.append(HTTPField(name: name(field, bytes), value: value))
        }
        return HTTPRequest(method: method, scheme: scheme, authority: authority, path: path, headerFields: fields)
    }

    @inline(__always)
    private static func string(_ bytes: UnsafeRawBufferPointer, _ span: ByteSpan) -> String {
        String(decoding: UnsafeRawBufferPointer(rebasing: bytes[span.start..<span.end]), as: UTF8.self)
    }

    private static func method(_ head: ParsedRequestHead, _ bytes: UnsafeRawBufferPointer) -> HTTPRequest.Method {
        switch head.knownMethod {
        case .get: .get
        case .head: .head
        case .post: .post
        case .put: .put
        case .delete: .delete
        case .connect: .connect
        case .options: .options
        case .trace: .trace
        case .patch: .patch
        case nil: HTTPRequest.Method(string(bytes, head.method))!  // a token, so always valid
        }
    }

    @inline(__always)
    private static func name(_ field: ParsedRequestHead.Field, _ bytes: UnsafeRawBufferPointer) -> HTTPField.Name {
        // The names the parser recognised come from static tables: no string is built for them.
        switch field.kind {
        case .contentLength: return .contentLength
        case .transferEncoding: return .transferEncoding
        case .connection: return .connection
        case .expect: return .expect
        case .contentType: return .contentType
        case .userAgent: return .userAgent
        case .accept: return .accept
        case .other, .host: return HTTPField.Name(string(bytes, field.name))!  // a token, so always valid
        }
    }
}
