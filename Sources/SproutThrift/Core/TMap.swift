/// Thrift's `map<K, V>`: a dictionary that reads and writes itself.
public struct TMap<Key: TSerializable & Hashable, Value: TSerializable & Hashable>: Collection,
    ExpressibleByDictionaryLiteral, Hashable, TSerializable {
    /// The entries.
    public var storage: [Key: Value]

    /// An empty map.
    public init() { storage = [:] }
    /// A map of `dictionary`'s entries.
    public init(_ dictionary: [Key: Value]) { storage = dictionary }
    public init(dictionaryLiteral elements: (Key, Value)...) {
        storage = Dictionary(elements, uniquingKeysWith: { _, last in last })
    }

    public var startIndex: Dictionary<Key, Value>.Index { storage.startIndex }
    public var endIndex: Dictionary<Key, Value>.Index { storage.endIndex }
    public func index(after i: Dictionary<Key, Value>.Index) -> Dictionary<Key, Value>.Index { storage.index(after: i) }
    public subscript(position: Dictionary<Key, Value>.Index) -> (key: Key, value: Value) { storage[position] }

    /// The value for `key`, nil if absent; setting nil removes it.
    public subscript(key: Key) -> Value? {
        get { storage[key] }
        set { storage[key] = newValue }
    }

    /// The keys.
    public var keys: Dictionary<Key, Value>.Keys { storage.keys }
    /// The values.
    public var values: Dictionary<Key, Value>.Values { storage.values }

    public static var thriftType: TType { .map }

    /// Reads a map; its declared size is checked against the transport's limit first.
    /// - Throws: ``TProtocolError``, ``TTransportError``.
    public static func read(from proto: any TProtocol) throws -> TMap {
        let (keyType, valueType, size) = try proto.readMapBegin()
        try proto.checkContainer(size: size, elementType: keyType, expected: Key.thriftType)
        if size > 0 && valueType != Value.thriftType {
            throw TProtocolError(error: .invalidData, message: "map value type \(valueType), expected \(Value.thriftType)")
        }
        var map = TMap()
        map.storage.reserveCapacity(Swift.min(Int(size), 4096))
        for _ in 0..<size {
            let key = try Key.read(from: proto)
            map.storage[key] = try Value.read(from: proto)
        }
        try proto.readMapEnd()
        return map
    }

    /// Writes the map.
    public func write(to proto: any TProtocol) throws {
        try proto.writeMapBegin(keyType: Key.thriftType, valueType: Value.thriftType, size: Int32(storage.count))
        for (key, value) in storage {
            try key.write(to: proto)
            try value.write(to: proto)
        }
        try proto.writeMapEnd()
    }
}

extension TMap: CustomStringConvertible {
    public var description: String { storage.description }
}
