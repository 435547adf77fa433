import ArgumentParser
import Follow
import Glibc
import Sprout
import SproutThrift

/// `sprout-bench thrift`: calls/s of the follow service's `isFollowing` over framed binary
/// with 100 connections, the server on CPU 0 and the load (Sprout's pooled clients, 100
/// greenlets) on CPU 1: `sprout follow` beside C++'s TNonblockingServer (one IO thread, the
/// C++ floor) and the Python server under gevent (the seed's setup), all under the same load.
struct ThriftBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "thrift",
        abstract: "Thrift isFollowing calls/s: sprout follow beside C++'s TNonblockingServer and gevent's Python server.",
        discussion: """
            Needs Debian's thrift-compiler, libthrift-dev, libevent-dev and libboost-dev (the C++ peer is \
            built into .build/peers by Benchmarks/peers/build-thrift-cpp-peer) and python3-thrift with \
            python3-gevent for /usr/bin/python3. A peer that cannot be built or started is skipped with a note.
            """)

    @Flag(help: "Print one JSON object (the shape of `sprout-bench micro --json`) instead of a table.")
    var json = false

    @Option(help: "Seconds each run lasts (after a half-second warm-up).")
    var duration = 3

    @Option(help: "Connections, one greenlet calling on each.")
    var connections = 100

    @Option(help: "Measured runs per server (the median is reported).")
    var samples = 3

    func run() throws {
        #if DEBUG
        note("WARNING: a debug build; run `swift run -c release sprout-bench thrift` for real figures")
        #endif
        installInterruptCleanup()
        signal(SIGPIPE, SIG_IGN)
        let root = HTTPPeers.packageRoot()
        let work = try makeTemporaryDirectory("sprout-bench-thrift")
        defer { removeTree(work) }
        var used = Set<Int>()
        let pin = ["taskset", "-c", String(HTTPBench.serverCPU)]

        let sproutBinary = executableDirectory() + "/sprout"
        guard isExecutable(sproutBinary) else { throw BenchFailure("\(sproutBinary) not found: swift build -c release") }
        var servers: [(name: String, command: (Int) -> [String])] = [
            ("sprout", { pin + [sproutBinary, "follow", "--port", String($0)] }),
        ]
        if let cpp = buildCppPeer(root: root) {
            servers.append(("cpp_nonblocking", { pin + [cpp, String($0)] }))
        }
        if let generated = generatePython(root: root, work: work) {
            servers.append(("gevent_python", {
                pin + ["/usr/bin/python3", root + "/Benchmarks/peers/gevent_thrift_follow.py", "--port", String($0), "--gen-dir", generated]
            }))
        }

        var rates: [String: Double] = [:]
        for server in servers {
            let port = try pickFreePort(excluding: &used)
            let process = try startListeningServer(name: server.name, arguments: server.command(port), port: port,
                                                   logPath: work + "/\(server.name).log")
            defer { process.stop() }
            let rate = try medianOfRuns(samples) { try measure(port: port) }
            note("  \(server.name): \(BenchmarkRow.format(rate)) calls/s")
            rates[server.name] = rate
        }
        let peers = ["cpp_nonblocking", "gevent_python"].compactMap { name in rates[name].map { (name, $0) } }
        let row = BenchmarkRow(name: "thrift_server", unit: "calls/s", sprout: rates["sprout"]!, peers: peers)
        print(json ? BenchmarkRow.json([row]) : BenchmarkRow.table([row]))
    }

    /// `connections` greenlets on one hub pinned to the client CPU, each calling isFollowing
    /// on a pooled connection of its own for `duration` seconds; every reply is checked.
    private func measure(port: Int) throws -> Double {
        let connections = connections
        let seconds = Double(duration)
        return try GreenThread.run { () throws -> Double in
            pinCurrentThread(to: HTTPBench.clientCPU)
            let pool = ThriftClientPool<FollowServiceClient>(host: "127.0.0.1", port: port, configuration: .init(
                callTimeout: .seconds(30), pool: .init(maxOpen: connections)))
            defer { pool.close() }
            try pool.withClient { try $0.follow(follower: 1, followee: 2) }
            func load(for duration: Double) throws -> Int {
                let end = monotonicSeconds() + duration
                let callers = (0..<connections).map { index in
                    spawn { () throws -> Int in
                        try pool.withClient { client in
                            var count = 0
                            let expected = index % 2 == 0
                            while monotonicSeconds() < end {
                                guard try client.isFollowing(a: expected ? 1 : 2, b: expected ? 2 : 1) == expected else {
                                    throw BenchFailure("isFollowing answered wrong")
                                }
                                count += 1
                            }
                            return count
                        }
                    }
                }
                return try callers.reduce(0) { $0 + (try $1.get()) }
            }
            _ = try load(for: 0.5)
            let started = monotonicSeconds()
            let calls = try load(for: seconds)
            return Double(calls) / (monotonicSeconds() - started)
        }
    }

    private func buildCppPeer(root: String) -> String? {
        let binary = root + "/.build/peers/thrift_cpp_nonblocking"
        if isExecutable(binary) { return binary }
        let log = root + "/.build/peers-thrift-build.log"
        let status = try? runToCompletion(name: "build-thrift-cpp-peer",
                                          [root + "/Benchmarks/peers/build-thrift-cpp-peer", root + "/.build/peers"],
                                          logPath: log, timeout: 300)
        guard let status, exitedNormally(status), exitStatusCode(status) == 0, isExecutable(binary) else {
            note("note: skipping cpp_nonblocking: \(readWholeFile(log) ?? "the build failed")")
            return nil
        }
        return binary
    }

    private func generatePython(root: String, work: String) -> String? {
        let generated = work + "/gen-py"
        let log = work + "/thrift-py.log"
        let status = try? runToCompletion(name: "thrift --gen py",
                                          ["/bin/sh", "-c", "mkdir -p \(generated) && thrift --gen py -out \(generated) \(root)/Examples/follow.thrift && /usr/bin/python3 -c 'import gevent, thrift'"],
                                          logPath: log, timeout: 60)
        guard let status, exitedNormally(status), exitStatusCode(status) == 0 else {
            note("note: skipping gevent_python (apt-get install thrift-compiler python3-thrift python3-gevent): \(readWholeFile(log) ?? "")")
            return nil
        }
        return generated
    }
}
