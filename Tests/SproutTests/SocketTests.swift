import Glibc
import Sprout
import SproutTestSupport
import Testing

/// Socket, server and thread-pool behaviour. Serialized: each test counts the process's open
/// sockets before and after, which concurrent socket tests would disturb.
extension SocketSuites {
    @Suite(.timeLimit(.minutes(2)))
    struct SocketTests {
        @Test func thousandConcurrentEchoClientsEachGetTheirBytes() async throws {
            try await green(timeout: .seconds(60)) { () throws in
                try withEchoServer { port, _ in
                    let clients = spawnMany(1000) { index -> Bool in
                        let socket = try Socket.connect(host: "127.0.0.1", port: port, timeout: .seconds(20))
                        defer { socket.close() }
                        for round in 0..<5 {
                            let message = pattern(1 + (index * 37 + round * 101) % 3000, seed: index + round)
                            try socket.sendAll(message)
                            guard try receive(socket, exactly: message.count) == message else { return false }
                        }
                        return true
                    }
                    let results = try clients.map { try $0.get() }
                    #expect(results.allSatisfy { $0 })
                }
            }
        }

        @Test(arguments: [1, 16 << 20])
        func echoOfOneByteAndSixteenMebibytes(_ size: Int) async throws {
            try await green(timeout: .seconds(60)) { () throws in
                try withEchoServer { port, _ in
                    let socket = try Socket.connect(host: "localhost", port: port)
                    defer { socket.close() }
                    let message = pattern(size, seed: size)
                    // Send and receive at once: 16 MiB does not fit in the socket buffers.
                    let sender = spawn { try socket.sendAll(message) }
                    let echoed = try receive(socket, exactly: size)
                    try sender.get()
                    #expect(echoed == message)
                }
            }
        }

        @Test func halfCloseEchoesTheRestThenCloses() async throws {
            try await green { () throws in
                try withEchoServer { port, _ in
                    let socket = try Socket.connect(host: "127.0.0.1", port: port)
                    defer { socket.close() }
                    try socket.sendAll("last words")
                    try socket.shutdown(.write)
                    let reader = SocketReader(socket)
                    let rest = try reader.readAvailable()
                    var all = rest
                    while true {
                        let more = try reader.readAvailable()
                        if more.isEmpty { break }
                        all += more
                    }
                    #expect(String(decoding: all, as: UTF8.self) == "last words")
                }
            }
        }

        @Test func fourThousandConnectionsInOneProcess() async throws {
            try await green(timeout: .seconds(90)) { () throws in
                let limit = try raiseOpenFileLimitForTests(to: 10_000)
                try #require(limit >= 8_500, "needs 8,000 descriptors; RLIMIT_NOFILE hard limit is \(limit)")
                try withEchoServer { port, server in
                    let count = 4000
                    let allConnected = Event()
                    var connected = 0
                    let clients = spawnMany(count) { index -> Bool in
                        let socket = try Socket.connect(host: "127.0.0.1", port: port, timeout: .seconds(30))
                        defer { socket.close() }
                        let message = pattern(16, seed: index)
                        try socket.sendAll(message)
                        guard try receive(socket, exactly: 16) == message else { return false }
                        connected += 1
                        if connected == count { allConnected.set() }
                        try allConnected.wait()   // hold every connection open at once
                        return true
                    }
                    #expect(try allConnected.wait(timeout: .seconds(60)))
                    #expect(server.connectionCount == count)
                    let results = try clients.map { try $0.get() }
                    #expect(results.allSatisfy { $0 })
                }
            }
        }

        @Test func stopWithBusyHandlersWaitsThenKills() async throws {
            try await green { () throws in
                let before = openSocketCount()
                var finishedByThemselves = 0
                var killed = 0
                var readTheirByte = 0
                let server = StreamServer(port: 0) { connection, _ in
                    do {
                        let first = try connection.recv(maxLength: 1)
                        readTheirByte += 1
                        if first == [1] {
                            try sleep(for: .milliseconds(10))   // a quick handler: finishes in time
                            finishedByThemselves += 1
                        } else {
                            try sleep(for: .seconds(60))         // a stuck one: killed at the timeout
                        }
                    } catch is GreenletExit {
                        killed += 1
                        throw GreenletExit()
                    }
                }
                try server.start()
                let clients = (0..<20).map { index in
                    spawn { () throws -> [UInt8] in
                        let socket = try Socket.connect(host: "127.0.0.1", port: server.port)
                        defer { socket.close() }
                        try socket.sendAll([index % 2 == 0 ? 1 : 2])
                        return try socket.recv(maxLength: 10)   // the server closes: end of stream
                    }
                }
                while readTheirByte < 20 { try sleep(for: .milliseconds(1)) }
                let start = ContinuousClock.now
                server.stop(timeout: .milliseconds(100))
                let took = ContinuousClock.now - start
                #expect(took >= .milliseconds(90), "stop waited for the handlers")
                #expect(finishedByThemselves == 10)
                #expect(killed == 10)
                for client in clients { #expect(try client.get() == []) }
                #expect(throws: (any Error).self) { try Socket.connect(host: "127.0.0.1", port: server.port, timeout: .seconds(1)) }
                try sleep(for: .milliseconds(1))
                #expect(openSocketCount() == before)
            }
        }

        @Test func maxConnectionsPausesAccepting() async throws {
            try await green { () throws in
                let release = Event()
                var running = 0
                var most = 0
                let server = StreamServer(port: 0, maxConnections: 3) { connection, _ in
                    running += 1
                    most = max(most, running)
                    defer { running -= 1 }
                    try release.wait()
                    try connection.sendAll("ok")
                }
                try server.start()
                defer { server.stop() }
                var connected = 0
                let clients = spawnMany(10) { _ in
                    let socket = try Socket.connect(host: "127.0.0.1", port: server.port)
                    defer { socket.close() }
                    connected += 1
                    return try socket.recv(maxLength: 2)
                }
                while running < 3 || connected < 10 { try sleep(for: .milliseconds(1)) }
                // All ten are in the backlog: an acceptor that leaked past the limit would take a
                // fourth within a few loop turns, each of which polls IO.
                for _ in 0..<20 { try sleep(for: .zero) }
                #expect(running == 3)
                #expect(server.connectionCount == 3)
                release.set()
                for client in clients { #expect(try client.get() == Array("ok".utf8)) }
                #expect(most == 3)
            }
        }

        @Test func handlerErrorClosesItsConnectionAndTheServerGoesOn() async throws {
            try await green { () throws in
                var served = 0
                let server = StreamServer(port: 0) { connection, _ in
                    served += 1
                    if served == 1 { throw TestError(code: 1) }
                    try connection.sendAll("fine")
                }
                try server.start()
                defer { server.stop() }
                let first = try Socket.connect(host: "127.0.0.1", port: server.port)
                #expect(try first.recv(maxLength: 10) == [])
                first.close()
                let second = try Socket.connect(host: "127.0.0.1", port: server.port)
                #expect(try second.recv(maxLength: 10) == Array("fine".utf8))
                second.close()
            }
        }

        @Test func closeWhileAnotherGreenletWaitsWakesItWithEBADF() async throws {
            try await green { () throws in
                try withEchoServer { port, _ in
                    let socket = try Socket.connect(host: "127.0.0.1", port: port)
                    let reader = spawn { try socket.recv(maxLength: 10) }
                    try sleep(for: .milliseconds(2))
                    socket.close()
                    do {
                        _ = try reader.get()
                        Issue.record("recv returned")
                    } catch let error as SystemError {
                        #expect(error.errno == EBADF)
                        #expect("\(error)".contains("closed"))
                    }
                    #expect(throws: SystemError.self) { try socket.sendAll("x") }
                }
            }
        }

        @Test func twoReadersOnOneSocketIsAnError() async throws {
            try await green { () throws in
                try withEchoServer { port, _ in
                    let socket = try Socket.connect(host: "127.0.0.1", port: port)
                    defer { socket.close() }
                    let first = spawn { try socket.recv(maxLength: 1) }
                    try sleep(for: .milliseconds(1))
                    #expect(throws: HubError.self) { _ = try socket.recv(maxLength: 1) }
                    first.kill()
                }
            }
        }

        @Test func socketTimeoutAppliesToEachOperation() async throws {
            try await green { () throws in
                try withEchoServer { port, _ in
                    // Long enough for a real round trip under a sanitizer, short for a test.
                    let socket = try Socket.connect(host: "127.0.0.1", port: port, timeout: .milliseconds(250))
                    defer { socket.close() }
                    try socket.setNoDelay(false)
                    try socket.setOption(level: SOL_SOCKET, name: SO_KEEPALIVE, value: 1)
                    do {
                        _ = try socket.recv(maxLength: 1)
                        Issue.record("recv returned")
                    } catch let error as SystemError {
                        #expect(error.errno == ETIMEDOUT)
                    }
                    try socket.sendAll("a")
                    #expect(try socket.recv(maxLength: 1) == Array("a".utf8))
                }
            }
        }

        @Test func connectionRefusedListsTheAddressTried() async throws {
            try await green { () throws in
                let listener = try Socket.listen(port: 0)
                let port = listener.localAddress.port
                listener.close()
                do {
                    _ = try Socket.connect(host: "127.0.0.1", port: port)
                    Issue.record("connected")
                } catch let error as ConnectError {
                    #expect(error.failures.count == 1)
                    #expect((error.failures[0].error as? SystemError)?.errno == ECONNREFUSED)
                }
            }
        }

        @Test func resolveLocalhostAndFailures() async throws {
            try await green { () throws in
                let addresses = try resolve(host: "localhost", port: 80)
                #expect(addresses.contains { $0.host == "127.0.0.1" || $0.host == "::1" })
                #expect(addresses.allSatisfy { $0.port == 80 })
                #expect(throws: ResolverError.self) { try resolve(host: "no-such-host.invalid", port: 80) }
                #expect(throws: SocketAddressError.self) { try resolve(host: "localhost", port: 70_000) }
                #expect(throws: SocketAddressError.self) { try SocketAddress(ip: "not an ip", port: 1) }
                #expect(try SocketAddress(ip: "::1", port: 8080).description == "[::1]:8080")
            }
        }

        @Test func ipv6AndUnixSocketsEcho() async throws {
            try await green { () throws in
                let before = openSocketCount()
                let path = "/tmp/sprout-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
                defer { unlink(path) }
                for server in [StreamServer(host: "::1", port: 0) { c, _ in try echoBack(c) },
                               StreamServer(unixPath: path) { c, _ in try echoBack(c) }] {
                    try server.start()
                    let socket = server.address!.family == .unix
                        ? try Socket.connect(unixPath: path)
                        : try Socket.connect(host: "::1", port: server.port)
                    try socket.sendAll("ping")
                    #expect(try receive(socket, exactly: 4) == Array("ping".utf8))
                    #expect(socket.remoteAddress.family == server.address!.family)
                    socket.close()
                    server.stop()
                }
                try sleep(for: .milliseconds(1))
                #expect(openSocketCount() == before)
            }
        }

        @Test func datagramServerEchoes() async throws {
            try await green { () throws in
                let server = DatagramServer(port: 0) { datagram, peer, server in
                    try server.sendTo(datagram.reversed(), address: peer)
                }
                try server.start()
                defer { server.stop() }
                let client = try Socket.udp()
                defer { client.close() }
                let target = try SocketAddress(ip: "127.0.0.1", port: server.port)
                for index in 0..<50 {
                    try client.sendTo([UInt8(index), 1, 2], address: target)
                    let (reply, from) = try client.recvFrom(maxLength: 100)
                    #expect(reply == [2, 1, UInt8(index)])
                    #expect(from == target)
                }
            }
        }

        @Test func socketReaderReadsLinesAndExactCounts() async throws {
            try await green { () throws in
                try withEchoServer { port, _ in
                    let socket = try Socket.connect(host: "127.0.0.1", port: port)
                    defer { socket.close() }
                    let reader = SocketReader(socket, chunkSize: 7)
                    try socket.sendAll("first line\r\nsecond\nabcdefXYZ")
                    #expect(try reader.readLine() == Array("first line".utf8))
                    #expect(try reader.readLine() == Array("second".utf8))
                    #expect(try reader.readExactly(6) == Array("abcdef".utf8))
                    #expect(try reader.readExactly(3) == Array("XYZ".utf8))
                    try socket.sendAll("0123456789\n")
                    #expect(throws: SocketReaderError.lineTooLong(4)) { try reader.readLine(limit: 4) }
                    try socket.shutdown(.write)
                    #expect(try reader.readLine() == Array("0123456789".utf8))
                    #expect(try reader.readLine() == nil)
                    #expect(throws: SocketReaderError.self) { try reader.readExactly(1) }
                }
            }
        }

        @Test func waitOnARawPipe() async throws {
            try await green { () throws in
                var fds: [Int32] = [0, 0]
                #expect(pipe(&fds) == 0)
                defer { close(fds[0]); close(fds[1]) }
                #expect(try wait(fd: fds[0], readable: true, timeout: .milliseconds(5)) == false)
                let writer = spawn {
                    try sleep(for: .milliseconds(2))
                    var byte: UInt8 = 7
                    _ = write(fds[1], &byte, 1)
                }
                #expect(try wait(fd: fds[0], readable: true, timeout: .seconds(5)))
                #expect(try wait(fd: fds[1], writable: true, timeout: .seconds(5)))
                try writer.join()
            }
        }

        @Test func threadPoolRunsBlockingWorkWhileTheHubGoesOn() async throws {
            try await green { () throws in
                // The job returns only after the ticker, on the caller's hub, has finished: a
                // hub blocked by the call would never let it.
                let ticked = OneShotSignal()
                var ticks = 0
                let ticker = spawn {
                    for _ in 0..<10 {
                        try sleep(for: .milliseconds(1))
                        ticks += 1
                    }
                    ticked.signal()
                }
                let value = try ThreadPool.shared.run { () -> Int in
                    ticked.wait()
                    return 99
                }
                #expect(value == 99)
                #expect(ticks == 10)
                try ticker.join()
                #expect(throws: TestError(code: 4)) { try ThreadPool.shared.run { throw TestError(code: 4) } }
                // Many at once: more jobs than threads.
                let many = spawnMany(50) { index in try ThreadPool.shared.run { index * 2 } }
                #expect(try many.map { try $0.get() } == (0..<50).map { $0 * 2 })
            }
        }
    }
}
