/// Thrift's `set<T>`: a set that reads and writes itself.
public struct TSet<Element: TSerializable & Hashable>: Collection, ExpressibleByArrayLiteral, Hashable, TSerializable {
    /// The elements.
    public var storage: Set<Element>

    /// An empty set.
    public init() { storage = [] }
    /// A set of `elements`.
    public init<S: Sequence>(_ elements: S) where S.Element == Element { storage = Set(elements) }
    public init(arrayLiteral elements: Element...) { storage = Set(elements) }

    public var startIndex: Set<Element>.Index { storage.startIndex }
    public var endIndex: Set<Element>.Index { storage.endIndex }
    public func index(after i: Set<Element>.Index) -> Set<Element>.Index { storage.index(after: i) }
    public subscript(position: Set<Element>.Index) -> Element { storage[position] }

    /// Whether `element` is in the set.
    public func contains(_ element: Element) -> Bool { storage.contains(element) }
    /// Inserts `element`; true if it was not there.
    @discardableResult
    public mutating func insert(_ element: Element) -> Bool { storage.insert(element).inserted }
    /// Removes `element`, returning it if it was there.
    @discardableResult
    public mutating func remove(_ element: Element) -> Element? { storage.remove(element) }

    public static var thriftType: TType { .set }

    /// Reads a set; its declared size is checked against the transport's limit first.
    /// - Throws: ``TProtocolError``, ``TTransportError``.
    public static func read(from proto: any TProtocol) throws -> TSet {
        let (type, size) = try proto.readSetBegin()
        try proto.checkContainer(size: size, elementType: type, expected: Element.thriftType)
        var set = TSet()
        set.storage.reserveCapacity(Swift.min(Int(size), 4096))
        for _ in 0..<size { set.storage.insert(try Element.read(from: proto)) }
        try proto.readSetEnd()
        return set
    }

    /// Writes the set.
    public func write(to proto: any TProtocol) throws {
        try proto.writeSetBegin(elementType: Element.thriftType, size: Int32(storage.count))
        for element in storage { try element.write(to: proto) }
        try proto.writeSetEnd()
    }
}

extension TSet: CustomStringConvertible {
    public var description: String { storage.description }
}
