@_spi(Benchmarks) import Sprout
import SproutAsync

/// A micro-benchmark: how to measure Sprout, and its peer.
struct BenchmarkOptions: Sendable {
    let samples: Int
    let peers: Bool
}

struct MicroBenchmark: Sendable {
    let name: String
    let unit: String
    let measure: @Sendable (BenchmarkOptions) async throws -> BenchmarkRow
}

enum MicroBenchmarks {
    static let all: [MicroBenchmark] = [switchRow, spawnJoinRow, eventRoundTripRow, queueHandoffRow,
                                        sleep0Row(100, "sleep0"), sleep0Row(10_000, "sleep0_10k"), idleRSSRow,
                                        threadPoolRow, asyncBridgeRow, monitoredRow, EchoMicro.row]

    static let switchRow = MicroBenchmark(name: "switch", unit: "ns/switch") { options in let samples = options.samples
        let iterations = 2_000_000
        let sprout = try await median(samples) {
            try await GreenThread.run {
                RuntimeBenchmarks.switchPingPong(iterations: iterations).nanoseconds / Double(2 * iterations)
            }
        }
        let peer = options.peers ? await median(samples) { await ConcurrencyPeers.continuationPingPong(100_000) } : 0
        return BenchmarkRow(name: "switch", unit: "ns/switch", sprout: sprout,
                            peers: [("swift_concurrency_continuation", peer)])
    }

    static let spawnJoinRow = MicroBenchmark(name: "spawn_join", unit: "ns/op") { options in let samples = options.samples
        let iterations = 500_000
        let sprout = try await median(samples) {
            try await GreenThread.run {
                let clock = ContinuousClock()
                let start = clock.now
                for _ in 0..<iterations {
                    try spawn {}.join()
                }
                return (clock.now - start).nanoseconds / Double(iterations)
            }
        }
        let peer = options.peers ? await median(samples) { await ConcurrencyPeers.taskGroupSpawnJoin(100_000) } : 0
        return BenchmarkRow(name: "spawn_join", unit: "ns/op", sprout: sprout,
                            peers: [("swift_concurrency_task_group", peer)])
    }

    static let eventRoundTripRow = MicroBenchmark(name: "event_roundtrip", unit: "ns/roundtrip") { options in let samples = options.samples
        let sprout = try await median(samples) { try await eventRoundTrip(500_000) }
        let peer = options.peers ? await median(samples) { await ConcurrencyPeers.continuationPingPong(100_000) * 2 } : 0
        return BenchmarkRow(name: "event_roundtrip", unit: "ns/roundtrip", sprout: sprout,
                            peers: [("swift_concurrency_continuation", peer)])
    }

    /// The blocked-hub monitor's cost: `event_roundtrip` with the monitor watching (threshold
    /// 100 ms), beside the same round trip unwatched.
    static let monitoredRow = MicroBenchmark(name: "event_roundtrip_monitored", unit: "ns/roundtrip") { options in
        let samples = options.samples
        try BlockedHubMonitor.start(threshold: .milliseconds(100))
        let watched = try await median(samples) { try await eventRoundTrip(500_000) }
        BlockedHubMonitor.stop()
        let unwatched = options.peers ? try await median(samples) { try await eventRoundTrip(500_000) } : 0
        return BenchmarkRow(name: "event_roundtrip_monitored", unit: "ns/roundtrip", sprout: watched,
                            peers: [("sprout_unmonitored", unwatched)])
    }

    /// Nanoseconds per set/wait round trip between two greenlets.
    static func eventRoundTrip(_ iterations: Int) async throws -> Double {
        try await GreenThread.run {
            let ping = Event()
            let pong = Event()
            let partner = spawn {
                for _ in 0..<iterations {
                    try ping.wait()
                    ping.clear()
                    pong.set()
                }
            }
            let clock = ContinuousClock()
            let start = clock.now
            for _ in 0..<iterations {
                ping.set()
                try pong.wait()
                pong.clear()
            }
            let elapsed = clock.now - start
            try partner.join()
            return elapsed.nanoseconds / Double(iterations)
        }
    }

    static let queueHandoffRow = MicroBenchmark(name: "queue_handoff", unit: "ns/item") { options in let samples = options.samples
        let items = 1_000_000
        let sprout = try await median(samples) {
            try await GreenThread.run {
                let queue = Queue<Int>(maxSize: 64)
                let clock = ContinuousClock()
                let start = clock.now
                let consumer = spawn { () throws -> Int in
                    var sum = 0
                    for _ in 0..<items { sum &+= try queue.get() }
                    return sum
                }
                for item in 0..<items { try queue.put(item) }
                _ = try consumer.get()
                return (clock.now - start).nanoseconds / Double(items)
            }
        }
        let peer = options.peers ? await median(samples) { await ConcurrencyPeers.asyncStreamHandoff(300_000) } : 0
        return BenchmarkRow(name: "queue_handoff", unit: "ns/item", sprout: sprout,
                            peers: [("swift_concurrency_async_stream", peer)])
    }

    static func sleep0Row(_ greenlets: Int, _ name: String) -> MicroBenchmark {
        MicroBenchmark(name: name, unit: "ns/yield") { options in let samples = options.samples
            let yields = 2_000_000
            let perGreenlet = yields / greenlets
            let sprout = try await median(samples) {
                try await GreenThread.run {
                    let start = Event()
                    let all = (0..<greenlets).map { options in
                        spawn {
                            try start.wait()
                            for _ in 0..<perGreenlet { try sleep(for: .zero) }
                        }
                    }
                    try sleep(for: .zero)
                    let clock = ContinuousClock()
                    let begin = clock.now
                    start.set()
                    try joinAll(all)
                    return (clock.now - begin).nanoseconds / Double(perGreenlet * greenlets)
                }
            }
            let peer = options.peers ? await median(samples) { await ConcurrencyPeers.taskYield(tasks: greenlets, total: 200_000) } : 0
            return BenchmarkRow(name: name, unit: "ns/yield", sprout: sprout, peers: [("swift_concurrency_task_yield", peer)])
        }
    }

    static let idleRSSRow = MicroBenchmark(name: "idle_rss", unit: "bytes/parked") { options in
        let count = 100_000
        let sprout = try await GreenThread.run {
            let event = Event()
            let before = RuntimeBenchmarks.residentBytes()
            let all = (0..<count).map { _ in spawn { try event.wait() } }
            try sleep(for: .zero)   // every greenlet starts and parks
            let after = RuntimeBenchmarks.residentBytes()
            event.set()
            try joinAll(all)
            return Double(after - before) / Double(count)
        }
        let peer = options.peers ? await ConcurrencyPeers.parkedTaskRSS(count) : 0
        return BenchmarkRow(name: "idle_rss", unit: "bytes/parked", sprout: sprout, peers: [("swift_concurrency_task", peer)])
    }

    static let threadPoolRow = roundTripRow("threadpool_roundtrip") { index in
        _ = try ThreadPool.shared.run { index }
    }

    /// A greenlet awaiting a Swift concurrency task through `awaitAsync` and getting its
    /// result back (greenlet → task → greenlet), beside a hop to Dispatch and back.
    static let asyncBridgeRow = roundTripRow("async_bridge_roundtrip") { index in
        _ = try awaitAsync { index }
    }

    /// A row timing `trip` from a greenlet, 50,000 times, beside a hop from a task to
    /// Dispatch and back.
    static func roundTripRow(_ name: String, _ trip: @escaping @Sendable (Int) throws -> Void) -> MicroBenchmark {
        MicroBenchmark(name: name, unit: "ns/roundtrip") { options in
            let samples = options.samples
            let iterations = 50_000
            let sprout = try await median(samples) {
                try await GreenThread.run {
                    let clock = ContinuousClock()
                    let start = clock.now
                    for index in 0..<iterations { try trip(index) }
                    return (clock.now - start).nanoseconds / Double(iterations)
                }
            }
            let peer = options.peers ? await median(samples) { await ConcurrencyPeers.dispatchRoundTrip(iterations) } : 0
            return BenchmarkRow(name: name, unit: "ns/roundtrip", sprout: sprout,
                                peers: [("dispatch_global_continuation", peer)])
        }
    }
}
