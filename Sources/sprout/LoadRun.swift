import Glibc
import Sprout
import Synchronization

/// The monotonic clock in nanoseconds.
func loadClockNanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}

/// Counters every hub bumps for the live progress line (only when it is shown).
final class LoadProgress: Sendable {
    let responses = Atomic<Int>(0)
    let errors = Atomic<Int>(0)
}

/// One hub's share of a `sprout load` run: its connections, each a greenlet that sends the
/// request, reads the response, and starts again, until the run's end.
///
/// Closed loop (no rate): each connection sends its next request as soon as the previous
/// response ended. Fixed rate: the hub's requests are meant to start every `1/rate` seconds;
/// a free connection takes the next start time, waits for it, and the latency is measured from
/// it, so a server that stalls is charged for every request it kept waiting, not only for the
/// ones that were on the wire (what wrk2 calls coordinated omission).
final class LoadRun {
    let target: LoadTarget
    let connections: Int
    let timeout: Duration
    let startNanoseconds: UInt64
    let endNanoseconds: UInt64
    /// Where this hub's schedule starts after the run's start: hubs interleave their slots
    /// instead of all firing at the same instants.
    let scheduleOffset: Double
    /// Nanoseconds between intended starts on this hub; nil in closed loop.
    let interval: Double?
    let progress: LoadProgress?
    private(set) var statistics: LoadStatistics
    private var nextSlot = 0
    /// Connections with a request sent (or being sent) and its response not yet complete.
    private var inFlight = 0

    init(target: LoadTarget, connections: Int, timeout: Duration, start: UInt64, duration: Double,
         rate: Double?, scheduleOffset: Double = 0, keepsTimeline: Bool, progress: LoadProgress?) {
        self.target = target
        self.connections = connections
        self.timeout = timeout
        self.startNanoseconds = start
        self.endNanoseconds = start + UInt64(duration * 1e9)
        self.interval = rate.map { 1e9 / $0 }
        self.scheduleOffset = scheduleOffset
        self.progress = progress
        self.statistics = LoadStatistics(keepsTimeline: keepsTimeline)
    }

    /// Runs the connections until the end of the run; requests still in flight then are
    /// dropped uncounted (as wrk does). Must be called on a hub.
    func run() throws -> LoadStatistics {
        let group = Group()
        for index in 0..<connections {
            group.spawn(name: "load connection \(index)") { [self] in try connectionLoop() }
        }
        let now = loadClockNanoseconds()
        if endNanoseconds > now { try sleep(for: .nanoseconds(Int64(endNanoseconds - now))) }
        // What the end cut short: requests in flight, and with a rate the start times no
        // connection was free to take (a server stalled at the end must not vanish from the report).
        statistics.unfinished = inFlight
        if let interval {
            let span = Double(endNanoseconds - startNanoseconds) - scheduleOffset
            let scheduled = span > 0 ? Int((span / interval).rounded(.up)) : 0
            statistics.unfinished += max(0, scheduled - nextSlot)
        }
        group.kill()
        return statistics
    }

    private func second(of instant: UInt64) -> Int {
        instant <= startNanoseconds ? 0 : Int((instant - startNanoseconds) / 1_000_000_000)
    }

    private func connectionLoop() throws {
        let bufferSize = 16 * 1024
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bufferSize, alignment: 16)
        defer { buffer.deallocate() }
        var socket: Socket?
        defer { socket?.close() }
        var framer = LoadResponseFramer()
        framer.expectsNoBody = target.isHead
        var reused = false

        while true {
            let intended: UInt64
            if let interval {
                intended = startNanoseconds + UInt64(scheduleOffset + Double(nextSlot) * interval)
                nextSlot += 1
                guard intended < endNanoseconds else { return }
                let now = loadClockNanoseconds()
                if intended > now { try sleep(for: .nanoseconds(Int64(intended - now))) }
            } else {
                intended = loadClockNanoseconds()
                guard intended < endNanoseconds else { return }
            }
            let second = second(of: intended)

            inFlight += 1
            defer { inFlight -= 1 }
            // A kept-alive connection the server closed while it was idle fails before any byte
            // of the response: that is no error of the server's, and the request goes again
            // once on a new connection (as HTTP clients retry it).
            var attempts = 0
            while attempts < 2 {
                attempts += 1
                if socket == nil {
                    do {
                        let fresh = try Socket.connect(to: target.address, timeout: timeout)
                        fresh.timeout = timeout
                        fresh.shortReadsDrain = true
                        try? fresh.setNoDelay(true)
                        socket = fresh
                        reused = false
                    } catch is SystemError {
                        // Refused, unreachable or timed out: no connection. A refused connect
                        // returns at once, so pause rather than spin on it.
                        fail(.connect, second: second)
                        try sleep(for: .milliseconds(10))
                        break
                    }
                }
                guard let connection = socket else { break }
                var outcome: Outcome
                do {
                    outcome = try exchange(on: connection, framer: &framer, buffer: buffer)
                } catch let error as SystemError {
                    let beforeResponse = framer.isIdle && (error.errno == EPIPE || error.errno == ECONNRESET)
                    outcome = .failed(error.errno == ETIMEDOUT ? .timeout : .reset, staleKeepAlive: beforeResponse)
                }
                switch outcome {
                case .response(let status, let closes):
                    let micros = (loadClockNanoseconds() - intended) / 1000
                    statistics.recordResponse(status: status, micros: micros, second: second)
                    if let progress {
                        progress.responses.add(1, ordering: .relaxed)
                        if status >= 400 { progress.errors.add(1, ordering: .relaxed) }
                    }
                    if closes {
                        connection.close()
                        socket = nil
                    } else {
                        reused = true
                    }
                    attempts = 2
                case .failed(let kind, let staleKeepAlive):
                    connection.close()
                    socket = nil
                    if staleKeepAlive && reused && attempts < 2 { continue }
                    fail(kind, second: second)
                    attempts = 2
                }
            }
        }
    }

    private enum Outcome {
        case response(status: Int, closes: Bool)
        /// `staleKeepAlive`: the connection ended before any byte of the response.
        case failed(LoadErrorKind, staleKeepAlive: Bool)
    }

    private func exchange(on connection: Socket, framer: inout LoadResponseFramer,
                          buffer: UnsafeMutableRawBufferPointer) throws -> Outcome {
        framer.reset()
        try target.bytes.withUnsafeBytes { try connection.sendAll($0) }
        while true {
            let count = try connection.recv(into: buffer)
            if count == 0 {
                switch framer.finishAtEndOfStream() {
                case .complete(let status, _, _): return .response(status: status, closes: true)
                default: return .failed(.reset, staleKeepAlive: framer.isIdle)
                }
            }
            statistics.bytesRead += count
            switch framer.feed(UnsafeRawBufferPointer(rebasing: buffer[..<count])) {
            case .incomplete: continue
            case .complete(let status, let closes, let consumed):
                // Bytes past the response answer nothing this connection asked.
                guard consumed == count else { return .failed(.protocolError, staleKeepAlive: false) }
                return .response(status: status, closes: closes)
            case .malformed: return .failed(.protocolError, staleKeepAlive: false)
            }
        }
    }

    private func fail(_ kind: LoadErrorKind, second: Int) {
        statistics.recordError(kind, second: second)
        progress?.errors.add(1, ordering: .relaxed)
    }
}
