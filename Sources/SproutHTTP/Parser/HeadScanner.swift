/// Finds the end of a request head in bytes that arrive piecemeal, without rescanning.
///
/// Each call looks only at bytes it has not seen (so a client trickling one byte at a time
/// cannot make the work quadratic), requires CRLF for every line end, and enforces the length
/// limits as soon as they are crossed rather than when the head completes.
public struct HeadScanner {
    /// What ``scan(_:limits:)`` found.
    public enum Outcome: Equatable, Sendable {
        /// The head is not complete yet.
        case needMore
        /// The head is the first `length` bytes, final CRLF included.
        case complete(length: Int)
        /// The bytes begin with an empty line (CRLF) that precedes the request line; drop 2 bytes.
        case leadingEmptyLine
    }

    private var scanned = 0
    private var lineStart = 0
    private var lines = 0

    /// A scanner at the start of a head.
    public init() {}

    /// Forgets everything seen; call before each new head.
    public mutating func reset() {
        scanned = 0
        lineStart = 0
        lines = 0
    }

    /// Scans `bytes` (all bytes of the head so far, from its first byte).
    /// - Throws: ``HTTPParseError`` for a bare LF (400), a request line over the limit (414), a
    ///   head over the limit or too many fields (431).
    public mutating func scan(_ bytes: UnsafeRawBufferPointer, limits: HeadLimits) throws(HTTPParseError) -> Outcome {
        let count = bytes.count
        guard let base = bytes.baseAddress else { return .needMore }
        while scanned < count {
            guard let hit = memchrLF(base + scanned, count - scanned) else {
                scanned = count
                break
            }
            let lf = hit - base
            scanned = lf + 1
            guard lf > 0, bytes[lf - 1] == 0x0D else { throw .badRequest("line ends in a bare LF") }
            if lines == 0 && lf - 1 > limits.maxRequestLineLength { throw .uriTooLong }
            if lf + 1 > limits.maxHeadLength { throw .headersTooLarge }
            if lf - 1 == lineStart {
                if lines == 0 { return .leadingEmptyLine }
                return .complete(length: lf + 1)
            }
            lines += 1
            if lines > limits.maxFieldCount + 1 { throw .tooManyFields }
            lineStart = lf + 1
        }
        if lines == 0 && count - 1 > limits.maxRequestLineLength {
            // A line that ends in CR may still be the last byte before LF; anything longer cannot.
            if count > limits.maxRequestLineLength + 1 { throw .uriTooLong }
        }
        if count >= limits.maxHeadLength { throw .headersTooLarge }
        return .needMore
    }

    @inline(__always)
    private func memchrLF(_ start: UnsafeRawPointer, _ length: Int) -> UnsafeRawPointer? {
        var p = start.assumingMemoryBound(to: UInt8.self)
        let end = p + length
        // Eight bytes at a time: the SWAR "has zero byte" test on (word ^ 0x0A…).
        while end - p >= 8 {
            let word = UnsafeRawPointer(p).loadUnaligned(as: UInt64.self) ^ 0x0A0A_0A0A_0A0A_0A0A
            if (word &- 0x0101_0101_0101_0101) & ~word & 0x8080_8080_8080_8080 != 0 { break }
            p += 8
        }
        while p < end {
            if p.pointee == 0x0A { return UnsafeRawPointer(p) }
            p += 1
        }
        return nil
    }
}
