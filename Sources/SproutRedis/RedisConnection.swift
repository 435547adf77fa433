import Glibc
public import Sprout
public import SproutTLS

/// One connection to a Redis server: commands are written and their replies read in order,
/// by one greenlet at a time (``RedisClient`` hands each connection to one greenlet; use a
/// connection directly inside ``RedisClient/withConnection(_:)`` for WATCH and MULTI).
public final class RedisConnection: RedisCommands {
    @exclusivity(unchecked) private var stream: NetworkStream
    private let parser = RESPParser()
    @exclusivity(unchecked) private var buffer: UnsafeMutableRawPointer
    @exclusivity(unchecked) private var capacity: Int
    @exclusivity(unchecked) private var start = 0
    @exclusivity(unchecked) private var end = 0
    @exclusivity(unchecked) private var output: [UInt8] = []
    /// True once an IO or protocol error has left the connection in an unknown state.
    public private(set) var isBroken = false
    /// True between WATCH and EXEC/UNWATCH (such a connection is not pooled as is).
    public internal(set) var isWatching = false
    /// True once in subscriber mode (only pub/sub commands are allowed then).
    var isSubscribed = false
    /// True between MULTI and EXEC/DISCARD.
    public private(set) var isInTransaction = false
    /// True once a command changed the session for good (SELECT, AUTH, HELLO, CLIENT, …): the
    /// connection is closed after use instead of going back to the pool.
    public internal(set) var changedSession = false

    /// The largest reply (or pipeline of replies in the buffer at once) a connection takes.
    static let maxReplyBytes = 1 << 30

    /// True when the pool may hand the connection to another greenlet as it is.
    var isReusable: Bool { !isBroken && !isWatching && !isInTransaction && !isSubscribed && !changedSession }

    /// Commands after which a connection is not like a fresh one.
    static let sessionCommands: Set<String> = ["MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH", "SELECT", "AUTH", "HELLO",
                                                "CLIENT", "SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "MONITOR", "RESET", "READONLY"]

    /// Follows the session state a command leaves behind.
    @inline(__always)
    private func track(_ command: RedisCommand) {
        guard !command.name.isEmpty else { return }
        switch command.name {
        case "MULTI": isInTransaction = true
        case "EXEC", "DISCARD":
            isInTransaction = false
            isWatching = false
        case "WATCH": isWatching = true
        case "UNWATCH": isWatching = false
        case "RESET":
            isInTransaction = false
            isWatching = false
            changedSession = true
        default: changedSession = true
        }
    }
    /// The protocol version the connection speaks (3 after `HELLO 3`).
    public let protocolVersion: Int

    init(stream: NetworkStream, protocolVersion: Int) {
        self.stream = stream
        self.protocolVersion = protocolVersion
        capacity = 16 * 1024
        buffer = .allocate(byteCount: capacity, alignment: 16)
    }

    deinit {
        buffer.deallocate()
    }

    /// Connects, secures (TLS) and prepares the connection: `HELLO 3` (with `AUTH`) for RESP3,
    /// else `AUTH` and `SELECT` as configured, in one round trip.
    static func open(_ configuration: RedisClient.Configuration, tls: TLSContext?) throws -> RedisConnection {
        let socket: Socket
        do {
            socket = try Socket.connect(host: configuration.host, port: configuration.port, timeout: configuration.connectTimeout)
        } catch let error as SystemError where error.errno == ETIMEDOUT {
            throw RedisError.timeout("no connection to \(configuration.host):\(configuration.port) within \(configuration.connectTimeout)")
        }
        var stream = NetworkStream(socket: socket)
        do {
            try? socket.setNoDelay(true)
            socket.shortReadsDrain = true
            if let tls {
                let secured: TLSSocket
                do {
                    secured = try TLSSocket(clientOn: socket, context: tls, serverName: configuration.tlsServerName ?? configuration.host,
                                            handshakeTimeout: configuration.connectTimeout)
                } catch let error as TLSError where error.kind == .handshakeTimedOut {
                    throw RedisError.timeout("no TLS handshake with \(configuration.host):\(configuration.port) within \(configuration.connectTimeout)")
                }
                stream = NetworkStream(socket: socket, tls: secured)
            }
            stream.timeout = configuration.commandTimeout
            let connection = RedisConnection(stream: stream, protocolVersion: configuration.protocolVersion == .resp3 ? 3 : 2)
            try connection.handshake(configuration)
            return connection
        } catch {
            stream.close()
            throw error
        }
    }

    private func handshake(_ configuration: RedisClient.Configuration) throws {
        var commands: [RedisCommand] = []
        if configuration.protocolVersion == .resp3 {
            var hello = RedisCommand("HELLO")
            hello.append("3")
            if let password = configuration.password {
                hello.append("AUTH")
                hello.append(configuration.username ?? "default")
                hello.append(password)
            }
            commands.append(hello)
        } else if let password = configuration.password {
            var auth = RedisCommand("AUTH")
            if let username = configuration.username { auth.append(username) }
            auth.append(password)
            commands.append(auth)
        }
        if configuration.database != 0 {
            var select = RedisCommand("SELECT")
            select.append(configuration.database)
            commands.append(select)
        }
        guard !commands.isEmpty else { return }
        let replies = try pipeline(commands)
        changedSession = false   // the configured session is this connection's fresh state
        for reply in replies {
            if case .error(let message) = reply { throw RedisError.fromReply(message) }
        }
    }

    /// Closes the connection.
    public func close() {
        stream.close()
    }

    // MARK: Commands

    /// Sends `command` and returns its reply.
    ///
    /// - Throws: ``RedisError/server(code:message:)`` for an error reply (the connection stays
    ///   usable); ``RedisError/timeout(_:)``, ``RedisError/connectionClosed(_:)`` or
    ///   ``RedisError/protocolError(_:)`` (the connection is then broken); `GreenletExit` or
    ///   an enclosing `Timeout`.
    /// - Note: A switch point.
    public func send(_ command: RedisCommand) throws -> RESPValue {
        let reply = try sendRaw(command)
        if case .error(let message) = reply { throw RedisError.fromReply(message) }
        return reply
    }

    /// Sends `command` and returns its reply, an error reply as ``RESPValue/error(_:)``.
    /// - Throws: as ``send(_:)``, except for error replies.
    public func sendRaw(_ command: RedisCommand) throws -> RESPValue {
        try checkUsable()
        output.removeAll(keepingCapacity: true)
        command.encode(into: &output)
        track(command)
        try write()
        return try readReply()
    }

    /// Sends every command in one write, then reads their replies in order (error replies as
    /// ``RESPValue/error(_:)`` values: one failed command does not hide the others' replies).
    /// - Throws: IO, protocol and timeout errors as ``send(_:)``.
    public func pipeline(_ commands: [RedisCommand]) throws -> [RESPValue] {
        try checkUsable()
        guard !commands.isEmpty else { return [] }
        output.removeAll(keepingCapacity: true)
        for command in commands {
            command.encode(into: &output)
            track(command)
        }
        try write()
        var replies: [RESPValue] = []
        replies.reserveCapacity(commands.count)
        for _ in 0..<commands.count { replies.append(try readReply()) }
        return replies
    }

    /// `WATCH keys…`: a later ``transaction(_:)`` on this connection fails (returns nil) if
    /// another client changes one of them first.
    public func watch(_ keys: [String]) throws {
        var command = RedisCommand("WATCH")
        command.append(contentsOf: keys)
        _ = try send(command)
    }

    /// `UNWATCH`.
    public func unwatch() throws {
        _ = try send(RedisCommand("UNWATCH"))
    }

    /// Runs `commands` atomically: `MULTI`, the commands, `EXEC`, all in one write.
    ///
    /// - Returns: The commands' replies (an error reply of one command as
    ///   ``RESPValue/error(_:)``), or nil if a watched key changed and nothing ran.
    /// - Throws: ``RedisError/server(code:message:)`` if the server refused to queue a command
    ///   (`EXECABORT`); IO errors as ``send(_:)``.
    public func transaction(_ commands: [RedisCommand]) throws -> [RESPValue]? {
        // A command refused while queueing makes EXEC answer EXECABORT, thrown below.
        let replies = try pipeline([RedisCommand("MULTI")] + commands + [RedisCommand("EXEC")])
        switch replies.last! {
        case .null: return nil
        case .array(let results): return results
        case .error(let message): throw RedisError.fromReply(message)
        case let other: throw RedisError.unexpectedReply("EXEC answered \(other)")
        }
    }

    // MARK: IO

    private func checkUsable() throws {
        guard !isBroken else { throw RedisError.connectionClosed("the connection failed earlier and cannot be reused") }
        guard !stream.isClosed else { throw RedisError.connectionClosed("the connection is closed") }
    }

    private func write() throws {
        do {
            try output.withUnsafeBytes { try stream.sendAll($0) }
        } catch {
            throw broken(error, "sending")
        }
    }

    /// Writes `command` without reading a reply (pub/sub: confirmations arrive as messages).
    func writeOnly(_ command: RedisCommand) throws {
        try checkUsable()
        var bytes: [UInt8] = []
        command.encode(into: &bytes)
        do {
            try bytes.withUnsafeBytes { try stream.sendAll($0) }
        } catch {
            throw broken(error, "sending")
        }
    }

    /// Reads the next reply.
    func readReply() throws -> RESPValue {
        while true {
            if end > start {
                do {
                    if let (value, length) = try parser.parse(UnsafeRawBufferPointer(start: buffer + start, count: end - start)) {
                        start += length
                        if start == end {
                            start = 0
                            end = 0
                            if capacity > 1 << 20 { shrinkBuffer() }
                        }
                        return value
                    }
                } catch {
                    isBroken = true
                    throw error
                }
            }
            try receiveMore()
        }
    }

    /// Waits up to `timeout` for a reply to begin; false if none did (the connection stays usable).
    func waitForInput(timeout: Duration?) throws -> Bool {
        if end > start { return true }
        do {
            return try stream.waitReadable(timeout: timeout)
        } catch {
            throw broken(error, "waiting for a message")
        }
    }

    private func receiveMore() throws {
        if end == capacity {
            if start > 0 {
                memmove(buffer, buffer + start, end - start)
                end -= start
                start = 0
            } else {
                guard capacity < Self.maxReplyBytes else {
                    isBroken = true
                    throw RedisError.protocolError("a reply larger than \(Self.maxReplyBytes >> 20) MiB")
                }
                let larger = UnsafeMutableRawPointer.allocate(byteCount: capacity * 2, alignment: 16)
                larger.copyMemory(from: buffer, byteCount: end)
                buffer.deallocate()
                buffer = larger
                capacity *= 2
            }
        }
        let count: Int
        do {
            count = try stream.recv(into: UnsafeMutableRawBufferPointer(start: buffer + end, count: capacity - end))
        } catch {
            throw broken(error, "reading the reply")
        }
        guard count > 0 else {
            isBroken = true
            throw RedisError.connectionClosed("the server closed the connection before replying")
        }
        end += count
    }

    /// A large reply grew the buffer: it goes back to 16 KiB once that reply has been read.
    private func shrinkBuffer() {
        buffer.deallocate()
        capacity = 16 * 1024
        buffer = .allocate(byteCount: capacity, alignment: 16)
    }

    /// Marks the connection broken and turns socket errors into Redis ones (kills and
    /// timeouts pass through as they are).
    private func broken(_ error: any Error, _ doing: String) -> any Error {
        isBroken = true
        if let error = error as? SystemError {
            if error.errno == ETIMEDOUT { return RedisError.timeout("no reply within the command timeout while \(doing)") }
            return RedisError.connectionClosed("\(error) while \(doing)")
        }
        if let error = error as? TLSError { return RedisError.connectionClosed("\(error) while \(doing)") }
        return error
    }
}
