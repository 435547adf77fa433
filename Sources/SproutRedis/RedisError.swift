/// Why a Redis command failed.
public enum RedisError: Error, Equatable, CustomStringConvertible {
    /// The server refused the command: `code` is the reply's first word (`ERR`, `WRONGTYPE`,
    /// `MOVED`, `NOAUTH`, `WRONGPASS`, …), `message` the whole reply.
    case server(code: String, message: String)
    /// The server sent bytes that are not RESP (or absurd sizes); the connection is discarded.
    case protocolError(String)
    /// The connection ended before the reply (the server went away); the connection is
    /// discarded.
    case connectionClosed(String)
    /// No reply within the command timeout (or no connection within the connect timeout).
    case timeout(String)
    /// The reply had another shape than the command's helper expects.
    case unexpectedReply(String)
    /// The command cannot be sent as given.
    case invalidArgument(String)

    /// Makes the typed error of an error reply (`-WRONGTYPE Operation against …`).
    static func fromReply(_ message: String) -> RedisError {
        let code = message.prefix { $0 != " " }
        return .server(code: String(code), message: message)
    }

    /// For `MOVED slot host:port` and `ASK slot host:port` (Redis Cluster): the slot and address.
    public var redirection: (slot: Int, address: String)? {
        guard case .server(let code, let message) = self, code == "MOVED" || code == "ASK" else { return nil }
        let words = message.split(separator: " ")
        guard words.count == 3, let slot = Int(words[1]) else { return nil }
        return (slot, String(words[2]))
    }

    /// True for errors after which the connection cannot be trusted (IO, protocol, timeouts);
    /// a server's error reply leaves the connection usable.
    var breaksConnection: Bool {
        switch self {
        case .server, .unexpectedReply, .invalidArgument: false
        case .protocolError, .connectionClosed, .timeout: true
        }
    }

    public var description: String {
        switch self {
        case .server(_, let message): "Redis: \(message)"
        case .protocolError(let reason): "Redis protocol error: \(reason)"
        case .connectionClosed(let reason): "Redis connection closed: \(reason)"
        case .timeout(let reason): "Redis timeout: \(reason)"
        case .unexpectedReply(let reason): "unexpected Redis reply: \(reason)"
        case .invalidArgument(let reason): "invalid Redis command: \(reason)"
        }
    }
}
