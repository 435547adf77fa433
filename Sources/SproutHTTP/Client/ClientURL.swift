/// An `http` or `https` URL split the way a client needs it: where to connect, what to send as
/// `Host`, and the request-target.
struct ClientURL: Hashable, CustomStringConvertible {
    enum Scheme: String {
        case http
        case https

        var defaultPort: Int { self == .http ? 80 : 443 }
    }

    var scheme: Scheme
    /// The host to connect to: a name, an IPv4 address, or an IPv6 address without brackets.
    var host: String
    var port: Int
    /// Path and query, never empty ("/" at least).
    var target: String

    /// `Host`'s value: the host (IPv6 bracketed), with the port unless it is the scheme's default.
    private(set) var authority = ""
    /// Connections to the same origin share a pool.
    private(set) var origin = ""

    private mutating func computeNames() {
        let bracketed = host.contains(":") ? "[\(host)]" : host
        authority = port == scheme.defaultPort ? bracketed : "\(bracketed):\(port)"
        origin = "\(scheme.rawValue)://\(authority)"
    }

    var description: String { origin + target }

    /// Parses an absolute `http://` or `https://` URL.
    /// - Throws: ``HTTPClientError`` of kind ``HTTPClientError/Kind/invalidURL`` saying what is wrong.
    init(_ string: String) throws(HTTPClientError) {
        guard let colon = string.firstIndex(of: ":"), string[colon...].hasPrefix("://") else {
            throw .invalidURL(string, "not an absolute URL (http://host/path)")
        }
        guard let scheme = Scheme(rawValue: string[..<colon].lowercased()) else {
            throw .invalidURL(string, "only http and https are supported")
        }
        var rest = string[string.index(colon, offsetBy: 3)...]
        if let hash = rest.firstIndex(of: "#") { rest = rest[..<hash] }   // fragments are not sent
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
        try self.init(scheme: scheme, authority: String(rest[..<authorityEnd]), target: String(rest[authorityEnd...]),
                      whole: string)
    }

    init(scheme: Scheme, authority: String, target rawTarget: String, whole: String) throws(HTTPClientError) {
        guard !authority.contains("@") else {
            throw .invalidURL(whole, "credentials in URLs are not supported; send an Authorization header")
        }
        var host: Substring
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw .invalidURL(whole, "unclosed [ in the host") }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw .invalidURL(whole, "unexpected characters after ]") }
                portText = after.dropFirst()
            }
        } else if let colon = authority.lastIndex(of: ":") {
            host = authority[..<colon]
            portText = authority[authority.index(after: colon)...]
        } else {
            host = Substring(authority)
        }
        guard !host.isEmpty else { throw .invalidURL(whole, "no host") }
        let hostAllowed = host.utf8.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
                || b == UInt8(ascii: "-") || b == UInt8(ascii: ".") || b == UInt8(ascii: "_") || b == UInt8(ascii: ":")
                || b == UInt8(ascii: "%")
        }
        guard hostAllowed else { throw .invalidURL(whole, "the host \(host) has characters a host cannot have") }
        var port = scheme.defaultPort
        if let portText, !portText.isEmpty {
            guard portText.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let number = Int(portText), (1...65535).contains(number) else {
                throw .invalidURL(whole, "the port \(portText) is not a number in 1...65535")
            }
            port = number
        }
        var target = rawTarget.isEmpty ? "/" : rawTarget
        if target.hasPrefix("?") { target = "/" + target }
        // A target goes on the request line as is: no space, no control byte, nothing that would
        // let one URL smuggle a header or a second request.
        guard target.utf8.allSatisfy({ $0 > 0x20 && $0 != 0x7F }) else {
            throw .invalidURL(whole, "the path has spaces or control characters (percent-encode them)")
        }
        self.scheme = scheme
        self.host = host.lowercased()
        self.port = port
        self.target = target
        computeNames()
    }

    /// The URL a `Location` field points to, relative to this one (RFC 9110 §10.2.2, RFC 3986 §5).
    func resolving(_ location: String) throws(HTTPClientError) -> ClientURL {
        if let colon = location.firstIndex(of: ":"), location[colon...].hasPrefix("://"),
           !location[..<colon].contains("/") {
            return try ClientURL(location)
        }
        if location.hasPrefix("//") { return try ClientURL(scheme.rawValue + ":" + location) }
        var resolved = self
        if location.hasPrefix("/") {
            resolved.target = location
        } else if location.hasPrefix("?") {
            resolved.target = String(target.prefix { $0 != "?" }) + location
        } else {
            let path = target.prefix { $0 != "?" }
            let directory = path[...(path.lastIndex(of: "/") ?? path.startIndex)]
            resolved.target = String(directory) + location
        }
        if let hash = resolved.target.firstIndex(of: "#") { resolved.target = String(resolved.target[..<hash]) }
        guard resolved.target.utf8.allSatisfy({ $0 > 0x20 && $0 != 0x7F }) else {
            throw .invalidURL(location, "the redirect's path has spaces or control characters")
        }
        return resolved
    }
}
