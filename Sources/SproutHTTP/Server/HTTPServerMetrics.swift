import CoreMetrics
import Sprout

/// A server's swift-metrics instruments, made by ``HTTPServer/start()`` only when a metrics
/// backend has been bootstrapped (`MetricsSystem.bootstrap`) and the configuration records
/// metrics; otherwise the server holds none and pays one nil check per request.
///
/// Everything is recorded on the server's hub thread. Handles for each (method, route,
/// status) are made once and kept, so a request costs a dictionary lookup, a counter
/// increment and a timer record, never a trip through the factory.
///
/// | metric | kind | dimensions |
/// |---|---|---|
/// | `sprout_http_requests_total` | counter | method, route, status |
/// | `sprout_http_request_duration_seconds` | timer | method, route, status |
/// | `sprout_http_connections_open` | gauge | hub |
/// | `sprout_http_connections_idle` | gauge | hub |
/// | `sprout_http_received_bytes_total` | counter | — |
/// | `sprout_http_sent_bytes_total` | counter | — |
///
/// Each also carries ``HTTPServer/Configuration/metricsDimensions``.
final class HTTPServerMetrics {
    private struct SeriesKey: Hashable {
        let method: String
        let route: String
        let status: Int
    }

    private struct Series {
        let requests: Counter
        let duration: Timer
    }

    private let dimensions: [(String, String)]
    private var series: [SeriesKey: Series] = [:]
    let receivedBytes: Counter
    let sentBytes: Counter
    private let openConnections: Gauge
    private let idleConnections: Gauge

    /// Instruments for a server on the current hub, or nil when no backend is bootstrapped.
    static func makeIfBootstrapped(configuration: HTTPServer.Configuration) -> HTTPServerMetrics? {
        guard configuration.recordsMetrics, !(MetricsSystem.factory is NOOPMetricsHandler) else { return nil }
        return HTTPServerMetrics(dimensions: configuration.metricsDimensions)
    }

    private init(dimensions: [(String, String)]) {
        self.dimensions = dimensions
        receivedBytes = Counter(label: "sprout_http_received_bytes_total", dimensions: dimensions)
        sentBytes = Counter(label: "sprout_http_sent_bytes_total", dimensions: dimensions)
        // Servers on other hubs of the process report their own connections.
        let perHub = dimensions + [("hub", "\(Hub.current.number)")]
        openConnections = Gauge(label: "sprout_http_connections_open", dimensions: perHub)
        idleConnections = Gauge(label: "sprout_http_connections_idle", dimensions: perHub)
    }

    /// Records one answered request.
    ///
    /// - Parameters:
    ///   - method: The method's name; unknown methods are recorded as `_OTHER`, so that a
    ///     client cannot create series at will.
    ///   - route: The route pattern the router matched, `unmatched` when none did, or `other`
    ///     when the responder is not a ``Router``; `rejected` for requests that failed to parse.
    func recordRequest(method: String, route: String, status: Int, nanoseconds: Int64) {
        let key = SeriesKey(method: method, route: route, status: status)
        let found: Series
        if let existing = series[key] {
            found = existing
        } else {
            let labels = dimensions + [("method", method), ("route", route), ("status", "\(status)")]
            found = Series(requests: Counter(label: "sprout_http_requests_total", dimensions: labels),
                           duration: Timer(label: "sprout_http_request_duration_seconds", dimensions: labels))
            series[key] = found
        }
        found.requests.increment()
        found.duration.recordNanoseconds(nanoseconds)
    }

    /// Records the number of open connections after it changed.
    func recordOpenConnections(_ count: Int) { openConnections.record(count) }

    /// Records the number of idle connections after it changed.
    func recordIdleConnections(_ count: Int) { idleConnections.record(count) }
}
