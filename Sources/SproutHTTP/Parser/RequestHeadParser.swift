/// Parses a complete request head with the strict rules of RFC 9112, in one pass, in place.
///
/// Anything ambiguous about where the message ends is an error (RFC 9112 §11.2): both
/// `Content-Length` and `Transfer-Encoding`, repeated or malformed lengths, obs-fold, bare CR or
/// LF, whitespace before a colon, control characters in names or values, and transfer codings
/// other than a single `chunked`. See `Docs.docc/HTTPConformance.md` for every rule.
public enum RequestHeadParser {
    private static let cr: UInt8 = 0x0D
    private static let lf: UInt8 = 0x0A
    private static let sp: UInt8 = 0x20
    private static let htab: UInt8 = 0x09

    /// Parses `bytes`, which must be a whole head ending in CRLF CRLF (as ``HeadScanner`` finds it).
    ///
    /// - Throws: ``HTTPParseError`` carrying the status to answer: 400 for malformed or
    ///   ambiguous requests, 417, 431, 501 (unknown transfer codings that are well formed, an
    ///   over-long method) or 505 (an HTTP major version other than 1).
    public static func parse(_ bytes: UnsafeRawBufferPointer, into head: inout ParsedRequestHead,
                             limits: HeadLimits = HeadLimits()) throws(HTTPParseError) {
        head.reset()
        let n = bytes.count
        guard n >= 4, let base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self),
              base[n - 4] == cr, base[n - 3] == lf, base[n - 2] == cr, base[n - 1] == lf else {
            throw .badRequest("head does not end in CRLF CRLF")
        }
        head.length = n
        let t = ByteClass.table
        var i = 0

        // Request line: method SP request-target SP HTTP-version CRLF, single spaces only.
        while ByteClass.isToken(base[i], t) { i += 1 }
        guard i > 0, base[i] == sp else { throw .badRequest("malformed method") }
        guard i <= 32 else { throw .notImplemented("method too long") }
        head.method = ByteSpan(start: 0, count: i)
        head.knownMethod = knownMethod(base, i)
        i += 1
        let targetStart = i
        while ByteClass.isTarget(base[i], t) { i += 1 }
        guard i > targetStart, base[i] == sp else { throw .badRequest("malformed request-target") }
        head.target = ByteSpan(start: targetStart, count: i - targetStart)
        i += 1
        guard i + 10 <= n, base[i] == 0x48, base[i + 1] == 0x54, base[i + 2] == 0x54, base[i + 3] == 0x50,
              base[i + 4] == 0x2F, isDigit(base[i + 5]), base[i + 6] == 0x2E, isDigit(base[i + 7]),
              base[i + 8] == cr, base[i + 9] == lf else {
            throw .badRequest("malformed HTTP version")
        }
        guard base[i + 5] == 0x31 else { throw .versionNotSupported }
        // A later 1.x minor is processed as 1.1, the highest we conform to (RFC 9110 §2.5).
        head.minorVersion = base[i + 7] == 0x30 ? 0 : 1
        i += 10
        try classifyTarget(bytes, &head)

        // Field lines.
        var sawContentLength = false
        var sawTransferEncoding = false
        var transferEncoding = ByteSpan.empty
        var close = false
        var keepAliveToken = false
        var fieldCount = 0
        while true {
            let first = base[i]
            if first == cr {
                guard base[i + 1] == lf, i + 2 == n else { throw .badRequest("bare CR") }
                break
            }
            if first == sp || first == htab { throw .badRequest("obs-fold or whitespace at the start of a field line") }
            fieldCount += 1
            if fieldCount > limits.maxFieldCount { throw .tooManyFields }
            let nameStart = i
            while ByteClass.isToken(base[i], t) { i += 1 }
            guard i > nameStart, base[i] == 0x3A else { throw .badRequest("invalid field name (or whitespace before the colon)") }
            let name = ByteSpan(start: nameStart, count: i - nameStart)
            i += 1
            while base[i] == sp || base[i] == htab { i += 1 }
            let valueStart = i
            while ByteClass.isFieldValue(base[i], t) { i += 1 }
            guard base[i] == cr, base[i + 1] == lf else { throw .badRequest("control character in a field value") }
            var valueEnd = i
            while valueEnd > valueStart && (base[valueEnd - 1] == sp || base[valueEnd - 1] == htab) { valueEnd -= 1 }
            i += 2
            let value = ByteSpan(start: valueStart, count: valueEnd - valueStart)
            let kind = fieldKind(base, name)
            head.fields.append(ParsedRequestHead.Field(name: name, value: value, kind: kind))
            switch kind {
            case .contentLength:
                guard !sawContentLength else { throw .badRequest("repeated Content-Length") }
                sawContentLength = true
                head.framing = .length(try contentLength(base, value))
            case .transferEncoding:
                guard !sawTransferEncoding else { throw .badRequest("repeated Transfer-Encoding") }
                sawTransferEncoding = true
                transferEncoding = value
            case .host:
                guard head.host == nil else { throw .badRequest("repeated Host") }
                for k in value.start..<value.end where !ByteClass.isHost(base[k], t) {
                    throw .badRequest("invalid Host")
                }
                head.host = value
            case .connection:
                scanConnection(bytes, value, close: &close, keepAlive: &keepAliveToken)
            case .expect:
                if head.minorVersion == 1 {
                    guard bytes.equalsCaseInsensitive(value, "100-continue") else { throw .expectationFailed }
                    head.expectContinue = true
                }
            case .other, .contentType, .userAgent, .accept:
                break
            }
        }

        if sawTransferEncoding {
            guard !sawContentLength else { throw .badRequest("both Content-Length and Transfer-Encoding") }
            guard head.minorVersion == 1 else { throw .badRequest("Transfer-Encoding in an HTTP/1.0 request") }
            try checkTransferEncoding(bytes, transferEncoding)
            head.framing = .chunked
        }
        if head.framing == .length(0) { head.framing = .none }
        if head.minorVersion == 1 && head.host == nil { throw .badRequest("missing Host") }
        head.keepAlive = head.minorVersion == 1 ? !close : (keepAliveToken && !close)
        if head.framing == .none { head.expectContinue = false }
    }

    @inline(__always) private static func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }

    private static func knownMethod(_ p: UnsafePointer<UInt8>, _ count: Int) -> ParsedRequestHead.KnownMethod? {
        let bytes = UnsafeRawBufferPointer(start: p, count: count)
        let all = ByteSpan(start: 0, count: count)
        switch count {
        case 3:
            if bytes.equals(all, "GET") { return .get }
            if bytes.equals(all, "PUT") { return .put }
        case 4:
            if bytes.equals(all, "POST") { return .post }
            if bytes.equals(all, "HEAD") { return .head }
        case 5:
            if bytes.equals(all, "PATCH") { return .patch }
            if bytes.equals(all, "TRACE") { return .trace }
        case 6:
            if bytes.equals(all, "DELETE") { return .delete }
        case 7:
            if bytes.equals(all, "OPTIONS") { return .options }
            if bytes.equals(all, "CONNECT") { return .connect }
        default:
            break
        }
        return nil
    }

    private static func fieldKind(_ p: UnsafePointer<UInt8>, _ name: ByteSpan) -> ParsedRequestHead.FieldKind {
        let bytes = UnsafeRawBufferPointer(start: p, count: name.end)
        switch name.count {
        case 4: return bytes.equalsCaseInsensitive(name, "host") ? .host : .other
        case 6:
            if bytes.equalsCaseInsensitive(name, "expect") { return .expect }
            return bytes.equalsCaseInsensitive(name, "accept") ? .accept : .other
        case 10:
            if bytes.equalsCaseInsensitive(name, "connection") { return .connection }
            return bytes.equalsCaseInsensitive(name, "user-agent") ? .userAgent : .other
        case 12: return bytes.equalsCaseInsensitive(name, "content-type") ? .contentType : .other
        case 14: return bytes.equalsCaseInsensitive(name, "content-length") ? .contentLength : .other
        case 17: return bytes.equalsCaseInsensitive(name, "transfer-encoding") ? .transferEncoding : .other
        default: return .other
        }
    }

    /// 1*DIGIT, at most 18 digits (so it fits an Int without overflow checks).
    private static func contentLength(_ p: UnsafePointer<UInt8>, _ value: ByteSpan) throws(HTTPParseError) -> Int {
        guard value.count > 0, value.count <= 18 else { throw .badRequest("invalid Content-Length") }
        var result = 0
        for k in value.start..<value.end {
            let b = p[k]
            guard isDigit(b) else { throw .badRequest("invalid Content-Length") }
            result = result * 10 + Int(b - 0x30)
        }
        return result
    }

    /// Origin-form, absolute-form (http/https), `*` for OPTIONS, authority-form for CONNECT.
    private static func classifyTarget(_ bytes: UnsafeRawBufferPointer, _ head: inout ParsedRequestHead) throws(HTTPParseError) {
        let target = head.target
        let first = bytes[target.start]
        if head.knownMethod == .connect {
            // CONNECT takes authority-form only (RFC 9112 §3.2.3).
            try checkAuthority(bytes, target)
            head.targetAuthority = target
            return
        }
        if first == 0x2F {
            head.pathAndQuery = target
            return
        }
        if target.count == 1 && first == 0x2A {
            guard head.knownMethod == .options else { throw .badRequest("'*' target outside OPTIONS") }
            head.pathAndQuery = target
            return
        }
        var schemeLength = 0
        if target.count > 7 && bytes.equalsCaseInsensitive(ByteSpan(start: target.start, count: 7), "http://") {
            schemeLength = 4
        } else if target.count > 8 && bytes.equalsCaseInsensitive(ByteSpan(start: target.start, count: 8), "https://") {
            schemeLength = 5
        } else {
            throw .badRequest("unsupported request-target form")
        }
        let authorityStart = target.start + schemeLength + 3
        var k = authorityStart
        while k < target.end && bytes[k] != 0x2F && bytes[k] != 0x3F { k += 1 }
        let authority = ByteSpan(start: authorityStart, count: k - authorityStart)
        guard authority.count > 0 else { throw .badRequest("absolute-form target without authority") }
        try checkAuthority(bytes, authority)
        head.absoluteScheme = ByteSpan(start: target.start, count: schemeLength)
        head.targetAuthority = authority
        head.pathAndQuery = ByteSpan(start: k, count: target.end - k)
    }

    private static func checkAuthority(_ bytes: UnsafeRawBufferPointer, _ span: ByteSpan) throws(HTTPParseError) {
        let t = ByteClass.table
        guard span.count > 0 else { throw .badRequest("empty authority") }
        for k in span.start..<span.end where !ByteClass.isHost(bytes[k], t) {
            throw .badRequest("invalid authority")
        }
    }

    /// Connection: a comma-separated list of tokens; `close` and `keep-alive` matter here.
    private static func scanConnection(_ bytes: UnsafeRawBufferPointer, _ value: ByteSpan, close: inout Bool,
                                       keepAlive: inout Bool) {
        var k = value.start
        while k < value.end {
            while k < value.end && (bytes[k] == sp || bytes[k] == htab || bytes[k] == 0x2C) { k += 1 }
            let start = k
            while k < value.end && bytes[k] != 0x2C && bytes[k] != sp && bytes[k] != htab { k += 1 }
            let token = ByteSpan(start: start, count: k - start)
            if bytes.equalsCaseInsensitive(token, "close") { close = true }
            else if bytes.equalsCaseInsensitive(token, "keep-alive") { keepAlive = true }
        }
    }

    /// Accepts exactly one coding, `chunked` (ASCII case-insensitive). A list whose last coding
    /// is not chunked, chunked twice, an unknown coding or any malformed element is 400; a
    /// well-formed list of known codings ending in chunked is 501 (we decode none of them).
    private static func checkTransferEncoding(_ bytes: UnsafeRawBufferPointer, _ value: ByteSpan) throws(HTTPParseError) {
        if bytes.equalsCaseInsensitive(value, "chunked") { return }
        let t = ByteClass.table
        var codings: [ByteSpan] = []
        var k = value.start
        while true {
            while k < value.end && (bytes[k] == sp || bytes[k] == htab) { k += 1 }
            let start = k
            while k < value.end && ByteClass.isToken(bytes[k], t) { k += 1 }
            guard k > start else { throw .badRequest("malformed Transfer-Encoding") }
            codings.append(ByteSpan(start: start, count: k - start))
            while k < value.end && (bytes[k] == sp || bytes[k] == htab) { k += 1 }
            if k == value.end { break }
            guard bytes[k] == 0x2C else { throw .badRequest("malformed Transfer-Encoding") }
            k += 1
        }
        let chunkedCount = codings.filter { bytes.equalsCaseInsensitive($0, "chunked") }.count
        guard let last = codings.last, bytes.equalsCaseInsensitive(last, "chunked"), chunkedCount == 1 else {
            throw .badRequest("Transfer-Encoding must end in a single chunked")
        }
        for coding in codings.dropLast() {
            let known = ["gzip", "x-gzip", "deflate", "compress", "x-compress"] as [StaticString]
            guard known.contains(where: { bytes.equalsCaseInsensitive(coding, $0) }) else {
                throw .badRequest("unknown transfer coding")
            }
        }
        throw .notImplemented("transfer coding not supported")
    }
}
