import Histogram

/// The ways a `sprout load` request fails, as its report counts them.
enum LoadErrorKind: Int, CaseIterable, Sendable {
    /// No connection could be made (refused, unreachable, or not within `--timeout`).
    case connect
    /// On a connection: no byte arrived (or could be sent) for `--timeout` seconds.
    case timeout
    /// The server reset or closed the connection before the response ended.
    case reset
    /// A response whose status is 400 or more.
    case status
    /// Bytes that are not an HTTP/1.x response.
    case protocolError

    var name: String {
        switch self {
        case .connect: "connect"
        case .timeout: "timeout"
        case .reset: "reset"
        case .status: "status"
        case .protocolError: "protocol"
        }
    }
}

/// What one second (or any span) of a run saw: responses, errors and a latency histogram.
struct LoadInterval: Sendable {
    var responses = 0
    var errors = 0
    var latency = LoadStatistics.makeHistogram(digits: .two)

    mutating func add(_ other: LoadInterval) {
        responses += other.responses
        errors += other.errors
        latency.add(other.latency)
    }
}

/// Everything one hub's connections measured; hubs' statistics are merged at the end.
///
/// Latencies are in microseconds. In closed-loop mode a request's latency runs from the moment
/// its connection was free to start it (including the connect, when the last response closed
/// the connection); with `--rate` from the moment the schedule meant it to start, so that time
/// spent queued behind a stalled server counts (no coordinated omission). A request belongs to
/// the second of the run in which it started (or was meant to).
struct LoadStatistics: Sendable {
    /// Every response's latency, whatever its status.
    var latency = LoadStatistics.makeHistogram(digits: .three)
    var responses = 0
    var bytesRead = 0
    var errors = [Int](repeating: 0, count: LoadErrorKind.allCases.count)
    var statusCounts: [Int: Int] = [:]
    /// Requests the end of the run cut short: in flight then, and with a rate the start times
    /// that no connection was free to take.
    var unfinished = 0
    /// One interval per second of the run, when a timeline or a window was asked for.
    var seconds: [LoadInterval] = []
    let keepsTimeline: Bool

    init(keepsTimeline: Bool) {
        self.keepsTimeline = keepsTimeline
    }

    /// 1 µs to one hour.
    static func makeHistogram(digits: SignificantDigits) -> Histogram<UInt64> {
        Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: digits)
    }

    /// Records a response that took `micros`, meant to start `second` seconds into the run.
    mutating func recordResponse(status: Int, micros: UInt64, second: Int) {
        responses += 1
        _ = latency.record(max(1, min(micros, 3_600_000_000)))
        statusCounts[status, default: 0] += 1
        if status >= 400 { errors[LoadErrorKind.status.rawValue] += 1 }
        if keepsTimeline {
            grow(to: second)
            seconds[second].responses += 1
            if status >= 400 { seconds[second].errors += 1 }
            _ = seconds[second].latency.record(max(1, min(micros, 3_600_000_000)))
        }
    }

    /// Records a failed request (no response) meant to start `second` seconds into the run.
    mutating func recordError(_ kind: LoadErrorKind, second: Int) {
        errors[kind.rawValue] += 1
        if keepsTimeline {
            grow(to: second)
            seconds[second].errors += 1
        }
    }

    private mutating func grow(to second: Int) {
        while seconds.count <= second { seconds.append(LoadInterval()) }
    }

    mutating func merge(_ other: LoadStatistics) {
        latency.add(other.latency)
        responses += other.responses
        bytesRead += other.bytesRead
        unfinished += other.unfinished
        for kind in LoadErrorKind.allCases { errors[kind.rawValue] += other.errors[kind.rawValue] }
        for (status, count) in other.statusCounts { statusCounts[status, default: 0] += count }
        if keepsTimeline {
            grow(to: other.seconds.count - 1)
            for (second, interval) in other.seconds.enumerated() { seconds[second].add(interval) }
        }
    }

    var errorCount: Int { errors.reduce(0, +) }

    /// The requests meant to start in seconds `from..<to` of the run, as one interval.
    func window(from: Int, to: Int) -> LoadInterval {
        var total = LoadInterval()
        for second in max(0, from)..<max(max(0, from), min(to, seconds.count)) { total.add(seconds[second]) }
        return total
    }
}

/// Milliseconds, from a histogram's microseconds.
func milliseconds(_ micros: UInt64) -> Double { Double(micros) / 1000 }

extension Histogram where Count == UInt64 {
    /// The value at `percentile` in milliseconds, 0 for an empty histogram.
    func milliseconds(at percentile: Double) -> Double {
        totalCount == 0 ? 0 : Double(valueAtPercentile(percentile)) / 1000
    }
}
