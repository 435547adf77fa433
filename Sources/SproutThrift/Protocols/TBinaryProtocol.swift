public import FoundationEssentials

/// Thrift's binary protocol: big-endian integers, length-prefixed strings, a type byte and an
/// `i16` id per field.
///
/// Writes the strict message header (version `0x8001`). Reads both the strict and the old
/// non-strict header (name first) unless ``strictRead`` is set, as Apache's servers do.
public final class TBinaryProtocol: TProtocol, HeaderRecordingProtocol {
    private static let version1: UInt32 = 0x8001_0000
    private static let versionMask: UInt32 = 0xffff_0000

    public let transport: any TTransport
    /// Refuse messages without a version header (non-strict clients).
    public var strictRead: Bool
    /// Write the versioned message header (every current implementation reads it).
    public var strictWrite: Bool
    let record = MessageRecord()
    @exclusivity(unchecked) private var depth = 0

    /// A protocol over `transport` (non-strict reads, strict writes).
    public convenience init(on transport: any TTransport) {
        self.init(on: transport, strictRead: false, strictWrite: true)
    }

    /// A protocol over `transport`.
    public init(on transport: any TTransport, strictRead: Bool, strictWrite: Bool = true) {
        self.transport = transport
        self.strictRead = strictRead
        self.strictWrite = strictWrite
    }

    // MARK: Reading

    public func readMessageBegin() throws -> (String, TMessageType, Int32) {
        depth = 0
        let size: Int32 = try readInteger()
        let name: String
        let rawType: Int32
        if size < 0 {
            let header = UInt32(bitPattern: size)
            guard header & Self.versionMask == Self.version1 else {
                throw TProtocolError(error: .badVersion(expected: "0x8001", got: "0x" + String(header >> 16, radix: 16)),
                                     message: "not a binary-protocol message")
            }
            rawType = Int32(header & 0xff)
            name = try read()
        } else {
            guard !strictRead else {
                throw TProtocolError(error: .badVersion(expected: "0x8001", got: "none"), message: "a non-strict message header")
            }
            name = try readString(length: size)
            rawType = Int32(try readInteger() as Int8)
        }
        guard let type = TMessageType(rawValue: rawType) else {
            throw TProtocolError(error: .invalidData, message: "unknown message type \(rawType)")
        }
        let sequenceID: Int32 = try readInteger()
        record.messageBegun(MessageHeader(name: name, type: type, sequenceID: sequenceID))
        return (name, type, sequenceID)
    }

    public func readMessageEnd() throws { record.messageEnded() }

    public func readStructBegin() throws -> String {
        depth += 1
        if depth > maxNestingDepth { throw nestingTooDeep() }
        return ""
    }

    public func readStructEnd() throws { depth -= 1 }

    public func readFieldBegin() throws -> (String, TType, Int32) {
        let type = try typeFromWire(try readInteger() as UInt8)
        if type == .stop { return ("", .stop, 0) }
        let id: Int16 = try readInteger()
        return ("", type, Int32(id))
    }

    public func readFieldEnd() throws {}

    public func readMapBegin() throws -> (TType, TType, Int32) {
        try enterContainer()
        let keyType = try typeFromWire(try readInteger() as UInt8)
        let valueType = try typeFromWire(try readInteger() as UInt8)
        let size: Int32 = try readInteger()
        try checkSize(size)
        return (keyType, valueType, size)
    }

    public func readMapEnd() throws { depth -= 1 }

    public func readSetBegin() throws -> (TType, Int32) {
        try enterContainer()
        let type = try typeFromWire(try readInteger() as UInt8)
        let size: Int32 = try readInteger()
        try checkSize(size)
        return (type, size)
    }

    public func readSetEnd() throws { depth -= 1 }

    public func readListBegin() throws -> (TType, Int32) {
        try enterContainer()
        let type = try typeFromWire(try readInteger() as UInt8)
        let size: Int32 = try readInteger()
        try checkSize(size)
        return (type, size)
    }

    public func readListEnd() throws { depth -= 1 }

    public func read() throws -> String { try readString(length: try readInteger()) }
    public func read() throws -> Bool { try readInteger() as UInt8 != 0 }
    public func read() throws -> UInt8 { try readInteger() }
    public func read() throws -> Int8 { try readInteger() }
    public func read() throws -> Int16 { try readInteger() }
    public func read() throws -> Int32 { try readInteger() }
    public func read() throws -> Int64 { try readInteger() }
    public func read() throws -> Double { Double(bitPattern: try readInteger()) }

    public func read() throws -> Data {
        let length: Int32 = try readInteger()
        try checkSize(length)
        var data = Data(count: Int(length))
        try data.withUnsafeMutableBytes { try transport.readExactly(into: $0) }
        return data
    }

    // MARK: Writing

    public func writeMessageBegin(name: String, type messageType: TMessageType, sequenceID: Int32) throws {
        try record.writing(messageType, name: name)
        if strictWrite {
            try writeInteger(Int32(bitPattern: Self.version1 | UInt32(messageType.rawValue)))
            try write(name)
        } else {
            try write(name)
            try writeInteger(Int8(messageType.rawValue))
        }
        try writeInteger(sequenceID)
    }

    public func writeMessageEnd() throws {}
    public func writeStructBegin(name: String) throws {}
    public func writeStructEnd() throws {}

    public func writeFieldBegin(name: String, type fieldType: TType, fieldID: Int32) throws {
        try writeInteger(UInt8(fieldType.rawValue))
        try writeInteger(Int16(truncatingIfNeeded: fieldID))
    }

    public func writeFieldStop() throws { try writeInteger(UInt8(TType.stop.rawValue)) }
    public func writeFieldEnd() throws {}

    public func writeMapBegin(keyType: TType, valueType: TType, size: Int32) throws {
        try writeInteger(UInt8(keyType.rawValue))
        try writeInteger(UInt8(valueType.rawValue))
        try writeInteger(size)
    }

    public func writeMapEnd() throws {}

    public func writeSetBegin(elementType: TType, size: Int32) throws {
        try writeInteger(UInt8(elementType.rawValue))
        try writeInteger(size)
    }

    public func writeSetEnd() throws {}

    public func writeListBegin(elementType: TType, size: Int32) throws {
        try writeInteger(UInt8(elementType.rawValue))
        try writeInteger(size)
    }

    public func writeListEnd() throws {}

    public func write(_ value: String) throws {
        var value = value
        try value.withUTF8 { bytes in
            try writeInteger(Int32(bytes.count))
            try transport.write(UnsafeRawBufferPointer(bytes))
        }
    }

    public func write(_ value: Bool) throws { try writeInteger(UInt8(value ? 1 : 0)) }
    public func write(_ value: UInt8) throws { try writeInteger(value) }
    public func write(_ value: Int8) throws { try writeInteger(value) }
    public func write(_ value: Int16) throws { try writeInteger(value) }
    public func write(_ value: Int32) throws { try writeInteger(value) }
    public func write(_ value: Int64) throws { try writeInteger(value) }
    public func write(_ value: Double) throws { try writeInteger(value.bitPattern) }

    public func write(_ value: Data) throws {
        try writeInteger(Int32(value.count))
        try value.withUnsafeBytes { try transport.write($0) }
    }

    // MARK: Bytes

    @inline(__always)
    private func readInteger<T: FixedWidthInteger>() throws -> T {
        var value: T = 0
        try withUnsafeMutableBytes(of: &value) { try transport.readExactly(into: $0) }
        return T(bigEndian: value)
    }

    @inline(__always)
    private func writeInteger<T: FixedWidthInteger>(_ value: T) throws {
        var big = value.bigEndian
        try withUnsafeBytes(of: &big) { try transport.write($0) }
    }

    private func readString(length: Int32) throws -> String {
        try checkSize(length)
        return try String(unsafeUninitializedCapacity: Int(length)) { buffer in
            try transport.readExactly(into: UnsafeMutableRawBufferPointer(buffer))
            return Int(length)
        }
    }

    private func checkSize(_ size: Int32) throws {
        if size < 0 { throw TProtocolError(error: .negativeSize, message: "size \(size)") }
        if Int(size) > transport.maxMessageSize {
            throw TProtocolError(error: .sizeLimit(limit: transport.maxMessageSize, got: Int(size)),
                                 message: "a string, binary or container longer than the transport allows")
        }
    }

    private func enterContainer() throws {
        depth += 1
        if depth > maxNestingDepth { throw nestingTooDeep() }
    }
}
