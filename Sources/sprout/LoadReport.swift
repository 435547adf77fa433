import Histogram

/// The figures a `sprout load` run prints: a report for people, or one JSON object.
///
/// JSON fields: `url`, `connections`, `threads`, `duration_s`, `rate` (null in closed loop),
/// `requests` (responses of any status), `rps`, `bytes_read`, `unfinished` (cut short by the
/// end: in flight, or with a rate never started because no connection was free), `errors` (`connect`, `timeout`,
/// `reset`, `status`, `protocol`, `total`), `status_codes`, `latency_ms` (`p50`, `p90`,
/// `p99`, `p99_9`, `max`, `mean`); `window` (`from_s`, `to_s`, `requests`, `rps`, `errors`,
/// `p50_ms`, `p90_ms`, `p99_ms`, `max_ms`) with `--window`; and `timeline` (one entry a
/// second: `t`, `requests`, `errors`, `p50_ms`, `p99_ms`, `max_ms`) with `--timeline`.
struct LoadReport {
    let url: String
    let connections: Int
    let threads: Int
    let seconds: Double
    let rate: Double?
    let statistics: LoadStatistics
    let timeline: Bool
    let window: (from: Int, to: Int)?

    private var latency: Histogram<UInt64> { statistics.latency }
    private var rps: Double { Double(statistics.responses) / seconds }

    func text() -> String {
        let mode = rate.map { "fixed rate \(format($0)) req/s" } ?? "closed loop"
        var lines = ["sprout load \(url): \(format(seconds)) s, \(connections) connections, \(threads) thread\(threads == 1 ? "" : "s"), \(mode)"]
        lines.append("  requests   \(statistics.responses) (\(format(rps)) req/s), \(format(Double(statistics.bytesRead) / 1_048_576)) MiB read, "
                     + "\(statistics.unfinished) unfinished at the end")
        let errors = LoadErrorKind.allCases.map { "\($0.name) \(statistics.errors[$0.rawValue])" }.joined(separator: ", ")
        lines.append("  errors     \(statistics.errorCount) (\(errors))")
        let codes = statistics.statusCounts.keys.sorted().map { "\($0): \(statistics.statusCounts[$0]!)" }.joined(separator: ", ")
        if !codes.isEmpty { lines.append("  statuses   \(codes)") }
        lines.append("  latency ms p50 \(format(latency.milliseconds(at: 50)))  p90 \(format(latency.milliseconds(at: 90)))  "
                     + "p99 \(format(latency.milliseconds(at: 99)))  p99.9 \(format(latency.milliseconds(at: 99.9)))  "
                     + "max \(format(statistics.responses == 0 ? 0 : milliseconds(latency.max)))")
        if let window {
            let interval = statistics.window(from: window.from, to: window.to)
            lines.append("  window \(window.from)-\(window.to) s: \(interval.responses) requests, \(interval.errors) errors, "
                         + "p50 \(format(interval.latency.milliseconds(at: 50))) ms, p99 \(format(interval.latency.milliseconds(at: 99))) ms")
        }
        return lines.joined(separator: "\n")
    }

    func json() -> String {
        var fields: [String] = [
            "\"url\":\(jsonString(url))", "\"connections\":\(connections)", "\"threads\":\(threads)",
            "\"duration_s\":\(format(seconds))", "\"rate\":\(rate.map(format) ?? "null")",
            "\"requests\":\(statistics.responses)", "\"rps\":\(format(rps))", "\"bytes_read\":\(statistics.bytesRead)",
            "\"unfinished\":\(statistics.unfinished)",
        ]
        let errors = LoadErrorKind.allCases.map { "\"\($0.name)\":\(statistics.errors[$0.rawValue])" } + ["\"total\":\(statistics.errorCount)"]
        fields.append("\"errors\":{\(errors.joined(separator: ","))}")
        let codes = statistics.statusCounts.keys.sorted().map { "\"\($0)\":\(statistics.statusCounts[$0]!)" }
        fields.append("\"status_codes\":{\(codes.joined(separator: ","))}")
        let empty = statistics.responses == 0
        fields.append("\"latency_ms\":{\"p50\":\(format(latency.milliseconds(at: 50))),\"p90\":\(format(latency.milliseconds(at: 90))),"
                      + "\"p99\":\(format(latency.milliseconds(at: 99))),\"p99_9\":\(format(latency.milliseconds(at: 99.9))),"
                      + "\"max\":\(format(empty ? 0 : milliseconds(latency.max))),\"mean\":\(format(empty ? 0 : latency.mean / 1000))}")
        if let window {
            let interval = statistics.window(from: window.from, to: window.to)
            let span = Double(min(window.to, Int(seconds.rounded(.up))) - window.from)
            fields.append("\"window\":{\"from_s\":\(window.from),\"to_s\":\(window.to),\"requests\":\(interval.responses),"
                          + "\"rps\":\(format(span > 0 ? Double(interval.responses) / span : 0)),\"errors\":\(interval.errors),"
                          + intervalLatency(interval) + "}")
        }
        if timeline {
            let entries = statistics.seconds.enumerated().map { second, interval in
                "{\"t\":\(second),\"requests\":\(interval.responses),\"errors\":\(interval.errors),\(intervalLatency(interval))}"
            }
            fields.append("\"timeline\":[\(entries.joined(separator: ","))]")
        }
        return "{" + fields.joined(separator: ",") + "}"
    }

    private func intervalLatency(_ interval: LoadInterval) -> String {
        let histogram = interval.latency
        let max = histogram.totalCount == 0 ? 0 : milliseconds(histogram.max)
        return "\"p50_ms\":\(format(histogram.milliseconds(at: 50))),\"p90_ms\":\(format(histogram.milliseconds(at: 90))),"
            + "\"p99_ms\":\(format(histogram.milliseconds(at: 99))),\"max_ms\":\(format(max))"
    }
}

/// A number with at most three decimals and no trailing zeros (also valid JSON).
func format(_ value: Double) -> String {
    guard value.isFinite else { return "0" }
    let rounded = (value * 1000).rounded() / 1000
    if rounded == rounded.rounded() && abs(rounded) < 1e15 { return String(Int64(rounded)) }
    return String(rounded)
}

/// `text` as a JSON string literal.
func jsonString(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if scalar.value < 0x20 {
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
    }
    return out + "\""
}
