import Glibc
import Sprout

/// What `sprout load` sends: where, and the request's bytes, built once and sent as they are
/// on every connection.
struct LoadTarget: Sendable {
    let host: String
    let port: Int
    let address: SocketAddress
    let bytes: [UInt8]
    let isHead: Bool

    struct Invalid: Error, CustomStringConvertible {
        let description: String
    }

    /// Parses `url` (`http://host[:port][/path][?query]`), resolves the host once, and builds
    /// the request: `method`, `headers` ("Name: value"; a Host given here replaces the URL's),
    /// and `body` with its Content-Length.
    ///
    /// - Throws: ``Invalid`` for a URL or header the tool cannot send; ``ResolverError`` when
    ///   the host does not resolve.
    static func make(url: String, method: String, headers: [String], body: [UInt8]?) throws -> LoadTarget {
        guard url.hasPrefix("http://") else {
            throw Invalid(description: url.hasPrefix("https://")
                ? "https is not supported by sprout load: put it behind a TLS terminator or measure over http"
                : "the URL must start with http://")
        }
        let rest = url.dropFirst("http://".count)
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        var target = String(rest[authorityEnd...])
        if target.isEmpty { target = "/" } else if target.hasPrefix("?") { target = "/" + target }
        guard !authority.isEmpty, !authority.contains("@") else { throw Invalid(description: "no host in \(url)") }
        var host: Substring
        var port = 80
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw Invalid(description: "unclosed [ in \(url)") }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":"), let value = Int(after.dropFirst()) else { throw Invalid(description: "bad port in \(url)") }
                port = value
            }
        } else if let colon = authority.lastIndex(of: ":") {
            host = authority[..<colon]
            guard let value = Int(authority[authority.index(after: colon)...]) else { throw Invalid(description: "bad port in \(url)") }
            port = value
        } else {
            host = authority
        }
        guard (1...65535).contains(port) else { throw Invalid(description: "port \(port) out of range") }
        guard method.utf8.allSatisfy({ $0 > 32 && $0 < 127 }), !method.isEmpty else {
            throw Invalid(description: "bad method \(method)")
        }
        for byte in target.utf8 where byte <= 32 || byte == 127 {
            throw Invalid(description: "the URL's path has a space or control character; percent-encode it")
        }

        var fields: [(String, String)] = []
        for header in headers {
            guard let colon = header.firstIndex(of: ":") else { throw Invalid(description: "-H '\(header)': expected 'Name: value'") }
            let name = String(header[..<colon])
            let value = String(header[header.index(after: colon)...].drop { $0 == " " || $0 == "\t" })
            guard !name.isEmpty, name.utf8.allSatisfy({ $0 > 32 && $0 < 127 && $0 != UInt8(ascii: ":") }) else {
                throw Invalid(description: "-H '\(header)': bad field name")
            }
            guard !value.utf8.contains(where: { $0 == 13 || $0 == 10 || $0 == 0 }) else {
                throw Invalid(description: "-H '\(header)': a line break in the value")
            }
            fields.append((name, value))
        }
        let hostHeader = authority.contains(":") ? String(authority) : String(host)
        var head = "\(method) \(target) HTTP/1.1\r\n"
        if !fields.contains(where: { $0.0.lowercased() == "host" }) { head += "Host: \(hostHeader)\r\n" }
        for (name, value) in fields { head += "\(name): \(value)\r\n" }
        if let body, !fields.contains(where: { $0.0.lowercased() == "content-length" }) {
            head += "Content-Length: \(body.count)\r\n"
        }
        head += "\r\n"

        let addresses = try resolve(host: String(host), port: port)
        guard let address = addresses.first else { throw Invalid(description: "\(host) has no address") }
        return LoadTarget(host: String(host), port: port, address: address,
                          bytes: Array(head.utf8) + (body ?? []), isHead: method == "HEAD")
    }
}
