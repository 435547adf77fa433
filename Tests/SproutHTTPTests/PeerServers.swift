import Glibc
import Sprout
import SproutTestSupport

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
        let ports = try freePorts(6)
        http = ports[0]
        https = ports[1]
        expired = ports[2]
        wrongHost = ports[3]
        selfSigned = ports[4]
        shortKeepAlive = ports[5]
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

