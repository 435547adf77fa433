import CSproutContext
import CSproutSystem
import Glibc

/// A snapshot of every greenlet of every hub in the process: gevent's `format_run_info()`,
/// for diagnosing a hang in production. Take one with ``Hub/runInfo(timeout:)``.
public struct RunInfo: Sendable, CustomStringConvertible {
    /// What one greenlet was doing.
    public struct Greenlet: Sendable, CustomStringConvertible {
        /// Where a greenlet stands.
        public enum State: String, Sendable {
            /// Running now: the greenlet that took the snapshot, or a blocked hub's culprit.
            case running
            /// Runnable, waiting for its turn.
            case ready
            /// Parked at a switch point, waiting on ``Greenlet/waitingOn``.
            case parked
            /// Spawned, not started yet.
            case scheduled
            /// Finished, not reclaimed yet.
            case finished
        }

        /// Its id (unique in the process's run).
        public let id: UInt64
        /// Its name (`Greenlet-<id>` unless given one; `main` and `hub` for a hub's own).
        public let name: String
        /// Where it stood when the snapshot was taken.
        public let state: State
        /// What it waits on while parked (`Event.wait`, `Socket.recv`, `sleep`…).
        public let waitingOn: String?
        /// Time since it was spawned (to within a loop turn).
        public let age: Duration
        /// Its call stack, innermost first: where it is parked, or where it was running.
        public let backtrace: GreenletBacktrace?

        public var description: String {
            var line = "greenlet \(id) '\(name)': \(state.rawValue)"
            if let waitingOn, state == .parked { line += " on \(waitingOn)" }
            line += ", age \(age.nanoseconds / 1_000_000) ms"
            if let backtrace, !backtrace.frames.isEmpty { line += "\n" + backtrace.description }
            return line
        }
    }

    /// One hub and its greenlets.
    public struct Hub: Sendable, CustomStringConvertible {
        /// The hub's number in the process (1 for the first hub created).
        public let number: Int
        /// The greenlets of the hub, the hub's own included; empty if it did not answer.
        public let greenlets: [Greenlet]
        /// Set when the hub did not answer in time (it is blocked): what its thread was running
        /// instead, sampled by a signal.
        public let blocked: Greenlet?

        public var description: String {
            var text = "hub \(number): \(greenlets.count) greenlet(s)"
            if let blocked {
                text += "; did not answer: blocked by\n" + blocked.description
            }
            for greenlet in greenlets { text += "\n" + greenlet.description }
            return text
        }
    }

    /// Every hub that existed when the snapshot was taken.
    public let hubs: [Hub]

    /// Every greenlet of every hub, in hub order.
    public var greenlets: [Greenlet] { hubs.flatMap { $0.greenlets + ($0.blocked.map { [$0] } ?? []) } }

    /// Writes ``description`` to standard error in one `write` loop, bypassing stdio (safe
    /// to call from any thread, and from a signal handler's greenlet).
    public func writeToStandardError() {
        Sprout.writeToStandardError(description)
    }

    public var description: String {
        "sprout run info: \(hubs.count) hub(s)\n" + hubs.map(\.description).joined(separator: "\n") + "\n"
    }
}

/// A greenlet's description before its backtrace is named: cheap to take on the hub's thread.
private struct RawGreenletInfo: Sendable {
    var id: UInt64
    var name: String
    var state: RunInfo.Greenlet.State
    var waitingOn: String?
    var ageNanos: UInt64
    var backtrace: RawBacktrace?
}

/// Answers from the hubs, gathered across threads.
private final class RunInfoReplies: @unchecked Sendable {
    let answers = ThreadLock<[Int: [RawGreenletInfo]]>([:])
    let arrived: UnsafeMutablePointer<sem_t> = .allocate(capacity: 1)

    init() { sem_init(arrived, 0, 0) }

    deinit {
        sem_destroy(arrived)
        arrived.deallocate()
    }
}

extension Hub {
    /// Lists every greenlet of every hub in the process: name, state, what it waits on, age,
    /// and the backtrace of its stack.
    ///
    /// Callable from any thread. The calling thread's hub is read directly; every other hub is
    /// asked through its inbox and answers from its own thread. A hub that does not answer
    /// within `timeout` is blocked: its entry then shows what its thread is running, sampled by
    /// a signal, as the blocked-hub monitor does.
    ///
    /// The calling thread waits (without switching) for the answers: a diagnostic, not for a
    /// hot path.
    public static func runInfo(timeout: Duration = .seconds(1)) -> RunInfo {
        let replies = RunInfoReplies()
        let mine = Hub.existing
        var asked: [HubBeacon] = []
        for beacon in HubDirectory.all {
            if let mine, beacon === mine.beacon {
                let info = mine.describeGreenlets()
                replies.answers.withLock { $0[beacon.number] = info }
                continue
            }
            let posted = beacon.inbox.post {
                let info = Hub.current.describeGreenlets()
                replies.answers.withLock { $0[beacon.number] = info }
                sem_post(replies.arrived)
            }
            if posted { asked.append(beacon) }
        }
        let deadline = sprout_now_ns() &+ timeout.nanoseconds
        var waiting = asked.count
        while waiting > 0 {
            let now = sprout_now_ns()
            guard now < deadline else { break }
            var until = timespec()
            clock_gettime(CLOCK_REALTIME, &until)
            let left = deadline - now
            let nanos = Int(until.tv_nsec) + Int(left % 1_000_000_000)
            until.tv_sec += Int(left / 1_000_000_000) + nanos / 1_000_000_000
            until.tv_nsec = nanos % 1_000_000_000
            if sem_timedwait(replies.arrived, &until) == 0 { waiting -= 1 }
        }
        let answers = replies.answers.withLock { $0 }
        // A hub that did not answer is sampled now, while it is still stuck.
        var culprits: [Int: RawBacktrace?] = [:]
        for beacon in asked where answers[beacon.number] == nil {
            var raw = sprout_backtrace_t()
            let sampled = sprout_sample_thread(beacon.thread, BlockedHubMonitor.samplingSignal, &raw, 200_000_000) == 0
            culprits[beacon.number] = sampled ? RawBacktrace(raw) : nil
        }
        let numbers = HubDirectory.all.map(\.number).sorted()
        // Naming frames reads symbol tables and debug information (tens of milliseconds the
        // first time): from a greenlet, do it on a pool thread, so the hub keeps turning.
        let name: @Sendable () -> RunInfo = { [culprits] in assemble(numbers: numbers, answers: answers, culprits: culprits) }
        if let mine, mine.current !== mine.hubGreenlet, let info = try? ThreadPool.shared.run(name) {
            return info
        }
        return name()
    }

    private static func assemble(numbers: [Int], answers: [Int: [RawGreenletInfo]],
                                 culprits: [Int: RawBacktrace?]) -> RunInfo {
        // Thousands of greenlets parked in the same place share one backtrace: name each
        // distinct one once.
        var named: [[UInt64]: GreenletBacktrace] = [:]
        func name(_ raw: RawBacktrace?) -> GreenletBacktrace? {
            guard let raw else { return nil }
            if let known = named[raw.addresses] { return known }
            let backtrace = GreenletBacktrace(raw)
            named[raw.addresses] = backtrace
            return backtrace
        }
        var hubs: [RunInfo.Hub] = []
        for number in numbers {
            if let info = answers[number] {
                let greenlets = info.map { raw in
                    RunInfo.Greenlet(id: raw.id, name: raw.name, state: raw.state, waitingOn: raw.waitingOn,
                                     age: .nanoseconds(Int64(clamping: raw.ageNanos)), backtrace: name(raw.backtrace))
                }
                hubs.append(RunInfo.Hub(number: number, greenlets: greenlets, blocked: nil))
            } else if let sample = culprits[number] {
                let blocked = RunInfo.Greenlet(
                    id: sample?.greenletID ?? 0,
                    name: sample.map { $0.greenletName.isEmpty ? "Greenlet-\($0.greenletID)" : $0.greenletName } ?? "unknown",
                    state: .running, waitingOn: nil, age: .zero, backtrace: name(sample))
                hubs.append(RunInfo.Hub(number: number, greenlets: [], blocked: blocked))
            }
        }
        return RunInfo(hubs: hubs)
    }

    /// This hub's greenlets with raw backtraces. Runs on the hub's thread.
    fileprivate func describeGreenlets() -> [RawGreenletInfo] {
        let now = sprout_now_ns()
        var result: [RawGreenletInfo] = []
        for greenlet in [mainGreenlet!, hubGreenlet!] + liveGreenlets {
            let state: RunInfo.Greenlet.State
            switch greenlet.state {
            case .scheduled: state = .scheduled
            case .dead: state = .finished
            case .started:
                if greenlet === current {
                    state = .running
                } else {
                    // The hub's own greenlet is never parked as others are: it is in its loop.
                    state = greenlet.isParked || greenlet === hubGreenlet ? .parked : .ready
                }
            }
            var backtrace: RawBacktrace?
            if state == .running {
                var raw = sprout_backtrace_t()
                sprout_current_backtrace(&raw)
                backtrace = RawBacktrace(raw)
            } else if state == .parked || state == .ready {
                backtrace = RawBacktrace.of(suspended: greenlet.context)
            }
            result.append(RawGreenletInfo(
                id: greenlet.id, name: greenlet.name, state: state,
                waitingOn: state != .parked ? nil : greenlet === hubGreenlet ? "its loop" : greenlet.waitingOn.description,
                ageNanos: now &- greenlet.bornAt, backtrace: backtrace))
        }
        return result
    }
}
