public import FoundationEssentials

/// A value that knows its Thrift wire type and how to read and write itself: the primitives
/// (below), ``TList``, ``TSet``, ``TMap``, and the structs, enums and unions that
/// `thrift --gen swift` generates.
public protocol TSerializable {
    /// The wire type of every value of this type.
    static var thriftType: TType { get }
    /// Reads one value.
    /// - Throws: ``TProtocolError``, ``TTransportError``.
    static func read(from proto: any TProtocol) throws -> Self
    /// Writes this value.
    /// - Throws: ``TProtocolError``, ``TTransportError``.
    func write(to proto: any TProtocol) throws
}

extension TSerializable {
    /// The wire type of this value.
    public var thriftType: TType { Self.thriftType }

    /// Writes `value` (the generated code's static form).
    public static func write(_ value: Self, to proto: any TProtocol) throws {
        try value.write(to: proto)
    }
}

extension Bool: TSerializable {
    public static var thriftType: TType { .bool }
    public static func read(from proto: any TProtocol) throws -> Bool { try proto.read() }
    public func write(to proto: any TProtocol) throws { try proto.write(self) }
}

extension Int8: TSerializable {
    public static var thriftType: TType { .i8 }
    public static func read(from proto: any TProtocol) throws -> Int8 { try proto.read() }
    public func write(to proto: any TProtocol) throws { try proto.write(self) }
}

extension UInt8: TSerializable {
    public static var thriftType: TType { .i8 }
    public static func read(from proto: any TProtocol) throws -> UInt8 { try proto.read() }
    public func write(to proto: any TProtocol) throws { try proto.write(self) }
}

extension Int16: TSerializable {
    public static var thriftType: TType { .i16 }
    public static func read(from proto: any TProtocol) throws -> Int16 { try proto.read() }
    public func write(to proto: any TProtocol) throws { try proto.write(self) }
}

extension Int32: TSerializable {
    public static var thriftType: TType { .i32 }
    public static func read(from proto: any TProtocol) throws -> Int32 { try proto.read() }
    public func write(to proto: any TProtocol) throws { try proto.write(self) }
}

extension Int64: TSerializable {
    public static var thriftType: TType { .i64 }
    public static func read(from proto: any TProtocol) throws -> Int64 { try proto.read() }
    public func write(to proto: any TProtocol) throws { try proto.write(self) }
}

extension Double: TSerializable {
    public static var thriftType: TType { .double }
    public static func read(from proto: any TProtocol) throws -> Double { try proto.read() }
    public func write(to proto: any TProtocol) throws { try proto.write(self) }
}

extension String: TSerializable {
    public static var thriftType: TType { .string }
    public static func read(from proto: any TProtocol) throws -> String { try proto.read() }
    public func write(to proto: any TProtocol) throws { try proto.write(self) }
}

/// Thrift's `binary`.
extension Data: TSerializable {
    public static var thriftType: TType { .string }
    public static func read(from proto: any TProtocol) throws -> Data { try proto.read() }
    public func write(to proto: any TProtocol) throws { try proto.write(self) }
}
