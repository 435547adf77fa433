import Glibc
import Sprout
import SproutTestSupport
import Testing

extension HTTPSuites {
    /// `sprout echo` as a process: memory per connection, and memory back after a spike.
    @Suite(.timeLimit(.minutes(2)))
    struct EchoCommandTests {
        /// VmRSS of process `pid` in bytes.
        static func residentBytes(of pid: pid_t) -> Int {
            guard let file = fopen("/proc/\(pid)/status", "r") else { return -1 }
            defer { fclose(file) }
            var line = [CChar](repeating: 0, count: 256)
            while fgets(&line, 256, file) != nil {
                let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                if text.hasPrefix("VmRSS:") { return (Int(text.split(separator: " ")[1]) ?? 0) * 1024 }
            }
            return -1
        }

        /// True when this process (and so the `sprout` built beside it) runs under
        /// AddressSanitizer, whose allocator keeps freed memory in quarantine and adds redzones:
        /// resident memory then says nothing about Sprout's.
        static let underSanitizer = dlsym(nil, "__asan_init") != nil || dlsym(nil, "__tsan_init") != nil

        @Test(.enabled(if: !underSanitizer, "resident memory under a sanitizer's allocator is not Sprout's"))
        func connectionsCostTheirTouchedPagesAndMemoryReturnsAfterASpike() async throws {
            try await green(timeout: .seconds(100)) { () throws in
                _ = try raiseOpenFileLimit()
                let child = try ChildProcess([sproutExecutable(), "echo", "--port", "0"])
                let line = try child.waitForLine(containing: "serving on")
                let port = try #require(Int(line.split(separator: ":").last ?? ""))
                let before = EchoCommandTests.residentBytes(of: child.pid)
                let count = 2000
                var sockets: [Socket] = []
                for _ in 0..<count {
                    let socket = try Socket.connect(host: "127.0.0.1", port: port)
                    try socket.sendAll([UInt8](repeating: 120, count: 64))
                    sockets.append(socket)
                }
                for socket in sockets {
                    var got = 0
                    while got < 64 { got += try socket.recv(maxLength: 64).count }
                }
                let during = EchoCommandTests.residentBytes(of: child.pid)
                // A 64 KiB array per connection cost ~70 KB each; pooled buffers cost the pages
                // the data touched.
                #expect((during - before) / count < 24 * 1024, "\((during - before) / count) bytes per connection")
                for socket in sockets { socket.close() }
                var after = during
                for _ in 0..<50 {
                    try sleep(for: .milliseconds(100))
                    after = EchoCommandTests.residentBytes(of: child.pid)
                    if after - before < 8 << 20 { break }
                }
                #expect(after - before < 8 << 20, "\(after - before) bytes still resident after every connection closed")
                kill(child.pid, SIGTERM)
                #expect(try child.waitForExit(timeout: .seconds(10)) == 0)
            }
        }
    }
}
