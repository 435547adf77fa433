import Sprout

/// A value that can be sent as one argument of a Redis command (a bulk string): text in UTF-8,
/// bytes as they are, numbers in decimal.
public protocol RedisArgument {
    /// Calls `body` with this argument's bytes (not its RESP framing).
    func withRedisBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R
}

extension String: RedisArgument {
    /// Its UTF-8 bytes.
    public func withRedisBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        var text = self
        return try text.withUTF8 { try body(UnsafeRawBufferPointer($0)) }
    }
}

extension Substring: RedisArgument {
    /// Its UTF-8 bytes.
    public func withRedisBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try String(self).withRedisBytes(body)
    }
}

extension Array: RedisArgument where Element == UInt8 {
    /// The bytes as they are.
    public func withRedisBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withUnsafeBytes(body)
    }
}

extension Int: RedisArgument {
    /// Its decimal digits.
    public func withRedisBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try String(self).withRedisBytes(body)
    }
}

extension Int64: RedisArgument {
    /// Its decimal digits.
    public func withRedisBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try String(self).withRedisBytes(body)
    }
}

extension Double: RedisArgument {
    /// Its shortest decimal form (`+inf`/`-inf` for infinities).
    public func withRedisBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try (isInfinite ? (self < 0 ? "-inf" : "+inf") : String(self)).withRedisBytes(body)
    }
}

/// One command, encoded as a RESP array of bulk strings while it is built.
///
/// ```swift
/// var command = RedisCommand("SET")
/// command.append("greeting")
/// command.append("hello")
/// let reply = try client.send(command)
/// ```
public struct RedisCommand {
    var count = 0
    var body: [UInt8] = []
    /// The command's name in capitals, for the commands that change a connection's state.
    let name: String

    /// A command named `name` (`"GET"`); add its arguments with ``append(_:)``.
    public init(_ name: String) {
        self.name = Self.stateName(name)
        body.reserveCapacity(64)
        append(name)
    }

    /// A command from all its words: `RedisCommand(words: ["SET", "k", "v"])`.
    public init(words: [any RedisArgument]) {
        name = (words.first as? String).map(Self.stateName) ?? ""
        for word in words { appendAny(word) }
    }

    /// `name` in capitals when it is a command that changes the connection's session (the only
    /// ones the connection tracks), else empty: ordinary commands pay no uppercasing.
    private static func stateName(_ name: String) -> String {
        let count = name.utf8.count
        guard count >= 4 && count <= 10 else { return "" }
        let upper = name.uppercased()
        return RedisConnection.sessionCommands.contains(upper) ? upper : ""
    }

    /// Adds one argument.
    @inline(__always)
    public mutating func append(_ argument: some RedisArgument) {
        argument.withRedisBytes { appendBulk($0) }
    }

    /// Adds one argument given as an existential (for variadic helpers).
    public mutating func appendAny(_ argument: any RedisArgument) {
        argument.withRedisBytes { appendBulk($0) }
    }

    /// Adds each of `arguments`.
    public mutating func append<S: Sequence>(contentsOf arguments: S) where S.Element: RedisArgument {
        for argument in arguments { append(argument) }
    }

    private mutating func appendBulk(_ bytes: UnsafeRawBufferPointer) {
        body.append(UInt8(ascii: "$"))
        body.appendDecimal(bytes.count)
        body.append(0x0D)
        body.append(0x0A)
        body.append(contentsOf: bytes)
        body.append(0x0D)
        body.append(0x0A)
        count += 1
    }

    /// Appends the command as the server reads it (`*N\r\n$len\r\n…`) to `output`.
    func encode(into output: inout [UInt8]) {
        output.append(UInt8(ascii: "*"))
        output.appendDecimal(count)
        output.append(0x0D)
        output.append(0x0A)
        output.append(contentsOf: body)
    }
}
