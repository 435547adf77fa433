import CSproutSystem
import Glibc
import Synchronization

/// The thread-safe door into a hub: any thread posts work, the hub runs it on its loop.
///
/// Posting appends to a mutex-protected list. The eventfd that wakes the hub is written only
/// when the hub has said it is about to sleep in `epoll_wait`; a hub that is running (or
/// spinning for an expected reply) sees the work at its next loop turn, so a busy hub costs a
/// poster no syscall. The mutex is never held across a greenlet switch.
public final class HubInbox: Sendable {
    let eventFD: Int32
    private let state = ThreadLock<State>(State())
    /// Number of posts not yet drained (read by the hub without the lock).
    private let pending = Atomic<Int>(0)
    /// True while the hub sleeps, or is about to sleep, in `epoll_wait`.
    private let hubSleeping = Atomic<Bool>(false)

    private struct State {
        var work: [@Sendable () -> Void] = []
        var isOpen = true
    }

    init() throws {
        eventFD = eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK))
        guard eventFD >= 0 else { throw SystemError(errno: errno, operation: "eventfd") }
        sprout_hub_descriptor_track(eventFD)
    }

    deinit {
        sprout_hub_descriptor_untrack(eventFD)
        _ = close(eventFD)
    }

    /// Queues `work` to run on the hub's loop. Callable from any thread.
    ///
    /// - Returns: False if the hub has ended; `work` is then dropped.
    @discardableResult
    public func post(_ work: @escaping @Sendable () -> Void) -> Bool {
        let accepted = state.withLock { state -> Bool in
            guard state.isOpen else { return false }
            state.work.append(work)
            return true
        }
        guard accepted else { return false }
        pending.add(1, ordering: .sequentiallyConsistent)
        if hubSleeping.load(ordering: .sequentiallyConsistent) {
            var one: UInt64 = 1
            _ = write(eventFD, &one, 8)
        }
        return true
    }

    /// True if work was posted and not yet drained (on the hub's thread; a cheap atomic load).
    var hasWork: Bool { pending.load(ordering: .acquiring) > 0 }

    /// Declares that the hub is about to sleep. Returns false (and stays awake) if work arrived.
    /// Pairs with the load in ``post(_:)``: either the poster sees the flag and writes the
    /// eventfd, or the hub sees the work here.
    func prepareToSleep() -> Bool {
        hubSleeping.store(true, ordering: .sequentiallyConsistent)
        if pending.load(ordering: .sequentiallyConsistent) > 0 {
            hubSleeping.store(false, ordering: .relaxed)
            return false
        }
        return true
    }

    /// The hub is awake again.
    func wokeUp() {
        hubSleeping.store(false, ordering: .relaxed)
    }

    /// Clears the eventfd after epoll reported it readable.
    func acknowledgeWakeUp() {
        var counter: UInt64 = 0
        _ = read(eventFD, &counter, 8)
    }

    /// Runs everything posted so far, in order (on the hub's thread).
    ///
    /// The posted list is swapped with a spare one under the lock, and the spare keeps its
    /// capacity: a steady stream of replies costs no allocation here.
    func drain(_ run: (@escaping @Sendable () -> Void) -> Void) {
        state.withLock { state in swap(&state.work, &spare) }
        pending.subtract(spare.count, ordering: .sequentiallyConsistent)
        for work in spare { run(work) }
        spare.removeAll(keepingCapacity: true)
    }

    /// The hub's side of the swap in ``drain(_:)``; touched only on the hub's thread.
    nonisolated(unsafe) private var spare: [@Sendable () -> Void] = []

    /// Refuses further posts (the hub is ending).
    func shut() {
        state.withLock { $0.isOpen = false }
    }
}
