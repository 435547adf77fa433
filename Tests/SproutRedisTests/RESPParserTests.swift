@testable import SproutRedis
import Testing

struct RESPParserTests {
    func parse(_ text: String) throws -> (RESPValue, Int)? {
        let bytes = Array(text.utf8)
        return try bytes.withUnsafeBytes { try RESPParser().parse($0).map { ($0.value, $0.length) } }
    }

    @Test func everyReplyType() throws {
        #expect(try parse("+OK\r\n")?.0 == .simpleString("OK"))
        #expect(try parse("-ERR bad\r\n")?.0 == .error("ERR bad"))
        #expect(try parse(":-42\r\n")?.0 == .integer(-42))
        #expect(try parse("$5\r\nhe\r\no\r\n")?.0 == .bulkString(Array("he\r\no".utf8)))
        #expect(try parse("$-1\r\n")?.0 == .null)
        #expect(try parse("*-1\r\n")?.0 == .null)
        #expect(try parse("*2\r\n:1\r\n$1\r\nx\r\n")?.0 == .array([.integer(1), .bulkString([120])]))
        #expect(try parse("_\r\n")?.0 == .null)
        #expect(try parse("#t\r\n")?.0 == .boolean(true))
        #expect(try parse(",3.5\r\n")?.0 == .double(3.5))
        #expect(try parse(",inf\r\n")?.0 == .double(.infinity))
        #expect(try parse("(123456789012345678901234\r\n")?.0 == .bigNumber("123456789012345678901234"))
        #expect(try parse("%1\r\n+a\r\n:1\r\n")?.0 == .map([RESPPair(key: .simpleString("a"), value: .integer(1))]))
        #expect(try parse("~1\r\n+a\r\n")?.0 == .array([.simpleString("a")]))
        #expect(try parse(">2\r\n+message\r\n+x\r\n")?.0 == .array([.simpleString("message"), .simpleString("x")]))
        #expect(try parse("=8\r\ntxt:text\r\n")?.0 == .bulkString(Array("text".utf8)))
        #expect(try parse("!5\r\nERR x\r\n")?.0 == .error("ERR x"))
        #expect(try parse("|1\r\n+key\r\n+value\r\n:7\r\n")?.0 == .integer(7))
    }

    @Test func incompleteRepliesWaitForMore() throws {
        for text in ["", "+OK", "+OK\r", "$5\r\nhel", "$5\r\nhello\r", "*2\r\n:1\r\n", "%1\r\n+a\r\n"] {
            #expect(try parse(text) == nil, "\(text.debugDescription)")
        }
        let whole = try #require(try parse("+OK\r\n:1\r\n"))
        #expect(whole.1 == 5)
    }

    @Test func garbageIsAProtocolError() {
        for text in ["?\r\n", ":12a\r\n", "$-5\r\n", "$3\r\nabcd\r\n", "#x\r\n", "*-2\r\n", ":99999999999999999999\r\n",
                     "$999999999999\r\n", String(repeating: "*1\r\n", count: 100) + ":1\r\n"] {
            do {
                _ = try parse(text)
                Issue.record("accepted \(text.prefix(30).debugDescription)")
            } catch {
                if case .protocolError? = error as? RedisError {} else { Issue.record("\(error)") }
            }
        }
    }
}

struct RedisErrorTests {
    @Test func serverErrorsAreTypedByTheirFirstWord() {
        let moved = RedisError.fromReply("MOVED 3999 127.0.0.1:6381")
        #expect(moved == .server(code: "MOVED", message: "MOVED 3999 127.0.0.1:6381"))
        #expect(moved.redirection?.slot == 3999 && moved.redirection?.address == "127.0.0.1:6381")
        #expect(RedisError.fromReply("ASK 12 10.0.0.2:7000").redirection?.address == "10.0.0.2:7000")
        #expect(RedisError.fromReply("ERR unknown command").redirection == nil)
        #expect(!RedisError.fromReply("WRONGTYPE Operation").breaksConnection)
        #expect(RedisError.timeout("x").breaksConnection)
    }
}
