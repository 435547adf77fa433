import AllTypesThrift
import Glibc
import Follow
import FoundationEssentials
import Sprout
import SproutTestSupport
import SproutThrift
import Testing

/// Sprout's Thrift against Python's (Debian's python3-thrift, the seed team's stack), in every
/// protocol × transport pair: a Python client against `sprout follow` and a Sprout server of
/// the all-types IDL, and Sprout's pooled clients against Python servers of both IDLs.
@Suite(.serialized, .timeLimit(.minutes(5)), .countsSockets)
struct PythonInteropTests {
    @Test(arguments: wirePairs.map { "\($0.0)/\($0.1)" })
    func aPythonClientTalksToSproutFollow(_ pair: String) async throws {
        let (proto, transport) = split(pair)
        try await GreenThread.run {
            let generated = try pythonGenerated("follow")
            let port = try freePort()
            let server = try ChildProcess([sproutExecutable(), "follow", "--port", "\(port)", "--protocol", proto, "--transport", transport])
            _ = try server.waitForLine(containing: "serving")
            let output = try runPythonClient("follow", protocol: proto, transport: transport, port: port, generated: generated)
            #expect(output == """
                followers [1, 3]
                limited [1] []
                isFollowing True False
                notfound user 99 has no follow edges
                slept True
                after ping True [2]
                done

                """, "\(pair): \(output)")
            kill(server.pid, SIGTERM)
            #expect(try server.waitForExit(timeout: .seconds(10)) == 0, "SIGTERM drains and exits 0")
        }
    }

    @Test(arguments: wirePairs.map { "\($0.0)/\($0.1)" })
    func sproutClientsTalkToAPythonFollowServer(_ pair: String) async throws {
        let (proto, transport) = split(pair)
        try await GreenThread.run {
            let generated = try pythonGenerated("follow")
            let (server, port) = try startPythonServer("follow", protocol: proto, transport: transport, generated: generated)
            _ = server
            let follow = ThriftClientPool<FollowServiceClient>(host: "127.0.0.1", port: port, configuration: .init(
                protocolKind: ThriftProtocolKind(rawValue: proto)!, transportKind: ThriftTransportKind(rawValue: transport)!))
            defer { follow.close() }
            try follow.withClient { client in
                try client.follow(follower: 10, followee: 20)
                try client.follow(follower: 30, followee: 20)
                try client.follow(follower: 10, followee: 20)
                try client.ping()
                #expect(Array(try client.followers(user: 20, limit: 10)) == [10, 30])
                #expect(try client.isFollowing(a: 10, b: 20))
                #expect(try !client.isFollowing(a: 20, b: 10))
                try client.sleep(ms: 20)
            }
            #expect(throws: NotFound.self) { try follow.withClient { try $0.followers(user: 77, limit: 1) } }
            // A declared exception leaves the connection in the pool; calls from many greenlets at once.
            let callers = (0..<20).map { index in
                spawn { try follow.withClient { try $0.isFollowing(a: 10, b: index % 2 == 0 ? 20 : 21) } }
            }
            for (index, caller) in callers.enumerated() { #expect(try caller.get() == (index % 2 == 0)) }
            #expect(follow.statistics.discarded == 0)
        }
    }

    @Test(arguments: wirePairs.map { "\($0.0)/\($0.1)" })
    func everyTypeRoundTripsThroughAPythonEchoServer(_ pair: String) async throws {
        let (proto, transport) = split(pair)
        try await GreenThread.run {
            let generated = try pythonGenerated("alltypes")
            let (server, port) = try startPythonServer("alltypes", protocol: proto, transport: transport, generated: generated)
            _ = server
            let echo = ThriftClientPool<EchoClient>(host: "127.0.0.1", port: port, configuration: .init(
                protocolKind: ThriftProtocolKind(rawValue: proto)!, transportKind: ThriftTransportKind(rawValue: transport)!,
                pool: .init(maxOpen: 1)))
            defer { echo.close() }
            let value = everything()
            let back = try echo.withClient { try $0.echo(value: value) }
            #expect(back == value, "\(pair): \(back)")
            value.maybe = Inner(name: "opt", count: 3, children: [])
            value.note = "set"
            value.choice = .text(val: "t")
            #expect(try echo.withClient { try $0.echo(value: value) } == value)
            #expect(try echo.withClient { try $0.pick(c: .number(val: -7)) } == .number(val: -7))
            let grouped = try echo.withClient { try $0.group(items: [Inner(name: "a", children: []), Inner(name: "b", count: 2, children: [])]) }
            #expect(grouped[.red]?.name == "a" && grouped[.green]?.count == 2 && grouped.count == 2)

            do {
                try echo.withClient { try $0.fail(code: 3) }
                Issue.record("no Oops")
            } catch let oops as Oops {
                #expect(oops.code == 3 && oops.why == "failed 3")
            }
            do {
                try echo.withClient { try $0.fail(code: 0) }
                Issue.record("no TApplicationError")
            } catch let error as TApplicationError {
                #expect(error.error == .internalError, "\(error)")
            }
            try echo.withClient { client in
                try client.note(text: "one")
                try client.note(text: "two")
                #expect(Array(try client.notes()) == ["one", "two"], "oneway calls arrived, in order")
            }
            #expect(echo.statistics.created == 1, "exceptions left the one connection usable")
        }
    }

    @Test(arguments: wirePairs.map { "\($0.0)/\($0.1)" })
    func aPythonClientRoundTripsEveryTypeThroughASproutServer(_ pair: String) async throws {
        let (proto, transport) = split(pair)
        let logs = LogLines()
        try await GreenThread.run {
            let generated = try pythonGenerated("alltypes")
            let handler = EchoHandler()
            let server = ThriftServer(configuration: .init(port: 0, protocolKind: ThriftProtocolKind(rawValue: proto)!,
                                                           transportKind: ThriftTransportKind(rawValue: transport)!),
                                      processor: EchoProcessor(service: handler), logger: logs.logger())
            try server.start()
            defer { server.stop(timeout: .seconds(1)) }
            let output = try runPythonClient("alltypes", protocol: proto, transport: transport, port: server.port, generated: generated)
            #expect(output == """
                echo True
                echo optionals True
                oops 3 failed 3
                undeclared True internal error processing fail
                notes ['first', 'second']
                pick True
                group [(1, 'a'), (2, 'b'), (7, 'c')]
                done

                """, "\(pair): \(output)")
            #expect(handler.recordedNotes == ["first", "second"])
            #expect(logs.count(containing: "handler threw an undeclared error") == 1, "logged once: \(logs.all)")
            #expect(logs.contains("EchoHandlerBug"), "with the error: \(logs.all)")
        }
    }

    private func split(_ pair: String) -> (String, String) {
        let parts = pair.split(separator: "/")
        return (String(parts[0]), String(parts[1]))
    }
}

/// A value with every field set but one optional, at the edges of every type. (`note` is set:
/// Python's reader fills an absent optional field with its IDL default, "default".)
func everything() -> Everything {
    let leaf = Inner(name: "leaf", count: -1, children: [])
    return Everything(
        flag: true, tiny: -128, small: -32768, medium: .max, big: .min, real: -2.5e-300,
        text: "héllo ✓ \u{0} end", blob: Data([0, 1, 2, 254, 255]), numbers: [0, -1, 1, .max, .min],
        tags: ["a", "b", ""], counts: ["x": 1, "y": -(1 << 40)], nested: [7: [["p", "q"], []], -3: []],
        inner: Inner(name: "root", children: [leaf, Inner(name: "empty", children: [])]), maybe: nil,
        color: .blue, choice: .inner(val: leaf), note: "plain", user: 123_456_789_012,
        colors: [.red, .blue, .green], byColor: [.green: leaf], withDefault: 5)
}
