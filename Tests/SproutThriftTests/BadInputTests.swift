import Follow
import Glibc
import Sprout
import SproutTestSupport
import SproutThrift
import Testing

/// Hostile and broken bytes sent to ThriftServer: each is answered or its connection closed,
/// with a log line that says why, and the server serves on.
@Suite(.serialized, .timeLimit(.minutes(2)), .countsSockets)
struct BadInputTests {
    /// A call message: the strict binary header for `method`, then `body` (the arguments'
    /// fields, raw).
    static func call(_ method: String, _ body: [UInt8]) throws -> [UInt8] {
        let out = TMemoryBuffer()
        try TBinaryProtocol(on: out).writeMessageBegin(name: method, type: .call, sequenceID: 7)
        return out.written + body
    }

    static func frame(_ bytes: [UInt8]) -> [UInt8] {
        let length = UInt32(bytes.count)
        return [UInt8(length >> 24), UInt8(length >> 16 & 0xff), UInt8(length >> 8 & 0xff), UInt8(length & 0xff)] + bytes
    }

    /// The args of isFollowing(a, b) well formed.
    static let goodArgs: [UInt8] = [10, 0, 1] + [UInt8](repeating: 0, count: 7) + [1] + [10, 0, 2] + [UInt8](repeating: 0, count: 7) + [2] + [0]

    /// Reads one reply: its type and, for an exception, the error.
    static func reply(_ proto: TBinaryProtocol) throws -> (TMessageType, TApplicationError?) {
        let (_, type, sequence) = try proto.readMessageBegin()
        #expect(sequence == 7, "the reply answers the call's sequence id")
        if type == .exception { return (type, try TApplicationError.read(from: proto)) }
        try proto.skip(type: .struct)
        return (type, nil)
    }

    /// True once the server has closed `socket` (a read sees the end, or a reset).
    static func isClosedByServer(_ socket: Socket) -> Bool {
        socket.timeout = .seconds(5)
        do {
            var byte: UInt8 = 0
            return try withUnsafeMutableBytes(of: &byte) { try socket.recv(into: $0) } == 0
        } catch { return true }
    }

    @Test func framedRequestsThatDoNotParseAreAnsweredAndTheConnectionServesOn() async throws {
        let logs = LogLines()
        try await GreenThread.run {
            try withFollowServer(.init(port: 0, maxFrameSize: 1 << 20), logs: logs) { server in
                let socket = try Socket.connect(host: "127.0.0.1", port: server.port)
                defer { socket.close() }
                socket.timeout = .seconds(10)
                let framed = TFramedTransport(socket: socket)
                let proto = TBinaryProtocol(on: framed)
                // Frames go out raw (not through `framed`), so the reader is told a reply starts.
                func send(_ message: [UInt8]) throws {
                    framed.skipRestOfFrame()
                    try socket.sendAll(Self.frame(message))
                }

                try send(try Self.call("noSuchMethod", [0]))
                let (type, unknown) = try Self.reply(proto)
                #expect(type == .exception && unknown?.error == .unknownMethod(methodName: nil), "\(String(describing: unknown))")

                // Field 1 a string where an i64 is declared: skipped, so the required field is missing.
                try send(try Self.call("isFollowing", [11, 0, 1, 0, 0, 0, 1, 0x78, 0]))
                let (_, wrongType) = try Self.reply(proto)
                #expect(wrongType?.error == .protocolError && wrongType?.message?.contains("missing required field a") == true)

                // A string of 1000 bytes in a frame that holds 3 of them.
                try send(try Self.call("isFollowing", [11, 0, 1, 0, 0, 0x03, 0xe8, 1, 2, 3]))
                let (_, pastFrame) = try Self.reply(proto)
                #expect(pastFrame?.message?.contains("past the end of the frame") == true, "\(String(describing: pastFrame))")

                // 100 nested structs.
                try send(try Self.call("isFollowing", Array([[UInt8]](repeating: [12, 0, 1], count: 100).joined())))
                let (_, deep) = try Self.reply(proto)
                #expect(deep?.message?.contains("nest deeper") == true, "\(String(describing: deep))")

                // Not Thrift at all ("GET " read as a non-strict header: a name of 1,195,725,856 bytes): no
                // header to answer, so only logged; the next frame is fine.
                try send(Array("GET / HTTP/1.1\r\n\r\n".utf8))
                try send(try Self.call("isFollowing", Self.goodArgs))
                let (good, none) = try Self.reply(proto)
                #expect(good == .reply && none == nil, "the connection still serves")

                #expect(logs.contains("method=noSuchMethod"), "\(logs.all)")
                #expect(logs.contains("missing required field a") && logs.contains("past the end of the frame")
                        && logs.contains("nest deeper") && logs.contains("size 1195725856 exceeds the limit 1048576"), "\(logs.all)")
            }
        }
    }

    @Test func framesTooLargeOrCutShortCloseOnlyTheirConnection() async throws {
        let logs = LogLines()
        try await GreenThread.run {
            try withFollowServer(.init(port: 0, maxFrameSize: 1 << 20), logs: logs) { server in
                let huge = try Socket.connect(host: "127.0.0.1", port: server.port)
                defer { huge.close() }
                try huge.sendAll([0x80, 0, 0, 0])
                #expect(Self.isClosedByServer(huge), "a 2 GiB frame closes the connection")

                let cut = try Socket.connect(host: "127.0.0.1", port: server.port)
                defer { cut.close() }
                try cut.sendAll([0, 0, 0, 100] + [UInt8](repeating: 1, count: 10))
                try cut.shutdown(.write)
                #expect(Self.isClosedByServer(cut), "a frame cut short closes the connection")

                let empty = try Socket.connect(host: "127.0.0.1", port: server.port)
                defer { empty.close() }
                try empty.sendAll([0, 0, 0, 0])
                #expect(Self.isClosedByServer(empty), "an empty frame closes the connection")

                #expect(logs.contains("frame of 2147483648 bytes exceeds the maximum 1048576"), "\(logs.all)")
                #expect(logs.contains("closed inside a frame of 100 bytes"), "\(logs.all)")
                #expect(logs.contains("an empty frame"), "\(logs.all)")

                let pool = ThriftClientPool<FollowServiceClient>(host: "127.0.0.1", port: server.port)
                defer { pool.close() }
                #expect(try !pool.withClient { try $0.isFollowing(a: 1, b: 2) }, "the server serves on")
            }
        }
    }

    @Test func bufferedConnectionsCloseAfterAnsweringWhatTheyCanAndRefuseHugeStrings() async throws {
        let logs = LogLines()
        try await GreenThread.run {
            try withFollowServer(.init(port: 0, transportKind: .buffered, maxFrameSize: 1 << 20), logs: logs) { server in
                // A method name of 2 GiB - 1 bytes: refused before reading (or allocating) it.
                let huge = try Socket.connect(host: "127.0.0.1", port: server.port)
                defer { huge.close() }
                try huge.sendAll([0x80, 0x01, 0x00, 0x01, 0x7f, 0xff, 0xff, 0xff, 0x61])
                #expect(Self.isClosedByServer(huge))
                #expect(logs.contains("exceeds the limit 1048576"), "\(logs.all)")

                // A wrong field type is answered, then the unframed connection is closed (where the
                // next message starts cannot be trusted after a protocol error).
                let wrong = try Socket.connect(host: "127.0.0.1", port: server.port)
                defer { wrong.close() }
                wrong.timeout = .seconds(10)
                try wrong.sendAll(try Self.call("isFollowing", [11, 0, 1, 0, 0, 0, 1, 0x78, 0]))
                let (_, error) = try Self.reply(TBinaryProtocol(on: TSocketTransport(socket: wrong)))
                #expect(error?.error == .protocolError)
                #expect(Self.isClosedByServer(wrong))

                let pool = ThriftClientPool<FollowServiceClient>(host: "127.0.0.1", port: server.port,
                                                                 configuration: .init(transportKind: .buffered))
                defer { pool.close() }
                #expect(try !pool.withClient { try $0.isFollowing(a: 1, b: 2) }, "the server serves on")
            }
        }
    }
}
