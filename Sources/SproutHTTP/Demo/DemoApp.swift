import Glibc
import HTTPTypes
import Sprout

/// The routes of `sprout serve`, a contract that tests outside this repository drive:
///
/// | route | answer |
/// | --- | --- |
/// | `GET /` | 200 `text/plain` `Hello, World!` |
/// | `POST /echo` | 200, the request body as received (Content-Length or chunked) |
/// | `GET /stream?n=K` | 200, K chunks `chunk-<i>\n` (i from 0); close-delimited for HTTP/1.0 |
/// | `GET /sleep?ms=M` | sleeps M ms cooperatively, then 200 `slept` |
/// | `GET /headers` | one line `name: value` per request header, names lowercased |
/// | `GET /spin?ms=M` | computes for M ms *without yielding* (a CPU hog: the blocked-hub monitor reports it), then 200 `spun` |
/// | `GET /whoami` | 200 `pid <P> hub <H>`: the process and the hub that served it (workers, `--threads`) |
/// | `GET /libc-sleep?ms=M` | calls libc's `usleep` as blocking C code would, then 200 `slept in libc`: it blocks the hub (every other request waits) unless the process is patched (SproutPatch linked in, or `LD_PRELOAD=libSproutPatchPreload.so`), when only this request waits |
///
/// `HEAD` on each `GET` route answers its headers; other paths 404; unknown methods 501.
public enum DemoApp {
    /// The most chunks `/stream` sends (a larger `n` is a 400), so a request cannot tie up the
    /// server for ever.
    public static let maxStreamChunks = 1_000_000
    /// The longest `/sleep`, in milliseconds (a larger `ms` is a 400).
    public static let maxSleep = 600_000

    /// The longest `/spin` and `/libc-sleep`, in milliseconds (a larger `ms` is a 400).
    public static let maxSpin = 10_000

    /// A router serving the demo routes.
    public static func router() -> Router {
        let router = Router()
        router.get("/") { _ in
            .text("Hello, World!")
        }
        router.post("/echo") { request in
            let bytes = try request.body.readAll()
            var fields = HTTPFields()
            fields[.contentType] = request.headerFields[.contentType] ?? "application/octet-stream"
            return Response(headerFields: fields, body: .bytes(bytes))
        }
        router.get("/stream") { request in
            let count = try integer(request.query["n"], name: "n", range: 0...maxStreamChunks)
            return Response(headerFields: [.contentType: "text/plain; charset=utf-8"], body: .stream { writer in
                for i in 0..<count { try writer.write("chunk-\(i)\n") }
            })
        }
        router.get("/sleep") { request in
            let milliseconds = try integer(request.query["ms"], name: "ms", range: 0...maxSleep)
            try sleep(for: .milliseconds(milliseconds))
            return .text("slept")
        }
        router.get("/spin") { request in
            let milliseconds = try integer(request.query["ms"], name: "ms", range: 0...maxSpin)
            _ = spinWithoutYielding(for: .milliseconds(milliseconds))
            return .text("spun")
        }
        router.get("/libc-sleep") { request in
            let milliseconds = try integer(request.query["ms"], name: "ms", range: 0...maxSpin)
            // As careful C code does: a signal (the blocked-hub monitor samples a blocked hub
            // with one) cuts usleep short with EINTR, and the rest is slept again.
            let end = ContinuousClock.now + .milliseconds(milliseconds)
            while case let left = end - ContinuousClock.now, left > .zero {
                if usleep(useconds_t(left.components.seconds * 1_000_000 + left.components.attoseconds / 1_000_000_000_000)) != 0
                    && errno != EINTR { break }
            }
            return .text("slept in libc")
        }
        router.get("/whoami") { _ in
            .text("pid \(getpid()) hub \(Hub.current.number)\n")
        }
        router.get("/headers") { request in
            var text = ""
            if let authority = request.head.authority { text += "host: \(authority)\n" }
            for field in request.headerFields {
                text += "\(field.name.canonicalName): \(field.value)\n"
            }
            return .text(text)
        }
        return router
    }

    /// Burns the CPU for `duration` without a switch point: every other greenlet of the hub
    /// waits meanwhile. Shows what the blocked-hub monitor reports.
    @inline(never)
    public static func spinWithoutYielding(for duration: Duration) -> UInt64 {
        let end = ContinuousClock.now + duration
        var state: UInt64 = 0x2545_F491_4F6C_DD1D
        while true {
            for _ in 0..<10_000 { state = state &* 6_364_136_223_846_793_005 &+ 1 }
            if ContinuousClock.now >= end { return state }
        }
    }

    private static func integer(_ text: String?, name: String, range: ClosedRange<Int>) throws -> Int {
        guard let text, let value = Int(text), range.contains(value) else {
            throw HTTPError(.badRequest, message: "\(name) must be an integer in \(range.lowerBound)...\(range.upperBound)")
        }
        return value
    }
}
