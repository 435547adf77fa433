/// The kinds of message in a Thrift exchange.
public enum TMessageType: Int32, Sendable {
    /// A request that expects a reply.
    case call = 1
    /// The reply to a call.
    case reply = 2
    /// A reply carrying a ``TApplicationError`` instead of a result.
    case exception = 3
    /// A request that expects no reply.
    case oneway = 4
}

/// The wire type of a Thrift value (the numbering of the binary protocol).
public enum TType: Int32, Sendable {
    /// The end of a struct's fields.
    case stop = 0
    /// No value (never on the wire in a field).
    case void = 1
    /// `bool`.
    case bool = 2
    /// `i8` (`byte`).
    case i8 = 3
    /// `double` (IEEE 754, 64 bits).
    case double = 4
    /// `i16`.
    case i16 = 6
    /// `i32`, and enums.
    case i32 = 8
    /// `i64`.
    case i64 = 10
    /// `string` and `binary`.
    case string = 11
    /// Structs, exceptions and unions.
    case `struct` = 12
    /// `map<K, V>`.
    case map = 13
    /// `set<T>`.
    case set = 14
    /// `list<T>`.
    case list = 15
}
