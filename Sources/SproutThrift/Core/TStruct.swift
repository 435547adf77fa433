import Sprout

/// A Thrift struct, exception or union, as generated: the generated code supplies
/// `read(from:)`, ``fieldIds`` and ``structName``; writing comes from here.
///
/// Writing walks the value's stored properties by reflection (as Apache Thrift's Swift library
/// does, which is what the generated code expects): each property named in ``fieldIds`` is
/// written with that id, nil optionals are skipped. For generated structs (final classes) the
/// fields' offsets are found once per type and read straight from the object; other types
/// go through `Mirror`. A union (a generated enum) writes the one field of its case. A
/// hand-written conforming class must not hold Thrift fields as `weak` or `unowned`.
public protocol TStruct: TSerializable {
    /// Field ids by property name.
    static var fieldIds: [String: Int32] { get }
    /// The struct's name in the IDL.
    static var structName: String { get }
}

extension TStruct {
    public static var thriftType: TType { .struct }

    /// Writes every field that has a value, then the stop field.
    /// - Throws: ``TProtocolError``, ``TTransportError``.
    public func write(to proto: any TProtocol) throws {
        try proto.writeStructBegin(name: Self.structName)
        if let layout = StructLayout.of(Self.self) {
            // A generated class: its fields read straight from the object (no Mirror).
            // Self is a class (the layout says so): its value is the object's address.
            try withExtendedLifetime(self) {
                let base = unsafeBitCast(self, to: UnsafeRawPointer.self)
                for field in layout.fields {
                    guard let value = field.load(base + field.offset) else { continue }
                    try proto.writeFieldBegin(name: field.name, type: value.thriftType, fieldID: field.id)
                    try value.write(to: proto)
                    try proto.writeFieldEnd()
                }
            }
            try proto.writeFieldStop()
            try proto.writeStructEnd()
            return
        }
        let ids = FieldIdCache.ids(of: Self.self)
        for child in Mirror(reflecting: self).children {
            guard let label = child.label, let id = ids[label],
                  let value = thriftValue(child.value) else { continue }
            try proto.writeFieldBegin(name: label, type: value.thriftType, fieldID: id)
            try value.write(to: proto)
            try proto.writeFieldEnd()
        }
        try proto.writeFieldStop()
        try proto.writeStructEnd()
    }
}

extension TProtocol {
    /// Writes one field: its header, `value`, its end.
    public func writeFieldValue(_ value: any TSerializable, name: String, type: TType, id: Int32) throws {
        try writeFieldBegin(name: name, type: type, fieldID: id)
        try value.write(to: self)
        try writeFieldEnd()
    }
}

/// A property's value as something to write: nil for a nil optional or a property that is not
/// Thrift data; a union case's payload unwrapped from its one-element tuple.
private func thriftValue(_ any: Any) -> (any TSerializable)? {
    if let value = any as? any TSerializable { return value }
    let mirror = Mirror(reflecting: any)
    switch mirror.displayStyle {
    case .optional, .tuple:
        guard let inner = mirror.children.first else { return nil }
        return thriftValue(inner.value)
    default:
        return nil
    }
}

/// `fieldIds` is a computed dictionary in generated code; it is built once per type here.
private enum FieldIdCache {
    private static let cache = ThreadLock<[ObjectIdentifier: [String: Int32]]>([:])

    static func ids<T: TStruct>(of type: T.Type) -> [String: Int32] {
        let key = ObjectIdentifier(type)
        return cache.withLock { cache in
            if let ids = cache[key] { return ids }
            let ids = T.fieldIds
            cache[key] = ids
            return ids
        }
    }
}
