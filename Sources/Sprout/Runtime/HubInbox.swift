import CSproutContext
import Glibc
import Synchronization

/// The thread-safe door into a hub: any thread posts work, the hub runs it on its loop.
///
/// Posting appends to a mutex-protected list and, when the list was empty, writes to an
/// eventfd that the hub polls, so a burst of posts costs one wake-up. The mutex is never held
/// across a greenlet switch.
public final class HubInbox: Sendable {
    let eventFD: Int32
    private let state = Mutex<State>(State())

    private struct State {
        var work: [@Sendable () -> Void] = []
        var isOpen = true
    }

    init() throws {
        eventFD = eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK))
        guard eventFD >= 0 else { throw SystemError(errno: errno, operation: "eventfd") }
    }

    deinit {
        _ = close(eventFD)
    }

    /// Queues `work` to run on the hub's loop. Callable from any thread.
    ///
    /// - Returns: False if the hub has ended; `work` is then dropped.
    @discardableResult
    public func post(_ work: @escaping @Sendable () -> Void) -> Bool {
        let wasEmpty: Bool? = state.withLock { state in
            guard state.isOpen else { return nil }
            state.work.append(work)
            return state.work.count == 1
        }
        guard let wasEmpty else { return false }
        if wasEmpty {
            var one: UInt64 = 1
            _ = write(eventFD, &one, 8)
        }
        return true
    }

    /// Takes everything posted so far (on the hub's thread).
    func drain() -> [@Sendable () -> Void] {
        var counter: UInt64 = 0
        _ = read(eventFD, &counter, 8)
        return state.withLock { state in
            let work = state.work
            state.work.removeAll()
            return work
        }
    }

    /// Refuses further posts (the hub is ending).
    func shut() {
        state.withLock { $0.isOpen = false }
    }
}
