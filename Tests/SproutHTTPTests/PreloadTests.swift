import Glibc
import Sprout
import SproutHTTP
import SproutTestSupport
import Testing

/// `libSproutPatch.so`, built from SproutPatch's C sources by scripts/build-patch-preload
/// (a second or two of the C compiler) into a folder of this test's own.
private func preloadLibrary() throws -> String {
    let output = "/tmp/sprout-preload-\(getpid())/libSproutPatch.so"
    let (status, _) = try runCommand(["bash", packageRoot() + "/scripts/build-patch-preload", output], timeout: .seconds(120))
    guard status == 0 else { throw TestSupportError(description: "scripts/build-patch-preload failed (\(status))") }
    return output
}

/// Ten requests at once to `/libc-sleep?ms=300`; their wall time.
private func tenBlockingRequests(_ server: ServeProcess) throws -> Double {
    let start = ContinuousClock.now
    let requests = (0..<10).map { _ in
        spawn { () throws in
            let client = HTTPClient(configuration: .init(readTimeout: .seconds(30)))
            defer { client.close() }
            let response = try client.get(server.url("/libc-sleep?ms=300"))
            #expect(response.text == "slept in libc")
        }
    }
    for request in requests { try request.join() }
    return seconds(ContinuousClock.now - start)
}

private func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

/// In HTTPSuites: it opens sockets in this process, which the socket-counting suites must not see.
extension HTTPSuites {
    @Suite(.timeLimit(.minutes(2)))
    struct PreloadTests {
        @Test func ldPreloadMakesLibcSleepInAnUnpatchedBinaryCooperative() async throws {
            try await green(timeout: .seconds(60)) { () throws in
                let library = try preloadLibrary()
                defer { _ = try? runCommand(["rm", "-rf", "/tmp/sprout-preload-\(getpid())"]) }
                // `sprout` is not linked with SproutPatch: the hooks come only from LD_PRELOAD.
                let patched = try ServeProcess(["--workers", "0", "--threads", "1"], preload: library)
                defer { patched.stop() }
                let fast = try tenBlockingRequests(patched)
                // One after another they take 3 s; together, 0.3 s (and a loaded machine's slack).
                #expect(fast < 2.5, "ten 300 ms libc sleeps took \(fast) s with the hooks")
                let plain = try ServeProcess(["--workers", "0", "--threads", "1"])
                defer { plain.stop() }
                let slow = try tenBlockingRequests(plain)
                // Unpatched, usleep blocks the hub: the requests are served one after another.
                #expect(slow >= 2.9, "ten 300 ms libc sleeps took only \(slow) s without the hooks")
            }
        }
    }
}
