import ArgumentParser

@main
struct SproutBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sprout-bench",
        abstract: "Sprout's benchmarks, each beside a peer measured in the same run.",
        subcommands: [Micro.self, EchoBench.self, HTTPBench.self, HTTPClientBench.self, RedisBench.self, MemcachedBench.self, PatchBench.self, SeedBench.self, LoadGenBench.self, ThriftBench.self]
    )
}

struct Micro: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Runtime micro-benchmarks: switch, spawn, events, queues, yields, memory.")

    @Flag(help: "Print one JSON object instead of a table.")
    var json = false

    @Option(help: "Run only the benchmarks whose name contains this text.")
    var filter: String?

    @Option(help: "Measured repetitions per benchmark (the median is reported).")
    var samples = 5

    @Flag(help: "Skip the peers (for profiling Sprout alone).")
    var noPeers = false

    func run() async throws {
        #if DEBUG
        if !json {
            print("WARNING: a debug build; run `swift run -c release sprout-bench micro` for real figures")
        }
        #endif
        var rows: [BenchmarkRow] = []
        for benchmark in MicroBenchmarks.all where filter.map({ benchmark.name.contains($0) }) ?? true {
            let row = try await benchmark.measure(BenchmarkOptions(samples: samples, peers: !noPeers))
            rows.append(row)
            if !json { FileOutput.progress(row) }
        }
        if json {
            print(BenchmarkRow.json(rows))
        } else {
            print(BenchmarkRow.table(rows))
        }
    }
}
