import Glibc
import Sprout
@testable import SproutMemcached
import SproutTestSupport
import Testing

@Suite(.serialized, .countsSockets)
enum MemcachedSuites {}

func green(timeout: Duration = .seconds(60), _ body: @escaping @Sendable () throws -> Void) async throws {
    try await GreenThread.run {
        try withTimeout(timeout) { try body() }
    }
}

/// A real memcached (Debian's) on a free loopback port; killed when released.
final class MemcachedPeer {
    let port: Int
    private var process: ChildProcess?

    init() throws {
        guard access("/usr/bin/memcached", X_OK) == 0 else {
            throw TestSupportError(description: "memcached is not installed (scripts/test installs memcached)")
        }
        port = try freePort()
        try start()
    }

    deinit { stop() }

    private func start() throws {
        // -U 0: no UDP; -u root is only honoured (and needed) when running as root.
        var arguments = ["/usr/bin/memcached", "-l", "127.0.0.1", "-p", "\(port)", "-U", "0", "-m", "64"]
        if getuid() == 0 { arguments += ["-u", "root"] }
        let process = try ChildProcess(arguments)
        self.process = process
        try waitForListener(port, process: process, log: "/dev/null")
    }

    func stop() {
        guard let process else { return }
        kill(process.pid, SIGKILL)
        _ = try? process.waitForExit(timeout: .seconds(5))
        self.process = nil
    }

    func restart() throws {
        stop()
        try start()
    }
}

func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

extension MemcachedSuites {
    @Suite(.timeLimit(.minutes(3)))
    struct MemcachedTests {
        @Test func classicAndMetaCommands() async throws {
            try await green { () throws in
                let peer = try MemcachedPeer()
                let cache = MemcachedClient(servers: [.init(host: "127.0.0.1", port: peer.port)])
                defer { cache.close() }
                #expect(try cache.set("a", bytes("alpha"), flags: 7) == .stored)
                #expect(try cache.get("a") == MemcachedItem(value: bytes("alpha"), flags: 7))
                #expect(try cache.get("missing") == nil)
                #expect(try cache.add("a", bytes("x")) == .notStored)
                #expect(try cache.add("b", bytes("beta")) == .stored)
                #expect(try cache.replace("nothing", bytes("x")) == .notStored)
                #expect(try cache.replace("b", bytes("beta2")) == .stored)

                let item = try #require(try cache.gets("b"))
                let token = try #require(item.cas)
                #expect(try cache.cas("b", bytes("beta3"), token: token) == .stored)
                #expect(try cache.cas("b", bytes("stale"), token: token) == .exists)
                #expect(try cache.cas("nope", bytes("x"), token: 1) == .notFound)
                #expect(try cache.get("b")?.value == bytes("beta3"))

                #expect(try cache.set("n", bytes("10")) == .stored)
                #expect(try cache.incr("n", by: 5) == 15)
                #expect(try cache.decr("n", by: 20) == 0)
                #expect(try cache.incr("absent") == nil)
                #expect(try cache.touch("n", expiration: .seconds(100)))
                #expect(try !cache.touch("absent", expiration: .seconds(100)))
                #expect(try cache.delete("n"))
                #expect(try !cache.delete("n"))

                let many = try cache.getMany(["a", "b", "missing"])
                #expect(many.keys.sorted() == ["a", "b"])

                // Meta commands.
                #expect(try cache.metaSet("m", bytes("meta"), flags: 3, expiration: .seconds(50)) == .stored)
                let meta = try #require(try cache.metaGet("m"))
                #expect(meta.value == bytes("meta") && meta.flags == 3 && meta.cas != nil)
                #expect((49...50).contains(meta.ttl ?? 0))
                #expect(try cache.metaSet("m", bytes("stale"), cas: meta.cas! + 1000) == .exists)
                #expect(try cache.metaSet("m", bytes("new"), cas: meta.cas!) == .stored)
                #expect(try cache.metaSet("m", bytes("only if missing"), onlyIfMissing: true) == .notStored)
                #expect(try cache.metaGet("missing") == nil)
                #expect(try cache.set("counter", bytes("1")) == .stored)
                #expect(try cache.metaArithmetic("counter", delta: 9) == 10)
                #expect(try cache.metaArithmetic("counter", delta: 3, decrement: true) == 7)
                #expect(try cache.metaArithmetic("absent") == nil)
                #expect(try cache.metaDelete("m"))
                #expect(try !cache.metaDelete("m"))

                // Expiry.
                try cache.set("short", bytes("x"), expiration: .seconds(1))
                try sleep(for: .milliseconds(2100))
                #expect(try cache.get("short") == nil)
                #expect(cache.statistics.values.first?.discarded == 0)
            }
        }

        @Test func fiveHundredGreenletsOnTwentyConnections() async throws {
            try await green { () throws in
                let peer = try MemcachedPeer()
                // 480 greenlets queue for the 20 connections: on a loaded sanitizer pass a wait
                // can outlast the default 2 s (which also bounds checkouts), and this test checks
                // that every greenlet reads its own keys, not how fast.
                let cache = MemcachedClient(servers: [.init(host: "127.0.0.1", port: peer.port)],
                                            configuration: .init(maxConnectionsPerServer: 20, timeout: .seconds(30)))
                defer { cache.close() }
                let greenlets = (0..<500).map { index in
                    spawn { () throws -> Bool in
                        for round in 0..<10 {
                            let key = "g\(index):\(round)"
                            let value = bytes("greenlet \(index) round \(round) " + String(repeating: "v", count: index))
                            try cache.set(key, value)
                            guard try cache.get(key)?.value == value else { return false }
                        }
                        let keys = (0..<10).map { "g\(index):\($0)" }
                        return try cache.getMany(keys).count == 10
                    }
                }
                #expect(try greenlets.allSatisfy { try $0.get() })
                let statistics = try #require(cache.statistics.values.first)
                #expect(statistics.created <= 20 && statistics.discarded == 0)
            }
        }

        @Test func keysLandWhereLibmemcachedPutsThem() async throws {
            try await green { () throws in
                let binary = "/tmp/sprout-ketama-reference"
                let source = packageRoot() + "/Tests/SproutMemcachedTests/ketama_reference.c"
                let compiled = try runCommand(["gcc", "-O1", "-o", binary, source, "-lmemcached"])
                try #require(compiled.status == 0, "gcc could not build the libmemcached reference (libmemcached-dev)")
                let servers: [MemcachedClient.Server] = [
                    .init(host: "10.0.0.1"), .init(host: "10.0.0.2", port: 11212), .init(host: "cache-3.internal", weight: 3),
                    .init(host: "127.0.0.1", port: 22122, weight: 2),
                ]
                let keys = (0..<2000).map { "key:\($0):\(($0 * 7919) % 104729)" } + ["a", "user:42", "session/xyz", "clé:été", "ключ"]
                let keyFile = "/tmp/sprout-ketama-keys.txt"
                try writeFile(keyFile, keys.joined(separator: "\n") + "\n")
                for (mode, distribution) in [("ketama", MemcachedClient.Distribution.ketama), ("weighted", .ketamaWeighted)] {
                    // Plain ketama ignores weights (libmemcached turns weighted ketama on by itself
                    // when a server with a weight above 1 is added to a consistent distribution).
                    let servers = mode == "ketama" ? servers.map { MemcachedClient.Server(host: $0.host, port: $0.port) } : servers
                    let list = servers.map { "\($0.host):\($0.port):\($0.weight)" }.joined(separator: ",")
                    let reference = try runCommand(["sh", "-c", "\(binary) \(mode) \(list) < \(keyFile)"])
                    #expect(reference.status == 0)
                    let expected = reference.output.split(separator: "\n").map { Int($0)! }
                    let client = MemcachedClient(servers: servers, configuration: .init(distribution: distribution))
                    let placed = try keys.map { try client.serverIndex(for: $0) }
                    let mismatches = zip(placed, expected).filter { $0 != $1 }.count
                    #expect(expected.count == keys.count && mismatches == 0, "\(mode): \(mismatches) of \(keys.count) keys placed differently")
                    // And the keys are spread over every server.
                    #expect(Set(placed).count == servers.count)
                }
            }
        }

        @Test func aDeadServerIsMarkedDownRetriedAndRecovers() async throws {
            try await green { () throws in
                let first = try MemcachedPeer()
                let second = try MemcachedPeer()
                let servers: [MemcachedClient.Server] = [.init(host: "127.0.0.1", port: first.port), .init(host: "127.0.0.1", port: second.port)]
                let cache = MemcachedClient(servers: servers, configuration: .init(retryDelay: .milliseconds(300)))
                defer { cache.close() }
                let keys = (0..<200).map { "k\($0)" }
                for key in keys { try cache.set(key, bytes(key)) }
                let onSecond = try keys.filter { try cache.serverIndex(for: $0) == 1 }
                let onFirst = try keys.filter { try cache.serverIndex(for: $0) == 0 }
                #expect(!onSecond.isEmpty && !onFirst.isEmpty)

                second.stop()
                let started = ContinuousClock.now
                do {
                    _ = try cache.get(onSecond[0])
                    Issue.record("a dead server answered")
                } catch let error as MemcachedError {
                    if case .connectionFailed = error {} else { Issue.record("\(error)") }
                }
                // Marked down: later commands fail at once, without touching the server.
                do {
                    _ = try cache.get(onSecond[1])
                    Issue.record("a down server was used")
                } catch let error as MemcachedError {
                    #expect(error == .serverDown(server: "127.0.0.1:\(second.port)"))
                }
                #expect(ContinuousClock.now - started < .seconds(1))
                // The other server's keys are unaffected.
                #expect(try onFirst.allSatisfy { try cache.get($0)?.value == bytes($0) })

                try second.restart()
                try sleep(for: .milliseconds(400))
                // Retried after the delay: back, empty (a restarted memcached has lost its items).
                #expect(try cache.get(onSecond[0]) == nil)
                try cache.set(onSecond[0], bytes("again"))
                #expect(try cache.get(onSecond[0])?.value == bytes("again"))
            }
        }

        @Test func aHostileServerCannotCrashTheClient() async throws {
            try await green { () throws in
                let answers = ["VALUE k 0 -5\r\nEND\r\n", "VALUE k 0 99999999999999\r\n", "VA -1 f0\r\n", "VA\r\n",
                               "VA 999999999999 f0\r\n", "STORED extra\r\n"]
                var index = 0
                let server = StreamServer(port: 0) { connection, _ in
                    while true {
                        let request = try connection.recv(maxLength: 4096)
                        if request.isEmpty { return }
                        try connection.sendAll(answers[min(index, answers.count - 1)])
                        index += 1
                    }
                }
                try server.start()
                defer { server.stop(timeout: .milliseconds(100)) }
                let cache = MemcachedClient(servers: [.init(host: "127.0.0.1", port: server.port)],
                                            configuration: .init(retryDelay: .zero))
                defer { cache.close() }
                let calls: [() throws -> Void] = [
                    { _ = try cache.get("k") }, { _ = try cache.get("k") }, { _ = try cache.metaGet("k") },
                    { _ = try cache.metaArithmetic("k") }, { _ = try cache.metaGet("k") }, { try cache.set("k", [1]) },
                ]
                for (number, call) in calls.enumerated() {
                    do {
                        try call()
                        Issue.record("answer \(number) was accepted")
                    } catch let error as MemcachedError {
                        if case .protocolError = error {} else { Issue.record("answer \(number): \(error)") }
                    }
                }
            }
        }

        @Test func badInputIsRefusedBeforeSendingAndLargeValuesWork() async throws {
            try await green { () throws in
                let peer = try MemcachedPeer()
                let cache = MemcachedClient(servers: [.init(host: "127.0.0.1", port: peer.port)])
                defer { cache.close() }
                for key in [String(repeating: "k", count: 251), "", "has space", "new\nline", "tab\tkey"] {
                    do {
                        try cache.set(key, bytes("x"))
                        Issue.record("the key \(key.debugDescription) was accepted")
                    } catch let error as MemcachedError {
                        if case .invalidKey = error {} else { Issue.record("\(error)") }
                    }
                }
                #expect(try cache.set(String(repeating: "k", count: 250), bytes("longest")) == .stored)
                let large = (0..<(1024 * 1024 - 1024)).map { UInt8(truncatingIfNeeded: $0 &* 13) }
                #expect(try cache.set("large", large) == .stored)
                #expect(try cache.get("large")?.value == large)
                do {
                    try cache.set("too-large", [UInt8](repeating: 1, count: 1024 * 1024))
                    Issue.record("a value over the limit was sent")
                } catch let error as MemcachedError {
                    #expect(error == .valueTooLarge(size: 1024 * 1024, limit: 1024 * 1024 - 1024))
                }
                // Values with CRLF and NUL are data, not protocol.
                let tricky = bytes("line\r\nEND\r\nVALUE x 0 1\r\n") + [0, 0]
                try cache.set("tricky", tricky)
                #expect(try cache.get("tricky")?.value == tricky)
                #expect(cache.statistics.values.first?.discarded == 0 && cache.statistics.values.first?.created == 1)
            }
        }
    }
}
