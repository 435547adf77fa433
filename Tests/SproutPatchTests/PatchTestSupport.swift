import Glibc
import Sprout
import SproutPatch
import SproutTestSupport
import Testing

// Every patched test runs in an exit test (a process of its own): patchAll() is once per
// process and for the whole process, and the other suites share this test binary.

/// SproutPatch's suites, one test at a time: each starts a child process (under a sanitizer, a
/// heavy one) and servers of its own, and a dozen at once would starve the rest of the suite
/// on a 2-core machine.
@Suite(.serialized) enum PatchSuites {}

/// Seconds on the monotonic clock.
func monotonicSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}

/// The most intervals that were open at one moment.
func maxOverlap(_ intervals: [(start: Double, end: Double)]) -> Int {
    var edges: [(time: Double, change: Int)] = []
    for interval in intervals {
        edges.append((interval.start, 1))
        edges.append((interval.end, -1))
    }
    // At the same instant an end comes before a start: touching intervals do not overlap.
    edges.sort { left, right in left.time != right.time ? left.time < right.time : left.change < right.change }
    var open = 0
    var most = 0
    for edge in edges {
        open += edge.change
        most = max(most, open)
    }
    return most
}

/// Where a child's reports also go: an exit test whose status is not the one expected gives
/// its parent no output, so the parent reads this file instead (the tests run one at a time).
let childReportPath = "/tmp/sprout-patch-test-child.log"

/// Writes `text` to standard error, unbuffered (the exit test's parent reads it), and appends
/// it to ``childReportPath``.
func report(_ text: String) {
    var line = text + "\n"
    line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    let file = open(childReportPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
    if file >= 0 {
        line.withUTF8 { _ = write(file, $0.baseAddress, $0.count) }
        close(file)
    }
}

/// In the parent: what the last child reported (for a failed expectation's message).
func lastChildReport() -> String {
    readFileText(childReportPath)
}

/// Servers the child started, stopped by `failChild` too: `exit` runs no `defer`, and a server
/// left behind would outlive the test.
nonisolated(unsafe) private var stopsOnFailure: [() -> Void] = []

/// Ends an exit test's child with a failure that names `what`, stopping its servers first.
func failChild(_ what: String) -> Never {
    report("FAILED: \(what)")
    for stop in stopsOnFailure.reversed() { stop() }
    exit(1)
}

/// True in a sanitizer pass (scripts/test sets these): everything runs several times slower,
/// so wall-clock bounds are looser there.
let underSanitizer = getenv("TSAN_OPTIONS") != nil || getenv("ASAN_OPTIONS") != nil

/// Runs `command` with no descriptor above 2 open: a daemon it starts must not hold the exit
/// test's back channel (the parent would wait for its end for ever).
func withoutInheritedDescriptors(_ command: [String]) -> [String] {
    let quoted = command.map { "'" + $0.split(separator: "'", omittingEmptySubsequences: false).joined(separator: "'\\''") + "'" }
        .joined(separator: " ")
    return ["/bin/bash", "-c", "for fd in $(ls /proc/$$/fd); do [ \"$fd\" -gt 2 ] && eval \"exec $fd>&-\"; done 2>/dev/null; exec \(quoted)"]
}

/// A PostgreSQL of the test's own on 127.0.0.1 (scripts/scratch-postgres: as the `postgres`
/// user when root). Call from a greenlet.
final class ScratchPostgres {
    let directory: String
    let connectionString: String

    init(maxConnections: Int = 200) throws {
        directory = "/tmp/sprout-pg-\(getpid())-\(Int.random(in: 0..<1_000_000))"
        let script = packageRoot() + "/scripts/scratch-postgres"
        // A free port can be taken by another test before PostgreSQL binds it: try another.
        var output = ""
        var started = false
        for _ in 0..<3 where !started {
            let port = try freePort()
            let (status, text) = try runCommand(["bash", script, "start", directory, "\(port)", "\(maxConnections)"], timeout: .seconds(90))
            started = status == 0
            output = text
            if !started { report("scratch-postgres on port \(port) failed (\(status)); trying another port") }
        }
        guard started else { throw TestSupportError(description: "scratch-postgres failed three times") }
        connectionString = output.split(separator: "\n").last.map(String.init) ?? ""
        let directory = directory
        stopsOnFailure.append { _ = try? runCommand(["bash", script, "stop", directory], timeout: .seconds(60)) }
    }

    func stop() {
        _ = try? runCommand(["bash", packageRoot() + "/scripts/scratch-postgres", "stop", directory], timeout: .seconds(60))
        _ = try? runCommand(["rm", "-rf", directory, directory + ".initdb.log"])
    }
}

/// A memcached of the test's own on 127.0.0.1.
final class ScratchMemcached {
    let port: Int
    private let process: ChildProcess

    init() throws {
        port = try freePort()
        var arguments = ["/usr/bin/memcached", "-l", "127.0.0.1", "-p", "\(port)", "-U", "0", "-m", "64", "-c", "1024"]
        if getuid() == 0 { arguments += ["-u", "root"] }
        process = try ChildProcess(withoutInheritedDescriptors(arguments))
        try waitForListener(port, process: process, log: "/dev/null")
        let pid = process.pid
        stopsOnFailure.append { kill(pid, SIGKILL) }
    }

    func stop() {
        kill(process.pid, SIGKILL)
        _ = try? process.waitForExit(timeout: .seconds(5))
    }
}

/// In an exit test's child: turns patching on and runs `body` in a greenlet of a new hub. An
/// error it throws is reported and ends the child with status 1.
func inPatchedHub(_ body: @escaping @Sendable () throws -> Void) throws {
    patchAll()
    inHub(body)
}

/// In an exit test's child: runs `body` in a greenlet of a new hub; an error it throws is
/// reported (servers stopped) and ends the child with status 1.
func inHub(_ body: @escaping @Sendable () throws -> Void) {
    do {
        try GreenThread.run(body)
    } catch {
        failChild("threw \(error)")
    }
}

/// After an exit test: if the child did not succeed, records what it reported (Swift Testing
/// gives no output for a child whose status was not the one expected). Clears the report file.
func explainChildFailure(_ result: ExitTest.Result?) {
    defer { unlink(childReportPath) }
    guard result == nil else { return }
    Issue.record("the child reported: \(lastChildReport())")
}
