import Glibc
import SproutHTTP
import SproutTestSupport
import Testing

/// Replays the fuzzer's saved corpus (`Fuzz/corpus/http-request/`) and the smuggling vectors
/// through the scanner, parser and chunked decoder, checking the invariants the fuzzer checks:
/// every span inside its input, progress on every call, the same outcome whether the bytes
/// arrive at once or one at a time.
@Suite(.timeLimit(.minutes(1))) struct CorpusReplayTests {
    static var corpusDirectory: String {
        var path = #filePath
        for _ in 0..<3 { path = String(path[..<path.lastIndex(of: "/")!]) }
        return path + "/Fuzz/corpus/http-request"
    }

    static func corpus() -> [[UInt8]] {
        var inputs: [[UInt8]] = []
        for name in directoryEntries(corpusDirectory) ?? [] where !name.hasPrefix(".") {
            guard let file = fopen(corpusDirectory + "/" + name, "rb") else { continue }
            var bytes: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 4096)
            while true {
                let count = fread(&chunk, 1, chunk.count, file)
                if count <= 0 { break }
                bytes += chunk[..<count]
            }
            fclose(file)
            inputs.append(bytes)
        }
        return inputs
    }

    /// Scans `bytes` whole and one byte at a time; both must agree.
    func scan(_ bytes: [UInt8]) -> (outcome: HeadScanner.Outcome?, status: Int?) {
        func run(pieces: Bool) -> (HeadScanner.Outcome?, Int?) {
            var scanner = HeadScanner()
            do {
                if !pieces {
                    return (try bytes.withUnsafeBytes { try scanner.scan($0, limits: HeadLimits()) }, nil)
                }
                var outcome = HeadScanner.Outcome.needMore
                for end in 0...bytes.count {
                    outcome = try Array(bytes[..<end]).withUnsafeBytes { try scanner.scan($0, limits: HeadLimits()) }
                    if outcome != .needMore { break }
                }
                return (outcome, nil)
            } catch {
                return (nil, (error as? HTTPParseError)?.statusCode)
            }
        }
        let whole = run(pieces: false)
        let pieces = run(pieces: true)
        #expect(whole.0 == pieces.0 && whole.1 == pieces.1, "scanning in pieces disagrees: \(String(decoding: bytes, as: UTF8.self).debugDescription)")
        return whole
    }

    @Test func savedCorpusAndSmugglingVectorsKeepTheirInvariants() throws {
        let inputs = CorpusReplayTests.corpus() + HTTPSuites.SmugglingTests.vectors.map { Array($0.request.utf8) }
        #expect(inputs.count > HTTPSuites.SmugglingTests.vectors.count, "the corpus at \(CorpusReplayTests.corpusDirectory) is missing")
        var parsed = 0
        for input in inputs {
            var bytes = input
            var result = scan(bytes)
            if result.outcome == .leadingEmptyLine {
                bytes.removeFirst(2)
                result = scan(bytes)
            }
            guard case .complete(let length) = result.outcome else { continue }
            #expect(length <= bytes.count)
            var head = ParsedRequestHead()
            let ok: Bool = bytes.withUnsafeBytes { raw in
                do {
                    try RequestHeadParser.parse(UnsafeRawBufferPointer(rebasing: raw[..<length]), into: &head)
                    return true
                } catch {
                    return false
                }
            }
            guard ok else { continue }
            parsed += 1
            for field in head.fields {
                #expect(field.name.end <= length && field.value.end <= length)
                #expect(!bytes[field.value.start..<field.value.end].contains { $0 == 0 || $0 == 10 || $0 == 13 })
            }
            if head.framing == .chunked {
                let body = Array(bytes[length...])
                let whole = decodeChunked(body)
                let bytewise = decodeChunked(body, piece: 1)
                #expect(whole.body == bytewise.body && whole.status == bytewise.status)
            }
        }
        #expect(parsed > 0)
    }
}
