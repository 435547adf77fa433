public import Testing

/// Runs the suite it marks while no other socket-counting suite runs (see
/// `ExclusiveSocketAccess`).
public struct SocketCountingSuite: SuiteTrait, TestScoping {
    public var isRecursive: Bool { false }

    public func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        try await ExclusiveSocketAccess.run(function)
    }
}

extension Trait where Self == SocketCountingSuite {
    /// Excludes every other socket-counting suite of the process while this one runs.
    public static var countsSockets: Self { SocketCountingSuite() }
}
