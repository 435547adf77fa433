import Glibc
import Sprout
import SproutHTTP
import SproutTestSupport
import Testing

extension HTTPSuites {
    /// Servers on several hubs (or worker processes) accepting from one shared listener.
    @Suite(.timeLimit(.minutes(1)))
    struct SharedListenerTests {
        /// A hub whose server is full must not take the kernel's one wake-up (EPOLLEXCLUSIVE)
        /// for a new connection: the hub that waits in accept has to get it. Before the fix a
        /// full hub stayed registered, was woken first (it registered first), ignored the
        /// wake-up, and the client waited until the full hub's request ended (3 s here).
        @Test func aFullHubLeavesNewConnectionsToOneThatAccepts() async throws {
            try await green(timeout: .seconds(30)) {
                let original = try Socket.listen(port: 0)
                let port = original.localAddress.port
                let forOther = dup(original.fileDescriptor)
                let forThis = dup(original.fileDescriptor)
                original.close()
                #expect(forOther >= 0 && forThis >= 0)

                let router = Router()
                router.get("/slow") { _ in
                    try sleep(for: .seconds(3))
                    return .text("slow")
                }
                router.get("/") { _ in .text("quick") }
                var full = testConfiguration { $0.maxConnections = 1 }
                full.evictsIdleConnections = false
                let listener = try Socket(fileDescriptor: forThis)
                listener.isSharedListener = true
                let thisServer = HTTPServer(configuration: full, listener: listener, responder: router)
                try thisServer.start()
                defer { thisServer.stop(timeout: .seconds(1)) }
                try sleep(for: .milliseconds(100))  // this hub waits in accept first

                // This hub takes the slow request and is then full.
                let slow = spawn { try exchange(port, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n").0.body }
                try sleep(for: .milliseconds(300))
                #expect(thisServer.connectionCount == 1)

                // Another hub starts accepting from the same queue, for 6 s.
                let other = spawn {
                    try GreenThread.run {
                        let shared = try Socket(fileDescriptor: forOther)
                        shared.isSharedListener = true
                        let server = HTTPServer(configuration: testConfiguration(), listener: shared,
                                                responder: DemoApp.router())
                        try server.start()
                        try sleep(for: .seconds(6))
                        server.stop(timeout: .seconds(1))
                    }
                }
                try sleep(for: .milliseconds(300))

                // The client connects from a third thread, so that this hub's thread is asleep in
                // epoll_wait when the connection arrives (the kernel skips an instance that no
                // thread waits on, and would skip this one if the connect ran here).
                let started = ContinuousClock.now
                let body = try GreenThread.run { try exchange(port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n").0.body }
                let waited = ContinuousClock.now - started
                // The other hub serves the demo app: its "Hello, World!" proves who answered.
                #expect(String(decoding: body, as: UTF8.self) == "Hello, World!")
                #expect(waited < .milliseconds(1500), "the new connection waited \(waited) for the full hub")
                #expect(String(decoding: try slow.get(), as: UTF8.self) == "slow")
                try other.get()
            }
        }
    }
}
