/// One model's figures from one `sprout load` run of `sprout-bench seed`.
struct SeedResult {
    var name = ""
    var processes = 0
    var rps: Double
    var p50: Double
    var p99: Double
    var errors: Int
    var rssMB: Double
    var pssMB: Double
    /// Per second of the run: requests, errors, p50 and p99 (ms) of the requests started in it.
    var timeline: [(second: Int, requests: Int, errors: Int, p50: Double, p99: Double)]

    /// Reads a `sprout load --json` report: the whole run's figures, or (`window`) those of its
    /// `--window`.
    init(report: JSONValue, usage: GroupUsage, window: Bool) {
        if window, let span = report["window"] {
            rps = span["rps"]?.double ?? 0
            p50 = span["p50_ms"]?.double ?? 0
            p99 = span["p99_ms"]?.double ?? 0
            errors = Int(span["errors"]?.double ?? 0)
        } else {
            rps = report["rps"]?.double ?? 0
            p50 = report["latency_ms"]?["p50"]?.double ?? 0
            p99 = report["latency_ms"]?["p99"]?.double ?? 0
            errors = Int(report["errors"]?["total"]?.double ?? 0)
        }
        rssMB = Double(usage.rssBytes) / 1_048_576
        pssMB = Double(usage.pssBytes) / 1_048_576
        timeline = (report["timeline"]?.array ?? []).map { entry in
            (Int(entry["t"]?.double ?? 0), Int(entry["requests"]?.double ?? 0), Int(entry["errors"]?.double ?? 0),
             entry["p50_ms"]?.double ?? 0, entry["p99_ms"]?.double ?? 0)
        }
    }

    var summary: String {
        "\(format(rps)) req/s, p50 \(format(p50)) ms, p99 \(format(p99)) ms, \(errors) errors, rss \(format(rssMB)) MiB, pss \(format(pssMB)) MiB"
    }

    var jsonObject: String {
        "{\"name\":\"\(name)\",\"processes\":\(processes),\"rps\":\(format(rps)),\"p50_ms\":\(format(p50)),"
            + "\"p99_ms\":\(format(p99)),\"errors\":\(errors),\"rss_mb\":\(format(rssMB)),\"pss_mb\":\(format(pssMB))}"
    }

    static func json(steady: [SeedResult], spike: [SeedResult]) -> String {
        "{\"steady\":[\(steady.map(\.jsonObject).joined(separator: ","))],\"spike\":[\(spike.map(\.jsonObject).joined(separator: ","))]}"
    }

    static func table(steady: [SeedResult], spike: [SeedResult]) -> String {
        func rows(_ results: [SeedResult]) -> [String] {
            [pad("model", 10) + pad("procs", 7) + pad("req/s", 10) + pad("p50 ms", 10) + pad("p99 ms", 10)
                + pad("errors", 8) + pad("rss MiB", 9) + "pss MiB"]
                + results.map { result in
                    pad(result.name, 10) + pad(String(result.processes), 7) + pad(format(result.rps), 10)
                        + pad(format(result.p50), 10) + pad(format(result.p99), 10) + pad(String(result.errors), 8)
                        + pad(format(result.rssMB), 9) + format(result.pssMB)
                }
        }
        return (["steady"] + rows(steady) + ["", "spike (requests started during it)"] + rows(spike))
            .joined(separator: "\n")
    }

    private static func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
    }

    /// At most one decimal, none from 100 up.
    private func format(_ value: Double) -> String { SeedResult.format(value) }

    static func format(_ value: Double) -> String {
        if value >= 100 { return String(Int(value.rounded())) }
        return String((value * 10).rounded() / 10)
    }
}
