import Glibc
import Sprout
import SproutTestSupport
import Testing

/// Kills and timeouts landing in every blocking IO operation: the interrupted greenlets see
/// `GreenletExit` or `Timeout`, and no descriptor is leaked.
extension SocketSuites {
    @Suite(.timeLimit(.minutes(2)))
    struct IOInterruptionTests {
        enum Operation: String, CaseIterable, CustomTestStringConvertible {
            case recv, send, accept, connect, threadPool
            var testDescription: String { rawValue }
        }

        /// Sockets that make each operation block, and a way to block in it.
        final class Blocker {
            /// More than loopback's socket buffers hold.
            static let bigMessage = [UInt8](repeating: 1, count: 32 << 20)

            let listener: Socket
            var silentServerSide: [Socket] = []
            var fillers: [Socket] = []

            init(_ operation: Operation) throws {
                listener = try Socket.listen(port: 0, backlog: operation == .connect ? 1 : 1024)
                if operation == .connect {
                    // Fill the accept queue (nobody accepts): further SYNs are dropped and
                    // connect waits for a reply that does not come.
                    for _ in 0..<64 {
                        do {
                            fillers.append(try Socket.connect(host: "127.0.0.1", port: listener.localAddress.port,
                                                              timeout: .milliseconds(50)))
                        } catch {
                            return
                        }
                    }
                    throw LeakError(description: "the accept queue never filled up")
                }
            }

            func block(in operation: Operation) throws {
                let port = listener.localAddress.port
                switch operation {
                case .recv:
                    let socket = try Socket.connect(host: "127.0.0.1", port: port)
                    defer { socket.close() }
                    _ = try socket.recv(maxLength: 10)   // the server side never writes
                case .send:
                    let socket = try Socket.connect(host: "127.0.0.1", port: port)
                    defer { socket.close() }
                    try socket.sendAll(Blocker.bigMessage)   // nobody reads
                case .accept:
                    let other = try Socket.listen(port: 0)
                    defer { other.close() }
                    _ = try other.accept()
                case .connect:
                    let socket = try Socket.connect(host: "127.0.0.1", port: port)
                    socket.close()
                case .threadPool:
                    _ = try ThreadPool.shared.run { usleep(300_000) }
                }
            }

            func close() {
                listener.close()
                silentServerSide.forEach { $0.close() }
                fillers.forEach { $0.close() }
            }
        }

        @Test(arguments: Operation.allCases)
        func killsAndTimeoutsLandInEveryIOOperation(_ operation: Operation) async throws {
            try await green(timeout: .seconds(60)) { () throws in
                let before = openSocketCount()
                let blocker = try Blocker(operation)
                let count = operation == .threadPool ? 20 : 60
                var outcomes = Array(repeating: "", count: count)
                var started = 0
                let greenlets = (0..<count).map { index in
                    spawn {
                        started += 1
                        do {
                            if index % 2 == 1 {
                                try withTimeout(.milliseconds(30)) { try blocker.block(in: operation) }
                            } else {
                                try blocker.block(in: operation)
                            }
                            outcomes[index] = "returned"
                        } catch is GreenletExit {
                            outcomes[index] = "killed"
                            throw GreenletExit()
                        } catch is Timeout {
                            outcomes[index] = "timeout"
                        }
                    }
                }
                // Let them all reach their blocking call; accept the server side of recv/send
                // connections so that those block in the operation, not in connect.
                let acceptor = spawn {
                    while true {
                        let (connection, _) = try blocker.listener.accept()
                        blocker.silentServerSide.append(connection)
                    }
                }
                // Every greenlet has started (a kill before its start would leave no outcome),
                // then a little longer for them to reach the operation itself. The kills still
                // land well before the 30 ms timeouts of the other half.
                while started < count { try sleep(for: .milliseconds(1)) }
                try sleep(for: .milliseconds(5))
                killAll(greenlets.enumerated().filter { $0.offset % 2 == 0 }.map(\.element))
                try joinAll(greenlets, timeout: .seconds(10))
                acceptor.kill()
                for index in 0..<count {
                    #expect(outcomes[index] == (index % 2 == 0 ? "killed" : "timeout"), "greenlet \(index)")
                }
                blocker.close()
                try sleep(for: .milliseconds(1))
                #expect(openSocketCount() == before, "no socket leaked")
            }
        }

        @Test func killedThreadPoolWaiterDoesNotWaitForTheThread() async throws {
            try await green { () throws in
                // The job takes 5 s; returning well before it ends shows the waiter did not wait.
                let start = ContinuousClock.now
                #expect(throws: Timeout.self) {
                    try withTimeout(.milliseconds(10)) {
                        _ = try ThreadPool.shared.run { sleep(5) }
                    }
                }
                #expect(ContinuousClock.now - start < .seconds(4))
            }
        }
    }
}
