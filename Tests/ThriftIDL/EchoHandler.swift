import Thrift

/// An undeclared error: the server must turn it into a TApplicationError.
public struct EchoHandlerBug: Error {}

/// The Echo service of alltypes.thrift, as the Python peer implements it too:
/// `echo` returns its argument (`Oops` for medium == -1), `fail(code)` throws `Oops` for a
/// positive code and an undeclared error otherwise, `note` records (oneway), `notes` lists
/// what was recorded, `pick` returns its argument, `group` keys the items by color in turn.
public final class EchoHandler: Echo {
    public private(set) var recordedNotes: [String] = []

    public init() {}

    public func echo(value: Everything) throws -> Everything {
        if value.medium == -1 { throw Oops(code: -1, why: "negative") }
        return value
    }

    public func fail(code: Int32) throws {
        if code > 0 { throw Oops(code: code, why: "failed \(code)") }
        throw EchoHandlerBug()
    }

    public func note(text: String) throws { recordedNotes.append(text) }

    public func notes() throws -> TList<String> { TList(recordedNotes) }

    public func pick(c: Choice) throws -> Choice { c }

    public func group(items: TList<Inner>) throws -> TMap<Color, Inner> {
        let colors: [Color] = [.red, .green, .blue]
        var map = TMap<Color, Inner>()
        for (index, item) in items.enumerated() { map[colors[index % 3]] = item }
        return map
    }
}
