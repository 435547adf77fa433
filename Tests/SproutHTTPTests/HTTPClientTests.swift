import Glibc
import HTTPTypes
import Sprout
import SproutHTTP
import SproutTLS
import SproutTestSupport
import Testing

/// Trusts the test CA only (as a private deployment would).
func testClient(_ adjust: (inout HTTPClient.Configuration) -> Void = { _ in }) throws -> HTTPClient {
    _ = try TestCertificates.ensure()
    var configuration = HTTPClient.Configuration(connectTimeout: .seconds(5), readTimeout: .seconds(10),
                                                 tls: .client(trustRoots: .file(TestCertificates.path("ca.pem"))))
    adjust(&configuration)
    return HTTPClient(configuration: configuration)
}

/// "<connection> <request number on it> <id>" as nginx's /conn answers.
struct ConnectionReport: Equatable {
    let connection: Int
    let request: Int
    let id: String

    init(_ text: String) throws {
        let parts = text.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 3, let connection = Int(parts[0]), let request = Int(parts[1]) else {
            throw ClientError(description: "unexpected /conn body \(text.debugDescription)")
        }
        self.connection = connection
        self.request = request
        id = String(parts[2])
    }
}

extension HTTPSuites {
    @Suite(.timeLimit(.minutes(3)))
    struct HTTPClientTests {
        @Test func keepAliveReusesOneConnectionOverHTTPAndHTTPS() async throws {
            try await green(timeout: .seconds(60)) { () throws in
                let nginx = try NginxPeer()
                let client = try testClient()
                defer { client.close() }
                for (scheme, port) in [("http", nginx.http), ("https", nginx.https)] {
                    var reports: [ConnectionReport] = []
                    for index in 0..<5 {
                        let response = try client.get("\(scheme)://127.0.0.1:\(port)/conn?id=\(index)")
                        #expect(response.status.code == 200)
                        reports.append(try ConnectionReport(response.text))
                    }
                    // nginx saw one connection, carrying requests 1 to 5 in order.
                    #expect(Set(reports.map(\.connection)).count == 1, "\(scheme): \(reports)")
                    #expect(reports.map(\.request) == [1, 2, 3, 4, 5])
                    #expect(reports.map(\.id) == ["0", "1", "2", "3", "4"])
                    let statistics = client.statistics["\(scheme)://127.0.0.1:\(port)"]
                    #expect(statistics?.created == 1 && statistics?.idle == 1)
                }
                // Host is sent as the URL says; a name verifies against the certificate too.
                let byName = try client.get("https://localhost:\(nginx.https)/")
                #expect(byName.text == "hello from nginx\n")
            }
        }

        @Test func aThousandGreenletsThroughAPoolOfTwentyEachGetTheirOwnAnswer() async throws {
            try await green(timeout: .seconds(120)) { () throws in
                let nginx = try NginxPeer()
                let client = try testClient { $0.maxConnectionsPerHost = 20 }
                defer { client.close() }
                let greenlets = (0..<1000).map { index in spawn { () throws -> ConnectionReport in
                    let response = try client.get("http://127.0.0.1:\(nginx.http)/conn?id=g\(index)")
                    guard response.status.code == 200 else { throw ClientError(description: "status \(response.status.code)") }
                    return try ConnectionReport(response.text)
                } }
                let reports = try greenlets.map { try $0.get() }
                // Every greenlet got the answer to its own request…
                #expect(reports.enumerated().allSatisfy { $0.element.id == "g\($0.offset)" })
                // …over at most 20 connections, each of which carried its requests one at a time:
                // two greenlets on one connection would have read each other's responses (ids
                // would not match) or repeated a request number.
                let byConnection = Dictionary(grouping: reports, by: \.connection)
                #expect(byConnection.count <= 20)
                for (_, seen) in byConnection {
                    #expect(Set(seen.map(\.request)).count == seen.count)
                }
                let statistics = client.statistics["http://127.0.0.1:\(nginx.http)"]!
                #expect(statistics.created <= 20 && statistics.inUse == 0 && statistics.waiting == 0)
            }
        }

        @Test func httpsServesLargeGzipBodiesAndDecompressesWhenAsked() async throws {
            try await green(timeout: .seconds(60)) { () throws in
                let nginx = try NginxPeer()
                let expected = String(repeating: "Sprout grows on green threads. ", count: 20_000)
                let plain = try testClient()
                defer { plain.close() }
                let raw = try plain.get("https://127.0.0.1:\(nginx.https)/static/big.txt")
                #expect(raw.text == expected)
                #expect(raw.headerFields[.contentEncoding] == nil)

                let gunzipping = try testClient { $0.decompress = true }
                defer { gunzipping.close() }
                for url in ["http://127.0.0.1:\(nginx.http)/static/big.txt", "https://127.0.0.1:\(nginx.https)/static/big.txt"] {
                    let response = try gunzipping.get(url)
                    // nginx compresses on the fly: gzip, sent chunked.
                    #expect(response.headerFields[.contentEncoding] == "gzip")
                    #expect(response.headerFields[.transferEncoding] == "chunked")
                    #expect(response.text == expected)
                }
                // Streamed, in small reads.
                var request = HTTPRequest(method: .get, scheme: "http", authority: "127.0.0.1:\(nginx.http)", path: "/static/big.txt")
                request.headerFields[.acceptEncoding] = "gzip"
                let streamed = try gunzipping.withResponse(request) { head, body -> [UInt8] in
                    #expect(head.status.code == 200)
                    var bytes: [UInt8] = []
                    while true {
                        let piece = try body.read(maxLength: 1000)
                        if piece.isEmpty { break }
                        bytes += piece
                    }
                    #expect(body.isComplete)
                    return bytes
                }
                #expect(String(decoding: streamed, as: UTF8.self) == expected)
            }
        }

        @Test func chunkedBothWaysWithPythonsHTTPServer() async throws {
            try await green(timeout: .seconds(60)) { () throws in
                let python = try PythonPeer()
                let client = try testClient()
                defer { client.close() }
                let base = "http://127.0.0.1:\(python.port)"
                #expect(try client.get(base + "/hello").text == "hello from python")

                let chunked = try client.get(base + "/chunked?n=50")
                #expect(chunked.text == (0..<50).map { "chunk \($0)\n" }.joined())

                let pieces = (0..<20).map { String(repeating: Character(UnicodeScalar(97 + $0)!), count: 100 + $0) }
                let echoed = try client.post(base + "/echo", body: .stream { writer in
                    for piece in pieces { try writer.write(piece) }
                })
                #expect(echoed.headerFields[HTTPField.Name("X-Request-Framing")!] == "chunked")
                #expect(echoed.text == pieces.joined())

                let sized = try client.post(base + "/echo", body: .stream(length: 6) { try $0.write("abc"); try $0.write("def") })
                #expect(sized.headerFields[HTTPField.Name("X-Request-Framing")!] == "length" && sized.text == "abcdef")

                let delimited = try client.get(base + "/close-delimited")
                #expect(delimited.text == "until the end")

                // All of it over few connections: python counts them.
                let count = try client.get(base + "/connections").text
                #expect(Int(count)! <= 3, "connections seen by python: \(count)")

                // A stream that writes more than it declared fails before sending it.
                do {
                    try client.post(base + "/echo", body: .stream(length: 2) { try $0.write("too long") })
                    Issue.record("an oversized stream was sent")
                } catch let error as HTTPClientError {
                    #expect(error.kind == .invalidRequest)
                }
            }
        }

        @Test func aStaleKeptAliveConnectionIsRetriedForGetButNeverForPost() async throws {
            try await green(timeout: .seconds(60)) { () throws in
                let nginx = try NginxPeer()
                // No check before reuse: the request itself must find the connection dead.
                let client = try testClient { $0.staleCheckAfterIdle = nil }
                defer { client.close() }
                let url = "http://127.0.0.1:\(nginx.shortKeepAlive)/conn?id=a"
                let first = try ConnectionReport(try client.get(url).text)
                try sleep(for: .milliseconds(1600))   // nginx closes it after 1 s idle
                let second = try ConnectionReport(try client.get(url).text)
                #expect(second.connection != first.connection && second.request == 1)
                let statistics = client.statistics["http://127.0.0.1:\(nginx.shortKeepAlive)"]!
                #expect(statistics.created == 2 && statistics.discarded == 1)

                try sleep(for: .milliseconds(1600))
                do {
                    try client.post(url, body: .string("order #1"))
                    Issue.record("a POST on a stale connection succeeded without a retry (or was retried)")
                } catch let error as HTTPClientError {
                    #expect(error.kind == .connectionClosed)
                    #expect(error.message.contains("not idempotent"), "\(error)")
                }
                // The next request opens a fresh connection and works.
                #expect(try client.get(url).status.code == 200)

                // With the check on (the default), the dead connection is noticed before use.
                let checking = try testClient { $0.staleCheckAfterIdle = .milliseconds(500) }
                defer { checking.close() }
                _ = try checking.get(url)
                try sleep(for: .milliseconds(1600))
                #expect(try checking.post(url, body: .string("order #2")).status.code == 200)
            }
        }

        @Test func refusedCertificatesNameTheirReasonAndInsecureAcceptsThem() async throws {
            try await green(timeout: .seconds(60)) { () throws in
                let nginx = try NginxPeer()
                let client = try testClient()
                defer { client.close() }
                let cases: [(Int, String)] = [
                    (nginx.expired, "certificate has expired"),
                    (nginx.selfSigned, "self-signed certificate"),
                    (nginx.wrongHost, "Hostname mismatch"),
                ]
                for (port, reason) in cases {
                    do {
                        try client.get("https://localhost:\(port)/")
                        Issue.record("port \(port): no error, expected \(reason)")
                    } catch let error as TLSError {
                        #expect(error.kind == .certificateRefused, "\(error)")
                        #expect(error.reason.lowercased().contains(reason.lowercased()), "\(error)")
                        #expect("\(error)".contains("certificate refused"))
                    }
                }
                // The system's store does not know the test CA either.
                let system = HTTPClient()
                defer { system.close() }
                do {
                    try system.get("https://127.0.0.1:\(nginx.https)/")
                    Issue.record("a private CA's certificate passed the system store")
                } catch let error as TLSError {
                    #expect(error.kind == .certificateRefused)
                }

                let insecure = HTTPClient(configuration: .init(tls: .insecureClient()))
                defer { insecure.close() }
                for (port, _) in cases {
                    #expect(try insecure.get("https://localhost:\(port)/").text == "hello from nginx\n")
                }
            }
        }

        @Test func redirectsOnlyWhenAskedAndWithALimit() async throws {
            try await green(timeout: .seconds(60)) { () throws in
                let nginx = try NginxPeer()
                let client = try testClient()
                defer { client.close() }
                let base = "http://127.0.0.1:\(nginx.http)"
                let notFollowed = try client.get(base + "/redirect")
                #expect(notFollowed.status.code == 302)
                #expect(notFollowed.headerFields[.location]?.hasSuffix("/conn?id=redirected") == true)

                let followed = try client.send(.get, base + "/redirect", redirectLimit: 3)
                #expect(followed.status.code == 200)
                #expect(try ConnectionReport(followed.text).id == "redirected")
                #expect(followed.url.hasSuffix("/conn?id=redirected"))

                do {
                    try client.send(.get, base + "/loop", redirectLimit: 5)
                    Issue.record("a redirect loop ended")
                } catch let error as HTTPClientError {
                    #expect(error.kind == .tooManyRedirects, "\(error)")
                }
            }
        }

        @Test func readTimeoutDeadlineAndBadInputFailClearly() async throws {
            try await green(timeout: .seconds(60)) { () throws in
                // A real server that accepts and never answers.
                let silent = StreamServer(port: 0) { connection, _ in
                    _ = try connection.recv(maxLength: 65536)
                    try sleep(for: .seconds(30))
                }
                try silent.start()
                defer { silent.stop(timeout: .milliseconds(100)) }
                let base = "http://127.0.0.1:\(silent.port)"

                let impatient = try testClient { $0.readTimeout = .milliseconds(200) }
                defer { impatient.close() }
                let started = ContinuousClock.now
                do {
                    try impatient.get(base + "/")
                    Issue.record("a silent server answered")
                } catch let error as HTTPClientError {
                    #expect(error.kind == .readTimedOut, "\(error)")
                }
                #expect(ContinuousClock.now - started < .seconds(5))

                let bounded = try testClient { $0.deadline = .milliseconds(300) }
                defer { bounded.close() }
                do {
                    try bounded.get(base + "/")
                    Issue.record("a silent server answered")
                } catch let error as HTTPClientError {
                    #expect(error.kind == .deadlineExceeded, "\(error)")
                }

                // A listener whose backlog is full: the kernel drops further SYNs, so a connect
                // hangs until its timeout.
                let full = try Socket.listen(host: "127.0.0.1", port: 0, backlog: 0)
                defer { full.close() }
                let filler = try Socket.connect(host: "127.0.0.1", port: full.localAddress.port)
                defer { filler.close() }
                let hasty = try testClient { $0.connectTimeout = .milliseconds(200) }
                defer { hasty.close() }
                do {
                    try hasty.get("http://127.0.0.1:\(full.localAddress.port)/")
                    Issue.record("connected to a full backlog")
                } catch let error as HTTPClientError {
                    #expect(error.kind == .connectTimedOut, "\(error)")
                }

                let client = try testClient()
                defer { client.close() }
                for (url, words) in [("ftp://x/", "only http and https"), ("http:///", "no host"),
                                     ("http://host:99999/", "port"), ("http://a b/", "characters"),
                                     ("http://user:pw@host/", "credentials"), ("http://host/a b", "spaces")] {
                    do {
                        try client.get(url)
                        Issue.record("\(url) was accepted")
                    } catch let error as HTTPClientError {
                        #expect(error.kind == .invalidURL && error.message.contains(words), "\(error)")
                    }
                }
                // swift-http-types already turns CR and LF in a value into spaces: no header can
                // be injected through a value (the client checks again before writing).
                let fields: HTTPFields = [.userAgent: "x\r\nInjected: yes"]
                #expect(!fields[.userAgent]!.contains("\r") && !fields[.userAgent]!.contains("\n"))
                do {
                    try client.get("http://127.0.0.1:1/")
                    Issue.record("port 1 answered")
                } catch let error as ConnectError {
                    #expect("\(error)".contains("refused"))
                }
            }
        }

        @Test func poolsOfHostsNoLongerCalledLetGoOfTheirSockets() async throws {
            try await green(timeout: .seconds(60)) { () throws in
                let nginx = try NginxPeer()
                let python = try PythonPeer()
                let client = try testClient { $0.idleTimeout = .milliseconds(200) }
                defer { client.close() }
                _ = try client.get("http://127.0.0.1:\(python.port)/hello")
                #expect(client.statistics["http://127.0.0.1:\(python.port)"]?.open == 1)
                let end = ContinuousClock.now + .milliseconds(1500)
                while ContinuousClock.now < end {
                    _ = try client.get("http://127.0.0.1:\(nginx.http)/")
                    try sleep(for: .milliseconds(50))
                }
                // python's pool was not used again: its connection expired and the pool went.
                #expect(client.statistics["http://127.0.0.1:\(python.port)"] == nil)
                #expect(client.statistics["http://127.0.0.1:\(nginx.http)"]?.open == 1)
            }
        }

        @Test func sendsTheFieldsCurlSends() async throws {
            try await green { () throws in
                try withServer { port, _ in
                    let client = try testClient()
                    defer { client.close() }
                    let echoed = try client.get("http://127.0.0.1:\(port)/headers", headers: [.cookie: "a=1"]).text
                    #expect(echoed.contains("host: 127.0.0.1:\(port)\n"))
                    #expect(echoed.contains("user-agent: sprout/"))
                    #expect(echoed.contains("accept: */*\n"))
                    #expect(echoed.contains("cookie: a=1\n"))
                    let posted = try client.post("http://127.0.0.1:\(port)/echo", body: .none)
                    #expect(posted.status.code == 200 && posted.body.isEmpty)   // Content-Length: 0 sent
                    // The default port is left out of Host, as curl does.
                    let custom = HTTPClient(configuration: .init(userAgent: "probe/1"))
                    defer { custom.close() }
                    #expect(try custom.get("http://127.0.0.1:\(port)/headers").text.contains("user-agent: probe/1\n"))
                }
            }
        }

        @Test func malformedResponsesAreRefused() async throws {
            try await green(timeout: .seconds(60)) { () throws in
                let answers: [(String, String)] = [
                    ("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", "two different Content-Length"),
                    ("HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n", "invalid Content-Length"),
                    ("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "Transfer-Encoding"),
                    ("HTTP/1.1 200 OK\r\nFolded: a\r\n b\r\nContent-Length: 0\r\n\r\n", "folding"),
                    ("HTTP/1.1 200 OK\r\nBad Name: x\r\nContent-Length: 0\r\n\r\n", "token"),
                    ("HTTP/1.1 2000 OK\r\n\r\n", "space after the status code"),
                    ("SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP/1.x status line"),
                    ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "chunked"),
                    ("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "still to come"),
                ]
                var index = 0
                let server = StreamServer(port: 0) { connection, _ in
                    _ = try connection.recv(maxLength: 65536)
                    try connection.sendAll(answers[index].0)
                    try connection.shutdown(.write)
                    try sleep(for: .milliseconds(50))
                }
                try server.start()
                defer { server.stop(timeout: .milliseconds(100)) }
                let client = try testClient()
                defer { client.close() }
                for (_, words) in answers {
                    do {
                        let response = try client.get("http://127.0.0.1:\(server.port)/")
                        Issue.record("accepted: \(response.status.code) \(response.text) (expected \(words))")
                    } catch let error as HTTPClientError {
                        #expect(error.message.contains(words), "\(error)")
                    }
                    index += 1
                }
            }
        }
    }
}
