/// Thrift's `list<T>`: an array that reads and writes itself.
public struct TList<Element: TSerializable & Hashable>: RandomAccessCollection, MutableCollection,
    ExpressibleByArrayLiteral, Hashable, TSerializable {
    /// The elements.
    public var storage: [Element]

    /// An empty list.
    public init() { storage = [] }
    /// A list of `elements`.
    public init<S: Sequence>(_ elements: S) where S.Element == Element { storage = Array(elements) }
    public init(arrayLiteral elements: Element...) { storage = elements }

    public var startIndex: Int { storage.startIndex }
    public var endIndex: Int { storage.endIndex }
    public subscript(position: Int) -> Element {
        get { storage[position] }
        set { storage[position] = newValue }
    }

    /// Appends `element`.
    public mutating func append(_ element: Element) { storage.append(element) }
    /// Appends `elements`.
    public mutating func append<S: Sequence>(contentsOf elements: S) where S.Element == Element {
        storage.append(contentsOf: elements)
    }

    public static var thriftType: TType { .list }

    /// Reads a list; its declared size is checked against the transport's limit first.
    /// - Throws: ``TProtocolError`` (a wrong element type, a size past the limit),
    ///   ``TTransportError``.
    public static func read(from proto: any TProtocol) throws -> TList {
        let (type, size) = try proto.readListBegin()
        try proto.checkContainer(size: size, elementType: type, expected: Element.thriftType)
        var list = TList()
        list.storage.reserveCapacity(Swift.min(Int(size), 4096))
        for _ in 0..<size { list.storage.append(try Element.read(from: proto)) }
        try proto.readListEnd()
        return list
    }

    /// Writes the list.
    public func write(to proto: any TProtocol) throws {
        try proto.writeListBegin(elementType: Element.thriftType, size: Int32(storage.count))
        for element in storage { try element.write(to: proto) }
        try proto.writeListEnd()
    }
}

extension TList: CustomStringConvertible {
    public var description: String { storage.description }
}
