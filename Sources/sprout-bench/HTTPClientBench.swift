import ArgumentParser
import CEchoPeer
import Glibc
import Sprout
import SproutHTTP
import SproutTLS

/// `sprout-bench http-client`: keep-alive GETs against one nginx from Sprout's HTTPClient
/// (100 greenlets on one hub), from wrk (the C floor) and from async-http-client (the Swift
/// ecosystem's client), over HTTP and HTTPS. nginx runs on CPU 0, every client on CPU 1.
struct HTTPClientBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "http-client",
        abstract: "Sprout's HTTP client beside wrk and async-http-client, against one nginx (HTTP and HTTPS).")

    @Flag(help: "Print one JSON object instead of a table.")
    var json = false

    @Option(help: "Seconds each client runs (after a half-second warm-up).")
    var duration = 5

    @Option(help: "Concurrent requests (greenlets, wrk connections, async tasks).")
    var concurrency = 100

    @Option(help: "Measured runs per client and scheme (the median is reported).")
    var samples = 3

    @Flag(help: "Use the async-http-client peer as built, even if older than its sources; never build it.")
    var skipBuild = false

    func validate() throws {
        guard duration >= 1, concurrency >= 1, samples >= 1 else {
            throw ValidationError("--duration, --concurrency and --samples must be at least 1")
        }
    }

    func run() throws {
        #if DEBUG
        note("WARNING: a debug build; run `swift run -c release sprout-bench http-client` for real figures")
        #endif
        guard let nginxBinary = isExecutable("/usr/sbin/nginx") ? "/usr/sbin/nginx" : findInPath("nginx") else {
            throw BenchFailure("nginx not found (apt-get install nginx-light)")
        }
        let wrk = isExecutable("/usr/bin/wrk") ? "/usr/bin/wrk" : findInPath("wrk")
        installInterruptCleanup()
        signal(SIGPIPE, SIG_IGN)
        let root = HTTPPeers.packageRoot()
        let work = try makeTemporaryDirectory("sprout-bench-http-client")
        defer { removeTree(work) }

        let certificates = work + "/certs"
        let certStatus = try runToCompletion(name: "make-test-certs", ["bash", root + "/scripts/make-test-certs", certificates],
                                             logPath: work + "/certs.log", timeout: 120)
        guard let certStatus, exitedNormally(certStatus), exitStatusCode(certStatus) == 0 else {
            throw BenchFailure("scripts/make-test-certs failed: \(readWholeFile(work + "/certs.log") ?? "")")
        }
        var used = Set<Int>()
        let httpPort = try pickFreePort(excluding: &used)
        let httpsPort = try pickFreePort(excluding: &used)
        let nginx = try startNginx(nginxBinary, work: work, certificates: certificates, httpPort: httpPort, httpsPort: httpsPort)
        defer { nginx.stop() }

        let ahc = try prepareAsyncHTTPClient(root: root, work: work)
        var rows: [BenchmarkRow] = []
        for (row, url) in [("http_keepalive", "http://127.0.0.1:\(httpPort)/"),
                           ("https_keepalive", "https://localhost:\(httpsPort)/")] {
            note("--- \(row): \(url), \(concurrency) concurrent, \(duration) s x \(samples)")
            let sprout = try medianOfRuns(samples) { try measureSprout(url: url, caFile: certificates + "/ca.pem") }
            note("  sprout: \(BenchmarkRow.format(sprout)) requests/s")
            var peers: [(String, Double)] = []
            if let wrk {
                let rate = try medianOfRuns(samples) { try measureWrk(wrk, url: url, work: work) }
                note("  wrk: \(BenchmarkRow.format(rate)) requests/s")
                peers.append(("wrk", rate))
            } else {
                note("note: skipping wrk: not found (apt-get install wrk)")
            }
            switch ahc {
            case .success(let binary):
                let rate = try medianOfRuns(samples) { try measureAsyncHTTPClient(binary, url: url, work: work) }
                note("  async_http_client: \(BenchmarkRow.format(rate)) requests/s")
                peers.append(("async_http_client", rate))
            case .failure(let reason):
                note("note: skipping async_http_client: \(reason)")
            }
            rows.append(BenchmarkRow(name: row, unit: "requests/s", sprout: sprout, peers: peers))
        }
        print(json ? BenchmarkRow.json(rows) : BenchmarkRow.table(rows))
    }

    // MARK: nginx

    private func startNginx(_ binary: String, work: String, certificates: String, httpPort: Int, httpsPort: Int) throws -> ChildProcess {
        let prefix = work + "/nginx"
        guard mkdir(prefix, 0o755) == 0 else { throw BenchFailure("cannot create \(prefix)") }
        let temps = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"].map { "    \($0)_temp_path \(prefix)/\($0);" }
        let configuration = """
            daemon off;
            master_process off;
            worker_processes 1;
            pid \(prefix)/nginx.pid;
            error_log \(prefix)/error.log;
            events { worker_connections 4096; }
            http {
                access_log off;
            \(temps.joined(separator: "\n"))
                keepalive_requests 10000000;
                keepalive_timeout 120s;
                server {
                    listen 127.0.0.1:\(httpPort);
                    listen 127.0.0.1:\(httpsPort) ssl;
                    ssl_certificate \(certificates)/server.pem;
                    ssl_certificate_key \(certificates)/server-key.pem;
                    location / { return 200 "Hello, World!"; }
                }
            }

            """
        try writeWholeFile(prefix + "/nginx.conf", configuration)
        let child = try ChildProcess(name: "nginx", arguments: ["taskset", "-c", String(HTTPBench.serverCPU), binary,
                                                                 "-p", prefix + "/", "-c", prefix + "/nginx.conf"],
                                     logPath: work + "/nginx.log")
        let deadline = monotonicSeconds() + 10
        for port in [httpPort, httpsPort] {
            while true {
                if let fd = connectLoopback(port: port, timeout: 1) {
                    close(fd)
                    break
                }
                guard child.isRunning, monotonicSeconds() < deadline else {
                    throw BenchFailure("nginx did not start: \(readWholeFile(prefix + "/error.log") ?? child.log)")
                }
                sleepSeconds(0.02)
            }
        }
        return child
    }

    // MARK: The clients

    /// 100 greenlets on one hub (its thread pinned to the client CPU), each sending GETs on
    /// its pooled kept-alive connection for `duration` seconds.
    private func measureSprout(url: String, caFile: String) throws -> Double {
        let concurrency = concurrency
        let seconds = Double(duration)
        return try GreenThread.run { () throws -> Double in
            pinCurrentThread(to: HTTPBench.clientCPU)
            let client = HTTPClient(configuration: .init(maxConnectionsPerHost: concurrency,
                                                         tls: .client(trustRoots: .file(caFile))))
            defer { client.close() }
            func load(for duration: Double) throws -> Int {
                let end = monotonicSeconds() + duration
                let greenlets = (0..<concurrency).map { _ in
                    spawn { () throws -> Int in
                        var count = 0
                        while monotonicSeconds() < end {
                            let response = try client.get(url)
                            guard response.status.code == 200, response.body.count == 13 else {
                                throw BenchFailure("unexpected response \(response.status.code) \(response.text)")
                            }
                            count += 1
                        }
                        return count
                    }
                }
                return try greenlets.reduce(0) { $0 + (try $1.get()) }
            }
            _ = try load(for: 0.5)
            let started = monotonicSeconds()
            let requests = try load(for: seconds)
            return Double(requests) / (monotonicSeconds() - started)
        }
    }

    private func measureWrk(_ wrk: String, url: String, work: String) throws -> Double {
        let log = work + "/wrk.out"
        let status = try runToCompletion(
            name: "wrk", ["taskset", "-c", String(HTTPBench.clientCPU), wrk, "-t1", "-c\(concurrency)", "-d\(duration)s",
                          "--latency", url],
            logPath: log, timeout: Double(duration + 60))
        guard let status, exitedNormally(status), exitStatusCode(status) == 0 else {
            throw BenchFailure("wrk failed: \(readWholeFile(log) ?? "")")
        }
        let figures = try WrkOutput.parse(readWholeFile(log) ?? "")
        guard figures.errors == 0 else { throw BenchFailure("wrk saw \(figures.errors) errors") }
        return figures.requestsPerSecond
    }

    private func measureAsyncHTTPClient(_ binary: String, url: String, work: String) throws -> Double {
        let log = work + "/ahc.out"
        var arguments = ["taskset", "-c", String(HTTPBench.clientCPU), binary, url, String(concurrency), String(duration)]
        if url.hasPrefix("https") { arguments.append("--insecure") }
        let status = try runToCompletion(name: "ahc-client", arguments, logPath: log, timeout: Double(duration + 120))
        let output = readWholeFile(log) ?? ""
        guard let status, exitedNormally(status), exitStatusCode(status) == 0,
              let line = output.split(separator: "\n").last(where: { $0.hasPrefix("requests ") }),
              let rate = line.split(separator: " ").last.flatMap({ Double($0) }) else {
            throw BenchFailure("ahc-client failed: \(output)")
        }
        return rate
    }

    /// Builds Benchmarks/ahc-client into .build-ahc/ unless the binary is newer than its sources.
    private func prepareAsyncHTTPClient(root: String, work: String) throws -> Result<String, BenchFailure> {
        let package = root + "/Benchmarks/ahc-client"
        let scratch = root + "/.build-ahc"
        let binary = scratch + "/release/ahc-client"
        let sources = [package + "/Package.swift"] + filesUnder(package + "/Sources")
        let newest = sources.compactMap(modificationTime).max() ?? 0
        if (modificationTime(binary) ?? -1) > newest { return .success(binary) }
        if skipBuild {
            return isExecutable(binary) ? .success(binary) : .failure(BenchFailure("\(binary) not built and --skip-build given"))
        }
        note("building ahc-client: swift build -c release --package-path \(package) --scratch-path \(scratch) (minutes the first time)")
        let log = work + "/ahc-build.log"
        let status = try runToCompletion(name: "swift build (ahc-client)",
                                         ["swift", "build", "-c", "release", "--package-path", package, "--scratch-path", scratch],
                                         logPath: log, timeout: 3600)
        guard let status, exitedNormally(status), exitStatusCode(status) == 0, isExecutable(binary) else {
            let tail = (readWholeFile(log) ?? "").split(separator: "\n").suffix(15).joined(separator: "\n    ")
            return .failure(BenchFailure("the ahc-client build failed; its last lines:\n    \(tail)"))
        }
        return .success(binary)
    }
}

/// Pins the calling thread to one CPU (the others of its process stay where they are).
func pinCurrentThread(to cpu: Int) {
    if bench_pin_thread(Int32(cpu)) != 0 { note("note: could not pin the client thread to CPU \(cpu)") }
}
