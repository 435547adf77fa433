import Glibc
import HTTPTypes
import Sprout
import SproutHTTP
import Testing

/// HTTP/1.1 rules over raw sockets against the demo app, one test a rule.
extension HTTPSuites {
    @Suite(.timeLimit(.minutes(1)))
    struct ProtocolTests {
        @Test func helloWorldWithDateAndLength() async throws {
            try await green { () throws in
                try withServer { port, _ throws in
                    let (response, closed) = try exchange(port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
                    #expect(response.status == 200)
                    #expect(response.text == "Hello, World!")
                    #expect(response.header("content-type") == "text/plain; charset=utf-8")
                    #expect(response.header("content-length") == "13")
                    let date = try #require(response.header("date"))
                    #expect(date.hasSuffix(" GMT") && date.count == 29)
                    #expect(!closed, "HTTP/1.1 keeps the connection by default")
                }
            }
        }

        @Test func keepAliveServesManyRequestsOnOneConnection() async throws {
            try await green { () throws in
                try withServer { port, _ throws in
                    let client = try RawClient(port: port)
                    for _ in 0..<50 {
                        try client.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
                        #expect(try client.readResponse().text == "Hello, World!")
                    }
                }
            }
        }

        @Test func connectionCloseIsHonouredAndExtraBytesIgnored() async throws {
            try await green { () throws in
                try withServer { port, _ throws in
                    let client = try RawClient(port: port)
                    try client.send("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
                    let response = try client.readResponse()
                    #expect(response.header("connection") == "close")
                    #expect(try client.isClosedByServer())
                }
            }
        }

        @Test func http10ClosesUnlessKeepAliveIsAsked() async throws {
            try await green { () throws in
                try withServer { port, _ throws in
                    let (plain, plainClosed) = try exchange(port, "GET / HTTP/1.0\r\n\r\n")
                    #expect(plain.status == 200 && plainClosed)
                    #expect(plain.header("connection") == "close")
                    let (kept, keptClosed) = try exchange(port, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
                    #expect(kept.header("connection") == "keep-alive")
                    #expect(!keptClosed)
                }
            }
        }

        @Test func pipelinedRequestsAreAnsweredInOrder() async throws {
            try await green { () throws in
                try withServer { port, _ throws in
                    let client = try RawClient(port: port)
                    try client.send("GET /sleep?ms=30 HTTP/1.1\r\nHost: a\r\n\r\nPOST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\nHost: a\r\n\r\n")
                    #expect(try client.readResponse().text == "slept")
                    #expect(try client.readResponse().text == "abc")
                    #expect(try client.readResponse().text == "Hello, World!")
                }
            }
        }

        @Test func pipelinedBodiesSplitAtEveryOffset() async throws {
            try await green(timeout: .seconds(50)) { () throws in
                try withServer { port, _ throws in
                    let wire = Array("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloPOST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n".utf8)
                    for split in stride(from: 1, to: wire.count, by: 3) {
                        let client = try RawClient(port: port)
                        try client.send(Array(wire[..<split]))
                        try sleep(for: .milliseconds(1))
                        try client.send(Array(wire[split...]))
                        #expect(try client.readResponse().text == "hello", "split at \(split)")
                        #expect(try client.readResponse().text == "abc", "split at \(split)")
                    }
                }
            }
        }

        @Test func chunkedRequestBodyIsEchoed() async throws {
            try await green { () throws in
                try withServer { port, _ throws in
                    let (response, _) = try exchange(port, "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n")
                    #expect(response.status == 200)
                    #expect(response.text == "hello world")
                }
            }
        }

        @Test func streamIsChunkedForHTTP11AndCloseDelimitedForHTTP10() async throws {
            try await green { () throws in
                try withServer { port, _ throws in
                    let expected = (0..<5).map { "chunk-\($0)\n" }.joined()
                    let (chunked, _) = try exchange(port, "GET /stream?n=5 HTTP/1.1\r\nHost: a\r\n\r\n")
                    #expect(chunked.header("transfer-encoding") == "chunked")
                    #expect(chunked.text == expected)
                    let (plain, closed) = try exchange(port, "GET /stream?n=5 HTTP/1.0\r\n\r\n")
                    #expect(plain.header("transfer-encoding") == nil && plain.header("content-length") == nil)
                    #expect(plain.text == expected)
                    #expect(closed)
                }
            }
        }

        @Test func headAnswersTheHeadersOfGetWithoutABody() async throws {
            try await green { () throws in
                try withServer { port, _ throws in
                    let client = try RawClient(port: port)
                    for path in ["/", "/stream?n=3", "/sleep?ms=1", "/headers"] {
                        try client.send("HEAD \(path) HTTP/1.1\r\nHost: a\r\n\r\n")
                        let response = try client.readResponse(forHead: true)
                        #expect(response.status == 200, "HEAD \(path)")
                        #expect(response.header("content-type") != nil)
                    }
                    try client.send("HEAD / HTTP/1.1\r\nHost: a\r\n\r\n")
                    #expect(try client.readResponse(forHead: true).header("content-length") == "13")
                    // Nothing but the next answer follows: no body bytes were sent for any HEAD.
                    try client.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
                    #expect(try client.readResponse().text == "Hello, World!")
                }
            }
        }

        @Test func expectContinueIsSentOnlyWhenTheBodyIsRead() async throws {
            try await green { () throws in
                try withServer { port, _ throws in
                    // /echo reads: 100 first, then the final answer.
                    let client = try RawClient(port: port)
                    try client.send("POST /echo HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
                    let interim = try client.readResponse()
                    #expect(interim.status == 100)
                    try client.send("data")
                    let final = try client.readResponse()
                    #expect(final.status == 200 && final.text == "data")

                    // / does not read: no 100, a final answer, and the connection closes since the
                    // body was never sent.
                    let other = try RawClient(port: port)
                    try other.send("POST /echo2 HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
                    let refused = try other.readResponse()
                    #expect(refused.status == 404)
                    #expect(try other.isClosedByServer())
                }
            }
        }

        @Test func headersRouteListsLowercasedNames() async throws {
            try await green { () throws in
                try withServer { port, _ throws in
                    let (response, _) = try exchange(port, "GET /headers HTTP/1.1\r\nHost: h.example\r\nX-Custom-Thing: Value 1\r\nACCEPT: */*\r\n\r\n")
                    let lines = response.text.split(separator: "\n").map(String.init)
                    #expect(lines.contains("host: h.example"))
                    #expect(lines.contains("x-custom-thing: Value 1"))
                    #expect(lines.contains("accept: */*"))
                }
            }
        }

        @Test func absoluteFormTargetsAreRouted() async throws {
            try await green { () throws in
                try withServer { port, _ throws in
                    let (response, _) = try exchange(port, "GET http://h.example/headers HTTP/1.1\r\nHost: other\r\n\r\n")
                    #expect(response.status == 200)
                    #expect(response.text.contains("host: h.example"))
                }
            }
        }

        @Test func unknownPathMethodAndRouteMethod() async throws {
            try await green { () throws in
                try withServer { port, _ throws in
                    #expect(try exchange(port, "GET /nope HTTP/1.1\r\nHost: a\r\n\r\n").0.status == 404)
                    #expect(try exchange(port, "BREW / HTTP/1.1\r\nHost: a\r\n\r\n").0.status == 501)
                    let (wrong, _) = try exchange(port, "DELETE /echo HTTP/1.1\r\nHost: a\r\n\r\n")
                    #expect(wrong.status == 405)
                    #expect(wrong.header("allow") == "POST")
                }
            }
        }

        @Test func sleepAndStreamValidateTheirQueries() async throws {
            try await green { () throws in
                try withServer { port, _ throws in
                    #expect(try exchange(port, "GET /sleep HTTP/1.1\r\nHost: a\r\n\r\n").0.status == 400)
                    #expect(try exchange(port, "GET /stream?n=-1 HTTP/1.1\r\nHost: a\r\n\r\n").0.status == 400)
                    #expect(try exchange(port, "GET /stream?n=0 HTTP/1.1\r\nHost: a\r\n\r\n").0.text == "")
                }
            }
        }

        @Test func unreadBodiesAreDrainedSoTheyCannotBeSmuggled() async throws {
            try await green { () throws in
                let router = Router()
                router.post("/ignore") { _ in .text("ignored") }
                router.get("/") { _ in .text("root") }
                try withServer(responder: router) { port, _ throws in
                    // The body looks like a request; it must be discarded, not parsed.
                    let inner = "GET /admin HTTP/1.1\r\nHost: a\r\n\r\n"
                    let client = try RawClient(port: port)
                    try client.send("POST /ignore HTTP/1.1\r\nHost: a\r\nContent-Length: \(inner.utf8.count)\r\n\r\n\(inner)GET / HTTP/1.1\r\nHost: a\r\n\r\n")
                    #expect(try client.readResponse().text == "ignored")
                    #expect(try client.readResponse().text == "root")

                    // A big unread body closes the connection instead.
                    let big = try RawClient(port: port)
                    try big.send("POST /ignore HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\n")
                    let response = try big.readResponse()
                    #expect(response.header("connection") == "close")
                }
            }
        }
    }
}

extension HTTPSuites {
    /// Response framing the handler can get wrong or choose: declared lengths, bodiless statuses.
    @Suite(.timeLimit(.minutes(1)))
    struct ResponseFramingTests {
        static func router() -> Router {
            let router = Router()
            router.get("/short") { _ in
                Response(body: .stream(length: 10) { writer in try writer.write("12345") })
            }
            router.get("/long") { _ in
                Response(body: .stream(length: 3) { writer in
                    try writer.write("12")
                    try writer.write("345")  // past the length: throws, and the connection ends
                })
            }
            router.get("/no-content") { _ in Response(status: .noContent, body: .string("ignored")) }
            router.get("/not-modified") { _ in Response(status: .notModified) }
            router.get("/fails-before-writing") { _ in
                Response(body: .stream { _ in throw HTTPError(.badGateway) })
            }
            router.get("/") { _ in .text("root") }
            return router
        }

        @Test func aStreamShorterThanItsLengthClosesTheConnection() async throws {
            try await green { () throws in
                try withServer(responder: ResponseFramingTests.router()) { port, _ throws in
                    let client = try RawClient(port: port)
                    try client.send("GET /short HTTP/1.1\r\nHost: a\r\n\r\n")
                    // The head promised 10 bytes; only 5 come, then the connection ends.
                    #expect(throws: ClientError.self) { try client.readResponse() }
                }
            }
        }

        @Test func aStreamWritingPastItsLengthEndsTheConnection() async throws {
            try await green { () throws in
                try withServer(responder: ResponseFramingTests.router()) { port, _ throws in
                    let client = try RawClient(port: port)
                    try client.send("GET /long HTTP/1.1\r\nHost: a\r\n\r\n")
                    // Two of the three promised bytes went out; the third never comes.
                    #expect(throws: ClientError.self) { try client.readResponse() }
                }
            }
        }

        @Test func noContentAndNotModifiedCarryNoBody() async throws {
            try await green { () throws in
                try withServer(responder: ResponseFramingTests.router()) { port, _ throws in
                    let client = try RawClient(port: port)
                    try client.send("GET /no-content HTTP/1.1\r\nHost: a\r\n\r\n")
                    let noContent = try client.readResponse()
                    #expect(noContent.status == 204)
                    #expect(noContent.header("content-length") == nil && noContent.header("transfer-encoding") == nil)
                    try client.send("GET /not-modified HTTP/1.1\r\nHost: a\r\n\r\n")
                    #expect(try client.readResponse().status == 304)
                    // Nothing else was sent: the next response follows directly.
                    try client.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
                    #expect(try client.readResponse().text == "root")
                }
            }
        }

        @Test func aStreamThatFailsBeforeWritingIsA500() async throws {
            try await green { () throws in
                try withServer(responder: ResponseFramingTests.router()) { port, _ throws in
                    let (response, closed) = try exchange(port, "GET /fails-before-writing HTTP/1.1\r\nHost: a\r\n\r\n")
                    #expect(response.status == 500)
                    #expect(closed)
                }
            }
        }
    }
}
