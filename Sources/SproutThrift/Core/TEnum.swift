/// A Thrift enum, as generated: an `i32` on the wire. Generated enums supply `read(from:)`
/// (which rejects unknown values) and `rawValue`; writing comes from here.
public protocol TEnum: TSerializable, Hashable {
    /// The value on the wire.
    var rawValue: Int32 { get }
}

extension TEnum {
    public static var thriftType: TType { .i32 }

    /// Writes ``rawValue``.
    public func write(to proto: any TProtocol) throws {
        try proto.write(rawValue)
    }
}
