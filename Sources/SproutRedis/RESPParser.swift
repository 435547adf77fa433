import Glibc

/// Parses RESP2 and RESP3 replies from the bytes a connection has buffered.
///
/// ``parse(_:)`` returns nil until a whole reply is there, so a reply that arrives in pieces is
/// parsed once it is complete; bulk strings are copied out of the buffer once, into the value.
/// Limits protect the client from a server (or a man in the middle) that sends absurd sizes.
struct RESPParser {
    /// The largest bulk string accepted (Redis's own `proto-max-bulk-len` default: 512 MiB).
    var maxBulkLength = 512 << 20
    /// The most elements of one aggregate (array, map, set, push).
    var maxElements = 64 << 20
    /// The deepest nesting of aggregates.
    var maxDepth = 64

    /// The reply at the start of `buffer` and its length, or nil if it is not complete yet.
    /// - Throws: ``RedisError/protocolError(_:)`` for bytes that are not RESP.
    func parse(_ buffer: UnsafeRawBufferPointer) throws(RedisError) -> (value: RESPValue, length: Int)? {
        // A cheap walk first (no value built, nothing allocated): a large reply that arrives in
        // many pieces is then materialised once, not once per piece.
        var end = 0
        guard try isComplete(buffer, &end, depth: 0) else { return nil }
        var position = 0
        guard let value = try parseValue(buffer, &position, depth: 0) else { return nil }
        return (value, position)
    }

    /// True if a whole reply starts at `p` (and moves `p` past it); checks sizes and nesting,
    /// leaving the rest of the grammar to ``parseValue(_:_:depth:)``.
    private func isComplete(_ b: UnsafeRawBufferPointer, _ p: inout Int, depth: Int) throws(RedisError) -> Bool {
        guard p < b.count else { return false }
        let type = b[p]
        guard let lineEnd = Self.lineEnd(b, from: p + 1) else {
            if b.count - p > 64 * 1024 { throw .protocolError("a reply line longer than 64 KiB") }
            return false
        }
        let line = UnsafeRawBufferPointer(rebasing: b[(p + 1)..<lineEnd])
        let afterLine = lineEnd + 2
        switch type {
        case UInt8(ascii: "$"), UInt8(ascii: "!"), UInt8(ascii: "="):
            let length = try Self.integer(line)
            if length == -1 && type == UInt8(ascii: "$") {
                p = afterLine
                return true
            }
            guard length >= 0, length <= maxBulkLength else { throw .protocolError("a bulk length of \(length)") }
            guard b.count >= afterLine + Int(length) + 2 else { return false }
            p = afterLine + Int(length) + 2
            return true
        case UInt8(ascii: "*"), UInt8(ascii: "~"), UInt8(ascii: ">"), UInt8(ascii: "%"), UInt8(ascii: "|"):
            let count = try Self.integer(line)
            if count == -1 && type == UInt8(ascii: "*") {
                p = afterLine
                return true
            }
            guard count >= 0, count <= maxElements else { throw .protocolError("an aggregate of \(count) elements") }
            guard depth < maxDepth else { throw .protocolError("replies nested deeper than \(maxDepth)") }
            var elements = Int(count)
            if type == UInt8(ascii: "%") { elements *= 2 }
            if type == UInt8(ascii: "|") { elements = elements * 2 + 1 }
            p = afterLine
            for _ in 0..<elements {
                guard try isComplete(b, &p, depth: depth + 1) else { return false }
            }
            return true
        default:
            p = afterLine
            return true
        }
    }

    private func parseValue(_ b: UnsafeRawBufferPointer, _ p: inout Int, depth: Int) throws(RedisError) -> RESPValue? {
        guard p < b.count else { return nil }
        let type = b[p]
        let lineStart = p + 1
        guard let lineEnd = Self.lineEnd(b, from: lineStart) else {
            if b.count - lineStart > 64 * 1024 { throw .protocolError("a reply line longer than 64 KiB") }
            return nil
        }
        let line = UnsafeRawBufferPointer(rebasing: b[lineStart..<lineEnd])
        let afterLine = lineEnd + 2
        switch type {
        case UInt8(ascii: "+"):
            p = afterLine
            return .simpleString(String(decoding: line, as: UTF8.self))
        case UInt8(ascii: "-"):
            p = afterLine
            return .error(String(decoding: line, as: UTF8.self))
        case UInt8(ascii: ":"):
            p = afterLine
            return .integer(try Self.integer(line))
        case UInt8(ascii: "$"), UInt8(ascii: "!"), UInt8(ascii: "="):
            let length = try Self.integer(line)
            if length == -1 && type == UInt8(ascii: "$") {
                p = afterLine
                return .null
            }
            guard length >= 0, length <= maxBulkLength else { throw .protocolError("a bulk length of \(length)") }
            let end = afterLine + Int(length)
            guard b.count >= end + 2 else { return nil }
            guard b[end] == 0x0D, b[end + 1] == 0x0A else { throw .protocolError("a bulk string not followed by CRLF") }
            p = end + 2
            var bytes = Array(UnsafeRawBufferPointer(rebasing: b[afterLine..<end]))
            switch type {
            case UInt8(ascii: "!"):
                return .error(String(decoding: bytes, as: UTF8.self))
            case UInt8(ascii: "="):
                // "txt:" or "mkd:" then the text.
                guard bytes.count >= 4, bytes[3] == UInt8(ascii: ":") else { throw .protocolError("a verbatim string without its format") }
                bytes.removeFirst(4)
                return .bulkString(bytes)
            default:
                return .bulkString(bytes)
            }
        case UInt8(ascii: "*"), UInt8(ascii: "~"), UInt8(ascii: ">"), UInt8(ascii: "%"), UInt8(ascii: "|"):
            let count = try Self.integer(line)
            if count == -1 && type == UInt8(ascii: "*") {
                p = afterLine
                return .null
            }
            guard count >= 0, count <= maxElements else { throw .protocolError("an aggregate of \(count) elements") }
            guard depth < maxDepth else { throw .protocolError("replies nested deeper than \(maxDepth)") }
            var q = afterLine
            let isMap = type == UInt8(ascii: "%") || type == UInt8(ascii: "|")
            if isMap {
                var pairs: [RESPPair] = []
                pairs.reserveCapacity(min(Int(count), 1024))
                for _ in 0..<count {
                    guard let key = try parseValue(b, &q, depth: depth + 1),
                          let value = try parseValue(b, &q, depth: depth + 1) else { return nil }
                    pairs.append(RESPPair(key: key, value: value))
                }
                if type == UInt8(ascii: "|") {
                    // Attributes annotate the reply that follows; the client has no use for them.
                    guard let annotated = try parseValue(b, &q, depth: depth + 1) else { return nil }
                    p = q
                    return annotated
                }
                p = q
                return .map(pairs)
            }
            var values: [RESPValue] = []
            values.reserveCapacity(min(Int(count), 1024))
            for _ in 0..<count {
                guard let value = try parseValue(b, &q, depth: depth + 1) else { return nil }
                values.append(value)
            }
            p = q
            return .array(values)
        case UInt8(ascii: "_"):
            guard line.isEmpty else { throw .protocolError("a null with a payload") }
            p = afterLine
            return .null
        case UInt8(ascii: "#"):
            guard line.count == 1, line[0] == UInt8(ascii: "t") || line[0] == UInt8(ascii: "f") else {
                throw .protocolError("a boolean that is neither t nor f")
            }
            p = afterLine
            return .boolean(line[0] == UInt8(ascii: "t"))
        case UInt8(ascii: ","):
            let text = String(decoding: line, as: UTF8.self)
            let value: Double? = switch text {
            case "inf": .infinity
            case "-inf": -.infinity
            case "nan": .nan
            default: Double(text)
            }
            guard let value else { throw .protocolError("a double \(text.debugDescription)") }
            p = afterLine
            return .double(value)
        case UInt8(ascii: "("):
            let text = String(decoding: line, as: UTF8.self)
            guard !text.isEmpty, text.drop(while: { $0 == "-" || $0 == "+" }).allSatisfy(\.isNumber) else {
                throw .protocolError("a big number \(text.debugDescription)")
            }
            p = afterLine
            return .bigNumber(text)
        default:
            throw .protocolError("an unknown reply type byte 0x\(String(type, radix: 16))")
        }
    }

    /// The index of the CR of the first CRLF at or after `start`.
    @inline(__always)
    private static func lineEnd(_ b: UnsafeRawBufferPointer, from start: Int) -> Int? {
        var i = start
        while i < b.count {
            guard let hit = memchr(b.baseAddress! + i, 0x0D, b.count - i) else { return nil }
            let cr = UnsafeRawPointer(hit) - b.baseAddress!
            guard cr + 1 < b.count else { return nil }
            if b[cr + 1] == 0x0A { return cr }
            i = cr + 1
        }
        return nil
    }

    private static func integer(_ line: UnsafeRawBufferPointer) throws(RedisError) -> Int64 {
        var index = 0
        var negative = false
        if index < line.count && (line[index] == UInt8(ascii: "-") || line[index] == UInt8(ascii: "+")) {
            negative = line[index] == UInt8(ascii: "-")
            index += 1
        }
        guard index < line.count, line.count - index <= 19 else {
            throw .protocolError("not an integer: \(String(decoding: line, as: UTF8.self).debugDescription)")
        }
        var value: Int64 = 0
        while index < line.count {
            let digit = line[index]
            guard digit >= 0x30 && digit <= 0x39 else {
                throw .protocolError("not an integer: \(String(decoding: line, as: UTF8.self).debugDescription)")
            }
            let (times, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times.addingReportingOverflow(Int64(digit - 0x30))
            guard !overflow1 && !overflow2 else { throw .protocolError("an integer out of range") }
            value = sum
            index += 1
        }
        return negative ? -value : value
    }
}
