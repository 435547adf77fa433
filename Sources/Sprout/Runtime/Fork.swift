import CSproutContext
import CSproutSystem
import Glibc
import Synchronization

/// Makes a process just created by `fork()` a clean slate for Sprout. ``forkProcess(stackSize:_:)``
/// does it for you; call it first thing in a child you forked another way. Sprout also does it
/// by itself when the child first uses a hub.
///
/// In the child, only the thread that forked goes on, and everything Sprout had belongs to the
/// parent. An atfork handler (installed with the first hub) already closed the child's copies
/// of the hubs' epoll, eventfd and signal-pipe descriptors, dropped the signal relays (each
/// signal has the action it had before Sprout watched it) and forgot the thread's hub. This
/// call then forgets the parent's other hubs and the blocked-hub monitor, and restarts
/// ``ThreadPool/shared`` with no threads. The child's first Sprout call gets a fresh hub.
///
/// What the child must know:
/// - The forking thread is unsafe for Swift code once the child has a second thread: the
///   Swift runtime's locks cache the thread id in a thread-local that fork does not reset, so
///   a lock that thread holds and another thread wants is never released. Run the child's
///   work on a new thread, as ``forkProcess(stackSize:_:)`` does.
/// - The parent's greenlets are not in the child: they never run there, and their `defer`
///   blocks do not run. Objects made before the fork (sockets, servers, events, pools) belong
///   to the parent's hub: waiting on one in the child stops the process with a message. Wrap
///   inherited descriptors anew with ``Socket/init(fileDescriptor:)``; handlers set with
///   ``onSignal(_:_:)`` must be set again.
/// - Other threads (``GreenThread``s, a private ``ThreadPool``) do not exist in the child.
public func afterFork() {
    ForkRecovery.recoverIfForked()
}

/// Forks the process and runs `child` in the new one, on a fresh thread with a hub of its own
/// (see ``afterFork()`` for what the child inherits and why it gets a new thread); the child
/// exits with the status `child` returns, without running `atexit` handlers.
///
/// Fork from a thread's main greenlet or from a thread without a hub, and before the parent
/// starts threads if you can: a lock held by another of the parent's threads at the moment of
/// the fork stays held in the child.
///
/// - Parameters:
///   - stackSize: The child thread's stack, in bytes (default 8 MiB).
///   - parentDeathSignal: Sent to the child when the parent thread that forked it ends (as
///     `prctl(PR_SET_PDEATHSIG)`); nil for none. A child whose parent died before this was set
///     up exits with status 0 at once.
/// - Returns: The child's pid (in the parent; the child never returns).
/// - Throws: ``SystemError`` if `fork` fails (`EAGAIN`: too many processes; `ENOMEM`).
public func forkProcess(stackSize: Int = 8 << 20, parentDeathSignal: Int32? = nil,
                        _ child: @escaping () -> Int32) throws -> Int32 {
    let body = Unmanaged.passRetained(ChildBody(child)).toOpaque()
    let pid = sprout_fork_running({ raw in
        ForkRecovery.recoverIfForked()
        return Unmanaged<ChildBody>.fromOpaque(raw!).takeUnretainedValue().run()
    }, body, stackSize, parentDeathSignal ?? 0)
    let error = errno
    Unmanaged<ChildBody>.fromOpaque(body).release()
    guard pid >= 0 else { throw SystemError(errno: error, operation: "fork") }
    return pid
}

private final class ChildBody {
    let run: () -> Int32
    init(_ run: @escaping () -> Int32) { self.run = run }
}

enum ForkRecovery {
    /// The fork generation whose leftovers were last cleared.
    private static let handled = Atomic<UInt64>(0)

    static func recoverIfForked() {
        let generation = sprout_fork_generation()
        let seen = handled.load(ordering: .acquiring)
        guard generation != seen,
              handled.compareExchange(expected: seen, desired: generation, ordering: .acquiringAndReleasing).exchanged
        else { return }
        if let raw = sprout_hub_forgotten_after_fork() {
            // Retained by the parent's thread-local pointer: kept for ever, since freeing it
            // would close descriptor numbers the child may reuse.
            Unmanaged<Hub>.fromOpaque(raw).takeUnretainedValue().abandonedByFork = true
        }
        HubDirectory.forgetAfterFork()
        BlockedHubMonitor.forgetAfterFork()
        LoadedImages.forgetAfterFork()
        ThreadPool.shared.resetAfterFork()
    }

    static func trapUseOfParentsHub(_ what: StaticString) -> Never {
        fatalError("""
            Sprout: waiting for \(what) on a hub left behind by fork(): in a forked child, make \
            sockets, servers and primitives anew (see afterFork())
            """)
    }
}
