/// Finds where each HTTP/1.1 response ends in the bytes a `sprout load` connection receives,
/// without keeping them: the load tool needs the status code, whether the server will close,
/// and the end of the body (Content-Length, chunked, or the end of the stream), nothing else.
///
/// Feed it what `recv` returned; it reports a complete response once the last byte of its
/// body has gone through. It never allocates after the head buffer has grown to fit.
struct LoadResponseFramer {
    /// What one call to ``feed(_:)`` found.
    enum Progress: Equatable {
        /// More bytes are needed.
        case incomplete
        /// A whole response; `consumed` bytes of the input belonged to it (the rest, if any,
        /// would be a response the load tool never asked for).
        case complete(status: Int, closes: Bool, consumed: Int)
        /// The bytes are not an HTTP/1.x response the tool can frame.
        case malformed(String)
    }

    private enum Stage {
        case head
        case fixedBody(remaining: Int)
        case chunkSize(value: Int, digits: Int, phase: ChunkLinePhase)
        case chunkData(remaining: Int)
        case chunkDataEnd(seenCR: Bool)
        case trailers(lineLength: Int)
        case untilClose
    }

    /// The longest head accepted (a larger one is ``Progress/malformed(_:)``).
    static let maxHeadSize = 64 * 1024

    /// Where a chunk-size line is: in its hex digits, in the blanks after them, in an
    /// extension (after `;`, skipped), or past its CR (only LF may follow).
    private enum ChunkLinePhase {
        case digits, blanks, chunkExtension, carriageReturn
    }

    private var stage = Stage.head
    private var head: [UInt8] = []
    private var status = 0
    private var closes = false
    /// Set for a response whose request was HEAD: its head says a length, but no body follows.
    var expectsNoBody = false

    /// Whether the current response runs to the end of the stream (no length, not chunked).
    var isCloseDelimited: Bool {
        if case .untilClose = stage { return true }
        return false
    }

    /// Whether no byte of a new response has been seen yet.
    var isIdle: Bool {
        if case .head = stage { return head.isEmpty }
        return false
    }

    /// Starts over for the next response.
    mutating func reset() {
        stage = .head
        head.removeAll(keepingCapacity: true)
        status = 0
        closes = false
    }

    /// The status of a close-delimited response once its stream has ended.
    mutating func finishAtEndOfStream() -> Progress {
        guard case .untilClose = stage else { return .malformed("the connection closed mid-response") }
        return .complete(status: status, closes: true, consumed: 0)
    }

    /// Consumes `bytes` (what one receive returned) and reports whether a response ended in them.
    mutating func feed(_ bytes: UnsafeRawBufferPointer) -> Progress {
        var index = 0
        let count = bytes.count
        while index < count {
            switch stage {
            case .head:
                let (progress, used) = feedHead(bytes, from: index)
                index += used
                if let progress { return progress }
            case .fixedBody(let remaining):
                let used = min(remaining, count - index)
                index += used
                if used == remaining { return .complete(status: status, closes: closes, consumed: index) }
                stage = .fixedBody(remaining: remaining - used)
            case .chunkSize(var value, var digits, var phase):
                let byte = bytes[index]
                index += 1
                if byte == UInt8(ascii: "\n") {
                    guard digits > 0 else { return .malformed("a chunk without a size") }
                    stage = value == 0 ? .trailers(lineLength: 0) : .chunkData(remaining: value)
                    continue
                }
                if phase == .carriageReturn { return .malformed("a CR inside a chunk-size line") }
                if byte == UInt8(ascii: "\r") {
                    phase = .carriageReturn
                } else if phase == .chunkExtension {
                    // skipped
                } else if byte == UInt8(ascii: ";") {
                    phase = .chunkExtension
                } else if byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") {
                    phase = .blanks
                } else if phase == .digits, let digit = Self.hexValue(byte) {
                    guard digits < 15 else { return .malformed("a chunk size too large") }
                    value = value << 4 | digit
                    digits += 1
                } else {
                    return .malformed("a bad chunk size")
                }
                stage = .chunkSize(value: value, digits: digits, phase: phase)
            case .chunkData(let remaining):
                let used = min(remaining, count - index)
                index += used
                stage = used == remaining ? .chunkDataEnd(seenCR: false) : .chunkData(remaining: remaining - used)
            case .chunkDataEnd(let seenCR):
                let byte = bytes[index]
                index += 1
                if byte == UInt8(ascii: "\r") && !seenCR {
                    stage = .chunkDataEnd(seenCR: true)
                } else if byte == UInt8(ascii: "\n") {
                    stage = .chunkSize(value: 0, digits: 0, phase: .digits)
                } else {
                    return .malformed("chunk data longer than its size")
                }
            case .trailers(let lineLength):
                let byte = bytes[index]
                index += 1
                if byte == UInt8(ascii: "\n") {
                    if lineLength == 0 { return .complete(status: status, closes: closes, consumed: index) }
                    stage = .trailers(lineLength: 0)
                } else if byte != UInt8(ascii: "\r") {
                    stage = .trailers(lineLength: lineLength + 1)
                }
            case .untilClose:
                return .incomplete
            }
        }
        if case .fixedBody(let remaining) = stage, remaining == 0 {
            return .complete(status: status, closes: closes, consumed: index)
        }
        return .incomplete
    }

    /// Appends head bytes until the blank line; returns a progress to report (if the head ended
    /// the response or was bad) and how many input bytes it used.
    private mutating func feedHead(_ bytes: UnsafeRawBufferPointer, from start: Int) -> (Progress?, Int) {
        let searchFrom = max(0, head.count - 3)
        head.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[start...]))
        guard let end = Self.endOfHead(head, from: searchFrom) else {
            if head.count > Self.maxHeadSize { return (.malformed("a response head over \(Self.maxHeadSize) bytes"), bytes.count - start) }
            return (nil, bytes.count - start)
        }
        let used = end - (head.count - (bytes.count - start))
        head.removeSubrange(end...)
        if let failure = parseHead() { return (.malformed(failure), used) }
        if (100..<200).contains(status) {
            // An interim response (100 Continue, 103 Early Hints): the final one follows.
            guard status != 101 else { return (.malformed("a protocol switch (101)"), used) }
            reset()
            return (nil, used)
        }
        switch stage {
        case .fixedBody(let remaining) where remaining == 0:
            return (.complete(status: status, closes: closes, consumed: start + used), used)
        default:
            return (nil, used)
        }
    }

    /// Reads the status line and the framing fields of `head` (which ends with its blank line)
    /// and sets the stage for the body; returns a reason when the head is not usable.
    private mutating func parseHead() -> String? {
        // "HTTP/1.x NNN"
        guard head.count >= 12, head.starts(with: Self.httpPrefix),
              head[5] == UInt8(ascii: "1"), head[6] == UInt8(ascii: "."), head[8] == UInt8(ascii: " ") else {
            return "not an HTTP/1.x status line"
        }
        var code = 0
        for i in 9..<12 {
            let byte = head[i]
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return "a bad status code" }
            code = code * 10 + Int(byte - UInt8(ascii: "0"))
        }
        status = code
        closes = head[7] == UInt8(ascii: "0")  // HTTP/1.0 closes unless it says keep-alive
        var contentLength: Int?
        var chunked = false
        var sawTransferEncoding = false
        var lineStart = head.firstIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? head.count
        while lineStart < head.count {
            var lineEnd = lineStart
            while lineEnd < head.count && head[lineEnd] != UInt8(ascii: "\n") { lineEnd += 1 }
            var valueEnd = lineEnd
            if valueEnd > lineStart && head[valueEnd - 1] == UInt8(ascii: "\r") { valueEnd -= 1 }
            if let colon = head[lineStart..<valueEnd].firstIndex(of: UInt8(ascii: ":")) {
                let name = head[lineStart..<colon]
                var valueStart = colon + 1
                while valueStart < valueEnd && (head[valueStart] == 32 || head[valueStart] == 9) { valueStart += 1 }
                let value = head[valueStart..<valueEnd]
                if Self.equalsIgnoringCase(name, "content-length") {
                    // A list of equal values ("5, 5") is one length (RFC 9110 §8.6).
                    for item in value.split(separator: UInt8(ascii: ",")) {
                        guard let length = Self.decimal(Self.trimmed(item)) else { return "a bad Content-Length" }
                        if let contentLength, contentLength != length { return "conflicting Content-Length values" }
                        contentLength = length
                    }
                } else if Self.equalsIgnoringCase(name, "transfer-encoding") {
                    // Chunked frames the body only as the last coding of the last field; a
                    // body coded otherwise runs to the end of the stream.
                    let last = value.split(separator: UInt8(ascii: ",")).last.map(Self.trimmed) ?? []
                    chunked = Self.equalsIgnoringCase(last, "chunked")
                    sawTransferEncoding = true
                } else if Self.equalsIgnoringCase(name, "connection") {
                    if Self.containsIgnoringCase(value, "close") { closes = true }
                    if Self.containsIgnoringCase(value, "keep-alive") { closes = false }
                }
            }
            lineStart = lineEnd + 1
        }
        if expectsNoBody || code == 204 || code == 304 || (100..<200).contains(code) {
            stage = .fixedBody(remaining: 0)
        } else if chunked {
            stage = .chunkSize(value: 0, digits: 0, phase: .digits)
        } else if sawTransferEncoding {
            closes = true
            stage = .untilClose
        } else if let contentLength {
            stage = .fixedBody(remaining: contentLength)
        } else {
            closes = true
            stage = .untilClose
        }
        return nil
    }

    private static let httpPrefix = Array("HTTP/".utf8)

    /// The index just past the blank line ending a head, searching from `start`.
    private static func endOfHead(_ bytes: [UInt8], from start: Int) -> Int? {
        var i = start
        while i + 1 < bytes.count {
            if bytes[i] == UInt8(ascii: "\n") {
                if bytes[i + 1] == UInt8(ascii: "\n") { return i + 2 }
                if bytes[i + 1] == UInt8(ascii: "\r"), i + 2 < bytes.count, bytes[i + 2] == UInt8(ascii: "\n") { return i + 3 }
            }
            i += 1
        }
        return nil
    }

    private static func trimmed(_ bytes: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        var slice = bytes
        while let first = slice.first, first == 32 || first == 9 { slice.removeFirst() }
        while let last = slice.last, last == 32 || last == 9 { slice.removeLast() }
        return slice
    }

    private static func hexValue(_ byte: UInt8) -> Int? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): Int(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): Int(byte - UInt8(ascii: "a")) + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): Int(byte - UInt8(ascii: "A")) + 10
        default: nil
        }
    }

    private static func decimal(_ bytes: ArraySlice<UInt8>) -> Int? {
        guard !bytes.isEmpty, bytes.count <= 18 else { return nil }
        var value = 0
        for byte in bytes {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + Int(byte - UInt8(ascii: "0"))
        }
        return value
    }

    private static func lowercased(_ byte: UInt8) -> UInt8 {
        byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte | 0x20 : byte
    }

    private static func equalsIgnoringCase(_ bytes: ArraySlice<UInt8>, _ lowercase: StaticString) -> Bool {
        guard bytes.count == lowercase.utf8CodeUnitCount else { return false }
        let expected = UnsafeBufferPointer(start: lowercase.utf8Start, count: lowercase.utf8CodeUnitCount)
        return zip(bytes, expected).allSatisfy { lowercased($0) == $1 }
    }

    private static func containsIgnoringCase(_ bytes: ArraySlice<UInt8>, _ lowercase: StaticString) -> Bool {
        let needle = UnsafeBufferPointer(start: lowercase.utf8Start, count: lowercase.utf8CodeUnitCount)
        guard bytes.count >= needle.count else { return false }
        var start = bytes.startIndex
        while start + needle.count <= bytes.endIndex {
            if zip(bytes[start..<(start + needle.count)], needle).allSatisfy({ lowercased($0) == $1 }) { return true }
            start += 1
        }
        return false
    }
}
