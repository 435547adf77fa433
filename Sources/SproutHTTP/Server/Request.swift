public import HTTPTypes
public import Sprout

/// A request as a handler sees it: the head (swift-http-types' `HTTPRequest`), a body that is
/// read only when asked, the route's parameters and the peer.
///
/// `head.authority` holds the `Host` (or an absolute-form target's authority), and
/// `head.headerFields` every other field as received (swift-http-types keeps `Host` out of
/// the fields). The body reader belongs to
/// the connection and is valid until the response has been written.
public struct Request {
    /// Method, path (with the query), authority and header fields.
    public var head: HTTPRequest
    /// The body, streamed from the connection on demand.
    public let body: RequestBody
    /// The client's address.
    public let peer: SocketAddress
    /// Values captured by the route's `:name` segments and its trailing `*`.
    public var parameters: RouteParameters
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    public let minorVersion: Int

    /// True when the method is one of RFC 9110's (and PATCH): the router answers 501 otherwise.
    let isKnownMethod: Bool

    init(head: HTTPRequest, body: RequestBody, peer: SocketAddress, minorVersion: Int, isKnownMethod: Bool) {
        self.head = head
        self.isKnownMethod = isKnownMethod
        self.body = body
        self.peer = peer
        self.minorVersion = minorVersion
        parameters = RouteParameters()
    }

    /// The method.
    public var method: HTTPRequest.Method { head.method }
    /// The header fields.
    public var headerFields: HTTPFields { head.headerFields }

    /// The path without the query, still percent-encoded (`/feed/ann`).
    public var path: Substring {
        let full = head.path ?? ""
        guard let mark = full.utf8.firstIndex(of: UInt8(ascii: "?")) else { return full[...] }
        return full[..<mark]
    }

    /// The decoded query parameters (`?n=3&q=a+b`).
    public var query: QueryParameters {
        let full = head.path ?? ""
        guard let mark = full.utf8.firstIndex(of: UInt8(ascii: "?")) else { return QueryParameters(parsing: "") }
        return QueryParameters(parsing: full[full.utf8.index(after: mark)...])
    }
}

/// The values a route pattern captured: `:name` segments by name, the trailing `*` as `"*"`.
public struct RouteParameters: Sendable {
    private var storage: [(name: String, value: Substring)] = []

    /// No parameters.
    public init() {}

    /// The value captured for `name` (percent-encoding kept), or nil.
    public subscript(name: String) -> Substring? {
        storage.first { $0.name == name }?.value
    }

    /// The value captured for `name`, percent-decoded, or nil.
    public func decoded(_ name: String) -> String? {
        self[name].map { PercentDecoding.decode($0, plusAsSpace: false) }
    }

    /// Every capture in pattern order.
    public var all: [(name: String, value: Substring)] { storage }

    mutating func append(_ name: String, _ value: Substring) {
        storage.append((name, value))
    }
}

/// Query-string parameters, decoded (`+` as space, `%XX` escapes), in order.
public struct QueryParameters: Sequence, Sendable {
    /// Every `name=value` pair in order (a bare `name` has an empty value).
    public let pairs: [(name: String, value: String)]

    /// Parses a query string (without the `?`).
    public init(parsing query: Substring) {
        var pairs: [(String, String)] = []
        for part in query.split(separator: "&", omittingEmptySubsequences: true) {
            if let equals = part.firstIndex(of: "=") {
                pairs.append((PercentDecoding.decode(part[..<equals], plusAsSpace: true),
                              PercentDecoding.decode(part[part.index(after: equals)...], plusAsSpace: true)))
            } else {
                pairs.append((PercentDecoding.decode(part, plusAsSpace: true), ""))
            }
        }
        self.pairs = pairs
    }

    /// The first value for `name`, or nil.
    public subscript(name: String) -> String? {
        pairs.first { $0.name == name }?.value
    }

    /// Every value for `name`, in order.
    public func values(for name: String) -> [String] {
        pairs.filter { $0.name == name }.map(\.value)
    }

    public func makeIterator() -> IndexingIterator<[(name: String, value: String)]> {
        pairs.makeIterator()
    }
}

enum PercentDecoding {
    /// Decodes `%XX` escapes (and `+` as a space when asked); malformed escapes stay as they are.
    static func decode(_ text: Substring, plusAsSpace: Bool) -> String {
        let utf8 = text.utf8
        guard utf8.contains(where: { $0 == UInt8(ascii: "%") || (plusAsSpace && $0 == UInt8(ascii: "+")) }) else {
            return String(text)
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(utf8.count)
        var index = utf8.startIndex
        while index != utf8.endIndex {
            let byte = utf8[index]
            if byte == UInt8(ascii: "%"),
               let first = utf8.index(index, offsetBy: 1, limitedBy: utf8.endIndex), first != utf8.endIndex,
               let second = utf8.index(first, offsetBy: 1, limitedBy: utf8.endIndex), second != utf8.endIndex,
               let high = ByteClass.hexValue(utf8[first]), let low = ByteClass.hexValue(utf8[second]) {
                bytes.append(UInt8(high << 4 | low))
                index = utf8.index(after: second)
                continue
            }
            bytes.append(plusAsSpace && byte == UInt8(ascii: "+") ? UInt8(ascii: " ") : byte)
            index = utf8.index(after: index)
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
