import CSproutSystem
import Glibc

/// A failed name lookup: the `getaddrinfo` error and the name looked up.
public struct ResolverError: Error, Equatable, CustomStringConvertible {
    /// The `EAI_*` code `getaddrinfo` returned.
    public let code: Int32
    /// The host that was looked up.
    public let host: String

    public var description: String {
        "cannot resolve '\(host)': \(String(cString: gai_strerror(code))) (EAI \(code))"
    }
}

/// Resolves `host` to socket addresses for `port`, running `getaddrinfo` on
/// ``ThreadPool/shared`` so that only the calling greenlet waits (gevent's default resolver).
///
/// Numeric addresses are converted without a lookup. Results keep `getaddrinfo`'s order
/// (RFC 6724), without duplicates.
///
/// - Parameters:
///   - host: A host name or a numeric IPv4/IPv6 address.
///   - port: The port to put in every address (0...65535).
///   - kind: Stream (TCP, the default) or datagram (UDP) addresses.
/// - Returns: At least one address.
/// - Throws: ``ResolverError`` if the name cannot be resolved; ``SocketAddressError`` for a
///   bad port; while waiting, `GreenletExit` or an enclosing `Timeout`.
/// - Note: A switch point unless `host` is numeric.
public func resolve(host: String, port: Int, kind: Socket.Kind = .stream) throws -> [SocketAddress] {
    let type = Int32(kind == .stream ? SOCK_STREAM.rawValue : SOCK_DGRAM.rawValue)
    guard (0...65535).contains(port) else { throw SocketAddressError.invalidPort(port) }
    if let numeric = try? SocketAddress(ip: host, port: port) { return [numeric] }
    let found = try ThreadPool.shared.run { () throws -> [SocketAddress] in
        var hints = addrinfo()
        hints.ai_socktype = type
        hints.ai_flags = AI_ADDRCONFIG
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &list)
        guard rc == 0 else { throw ResolverError(code: rc, host: host) }
        defer { freeaddrinfo(list) }
        var addresses: [SocketAddress] = []
        var node = list
        while let entry = node {
            if let address = entry.pointee.ai_addr {
                var storage = sockaddr_storage()
                let length = entry.pointee.ai_addrlen
                withUnsafeMutableBytes(of: &storage) { raw in
                    raw.copyMemory(from: UnsafeRawBufferPointer(start: address, count: Int(length)))
                }
                let socketAddress = SocketAddress(storage: storage, length: length)
                if !addresses.contains(socketAddress) { addresses.append(socketAddress) }
            }
            node = entry.pointee.ai_next
        }
        guard !addresses.isEmpty else { throw ResolverError(code: EAI_NONAME, host: host) }
        return addresses
    }
    return found
}
