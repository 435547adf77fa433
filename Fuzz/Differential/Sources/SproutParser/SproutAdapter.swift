// Not a copy of the parser: the one real file in this folder (the others are symlinks to
// Sources/SproutHTTP/Parser). It runs Sprout's scanner, parser and chunked decoder the way
// HTTPConnection does, and reports the first request of an input as plain values, so the
// differential executable needs no access to the parser's internal types.

/// What Sprout made of the first request in some bytes.
public enum SproutOutcome: Sendable {
    /// The head was accepted; the body is what was decoded (complete or not).
    case accepted(SproutRequest)
    /// A parse error: the status the server would answer, and the parser's reason.
    case rejected(status: Int, reason: String)
    /// The bytes end before the head does.
    case incomplete
}

/// An accepted request head and its body.
public struct SproutRequest: Sendable {
    public var method: [UInt8]
    public var target: [UInt8]
    /// 0 or 1 (later 1.x minors are processed as 1.1).
    public var minorVersion: Int
    public var fields: [(name: [UInt8], value: [UInt8])]
    /// "none", "length(N)" or "chunked".
    public var framing: String
    public var body: [UInt8]
    /// True when the body (per the framing) ended within the input.
    public var bodyComplete: Bool
    public var trailers: [(name: [UInt8], value: [UInt8])]
}

/// Parses the first request of `input` with Sprout's rules: at most one empty line before the
/// request line, then the head, then a Content-Length or chunked body.
public func sproutParseFirstRequest(_ input: [UInt8], limits: HeadLimits = HeadLimits()) -> SproutOutcome {
    input.withUnsafeBytes { all -> SproutOutcome in
        var scanner = HeadScanner()
        var offset = 0
        var skippedEmptyLine = false
        var headLength = 0
        do {
            scan: while true {
                let bytes = UnsafeRawBufferPointer(rebasing: all[offset...])
                switch try scanner.scan(bytes, limits: limits) {
                case .complete(let length):
                    headLength = length
                    break scan
                case .leadingEmptyLine:
                    guard !skippedEmptyLine else { return .rejected(status: 400, reason: "empty lines before the request line") }
                    skippedEmptyLine = true
                    offset += 2
                    scanner.reset()
                case .needMore:
                    return .incomplete
                }
            }
            let headBytes = UnsafeRawBufferPointer(rebasing: all[offset..<(offset + headLength)])
            var head = ParsedRequestHead()
            try RequestHeadParser.parse(headBytes, into: &head, limits: limits)
            func copy(_ span: ByteSpan) -> [UInt8] { Array(headBytes[span.start..<span.end]) }
            var request = SproutRequest(
                method: copy(head.method), target: copy(head.target), minorVersion: head.minorVersion,
                fields: head.fields.map { (copy($0.name), copy($0.value)) }, framing: "none",
                body: [], bodyComplete: true, trailers: [])
            let rest = UnsafeRawBufferPointer(rebasing: all[(offset + headLength)...])
            switch head.framing {
            case .none:
                break
            case .length(let n):
                request.framing = "length(\(n))"
                request.body = Array(rest.prefix(n))
                request.bodyComplete = rest.count >= n
            case .chunked:
                request.framing = "chunked"
                var decoder = ChunkedDecoder()
                var position = 0
                request.bodyComplete = false
                decode: while position <= rest.count {
                    var consumed = 0
                    let step = try decoder.decode(UnsafeRawBufferPointer(rebasing: rest[position...]), consumed: &consumed)
                    position += consumed
                    switch step {
                    case .data(let span):
                        let base = position - consumed
                        request.body += rest[(base + span.start)..<(base + span.end)]
                    case .needMore:
                        break decode
                    case .end:
                        request.bodyComplete = true
                        break decode
                    }
                }
                request.trailers = decoder.trailers.map { ($0.name, $0.value) }
            }
            return .accepted(request)
        } catch let error as HTTPParseError {
            return .rejected(status: error.statusCode, reason: error.reason)
        } catch {
            fatalError("unexpected error \(error)")
        }
    }
}
