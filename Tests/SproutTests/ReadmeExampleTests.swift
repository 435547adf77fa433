import Sprout
import Testing

/// The README's example, run as written (with the print replaced by a check).
@Suite(.timeLimit(.minutes(1)))
struct ReadmeExampleTests {
    @Test func readmeExampleRuns() throws {
        let answer = try GreenThread.run { () throws -> Int in
            let results = Queue<Int>()
            let workers = (1...3).map { n in
                spawn(name: "worker-\(n)") {
                    try sleep(for: .milliseconds(10 * n))   // parks this greenlet, the others run
                    try results.put(n * n)
                }
            }
            try joinAll(workers, timeout: .seconds(1))
            return try withTimeout(.seconds(1)) { try results.get() }
        }
        #expect(answer == 1)
    }
}
