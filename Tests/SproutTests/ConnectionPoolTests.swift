import Glibc
import Sprout
import SproutTestSupport
import Testing

/// A pooled connection for the tests: a real socket to an echo server, and a flag that proves
/// no two greenlets hold it at once.
final class EchoConnection {
    let socket: Socket
    var holder: Int?
    var uses = 0

    init(port: Int) throws {
        socket = try Socket.connect(host: "127.0.0.1", port: port, timeout: .seconds(5))
    }

    /// Sends `message` and reads it back.
    func roundTrip(_ message: [UInt8]) throws -> [UInt8] {
        try socket.sendAll(message)
        return try receive(socket, exactly: message.count)
    }
}

/// Carries a greenlet-only object to another thread for a test that checks it is refused there.
struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

func echoPool(port: Int, _ configuration: ConnectionPool<EchoConnection>.Configuration,
              healthCheck: ((EchoConnection) -> Bool)? = nil,
              isBroken: @escaping (any Error) -> Bool = { _ in true }) -> ConnectionPool<EchoConnection> {
    ConnectionPool(configuration: configuration, open: { try EchoConnection(port: port) },
                   close: { $0.socket.close() }, healthCheck: healthCheck, isBroken: isBroken)
}

extension SocketSuites {
    @Suite(.timeLimit(.minutes(2)))
    struct ConnectionPoolTests {
        @Test func fiveHundredGreenletsShareTenConnectionsNeverTwoOnOne() async throws {
            try await green(timeout: .seconds(60)) { () throws in
                try withEchoServer { port, _ in
                    let pool = echoPool(port: port, .init(maxOpen: 10))
                    var most = 0
                    var clash = false
                    let clients = spawnMany(500) { index -> Bool in
                        try pool.withConnection { connection in
                            if connection.holder != nil { clash = true }
                            connection.holder = index
                            connection.uses += 1
                            defer { connection.holder = nil }
                            most = max(most, pool.statistics.inUse)
                            let message = pattern(1 + index % 700, seed: index)
                            // A round trip parks the greenlet: others run meanwhile.
                            guard try connection.roundTrip(message) == message else { return false }
                            return connection.holder == index
                        }
                    }
                    let results = try clients.map { try $0.get() }
                    #expect(results.allSatisfy { $0 })
                    #expect(!clash)
                    #expect(most == 10)
                    let statistics = pool.statistics
                    #expect(statistics.created == 10 && statistics.discarded == 0)
                    #expect(statistics.open == 10 && statistics.idle == 10 && statistics.inUse == 0 && statistics.waiting == 0)
                    pool.close()
                    #expect(pool.statistics.open == 0 && pool.statistics.discarded == 10)
                }
            }
        }

        @Test func killedAndTimedOutWaitersTakeNoConnectionAndFIFOHolds() async throws {
            try await green { () throws in
                try withEchoServer { port, _ in
                    let pool = echoPool(port: port, .init(maxOpen: 1, checkoutTimeout: nil))
                    let release = Event()
                    let holder = spawn { try pool.withConnection { _ in _ = try release.wait() } }
                    try sleep(for: .zero)
                    #expect(pool.statistics.inUse == 1)

                    var order: [String] = []
                    let killed = spawn { try pool.withConnection { _ in order.append("killed") } }
                    let timedOut = spawn {
                        try withTimeout(.milliseconds(20)) { try pool.withConnection { _ in order.append("timed out") } }
                    }
                    let first = spawn { try pool.withConnection { _ in order.append("first") } }
                    let second = spawn { try pool.withConnection { _ in order.append("second") } }
                    try sleep(for: .zero)
                    #expect(pool.statistics.waiting == 4)
                    killed.kill()
                    try timedOut.join()
                    #expect(timedOut.error is Timeout)
                    #expect(pool.statistics.waiting == 2)
                    release.set()
                    try joinAll([holder, first, second])
                    #expect(order == ["first", "second"])
                    let statistics = pool.statistics
                    #expect(statistics.created == 1 && statistics.open == 1 && statistics.waiting == 0 && statistics.inUse == 0)
                    pool.close()
                }
            }
        }

        @Test func checkoutTimeoutThrowsItsOwnError() async throws {
            try await green { () throws in
                try withEchoServer { port, _ in
                    let pool = echoPool(port: port, .init(maxOpen: 1, checkoutTimeout: .milliseconds(20)))
                    let release = Event()
                    let holder = spawn { try pool.withConnection { _ in _ = try release.wait() } }
                    try sleep(for: .zero)
                    do {
                        try pool.withConnection { _ in Issue.record("got a connection that is in use") }
                        Issue.record("checkout did not time out")
                    } catch {
                        #expect(error as? ConnectionPoolError == .checkoutTimedOut(.milliseconds(20)))
                    }
                    release.set()
                    try holder.join()
                    pool.close()
                }
            }
        }

        @Test func killOrTimeoutWhileHoldingDiscardsTheConnection() async throws {
            try await green { () throws in
                try withEchoServer { port, _ in
                    let pool = echoPool(port: port, .init(maxOpen: 2))
                    var sockets: [Socket] = []
                    let holding = Event()
                    let killed = spawn {
                        try pool.withConnection { connection in
                            sockets.append(connection.socket)
                            holding.set()
                            // Half a request sent, the reply never read: this connection must
                            // never be handed to anyone else.
                            try connection.socket.sendAll([1, 2, 3])
                            try sleep(for: .seconds(10))
                        }
                    }
                    _ = try holding.wait()
                    killed.kill()
                    #expect(pool.statistics == .init(open: 0, idle: 0, inUse: 0, waiting: 0, created: 1, discarded: 1))
                    #expect(sockets[0].isClosed)

                    do {
                        try withTimeout(.milliseconds(10)) {
                            try pool.withConnection { connection in
                                sockets.append(connection.socket)
                                try sleep(for: .seconds(10))
                            }
                        }
                        Issue.record("no timeout")
                    } catch is Timeout {}
                    #expect(pool.statistics == .init(open: 0, idle: 0, inUse: 0, waiting: 0, created: 2, discarded: 2))
                    #expect(sockets[1].isClosed)
                    // A fresh connection still works.
                    #expect(try pool.withConnection { try $0.roundTrip([9]) } == [9])
                    pool.close()
                }
            }
        }

        @Test func brokenErrorsDiscardOtherErrorsReturnTheConnection() async throws {
            try await green { () throws in
                try withEchoServer { port, _ in
                    let pool = echoPool(port: port, .init(maxOpen: 2), isBroken: { error in error is SystemError })
                    do {
                        try pool.withConnection { _ in throw TestError(code: 1) }
                    } catch let error as TestError { #expect(error.code == 1) }
                    #expect(pool.statistics.idle == 1 && pool.statistics.discarded == 0)
                    do {
                        try pool.withConnection { _ in throw SystemError(errno: ECONNRESET, operation: "recv") }
                    } catch is SystemError {}
                    #expect(pool.statistics.idle == 0 && pool.statistics.discarded == 1)

                    let notReusable = ConnectionPool(configuration: .init(maxOpen: 1), open: { try EchoConnection(port: port) },
                                                     close: { $0.socket.close() }, isReusable: { $0.uses < 2 })
                    for _ in 0..<3 { try notReusable.withConnection { $0.uses += 1 } }
                    // Used once, returned; used twice, discarded; a new one used once, returned.
                    #expect(notReusable.statistics.created == 2 && notReusable.statistics.discarded == 1)
                    notReusable.close()
                    pool.close()
                }
            }
        }

        @Test func aFailingFactoryFreesItsSlotAndItsErrorReachesTheCaller() async throws {
            try await green { () throws in
                try withEchoServer { port, _ in
                    var attempts = 0
                    let pool = ConnectionPool(configuration: .init(maxOpen: 1), open: { () throws -> EchoConnection in
                        attempts += 1
                        if attempts <= 2 { throw TestError(code: attempts) }
                        return try EchoConnection(port: port)
                    }, close: { $0.socket.close() })
                    for code in 1...2 {
                        do {
                            try pool.withConnection { _ in Issue.record("body ran without a connection") }
                        } catch let error as TestError { #expect(error.code == code) }
                        #expect(pool.statistics.open == 0 && pool.statistics.inUse == 0)
                    }
                    #expect(try pool.withConnection { try $0.roundTrip([4, 2]) } == [4, 2])
                    #expect(pool.statistics.created == 1)
                    pool.close()

                    // A refused connect, as a real factory meets it.
                    let refusing = ConnectionPool(configuration: .init(maxOpen: 1),
                                                  open: { try Socket.connect(host: "127.0.0.1", port: 1) },
                                                  close: { $0.close() })
                    do {
                        try refusing.withConnection { _ in }
                        Issue.record("connect to port 1 succeeded")
                    } catch let error as ConnectError {
                        #expect("\(error)".contains("127.0.0.1"))
                    }
                    #expect(refusing.statistics.open == 0)
                }
            }
        }

        @Test func idleExpiryLifetimeAndHealthCheck() async throws {
            try await green { () throws in
                try withEchoServer { port, _ in
                    let expiring = echoPool(port: port, .init(maxOpen: 2, idleExpiry: .milliseconds(30)))
                    try expiring.withConnection { _ in }
                    try expiring.withConnection { _ in }
                    #expect(expiring.statistics.created == 1)
                    try sleep(for: .milliseconds(60))
                    try expiring.withConnection { _ in }
                    #expect(expiring.statistics.created == 2 && expiring.statistics.discarded == 1)
                    expiring.close()

                    let aging = echoPool(port: port, .init(maxOpen: 2, idleExpiry: nil, maxLifetime: .milliseconds(40)))
                    try aging.withConnection { _ in }
                    try sleep(for: .milliseconds(60))
                    // Older than its lifetime when it comes back: closed, not kept idle.
                    try aging.withConnection { _ in }
                    #expect(aging.statistics.created == 2 && aging.statistics.discarded == 1)
                    aging.close()

                    // A health check that finds the peer gone (end of stream waiting to be read).
                    var checks = 0
                    let checked = echoPool(port: port, .init(maxOpen: 2, healthCheckAfterIdle: .milliseconds(10)),
                                           healthCheck: { connection in
                        checks += 1
                        let probe = UnsafeMutableRawBufferPointer.allocate(byteCount: 1, alignment: 1)
                        defer { probe.deallocate() }
                        // Readable with nothing to say is dead: EOF or an error.
                        return (try? connection.socket.tryRecv(into: probe)) == .some(nil)
                    })
                    try checked.withConnection { _ in }
                    try checked.withConnection { _ in }
                    #expect(checks == 0)   // returned moments ago: not checked
                    try sleep(for: .milliseconds(20))
                    try checked.withConnection { _ in }
                    #expect(checks == 1 && checked.statistics.created == 1)
                    // The peer closes: the next checkout after the threshold discards and reopens.
                    try checked.withConnection { try $0.socket.shutdown(.write) }
                    try sleep(for: .milliseconds(20))
                    #expect(try checked.withConnection { try $0.roundTrip([7]) } == [7])
                    #expect(checks == 2 && checked.statistics.created == 2 && checked.statistics.discarded == 1)
                    checked.close()
                }
            }
        }

        @Test func closeWakesWaitersAndOtherThreadsAreRefused() async throws {
            try await green { () throws in
                try withEchoServer { port, _ in
                    let pool = echoPool(port: port, .init(maxOpen: 1, checkoutTimeout: nil))
                    let release = Event()
                    let holder = spawn { try pool.withConnection { _ in _ = try release.wait() } }
                    let waiter = spawn { try pool.withConnection { _ in } }
                    try sleep(for: .zero)
                    pool.close()
                    try waiter.join()
                    #expect(waiter.error as? ConnectionPoolError == .closed)
                    release.set()
                    try holder.join()
                    #expect(pool.statistics.open == 0 && pool.statistics.discarded == 1)

                    let other = UncheckedBox(echoPool(port: port, .init(maxOpen: 1)))
                    let refused = try ThreadPool.shared.run { () -> Bool in
                        do {
                            try GreenThread.run { try other.value.withConnection { _ in } }
                            return false
                        } catch let error as HubError {
                            return "\(error)".contains("another thread")
                        } catch {
                            return false
                        }
                    }
                    #expect(refused)
                    other.value.close()
                }
            }
        }
    }
}
