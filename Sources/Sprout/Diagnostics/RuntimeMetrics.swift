import CoreMetrics

/// The runtime's figures in swift-metrics, for whatever backend the process bootstrapped
/// (Prometheus, StatsD, OpenTelemetry): greenlets alive, hub loop lag, thread-pool queue
/// depth and blocked-hub episodes.
///
/// | metric | kind | dimensions | recorded |
/// |---|---|---|---|
/// | `sprout_greenlets_alive` | gauge | hub | by the sampler, each interval |
/// | `sprout_hub_loop_lag_seconds` | timer | hub | by the sampler: how late its timer fired |
/// | `sprout_thread_pool_queued_jobs` | gauge | — | by the sampler (``ThreadPool/shared``) |
/// | `sprout_blocked_hub_episodes_total` | counter | hub | by ``BlockedHubMonitor``, per report |
///
/// Loop lag is the time from a timer's due time to its firing: a hub busy with greenlets that
/// compute between switches fires its timers late, and every timeout, sleep and wake-up on
/// it is late by as much.
///
/// ```swift
/// MetricsSystem.bootstrap(PrometheusMetricsFactory())
/// let sampler = RuntimeMetrics.startSampling()   // on each hub to be watched
/// defer { sampler?.kill() }
/// ```
public enum RuntimeMetrics {
    /// Starts a greenlet on the current hub that records the hub's figures every `interval`
    /// until it is killed (or the hub ends).
    ///
    /// A sleeping sampler is a pending timer: a hub whose other greenlets all wait for ever is
    /// not reported as deadlocked while it runs.
    ///
    /// - Parameters:
    ///   - interval: Time between samples.
    ///   - dimensions: Added to every metric the sampler records (`[("worker", "2")]`); use
    ///     the same names on every hub of the process (swift-prometheus stops the process when
    ///     `sprout_thread_pool_queued_jobs` has series both with and without labels).
    /// - Returns: The sampler's greenlet, or nil (and nothing started) when no metrics backend
    ///   has been bootstrapped.
    /// - Precondition: `interval` is positive.
    @discardableResult
    public static func startSampling(interval: Duration = .seconds(1),
                                     dimensions: [(String, String)] = []) -> Greenlet<Void>? {
        precondition(interval > .zero, "RuntimeMetrics: the sampling interval must be positive")
        guard isBackendBootstrapped else { return nil }
        let hub = Hub.current
        let perHub = dimensions + [("hub", "\(hub.number)")]
        let greenlets = Gauge(label: "sprout_greenlets_alive", dimensions: perHub)
        let lag = Timer(label: "sprout_hub_loop_lag_seconds", dimensions: perHub)
        let queued = Gauge(label: "sprout_thread_pool_queued_jobs", dimensions: dimensions)
        return spawn(name: "sprout metrics sampler") {
            let clock = ContinuousClock()
            var due = clock.now
            while true {
                greenlets.record(hub.liveGreenletCount)
                queued.record(ThreadPool.shared.queuedJobCount)
                due += interval
                let now = clock.now
                if due < now { due = now + interval }  // stalled past a whole interval: start afresh
                try sleep(for: due - now)
                let late = clock.now - due
                lag.recordNanoseconds(late > .zero ? Int64(clamping: late.wholeNanoseconds) : 0)
            }
        }
    }

    /// True when `MetricsSystem.bootstrap` has installed a backend (the default discards).
    public static var isBackendBootstrapped: Bool { !(MetricsSystem.factory is NOOPMetricsHandler) }

    /// Counts one blocked-hub report (called on the monitor's reporting thread).
    static func recordBlockedHubEpisode(hubNumber: Int) {
        guard isBackendBootstrapped else { return }
        Counter(label: "sprout_blocked_hub_episodes_total", dimensions: [("hub", "\(hubNumber)")]).increment()
    }
}
