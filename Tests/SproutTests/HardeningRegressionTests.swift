import Glibc
import Sprout
import SproutTestSupport
import Testing

/// Defects of issue 7 §1, each test written to fail before its fix. In the socket suites, since
/// they open descriptors and a neighbour test checks that descriptor numbers are reused.
extension SocketSuites {
    @Suite(.timeLimit(.minutes(1)))
    struct HardeningRegressionTests {
        @Test func killAllDeliversGreenletExitOnceSoCleanupThroughASwitchPointFinishes() async throws {
            try await green { () throws in
                let cleanedUp = Event()
                let stubborn = spawnMany(3) { _ in
                    do {
                        try sleep(for: .seconds(60))
                    } catch is GreenletExit {
                        try sleep(for: .milliseconds(10))  // say goodbye: a switch point
                        cleanedUp.set()
                    }
                }
                try sleep(for: .milliseconds(5))  // all three are parked in their sleep
                killAll(stubborn)
                #expect(cleanedUp.isSet, "the cleanup was killed a second time")
                #expect(stubborn.allSatisfy { $0.isSuccessful })
            }
        }

        @Test func eventWaitReturnsTheFlagWhenSetLandsBetweenItsDeadlineAndItsTurn() async throws {
            try await green { () throws in
                let event = Event()
                let waiter = spawn { try event.wait(timeout: .milliseconds(10)) }
                let setter = spawn {
                    try sleep(for: .milliseconds(9))
                    event.set()
                }
                // Hog the hub past both deadlines: the setter's (earlier) and the waiter's expire in
                // the same turn, so the setter runs after the waiter's timeout woke it.
                let hog = spawn {
                    let end = ContinuousClock.now + .milliseconds(30)
                    while ContinuousClock.now < end {}
                }
                try hog.join()
                try setter.get()
                #expect(try waiter.get() == true, "the flag was set before the waiter ran")
            }
        }

        @Test func waitingForNeitherDirectionIsAnErrorNotATrap() async throws {
            try await green { () throws in
                var fds: [Int32] = [0, 0]
                #expect(pipe(&fds) == 0)
                defer { close(fds[0]); close(fds[1]) }
                #expect(throws: SystemError.self) { try wait(fd: fds[0]) }
            }
        }
}

}

extension SocketSuites {
        @Suite(.timeLimit(.minutes(1)))
        struct HardeningSocketRegressionTests {
            @Test func stoppingAUnixSocketServerRemovesItsPath() async throws {
                try await green { () throws in
                    let path = "/tmp/sprout-test-\(getpid())-\(Int.random(in: 0..<1_000_000)).sock"
                    let server = StreamServer(unixPath: path) { connection, _ in try echoBack(connection) }
                    try server.start()
                    #expect(access(path, F_OK) == 0)
                    server.stop()
                    #expect(access(path, F_OK) != 0, "the socket file was left behind")
                    // So the same path can serve again.
                    let again = StreamServer(unixPath: path) { connection, _ in try echoBack(connection) }
                    try again.start()
                    again.stop()
                }
            }
        }
}
