import CSproutContext
import CSproutSystem
import Glibc
public import Logging
import Synchronization

/// A thread that watches every hub of the process and reports one that stops turning:
/// gevent's `max_blocking_time`, with the culprit's backtrace.
///
/// A greenlet that computes without reaching a switch point (or calls a blocking C function)
/// stalls every other greenlet of its hub. The monitor looks at each hub's loop-turn counter
/// every quarter of the threshold; a hub whose counter has not moved for longer than the
/// threshold — while it has greenlets and is not sleeping in `epoll_wait` — is
/// reported once per episode: the hub, the running greenlet's name and id, how long the hub
/// has been stuck, and the backtrace of the code that is running, taken on that thread by a
/// signal (`SIGURG`) and named here, off the hub's path.
///
/// Off unless started. While off it costs the hubs three relaxed stores per loop turn; while on,
/// one thread waking every `threshold / 4`.
///
/// The sampling signal interrupts the blocked code once per report. It is installed with
/// `SA_RESTART`, so most system calls resume, but `nanosleep`, `epoll_wait` and a few others
/// return early with `EINTR` (as under any profiler). A program with its own `SIGURG` handler
/// should not start the monitor.
public enum BlockedHubMonitor {
    /// One report: a hub that has not turned for longer than the threshold.
    public struct Report: Sendable, CustomStringConvertible {
        /// The hub's number in the process (1 for the first hub created).
        public let hubNumber: Int
        /// The id of the greenlet that was running when the backtrace was taken (0 if unknown).
        public let greenletID: UInt64
        /// Its name (`Greenlet-<id>` if it has none; `main` or `hub` for those).
        public let greenletName: String
        /// How long the hub had not turned when it was reported.
        public let blockedFor: Duration
        /// The running code's call stack, innermost first; nil if the thread did not answer.
        public let backtrace: GreenletBacktrace?

        public var description: String {
            let millis = blockedFor.nanoseconds / 1_000_000
            var text = "sprout: hub \(hubNumber) has not turned for \(millis) ms: greenlet '\(greenletName)'"
                + " (id \(greenletID)) runs without reaching a switch point"
            if let backtrace {
                text += "\n" + backtrace.description
            } else {
                text += " (its thread did not answer the backtrace request)"
            }
            return text
        }
    }

    /// Starts the monitor (or changes its settings if it runs already).
    ///
    /// - Parameters:
    ///   - threshold: How long a hub may go without turning before it is reported.
    ///   - logger: Where reports go, at `warning` level, with the hub, greenlet and duration as
    ///     metadata.
    ///   - onReport: Also called with each report, on the monitor's thread.
    /// - Throws: ``SystemError`` if the sampling signal or the thread cannot be set up.
    public static func start(threshold: Duration = .milliseconds(100),
                             logger: Logger = Logger(label: "sprout.monitor"),
                             onReport: (@Sendable (Report) -> Void)? = nil) throws {
        let rc = sprout_sampler_install(samplingSignal)
        guard rc == 0 else { throw SystemError(errno: rc, operation: "sigaction (monitor sampling signal)") }
        let settings = Settings(threshold: max(threshold, .milliseconds(4)), logger: logger, onReport: onReport)
        let startThread = control.withLock { state -> Bool in
            state.settings = settings
            if state.running { return false }
            state.running = true
            state.generation &+= 1
            return true
        }
        guard startThread else { return }
        let generation = control.withLock { $0.generation }
        let box = Unmanaged.passRetained(MonitorStart(generation: generation)).toOpaque()
        let created = sprout_thread_start_detached({ arg in
            let start = Unmanaged<MonitorStart>.fromOpaque(arg!).takeRetainedValue()
            sprout_thread_set_name("sprout-monitor")
            BlockedHubMonitor.watch(generation: start.generation)
            return nil
        }, box)
        guard created == 0 else {
            Unmanaged<MonitorStart>.fromOpaque(box).release()
            control.withLock { $0.running = false }
            throw SystemError(errno: created, operation: "pthread_create (monitor)")
        }
    }

    /// Stops the monitor; it ends within a quarter of its threshold. Reports already being
    /// taken are still delivered.
    public static func stop() {
        control.withLock { state in
            state.running = false
            state.generation &+= 1
        }
    }

    /// In a forked child: the parent's monitor thread does not exist here; it is not running
    /// until ``start(threshold:logger:onReport:)`` is called again.
    static func forgetAfterFork() {
        let old = control.reinitializeAfterFork(State())
        control.withLock { $0.generation = old.generation &+ 1 }
    }

    /// True while the monitor runs.
    public static var isRunning: Bool { control.withLock { $0.running } }

    /// The signal that asks a blocked hub's thread for its backtrace.
    static let samplingSignal = SIGURG

    private struct Settings {
        var threshold: Duration
        var logger: Logger
        var onReport: (@Sendable (Report) -> Void)?
    }

    private struct State {
        var running = false
        var generation: UInt64 = 0
        var settings: Settings?
    }

    private static let control = ThreadLock(State())

    private final class MonitorStart {
        let generation: UInt64
        init(generation: UInt64) { self.generation = generation }
    }

    /// What the monitor remembers of one hub between looks.
    private struct Watch {
        var turns: UInt64
        var since: UInt64
        var reported: Bool
        var failedSamples: Int
    }

    private static func watch(generation: UInt64) {
        var watches: [ObjectIdentifier: Watch] = [:]
        while true {
            guard let settings = control.withLock({ $0.generation == generation ? $0.settings : nil }) else { return }
            let threshold = settings.threshold.nanoseconds
            usleep(UInt32(clamping: threshold / 4 / 1000))
            let now = sprout_now_ns()
            var seen = Set<ObjectIdentifier>()
            for beacon in HubDirectory.all {
                let key = ObjectIdentifier(beacon)
                seen.insert(key)
                let turns = beacon.turns.load(ordering: .relaxed)
                let quiet = beacon.sleeping.load(ordering: .relaxed) || !beacon.hasGreenlets.load(ordering: .relaxed)
                guard var watch = watches[key], watch.turns == turns, !quiet else {
                    watches[key] = Watch(turns: turns, since: now, reported: false, failedSamples: 0)
                    continue
                }
                if !watch.reported && now &- watch.since >= threshold {
                    // A thread that did not answer the sample in time (ThreadSanitizer defers
                    // signals; a loaded machine delays them) is asked again on the next looks;
                    // after three tries the report goes out without a backtrace.
                    let answered = report(beacon, blockedFor: now &- watch.since, settings: settings,
                                          lastTry: watch.failedSamples >= 2)
                    if answered || watch.failedSamples >= 2 {
                        watch.reported = true
                    } else {
                        watch.failedSamples += 1
                    }
                }
                watches[key] = watch
            }
            watches = watches.filter { seen.contains($0.key) }
        }
    }

    /// Samples the blocked hub's thread and hands the report to a thread of its own. Returns
    /// false, reporting nothing, if the thread did not answer and this is not the `lastTry`.
    private static func report(_ beacon: HubBeacon, blockedFor: UInt64, settings: Settings, lastTry: Bool) -> Bool {
        var raw = sprout_backtrace_t()
        let rc = sprout_sample_thread(beacon.thread, samplingSignal, &raw, 100_000_000)
        guard rc == 0 || lastTry else { return false }
        // The hub may have turned meanwhile; the sample still shows what held it.
        let sample = rc == 0 ? RawBacktrace(raw) : nil
        // Naming the frames can take a while (symbol tables, debug information): on a thread
        // of its own, so that the monitor goes on watching the other hubs meanwhile.
        let job = Unmanaged.passRetained(ReportJob {
            deliver(sample, hubNumber: beacon.number, blockedFor: blockedFor, settings: settings)
        }).toOpaque()
        let started = sprout_thread_start_detached({ arg in
            let job = Unmanaged<ReportJob>.fromOpaque(arg!).takeRetainedValue()
            sprout_thread_set_name("sprout-report")
            job.run()
            return nil
        }, job)
        if started != 0 {
            Unmanaged<ReportJob>.fromOpaque(job).takeRetainedValue().run()
        }
        return rc == 0
    }

    private final class ReportJob {
        let run: () -> Void
        init(_ run: @escaping () -> Void) { self.run = run }
    }

    private static func deliver(_ sample: RawBacktrace?, hubNumber: Int, blockedFor: UInt64, settings: Settings) {
        let name = sample.map { $0.greenletName.isEmpty ? "Greenlet-\($0.greenletID)" : $0.greenletName } ?? "unknown"
        let report = Report(hubNumber: hubNumber, greenletID: sample?.greenletID ?? 0, greenletName: name,
                            blockedFor: .nanoseconds(Int64(clamping: blockedFor)),
                            backtrace: sample.map(GreenletBacktrace.init))
        settings.logger.warning("\(report.description)", metadata: [
            "hub": "\(report.hubNumber)",
            "greenlet": "\(report.greenletName)",
            "greenlet_id": "\(report.greenletID)",
            "blocked_ms": "\(blockedFor / 1_000_000)",
        ])
        RuntimeMetrics.recordBlockedHubEpisode(hubNumber: hubNumber)
        settings.onReport?(report)
    }
}
