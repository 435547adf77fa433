import Glibc
import Sprout
import SproutHTTP
import SproutTLS
import SproutTestSupport
import Testing

extension HTTPSuites {
    @Suite(.timeLimit(.minutes(3)))
    struct TLSServerTests {
        @Test func curlAndPythonSSLDriveSproutServeOverHTTPS() async throws {
            try await green(timeout: .seconds(90)) { () throws in
                let certificates = try TestCertificates.ensure()
                let child = try ChildProcess([sproutExecutable(), "serve", "--port", "0",
                                              "--tls-cert", certificates + "/server.pem",
                                              "--tls-key", certificates + "/server-key.pem"])
                let line = try child.waitForLine(containing: "listening on")
                #expect(line.contains("https://"))
                let port = try #require(Int(line.split(separator: ":").last ?? ""))
                let base = "https://localhost:\(port)"
                let ca = certificates + "/ca.pem"

                #expect(try runCommand(["curl", "-sS", "--cacert", ca, base + "/"]).output == "Hello, World!")
                #expect(try runCommand(["curl", "-sS", "--cacert", ca, "--data-binary", "over tls", base + "/echo"]).output == "over tls")
                let verbose = try runCommand(["curl", "-sS", "-v", "--cacert", ca, "-o", "/dev/null", base + "/",
                                              "--stderr", "-"]).output
                #expect(verbose.contains("ALPN: server accepted http/1.1"), "\(verbose)")
                // Without the CA, curl refuses the server, as it should.
                #expect(try runCommand(["curl", "-sS", base + "/"]).status != 0)

                let script = """
                    import http.client, ssl, sys
                    context = ssl.create_default_context(cafile=sys.argv[1])
                    connection = http.client.HTTPSConnection("localhost", int(sys.argv[2]), context=context)
                    for i in range(3):   # three requests on one kept-alive TLS connection
                        body = b"x" * (100000 + i)
                        connection.request("POST", "/echo", body=body)
                        response = connection.getresponse()
                        assert response.status == 200 and response.read() == body
                    print("python ok", connection.sock.version(), connection.sock.selected_alpn_protocol())
                    """
                let python = try runCommand(["python3", "-c", script, ca, "\(port)"])
                #expect(python.status == 0)
                #expect(python.output.hasPrefix("python ok TLSv1."), "\(python.output)")

                // Sprout's own client against Sprout's own server.
                let client = try testClient()
                defer { client.close() }
                #expect(try client.post(base + "/echo", body: .string("round trip")).text == "round trip")

                kill(child.pid, SIGTERM)
                #expect(try child.waitForExit(timeout: .seconds(10)) == 0)
            }
        }

        @Test func aStalledOrBrokenHandshakeIsCutWhileOthersAreServed() async throws {
            try await green(timeout: .seconds(60)) { () throws in
                let certificates = try TestCertificates.ensure()
                let tls = TLSConfiguration.server(certificateChainFile: certificates + "/server.pem",
                                                  privateKeyFile: certificates + "/server-key.pem",
                                                  applicationProtocols: ["http/1.1"], handshakeTimeout: .milliseconds(300))
                try withServer(testConfiguration { $0.tls = tls }) { port, server in
                    // One client connects and never says a word; one sends half a ClientHello;
                    // one speaks plain HTTP to the TLS port.
                    let silent = try Socket.connect(host: "127.0.0.1", port: port)
                    defer { silent.close() }
                    let partial = try Socket.connect(host: "127.0.0.1", port: port)
                    defer { partial.close() }
                    try partial.sendAll([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00])
                    let plain = try Socket.connect(host: "127.0.0.1", port: port)
                    defer { plain.close() }
                    try plain.sendAll("GET / HTTP/1.1\r\nHost: x\r\n\r\n")

                    // Meanwhile others are served, at once.
                    let client = try testClient()
                    defer { client.close() }
                    let started = ContinuousClock.now
                    for _ in 0..<20 {
                        #expect(try client.get("https://127.0.0.1:\(port)/").text == "Hello, World!")
                    }
                    let fresh = try testClient()
                    defer { fresh.close() }
                    #expect(try fresh.get("https://localhost:\(port)/").text == "Hello, World!")
                    #expect(ContinuousClock.now - started < .milliseconds(300) || server.connectionCount >= 3)

                    // The plain-text client is dropped at once; the stalled ones at the timeout.
                    for socket in [plain, silent, partial] {
                        socket.timeout = .seconds(5)
                        var sink = [UInt8](repeating: 0, count: 4096)
                        var total = 0
                        while true {
                            let count: Int
                            do {
                                count = try sink.withUnsafeMutableBytes { try socket.recv(into: $0) }
                            } catch let error as SystemError where error.errno == ECONNRESET {
                                break   // closed with unread input: a reset
                            }
                            if count == 0 { break }
                            total += count
                        }
                        #expect(total < 4096)   // at most an alert, never an HTTP response
                    }
                    #expect(ContinuousClock.now - started >= .milliseconds(250))
                }
            }
        }

        @Test func aRequestWhoseRecordArrivesInPiecesAfterAnIdlePauseIsServed() async throws {
            try await green(timeout: .seconds(60)) { () throws in
                let certificates = try TestCertificates.ensure()
                let tls = TLSConfiguration.server(certificateChainFile: certificates + "/server.pem",
                                                  privateKeyFile: certificates + "/server-key.pem")
                try withServer(testConfiguration { $0.tls = tls }) { port, _ in
                    // A relay that forwards each piece from the client in two halves 150 ms apart,
                    // so that the server sees part of a TLS record, then nothing for a while.
                    let relay = try Socket.listen(host: "127.0.0.1", port: 0)
                    defer { relay.close() }
                    let relaying = spawn { () throws in
                        let (client, _) = try relay.accept()
                        defer { client.close() }
                        let upstream = try Socket.connect(host: "127.0.0.1", port: port)
                        defer { upstream.close() }
                        let back = spawn { () throws in
                            var buffer = [UInt8](repeating: 0, count: 65536)
                            while true {
                                let count = try buffer.withUnsafeMutableBytes { try upstream.recv(into: $0) }
                                if count == 0 { return }
                                try client.sendAll(Array(buffer[..<count]))
                            }
                        }
                        defer { back.kill() }
                        while true {
                            let piece = try client.recv(maxLength: 65536)
                            if piece.isEmpty { return }
                            let half = max(1, piece.count / 2)
                            try upstream.sendAll(Array(piece[..<half]))
                            try sleep(for: .milliseconds(150))
                            if half < piece.count { try upstream.sendAll(Array(piece[half...])) }
                        }
                    }
                    defer { relaying.kill() }
                    let context = try TLSContext(configuration: .client(trustRoots: .file(certificates + "/ca.pem")))
                    let client = try TLSSocket.connect(host: "127.0.0.1", port: relay.localAddress.port, context: context)
                    defer { client.close() }
                    client.timeout = .seconds(10)
                    for round in 0..<2 {
                        try client.sendAll(Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
                        var reply: [UInt8] = []
                        while !String(decoding: reply, as: UTF8.self).hasSuffix("Hello, World!") {
                            let piece = try client.recv(maxLength: 4096)
                            if piece.isEmpty { break }
                            reply += piece
                        }
                        #expect(String(decoding: reply, as: UTF8.self).hasSuffix("Hello, World!"), "round \(round)")
                        try sleep(for: .milliseconds(100))   // longer than the server's idle grace
                    }
                }
            }
        }

        @Test func clientsStuckInTheHandshakeAreEvictedForNewOnes() async throws {
            try await green(timeout: .seconds(60)) { () throws in
                let certificates = try TestCertificates.ensure()
                let tls = TLSConfiguration.server(certificateChainFile: certificates + "/server.pem",
                                                  privateKeyFile: certificates + "/server-key.pem",
                                                  handshakeTimeout: .seconds(30))
                try withServer(testConfiguration { $0.tls = tls; $0.maxConnections = 2 }) { port, server in
                    let silent = try (0..<2).map { _ in try Socket.connect(host: "127.0.0.1", port: port) }
                    defer { silent.forEach { $0.close() } }
                    while server.connectionCount < 2 { try sleep(for: .milliseconds(5)) }
                    let client = try testClient()
                    defer { client.close() }
                    let started = ContinuousClock.now
                    #expect(try client.get("https://127.0.0.1:\(port)/").text == "Hello, World!")
                    #expect(ContinuousClock.now - started < .seconds(10))
                    #expect(server.evictedConnectionCount >= 1)
                }
            }
        }

        @Test func aCloseDelimitedBodyCutWithoutCloseNotifyIsAnError() async throws {
            try await green(timeout: .seconds(60)) { () throws in
                let certificates = try TestCertificates.ensure()
                let context = try TLSContext(configuration: .server(certificateChainFile: certificates + "/server.pem",
                                                                    privateKeyFile: certificates + "/server-key.pem"))
                var cleanly = false
                let server = StreamServer(port: 0) { connection, _ in
                    let tls = try TLSSocket(serverOn: connection, context: context)
                    _ = try tls.recv(maxLength: 4096)
                    try tls.sendAll(Array("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\npart of a body".utf8))
                    if cleanly { tls.close() } else { tls.socket.close() }   // with or without close_notify
                }
                try server.start()
                defer { server.stop(timeout: .milliseconds(200)) }
                let client = try testClient()
                defer { client.close() }
                do {
                    try client.get("https://127.0.0.1:\(server.port)/")
                    Issue.record("a body cut without close_notify was accepted")
                } catch let error as HTTPClientError {
                    #expect(error.kind == .connectionClosed && error.message.contains("close_notify"), "\(error)")
                }
                cleanly = true
                #expect(try client.get("https://127.0.0.1:\(server.port)/").text == "part of a body")
            }
        }

        @Test func badCertificateFilesFailAtStartWithTheirNames() async throws {
            try await green { () throws in
                let certificates = try TestCertificates.ensure()
                let cases: [(TLSConfiguration, String)] = [
                    (.server(certificateChainFile: "/nonexistent.pem", privateKeyFile: certificates + "/server-key.pem"),
                     "/nonexistent.pem"),
                    (.server(certificateChainFile: certificates + "/server.pem", privateKeyFile: certificates + "/expired-key.pem"),
                     "expired-key.pem"),
                ]
                for (tls, words) in cases {
                    let server = HTTPServer(configuration: testConfiguration { $0.tls = tls }, responder: DemoApp.router())
                    do {
                        try server.start()
                        server.stop()
                        Issue.record("started with \(words)")
                    } catch let error as TLSError {
                        #expect(error.kind == .configuration && "\(error)".contains(words), "\(error)")
                    }
                }
                let child = try ChildProcess([sproutExecutable(), "serve", "--port", "0", "--tls-cert", "/nonexistent.pem",
                                              "--tls-key", "/nonexistent.pem"])
                #expect(try child.waitForExit(timeout: .seconds(10)) != 0)
            }
        }
    }
}
