import CZlib
import Glibc

/// Inflates a gzip stream incrementally (zlib from Debian's zlib1g-dev).
final class GzipDecoder {
    private var stream = z_stream()
    private let input: UnsafeMutableRawBufferPointer
    private var started = false
    /// True once the gzip trailer (CRC and length) has been checked.
    private(set) var isFinished = false

    init() {
        input = .allocate(byteCount: 16 * 1024, alignment: 16)
    }

    deinit {
        if started { inflateEnd(&stream) }
        input.deallocate()
    }

    /// Unconsumed compressed bytes are waiting.
    var hasInput: Bool { stream.avail_in > 0 }

    /// Lets `fill` write compressed bytes into the input buffer; returns its count.
    func withInputSpace(_ fill: (UnsafeMutableRawBufferPointer) throws -> Int) throws -> Int {
        let count = try fill(input)
        stream.next_in = input.baseAddress!.assumingMemoryBound(to: Bytef.self)
        stream.avail_in = UInt32(count)
        return count
    }

    /// Starts inflating the next gzip member of the same body.
    func startNextMember() throws {
        guard inflateReset(&stream) == Z_OK else {
            throw HTTPClientError(.decompressionFailed, "zlib could not start the next gzip member")
        }
        isFinished = false
    }

    /// Inflates waiting input into `output`; returns the bytes produced (0 if it needs input).
    func inflate(into output: UnsafeMutableRawBufferPointer) throws -> Int {
        if !started {
            guard sprout_inflate_init_gzip(&stream) == Z_OK else {
                throw HTTPClientError(.decompressionFailed, "zlib could not start inflating")
            }
            started = true
        }
        stream.next_out = output.baseAddress!.assumingMemoryBound(to: Bytef.self)
        stream.avail_out = UInt32(clamping: output.count)
        let result = CZlib.inflate(&stream, Z_NO_FLUSH)
        switch result {
        case Z_OK, Z_BUF_ERROR:
            break
        case Z_STREAM_END:
            isFinished = true
        default:
            let reason = stream.msg.map { String(cString: $0) } ?? "error \(result)"
            throw HTTPClientError(.decompressionFailed, "the gzip body does not inflate: \(reason)")
        }
        return output.count - Int(stream.avail_out)
    }
}
