import Glibc
import Sprout
import SproutTestSupport
import Testing

extension HTTPSuites {
    /// `sprout request` against a real nginx, as scripts use it.
    @Suite(.timeLimit(.minutes(3)))
    struct RequestCommandTests {
        @Test func printsBodiesHeadsAndCurlsExitCodes() async throws {
            try await green(timeout: .seconds(90)) { () throws in
                let nginx = try NginxPeer()
                let sprout = sproutExecutable()
                let ca = TestCertificates.path("ca.pem")
                let http = "http://127.0.0.1:\(nginx.http)"

                let plain = try runCommand([sprout, "request", http + "/"])
                #expect(plain.status == 0 && plain.output == "hello from nginx\n")

                let included = try runCommand([sprout, "request", "-i", http + "/"])
                #expect(included.output.hasPrefix("HTTP/1.1 200 OK\r\n"))
                #expect(included.output.contains("\r\n\r\nhello from nginx\n"))

                let tls = try runCommand([sprout, "request", "--cacert", ca, "https://localhost:\(nginx.https)/conn?id=cli"])
                #expect(tls.status == 0 && tls.output.hasSuffix(" 1 cli"))

                let refused = try runCommand([sprout, "request", "--cacert", ca, "https://localhost:\(nginx.expired)/"])
                #expect(refused.status == 60 && refused.output.isEmpty)
                let insecure = try runCommand([sprout, "request", "--insecure", "https://localhost:\(nginx.expired)/"])
                #expect(insecure.status == 0 && insecure.output == "hello from nginx\n")

                let missing = try runCommand([sprout, "request", "--fail", http + "/static/none"])
                #expect(missing.status == 22)
                let missingWithoutFail = try runCommand([sprout, "request", http + "/static/none"])
                #expect(missingWithoutFail.status == 0 && missingWithoutFail.output.contains("404"))

                #expect(try runCommand([sprout, "request", "http://127.0.0.1:1/"]).status == 7)
                #expect(try runCommand([sprout, "request", "-L", http + "/redirect"]).output.hasSuffix(" redirected"))

                let python = try PythonPeer()
                let posted = try runCommand([sprout, "request", "-X", "PUT", "-H", "X-Test: yes", "-d", "payload",
                                             "http://127.0.0.1:\(python.port)/echo"])
                // http_peer.py answers PUT with 501 (it has no do_PUT): the body went out regardless.
                #expect(posted.status == 0 && posted.output.contains("501"))
                let echoed = try runCommand([sprout, "request", "-d", "payload", "http://127.0.0.1:\(python.port)/echo"])
                #expect(echoed.output == "payload")
                let file = nginx.prefix + "/upload.bin"
                try writeFile(file, String(repeating: "file body ", count: 5000))
                let uploaded = try runCommand([sprout, "request", "--data-file", file, "http://127.0.0.1:\(python.port)/echo"])
                #expect(uploaded.output == String(repeating: "file body ", count: 5000))

                // A server that never answers: --timeout ends it with curl's 28.
                let silent = StreamServer(port: 0) { connection, _ in
                    _ = try connection.recv(maxLength: 4096)
                    try sleep(for: .seconds(20))
                }
                try silent.start()
                defer { silent.stop(timeout: .milliseconds(100)) }
                #expect(try runCommand([sprout, "request", "--timeout", "0.3", "http://127.0.0.1:\(silent.port)/"]).status == 28)
            }
        }
    }
}
