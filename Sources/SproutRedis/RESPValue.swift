/// A Redis reply, RESP2 or RESP3 (https://redis.io/docs/latest/develop/reference/protocol-spec/).
public enum RESPValue: Equatable, Sendable, CustomStringConvertible {
    /// `+OK`: a short status text.
    case simpleString(String)
    /// `-ERR …` or `!` (RESP3 blob error): the server refused the command. The client throws
    /// these as ``RedisError/server(code:message:)`` unless asked for raw replies (pipelines,
    /// transactions, where each reply stands on its own).
    case error(String)
    /// `:42`.
    case integer(Int64)
    /// `$5\r\nhello`: binary-safe bytes.
    case bulkString([UInt8])
    /// `*N` (and RESP3 `~` sets and `>` pushes, which the client reports as arrays).
    case array([RESPValue])
    /// `$-1`, `*-1` (RESP2) and `_` (RESP3): no value.
    case null
    /// `#t` / `#f` (RESP3).
    case boolean(Bool)
    /// `,3.14` (RESP3).
    case double(Double)
    /// `(12345678901234567890` (RESP3), as its digits.
    case bigNumber(String)
    /// `%N` (RESP3): key-value pairs in the server's order.
    case map([RESPPair])

    /// The bytes of a bulk or simple string (a verbatim string's text), nil otherwise.
    public var bytes: [UInt8]? {
        switch self {
        case .bulkString(let bytes): bytes
        case .simpleString(let text): Array(text.utf8)
        default: nil
        }
    }

    /// A bulk or simple string as UTF-8 text (invalid sequences replaced), nil otherwise.
    public var string: String? {
        switch self {
        case .bulkString(let bytes): String(decoding: bytes, as: UTF8.self)
        case .simpleString(let text): text
        default: nil
        }
    }

    /// An integer, or a string of digits (RESP2 replies some numbers as strings), nil otherwise.
    public var integer: Int64? {
        switch self {
        case .integer(let value): value
        case .bulkString, .simpleString: string.flatMap { Int64($0) }
        default: nil
        }
    }

    /// The elements of an array, nil otherwise.
    public var array: [RESPValue]? {
        if case .array(let values) = self { return values }
        return nil
    }

    /// True for ``null``.
    public var isNull: Bool { self == .null }

    public var description: String {
        switch self {
        case .simpleString(let text): text
        case .error(let message): "(error) \(message)"
        case .integer(let value): "(integer) \(value)"
        case .bulkString(let bytes): String(decoding: bytes, as: UTF8.self).debugDescription
        case .array(let values): "[" + values.map(\.description).joined(separator: ", ") + "]"
        case .null: "(nil)"
        case .boolean(let value): value ? "(true)" : "(false)"
        case .double(let value): "(double) \(value)"
        case .bigNumber(let digits): "(big number) \(digits)"
        case .map(let pairs): "{" + pairs.map { "\($0.key): \($0.value)" }.joined(separator: ", ") + "}"
        }
    }
}

/// One entry of a RESP3 map.
public struct RESPPair: Equatable, Sendable {
    /// The key.
    public var key: RESPValue
    /// The value.
    public var value: RESPValue

    /// Creates a pair.
    public init(key: RESPValue, value: RESPValue) {
        self.key = key
        self.value = value
    }
}
