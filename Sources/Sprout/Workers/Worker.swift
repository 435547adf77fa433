import CSproutSystem
import Glibc
import Synchronization

/// What a worker process forked by a ``Supervisor`` knows of itself, handed to the worker's
/// body.
///
/// The supervisor sends `SIGTERM` to ask a worker to stop gracefully (on its own `SIGTERM`,
/// `SIGINT` or `SIGHUP`, or when `SIGTTOU` removes the worker): register what stops your
/// server with ``onStop(_:)``, and return from the body once it has drained. Without a
/// handler, `SIGTERM` ends the worker at once (its default action). The worker's hubs beat in
/// memory shared with the supervisor: one that stops turning for longer than the worker
/// timeout gets the worker killed and replaced.
public final class Worker: Sendable {
    /// The worker's place, from 0 to the number of workers - 1; a replacement takes the place
    /// of the worker it replaces.
    public let index: Int
    /// How many reloads (`SIGHUP`) the supervisor had done when it forked this worker.
    public let generation: Int
    let slot: Int
    let heartbeats: HeartbeatTable
    let beatInterval: Duration

    init(index: Int, generation: Int, slot: Int, heartbeats: HeartbeatTable, beatInterval: Duration) {
        self.index = index
        self.generation = generation
        self.slot = slot
        self.heartbeats = heartbeats
        self.beatInterval = beatInterval
    }

    /// Runs `handler` in a new greenlet of the calling thread's hub when the worker is asked to
    /// stop gracefully (`SIGTERM`, or `SIGINT` from a terminal that sent it to the whole process
    /// group). Call it on each hub whose server must drain.
    ///
    /// - Throws: ``SystemError`` if the signal handler cannot be installed.
    public func onStop(_ handler: @escaping () throws -> Void) throws {
        try onSignal(SIGTERM, handler)
        try onSignal(SIGINT, handler)
    }

    /// Makes the calling thread's hub beat for this worker too (the worker's first hub always
    /// does): call it on each extra hub thread (`sprout serve --threads`), so that a stuck one
    /// is noticed. The heartbeat is a greenlet that wakes a few times per worker timeout.
    ///
    /// - Throws: ``WorkerError/tooManyHubs`` beyond 31 hubs.
    public func watchThisHub() throws {
        guard let hub = heartbeats.addHub(slot: slot, now: sprout_now_ns()) else { throw WorkerError.tooManyHubs }
        startHeartbeat(hub: hub)
    }

    func startHeartbeat(hub: Int) {
        let (heartbeats, slot, interval) = (self.heartbeats, self.slot, beatInterval)
        // Killed with the hub's other greenlets when its thread ends; a hub that has ended is
        // not waited for (its last beat would soon look like a stuck hub).
        spawn(name: "worker heartbeat") {
            defer { heartbeats.beat(slot: slot, hub: hub, now: HeartbeatTable.gone) }
            while true {
                heartbeats.beat(slot: slot, hub: hub, now: sprout_now_ns())
                try sleep(for: interval)
            }
        }
    }
}

/// Misuse of a ``Worker``.
public struct WorkerError: Error, Equatable, CustomStringConvertible {
    public let description: String

    /// ``Worker/watchThisHub()`` was called on more hubs than a worker's heartbeat slot holds.
    public static let tooManyHubs = WorkerError(description: "a worker's heartbeats cover at most 31 hubs")
}
