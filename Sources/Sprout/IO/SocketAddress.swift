import CSproutSystem
import Glibc

/// An IPv4, IPv6 or Unix-domain socket address.
public struct SocketAddress: Hashable, CustomStringConvertible, Sendable {
    /// The address family.
    public enum Family: Sendable {
        case ipv4, ipv6, unix
    }

    private var storage = sockaddr_storage()
    /// Length of the address in `storage`.
    private(set) var length: socklen_t

    /// Creates an address from a numeric IPv4 or IPv6 literal and a port.
    ///
    /// - Throws: ``SocketAddressError`` if `ip` is not a numeric address or `port` is out of
    ///   range. Host names need ``resolve(host:port:)``.
    public init(ip: String, port: Int) throws {
        guard (0...65535).contains(port) else { throw SocketAddressError.invalidPort(port) }
        var v4 = sockaddr_in()
        if inet_pton(AF_INET, ip, &v4.sin_addr) == 1 {
            v4.sin_family = sa_family_t(AF_INET)
            v4.sin_port = in_port_t(UInt16(port).bigEndian)
            length = socklen_t(MemoryLayout<sockaddr_in>.size)
            withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: v4, as: sockaddr_in.self) }
            return
        }
        var v6 = sockaddr_in6()
        let literal = ip.hasPrefix("[") && ip.hasSuffix("]") ? String(ip.dropFirst().dropLast()) : ip
        if inet_pton(AF_INET6, literal, &v6.sin6_addr) == 1 {
            v6.sin6_family = sa_family_t(AF_INET6)
            v6.sin6_port = in_port_t(UInt16(port).bigEndian)
            length = socklen_t(MemoryLayout<sockaddr_in6>.size)
            withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: v6, as: sockaddr_in6.self) }
            return
        }
        throw SocketAddressError.notNumeric(ip)
    }

    /// Creates a Unix-domain address for `path`.
    /// - Throws: ``SocketAddressError/pathTooLong(_:)`` if the path does not fit `sun_path`.
    public init(unixPath path: String) throws {
        var address = sockaddr_un()
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        let bytes = Array(path.utf8)
        guard bytes.count < capacity else { throw SocketAddressError.pathTooLong(path) }
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + bytes.count + 1)
        withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: address, as: sockaddr_un.self) }
    }

    /// Wraps an address the kernel filled in.
    init(storage: sockaddr_storage, length: socklen_t) {
        self.storage = storage
        self.length = length
    }

    /// The family of the address.
    public var family: Family {
        switch Int32(storage.ss_family) {
        case AF_INET: return .ipv4
        case AF_INET6: return .ipv6
        default: return .unix
        }
    }

    var domain: Int32 { Int32(storage.ss_family) }

    /// The port (0 for Unix-domain addresses).
    public var port: Int {
        withUnsafeBytes(of: storage) { raw in
            switch family {
            case .ipv4: return Int(UInt16(bigEndian: raw.load(as: sockaddr_in.self).sin_port))
            case .ipv6: return Int(UInt16(bigEndian: raw.load(as: sockaddr_in6.self).sin6_port))
            case .unix: return 0
            }
        }
    }

    /// The numeric host (`127.0.0.1`, `::1`) or the Unix path.
    public var host: String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        return withUnsafeBytes(of: storage) { raw in
            switch family {
            case .ipv4:
                var address = raw.load(as: sockaddr_in.self).sin_addr
                inet_ntop(AF_INET, &address, &buffer, socklen_t(buffer.count))
                return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            case .ipv6:
                var address = raw.load(as: sockaddr_in6.self).sin6_addr
                inet_ntop(AF_INET6, &address, &buffer, socklen_t(buffer.count))
                return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            case .unix:
                let pathOffset = MemoryLayout<sockaddr_un>.offset(of: \.sun_path)!
                let count = max(0, Int(length) - pathOffset)
                let bytes = raw[pathOffset..<(pathOffset + count)].prefix { $0 != 0 }
                return String(decoding: bytes, as: UTF8.self)
            }
        }
    }

    public var description: String {
        switch family {
        case .ipv4: return "\(host):\(port)"
        case .ipv6: return "[\(host)]:\(port)"
        case .unix: return "unix:\(host)"
        }
    }

    func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) throws -> R) rethrows -> R {
        try withUnsafeBytes(of: storage) { raw in
            try body(raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), length)
        }
    }

    public static func == (lhs: SocketAddress, rhs: SocketAddress) -> Bool {
        lhs.length == rhs.length && withUnsafeBytes(of: lhs.storage) { l in
            withUnsafeBytes(of: rhs.storage) { r in l.prefix(Int(lhs.length)).elementsEqual(r.prefix(Int(rhs.length))) }
        }
    }

    public func hash(into hasher: inout Hasher) {
        withUnsafeBytes(of: storage) { hasher.combine(bytes: UnsafeRawBufferPointer(rebasing: $0.prefix(Int(length)))) }
    }
}

/// Bad input to ``SocketAddress``.
public struct SocketAddressError: Error, Equatable, CustomStringConvertible {
    public let description: String

    /// `port` is not in 0...65535.
    public static func invalidPort(_ port: Int) -> SocketAddressError {
        SocketAddressError(description: "invalid port \(port): expected 0...65535")
    }
    /// The host is not a numeric IPv4 or IPv6 address.
    public static func notNumeric(_ host: String) -> SocketAddressError {
        SocketAddressError(description: "'\(host)' is not a numeric IPv4 or IPv6 address (use resolve(host:port:) for names)")
    }
    /// The Unix socket path is longer than `sun_path` allows.
    public static func pathTooLong(_ path: String) -> SocketAddressError {
        SocketAddressError(description: "Unix socket path too long (\(path.utf8.count) bytes): \(path)")
    }
}
