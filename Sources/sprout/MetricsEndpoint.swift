import Metrics
import Prometheus
import Sprout
import SproutHTTP

/// `sprout serve --metrics-port`: swift-metrics bootstrapped with swift-prometheus, and the
/// registry served as Prometheus text at `GET /metrics` on a listener of its own, never on the
/// application's port.
enum MetricsEndpoint {
    /// The process's registry. Bootstrapped in the master before workers fork, so each worker
    /// starts with an empty copy of its own.
    static let registry = PrometheusCollectorRegistry()

    /// Installs the Prometheus backend for the whole process (once).
    static func bootstrap() {
        var factory = PrometheusMetricsFactory(registry: registry)
        // Requests served from memory take microseconds: the default buckets start at 5 ms.
        let fine: [Duration] = [
            .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2),
            .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
            .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10),
        ]
        factory.durationHistogramBuckets = [
            "sprout_http_request_duration_seconds": fine,
            "sprout_hub_loop_lag_seconds": fine,
        ]
        MetricsSystem.bootstrap(factory)
    }

    /// Starts the endpoint's server on the current hub. `SO_REUSEPORT`, so that a worker
    /// replacing one that is still draining can bind the same port.
    ///
    /// - Throws: What ``HTTPServer/start()`` throws (`EADDRINUSE`, …).
    static func start(host: String, port: Int) throws -> HTTPServer {
        let router = Router()
        router.get("/metrics") { _ in
            Response(status: .ok, headerFields: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                     body: .bytes(registry.emitToBuffer()))
        }
        var configuration = HTTPServer.Configuration(host: host, port: port, maxConnections: 64, reusePort: true)
        configuration.recordsMetrics = false
        let server = HTTPServer(configuration: configuration, responder: router)
        try server.start()
        return server
    }
}
