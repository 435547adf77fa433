import Sprout
import Testing

@inline(never)
func recurse(_ depth: Int) -> Int {
    // A frame of a few hundred bytes that the optimiser cannot fold away.
    var scratch = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    withUnsafeMutableBytes(of: &scratch) { bytes in bytes[depth % 100] = UInt8(truncatingIfNeeded: depth) }
    if depth == Int.min { return 0 }
    return recurse(depth + 1) &+ Int(withUnsafeBytes(of: scratch) { $0[0] })
}

@Suite(.timeLimit(.minutes(1)))
struct StackOverflowTests {
    @Test func overflowNamesTheGreenletAndItsStackSize() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = try? GreenThread.run {
                let g = spawn(name: "deep-recursion", stackSize: 64 * 1024) { recurse(0) }
                _ = try g.get()
            }
        }
        let stderr = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(stderr.contains("stack overflow in greenlet 'deep-recursion' (stack size 64 KiB)"))
    }

    @Test func deepButBoundedRecursionFitsTheDefaultStack() async throws {
        try await green { () throws in
            // 150 frames each holding a 512-byte buffer: about 90 KiB in release (more in
            // debug), deeper than a guard region, well inside the default 256 KiB.
            let g = spawn { () -> Int in
                func down(_ n: Int) -> Int {
                    if n == 0 { return stackBytesInUse() }
                    return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 512) { buffer in
                        buffer.initialize(repeating: UInt8(truncatingIfNeeded: n))
                        return max(down(n - 1), Int(buffer[n % 512]))
                    }
                }
                return down(150)
            }
            let deepest = try g.get()
            #expect(deepest > 64 * 1024, "only \(deepest) bytes of stack in use at the deepest frame")
        }
    }
}
