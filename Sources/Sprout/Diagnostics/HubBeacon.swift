import Glibc
import Synchronization

/// What other threads may know of a hub without touching it: its heartbeat (the loop-turn
/// counter), whether it sleeps in `epoll_wait`, whether it has greenlets that could be
/// starved, and the way in (its inbox). The hub writes these with plain relaxed stores, one or two a
/// loop turn; the blocked-hub monitor and ``Hub/runInfo(timeout:)`` read them.
final class HubBeacon: Sendable {
    /// Small number of the hub in the process, from 1, in order of creation.
    let number: Int
    let thread: pthread_t
    let inbox: HubInbox
    /// Loop turns begun (copied from the hub at the start of each).
    let turns = Atomic<UInt64>(0)
    /// True while the hub sleeps in `epoll_wait`: not turning then is not being blocked.
    let sleeping = Atomic<Bool>(false)
    /// True if the hub had greenlets of its own at its last turn: only then can it be blocked.
    /// A thread that got a hub in passing (a pool worker, say) and runs plain code has none,
    /// and is not blocked, merely busy. Stored once a loop turn, not on the switch path.
    let hasGreenlets = Atomic<Bool>(false)

    init(number: Int, thread: pthread_t, inbox: HubInbox) {
        self.number = number
        self.thread = thread
        self.inbox = inbox
    }
}

/// Every live hub's beacon, for the monitor and for run-info dumps.
enum HubDirectory {
    private static let beacons = ThreadLock<[HubBeacon]>([])
    private static let created = Atomic<Int>(0)

    static func nextNumber() -> Int { created.add(1, ordering: .relaxed).newValue }

    static func register(_ beacon: HubBeacon) {
        beacons.withLock { $0.append(beacon) }
    }

    static func unregister(_ beacon: HubBeacon) {
        beacons.withLock { list in list.removeAll { $0 === beacon } }
    }

    static var all: [HubBeacon] { beacons.withLock { $0 } }

    /// Beacons of the parent's hubs, in a forked child: kept, never freed, because their inboxes
    /// would close descriptor numbers the child may have reused.
    nonisolated(unsafe) private static var leftByFork: [HubBeacon] = []

    /// In a forked child: the parent's hubs are not this process's.
    static func forgetAfterFork() {
        leftByFork += beacons.reinitializeAfterFork([])
        created.store(0, ordering: .relaxed)
    }
}
