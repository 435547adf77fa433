import CLibMemcached
import Glibc
import Sprout
import SproutPatch
import Testing

extension PatchSuites {
    @Suite(.timeLimit(.minutes(2)))
    struct LibMemcachedTests {
        @Test func twoHundredGreenletsSetAndGetThroughLibmemcachedsBlockingAPI() async {
            let result = await #expect(processExitsWith: .success, observing: [\.standardErrorContent]) {
                try inPatchedHub {
                    let server = try ScratchMemcached()
                    defer { server.stop() }
                    var inFlight = 0
                    var mostInFlight = 0
                    var operations = 0
                    let clients = (0..<200).map { client in
                        spawn { () throws -> Void in
                            // One memcached_st (one connection) per greenlet: the rule for C clients.
                            guard let memc = memcached_create(nil) else { failChild("memcached_create") }
                            defer { memcached_free(memc) }
                            guard memcached_server_add(memc, "127.0.0.1", in_port_t(server.port)) == MEMCACHED_SUCCESS else {
                                failChild("memcached_server_add")
                            }
                            for round in 0..<10 {
                                let key = "greenlet-\(client)-key-\(round)"
                                let value = String(repeating: "v\(client).\(round)-", count: 1 + (client * 7 + round) % 50)
                                inFlight += 1
                                mostInFlight = max(mostInFlight, inFlight)
                                let stored = memcached_set(memc, key, key.utf8.count, value, value.utf8.count, 0, 0)
                                inFlight -= 1
                                guard stored == MEMCACHED_SUCCESS else {
                                    failChild("set \(key): \(String(cString: memcached_strerror(memc, stored)))")
                                }
                                // Another greenlet's turn in between: nothing may leak across connections.
                                try sleep(for: .zero)
                                var length = 0
                                var flags: UInt32 = 0
                                var error = MEMCACHED_SUCCESS
                                inFlight += 1
                                mostInFlight = max(mostInFlight, inFlight)
                                guard let got = memcached_get(memc, key, key.utf8.count, &length, &flags, &error) else {
                                    failChild("get \(key): \(String(cString: memcached_strerror(memc, error)))")
                                }
                                inFlight -= 1
                                let text = String(decoding: UnsafeRawBufferPointer(start: got, count: length), as: UTF8.self)
                                free(got)
                                guard text == value else { failChild("get \(key) returned another value") }
                                operations += 2
                            }
                        }
                    }
                    for client in clients { try client.join() }
                    guard operations == 200 * 10 * 2 else { failChild("\(operations) operations") }
                    // Greenlets were inside libmemcached at the same time: its waits parked them.
                    guard mostInFlight > 50 else { failChild("at most \(mostInFlight) calls were in flight at once") }
                    report("libmemcached operations=\(operations) in-flight=\(mostInFlight)")
                }
            }
            explainChildFailure(result)
            let text = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
            #expect(text.contains("operations=4000"), "\(text)")
        }
    }
}
