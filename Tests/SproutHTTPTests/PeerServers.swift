import Glibc
import Sprout
import Testing

/// The package's root directory (for scripts and peers), from this file's path.
func packageRoot(_ file: String = #filePath) -> String {
    var path = file
    for _ in 0..<3 {
        while let last = path.last, last != "/" { path.removeLast() }
        path.removeLast()
    }
    return path
}

/// The test certificates (scripts/make-test-certs), made once per build directory.
enum TestCertificates {
    static var directory: String { packageRoot() + "/.build/test-certs" }

    /// Makes them if needed; returns the directory.
    static func ensure() throws -> String {
        let (status, _) = try runCommand(["bash", packageRoot() + "/scripts/make-test-certs", directory], timeout: .seconds(60))
        guard status == 0 else { throw ClientError(description: "scripts/make-test-certs failed (status \(status))") }
        return directory
    }

    static func path(_ name: String) -> String { directory + "/" + name }
}

/// A free loopback port (bound and released; nothing else here takes ports meanwhile).
func freePort() throws -> Int {
    let socket = try Socket.listen(host: "127.0.0.1", port: 0)
    defer { socket.close() }
    return socket.localAddress.port
}

/// A real nginx (Debian's) on loopback ports of its own, for the client tests:
///
/// - `http`: `/` says hello, `/conn?id=X` answers `"<connection> <request on it> X"`,
///   `/static/…` serves files (gzip on), `/redirect` → `/conn`, `/loop` → `/loop`.
/// - `https`: the same over TLS with `server.pem` (CA-signed, localhost and 127.0.0.1).
/// - `expired`, `wrongHost`, `selfSigned`: TLS with such certificates.
/// - `shortKeepAlive`: closes a kept-alive connection after 1 s idle (`keepalive_timeout 1s`).
final class NginxPeer {
    let http: Int
    let https: Int
    let expired: Int
    let wrongHost: Int
    let selfSigned: Int
    let shortKeepAlive: Int
    let prefix: String
    private let process: ChildProcess

    init() throws {
        let candidates: [String] = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        guard let binary = candidates.first(where: { path in access(path, X_OK) == 0 }) else {
            throw ClientError(description: "nginx is not installed (scripts/test installs nginx-light)")
        }
        let certificates = try TestCertificates.ensure()
        var template = Array("/tmp/sprout-nginx-XXXXXX".utf8CString)
        guard mkdtemp(&template) != nil else { throw ClientError(description: "mkdtemp failed") }
        prefix = String(cString: template)
        http = try freePort()
        https = try freePort()
        expired = try freePort()
        wrongHost = try freePort()
        selfSigned = try freePort()
        shortKeepAlive = try freePort()
        mkdir(prefix + "/static", 0o755)
        try writeFile(prefix + "/static/big.txt", String(repeating: "Sprout grows on green threads. ", count: 20_000))
        let locations = """
                    location = / { return 200 "hello from nginx\\n"; }
                    location /conn { return 200 "$connection $connection_requests $arg_id"; }
                    location /static/ { root \(prefix); }
                    location = /redirect { return 302 /conn?id=redirected; }
                    location = /loop { return 302 /loop; }
            """
        func tlsServer(_ port: Int, _ name: String) -> String {
            """
                server {
                    listen 127.0.0.1:\(port) ssl;
                    ssl_certificate \(certificates)/\(name).pem;
                    ssl_certificate_key \(certificates)/\(name)-key.pem;
            \(locations)
                }
            """
        }
        let configuration = """
            daemon off;
            master_process off;
            worker_processes 1;
            pid \(prefix)/nginx.pid;
            error_log \(prefix)/error.log;
            events { worker_connections 4096; }
            http {
                access_log off;
                client_body_temp_path \(prefix)/body;
                proxy_temp_path \(prefix)/proxy;
                fastcgi_temp_path \(prefix)/fastcgi;
                uwsgi_temp_path \(prefix)/uwsgi;
                scgi_temp_path \(prefix)/scgi;
                keepalive_requests 100000;
                keepalive_timeout 60s;
                gzip on;
                gzip_types text/plain;
                gzip_min_length 0;
                default_type text/plain;
                server {
                    listen 127.0.0.1:\(http);
            \(locations)
                }
            \(tlsServer(https, "server"))
            \(tlsServer(expired, "expired"))
            \(tlsServer(wrongHost, "wronghost"))
            \(tlsServer(selfSigned, "self-signed"))
                server {
                    listen 127.0.0.1:\(shortKeepAlive);
                    keepalive_timeout 1s;
            \(locations)
                }
            }

            """
        try writeFile(prefix + "/nginx.conf", configuration)
        process = try ChildProcess([binary, "-p", prefix + "/", "-c", prefix + "/nginx.conf"])
        for port in [http, https, expired, wrongHost, selfSigned, shortKeepAlive] {
            try waitForListener(port, process: process, log: prefix + "/error.log")
        }
    }

    deinit {
        // Throwaway peers: killed outright (ChildProcess starts children with SIGTERM blocked).
        kill(process.pid, SIGKILL)
        _ = try? process.waitForExit(timeout: .seconds(5))
        _ = try? runCommand(["rm", "-rf", prefix])
    }
}

/// Python's http.server with the routes of Peers/http_peer.py.
final class PythonPeer {
    let port: Int
    private let process: ChildProcess

    init() throws {
        process = try ChildProcess(["python3", "-u", packageRoot() + "/Tests/SproutHTTPTests/Peers/http_peer.py"], searchPath: true)
        let line = try process.waitForLine(containing: " ready")
        let words = line.split(separator: " ")
        guard words.count == 3, let port = Int(words[1]) else {
            throw ClientError(description: "unexpected line from http_peer.py: \(line)")
        }
        self.port = port
    }

    deinit {
        kill(process.pid, SIGKILL)
        _ = try? process.waitForExit(timeout: .seconds(5))
    }
}

/// Waits until something accepts connections on `port` (or the process exits).
func waitForListener(_ port: Int, process: ChildProcess, log: String, timeout: Duration = .seconds(10)) throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if let socket = try? Socket.connect(host: "127.0.0.1", port: port, timeout: .seconds(1)) {
            socket.close()
            return
        }
        var status: Int32 = 0
        if waitpid(process.pid, &status, WNOHANG) == process.pid {
            throw ClientError(description: "the peer exited before listening on \(port): \(readFileText(log))")
        }
        try sleep(for: .milliseconds(20))
    }
    throw ClientError(description: "nothing listens on \(port) after \(timeout): \(readFileText(log))")
}

func writeFile(_ path: String, _ text: String) throws {
    guard let file = fopen(path, "w") else { throw ClientError(description: "cannot write \(path)") }
    defer { fclose(file) }
    _ = text.withCString { fputs($0, file) }
}

func readFileText(_ path: String) -> String {
    guard let file = fopen(path, "r") else { return "(no \(path))" }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let count = fread(&chunk, 1, chunk.count, file)
        if count == 0 { break }
        bytes += chunk[..<count]
    }
    return String(decoding: bytes, as: UTF8.self)
}
