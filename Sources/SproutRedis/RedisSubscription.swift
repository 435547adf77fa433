/// A message received by a ``RedisSubscription``.
public struct RedisMessage: Sendable, Equatable {
    /// The channel it was published to.
    public var channel: String
    /// The pattern that matched, for pattern subscriptions.
    public var pattern: String?
    /// The payload.
    public var payload: [UInt8]

    /// The payload as UTF-8 text.
    public var text: String { String(decoding: payload, as: UTF8.self) }
}

/// A connection in subscriber mode: messages published to its channels and patterns, read in
/// order by the greenlet that owns it.
///
/// ```swift
/// let subscription = try redis.subscribe(channels: ["news"])
/// defer { subscription.close() }
/// while let message = try subscription.next() { print(message.channel, message.text) }
/// ```
///
/// ``subscribe(channels:patterns:)`` and ``unsubscribe(channels:patterns:)`` may be called
/// from another greenlet while one waits in ``next(timeout:)``: they only write.
public final class RedisSubscription {
    private let connection: RedisConnection
    /// Channels and patterns subscribed now, as the server last confirmed.
    public private(set) var subscriptionCount = 0

    init(connection: RedisConnection, channels: [String], patterns: [String]) throws {
        guard !channels.isEmpty || !patterns.isEmpty else {
            throw RedisError.invalidArgument("a subscription needs at least one channel or pattern")
        }
        self.connection = connection
        connection.isSubscribed = true
        try subscribe(channels: channels, patterns: patterns)
        // Wait for every confirmation, so that a message published after this returns is seen.
        var confirmed = 0
        while confirmed < channels.count + patterns.count {
            let reply = try connection.readReply()
            guard try handleControl(reply) != nil else {
                throw RedisError.unexpectedReply("a message before the subscription was confirmed: \(reply)")
            }
            confirmed += 1
        }
    }

    /// Adds channels and patterns; their confirmations are consumed by ``next(timeout:)``.
    /// - Throws: ``RedisError`` if the connection fails.
    public func subscribe(channels: [String] = [], patterns: [String] = []) throws {
        if !channels.isEmpty {
            var command = RedisCommand("SUBSCRIBE")
            command.append(contentsOf: channels)
            try connection.writeOnly(command)
        }
        if !patterns.isEmpty {
            var command = RedisCommand("PSUBSCRIBE")
            command.append(contentsOf: patterns)
            try connection.writeOnly(command)
        }
    }

    /// Removes channels and patterns (none given: all of that kind).
    /// - Throws: ``RedisError`` if the connection fails.
    public func unsubscribe(channels: [String] = [], patterns: [String] = []) throws {
        let everything = channels.isEmpty && patterns.isEmpty
        if everything || !channels.isEmpty {
            var command = RedisCommand("UNSUBSCRIBE")
            command.append(contentsOf: channels)
            try connection.writeOnly(command)
        }
        if everything || !patterns.isEmpty {
            var command = RedisCommand("PUNSUBSCRIBE")
            command.append(contentsOf: patterns)
            try connection.writeOnly(command)
        }
    }

    /// The next message, waiting up to `timeout` (nil: for ever).
    ///
    /// - Returns: The message, or nil if `timeout` passed first or every subscription has
    ///   been removed.
    /// - Throws: ``RedisError`` when the connection fails (the subscription is then over);
    ///   `GreenletExit` or an enclosing `Timeout`.
    /// - Note: A switch point.
    public func next(timeout: Duration? = nil) throws -> RedisMessage? {
        let deadline = timeout.map { ContinuousClock.now + $0 }
        while true {
            if let deadline {
                let remaining = deadline - .now
                guard remaining > .zero, try connection.waitForInput(timeout: remaining) else { return nil }
            } else {
                guard try connection.waitForInput(timeout: nil) else { return nil }
            }
            let reply = try connection.readReply()
            if let count = try handleControl(reply) {
                if count == 0 { return nil }
                continue
            }
            return try message(from: reply)
        }
    }

    /// Closes the connection (the server drops its subscriptions).
    public func close() {
        connection.close()
    }

    /// For a (un)subscribe confirmation, the subscription count it reports; nil for a message.
    private func handleControl(_ reply: RESPValue) throws -> Int? {
        guard case .array(let parts) = reply, parts.count >= 3, let kind = parts[0].string else {
            throw RedisError.unexpectedReply("a pub/sub reply \(reply)")
        }
        switch kind {
        case "subscribe", "psubscribe", "unsubscribe", "punsubscribe":
            guard case .integer(let count) = parts[2] else { throw RedisError.unexpectedReply("a pub/sub reply \(reply)") }
            subscriptionCount = Int(count)
            return Int(count)
        default:
            return nil
        }
    }

    private func message(from reply: RESPValue) throws -> RedisMessage {
        guard case .array(let parts) = reply, let kind = parts.first?.string else {
            throw RedisError.unexpectedReply("a pub/sub reply \(reply)")
        }
        if kind == "message", parts.count == 3, let channel = parts[1].string, let payload = parts[2].bytes {
            return RedisMessage(channel: channel, pattern: nil, payload: payload)
        }
        if kind == "pmessage", parts.count == 4, let pattern = parts[1].string, let channel = parts[2].string,
           let payload = parts[3].bytes {
            return RedisMessage(channel: channel, pattern: pattern, payload: payload)
        }
        throw RedisError.unexpectedReply("a pub/sub reply \(reply)")
    }
}
