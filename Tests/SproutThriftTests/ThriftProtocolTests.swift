import AllTypesThrift
import FoundationEssentials
import SproutThrift
import Testing

/// The protocols in memory: round trips of every type, the bytes the specs prescribe, and
/// refusals of hostile sizes and nesting.
struct ThriftProtocolTests {
    static func roundTrip(_ value: Everything, _ make: (TMemoryBuffer) -> any TProtocol) throws -> Everything {
        let out = TMemoryBuffer()
        try value.write(to: make(out))
        let input = TMemoryBuffer(input: out.written)
        let back = try Everything.read(from: make(input))
        #expect(input.remaining == 0, "the reader consumed exactly what the writer wrote")
        return back
    }

    @Test func everyTypeRoundTripsInBothProtocols() throws {
        let value = everything()
        #expect(try Self.roundTrip(value) { TBinaryProtocol(on: $0) } == value)
        #expect(try Self.roundTrip(value) { TCompactProtocol(on: $0) } == value)
        value.maybe = Inner(name: "m", count: 0, children: [])
        value.choice = .number(val: .min)
        value.flag = false
        #expect(try Self.roundTrip(value) { TBinaryProtocol(on: $0) } == value)
        #expect(try Self.roundTrip(value) { TCompactProtocol(on: $0) } == value)
    }

    @Test func generatedStructsAreWrittenFromTheirFieldLayout() {
        #expect(Everything.writesFromFieldLayout && Inner.writesFromFieldLayout && Oops.writesFromFieldLayout)
        #expect(!Choice.writesFromFieldLayout, "a union (an enum) goes through Mirror")
    }

    @Test func compactFieldHeadersFoldDeltasAndBools() throws {
        let out = TMemoryBuffer()
        let proto = TCompactProtocol(on: out)
        try proto.writeMessageBegin(name: "a", type: .call, sequenceID: 1)
        try proto.writeStructBegin(name: "S")
        try proto.writeFieldBegin(name: "flag", type: .bool, fieldID: 1)
        try proto.write(true)
        try proto.writeFieldBegin(name: "n", type: .i32, fieldID: 2)
        try proto.write(Int32(-1))
        try proto.writeFieldBegin(name: "far", type: .i16, fieldID: 20)
        try proto.write(Int16(5))
        try proto.writeFieldStop()
        try proto.writeStructEnd()
        // 0x82, version 1 | call << 5, varint seq 1, name "a"; then: bool true in the header
        // (delta 1), i32 -1 zigzagged to 1 (delta 1), i16 with a delta past 15: a full id (20 → 40).
        #expect(out.written == [0x82, 0x21, 0x01, 0x01, 0x61, 0x11, 0x15, 0x01, 0x04, 0x28, 0x0a, 0x00])
    }

    @Test func binaryReadsTheOldNonStrictHeaderUnlessStrict() throws {
        let out = TMemoryBuffer()
        try TBinaryProtocol(on: out, strictRead: false, strictWrite: false).writeMessageBegin(name: "ping", type: .oneway, sequenceID: 9)
        #expect(out.written == [0, 0, 0, 4] + Array("ping".utf8) + [4, 0, 0, 0, 9])
        let (name, type, sequence) = try TBinaryProtocol(on: TMemoryBuffer(input: out.written)).readMessageBegin()
        #expect(name == "ping" && type == .oneway && sequence == 9)
        #expect(throws: TProtocolError.self) {
            try TBinaryProtocol(on: TMemoryBuffer(input: out.written), strictRead: true, strictWrite: true).readMessageBegin()
        }
    }

    @Test func hostileSizesAndNestingAreRefusedBeforeAllocating() throws {
        // A string of 2 GiB - 1 declared with 3 bytes behind it.
        let huge = TMemoryBuffer(input: [0x7f, 0xff, 0xff, 0xff, 1, 2, 3], maxMessageSize: 1 << 20)
        #expect { _ = try TBinaryProtocol(on: huge).read() as String } throws: { error in
            guard let error = error as? TProtocolError, case .sizeLimit = error.error else { return false }
            return true
        }
        let negative = TMemoryBuffer(input: [0xff, 0xff, 0xff, 0xfe])
        #expect { _ = try TBinaryProtocol(on: negative).read() as Data } throws: { ($0 as? TProtocolError)?.error == .negativeSize }
        // A list claiming i64s that holds strings.
        let out = TMemoryBuffer()
        try TBinaryProtocol(on: out).writeListBegin(elementType: .string, size: 1)
        try TBinaryProtocol(on: out).write("x")
        #expect(throws: TProtocolError.self) { _ = try TList<Int64>.read(from: TBinaryProtocol(on: TMemoryBuffer(input: out.written))) }
        // 100 structs deep: refused at the 65th, before the reader recurses further.
        var nested: [UInt8] = []
        for _ in 0..<100 { nested += [12, 0, 1] }
        for proto in [TBinaryProtocol(on: TMemoryBuffer(input: nested)) as any TProtocol] {
            #expect { try proto.skip(type: .struct) } throws: { ($0 as? TProtocolError)?.error == .depthLimit }
        }
    }
}
