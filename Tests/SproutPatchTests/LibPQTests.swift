import CLibPQ
import Glibc
import Sprout
import SproutPatch
import SproutTestSupport
import Testing

/// One connection, one query, through libpq's plain blocking API: PQconnectdb, PQexec.
/// With `startTogether`, the query waits for it after connecting. Returns the query's start
/// and end (seconds), or fails the child.
private func timedQuery(_ connectionString: String, _ sql: String, startTogether: Event? = nil,
                        connected: () -> Void = {}) throws -> (start: Double, end: Double) {
    guard let connection = PQconnectdb(connectionString), PQstatus(connection) == CONNECTION_OK else {
        failChild("PQconnectdb: \(String(cString: PQerrorMessage(nil) ?? strdup("")))")
    }
    defer { PQfinish(connection) }
    connected()
    if let startTogether { _ = try startTogether.wait() }
    let start = monotonicSeconds()
    guard let result = PQexec(connection, sql) else { failChild("PQexec returned nothing") }
    defer { PQclear(result) }
    guard PQresultStatus(result) == PGRES_TUPLES_OK else {
        failChild("\(sql): \(String(cString: PQerrorMessage(connection)))")
    }
    return (start, monotonicSeconds())
}

/// Runs `count` greenlets, each `SELECT pg_sleep(0.2)` on a connection of its own, the queries
/// starting together once every greenlet has connected (on a loaded machine connecting takes
/// longer than a query); returns the queries' wall time and the most in flight at once.
private func pgSleepRun(_ connectionString: String, greenlets count: Int) throws -> (seconds: Double, overlap: Int) {
    var intervals: [(start: Double, end: Double)] = []
    let go = Event()
    var connected = 0
    let workers = (0..<count).map { _ in
        spawn {
            intervals.append(try timedQuery(connectionString, "SELECT pg_sleep(0.2)", startTogether: go) { connected += 1 })
        }
    }
    // Each greenlet connects, then waits (without patching they connect one after another).
    while connected < count { try sleep(for: .milliseconds(5)) }
    let start = monotonicSeconds()
    go.set()
    for worker in workers { try worker.join() }
    let seconds = monotonicSeconds() - start
    guard intervals.count == count else { failChild("\(intervals.count) of \(count) queries finished") }
    return (seconds, maxOverlap(intervals))
}

/// A number after `key=` on a line of `text`.
private func figure(_ key: String, in text: String) -> Double? {
    for word in text.split(whereSeparator: { $0 == " " || $0 == "\n" }) where word.hasPrefix(key + "=") {
        return Double(word.dropFirst(key.count + 1))
    }
    return nil
}

extension PatchSuites {
    @Suite(.timeLimit(.minutes(3)))
    struct LibPQTests {
        @Test func hundredGreenletsRunTheirBlockingQueriesAtOnceWhenPatched() async throws {
            let result = await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
                try inPatchedHub {
                    let postgres = try ScratchPostgres()
                    defer { postgres.stop() }
                    let run = try pgSleepRun(postgres.connectionString, greenlets: 100)
                    report("patched seconds=\(run.seconds) overlap=\(run.overlap)")
                    // 100 × 0.2 s one after another would be 20 s.
                    // A sanitizer pass is several times slower at everything but the sleeps; the overlap
                    // is the proof either way.
                    guard run.seconds < (underSanitizer ? 10 : 2) else { failChild("the patched run took \(run.seconds) s") }
                    guard run.overlap >= 90 else { failChild("only \(run.overlap) queries were in flight at once") }
                }
            }
            explainChildFailure(result)
            let text = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
            #expect(text.contains("patched seconds="), "\(text)")
            print("libpq, 100 greenlets, patched: \(text)")
            if let overlap = figure("overlap", in: text) { #expect(overlap >= 90) }
        }

        @Test func withoutPatchingTheSameQueriesRunOneAfterAnother() async throws {
            let result = await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
                // No patchAll(): libpq's poll blocks the hub's thread, so greenlets take turns.
                try GreenThread.run {
                    let postgres = try ScratchPostgres()
                    defer { postgres.stop() }
                    let run = try pgSleepRun(postgres.connectionString, greenlets: 100)
                    report("unpatched seconds=\(run.seconds) overlap=\(run.overlap)")
                    guard run.overlap == 1 else { failChild("\(run.overlap) unpatched queries overlapped") }
                    guard run.seconds >= 19.5 else { failChild("the unpatched run took only \(run.seconds) s") }
                }
            }
            explainChildFailure(result)
            let text = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
            #expect(text.contains("unpatched seconds="), "\(text)")
            print("libpq, 100 greenlets, unpatched: \(text)")
        }

        @Test func aKillInsideAQueryMakesLibpqFailAndTheGreenletEnds() async throws {
            let result = await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
                try inPatchedHub {
                    let postgres = try ScratchPostgres()
                    defer { postgres.stop() }
                    var libpqSaw = ""
                    var reachedSwitchPoint = false
                    var threwAtSwitchPoint = false
                    let victim = spawn {
                        guard let connection = PQconnectdb(postgres.connectionString), PQstatus(connection) == CONNECTION_OK else {
                            failChild("connect")
                        }
                        let result = PQexec(connection, "SELECT pg_sleep(30)")
                        libpqSaw = String(cString: PQerrorMessage(connection))
                        if let result, PQresultStatus(result) == PGRES_TUPLES_OK { failChild("the query finished") }
                        PQclear(result)
                        PQfinish(connection)   // a connection that saw an error is discarded
                        reachedSwitchPoint = true
                        do { try sleep(for: .milliseconds(1)) } catch is GreenletExit { threwAtSwitchPoint = true; throw GreenletExit() }
                    }
                    try sleep(for: .milliseconds(300))
                    let killedAt = monotonicSeconds()
                    victim.kill()
                    let took = monotonicSeconds() - killedAt
                    guard victim.isReady else { failChild("the greenlet outlived its kill") }
                    guard took < 10 else { failChild("the kill took \(took) s (the query sleeps 30)") }
                    guard reachedSwitchPoint, threwAtSwitchPoint else { failChild("the kill was not delivered after libpq returned") }
                    guard !libpqSaw.isEmpty else { failChild("libpq reported no error") }
                    report("libpq said: \(libpqSaw)")
                    // Nothing is left hanging: a new connection serves at once.
                    _ = try timedQuery(postgres.connectionString, "SELECT 1")
                }
            }
            explainChildFailure(result)
            let text = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
            #expect(text.contains("libpq said:"), "\(text)")
            print("kill inside PQexec: \(text)")
        }

        @Test func aTimeoutInsideAQueryThrowsTimeoutAfterLibpqReportsIt() async throws {
            let result = await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
                try inPatchedHub {
                    let postgres = try ScratchPostgres()
                    defer { postgres.stop() }
                    guard let connection = PQconnectdb(postgres.connectionString), PQstatus(connection) == CONNECTION_OK else {
                        failChild("connect")
                    }
                    var message = ""
                    let start = monotonicSeconds()
                    do {
                        try withTimeout(.milliseconds(300)) {
                            let result = PQexec(connection, "SELECT pg_sleep(30)")
                            message = String(cString: PQerrorMessage(connection))
                            PQclear(result)
                        }
                        failChild("withTimeout returned normally")
                    } catch is Timeout {
                        let took = monotonicSeconds() - start
                        guard took < 10 else { failChild("the timeout took \(took) s (the query sleeps 30)") }
                    }
                    guard message.contains("timed out") else { failChild("libpq said '\(message)'") }
                    report("libpq said: \(message)")
                    PQfinish(connection)
                    // The greenlet carries no stale timeout: its next wait is an ordinary one.
                    try sleep(for: .milliseconds(400))
                    _ = try timedQuery(postgres.connectionString, "SELECT 1")
                }
            }
            explainChildFailure(result)
            let text = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
            #expect(text.contains("libpq said:"), "\(text)")
            print("timeout inside PQexec: \(text)")
        }
    }
}
