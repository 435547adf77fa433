@_spi(Reflection) import Swift
import Sprout

/// How to write a generated struct's fields without `Mirror`: each Thrift field's offset in
/// the instance and a loader for its type, found once per type with the runtime's field
/// reflection. `Mirror` demangles every field's type on every write; this reads the stored
/// value straight from the object. Generated structs are final classes; anything else (a
/// union, which is an enum) keeps the `Mirror` path.
///
/// The runtime's field list does not say whether a field is `weak` or `unowned`, and such a
/// field read as a strong reference would be unsound: a hand-written `TStruct` class must not
/// hold Thrift fields that way (generated code never does).
struct StructLayout {
    struct Field {
        let name: String
        let id: Int32
        let offset: Int
        let load: (UnsafeRawPointer) -> (any TSerializable)?
    }

    let fields: [Field]

    /// The layout of `type`, or nil when it is not a class whose Thrift fields all have types
    /// this can load.
    static func of<T: TStruct>(_ type: T.Type) -> StructLayout? {
        cache.withLock { cache in
            let key = ObjectIdentifier(type)
            if let known = cache[key] { return known }
            let layout = build(type)
            cache[key] = .some(layout)
            return layout
        }
    }

    /// `_EachFieldOptions.classType` (a `static var` the Swift 6 checker will not read).
    private static let classType = _EachFieldOptions(rawValue: 1 << 0)

    private static let cache = ThreadLock<[ObjectIdentifier: StructLayout?]>([:])

    private static func build<T: TStruct>(_ type: T.Type) -> StructLayout? {
        guard T.self is AnyClass else { return nil }
        let ids = T.fieldIds
        var fields: [Field] = []
        var loadable = true
        let complete = _forEachField(of: T.self, options: classType) { name, offset, fieldType, _ in
            let label = String(cString: name)
            guard let id = ids[label] else { return true }
            guard let load = loader(for: fieldType) else {
                loadable = false
                return false
            }
            fields.append(Field(name: label, id: id, offset: offset, load: load))
            return true
        }
        guard complete, loadable, fields.count == ids.count else { return nil }
        return StructLayout(fields: fields)
    }

    private static func loader(for fieldType: Any.Type) -> ((UnsafeRawPointer) -> (any TSerializable)?)? {
        if let optional = fieldType as? any OptionalThriftField.Type {
            return optional.loadWrapped
        }
        if let serializable = fieldType as? any TSerializable.Type {
            return loadValue(serializable)
        }
        return nil
    }

    private static func loadValue<V: TSerializable>(_: V.Type) -> (UnsafeRawPointer) -> (any TSerializable)? {
        { $0.load(as: V.self) }
    }
}

/// An optional field: nil is not written.
protocol OptionalThriftField {
    static func loadWrapped(_ pointer: UnsafeRawPointer) -> (any TSerializable)?
}

extension Optional: OptionalThriftField where Wrapped: TSerializable {
    static func loadWrapped(_ pointer: UnsafeRawPointer) -> (any TSerializable)? {
        pointer.load(as: Wrapped?.self)
    }
}

extension TStruct {
    /// Whether writing this type reads its fields from their offsets (not through `Mirror`).
    package static var writesFromFieldLayout: Bool { StructLayout.of(Self.self) != nil }
}
