import CSproutSystem

/// Memory shared by a supervisor and the workers it forks, where each worker's hubs record
/// when they last turned: the supervisor reads it to find a worker whose hub is stuck (gunicorn
/// has each worker touch a temporary file; a shared page costs no system call).
///
/// One slot per worker process; a slot holds the number of hubs that beat in it and one
/// monotonic timestamp (nanoseconds, comparable across processes) per hub. Mapped once, before
/// the first fork, so that every worker inherits it; pages are touched only as slots are used.
final class HeartbeatTable: @unchecked Sendable {
    /// Most worker processes alive at once (old and new during a reload included).
    static let slotCount = 1024
    /// Most hubs of one worker that beat.
    static let hubsPerSlot = 31
    private static let wordsPerSlot = 1 + hubsPerSlot
    private static let bytes = slotCount * wordsPerSlot * 8

    private let words: UnsafeMutablePointer<UInt64>

    /// - Throws: ``SystemError`` if the shared mapping cannot be made.
    init() throws {
        guard let memory = sprout_shared_memory(HeartbeatTable.bytes) else {
            throw SystemError(errno: errno(), operation: "mmap (worker heartbeats)")
        }
        words = memory.bindMemory(to: UInt64.self, capacity: HeartbeatTable.slotCount * HeartbeatTable.wordsPerSlot)
    }

    deinit {
        sprout_shared_memory_release(words, HeartbeatTable.bytes)
    }

    private func word(_ slot: Int, _ index: Int) -> UnsafeMutablePointer<UInt64> {
        precondition((0..<HeartbeatTable.slotCount).contains(slot))
        return words + slot * HeartbeatTable.wordsPerSlot + index
    }

    /// Before a worker is forked into `slot`: one hub, beating as of `now`.
    func prepare(slot: Int, now: UInt64) {
        sprout_shared_store(word(slot, 0), 1)
        sprout_shared_store(word(slot, 1), now)
        for hub in 1..<HeartbeatTable.hubsPerSlot { sprout_shared_store(word(slot, 1 + hub), 0) }
    }

    /// In the worker: hub `hub` of the slot turned at `now`.
    func beat(slot: Int, hub: Int, now: UInt64) {
        sprout_shared_store(word(slot, 1 + hub), now)
    }

    /// In the worker: claims the next hub index of `slot`, beating as of `now`; nil when all
    /// are taken. The beat is written before the count grows, so the master never sees a
    /// counted hub without one.
    func addHub(slot: Int, now: UInt64) -> Int? {
        let count = word(slot, 0)
        while true {
            let current = sprout_shared_load(count)
            guard current < UInt64(HeartbeatTable.hubsPerSlot) else { return nil }
            beat(slot: slot, hub: Int(current), now: now)
            // Only the worker itself adds hubs; its threads race here, so compare and swap.
            if sprout_shared_compare_exchange(count, current, current + 1) != 0 { return Int(current) }
        }
    }

    /// A hub whose thread has ended: it is no longer waited for.
    static let gone = UInt64.max

    /// The oldest last beat of the slot's live hubs (``gone`` if none is left).
    func oldestBeat(slot: Int) -> UInt64 {
        let hubs = min(Int(sprout_shared_load(word(slot, 0))), HeartbeatTable.hubsPerSlot)
        var oldest = HeartbeatTable.gone
        for hub in 0..<max(hubs, 1) {
            let beat = sprout_shared_load(word(slot, 1 + hub))
            if beat != 0 { oldest = min(oldest, beat) }
        }
        return oldest
    }

    /// True if the slot's first hub (the worker's main one) has beaten since `start`: the worker
    /// got as far as serving.
    func served(slot: Int, since start: UInt64) -> Bool {
        let beat = sprout_shared_load(word(slot, 1))
        return beat > start && beat != HeartbeatTable.gone
    }
}

private func errno() -> Int32 { sprout_errno() }
