import Glibc
import Logging
import PostgresBridgeApp
import PostgresNIO
import ServiceLifecycle
import Sprout
import SproutHTTP
import SproutLifecycle
import Testing

/// The example against a real PostgreSQL, started for the suite by the repository's
/// scripts/scratch-postgres (as the `postgres` user when root).
@Suite(.serialized, .timeLimit(.minutes(3)))
struct PostgresBridgeTests {
    @Test func twoHundredConcurrentRequestsQueryPostgresThroughTheBridge() async throws {
        let database = try ScratchPostgres()
        defer { database.stop() }
        let logger = Logger(label: "postgres-bridge-test")
        let client = PostgresClient(configuration: database.clientConfiguration, backgroundLogger: logger)
        let http = HTTPServerService(configuration: .init(port: 0)) { UsersApp.router(client: client) }
        let group = UsersApp.serviceGroup(client: client, http: http, signals: [], logger: logger)
        let running = Task { try await group.run() }
        let port = try await http.listeningPort()
        try await UsersApp.seed(client, users: 500)
        let base = "http://127.0.0.1:\(port)"

        let (wrong, concurrentConnections, others) = try await GreenThread.run { () throws -> ([String], Int, [Int]) in
            let web = HTTPClient(configuration: .init(maxConnectionsPerHost: 200))
            defer { web.close() }
            let start = Event()
            let requests = (1...200).map { index in
                spawn { () throws -> String? in
                    try start.wait()
                    let id = index * 2
                    let response = try web.get("\(base)/users/\(id)")
                    let expected = "{\"id\":\(id),\"name\":\"user-\(id)\"}"
                    guard response.status == .ok, response.text == expected,
                          response.headerFields[.contentType] == "application/json" else {
                        return "\(id): \(response.status.code) \(response.text)"
                    }
                    return nil
                }
            }
            start.set()
            var wrong: [String] = []
            for request in requests {
                do { if let failure = try request.get() { wrong.append(failure) } } catch { wrong.append("\(error)") }
            }
            let open = web.statistics.values.first?.open ?? 0
            let others = try ["/users/count", "/users/9999", "/users/abc", "/broken"].map { try web.get(base + $0).status.code }
            return (wrong, open, others)
        }
        #expect(wrong.isEmpty, "\(wrong.count) of 200 answers were wrong: \(wrong.prefix(3))")
        #expect(concurrentConnections > 50, "the 200 requests were in flight together (\(concurrentConnections) connections)")
        #expect(others == [200, 404, 400, 500], "count, a missing user, a bad id, an SQL error: \(others)")

        await group.triggerGracefulShutdown()
        try await running.value
    }
}

/// A PostgreSQL of the test's own on a free loopback port, in a fresh directory.
struct ScratchPostgres {
    let port: Int
    let directory: String
    let user: String

    init() throws {
        let root = #filePath.split(separator: "/").dropLast(5).joined(separator: "/")
        let script = "/" + root + "/scripts/scratch-postgres"
        directory = "/tmp/postgres-bridge-test-\(getpid())"
        user = getuid() == 0 ? "postgres" : String(cString: getpwuid(getuid())!.pointee.pw_name)
        var started: Int?
        for _ in 0..<5 {
            let port = try Self.freePort()
            if system("'\(script)' start '\(directory)' \(port) >/dev/null") == 0 {
                started = port
                break
            }
        }
        guard let started else { throw ScratchPostgresError.didNotStart(script) }
        port = started
    }

    var clientConfiguration: PostgresClient.Configuration {
        .init(host: "127.0.0.1", port: port, username: user, password: nil, database: "postgres", tls: .disable)
    }

    func stop() {
        let root = #filePath.split(separator: "/").dropLast(5).joined(separator: "/")
        _ = system("'/\(root)/scripts/scratch-postgres' stop '\(directory)'; rm -rf '\(directory)' '\(directory).initdb.log'")
    }

    /// A port the kernel hands out for a moment (PostgreSQL binds it right after).
    private static func freePort() throws -> Int {
        try LoopbackPort.freePort()
    }
}

enum ScratchPostgresError: Error {
    case didNotStart(String)
}

/// Picks a free port with plain libc (no hub needed).
enum LoopbackPort {
    static func freePort() throws -> Int {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, length) == 0 && getsockname(descriptor, $0, &length) == 0
            }
        }
        guard ok else { throw ScratchPostgresError.didNotStart("no free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
