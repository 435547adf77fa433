import ArgumentParser
import Glibc
import Sprout
import SproutRedis

/// `sprout-bench redis`: GET and SET ops/s from Sprout's RedisClient (50 greenlets, and
/// pipelines of 16) beside redis-benchmark (the C floor) and gevent with redis-py (the seed's
/// stack), against one redis-server on CPU 0, every client on CPU 1.
struct RedisBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "redis",
        abstract: "Sprout's Redis client beside redis-benchmark and gevent + redis-py, against one redis-server.")

    @Flag(help: "Print one JSON object instead of a table.")
    var json = false

    @Option(help: "Seconds each Sprout and gevent run lasts (after a half-second warm-up).")
    var duration = 3

    @Option(help: "Concurrent clients (greenlets, redis-benchmark connections).")
    var concurrency = 50

    @Option(help: "Measured runs per row (the median is reported).")
    var samples = 3

    @Flag(help: "Skip the gevent peer (it needs .build-bench-venv with gevent and redis).")
    var noGevent = false

    func run() throws {
        #if DEBUG
        note("WARNING: a debug build; run `swift run -c release sprout-bench redis` for real figures")
        #endif
        guard isExecutable("/usr/bin/redis-server") else { throw BenchFailure("redis-server not found (apt-get install redis-server)") }
        let benchmark = isExecutable("/usr/bin/redis-benchmark") ? "/usr/bin/redis-benchmark" : nil
        installInterruptCleanup()
        signal(SIGPIPE, SIG_IGN)
        let root = HTTPPeers.packageRoot()
        let work = try makeTemporaryDirectory("sprout-bench-redis")
        defer { removeTree(work) }
        var used = Set<Int>()
        let port = try pickFreePort(excluding: &used)
        let server = try startListeningServer(name: "redis-server", arguments: [
            "taskset", "-c", String(HTTPBench.serverCPU), "/usr/bin/redis-server", "--port", String(port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", work], port: port, logPath: work + "/redis.log")
        defer { server.stop() }
        let python = root + "/.build-bench-venv/bin/python"
        let gevent = !noGevent && isExecutable(python) ? python : nil
        if gevent == nil && !noGevent { note("note: skipping gevent: \(python) not found (sprout-bench http sets it up; then pip install redis)") }

        var rows: [BenchmarkRow] = []
        for (name, operation, depth) in [("redis_get", "get", 1), ("redis_set", "set", 1), ("redis_get_p16", "get", 16)] {
            note("--- \(name): \(concurrency) concurrent, pipeline \(depth)")
            let sprout = try medianOfRuns(samples) { try measureSprout(port: port, operation: operation, depth: depth) }
            note("  sprout: \(BenchmarkRow.format(sprout)) ops/s")
            var peers: [(String, Double)] = []
            if let benchmark {
                let rate = try medianOfRuns(samples) { try measureRedisBenchmark(benchmark, port: port, operation: operation, depth: depth, work: work) }
                note("  redis_benchmark: \(BenchmarkRow.format(rate)) ops/s")
                peers.append(("redis_benchmark", rate))
            }
            if let gevent {
                let rate = try medianOfRuns(samples) { try measureGevent(gevent, root: root, port: port, operation: operation, depth: depth, work: work) }
                note("  gevent_redis_py: \(BenchmarkRow.format(rate)) ops/s")
                peers.append(("gevent_redis_py", rate))
            }
            rows.append(BenchmarkRow(name: name, unit: "ops/s", sprout: sprout, peers: peers))
        }
        print(json ? BenchmarkRow.json(rows) : BenchmarkRow.table(rows))
    }

    /// `concurrency` greenlets on one hub (pinned to the client CPU) sharing a pool of as many
    /// connections, on redis-benchmark's key and 3-byte value.
    private func measureSprout(port: Int, operation: String, depth: Int) throws -> Double {
        let concurrency = concurrency
        let seconds = Double(duration)
        return try GreenThread.run { () throws -> Double in
            pinCurrentThread(to: HTTPBench.clientCPU)
            let redis = RedisClient(configuration: .init(port: port, maxConnections: concurrency))
            defer { redis.close() }
            let key = "key:000000000000"
            let value = "xxx"
            try redis.set(key, value)
            let batch = (0..<depth).map { _ in operation == "get" ? RedisCommand("GET").with(key) : RedisCommand("SET").with(key).with(value) }
            func load(for duration: Double) throws -> Int {
                let end = monotonicSeconds() + duration
                let greenlets = (0..<concurrency).map { _ in
                    spawn { () throws -> Int in
                        var count = 0
                        while monotonicSeconds() < end {
                            if depth > 1 {
                                let replies = try redis.pipeline(batch)
                                guard replies.count == depth, replies.allSatisfy({ $0.bytes != nil }) else {
                                    throw BenchFailure("unexpected replies \(replies)")
                                }
                                count += depth
                            } else if operation == "get" {
                                guard try redis.get(key)?.count == 3 else { throw BenchFailure("GET returned the wrong value") }
                                count += 1
                            } else {
                                try redis.set(key, value)
                                count += 1
                            }
                        }
                        return count
                    }
                }
                return try greenlets.reduce(0) { $0 + (try $1.get()) }
            }
            _ = try load(for: 0.5)
            let started = monotonicSeconds()
            let operations = try load(for: seconds)
            return Double(operations) / (monotonicSeconds() - started)
        }
    }

    private func measureRedisBenchmark(_ binary: String, port: Int, operation: String, depth: Int, work: String) throws -> Double {
        let log = work + "/redis-benchmark.out"
        let requests = depth > 1 ? 3_000_000 : 400_000
        let status = try runToCompletion(
            name: "redis-benchmark",
            ["taskset", "-c", String(HTTPBench.clientCPU), binary, "-h", "127.0.0.1", "-p", String(port), "-c", String(concurrency),
             "-n", String(requests), "-P", String(depth), "-t", operation, "--csv"],
            logPath: log, timeout: 300)
        let output = readWholeFile(log) ?? ""
        guard let status, exitedNormally(status), exitStatusCode(status) == 0 else {
            throw BenchFailure("redis-benchmark failed: \(output)")
        }
        // "test","rps",...  then  "GET","131233.59",...
        for line in output.split(separator: "\n") where line.hasPrefix("\"\(operation.uppercased())\"") {
            let fields = line.split(separator: ",").map { $0.trimmingCharacters(in: "\"") }
            if fields.count >= 2, let rate = Double(fields[1]) { return rate }
        }
        throw BenchFailure("no \(operation.uppercased()) line in redis-benchmark's output: \(output)")
    }

    private func measureGevent(_ python: String, root: String, port: Int, operation: String, depth: Int, work: String) throws -> Double {
        let log = work + "/gevent-redis.out"
        let status = try runToCompletion(
            name: "gevent_redis.py",
            ["taskset", "-c", String(HTTPBench.clientCPU), python, root + "/Benchmarks/peers/gevent_redis.py", String(port), operation,
             String(concurrency), String(duration), String(depth)],
            logPath: log, timeout: Double(duration + 120))
        let output = readWholeFile(log) ?? ""
        guard let status, exitedNormally(status), exitStatusCode(status) == 0,
              let line = output.split(separator: "\n").last(where: { $0.hasPrefix("ops ") }),
              let rate = line.split(separator: " ").last.flatMap({ Double($0) }) else {
            throw BenchFailure("gevent_redis.py failed (pip install redis into .build-bench-venv?): \(output)")
        }
        return rate
    }
}

extension Substring {
    func trimmingCharacters(in quote: Character) -> String {
        var view = self
        while view.first == quote { view.removeFirst() }
        while view.last == quote { view.removeLast() }
        return String(view)
    }
}
