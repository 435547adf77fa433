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
    /// Nanoseconds between intended starts on this hub; nil in closed loop.
    let interval: Double?
    let progress: LoadProgress?
    private(set) var statistics: LoadStatistics
    private var nextSlot = 0

    init(target: LoadTarget, connections: Int, timeout: Duration, start: UInt64, duration: Double,
         rate: Double?, keepsTimeline: Bool, progress: LoadProgress?) {
        self.target = target
        self.connections = connections
        self.timeout = timeout
        self.startNanoseconds = start
        self.endNanoseconds = start + UInt64(duration * 1e9)
        self.interval = rate.map { 1e9 / $0 }
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

        while true {
            let intended: UInt64
            if let interval {
                intended = startNanoseconds + UInt64(Double(nextSlot) * interval)
                nextSlot += 1
                guard intended < endNanoseconds else { return }
                let now = loadClockNanoseconds()
                if intended > now { try sleep(for: .nanoseconds(Int64(intended - now))) }
            } else {
                intended = loadClockNanoseconds()
                guard intended < endNanoseconds else { return }
            }
            let second = second(of: intended)

            if socket == nil {
                do {
                    let fresh = try Socket.connect(to: target.address, timeout: timeout)
                    fresh.timeout = timeout
                    fresh.shortReadsDrain = true
                    try? fresh.setNoDelay(true)
                    socket = fresh
                } catch let error as SystemError {
                    fail(error.errno == ETIMEDOUT ? .timeout : .connect, second: second)
                    // A refused connect returns at once: pause rather than spin on it.
                    try sleep(for: .milliseconds(10))
                    continue
                }
            }
            guard let connection = socket else { continue }
            do {
                let outcome = try exchange(on: connection, framer: &framer, buffer: buffer)
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
                    }
                case .failed(let kind):
                    fail(kind, second: second)
                    connection.close()
                    socket = nil
                }
            } catch let error as SystemError {
                fail(error.errno == ETIMEDOUT ? .timeout : .reset, second: second)
                connection.close()
                socket = nil
            }
        }
    }

    private enum Outcome {
        case response(status: Int, closes: Bool)
        case failed(LoadErrorKind)
    }

    private func exchange(on connection: Socket, framer: inout LoadResponseFramer,
                          buffer: UnsafeMutableRawBufferPointer) throws -> Outcome {
        try target.bytes.withUnsafeBytes { try connection.sendAll($0) }
        framer.reset()
        while true {
            let count = try connection.recv(into: buffer)
            if count == 0 {
                switch framer.finishAtEndOfStream() {
                case .complete(let status, _, _): return .response(status: status, closes: true)
                default: return .failed(.reset)
                }
            }
            statistics.bytesRead += count
            switch framer.feed(UnsafeRawBufferPointer(rebasing: buffer[..<count])) {
            case .incomplete: continue
            case .complete(let status, let closes, _): return .response(status: status, closes: closes)
            case .malformed: return .failed(.protocolError)
            }
        }
    }

    private func fail(_ kind: LoadErrorKind, second: Int) {
        statistics.recordError(kind, second: second)
        progress?.errors.add(1, ordering: .relaxed)
    }
}
