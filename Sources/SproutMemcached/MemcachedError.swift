/// Why a memcached operation failed.
public enum MemcachedError: Error, Equatable, CustomStringConvertible {
    /// The key cannot be sent: empty, longer than 250 bytes, or with a space or control byte
    /// (the text protocol's rules). Nothing was sent.
    case invalidKey(String)
    /// The value is larger than the client's limit (memcached's item size). Nothing was sent.
    case valueTooLarge(size: Int, limit: Int)
    /// The server answered `CLIENT_ERROR`, `SERVER_ERROR` or `ERROR`, with its message.
    case server(String)
    /// The server sent something that is not the protocol; the connection is discarded.
    case protocolError(String)
    /// The connection ended or failed mid-command; the connection is discarded and the
    /// server marked down.
    case connectionFailed(server: String, reason: String)
    /// The server was marked down after a failure; it is tried again after the retry delay.
    case serverDown(server: String)
    /// No reply within the timeout.
    case timeout(server: String)

    public var description: String {
        switch self {
        case .invalidKey(let reason): "invalid memcached key: \(reason)"
        case .valueTooLarge(let size, let limit): "memcached value of \(size) bytes exceeds the limit of \(limit)"
        case .server(let message): "memcached: \(message)"
        case .protocolError(let reason): "memcached protocol error: \(reason)"
        case .connectionFailed(let server, let reason): "memcached \(server): \(reason)"
        case .serverDown(let server): "memcached \(server) is marked down after a failure"
        case .timeout(let server): "memcached \(server): no reply within the timeout"
        }
    }

    /// Errors after which the connection cannot be trusted.
    var breaksConnection: Bool {
        switch self {
        case .invalidKey, .valueTooLarge, .server: false
        case .protocolError, .connectionFailed, .serverDown, .timeout: true
        }
    }
}

/// What a storage command did.
public enum MemcachedStoreResult: Sendable, Equatable {
    /// `STORED` / `HD`.
    case stored
    /// `NOT_STORED` / `NS`: an add on an existing key, a replace on a missing one.
    case notStored
    /// `EXISTS` / `EX`: a cas whose token is stale (someone else stored first).
    case exists
    /// `NOT_FOUND` / `NF`: a cas on a missing key.
    case notFound
}

/// A value read from memcached.
public struct MemcachedItem: Sendable, Equatable {
    /// The bytes stored.
    public var value: [UInt8]
    /// The client flags stored with it.
    public var flags: UInt32
    /// The cas token (from `gets` or meta `c`), for ``MemcachedClient/cas(_:_:token:flags:expiration:)``.
    public var cas: UInt64?
    /// Seconds left to live (meta `t`: -1 for none), when asked.
    public var ttl: Int?

    /// Creates an item.
    public init(value: [UInt8], flags: UInt32 = 0, cas: UInt64? = nil, ttl: Int? = nil) {
        self.value = value
        self.flags = flags
        self.cas = cas
        self.ttl = ttl
    }
}
