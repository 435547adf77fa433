import Follow
import Glibc
import Sprout
import SproutTestSupport
import SproutThrift
import Testing

/// ThriftServer and ThriftClientPool under load, kills, timeouts, drains and hostile bytes.
@Suite(.serialized, .timeLimit(.minutes(3)), .countsSockets)
struct ThriftServerTests {
    @Test func fiveHundredGreenletsShareTwentyConnectionsAndGetTheirOwnReplies() async throws {
        try await GreenThread.run {
            try withFollowServer { server in
                let pool = followPool(server.port, maxOpen: 20)
                defer { pool.close() }
                let callers = (0..<500).map { index in
                    spawn { () throws -> Bool in
                        let user = Int64(index)
                        return try pool.withClient { client in
                            try client.follow(follower: user, followee: 100_000 + user)
                            let yes = try client.isFollowing(a: user, b: 100_000 + user)
                            let no = try client.isFollowing(a: user, b: 100_001 + user)
                            let followers = Array(try client.followers(user: 100_000 + user, limit: 5))
                            return yes && !no && followers == [user]
                        }
                    }
                }
                let matched = try callers.filter { try $0.get() }.count
                #expect(matched == 500, "every caller got the replies to its own calls")
                #expect(pool.statistics.created <= 20 && pool.statistics.discarded == 0, "\(pool.statistics)")
                #expect(server.connectionCount <= 20)
            }
        }
    }

    @Test func twoHundredSleepsOverlapInsteadOfQueueing() async throws {
        try await GreenThread.run {
            try withFollowServer { server in
                let pool = followPool(server.port, maxOpen: 200)
                defer { pool.close() }
                let started = ContinuousClock.now
                let sleepers = (0..<200).map { _ in spawn { try pool.withClient { try $0.sleep(ms: 200) } } }
                for sleeper in sleepers { try sleeper.get() }
                let elapsed = ContinuousClock.now - started
                // One after another they would take 40 s; together, about 200 ms (the bound is loose
                // for slow machines and sanitizers, and far below 40 s).
                #expect(elapsed < .seconds(8), "200 sleep(200) calls took \(elapsed)")
                #expect(pool.statistics.created == 200)
            }
        }
    }

    @Test func aKilledOrTimedOutCallNeverLeavesItsReplyForTheNextCaller() async throws {
        try await GreenThread.run {
            try withFollowServer { server in
                // One connection, so that a reused connection would be the very same one.
                let pool = followPool(server.port, maxOpen: 1)
                defer { pool.close() }
                try pool.withClient { try $0.follow(follower: 1, followee: 2) }

                let victim = spawn { try pool.withClient { try $0.sleep(ms: 300) } }
                try sleep(for: .milliseconds(50))
                victim.kill()
                #expect(try pool.withClient { try $0.isFollowing(a: 1, b: 2) }, "the next caller read its own reply")

                #expect(throws: Timeout.self) {
                    try withTimeout(.milliseconds(50)) { try pool.withClient { try $0.sleep(ms: 300) } }
                }
                #expect(try !pool.withClient { try $0.isFollowing(a: 2, b: 1) })

                let timed = ThriftClientPool<FollowServiceClient>(host: "127.0.0.1", port: server.port,
                                                                  configuration: .init(callTimeout: .milliseconds(50), pool: .init(maxOpen: 1)))
                defer { timed.close() }
                #expect(throws: Timeout.self) { try timed.withClient { try $0.sleep(ms: 300) } }
                #expect(try timed.withClient { try $0.isFollowing(a: 1, b: 2) })
                #expect(pool.statistics.discarded == 2 && timed.statistics.discarded == 1)
                // Let the server finish the abandoned sleeps before it stops.
                try sleep(for: .milliseconds(300))
            }
        }
    }

    @Test func aDrainFinishesCallsInProgressAndClosesIdleConnections() async throws {
        try await GreenThread.run {
            let server = ThriftServer(configuration: .init(port: 0), processor: FollowServiceProcessor(service: InMemoryFollowService()))
            try server.start()
            let idle = followPool(server.port, maxOpen: 1)
            let busy = followPool(server.port, maxOpen: 1)
            defer { idle.close(); busy.close() }
            try idle.withClient { try $0.ping() }
            let call = spawn { try busy.withClient { try $0.sleep(ms: 300) } }
            try sleep(for: .milliseconds(50))
            let started = ContinuousClock.now
            server.stop(timeout: .seconds(10))
            let drained = ContinuousClock.now - started
            try call.get()
            #expect(drained < .seconds(5), "stop returned once the call was answered, not at the timeout")
            #expect(server.connectionCount == 0)
            #expect(throws: (any Error).self, "the idle connection was closed") { try idle.withClient { _ = try $0.isFollowing(a: 1, b: 2) } }
            #expect(throws: (any Error).self, "nothing accepts any more") {
                try Socket.connect(host: "127.0.0.1", port: server.port, timeout: .seconds(1)).close()
            }
        }
    }

    @Test func workersServeTheFollowServiceAndDrainOnSIGTERM() async throws {
        try await GreenThread.run {
            let port = try freePort()
            let master = try ChildProcess([sproutExecutable(), "follow", "--port", "\(port)", "--workers", "2"])
            _ = try master.waitForLine(containing: "serving")
            let pool = ThriftClientPool<FollowServiceClient>(host: "127.0.0.1", port: port, configuration: .init(pool: .init(maxOpen: 8)))
            defer { pool.close() }
            // Each worker has a graph of its own: ask what holds everywhere.
            let callers = (0..<40).map { _ in
                spawn { () throws -> Bool in
                    let deadline = ContinuousClock.now + .seconds(20)
                    while true {
                        do { return try pool.withClient { try !$0.isFollowing(a: 1, b: 2) } } catch {
                            // Workers may still be starting: the master binds first.
                            if ContinuousClock.now > deadline { throw error }
                            try sleep(for: .milliseconds(50))
                        }
                    }
                }
            }
            #expect(try callers.allSatisfy { try $0.get() })
            pool.close()
            kill(master.pid, SIGTERM)
            #expect(try master.waitForExit(timeout: .seconds(20)) == 0, "the master drained its workers and exited 0")
        }
    }
}
