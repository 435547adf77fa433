import CSproutContext
@_spi(Internal) @_spi(Contexts) @_spi(MemoryReaders) import Runtime

/// The call stack of a greenlet, innermost frame first: of a parked greenlet as it waits, or
/// of a running one as a blocked-hub report caught it.
///
/// Frames are found by walking frame pointers (Swift and Sprout's C code keep them on Linux)
/// and named with the symbols of the executable and libraries (Swift's `Runtime` module), off
/// the hot path: taking the raw frames is cheap, naming them reads symbol tables.
public struct GreenletBacktrace: Sendable, CustomStringConvertible {
    /// One frame of a backtrace.
    public struct Frame: Sendable, CustomStringConvertible {
        /// The program counter (first frame) or return address (the others).
        public let address: UInt64
        /// The demangled name of the function, when the image has symbols for it.
        public let symbol: String?
        /// The file name of the executable or library the address lies in.
        public let image: String?
        /// `file:line` where debug information has it.
        public let sourceLocation: String?
        /// True for a function the compiler inlined into the next frame (same address).
        public let isInlined: Bool

        init(address: UInt64, symbol: String? = nil, image: String? = nil, sourceLocation: String? = nil,
             isInlined: Bool = false) {
            self.address = address
            self.symbol = symbol
            self.image = image
            self.sourceLocation = sourceLocation
            self.isInlined = isInlined
        }

        public var description: String {
            var text = "0x" + String(address, radix: 16)
            if isInlined { text += " [inlined]" }
            if let symbol { text += " " + symbol }
            if let image { text += " in " + image }
            if let sourceLocation { text += " at " + sourceLocation }
            return text
        }
    }

    /// The frames, innermost first.
    public let frames: [Frame]
    /// True if the stack was deeper than the frames kept.
    public let isTruncated: Bool

    /// One frame a line, numbered, innermost first.
    public var description: String {
        var lines = frames.enumerated().map { "  \($0.offset) \($0.element)" }
        if isTruncated { lines.append("  ...") }
        return lines.joined(separator: "\n")
    }

    /// Whether some frame's symbol contains `text` (a function name, say).
    public func contains(symbol text: String) -> Bool {
        frames.contains { $0.symbol?.contains(text) ?? false }
    }

    init(frames: [Frame], isTruncated: Bool) {
        self.frames = frames
        self.isTruncated = isTruncated
    }

    /// Names the raw frames of `raw`.
    init(_ raw: RawBacktrace) {
        self.init(frames: GreenletBacktrace.symbolicate(raw.addresses), isTruncated: raw.isTruncated)
    }

    /// Names `addresses` through Swift's backtracer: it unwinds a synthetic frame chain that
    /// yields exactly these addresses, then symbolicates the result.
    static func symbolicate(_ addresses: [UInt64]) -> [Frame] {
        guard let first = addresses.first else { return [] }
        var context = HostContext.withCurrentContext { $0 }
        context.programCounter = .init(first)
        context.framePointer = .init(SyntheticFrameChain.base)
        context.stackPointer = .init(SyntheticFrameChain.base - 64)
        let images = LoadedImages.covering(addresses)
        guard let backtrace = try? Backtrace.capture(from: context, using: SyntheticFrameChain(addresses),
                                                     images: images, algorithm: .fast,
                                                     limit: addresses.count + 2, offset: 0, top: 0),
              let named = backtrace.symbolicated(with: images, options: [.showInlineFrames, .useSymbolCache])
        else {
            return addresses.map { Frame(address: $0) }
        }
        // Inlined functions come first, then the frame they were inlined into, at one address.
        var frames: [Frame] = []
        var index = 0
        for frame in named.frames where index < addresses.count {
            if case .omittedFrames = frame.captured { continue }
            if case .truncated = frame.captured { continue }
            let location = frame.symbol?.sourceLocation.map { "\($0.path.split(separator: "/").last ?? ""):\($0.line)" }
            frames.append(Frame(address: addresses[index], symbol: frame.symbol?.name, image: frame.symbol?.imageName,
                                sourceLocation: location, isInlined: frame.inlined))
            if !frame.inlined { index += 1 }
        }
        while index < addresses.count {
            frames.append(Frame(address: addresses[index]))
            index += 1
        }
        return frames
    }
}

/// The process's executable and libraries, as Swift's backtracer sees them. Taken once and
/// again only when an address falls outside every known image (a library loaded since):
/// taking the map reads every mapped image's headers, which is slow, and can fault if another
/// thread unmaps a file meanwhile.
enum LoadedImages {
    private static let cached = ThreadLock<ImageMap?>(nil)

    /// In a forked child: the lock may have been held by a thread that does not exist here.
    static func forgetAfterFork() {
        _ = cached.reinitializeAfterFork(nil)
    }

    static func covering(_ addresses: [UInt64]) -> ImageMap {
        cached.withLock { cache in
            if let images = cache, addresses.allSatisfy({ images.contains($0) }) { return images }
            let images = ImageMap.capture()
            cache = images
            return images
        }
    }
}

extension ImageMap {
    /// Whether `address` lies in the code of one of the images.
    func contains(_ address: UInt64) -> Bool {
        contains { image in
            guard let low = UInt64(image.baseAddress), let high = UInt64(image.endOfText) else { return false }
            return address >= low && address < high
        }
    }
}

/// Return addresses as the C walker took them, not yet named (cheap to take and to send).
struct RawBacktrace: Sendable {
    var greenletID: UInt64
    var greenletName: String
    var addresses: [UInt64]
    var isTruncated: Bool

    init(_ raw: sprout_backtrace_t) {
        var copy = raw
        greenletID = raw.greenlet_id
        greenletName = withUnsafeBytes(of: &copy.greenlet_name) { bytes in
            String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
        }
        addresses = withUnsafeBytes(of: &copy.pcs) { bytes in
            Array(bytes.bindMemory(to: UInt64.self).prefix(Int(raw.count)))
        }
        isTruncated = raw.truncated != 0
    }

    /// The backtrace of a suspended context.
    static func of(suspended context: UnsafePointer<sprout_context_t>) -> RawBacktrace {
        var raw = sprout_backtrace_t()
        sprout_context_backtrace(context, &raw)
        return RawBacktrace(raw)
    }
}

/// A memory reader that serves a frame-pointer chain made up for a list of return addresses:
/// frame `i` lives at `base + 16 i`, holding the address of frame `i + 1` and `addresses[i + 1]`.
/// Swift's unwinder walks it and so reports exactly the addresses the C walker found.
struct SyntheticFrameChain: MemoryReader {
    static let base: UInt64 = 0x1000_0000
    struct OutOfChain: Error {}

    let addresses: [UInt64]

    init(_ addresses: [UInt64]) { self.addresses = addresses }

    private func word(at address: UInt64) throws -> UInt64 {
        let offset = address &- SyntheticFrameChain.base
        guard address >= SyntheticFrameChain.base, offset < UInt64(addresses.count * 16) else { throw OutOfChain() }
        let frame = Int(offset / 16)
        guard frame + 1 < addresses.count else { return 0 }
        return offset % 16 < 8 ? SyntheticFrameChain.base + UInt64(16 * (frame + 1)) : addresses[frame + 1]
    }

    func fetch(from address: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        var done = 0
        while done < buffer.count {
            let at = address &+ UInt64(done)
            let value = try word(at: at & ~7)
            let skip = Int(at & 7)
            let take = min(8 - skip, buffer.count - done)
            withUnsafeBytes(of: value) { bytes in
                for index in 0..<take { buffer[done + index] = bytes[skip + index] }
            }
            done += take
        }
    }
}
