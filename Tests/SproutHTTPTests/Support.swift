import Glibc
import HTTPTypes
import Sprout
import SproutHTTP
import SproutTestSupport
import Testing

/// HTTP tests open sockets and some count them, so they run one after another.
@Suite(.serialized, .countsSockets)
enum HTTPSuites {}

/// Runs `body` as the main greenlet of a fresh green thread, failing with `Timeout` instead of
/// hanging when something never answers.
func green(timeout: Duration = .seconds(30), _ body: @escaping @Sendable () throws -> Void) async throws {
    try await GreenThread.run {
        try withTimeout(timeout) { try body() }
    }
}

/// A configuration on a free loopback port with short timeouts, for tests.
func testConfiguration(_ adjust: (inout HTTPServer.Configuration) -> Void = { _ in }) -> HTTPServer.Configuration {
    var configuration = HTTPServer.Configuration(port: 0)
    configuration.headerTimeout = .seconds(5)
    configuration.idleTimeout = .seconds(5)
    configuration.lingerTimeout = .milliseconds(200)
    adjust(&configuration)
    return configuration
}

/// Runs `body` with a server on a free port answering with `responder` (the demo app by
/// default), then stops it and checks that every socket opened meanwhile was closed and every
/// pooled buffer returned.
func withServer(_ configuration: HTTPServer.Configuration = testConfiguration(),
                responder: any HTTPResponder = DemoApp.router(),
                _ body: (_ port: Int, _ server: HTTPServer) throws -> Void) throws {
    let before = openSocketCount()
    let server = HTTPServer(configuration: configuration, responder: responder)
    try server.start()
    do {
        try body(server.port, server)
    } catch {
        server.stop(timeout: .milliseconds(100))
        throw error
    }
    server.stop(timeout: .seconds(2))
    for _ in 0..<20 where openSocketCount() != before { try sleep(for: .milliseconds(10)) }
    let after = openSocketCount()
    #expect(after == before, "open sockets: \(before) before, \(after) after")
}


/// A response as the bytes on the wire said it.
struct RawResponse {
    var status: Int
    var reason: String
    var headers: [(name: String, value: String)]
    var body: [UInt8]

    func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }
    func headers(_ name: String) -> [String] {
        headers.filter { $0.name.lowercased() == name.lowercased() }.map(\.value)
    }
    var text: String { String(decoding: body, as: UTF8.self) }
}

struct ClientError: Error, CustomStringConvertible {
    let description: String
}

/// A raw HTTP client over a green socket: sends bytes exactly as given and parses what comes back.
final class RawClient {
    let socket: Socket
    private var buffer: [UInt8] = []

    init(port: Int, timeout: Duration = .seconds(10)) throws {
        socket = try Socket.connect(host: "127.0.0.1", port: port, timeout: timeout)
    }

    deinit { socket.close() }

    func send(_ text: String) throws { try socket.sendAll(text) }
    func send(_ bytes: [UInt8]) throws { try socket.sendAll(bytes) }

    /// Receives more bytes; false at end of stream (or on a reset).
    private func fill() throws -> Bool {
        let chunk: [UInt8]
        do {
            chunk = try socket.recv(maxLength: 65536)
        } catch let error as SystemError where error.errno == ECONNRESET {
            return false
        }
        if chunk.isEmpty { return false }
        buffer += chunk
        return true
    }

    /// Reads one response. `forHead` for the answer to a HEAD request (no body whatever the
    /// headers say).
    func readResponse(forHead: Bool = false) throws -> RawResponse {
        var headEnd: Int?
        while true {
            if let range = find([13, 10, 13, 10], in: buffer) { headEnd = range; break }
            guard try fill() else { throw ClientError(description: "end of stream before a response head (\(buffer.count) bytes: \(String(decoding: buffer, as: UTF8.self)))") }
        }
        let head = String(decoding: buffer[..<headEnd!], as: UTF8.self)
        buffer.removeFirst(headEnd! + 4)
        var lines = head.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst()
        let parts = statusLine.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]) else {
            throw ClientError(description: "bad status line: \(statusLine)")
        }
        var response = RawResponse(status: status, reason: parts.count > 2 ? String(parts[2]) : "", headers: [], body: [])
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { throw ClientError(description: "bad header line: \(line)") }
            var value = line[line.index(after: colon)...]
            while value.first == " " { value = value.dropFirst() }
            while value.last == " " { value = value.dropLast() }
            response.headers.append((String(line[..<colon]), String(value)))
        }
        if forHead || status < 200 || status == 204 || status == 304 { return response }
        if let length = response.header("content-length").flatMap({ Int($0) }) {
            while buffer.count < length {
                guard try fill() else { throw ClientError(description: "body truncated at \(buffer.count) of \(length)") }
            }
            response.body = Array(buffer[..<length])
            buffer.removeFirst(length)
        } else if response.header("transfer-encoding")?.lowercased() == "chunked" {
            response.body = try readChunked()
        } else {
            while try fill() {}
            response.body = buffer
            buffer = []
        }
        return response
    }

    private func readLine() throws -> String {
        while true {
            if let end = find([13, 10], in: buffer) {
                let line = String(decoding: buffer[..<end], as: UTF8.self)
                buffer.removeFirst(end + 2)
                return line
            }
            guard try fill() else { throw ClientError(description: "end of stream inside chunked framing") }
        }
    }

    private func readChunked() throws -> [UInt8] {
        var body: [UInt8] = []
        while true {
            let sizeLine = try readLine()
            guard let size = Int(sizeLine.split(separator: ";")[0], radix: 16) else {
                throw ClientError(description: "bad chunk size line \(sizeLine)")
            }
            if size == 0 {
                while try !readLine().isEmpty {}
                return body
            }
            while buffer.count < size + 2 {
                guard try fill() else { throw ClientError(description: "end of stream inside a chunk") }
            }
            body += buffer[..<size]
            buffer.removeFirst(size + 2)
        }
    }

    /// True if the server closes the connection (end of stream or reset) with nothing more to
    /// read, within `timeout`.
    func isClosedByServer(timeout: Duration = .seconds(5)) throws -> Bool {
        socket.timeout = timeout
        defer { socket.timeout = nil }
        do {
            while true {
                if !buffer.isEmpty { return false }
                guard try fill() else { return true }
            }
        } catch let error as SystemError where error.errno == ETIMEDOUT {
            return false
        }
    }

    /// Bytes left over after the last parsed response.
    var leftover: [UInt8] { buffer }
}

func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
    guard haystack.count >= needle.count else { return nil }
    var i = 0
    while i <= haystack.count - needle.count {
        if haystack[i] == needle[0] && Array(haystack[i..<i + needle.count]) == needle { return i }
        i += 1
    }
    return nil
}

/// Sends `request` on a new connection and returns the response and whether the server then
/// closed the connection.
func exchange(_ port: Int, _ request: String, forHead: Bool = false) throws -> (RawResponse, closed: Bool) {
    let client = try RawClient(port: port)
    try client.send(request)
    let response = try client.readResponse(forHead: forHead)
    return (response, try client.isClosedByServer(timeout: .milliseconds(400)))
}

/// Reads /proc/self/status's VmRSS in bytes.
func residentBytes() -> Int {
    guard let file = fopen("/proc/self/status", "r") else { return -1 }
    defer { fclose(file) }
    var line = [CChar](repeating: 0, count: 256)
    while fgets(&line, 256, file) != nil {
        let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if text.hasPrefix("VmRSS:") {
            return (Int(text.split(separator: " ")[1]) ?? 0) * 1024
        }
    }
    return -1
}
