import Glibc

/// One result line: Sprout's figure and its peers', measured in the same run.
struct BenchmarkRow {
    let name: String
    let unit: String
    let sprout: Double
    let peers: [(name: String, value: Double)]

    static func json(_ rows: [BenchmarkRow]) -> String {
        let items = rows.map { row in
            let peers = row.peers.map { "\"\($0.name)\":\(format($0.value))" }.joined(separator: ",")
            return "{\"name\":\"\(row.name)\",\"unit\":\"\(row.unit)\",\"sprout\":\(format(row.sprout)),\"peers\":{\(peers)}}"
        }
        return "{\"benchmarks\":[\(items.joined(separator: ","))]}"
    }

    static func table(_ rows: [BenchmarkRow]) -> String {
        var lines = [pad("benchmark", 22) + pad("unit", 14) + pad("sprout", 14) + "peers"]
        for row in rows {
            let peers = row.peers.map { "\($0.name) \(format($0.value))  (\(ratio(row.sprout, $0.value, higherIsBetter: row.unit.hasSuffix("/s"))))" }
            lines.append(pad(row.name, 22) + pad(row.unit, 14) + pad(format(row.sprout), 14) + peers.joined(separator: "; "))
        }
        return lines.joined(separator: "\n")
    }

    /// "sprout 23.6x better" / "sprout 3.3x worse": lower is better for times and bytes,
    /// higher for rates.
    private static func ratio(_ sprout: Double, _ peer: Double, higherIsBetter: Bool) -> String {
        guard sprout > 0, peer > 0 else { return "-" }
        let factor = higherIsBetter ? sprout / peer : peer / sprout
        return factor >= 1 ? "sprout \(format(factor))x better" : "sprout \(format(1 / factor))x worse"
    }

    static func format(_ value: Double) -> String {
        if value >= 100 { return String(Int(value.rounded())) }
        let scaled = (value * 10).rounded() / 10
        return String(scaled)
    }

    private static func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
    }
}

enum FileOutput {
    static func progress(_ row: BenchmarkRow) {
        var line = "  measured \(row.name)\n"
        line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    }
}

/// The median of `samples` runs of `run`, after one discarded warm-up run.
func median(_ samples: Int, _ run: () async throws -> Double) async rethrows -> Double {
    _ = try await run()
    var values: [Double] = []
    for _ in 0..<max(1, samples) { values.append(try await run()) }
    values.sort()
    return values[values.count / 2]
}

extension Duration {
    var nanoseconds: Double {
        Double(components.seconds) * 1e9 + Double(components.attoseconds) / 1e9
    }
}

/// The median of `samples` runs of `run` (no warm-up: the runs warm themselves up).
func medianOfRuns(_ samples: Int, _ run: () throws -> Double) rethrows -> Double {
    var values: [Double] = []
    for _ in 0..<max(1, samples) { values.append(try run()) }
    values.sort()
    return values[values.count / 2]
}

/// Starts a server process and waits (up to 10 s) until it accepts connections on `port`.
/// - Throws: ``BenchFailure`` with the server's log if it exits or never listens.
func startListeningServer(name: String, arguments: [String], port: Int, logPath: String) throws -> ChildProcess {
    let server = try ChildProcess(name: name, arguments: arguments, logPath: logPath)
    let deadline = monotonicSeconds() + 10
    while true {
        if let fd = connectLoopback(port: port, timeout: 1) {
            close(fd)
            return server
        }
        guard server.isRunning, monotonicSeconds() < deadline else {
            server.stop()
            throw BenchFailure("\(name) did not start: \(server.log)")
        }
        sleepSeconds(0.02)
    }
}
