import Glibc
import HTTPTypes
import Sprout
import SproutHTTP
import SproutTestSupport
import Testing

extension HTTPSuites {
    /// `sprout load` against servers whose behaviour is known: its statistics must say what the
    /// servers did.
    @Suite(.timeLimit(.minutes(3)))
    struct LoadCommandTests {
        @Test func knownDelaysGiveKnownPercentiles() async throws {
            try await green(timeout: .seconds(60)) {
                // Every tenth request takes 200 ms, the others 20 ms.
                var served = 0
                let router = Router()
                router.get("/delay") { _ in
                    served += 1
                    try sleep(for: .milliseconds(served % 10 == 0 ? 200 : 20))
                    return .text("ok")
                }
                try withServer(responder: router) { port, _ in
                    let report = try load(["-c", "10", "-d", "3", "http://127.0.0.1:\(port)/delay"])
                    let requests = report.number("requests")
                    #expect(requests >= 100, "only \(requests) requests")
                    #expect(report.number("errors", "total") == 0)
                    #expect(report.number("status_codes", "200") == requests)
                    let p50 = report.number("latency_ms", "p50")
                    let p99 = report.number("latency_ms", "p99")
                    let max = report.number("latency_ms", "max")
                    #expect(p50 >= 19.9 && p50 < 60, "p50 \(p50) ms, the fast requests take 20 ms")
                    #expect(p99 >= 199 && p99 < 400, "p99 \(p99) ms, the slow tenth takes 200 ms")
                    #expect(max >= 199)
                    // 10% of the requests but 200/(9·20 + 200) ≈ 53% of a connection's time.
                    #expect(report.number("latency_ms", "mean") >= 37)
                }
            }
        }

        @Test func fixedRateChargesTheStallItCaused() async throws {
            try await green(timeout: .seconds(60)) {
                try withServer(responder: DemoApp.router()) { port, _ in
                    let url = "http://127.0.0.1:\(port)/"
                    // The whole hub (and so the server) stops for 500 ms, 1 s into each run.
                    func stallAfterASecond() -> Greenlet<Void> {
                        spawn {
                            try sleep(for: .seconds(1))
                            let end = ContinuousClock.now + .milliseconds(500)
                            while ContinuousClock.now < end {}
                        }
                    }
                    var stall = stallAfterASecond()
                    let rate = try load(["-c", "20", "-d", "3", "--rate", "200", url])
                    try stall.join()
                    stall = stallAfterASecond()
                    let closed = try load(["-c", "20", "-d", "3", url])
                    try stall.join()

                    #expect(rate.number("errors", "total") == 0 && closed.number("errors", "total") == 0)
                    #expect(rate.number("rate") == 200)
                    let scheduled = rate.number("requests")
                    #expect(scheduled >= 500 && scheduled <= 601, "\(scheduled) of the 600 scheduled requests")
                    // The requests meant to start during the stall waited for its end: the first
                    // of them ~500 ms, the last ~0; about 100 of 600, so p99 is near 500 ms and p90
                    // well above the closed loop's p99, where only the 20 requests on the wire
                    // saw the stall among thousands.
                    let rateP90 = rate.number("latency_ms", "p90")
                    let rateP99 = rate.number("latency_ms", "p99")
                    let closedP99 = closed.number("latency_ms", "p99")
                    #expect(rateP99 >= 400, "fixed rate p99 \(rateP99) ms through a 500 ms stall")
                    #expect(rateP90 > closedP99, "fixed rate p90 \(rateP90) ms, closed loop p99 \(closedP99) ms")
                    #expect(closed.number("latency_ms", "max") >= 400, "the closed loop still saw the stall in its max")
                    #expect(closed.number("requests") > 10 * 20)
                    #expect(rate.number("requests") + rate.number("unfinished") >= 598,
                            "every scheduled start is either a response or unfinished: \(rate.text)")
                }
            }
        }

        @Test func framesEveryKindOfResponseBody() async throws {
            try await green(timeout: .seconds(60)) {
                let router = Router()
                router.get("/chunked") { _ in
                    Response(body: .stream { writer in
                        for i in 0..<5 { try writer.write("chunk \(i)\n") }
                    })
                }
                router.get("/empty") { _ in Response(status: .noContent) }
                router.get("/length") { _ in .text(String(repeating: "x", count: 40_000)) }
                try withServer(responder: router) { port, _ in
                    for path in ["/chunked", "/empty", "/length"] {
                        let report = try load(["-c", "4", "-d", "1", "http://127.0.0.1:\(port)\(path)"])
                        #expect(report.number("requests") > 20, "\(path)")
                        #expect(report.number("errors", "total") == 0, "\(path): \(report.text)")
                    }
                    let head = try load(["-c", "2", "-d", "1", "-X", "HEAD", "http://127.0.0.1:\(port)/length"])
                    #expect(head.number("requests") > 20 && head.number("errors", "total") == 0, "\(head.text)")
                    // Two hubs (threads) of two connections each, their figures merged.
                    let big = try load(["-t", "2", "-c", "4", "-d", "1", "http://127.0.0.1:\(port)/length"])
                    #expect(big.number("threads") == 2 && big.number("requests") > 20)
                    #expect(big.number("bytes_read") >= big.number("requests") * 40_000)
                    #expect(big.number("status_codes", "200") == big.number("requests"))
                }
            }
            // Raw servers: chunk extensions and trailers, close-delimited bodies, garbage.
            try await green(timeout: .seconds(60)) {
                let raw = StreamServer(port: 0) { connection, _ in
                    var pending: [UInt8] = []
                    while true {
                        let bytes = try connection.recv(maxLength: 4096)
                        if bytes.isEmpty { return }
                        pending += bytes
                        while let end = find(Array("\r\n\r\n".utf8), in: pending) {
                            let head = String(decoding: pending[..<end], as: UTF8.self)
                            pending.removeFirst(end + 4)
                            if head.hasPrefix("GET /trailers") {
                                try connection.sendAll("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                                       + "5;name=value\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-Trailer: yes\r\n\r\n")
                            } else if head.hasPrefix("GET /until-close") {
                                try connection.sendAll("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nthe body ends with the stream")
                                return
                            } else if head.hasPrefix("GET /continue") {
                                try connection.sendAll("HTTP/1.1 100 Continue\r\n\r\n")
                                try sleep(for: .milliseconds(1))
                                try connection.sendAll("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                            } else if head.hasPrefix("GET /extra") {
                                try connection.sendAll("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n")
                            } else if head.hasPrefix("GET /gzip-then-chunked") {
                                try connection.sendAll("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nraw bytes to the end")
                                return
                            } else if head.hasPrefix("GET /forgets-to-say-close") {
                                // Closes after every response without saying so: the next request on
                                // the kept-alive connection finds it closed and goes again on a new one.
                                try connection.sendAll("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                                return
                            } else if head.hasPrefix("GET /bad-chunk") {
                                try connection.sendAll("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1 0\r\nx\r\n0\r\n\r\n")
                            } else if head.hasPrefix("GET /garbage") {
                                try connection.sendAll("HELLO THERE\r\n\r\n")
                            } else if head.hasPrefix("GET /unavailable") {
                                try connection.sendAll("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
                            } else if head.hasPrefix("GET /reset") {
                                return  // closed before any response: the load tool's "reset"
                            } else {
                                try sleep(for: .seconds(30))  // /silent
                            }
                        }
                    }
                }
                try raw.start()
                defer { raw.stop(timeout: .milliseconds(200)) }
                let base = "http://127.0.0.1:\(raw.port)"
                let trailers = try load(["-c", "2", "-d", "1", base + "/trailers"])
                #expect(trailers.number("requests") > 20 && trailers.number("errors", "total") == 0, "\(trailers.text)")
                let untilClose = try load(["-c", "2", "-d", "1", base + "/until-close"])
                #expect(untilClose.number("requests") > 20 && untilClose.number("errors", "total") == 0, "\(untilClose.text)")

                // Interim 100 responses are skipped; the final one is what counts.
                let interim = try load(["-c", "2", "-d", "1", base + "/continue"])
                #expect(interim.number("requests") > 20 && interim.number("errors", "total") == 0, "\(interim.text)")
                #expect(interim.number("status_codes", "200") == interim.number("requests"))
                #expect(!interim.text.contains("\"100\""))
                let gzip = try load(["-c", "2", "-d", "1", base + "/gzip-then-chunked"])
                #expect(gzip.number("requests") > 20 && gzip.number("errors", "total") == 0, "\(gzip.text)")
                let forgetful = try load(["-c", "2", "-d", "1", base + "/forgets-to-say-close"])
                #expect(forgetful.number("requests") > 20 && forgetful.number("errors", "total") == 0, "\(forgetful.text)")
                // Bytes past a response answer nothing that was asked: the connection is dropped.
                let extra = try load(["-c", "2", "-d", "1", base + "/extra"], expectingSuccess: false)
                #expect(extra.number("errors", "protocol") > 0 && extra.number("requests") == 0)
                let badChunk = try load(["-c", "2", "-d", "1", base + "/bad-chunk"], expectingSuccess: false)
                #expect(badChunk.number("errors", "protocol") > 0 && badChunk.number("requests") == 0)

                let garbage = try load(["-c", "2", "-d", "1", base + "/garbage"], expectingSuccess: false)
                #expect(garbage.number("errors", "protocol") > 0 && garbage.number("requests") == 0)
                let unavailable = try load(["-c", "2", "-d", "1", base + "/unavailable"])
                #expect(unavailable.number("errors", "status") == unavailable.number("requests"))
                #expect(unavailable.number("status_codes", "503") == unavailable.number("requests"))
                let reset = try load(["-c", "2", "-d", "1", base + "/reset"], expectingSuccess: false)
                #expect(reset.number("errors", "reset") > 0 && reset.number("requests") == 0)
                let silent = try load(["-c", "2", "-d", "1.5", "--timeout", "0.3", base + "/silent"], expectingSuccess: false)
                #expect(silent.number("errors", "timeout") >= 2 && silent.number("requests") == 0)

                var closedPort = 0
                do {
                    let probe = try Socket.listen(port: 0)
                    closedPort = probe.localAddress.port
                    probe.close()
                }
                let refused = try load(["-c", "2", "-d", "0.5", "http://127.0.0.1:\(closedPort)/"], expectingSuccess: false)
                #expect(refused.number("errors", "connect") > 0)
            }
        }

        @Test func refusesWhatItCannotSend() async throws {
            try await green(timeout: .seconds(30)) {
                let sprout = sproutExecutable()
                for arguments in [["https://127.0.0.1/"], ["ftp://x/"], ["-c", "0", "http://127.0.0.1/"],
                                  ["-d", "soon", "http://127.0.0.1/"], ["-H", "no colon", "http://127.0.0.1/"],
                                  ["--rate", "-1", "http://127.0.0.1/"], ["--window", "5:2", "http://127.0.0.1/"],
                                  ["--window", "1:3", "http://127.0.0.1/"], ["--timeline", "http://127.0.0.1/"],
                                  ["http://no-such-host.invalid/"]] {
                    let result = try runCommand([sprout, "load", "-d", "1"] + arguments)
                    #expect(result.status != 0, "\(arguments) was accepted")
                }
            }
        }
    }
}

/// The JSON report `sprout load --json` printed, read just enough for the tests.
struct LoadJSONReport {
    let text: String

    /// The number at `path` (object keys), or -1 when it is not there.
    func number(_ path: String...) -> Double {
        var scope = Substring(text)
        for (index, key) in path.enumerated() {
            guard let range = scope.firstRange(of: "\"\(key)\":") else { return -1 }
            scope = scope[range.upperBound...]
            if index < path.count - 1 { continue }
            let digits = scope.prefix { "-0123456789.e".contains($0) }
            return Double(digits) ?? -1
        }
        return -1
    }
}

/// Runs `sprout load --json` with `arguments` and returns its report; it must exit 0 unless
/// `expectingSuccess` is false (no request succeeded: exit 1).
func load(_ arguments: [String], expectingSuccess: Bool = true) throws -> LoadJSONReport {
    let result = try runCommand([sproutExecutable(), "load", "--json"] + arguments, timeout: .seconds(40))
    #expect(result.status == (expectingSuccess ? 0 : 1), "sprout load \(arguments): status \(result.status): \(result.output)")
    return LoadJSONReport(text: result.output)
}
