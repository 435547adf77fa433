import CSproutContext
import CSproutSystem
import Glibc

/// What a greenlet inside a patched C call (SproutPatch's libc hooks) has been through.
struct PatchedCallState: OptionSet {
    let rawValue: UInt8
    /// Parked by a hook right now: a pending error rethrown at that park is not yet delivered.
    static let waiting = PatchedCallState(rawValue: 1)
    /// A kill or timeout interrupted a patched call; the C code was told (EINTR first, then
    /// ECANCELED, so that a library retrying on EINTR still stops). Cleared when the error is
    /// thrown at a Sprout switch point.
    static let interrupted = PatchedCallState(rawValue: 2)
}

/// The error that wakes greenlets parked on a descriptor that a hooked `close` closes (a
/// hook that sees it looks again and reports what the kernel says: EBADF, POLLNVAL).
private let closedWhileWaiting = SystemError(errno: EBADF, operation: "wait on a descriptor closed meanwhile")

/// The runtime side of SproutPatch: parking for the libc hooks. The hooks live in a C library
/// of their own (linked into a program, or loaded with LD_PRELOAD) and know nothing of Swift;
/// the first hub hands them this table of C functions.
enum PatchRuntime {
    /// Offers the table to the hooks once per process (a weak symbol: nothing if absent).
    static func offerToHooks() { _ = offered }

    private static let offered: Bool = {
        let table = UnsafeMutablePointer<sprout_green_runtime_t>.allocate(capacity: 1)
        table.initialize(to: sprout_green_runtime_t(
            in_greenlet: { sprout_context_in_greenlet() },
            wait_fd: { fd, events, deadline, afterEAGAIN, generation in
                PatchRuntime.waitDescriptor(fd, events: events, deadline: deadline, checkFirst: afterEAGAIN == 0,
                                            generation: generation)
            },
            wait_poll: { fds, count, deadline, generations in
                PatchRuntime.waitAny(fds!, count: Int(count), deadline: deadline, generations: generations!)
            },
            sleep_until: { deadline in PatchRuntime.sleep(until: deadline) },
            run_on_pool: { work, argument in PatchRuntime.runOnPool(work!, argument) },
            forget_fd: { fd in PatchRuntime.forget(fd) }))
        return sprout_green_runtime_offer(table) != 0
    }()

    private static func deadline(_ raw: UInt64) -> UInt64? { raw == UInt64.max ? nil : raw }

    /// Runs a park for a hook: 1 woken, 0 deadline, -1 interrupted (errno set).
    private static func parking(_ body: (Hub) throws -> Bool) -> Int32 {
        let hub = Hub.current
        let greenlet = hub.current!
        greenlet.patchedCall.insert(.waiting)
        defer { greenlet.patchedCall.remove(.waiting) }
        do {
            return try body(hub) ? 1 : 0
        } catch let error as SystemError where error.errno == EBADF {
            return 1   // closed while parked, or never valid: the hook's next try says so
        } catch let error as SystemError {
            // The wait itself failed (epoll_ctl: ENOMEM, ENOSPC): the call fails with that, and
            // the greenlet is not interrupted.
            errno = error.errno
            return -1
        } catch {
            return interrupted(greenlet, by: error)
        }
    }

    /// Keeps `error` to be thrown at the greenlet's next Sprout switch point, and tells the C
    /// code in errno: ETIMEDOUT for a timeout, EINTR for anything else the first time and
    /// ECANCELED after that (libpq, among others, retries poll on EINTR).
    private static func interrupted(_ greenlet: AnyGreenlet, by error: any Error) -> Int32 {
        if greenlet.pendingError == nil { greenlet.pendingError = error }
        let reported = greenlet.patchedCall.contains(.interrupted)
        greenlet.patchedCall.insert(.interrupted)
        errno = error is Timeout ? ETIMEDOUT : reported ? ECANCELED : EINTR
        return -1
    }

    static func waitDescriptor(_ fd: Int32, events: Int16, deadline raw: UInt64, checkFirst: Bool, generation: UInt32) -> Int32 {
        parking { hub in
            let writable = Int32(events) & POLLOUT != 0
            let readable = !writable || Int32(events) & ~POLLOUT != 0
            do {
                hub.poller.checkPatchGeneration(fd: fd, generation)
                return try hub.poller.wait(fd: fd, readable: readable, writable: writable, deadline: deadline(raw),
                                           transient: false, checkFirst: checkFirst, hub: hub)
            } catch let error as HubError where error.isConcurrentWait {
                // Another greenlet waits on it in that direction (a library shared against the
                // rule): look again shortly rather than fail, and never call that "timed out".
                _ = try hub.park(on: "a descriptor another greenlet waits on", deadline: min(raw, hub.deadline(after: .milliseconds(1))))
                return raw == UInt64.max || sprout_now_ns() < raw
            } catch let error as SystemError where error.errno == EPERM {
                return true   // not pollable through epoll: the hook's try says what it is
            }
        }
    }

    static func waitAny(_ fds: UnsafePointer<pollfd>, count: Int, deadline raw: UInt64, generations: UnsafePointer<UInt32>) -> Int32 {
        parking { hub in
            for index in 0..<count { hub.poller.checkPatchGeneration(fd: fds[index].fd, generations[index]) }
            return try hub.poller.waitAny(fds, count: count, deadline: deadline(raw), hub: hub)
        }
    }

    static func sleep(until raw: UInt64) -> Int32 {
        parking { hub in
            _ = try hub.park(on: "sleep in a patched C call", deadline: raw == UInt64.max ? nil : raw)
            return true
        }
    }

    static func runOnPool(_ work: @escaping @convention(c) (UnsafeMutableRawPointer?) -> Void,
                          _ argument: UnsafeMutableRawPointer?) -> Int32 {
        let job = ForeignJob(work: work, argument: argument)
        let hub = Hub.current
        let greenlet = hub.current!
        greenlet.patchedCall.insert(.waiting)
        defer { greenlet.patchedCall.remove(.waiting) }
        do {
            try ThreadPool.shared.run { job.work(job.argument) }
            return 0
        } catch let error as SystemError {
            errno = error.errno   // no thread to run it: never queued
            return -2
        } catch {
            return interrupted(greenlet, by: error)
        }
    }

    static func forget(_ fd: Int32) {
        guard let hub = Hub.existing, !hub.abandonedByFork else { return }
        hub.poller.forget(fd: fd, waking: closedWhileWaiting, hub: hub)
    }
}

/// A C job for the thread pool: the function and its argument, which the C side keeps alive
/// until the job has run (it owns the memory; see hooks_resolve.c).
private struct ForeignJob: @unchecked Sendable {
    let work: @convention(c) (UnsafeMutableRawPointer?) -> Void
    let argument: UnsafeMutableRawPointer?
}
