import ArgumentParser
import CLibPQ
import Glibc
import Sprout
import SproutPatch

/// `sprout-bench patch`: the libpq scenario of SproutPatch. N clients each run
/// `SELECT pg_sleep(0.2)` over and over through libpq's plain blocking API, on a connection of
/// their own, against one PostgreSQL on CPU 0; the clients run on CPU 1. Queries per second:
///
/// - `sprout`: N greenlets on one hub, with `patchAll()`;
/// - `unpatched`: the same N greenlets without patching (libpq's waits block the hub);
/// - `threads`: N OS threads, one per connection, each blocking as libpq means to.
///
/// Each measurement runs in a process of its own (`--measure`), so that patching stays off for
/// the peers and each reports its own peak resident memory (rows `libpq_<N>_memory`). A last row,
/// `libpq_100_select1`, runs `SELECT 1` instead: no sleep to hide behind, so it shows what the
/// hooks and the switches cost beside threads that block in the kernel.
struct PatchBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "patch",
        abstract: "libpq through SproutPatch: patched greenlets beside unpatched ones and a thread per connection.")

    @Flag(help: "Print one JSON object instead of a table.")
    var json = false

    @Option(help: "Seconds each measurement lasts (after the connections are open and one round has run).")
    var duration = 3

    @Option(help: "Client counts, comma-separated.")
    var clients = "10,100,1000"

    @Option(help: "A libpq connection string of a PostgreSQL to use instead of starting one (max_connections above the largest count).")
    var postgres: String?

    @Option(help: .hidden)
    var measure: String?

    func run() throws {
        if let measure { return try measureOne(measure) }
        #if DEBUG
        note("WARNING: a debug build; run `swift run -c release sprout-bench patch` for real figures")
        #endif
        let counts = clients.split(separator: ",").compactMap { Int($0) }
        guard !counts.isEmpty, counts.allSatisfy({ $0 > 0 }) else { throw BenchFailure("--clients: give positive counts, e.g. 10,100,1000") }
        installInterruptCleanup()
        let root = HTTPPeers.packageRoot()
        var server: ScratchPostgres?
        let connection: String
        if let postgres {
            connection = postgres
        } else {
            server = try ScratchPostgres(root: root, maxConnections: (counts.max() ?? 100) + 50)
            connection = server!.connectionString
        }
        defer { server?.stop() }
        _ = raiseDescriptorLimit(to: 65536)

        var rows: [BenchmarkRow] = []
        for count in counts {
            note("--- libpq_\(count): \(count) clients, SELECT pg_sleep(0.2)")
            var results: [String: (rate: Double, rssMiB: Double)] = [:]
            for mode in ["patched", "unpatched", "threads"] {
                let result = try runMeasurement(mode: mode, count: count, sql: .sleep, connection: connection)
                note("  \(mode): \(BenchmarkRow.format(result.rate)) queries/s, peak RSS \(BenchmarkRow.format(result.rssMiB)) MiB")
                results[mode] = result
            }
            rows.append(BenchmarkRow(name: "libpq_\(count)", unit: "queries/s", sprout: results["patched"]!.rate,
                                     peers: [("unpatched", results["unpatched"]!.rate), ("threads", results["threads"]!.rate)]))
            rows.append(BenchmarkRow(name: "libpq_\(count)_memory", unit: "MiB", sprout: results["patched"]!.rssMiB,
                                     peers: [("unpatched", results["unpatched"]!.rssMiB), ("threads", results["threads"]!.rssMiB)]))
        }
        if counts.contains(100) {
            note("--- libpq_100_select1: 100 clients, SELECT 1")
            var rates: [String: Double] = [:]
            for mode in ["patched", "unpatched", "threads"] {
                rates[mode] = try runMeasurement(mode: mode, count: 100, sql: .select1, connection: connection).rate
                note("  \(mode): \(BenchmarkRow.format(rates[mode]!)) queries/s")
            }
            rows.append(BenchmarkRow(name: "libpq_100_select1", unit: "queries/s", sprout: rates["patched"]!,
                                     peers: [("unpatched", rates["unpatched"]!), ("threads", rates["threads"]!)]))
        }
        print(json ? BenchmarkRow.json(rows) : BenchmarkRow.table(rows))
    }

    /// Runs `sprout-bench patch --measure MODE:COUNT:SECONDS:SQL` on the client CPU.
    private func runMeasurement(mode: String, count: Int, sql: Query, connection: String) throws -> (rate: Double, rssMiB: Double) {
        let work = try makeTemporaryDirectory("sprout-bench-patch")
        defer { removeTree(work) }
        let log = work + "/measure.out"
        // Unpatched, the greenlets take turns: keep that run short, it says the same.
        let seconds = mode == "unpatched" && sql == .sleep ? max(2, duration / 2) : duration
        let timeout = Double(seconds) + Double(count) * 0.25 + 120
        let status = try runToCompletion(
            name: "measure \(mode)",
            ["taskset", "-c", String(HTTPBench.clientCPU), executableDirectory() + "/sprout-bench", "patch",
             "--measure", "\(mode):\(count):\(seconds):\(sql.rawValue)", "--postgres", connection],
            logPath: log, timeout: timeout)
        let output = readWholeFile(log) ?? ""
        guard let status, exitedNormally(status), exitStatusCode(status) == 0,
              let line = output.split(separator: "\n").last(where: { $0.hasPrefix("result ") }) else {
            throw BenchFailure("the \(mode) run of \(count) clients failed: \(output.suffix(2000))")
        }
        let words = line.split(separator: " ")
        guard words.count == 3, let rate = Double(words[1]), let rss = Double(words[2]) else { throw BenchFailure("bad line: \(line)") }
        return (rate, rss)
    }

    /// In the child: opens `count` connections, runs one round, then measures for `seconds`.
    private func measureOne(_ specification: String) throws {
        let parts = specification.split(separator: ":")
        guard parts.count == 4, let count = Int(parts[1]), let seconds = Double(parts[2]), let sql = Query(rawValue: String(parts[3])),
              let connection = postgres else {
            throw BenchFailure("--measure MODE:COUNT:SECONDS:SQL needs --postgres")
        }
        currentQuery = sql.text
        let mode = String(parts[0])
        let rate: Double
        switch mode {
        case "patched":
            patchAll()
            rate = try GreenThread.run { try greenletRate(count: count, seconds: seconds, connection: connection, warmUp: true) }
        case "unpatched":
            rate = try GreenThread.run { try greenletRate(count: count, seconds: seconds, connection: connection, warmUp: false) }
        case "threads":
            rate = try threadRate(count: count, seconds: seconds, connection: connection)
        default:
            throw BenchFailure("unknown mode \(mode)")
        }
        print("result \(rate) \(Double(peakResidentKiB()) / 1024)")
    }
}

/// What the clients run.
enum Query: String {
    case sleep, select1
    var text: String { self == .sleep ? "SELECT pg_sleep(0.2)" : "SELECT 1" }
}

/// The query of this measuring process (set once, before any client starts).
nonisolated(unsafe) private var currentQuery = Query.sleep.text

/// One query on `connection`.
private func query(_ connection: OpaquePointer) throws {
    guard let result = PQexec(connection, currentQuery) else { throw BenchFailure("PQexec returned nothing") }
    defer { PQclear(result) }
    guard PQresultStatus(result) == PGRES_TUPLES_OK else {
        throw BenchFailure("query failed: \(String(cString: PQerrorMessage(connection)))")
    }
}

/// One connection's loop: queries until `end`; returns how many completed. (Unpatched, the
/// first greenlet never yields and runs them all: the others find the time up.)
private func queryLoop(_ connection: OpaquePointer, until end: Double) throws -> Int {
    var done = 0
    while monotonicSeconds() < end {
        try query(connection)
        done += 1
    }
    return done
}

private func connect(_ connection: String) throws -> OpaquePointer {
    guard let handle = PQconnectdb(connection), PQstatus(handle) == CONNECTION_OK else {
        throw BenchFailure("cannot connect to PostgreSQL (\(connection)); raise max_connections?")
    }
    return handle
}

/// Greenlets, one connection each, on this thread's hub.
private func greenletRate(count: Int, seconds: Double, connection: String, warmUp: Bool) throws -> Double {
    let handles = try (0..<count).map { _ in spawn { try connect(connection) } }.map { try $0.get() }
    defer { handles.forEach { PQfinish($0) } }
    if warmUp {
        // One query each, every backend warm (not unpatched: there it would take count / 5 s).
        for greenlet in handles.map({ handle in spawn { try query(handle) } }) { try greenlet.join() }
    }
    let start = monotonicSeconds()
    let done = try handles.map { handle in spawn { try queryLoop(handle, until: start + seconds) } }
        .reduce(0) { $0 + (try $1.get()) }
    return Double(done) / (monotonicSeconds() - start)
}

/// What one thread of `threadRate` shares with it.
private final class ThreadWork: @unchecked Sendable {
    let connection: String
    let start: Double
    let end: Double
    var handle: OpaquePointer?
    var done = 0
    var failure: String?
    init(connection: String, start: Double, end: Double) {
        self.connection = connection
        self.start = start
        self.end = end
    }
}

/// One OS thread per connection, blocking in libpq as it was written to.
private func threadRate(count: Int, seconds: Double, connection: String) throws -> Double {
    // Connections first (not measured), then one round, then the measured run.
    let start = monotonicSeconds() + 1 + Double(count) * 0.01
    let works = (0..<count).map { _ in ThreadWork(connection: connection, start: start, end: start + seconds) }
    var threads: [pthread_t] = []
    for work in works {
        var thread = pthread_t()
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        pthread_attr_setstacksize(&attributes, 256 * 1024)   // as much as a greenlet gets
        let rc = pthread_create(&thread, &attributes, { argument in
            let work = Unmanaged<ThreadWork>.fromOpaque(argument!).takeRetainedValue()
            do {
                let handle = try connect(work.connection)
                work.handle = handle
                try query(handle)
                while monotonicSeconds() < work.start { usleep(1000) }
                work.done = try queryLoop(handle, until: work.end)
            } catch {
                work.failure = "\(error)"
            }
            return nil
        }, Unmanaged.passRetained(work).toOpaque())
        pthread_attr_destroy(&attributes)
        guard rc == 0 else { throw BenchFailure("pthread_create: \(String(cString: strerror(rc)))") }
        threads.append(thread)
    }
    for thread in threads { pthread_join(thread, nil) }
    let finished = monotonicSeconds()
    works.forEach { if let handle = $0.handle { PQfinish(handle) } }
    if let failure = works.compactMap(\.failure).first { throw BenchFailure(failure) }
    guard finished > start else { throw BenchFailure("the threads started late: raise the lead time") }
    return Double(works.reduce(0) { $0 + $1.done }) / (finished - start)
}

/// VmHWM of this process, in KiB.
private func peakResidentKiB() -> Int {
    for line in (readWholeFile("/proc/self/status") ?? "").split(separator: "\n") where line.hasPrefix("VmHWM:") {
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
    }
    return 0
}

/// A PostgreSQL of the benchmark's own (scripts/scratch-postgres), on the server CPU.
private final class ScratchPostgres {
    let directory: String
    let connectionString: String
    private let script: String

    init(root: String, maxConnections: Int) throws {
        script = root + "/scripts/scratch-postgres"
        directory = "/tmp/sprout-bench-pg-\(getpid())"
        var used = Set<Int>()
        let port = try pickFreePort(excluding: &used)
        let log = directory + ".start.log"
        let status = try runToCompletion(
            name: "scratch-postgres",
            ["taskset", "-c", String(HTTPBench.serverCPU), "bash", script, "start", directory, String(port), String(maxConnections)],
            logPath: log, timeout: 120)
        let output = readWholeFile(log) ?? ""
        guard let status, exitedNormally(status), exitStatusCode(status) == 0,
              let line = output.split(separator: "\n").last(where: { $0.hasPrefix("host=") }) else {
            throw BenchFailure("cannot start PostgreSQL (apt-get install postgresql; as root it runs as the postgres user): \(output)")
        }
        connectionString = String(line)
        note("PostgreSQL on 127.0.0.1:\(port), max_connections \(maxConnections)")
    }

    func stop() {
        _ = try? runToCompletion(name: "scratch-postgres stop", ["bash", script, "stop", directory],
                                 logPath: "/dev/null", timeout: 60)
        removeTree(directory)
        unlink(directory + ".start.log")
        unlink(directory + ".initdb.log")
    }
}
