import Follow
import Sprout
import SproutTestSupport
import SproutThrift
import Testing

/// A follow service whose handlers fail the way real ones do: a call to another service that
/// times out or cannot connect, a oneway handler that throws an application error.
final class FailingFollowService: FollowService {
    let closedPort: Int
    init(closedPort: Int) { self.closedPort = closedPort }

    func follow(follower: Int64, followee: Int64) throws {}

    func followers(user: Int64, limit: Int32) throws -> TList<Int64> {
        // "Another service" that is down.
        _ = try Socket.connect(host: "127.0.0.1", port: closedPort, timeout: .seconds(1))
        return []
    }

    func isFollowing(a: Int64, b: Int64) throws -> Bool {
        if a < 0 {
            // "Another service" that is too slow for this handler's own deadline.
            try withTimeout(.milliseconds(5)) { try Sprout.sleep(for: .seconds(1)) }
        }
        return a == b
    }

    func sleep(ms: Int32) throws {}

    func ping() throws {
        throw TApplicationError(error: .internalError, message: "a oneway handler failed")
    }
}

/// Failures inside handlers are the handler's: answered as application errors on a connection
/// that serves on; and a pooled connection is reused only when nothing is left mid-call.
@Suite(.serialized, .timeLimit(.minutes(2)), .countsSockets)
struct HandlerFailureTests {
    @Test func handlerFailuresAreAnsweredAndTheConnectionServesOn() async throws {
        let logs = LogLines()
        try await GreenThread.run {
            let closed = try freePort()
            let server = ThriftServer(configuration: .init(port: 0),
                                      processor: FollowServiceProcessor(service: FailingFollowService(closedPort: closed)),
                                      logger: logs.logger())
            try server.start()
            defer { server.stop(timeout: .seconds(1)) }
            let pool = followPool(server.port, maxOpen: 1)
            defer { pool.close() }
            for _ in 0..<2 {
                #expect { try pool.withClient { try $0.isFollowing(a: -1, b: 0) } } throws: {
                    ($0 as? TApplicationError)?.error == .internalError
                }
                #expect { try pool.withClient { try $0.followers(user: 1, limit: 1) } } throws: {
                    ($0 as? TApplicationError)?.error == .internalError
                }
                // A oneway handler's TApplicationError is never sent: the next call reads its own reply.
                try pool.withClient { try $0.ping() }
                #expect(try pool.withClient { try $0.isFollowing(a: 3, b: 3) })
            }
            #expect(pool.statistics.created == 1, "one connection served every call: \(pool.statistics)")
            #expect(logs.count(containing: "handler threw an undeclared error") == 4, "\(logs.all)")
            #expect(logs.contains("method=isFollowing") && logs.contains("Timeout("), "\(logs.all)")
            #expect(logs.contains("method=followers"), "\(logs.all)")
            #expect(logs.count(containing: "dropped the reply to a oneway call") == 2, "\(logs.all)")
        }
    }

    @Test func aBodyThatSwallowsAMidCallTimeoutCannotHandItsReplyOn() async throws {
        try await GreenThread.run {
            try withFollowServer { server in
                let pool = followPool(server.port, maxOpen: 1)
                defer { pool.close() }
                try pool.withClient { try $0.follow(follower: 1, followee: 2) }
                // The timeout lands while the reply to sleep is awaited, and the body carries on.
                let swallowed = try pool.withClient { client in
                    (try? withTimeout(.milliseconds(20)) { try client.sleep(ms: 200) }) == nil
                }
                #expect(swallowed)
                try sleep(for: .milliseconds(250))
                #expect(try pool.withClient { try $0.isFollowing(a: 1, b: 2) }, "the next caller read its own reply")
                #expect(pool.statistics.discarded == 1, "\(pool.statistics)")
            }
        }
    }

    @Test func aServerNobodyHoldsKeepsServing() async throws {
        try await GreenThread.run {
            weak var unheld: ThriftServer?
            func startAndLetGo() throws -> Int {
                let server = ThriftServer(configuration: .init(port: 0), processor: FollowServiceProcessor(service: InMemoryFollowService()))
                try server.start()
                unheld = server
                return server.port
            }
            let port = try startAndLetGo()
            let pool = ThriftClientPool<FollowServiceClient>(host: "127.0.0.1", port: port)
            defer { pool.close() }
            #expect(try !pool.withClient { try $0.isFollowing(a: 1, b: 2) })
            #expect(unheld != nil, "a serving server lives on its own")
            unheld?.stop(timeout: .seconds(1))
            #expect(unheld == nil, "and is released once stopped")
        }
    }
}
