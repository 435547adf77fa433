import Glibc
@_spi(Testing) import Sprout
import SproutTestSupport
import Testing

// Exclusive with the other process-wide suites (sockets, diagnostics): a run-info dump or a
// descriptor count taken while 100,000 greenlets are parked here would measure them too.
@Suite(.timeLimit(.minutes(2)), .serialized, .countsSockets)
struct ScaleTests {
    /// More greenlets than the mprotect guard scheme could ever map (it fails near 32,700 on the
    /// default vm.max_map_count of 65,530), all parked at once. On kernels without
    /// `MADV_GUARD_INSTALL` (before 6.13) the documented mprotect fallback is in force: then
    /// 20,000, which fit its mappings.
    @Test func hundredThousandGreenletsParkedAtOnce() async throws {
        try await green(timeout: .seconds(100)) { () throws in
            let before = HubCounters.current
            let event = Event()
            var woke = 0
            let fallback = RuntimeTesting.guardsCostAMappingEach
            let count = fallback ? 20_000 : 100_000
            let greenlets = spawnMany(count) { _ in
                try event.wait()
                woke += 1
            }
            try sleep(for: .zero)
            #expect(Hub.current.stacksInUse >= count)
            if !fallback {
                #expect(mappingCount() < 30_000, "stack guards must not cost a kernel mapping each")
            }
            event.set()
            try joinAll(greenlets)
            #expect(woke == count)
            try expectNoLeaks(since: before)
        }
    }
}

/// Number of lines in /proc/self/maps: the process's kernel mappings.
func mappingCount() -> Int {
    guard let file = fopen("/proc/self/maps", "r") else { return -1 }
    defer { fclose(file) }
    var lines = 0
    while true {
        let c = getc(file)
        if c == EOF { break }
        if c == 10 { lines += 1 }
    }
    return lines
}
