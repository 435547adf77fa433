import ArgumentParser
import Glibc
import Logging
import Sprout
import SproutHTTP
import SproutTLS

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The demo HTTP/1.1 server (GET /, POST /echo, GET /stream, GET /sleep, GET /spin, GET /headers).",
        discussion: """
            SIGTERM or SIGINT stops gracefully: in-flight requests finish, idle connections close, exit 0. \
            SIGUSR1 prints every greenlet (state, what it waits on, age, backtrace) to stderr. \
            A request that computes without yielding for longer than --block-threshold (GET /spin?ms=500 does) \
            is reported on stderr with its backtrace.
            """)

    @Option(help: "Address to bind.")
    var host = "127.0.0.1"

    @Option(help: "Port to listen on (0 picks a free one).")
    var port = 8080

    @Option(help: "Most connections open at once; idle keep-alive ones are closed to admit new ones.")
    var maxConnections = 10_000

    @Option(help: "Seconds from a request's first byte to its complete head (408 after).")
    var headerTimeout: Double = 10

    @Option(help: "Seconds an idle keep-alive connection is kept.")
    var idleTimeout: Double = 10

    @Option(help: "Seconds a graceful stop waits for in-flight requests.")
    var drainTimeout: Double = 10

    @Flag(help: "Log one line per request.")
    var accessLog = false

    @Option(help: "Milliseconds a hub may go without turning before the monitor reports it (0: no monitor).")
    var blockThreshold = 100

    @Option(help: "PEM file of the certificate chain: serve HTTPS (with --tls-key).")
    var tlsCert: String?

    @Option(help: "PEM file of the private key of --tls-cert.")
    var tlsKey: String?

    @Option(help: "Seconds a client has to finish its TLS handshake.")
    var tlsHandshakeTimeout: Double = 10

    func validate() throws {
        guard (tlsCert == nil) == (tlsKey == nil) else { throw ValidationError("--tls-cert and --tls-key go together") }
        guard tlsHandshakeTimeout > 0 else { throw ValidationError("--tls-handshake-timeout must be positive") }
        guard (0...65535).contains(port) else { throw ValidationError("--port must be in 0...65535") }
        guard maxConnections >= 1 else { throw ValidationError("--max-connections must be at least 1") }
        guard blockThreshold >= 0 else { throw ValidationError("--block-threshold must be 0 or more") }
        guard headerTimeout > 0, idleTimeout > 0, drainTimeout >= 0 else {
            throw ValidationError("timeouts must be positive")
        }
    }

    func run() throws {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .info
            return handler
        }
        var configuration = HTTPServer.Configuration(
            host: host, port: port, maxConnections: maxConnections,
            headerTimeout: .milliseconds(Int(headerTimeout * 1000)), idleTimeout: .milliseconds(Int(idleTimeout * 1000)),
            accessLog: accessLog)
        if let tlsCert, let tlsKey {
            configuration.tls = .server(certificateChainFile: tlsCert, privateKeyFile: tlsKey,
                                        applicationProtocols: ["http/1.1"],
                                        handshakeTimeout: .milliseconds(Int(tlsHandshakeTimeout * 1000)))
        }
        let server = HTTPServer(configuration: configuration, responder: DemoApp.router())
        if blockThreshold > 0 {
            try BlockedHubMonitor.start(threshold: .milliseconds(blockThreshold))
        }
        do {
            try server.start()
        } catch let error as TLSError {
            throw ValidationError("\(error)")
        }
        print("sprout serve: listening on \(tlsCert == nil ? "http" : "https")://\(host):\(server.port)")
        fflush(nil)
        let drain = Duration.milliseconds(Int(drainTimeout * 1000))
        for signal in [SIGINT, SIGTERM] {
            try onSignal(signal) { server.stop(timeout: drain) }
        }
        try onSignal(SIGUSR1) {
            Hub.runInfo().writeToStandardError()
        }
        try server.serveForever()
    }
}

