public import FoundationEssentials

/// How Thrift values are laid out in bytes (binary, compact): the interface the generated code
/// reads and writes through. Sprout provides ``TBinaryProtocol`` and ``TCompactProtocol``.
///
/// Reading throws ``TProtocolError`` for bytes that cannot be a value there and
/// ``TTransportError`` when the transport cannot deliver them; writing throws what the
/// transport throws.
public protocol TProtocol: AnyObject {
    /// Where the bytes go and come from.
    var transport: any TTransport { get }
    /// A protocol over `transport`.
    init(on transport: any TTransport)

    func readMessageBegin() throws -> (String, TMessageType, Int32)
    func readMessageEnd() throws
    func readStructBegin() throws -> String
    func readStructEnd() throws
    func readFieldBegin() throws -> (String, TType, Int32)
    func readFieldEnd() throws
    func readMapBegin() throws -> (TType, TType, Int32)
    func readMapEnd() throws
    func readSetBegin() throws -> (TType, Int32)
    func readSetEnd() throws
    func readListBegin() throws -> (TType, Int32)
    func readListEnd() throws

    func read() throws -> String
    func read() throws -> Bool
    func read() throws -> UInt8
    func read() throws -> Int8
    func read() throws -> Int16
    func read() throws -> Int32
    func read() throws -> Int64
    func read() throws -> Double
    func read() throws -> Data

    func writeMessageBegin(name: String, type messageType: TMessageType, sequenceID: Int32) throws
    func writeMessageEnd() throws
    func writeStructBegin(name: String) throws
    func writeStructEnd() throws
    func writeFieldBegin(name: String, type fieldType: TType, fieldID: Int32) throws
    func writeFieldStop() throws
    func writeFieldEnd() throws
    func writeMapBegin(keyType: TType, valueType: TType, size: Int32) throws
    func writeMapEnd() throws
    func writeSetBegin(elementType: TType, size: Int32) throws
    func writeSetEnd() throws
    func writeListBegin(elementType: TType, size: Int32) throws
    func writeListEnd() throws

    func write(_ value: String) throws
    func write(_ value: Bool) throws
    func write(_ value: UInt8) throws
    func write(_ value: Int8) throws
    func write(_ value: Int16) throws
    func write(_ value: Int32) throws
    func write(_ value: Int64) throws
    func write(_ value: Double) throws
    func write(_ value: Data) throws
}

extension TProtocol {
    /// Throws when a required field was absent (the generated readers call it).
    /// - Throws: ``TProtocolError`` naming the field.
    public func validateValue(_ value: Any?, named name: String) throws {
        if value == nil {
            throw TProtocolError(error: .unknown, message: "missing required field \(name)")
        }
    }

    /// Reads a reply's header; throws the ``TApplicationError`` a server sent instead of a
    /// result.
    /// - Throws: ``TApplicationError``, ``TProtocolError`` (a message that is not a reply),
    ///   ``TTransportError``.
    public func readResultMessageBegin() throws {
        let (name, type, _) = try readMessageBegin()
        if let awaited = (self as? any HeaderRecordingProtocol)?.record.awaitedReply, awaited != name {
            throw TProtocolError(error: .invalidData, message: "a reply to \(name) where one to \(awaited) was awaited")
        }
        switch type {
        case .reply: return
        case .exception:
            let error = try readException()
            try readMessageEnd()
            throw error
        default:
            throw TProtocolError(error: .invalidData, message: "expected a reply to \(name), got a message of type \(type)")
        }
    }

    /// Reads a ``TApplicationError`` struct.
    public func readException() throws -> TApplicationError {
        try TApplicationError.read(from: self)
    }

    /// Writes `ex` as an exception message answering `name`/`sequenceID`.
    public func writeException(messageName name: String, sequenceID: Int32, ex: TApplicationError) throws {
        try writeMessageBegin(name: name, type: .exception, sequenceID: sequenceID)
        try ex.write(to: self)
        try writeMessageEnd()
    }

    /// Reads past one value of `type` (a field the reader does not know).
    /// - Throws: ``TProtocolError`` for an invalid type or nesting past the limit.
    public func skip(type: TType) throws {
        switch type {
        case .bool: _ = try read() as Bool
        case .i8: _ = try read() as Int8
        case .i16: _ = try read() as Int16
        case .i32: _ = try read() as Int32
        case .i64: _ = try read() as Int64
        case .double: _ = try read() as Double
        case .string: _ = try read() as Data
        case .struct:
            _ = try readStructBegin()
            while true {
                let (_, fieldType, _) = try readFieldBegin()
                if fieldType == .stop { break }
                try skip(type: fieldType)
                try readFieldEnd()
            }
            try readStructEnd()
        case .map:
            let (keyType, valueType, size) = try readMapBegin()
            for _ in 0..<size {
                try skip(type: keyType)
                try skip(type: valueType)
            }
            try readMapEnd()
        case .set:
            let (elementType, size) = try readSetBegin()
            for _ in 0..<size { try skip(type: elementType) }
            try readSetEnd()
        case .list:
            let (elementType, size) = try readListBegin()
            for _ in 0..<size { try skip(type: elementType) }
            try readListEnd()
        case .stop, .void:
            throw TProtocolError(error: .invalidData, message: "cannot skip a value of type \(type)")
        }
    }

    /// Checks a container header read for `expected` elements.
    /// - Throws: ``TProtocolError`` for a negative size, a size past the transport's limit,
    ///   or elements of another type.
    public func checkContainer(size: Int32, elementType: TType, expected: TType) throws {
        if size < 0 { throw TProtocolError(error: .negativeSize, message: "container size \(size)") }
        if Int(size) > transport.maxMessageSize {
            throw TProtocolError(error: .sizeLimit(limit: transport.maxMessageSize, got: Int(size)), message: "container size")
        }
        if size > 0 && elementType != expected {
            throw TProtocolError(error: .invalidData, message: "container of \(elementType), expected \(expected)")
        }
    }
}

/// The header of the last message a protocol read: what a server answers an error to.
struct MessageHeader {
    var name: String
    var type: TMessageType
    var sequenceID: Int32
}

/// Sprout's protocols keep a ``MessageRecord``: where the exchange on their connection stands.
protocol HeaderRecordingProtocol: TProtocol {
    var record: MessageRecord { get }
}

/// Where a connection's exchange stands, as its protocol saw it: what a server needs to tell
/// a handler's error from a connection's and to answer it, and what a pooled client needs to
/// know that no reply is left half-read.
final class MessageRecord {
    /// A server's view of one request.
    enum Phase {
        /// Between requests (and always on a client).
        case idle
        /// The request's header was read, its arguments are being read.
        case readingRequest
        /// The arguments were read whole (`readMessageEnd`): the handler runs.
        case handling
        /// The reply is being written.
        case replying
    }

    /// The header of the last message read.
    @exclusivity(unchecked) var header: MessageHeader?
    /// The application error last written.
    @exclusivity(unchecked) var sentApplicationError: TApplicationError?
    @exclusivity(unchecked) var phase = Phase.idle
    /// The method of a call written whose reply has not been read whole yet.
    @exclusivity(unchecked) var awaitedReply: String?

    func reset() {
        header = nil
        sentApplicationError = nil
        phase = .idle
    }

    func messageBegun(_ header: MessageHeader) {
        self.header = header
        if header.type == .call || header.type == .oneway { phase = .readingRequest }
    }

    func messageEnded() {
        if phase == .readingRequest { phase = .handling }
        if let type = header?.type, type == .reply || type == .exception { awaitedReply = nil }
    }

    /// - Throws: ``OnewayReplyRefused`` for a reply to a oneway call (the generated Processor
    ///   writes one when a oneway handler throws a ``TApplicationError``; the caller never
    ///   reads it, and its next call would).
    func writing(_ type: TMessageType, name: String) throws {
        switch type {
        case .call: awaitedReply = name
        case .oneway: break
        case .reply, .exception:
            if phase != .idle, header?.type == .oneway { throw OnewayReplyRefused(method: name) }
            phase = .replying
        }
    }
}

/// A reply was about to be written to a oneway call: refused, so that it never reaches the
/// caller's next call.
struct OnewayReplyRefused: Error, CustomStringConvertible {
    let method: String
    var description: String { "no reply may be sent to the oneway call \(method)" }
}

/// Structs and containers may nest this deep (Apache Thrift's default): a deeper message
/// would otherwise recurse the reading greenlet off its stack.
let maxNestingDepth = 64

func nestingTooDeep() -> TProtocolError {
    TProtocolError(error: .depthLimit, message: "structs and containers nest deeper than \(maxNestingDepth)")
}

func typeFromWire(_ byte: UInt8) throws -> TType {
    guard let type = TType(rawValue: Int32(byte)), type != .void else {
        throw TProtocolError(error: .invalidData, message: "unknown type \(byte)")
    }
    return type
}
