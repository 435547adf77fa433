import ArgumentParser
import Glibc
import HTTPTypes
import Sprout
import SproutHTTP
import SproutTLS

/// `sprout request`: a small curl on ``HTTPClient``.
struct Request: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Send one HTTP or HTTPS request and print the response body (a small curl).",
        discussion: """
            Exit status, as curl's: 0 on a response (any status without --fail), 22 with --fail on 4xx/5xx, \
            6 when the host does not resolve, 7 when no connection could be made, 28 on a timeout, \
            35 when the TLS handshake fails, 60 when the server's certificate is refused, 1 otherwise.
            """)

    @Option(name: [.customShort("X"), .customLong("request")], help: "The method (GET, or POST with a body).")
    var method: String?

    @Option(name: [.customShort("H"), .customLong("header")], help: "A header field 'Name: value' (repeatable).")
    var headers: [String] = []

    @Option(name: [.customShort("d"), .customLong("data")], help: "The request body.")
    var data: String?

    @Option(help: "Send this file's contents as the body.")
    var dataFile: String?

    @Flag(help: "Accept any certificate (no verification).")
    var insecure = false

    @Option(help: "A PEM file of CA certificates to trust instead of the system's.")
    var cacert: String?

    @Option(help: "Seconds the whole request may take.")
    var timeout: Double?

    @Flag(name: [.customShort("i"), .customLong("include")], help: "Print the status line and header fields first.")
    var include = false

    @Flag(help: "Exit 22 on a 4xx or 5xx response.")
    var fail = false

    @Flag(name: [.customShort("L"), .customLong("location")], help: "Follow redirects (up to 10).")
    var followRedirects = false

    @Flag(help: "Ask for gzip and decompress it.")
    var compressed = false

    @Argument(help: "The URL (http:// or https://).")
    var url: String

    func validate() throws {
        if data != nil && dataFile != nil { throw ValidationError("-d and --data-file cannot both be given") }
        if let timeout, timeout <= 0 { throw ValidationError("--timeout must be positive") }
        for header in headers where !header.contains(":") {
            throw ValidationError("-H '\(header)': expected 'Name: value'")
        }
    }

    func run() throws {
        do {
            let response = try perform()
            if include {
                var head = "HTTP/1.1 \(response.status.code) \(response.status.reasonPhrase)\r\n"
                for field in response.headerFields { head += "\(field.name): \(field.value)\r\n" }
                write(Array((head + "\r\n").utf8))
            }
            write(response.body)
            if fail && response.status.code >= 400 {
                complain("the server answered \(response.status.code) \(response.status.reasonPhrase)")
                throw ExitCode(22)
            }
        } catch let exit as ExitCode {
            throw exit
        } catch {
            complain("\(error)")
            throw ExitCode(Self.exitCode(for: error))
        }
    }

    private func perform() throws -> HTTPClientResponse {
        var body = HTTPClientRequestBody.none
        if let data { body = .string(data) }
        if let dataFile { body = .bytes(try readFile(dataFile)) }
        let methodName = method ?? (data != nil || dataFile != nil ? "POST" : "GET")
        guard let method = HTTPRequest.Method(methodName.uppercased()) else {
            throw ValidationError("-X \(methodName) is not a method")
        }
        var fields = HTTPFields()
        for header in headers {
            let colon = header.firstIndex(of: ":")!
            let name = String(header[..<colon])
            let value = header[header.index(after: colon)...].drop { $0 == " " || $0 == "\t" }
            guard let fieldName = HTTPField.Name(name) else { throw ValidationError("-H '\(header)': invalid field name") }
            fields.append(HTTPField(name: fieldName, value: String(value)))
        }
        var tls = insecure ? TLSConfiguration.insecureClient() : .client(trustRoots: cacert.map { .file($0) } ?? .system)
        tls.applicationProtocols = ["http/1.1"]
        let configuration = HTTPClient.Configuration(
            deadline: timeout.map { .milliseconds(Int($0 * 1000)) }, redirectLimit: followRedirects ? 10 : 0,
            decompress: compressed, userAgent: "sprout-request/\(Sprout.version)", tls: tls)
        let client = HTTPClient(configuration: configuration)
        defer { client.close() }
        return try client.send(method, url, headers: fields, body: body)
    }

    static func exitCode(for error: any Error) -> Int32 {
        switch error {
        case let error as HTTPClientError:
            switch error.kind {
            case .connectTimedOut, .readTimedOut, .deadlineExceeded: return 28
            case .invalidURL: return 3
            default: return 1
            }
        case let error as TLSError:
            return error.kind == .certificateRefused ? 60 : 35
        case is ResolverError:
            return 6
        case let error as ConnectError:
            return error.failures.allSatisfy({ ($0.error as? SystemError)?.errno == ETIMEDOUT }) ? 28 : 7
        case is SystemError:
            return 7
        default:
            return 1
        }
    }

    private func write(_ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let count = bytes[offset...].withUnsafeBytes { Glibc.write(1, $0.baseAddress, $0.count) }
            if count <= 0 { return }
            offset += count
        }
    }

    private func complain(_ message: String) {
        let line = "sprout request: \(message)\n"
        _ = line.withCString { Glibc.write(2, $0, strlen($0)) }
    }

    private func readFile(_ path: String) throws -> [UInt8] {
        guard let file = fopen(path, "rb") else {
            throw ValidationError("--data-file \(path): \(String(cString: strerror(errno)))")
        }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = fread(&chunk, 1, chunk.count, file)
            if count == 0 { break }
            bytes += chunk[..<count]
        }
        return bytes
    }
}
