import Glibc
import Synchronization
import Sprout
import SproutHTTP
import SproutTestSupport
import Testing

/// `sprout serve` with pre-fork workers and several hubs: replacement, reload, drain, the
/// worker timeout, and hubs that all serve. Each test drives its own server process.
extension HTTPSuites {
    @Suite(.timeLimit(.minutes(3)))
    struct WorkersTests {
        @Test func aWorkerKilledWithSIGKILLIsReplacedAndTheServerKeepsAnswering() async throws {
            try await green(timeout: .seconds(60)) { () throws in
                let server = try ServeProcess(["--workers", "2"])
                defer { server.stop() }
                let before = try server.waitForWorkers(2)
                // Past the start-up grace, so that the death is a crash, not a failed start.
                try sleep(for: .milliseconds(1200))
                kill(before[0], SIGKILL)
                // Meanwhile the survivor answers every request.
                let client = HTTPClient()
                defer { client.close() }
                for _ in 0..<50 { #expect(try client.get(server.url("/")).text == "Hello, World!") }
                let after = try server.waitForWorkers(2, excluding: [before[0]])
                #expect(after.contains(before[1]))
                #expect(!after.contains(before[0]))
                #expect(server.standardError().contains("worker ended unexpectedly; replacing it"))
            }
        }

        @Test func sighupUnderLoadReplacesEveryWorkerWithNoFailedRequest() async throws {
            try await green(timeout: .seconds(90)) { () throws in
                let server = try ServeProcess(["--workers", "2"])
                defer { server.stop() }
                let old = try server.waitForWorkers(2)
                let load = LoadGenerator(url: server.url("/whoami"), clients: 16)
                try sleep(for: .milliseconds(300))
                kill(server.pid, SIGHUP)
                let new = try server.waitForWorkers(2, excluding: Set(old))
                try server.waitUntilGone(old)
                try sleep(for: .milliseconds(300))
                let result = try load.finish()
                #expect(result.failures.isEmpty, "\(result.failures.count) failed requests: \(result.failures.prefix(5))")
                #expect(result.completed > 100)
                // The last answers came from the new workers only.
                #expect(Set(result.lastServers).isSubset(of: Set(new)), "\(result.lastServers) not all in \(new)")
            }
        }

        @Test func sigtermUnderLoadLosesNoAcceptedRequest() async throws {
            try await green(timeout: .seconds(90)) { () throws in
                let server = try ServeProcess(["--workers", "2"])
                defer { server.stop() }
                _ = try server.waitForWorkers(2)
                let quick = LoadGenerator(url: server.url("/whoami"), clients: 12)
                let slow = LoadGenerator(url: server.url("/sleep?ms=200"), clients: 8)
                try sleep(for: .milliseconds(500))
                kill(server.pid, SIGTERM)
                #expect(try server.waitForExit() == 0, "the master did not exit 0")
                for result in [try quick.finish(), try slow.finish()] {
                    #expect(result.failures.isEmpty, "\(result.failures.count) failed requests: \(result.failures.prefix(5))")
                    #expect(result.completed > 10)
                }
            }
        }

        @Test func aWorkerStuckPastTheWorkerTimeoutIsKilledAndReplaced() async throws {
            try await green(timeout: .seconds(60)) { () throws in
                let server = try ServeProcess(["--workers", "1", "--worker-timeout", "1", "--block-threshold", "0"])
                defer { server.stop() }
                let stuck = try server.waitForWorkers(1)
                let hog = spawn { () throws in
                    // Ten seconds of computing without a switch point: the worker stops turning.
                    _ = try? HTTPClient(configuration: .init(readTimeout: .seconds(30))).get(server.url("/spin?ms=10000"))
                }
                let replacement = try server.waitForWorkers(1, excluding: Set(stuck), timeout: .seconds(8))
                #expect(replacement != stuck)
                try hog.join()
                let client = HTTPClient()
                defer { client.close() }
                #expect(try client.get(server.url("/whoami")).text.hasPrefix("pid \(replacement[0]) "))
                #expect(server.standardError().contains("worker timed out: its hub has not turned; killed it"))
            }
        }

        @Test func twoThreadsServeFromBothHubs() async throws {
            try await green(timeout: .seconds(60)) { () throws in
                let server = try ServeProcess(["--workers", "0", "--threads", "2"])
                defer { server.stop() }
                // Many connections: the kernel spreads them over the two SO_REUSEPORT listeners
                // by address hash, so both hubs get some.
                let answers = try (0..<64).map { _ in
                    spawn { () throws -> String in
                        let client = HTTPClient()
                        defer { client.close() }
                        return try client.get(server.url("/whoami")).text
                    }
                }.map { try $0.get() }
                var perHub: [String: Int] = [:]
                for answer in answers { perHub[String(answer.split(separator: " ").last ?? ""), default: 0] += 1 }
                #expect(perHub.count == 2, "answers per hub: \(perHub)")
                #expect(perHub.values.allSatisfy { $0 > 0 })
                #expect(Set(answers.map { $0.split(separator: " ")[1] }).count == 1, "one process serves all")
            }
        }

        @Test func sigttinAndSigttouAddAndRemoveAWorker() async throws {
            try await green(timeout: .seconds(60)) { () throws in
                let server = try ServeProcess(["--workers", "1"])
                defer { server.stop() }
                let first = try server.waitForWorkers(1)
                kill(server.pid, SIGTTIN)
                let two = try server.waitForWorkers(2)
                #expect(two.contains(first[0]))
                kill(server.pid, SIGTTOU)
                try server.waitUntilGone(two.filter { $0 != first[0] })
                #expect(try server.waitForWorkers(1) == first)
            }
        }

        @Test func sigquitStopsAtOnce() async throws {
            try await green(timeout: .seconds(60)) { () throws in
                let server = try ServeProcess(["--workers", "2"])
                defer { server.stop() }
                let workers = try server.waitForWorkers(2)
                let hanging = spawn { () throws in
                    _ = try? HTTPClient().get(server.url("/sleep?ms=30000"))
                }
                try sleep(for: .milliseconds(200))
                let started = ContinuousClock.now
                kill(server.pid, SIGQUIT)
                #expect(try server.waitForExit() == 0)
                #expect(ContinuousClock.now - started < .seconds(5))
                try server.waitUntilGone(workers)
                try hanging.join()
            }
        }
    }
}

/// A `sprout serve` child process on a free port, with its workers found through /proc.
final class ServeProcess: @unchecked Sendable {
    let child: ChildProcess
    let port: Int
    var pid: Int32 { child.pid }
    private var exited: Int32?

    private let errorLog: String
    private static let made = Atomic<Int>(0)

    /// Starts `sprout serve` with `arguments`; `preload` is a shared library for LD_PRELOAD.
    init(_ arguments: [String], preload: String? = nil) throws {
        errorLog = "/tmp/sprout-serve-test-\(getpid())-\(ServeProcess.made.add(1, ordering: .relaxed).newValue).log"
        let command = [sproutExecutable(), "serve", "--port", "0"] + arguments
        // Under AddressSanitizer the program refuses to start unless its runtime comes first
        // among the libraries, which a preload changes: it is told to go on.
        let preloading = preload.map { ["/usr/bin/env", "LD_PRELOAD=\($0)", "ASAN_OPTIONS=verify_asan_link_order=0:detect_leaks=0"] }
        child = try ChildProcess(preloading.map { $0 + command } ?? command,
                                 standardErrorPath: errorLog)
        let line = try child.waitForLine(containing: "listening on")
        guard let port = Int(line.split(separator: ":").last ?? "") else {
            throw TestSupportError(description: "no port in \(line)")
        }
        self.port = port
    }

    func url(_ path: String) -> String { "http://127.0.0.1:\(port)\(path)" }

    /// The master's children now.
    func workers() -> [Int32] {
        let text = readFileText("/proc/\(pid)/task/\(pid)/children")
        return text.split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap { Int32($0) }.sorted()
    }

    /// Waits until the master has `count` children, none of them in `excluding`.
    @discardableResult
    func waitForWorkers(_ count: Int, excluding: Set<Int32> = [], timeout: Duration = .seconds(15)) throws -> [Int32] {
        let deadline = ContinuousClock.now + timeout
        while true {
            let now = workers()
            if now.count == count && excluding.isDisjoint(with: now) { return now }
            guard ContinuousClock.now < deadline else {
                throw TestSupportError(description: "workers are \(now), wanted \(count) not in \(excluding)\n\(standardError())")
            }
            try sleep(for: .milliseconds(20))
        }
    }

    /// Waits until none of `pids` is a child of the master any more.
    func waitUntilGone(_ pids: [Int32], timeout: Duration = .seconds(20)) throws {
        let deadline = ContinuousClock.now + timeout
        while !Set(workers()).isDisjoint(with: pids) {
            guard ContinuousClock.now < deadline else { throw TestSupportError(description: "\(pids) did not end") }
            try sleep(for: .milliseconds(20))
        }
    }

    func waitForExit(timeout: Duration = .seconds(30)) throws -> Int32? {
        let status = try child.waitForExit(timeout: timeout)
        exited = status
        return status
    }

    /// What the server printed on stderr so far.
    func standardError() -> String { readFileText(errorLog) }

    func stop() {
        defer { unlink(errorLog) }
        guard exited == nil else { return }
        for worker in workers() { kill(worker, SIGKILL) }
        kill(pid, SIGKILL)
        _ = try? child.waitForExit(timeout: .seconds(10))
    }
}

/// Greenlets that send requests in a loop through one pooled client until told to finish.
/// Connections refused after the server has stopped listening are not failures (nothing was
/// accepted); every other error is.
final class LoadGenerator {
    struct Result {
        var completed = 0
        var failures: [String] = []
        /// Who answered each client's last request (the pid of `/whoami`'s answer).
        var lastServers: [Int32] = []
    }

    private var running = true
    private var result = Result()
    private let client = HTTPClient()
    private var greenlets: [Greenlet<Void>] = []

    init(url: String, clients: Int) {
        greenlets = (0..<clients).map { _ in
            spawn { [self] in
                var last: Int32?
                while running {
                    do {
                        let response = try client.get(url)
                        if response.status.code != 200 {
                            result.failures.append("status \(response.status.code)")
                        } else {
                            result.completed += 1
                            let words = response.text.split(separator: " ")
                            if words.count >= 2, words[0] == "pid" { last = Int32(words[1]) }
                        }
                    } catch is ConnectError {
                        try sleep(for: .milliseconds(5))   // stopped listening
                    } catch {
                        result.failures.append("\(error)")
                    }
                }
                if let last { result.lastServers.append(last) }
            }
        }
    }

    func finish() throws -> Result {
        running = false
        for greenlet in greenlets { try greenlet.join() }
        client.close()
        return result
    }
}
