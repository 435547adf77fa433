import ArgumentParser
import Glibc

/// `sprout-bench loadgen`: `sprout load` beside wrk, both driving the same nginx.
struct LoadGenBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loadgen",
        abstract: "The load generator: sprout load beside wrk, driving GET / on nginx (one worker, CPU 0) from CPU 1.",
        discussion: """
            nginx answers GET / with "Hello, World!" on one worker pinned to CPU 0; wrk -t1 and sprout load -t1, \
            each pinned to CPU 1, take turns (--rounds of --duration seconds each, -c --connections) and the \
            median of each is reported. Rows: requests/s, and the generator's own CPU time per request (utime + \
            stime over its request count): when nginx is the bottleneck both reach its rate, and CPU per request \
            is what tells the generators apart.
            """)

    @Flag(help: "Print one JSON object (the shape of `sprout-bench micro --json`) instead of a table.")
    var json = false

    @Option(help: "Seconds of each run.")
    var duration = 5

    @Option(help: "Runs of each generator (alternating).")
    var rounds = 3

    @Option(help: "Connections.")
    var connections = 100

    func validate() throws {
        guard duration >= 1, rounds >= 1, connections >= 1 else { throw ValidationError("--duration, --rounds and --connections must be positive") }
    }

    func run() throws {
        let sprout = executableDirectory() + "/sprout"
        guard isExecutable(sprout) else { throw BenchFailure("\(sprout) not found: build with `swift build -c release`") }
        guard let wrk = findInPath("wrk") else { throw BenchFailure("wrk not found (apt-get install wrk)") }
        installInterruptCleanup()
        let work = try makeTemporaryDirectory("sprout-bench-loadgen")
        defer { removeTree(work) }
        var ports = Set<Int>()
        let port = try pickFreePort(excluding: &ports)
        let peers = HTTPPeers(root: HTTPPeers.packageRoot(), work: work, skipBuild: true)
        guard case .success(let nginx) = peers.nginx() else { throw BenchFailure("nginx not found (apt-get install nginx-light)") }
        let server = try startListeningServer(name: "nginx", arguments: ["taskset", "-c", "0"] + nginx.command(port, work, .throughput),
                                              port: port, logPath: work + "/nginx.log")
        defer { server.stop() }
        let url = "http://127.0.0.1:\(port)/"

        var wrkRuns: [(rps: Double, cpu: Double)] = []
        var sproutRuns: [(rps: Double, cpu: Double)] = []
        for round in 0..<rounds {
            let wrkLog = work + "/wrk-\(round).log"
            let wrkCPU = try timedChild(["taskset", "-c", "1", wrk, "-t1", "-c\(connections)", "-d\(duration)s", url], log: wrkLog)
            guard let line = (readWholeFile(wrkLog) ?? "").split(separator: "\n").first(where: { $0.hasPrefix("Requests/sec:") }),
                  let rps = Double(line.dropFirst("Requests/sec:".count).trimmingSpaces()), rps > 0 else {
                throw BenchFailure("wrk printed no rate: \(readWholeFile(wrkLog) ?? "")")
            }
            wrkRuns.append((rps, wrkCPU / (rps * Double(duration))))
            let loadLog = work + "/load-\(round).log"
            let loadCPU = try timedChild(["taskset", "-c", "1", sprout, "load", "-t", "1", "-c", String(connections),
                                          "-d", String(duration), "--json", url], log: loadLog)
            guard let report = (readWholeFile(loadLog) ?? "").split(separator: "\n").last(where: { $0.hasPrefix("{") })
                      .flatMap({ JSONValue.parse(String($0)) }),
                  let rps = report["rps"]?.double, rps > 0 else {
                throw BenchFailure("sprout load printed no report: \(readWholeFile(loadLog) ?? "")")
            }
            sproutRuns.append((rps, loadCPU / (rps * Double(duration))))
            note("  round \(round + 1): wrk \(Int(wrkRuns.last!.rps)) req/s, sprout load \(Int(rps)) req/s")
        }
        func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
        let rows = [
            BenchmarkRow(name: "load_nginx_rps", unit: "requests/s", sprout: median(sproutRuns.map(\.rps)),
                         peers: [("wrk", median(wrkRuns.map(\.rps)))]),
            BenchmarkRow(name: "load_cpu_per_request", unit: "ns", sprout: median(sproutRuns.map(\.cpu)) * 1e9,
                         peers: [("wrk", median(wrkRuns.map(\.cpu)) * 1e9)]),
        ]
        print(json ? BenchmarkRow.json(rows) : BenchmarkRow.table(rows))
    }

    /// Runs a command to completion and returns the CPU seconds it used (its children's rusage).
    private func timedChild(_ arguments: [String], log: String) throws -> Double {
        var before = rusage()
        getrusage(RUSAGE_CHILDREN.rawValue, &before)
        guard let status = try runToCompletion(name: arguments[3], arguments, logPath: log, timeout: Double(duration) + 60),
              exitedNormally(status), exitStatusCode(status) == 0 else {
            throw BenchFailure("\(arguments[3]) failed: \(readWholeFile(log) ?? "")")
        }
        var after = rusage()
        getrusage(RUSAGE_CHILDREN.rawValue, &after)
        func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }
        return seconds(after.ru_utime) + seconds(after.ru_stime) - seconds(before.ru_utime) - seconds(before.ru_stime)
    }
}
