import Glibc
import HTTPTypes

/// A response head, parsed and framed (RFC 9112 §4, §5, §6.3).
struct ParsedResponseHead {
    /// How the body is delimited.
    enum Framing: Equatable {
        case none
        case length(Int)
        case chunked
        /// Until the server closes the connection.
        case untilClose
    }

    var status: HTTPResponse.Status
    /// The field lines as received (validated), turned into `HTTPFields` only when asked for:
    /// a caller that reads the status and the body pays for no field objects.
    var fieldLines: [UInt8]
    var minorVersion: Int
    var framing: Framing
    /// The connection can carry another request once this body has been read.
    var keepAlive: Bool
    /// `Location`, kept for redirects.
    var location: String?
    /// `Content-Encoding`, kept for decompression.
    var contentEncoding: String?

    /// The head as swift-http-types' response.
    var response: HTTPResponse {
        HTTPResponse(status: status, headerFields: ResponseHeadParser.fields(fieldLines))
    }
}

/// Parses a complete response head (status line, fields, the empty line) as a client must:
/// strict about the grammar and framing that responses have been smuggled through, lenient
/// about nothing that would change where one response ends.
enum ResponseHeadParser {
    /// - Parameters:
    ///   - head: The bytes from the status line through the empty line (CRLF line ends, as
    ///     ``HeadScanner`` has checked).
    ///   - requestMethod: HEAD responses carry no body whatever their fields say.
    /// - Throws: ``HTTPClientError`` of kind ``HTTPClientError/Kind/malformedResponse``.
    static func parse(_ head: UnsafeRawBufferPointer, requestMethod: HTTPRequest.Method) throws(HTTPClientError) -> ParsedResponseHead {
        let t = ByteClass.table
        var lines = LineIterator(head)
        guard let statusLine = lines.next() else { throw .malformed("empty head") }
        let (minor, status) = try parseStatusLine(UnsafeRawBufferPointer(rebasing: head[statusLine]))

        var contentLength: Int?
        var location: String?
        var contentEncoding: String?
        var fieldsStart = -1
        var fieldsEnd = 0
        var transferEncoding: [UInt8] = []
        var connectionClose = false
        var connectionKeepAlive = false
        while let line = lines.next(), !line.isEmpty {
            if fieldsStart < 0 { fieldsStart = line.lowerBound }
            fieldsEnd = line.upperBound + 2
            let first = head[line.lowerBound]
            if first == 0x20 || first == 0x09 { throw .malformed("obsolete line folding in a header field") }
            guard let colon = index(of: UInt8(ascii: ":"), in: head, line), colon > line.lowerBound else {
                throw .malformed("a header line without a name and a colon")
            }
            for i in line.lowerBound..<colon where !ByteClass.isToken(head[i], t) {
                throw .malformed("a header name with a character that is not a token character")
            }
            var valueStart = colon + 1
            var valueEnd = line.upperBound
            while valueStart < valueEnd && (head[valueStart] == 0x20 || head[valueStart] == 0x09) { valueStart += 1 }
            while valueEnd > valueStart && (head[valueEnd - 1] == 0x20 || head[valueEnd - 1] == 0x09) { valueEnd -= 1 }
            for i in valueStart..<valueEnd where !ByteClass.isFieldValue(head[i], t) {
                throw .malformed("a header value with a control character")
            }
            let nameBytes = UnsafeRawBufferPointer(rebasing: head[line.lowerBound..<colon])
            let value = UnsafeRawBufferPointer(rebasing: head[valueStart..<valueEnd])
            let kind = fieldKind(nameBytes)
            switch kind {
            case .contentLength:
                let length = try parseContentLength(value)
                if let contentLength, contentLength != length { throw .malformed("two different Content-Length values") }
                contentLength = length
            case .transferEncoding:
                if !transferEncoding.isEmpty { transferEncoding.append(UInt8(ascii: ",")) }
                transferEncoding += value.map { ByteClass.lower($0) }
            case .connection:
                var start = 0
                while start <= value.count {
                    var end = start
                    while end < value.count && value[end] != UInt8(ascii: ",") { end += 1 }
                    var first = start
                    var last = end
                    while first < last && (value[first] == 0x20 || value[first] == 0x09) { first += 1 }
                    while last > first && (value[last - 1] == 0x20 || value[last - 1] == 0x09) { last -= 1 }
                    let option = ByteSpan(start: first, count: last - first)
                    if value.equalsCaseInsensitive(option, "close") { connectionClose = true }
                    if value.equalsCaseInsensitive(option, "keep-alive") { connectionKeepAlive = true }
                    start = end + 1
                }
            case .location:
                location = String(decoding: value, as: UTF8.self)
            case .contentEncoding:
                contentEncoding = String(decoding: value, as: UTF8.self)
            case .other:
                break
            }
        }

        var keepAlive = minor >= 1 ? !connectionClose : (connectionKeepAlive && !connectionClose)
        let code = status.code
        let framing: ParsedResponseHead.Framing
        if requestMethod == .head || code < 200 || code == 204 || code == 304 {
            framing = .none
        } else if !transferEncoding.isEmpty {
            let codings = transferEncoding.split(separator: UInt8(ascii: ","))
                .map { String(decoding: $0, as: UTF8.self).trimmingSpaces }.filter { !$0.isEmpty }
            guard codings.last == "chunked" else {
                throw .malformed("unsupported Transfer-Encoding \(codings.joined(separator: ", "))")
            }
            guard codings.count == 1 else {
                throw .malformed("unsupported Transfer-Encoding \(codings.joined(separator: ", ")) (only chunked is)")
            }
            framing = .chunked
            // Content-Length beside Transfer-Encoding is a smuggling attempt or a broken
            // intermediary, and Transfer-Encoding in HTTP/1.0 is faulty framing (RFC 9112
            // §6.1): the chunked framing wins, and the connection is not reused.
            if contentLength != nil || minor == 0 { keepAlive = false }
        } else if let contentLength {
            framing = contentLength == 0 ? .none : .length(contentLength)
        } else {
            framing = .untilClose
            keepAlive = false
        }
        let fieldLines = fieldsStart < 0 ? [] : Array(UnsafeRawBufferPointer(rebasing: head[fieldsStart..<fieldsEnd]))
        return ParsedResponseHead(status: status, fieldLines: fieldLines, minorVersion: minor, framing: framing,
                                  keepAlive: keepAlive, location: location, contentEncoding: contentEncoding)
    }

    /// The fields of field lines that ``parse(_:requestMethod:)`` has validated.
    static func fields(_ lines: [UInt8]) -> HTTPFields {
        var fields = HTTPFields()
        lines.withUnsafeBytes { bytes in
            var iterator = LineIterator(bytes)
            while let line = iterator.next(), !line.isEmpty {
                guard let colon = index(of: UInt8(ascii: ":"), in: bytes, line) else { continue }
                var valueStart = colon + 1
                var valueEnd = line.upperBound
                while valueStart < valueEnd && (bytes[valueStart] == 0x20 || bytes[valueStart] == 0x09) { valueStart += 1 }
                while valueEnd > valueStart && (bytes[valueEnd - 1] == 0x20 || bytes[valueEnd - 1] == 0x09) { valueEnd -= 1 }
                guard let name = fieldName(UnsafeRawBufferPointer(rebasing: bytes[line.lowerBound..<colon])) else { continue }
                let value = UnsafeRawBufferPointer(rebasing: bytes[valueStart..<valueEnd])
                fields.append(HTTPField(name: name, value: String(decoding: value, as: UTF8.self)))
            }
        }
        return fields
    }

    /// The names most responses carry come from swift-http-types' static names (no string is
    /// built or validated for them); others are made from their bytes.
    /// The fields the client itself reads, recognised by their bytes (no string made).
    private enum FieldKind {
        case contentLength, transferEncoding, connection, location, contentEncoding, other
    }

    @inline(__always)
    private static func fieldKind(_ bytes: UnsafeRawBufferPointer) -> FieldKind {
        let span = ByteSpan(start: 0, count: bytes.count)
        switch bytes.count {
        case 8: return bytes.equalsCaseInsensitive(span, "location") ? .location : .other
        case 10: return bytes.equalsCaseInsensitive(span, "connection") ? .connection : .other
        case 14: return bytes.equalsCaseInsensitive(span, "content-length") ? .contentLength : .other
        case 16: return bytes.equalsCaseInsensitive(span, "content-encoding") ? .contentEncoding : .other
        case 17: return bytes.equalsCaseInsensitive(span, "transfer-encoding") ? .transferEncoding : .other
        default: return .other
        }
    }

    /// The names most responses carry come from swift-http-types' static names (no string is
    /// built or validated for them); others are made from their bytes.
    private static func fieldName(_ bytes: UnsafeRawBufferPointer) -> HTTPField.Name? {
        let span = ByteSpan(start: 0, count: bytes.count)
        switch bytes.count {
        case 4:
            if bytes.equalsCaseInsensitive(span, "date") { return .date }
            if bytes.equalsCaseInsensitive(span, "etag") { return .eTag }
            if bytes.equalsCaseInsensitive(span, "vary") { return .vary }
        case 6:
            if bytes.equalsCaseInsensitive(span, "server") { return .server }
        case 8:
            if bytes.equalsCaseInsensitive(span, "location") { return .location }
        case 10:
            if bytes.equalsCaseInsensitive(span, "connection") { return .connection }
            if bytes.equalsCaseInsensitive(span, "set-cookie") { return .setCookie }
        case 12:
            if bytes.equalsCaseInsensitive(span, "content-type") { return .contentType }
        case 13:
            if bytes.equalsCaseInsensitive(span, "cache-control") { return .cacheControl }
            if bytes.equalsCaseInsensitive(span, "last-modified") { return .lastModified }
            if bytes.equalsCaseInsensitive(span, "accept-ranges") { return .acceptRanges }
        case 14:
            if bytes.equalsCaseInsensitive(span, "content-length") { return .contentLength }
        case 16:
            if bytes.equalsCaseInsensitive(span, "content-encoding") { return .contentEncoding }
        case 17:
            if bytes.equalsCaseInsensitive(span, "transfer-encoding") { return .transferEncoding }
        default:
            break
        }
        return HTTPField.Name(String(decoding: bytes, as: UTF8.self))
    }

    /// `HTTP/1.x SP 3DIGIT SP reason`, the reason possibly empty (and its space missing).
    private static func parseStatusLine(_ line: UnsafeRawBufferPointer) throws(HTTPClientError) -> (Int, HTTPResponse.Status) {
        let prefix = Array("HTTP/1.".utf8)
        guard line.count >= 12, line.starts(with: prefix) else {
            let shown = String(decoding: line.prefix(40), as: UTF8.self)
            throw .malformed("not an HTTP/1.x status line: \(shown.debugDescription)")
        }
        let minorByte = line[7]
        guard minorByte >= 0x30 && minorByte <= 0x39, line[8] == 0x20 else { throw .malformed("bad HTTP version") }
        var code = 0
        for i in 9..<12 {
            let digit = line[i]
            guard digit >= 0x30 && digit <= 0x39 else { throw .malformed("the status code is not three digits") }
            code = code * 10 + Int(digit - 0x30)
        }
        guard code >= 100 else { throw .malformed("status code \(code) below 100") }
        var reason = ""
        if line.count > 12 {
            guard line[12] == 0x20 else { throw .malformed("no space after the status code") }
            let t = ByteClass.table
            let reasonBytes = UnsafeRawBufferPointer(rebasing: line[13...])
            guard reasonBytes.allSatisfy({ ByteClass.isFieldValue($0, t) }) else {
                throw .malformed("a control character in the reason phrase")
            }
            reason = String(decoding: reasonBytes, as: UTF8.self)
        }
        return (Int(minorByte - 0x30), HTTPResponse.Status(code: code, reasonPhrase: reason))
    }

    /// Digits only; a list of identical values ("5, 5") is one value (RFC 9110 §8.6).
    private static func parseContentLength(_ value: UnsafeRawBufferPointer) throws(HTTPClientError) -> Int {
        var result: Int?
        for part in value.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false) {
            let digits = part.drop { $0 == 0x20 || $0 == 0x09 }.reversed().drop { $0 == 0x20 || $0 == 0x09 }.reversed()
            guard !digits.isEmpty, digits.count <= 18, digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
                throw .malformed("invalid Content-Length")
            }
            let number = digits.reduce(0) { $0 * 10 + Int($1 - 0x30) }
            if let result, result != number { throw .malformed("a Content-Length list of different values") }
            result = number
        }
        guard let result else { throw .malformed("empty Content-Length") }
        return result
    }
}

/// The first index of `byte` in `range` of `bytes` (memchr).
@inline(__always)
private func index(of byte: UInt8, in bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Int? {
    guard let base = bytes.baseAddress, !range.isEmpty,
          let hit = memchr(base + range.lowerBound, Int32(byte), range.count) else { return nil }
    return UnsafeRawPointer(hit) - base
}

/// The lines of a head, without their CRLF; ends after the empty line.
private struct LineIterator {
    let bytes: UnsafeRawBufferPointer
    var position = 0

    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    mutating func next() -> Range<Int>? {
        guard position < bytes.count, let lf = index(of: 0x0A, in: bytes, position..<bytes.count) else { return nil }
        let line = position..<(lf > position && bytes[lf - 1] == 0x0D ? lf - 1 : lf)
        position = lf + 1
        return line
    }
}

extension String {
    var trimmingSpaces: String {
        var view = Substring(self)
        while view.first == " " || view.first == "\t" { view.removeFirst() }
        while view.last == " " || view.last == "\t" { view.removeLast() }
        return String(view)
    }
}
