import Glibc
import Sprout
import SproutRedis
import SproutTLS
import SproutTestSupport
import Testing

func redisClient(_ peer: RedisPeer, _ adjust: (inout RedisClient.Configuration) -> Void = { _ in }) -> RedisClient {
    var configuration = RedisClient.Configuration(host: "127.0.0.1", port: peer.port, password: RedisPeer.password)
    adjust(&configuration)
    return RedisClient(configuration: configuration)
}

func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

extension RedisSuites {
    @Suite(.timeLimit(.minutes(3)))
    struct RedisClientTests {
        @Test(arguments: [RedisClient.ProtocolVersion.resp2, .resp3])
        func everyCommandFamily(_ version: RedisClient.ProtocolVersion) async throws {
            try await green { () throws in
                let peer = try RedisPeer()
                let redis = redisClient(peer) { $0.protocolVersion = version }
                defer { redis.close() }
                #expect(try redis.ping() == "PONG")

                // Strings
                #expect(try redis.set("s", "hello"))
                #expect(try redis.getString("s") == "hello")
                #expect(try redis.get("missing") == nil)
                #expect(try !redis.set("s", "other", condition: .ifNotExists))
                #expect(try redis.set("s2", "new", condition: .ifNotExists))
                #expect(try !redis.set("absent", "x", condition: .ifExists))
                #expect(try redis.append("s", " world") == 11)
                try redis.mset([("m1", bytes("a")), ("m2", bytes("b"))])
                #expect(try redis.mget(["m1", "missing", "m2"]) == [bytes("a"), nil, bytes("b")])
                #expect(try redis.incr("n") == 1)
                #expect(try redis.incr("n", by: 41) == 42)
                #expect(try redis.decr("n", by: 2) == 40)
                #expect(try redis.exists("s", "n", "missing") == 2)
                #expect(try redis.del("s", "missing") == 1)

                // Expiry
                #expect(try redis.ttl("n") == -1)
                #expect(try redis.expire("n", after: .seconds(100)))
                #expect((99...100).contains(try redis.ttl("n")))
                #expect(try redis.ttl("missing") == -2)
                try redis.set("short", "x", expiration: .milliseconds(50))
                try sleep(for: .milliseconds(120))
                #expect(try redis.get("short") == nil)

                // Hashes
                #expect(try redis.hset("h", [("a", bytes("1")), ("b", bytes("2"))]) == 2)
                #expect(try !redis.hset("h", field: "a", value: "10"))
                #expect(try redis.hget("h", field: "a") == bytes("10"))
                #expect(try redis.hgetall("h") == ["a": bytes("10"), "b": bytes("2")])
                #expect(try redis.hincr("h", field: "b", by: 5) == 7)
                #expect(try redis.hdel("h", fields: ["a", "zz"]) == 1)

                // Lists
                #expect(try redis.rpush("l", [bytes("b"), bytes("c")]) == 2)
                #expect(try redis.lpush("l", [bytes("a")]) == 3)
                #expect(try redis.lrange("l", 0, -1) == [bytes("a"), bytes("b"), bytes("c")])
                #expect(try redis.lpop("l") == bytes("a"))
                #expect(try redis.rpop("l") == bytes("c"))
                #expect(try redis.llen("l") == 1)

                // Sets
                #expect(try redis.sadd("set", [bytes("x"), bytes("y"), bytes("x")]) == 2)
                #expect(try redis.smembers("set") == [bytes("x"), bytes("y")])
                #expect(try redis.sismember("set", "x"))
                #expect(try !redis.sismember("set", "z"))
                #expect(try redis.srem("set", [bytes("x")]) == 1)

                // Sorted sets
                #expect(try redis.zadd("z", [(2, bytes("two")), (1, bytes("one")), (3.5, bytes("three"))]) == 3)
                #expect(try redis.zrange("z", 0, -1) == [bytes("one"), bytes("two"), bytes("three")])
                #expect(try redis.zscore("z", "three") == 3.5)
                #expect(try redis.zscore("z", "none") == nil)
                #expect(try redis.zincr("z", "one", by: 10) == 11)
                let scored = try redis.zrangeWithScores("z", 0, -1)
                #expect(scored.map(\.member) == [bytes("two"), bytes("three"), bytes("one")])
                #expect(scored.map(\.score) == [2, 3.5, 11])
                #expect(try redis.zrem("z", [bytes("two")]) == 1)

                // SCAN as a sequence, over more keys than one batch.
                for index in 0..<250 { try redis.set("scan:\(index)", "\(index)") }
                var scan = redis.scan(match: "scan:*", count: 50)
                let scanned = Set(try scan.all().map { String(decoding: $0, as: UTF8.self) })
                #expect(scanned == Set((0..<250).map { "scan:\($0)" }))

                // Scripts
                let script = "return redis.call('INCRBY', KEYS[1], ARGV[1])"
                #expect(try redis.eval(script, keys: ["counter"], arguments: [bytes("5")]) == .integer(5))
                let sha = try redis.scriptLoad(script)
                #expect(try redis.evalsha(sha, keys: ["counter"], arguments: [bytes("2")]) == .integer(7))
                do {
                    try redis.evalsha(String(repeating: "0", count: 40))
                    Issue.record("an unknown script ran")
                } catch let error as RedisError {
                    if case .server(let code, _) = error { #expect(code == "NOSCRIPT") } else { Issue.record("\(error)") }
                }

                // A server error is typed, carries the server's words, and leaves the connection pooled.
                do {
                    _ = try redis.lpop("h")
                    Issue.record("LPOP on a hash succeeded")
                } catch let error as RedisError {
                    guard case .server(let code, let message) = error else { Issue.record("\(error)"); return }
                    #expect(code == "WRONGTYPE" && message.contains("Operation against a key holding the wrong kind of value"))
                }
                #expect(redis.statistics?.discarded == 0)
                #expect(redis.statistics?.created == 1)

                // RESP3 gives doubles and maps their own types.
                let raw = try redis.send("ZSCORE", "z", "three")
                if version == .resp3 { #expect(raw == .double(3.5)) } else { #expect(raw == .bulkString(bytes("3.5"))) }
            }
        }

        @Test func fiveHundredGreenletsOnTwentyConnectionsEachReadTheirOwnKeys() async throws {
            try await green { () throws in
                let peer = try RedisPeer()
                let redis = redisClient(peer) { $0.maxConnections = 20 }
                defer { redis.close() }
                let greenlets = (0..<500).map { index in
                    spawn { () throws -> Bool in
                        for round in 0..<10 {
                            let key = "g\(index):\(round)"
                            let value = "value of greenlet \(index) round \(round) " + String(repeating: "x", count: index % 300)
                            try redis.set(key, value)
                            guard try redis.getString(key) == value else { return false }
                            guard try redis.incr("g\(index):count") == Int64(round + 1) else { return false }
                        }
                        return true
                    }
                }
                #expect(try greenlets.allSatisfy { try $0.get() })
                let statistics = try #require(redis.statistics)
                #expect(statistics.created <= 20 && statistics.discarded == 0 && statistics.inUse == 0)
            }
        }

        @Test func pipelinesOfTenThousandAndTransactionsWithWatch() async throws {
            try await green { () throws in
                let peer = try RedisPeer()
                let redis = redisClient(peer)
                defer { redis.close() }
                let sets = (0..<10_000).map { RedisCommand("SET").with("p:\($0)").with("v\($0)") }
                let replies = try redis.pipeline(sets)
                #expect(replies.count == 10_000 && replies.allSatisfy { $0 == .simpleString("OK") })
                let gets = (0..<10_000).map { RedisCommand("GET").with("p:\($0)") }
                let values = try redis.pipeline(gets)
                #expect(values.enumerated().allSatisfy { $0.element == .bulkString(bytes("v\($0.offset)")) })
                // One bad command in a pipeline is its own error reply, the others still answered.
                let mixed = try redis.pipeline([RedisCommand("GET").with("p:1"), RedisCommand("NOSUCHCOMMAND"),
                                                RedisCommand("GET").with("p:2")])
                #expect(mixed[0] == .bulkString(bytes("v1")) && mixed[2] == .bulkString(bytes("v2")))
                if case .error(let message) = mixed[1] { #expect(message.hasPrefix("ERR")) } else { Issue.record("\(mixed[1])") }

                let results = try redis.transaction([RedisCommand("INCR").with("tx"), RedisCommand("INCR").with("tx")])
                #expect(results == [.integer(1), .integer(2)])

                // WATCH: a change by another client between WATCH and EXEC aborts the transaction.
                let other = redisClient(peer)
                defer { other.close() }
                let aborted = try redis.withConnection { connection -> [RESPValue]? in
                    try connection.watch(["tx"])
                    let current = try connection.get("tx").flatMap { Int(String(decoding: $0, as: UTF8.self)) } ?? 0
                    try other.set("tx", "100")
                    return try connection.transaction([RedisCommand("SET").with("tx").with(current + 1)])
                }
                #expect(aborted == nil)
                #expect(try redis.getString("tx") == "100")
                let committed = try redis.withConnection { connection -> [RESPValue]? in
                    try connection.watch(["tx"])
                    return try connection.transaction([RedisCommand("INCR").with("tx")])
                }
                #expect(committed == [.integer(101)])
                // A queueing error aborts the whole transaction with EXECABORT.
                do {
                    _ = try redis.transaction([RedisCommand("INCR").with("tx"), RedisCommand("NOSUCHCOMMAND")])
                    Issue.record("a transaction with an unknown command ran")
                } catch let error as RedisError {
                    if case .server(let code, _) = error { #expect(code == "EXECABORT") } else { Issue.record("\(error)") }
                }
                #expect(try redis.getString("tx") == "101")
            }
        }

        @Test func pubSubDeliversToAHundredSubscribers() async throws {
            try await green { () throws in
                let peer = try RedisPeer()
                let redis = redisClient(peer)
                defer { redis.close() }
                let subscriptions = try (0..<100).map { index in
                    try redis.subscribe(channels: ["news", "own:\(index)"], patterns: index == 0 ? ["n*"] : [])
                }
                defer { subscriptions.forEach { $0.close() } }
                let readers = subscriptions.enumerated().map { index, subscription in
                    spawn { () throws -> [String] in
                        var seen: [String] = []
                        let expected = index == 0 ? 11 : 6   // subscriber 0 also gets each news item through n*
                        while seen.count < expected, let message = try subscription.next(timeout: .seconds(10)) {
                            seen.append("\(message.pattern ?? "-") \(message.channel) \(message.text)")
                        }
                        return seen
                    }
                }
                try sleep(for: .zero)
                for round in 0..<5 { #expect(try redis.publish("news", "item \(round)") == 101) }
                for index in 0..<100 { #expect(try redis.publish("own:\(index)", "for \(index)") == 1) }
                let received = try readers.map { try $0.get() }
                for (index, messages) in received.enumerated() {
                    let news = messages.filter { $0.hasPrefix("- news ") }
                    #expect(news == (0..<5).map { "- news item \($0)" }, "subscriber \(index)")
                    #expect(messages.contains("- own:\(index) for \(index)"))
                }
                #expect(received[0].filter { $0.hasPrefix("n* news") }.count == 5)
                // Unsubscribing everything ends next() with nil.
                try subscriptions[1].unsubscribe()
                #expect(try subscriptions[1].next(timeout: .seconds(5)) == nil)
            }
        }

        @Test func aKilledServerFailsPromptlyAndThePoolRecovers() async throws {
            try await green { () throws in
                let peer = try RedisPeer()
                let redis = redisClient(peer) { $0.maxConnections = 10; $0.commandTimeout = .seconds(2) }
                defer { redis.close() }
                var running = true
                var failures = 0
                var successes = 0
                let workers = (0..<50).map { index in
                    spawn { () throws in
                        while running {
                            do {
                                try redis.set("k\(index)", "\(index)")
                                guard try redis.getString("k\(index)") == "\(index)" else {
                                    Issue.record("a wrong value for greenlet \(index)")
                                    return
                                }
                                successes += 1
                            } catch is RedisError {
                                failures += 1
                                try sleep(for: .milliseconds(20))
                            } catch is ConnectError {
                                failures += 1
                                try sleep(for: .milliseconds(20))
                            }
                        }
                    }
                }
                try sleep(for: .milliseconds(200))
                let before = successes
                #expect(before > 0)
                let killed = ContinuousClock.now
                peer.stop()
                // Errors surface at once (connections reset, connects refused), not after timeouts.
                while failures < 50 && ContinuousClock.now - killed < .seconds(5) { try sleep(for: .milliseconds(10)) }
                #expect(failures >= 50)
                #expect(ContinuousClock.now - killed < .seconds(2))
                try peer.restart()
                let restarted = successes
                let deadline = ContinuousClock.now + .seconds(10)
                while successes < restarted + 500 && ContinuousClock.now < deadline { try sleep(for: .milliseconds(10)) }
                #expect(successes >= restarted + 500, "the pool did not recover")
                running = false
                try joinAll(workers, timeout: .seconds(10))
                #expect(workers.allSatisfy { $0.error == nil })
            }
        }

        @Test func aConnectionLeftInASessionStateIsNotPooled() async throws {
            try await green { () throws in
                let peer = try RedisPeer()
                let redis = redisClient(peer) { $0.maxConnections = 1 }
                defer { redis.close() }
                try redis.set("x", "1")
                // A raw MULTI left open: the next user must not find its commands QUEUED.
                #expect(try redis.send("MULTI") == .simpleString("OK"))
                #expect(try redis.getString("x") == "1")
                try redis.send("SELECT", "5")
                #expect(try redis.getString("x") == "1")   // database 0 again, on a fresh connection
                do {
                    try redis.withConnection { connection in
                        try connection.watch(["x"])
                        throw RedisError.invalidArgument("the caller gave up")
                    }
                } catch let error as RedisError { #expect(error == .invalidArgument("the caller gave up")) }
                #expect(try redis.transaction([RedisCommand("INCR").with("x")]) == [.integer(2)])
                #expect(redis.statistics?.discarded == 3)
            }
        }

        @Test func badInputNeverCorruptsAConnection() async throws {
            try await green { () throws in
                let peer = try RedisPeer()
                let redis = redisClient(peer) { $0.maxConnections = 1 }
                defer { redis.close() }
                let megabyte = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
                try redis.set("big", megabyte)
                #expect(try redis.get("big") == megabyte)
                let binaryKey: [UInt8] = [0, 0x0D, 0x0A, 0xFF, 0x24, 0x2A]
                try redis.set(binaryKey, [0x0D, 0x0A, 0x0D, 0x0A])
                #expect(try redis.get(binaryKey) == [0x0D, 0x0A, 0x0D, 0x0A])
                let injection = "value\r\nSET injected 1\r\n"
                try redis.set("crlf", injection)
                #expect(try redis.getString("crlf") == injection)
                #expect(try redis.exists("injected") == 0)
                #expect(try redis.ping() == "PONG")
                #expect(redis.statistics?.created == 1 && redis.statistics?.discarded == 0)

                // A wrong password is the server's typed error, at the first command.
                let wrong = RedisClient(configuration: .init(port: peer.port, password: "wrong"))
                defer { wrong.close() }
                do {
                    try wrong.ping()
                    Issue.record("a wrong password was accepted")
                } catch let error as RedisError {
                    if case .server(let code, _) = error { #expect(code == "WRONGPASS") } else { Issue.record("\(error)") }
                }
                let none = RedisClient(configuration: .init(port: peer.port))
                defer { none.close() }
                do {
                    try none.ping()
                    Issue.record("no password was accepted")
                } catch let error as RedisError {
                    if case .server(let code, _) = error { #expect(code == "NOAUTH") } else { Issue.record("\(error)") }
                }
            }
        }

        @Test func selectTLSAndTimeouts() async throws {
            try await green { () throws in
                let peer = try RedisPeer(tls: true)
                let zero = redisClient(peer)
                defer { zero.close() }
                let three = redisClient(peer) { $0.database = 3 }
                defer { three.close() }
                try zero.set("where", "zero")
                try three.set("where", "three")
                #expect(try zero.getString("where") == "zero")
                #expect(try three.getString("where") == "three")

                let certificates = try TestCertificates.ensure()
                let secure = redisClient(peer) {
                    $0.port = peer.tlsPort!
                    $0.tls = .client(trustRoots: .file(certificates + "/ca.pem"))
                    $0.protocolVersion = .resp3
                }
                defer { secure.close() }
                #expect(try secure.getString("where") == "zero")
                let value = (0..<200_000).map { UInt8(truncatingIfNeeded: $0) }
                try secure.set("tls-big", value)
                #expect(try secure.get("tls-big") == value)
                // The certificate is checked: the system store does not know the test CA.
                let unverified = redisClient(peer) { $0.port = peer.tlsPort!; $0.tls = .client() }
                defer { unverified.close() }
                do {
                    try unverified.ping()
                    Issue.record("an unknown CA was trusted")
                } catch let error as TLSError {
                    #expect(error.kind == .certificateRefused)
                }

                // A command that takes longer than the command timeout (BLPOP blocks for 1 s).
                let impatient = redisClient(peer) { $0.commandTimeout = .milliseconds(200) }
                defer { impatient.close() }
                do {
                    try impatient.send("BLPOP", "nothing-here", "1")
                    Issue.record("no timeout")
                } catch let error as RedisError {
                    if case .timeout = error {} else { Issue.record("\(error)") }
                }
                #expect(impatient.statistics?.discarded == 1)
                try sleep(for: .seconds(1))
                #expect(try impatient.ping() == "PONG")
            }
        }
    }
}
