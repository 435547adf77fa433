import ArgumentParser
import Glibc
import Sprout

/// `sprout load`: an HTTP/1.1 load generator on greenlets, one per connection.
struct Load: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Drive an HTTP/1.1 server with keep-alive connections, one greenlet each (a wrk on Sprout).",
        discussion: """
            Closed loop by default: every connection sends its next request as soon as the previous response \
            ended. With --rate R the requests are meant to start R times a second (spread over the \
            connections that are free), and a request's latency is measured from the moment it was meant \
            to start, so a server that stalls is charged for every request it kept waiting (no coordinated \
            omission); give enough connections (-c) for the rate times the expected latency.

            Prints requests/s, errors by kind (connect, timeout, reset, status >= 400, protocol) and latency \
            percentiles from an HdrHistogram (3 significant digits), with a live line when stdout is a \
            terminal; --json prints one object instead. Requests still in flight when the duration ends \
            (and, with --rate, start times no connection was free to take) are reported as unfinished, not \
            in the percentiles. --timeout is per operation: a request fails as "timeout" when no byte can be \
            sent or arrives for that long, as "connect" when no connection is made within it (default 10 s; \
            wrk's is 2 s). A kept-alive connection that the server closed while idle is reopened and the \
            request sent again once, without an error. Exits 1 when no response arrived at all.
            """)

    @Argument(help: "The URL (http://host[:port][/path][?query]).")
    var url: String

    @Option(name: [.customShort("c"), .customLong("connections")], help: "Connections kept open at once.")
    var connections = 10

    @Option(name: [.customShort("d"), .customLong("duration")], help: "Seconds to run (a number, or with s/m: 30s, 2m).")
    var duration = "10"

    @Option(name: [.customShort("t"), .customLong("threads")], help: "Hubs (threads) sharing the connections.")
    var threads = 1

    @Option(name: [.customShort("R"), .customLong("rate")], help: "Requests per second in all (fixed arrival schedule).")
    var rate: Double?

    @Option(name: [.customShort("X"), .customLong("method")], help: "The method (GET, or POST with a body).")
    var method: String?

    @Option(name: [.customShort("H"), .customLong("header")], help: "A header field 'Name: value' (repeatable).")
    var headers: [String] = []

    @Option(help: "The request body.")
    var body: String?

    @Option(help: "Send this file's contents as the body.")
    var bodyFile: String?

    @Option(help: "Seconds an operation may wait for the server before the request counts as a timeout.")
    var timeout: Double = 10

    @Flag(help: "Print one JSON object instead of the report.")
    var json = false

    @Flag(help: "With --json: add a per-second timeline (requests, errors, p50 and p99 of the requests meant to start in each second).")
    var timeline = false

    @Option(help: "Also report the requests meant to start between FROM and TO seconds into the run (FROM:TO).")
    var window: String?

    func validate() throws {
        guard (1...1_000_000).contains(connections) else { throw ValidationError("-c must be in 1...1000000") }
        guard (1...256).contains(threads) else { throw ValidationError("-t must be in 1...256") }
        guard threads <= connections else { throw ValidationError("-t cannot exceed -c (each thread needs a connection)") }
        guard let seconds = Self.seconds(duration), seconds > 0, seconds <= 86_400 else {
            throw ValidationError("-d '\(duration)': expected seconds (10, 10s, 2m) up to a day")
        }
        if let rate { guard rate > 0, rate <= 10_000_000 else { throw ValidationError("--rate must be in (0, 10000000]") } }
        guard timeout >= 0.001, timeout <= 86_400 else { throw ValidationError("--timeout must be in 0.001...86400 seconds") }
        if timeline && !json { throw ValidationError("--timeline goes with --json") }
        if body != nil && bodyFile != nil { throw ValidationError("--body and --body-file cannot both be given") }
        if let window { guard let range = Self.window(window), range.from < range.to, range.from < Int(seconds.rounded(.up)) else {
            throw ValidationError("--window '\(window)': expected FROM:TO whole seconds within the run, FROM < TO")
        } }
    }

    static func seconds(_ text: String) -> Double? {
        if text.hasSuffix("m"), let minutes = Double(text.dropLast()) { return minutes * 60 }
        if text.hasSuffix("s"), let seconds = Double(text.dropLast()) { return seconds }
        return Double(text)
    }

    static func window(_ text: String) -> (from: Int, to: Int)? {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let from = Int(parts[0]), let to = Int(parts[1]), from >= 0 else { return nil }
        return (from, to)
    }

    func run() throws {
        signal(SIGPIPE, SIG_IGN)
        let seconds = Self.seconds(duration)!
        let bodyBytes: [UInt8]?
        if let bodyFile {
            guard let contents = readFile(bodyFile) else {
                throw ValidationError("--body-file \(bodyFile): \(String(cString: strerror(errno)))")
            }
            bodyBytes = contents
        } else {
            bodyBytes = body.map { Array($0.utf8) }
        }
        let method = method ?? (bodyBytes == nil ? "GET" : "POST")
        let limit = (try? raiseOpenFileLimit()) ?? 1024
        if limit < connections + 16 {
            throw ValidationError("-c \(connections) needs more descriptors than RLIMIT_NOFILE allows (\(limit)); raise it (ulimit -n)")
        }

        let target: LoadTarget
        do {
            target = try GreenThread.run { try LoadTarget.make(url: url, method: method, headers: headers, body: bodyBytes) }
        } catch let error as LoadTarget.Invalid {
            throw ValidationError(error.description)
        } catch let error as ResolverError {
            throw ValidationError("\(error)")
        }

        let interactive = !json && isatty(STDOUT_FILENO) == 1
        let progress = interactive ? LoadProgress() : nil
        let keepsTimeline = timeline || window != nil
        let timeoutDuration = Duration.microseconds(Int64(timeout * 1_000_000))
        let (threads, rate, connections) = (self.threads, self.rate, self.connections)
        let shares = (0..<threads).map { connections / threads + ($0 < connections % threads ? 1 : 0) }
        let start = loadClockNanoseconds() + 1_000_000  // every hub starts its schedule at the same instant

        let statistics = try GreenThread.run { () throws -> LoadStatistics in
            var others: [Greenlet<LoadStatistics>] = []
            for hub in 1..<threads {
                others.append(spawn(name: "load hub \(hub)") {
                    try GreenThread.run {
                        try LoadRun(target: target, connections: shares[hub], timeout: timeoutDuration, start: start,
                                    duration: seconds, rate: rate.map { $0 / Double(threads) },
                                    scheduleOffset: rate.map { Double(hub) * 1e9 / $0 } ?? 0,
                                    keepsTimeline: keepsTimeline, progress: progress).run()
                    }
                })
            }
            let ticker = progress.map { progress in
                spawn(name: "load progress") { try Self.showProgress(progress, start: start, seconds: seconds) }
            }
            var total = try LoadRun(target: target, connections: shares[0], timeout: timeoutDuration, start: start,
                                    duration: seconds, rate: rate.map { $0 / Double(threads) },
                                    keepsTimeline: keepsTimeline, progress: progress).run()
            ticker?.kill()
            for other in others { total.merge(try other.get()) }
            return total
        }
        if interactive { print("\r\u{1B}[K", terminator: "") }

        let report = LoadReport(url: url, connections: connections, threads: threads, seconds: seconds, rate: rate,
                                statistics: statistics, timeline: timeline, window: window.flatMap(Self.window))
        print(json ? report.json() : report.text())
        fflush(nil)
        if statistics.responses == 0 { throw ExitCode(1) }
    }

    /// Rewrites one line on the terminal every second: elapsed time, the last second's
    /// responses and the errors so far.
    private static func showProgress(_ progress: LoadProgress, start: UInt64, seconds: Double) throws {
        var lastResponses = 0
        var tick = 1
        while true {
            let due = start + UInt64(tick) * 1_000_000_000
            let now = loadClockNanoseconds()
            if due > now { try sleep(for: .nanoseconds(Int64(due - now))) }
            let responses = progress.responses.load(ordering: .relaxed)
            let errors = progress.errors.load(ordering: .relaxed)
            print("\r\u{1B}[K  \(tick)/\(Int(seconds.rounded(.up))) s  \(responses - lastResponses) req/s  \(responses) responses  \(errors) errors",
                  terminator: "")
            fflush(nil)
            lastResponses = responses
            tick += 1
        }
    }

    private func readFile(_ path: String) -> [UInt8]? {
        guard let file = fopen(path, "rb") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = fread(&chunk, 1, chunk.count, file)
            if count > 0 { bytes += chunk[..<count] }
            if count < chunk.count { return ferror(file) != 0 ? nil : bytes }
        }
    }
}
