import Sprout
import Testing

@Suite(.timeLimit(.minutes(1)))
struct PoolTests {
    @Test func poolLimitsConcurrencyAndReportsFreeCount() async throws {
        try await green { () throws in
            let pool = Pool(size: 4)
            #expect(pool.freeCount == 4)
            var running = 0
            var most = 0
            for index in 0..<40 {
                try pool.spawn {
                    running += 1
                    most = max(most, running)
                    try sleep(for: .milliseconds(1))
                    running -= 1
                }
                // The first four took the slots without a switch point: full now. (Later, a
                // slot may free again before the loop resumes, so only this moment is certain.)
                if index == 3 { #expect(pool.freeCount == 0 && pool.isFull) }
            }
            #expect(try pool.join(timeout: .seconds(10)))
            #expect(most == 4)
            #expect(pool.freeCount == 4 && pool.count == 0)
        }
    }

    @Test func mapKeepsOrderImapUnorderedFollowsCompletion() async throws {
        try await green { () throws in
            let pool = Pool(size: 3)
            let squares = try pool.map(0..<20) { n -> Int in
                try sleep(for: .milliseconds((20 - n) % 4))
                return n * n
            }
            #expect(squares == (0..<20).map { $0 * $0 })

            let group = Group()
            var ordered: [Int] = []
            let iterator = group.imap([3, 1, 2]) { n -> Int in
                try sleep(for: .milliseconds(n * 3))
                return n
            }
            while let value = try iterator.next() { ordered.append(value) }
            #expect(ordered == [3, 1, 2])

            var finishing: [Int] = []
            // 20 ms apart: under ThreadSanitizer a few milliseconds do not order the finishes.
            let unordered = group.imapUnordered([3, 1, 2]) { n -> Int in
                try sleep(for: .milliseconds(n * 20))
                return n
            }
            while let value = try unordered.next() { finishing.append(value) }
            #expect(finishing == [1, 2, 3])
        }
    }

    @Test func mapRethrowsTheFirstErrorInItemOrder() async throws {
        try await green { () throws in
            let group = Group()
            #expect(throws: TestError(code: 2)) {
                _ = try group.map(0..<5) { n -> Int in
                    if n == 2 { throw TestError(code: 2) }
                    if n == 4 { throw TestError(code: 4) }
                    return n
                }
            }
        }
    }

    @Test func groupJoinAndKill() async throws {
        try await green { () throws in
            let group = Group()
            let sleepers = (0..<50).map { _ in group.spawn { try sleep(for: .seconds(60)) } }
            #expect(group.count == 50)
            #expect(try group.join(timeout: .milliseconds(5)) == false)
            group.kill()
            #expect(sleepers.allSatisfy { $0.isReady })
            #expect(try group.join(timeout: .seconds(1)))
            #expect(group.count == 0)
        }
    }

    @Test func poolSpawnWaitsForAPlaceAndCanBeInterrupted() async throws {
        try await green { () throws in
            let pool = Pool(size: 1)
            try pool.spawn { try sleep(for: .seconds(60)) }
            #expect(throws: Timeout.self) {
                try withTimeout(.milliseconds(5)) { _ = try pool.spawn { 1 } }
            }
            #expect(try pool.waitAvailable(timeout: .milliseconds(5)) == false)
            pool.kill()
            #expect(try pool.waitAvailable(timeout: .seconds(1)))
            let value = try pool.spawn { 42 }.get()
            #expect(value == 42)
        }
    }
}
