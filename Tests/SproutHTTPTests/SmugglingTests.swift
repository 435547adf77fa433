import Sprout
import SproutHTTP
import Testing

/// The request-smuggling families over real sockets: every ambiguous message is answered with
/// its error status and `Connection: close`, the connection closes, and nothing after it is
/// ever served as a request.
extension HTTPSuites {
    @Suite(.timeLimit(.minutes(1)))
    struct SmugglingTests {
        static let smuggled = "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"

        static let vectors: [(name: String, request: String, status: Int)] = [
            ("CL.TE", "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n\(smuggled)", 400),
            ("TE.CL", "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n", 400),
            ("TE space before colon", "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n", 400),
            ("TE obs-fold", "POST /echo HTTP/1.1\r\nHost: a\r\nX: y\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
            ("TE repeated", "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n", 400),
            ("TE unknown coding", "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 400),
            ("TE vertical tab", "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \u{0b}chunked\r\n\r\n0\r\n\r\n", 400),
            ("CL.CL", "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 40\r\n\r\nabc\(smuggled)", 400),
            ("CL list", "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc", 400),
            ("CL sign", "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc", 400),
            ("header CR terminator", "POST /echo HTTP/1.1\r\nHost: a\r\nX: \rTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
            ("bare LF head", "GET / HTTP/1.1\nHost: a\n\n", 400),
            ("chunk bare LF", "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n", 400),
            ("chunk ext bare LF", "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x\nabc\r\n0\r\n\r\n", 400),
            ("chunk size space", "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3 \r\nabc\r\n0\r\n\r\n", 400),
            ("chunk size 0x", "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n", 400),
            ("chunk data without CRLF", "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc0\r\n\r\n", 400),
            ("chunk size overflow", "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1000000000000000000003\r\nabc\r\n0\r\n\r\n", 400),
            ("TE in HTTP/1.0", "POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
            ("control in name", "GET / HTTP/1.1\r\nHost: a\r\nX\u{01}Y: z\r\n\r\n", 400),
            ("NUL in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\u{0}b\r\n\r\n", 400),
            ("two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
            ("no Host", "GET / HTTP/1.1\r\n\r\n", 400),
            ("gzip, chunked", "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
            ("HTTP/2.0 line", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
        ]

        @Test(arguments: vectors.indices)
        func ambiguousMessagesAreRejectedAndTheConnectionClosed(_ index: Int) async throws {
            let vector = SmugglingTests.vectors[index]
            try await green { () throws in
                try withServer { port, _ throws in
                    let client = try RawClient(port: port)
                    try client.send(vector.request + SmugglingTests.smuggled)
                    let response = try client.readResponse()
                    #expect(response.status == vector.status, "\(vector.name)")
                    #expect(response.header("connection") == "close", "\(vector.name)")
                    #expect(try client.isClosedByServer(), "\(vector.name): the connection stays open")
                    #expect(!client.leftover.contains(UInt8(ascii: "H")), "\(vector.name): a second response followed")
                }
            }
        }
    }
}
