import ArgumentParser
import Glibc

/// `sprout-bench seed`: the seed scenario's proof. The feed service of Examples/FeedService
/// served by pre-fork sync workers, by gevent and by Sprout, under the same `sprout load`.
struct SeedBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "seed",
        abstract: "The seed scenario: the feed service as sync workers (4, 16, 64), gevent (1) and Sprout (1, 2 processes).",
        discussion: """
            One backend (`feed-service backend`, --latency-ms a call) runs for the whole benchmark, pinned to \
            CPU 1; each model's service runs alone, pinned to CPU 0 (sprout-2's two workers on CPUs 0 and 1), \
            and `sprout load -c 200` drives GET /feed/<user> from CPU 1. A feed is 1 + --pins backend calls.

            Per model: a warm-up, then a steady run of --duration seconds, then the spike: a run of 3 × \
            --spike-phase seconds during whose middle third 10% of backend calls take 2 s (set through the \
            backend's PUT /control). Rows: requests/s, p50 and p99 latency, errors (the load tool's: connect, \
            timeout (10 s), reset, status >= 400), and the memory of all the service's processes, sampled near \
            the end of the run (steady) or of the spike: rss_mb sums VmRSS, pss_mb sums Pss (RSS counts the \
            pages a pre-fork master shares with its workers once per worker; Pss splits them). Spike rows \
            describe the requests started inside the spike.

            Writes an SVG chart of each model's per-second p50 and p99 through the spike run (--chart). Needs \
            taskset; sprout and feed-service next to sprout-bench (`swift build -c release`); gevent and urllib3 \
            are pip-installed into .build-bench-venv/ (gevent-1 is skipped with a note when that fails).
            """)

    @Flag(help: "Print one JSON object: {\"steady\":[…],\"spike\":[…]} with one entry per model.")
    var json = false

    @Option(help: "Seconds of each steady run.")
    var duration = 10

    @Option(help: "Seconds of each third of the spike run (before, during, after the spike).")
    var spikePhase = 10

    @Option(help: "Seconds of load before each model's measured runs.")
    var warmup = 3

    @Option(help: "Connections of the load.")
    var connections = 200

    @Option(help: "Milliseconds each backend call takes.")
    var latencyMs = 50

    @Option(help: "Pin records per feed (each one backend call besides the user's).")
    var pins = 3

    @Option(help: "Where to write the SVG chart of the spike.")
    var chart = "seed-spike.svg"

    @Option(help: "Only these models, comma-separated (sync-4, sync-16, sync-64, gevent-1, sprout-1, sprout-2).")
    var only: String?

    @Flag(help: "Install nothing: use the gevent virtualenv as it is (skip gevent-1 if it lacks gevent or urllib3).")
    var skipBuild = false

    func validate() throws {
        guard duration >= 2, spikePhase >= 2, warmup >= 0 else {
            throw ValidationError("--duration and --spike-phase must be at least 2, --warmup at least 0")
        }
        guard (1...20_000).contains(connections) else { throw ValidationError("--connections must be in 1...20000") }
        guard (0...64).contains(pins), (1...10_000).contains(latencyMs) else {
            throw ValidationError("--pins must be in 0...64 and --latency-ms in 1...10000")
        }
        if let only {
            for name in only.split(separator: ",") where !SeedModel.names.contains(String(name)) {
                throw ValidationError("--only: unknown model \(name)")
            }
        }
    }

    func run() throws {
        #if DEBUG
        note("WARNING: a debug build of sprout-bench; the servers it starts are whatever sits next to it")
        #endif
        let directory = executableDirectory()
        let feed = directory + "/feed-service"
        let sprout = directory + "/sprout"
        for binary in [feed, sprout] where !isExecutable(binary) {
            throw BenchFailure("\(binary) not found: build with `swift build -c release` (sprout-bench expects it next to itself)")
        }
        guard findInPath("taskset") != nil else { throw BenchFailure("taskset not found (util-linux)") }
        guard sysconf(Int32(_SC_NPROCESSORS_ONLN)) >= 2 else { throw BenchFailure("needs 2 CPUs (service on 0, backend and load on 1)") }
        _ = raiseDescriptorLimit(to: 30_000)
        installInterruptCleanup()
        signal(SIGPIPE, SIG_IGN)

        let work = try makeTemporaryDirectory("sprout-bench-seed")
        defer { removeTree(work) }
        var ports = Set<Int>()
        let backendPort = try pickFreePort(excluding: &ports)
        let backend = try startListeningServer(
            name: "feed-service backend",
            arguments: ["taskset", "-c", "1", feed, "backend", "--port", String(backendPort), "--latency-ms", String(latencyMs)],
            port: backendPort, logPath: work + "/backend.log")
        defer { backend.stop() }
        let backendURL = "http://127.0.0.1:\(backendPort)"

        let peers = HTTPPeers(root: HTTPPeers.packageRoot(), work: work, skipBuild: skipBuild)
        let wanted = only.map { Set($0.split(separator: ",").map(String.init)) }
        var models = SeedModel.all(feed: feed, backend: backendURL, pins: pins, peers: peers)
        if let wanted { models.removeAll { !wanted.contains($0.name) } }

        let runner = SeedRunner(sprout: sprout, work: work, connections: connections, backendPort: backendPort)
        var steady: [SeedResult] = []
        var spike: [SeedResult] = []
        var sproutFailed = false
        let calls = 1 + pins
        note("seed: backend \(latencyMs) ms a call, \(calls) calls a feed; \(connections) connections; "
             + "steady \(duration) s after \(warmup) s of warm-up; spike run \(3 * spikePhase) s")
        for model in models {
            let port = try pickFreePort(excluding: &ports)
            let arguments: [String]
            switch model.command(port) {
            case .failure(let reason):
                note("note: skipping \(model.name): \(reason)")
                if model.name.hasPrefix("sprout") { sproutFailed = true }
                continue
            case .success(let command): arguments = command
            }
            note("  \(model.name): \(arguments.joined(separator: " "))")
            do {
                let service = try startListeningServer(name: model.name, arguments: ["taskset", "-c", model.cpus] + arguments,
                                                       port: port, logPath: work + "/\(model.name).log")
                defer {
                    if let problem = service.stop(grace: 20) { note("note: \(problem)") }
                }
                let url = "http://127.0.0.1:\(port)/feed/42"
                if warmup > 0 { _ = try runner.load(url: url, seconds: warmup, label: model.name + "-warmup", service: service) }
                var result = try runner.load(url: url, seconds: duration, label: model.name + "-steady", service: service)
                result.name = model.name
                result.processes = model.processes
                steady.append(result)
                note("    steady: \(result.summary)")
                var spiked = try runner.load(url: url, seconds: 3 * spikePhase, label: model.name + "-spike", service: service,
                                             spike: (spikePhase, 2 * spikePhase))
                spiked.name = model.name
                spiked.processes = model.processes
                spike.append(spiked)
                note("    spike:  \(spiked.summary)")
            } catch {
                note("error: \(model.name): \(error)")
                if model.name.hasPrefix("sprout") { sproutFailed = true }
            }
        }

        if !spike.isEmpty {
            let svg = SeedChart(results: spike, spike: (spikePhase, 2 * spikePhase), seconds: 3 * spikePhase,
                                title: "Latency through a backend spike (10% of calls take 2 s in seconds \(spikePhase)-\(2 * spikePhase))",
                                subtitle: "GET /feed/<user>: \(calls) backend calls of \(latencyMs) ms; \(connections) connections; per-second p50 (solid) and p99 (dashed) of the requests started in each second")
                .svg()
            try writeWholeFile(chart, svg)
            note("wrote \(chart)")
        }
        print(json ? SeedResult.json(steady: steady, spike: spike) : SeedResult.table(steady: steady, spike: spike))
        if sproutFailed { throw ExitCode(1) }
    }
}

/// One way of serving the feed: how to start it on a port.
struct SeedModel {
    let name: String
    let processes: Int
    /// A taskset -c CPU list.
    let cpus: String
    let command: (_ port: Int) -> Result<[String], BenchFailure>

    static let names = ["sync-4", "sync-16", "sync-64", "gevent-1", "sprout-1", "sprout-2"]

    static func all(feed: String, backend: String, pins: Int, peers: HTTPPeers) -> [SeedModel] {
        func service(_ port: Int, _ extra: [String]) -> [String] {
            [feed, "serve", "--port", String(port), "--backend", backend, "--pins", String(pins)] + extra
        }
        let sync = [4, 16, 64].map { workers in
            SeedModel(name: "sync-\(workers)", processes: workers, cpus: "0") { port in
                .success(service(port, ["--model", "sync", "--workers", String(workers)]))
            }
        }
        let script = peers.root + "/Benchmarks/peers/gevent_feed.py"
        var python: Result<String, BenchFailure>?
        let gevent = SeedModel(name: "gevent-1", processes: 1, cpus: "0") { port in
            if python == nil {
                python = fileExists(script)
                    ? peers.geventPython(packages: ["urllib3"]).map(\.python)
                    : .failure(BenchFailure("\(script) not found"))
            }
            return python!.map { [$0, script, String(port), backend, String(pins)] }
        }
        return sync + [
            gevent,
            SeedModel(name: "sprout-1", processes: 1, cpus: "0") { .success(service($0, ["--workers", "0"])) },
            SeedModel(name: "sprout-2", processes: 2, cpus: "0,1") { .success(service($0, ["--workers", "2"])) },
        ]
    }
}

/// Runs `sprout load` against a service and reads its figures.
struct SeedRunner {
    let sprout: String
    let work: String
    let connections: Int
    let backendPort: Int

    /// A load of `seconds` on CPU 1; with `spike` (from, to seconds), 10% of backend calls take
    /// 2 s between those seconds of the run, and the result describes that window.
    func load(url: String, seconds: Int, label: String, service: ChildProcess, spike: (Int, Int)? = nil) throws -> SeedResult {
        var arguments = ["taskset", "-c", "1", sprout, "load", "-c", String(connections), "-d", String(seconds), "--json"]
        if let spike { arguments += ["--timeline", "--window", "\(spike.0):\(spike.1)"] }
        let log = work + "/load-\(label).log"
        let load = try ChildProcess(name: "sprout load", arguments: arguments + [url], logPath: log)
        let started = monotonicSeconds()
        func at(_ second: Double) { sleepSeconds(max(0, started + second - monotonicSeconds())) }
        var finished = false
        defer {
            // Whatever failed, the next model must find the backend fast and no load running.
            if !finished {
                load.stop()
                if spike != nil { try? setBackendSlow(0) }
            }
        }
        var usage = GroupUsage()
        if let spike {
            at(Double(spike.0))
            try setBackendSlow(0.1)
            at(Double(spike.1) - 1)
            usage = GroupUsage.of(group: service.pid)
            at(Double(spike.1))
            try setBackendSlow(0)
        } else {
            at(Double(seconds) - 1.5)
            usage = GroupUsage.of(group: service.pid)
        }
        guard load.wait(timeout: Double(seconds) + 60) else {
            throw BenchFailure("sprout load did not finish: \(load.log)")
        }
        finished = true
        guard let line = load.log.split(separator: "\n").last(where: { $0.hasPrefix("{") }),
              let report = JSONValue.parse(String(line)) else {
            throw BenchFailure("sprout load printed no report: \(load.log)")
        }
        guard service.isRunning else { throw BenchFailure("the service exited during the load: \(service.log)") }
        try waitUntilQuiet()
        return SeedResult(report: report, usage: usage, window: spike != nil)
    }

    /// Waits (up to two minutes) until the backend has seen no call for half a second: a sync
    /// service still works through the connections the last load left in its listen queue
    /// (their clients gone), and that work must not eat into the next run.
    private func waitUntilQuiet() throws {
        let deadline = monotonicSeconds() + 120
        var last = -1.0
        var quietPolls = 0
        while quietPolls < 2 && monotonicSeconds() < deadline {
            let calls = try backendControl("GET", "/control")["calls"]?.double ?? 0
            quietPolls = calls == last ? quietPolls + 1 : 0
            last = calls
            sleepSeconds(0.25)
        }
    }

    private func backendControl(_ method: String, _ target: String) throws -> JSONValue {
        guard let fd = connectLoopback(port: backendPort) else { throw BenchFailure("cannot reach the backend") }
        defer { close(fd) }
        let answer = try httpExchange(fd, method: method, target: target)
        guard answer.status == 200, let value = JSONValue.parse(answer.body) else {
            throw BenchFailure("the backend refused \(method) \(target): \(answer.status) \(answer.body)")
        }
        return value
    }

    private func setBackendSlow(_ fraction: Double) throws {
        _ = try backendControl("PUT", "/control?slow=\(fraction)")
    }
}
