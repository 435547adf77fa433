import SproutTestSupport
import Testing

/// Runs the suite it marks while no other socket-counting suite runs (see
/// `ExclusiveSocketAccess`).
struct SocketCountingSuite: SuiteTrait, TestScoping {
    var isRecursive: Bool { false }

    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        try await ExclusiveSocketAccess.run(function)
    }
}

extension Trait where Self == SocketCountingSuite {
    /// Excludes every other socket-counting suite of the process while this one runs.
    static var countsSockets: Self { SocketCountingSuite() }
}
