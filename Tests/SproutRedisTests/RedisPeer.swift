import Glibc
import Sprout
import SproutTestSupport
import Testing

/// Redis tests open sockets and start servers: one after another.
@Suite(.serialized, .countsSockets)
enum RedisSuites {}

/// Runs `body` as the main greenlet of a fresh green thread.
func green(timeout: Duration = .seconds(60), _ body: @escaping @Sendable () throws -> Void) async throws {
    try await GreenThread.run {
        try withTimeout(timeout) { try body() }
    }
}

/// A real redis-server (Debian's) on a free loopback port, with a password, no persistence,
/// and optionally a TLS port with the test certificates. Killed when released.
final class RedisPeer {
    static let password = "sprout-test-password"
    let port: Int
    let tlsPort: Int?
    private var process: ChildProcess?
    private let directory: String

    init(tls: Bool = false) throws {
        guard access("/usr/bin/redis-server", X_OK) == 0 else {
            throw TestSupportError(description: "redis-server is not installed (scripts/test installs redis-server)")
        }
        var template = Array("/tmp/sprout-redis-XXXXXX".utf8CString)
        guard mkdtemp(&template) != nil else { throw TestSupportError(description: "mkdtemp failed") }
        directory = String(cString: template)
        let ports = try freePorts(2)
        port = ports[0]
        tlsPort = tls ? ports[1] : nil
        try start()
    }

    deinit {
        stop()
        _ = try? runCommand(["rm", "-rf", directory])
    }

    private func start() throws {
        var arguments = ["/usr/bin/redis-server", "--port", "\(port)", "--bind", "127.0.0.1", "--save", "",
                         "--appendonly", "no", "--requirepass", Self.password, "--dir", directory,
                         "--logfile", directory + "/redis.log", "--daemonize", "no"]
        if let tlsPort {
            let certificates = try TestCertificates.ensure()
            arguments += ["--tls-port", "\(tlsPort)", "--tls-cert-file", certificates + "/server.pem",
                          "--tls-key-file", certificates + "/server-key.pem", "--tls-ca-cert-file", certificates + "/ca.pem",
                          "--tls-auth-clients", "no"]
        }
        let process = try ChildProcess(arguments)
        self.process = process
        try waitForListener(port, process: process, log: directory + "/redis.log")
        if let tlsPort { try waitForListener(tlsPort, process: process, log: directory + "/redis.log") }
    }

    /// Kills the server at once (SIGKILL): clients see their connections die mid-command.
    func stop() {
        guard let process else { return }
        kill(process.pid, SIGKILL)
        _ = try? process.waitForExit(timeout: .seconds(5))
        self.process = nil
    }

    /// Starts it again on the same ports.
    func restart() throws {
        stop()
        try start()
    }
}
