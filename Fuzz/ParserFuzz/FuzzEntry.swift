// libFuzzer entry for Sprout's HTTP/1.1 request parser (Sources/SproutHTTP/Parser).
//
// Compiled together with the seven parser files into one module by scripts/fuzz-http-parser, so
// the internal HeadScanner is visible here. Each input is:
//   1. fed to HeadScanner in pieces whose sizes are drawn from a generator seeded by a hash of
//      the input (deterministic, so crashes reproduce), each piece a fresh exact-sized copy of
//      the bytes so far (AddressSanitizer then catches any read past what was handed over); the
//      outcome must equal a one-shot scan of the whole input;
//   2. if a head is complete, parsed by RequestHeadParser from an exact-sized copy of the head;
//      every span must lie inside the head;
//   3. if the framing is chunked, the rest fed to ChunkedDecoder in pieces (with a varying
//      maxData), checking consumed <= piece count, data spans inside the piece, progress, and
//      that the decoded body, trailers and error-or-not equal a one-shot decode.
// A broken invariant traps with a message starting "fuzz invariant:".

/// xorshift64*, seeded from the input: the same input always gets the same pieces.
private struct PieceGenerator {
    var state: UInt64

    init(_ data: UnsafeRawBufferPointer) {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a
        for b in data { hash = (hash ^ UInt64(b)) &* 0x100_0000_01b3 }
        state = hash == 0 ? 0x9E37_79B9_7F4A_7C15 : hash
    }

    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 0x2545_F491_4F6C_DD1D
    }

    /// 1...maximum.
    mutating func size(upTo maximum: Int) -> Int { Int(next() % UInt64(max(maximum, 1))) + 1 }
}

@inline(never)
private func invariant(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() { fatalError("fuzz invariant: \(message())") }
}

/// Calls `body` with a heap copy of exactly `bytes`, so ASan flags any read beyond it.
private func withExactCopy<R>(_ bytes: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) throws(HTTPParseError) -> R)
    throws(HTTPParseError) -> R {
    let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 1)
    defer { copy.deallocate() }
    if bytes.count > 0 { copy.copyMemory(from: bytes) }
    return try body(UnsafeRawBufferPointer(rebasing: copy[0..<bytes.count]))
}

private enum ScanResult: Equatable {
    case outcome(HeadScanner.Outcome)
    case error
}

/// One-shot scan of all of `bytes`.
private func scanWhole(_ bytes: UnsafeRawBufferPointer, _ limits: HeadLimits) -> ScanResult {
    var scanner = HeadScanner()
    do {
        return .outcome(try withExactCopy(bytes) { (b) throws(HTTPParseError) in try scanner.scan(b, limits: limits) })
    } catch {
        return .error
    }
}

/// Incremental scan: pieces of random size until the outcome is not needMore or input runs out.
private func scanIncrementally(_ bytes: UnsafeRawBufferPointer, _ limits: HeadLimits,
                               _ generator: inout PieceGenerator, maxPiece: Int) -> ScanResult {
    var scanner = HeadScanner()
    var fed = 0
    repeat {
        fed = min(bytes.count, fed + generator.size(upTo: maxPiece))
        let prefix = UnsafeRawBufferPointer(rebasing: bytes[0..<fed])
        do {
            let outcome = try withExactCopy(prefix) { (b) throws(HTTPParseError) in try scanner.scan(b, limits: limits) }
            switch outcome {
            case .needMore:
                continue
            case .complete(let length):
                invariant(length >= 4 && length <= fed, "complete(length: \(length)) with \(fed) bytes fed")
                return .outcome(outcome)
            case .leadingEmptyLine:
                invariant(fed >= 2 && bytes[0] == 0x0D && bytes[1] == 0x0A, "leadingEmptyLine without a leading CRLF")
                return .outcome(outcome)
            }
        } catch {
            return .error
        }
    } while fed < bytes.count
    return .outcome(.needMore)
}

private func checkSpan(_ span: ByteSpan, _ length: Int, _ what: String) {
    invariant(span.start >= 0 && span.count >= 0 && span.start + span.count <= length,
              "\(what) span \(span.start)+\(span.count) outside the head of \(length) bytes")
}

private struct BodyResult: Equatable {
    var body: [UInt8] = []
    var trailers: [ChunkedDecoder.Trailer] = []
    var ended = false
    var failed = false
    var consumed = 0
}

/// Decodes `rest` as a chunked body in pieces (piece sizes and maxData from the generator).
private func decodeChunked(_ rest: UnsafeRawBufferPointer, _ generator: inout PieceGenerator?, maxPiece: Int) -> BodyResult {
    var decoder = ChunkedDecoder()
    var result = BodyResult()
    var position = 0
    var pieceEnd = 0
    var rounds = 0
    while true {
        rounds += 1
        invariant(rounds <= 4 * rest.count + 16, "chunked decoder made no progress")
        if pieceEnd == position || generator == nil {
            pieceEnd = generator == nil ? rest.count : min(rest.count, position + generator!.size(upTo: maxPiece))
        }
        let pieceCount = pieceEnd - position
        let maxData = generator == nil ? Int.max : generator!.size(upTo: 32)
        var consumed = -1
        let step: ChunkedDecoder.Step
        do {
            step = try withExactCopy(UnsafeRawBufferPointer(rebasing: rest[position..<pieceEnd])) { (piece) throws(HTTPParseError) in
                try decoder.decode(piece, consumed: &consumed, maxData: maxData)
            }
        } catch {
            result.failed = true
            break
        }
        invariant(consumed >= 0 && consumed <= pieceCount, "consumed \(consumed) of a \(pieceCount)-byte piece")
        let pieceStart = position
        position += consumed
        switch step {
        case .data(let span):
            invariant(span.count > 0 && span.count <= maxData, "data span of \(span.count) bytes (maxData \(maxData))")
            invariant(span.start >= 0 && span.start + span.count <= consumed,
                      "data span \(span.start)+\(span.count) outside the \(consumed) bytes consumed of a \(pieceCount)-byte piece")
            result.body += rest[(pieceStart + span.start)..<(pieceStart + span.start + span.count)]
        case .needMore:
            invariant(consumed == pieceCount, "needMore after consuming \(consumed) of \(pieceCount) bytes")
            invariant(!decoder.isDone, "needMore from a finished decoder")
        case .end:
            invariant(decoder.isDone, ".end but isDone is false")
            result.ended = true
        }
        if result.ended { break }
        if position == rest.count && step == .needMore { break }
    }
    invariant(result.body.count <= rest.count, "decoded \(result.body.count) data bytes from \(rest.count) input bytes")
    result.trailers = decoder.trailers
    result.consumed = position
    return result
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard size > 0 else { return 0 }
    let input = UnsafeRawBufferPointer(start: data, count: size)
    var generator = PieceGenerator(input)
    let mode = generator.next()
    let maxPiece = [1, 3, 16, 64, 4096][Int(mode % 5)]
    // One input in four runs under small limits, so the 414/431 paths are reached.
    let limits = (mode >> 8) % 4 == 0
        ? HeadLimits(maxRequestLineLength: 40, maxHeadLength: 256, maxFieldCount: 6)
        : HeadLimits()

    // 1. Find the head, skipping at most one leading empty line (as HTTPConnection does).
    var offset = 0
    var skipped = false
    var headLength = 0
    while true {
        let bytes = UnsafeRawBufferPointer(rebasing: input[offset...])
        let incremental = scanIncrementally(bytes, limits, &generator, maxPiece: maxPiece)
        let whole = scanWhole(bytes, limits)
        invariant(incremental == whole, "incremental scan \(incremental) differs from one-shot scan \(whole)")
        guard case .outcome(let outcome) = whole else { return 0 }
        switch outcome {
        case .needMore:
            return 0
        case .leadingEmptyLine:
            if skipped { return 0 }
            skipped = true
            offset += 2
            continue
        case .complete(let length):
            headLength = length
        }
        break
    }

    // 2. Parse the head from an exact-sized copy.
    let headBytes = UnsafeRawBufferPointer(rebasing: input[offset..<(offset + headLength)])
    var head = ParsedRequestHead()
    do {
        try withExactCopy(headBytes) { (b) throws(HTTPParseError) in try RequestHeadParser.parse(b, into: &head, limits: limits) }
    } catch {
        invariant([400, 413, 414, 417, 431, 501, 505].contains(error.statusCode), "unexpected status \(error.statusCode)")
        return 0
    }
    invariant(head.length == headLength, "head.length \(head.length) != \(headLength)")
    invariant(head.method.count > 0 && head.target.count > 0, "empty method or target accepted")
    checkSpan(head.method, headLength, "method")
    checkSpan(head.target, headLength, "target")
    checkSpan(head.pathAndQuery, headLength, "pathAndQuery")
    if let s = head.absoluteScheme { checkSpan(s, headLength, "scheme") }
    if let a = head.targetAuthority { checkSpan(a, headLength, "authority") }
    if let h = head.host { checkSpan(h, headLength, "host") }
    invariant(head.fields.count <= limits.maxFieldCount, "\(head.fields.count) fields over the limit")
    for field in head.fields {
        checkSpan(field.name, headLength, "field name")
        checkSpan(field.value, headLength, "field value")
        invariant(field.name.count > 0, "empty field name accepted")
        for k in field.value.start..<(field.value.start + field.value.count) {
            let b = headBytes[k]
            invariant(b != 0x0D && b != 0x0A && b != 0x00, "CR/LF/NUL inside an accepted field value")
        }
    }
    invariant(head.minorVersion == 0 || head.minorVersion == 1, "minorVersion \(head.minorVersion)")

    // 3. Decode a chunked body, in pieces and in one go; the two must agree.
    guard head.framing == .chunked else { return 0 }
    let rest = UnsafeRawBufferPointer(rebasing: input[(offset + headLength)...])
    var pieces: PieceGenerator? = generator
    let incremental = decodeChunked(rest, &pieces, maxPiece: maxPiece)
    var none: PieceGenerator? = nil
    let whole = decodeChunked(rest, &none, maxPiece: maxPiece)
    invariant(incremental.failed == whole.failed && incremental.ended == whole.ended,
              "piecewise decode (failed \(incremental.failed), ended \(incremental.ended)) differs from one-shot (failed \(whole.failed), ended \(whole.ended))")
    if !whole.failed {
        invariant(incremental.body == whole.body, "piecewise body differs from one-shot body")
        invariant(incremental.trailers == whole.trailers, "piecewise trailers differ from one-shot trailers")
        if whole.ended { invariant(incremental.consumed == whole.consumed, "body ends at \(incremental.consumed) vs \(whole.consumed)") }
    }
    return 0
}
