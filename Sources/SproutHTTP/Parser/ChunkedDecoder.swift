/// Decodes a chunked body (RFC 9112 §7.1) incrementally, from bytes that arrive piecemeal.
///
/// Strict where parsers have disagreed and requests were smuggled: chunk sizes are 1–16 hex
/// digits with no sign, prefix or trailing whitespace; extensions must follow the grammar
/// (`;name[=token|"quoted"]`, whitespace only around `;` and `=`) and stay under 4 KiB a line;
/// every line ends in CRLF, and data is followed by CRLF. Trailer fields follow header rules;
/// those that would change framing, routing or authentication are dropped.
public struct ChunkedDecoder {
    /// What one call to ``decode(_:consumed:maxData:)`` produced.
    public enum Step: Equatable {
        /// Body bytes: this span of the input.
        case data(ByteSpan)
        /// Every input byte was framing; call again with more.
        case needMore
        /// The last chunk and the trailer section are done.
        case end
    }

    /// A trailer field, validated.
    public struct Trailer: Equatable {
        /// The name as sent.
        public var name: [UInt8]
        /// The value, surrounding whitespace trimmed.
        public var value: [UInt8]
    }

    private enum State {
        case sizeStart, size, sizeWhitespace, sizeLF
        case extBeforeName, extName, extAfterName, extBeforeValue, extToken, extQuoted, extQuotedEscape, extAfterValue
        case data, dataCR, dataLF
        case trailerStart, trailerLine, trailerLineLF, finalLF, done
    }

    /// Most bytes of extensions on one chunk line.
    public static let maxExtensionBytes = 4096
    /// Most bytes of the whole trailer section.
    public static let maxTrailerBytes = 16 * 1024

    private var state = State.sizeStart
    private var remaining: UInt64 = 0
    private var digits = 0
    private var extensionBytes = 0
    private var trailerLine: [UInt8] = []
    private var trailerBytes = 0
    /// Trailer fields received so far (complete once ``isDone``).
    public private(set) var trailers: [Trailer] = []

    /// A decoder at the start of a body.
    public init() {}

    /// True once the last chunk and trailers have been read.
    public var isDone: Bool { state == .done }

    /// Consumes framing from `input` and returns the next run of data, at most `maxData` bytes.
    ///
    /// - Parameters:
    ///   - input: Bytes not yet consumed.
    ///   - consumed: Set to how many bytes of `input` this call used (framing and data).
    ///   - maxData: The most data bytes to return (at least 1).
    /// - Throws: ``HTTPParseError`` (400) for any framing error, 431 for oversized trailers.
    public mutating func decode(_ input: UnsafeRawBufferPointer, consumed: inout Int,
                                maxData: Int = .max) throws(HTTPParseError) -> Step {
        let t = ByteClass.table
        var k = 0
        let n = input.count
        while k < n {
            let b = input[k]
            switch state {
            case .sizeStart:
                guard let v = ByteClass.hexValue(b) else { throw .badRequest("invalid chunk size") }
                remaining = v
                digits = 1
                extensionBytes = 0
                state = .size
            case .size:
                if let v = ByteClass.hexValue(b) {
                    digits += 1
                    guard digits <= 16 else { throw .badRequest("chunk size too large") }
                    remaining = remaining << 4 | v
                } else if b == 0x3B {
                    state = .extBeforeName
                } else if b == 0x20 || b == 0x09 {
                    state = .sizeWhitespace
                } else if b == 0x0D {
                    state = .sizeLF
                } else {
                    throw .badRequest("invalid chunk size")
                }
            case .sizeWhitespace:
                if b == 0x3B { state = .extBeforeName }
                else if b != 0x20 && b != 0x09 { throw .badRequest("whitespace after a chunk size") }
            case .extBeforeName, .extName, .extAfterName, .extBeforeValue, .extToken, .extQuoted,
                 .extQuotedEscape, .extAfterValue:
                extensionBytes += 1
                guard extensionBytes <= ChunkedDecoder.maxExtensionBytes else { throw .badRequest("chunk extensions too long") }
                try stepExtension(b, t)
            case .sizeLF:
                guard b == 0x0A else { throw .badRequest("chunk size line not ended by CRLF") }
                state = remaining == 0 ? .trailerStart : .data
            case .data:
                let available = UInt64(min(n - k, maxData))
                let take = Int(min(remaining, available))
                remaining -= UInt64(take)
                if remaining == 0 { state = .dataCR }
                consumed = k + take
                return .data(ByteSpan(start: k, count: take))
            case .dataCR:
                guard b == 0x0D else { throw .badRequest("chunk data not followed by CRLF") }
                state = .dataLF
            case .dataLF:
                guard b == 0x0A else { throw .badRequest("chunk data not followed by CRLF") }
                state = .sizeStart
            case .trailerStart:
                if b == 0x0D {
                    state = .finalLF
                } else {
                    state = .trailerLine
                    continue
                }
            case .trailerLine:
                trailerBytes += 1
                guard trailerBytes <= ChunkedDecoder.maxTrailerBytes else { throw .headersTooLarge }
                if b == 0x0D {
                    state = .trailerLineLF
                } else {
                    guard b != 0x0A else { throw .badRequest("trailer line ends in a bare LF") }
                    trailerLine.append(b)
                }
            case .trailerLineLF:
                guard b == 0x0A else { throw .badRequest("bare CR in a trailer") }
                try acceptTrailerLine(t)
                state = .trailerStart
            case .finalLF:
                guard b == 0x0A else { throw .badRequest("chunked body not ended by CRLF") }
                state = .done
                consumed = k + 1
                return .end
            case .done:
                consumed = k
                return .end
            }
            k += 1
        }
        consumed = n
        return state == .done ? .end : .needMore
    }

    @inline(__always)
    private mutating func stepExtension(_ b: UInt8, _ t: UnsafePointer<UInt8>) throws(HTTPParseError) {
        let isWhitespace = b == 0x20 || b == 0x09
        switch state {
        case .extBeforeName:
            if ByteClass.isToken(b, t) { state = .extName }
            else if !isWhitespace { throw .badRequest("invalid chunk extension") }
        case .extName:
            if ByteClass.isToken(b, t) { return }
            if isWhitespace { state = .extAfterName }
            else if b == 0x3D { state = .extBeforeValue }
            else if b == 0x3B { state = .extBeforeName }
            else if b == 0x0D { state = .sizeLF }
            else { throw .badRequest("invalid chunk extension") }
        case .extAfterName:
            if b == 0x3D { state = .extBeforeValue }
            else if b == 0x3B { state = .extBeforeName }
            else if !isWhitespace { throw .badRequest("invalid chunk extension") }
        case .extBeforeValue:
            if b == 0x22 { state = .extQuoted }
            else if ByteClass.isToken(b, t) { state = .extToken }
            else if !isWhitespace { throw .badRequest("invalid chunk extension value") }
        case .extToken:
            if ByteClass.isToken(b, t) { return }
            if isWhitespace { state = .extAfterValue }
            else if b == 0x3B { state = .extBeforeName }
            else if b == 0x0D { state = .sizeLF }
            else { throw .badRequest("invalid chunk extension value") }
        case .extQuoted:
            if b == 0x22 { state = .extAfterValue }
            else if b == 0x5C { state = .extQuotedEscape }
            else if !(b == 0x09 || b == 0x20 || b == 0x21 || (b >= 0x23 && b <= 0x7E) || b >= 0x80) {
                throw .badRequest("invalid quoted chunk extension")
            }
        case .extQuotedEscape:
            guard b == 0x09 || b == 0x20 || (b >= 0x21 && b <= 0x7E) || b >= 0x80 else {
                throw .badRequest("invalid quoted chunk extension")
            }
            state = .extQuoted
        case .extAfterValue:
            if b == 0x3B { state = .extBeforeName }
            else if b == 0x0D { state = .sizeLF }
            else if !isWhitespace { throw .badRequest("invalid chunk extension") }
        default:
            break
        }
    }

    /// Trailer fields that must never come from a trailer (RFC 9110 §6.5.1): framing, routing,
    /// authentication and control data.
    private static let forbiddenTrailers: [StaticString] = [
        "content-length", "transfer-encoding", "host", "connection", "keep-alive", "te", "trailer", "upgrade",
        "expect", "authorization", "proxy-authorization", "cookie", "set-cookie", "content-type", "content-encoding",
        "content-range", "cache-control", "max-forwards", "range",
    ]

    private mutating func acceptTrailerLine(_ t: UnsafePointer<UInt8>) throws(HTTPParseError) {
        defer { trailerLine.removeAll(keepingCapacity: true) }
        let line = trailerLine
        var k = 0
        while k < line.count && ByteClass.isToken(line[k], t) { k += 1 }
        guard k > 0, k < line.count, line[k] == 0x3A else { throw .badRequest("invalid trailer field") }
        let name = Array(line[..<k])
        k += 1
        while k < line.count && (line[k] == 0x20 || line[k] == 0x09) { k += 1 }
        var end = line.count
        while end > k && (line[end - 1] == 0x20 || line[end - 1] == 0x09) { end -= 1 }
        for b in line[k..<end] where !ByteClass.isFieldValue(b, t) {
            throw .badRequest("control character in a trailer value")
        }
        let forbidden = name.withUnsafeBytes { bytes in
            ChunkedDecoder.forbiddenTrailers.contains { bytes.equalsCaseInsensitive(ByteSpan(start: 0, count: name.count), $0) }
        }
        if !forbidden {
            trailers.append(Trailer(name: name, value: Array(line[k..<end])))
        }
    }
}
