@_spi(Testing) import Sprout
import Testing

/// Swift's dynamic exclusivity checker keeps one list of open accesses per thread, on the
/// callers' stacks. These scenarios park a greenlet inside an `inout` access while others touch
/// the same memory; they pass only because every switch swaps the access set.
final class SharedBox: @unchecked Sendable {
    var value = 0
}

@inline(never)
func modify(_ value: inout Int, while body: () throws -> Void) rethrows {
    value += 1
    try body()
    value += 1
}

/// A greenlet parks inside a modify access to `box.value` while the main greenlet and others
/// read and write it.
func parkInsideAnAccessWhileOthersTouchIt() throws {
    let box = SharedBox()
    let holder = spawn { try modify(&box.value) { try sleep(for: .milliseconds(5)) } }
    let others = spawnMany(10) { _ in
        for _ in 0..<5 {
            box.value += 10
            try sleep(for: .milliseconds(1))
        }
    }
    try sleep(for: .milliseconds(1))
    _ = box.value   // the main greenlet reads it while `holder` is parked inside its access
    try joinAll([holder] + others)
    try holder.get()
}

@Suite(.timeLimit(.minutes(1)))
struct ExclusivityTests {
    @Test func hooksAreAvailable() {
        #expect(RuntimeTesting.exclusivityHooksAvailable)
    }

    @Test func greenletParksInsideAnInoutAccessWhileOthersRun() async throws {
        try await green { () throws in
            try parkInsideAnAccessWhileOthersTouchIt()
        }
    }

    @Test func greenletKilledInsideAnInoutAccess() async throws {
        try await green { () throws in
            let box = SharedBox()
            let holders = spawnMany(50) { _ in try modify(&box.value) { try sleep(for: .seconds(60)) } }
            try sleep(for: .zero)
            killAll(holders)
            // Their stacks are back in the pool and reused: the access list must not point into them.
            let reusers = spawnMany(50) { _ in try modify(&box.value) { try sleep(for: .zero) } }
            try joinAll(reusers)
            // Overlapping `inout` accesses from different greenlets leave an unspecified value
            // (the optimiser may write back a stale copy), as with tasks; what matters is that
            // no access trapped and that the access list is intact afterwards: fresh accesses
            // on this greenlet begin and end (a list still pointing into a reused stack would
            // trap or loop here) and their writes stay written.
            #expect(reusers.allSatisfy { $0.isSuccessful })
            box.value = 41
            try modify(&box.value) { try sleep(for: .zero) }
            box.value += 1
            #expect(box.value == 44)
        }
    }

    @Test func withoutTheHooksTheSameProgramTraps() async {
        await #expect(processExitsWith: .failure) {
            RuntimeTesting.testsOnly_disableExclusivityHooks()
            try? GreenThread.run { try parkInsideAnAccessWhileOthersTouchIt() }
        }
    }
}
