import CSproutContext
import CSproutSystem

/// Measurements that need the runtime's internals. Not API: for `sprout-bench` only.
@_spi(Benchmarks)
public enum RuntimeBenchmarks {
    /// Times `iterations` round trips of a direct switch between the calling greenlet and a
    /// second one (two one-way switches each), through the same C transfer every park uses
    /// (exclusivity hooks and errno included), bypassing the ready queue.
    ///
    /// - Returns: The elapsed time for all round trips.
    public static func switchPingPong(iterations: Int) -> Duration {
        let hub = Hub.current
        let main = hub.current!
        let partner = Greenlet<Void>(hub: hub) { [unowned(unsafe) main] in
            for _ in 0..<iterations {
                hub.rawSwitch(to: main)
            }
        }
        hub.start(partner, name: "ping-pong", stackSize: nil, queue: false)
        let clock = ContinuousClock()
        let start = clock.now
        for _ in 0..<iterations {
            hub.rawSwitch(to: partner)
        }
        let elapsed = clock.now - start
        // Let the partner finish through the ordinary path: queue ourselves, switch once more.
        hub.yielded.push(.passUnretained(main))
        hub.rawSwitch(to: partner)
        return elapsed
    }

    /// Resident memory of the process, in bytes (from /proc/self/statm).
    public static func residentBytes() -> Int {
        sprout_resident_bytes()
    }
}

extension Hub {
    /// Switches straight to `target`, leaving the caller suspended outside every queue: the
    /// caller must be switched back to the same way. Benchmarks only.
    func rawSwitch(to target: AnyGreenlet) {
        let me = currentNode!
        currentNode = Unmanaged.passUnretained(target)
        sprout_context_switch(me._withUnsafeGuaranteedRef { $0.context }, target.context)
    }
}
