import Glibc

/// The SVG chart `sprout-bench seed` writes: each model's per-second p50 (solid) and p99
/// (dashed) latency through the spike run, on a logarithmic axis, the spike shaded.
///
/// Seconds in which no request of a model completed have no point (its line breaks there, and
/// a lone second is a dot: solid p50, hollow p99); requests that failed are counted in the
/// tables, not drawn.
struct SeedChart {
    let results: [SeedResult]
    let spike: (Int, Int)
    let seconds: Int
    let title: String
    let subtitle: String

    private let width = 960.0
    private let height = 540.0
    private let left = 70.0
    private let right = 170.0
    private let top = 70.0
    private let bottom = 50.0
    /// The y axis: 1 ms to 100 s.
    private let lowest = 1.0
    private let highest = 100_000.0

    private static let colours = ["#d62728", "#ff7f0e", "#8c564b", "#9467bd", "#1f77b4", "#2ca02c", "#17becf", "#7f7f7f"]

    init(results: [SeedResult], spike: (Int, Int), seconds: Int, title: String, subtitle: String) {
        self.results = results
        self.spike = spike
        self.seconds = seconds
        self.title = title
        self.subtitle = subtitle
    }

    private func x(_ second: Double) -> Double { left + (width - left - right) * second / Double(max(1, seconds)) }

    private func y(_ milliseconds: Double) -> Double {
        let clamped = min(max(milliseconds, lowest), highest)
        let fraction = (log10(clamped) - log10(lowest)) / (log10(highest) - log10(lowest))
        return height - bottom - (height - top - bottom) * fraction
    }

    func svg() -> String {
        var parts: [String] = []
        parts.append("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" font-family=\"sans-serif\" font-size=\"12\">")
        parts.append("<rect width=\"100%\" height=\"100%\" fill=\"white\"/>")
        parts.append(text(left, 24, title, size: 16, weight: "bold"))
        parts.append(text(left, 44, subtitle, size: 12, fill: "#444"))
        // The spike.
        parts.append("<rect x=\(q(x(Double(spike.0)))) y=\(q(top)) width=\(q(x(Double(spike.1)) - x(Double(spike.0)))) height=\(q(height - top - bottom)) fill=\"#fde0dd\"/>")
        parts.append(text(x(Double(spike.0)) + 4, top + 14, "spike", size: 11, fill: "#a33"))
        // Axes and grid.
        var decade = lowest
        while decade <= highest {
            let label = decade >= 1000 ? "\(Int(decade / 1000)) s" : "\(Int(decade)) ms"
            parts.append("<line x1=\(q(left)) x2=\(q(width - right)) y1=\(q(y(decade))) y2=\(q(y(decade))) stroke=\"#ddd\"/>")
            parts.append(text(left - 8, y(decade) + 4, label, size: 11, anchor: "end", fill: "#444"))
            decade *= 10
        }
        for second in stride(from: 0, through: seconds, by: 5) {
            parts.append("<line x1=\(q(x(Double(second)))) x2=\(q(x(Double(second)))) y1=\(q(height - bottom)) y2=\(q(height - bottom + 5)) stroke=\"#444\"/>")
            parts.append(text(x(Double(second)), height - bottom + 18, "\(second) s", size: 11, anchor: "middle", fill: "#444"))
        }
        parts.append("<line x1=\(q(left)) x2=\(q(width - right)) y1=\(q(height - bottom)) y2=\(q(height - bottom)) stroke=\"#444\"/>")
        parts.append("<line x1=\(q(left)) x2=\(q(left)) y1=\(q(top)) y2=\(q(height - bottom)) stroke=\"#444\"/>")
        parts.append(text(left + (width - left - right) / 2, height - 12, "seconds into the run (requests by the second they started in)", size: 12, anchor: "middle"))
        // One model a colour: p50 solid, p99 dashed.
        for (index, result) in results.enumerated() {
            let colour = Self.colours[index % Self.colours.count]
            // A second's point sits in its middle.
            let points = result.timeline.filter { $0.requests > 0 && Double($0.second) < Double(seconds) }
            for (values, dash) in [(points.map { ($0.second, $0.p50) }, ""), (points.map { ($0.second, $0.p99) }, " stroke-dasharray=\"5 4\"")] {
                for segment in segments(values) {
                    if segment.count == 1, let only = segment.first {
                        // A lone second (its neighbours had no completed request): a dot.
                        let fill = dash.isEmpty ? colour : "white"
                        parts.append("<circle cx=\(q(x(Double(only.0) + 0.5))) cy=\(q(y(only.1))) r=\"3.5\" fill=\"\(fill)\" stroke=\"\(colour)\" stroke-width=\"2\"/>")
                        continue
                    }
                    let path = segment.map { "\(q0(x(Double($0.0) + 0.5))),\(q0(y($0.1)))" }.joined(separator: " ")
                    parts.append("<polyline points=\"\(path)\" fill=\"none\" stroke=\"\(colour)\" stroke-width=\"2\"\(dash)/>")
                }
            }
            let legendY = top + 10 + Double(index) * 20
            parts.append("<line x1=\(q(width - right + 16)) x2=\(q(width - right + 40)) y1=\(q(legendY)) y2=\(q(legendY)) stroke=\"\(colour)\" stroke-width=\"3\"/>")
            parts.append(text(width - right + 46, legendY + 4, result.name, size: 12))
        }
        let noteY = top + 20 + Double(results.count) * 20
        parts.append(text(width - right + 16, noteY, "solid: p50", size: 11, fill: "#444"))
        parts.append(text(width - right + 16, noteY + 16, "dashed: p99", size: 11, fill: "#444"))
        parts.append("</svg>")
        return parts.joined(separator: "\n") + "\n"
    }

    /// Runs of consecutive seconds (a missing second breaks the line).
    private func segments(_ values: [(Int, Double)]) -> [[(Int, Double)]] {
        var runs: [[(Int, Double)]] = []
        for value in values {
            if let last = runs.last?.last, last.0 + 1 == value.0 { runs[runs.count - 1].append(value) } else { runs.append([value]) }
        }
        return runs
    }

    private func q(_ value: Double) -> String { "\"\(q0(value))\"" }
    private func q0(_ value: Double) -> String { String((value * 10).rounded() / 10) }

    private func text(_ x: Double, _ y: Double, _ content: String, size: Int, weight: String = "normal",
                      anchor: String = "start", fill: String = "#000") -> String {
        let escaped = content.replacing("&", with: "&amp;").replacing("<", with: "&lt;").replacing(">", with: "&gt;")
        return "<text x=\(q(x)) y=\(q(y)) font-size=\"\(size)\" font-weight=\"\(weight)\" text-anchor=\"\(anchor)\" fill=\"\(fill)\">\(escaped)</text>"
    }
}

private func log10(_ value: Double) -> Double { Glibc.log10(value) }

