import ArgumentParser
import Glibc

/// `sprout-bench http`: `sprout serve` against nginx, Hummingbird and gevent's pywsgi, each
/// serving GET / → "Hello, World!", driven by wrk.
struct HTTPBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "http",
        abstract: "HTTP/1.1 hello-world: sprout serve beside nginx, Hummingbird and gevent, driven by wrk.",
        discussion: """
            Each server runs alone, pinned to CPU 0 (taskset -c 0), on a free loopback port; wrk runs \
            pinned to CPU 1: `wrk -t1 -c100 -dSs --latency http://127.0.0.1:P/`, then the same with -c1000.

            Rows per load: requests/s (wrk's Requests/sec), the 99th percentile latency, the server's CPU \
            time per request (utime + stime of its process group from /proc, over wrk's request count), \
            and wrk's errors (socket errors plus non-2xx responses).

            sprout_metrics is sprout serve --metrics-port 0: every request counted and timed into swift-prometheus \
            (rows rps_metrics_*, cpu_per_req_metrics_*, beside sprout without metrics).

            Then the same wrk runs for sprout with --workers 1 (on CPU 0), --workers 2 and --threads 2 (on CPUs \
            0 and 1), beside nginx with 1 and 2 worker processes (rows rps_w1_*, rps_w2_*, rps_t2_*, with their \
            cpu_per_req and errors): with 2 cores, wrk competes with the second worker, so CPU per request is \
            the figure that holds.

            For sprout and nginx, a second fresh server: this process opens 10,000 keep-alive connections, \
            one GET / each, waits 1 s and reads the server's VmRSS (idle_conn_rss: the growth per \
            connection), then closes them all, waits 2 s (rss_after_spike: what the spike left behind).

            Needs wrk and taskset; nginx, the Hummingbird peer (built into .build-hummingbird/) and gevent \
            (pip-installed into .build-bench-venv/) are skipped with a note when unavailable. Exits \
            non-zero when sprout could not be measured.
            """)

    @Flag(help: "Print one JSON object (the shape of `sprout-bench micro --json`) instead of a table.")
    var json = false

    @Option(help: "Seconds of each wrk run.")
    var duration = 10

    @Flag(help: "Build nothing: use the Hummingbird binary and gevent virtualenv as they are (skip what is missing).")
    var skipBuild = false

    @Option(help: "Idle keep-alive connections for idle_conn_rss.")
    var idleConnections = 10_000

    @Option(help: "Only these servers, comma-separated (sprout, nginx, hummingbird, gevent, sprout_w1, sprout_w2, sprout_t2, nginx_w2, sprout_metrics).")
    var only: String?

    func validate() throws {
        guard duration >= 1 else { throw ValidationError("--duration must be at least 1") }
        guard idleConnections >= 1 else { throw ValidationError("--idle-connections must be at least 1") }
        if let only {
            let known: Set = ["sprout", "nginx", "hummingbird", "gevent", "sprout_w1", "sprout_w2", "sprout_t2", "nginx_w2",
                              "sprout_metrics"]
            for name in only.split(separator: ",") where !known.contains(String(name)) {
                throw ValidationError("--only: unknown server \(name)")
            }
        }
    }

    static let loads = [100, 1000]
    static let serverCPU = 0
    static let clientCPU = 1

    func run() throws {
        #if DEBUG
        note("WARNING: a debug build of sprout-bench; the sprout server it starts is whatever sits next to it")
        #endif
        let limit = raiseDescriptorLimit(to: 30_000)
        guard limit >= rlim_t(idleConnections + 100) else {
            throw BenchFailure("RLIMIT_NOFILE is \(limit); \(idleConnections) idle connections need more (raise the hard limit)")
        }
        guard let wrk = isExecutable("/usr/bin/wrk") ? "/usr/bin/wrk" : findInPath("wrk") else {
            throw BenchFailure("wrk not found (apt-get install wrk)")
        }
        guard findInPath("taskset") != nil else { throw BenchFailure("taskset not found (util-linux)") }
        installInterruptCleanup()
        signal(SIGPIPE, SIG_IGN)

        let work = try makeTemporaryDirectory("sprout-bench-http")
        defer { removeTree(work) }
        for cpu in [Self.serverCPU, Self.clientCPU] {
            let status = try runToCompletion(name: "taskset", ["taskset", "-c", String(cpu), "true"],
                                             logPath: work + "/taskset.log", timeout: 10)
            guard let status, exitedNormally(status), exitStatusCode(status) == 0 else {
                throw BenchFailure("cannot pin to CPU \(cpu) (this machine has \(sysconf(Int32(_SC_NPROCESSORS_ONLN))) CPUs)")
            }
        }

        let peers = HTTPPeers(root: HTTPPeers.packageRoot(), work: work, skipBuild: skipBuild)
        let wanted = only.map { Set($0.split(separator: ",").map(String.init)) }
        let both = "\(Self.serverCPU),\(Self.clientCPU)"
        var candidates: [(String, () -> Result<HTTPServerUnderTest, BenchFailure>)] = [
            ("sprout", { peers.sprout() }), ("nginx", { peers.nginx() }), ("hummingbird", peers.hummingbird), ("gevent", peers.gevent),
            ("sprout_w1", { peers.sprout(name: "sprout_w1", processArguments: ["--workers", "1"]) }),
            ("sprout_w2", { peers.sprout(name: "sprout_w2", processArguments: ["--workers", "2"], cpus: both) }),
            ("sprout_t2", { peers.sprout(name: "sprout_t2", processArguments: ["--workers", "0", "--threads", "2"], cpus: both) }),
            ("nginx_w2", { peers.nginx(name: "nginx_w2", workers: 2, cpus: both) }),
            // The same single process recording swift-metrics into Prometheus (its endpoint on a port of its own).
            ("sprout_metrics", { peers.sprout(name: "sprout_metrics", processArguments: ["--workers", "0", "--metrics-port", "0"]) }),
        ]
        if let wanted { candidates.removeAll { !wanted.contains($0.0) } }

        var results: [String: HTTPServerResult] = [:]
        var sproutFailures: [String] = []
        var usedPorts = Set<Int>()
        for (name, prepare) in candidates {
            let server: HTTPServerUnderTest
            switch prepare() {
            case .success(let ready): server = ready
            case .failure(let reason):
                if name.hasPrefix("sprout") {
                    note("error: \(name): \(reason)")
                    sproutFailures.append("sprout could not be started")
                } else {
                    note("note: skipping \(name): \(reason)")
                }
                continue
            }
            var result = HTTPServerResult()
            let runner = HTTPRunner(server: server, work: work, wrk: wrk, duration: duration,
                                    idleConnections: idleConnections)
            do {
                result.loads = try runner.throughput(port: pickFreePort(excluding: &usedPorts))
            } catch {
                note("error: \(name): the wrk runs failed: \(error)")
                if name.hasPrefix("sprout") { sproutFailures.append("\(name) wrk runs: \(error)") }
            }
            if server.measuresMemory {
                do {
                    result.memory = try runner.memory(port: pickFreePort(excluding: &usedPorts))
                } catch {
                    note("error: \(name): the idle-connection measurement failed: \(error)")
                    if name == "sprout" { sproutFailures.append("idle connections: \(error)") }
                }
            }
            results[name] = result
        }

        let rows = Self.rows(results, peerOrder: ["nginx", "hummingbird", "gevent"])
        if json {
            print(BenchmarkRow.json(rows))
        } else {
            print("http: GET / -> \"Hello, World!\", wrk -t1 for \(duration) s per load; server on CPU \(Self.serverCPU), wrk on CPU \(Self.clientCPU)")
            print(BenchmarkRow.table(rows))
        }
        if !sproutFailures.isEmpty {
            note("error: sprout was not fully measured: \(sproutFailures.joined(separator: "; "))")
            throw ExitCode.failure
        }
    }

    /// The table rows: every figure sprout has, with whichever peers have it too.
    static func rows(_ results: [String: HTTPServerResult], peerOrder: [String]) -> [BenchmarkRow] {
        var rows: [BenchmarkRow] = []
        func row(_ name: String, _ unit: String, sprout server: String = "sprout", peers order: [String]? = nil,
                 _ value: (HTTPServerResult) -> Double?) {
            guard let sprout = results[server].flatMap(value) else { return }
            let peers = (order ?? peerOrder).compactMap { peer in results[peer].flatMap(value).map { (name: peer, value: $0) } }
            rows.append(BenchmarkRow(name: name, unit: unit, sprout: sprout, peers: peers))
        }
        for load in loads {
            row("rps_c\(load)", "req/s") { $0.loads[load]?.requestsPerSecond }
            row("p99_c\(load)_ms", "ms") { $0.loads[load]?.p99Milliseconds }
            row("cpu_per_req_c\(load)_us", "us/req") { $0.loads[load]?.cpuMicrosecondsPerRequest }
            row("errors_c\(load)", "count") { $0.loads[load].map { Double($0.errors) } }
        }
        // Every core: pre-fork workers and hubs per thread, beside nginx with as many workers.
        // On a 2-core machine wrk shares CPU 1 with the second worker; CPU per request holds anyway.
        for (tag, server, peers) in [("w1", "sprout_w1", ["nginx"]), ("w2", "sprout_w2", ["nginx_w2"]),
                                     ("t2", "sprout_t2", ["nginx_w2"])] {
            for load in loads {
                row("rps_\(tag)_c\(load)", "req/s", sprout: server, peers: peers) { $0.loads[load]?.requestsPerSecond }
                row("cpu_per_req_\(tag)_c\(load)_us", "us/req", sprout: server, peers: peers) { $0.loads[load]?.cpuMicrosecondsPerRequest }
                row("errors_\(tag)_c\(load)", "count", sprout: server, peers: peers) { $0.loads[load].map { Double($0.errors) } }
            }
        }
        // swift-metrics on (Prometheus backend, every request counted and timed) beside off.
        for load in loads {
            row("rps_metrics_c\(load)", "req/s", sprout: "sprout_metrics", peers: ["sprout"]) { $0.loads[load]?.requestsPerSecond }
            row("cpu_per_req_metrics_c\(load)_us", "us/req", sprout: "sprout_metrics", peers: ["sprout"]) {
                $0.loads[load]?.cpuMicrosecondsPerRequest
            }
        }
        row("idle_conn_rss", "bytes/conn") { $0.memory?.idleBytesPerConnection }
        row("rss_after_spike", "KiB") { $0.memory.map { $0.bytesAfterSpike / 1024 } }
        return rows
    }
}

struct HTTPServerResult {
    var loads: [Int: WrkFigures] = [:]
    var memory: IdleMemoryFigures?
}

struct WrkFigures {
    var requestsPerSecond: Double
    var p99Milliseconds: Double
    var requests: Int
    var errors: Int
    var cpuMicrosecondsPerRequest: Double = 0
}

struct IdleMemoryFigures {
    var idleBytesPerConnection: Double
    var bytesAfterSpike: Double
}

/// Starts one server at a time and measures it.
struct HTTPRunner {
    let server: HTTPServerUnderTest
    let work: String
    let wrk: String
    let duration: Int
    let idleConnections: Int

    /// Starts the server pinned to the server CPU and waits until GET / answers correctly.
    private func start(port: Int, purpose: HTTPRunPurpose) throws -> ChildProcess {
        let tag = purpose == .throughput ? "wrk" : "idle"
        note("--- \(server.name) on 127.0.0.1:\(port) (\(server.summary)) for the \(purpose == .throughput ? "wrk runs" : "idle connections")")
        let command = try server.command(port, work, purpose)
        let child = try ChildProcess(
            name: server.name, arguments: ["taskset", "-c", server.cpus] + command,
            logPath: "\(work)/\(server.name)-\(tag).log")
        do {
            try waitUntilAnswering(child, port: port)
        } catch {
            child.stop()
            throw error
        }
        return child
    }

    private func finish(_ child: ChildProcess) {
        if let problem = child.stop() { note("note: \(problem)") }
        let log = child.log.split(separator: "\n")
        let complaints = log.filter { $0.contains("error") || $0.contains("warn") || $0.contains("emerg") || $0.contains("alert") }
        for line in complaints.prefix(5) { note("    \(server.name) log: \(line)") }
    }

    private func waitUntilAnswering(_ child: ChildProcess, port: Int) throws {
        let deadline = monotonicSeconds() + 15
        var lastProblem = "no connection accepted"
        while true {
            guard child.isRunning else {
                throw BenchFailure("\(server.name) exited before answering (\(child.exitStatus.map(describeStatus) ?? "?")); its output:\n    "
                                   + child.log.split(separator: "\n").suffix(15).joined(separator: "\n    "))
            }
            if let fd = connectLoopback(port: port, timeout: 2) {
                defer { close(fd) }
                do {
                    let response = try httpGetRoot(fd)
                    guard response.status == 200, response.body == "Hello, World!" else {
                        throw BenchFailure("\(server.name) answered GET / with \(response.status) \(response.body.debugDescription)")
                    }
                    return
                } catch let failure as BenchFailure where failure.description.hasPrefix(server.name) {
                    throw failure
                } catch {
                    lastProblem = "\(error)"
                }
            }
            if monotonicSeconds() >= deadline {
                throw BenchFailure("\(server.name) did not answer GET / within 15 s (\(lastProblem))")
            }
            sleepSeconds(0.05)
        }
    }

    // MARK: wrk

    func throughput(port: Int) throws -> [Int: WrkFigures] {
        let child = try start(port: port, purpose: .throughput)
        defer { finish(child) }
        var figures: [Int: WrkFigures] = [:]
        for load in HTTPBench.loads {
            let before = GroupUsage.of(group: child.pid)
            let output = try runWrk(port: port, connections: load)
            let after = GroupUsage.of(group: child.pid)
            guard child.isRunning else {
                throw BenchFailure("\(server.name) exited during the -c\(load) run (\(child.exitStatus.map(describeStatus) ?? "?"))")
            }
            var parsed = try WrkOutput.parse(output)
            let cpu = Double(after.cpuTicks - before.cpuTicks) / GroupUsage.ticksPerSecond
            parsed.cpuMicrosecondsPerRequest = parsed.requests > 0 ? cpu / Double(parsed.requests) * 1e6 : 0
            note("  c\(load): \(BenchmarkRow.format(parsed.requestsPerSecond)) req/s, p99 \(BenchmarkRow.format(parsed.p99Milliseconds)) ms, "
                 + "\(BenchmarkRow.format(parsed.cpuMicrosecondsPerRequest)) us CPU/req (\(BenchmarkRow.format(cpu)) s over \(parsed.requests) requests), "
                 + "\(parsed.errors) errors")
            figures[load] = parsed
        }
        return figures
    }

    private func runWrk(port: Int, connections: Int) throws -> String {
        let log = "\(work)/\(server.name)-wrk-c\(connections).out"
        let status = try runToCompletion(
            name: "wrk",
            ["taskset", "-c", String(HTTPBench.clientCPU), wrk, "-t1", "-c\(connections)", "-d\(duration)s", "--latency",
             "http://127.0.0.1:\(port)/"],
            logPath: log, timeout: Double(duration + 60))
        let output = readWholeFile(log) ?? ""
        guard let status else { throw BenchFailure("wrk did not finish within \(duration + 60) s") }
        guard exitedNormally(status), exitStatusCode(status) == 0 else {
            throw BenchFailure("wrk failed (\(describeStatus(status))):\n    " + output.split(separator: "\n").joined(separator: "\n    "))
        }
        return output
    }

    // MARK: idle connections

    func memory(port: Int) throws -> IdleMemoryFigures {
        let child = try start(port: port, purpose: .memory)
        defer { finish(child) }
        sleepSeconds(1)
        let before = GroupUsage.of(group: child.pid).rssBytes
        var sockets: [Int32] = []
        sockets.reserveCapacity(idleConnections)
        defer { for fd in sockets { close(fd) } }
        let opening = monotonicSeconds()
        for index in 0..<idleConnections {
            guard let fd = connectLoopback(port: port, timeout: 10) else {
                throw BenchFailure("connection \(index + 1) of \(idleConnections) failed: \(String(cString: strerror(errno)))")
            }
            sockets.append(fd)
            let response: (status: Int, body: String)
            do {
                response = try httpGetRoot(fd)
            } catch {
                throw BenchFailure("GET / on connection \(index + 1) of \(idleConnections): \(error)")
            }
            guard response.status == 200 else {
                throw BenchFailure("GET / on connection \(index + 1) answered \(response.status)")
            }
        }
        let opened = monotonicSeconds() - opening
        sleepSeconds(1)
        let usage = GroupUsage.of(group: child.pid)
        let held = usage.rssBytes
        // A connection the server has closed reads as EOF (readable): none should be.
        var polls = sockets.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        let closedByServer = polls.withUnsafeMutableBufferPointer { poll($0.baseAddress, nfds_t($0.count), 0) }
        guard child.isRunning else { throw BenchFailure("\(server.name) exited while holding the idle connections") }
        for fd in sockets { close(fd) }
        sockets.removeAll()
        sleepSeconds(2)
        let after = GroupUsage.of(group: child.pid).rssBytes
        let perConnection = Double(held - before) / Double(idleConnections)
        note("  \(idleConnections) connections opened and used in \(BenchmarkRow.format(opened)) s; VmRSS (\(usage.processes) process(es)) "
             + "before \(before / 1024) KiB, holding them \(held / 1024) KiB (\(BenchmarkRow.format(perConnection)) B/conn), "
             + "2 s after closing \(after / 1024) KiB; sprout-bench's own VmRSS \((GroupUsage.vmRSS(getpid()) ?? 0) / 1024) KiB")
        if closedByServer != 0 {
            note("note: \(server.name) had closed \(closedByServer) of the \(idleConnections) idle connections when VmRSS was read")
        }
        return IdleMemoryFigures(idleBytesPerConnection: perConnection, bytesAfterSpike: Double(after - before))
    }
}

/// The figures from wrk's text output (with --latency).
enum WrkOutput {
    static func parse(_ output: String) throws -> WrkFigures {
        var requestsPerSecond: Double?
        var p99: Double?
        var requests: Int?
        var errors = 0
        for raw in output.split(separator: "\n") {
            let line = raw.trimmingSpaces()
            let words = line.split(separator: " ", omittingEmptySubsequences: true)
            if line.hasPrefix("Requests/sec:"), words.count >= 2 {
                requestsPerSecond = Double(words[1])
            } else if line.hasPrefix("99%"), words.count >= 2 {
                p99 = milliseconds(String(words[1]))
            } else if words.count >= 3, words[1] == "requests", words[2] == "in" {
                requests = Int(words[0])
            } else if line.hasPrefix("Socket errors:") {
                // "Socket errors: connect 0, read 12, write 0, timeout 3"
                let numbers = line.dropFirst("Socket errors:".count).split(separator: ",")
                    .compactMap { $0.split(separator: " ").last.flatMap { Int($0) } }
                errors += numbers.reduce(0, +)
            } else if line.hasPrefix("Non-2xx or 3xx responses:"), let count = words.last.flatMap({ Int($0) }) {
                errors += count
            }
        }
        guard let requestsPerSecond, let p99, let requests else {
            throw BenchFailure("could not read Requests/sec, the 99% latency and the request count from wrk's output:\n    "
                               + output.split(separator: "\n").joined(separator: "\n    "))
        }
        return WrkFigures(requestsPerSecond: requestsPerSecond, p99Milliseconds: p99, requests: requests, errors: errors)
    }

    /// "812.00us", "1.23ms", "2.00s", "1.50m" → milliseconds.
    static func milliseconds(_ text: String) -> Double? {
        let units: [(String, Double)] = [("us", 1e-3), ("ms", 1), ("s", 1e3), ("m", 60e3), ("h", 3600e3)]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            guard let value = Double(text.dropLast(suffix.count)) else { return nil }
            return value * scale
        }
        return Double(text)   // no unit: wrk never prints that, but a bare number is taken as ms
    }
}
