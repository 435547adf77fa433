/// One suite at a time, process-wide, for the test suites that count the process's open
/// sockets: `swift test` runs every test module in one process and their suites in parallel,
/// so one module's sockets would show up in another's counts.
///
/// An actor-based lock (no thread blocks while waiting); both test modules link this one
/// module, so they share its state.
public actor ExclusiveSocketAccess {
    /// The lock every socket-counting suite takes.
    public static let shared = ExclusiveSocketAccess()

    private var held = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    /// Waits until no other suite holds the lock, then holds it.
    public func acquire() async {
        guard held else {
            held = true
            return
        }
        await withCheckedContinuation { waiters.append($0) }
    }

    /// Hands the lock to the next waiting suite, or frees it.
    public func release() {
        if waiters.isEmpty {
            held = false
        } else {
            waiters.removeFirst().resume()
        }
    }

    /// Runs `body` while holding the lock.
    public static func run(_ body: () async throws -> Void) async throws {
        await shared.acquire()
        do {
            try await body()
        } catch {
            await shared.release()
            throw error
        }
        await shared.release()
    }
}
