import ArgumentParser
import Glibc
import Sprout
import SproutMemcached

/// `sprout-bench memcached`: GET and SET ops/s from Sprout's MemcachedClient (50 greenlets)
/// beside memcslap (libmemcached's C load generator, 50 threads) and gevent with pymemcache,
/// against one memcached on CPU 0, every client on CPU 1.
struct MemcachedBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "memcached",
        abstract: "Sprout's memcached client beside memcslap and gevent + pymemcache, against one memcached.")

    @Flag(help: "Print one JSON object instead of a table.")
    var json = false

    @Option(help: "Seconds each Sprout and gevent run lasts (after a half-second warm-up).")
    var duration = 3

    @Option(help: "Concurrent clients (greenlets, memcslap threads).")
    var concurrency = 50

    @Option(help: "Measured runs per row (the median is reported).")
    var samples = 3

    @Flag(help: "Skip the gevent peer.")
    var noGevent = false

    func run() throws {
        #if DEBUG
        note("WARNING: a debug build; run `swift run -c release sprout-bench memcached` for real figures")
        #endif
        guard isExecutable("/usr/bin/memcached") else { throw BenchFailure("memcached not found (apt-get install memcached)") }
        let memcslap = isExecutable("/usr/bin/memcslap") ? "/usr/bin/memcslap" : nil
        if memcslap == nil { note("note: skipping memcslap: not found (apt-get install libmemcached-tools)") }
        installInterruptCleanup()
        signal(SIGPIPE, SIG_IGN)
        let root = HTTPPeers.packageRoot()
        let work = try makeTemporaryDirectory("sprout-bench-memcached")
        defer { removeTree(work) }
        var used = Set<Int>()
        let port = try pickFreePort(excluding: &used)
        var arguments = ["taskset", "-c", String(HTTPBench.serverCPU), "/usr/bin/memcached", "-l", "127.0.0.1", "-p", String(port),
                         "-U", "0", "-m", "256"]
        if getuid() == 0 { arguments += ["-u", "root"] }
        let server = try startListeningServer(name: "memcached", arguments: arguments, port: port,
                                              logPath: work + "/memcached.log")
        defer { server.stop() }
        let python = root + "/.build-bench-venv/bin/python"
        let gevent = !noGevent && isExecutable(python) ? python : nil

        var rows: [BenchmarkRow] = []
        for (name, operation) in [("memcached_get", "get"), ("memcached_set", "set")] {
            note("--- \(name): \(concurrency) concurrent")
            let sprout = try medianOfRuns(samples) { try measureSprout(port: port, operation: operation) }
            note("  sprout: \(BenchmarkRow.format(sprout)) ops/s")
            var peers: [(String, Double)] = []
            if let memcslap {
                let rate = try medianOfRuns(samples) { try measureMemcslap(memcslap, port: port, operation: operation, work: work) }
                note("  memcslap: \(BenchmarkRow.format(rate)) ops/s")
                peers.append(("memcslap", rate))
            }
            if let gevent {
                let rate = try medianOfRuns(samples) { try measureGevent(gevent, root: root, port: port, operation: operation, work: work) }
                note("  gevent_pymemcache: \(BenchmarkRow.format(rate)) ops/s")
                peers.append(("gevent_pymemcache", rate))
            }
            rows.append(BenchmarkRow(name: name, unit: "ops/s", sprout: sprout, peers: peers))
        }
        print(json ? BenchmarkRow.json(rows) : BenchmarkRow.table(rows))
    }

    private func measureSprout(port: Int, operation: String) throws -> Double {
        let concurrency = concurrency
        let seconds = Double(duration)
        return try GreenThread.run { () throws -> Double in
            pinCurrentThread(to: HTTPBench.clientCPU)
            let cache = MemcachedClient(servers: [.init(host: "127.0.0.1", port: port)],
                                        configuration: .init(maxConnectionsPerServer: concurrency))
            defer { cache.close() }
            let value = [UInt8](repeating: UInt8(ascii: "v"), count: 32)
            for index in 0..<concurrency { try cache.set("bench:\(index)", value) }
            func load(for duration: Double) throws -> Int {
                let end = monotonicSeconds() + duration
                let greenlets = (0..<concurrency).map { index in
                    spawn { () throws -> Int in
                        let key = "bench:\(index)"
                        var count = 0
                        while monotonicSeconds() < end {
                            if operation == "get" {
                                guard try cache.get(key)?.value.count == 32 else { throw BenchFailure("GET missed") }
                            } else {
                                try cache.set(key, value)
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
            let operations = try load(for: seconds)
            return Double(operations) / (monotonicSeconds() - started)
        }
    }

    /// memcslap's "Time to get N keys by T threads: S seconds." line.
    private func measureMemcslap(_ binary: String, port: Int, operation: String, work: String) throws -> Double {
        let log = work + "/memcslap.out"
        let status = try runToCompletion(
            name: "memcslap",
            ["taskset", "-c", String(HTTPBench.clientCPU), binary, "--servers=127.0.0.1:\(port)", "--concurrency=\(concurrency)",
             "--execute-number=\(4000)", "--test=\(operation)"],
            logPath: log, timeout: 300)
        let output = readWholeFile(log) ?? ""
        guard let status, exitedNormally(status), exitStatusCode(status) == 0 else { throw BenchFailure("memcslap failed: \(output)") }
        for line in output.split(separator: "\n") where line.hasPrefix("Time to \(operation) ") {
            let words = line.split(separator: " ")
            if let keys = words.dropFirst(3).first.flatMap({ Double($0) }),
               let seconds = words.reversed().dropFirst().first.flatMap({ Double($0) }), seconds > 0 {
                return keys / seconds
            }
        }
        throw BenchFailure("no 'Time to \(operation)' line in memcslap's output: \(output)")
    }

    private func measureGevent(_ python: String, root: String, port: Int, operation: String, work: String) throws -> Double {
        let log = work + "/gevent-memcached.out"
        let status = try runToCompletion(
            name: "gevent_memcached.py",
            ["taskset", "-c", String(HTTPBench.clientCPU), python, root + "/Benchmarks/peers/gevent_memcached.py", String(port),
             operation, String(concurrency), String(duration)],
            logPath: log, timeout: Double(duration + 120))
        let output = readWholeFile(log) ?? ""
        guard let status, exitedNormally(status), exitStatusCode(status) == 0,
              let line = output.split(separator: "\n").last(where: { $0.hasPrefix("ops ") }),
              let rate = line.split(separator: " ").last.flatMap({ Double($0) }) else {
            throw BenchFailure("gevent_memcached.py failed (pip install pymemcache into .build-bench-venv?): \(output)")
        }
        return rate
    }
}
