public import FoundationEssentials

/// Thrift's compact protocol: zigzag varints, field ids as deltas packed with the type, bools
/// folded into field headers, little-endian doubles.
public final class TCompactProtocol: TProtocol, HeaderRecordingProtocol {
    private static let protocolID: UInt8 = 0x82
    private static let version: UInt8 = 1
    private static let versionMask: UInt8 = 0x1f
    private static let typeShift: UInt8 = 5

    /// The compact protocol's type nibbles.
    private enum CompactType: UInt8 {
        case stop = 0, boolTrue = 1, boolFalse = 2, byte = 3, i16 = 4, i32 = 5, i64 = 6, double = 7,
             binary = 8, list = 9, set = 10, map = 11, `struct` = 12
    }

    public let transport: any TTransport
    let record = MessageRecord()
    @exclusivity(unchecked) private var lastFieldID: Int16 = 0
    @exclusivity(unchecked) private var fieldIDStack: [Int16] = []
    /// A bool field's header waits for its value, which goes into the header.
    @exclusivity(unchecked) private var pendingBoolField: (name: String, id: Int16)?
    /// A bool field read carries its value in the header.
    @exclusivity(unchecked) private var pendingBoolValue: Bool?
    @exclusivity(unchecked) private var containerDepth = 0

    /// A protocol over `transport`.
    public init(on transport: any TTransport) {
        self.transport = transport
        fieldIDStack.reserveCapacity(8)
    }

    // MARK: Reading

    public func readMessageBegin() throws -> (String, TMessageType, Int32) {
        fieldIDStack.removeAll(keepingCapacity: true)
        lastFieldID = 0
        containerDepth = 0
        pendingBoolValue = nil
        let id = try readByte()
        guard id == Self.protocolID else {
            throw TProtocolError(error: .badVersion(expected: "0x82", got: "0x" + String(id, radix: 16)),
                                 message: "not a compact-protocol message")
        }
        let versionAndType = try readByte()
        guard versionAndType & Self.versionMask == Self.version else {
            throw TProtocolError(error: .badVersion(expected: "1", got: "\(versionAndType & Self.versionMask)"),
                                 message: "compact protocol version")
        }
        let rawType = Int32(versionAndType >> Self.typeShift)
        guard let type = TMessageType(rawValue: rawType) else {
            throw TProtocolError(error: .invalidData, message: "unknown message type \(rawType)")
        }
        let sequenceID = Int32(truncatingIfNeeded: try readVarint(maxBytes: 5))
        let name: String = try read()
        record.messageBegun(MessageHeader(name: name, type: type, sequenceID: sequenceID))
        return (name, type, sequenceID)
    }

    public func readMessageEnd() throws { record.messageEnded() }

    public func readStructBegin() throws -> String {
        if fieldIDStack.count + containerDepth >= maxNestingDepth { throw nestingTooDeep() }
        fieldIDStack.append(lastFieldID)
        lastFieldID = 0
        return ""
    }

    public func readStructEnd() throws {
        lastFieldID = fieldIDStack.popLast() ?? 0
    }

    public func readFieldBegin() throws -> (String, TType, Int32) {
        let header = try readByte()
        let compact = header & 0x0f
        if compact == CompactType.stop.rawValue { return ("", .stop, 0) }
        let delta = Int16(header >> 4)
        let id: Int16
        if delta == 0 {
            id = Int16(truncatingIfNeeded: zigzagDecode(try readVarint(maxBytes: 3)))
        } else {
            id = lastFieldID &+ delta
        }
        let type = try ttype(compact)
        if type == .bool { pendingBoolValue = compact == CompactType.boolTrue.rawValue }
        lastFieldID = id
        return ("", type, Int32(id))
    }

    public func readFieldEnd() throws {}

    public func readMapBegin() throws -> (TType, TType, Int32) {
        try enterContainer()
        let size = try readSize()
        if size == 0 { return (.stop, .stop, 0) }
        let types = try readByte()
        return (try ttype(types >> 4), try ttype(types & 0x0f), size)
    }

    public func readMapEnd() throws { containerDepth -= 1 }

    public func readSetBegin() throws -> (TType, Int32) { try readCollectionBegin() }
    public func readSetEnd() throws { containerDepth -= 1 }
    public func readListBegin() throws -> (TType, Int32) { try readCollectionBegin() }
    public func readListEnd() throws { containerDepth -= 1 }

    public func read() throws -> String {
        let length = try readSize()
        return try String(unsafeUninitializedCapacity: Int(length)) { buffer in
            try transport.readExactly(into: UnsafeMutableRawBufferPointer(buffer))
            return Int(length)
        }
    }

    public func read() throws -> Bool {
        if let value = pendingBoolValue {
            pendingBoolValue = nil
            return value
        }
        return try readByte() == CompactType.boolTrue.rawValue
    }

    public func read() throws -> UInt8 { try readByte() }
    public func read() throws -> Int8 { Int8(bitPattern: try readByte()) }
    public func read() throws -> Int16 { Int16(truncatingIfNeeded: zigzagDecode(try readVarint(maxBytes: 3))) }
    public func read() throws -> Int32 { Int32(truncatingIfNeeded: zigzagDecode(try readVarint(maxBytes: 5))) }
    public func read() throws -> Int64 { zigzagDecode(try readVarint(maxBytes: 10)) }

    public func read() throws -> Double {
        var bits: UInt64 = 0
        try withUnsafeMutableBytes(of: &bits) { try transport.readExactly(into: $0) }
        return Double(bitPattern: UInt64(littleEndian: bits))
    }

    public func read() throws -> Data {
        let length = try readSize()
        var data = Data(count: Int(length))
        try data.withUnsafeMutableBytes { try transport.readExactly(into: $0) }
        return data
    }

    // MARK: Writing

    public func writeMessageBegin(name: String, type messageType: TMessageType, sequenceID: Int32) throws {
        try record.writing(messageType, name: name)
        fieldIDStack.removeAll(keepingCapacity: true)
        lastFieldID = 0
        try writeByte(Self.protocolID)
        try writeByte(Self.version | (UInt8(messageType.rawValue) << Self.typeShift))
        try writeVarint(UInt64(UInt32(bitPattern: sequenceID)))
        try write(name)
    }

    public func writeMessageEnd() throws {}

    public func writeStructBegin(name: String) throws {
        fieldIDStack.append(lastFieldID)
        lastFieldID = 0
    }

    public func writeStructEnd() throws {
        lastFieldID = fieldIDStack.popLast() ?? 0
    }

    public func writeFieldBegin(name: String, type fieldType: TType, fieldID: Int32) throws {
        let id = Int16(truncatingIfNeeded: fieldID)
        if fieldType == .bool {
            pendingBoolField = (name, id)
            return
        }
        try writeFieldHeader(compactType(fieldType), id: id)
    }

    public func writeFieldStop() throws { try writeByte(CompactType.stop.rawValue) }
    public func writeFieldEnd() throws {}

    public func writeMapBegin(keyType: TType, valueType: TType, size: Int32) throws {
        if size == 0 {
            try writeByte(0)
            return
        }
        try writeVarint(UInt64(UInt32(bitPattern: size)))
        try writeByte(compactType(keyType).rawValue << 4 | compactType(valueType).rawValue)
    }

    public func writeMapEnd() throws {}

    public func writeSetBegin(elementType: TType, size: Int32) throws {
        try writeCollectionBegin(elementType, size: size)
    }

    public func writeSetEnd() throws {}

    public func writeListBegin(elementType: TType, size: Int32) throws {
        try writeCollectionBegin(elementType, size: size)
    }

    public func writeListEnd() throws {}

    public func write(_ value: String) throws {
        var value = value
        try value.withUTF8 { bytes in
            try writeVarint(UInt64(bytes.count))
            try transport.write(UnsafeRawBufferPointer(bytes))
        }
    }

    public func write(_ value: Bool) throws {
        let type: CompactType = value ? .boolTrue : .boolFalse
        if let field = pendingBoolField {
            pendingBoolField = nil
            try writeFieldHeader(type, id: field.id)
        } else {
            try writeByte(type.rawValue)
        }
    }

    public func write(_ value: UInt8) throws { try writeByte(value) }
    public func write(_ value: Int8) throws { try writeByte(UInt8(bitPattern: value)) }
    public func write(_ value: Int16) throws { try writeVarint(zigzagEncode(Int64(value))) }
    public func write(_ value: Int32) throws { try writeVarint(zigzagEncode(Int64(value))) }
    public func write(_ value: Int64) throws { try writeVarint(zigzagEncode(value)) }

    public func write(_ value: Double) throws {
        var bits = value.bitPattern.littleEndian
        try withUnsafeBytes(of: &bits) { try transport.write($0) }
    }

    public func write(_ value: Data) throws {
        try writeVarint(UInt64(value.count))
        try value.withUnsafeBytes { try transport.write($0) }
    }

    // MARK: Encoding

    private func writeFieldHeader(_ type: CompactType, id: Int16) throws {
        let delta = id &- lastFieldID
        if delta > 0 && delta <= 15 {
            try writeByte(UInt8(delta) << 4 | type.rawValue)
        } else {
            try writeByte(type.rawValue)
            try writeVarint(zigzagEncode(Int64(id)))
        }
        lastFieldID = id
    }

    private func writeCollectionBegin(_ elementType: TType, size: Int32) throws {
        let type = try compactType(elementType).rawValue
        if size >= 0 && size < 15 {
            try writeByte(UInt8(size) << 4 | type)
        } else {
            try writeByte(0xf0 | type)
            try writeVarint(UInt64(UInt32(bitPattern: size)))
        }
    }

    private func readCollectionBegin() throws -> (TType, Int32) {
        try enterContainer()
        let header = try readByte()
        var size = Int32(header >> 4)
        if size == 15 { size = try readSize() }
        return (try ttype(header & 0x0f), size)
    }

    private func readSize() throws -> Int32 {
        let raw = try readVarint(maxBytes: 5)
        guard raw <= UInt64(Int32.max) else {
            throw TProtocolError(error: .negativeSize, message: "size \(Int32(truncatingIfNeeded: raw))")
        }
        let size = Int32(raw)
        if Int(size) > transport.maxMessageSize {
            throw TProtocolError(error: .sizeLimit(limit: transport.maxMessageSize, got: Int(size)),
                                 message: "a string, binary or container longer than the transport allows")
        }
        return size
    }

    private func enterContainer() throws {
        containerDepth += 1
        if fieldIDStack.count + containerDepth > maxNestingDepth { throw nestingTooDeep() }
    }

    @inline(__always)
    private func readByte() throws -> UInt8 {
        var byte: UInt8 = 0
        try withUnsafeMutableBytes(of: &byte) { try transport.readExactly(into: $0) }
        return byte
    }

    @inline(__always)
    private func writeByte(_ byte: UInt8) throws {
        var byte = byte
        try withUnsafeBytes(of: &byte) { try transport.write($0) }
    }

    private func readVarint(maxBytes: Int) throws -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        for _ in 0..<maxBytes {
            let byte = try readByte()
            result |= UInt64(byte & 0x7f) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
        }
        throw TProtocolError(error: .invalidData, message: "a varint longer than \(maxBytes) bytes")
    }

    private func writeVarint(_ value: UInt64) throws {
        var bytes: (UInt64, UInt64) = (0, 0)
        var count = 0
        var value = value
        try withUnsafeMutableBytes(of: &bytes) { buffer in
            while true {
                if value & ~0x7f == 0 {
                    buffer[count] = UInt8(value)
                    count += 1
                    break
                }
                buffer[count] = UInt8(value & 0x7f) | 0x80
                count += 1
                value >>= 7
            }
            try transport.write(UnsafeRawBufferPointer(rebasing: buffer[..<count]))
        }
    }

    private func zigzagEncode(_ value: Int64) -> UInt64 {
        UInt64(bitPattern: (value << 1) ^ (value >> 63))
    }

    private func zigzagDecode(_ value: UInt64) -> Int64 {
        Int64(bitPattern: value >> 1) ^ -Int64(bitPattern: value & 1)
    }

    private func ttype(_ compact: UInt8) throws -> TType {
        switch CompactType(rawValue: compact) {
        case .stop: return .stop
        case .boolTrue, .boolFalse: return .bool
        case .byte: return .i8
        case .i16: return .i16
        case .i32: return .i32
        case .i64: return .i64
        case .double: return .double
        case .binary: return .string
        case .list: return .list
        case .set: return .set
        case .map: return .map
        case .struct: return .struct
        case nil: throw TProtocolError(error: .invalidData, message: "unknown compact type \(compact)")
        }
    }

    private func compactType(_ type: TType) throws -> CompactType {
        switch type {
        case .stop: return .stop
        case .bool: return .boolTrue
        case .i8: return .byte
        case .i16: return .i16
        case .i32: return .i32
        case .i64: return .i64
        case .double: return .double
        case .string: return .binary
        case .list: return .list
        case .set: return .set
        case .map: return .map
        case .struct: return .struct
        case .void: throw TProtocolError(error: .invalidData, message: "void has no compact type")
        }
    }
}
