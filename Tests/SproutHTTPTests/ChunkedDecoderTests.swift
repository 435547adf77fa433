import SproutHTTP
import Testing

/// Decodes `text` as a chunked body, feeding it `piece` bytes at a time.
func decodeChunked(_ bytes: [UInt8], piece: Int = .max) -> (body: [UInt8], trailers: [ChunkedDecoder.Trailer], status: Int?, rest: [UInt8]) {
    var decoder = ChunkedDecoder()
    var body: [UInt8] = []
    var pending: [UInt8] = []
    var offset = 0
    do {
        while true {
            if offset < bytes.count {
                let end = min(bytes.count, offset + piece)
                pending += bytes[offset..<end]
                offset = end
            }
            var consumed = 0
            let step = try pending.withUnsafeBytes { try decoder.decode($0, consumed: &consumed, maxData: 7) }
            switch step {
            case .data(let span):
                body += pending[span.start..<span.end]
                pending.removeFirst(consumed)
            case .needMore:
                pending.removeFirst(consumed)
                if offset == bytes.count { return (body, decoder.trailers, -1, pending) }
            case .end:
                pending.removeFirst(consumed)
                return (body, decoder.trailers, nil, pending + bytes[offset...])
            }
        }
    } catch {
        return (body, decoder.trailers, (error as? HTTPParseError)?.statusCode ?? -2, pending)
    }
}

func decodeChunked(_ text: String, piece: Int = .max) -> (body: [UInt8], trailers: [ChunkedDecoder.Trailer], status: Int?, rest: [UInt8]) {
    decodeChunked(Array(text.utf8), piece: piece)
}

@Suite(.timeLimit(.minutes(1))) struct ChunkedDecoderTests {
    @Test(arguments: [1, 2, 3, 1000])
    func validBodiesDecodeWhateverTheSplit(_ piece: Int) {
        let result = decodeChunked("5\r\nhello\r\n0006;a=b;c=\"d\\\"e\"\r\n world\r\nA\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\nNEXT", piece: piece)
        #expect(result.status == nil)
        #expect(String(decoding: result.body, as: UTF8.self) == "hello world0123456789")
        #expect(result.rest == Array("NEXT".utf8))
        #expect(result.trailers.map { String(decoding: $0.name, as: UTF8.self) } == ["X-T"])
    }

    @Test(arguments: [
        "5 \r\nhello\r\n0\r\n\r\n",             // whitespace before CRLF
        "0x5\r\nhello\r\n0\r\n\r\n",
        "-5\r\nhello\r\n0\r\n\r\n",
        "+5\r\nhello\r\n0\r\n\r\n",
        "\r\nhello\r\n0\r\n\r\n",               // empty size line
        "11111111111111111\r\n",                // 17 hex digits
        "5\nhello\r\n0\r\n\r\n",                // bare LF after the size
        "5;\nhello\r\n0\r\n\r\n",               // LF inside an extension
        "5;\r\nhello\r\n0\r\n\r\n",             // extension without a name
        "5; =x\r\nhello\r\n0\r\n\r\n",
        "5;a\u{0}\r\nhello\r\n0\r\n\r\n",       // NUL in an extension
        "5;a=\"b\r\nhello\r\n0\r\n\r\n",        // unterminated quoted value
        "5\r\nhello0\r\n\r\n",                  // data not followed by CRLF
        "5\r\nhello\n0\r\n\r\n",                // data followed by LF only
        "5\r\nhello\r\n0\r\nX-T: 1\n\r\n",      // bare LF in the trailer section
        "5\r\nhello\r\n0\r\nbad trailer\r\n\r\n",
        "5\r\nhello\r\n0\r\n\n",                // last chunk without the final CRLF
    ])
    func malformedFramingIs400(_ body: String) {
        #expect(decodeChunked(body).status == 400, "\(body.debugDescription)")
    }

    @Test func extensionsAreCappedPerLine() {
        let long = "5;" + String(repeating: "a", count: 5000) + "\r\nhello\r\n0\r\n\r\n"
        #expect(decodeChunked(long).status == 400)
    }

    @Test func forbiddenTrailersAreDropped() {
        let result = decodeChunked("0\r\nContent-Length: 5\r\nHost: evil\r\nX-Ok: yes\r\n\r\n")
        #expect(result.status == nil)
        #expect(result.trailers.map { String(decoding: $0.name, as: UTF8.self) } == ["X-Ok"])
    }

    @Test func truncatedBodyNeedsMore() {
        #expect(decodeChunked("5\r\nhel").status == -1)
    }
}
