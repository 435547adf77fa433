// Byte classes of RFC 9110 §5.6 as 256-entry tables: one load and one test a byte.
// This folder depends on the standard library only, so that the fuzzer can build it alone.

enum ByteClass {
    private static let tokenBit: UInt8 = 1
    private static let fieldValueBit: UInt8 = 2
    private static let targetBit: UInt8 = 4
    private static let hostBit: UInt8 = 8

    /// Bit flags per byte: token (tchar), field-value content, request-target, Host value.
    /// Allocated once and never freed, so hot loops index a plain pointer.
    nonisolated(unsafe) static let table: UnsafePointer<UInt8> = {
        let table = UnsafeMutablePointer<UInt8>.allocate(capacity: 256)
        table.initialize(repeating: 0, count: 256)
        let tcharSymbols = Array("!#$%&'*+-.^_`|~".utf8)
        for byte in 0..<256 {
            let b = UInt8(byte)
            var flags: UInt8 = 0
            let isAlpha = (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
            let isDigit = b >= 0x30 && b <= 0x39
            if isAlpha || isDigit || tcharSymbols.contains(b) { flags |= tokenBit }
            // field-vchar / obs-text / SP / HTAB (RFC 9110 §5.5): no CTL but HTAB, no DEL.
            if (b >= 0x21 && b <= 0x7E) || b >= 0x80 || b == 0x20 || b == 0x09 { flags |= fieldValueBit }
            // Visible ASCII only: no space, no CTL, no DEL, no raw non-ASCII.
            if b >= 0x21 && b <= 0x7E && b != UInt8(ascii: "#") { flags |= targetBit }
            // reg-name, IP literals and a port (RFC 3986 §3.2.2): unreserved, sub-delims, ':', '[', ']', '%'.
            if isAlpha || isDigit || Array("-._~!$&'()*+,;=:[]%".utf8).contains(b) { flags |= hostBit }
            table[byte] = flags
        }
        return UnsafePointer(table)
    }()

    @inline(__always) static func isToken(_ b: UInt8, _ table: UnsafePointer<UInt8>) -> Bool { table[Int(b)] & tokenBit != 0 }
    @inline(__always) static func isFieldValue(_ b: UInt8, _ table: UnsafePointer<UInt8>) -> Bool { table[Int(b)] & fieldValueBit != 0 }
    @inline(__always) static func isTarget(_ b: UInt8, _ table: UnsafePointer<UInt8>) -> Bool { table[Int(b)] & targetBit != 0 }
    @inline(__always) static func isHost(_ b: UInt8, _ table: UnsafePointer<UInt8>) -> Bool { table[Int(b)] & hostBit != 0 }

    /// The value of a hexadecimal digit, or nil.
    @inline(__always) static func hexValue(_ b: UInt8) -> UInt64? {
        switch b {
        case 0x30...0x39: UInt64(b - 0x30)
        case 0x41...0x46: UInt64(b - 0x41 + 10)
        case 0x61...0x66: UInt64(b - 0x61 + 10)
        default: nil
        }
    }

    @inline(__always) static func lower(_ b: UInt8) -> UInt8 { b >= 0x41 && b <= 0x5A ? b | 0x20 : b }
}

/// A range of bytes in the buffer a head was parsed from.
public struct ByteSpan: Equatable, Sendable {
    /// Offset of the first byte.
    public var start: Int
    /// Number of bytes.
    public var count: Int

    @inlinable init(start: Int, count: Int) {
        self.start = start
        self.count = count
    }

    static let empty = ByteSpan(start: 0, count: 0)
    /// Offset one past the last byte.
    public var end: Int { start + count }
}

extension UnsafeRawBufferPointer {
    /// True if the bytes of `span` equal `lowercase` compared ASCII case-insensitively.
    @inline(__always)
    func equalsCaseInsensitive(_ span: ByteSpan, _ lowercase: StaticString) -> Bool {
        guard span.count == lowercase.utf8CodeUnitCount else { return false }
        let expected = lowercase.utf8Start
        for i in 0..<span.count where ByteClass.lower(self[span.start + i]) != expected[i] {
            return false
        }
        return true
    }

    /// True if the bytes of `span` equal `text` exactly.
    @inline(__always)
    func equals(_ span: ByteSpan, _ text: StaticString) -> Bool {
        guard span.count == text.utf8CodeUnitCount else { return false }
        let expected = text.utf8Start
        for i in 0..<span.count where self[span.start + i] != expected[i] {
            return false
        }
        return true
    }
}
