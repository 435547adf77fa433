import SproutHTTP
import Testing

/// Scans and parses `text` as a whole head; the status code of the error, or the head.
func parseHead(_ text: String, limits: HeadLimits = HeadLimits()) -> (head: ParsedRequestHead?, status: Int?, bytes: [UInt8]) {
    let bytes = Array(text.utf8)
    return parseHead(bytes, limits: limits)
}

func parseHead(_ bytes: [UInt8], limits: HeadLimits = HeadLimits()) -> (head: ParsedRequestHead?, status: Int?, bytes: [UInt8]) {
    var bytes = bytes
    var scanner = HeadScanner()
    do {
        while true {
            let outcome = try bytes.withUnsafeBytes { try scanner.scan($0, limits: limits) }
            switch outcome {
            case .needMore:
                return (nil, nil, bytes)
            case .leadingEmptyLine:
                bytes.removeFirst(2)
                scanner.reset()
            case .complete(let length):
                var head = ParsedRequestHead()
                try bytes.withUnsafeBytes { try RequestHeadParser.parse(UnsafeRawBufferPointer(rebasing: $0[..<length]), into: &head, limits: limits) }
                return (head, nil, bytes)
            }
        }
    } catch {
        return (nil, (error as? HTTPParseError)?.statusCode ?? -2, bytes)
    }
}

func statusOf(_ text: String) -> Int? { parseHead(text).status }

@Suite(.timeLimit(.minutes(1))) struct ParserTests {
    @Test func simpleGetParsesInPlace() throws {
        let result = parseHead("GET /a/b?x=1 HTTP/1.1\r\nHost: example.com\r\nX-Trim:  padded \t\r\n\r\n")
        let head = try #require(result.head)
        #expect(head.knownMethod == .get)
        #expect(head.minorVersion == 1)
        #expect(head.keepAlive)
        #expect(head.framing == .none)
        #expect(head.fields.count == 2)
        let value = head.fields[1].value
        #expect(String(decoding: result.bytes[value.start..<value.end], as: UTF8.self) == "padded")
        let target = head.pathAndQuery
        #expect(String(decoding: result.bytes[target.start..<target.end], as: UTF8.self) == "/a/b?x=1")
    }

    @Test func oneLeadingEmptyLineIsIgnored() {
        #expect(parseHead("\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n").head != nil)
    }

    @Test(arguments: [
        ("GET / HTTP/1.1\nHost: a\n\n", 400),                      // bare LF line ends
        ("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400),               // double space
        ("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),               // tab separator
        ("G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400),                // non-token method
        ("GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400),               // trailing space
        ("GET / http/1.1\r\nHost: a\r\n\r\n", 400),                // lower-case version
        ("GET / HTTP/1.10\r\nHost: a\r\n\r\n", 400),
        ("GET / HTTP/01.1\r\nHost: a\r\n\r\n", 400),
        ("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
        ("GET / HTTP/3.0\r\nHost: a\r\n\r\n", 505),
        ("GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505),
        ("GET /\r\n\r\n", 400),                                     // HTTP/0.9 request line
        ("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400),             // raw space in target
        ("GET /a\u{01}b HTTP/1.1\r\nHost: a\r\n\r\n", 400),        // control character in target
        ("GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400),                // '*' outside OPTIONS
        ("GET example.com:80 HTTP/1.1\r\nHost: a\r\n\r\n", 400),   // authority-form outside CONNECT
        ("GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n", 400),               // CONNECT needs authority-form
        ("GET /#frag HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ("\(String(repeating: "A", count: 40)) / HTTP/1.1\r\nHost: a\r\n\r\n", 501),  // long method
    ])
    func malformedRequestLines(_ request: String, _ status: Int) {
        #expect(statusOf(request) == status, "\(request.debugDescription)")
    }

    @Test func laterMinorVersionsAreServedAsOneOne() throws {
        let head = try #require(parseHead("GET / HTTP/1.2\r\nHost: a\r\n\r\n").head)
        #expect(head.minorVersion == 1)
    }

    @Test(arguments: [
        "GET / HTTP/1.1\r\nHost : a\r\n\r\n",                          // space before colon
        "GET / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n",           // obs-fold
        "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\tc\r\n\r\n",
        "GET / HTTP/1.1\r\n Host: a\r\n\r\n",                          // first line starts with SP
        "GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",                // bare CR in a value
        "GET / HTTP/1.1\r\nHost: a\r\nX: \rTransfer-Encoding: chunked\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX: a\u{0}b\r\n\r\n",             // NUL
        "GET / HTTP/1.1\r\nHost: a\r\nX: a\u{7f}b\r\n\r\n",            // DEL
        "GET / HTTP/1.1\r\nHost: a\r\nX: a\u{1}b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n",                    // empty name
        "GET / HTTP/1.1\r\nHost: a\r\nX@Y: x\r\n\r\n",                 // non-token name
        "GET / HTTP/1.1\r\n\r\n",                                      // missing Host
        "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",                // two Hosts
        "GET / HTTP/1.1\r\nHost: a b\r\n\r\n",                         // invalid Host
        "GET / HTTP/1.1\r\nHost: a\r\nX: a\nTransfer-Encoding: chunked\r\n\r\n",  // bare LF inside
    ])
    func malformedFieldLinesAre400(_ request: String) {
        #expect(statusOf(request) == 400, "\(request.debugDescription)")
    }

    @Test func tabAndObsTextInValuesAreAccepted() throws {
        var bytes = Array("GET / HTTP/1.1\r\nHost: a\r\nX: a\tb".utf8)
        bytes += [0x80, 0xFF, 0xA0]
        bytes += Array("\r\n\r\n".utf8)
        let result = parseHead(bytes)
        #expect(result.head != nil)
    }

    @Test func onlySpaceAndTabAreTrimmed() throws {
        // \x0b and \x0c are control characters: rejected, not trimmed (gunicorn #3364).
        #expect(statusOf("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \u{0b}chunked\r\n\r\n") == 400)
        var bytes = Array("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ".utf8)
        bytes += [0xC2, 0x85] + Array("chunked\r\n\r\n".utf8)  // U+0085 around a coding is not whitespace
        #expect(parseHead(bytes).status == 400)
    }

    @Test func http10WithoutHostIsFine() throws {
        let head = try #require(parseHead("GET / HTTP/1.0\r\n\r\n").head)
        #expect(head.minorVersion == 0)
        #expect(!head.keepAlive)
        let keptAlive = try #require(parseHead("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").head)
        #expect(keptAlive.keepAlive)
    }

    @Test func connectionCloseEndsKeepAlive() throws {
        let head = try #require(parseHead("GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, close\r\n\r\n").head)
        #expect(!head.keepAlive)
    }

    @Test(arguments: [
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5 5\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;ext\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: foo, chunked\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,chunked\r\n\r\n", 400),
        ("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: a\r\nExpect: something-else\r\nContent-Length: 1\r\n\r\n", 417),
    ])
    func framingAmbiguitiesAreRejected(_ request: String, _ status: Int) {
        #expect(statusOf(request) == status, "\(request.debugDescription)")
    }

    @Test func chunkedIsCaseInsensitiveAndLengthsParse() throws {
        let chunked = try #require(parseHead("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: CHUNKED\r\n\r\n").head)
        #expect(chunked.framing == .chunked)
        let length = try #require(parseHead("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 000123\r\n\r\n").head)
        #expect(length.framing == .length(123))
    }

    @Test func expectContinueOnlyForHTTP11WithABody() throws {
        let expecting = try #require(parseHead("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n").head)
        #expect(expecting.expectContinue)
        let noBody = try #require(parseHead("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n").head)
        #expect(!noBody.expectContinue)
        let old = try #require(parseHead("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n").head)
        #expect(!old.expectContinue)
    }

    @Test func absoluteFormTakesTheAuthorityFromTheTarget() throws {
        let result = parseHead("GET http://Example.com:8080?q=1 HTTP/1.1\r\nHost: other\r\n\r\n")
        let head = try #require(result.head)
        let authority = try #require(head.targetAuthority)
        #expect(String(decoding: result.bytes[authority.start..<authority.end], as: UTF8.self) == "Example.com:8080")
        let path = head.pathAndQuery
        #expect(String(decoding: result.bytes[path.start..<path.end], as: UTF8.self) == "?q=1")
    }

    @Test func limitsAreEnforcedBeforeTheHeadCompletes() {
        let longLine = "GET /" + String(repeating: "a", count: 9000)  // no line end yet
        #expect(parseHead(longLine).status == 414)
        let bigHead = "GET / HTTP/1.1\r\nHost: a\r\n" + String(repeating: "X-Filler: \(String(repeating: "v", count: 1000))\r\n", count: 70)
        #expect(parseHead(bigHead).status == 431)
        let manyFields = "GET / HTTP/1.1\r\nHost: a\r\n" + String(repeating: "X: y\r\n", count: 101) + "\r\n"
        #expect(parseHead(manyFields).status == 431)
        let atLimit = "GET / HTTP/1.1\r\n" + String(repeating: "X: y\r\n", count: 99) + "Host: a\r\n\r\n"
        #expect(parseHead(atLimit).head != nil)
    }

    @Test func scanningByteByByteFindsTheSameHead() throws {
        let text = Array("GET /x HTTP/1.1\r\nHost: a\r\nA: b\r\n\r\nrest".utf8)
        var scanner = HeadScanner()
        var found: Int?
        for end in 1...text.count {
            let outcome = try Array(text[..<end]).withUnsafeBytes { try scanner.scan($0, limits: HeadLimits()) }
            if case .complete(let length) = outcome { found = length; break }
        }
        #expect(found == text.count - 4)
    }
}
