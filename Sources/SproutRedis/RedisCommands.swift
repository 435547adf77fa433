/// Typed helpers for the common commands, for anything that can send a command: a pooled
/// ``RedisClient`` or one held ``RedisConnection``.
///
/// Every helper throws what ``send(_:)`` throws, and ``RedisError/unexpectedReply(_:)`` when the
/// reply has another shape than the command's (a proxy answering oddly, say).
public protocol RedisCommands {
    /// Sends `command` and returns its reply; error replies are thrown.
    func send(_ command: RedisCommand) throws -> RESPValue
}

/// What `SET` does when the key exists or not.
public enum RedisSetCondition: Sendable {
    /// Always set.
    case always
    /// `NX`: only if the key does not exist.
    case ifNotExists
    /// `XX`: only if the key exists.
    case ifExists
}

extension RedisCommands {
    /// Sends a command given as words: `try redis.send("HSET", "h", "f", "v")`.
    @discardableResult
    public func send(_ name: String, _ arguments: any RedisArgument...) throws -> RESPValue {
        var command = RedisCommand(name)
        for argument in arguments { command.appendAny(argument) }
        return try send(command)
    }

    // MARK: Connection

    /// `PING`: the server's answer (`PONG`).
    @discardableResult
    public func ping() throws -> String {
        try string(of: send(RedisCommand("PING")), "PING")
    }

    // MARK: Strings

    /// `GET key`: the value, or nil if the key does not exist.
    public func get(_ key: some RedisArgument) throws -> [UInt8]? {
        try optionalBytes(of: send(RedisCommand("GET").with(key)), "GET")
    }

    /// `GET key` as UTF-8 text.
    public func getString(_ key: some RedisArgument) throws -> String? {
        try get(key).map { String(decoding: $0, as: UTF8.self) }
    }

    /// `SET key value [PX ms] [NX|XX]`.
    /// - Returns: True if the value was set (false when `condition` prevented it).
    @discardableResult
    public func set(_ key: some RedisArgument, _ value: some RedisArgument, expiration: Duration? = nil,
                    condition: RedisSetCondition = .always) throws -> Bool {
        var command = RedisCommand("SET").with(key).with(value)
        if let expiration {
            let milliseconds = expiration.components.seconds * 1000 + expiration.components.attoseconds / 1_000_000_000_000_000
            guard milliseconds > 0 else { throw RedisError.invalidArgument("an expiration must be at least 1 ms") }
            command.append("PX")
            command.append(Int64(milliseconds))
        }
        switch condition {
        case .always: break
        case .ifNotExists: command.append("NX")
        case .ifExists: command.append("XX")
        }
        return try send(command) != .null
    }

    /// `MGET keys…`: each value or nil, in order.
    public func mget(_ keys: [String]) throws -> [[UInt8]?] {
        var command = RedisCommand("MGET")
        command.append(contentsOf: keys)
        return try elements(of: send(command), "MGET").map { try optionalBytes(of: $0, "MGET") }
    }

    /// `MSET key value …`.
    public func mset(_ pairs: [(key: String, value: [UInt8])]) throws {
        var command = RedisCommand("MSET")
        for pair in pairs {
            command.append(pair.key)
            command.append(pair.value)
        }
        _ = try send(command)
    }

    /// `DEL keys…`: how many existed.
    @discardableResult
    public func del(_ keys: String...) throws -> Int {
        var command = RedisCommand("DEL")
        command.append(contentsOf: keys)
        return try int(of: send(command), "DEL")
    }

    /// `EXISTS keys…`: how many exist.
    public func exists(_ keys: String...) throws -> Int {
        var command = RedisCommand("EXISTS")
        command.append(contentsOf: keys)
        return try int(of: send(command), "EXISTS")
    }

    /// `INCRBY key by` (`INCR` for 1): the new value.
    @discardableResult
    public func incr(_ key: some RedisArgument, by amount: Int64 = 1) throws -> Int64 {
        try integer(of: send(RedisCommand("INCRBY").with(key).with(amount)), "INCRBY")
    }

    /// `DECRBY key by`: the new value.
    @discardableResult
    public func decr(_ key: some RedisArgument, by amount: Int64 = 1) throws -> Int64 {
        try integer(of: send(RedisCommand("DECRBY").with(key).with(amount)), "DECRBY")
    }

    /// `APPEND key value`: the new length.
    @discardableResult
    public func append(_ key: some RedisArgument, _ value: some RedisArgument) throws -> Int {
        try int(of: send(RedisCommand("APPEND").with(key).with(value)), "APPEND")
    }

    // MARK: Expiry

    /// `PEXPIRE key ms`: false if the key does not exist.
    @discardableResult
    public func expire(_ key: some RedisArgument, after duration: Duration) throws -> Bool {
        let milliseconds = duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
        return try int(of: send(RedisCommand("PEXPIRE").with(key).with(Int64(milliseconds))), "PEXPIRE") == 1
    }

    /// `TTL key`: seconds left; -1 without expiry, -2 if the key does not exist.
    public func ttl(_ key: some RedisArgument) throws -> Int64 {
        try integer(of: send(RedisCommand("TTL").with(key)), "TTL")
    }

    // MARK: Hashes

    /// `HSET key field value …`: how many fields were new.
    @discardableResult
    public func hset(_ key: some RedisArgument, _ fields: [(field: String, value: [UInt8])]) throws -> Int {
        var command = RedisCommand("HSET").with(key)
        for entry in fields {
            command.append(entry.field)
            command.append(entry.value)
        }
        return try int(of: send(command), "HSET")
    }

    /// `HSET key field value`: true if the field was new.
    @discardableResult
    public func hset(_ key: some RedisArgument, field: String, value: some RedisArgument) throws -> Bool {
        try int(of: send(RedisCommand("HSET").with(key).with(field).with(value)), "HSET") == 1
    }

    /// `HGET key field`.
    public func hget(_ key: some RedisArgument, field: String) throws -> [UInt8]? {
        try optionalBytes(of: send(RedisCommand("HGET").with(key).with(field)), "HGET")
    }

    /// `HGETALL key`: every field and value (a flat array in RESP2, a map in RESP3).
    public func hgetall(_ key: some RedisArgument) throws -> [String: [UInt8]] {
        let reply = try send(RedisCommand("HGETALL").with(key))
        var result: [String: [UInt8]] = [:]
        switch reply {
        case .map(let pairs):
            for pair in pairs {
                guard let field = pair.key.string, let value = pair.value.bytes else { throw unexpected(reply, "HGETALL") }
                result[field] = value
            }
        case .array(let flat):
            guard flat.count % 2 == 0 else { throw unexpected(reply, "HGETALL") }
            for index in stride(from: 0, to: flat.count, by: 2) {
                guard let field = flat[index].string, let value = flat[index + 1].bytes else { throw unexpected(reply, "HGETALL") }
                result[field] = value
            }
        default:
            throw unexpected(reply, "HGETALL")
        }
        return result
    }

    /// `HDEL key fields…`: how many existed.
    @discardableResult
    public func hdel(_ key: some RedisArgument, fields: [String]) throws -> Int {
        var command = RedisCommand("HDEL").with(key)
        command.append(contentsOf: fields)
        return try int(of: send(command), "HDEL")
    }

    /// `HINCRBY key field by`: the new value.
    @discardableResult
    public func hincr(_ key: some RedisArgument, field: String, by amount: Int64 = 1) throws -> Int64 {
        try integer(of: send(RedisCommand("HINCRBY").with(key).with(field).with(amount)), "HINCRBY")
    }

    // MARK: Lists

    /// `LPUSH key values…`: the new length.
    @discardableResult
    public func lpush(_ key: some RedisArgument, _ values: [[UInt8]]) throws -> Int {
        var command = RedisCommand("LPUSH").with(key)
        command.append(contentsOf: values)
        return try int(of: send(command), "LPUSH")
    }

    /// `RPUSH key values…`: the new length.
    @discardableResult
    public func rpush(_ key: some RedisArgument, _ values: [[UInt8]]) throws -> Int {
        var command = RedisCommand("RPUSH").with(key)
        command.append(contentsOf: values)
        return try int(of: send(command), "RPUSH")
    }

    /// `LPOP key`.
    public func lpop(_ key: some RedisArgument) throws -> [UInt8]? {
        try optionalBytes(of: send(RedisCommand("LPOP").with(key)), "LPOP")
    }

    /// `RPOP key`.
    public func rpop(_ key: some RedisArgument) throws -> [UInt8]? {
        try optionalBytes(of: send(RedisCommand("RPOP").with(key)), "RPOP")
    }

    /// `LRANGE key start stop` (inclusive; negative counts from the end).
    public func lrange(_ key: some RedisArgument, _ start: Int, _ stop: Int) throws -> [[UInt8]] {
        try elements(of: send(RedisCommand("LRANGE").with(key).with(start).with(stop)), "LRANGE").map { try bytes(of: $0, "LRANGE") }
    }

    /// `LLEN key`.
    public func llen(_ key: some RedisArgument) throws -> Int {
        try int(of: send(RedisCommand("LLEN").with(key)), "LLEN")
    }

    // MARK: Sets

    /// `SADD key members…`: how many were new.
    @discardableResult
    public func sadd(_ key: some RedisArgument, _ members: [[UInt8]]) throws -> Int {
        var command = RedisCommand("SADD").with(key)
        command.append(contentsOf: members)
        return try int(of: send(command), "SADD")
    }

    /// `SREM key members…`: how many were there.
    @discardableResult
    public func srem(_ key: some RedisArgument, _ members: [[UInt8]]) throws -> Int {
        var command = RedisCommand("SREM").with(key)
        command.append(contentsOf: members)
        return try int(of: send(command), "SREM")
    }

    /// `SMEMBERS key`.
    public func smembers(_ key: some RedisArgument) throws -> Set<[UInt8]> {
        Set(try elements(of: send(RedisCommand("SMEMBERS").with(key)), "SMEMBERS").map { try bytes(of: $0, "SMEMBERS") })
    }

    /// `SISMEMBER key member`.
    public func sismember(_ key: some RedisArgument, _ member: some RedisArgument) throws -> Bool {
        let reply = try send(RedisCommand("SISMEMBER").with(key).with(member))
        if case .boolean(let value) = reply { return value }
        return try int(of: reply, "SISMEMBER") == 1
    }

    // MARK: Sorted sets

    /// `ZADD key score member …`: how many were new.
    @discardableResult
    public func zadd(_ key: some RedisArgument, _ members: [(score: Double, member: [UInt8])]) throws -> Int {
        var command = RedisCommand("ZADD").with(key)
        for entry in members {
            command.append(entry.score)
            command.append(entry.member)
        }
        return try int(of: send(command), "ZADD")
    }

    /// `ZSCORE key member`.
    public func zscore(_ key: some RedisArgument, _ member: some RedisArgument) throws -> Double? {
        let reply = try send(RedisCommand("ZSCORE").with(key).with(member))
        return try score(of: reply, "ZSCORE")
    }

    /// `ZRANGE key start stop`: members by rank, lowest score first.
    public func zrange(_ key: some RedisArgument, _ start: Int, _ stop: Int) throws -> [[UInt8]] {
        try elements(of: send(RedisCommand("ZRANGE").with(key).with(start).with(stop)), "ZRANGE").map { try bytes(of: $0, "ZRANGE") }
    }

    /// `ZRANGE key start stop WITHSCORES`.
    public func zrangeWithScores(_ key: some RedisArgument, _ start: Int, _ stop: Int) throws -> [(member: [UInt8], score: Double)] {
        let reply = try send(RedisCommand("ZRANGE").with(key).with(start).with(stop).with("WITHSCORES"))
        let flat = try elements(of: reply, "ZRANGE")
        // RESP3 nests [member, score] pairs; RESP2 flattens them.
        if flat.allSatisfy({ $0.array?.count == 2 }) && !flat.isEmpty {
            return try flat.map { pair in
                (try bytes(of: pair.array![0], "ZRANGE"), try score(of: pair.array![1], "ZRANGE") ?? .nan)
            }
        }
        guard flat.count % 2 == 0 else { throw unexpected(reply, "ZRANGE") }
        return try stride(from: 0, to: flat.count, by: 2).map { index in
            (try bytes(of: flat[index], "ZRANGE"), try score(of: flat[index + 1], "ZRANGE") ?? .nan)
        }
    }

    /// `ZINCRBY key by member`: the new score.
    @discardableResult
    public func zincr(_ key: some RedisArgument, _ member: some RedisArgument, by amount: Double) throws -> Double {
        let reply = try send(RedisCommand("ZINCRBY").with(key).with(amount).with(member))
        guard let value = try score(of: reply, "ZINCRBY") else { throw unexpected(reply, "ZINCRBY") }
        return value
    }

    /// `ZREM key members…`: how many were there.
    @discardableResult
    public func zrem(_ key: some RedisArgument, _ members: [[UInt8]]) throws -> Int {
        var command = RedisCommand("ZREM").with(key)
        command.append(contentsOf: members)
        return try int(of: send(command), "ZREM")
    }

    // MARK: Keys

    /// `SCAN` as an iterator over every key (matching `pattern`), a batch of about `count` per
    /// round trip. Keys changed during the scan may be seen twice or not at all (SCAN's rules).
    public func scan(match pattern: String? = nil, count: Int? = nil) -> RedisScan {
        RedisScan(commands: self, pattern: pattern, count: count)
    }

    // MARK: Scripting

    /// `EVAL script numkeys keys… args…`: the script's reply.
    @discardableResult
    public func eval(_ script: String, keys: [String] = [], arguments: [[UInt8]] = []) throws -> RESPValue {
        var command = RedisCommand("EVAL").with(script).with(keys.count)
        command.append(contentsOf: keys)
        command.append(contentsOf: arguments)
        return try send(command)
    }

    /// `EVALSHA sha1 numkeys keys… args…`; a script the server does not know throws
    /// ``RedisError/server(code:message:)`` with code `NOSCRIPT`.
    @discardableResult
    public func evalsha(_ sha1: String, keys: [String] = [], arguments: [[UInt8]] = []) throws -> RESPValue {
        var command = RedisCommand("EVALSHA").with(sha1).with(keys.count)
        command.append(contentsOf: keys)
        command.append(contentsOf: arguments)
        return try send(command)
    }

    /// `SCRIPT LOAD script`: its SHA1, for ``evalsha(_:keys:arguments:)``.
    public func scriptLoad(_ script: String) throws -> String {
        try string(of: send(RedisCommand("SCRIPT").with("LOAD").with(script)), "SCRIPT LOAD")
    }

    // MARK: Pub/sub

    /// `PUBLISH channel message`: how many subscribers received it.
    @discardableResult
    public func publish(_ channel: String, _ message: some RedisArgument) throws -> Int {
        try int(of: send(RedisCommand("PUBLISH").with(channel).with(message)), "PUBLISH")
    }

    // MARK: Reply shapes

    func unexpected(_ reply: RESPValue, _ command: String) -> RedisError {
        .unexpectedReply("\(command) answered \(reply)")
    }

    func integer(of reply: RESPValue, _ command: String) throws -> Int64 {
        guard case .integer(let value) = reply else { throw unexpected(reply, command) }
        return value
    }

    func int(of reply: RESPValue, _ command: String) throws -> Int {
        Int(try integer(of: reply, command))
    }

    func string(of reply: RESPValue, _ command: String) throws -> String {
        guard let text = reply.string else { throw unexpected(reply, command) }
        return text
    }

    func bytes(of reply: RESPValue, _ command: String) throws -> [UInt8] {
        guard let bytes = reply.bytes else { throw unexpected(reply, command) }
        return bytes
    }

    func optionalBytes(of reply: RESPValue, _ command: String) throws -> [UInt8]? {
        if reply == .null { return nil }
        return try bytes(of: reply, command)
    }

    func elements(of reply: RESPValue, _ command: String) throws -> [RESPValue] {
        guard case .array(let values) = reply else { throw unexpected(reply, command) }
        return values
    }

    func score(of reply: RESPValue, _ command: String) throws -> Double? {
        switch reply {
        case .null: return nil
        case .double(let value): return value
        default:
            guard let text = reply.string, let value = Double(text == "inf" || text == "+inf" ? "infinity" : text == "-inf" ? "-infinity" : text) else {
                throw unexpected(reply, command)
            }
            return value
        }
    }
}

/// The keys of a `SCAN`, fetched a batch per round trip as they are iterated.
public struct RedisScan {
    private let commands: any RedisCommands
    private let pattern: String?
    private let count: Int?
    private var cursor = "0"
    private var batch: [[UInt8]] = []
    private var finished = false

    init(commands: any RedisCommands, pattern: String?, count: Int?) {
        self.commands = commands
        self.pattern = pattern
        self.count = count
    }

    /// The next key, or nil once the scan is complete.
    /// - Throws: what ``RedisCommands/send(_:)`` throws.
    /// - Note: A switch point when a new batch is fetched.
    public mutating func next() throws -> [UInt8]? {
        while batch.isEmpty {
            if finished { return nil }
            var command = RedisCommand("SCAN").with(cursor)
            if let pattern { command = command.with("MATCH").with(pattern) }
            if let count { command = command.with("COUNT").with(count) }
            let reply = try commands.send(command)
            guard case .array(let parts) = reply, parts.count == 2, let next = parts[0].string,
                  case .array(let keys) = parts[1] else {
                throw RedisError.unexpectedReply("SCAN answered \(reply)")
            }
            cursor = next
            finished = next == "0"
            batch = try keys.reversed().map { key in
                guard let bytes = key.bytes else { throw RedisError.unexpectedReply("SCAN returned the key \(key)") }
                return bytes
            }
        }
        return batch.removeLast()
    }

    /// Every remaining key.
    public mutating func all() throws -> [[UInt8]] {
        var keys: [[UInt8]] = []
        while let key = try next() { keys.append(key) }
        return keys
    }
}
