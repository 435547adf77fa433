import Glibc
public import Sprout

/// A greenlet-safe memcached client over several servers, keys placed with libmemcached's
/// ketama so that other clients (pylibmc, libmemcached) find the same keys on the same
/// servers.
///
/// ```swift
/// let cache = MemcachedClient(servers: [.init(host: "10.0.0.1"), .init(host: "10.0.0.2")])
/// try cache.set("user:42", Array(json.utf8), expiration: .seconds(300))
/// let hit = try cache.get("user:42")?.value
/// let many = try cache.getMany(["a", "b", "c"])          // one round trip per server
/// ```
///
/// Each server has its own ``ConnectionPool``; a connection that failed mid-command is
/// discarded. A server that fails (refused, reset, timed out) is marked down: commands for
/// its keys throw ``MemcachedError/serverDown(server:)`` at once, without waiting on it, until
/// ``Configuration/retryDelay`` has passed; then it is tried again. Keys (at most 250 bytes,
/// no spaces or control bytes) and value sizes are checked before anything is sent. The
/// client belongs to the hub (thread) of its first command.
public final class MemcachedClient {
    /// One server and its weight (for weighted ketama).
    public struct Server: Sendable, Hashable {
        /// Host name or address, as libmemcached is given it (it is part of the key placement).
        public var host: String
        /// The port (11211 by default).
        public var port: Int
        /// Relative weight (weighted ketama only).
        public var weight: Int

        /// Creates a server entry.
        public init(host: String, port: Int = 11211, weight: Int = 1) {
            self.host = host
            self.port = port
            self.weight = weight
        }

        var name: String { "\(host):\(port)" }
    }

    /// How keys are spread over the servers.
    public enum Distribution: Sendable {
        /// libmemcached's `MEMCACHED_BEHAVIOR_KETAMA` (pylibmc's `"ketama": True`).
        case ketama
        /// libmemcached's `MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED`.
        case ketamaWeighted
    }

    /// Limits and timeouts.
    public struct Configuration: Sendable {
        /// Key placement.
        public var distribution: Distribution
        /// The most connections open to one server.
        public var maxConnectionsPerServer: Int
        /// The longest a connect may take.
        public var connectTimeout: Duration
        /// The longest a reply may take (each read and write).
        public var timeout: Duration
        /// How long a failed server is left alone before it is tried again.
        public var retryDelay: Duration
        /// The largest value sent (memcached's default item size is 1 MiB, headers included).
        public var maxValueSize: Int

        /// A configuration with the documented defaults.
        public init(distribution: Distribution = .ketama, maxConnectionsPerServer: Int = 20,
                    connectTimeout: Duration = .seconds(2), timeout: Duration = .seconds(2),
                    retryDelay: Duration = .seconds(2), maxValueSize: Int = 1024 * 1024 - 1024) {
            self.distribution = distribution
            self.maxConnectionsPerServer = maxConnectionsPerServer
            self.connectTimeout = connectTimeout
            self.timeout = timeout
            self.retryDelay = retryDelay
            self.maxValueSize = maxValueSize
        }
    }

    /// The servers, in the order given.
    public let servers: [Server]
    /// The client's configuration.
    public let configuration: Configuration
    private let ketama: Ketama
    private var pools: [ConnectionPool<MemcachedConnection>?]
    private var downUntil: [ContinuousClock.Instant?]

    /// Creates a client; nothing is opened until the first command.
    /// - Precondition: at least one server.
    public init(servers: [Server], configuration: Configuration = Configuration()) {
        precondition(!servers.isEmpty, "MemcachedClient: at least one server")
        self.servers = servers
        self.configuration = configuration
        ketama = Ketama(servers: servers.map { ($0.host, $0.port, $0.weight) },
                        mode: configuration.distribution == .ketama ? .ketama : .weighted)
        pools = Array(repeating: nil, count: servers.count)
        downUntil = Array(repeating: nil, count: servers.count)
    }

    /// The server `key` lives on (its index in ``servers``), as libmemcached would place it.
    /// - Throws: ``MemcachedError/invalidKey(_:)``.
    public func serverIndex(for key: String) throws -> Int {
        try Self.check(key)
        return servers.count == 1 ? 0 : ketama.server(for: Array(key.utf8))
    }

    // MARK: Classic commands

    /// `get key`: the item, or nil on a miss.
    /// - Throws: ``MemcachedError``; `GreenletExit` or an enclosing `Timeout`.
    /// - Note: A switch point.
    public func get(_ key: String) throws -> MemcachedItem? {
        try withConnection(for: key) { connection in
            connection.output.append(contentsOf: "get ".utf8)
            connection.output.append(contentsOf: key.utf8)
            connection.output.append(contentsOf: [0x0D, 0x0A])
            try connection.flush()
            var item: MemcachedItem?
            while true {
                let line = try connection.readLine()
                if line.equals("END") { break }
                guard let header = Self.valueHeader(line), item == nil else { throw Self.unexpected(line, connection) }
                item = MemcachedItem(value: try connection.readData(header.size), flags: header.flags, cas: header.cas)
            }
            connection.trimBuffer()
            return item
        }
    }

    /// `VALUE <key> <flags> <bytes> [<cas>]`, read without making strings.
    private static func valueHeader(_ line: UnsafeRawBufferPointer) -> (flags: UInt32, size: Int, cas: UInt64?)? {
        guard line.hasPrefix("VALUE ") else { return nil }
        var fields: [UInt64] = []
        var index = 6
        while index < line.count && line[index] != 0x20 { index += 1 }   // the key
        while index < line.count {
            guard line[index] == 0x20 else { return nil }
            index += 1
            var value: UInt64 = 0
            let start = index
            while index < line.count && line[index] >= 0x30 && line[index] <= 0x39 {
                let (times, overflow) = value.multipliedReportingOverflow(by: 10)
                guard !overflow else { return nil }
                value = times + UInt64(line[index] - 0x30)
                index += 1
            }
            guard index > start else { return nil }
            fields.append(value)
        }
        guard fields.count == 2 || fields.count == 3, fields[0] <= UInt64(UInt32.max), fields[1] <= UInt64(maxItemSize) else { return nil }
        return (UInt32(fields[0]), Int(fields[1]), fields.count == 3 ? fields[2] : nil)
    }

    /// `gets key`: the item with its cas token.
    public func gets(_ key: String) throws -> MemcachedItem? {
        try retrieve([key], command: "gets")[key]
    }

    /// `get k1 k2 …`: every hit, one round trip per server holding some of the keys.
    public func getMany(_ keys: [String]) throws -> [String: MemcachedItem] {
        try retrieve(keys, command: "get")
    }

    /// `set key flags exptime bytes`: stores unconditionally.
    @discardableResult
    public func set(_ key: String, _ value: [UInt8], flags: UInt32 = 0, expiration: Duration? = nil) throws -> MemcachedStoreResult {
        try store("set", key, value, flags: flags, expiration: expiration)
    }

    /// `add`: stores only if the key is missing (``MemcachedStoreResult/notStored`` otherwise).
    @discardableResult
    public func add(_ key: String, _ value: [UInt8], flags: UInt32 = 0, expiration: Duration? = nil) throws -> MemcachedStoreResult {
        try store("add", key, value, flags: flags, expiration: expiration)
    }

    /// `replace`: stores only if the key exists.
    @discardableResult
    public func replace(_ key: String, _ value: [UInt8], flags: UInt32 = 0, expiration: Duration? = nil) throws -> MemcachedStoreResult {
        try store("replace", key, value, flags: flags, expiration: expiration)
    }

    /// `cas`: stores only if the item still has the cas token `token` (from ``gets(_:)``).
    @discardableResult
    public func cas(_ key: String, _ value: [UInt8], token: UInt64, flags: UInt32 = 0,
                    expiration: Duration? = nil) throws -> MemcachedStoreResult {
        try store("cas", key, value, flags: flags, expiration: expiration, cas: token)
    }

    /// `delete key`: true if it existed.
    @discardableResult
    public func delete(_ key: String) throws -> Bool {
        try withConnection(for: key) { connection in
            connection.output.append(contentsOf: "delete \(key)\r\n".utf8)
            try connection.flush()
            let line = try connection.readLine()
            if line.equals("DELETED") { return true }
            if line.equals("NOT_FOUND") { return false }
            throw Self.unexpected(line, connection)
        }
    }

    /// `incr key by`: the new value, or nil if the key is missing.
    @discardableResult
    public func incr(_ key: String, by amount: UInt64 = 1) throws -> UInt64? {
        try arithmetic("incr", key, amount)
    }

    /// `decr key by` (stops at 0): the new value, or nil if the key is missing.
    @discardableResult
    public func decr(_ key: String, by amount: UInt64 = 1) throws -> UInt64? {
        try arithmetic("decr", key, amount)
    }

    /// `touch key exptime`: true if the key exists.
    @discardableResult
    public func touch(_ key: String, expiration: Duration) throws -> Bool {
        try withConnection(for: key) { connection in
            connection.output.append(contentsOf: "touch \(key) \(Self.seconds(expiration))\r\n".utf8)
            try connection.flush()
            let line = try connection.readLine()
            if line.equals("TOUCHED") { return true }
            if line.equals("NOT_FOUND") { return false }
            throw Self.unexpected(line, connection)
        }
    }

    // MARK: Meta commands (memcached 1.6+)

    /// `mg key v f c t`: the value with its flags, cas token and remaining TTL.
    public func metaGet(_ key: String) throws -> MemcachedItem? {
        try withConnection(for: key) { connection in
            connection.output.append(contentsOf: "mg \(key) v f c t\r\n".utf8)
            try connection.flush()
            let line = try connection.readLine()
            if line.equals("EN") { return nil }
            guard line.hasPrefix("VA ") else { throw Self.unexpected(line, connection) }
            let words = line.words
            guard words.count >= 2, let size = Int(words[1]), (0...Self.maxItemSize).contains(size) else {
                throw Self.unexpected(line, connection)
            }
            var item = MemcachedItem(value: [])
            for flag in words.dropFirst(2) {
                let value = flag.dropFirst()
                switch flag.first {
                case "f": item.flags = UInt32(value) ?? 0
                case "c": item.cas = UInt64(value)
                case "t": item.ttl = Int(value)
                default: break
                }
            }
            item.value = try connection.readData(size)
            connection.trimBuffer()
            return item
        }
    }

    /// `ms key size [F flags] [T ttl] [C cas] [MA|ME|MS mode…]`: stores, optionally only if the
    /// cas token matches (`cas`) or only if missing (`onlyIfMissing`, meta mode `E`).
    @discardableResult
    public func metaSet(_ key: String, _ value: [UInt8], flags: UInt32 = 0, expiration: Duration? = nil,
                        cas: UInt64? = nil, onlyIfMissing: Bool = false) throws -> MemcachedStoreResult {
        try Self.check(key)
        try checkSize(value)
        return try withConnection(for: key) { connection in
            var line = "ms \(key) \(value.count) F\(flags)"
            if let expiration { line += " T\(Self.seconds(expiration))" }
            if let cas { line += " C\(cas)" }
            if onlyIfMissing { line += " ME" }
            connection.output.append(contentsOf: (line + "\r\n").utf8)
            connection.output.append(contentsOf: value)
            connection.output.append(contentsOf: [0x0D, 0x0A])
            try connection.flush()
            let reply = try connection.readLine()
            if reply.hasPrefix("HD") { return .stored }
            if reply.hasPrefix("NS") { return .notStored }
            if reply.hasPrefix("EX") { return .exists }
            if reply.hasPrefix("NF") { return .notFound }
            throw Self.unexpected(reply, connection)
        }
    }

    /// `md key`: true if it existed.
    @discardableResult
    public func metaDelete(_ key: String) throws -> Bool {
        try withConnection(for: key) { connection in
            connection.output.append(contentsOf: "md \(key)\r\n".utf8)
            try connection.flush()
            let line = try connection.readLine()
            if line.hasPrefix("HD") { return true }
            if line.hasPrefix("NF") { return false }
            throw Self.unexpected(line, connection)
        }
    }

    /// `ma key D<delta> [MD] v`: adds (or subtracts) and returns the new value; nil if missing.
    @discardableResult
    public func metaArithmetic(_ key: String, delta: UInt64 = 1, decrement: Bool = false) throws -> UInt64? {
        try withConnection(for: key) { connection in
            connection.output.append(contentsOf: "ma \(key) D\(delta)\(decrement ? " MD" : "") v\r\n".utf8)
            try connection.flush()
            let line = try connection.readLine()
            if line.hasPrefix("NF") { return nil }
            let words = line.words
            guard line.hasPrefix("VA "), words.count >= 2, let size = Int(words[1]), (1...20).contains(size) else {
                throw Self.unexpected(line, connection)
            }
            // `line` points into the buffer, which reading the data may move: keep its text now.
            let text = line.text
            let digits = try connection.readData(size)
            guard let value = UInt64(String(decoding: digits, as: UTF8.self)) else {
                throw connection.fail(.protocolError("unexpected reply \(text.debugDescription)"))
            }
            return value
        }
    }

    /// Counters of each server's pool, by `host:port`.
    public var statistics: [String: ConnectionPoolStatistics] {
        var result: [String: ConnectionPoolStatistics] = [:]
        for (index, pool) in pools.enumerated() { if let pool { result[servers[index].name] = pool.statistics } }
        return result
    }

    /// Closes idle connections and refuses later commands.
    public func close() {
        for pool in pools { pool?.close() }
    }

    // MARK: The machinery

    private func retrieve(_ keys: [String], command: String) throws -> [String: MemcachedItem] {
        for key in keys { try Self.check(key) }
        var byServer: [Int: [String]] = [:]
        for key in keys { byServer[servers.count == 1 ? 0 : ketama.server(for: Array(key.utf8)), default: []].append(key) }
        var items: [String: MemcachedItem] = [:]
        for (server, serverKeys) in byServer.sorted(by: { $0.key < $1.key }) {
            try withConnection(server: server) { connection in
                connection.output.append(contentsOf: command.utf8)
                for key in serverKeys {
                    connection.output.append(0x20)
                    connection.output.append(contentsOf: key.utf8)
                }
                connection.output.append(contentsOf: [0x0D, 0x0A])
                try connection.flush()
                while true {
                    let line = try connection.readLine()
                    if line.equals("END") { break }
                    guard let header = Self.valueHeader(line) else { throw Self.unexpected(line, connection) }
                    let key = String(line.words[1])
                    items[key] = MemcachedItem(value: try connection.readData(header.size), flags: header.flags, cas: header.cas)
                }
                connection.trimBuffer()
            }
        }
        return items
    }

    private func store(_ command: String, _ key: String, _ value: [UInt8], flags: UInt32, expiration: Duration?,
                       cas: UInt64? = nil) throws -> MemcachedStoreResult {
        try Self.check(key)
        try checkSize(value)
        return try withConnection(for: key) { connection in
            connection.output.append(contentsOf: command.utf8)
            connection.output.append(0x20)
            connection.output.append(contentsOf: key.utf8)
            connection.output.append(0x20)
            connection.output.appendDecimal(UInt64(flags))
            connection.output.append(0x20)
            connection.output.appendDecimal(UInt64(expiration.map(Self.seconds) ?? 0))
            connection.output.append(0x20)
            connection.output.appendDecimal(UInt64(value.count))
            if let cas {
                connection.output.append(0x20)
                connection.output.appendDecimal(cas)
            }
            connection.output.append(contentsOf: [0x0D, 0x0A])
            connection.output.append(contentsOf: value)
            connection.output.append(contentsOf: [0x0D, 0x0A])
            try connection.flush()
            let line = try connection.readLine()
            if line.equals("STORED") { return .stored }
            if line.equals("NOT_STORED") { return .notStored }
            if line.equals("EXISTS") { return .exists }
            if line.equals("NOT_FOUND") { return .notFound }
            throw Self.unexpected(line, connection)
        }
    }

    private func arithmetic(_ command: String, _ key: String, _ amount: UInt64) throws -> UInt64? {
        try withConnection(for: key) { connection in
            connection.output.append(contentsOf: "\(command) \(key) \(amount)\r\n".utf8)
            try connection.flush()
            let line = try connection.readLine()
            if line.equals("NOT_FOUND") { return nil }
            guard let value = UInt64(line.text) else { throw Self.unexpected(line, connection) }
            return value
        }
    }

    private func withConnection<R>(for key: String, _ body: (MemcachedConnection) throws -> R) throws -> R {
        try Self.check(key)
        return try withConnection(server: servers.count == 1 ? 0 : ketama.server(for: Array(key.utf8)), body)
    }

    private func withConnection<R>(server index: Int, _ body: (MemcachedConnection) throws -> R) throws -> R {
        if let until = downUntil[index] {
            guard ContinuousClock.now >= until else { throw MemcachedError.serverDown(server: servers[index].name) }
            downUntil[index] = nil   // retry now; a new failure marks it down again
        }
        do {
            return try pool(index).withConnection(body)
        } catch let error as MemcachedError where error.breaksConnection {
            if case .serverDown = error {} else { downUntil[index] = ContinuousClock.now + configuration.retryDelay }
            throw error
        }
    }

    private func pool(_ index: Int) -> ConnectionPool<MemcachedConnection> {
        if let pool = pools[index] { return pool }
        let server = servers[index]
        let configuration = configuration
        let pool = ConnectionPool<MemcachedConnection>(
            configuration: .init(maxOpen: configuration.maxConnectionsPerServer, checkoutTimeout: configuration.timeout),
            open: {
                try MemcachedConnection.open(host: server.host, port: server.port, connectTimeout: configuration.connectTimeout,
                                             timeout: configuration.timeout)
            },
            close: { $0.close() },
            isReusable: { !$0.isBroken },
            isBroken: { error in (error as? MemcachedError)?.breaksConnection ?? true })
        pools[index] = pool
        return pool
    }

    private func checkSize(_ value: [UInt8]) throws {
        guard value.count <= configuration.maxValueSize else {
            throw MemcachedError.valueTooLarge(size: value.count, limit: configuration.maxValueSize)
        }
    }

    /// The largest item a server may announce (memcached's `-I` tops out at 1 GiB); a larger
    /// size is a broken or hostile server, refused before anything is allocated.
    static let maxItemSize = 1 << 30

    /// Keys of the text protocol: 1 to 250 bytes, no space or control byte.
    static func check(_ key: String) throws {
        let count = key.utf8.count
        guard count > 0 else { throw MemcachedError.invalidKey("an empty key") }
        guard count <= 250 else { throw MemcachedError.invalidKey("\(count) bytes, more than memcached's 250") }
        guard key.utf8.allSatisfy({ $0 > 0x20 && $0 != 0x7F }) else {
            throw MemcachedError.invalidKey("\(key.debugDescription) has a space or a control character")
        }
    }

    /// Seconds for exptime (memcached reads more than 30 days as a Unix time: sent as one).
    static func seconds(_ duration: Duration) -> Int {
        let seconds = max(1, Int(duration.components.seconds))
        return seconds > 30 * 24 * 3600 ? Int(time(nil)) + seconds : seconds
    }

    private static func unexpected(_ line: UnsafeRawBufferPointer, _ connection: MemcachedConnection) -> MemcachedError {
        let text = line.text
        if text.hasPrefix("SERVER_ERROR") || text.hasPrefix("CLIENT_ERROR") || text == "ERROR" {
            // The server may have dropped the rest of our command (a too large value): the
            // connection's framing cannot be trusted after that.
            if text.hasPrefix("CLIENT_ERROR") || text.hasPrefix("SERVER_ERROR object too large") { _ = connection.fail(.server(text)) }
            return .server(text)
        }
        return connection.fail(.protocolError("unexpected reply \(text.debugDescription)"))
    }
}
