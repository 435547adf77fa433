import Glibc
import Sprout
import SproutHTTP
import SproutTestSupport
import Testing

/// `sprout serve --metrics-port`: the Prometheus endpoint, scraped after load, counts exactly
/// the requests sent, by method, route and status, beside the runtime's figures.
extension HTTPSuites {
    @Suite(.timeLimit(.minutes(3)))
    struct MetricsEndpointTests {
        @Test func theScrapeAfterLoadCountsEveryRequestByRouteAndStatus() async throws {
            try await green(timeout: .seconds(60)) { () throws in
                let metricsPort = try freePort()
                let server = try ServeProcess(["--workers", "0", "--metrics-port", "\(metricsPort)"])
                defer { server.stop() }
                let metricsURL = "http://127.0.0.1:\(metricsPort)/metrics"
                let client = HTTPClient(configuration: .init(maxConnectionsPerHost: 16))
                defer { client.close() }
                _ = try waitForScrape(client, metricsURL)

                // 160 hellos from 8 greenlets at once, 30 echoes, 10 unknown paths, 5 wrong
                // methods and 3 heads that do not parse.
                let hellos = (0..<8).map { _ in
                    spawn { for _ in 0..<20 { _ = try client.get(server.url("/")) } }
                }
                for greenlet in hellos { try greenlet.get() }
                let payload = [UInt8](repeating: UInt8(ascii: "x"), count: 100)
                for _ in 0..<30 { _ = try client.send(.post, server.url("/echo"), body: .bytes(payload)) }
                for index in 0..<10 { #expect(try client.get(server.url("/nothing/\(index)")).status == .notFound) }
                for _ in 0..<5 { #expect(try client.send(.delete, server.url("/")).status == .methodNotAllowed) }
                for _ in 0..<3 {
                    let socket = try Socket.connect(host: "127.0.0.1", port: server.port)
                    defer { socket.close() }
                    try socket.sendAll("GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
                    var buffer = [UInt8](repeating: 0, count: 512)
                    let count = try buffer.withUnsafeMutableBytes { try socket.recv(into: $0) }
                    #expect(String(decoding: buffer[..<count], as: UTF8.self).hasPrefix("HTTP/1.1 400"))
                }
                // The application's port has no metrics.
                #expect(try client.get(server.url("/metrics")).status == .notFound)
                // A hub held for 300 ms: one blocked-hub episode (the monitor's threshold is 100 ms).
                _ = try client.get(server.url("/spin?ms=300"))

                // The blocked-hub report is delivered from a thread of its own; the sampler
                // has sampled loop lag once a second has passed.
                try sleep(for: .milliseconds(1200))
                let scrape = try waitForScrape(client, metricsURL) { $0.value("sprout_blocked_hub_episodes_total") == 1 }
                let requests = "sprout_http_requests_total"
                #expect(scrape.value(requests, ["method": "GET", "route": "/", "status": "200"]) == 160)
                #expect(scrape.value(requests, ["method": "POST", "route": "/echo", "status": "200"]) == 30)
                #expect(scrape.value(requests, ["method": "GET", "route": "unmatched", "status": "404"]) == 11)
                #expect(scrape.value(requests, ["method": "DELETE", "route": "unmatched", "status": "405"]) == 5)
                #expect(scrape.value(requests, ["method": "_INVALID", "route": "rejected", "status": "400"]) == 3)
                #expect(scrape.value(requests, ["method": "GET", "route": "/spin", "status": "200"]) == 1)
                #expect(scrape.total(requests) == 160 + 30 + 11 + 5 + 3 + 1, "nothing else was counted, the scrapes included")
                #expect(scrape.value("sprout_http_request_duration_seconds_count", ["route": "/", "status": "200"]) == 160)
                let spinSeconds = scrape.value("sprout_http_request_duration_seconds_sum", ["route": "/spin"]) ?? 0
                #expect(spinSeconds >= 0.3 && spinSeconds < 5, "the timer recorded the 300 ms request as \(spinSeconds) s")

                // Bytes: at least the bodies sent and the hellos answered, heads included.
                #expect((scrape.value("sprout_http_received_bytes_total") ?? 0) >= Double(30 * 100 + 196 * 16), "the bodies and at least 16 bytes a request")
                #expect((scrape.value("sprout_http_sent_bytes_total") ?? 0) >= Double(160 * (13 + 60) + 30 * 100))
                #expect(scrape.value("sprout_http_connections_open", ["hub": "1"]) != nil)
                #expect(scrape.value("sprout_http_connections_idle", ["hub": "1"]) != nil)
                #expect((scrape.value("sprout_greenlets_alive", ["hub": "1"]) ?? 0) >= 2, "the acceptor and the sampler at least")
                #expect((scrape.value("sprout_hub_loop_lag_seconds_count", ["hub": "1"]) ?? 0) >= 1)
                #expect(scrape.value("sprout_thread_pool_queued_jobs") == 0)
                #expect(scrape.value("sprout_blocked_hub_episodes_total", ["hub": "1"]) == 1)
            }
        }

        @Test func eachWorkerServesItsOwnMetricsOnItsOwnPortLabelledByWorker() async throws {
            try await green(timeout: .seconds(60)) { () throws in
                let base = try consecutiveFreePorts(2)
                let server = try ServeProcess(["--workers", "2", "--metrics-port", "\(base)"])
                defer { server.stop() }
                let client = HTTPClient(configuration: .init(maxConnectionsPerHost: 32))
                defer { client.close() }
                let urls = [base, base + 1].map { "http://127.0.0.1:\($0)/metrics" }
                for url in urls { _ = try waitForScrape(client, url) }
                // Fresh connections each time, so that the kernel spreads them over both workers.
                let senders = (0..<10).map { _ in
                    spawn {
                        for _ in 0..<20 {
                            _ = try client.get(server.url("/"), headers: [.connection: "close"])
                        }
                    }
                }
                for sender in senders { try sender.get() }
                var total = 0.0
                for (index, url) in urls.enumerated() {
                    let scrape = try waitForScrape(client, url)
                    let mine = scrape.value("sprout_http_requests_total", ["worker": "\(index)", "route": "/"]) ?? 0
                    #expect(scrape.total("sprout_http_requests_total") == mine, "worker \(index) reports only itself")
                    #expect(scrape.value("sprout_greenlets_alive", ["worker": "\(index)"]) != nil)
                    total += mine
                }
                #expect(total == 200, "the workers' counts add up to the requests sent")
                // The application's port stays the application's.
                #expect(try ServeProcessCheck.metricsPortRejected())
            }
        }
    }
}

/// `sprout serve` refuses a metrics port equal to the application's.
enum ServeProcessCheck {
    static func metricsPortRejected() throws -> Bool {
        let result = try runCommand(["/bin/sh", "-c", "'\(sproutExecutable())' serve --port 9000 --metrics-port 9000 --workers 0 2>&1"])
        return result.status == 64 && result.output.contains("listener of their own")
    }
}

/// `count` free loopback ports in a row (the first of them), for a worker's metrics port each.
func consecutiveFreePorts(_ count: Int) throws -> Int {
    for _ in 0..<50 {
        let first = try Socket.listen(host: "127.0.0.1", port: 0)
        defer { first.close() }
        let base = first.localAddress.port
        guard base + count - 1 <= 65535 else { continue }
        let rest = (1..<count).compactMap { try? Socket.listen(host: "127.0.0.1", port: base + $0) }
        rest.forEach { $0.close() }
        if rest.count == count - 1 { return base }
    }
    throw TestSupportError(description: "no \(count) free ports in a row")
}

/// Scrapes `url` until it answers (and `until` holds, for up to 5 s).
@discardableResult
func waitForScrape(_ client: HTTPClient, _ url: String, until: (PrometheusScrape) -> Bool = { _ in true }) throws -> PrometheusScrape {
    let deadline = ContinuousClock.now + .seconds(5)
    while true {
        if let response = try? client.get(url), response.status == .ok {
            #expect(response.headerFields[.contentType]?.hasPrefix("text/plain; version=0.0.4") == true)
            let scrape = PrometheusScrape(response.text)
            if until(scrape) || ContinuousClock.now > deadline { return scrape }
        } else if ContinuousClock.now > deadline {
            throw TestSupportError(description: "no metrics at \(url)")
        }
        try sleep(for: .milliseconds(50))
    }
}

/// Prometheus text format, as series (name and labels) and values.
struct PrometheusScrape {
    struct Sample {
        let name: String
        let labels: [String: String]
        let value: Double
    }

    let samples: [Sample]

    init(_ text: String) {
        samples = text.split(separator: "\n").compactMap { line -> Sample? in
            guard !line.hasPrefix("#"), let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else {
                return nil
            }
            let series = line[..<space]
            guard let open = series.firstIndex(of: "{") else { return Sample(name: String(series), labels: [:], value: value) }
            var labels: [String: String] = [:]
            for pair in series[series.index(after: open)..<series.index(before: series.endIndex)].split(separator: ",") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                guard parts.count == 2 else { continue }
                labels[String(parts[0])] = String(parts[1].dropFirst().dropLast())
            }
            return Sample(name: String(series[..<open]), labels: labels, value: value)
        }
    }

    /// The sum over series named `name` whose labels include `labels`; nil if there are none.
    func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        let matching = samples.filter { sample in
            sample.name == name && labels.allSatisfy { sample.labels[$0.key] == $0.value }
        }
        return matching.isEmpty ? nil : matching.reduce(0) { $0 + $1.value }
    }

    /// The sum over every series named `name`.
    func total(_ name: String) -> Double { value(name) ?? 0 }
}
