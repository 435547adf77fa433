// Differential test: Sprout's HTTP/1.1 request parser against swift-nio's NIOHTTP1 decoder
// (llhttp, strict defaults) over a corpus and deterministic mutations of it.
//
//   differential [corpus-folder] [--report PATH] [--examples N]
//
// Defaults (run from Fuzz/Differential): ../corpus/http-request, ../../.build-fuzz/differential-report.txt.
// Only the first request of each input is compared.

import Foundation
import NIOCore
import NIOEmbedded
import NIOHTTP1
import SproutParser

/// One side's view of the first request.
enum Outcome {
    case accepted(Request)
    case rejected(String)
    case incomplete

    var kind: String {
        switch self {
        case .accepted: "accepts"
        case .rejected: "rejects"
        case .incomplete: "incomplete"
        }
    }
}

struct Request {
    var method: String
    var target: String
    var version: String
    var headers: [(String, String)]
    var framing: String
    var body: [UInt8]
    var bodyComplete: Bool
    var trailers: [(String, String)]
}

func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

func runSprout(_ input: [UInt8]) -> Outcome {
    switch sproutParseFirstRequest(input) {
    case .incomplete:
        return .incomplete
    case .rejected(let status, let reason):
        return .rejected("\(status) \(reason)")
    case .accepted(let r):
        return .accepted(Request(
            method: text(r.method), target: text(r.target), version: "1.\(r.minorVersion)",
            headers: r.fields.map { (text($0.name), text($0.value)) }, framing: r.framing,
            body: r.body, bodyComplete: r.bodyComplete, trailers: r.trailers.map { (text($0.name), text($0.value)) }))
    }
}

func runNIO(_ input: [UInt8]) -> Outcome {
    let channel = EmbeddedChannel()
    defer { _ = try? channel.finish(acceptAlreadyClosed: true) }
    do {
        try channel.pipeline.syncOperations.addHandler(
            ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes)))
    } catch {
        fatalError("cannot set up the NIO pipeline: \(error)")
    }
    var failure: (any Error)?
    do {
        try channel.writeInbound(channel.allocator.buffer(bytes: input))
    } catch {
        failure = error
    }
    var request: Request?
    var ended = false
    while !ended, let part = try? channel.readInbound(as: HTTPServerRequestPart.self) {
        switch part {
        case .head(let head):
            let headers = head.headers.map { ($0.name, $0.value) }
            var framing = "none"
            if head.headers.contains(name: "transfer-encoding") {
                framing = "chunked"
            } else if let cl = head.headers.first(name: "content-length"), cl != "0" {
                framing = "length(\(cl))"
            }
            request = Request(
                method: head.method.rawValue, target: head.uri,
                version: "\(head.version.major).\(min(head.version.minor, 1))",
                headers: headers, framing: framing, body: [], bodyComplete: false, trailers: [])
        case .body(let buffer):
            request?.body += Array(buffer.readableBytesView)
        case .end(let trailers):
            request?.bodyComplete = true
            request?.trailers = trailers.map { $0.map { ($0.name, $0.value) } } ?? []
            ended = true
        }
    }
    if let request, ended { return .accepted(request) }
    if let failure { return .rejected(describe(failure)) }
    if let request { return .accepted(request) }
    return .incomplete
}

func describe(_ error: any Error) -> String {
    if let e = error as? HTTPParserError { return "\(e)" }
    return "\(type(of: error)): \(error)"
}

/// Which fields of two accepted requests differ, or nil.
func difference(_ a: Request, _ b: Request) -> String? {
    var parts: [String] = []
    if a.method != b.method { parts.append("method") }
    if a.target != b.target { parts.append("target") }
    if a.version != b.version { parts.append("version") }
    if a.headers.count != b.headers.count {
        parts.append("header count")
    } else if !zip(a.headers, b.headers).allSatisfy({ $0.0.0 == $0.1.0 && $0.0.1 == $0.1.1 }) {
        parts.append("header values")
    }
    if a.framing != b.framing { parts.append("framing") }
    if a.body != b.body || a.bodyComplete != b.bodyComplete { parts.append("body") }
    let at = a.trailers.map { "\($0.0.lowercased()):\($0.1)" }, bt = b.trailers.map { "\($0.0.lowercased()):\($0.1)" }
    if a.bodyComplete && b.bodyComplete && at != bt { parts.append("trailers") }
    return parts.isEmpty ? nil : parts.joined(separator: "+")
}

func escape(_ bytes: [UInt8], limit: Int = 400) -> String {
    var s = ""
    for b in bytes.prefix(limit) {
        switch b {
        case 0x0D: s += "\\r"
        case 0x0A: s += "\\n"
        case 0x09: s += "\\t"
        case 0x5C: s += "\\\\"
        case 0x20...0x7E: s.unicodeScalars.append(Unicode.Scalar(b))
        default: s += String(format: "\\x%02x", b)
        }
    }
    if bytes.count > limit { s += "…(\(bytes.count) bytes)" }
    return s
}

func summary(_ o: Outcome) -> String {
    switch o {
    case .incomplete: return "incomplete"
    case .rejected(let why): return "rejected(\(why))"
    case .accepted(let r):
        let headers = r.headers.map { "\($0.0)=\(escape(Array($0.1.utf8), limit: 40))" }.joined(separator: ",")
        return "accepted(\(r.method) \(escape(Array(r.target.utf8), limit: 60)) \(r.version) [\(r.headers.count): \(headers)] "
            + "\(r.framing) body=\(r.body.count)B\(r.bodyComplete ? "" : " (incomplete)") \"\(escape(r.body, limit: 40))\""
            + (r.trailers.isEmpty ? "" : " trailers=\(r.trailers.map { "\($0.0)=\($0.1)" })") + ")"
    }
}

// MARK: Mutations

func headLines(_ seed: [UInt8]) -> [Range<Int>] {
    // Field lines: after the first CRLF, up to the first empty line. Each range includes its CRLF.
    var lines: [Range<Int>] = []
    var start: Int?
    var i = 0
    while i + 1 < seed.count {
        if seed[i] == 0x0D && seed[i + 1] == 0x0A {
            if let s = start {
                if i == s { break }
                lines.append(s..<(i + 2))
            }
            start = i + 2
            i += 2
        } else {
            i += 1
        }
    }
    return lines
}

func mutations(of seed: [UInt8]) -> [[UInt8]] {
    var out: [[UInt8]] = []
    let inserted: [UInt8] = [0x20, 0x09, 0x0D, 0x0A, 0x00, 0x0B, 0x80, 0xFF]
    for i in 0..<seed.count {
        for mask: UInt8 in [0x01, 0x20, 0x80] {
            var m = seed
            m[i] ^= mask
            out.append(m)
        }
        var d = seed
        d.remove(at: i)
        out.append(d)
    }
    for i in 0...seed.count {
        for b in inserted {
            var m = seed
            m.insert(b, at: i)
            out.append(m)
        }
    }
    let lines = headLines(seed)
    for line in lines {
        var m = seed
        m.insert(contentsOf: seed[line], at: line.upperBound)
        out.append(m)
        // The same line with its name upper- and lower-cased.
        if let colon = seed[line].firstIndex(of: 0x3A) {
            var up = seed, low = seed
            for k in line.lowerBound..<colon {
                up[k] = (0x61...0x7A).contains(up[k]) ? up[k] - 0x20 : up[k]
                low[k] = (0x41...0x5A).contains(low[k]) ? low[k] + 0x20 : low[k]
            }
            out.append(up)
            out.append(low)
        }
    }
    let headEnd = (lines.last?.upperBound ?? 0)
    out.append(seed.map { (0x61...0x7A).contains($0) ? $0 - 0x20 : $0 })
    out.append(seed.map { (0x41...0x5A).contains($0) ? $0 + 0x20 : $0 })
    out.append(seed.enumerated().map { $0.offset < headEnd && (0x41...0x5A).contains($0.element) ? $0.element + 0x20 : $0.element })
    return out
}

// MARK: Main

@main
struct Differential {
    static func main() throws {
        var corpus = "../corpus/http-request"
        var reportPath = "../../.build-fuzz/differential-report.txt"
        var examples = 30
        var args = CommandLine.arguments.dropFirst()
        while let arg = args.popFirst() {
            switch arg {
            case "--report": reportPath = args.popFirst() ?? reportPath
            case "--examples": examples = Int(args.popFirst() ?? "") ?? examples
            default: corpus = arg
            }
        }
        let files = try FileManager.default.contentsOfDirectory(atPath: corpus).sorted()
        var seeds: [[UInt8]] = []
        for name in files {
            guard let data = FileManager.default.contents(atPath: corpus + "/" + name) else { continue }
            seeds.append(Array(data))
        }
        var seen = Set<[UInt8]>()
        var inputs: [[UInt8]] = []
        for seed in seeds where seen.insert(seed).inserted { inputs.append(seed) }
        for seed in seeds where seed.count <= 512 {
            for m in mutations(of: seed) where seen.insert(m).inserted { inputs.append(m) }
        }

        var agreeCounts: [String: Int] = [:]
        var classCounts: [String: Int] = [:]
        var signatureCounts: [String: Int] = [:]
        var firstBySignature: [String: String] = [:]
        var signatureOrder: [String] = []
        var report = ""
        for input in inputs {
            let sprout = runSprout(input)
            let nio = runNIO(input)
            let cls: String
            let detail: String
            switch (sprout, nio) {
            case (.accepted(let a), .accepted(let b)):
                guard let diff = difference(a, b) else { agreeCounts["both accept, same", default: 0] += 1; continue }
                cls = "both accept but differ"
                detail = diff
            case (.rejected, .rejected):
                agreeCounts["both reject", default: 0] += 1
                continue
            case (.incomplete, .incomplete):
                agreeCounts["both incomplete", default: 0] += 1
                continue
            case (.rejected(let why), .accepted(let b)) where !b.bodyComplete:
                // NIO took the head and the body so far; it may yet reject the rest.
                cls = "sprout rejects, nio accepts (body incomplete)"
                detail = why
            case (.rejected(let why), _):
                cls = "sprout rejects, nio \(nio.kind)"
                detail = why
            case (.accepted(let a), .rejected(let why)) where !a.bodyComplete:
                // Sprout took the head and the body so far; it may yet reject the rest.
                cls = "sprout accepts (body incomplete), nio rejects"
                detail = why
            case (_, .rejected(let why)):
                cls = "sprout \(sprout.kind), nio rejects"
                detail = why
            default:
                cls = "sprout \(sprout.kind), nio \(nio.kind)"
                detail = ""
            }
            classCounts[cls, default: 0] += 1
            let signature = "[\(cls)] \(detail)"
            let line = "input: \"\(escape(input))\"\n  sprout: \(summary(sprout))\n  nio:    \(summary(nio))"
            if signatureCounts[signature] == nil {
                signatureOrder.append(signature)
                firstBySignature[signature] = line
            }
            signatureCounts[signature, default: 0] += 1
            report += "\(signature)\n\(line)\n"
        }

        var out = "Sprout vs NIOHTTP1: \(inputs.count) inputs (\(seeds.count) seeds from \(corpus) + mutations)\n"
        for (k, v) in agreeCounts.sorted(by: { $0.key < $1.key }) { out += "  agree   \(k): \(v)\n" }
        for (k, v) in classCounts.sorted(by: { $0.key < $1.key }) { out += "  DISAGREE \(k): \(v)\n" }
        out += "\nDisagreement signatures (class, then Sprout's reason / NIO's error / fields that differ):\n"
        let byCount = signatureOrder.sorted { signatureCounts[$0]! > signatureCounts[$1]! }
        for s in byCount {
            out += "  \(signatureCounts[s]!)\t\(s)\n"
        }
        out += "\nFirst example of each signature (the \(examples) most frequent):\n"
        for s in byCount.prefix(examples) {
            out += "\(s)\n\(firstBySignature[s]!)\n"
        }
        print(out)
        let reportURL = URL(fileURLWithPath: reportPath)
        try FileManager.default.createDirectory(at: reportURL.deletingLastPathComponent(), withIntermediateDirectories: true)
        try (out + "\nAll disagreements:\n" + report).write(to: reportURL, atomically: true, encoding: .utf8)
        print("report: \(reportPath)")
    }
}
